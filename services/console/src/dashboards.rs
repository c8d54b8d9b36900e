//! Each site's pages and API tables: parameters checked, the figures read, the page or
//! the table sent. The handlers count every answer by page and status.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::Utc;
use serde_json::{json, Value};

use crate::encoder::{text, Table};
use crate::http::{authorize, params, path, refuse, Audience, Console, Failure, Viewer};
use crate::pages::{self, escape, path_segment, Decor, Frame};
use crate::request::{self, Format, Params, Range, Segment};

type Answer = Result<Response, Failure>;

pub(crate) fn counted(state: &Console, page: &str, answer: Answer) -> Response {
    let response = match answer {
        Ok(r) => r,
        Err(Failure(r)) => *r,
    };
    state
        .metrics
        .requests
        .with_label_values(&[page, response.status().as_str()])
        .inc();
    response
}

fn range(state: &Console, p: &Params, audience: Audience) -> Result<Range, Failure> {
    Range::parse(
        p.from.as_deref(),
        p.to.as_deref(),
        Utc::now().date_naive(),
        state.config.console_max_range_days,
    )
    .map_err(|e| Failure::from((audience, e)))
}

fn query_of(range: &Range) -> String {
    format!("from={}&to={}", range.from, range.to)
}

pub async fn sites(State(state): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let answer = (|| {
        let (viewer, registry) = authorize(&state, &headers, None, Audience::Page)?;
        let sites = viewer.sites(&registry);
        if let [only] = sites.as_slice() {
            return Ok(
                Redirect::to(&format!("/sites/{}/forms", path_segment(only))).into_response(),
            );
        }
        let mut list = String::from("<main><h1>Your sites</h1><ul class=\"site-list\">");
        for s in &sites {
            let _ = write!(
                list,
                "<li><a href=\"/sites/{}/forms\">{}</a></li>",
                path_segment(s),
                escape(s)
            );
        }
        if sites.is_empty() {
            list.push_str("<li>No site is shared with you yet.</li>");
        }
        list.push_str("</ul></main>");
        Ok(Html(pages::document("Sites", "", &list)).into_response())
    })();
    counted(&state, "sites", answer)
}

pub async fn page(
    State(state): State<Arc<Console>>,
    headers: HeaderMap,
    route: Result<Path<(String, String)>, axum::extract::rejection::PathRejection>,
    query: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let audience = Audience::Page;
    let name = route
        .as_ref()
        .map_or("unknown", |Path((_, p))| page_name(p));
    let answer = async {
        let (site, page) = path::<(String, String)>(route, audience)?;
        let (viewer, registry) = authorize(&state, &headers, Some(&site), audience)?;
        let p = params(query, audience)?;
        let sites = viewer.sites(&registry);
        let csrf = viewer.cookie.as_deref().map(|c| state.key.csrf_token(c)).unwrap_or_default();
        let own_path = format!("/sites/{}/{}", path_segment(&site), path_segment(&page));
        let api = format!("/api/sites/{}", path_segment(&site));
        if page == "live" {
            return live(&state, &viewer, &sites, &site, &csrf, &own_path, &api).await;
        }
        let range = range(&state, &p, audience)?;
        let frame = Frame {
            user: &viewer.name,
            sites: &sites,
            site: &site,
            page: &page,
            range: Some(&range),
            csrf: &csrf,
            path: &own_path,
            keep: &[],
        };
        let q = query_of(&range);
        let figures = &state.figures.for_viewer(&viewer.name);
        if crate::behaviour::PAGES.contains(&page.as_str()) {
            return crate::behaviour::page(figures, &frame, &p, &range, &api).await;
        }
        if page == "replays" {
            return crate::replays::list(figures, &frame, &range, &api).await;
        }
        let html = match page.as_str() {
            "forms" => {
                let (forms, days) = figures.forms(&site, &range).await.map_err(|e| Failure::from((audience, e)))?;
                let views = views_by_form(&days, &range);
                let link = |form: &str| format!("/sites/{}/forms/{}?{q}", path_segment(&site), path_segment(form));
                let spark = |row: &[Value]| {
                    pages::sparkline(views.get(&text(&row[0])).map_or(&[][..], Vec::as_slice))
                };
                let decor = Decor { link: Some(&link), extra: Some(("views per day", &spark)), ..Decor::default() };
                let body = pages::table("forms", &forms, &format!("{api}/forms?{q}&format=csv"), &decor);
                pages::framed(&frame, "Forms", "", &body)
            }
            "conversions" => {
                let (table, currencies) = figures.conversions(&site, &range).await.map_err(|e| Failure::from((audience, e)))?;
                let decor = Decor { blank: Some("(not attributable)"), ..Decor::default() };
                let body = format!(
                    "<p>Each conversion counts for the last form its session interacted with before it; \
                     a conversion with no form before it is not attributable. Revenue counts each transaction once.</p>{}\
                     <h2>Revenue per currency</h2><p>The total above adds amounts as the tags sent them; here they are apart.</p>{}",
                    pages::table("conversions", &table, &format!("{api}/conversions?{q}&format=csv"), &decor),
                    pages::table("currencies", &currencies, &format!("{api}/conversion_currencies?{q}&format=csv"), &decor)
                );
                pages::framed(&frame, "Conversions", "", &body)
            }
            "trends" => {
                let table = figures.trends(&site, &range).await.map_err(|e| Failure::from((audience, e)))?;
                let body = format!(
                    "{}{}",
                    pages::chart("trend-chart", "lines", &table),
                    pages::table("trends", &table, &format!("{api}/trends?{q}&format=csv"), &Decor::default())
                );
                pages::framed(&frame, "Trends", "", &body)
            }
            "tooltips" => {
                let table = figures.tooltips(&site, &range).await.map_err(|e| Failure::from((audience, e)))?;
                let body = format!(
                    "<p>Hesitation tooltips: how often each trigger showed its tip, and how often visitors clicked or closed it.</p>{}",
                    pages::table("tooltips", &table, &format!("{api}/tooltips?{q}&format=csv"), &Decor::default())
                );
                pages::framed(&frame, "Tooltips", "", &body)
            }
            _ => return Err(Failure::new(refuse(audience, StatusCode::NOT_FOUND, &format!("no page `{page}`")))),
        };
        Ok(Html(html).into_response())
    }
    .await;
    counted(&state, name, answer)
}

