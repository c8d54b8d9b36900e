//! The anonymizer: the privacy core. Reads `exatom.raw`, replaces identity (IP address and
//! user agent) with a daily visitor id, coarse location and a device class, scrubs free text,
//! and writes `exatom.anon`. Pure logic (`visitor`, `salts`, `scrub`, `transform`) is apart
//! from Kafka (`service`, `sink`).

pub mod config;
pub mod device;
pub mod encoder;
pub mod geo;
pub mod metrics;
pub mod salts;
pub mod scrub;
pub mod service;
pub mod sink;
pub mod transform;
pub mod visitor;

use anyhow::Context;
use exatom_shared::kafka;
use exatom_shared::telemetry::{serve_admin, Readiness, Shutdown};

use crate::config::AnonymizerConfig;

/// Runs the anonymizer until SIGTERM/SIGINT.
pub async fn run(config: AnonymizerConfig) -> anyhow::Result<()> {
    let brokers = &config.endpoints.kafka_brokers;
    service::verify_salts_topic(
        brokers,
        &config.salts_topic,
        config.allow_long_salt_retention,
    )
    .await?;
    let registry = prometheus::Registry::new();
    let metrics = metrics::AnonymizerMetrics::register(&registry)?;
    let geo = match &config.geo_database {
        Some(path) if !path.as_os_str().is_empty() => geo::Geo::open(path)
            .with_context(|| format!("opening geo database {}", path.display()))?,
        _ => {
            tracing::warn!(
                "no geo database configured (EXATOM_GEO_DATABASE): country and region stay empty"
            );
            geo::Geo::none()
        }
    };
    let producer = kafka::producer(brokers, 200_000)?;
    let salts = service::SaltKeeper::start(brokers, &config.salts_topic, producer.clone())?;
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
    readiness.set(true);
    let pipeline = sink::Pipeline {
        consumer: kafka::consumer(brokers, &config.group_id)?,
        producer: producer.clone(),
        salts,
        classifier: device::Classifier::new(config.ua_cache_entries),
        geo,
        scrubber: scrub::Scrubber::new(
            scrub::QueryAllowList::parse(&config.query_allow_list),
            config.scrub_cache_entries,
        ),
        metrics,
        batch_max: config.batch_max,
    };
    tracing::info!("anonymizer consuming exatom.raw");
    let result = pipeline.run(shutdown.clone()).await;
    shutdown.trigger();
    let _ = admin.await;
    result
}
