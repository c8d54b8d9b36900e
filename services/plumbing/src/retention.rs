//! Two retention classes (README, "Retention"), and the 90-day retention on servers without
//! `TTL` (the packaged 18.16): old partitions of event data are dropped whole, and the month
//! that straddles the cutoff loses its older days.
//!
//! **Event data** — every row with a visitor, a session, or a visitor's segment (device
//! class, country, browser) in it — is kept 90 days. **Reporting data** — daily figures per
//! site, form and field, with none of those in them — is kept while the site is a customer
//! and removed with it (`exatom-admin delete-site`). Segment rollups are event data: a
//! segment of a handful of sessions on one day could single out a visitor to someone who
//! knows their country and browser, so segments are not kept past the 90 days.
//!
//! Every table is partitioned by its `day` column, by day (event and session tables) or by
//! month (`toYYYYMM(day)`, the dashboard rollups: a year of one form then opens 12 parts, not
//! 365). A test in `warehouse` holds every migration to that rule.

use chrono::{Datelike, NaiveDate};

use crate::warehouse::{Warehouse, RETENTION_DAYS};

/// Event data: kept 90 days (TTL on modern servers, the retention task on 18.16).
pub const EVENT_DATA: &[&str] = &[
    "events",
    "sessions",
    "form_sessions",
    "field_interactions",
    "conversions",
    "tooltip_events",
    "form_segment_daily",
    "field_segment_daily",
    "conversion_segment_daily",
    "tooltips_daily",
    "click_bins",
    "page_scrolls",
    "session_errors",
    "heatmap_daily",
    "scroll_daily",
    "errors_daily",
    "replay_batches",
];

/// Reporting data: kept while the site is a customer.
pub const REPORTING_DATA: &[&str] = &["form_daily", "field_daily", "conversions_daily"];

/// The pipeline's own bookkeeping: the migration ledger and the deleted sites' marks (a site
/// code and a time, nothing of the site's data).
pub const BOOKKEEPING: &[&str] = &["schema_migrations", "deleted_sites"];

/// What the retention task does with one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Every row is past the retention: `ALTER TABLE … DROP PARTITION <literal>`.
    Drop(String),
    /// A month holding days on both sides of the cutoff: delete the rows before it.
    DeleteOlderDays,
}

/// The first day kept on `today`.
pub fn cutoff(today: NaiveDate) -> NaiveDate {
    today - chrono::Days::new(u64::from(RETENTION_DAYS))
}

/// Plans one partition, given as `system.parts.partition` shows it (`'2026-08-16'` for a
/// daily partition, `202608` for a monthly one). Anything else is left alone.
pub fn plan(partition: &str, cutoff: NaiveDate) -> Option<Step> {
    let daily = partition.trim_matches('\'');
    if let Ok(day) = NaiveDate::parse_from_str(daily, "%Y-%m-%d") {
        return (day < cutoff).then(|| Step::Drop(format!("'{daily}'")));
    }
    if partition.len() != 6 || !partition.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let month: u32 = partition.parse().ok()?;
    let first = NaiveDate::from_ymd_opt((month / 100) as i32, month % 100, 1)?;
    let next = first.checked_add_months(chrono::Months::new(1))?;
    if next <= cutoff {
        Some(Step::Drop(partition.to_owned()))
    } else if first < cutoff {
        Some(Step::DeleteOlderDays)
    } else {
        None
    }
}

/// What one pass of the retention task did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// `(table, partition)` pairs dropped whole.
    pub dropped: Vec<(String, String)>,
    /// Rows deleted from straddling months (the deletion itself finishes in the background).
    pub rows_deleted: u64,
    /// Replay batches past their site's `replay_days`, being deleted.
    pub replays_expired: u64,
}

impl Warehouse {
    /// Applies the retention to event data on servers without `TTL` (modern servers apply
    /// their TTL), and on every server deletes the replays past their site's days. Reporting data and bookkeeping are never touched. Safe to run
    /// in every replica at once: dropping a partition that is gone does nothing, and a month
    /// whose deletion is still running is not asked again.
    pub async fn enforce_retention(
        &self,
        today: NaiveDate,
    ) -> Result<Report, clickhouse::error::Error> {
        let mut report = Report {
            replays_expired: self.expire_replays(today).await?,
            ..Report::default()
        };
        if self.version.has_ttl() {
            return Ok(report);
        }
        let cutoff = cutoff(today);
        // On a cluster, every shard's parts (one replica of each answers).
        let stored: Vec<String> = EVENT_DATA.iter().map(|t| self.storage_of(t).0).collect();
        let parts: Vec<(String, String)> = self
            .client
            .query(&format!(
                "SELECT DISTINCT table, partition FROM {} \
                 WHERE database = ? AND active AND has(?, table)",
                self.system_table("parts")
            ))
            .bind(&self.database)
            .bind(&stored)
            .fetch_all()
            .await?;
        for (stored_table, partition) in parts {
            let table = stored_table
                .strip_suffix("_local")
                .filter(|_| self.cluster.is_some())
                .unwrap_or(&stored_table)
                .to_owned();
            match plan(&partition, cutoff) {
                Some(Step::Drop(literal)) => {
                    let target = self.storage_of(&table).1;
                    self.client
                        .query(&format!("ALTER TABLE {target} DROP PARTITION {literal}"))
                        .execute()
                        .await?;
                    report.dropped.push((table, partition));
                }
                Some(Step::DeleteOlderDays) => {
                    report.rows_deleted += self.delete_older_days(&table, cutoff).await?;
                }
                None => {}
            }
        }
        Ok(report)
    }

