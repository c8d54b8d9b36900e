//! The sessionizer: groups each visitor's events into 30-minute sessions, writes every event
//! to ClickHouse as it arrives and every closed session to ClickHouse and `exatom.sessions`.
//! The session rules (`rules`) and a closed session's assembly (`stored`) are pure; the
//! stream loop is `stage`, the writes `writer`.

pub mod config;
pub mod encoder;
pub mod metrics;
pub mod rules;
pub mod stage;
pub mod stored;
pub mod writer;

use std::time::Duration;

use exatom_plumbing::consume::{KafkaSource, Settings};
use exatom_plumbing::deleted_sites::DeletedSites;
use exatom_plumbing::kafka::{self, ANON_TOPIC};
use exatom_plumbing::startup::Startup;
use rdkafka::config::ClientConfig;

use crate::config::SessionizerConfig;

/// Runs the sessionizer until SIGTERM/SIGINT.
pub async fn run(config: SessionizerConfig) -> anyhow::Result<()> {
    let brokers = &config.endpoints.kafka_brokers;
    let registry = exatom_plumbing::telemetry::registry()?;
    let metrics = metrics::SessionizerMetrics::register(&registry)?;
    let producer = kafka::producer(brokers, 100_000)?;
    let startup = Startup::begin(registry, config.admin_listen, producer.clone()).await?;
    let warehouse = match startup.warehouse(&(&config.endpoints).into()).await {
        Ok(warehouse) => warehouse,
        Err(fault) => return startup.stop_with(fault).await,
    };
    // Partition EOF tells the stage when a partition is caught up and may follow the clock.
    let consumer = {
        let mut cfg = ClientConfig::new();
        cfg.set("enable.partition.eof", "true");
        kafka::consumer_with(brokers, &config.group_id, cfg)?
    };
    let deleted = DeletedSites::follow(warehouse.clone(), startup.shutdown.clone()).await;
    let stage = stage::Sessionize::new(
        writer::Writer {
            warehouse,
            producer,
            encoder: encoder::SessionEncoder::default(),
        },
        metrics,
        config.lateness_ms,
        config.idle_margin_ms,
        config.max_open_sessions,
    )
    .dropping(deleted);
    let settings = Settings {
        topics: vec![ANON_TOPIC],
        batch_max: config.batch_max,
        idle: Duration::from_millis(500),
        linger: Duration::from_millis(config.batch_linger_ms),
        lag_every: Duration::from_secs(10),
    };
    startup.run(KafkaSource(consumer), stage, settings).await
}
