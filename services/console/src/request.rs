//! What a page asks for, checked before any query: the date range, the form, the page and
//! device class of a heatmap. A bad
//! parameter is a 400 naming it. Values reach ClickHouse only as bound parameters; these
//! checks keep the ranges and sizes sane, not the SQL safe. Pure.

use chrono::{Duration, NaiveDate};
use serde::Deserialize;

/// The query string every page and API call takes (unknown keys are ignored).
#[derive(Debug, Default, Deserialize)]
pub struct Params {
    pub from: Option<String>,
    pub to: Option<String>,
    pub segment: Option<String>,
    pub format: Option<String>,
    /// The page (URL) a heatmap is of.
    pub page: Option<String>,
    /// The device class a heatmap is for.
    pub device: Option<String>,
}

/// A parameter the console cannot answer for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadRequest(pub String);

/// Days `from..=to`, UTC (the contract's `day`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl Range {
    /// The range a page asked for: by default the 30 days ending `today`.
    pub fn parse(
        from: Option<&str>,
        to: Option<&str>,
        today: NaiveDate,
        max_days: u32,
    ) -> Result<Range, BadRequest> {
        let to = match to.filter(|t| !t.is_empty()) {
            Some(t) => date("to", t)?,
            None => today,
        };
        let from = match from.filter(|f| !f.is_empty()) {
            Some(f) => date("from", f)?,
            None => to - Duration::days(29),
        };
        if from > to {
            return Err(BadRequest(format!(
                "`from` ({from}) is after `to` ({to}): swap them"
            )));
        }
        let days = (to - from).num_days() + 1;
        if days > i64::from(max_days) {
            return Err(BadRequest(format!(
                "the range has {days} days; at most {max_days} may be asked for at once"
            )));
        }
        Ok(Range { from, to })
    }

    pub fn days(&self) -> impl Iterator<Item = NaiveDate> {
        let to = self.to;
        self.from.iter_days().take_while(move |d| *d <= to)
    }
}

fn date(name: &str, text: &str) -> Result<NaiveDate, BadRequest> {
    let bad = || BadRequest(format!("`{name}` must be a date as YYYY-MM-DD"));
    if text.len() != 10 {
        return Err(bad());
    }
    let day = NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| bad())?;
    // ClickHouse's Date ends in 2105 (and 18.16's began in 1970).
    if !(1970..=2105).contains(&chrono::Datelike::year(&day)) {
        return Err(BadRequest(format!(
            "`{name}` must be between 1970 and 2105"
        )));
    }
    Ok(day)
}

/// A form key as the tags report them: 1 to 200 characters, none of them a control
/// character. Whether the site has such a form is the query's to say.
pub fn form_key(text: &str) -> Result<&str, BadRequest> {
    let chars = text.chars().count();
    if chars == 0 || chars > 200 || text.chars().any(char::is_control) {
        return Err(BadRequest(
            "the form key must be 1 to 200 characters without control characters".into(),
        ));
    }
    Ok(text)
}

/// A page as the rollups key it (a URL without query or fragment): 1 to 2048 characters,
/// none of them a control character. Whether it is a URL a heatmap may frame is the page's
/// to say; whether the site has clicks on it, the query's.
pub fn page_url(text: &str) -> Result<&str, BadRequest> {
    let chars = text.chars().count();
    if chars == 0 || chars > 2048 || text.chars().any(char::is_control) {
        return Err(BadRequest(
            "`page` must be 1 to 2048 characters without control characters".into(),
        ));
    }
    Ok(text)
}

/// A device class as the anonymizer names them (`desktop`, `mobile`, `tablet`, ...): 1 to
/// 32 lower-case letters, digits, `_` or `-`.
pub fn device_class(text: &str) -> Result<&str, BadRequest> {
    let fits = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-';
    if text.is_empty() || text.len() > 32 || !text.chars().all(fits) {
        return Err(BadRequest(
            "`device` must be a device class such as desktop, mobile or tablet".into(),
        ));
    }
    Ok(text)
}

/// Which dimension the form page splits its funnel by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment {
    DeviceClass,
    BrowserFamily,
    Country,
}