fn page_name(page: &str) -> &'static str {
    pages::PAGES
        .iter()
        .find(|(p, _)| *p == page)
        .map_or("unknown", |(p, _)| p)
}

/// Views per form for every day of the range (zeros where a day has no row).
fn views_by_form(days: &Table, range: &Range) -> BTreeMap<String, Vec<f64>> {
    let index: std::collections::HashMap<String, usize> = range
        .days()
        .enumerate()
        .map(|(i, d)| (d.to_string(), i))
        .collect();
    let mut out: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for row in &days.rows {
        let series = out
            .entry(text(&row[0]))
            .or_insert_with(|| vec![0.0; index.len()]);
        if let Some(&i) = index.get(&text(&row[1])) {
            series[i] = row[2].as_f64().unwrap_or(0.0);
        }
    }
    out
}

async fn live(
    state: &Console,
    viewer: &Viewer,
    sites: &[String],
    site: &str,
    csrf: &str,
    own_path: &str,
    api: &str,
) -> Answer {
    let now = Utc::now();
    let minutes = state.config.console_live_minutes;
    let (events, forms) = state
        .figures
        .for_viewer(&viewer.name)
        .live(site, now.timestamp_millis(), minutes, now.date_naive())
        .await
        .map_err(|e| Failure::from((Audience::Page, e)))?;
    let frame = Frame {
        user: &viewer.name,
        sites,
        site,
        page: "live",
        range: None,
        csrf,
        path: own_path,
        keep: &[],
    };
    // A session closes 30 minutes after its last event; the sessionizer waits 5 more for
    // late events: only then are its figures final.
    let last = forms
        .column("last_event_ms")
        .and_then(|i| forms.rows.iter().filter_map(|r| r[i].as_i64()).max());
    let when = last.map_or(
        "No form activity today yet.".to_owned(),
        |ms| {
            let ready = chrono::DateTime::from_timestamp_millis(ms + 35 * 60_000).unwrap_or(now);
            format!(
                "Provisional: these count today's sessions still open. The final figures for a visit \
                 appear on the Forms page about 35 minutes after its last event (30 minutes without activity \
                 closes a session, then 5 minutes for late events): for the latest activity, at {} UTC.",
                ready.format("%H:%M")
            )
        },
    );
    let body = format!(
        "<p class=\"provisional\" id=\"final-at\">{}</p><h2>Today's forms (provisional)</h2>{}\
         <h2>Events of the last {minutes} minutes</h2>{}",
        escape(&when),
        pages::table(
            "live-forms",
            &forms,
            &format!("{api}/live_forms?format=csv"),
            &Decor::default()
        ),
        pages::table(
            "live-events",
            &events,
            &format!("{api}/live_events?format=csv"),
            &Decor::default()
        ),
    );
    Ok(Html(pages::framed(
        &frame,
        "Live",
        "<meta http-equiv=\"refresh\" content=\"5\">",
        &body,
    ))
    .into_response())
}

