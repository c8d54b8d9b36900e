//! The anonymizer: the privacy core. Reads `exatom.raw`, replaces identity (IP address and
//! user agent) with a daily visitor id, coarse location and a device class, scrubs free text,
//! and writes `exatom.anon`. Beside it, session replay's loop (`replay`): `exatom.replay`
//! through a second scrub pass into ClickHouse. Pure logic (`visitor`, `salts`, `scrub`, `transform`) is apart
//! from Kafka (`service`, `sink`).

pub mod config;
pub mod device;
pub mod encoder;
pub mod geo;
pub mod metrics;
pub mod replay;
pub mod salts;
pub mod scrub;
pub mod stage;
pub mod transactions;
pub mod transform;
pub mod visitor;
pub mod writer;

use std::time::Duration;

use anyhow::Context;
use exatom_plumbing::consume::{KafkaSource, Settings};
use exatom_plumbing::fault::{Cause, Fault};
use exatom_plumbing::kafka::{self, RAW_TOPIC, REPLAY_TOPIC};
use exatom_plumbing::retry;
use exatom_plumbing::startup::Startup;
use exatom_plumbing::warehouse::{Connection, Warehouse};

use crate::config::AnonymizerConfig;

/// Runs the anonymizer until SIGTERM/SIGINT.
pub async fn run(config: AnonymizerConfig) -> anyhow::Result<()> {
    let brokers = &config.endpoints.kafka_brokers;
    let transactions = transactions::TransactionKeys::load(config.transaction_key_file.as_deref())?;
    let registry = exatom_plumbing::telemetry::registry()?;
    let metrics = metrics::AnonymizerMetrics::register(&registry)?;
    let geo = match &config.geo_database {
        Some(path) if !path.as_os_str().is_empty() => geo::Geo::open(path).with_context(|| {
            format!(
                "opening geo database {} (EXATOM_GEO_DATABASE)",
                path.display()
            )
        })?,
        _ => {
            tracing::warn!(
                "no geo database configured (EXATOM_GEO_DATABASE): country and region stay empty"
            );
            geo::Geo::none()
        }
    };
    let producer = kafka::producer(brokers, 200_000)?;
    let startup = Startup::begin(registry, config.admin_listen, producer.clone()).await?;
    // A broker that is not there yet is waited for (unready meanwhile); a salts topic that
    // breaks the privacy promise stops the start.
    startup
        .readiness
        .set_unready("reading the salts topic's configuration from the broker");
    let verdict = retry::until_ok(
        "salts topic configuration",
        &startup.shutdown,
        startup.metrics.on_retry("kafka"),
        || async {
            match salts::verify_salts_topic(
                brokers,
                &config.salts_topic,
                config.allow_long_salt_retention,
            )
            .await
            {
                Err(salts::StartError::Unreadable(e)) => {
                    Err(Fault::retriable(Cause::Unreachable, e))
                }
                verdict => Ok(verdict),
            }
        },
    )
    .await?;
    if let Err(refused) = verdict {
        metrics.salts_topic_misconfigured.set(1);
        let fault = Fault::Deployment {
            what: "the salts topic would keep salts past the privacy promise".into(),
            fix: refused.to_string(),
        };
        return startup.stop_with(fault).await;
    }
    let salts = salts::SaltKeeper::start(brokers, &config.salts_topic, producer.clone())?;
    tokio::spawn(salts::watch::watch(
        salts.clone(),
        salts::watch::SaltsTopic {
            brokers: brokers.clone(),
            topic: config.salts_topic.clone(),
            allow_long: config.allow_long_salt_retention,
        },
        metrics.clone(),
        startup.shutdown.clone(),
    ));
    let stage = stage::Anonymize::new(
        salts,
        device::Classifier::new(config.ua_cache_entries),
        geo,
        scrub::Scrubber::new(
            scrub::QueryAllowList::parse(&config.query_allow_list),
            config.scrub_cache_entries,
        ),
        metrics.clone(),
        writer::Writer {
            producer,
            records_out: metrics.records_out.clone(),
        },
        transactions,
    );
    let source = KafkaSource(kafka::consumer(brokers, &config.group_id)?);
    let settings = Settings {
        topics: vec![RAW_TOPIC],
        batch_max: config.batch_max,
        idle: Duration::from_millis(500),
        linger: Duration::from_millis(config.batch_linger_ms),
        lag_every: Duration::from_secs(10),
    };
    let replay = replay_loop(&config, &startup)?;
    startup.run_beside(source, stage, settings, replay).await
}

/// The replay loop (`replay`): its own consumer group (`<group id>.replay`), started once
/// ClickHouse answers; events do not wait for it.
fn replay_loop(
    config: &AnonymizerConfig,
    startup: &Startup,
) -> anyhow::Result<
    impl std::future::Future<Output = Result<(KafkaSource, replay::StoreReplays, Settings), Fault>>,
> {
    let brokers = &config.endpoints.kafka_brokers;
    let source = KafkaSource(kafka::consumer(
        brokers,
        &format!("{}.replay", config.group_id),
    )?);
    let metrics = replay::ReplayMetrics::register(&startup.registry)?;
    let allow = scrub::QueryAllowList::parse(&config.query_allow_list);
    let connection: Connection = (&config.endpoints).into();
    let (shutdown, consumer_metrics) = (startup.shutdown.clone(), startup.metrics.clone());
    Ok(async move {
        let warehouse = retry::until_ok(
            "clickhouse connect",
            &shutdown,
            consumer_metrics.on_retry("clickhouse"),
            || Warehouse::connect_checked(&connection),
        )
        .await?;
        let settings = Settings {
            topics: vec![REPLAY_TOPIC],
            // Batches of up to 4 MiB each: a few per insert.
            batch_max: 50,
            idle: Duration::from_millis(500),
            linger: Duration::from_millis(200),
            lag_every: Duration::from_secs(10),
        };
        Ok((
            source,
            replay::StoreReplays::new(warehouse, allow, metrics),
            settings,
        ))
    })
}
