//! A site's behaviour pages: where visitors click (Heatmap), how far down they read (Scroll
//! depth) and which script errors cost forms (Errors), each over the site's date range,
//! each table also JSON and CSV under `/api/sites/<site>/<table>`. The routes, log-in and
//! site checks are those of every site page (`dashboards`); the reads are in `figures`,
//! the pictures in `render`.

pub mod figures;
pub mod render;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt::Write;

use axum::response::{Html, IntoResponse, Response};
use serde_json::Value;

use crate::encoder::{text, Table};
use crate::http::{Audience, Failure};
use crate::pages::{self, escape, hidden, path_segment, Decor, Frame};
use crate::request::{self, Params, Range};
use crate::service::Figures;

pub use render::FrameSource;

/// The pages, by their path under `/sites/<site>/`.
pub const PAGES: [&str; 3] = ["heatmap", "scroll", "errors"];

/// The API's tables, by their path under `/api/sites/<site>/`.
pub const TABLES: [&str; 6] = [
    "heatmap_pages",
    "heatmap_devices",
    "heatmap",
    "scroll",
    "errors",
    "error_forms",
];

/// The page and device class a heatmap was asked for, checked.
fn asked(p: &Params, audience: Audience) -> Result<(Option<&str>, Option<&str>), Failure> {
    let page = match p.page.as_deref().filter(|s| !s.is_empty()) {
        Some(page) => Some(request::page_url(page).map_err(|e| Failure::from((audience, e)))?),
        None => None,
    };
    let device = match p.device.as_deref().filter(|s| !s.is_empty()) {
        Some(device) => {
            Some(request::device_class(device).map_err(|e| Failure::from((audience, e)))?)
        }
        None => None,
    };
    Ok((page, device))
}

fn query_of(range: &Range) -> String {
    format!("from={}&to={}", range.from, range.to)
}

/// A query string's value.
fn value(s: &str) -> String {
    path_segment(s)
}

/// One of [`PAGES`] for a viewer who holds the site: `frame` is the site's frame, `api`
/// the site's API path.
pub async fn page(
    figures: &Figures,
    frame: &Frame<'_>,
    p: &Params,
    range: &Range,
    api: &str,
) -> Result<Response, Failure> {
    let audience = Audience::Page;
    let site = frame.site;
    let unavailable = |e| Failure::from((audience, e));
    let q = query_of(range);
    match frame.page {
        "heatmap" => {
            let (page, device) = asked(p, audience)?;
            let map = figures
                .heatmap(site, range, page, device)
                .await
                .map_err(unavailable)?;
            Ok(heatmap(frame, &map, range, api))
        }
        "scroll" => {
            let scroll = figures.scroll(site, range).await.map_err(unavailable)?;
            let body = format!(
                "<p>How far down each page its visitors read: of the page's views, the share that reached \
                 25, 50, 75 and 100 % of its height. The 200 pages and device classes with most views.</p>{}<h2>Per page</h2>{}",
                render::depth_figures(&scroll),
                pages::table("scroll", &scroll, &format!("{api}/scroll?{q}&format=csv"), &Decor::default()),
            );
            Ok(Html(pages::framed(frame, "Scroll depth", "", &body)).into_response())
        }
        _ => {
            let (errors, _) = figures.errors(site, range).await.map_err(unavailable)?;
            Ok(Html(pages::framed(
                frame,
                "Errors",
                "",
                &errors_body(site, &errors, &q, api),
            ))
            .into_response())
        }
    }
}

