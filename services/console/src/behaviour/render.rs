//! The behaviour pages' pictures, drawn on the server as SVG so that they read without
//! JavaScript, and with presentation attributes rather than `style` (the console's policy
//! allows no inline style): the click heatmap over its page, and the scroll depth bars.
//! Pure.

use std::fmt::Write;

use serde_json::Value;

use crate::encoder::{text, Table};
use crate::pages::{escape, path_segment};

/// A heatmap bin is 2 % of the document's width (50 columns) ...
pub const BIN_WIDTH_PERCENT: u64 = 2;
/// ... by 25 CSS pixels of its height (the aggregator's bins).
pub const BIN_HEIGHT_PX: u64 = 25;
/// Below the lowest click, room for the rest of the page.
pub const FRAME_MARGIN_PX: u64 = 200;
/// The tallest page drawn: a click recorded far down (a page of endless scrolling, or a tag
/// sending nonsense) must not make a frame the browser cannot lay out. Bins below are in
/// the table only.
pub const MAX_FRAME_HEIGHT_PX: u64 = 100_000;
/// The faintest and the strongest fill of a bin: the faintest still seen, the strongest
/// still showing the page under it.
const OPACITY: (f64, f64) = (0.1, 0.85);

/// The width a device class's pages are shown at (CSS pixels), and the style class that
/// gives the heatmap that width. Classes other than mobile and tablet are shown as desktop.
pub fn layout(device: &str) -> (&'static str, u32) {
    match device {
        "mobile" => ("heatmap-mobile", 390),
        "tablet" => ("heatmap-tablet", 768),
        _ => ("heatmap-desktop", 1280),
    }
}

/// The one origin a page may frame: set on the heatmap's answer, whose security policy
/// then allows it as a frame source (and no other).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameSource {
    origin: String,
}

impl FrameSource {
    /// `scheme://host[:port]`, as a policy's source expression.
    pub fn origin(&self) -> &str {
        &self.origin
    }
}

/// A page the heatmap may show behind its clicks: where the frame loads it from, and the
/// origin the answer must allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FramedPage {
    pub src: String,
    pub source: FrameSource,
}

/// The page to frame for a heatmap's page key, when it is an http or https URL with a host
/// and no credentials; anything else (`javascript:`, `data:`, `file:`, a bare path, text
/// a tag made up) is drawn without its page.
pub fn framed_page(page: &str) -> Option<FramedPage> {
    let url = url::Url::parse(page).ok()?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none_or(str::is_empty)
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return None;
    }
    let origin = url.origin().ascii_serialization();
    // What a policy's source expression may hold: a serialized tuple origin always fits,
    // but nothing request-borne reaches the header unchecked.
    let fits = |c: char| c.is_ascii_alphanumeric() || ".-:/[]".contains(c);
    if origin == "null" || !origin.chars().all(fits) {
        return None;
    }
    Some(FramedPage {
        src: url.to_string(),
        source: FrameSource { origin },
    })
}

/// One bin of a heatmap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bin {
    pub x_bin: u64,
    pub y_bin: u64,
    pub clicks: u64,
    pub rage_clicks: u64,
    pub dead_clicks: u64,
}

