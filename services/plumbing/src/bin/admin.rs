//! `exatom-admin`: the operator's tool for what no service does on its own.
//!
//! - `topics`: create the topic chain with its partitions and retention configs;
//! - `migrate`: apply the ClickHouse migrations the server has not seen;
//! - `retention`: remove event data past 90 days on servers without TTL;
//! - `delete-site CODE`: a site leaves: out of the registry, every row of it deleted, its
//!   records still in the topics dropped by the stages;
//! - `retention-classes`: print every table with how long its rows are kept;
//! - `render-ddl modern|legacy`: print the rendered migrations (for review, or to run elsewhere).

use anyhow::{bail, Context};
use exatom_core::config::{self, Endpoints};
use exatom_plumbing::warehouse::{self, ServerVersion, Warehouse};
use exatom_plumbing::{deleted_sites, kafka, retention};
use serde::Deserialize;

#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(default)]
struct AdminConfig {
    #[serde(flatten)]
    endpoints: Endpoints,
    topic_partitions: i32,
    topic_replication: i32,
    /// The registry `delete-site` takes a site out of (the collector's `EXATOM_SITES_FILE`).
    sites_file: std::path::PathBuf,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            endpoints: Endpoints::default(),
            topic_partitions: 3,
            topic_replication: 1,
            sites_file: std::path::PathBuf::from("deploy/local/sites.toml"),
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    exatom_plumbing::telemetry::init_logging();
    let cfg: AdminConfig = config::load()?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("topics") => {
            let layout = kafka::topic_layout(cfg.topic_partitions, cfg.topic_replication);
            kafka::ensure_topics(&cfg.endpoints.kafka_brokers, &layout)
                .await
                .with_context(|| format!("creating topics on {}", cfg.endpoints.kafka_brokers))?;
            for spec in layout {
                println!("topic {} ({} partitions)", spec.name, spec.partitions);
            }
        }
        Some("migrate") => {
            let wh = Warehouse::connect(&(&cfg.endpoints).into())
                .await
                .with_context(|| format!("connecting to {}", cfg.endpoints.clickhouse_url))?;
            let applied = wh.migrate().await.context("applying migrations")?;
            println!(
                "clickhouse {}.{}: applied {:?} (ttl: {})",
                wh.version.major,
                wh.version.minor,
                applied,
                wh.version.has_ttl()
            );
        }
        Some("retention") => {
            let wh = Warehouse::connect(&(&cfg.endpoints).into()).await?;
            let report = wh
                .enforce_retention(chrono::Utc::now().date_naive())
                .await?;
            println!(
                "dropped {} partitions: {:?}; deleting {} rows of older days; deleting {} replay batches past their site's days",
                report.dropped.len(),
                report.dropped,
                report.rows_deleted,
                report.replays_expired
            );
        }
        Some("delete-site") => {
            let Some(site) = args.get(1) else {
                bail!("usage: exatom-admin delete-site CODE");
            };
            delete_site(&cfg, site).await?;
        }
        Some("retention-classes") => {
            for (class, tables) in [
                ("event_data", retention::EVENT_DATA),
                ("reporting_data", retention::REPORTING_DATA),
                ("bookkeeping", retention::BOOKKEEPING),
            ] {
                for table in tables {
                    println!("{class}\t{table}");
                }
            }
        }
        Some("render-ddl") => {
            let version = match args.get(1).map(String::as_str) {
                Some("modern") => ServerVersion {
                    major: 25,
                    minor: 1,
                },
                Some("legacy") => ServerVersion {
                    major: 18,
                    minor: 16,
                },
                _ => bail!("usage: exatom-admin render-ddl modern|legacy"),
            };
            for migration in warehouse::MIGRATIONS {
                for statement in warehouse::render(migration.sql, version) {
                    println!("{statement};\n");
                }
            }
        }
        _ => bail!(
            "usage: exatom-admin topics|migrate|retention|delete-site CODE|retention-classes|render-ddl modern|legacy"
        ),
    }
    Ok(())
}

/// A site leaves. Each step can run again: a second run finds the site marked, out of the
/// registry and without rows, and says so.
async fn delete_site(cfg: &AdminConfig, site: &str) -> anyhow::Result<()> {
    if !exatom_edge::batch::valid_site_code(site) {
        bail!("`{site}` is not a site code ([A-Za-z0-9_-]{{2,32}})");
    }
    let wh = Warehouse::connect(&(&cfg.endpoints).into())
        .await
        .with_context(|| format!("connecting to {}", cfg.endpoints.clickhouse_url))?;
    // Marked first: from the stages' next read of the marks, nothing of the site is written.
    wh.mark_deleted(site)
        .await
        .context("marking the site deleted (is the database migrated? `exatom-admin migrate`)")?;
    println!(
        "{site}: marked deleted; the stages drop its records from their next read of the marks"
    );
    let registry = &cfg.sites_file;
    match exatom_edge::sites::remove_site(registry, site) {
        Ok(true) => println!(
            "{site}: removed from the registry {} (collectors answer 403 for it once they reload it)",
            registry.display()
        ),
        Ok(false) => println!("{site}: not in the registry {}", registry.display()),
        Err(e) => bail!("{e} (EXATOM_SITES_FILE)"),
    }
    let wait = deleted_sites::REFRESH_EVERY * 2 + std::time::Duration::from_secs(1);
    println!(
        "waiting {} s for every stage to read the mark",
        wait.as_secs()
    );
    tokio::time::sleep(wait).await;
    let removed = wh
        .delete_site_rows(site, |news| println!("{news}"))
        .await
        .context("deleting the site's rows")?;
    for r in &removed {
        println!("  {}: {} rows deleted", r.table, r.rows);
    }
    // What a deletion left would be a bug: say it, and fail.
    let mut left = Vec::new();
    for table in retention::EVENT_DATA
        .iter()
        .chain(retention::REPORTING_DATA)
    {
        let rows = wh.site_rows(table, site).await?;
        if rows > 0 {
            left.push(format!("{table}: {rows}"));
        }
    }
    if !left.is_empty() {
        bail!(
            "{site}: rows remain after the deletion ({}); run delete-site again",
            left.join(", ")
        );
    }
    println!(
        "{site}: deleted, {} rows from {} tables; no row of it remains",
        removed.iter().map(|r| r.rows).sum::<u64>(),
        removed.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_setting_is_in_the_list_of_settings() {
        assert_eq!(
            exatom_core::config::struct_keys::<super::AdminConfig>(),
            exatom_core::config::keys_of("admin")
        );
    }
}
