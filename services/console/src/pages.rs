//! The console's HTML: rendered here from the same tables the API sends, so every figure
//! reads without JavaScript; `assets/console.js` adds the charts (uPlot) and sorting.

use std::fmt::Write;

use serde_json::Value;

use crate::encoder::{text, Table};
use crate::request::{Range, Segment};

/// Text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A path segment (site codes, form keys) for a link.
pub fn path_segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// JSON inside `<script type="application/json">`: `<` escaped, so no value ends the script.
fn script_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value)
        .unwrap_or_else(|_| "null".into())
        .replace('<', "\\u003c")
}

/// The pages of one site, for the navigation.
pub const PAGES: [(&str, &str); 9] = [
    ("forms", "Forms"),
    ("conversions", "Conversions"),
    ("trends", "Trends"),
    ("tooltips", "Tooltips"),
    ("heatmap", "Heatmap"),
    ("scroll", "Scroll depth"),
    ("errors", "Errors"),
    ("replays", "Replays"),
    ("live", "Live"),
];

/// What every page of a site shows around its figures.
#[derive(Debug)]
pub struct Frame<'a> {
    pub user: &'a str,
    pub sites: &'a [String],
    pub site: &'a str,
    pub page: &'a str,
    pub range: Option<&'a Range>,
    pub csrf: &'a str,
    /// The path the date form submits to (the page itself).
    pub path: &'a str,
    /// What else the page was asked for, which a new range keeps (the heatmap's page and
    /// device class).
    pub keep: &'a [(&'a str, &'a str)],
}

pub fn document(title: &str, head: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · Exatom</title>\
         <link rel=\"stylesheet\" href=\"/assets/uPlot.min.css\">\
         <link rel=\"stylesheet\" href=\"/assets/console.css\">{head}</head>\
         <body>{body}<script src=\"/assets/uPlot.iife.min.js\"></script>\
         <script src=\"/assets/console.js\"></script></body></html>\n",
        escape(title)
    )
}

pub fn framed(frame: &Frame<'_>, title: &str, head: &str, content: &str) -> String {
    let mut nav = String::new();
    for (page, label) in PAGES {
        let current = if page == frame.page {
            " class=\"current\""
        } else {
            ""
        };
        let _ = write!(
            nav,
            "<a{current} href=\"/sites/{}/{page}\">{label}</a>",
            path_segment(frame.site)
        );
    }
    let mut sites = String::new();
    if frame.sites.len() > 1 {
        sites.push_str("<nav class=\"sites\">");
        for s in frame.sites {
            let current = if s == frame.site {
                " class=\"current\""
            } else {
                ""
            };
            let _ = write!(
                sites,
                "<a{current} href=\"/sites/{}/forms\">{}</a>",
                path_segment(s),
                escape(s)
            );
        }
        sites.push_str("</nav>");
    }
    let range = frame.range.map_or(String::new(), |r| {
        let kept: String = frame
            .keep
            .iter()
            .map(|(name, value)| hidden(name, value))
            .collect();
        format!(
            "<form class=\"range\" method=\"get\" action=\"{}\">{kept}\
             <label>From <input type=\"date\" name=\"from\" value=\"{}\"></label>\
             <label>To <input type=\"date\" name=\"to\" value=\"{}\"></label>\
             <button>Show</button></form>",
            escape(frame.path),
            r.from,
            r.to
        )
    });
    let body = format!(
        "<header><strong>Exatom</strong> <span class=\"site\">{site}</span>\
         <nav>{nav}</nav>\
         <form class=\"logout\" method=\"post\" action=\"/logout\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <span>{user}</span> <button>Log out</button></form></header>{sites}\
         <main><h1>{title}</h1>{range}{content}</main>",
        site = escape(frame.site),
        csrf = escape(frame.csrf),
        user = escape(frame.user),
        title = escape(title),
    );
    document(title, head, &body)
}

/// A form's hidden input.
pub fn hidden(name: &str, value: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
        escape(name),
        escape(value)
    )
}

pub fn login(message: Option<&str>) -> String {
    let message = message.map_or(String::new(), |m| {
        format!("<p class=\"error\" role=\"alert\">{}</p>", escape(m))
    });
    document(
        "Log in",
        "",
        &format!(
            "<main class=\"login\"><h1>Exatom console</h1>{message}\
             <form method=\"post\" action=\"/login\">\
             <label>User <input name=\"user\" autocomplete=\"username\" required maxlength=\"32\"></label>\
             <label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required maxlength=\"1024\"></label>\
             <button>Log in</button></form></main>"
        ),
    )
}

pub fn not_found(message: &str) -> String {
    document(
        "Not found",
        "",
        &format!("<main><h1>Not found</h1><p>{}</p></main>", escape(message)),
    )
}

pub fn bad_request(message: &str) -> String {
    document(
        "Bad request",
        "",
        &format!(
            "<main><h1>Bad request</h1><p class=\"error\">{}</p></main>",
            escape(message)
        ),
    )
}

/// How a cell reads: integers with thin spaces, rates as percentages, floats rounded.
fn cell(column: &str, value: &Value) -> String {
    match value {
        Value::Number(n) if column.ends_with("_rate") => {
            format!("{:.1}%", n.as_f64().unwrap_or(0.0) * 100.0)
        }
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(0.0);
            if column == "revenue" {
                format!("{f:.2}")
            } else {
                format!("{f:.0}")
            }
        }
        other => escape(&text(other)),
    }
}