/// The bins of a heatmap table (`x_bin, y_bin, clicks, rage_clicks, dead_clicks`).
pub fn bins(table: &Table) -> Vec<Bin> {
    let at = |row: &[Value], name: &str| {
        table
            .column(name)
            .and_then(|i| row.get(i))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    table
        .rows
        .iter()
        .map(|r| Bin {
            x_bin: at(r, "x_bin"),
            y_bin: at(r, "y_bin"),
            clicks: at(r, "clicks"),
            rage_clicks: at(r, "rage_clicks"),
            dead_clicks: at(r, "dead_clicks"),
        })
        .collect()
}

/// The frame's height: down to the lowest bin clicked, and some room below it.
pub fn frame_height(bins: &[Bin]) -> u64 {
    let lowest = bins.iter().map(|b| b.y_bin).max().unwrap_or(0);
    lowest
        .saturating_add(1)
        .saturating_mul(BIN_HEIGHT_PX)
        .saturating_add(FRAME_MARGIN_PX)
        .min(MAX_FRAME_HEIGHT_PX)
}

/// How strongly a bin is filled: in proportion to its clicks against the busiest bin's.
pub fn opacity(clicks: u64, max: u64) -> f64 {
    if max == 0 || clicks == 0 {
        return 0.0;
    }
    let share = (clicks as f64 / max as f64).min(1.0);
    OPACITY.0 + (OPACITY.1 - OPACITY.0) * share
}

/// The clicks as an SVG the size of the frame: a filled rectangle per bin clicked, a red
/// outline on bins with rage clicks, a dashed grey cross on bins with dead clicks. It takes
/// no pointer events, so the page under it scrolls and reads as usual.
pub fn overlay(bins: &[Bin], width: u32, height: u64) -> String {
    let max = bins.iter().map(|b| b.clicks).max().unwrap_or(0);
    let shown: Vec<&Bin> = bins
        .iter()
        .filter(|b| {
            b.y_bin.saturating_mul(BIN_HEIGHT_PX) < height && b.x_bin < 100 / BIN_WIDTH_PERCENT
        })
        .collect();
    let mut out = format!(
        "<svg class=\"clicks\" width=\"{width}\" height=\"{height}\" pointer-events=\"none\" aria-hidden=\"true\">"
    );
    let place = |b: &Bin| (b.x_bin * BIN_WIDTH_PERCENT, b.y_bin * BIN_HEIGHT_PX);
    // Fills first, so that every marker is drawn over them.
    for b in shown.iter().filter(|b| b.clicks > 0) {
        let (x, y) = place(b);
        let _ = write!(
            out,
            "<rect class=\"bin\" x=\"{x}%\" y=\"{y}\" width=\"{BIN_WIDTH_PERCENT}%\" height=\"{BIN_HEIGHT_PX}\" fill=\"#dd6b20\" opacity=\"{:.3}\"/>",
            opacity(b.clicks, max)
        );
    }
    for b in shown.iter().filter(|b| b.rage_clicks > 0) {
        let (x, y) = place(b);
        let _ = write!(
            out,
            "<rect class=\"rage\" x=\"{x}%\" y=\"{y}\" width=\"{BIN_WIDTH_PERCENT}%\" height=\"{BIN_HEIGHT_PX}\" fill=\"none\" stroke=\"#c53030\" stroke-width=\"2\"/>"
        );
    }
    for b in shown.iter().filter(|b| b.dead_clicks > 0) {
        let (x, y) = place(b);
        let (right, bottom) = (x + BIN_WIDTH_PERCENT, y + BIN_HEIGHT_PX);
        let _ = write!(
            out,
            "<g class=\"dead\" stroke=\"#4a5568\" stroke-width=\"1.5\" stroke-dasharray=\"3 2\">\
             <line x1=\"{x}%\" y1=\"{y}\" x2=\"{right}%\" y2=\"{bottom}\"/>\
             <line x1=\"{right}%\" y1=\"{y}\" x2=\"{x}%\" y2=\"{bottom}\"/></g>"
        );
    }
    out.push_str("</svg>");
    out
}

/// The heatmap of one page for one device class: the live page in a sandboxed frame of the
/// class's width, the clicks drawn over it, in a box that scrolls.
pub fn heatmap(page: &str, device: &str, bins: &[Bin]) -> String {
    let (class, width) = layout(device);
    let height = frame_height(bins);
    let svg = overlay(bins, width, height);
    let Some(framed) = framed_page(page) else {
        return format!(
            "<p class=\"note\">This page's address is not an http or https URL: its clicks are drawn without the page behind them.</p>\
             <div class=\"heatmap-scroll\"><div class=\"heatmap {class}\">{svg}</div></div>"
        );
    };
    // `sandbox=""`, the strictest: no scripts, no forms, no pop-ups, no navigating the
    // console, and an origin of its own (none of the site's cookies or storage). Without
    // its scripts the page shows its static layout, which is what click positions are
    // measured against; a page built by scripts shows little, and one that refuses to be
    // framed shows nothing, the clicks still drawn.
    format!(
        "<div class=\"heatmap-scroll\"><div class=\"heatmap framed {class}\">\
         <iframe src=\"{src}\" width=\"{width}\" height=\"{height}\" scrolling=\"no\" sandbox=\"\" \
         referrerpolicy=\"no-referrer\" tabindex=\"-1\" title=\"{title}\"></iframe>{svg}</div></div>",
        src = escape(&framed.src),
        title = escape(&format!("The page {page}, as it is now")),
    )
}

/// What the heatmap's marks mean.
pub fn legend() -> String {
    let swatch =
        |inner: &str| format!("<svg width=\"24\" height=\"16\" aria-hidden=\"true\">{inner}</svg>");
    format!(
        "<ul class=\"legend\">\
         <li>{} {} clicks: the more, the stronger</li>\
         <li>{} rage clicks (quick repeated clicks in one place)</li>\
         <li>{} dead clicks (on nothing that responds)</li></ul>",
        swatch("<rect x=\"0\" y=\"2\" width=\"11\" height=\"12\" fill=\"#dd6b20\" opacity=\"0.2\"/>"),
        swatch("<rect x=\"12\" y=\"2\" width=\"11\" height=\"12\" fill=\"#dd6b20\" opacity=\"0.85\"/>"),
        swatch("<rect x=\"2\" y=\"2\" width=\"20\" height=\"12\" fill=\"none\" stroke=\"#c53030\" stroke-width=\"2\"/>"),
        swatch("<g stroke=\"#4a5568\" stroke-width=\"1.5\" stroke-dasharray=\"3 2\"><line x1=\"2\" y1=\"2\" x2=\"22\" y2=\"14\"/><line x1=\"22\" y1=\"2\" x2=\"2\" y2=\"14\"/></g>"),
    )
}

/// The depths a page's scroll bars show, by the scroll table's rate columns.
pub const DEPTHS: [(&str, &str); 4] = [
    ("25 %", "reached_25_rate"),
    ("50 %", "reached_50_rate"),
    ("75 %", "reached_75_rate"),
    ("100 %", "reached_100_rate"),
];
/// The length of a bar for all the views.
const BAR_PX: f64 = 260.0;
const BAR_LEFT_PX: f64 = 48.0;
const ROW_PX: u32 = 20;

/// One page's share of views reaching 25, 50, 75 and 100 %, as horizontal bars.
pub fn depth_bars(rates: [f64; 4]) -> String {
    let height = ROW_PX * 4;
    let total = BAR_LEFT_PX + BAR_PX + 64.0;
    let mut out = format!(
        "<svg class=\"depth\" width=\"{total}\" height=\"{height}\" viewBox=\"0 0 {total} {height}\" role=\"img\" aria-label=\"{}\">",
        DEPTHS
            .iter()
            .zip(rates)
            .map(|((depth, _), rate)| format!("{depth}: {}", percent(rate)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for (i, ((depth, _), rate)) in DEPTHS.iter().zip(rates).enumerate() {
        let top = i as u32 * ROW_PX;
        let (bar_top, text_y) = (top + 3, top + 15);
        let length = BAR_PX * share(rate);
        let _ = write!(
            out,
            "<text x=\"0\" y=\"{text_y}\">{depth}</text>\
             <rect class=\"track\" x=\"{BAR_LEFT_PX}\" y=\"{bar_top}\" width=\"{BAR_PX}\" height=\"14\" fill=\"#e2e8f0\"/>\
             <rect class=\"bar\" x=\"{BAR_LEFT_PX}\" y=\"{bar_top}\" width=\"{length:.1}\" height=\"14\" fill=\"#2b6cb0\"/>\
             <text x=\"{}\" y=\"{text_y}\">{}</text>",
            BAR_LEFT_PX + BAR_PX + 6.0,
            percent(rate),
        );
    }
    out.push_str("</svg>");
    out
}

/// A rate as the bars draw it: 0 to 1 (nothing for a rate that is not a number).
fn share(rate: f64) -> f64 {
    if rate.is_nan() {
        0.0
    } else {
        rate.clamp(0.0, 1.0)
    }
}

fn percent(rate: f64) -> String {
    format!("{:.1} %", share(rate) * 100.0)
}

/// The scroll depth bars of every row of the scroll table: the page, its device class and
/// views above each page's bars.
pub fn depth_figures(scroll: &Table) -> String {
    if scroll.rows.is_empty() {
        return "<p class=\"empty\">No page views with a scroll depth in this range.</p>".into();
    }
    let cell = |row: &[Value], name: &str| {
        scroll
            .column(name)
            .and_then(|i| row.get(i))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let mut out = String::from("<div class=\"depths\">");
    for row in &scroll.rows {
        let rates = DEPTHS.map(|(_, column)| cell(row, column).as_f64().unwrap_or(0.0));
        let _ = write!(
            out,
            "<figure class=\"depth\"><figcaption><span class=\"page\">{}</span> · {} · {} views</figcaption>{}</figure>",
            escape(&text(&cell(row, "page"))),
            escape(&text(&cell(row, "device_class"))),
            escape(&text(&cell(row, "views"))),
            depth_bars(rates)
        );
    }
    out.push_str("</div>");
    out
}

/// The forms the sessions that hit an error abandoned (`[{"form", "sessions"}]`), each a
/// link to its form's page over the same range.
pub fn forms_links(site: &str, forms: &Value, query: &str) -> String {
    let Some(forms) = forms.as_array().filter(|f| !f.is_empty()) else {
        return String::new();
    };
    let links: Vec<String> = forms
        .iter()
        .map(|f| {
            let form = text(&f["form"]);
            let href = format!(
                "/sites/{}/forms/{}?{query}",
                path_segment(site),
                path_segment(&form)
            );
            format!(
                "<a href=\"{}\">{}</a> ({})",
                escape(&href),
                escape(&form),
                escape(&text(&f["sessions"]))
            )
        })
        .collect();
    format!("<span class=\"forms\">{}</span>", links.join("<br>"))
}