    /// Deletes the replay batches whose `expires` has come (a site keeping replays fewer
    /// days than the 90 of the table's TTL). A mutation, asked again only once the last one
    /// is done. Returns how many rows that is.
    async fn expire_replays(&self, today: NaiveDate) -> Result<u64, clickhouse::error::Error> {
        let (stored, target) = self.storage_of("replay_batches");
        if self.mutations_running(&stored).await? {
            return Ok(0);
        }
        // A row without an expiry (the Date default, 1970-01-01) has only the 90 days.
        let expired = format!(
            "expires <= toDate('{}') AND expires > toDate('1970-01-01')",
            today.format("%Y-%m-%d")
        );
        let rows: u64 = self
            .client
            .query(&format!(
                "SELECT count() FROM replay_batches WHERE {expired}"
            ))
            .fetch_one()
            .await?;
        if rows > 0 {
            self.client
                .query(&format!("ALTER TABLE {target} DELETE WHERE {expired}"))
                .execute()
                .await?;
        }
        Ok(rows)
    }

    async fn mutations_running(&self, stored: &str) -> Result<bool, clickhouse::error::Error> {
        let running: u64 = self
            .client
            .query(&format!(
                "SELECT count() FROM {} WHERE database = ? AND table = ? AND is_done = 0",
                self.system_table("mutations")
            ))
            .bind(&self.database)
            .bind(stored)
            .fetch_one()
            .await?;
        Ok(running > 0)
    }

    /// Deletes the rows before `cutoff` (a mutation: 18.16 rewrites the table's parts in the
    /// background). Returns how many rows that is.
    async fn delete_older_days(
        &self,
        table: &str,
        cutoff: NaiveDate,
    ) -> Result<u64, clickhouse::error::Error> {
        let (stored, target) = self.storage_of(table);
        if self.mutations_running(&stored).await? {
            return Ok(0);
        }
        let before = format!("toDate('{}')", cutoff.format("%Y-%m-%d"));
        let rows: u64 = self
            .client
            .query(&format!(
                "SELECT count() FROM {table} WHERE toYYYYMM(day) = {} AND day < {before}",
                cutoff.year() * 100 + cutoff.month() as i32
            ))
            .fetch_one()
            .await?;
        if rows > 0 {
            self.client
                .query(&format!("ALTER TABLE {target} DELETE WHERE day < {before}"))
                .execute()
                .await?;
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn the_cutoff_keeps_ninety_days_before_today() {
        assert_eq!(cutoff(day("2026-11-24")), day("2026-08-26"));
    }

    #[test]
    fn daily_partitions_before_the_cutoff_are_dropped() {
        let cutoff = day("2026-08-26");
        assert_eq!(
            plan("'2026-08-25'", cutoff),
            Some(Step::Drop("'2026-08-25'".into()))
        );
        assert_eq!(plan("'2026-08-26'", cutoff), None);
        assert_eq!(plan("'2026-11-24'", cutoff), None);
    }

    #[test]
    fn months_are_dropped_whole_only_when_their_last_day_is_past() {
        let cutoff = day("2026-08-26");
        assert_eq!(plan("202607", cutoff), Some(Step::Drop("202607".into())));
        assert_eq!(plan("202512", cutoff), Some(Step::Drop("202512".into())));
        assert_eq!(plan("202608", cutoff), Some(Step::DeleteOlderDays));
        assert_eq!(plan("202609", cutoff), None);
        // A cutoff on the first of a month: the month before goes whole, nothing straddles.
        let first = day("2026-09-01");
        assert_eq!(plan("202608", first), Some(Step::Drop("202608".into())));
        assert_eq!(plan("202609", first), None);
        // The last day of a month as cutoff: that month keeps one day.
        assert_eq!(
            plan("202608", day("2026-08-31")),
            Some(Step::DeleteOlderDays)
        );
    }

    #[test]
    fn anything_else_is_left_alone() {
        let cutoff = day("2026-08-26");
        for partition in [
            "tuple()",
            "",
            "2026",
            "202613",
            "20260",
            "'yesterday'",
            "2026-08",
        ] {
            assert_eq!(plan(partition, cutoff), None, "{partition}");
        }
    }
}
