//! The daily rollups and the SQL that recomputes them. Pure: templates in
//! `schemas/clickhouse/rollups/` rendered with literal parameters.
//!
//! Templates and the query pack write parameters as `{name:Type}`, the syntax of modern
//! ClickHouse's query parameters; the packaged 18.16 server has none, so they are rendered
//! here as escaped literals.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use regex::Regex;

/// One rollup table and the statement that recomputes one (site, day) of it.
#[derive(Debug, Clone, Copy)]
pub struct Rollup {
    pub table: &'static str,
    template: &'static str,
}

macro_rules! rollup {
    ($table:literal) => {
        Rollup {
            table: $table,
            template: include_str!(concat!(
                "../../../schemas/clickhouse/rollups/",
                $table,
                ".sql"
            )),
        }
    };
}

/// Recomputed from `form_sessions` for touched forms.
pub const FORM_DAILY: Rollup = rollup!("form_daily");
/// `FORM_DAILY` per device class, country and browser family.
pub const FORM_SEGMENT_DAILY: Rollup = rollup!("form_segment_daily");
/// Recomputed from `field_interactions` for touched forms.
pub const FIELD_DAILY: Rollup = rollup!("field_daily");
/// `FIELD_DAILY` per device class, country and browser family.
pub const FIELD_SEGMENT_DAILY: Rollup = rollup!("field_segment_daily");
/// Recomputed from `conversions` for touched attributed forms.
pub const CONVERSIONS_DAILY: Rollup = rollup!("conversions_daily");
/// `CONVERSIONS_DAILY` per device class, country and browser family.
pub const CONVERSION_SEGMENT_DAILY: Rollup = rollup!("conversion_segment_daily");
/// Recomputed from `tooltip_events` for touched triggers.
pub const TOOLTIPS_DAILY: Rollup = rollup!("tooltips_daily");
/// Recomputed from `click_bins` for touched pages.
pub const HEATMAP_DAILY: Rollup = rollup!("heatmap_daily");
/// Recomputed from `page_scrolls` for touched pages.
pub const SCROLL_DAILY: Rollup = rollup!("scroll_daily");
/// Recomputed from `session_errors` for touched pages.
pub const ERRORS_DAILY: Rollup = rollup!("errors_daily");

impl Rollup {
    /// The statement recomputing the rows of `site` on `day` for `keys`.
    pub fn statement(&self, site: &str, day: u16, keys: &BTreeSet<String>) -> String {
        bind(
            self.template,
            &[
                ("site", Param::Str(site.to_owned())),
                ("day", Param::Day(day)),
                ("keys", Param::Strs(keys.iter().cloned().collect())),
            ],
        )
        .expect("rollup templates use only site, day and keys")
    }
}

/// A parameter value, rendered as a SQL literal.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Str(String),
    /// Days since 1970-01-01 (ClickHouse's `Date`).
    Day(u16),
    Int(i64),
    /// A list for `IN`, rendered as a tuple; an empty one as `(NULL)`, which matches nothing.
    Strs(Vec<String>),
}

impl Param {
    fn literal(&self) -> String {
        match self {
            Param::Str(s) => quote(s),
            Param::Day(d) => {
                let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
                let day = epoch + chrono::Days::new(u64::from(*d));
                format!("toDate('{}')", day.format("%Y-%m-%d"))
            }
            Param::Int(n) => n.to_string(),
            Param::Strs(list) if list.is_empty() => "(NULL)".to_owned(),
            Param::Strs(list) => {
                let items: Vec<String> = list.iter().map(|s| quote(s)).collect();
                format!("({})", items.join(", "))
            }
        }
    }
}

/// A `{name:Type}` in a template that no parameter was given for.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("the SQL names parameter `{0}`, which was not given: pass it or fix the template")]
pub struct UnboundParameter(pub String);

/// Replaces every `{name:Type}` of `sql` by the literal of the parameter `name`, and drops
/// comment lines (they hold the placeholders' documentation, not SQL).
pub fn bind(sql: &str, params: &[(&str, Param)]) -> Result<String, UnboundParameter> {
    static PLACEHOLDER: OnceLock<Regex> = OnceLock::new();
    let placeholder =
        PLACEHOLDER.get_or_init(|| Regex::new(r"\{(\w+):[^}]+\}").expect("valid regex"));
    let code: Vec<&str> = sql
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect();
    let code = code.join("\n");
    let mut missing = None;
    let rendered = placeholder.replace_all(&code, |c: &regex::Captures| {
        let name = &c[1];
        match params.iter().find(|(n, _)| *n == name) {
            Some((_, value)) => value.literal(),
            None => {
                missing.get_or_insert_with(|| name.to_owned());
                String::new()
            }
        }
    });
    match missing {
        Some(name) => Err(UnboundParameter(name)),
        None => Ok(rendered.trim().trim_end_matches(';').to_owned()),
    }
}

/// A ClickHouse string literal: backslashes and quotes escaped.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_become_escaped_literals() {
        let sql = "-- {site:String} documented\nSELECT {site:String}, {day:Date}, {n:Int64} WHERE k IN {keys:Array(String)}";
        let out = bind(
            sql,
            &[
                ("site", Param::Str("it's\\".into())),
                ("day", Param::Day(20_416)),
                ("n", Param::Int(-3)),
                ("keys", Param::Strs(vec!["a".into(), "b'".into()])),
            ],
        )
        .unwrap();
        assert_eq!(
            out,
            "SELECT 'it\\'s\\\\', toDate('2025-11-24'), -3 WHERE k IN ('a', 'b\\'')"
        );
    }

    #[test]
    fn a_missing_parameter_is_named() {
        assert_eq!(
            bind(
                "SELECT {site:String}, {day:Date}",
                &[("site", Param::Int(1))]
            ),
            Err(UnboundParameter("day".into()))
        );
    }

    #[test]
    fn an_empty_list_matches_nothing_but_stays_valid_sql() {
        let out = bind("x IN {k:Array(String)}", &[("k", Param::Strs(vec![]))]).unwrap();
        assert_eq!(out, "x IN (NULL)");
    }

    #[test]
    fn every_rollup_renders_for_one_site_day_and_its_keys() {
        let keys: BTreeSet<String> = ["signup".to_owned(), String::new()].into();
        for rollup in [
            FORM_DAILY,
            FORM_SEGMENT_DAILY,
            FIELD_DAILY,
            FIELD_SEGMENT_DAILY,
            CONVERSIONS_DAILY,
            CONVERSION_SEGMENT_DAILY,
            TOOLTIPS_DAILY,
            HEATMAP_DAILY,
            SCROLL_DAILY,
            ERRORS_DAILY,
        ] {
            let sql = rollup.statement("SITE", 20_416, &keys);
            assert!(sql.starts_with(&format!("INSERT INTO {}", rollup.table)));
            assert!(sql.contains("site = 'SITE'") && sql.contains("toDate('2025-11-24')"));
            assert!(sql.contains("IN ('', 'signup')"), "{sql}");
            assert!(!sql.contains('{') && !sql.contains("--"), "{sql}");
        }
    }
}