/// A class for a row (the field most abandoned at), or none.
pub type RowClass<'a> = dyn Fn(&[Value]) -> Option<&'static str> + 'a;
/// A cell of ready HTML made from a row.
pub type RowCell<'a> = dyn Fn(&[Value]) -> String + 'a;

/// What a table adds to its cells: a link on the first column, a class on some rows, a
/// last column of ready HTML (a sparkline).
#[derive(Default)]
pub struct Decor<'a> {
    pub link: Option<&'a dyn Fn(&str) -> String>,
    pub mark: Option<&'a RowClass<'a>>,
    pub extra: Option<(&'a str, &'a RowCell<'a>)>,
    /// How an empty first cell reads (the unattributable conversions' form).
    pub blank: Option<&'a str>,
}

impl std::fmt::Debug for Decor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decor")
            .field("blank", &self.blank)
            .finish_non_exhaustive()
    }
}

/// A table with sortable headers and its CSV link.
pub fn table(id: &str, data: &Table, csv: &str, decor: &Decor<'_>) -> String {
    let mut out = format!(
        "<div class=\"table\"><a class=\"csv\" href=\"{}\">CSV</a><table id=\"{id}\" class=\"sortable\"><thead><tr>",
        escape(csv)
    );
    for c in &data.columns {
        let _ = write!(out, "<th>{}</th>", escape(&c.replace('_', " ")));
    }
    if let Some((name, _)) = decor.extra {
        let _ = write!(out, "<th>{}</th>", escape(name));
    }
    out.push_str("</tr></thead><tbody>");
    if data.rows.is_empty() {
        let _ = write!(
            out,
            "<tr><td colspan=\"{}\" class=\"empty\">No figures in this range.</td></tr>",
            data.columns.len().max(1)
        );
    }
    for row in &data.rows {
        let class = decor
            .mark
            .and_then(|m| m(row))
            .map_or(String::new(), |c| format!(" class=\"{c}\""));
        let _ = write!(out, "<tr{class}>");
        for (i, (column, value)) in data.columns.iter().zip(row).enumerate() {
            let mut shown = cell(column, value);
            if i == 0 && shown.is_empty() {
                shown = escape(decor.blank.unwrap_or(""));
            }
            let sort = escape(&text(value));
            match (i, decor.link) {
                (0, Some(link)) => {
                    let _ = write!(
                        out,
                        "<td data-sort=\"{sort}\"><a href=\"{}\">{shown}</a></td>",
                        escape(&link(&text(value)))
                    );
                }
                _ => {
                    let _ = write!(out, "<td data-sort=\"{sort}\">{shown}</td>");
                }
            }
        }
        if let Some((_, extra)) = decor.extra {
            let _ = write!(out, "<td>{}</td>", extra(row));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>");
    out
}

/// An inline SVG line of `values` (a form's views per day).
pub fn sparkline(values: &[f64]) -> String {
    let max = values.iter().cloned().fold(0.0_f64, f64::max);
    if values.len() < 2 || max <= 0.0 {
        return String::from("<svg class=\"spark\" width=\"120\" height=\"24\"></svg>");
    }
    let step = 120.0 / (values.len() - 1) as f64;
    let points: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{:.1},{:.1}", i as f64 * step, 22.0 - v / max * 20.0))
        .collect();
    format!(
        "<svg class=\"spark\" width=\"120\" height=\"24\" viewBox=\"0 0 120 24\"><polyline fill=\"none\" stroke=\"currentColor\" points=\"{}\"/></svg>",
        points.join(" ")
    )
}

/// A chart `console.js` draws from the JSON beside it.
pub fn chart(id: &str, kind: &str, data: &impl serde::Serialize) -> String {
    format!(
        "<div class=\"chart\" id=\"{id}\" data-kind=\"{kind}\"></div>\
         <script type=\"application/json\" id=\"{id}-data\">{}</script>",
        script_json(data)
    )
}

pub fn segment_links(base: &str, current: Segment) -> String {
    let mut out = String::from("<p class=\"segments\">Split by: ");
    for s in Segment::ALL {
        if s == current {
            let _ = write!(out, "<strong>{}</strong> ", s.label());
        } else {
            let _ = write!(
                out,
                "<a href=\"{}&amp;segment={}\">{}</a> ",
                escape(base),
                s.column(),
                s.label()
            );
        }
    }
    out.push_str("</p>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_keys_is_shown_as_text() {
        let t = Table::from_json_lines(
            "{\"form\":\"<script>alert(1)</script>\",\"views\":3,\"start_rate\":0.25}",
        )
        .unwrap();
        let html = table("t", &t, "/x?format=csv", &Decor::default());
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("&lt;script&gt;") && html.contains("25.0%"));
        let js = script_json(&serde_json::json!({"k": "</script><b>"}));
        assert!(!js.contains("</script>"), "{js}");
    }

    #[test]
    fn links_encode_what_they_carry() {
        assert_eq!(path_segment("a b/c?d"), "a%20b%2Fc%3Fd");
        assert_eq!(escape("\"'&"), "&quot;&#39;&amp;");
    }

    #[test]
    fn a_sparkline_spans_its_width_and_scales_to_its_peak() {
        let svg = sparkline(&[0.0, 5.0, 10.0]);
        assert!(svg.contains("0.0,22.0 60.0,12.0 120.0,2.0"), "{svg}");
        assert!(!sparkline(&[0.0, 0.0]).contains("polyline"));
    }
}
