//! The aggregator: turns closed sessions into form analytics in ClickHouse — views, starts,
//! abandonment by field, hesitation, corrections, returns, errors, and conversions
//! attributed to the form that earned them. `analytics` is pure; I/O is in `sink` and
//! `service`.

pub mod analytics;
pub mod config;
pub mod encoder;
pub mod metrics;
pub mod rollup;
pub mod service;
pub mod sink;

use std::time::Duration;

use anyhow::Context;
use exatom_shared::kafka;
use exatom_shared::telemetry::{serve_admin, Readiness, Shutdown};
use exatom_shared::warehouse::Warehouse;

use crate::config::AggregatorConfig;

pub async fn run(config: AggregatorConfig) -> anyhow::Result<()> {
    let brokers = &config.endpoints.kafka_brokers;
    let registry = prometheus::Registry::new();
    let metrics = metrics::AggregatorMetrics::register(&registry)?;
    let shutdown = Shutdown::on_signals();
    let readiness = Readiness::default();
    let admin = serve_admin(
        config.admin_listen,
        registry,
        readiness.clone(),
        shutdown.wait(),
    )
    .await
    .with_context(|| format!("binding {}", config.admin_listen))?;
    let connection = (&config.endpoints).into();
    let warehouse = exatom_shared::retry::until_ok(
        "clickhouse connect",
        &shutdown,
        || {},
        || Warehouse::connect(&connection),
    )
    .await?;
    readiness.set(true);
    let retention = spawn_retention(
        warehouse.clone(),
        metrics.clone(),
        config.retention_interval_s,
    );
    let pipeline = sink::Pipeline {
        consumer: kafka::consumer(brokers, &config.group_id)?,
        writer: service::Writer { warehouse },
        dlq: kafka::producer(brokers, 10_000)?,
        metrics,
        batch_max: config.batch_max,
    };
    tracing::info!("aggregator consuming exatom.sessions");
    let result = pipeline.run(shutdown.clone()).await;
    retention.abort();
    shutdown.trigger();
    let _ = admin.await;
    result
}

/// On servers without TTL, removes rows past 90 days (`exatom_shared::retention`). Harmless
/// to run in every replica.
fn spawn_retention(
    warehouse: Warehouse,
    metrics: metrics::AggregatorMetrics,
    every_s: u64,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if warehouse.version.has_ttl() {
            return;
        }
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
                }
                Err(e) => tracing::warn!(error = %e, "retention task failed; will retry"),
            }
            tokio::time::sleep(Duration::from_secs(every_s.max(60))).await;
        }
    })
}
