//! Session replay in the console: the list of a site's sessions with a replay (`Replays`,
//! from `v_replays`), a session's player page, and the events it plays
//! (`/api/sites/<site>/replays/<session>`): the stored batches, on the collector's clock,
//! with the session's form events and conversions as markers on the timeline. The same
//! log-in and site checks as every site page.

use std::io::Read;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use serde_json::{json, Value};

use crate::encoder::{text, Table};
use crate::http::{authorize, path, refuse, Audience, Console, Failure};
use crate::pages::{self, escape, path_segment, Decor, Frame};
use crate::request::Range;
use crate::service::{Arg, Figures, Unavailable};

const LIST: &str = include_str!("sql/replays.sql");
const BATCHES: &str = include_str!("sql/replay_batches.sql");
const MARK_EVENTS: &str = include_str!("sql/replay_marks.sql");

/// What the player is sent at most, as JSON: a session over it is refused rather than
/// held in memory (an hour of a busy page is a few tens of megabytes).
const MAX_EVENTS_BYTES: usize = 128 * 1024 * 1024;

/// The markers on the timeline (rrweb-player's `tags`); their colours are the console's
/// style sheet's (`.mark-*`), which the page's legend shows and player.js reads.
pub const MARKS: [&str; 4] = ["form start", "form submit", "field refused", "conversion"];

/// A session id as the sessionizer writes it: 32 lowercase hex digits.
pub fn session_id(text: &str) -> Option<&str> {
    (text.len() == 32 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .then_some(text)
}

impl Figures {
    /// The sessions of the range that have a replay, newest first.
    pub async fn replays(&self, site: &str, range: &Range) -> Result<Table, Unavailable> {
        self.table("replays", LIST, &Self::site_range(site, range))
            .await
    }

    /// A session's stored batches (hex of gzipped JSON, skew) and its form events.
    async fn replay_parts(&self, site: &str, session: &str) -> Result<(Table, Table), Unavailable> {
        let args = [
            ("site", Arg::Text(site.to_owned())),
            ("session", Arg::Text(session.to_owned())),
        ];
        tokio::try_join!(
            self.table("replay_batches", BATCHES, &args),
            self.table("replay_marks", MARK_EVENTS, &args),
        )
    }
}

/// Why a stored replay cannot be played.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Unplayable {
    #[error("a stored batch is not gzipped JSON of rrweb events: {0}")]
    Corrupt(String),
    #[error("the replay is over {} MiB", MAX_EVENTS_BYTES >> 20)]
    TooLarge,
}

/// The events to play: every batch's events moved to the collector's clock (the form
/// events are on it), in time order, with a custom event per marker, never before the
/// first recorded event (the player starts there). Pure.
pub fn assemble(batches: &Table, marks: &Table) -> Result<Vec<Value>, Unplayable> {
    let mut events: Vec<Value> = Vec::new();
    let mut size = 0usize;
    for row in &batches.rows {
        let gz = hex::decode(text(&row[0])).map_err(|e| Unplayable::Corrupt(e.to_string()))?;
        let skew = row[1].as_i64().unwrap_or(0);
        let mut json = String::new();
        flate2::read::GzDecoder::new(gz.as_slice())
            .take((MAX_EVENTS_BYTES - size) as u64 + 1)
            .read_to_string(&mut json)
            .map_err(|e| Unplayable::Corrupt(e.to_string()))?;
        size += json.len();
        if size > MAX_EVENTS_BYTES {
            return Err(Unplayable::TooLarge);
        }
        let batch: Vec<Value> =
            serde_json::from_str(&json).map_err(|e| Unplayable::Corrupt(e.to_string()))?;
        for mut e in batch {
            if let Some(t) = e.get("timestamp").and_then(Value::as_i64) {
                e["timestamp"] = json!(t + skew);
            }
            events.push(e);
        }
    }
    let start = events.iter().filter_map(|e| e["timestamp"].as_i64()).min();
    let Some(start) = start else {
        return Ok(events);
    };
    let mut started = std::collections::HashSet::new();
    for row in &marks.rows {
        let (at, kind, form_event) = (
            row[0].as_i64().unwrap_or(start),
            text(&row[1]),
            text(&row[2]),
        );
        let (form, field) = (text(&row[3]), text(&row[4]));
        let tag = match (kind.as_str(), form_event.as_str()) {
            ("conversion", _) => "conversion",
            (_, "focus") if started.insert(form.clone()) => "form start",
            (_, "submit") => "form submit",
            (_, "invalid") => "field refused",
            _ => continue,
        };
        events.push(json!({
            "type": 5,
            "timestamp": at.max(start),
            "data": {"tag": tag, "payload": {"form": form, "field": field}},
        }));
    }
    // Stable: events of one moment keep the order they were recorded in.
    events.sort_by_key(|e| e["timestamp"].as_i64().unwrap_or(start));
    Ok(events)
}

