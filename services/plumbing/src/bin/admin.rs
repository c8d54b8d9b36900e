//! `exatom-admin`: the operator's tool for what no service does on its own.
//!
//! - `topics`: create the topic chain with its partitions and retention configs;
//! - `migrate`: apply the ClickHouse migrations the server has not seen;
//! - `retention`: remove rows past 90 days on servers without TTL;
//! - `render-ddl modern|legacy`: print the rendered migrations (for review, or to run elsewhere).

use anyhow::{bail, Context};
use exatom_core::config::{self, Endpoints};
use exatom_plumbing::kafka;
use exatom_plumbing::warehouse::{self, ServerVersion, Warehouse};
use serde::Deserialize;

#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(default)]
struct AdminConfig {
    #[serde(flatten)]
    endpoints: Endpoints,
    topic_partitions: i32,
    topic_replication: i32,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            endpoints: Endpoints::default(),
            topic_partitions: 3,
            topic_replication: 1,
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
                "dropped {} partitions: {:?}; deleting {} rows of older days",
                report.dropped.len(),
                report.dropped,
                report.rows_deleted
            );
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
        _ => bail!("usage: exatom-admin topics|migrate|retention|render-ddl modern|legacy"),
    }
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