pub async fn form_page(
    State(state): State<Arc<Console>>,
    headers: HeaderMap,
    route: Result<Path<(String, String)>, axum::extract::rejection::PathRejection>,
    query: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let audience = Audience::Page;
    let answer = async {
        let (site, form) = path::<(String, String)>(route, audience)?;
        let (viewer, registry) = authorize(&state, &headers, Some(&site), audience)?;
        let p = params(query, audience)?;
        let (range, segment, detail) = form_detail(&state, &viewer, &site, &form, &p, audience).await?;
        let sites = viewer.sites(&registry);
        let csrf = viewer.cookie.as_deref().map(|c| state.key.csrf_token(c)).unwrap_or_default();
        let own_path = format!("/sites/{}/forms/{}", path_segment(&site), path_segment(&form));
        let api = format!("/api/sites/{}/forms/{}", path_segment(&site), path_segment(&form));
        let frame = Frame {
            user: &viewer.name,
            sites: &sites,
            site: &site,
            page: "forms",
            range: Some(&range),
            csrf: &csrf,
            path: &own_path,
            keep: &[],
        };
        let q = query_of(&range);
        let worst = worst_field(&detail.fields);
        let mark = |row: &[Value]| (Some(text(&row[0])) == worst).then_some("abandon");
        let abandon_note = worst.as_ref().map_or(String::new(), |f| {
            format!("<p class=\"abandon-note\">Visitors who gave up most often left at <strong>{}</strong>.</p>", escape(f))
        });
        let segments_base = format!("{own_path}?{q}");
        let body = format!(
            "<h2>Funnel</h2>{funnel_chart}{funnel}\
             <h2>Fields</h2>{abandon_note}{field_chart}{fields}\
             <h2>By segment</h2>{segment_links}{segments}\
             <h2>Per day</h2>{days}",
            funnel_chart = pages::chart("funnel-chart", "funnel", &detail.funnel),
            funnel = pages::table("funnel", &detail.funnel, &format!("{api}/funnel?{q}&format=csv"), &Decor::default()),
            field_chart = pages::chart("field-chart", "fields", &detail.fields),
            fields = pages::table("fields", &detail.fields, &format!("{api}/fields?{q}&format=csv"), &Decor { mark: Some(&mark), ..Decor::default() }),
            segment_links = pages::segment_links(&segments_base, segment),
            segments = pages::table("segments", &detail.segments, &format!("{api}/segments?{q}&segment={}&format=csv", segment.column()), &Decor::default()),
            days = pages::table("days", &detail.days, &format!("{api}/days?{q}&format=csv"), &Decor::default()),
        );
        Ok(Html(pages::framed(&frame, &format!("Form {form}"), "", &body)).into_response())
    }
    .await;
    counted(&state, "form", answer)
}

/// One form's figures for the viewer: the key, range and segment checked; a form without
/// figures in the range is a 400 that says so.
async fn form_detail(
    state: &Console,
    viewer: &Viewer,
    site: &str,
    form: &str,
    p: &Params,
    audience: Audience,
) -> Result<(Range, Segment, crate::service::FormDetail), Failure> {
    let form = request::form_key(form).map_err(|e| Failure::from((audience, e)))?;
    let range = range(state, p, audience)?;
    let segment = Segment::parse(p.segment.as_deref()).map_err(|e| Failure::from((audience, e)))?;
    let detail = state
        .figures
        .for_viewer(&viewer.name)
        .form(site, form, &range, segment)
        .await
        .map_err(|e| Failure::from((audience, e)))?
        .ok_or_else(|| {
            Failure::new(refuse(
                audience,
                StatusCode::BAD_REQUEST,
                &unknown_form(site, form, &range),
            ))
        })?;
    Ok((range, segment, detail))
}

fn unknown_form(site: &str, form: &str, range: &Range) -> String {
    format!(
        "site `{site}` has no figures for form `{form}` between {} and {}: check the form key, or widen the range",
        range.from, range.to
    )
}

/// The field where most visitors who gave up left, if any did.
fn worst_field(fields: &Table) -> Option<String> {
    let a = fields.column("abandons")?;
    fields
        .rows
        .iter()
        .filter(|r| r[a].as_f64().unwrap_or(0.0) > 0.0)
        .max_by(|x, y| {
            x[a].as_f64()
                .partial_cmp(&y[a].as_f64())
                .unwrap_or(std::cmp::Ordering::Equal)
        })
        .map(|r| text(&r[0]))
}

/// A table as JSON (`{"columns": [...], "rows": [[...]]}`) or CSV.
fn send(table: &Table, format: Format, name: &str) -> Response {
    match format {
        Format::Json => axum::Json(json!(table)).into_response(),
        Format::Csv => {
            let mut response = table.to_csv().into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            );
            if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}.csv\"")) {
                headers.insert(header::CONTENT_DISPOSITION, v);
            }
            response
        }
    }
}

/// File names carry only safe characters (form keys come from customers' pages).
fn file_name(parts: &[&str]) -> String {
    parts
        .join("-")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(120)
        .collect()
}

