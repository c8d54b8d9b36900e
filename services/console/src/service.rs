//! The console's reads from ClickHouse: each page's queries, from `.sql` files (the query
//! pack's own where one answers the page, `sql/` beside this file otherwise), every value a
//! bound parameter. `{name:Type}` placeholders become the client's `?` binds, which it
//! escapes, so no request text is ever part of the SQL.

use std::collections::HashMap;

use chrono::NaiveDate;
use exatom_plumbing::warehouse::Warehouse;
use serde_json::Value;

use crate::encoder::{text, Table};
use crate::request::{Range, Segment};
use crate::session::SessionKey;

const FORM_FUNNEL: &str = include_str!("../../../schemas/clickhouse/queries/form_funnel.sql");
const ATTRIBUTION: &str =
    include_str!("../../../schemas/clickhouse/queries/conversion_attribution.sql");
const FORM_TREND: &str = include_str!("../../../schemas/clickhouse/queries/trends_daily.sql");
const FORM_DAYS: &str = include_str!("sql/form_days.sql");
const CURRENCIES: &str = include_str!("sql/conversion_currencies.sql");
const FIELDS: &str = include_str!("sql/fields.sql");
const FIELD_ORDER: &str = include_str!("sql/field_order.sql");
const FORM_SEGMENTS: &str = include_str!("sql/form_segments.sql");
const TRENDS: &str = include_str!("sql/trends.sql");
const TOOLTIPS: &str = include_str!("sql/tooltips.sql");
const LIVE_EVENTS: &str = include_str!("sql/live_events.sql");
const LIVE_FORMS: &str = include_str!("sql/live_forms.sql");

/// The columns of `form_funnel` (the query pack's), which the form page's funnel repeats.
const FUNNEL_COLUMNS: [&str; 9] = [
    "form",
    "views",
    "starts",
    "submits",
    "conversions",
    "page_abandoners",
    "initial_abandoners",
    "start_rate",
    "conversion_rate",
];

/// A query with its placeholders turned into ordered binds.
#[derive(Debug, Clone, PartialEq)]
pub struct Sql {
    pub text: String,
    pub params: Vec<String>,
}

impl Sql {
    /// Drops `--` comment lines, doubles any literal `?` (the client's escape) and turns
    /// each `{name:Type}` into `?`.
    pub fn prepare(source: &str) -> Sql {
        let body: Vec<&str> = source
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect();
        let body = body.join("\n").replace('?', "??");
        let mut text = String::with_capacity(body.len());
        let mut params = Vec::new();
        let mut rest = body.as_str();
        while let Some(open) = rest.find('{') {
            let Some(close) = rest[open..].find('}') else {
                break;
            };
            let inner = &rest[open + 1..open + close];
            match inner.split_once(':') {
                Some((name, _type))
                    if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
                {
                    text.push_str(&rest[..open]);
                    text.push('?');
                    params.push(name.to_owned());
                }
                _ => text.push_str(&rest[..=open + close]),
            }
            rest = &rest[open + close + 1..];
        }
        text.push_str(rest);
        Sql { text, params }
    }
}

/// A bound value.
#[derive(Debug, Clone)]
pub enum Arg {
    Text(String),
    Int(i64),
}

/// ClickHouse could not answer: the page says the figures are unavailable (503).
#[derive(Debug, thiserror::Error)]
#[error("ClickHouse did not answer the `{query}` query: {detail}")]
pub struct Unavailable {
    pub query: &'static str,
    pub detail: String,
}

/// One form's page.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FormDetail {
    pub funnel: Table,
    pub fields: Table,
    pub segments: Table,
    pub days: Table,
}

#[derive(Clone)]
pub struct Figures {
    warehouse: Warehouse,
    query_seconds: prometheus::HistogramVec,
    /// Set when each console user reads as a ClickHouse user of its own (`grants`).
    site_users: Option<SessionKey>,
    /// The console user the figures are read for.
    viewer: String,
}

impl std::fmt::Debug for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Figures")
            .field("warehouse", &self.warehouse)
            .finish_non_exhaustive()
    }
}

impl Figures {
    pub fn new(
        warehouse: Warehouse,
        query_seconds: prometheus::HistogramVec,
        site_users: Option<SessionKey>,
    ) -> Self {
        Figures {
            warehouse,
            query_seconds,
            site_users,
            viewer: String::new(),
        }
    }