fn heatmap(frame: &Frame<'_>, map: &figures::Heatmap, range: &Range, api: &str) -> Response {
    let site = frame.site;
    let q = query_of(range);
    let own = format!("/sites/{}/heatmap", path_segment(site));
    let (page, device) = (
        map.page.as_deref().unwrap_or_default(),
        map.device.as_deref().unwrap_or_default(),
    );
    let link = |p: &str| format!("{own}?page={}&{q}", value(p));
    let current =
        |row: &[Value]| (row.first().map(text).as_deref() == Some(page)).then_some("current");
    let list = pages::table(
        "heatmap-pages",
        &map.pages,
        &format!("{api}/heatmap_pages?{q}&format=csv"),
        &Decor {
            link: Some(&link),
            mark: Some(&current),
            ..Decor::default()
        },
    );
    let intro = "<p>Where visitors clicked: each mark is 2 % of the page's width by 25 pixels of its height, \
                 over the page as it is now. The page is shown without its scripts, so a page drawn by scripts may \
                 show little behind the clicks. The 200 most clicked pages; pick one.</p>";
    let mut body = format!("{intro}<div class=\"page-list\">{list}</div>");
    let mut keep: Vec<(&str, &str)> = Vec::new();
    let mut framed = None;
    if map.page.is_some() {
        keep.push(("page", page));
        if map.device.is_some() {
            keep.push(("device", device));
        }
        let _ = write!(
            body,
            "<h2>Clicks on <span class=\"page\">{}</span></h2>",
            escape(page)
        );
        if !map.devices.rows.is_empty() {
            let mut options = String::new();
            for row in &map.devices.rows {
                let (class, clicks) = (text(&row[0]), text(&row[1]));
                let selected = if class == device { " selected" } else { "" };
                let _ = write!(
                    options,
                    "<option value=\"{}\"{selected}>{} ({} clicks)</option>",
                    escape(&class),
                    escape(&class),
                    escape(&clicks)
                );
            }
            let _ = write!(
                body,
                "<form class=\"device\" method=\"get\" action=\"{}\">{}{}{}\
                 <label>Device class <select name=\"device\">{options}</select></label> <button>Show</button></form>",
                escape(&own),
                hidden("page", page),
                hidden("from", &range.from.to_string()),
                hidden("to", &range.to.to_string()),
            );
        }
        let bins = render::bins(&map.bins);
        if bins.is_empty() {
            let from = if device.is_empty() {
                String::new()
            } else {
                format!(" from {} devices", escape(device))
            };
            let _ = write!(
                body,
                "<p class=\"empty\">No clicks on this page{from} in this range.</p>"
            );
        } else {
            framed = render::framed_page(page);
            if bins.iter().any(|b| {
                b.y_bin.saturating_mul(render::BIN_HEIGHT_PX) >= render::MAX_FRAME_HEIGHT_PX
            }) {
                body.push_str("<p class=\"note\">Some clicks are further down than the map is drawn: they are in the table below.</p>");
            }
            body.push_str(&render::heatmap(page, device, &bins));
            body.push_str(&render::legend());
        }
        let _ = write!(
            body,
            "<h2>Clicks per bin</h2>{}",
            pages::table(
                "heatmap",
                &map.bins,
                &format!(
                    "{api}/heatmap?page={}&device={}&{q}&format=csv",
                    value(page),
                    value(device)
                ),
                &Decor::default()
            )
        );
    }
    let frame = Frame {
        keep: &keep,
        ..*frame
    };
    let mut response = Html(pages::framed(&frame, "Heatmap", "", &body)).into_response();
    // The page's origin may be framed by this answer only; every other keeps frames to the
    // console's own.
    if let Some(framed) = framed {
        response.extensions_mut().insert(framed.source);
    }
    response
}

/// The errors, with the forms their sessions abandoned linked to those forms' pages.
fn errors_body(site: &str, errors: &Table, q: &str, api: &str) -> String {
    let forms_column = errors.column("forms_abandoned");
    let key = |row: &[Value]| (text(&row[0]), text(&row[1]), text(&row[2]));
    let forms: HashMap<(String, String, String), Value> = forms_column
        .map(|f| errors.rows.iter().map(|r| (key(r), r[f].clone())).collect())
        .unwrap_or_default();
    // The page's table: the figures, and the forms as links rather than their JSON.
    let mut shown = errors.clone();
    if let Some(f) = forms_column {
        shown.columns.remove(f);
        for row in &mut shown.rows {
            row.remove(f);
        }
    }
    let links = |row: &[Value]| {
        forms
            .get(&key(row))
            .map_or(String::new(), |f| render::forms_links(site, f, q))
    };
    format!(
        "<p>Script errors on the site's pages (their messages scrubbed as the events are), the sessions they \
         happened in, and what those sessions then did: abandoned a form they had started, or converted. The errors \
         that cost forms first; a session that abandoned forms lists them, each with its sessions.</p>{}",
        pages::table(
            "errors",
            &shown,
            &format!("{api}/errors?{q}&format=csv"),
            &Decor { extra: Some(("forms abandoned", &links)), ..Decor::default() },
        )
    )
}

/// One of [`TABLES`] for a viewer who holds the site.
pub async fn table(
    figures: &Figures,
    site: &str,
    range: &Range,
    name: &str,
    p: &Params,
) -> Result<Table, Failure> {
    let audience = Audience::Api;
    let unavailable = |e| Failure::from((audience, e));
    Ok(match name {
        "heatmap_pages" => figures
            .heatmap_pages(site, range)
            .await
            .map_err(unavailable)?,
        "heatmap" | "heatmap_devices" => {
            let (page, device) = asked(p, audience)?;
            let map = figures
                .heatmap(site, range, page, device)
                .await
                .map_err(unavailable)?;
            if name == "heatmap" {
                map.bins
            } else {
                map.devices
            }
        }
        "scroll" => figures.scroll(site, range).await.map_err(unavailable)?,
        "errors" => figures.errors(site, range).await.map_err(unavailable)?.0,
        _ => figures.errors(site, range).await.map_err(unavailable)?.1,
    })
}
