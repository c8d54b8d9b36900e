//! The aggregator's writes to ClickHouse. Idempotent: every table is a ReplacingMergeTree
//! keyed by session (and form, field or event), and the daily rollups are recomputed from
//! those deduplicated rows rather than added to.

use std::collections::BTreeMap;

use clickhouse::error::Error;
use exatom_plumbing::warehouse::Warehouse;

use crate::encoder::{Rows, Touched};
use crate::rollup::{self, Param, Rollup};

#[derive(Debug)]
pub struct Writer {
    pub warehouse: Warehouse,
}

/// Rollup groups recomputed by one write, by rollup table (for the metrics).
pub type Refreshed = BTreeMap<&'static str, usize>;

impl Writer {
    /// Writes every table, then recomputes the rollup groups the rows touched. Any failure
    /// is returned for the caller to retry the whole set: rewriting a row is harmless, and
    /// a rollup recomputed again from the same rows is the same.
    pub async fn write(&self, rows: &Rows) -> Result<Refreshed, Error> {
        self.warehouse
            .insert_rows("form_sessions", &rows.forms)
            .await?;
        self.warehouse
            .insert_rows("field_interactions", &rows.fields)
            .await?;
        self.warehouse
            .insert_rows("conversions", &rows.conversions)
            .await?;
        self.warehouse
            .insert_rows("tooltip_events", &rows.tooltips)
            .await?;
        self.warehouse
            .insert_rows("click_bins", &rows.click_bins)
            .await?;
        self.warehouse
            .insert_rows("page_scrolls", &rows.scrolls)
            .await?;
        self.warehouse
            .insert_rows("session_errors", &rows.errors)
            .await?;
        self.refresh(&rows.touched).await
    }

    async fn refresh(&self, touched: &Touched) -> Result<Refreshed, Error> {
        let mut refreshed = Refreshed::new();
        let mut conversions = touched.conversions.clone();
        // A conversion may move a transaction's revenue away from a conversion of another
        // day or form (the earliest one counts): recompute those groups too.
        for (site, transactions) in &touched.transactions {
            let sql = rollup::bind(
                "SELECT DISTINCT toUInt16(day), form_key FROM conversions FINAL \
                 WHERE site = {site:String} AND transaction_id IN {ids:Array(String)}",
                &[
                    ("site", Param::Str(site.clone())),
                    ("ids", Param::Strs(transactions.iter().cloned().collect())),
                ],
            )
            .expect("both parameters given");
            let linked: Vec<(u16, String)> = self.query(&sql).fetch_all().await?;
            for (day, form) in linked {
                conversions
                    .entry((site.clone(), day))
                    .or_default()
                    .insert(form);
            }
        }
        // The forms' own rollups last: whoever finds a form by its figures (the console's
        // form page does) finds its fields, conversions and errors already there.
        let work = [
            (rollup::FIELD_DAILY, &touched.forms),
            (rollup::FIELD_SEGMENT_DAILY, &touched.forms),
            (rollup::CONVERSIONS_DAILY, &conversions),
            (rollup::CONVERSION_SEGMENT_DAILY, &conversions),
            (rollup::TOOLTIPS_DAILY, &touched.tooltips),
            (rollup::HEATMAP_DAILY, &touched.clicks),
            (rollup::SCROLL_DAILY, &touched.scrolls),
            (rollup::ERRORS_DAILY, &touched.errors),
            (rollup::FORM_DAILY, &touched.forms),
            (rollup::FORM_SEGMENT_DAILY, &touched.forms),
        ];
        for (rollup, groups) in work {
            for ((site, day), keys) in groups {
                self.recompute(rollup, site, *day, keys).await?;
                *refreshed.entry(rollup.table).or_default() += 1;
            }
        }
        Ok(refreshed)
    }

    async fn recompute(
        &self,
        rollup: Rollup,
        site: &str,
        day: u16,
        keys: &std::collections::BTreeSet<String>,
    ) -> Result<(), Error> {
        if keys.is_empty() {
            return Ok(());
        }
        self.query(&rollup.statement(site, day, keys))
            .execute()
            .await
    }

    /// A query of already rendered SQL: the client reads `?` as its own placeholder, so a
    /// literal one (in a form key) is doubled.
    fn query(&self, sql: &str) -> clickhouse::query::Query {
        self.warehouse.client.query(&sql.replace('?', "??"))
    }
}