    /// The same figures, read for console user `name`.
    pub fn for_viewer(&self, name: &str) -> Figures {
        Figures {
            viewer: name.to_owned(),
            ..self.clone()
        }
    }

    /// The client that reads `site` for the viewer: the viewer's ClickHouse user on the
    /// site's database when site users are on, the console's account otherwise.
    fn client(&self, site: &str) -> clickhouse::Client {
        match &self.site_users {
            Some(key) => self
                .warehouse
                .read_only
                .clone()
                .with_user(crate::grants::reader_user(
                    &self.warehouse.database,
                    &self.viewer,
                ))
                .with_password(crate::grants::reader_password(key, &self.viewer))
                .with_database(crate::grants::site_database(&self.warehouse.database, site)),
            None => self.warehouse.client.clone(),
        }
    }

    /// Runs one query for `site` (bound as `site` where the query asks for it).
    pub(crate) async fn table(
        &self,
        name: &'static str,
        source: &str,
        args: &[(&str, Arg)],
    ) -> Result<Table, Unavailable> {
        let sql = Sql::prepare(source);
        let args: HashMap<&str, &Arg> = args.iter().map(|(k, v)| (*k, v)).collect();
        let site = match args.get("site") {
            Some(Arg::Text(site)) => site.as_str(),
            _ => unreachable!("every console query is for one site"),
        };
        let mut query = self
            .client(site)
            .query(&format!("{}\nFORMAT JSONCompact", sql.text));
        // A site user's profile sets it (readonly users may not).
        if self.site_users.is_none() {
            query = query.with_option("output_format_json_quote_64bit_integers", "0");
        }
        for param in &sql.params {
            query = match args.get(param.as_str()) {
                Some(Arg::Text(v)) => query.bind(v.as_str()),
                Some(Arg::Int(v)) => query.bind(*v),
                None => unreachable!("query `{name}` binds `{param}`, which the console sets"),
            };
        }
        let timer = self.query_seconds.with_label_values(&[name]).start_timer();
        let unavailable = |detail: String| Unavailable {
            query: name,
            detail,
        };
        let bytes = query
            .fetch_bytes("JSONCompact")
            .map_err(|e| unavailable(e.to_string()))?
            .collect()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        timer.observe_duration();
        Table::from_json_compact(&String::from_utf8_lossy(&bytes)).map_err(unavailable)
    }

    pub(crate) fn site_range(site: &str, range: &Range) -> Vec<(&'static str, Arg)> {
        vec![
            ("site", Arg::Text(site.to_owned())),
            ("from", Arg::Text(range.from.to_string())),
            ("to", Arg::Text(range.to.to_string())),
        ]
    }

    /// One row per form: the funnel, the attributed revenue, and its views per day.
    pub async fn forms(&self, site: &str, range: &Range) -> Result<(Table, Table), Unavailable> {
        let args = Self::site_range(site, range);
        let (funnel, revenue, days) = tokio::try_join!(
            self.table("form_funnel", FORM_FUNNEL, &args),
            self.table("conversion_attribution", ATTRIBUTION, &args),
            self.table("form_days", FORM_DAYS, &args),
        )?;
        let mut forms = if funnel.columns.is_empty() {
            Table::empty(&FUNNEL_COLUMNS)
        } else {
            funnel
        };
        let by_form: HashMap<String, Value> = revenue
            .column("revenue")
            .map(|r| {
                revenue
                    .rows
                    .iter()
                    .map(|row| (text(&row[0]), row[r].clone()))
                    .collect()
            })
            .unwrap_or_default();
        forms.columns.push("revenue".into());
        for row in &mut forms.rows {
            let revenue = by_form
                .get(&text(&row[0]))
                .cloned()
                .unwrap_or(Value::from(0));
            row.push(revenue);
        }
        Ok((forms, days))
    }