/// The Replays page: the range's sessions with a replay, each a link to its player.
pub async fn list(
    figures: &Figures,
    frame: &Frame<'_>,
    range: &Range,
    api: &str,
) -> Result<Response, Failure> {
    let audience = Audience::Page;
    let site = frame.site;
    let table = figures
        .replays(site, range)
        .await
        .map_err(|e| Failure::from((audience, e)))?;
    let q = format!("from={}&to={}", range.from, range.to);
    let link = |session: &str| {
        format!(
            "/sites/{}/replays/{}",
            path_segment(site),
            path_segment(session)
        )
    };
    let decor = Decor {
        link: Some(&link),
        ..Decor::default()
    };
    let body =
        format!(
        "<p>Sessions recorded on this site (its <code>replay_sample</code>), newest first: what \
         was typed and everything your pages mark <code>ex-block</code> or <code>ex-mask</code> \
         was never recorded. Open one to watch it, with its form events on the timeline.</p>{}",
        pages::table("replays", &table, &format!("{api}/replays?{q}&format=csv"), &decor)
    );
    Ok(Html(pages::framed(frame, "Replays", "", &body)).into_response())
}

/// A session's route, checked: the viewer holds the site, and the session id has the
/// sessionizer's shape.
fn opened(
    state: &Console,
    headers: &HeaderMap,
    route: Result<Path<(String, String)>, axum::extract::rejection::PathRejection>,
    audience: Audience,
) -> Result<
    (
        String,
        String,
        crate::http::Viewer,
        Arc<exatom_edge::sites::Registry>,
    ),
    Failure,
> {
    let (site, session) = path::<(String, String)>(route, audience)?;
    let (viewer, registry) = authorize(state, headers, Some(&site), audience)?;
    if session_id(&session).is_none() {
        return Err(Failure::new(refuse(
            audience,
            StatusCode::NOT_FOUND,
            "no such session: a session id is 32 hex digits",
        )));
    }
    Ok((site, session, viewer, registry))
}

/// Marks the answer as the player's, whose recorded pages need inline styles: the console's
/// policy lets them in for this page alone (scripts stay the console's own).
#[derive(Debug, Clone, Copy)]
pub struct PlayerPolicy;

/// `/sites/<site>/replays/<session>`: the player.
pub async fn player(
    State(state): State<Arc<Console>>,
    headers: HeaderMap,
    route: Result<Path<(String, String)>, axum::extract::rejection::PathRejection>,
) -> Response {
    let audience = Audience::Page;
    let answer = (|| {
        let (site, session, viewer, registry) = opened(&state, &headers, route, audience)?;
        let session = session.as_str();
        let sites = viewer.sites(&registry);
        let csrf = viewer
            .cookie
            .as_deref()
            .map(|c| state.key.csrf_token(c))
            .unwrap_or_default();
        let own_path = format!("/sites/{}/replays/{session}", path_segment(&site));
        let frame = Frame {
            user: &viewer.name,
            sites: &sites,
            site: &site,
            page: "replays",
            range: None,
            csrf: &csrf,
            path: &own_path,
            keep: &[],
        };
        let legend: String = MARKS
            .iter()
            .map(|tag| {
                format!(
                    "<li class=\"mark-{}\">{}</li>",
                    tag.replace(' ', "-"),
                    escape(tag)
                )
            })
            .collect();
        let body = format!(
            "<p>The session as it was recorded, on the collector's clock; the timeline marks \
             its form events:</p><ul class=\"marks\">{legend}</ul>\
             <div id=\"player\" data-events=\"/api/sites/{}/replays/{session}\">Loading the replay…</div>",
            path_segment(&site)
        );
        let head = "<link rel=\"stylesheet\" href=\"/assets/rrweb-player.min.css\">\
                    <script defer src=\"/assets/rrweb-player.min.js\"></script>\
                    <script defer src=\"/assets/player.js\"></script>";
        let mut response = Html(pages::framed(
            &frame,
            &format!("Replay {session}"),
            head,
            &body,
        ))
        .into_response();
        response.extensions_mut().insert(PlayerPolicy);
        Ok(response)
    })();
    crate::dashboards::counted(&state, "replay", answer)
}

/// `/api/sites/<site>/replays/<session>`: the events the player plays, as JSON.
pub async fn events(
    State(state): State<Arc<Console>>,
    headers: HeaderMap,
    route: Result<Path<(String, String)>, axum::extract::rejection::PathRejection>,
) -> Response {
    let audience = Audience::Api;
    let answer = async {
        let (site, session, viewer, _) = opened(&state, &headers, route, audience)?;
        let session = session.as_str();
        let figures = state.figures.for_viewer(&viewer.name);
        let (batches, marks) = figures
            .replay_parts(&site, session)
            .await
            .map_err(|e| Failure::from((audience, e)))?;
        if batches.rows.is_empty() {
            return Err(Failure::new(refuse(
                audience,
                StatusCode::NOT_FOUND,
                "this session has no replay",
            )));
        }
        let events = assemble(&batches, &marks).map_err(|e| {
            tracing::warn!(error = %e, "a replay could not be assembled");
            Failure::new(refuse(
                audience,
                StatusCode::UNPROCESSABLE_ENTITY,
                &e.to_string(),
            ))
        })?;
        Ok(axum::Json(events).into_response())
    }
    .await;
    crate::dashboards::counted(&state, "api", answer)
}

#[cfg(test)]
mod tests;