impl Segment {
    pub const ALL: [Segment; 3] = [
        Segment::DeviceClass,
        Segment::BrowserFamily,
        Segment::Country,
    ];

    pub fn parse(text: Option<&str>) -> Result<Segment, BadRequest> {
        match text.unwrap_or("device_class") {
            "" | "device_class" => Ok(Segment::DeviceClass),
            "browser_family" => Ok(Segment::BrowserFamily),
            "country" => Ok(Segment::Country),
            _ => Err(BadRequest(
                "`segment` must be device_class, browser_family or country".into(),
            )),
        }
    }

    /// The rollups' column: one of three fixed names, never request text.
    pub fn column(self) -> &'static str {
        match self {
            Segment::DeviceClass => "device_class",
            Segment::BrowserFamily => "browser_family",
            Segment::Country => "country",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Segment::DeviceClass => "Device class",
            Segment::BrowserFamily => "Browser family",
            Segment::Country => "Country",
        }
    }
}

/// How a table is sent: the page's JSON or CSV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
}

impl Format {
    pub fn parse(text: Option<&str>) -> Result<Format, BadRequest> {
        match text.unwrap_or("json") {
            "" | "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            _ => Err(BadRequest("`format` must be json or csv".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn the_default_range_is_the_last_thirty_days() {
        let r = Range::parse(None, None, day("2026-12-02"), 400).unwrap();
        assert_eq!((r.from, r.to), (day("2026-11-03"), day("2026-12-02")));
        assert_eq!(r.days().count(), 30);
        let r = Range::parse(Some(""), Some("2026-01-31"), day("2026-12-02"), 400).unwrap();
        assert_eq!(r.from, day("2026-01-02"));
    }

    #[test]
    fn bad_ranges_are_refused_with_the_reason() {
        let today = day("2026-12-02");
        let err = |f: &str, t: &str| Range::parse(Some(f), Some(t), today, 400).unwrap_err().0;
        assert!(err("2026-12-02", "2026-12-01").contains("after"));
        assert!(err("2020-01-01", "2026-12-01").contains("at most 400"));
        for bad in [
            "2026-13-01",
            "2026-1-1",
            "yesterday",
            "2026-12-01'; DROP",
            "２０２６-12-01",
            "1900-01-01",
        ] {
            assert!(!err(bad, "2026-12-01").is_empty(), "{bad}");
            assert!(!err("2026-12-01", bad).is_empty(), "{bad}");
        }
        assert!(Range::parse(Some("2026-01-01"), Some("2026-01-01"), today, 1).is_ok());
    }

    #[test]
    fn form_keys_are_bounded_and_printable() {
        assert_eq!(form_key("signup"), Ok("signup"));
        assert!(form_key("über-form ✓").is_ok());
        assert!(
            form_key("x' OR 1=1 --").is_ok(),
            "bound, so it is merely a key"
        );
        assert!(form_key("").is_err());
        assert!(form_key(&"x".repeat(201)).is_err());
        assert!(form_key("a\nb").is_err());
        assert!(form_key("a\u{0}b").is_err());
    }

    #[test]
    fn heatmap_pages_and_device_classes_are_bounded() {
        assert_eq!(
            page_url("https://shop.example/cart"),
            Ok("https://shop.example/cart")
        );
        assert!(
            page_url("javascript:alert(1)").is_ok(),
            "a key; never framed"
        );
        assert!(page_url("").is_err());
        assert!(page_url(&"x".repeat(2049)).is_err());
        assert!(page_url("https://a.example/\nb").is_err());
        assert_eq!(device_class("mobile"), Ok("mobile"));
        for bad in ["", "Desktop", "desk top", "x'--", &"a".repeat(33)] {
            assert!(device_class(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn segments_and_formats_are_from_fixed_lists() {
        assert_eq!(Segment::parse(None), Ok(Segment::DeviceClass));
        assert_eq!(Segment::parse(Some("country")).unwrap().column(), "country");
        assert!(Segment::parse(Some("site")).is_err());
        assert!(Segment::parse(Some("country; DROP TABLE x")).is_err());
        assert_eq!(Format::parse(Some("csv")), Ok(Format::Csv));
        assert!(Format::parse(Some("xml")).is_err());
    }
}