    /// One form: its funnel row, its fields, its funnel per segment and per day. `None`
    /// when the site has no figures for the form in the range.
    pub async fn form(
        &self,
        site: &str,
        form: &str,
        range: &Range,
        segment: Segment,
    ) -> Result<Option<FormDetail>, Unavailable> {
        let mut args = Self::site_range(site, range);
        args.push(("form", Arg::Text(form.to_owned())));
        let segments_sql = FORM_SEGMENTS.replace("SEGMENT", segment.column());
        let order_args = [
            ("site", Arg::Text(site.to_owned())),
            ("form", Arg::Text(form.to_owned())),
            ("to", Arg::Text(range.to.to_string())),
            (
                "since",
                Arg::Text(
                    range
                        .from
                        .max(range.to - chrono::Duration::days(6))
                        .to_string(),
                ),
            ),
        ];
        let (mut fields, positions, segments, days) = tokio::try_join!(
            self.table("fields", FIELDS, &args),
            self.table("field_order", FIELD_ORDER, &order_args),
            self.table("form_segments", &segments_sql, &args),
            self.table("trends_daily", FORM_TREND, &args),
        )?;
        if days.rows.is_empty() {
            return Ok(None);
        }
        in_page_order(&mut fields, &positions);
        Ok(Some(FormDetail {
            funnel: funnel_of(form, &days),
            fields,
            segments,
            days,
        }))
    }

    /// Per attributed form, and per form and currency.
    pub async fn conversions(
        &self,
        site: &str,
        range: &Range,
    ) -> Result<(Table, Table), Unavailable> {
        let args = Self::site_range(site, range);
        tokio::try_join!(
            self.table("conversion_attribution", ATTRIBUTION, &args),
            self.table("conversion_currencies", CURRENCIES, &args),
        )
    }

    /// Per day of the range (days without figures as zeros).
    pub async fn trends(&self, site: &str, range: &Range) -> Result<Table, Unavailable> {
        let found = self
            .table("trends", TRENDS, &Self::site_range(site, range))
            .await?;
        let columns = [
            "day",
            "sessions",
            "visitors",
            "pageviews",
            "starts",
            "conversions",
        ];
        let by_day: HashMap<String, &Vec<Value>> =
            found.rows.iter().map(|r| (text(&r[0]), r)).collect();
        let mut table = Table::empty(&columns);
        for day in range.days() {
            let day = day.to_string();
            let row = match by_day.get(&day) {
                Some(row) => (*row).clone(),
                None => std::iter::once(Value::from(day))
                    .chain(std::iter::repeat_n(Value::from(0), columns.len() - 1))
                    .collect(),
            };
            table.rows.push(row);
        }
        Ok(table)
    }

    pub async fn tooltips(&self, site: &str, range: &Range) -> Result<Table, Unavailable> {
        self.table("tooltips", TOOLTIPS, &Self::site_range(site, range))
            .await
    }

    /// The site's events of the last `minutes`, and today's provisional form figures.
    pub async fn live(
        &self,
        site: &str,
        now_ms: i64,
        minutes: u32,
        today: NaiveDate,
    ) -> Result<(Table, Table), Unavailable> {
        let since_ms = now_ms - i64::from(minutes) * 60_000;
        let events_args = [
            ("site", Arg::Text(site.to_owned())),
            ("since_ms", Arg::Int(since_ms)),
            (
                "day_from",
                Arg::Text((today - chrono::Duration::days(1)).to_string()),
            ),
        ];
        let forms_args = [
            ("site", Arg::Text(site.to_owned())),
            ("day", Arg::Text(today.to_string())),
        ];
        tokio::try_join!(
            self.table("live_events", LIVE_EVENTS, &events_args),
            self.table("live_forms", LIVE_FORMS, &forms_args),
        )
    }
}

/// Puts a form's fields in the order of its page: those with a known position by it, the
/// others after them as they came (most interactions first).
pub fn in_page_order(fields: &mut Table, positions: &Table) {
    let place: HashMap<String, i64> = positions
        .rows
        .iter()
        .filter_map(|r| Some((text(r.first()?), r.get(1)?.as_i64()?)))
        .collect();
    // A stable sort: fields without a position keep the query's order among themselves.
    fields.rows.sort_by_key(|r| {
        r.first()
            .and_then(|f| place.get(&text(f)).copied())
            .unwrap_or(i64::MAX)
    });
}

