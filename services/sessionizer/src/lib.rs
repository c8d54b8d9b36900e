//! The sessionizer: groups each visitor's events into 30-minute sessions, writes every event
//! to ClickHouse as it arrives and every closed session to ClickHouse and `exatom.sessions`.
//! The session rules (`rules`) are pure; Kafka and ClickHouse live in `sink` and `service`.

pub mod config;
pub mod encoder;
pub mod metrics;
pub mod rules;
pub mod service;
pub mod sink;
pub mod stored;

use anyhow::Context;
use exatom_shared::kafka;
use exatom_shared::telemetry::{serve_admin, Readiness, Shutdown};
use exatom_shared::warehouse::Warehouse;
use rdkafka::config::ClientConfig;

use crate::config::SessionizerConfig;

pub async fn run(config: SessionizerConfig) -> anyhow::Result<()> {
    let brokers = &config.endpoints.kafka_brokers;
    let registry = prometheus::Registry::new();
    let metrics = metrics::SessionizerMetrics::register(&registry)?;
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
    let producer = kafka::producer(brokers, 100_000)?;
    // Partition EOF tells the loop when a partition is caught up and may follow the clock.
    let consumer = {
        let mut cfg = ClientConfig::new();
        cfg.set("enable.partition.eof", "true");
        kafka::consumer_with(brokers, &config.group_id, cfg)?
    };
    let pipeline = sink::Pipeline {
        consumer,
        writer: service::Writer {
            warehouse,
            producer: producer.clone(),
            encoder: encoder::SessionEncoder::default(),
        },
        dlq: producer,
        metrics,
        lateness_ms: config.lateness_ms,
        idle_margin_ms: config.idle_margin_ms,
        max_open_sessions: config.max_open_sessions,
        batch_max: config.batch_max,
    };
    tracing::info!("sessionizer consuming exatom.anon");
    let result = pipeline.run(shutdown.clone()).await;
    shutdown.trigger();
    let _ = admin.await;
    result
}
