//! Sites that left: the marks `exatom-admin delete-site` writes to `deleted_sites`, read by
//! the stages so that records of such a site still in the topics never become rows again,
//! and the deletion of a site's rows from every table.
//!
//! Order of a deletion (`exatom-admin delete-site`): mark the site, take it out of the
//! registry (the collector answers 403 from its next reload), wait until every stage has
//! read the mark ([`REFRESH_EVERY`] twice), then delete its rows. A mark covers every record
//! of the site, whenever received: a collector elsewhere that still has the old registry
//! cannot bring the site back.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::retention::{EVENT_DATA, REPORTING_DATA};
use crate::telemetry::Shutdown;
use crate::warehouse::Warehouse;

/// How often the stages read the marks.
pub const REFRESH_EVERY: Duration = Duration::from_secs(10);

/// The deleted sites a stage knows of.
#[derive(Debug, Clone, Default)]
pub struct DeletedSites {
    sites: Arc<RwLock<HashSet<String>>>,
}

impl DeletedSites {
    /// Whether `site` was deleted: its records are dropped.
    pub fn contains(&self, site: &str) -> bool {
        self.sites.read().map(|s| s.contains(site)).unwrap_or(false)
    }

    fn replace(&self, sites: HashSet<String>) {
        if let Ok(mut current) = self.sites.write() {
            *current = sites;
        }
    }

    /// Reads the marks now, then every [`REFRESH_EVERY`] until shutdown. A failed read
    /// keeps the last list (ClickHouse away is the stage's own retry's to report).
    pub async fn follow(warehouse: Warehouse, shutdown: Shutdown) -> Self {
        let deleted = DeletedSites::default();
        if let Ok(sites) = read_marks(&warehouse).await {
            deleted.replace(sites);
        }
        let follower = deleted.clone();
        tokio::spawn(async move {
            while !shutdown.is_triggered() {
                tokio::select! {
                    () = tokio::time::sleep(REFRESH_EVERY) => {}
                    () = shutdown.wait() => break,
                }
                match read_marks(&warehouse).await {
                    Ok(sites) => follower.replace(sites),
                    Err(e) => tracing::warn!(error = %e, "reading deleted_sites"),
                }
            }
        });
        deleted
    }
}

async fn read_marks(warehouse: &Warehouse) -> Result<HashSet<String>, clickhouse::error::Error> {
    let sites: Vec<String> = warehouse
        .client
        .query("SELECT DISTINCT site FROM deleted_sites")
        .fetch_all()
        .await?;
    Ok(sites.into_iter().collect())
}

/// Rows of a site removed from one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    pub table: &'static str,
    pub rows: u64,
}

impl Warehouse {
    /// Marks `site` deleted (again: marking twice is harmless).
    pub async fn mark_deleted(&self, site: &str) -> Result<(), clickhouse::error::Error> {
        self.client
            .query("INSERT INTO deleted_sites (site, deleted_at_ms) VALUES (?, ?)")
            .bind(site)
            .bind(exatom_core::time::now_ms())
            .execute()
            .await
    }

    /// Deletes every row of `site` from every table of event and reporting data, and waits
    /// until the deletions are done (on 18.16 a deletion is a mutation that rewrites parts
    /// in the background). Tables without a row of the site are not touched, so a second run
    /// finds nothing and changes nothing.
    pub async fn delete_site_rows(
        &self,
        site: &str,
        mut progress: impl FnMut(&str),
    ) -> Result<Vec<Removed>, clickhouse::error::Error> {
        let mut removed = Vec::new();
        for table in EVENT_DATA.iter().chain(REPORTING_DATA) {
            let rows = self.site_rows(table, site).await?;
            if rows == 0 {
                continue;
            }
            let target = self.storage_of(table).1;
            self.client
                .query(&format!("ALTER TABLE {target} DELETE WHERE site = ?"))
                .bind(site)
                .execute()
                .await?;
            removed.push(Removed { table, rows });
        }
        let mut waited = Duration::ZERO;
        loop {
            let running: Vec<String> = self
                .client
                .query(&format!(
                    "SELECT DISTINCT table FROM {} WHERE database = ? AND is_done = 0",
                    self.system_table("mutations")
                ))
                .bind(&self.database)
                .fetch_all()
                .await?;
            let ours: Vec<&String> = running
                .iter()
                .filter(|t| removed.iter().any(|r| self.storage_of(r.table).0 == **t))
                .collect();
            if ours.is_empty() {
                break;
            }
            if !waited.is_zero() && waited.as_millis().is_multiple_of(30_000) {
                progress(&format!("still deleting from {ours:?}"));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            waited += Duration::from_millis(500);
        }
        Ok(removed)
    }

    /// Rows of `site` in `table`.
    pub async fn site_rows(
        &self,
        table: &str,
        site: &str,
    ) -> Result<u64, clickhouse::error::Error> {
        self.client
            .query(&format!("SELECT count() FROM {table} WHERE site = ?"))
            .bind(site)
            .fetch_one()
            .await
    }
}
