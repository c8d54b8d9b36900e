//! The aggregator: turns closed sessions into form analytics in ClickHouse — views, starts,
//! abandonment by field, hesitation, corrections, returns, errors, and conversions
//! attributed to the form that earned them. `analytics` and `rollup` are pure; the stream
//! loop is `stage`, the writes `writer`.

pub mod analytics;
pub mod config;
pub mod encoder;
pub mod metrics;
pub mod rollup;
pub mod stage;
pub mod writer;

use std::time::Duration;

use exatom_plumbing::consume::{KafkaSource, Settings};
use exatom_plumbing::deleted_sites::DeletedSites;
use exatom_plumbing::kafka::{self, SESSIONS_TOPIC};
use exatom_plumbing::startup::Startup;
use exatom_plumbing::warehouse::Warehouse;

use crate::config::AggregatorConfig;

/// Runs the aggregator until SIGTERM/SIGINT.
pub async fn run(config: AggregatorConfig) -> anyhow::Result<()> {
    let brokers = &config.endpoints.kafka_brokers;
    let registry = exatom_plumbing::telemetry::registry()?;
    let metrics = metrics::AggregatorMetrics::register(&registry)?;
    let startup = Startup::begin(
        registry,
        config.admin_listen,
        kafka::producer(brokers, 10_000)?,
    )
    .await?;
    let warehouse = match startup.warehouse(&(&config.endpoints).into()).await {
        Ok(warehouse) => warehouse,
        Err(fault) => return startup.stop_with(fault).await,
    };
    let retention = spawn_retention(
        warehouse.clone(),
        metrics.clone(),
        config.retention_interval_s,
    );
    let deleted = DeletedSites::follow(warehouse.clone(), startup.shutdown.clone()).await;
    let stage = stage::Aggregate::new(writer::Writer { warehouse }, metrics, deleted);
    let settings = Settings {
        topics: vec![SESSIONS_TOPIC],
        batch_max: config.batch_max,
        idle: Duration::from_millis(500),
        linger: Duration::from_millis(config.batch_linger_ms),
        lag_every: Duration::from_secs(10),
    };
    let source = KafkaSource(kafka::consumer(brokers, &config.group_id)?);
    let result = startup.run(source, stage, settings).await;
    retention.abort();
    result
}

/// Removes rows past 90 days on servers without TTL, and replays past their site's days on
/// every server (`exatom_plumbing::retention`). Harmless
/// to run in every replica.
fn spawn_retention(
    warehouse: Warehouse,
    metrics: metrics::AggregatorMetrics,
    every_s: u64,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match warehouse
                .enforce_retention(chrono::Utc::now().date_naive())
                .await
            {
                Ok(report) => {
                    metrics
                        .partitions_dropped
                        .inc_by(report.dropped.len() as u64);
                    metrics.retention_rows_deleted.inc_by(report.rows_deleted);
                    if !report.dropped.is_empty() || report.rows_deleted > 0 {
                        tracing::info!(
                            partitions = report.dropped.len(),
                            rows = report.rows_deleted,
                            "retention: removed rows older than 90 days"
                        );
                    }
                    if report.replays_expired > 0 {
                        tracing::info!(
                            rows = report.replays_expired,
                            "retention: deleting replays past their site's days"
                        );
                    }
                }
                Err(e) => tracing::warn!(error = %e, "retention task failed; will retry"),
            }
            tokio::time::sleep(Duration::from_secs(every_s.max(60))).await;
        }
    })
}