pub async fn api(
    State(state): State<Arc<Console>>,
    headers: HeaderMap,
    route: Result<Path<(String, String)>, axum::extract::rejection::PathRejection>,
    query: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let audience = Audience::Api;
    let answer = async {
        let (site, name) = path::<(String, String)>(route, audience)?;
        let (viewer, _) = authorize(&state, &headers, Some(&site), audience)?;
        let p = params(query, audience)?;
        let format = Format::parse(p.format.as_deref()).map_err(|e| Failure::from((audience, e)))?;
        let figures = &state.figures.for_viewer(&viewer.name);
        let unavailable = |e| Failure::from((audience, e));
        let now = Utc::now();
        let table = match name.as_str() {
            "live_events" | "live_forms" => {
                let (events, forms) = figures
                    .live(&site, now.timestamp_millis(), state.config.console_live_minutes, now.date_naive())
                    .await
                    .map_err(unavailable)?;
                if name == "live_events" { events } else { forms }
            }
            "forms" | "form_days" | "conversions" | "conversion_currencies" | "trends" | "tooltips" | "replays" => {
                let range = range(&state, &p, audience)?;
                match name.as_str() {
                    "replays" => figures.replays(&site, &range).await.map_err(unavailable)?,
                    "forms" => figures.forms(&site, &range).await.map_err(unavailable)?.0,
                    "form_days" => figures.forms(&site, &range).await.map_err(unavailable)?.1,
                    "conversions" => figures.conversions(&site, &range).await.map_err(unavailable)?.0,
                    "conversion_currencies" => figures.conversions(&site, &range).await.map_err(unavailable)?.1,
                    "trends" => figures.trends(&site, &range).await.map_err(unavailable)?,
                    _ => figures.tooltips(&site, &range).await.map_err(unavailable)?,
                }
            }
            behaviour if crate::behaviour::TABLES.contains(&behaviour) => {
                let range = range(&state, &p, audience)?;
                crate::behaviour::table(figures, &site, &range, behaviour, &p).await?
            }
            _ => return Err(Failure::new(refuse(audience, StatusCode::NOT_FOUND, &format!("no table `{name}`: forms, form_days, conversions, conversion_currencies, trends, tooltips, replays, {}, live_events or live_forms", crate::behaviour::TABLES.join(", "))))),
        };
        Ok(send(&table, format, &file_name(&[&site, &name])))
    }
    .await;
    counted(&state, "api", answer)
}

pub async fn form_api(
    State(state): State<Arc<Console>>,
    headers: HeaderMap,
    route: Result<Path<(String, String, String)>, axum::extract::rejection::PathRejection>,
    query: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let audience = Audience::Api;
    let answer = async {
        let (site, form, name) = path::<(String, String, String)>(route, audience)?;
        let (viewer, _) = authorize(&state, &headers, Some(&site), audience)?;
        let p = params(query, audience)?;
        let format =
            Format::parse(p.format.as_deref()).map_err(|e| Failure::from((audience, e)))?;
        if !["funnel", "fields", "segments", "days"].contains(&name.as_str()) {
            return Err(Failure::new(refuse(
                audience,
                StatusCode::NOT_FOUND,
                &format!("no table `{name}`: funnel, fields, segments or days"),
            )));
        }
        let (_, _, detail) = form_detail(&state, &viewer, &site, &form, &p, audience).await?;
        let table = match name.as_str() {
            "funnel" => &detail.funnel,
            "fields" => &detail.fields,
            "segments" => &detail.segments,
            _ => &detail.days,
        };
        Ok(send(table, format, &file_name(&[&site, &form, &name])))
    }
    .await;
    counted(&state, "form_api", answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_field_is_the_one_most_left_at_and_none_when_nobody_left() {
        let t = Table::from_json_lines(
            "{\"field\":\"email\",\"abandons\":2}\n{\"field\":\"phone\",\"abandons\":5}\n{\"field\":\"name\",\"abandons\":0}",
        )
        .unwrap();
        assert_eq!(worst_field(&t).as_deref(), Some("phone"));
        let none = Table::from_json_lines("{\"field\":\"email\",\"abandons\":0}").unwrap();
        assert_eq!(worst_field(&none), None);
    }

    #[test]
    fn views_fill_every_day_of_the_range() {
        let range = Range::parse(
            Some("2026-01-01"),
            Some("2026-01-03"),
            Utc::now().date_naive(),
            10,
        )
        .unwrap();
        let days =
            Table::from_json_lines("{\"form\":\"f\",\"day\":\"2026-01-02\",\"views\":7}").unwrap();
        assert_eq!(views_by_form(&days, &range)["f"], [0.0, 7.0, 0.0]);
    }

    #[test]
    fn download_names_hold_only_safe_characters() {
        assert_eq!(
            file_name(&["DEMO", "a\"b/c", "fields"]),
            "DEMO-a_b_c-fields"
        );
    }
}