/// A form's funnel over a range, summed from its days (what `form_funnel` answers for
/// every form, for one form without reading the others).
pub fn funnel_of(form: &str, days: &Table) -> Table {
    let total = |name: &str| -> f64 {
        days.column(name).map_or(0.0, |i| {
            days.rows.iter().map(|r| r[i].as_f64().unwrap_or(0.0)).sum()
        })
    };
    let (views, starts, submits, conversions) = (
        total("views"),
        total("starts"),
        total("submits"),
        total("conversions"),
    );
    let rate = |n: f64, d: f64| {
        if d == 0.0 {
            0.0
        } else {
            (n / d * 10_000.0).round() / 10_000.0
        }
    };
    let whole = |x: f64| Value::from(x as i64);
    let mut table = Table::empty(&FUNNEL_COLUMNS);
    table.columns.push("revenue".into());
    table.rows.push(vec![
        Value::from(form),
        whole(views),
        whole(starts),
        whole(submits),
        whole(conversions),
        whole(views - starts),
        whole(starts - conversions),
        Value::from(rate(starts, views)),
        Value::from(rate(conversions, starts)),
        Value::from(total("revenue")),
    ]);
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_follow_their_page_and_the_unplaced_keep_their_order_after() {
        let mut fields = Table::from_json_lines(
            "{\"field\":\"notes\",\"interactions\":9}\n{\"field\":\"email\",\"interactions\":7}\n\
             {\"field\":\"legacy\",\"interactions\":5}\n{\"field\":\"name\",\"interactions\":3}\n\
             {\"field\":\"old\",\"interactions\":1}",
        )
        .unwrap();
        let positions = Table::from_json_lines(
            "{\"field\":\"name\",\"position\":0}\n{\"field\":\"email\",\"position\":1}\n{\"field\":\"notes\",\"position\":4}",
        )
        .unwrap();
        in_page_order(&mut fields, &positions);
        let order: Vec<String> = fields.rows.iter().map(|r| text(&r[0])).collect();
        assert_eq!(order, ["name", "email", "notes", "legacy", "old"]);
    }

    #[test]
    fn a_funnel_sums_its_days_and_its_rates_follow_form_funnel() {
        let days = Table::from_json_lines(
            "{\"day\":\"2026-12-01\",\"views\":10,\"starts\":4,\"submits\":3,\"conversions\":2,\"revenue\":10.5}\n\
             {\"day\":\"2026-12-02\",\"views\":5,\"starts\":2,\"submits\":1,\"conversions\":1,\"revenue\":0}",
        )
        .unwrap();
        let funnel = funnel_of("signup", &days);
        assert_eq!(
            serde_json::to_value(&funnel.rows[0]).unwrap(),
            serde_json::json!(["signup", 15, 6, 4, 3, 9, 3, 0.4, 0.5, 10.5])
        );
        let none = funnel_of("x", &Table::empty(&["day", "views"]));
        assert_eq!(none.rows[0][7], Value::from(0.0));
    }

    #[test]
    fn placeholders_become_ordered_binds_and_comments_go() {
        let sql = Sql::prepare(
            "-- Parameters: {site:String}\nSELECT '?' FROM t\nWHERE site = {site:String} AND day >= {from:Date} AND x IN {keys:Array(String)}",
        );
        assert_eq!(sql.params, ["site", "from", "keys"]);
        assert_eq!(
            sql.text,
            "SELECT '??' FROM t\nWHERE site = ? AND day >= ? AND x IN ?"
        );
    }

    #[test]
    fn braces_that_are_not_placeholders_stay() {
        let sql = Sql::prepare("SELECT {not a param} , {x:UInt8}, '{'");
        assert_eq!(sql.text, "SELECT {not a param} , ?, '{'");
        assert_eq!(sql.params, ["x"]);
    }

    #[test]
    fn every_query_of_the_console_binds_only_what_it_sets() {
        let set = [
            "site", "from", "to", "form", "since_ms", "day_from", "day", "since",
        ];
        for source in [
            FORM_FUNNEL,
            ATTRIBUTION,
            CURRENCIES,
            FORM_TREND,
            FORM_DAYS,
            FIELDS,
            FIELD_ORDER,
            FORM_SEGMENTS,
            TRENDS,
            TOOLTIPS,
            LIVE_EVENTS,
            LIVE_FORMS,
        ] {
            let sql = Sql::prepare(source);
            assert!(!sql.params.is_empty());
            for p in &sql.params {
                assert!(set.contains(&p.as_str()), "{p} in {source}");
            }
        }
    }
}
