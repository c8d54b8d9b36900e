//! What a session's clicks, scroll depths and script errors add up to, by the definitions
//! of `metrics.md`: heatmap bins, the deepest point of each page view, and each error with
//! what the session then did with its forms. Pure, like the form analytics.

use std::collections::BTreeMap;

use exatom_core::model::{EventKind, SessionEvent};

/// Heatmap columns: a bin is 2 % of the document's width.
pub const X_BINS: u8 = 50;
/// Heatmap rows: a bin is this many CSS pixels of the document's height.
pub const Y_BIN_PX: i32 = 25;

/// A session's clicks on one page, in one heatmap bin.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClickBin {
    pub page: String,
    pub x_bin: u8,
    pub y_bin: u32,
    pub clicks: u32,
    pub rage_clicks: u32,
    pub dead_clicks: u32,
}

/// One page view of a session and the deepest point of its page reached, in %.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PageScroll {
    pub page: String,
    /// The page view's place among the session's page views (from 0).
    pub view: u32,
    pub depth: u8,
}

/// One script error of a session on one page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionError {
    pub page: String,
    pub message: String,
    pub source: String,
    pub errors: u32,
    pub first_error_ms: i64,
}

/// The page a heatmap, a scroll depth or an error belongs to: the URL without query or
/// fragment (campaign parameters would split one page in many).
pub fn page_of(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or_default()
}

/// The heatmap bin of a click at `x` (fraction of the width) and `y` (pixels).
pub fn bin(x: f64, y: i32) -> (u8, u32) {
    let column = (x * f64::from(X_BINS)).floor();
    let x_bin = if column.is_nan() {
        0
    } else {
        column.clamp(0.0, f64::from(X_BINS - 1)) as u8
    };
    (x_bin, (y.max(0) / Y_BIN_PX) as u32)
}

/// Clicks by (page, bin), in page and bin order.
pub fn click_bins(events: &[SessionEvent]) -> Vec<ClickBin> {
    let mut bins: BTreeMap<(String, u8, u32), ClickBin> = BTreeMap::new();
    for e in events {
        let (EventKind::Click, Some(click), Some(page)) = (e.kind, &e.click, &e.page) else {
            continue;
        };
        let page = page_of(page);
        let (x_bin, y_bin) = bin(click.x, click.y);
        let b = bins
            .entry((page.to_owned(), x_bin, y_bin))
            .or_insert_with(|| ClickBin {
                page: page.to_owned(),
                x_bin,
                y_bin,
                ..ClickBin::default()
            });
        b.clicks += 1;
        b.rage_clicks += u32::from(click.rage);
        b.dead_clicks += u32::from(click.dead);
    }
    bins.into_values().collect()
}

/// Every page view with the deepest point reached on it. A scroll depth belongs to the
/// latest view of its page; one with no view of its page before it (the view was in the
/// session before) counts as a view of its own.
pub fn page_scrolls(events: &[SessionEvent]) -> Vec<PageScroll> {
    let mut views: Vec<PageScroll> = Vec::new();
    for e in events {
        let Some(page) = e.page.as_deref().map(page_of) else {
            continue;
        };
        let new_view = |views: &mut Vec<PageScroll>| {
            views.push(PageScroll {
                page: page.to_owned(),
                view: views.len() as u32,
                depth: 0,
            });
        };
        match (e.kind, e.scroll_depth) {
            (EventKind::PageView, _) => new_view(&mut views),
            (EventKind::Scroll, Some(depth)) => {
                if !views.iter().any(|v| v.page == page) {
                    new_view(&mut views);
                }
                let view = views
                    .iter_mut()
                    .rev()
                    .find(|v| v.page == page)
                    .expect("a view of the page was just ensured");
                view.depth = view.depth.max(depth.clamp(0, 100) as u8);
            }
            _ => {}
        }
    }
    views
}

/// Errors by (page, message, source), in that order.
pub fn session_errors(events: &[SessionEvent]) -> Vec<SessionError> {
    let mut errors: BTreeMap<(String, String, String), SessionError> = BTreeMap::new();
    for e in events {
        let (EventKind::JsError, Some(error), Some(page)) = (e.kind, &e.error, &e.page) else {
            continue;
        };
        let page = page_of(page);
        let key = (page.to_owned(), error.message.clone(), error.source.clone());
        let row = errors.entry(key).or_insert_with(|| SessionError {
            page: page.to_owned(),
            message: error.message.clone(),
            source: error.source.clone(),
            errors: 0,
            first_error_ms: e.event_time_ms,
        });
        row.errors += 1;
    }
    errors.into_values().collect()
}

#[cfg(test)]
mod tests;
