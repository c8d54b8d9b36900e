//! The edge collector: takes browser batches over HTTP, validates and masks them, and
//! produces them to `exatom.raw`; replay batches go to `exatom.replay` (`replay`). Its pure logic (batch, body, client and site checks) is
//! the `exatom-edge` crate; here are its HTTP handlers (`http`), the accept loop and drain
//! (`server`), the producer to `exatom.raw` (`writer`).

pub mod assets;
pub mod config;
pub mod encoder;
pub mod http;
pub mod metrics;
pub mod replay;
pub mod server;
pub mod writer;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use exatom_plumbing::telemetry::{Readiness, Shutdown};

use crate::config::CollectorConfig;
use crate::http::AppState;
use exatom_edge::client;
use exatom_plumbing::site_registry::SiteRegistry;

/// Runs the collector until SIGTERM/SIGINT, then drains: stops accepting, lets requests in
/// flight finish, and flushes the producer.
pub async fn run(config: CollectorConfig) -> anyhow::Result<()> {
    let registry = exatom_plumbing::telemetry::registry()?;
    let metrics = metrics::CollectorMetrics::register(&registry)?;
    let trusted = client::parse_cidrs(&config.trusted_proxies)
        .map_err(|e| anyhow::anyhow!("EXATOM_TRUSTED_PROXIES: {e}"))?;
    let sites = Arc::new(SiteRegistry::load(&config.sites_file).map_err(anyhow::Error::msg)?);
    tracing::info!(sites = sites.current().sites.len(), "site registry loaded");
    let sink = writer::RawSink::new(
        &config.endpoints.kafka_brokers,
        config.max_queue_events,
        Duration::from_millis(config.delivery_timeout_ms),
        metrics.clone(),
    )?;
    let state = Arc::new(AppState {
        trusted,
        registry: Arc::clone(&sites),
        limiter: Mutex::new(client::RateLimiter::new(
            config.rate_per_second,
            config.rate_burst,
            config.rate_max_clients,
        )),
        sink: sink.clone(),
        replay: replay::Replay::new(
            &config.endpoints.kafka_brokers,
            config.max_queue_replay_batches,
            config.max_replay_requests,
        )?,
        metrics: metrics.clone(),
        config: config.clone(),
    });
    let readiness = Readiness::default();
    let watcher = sink.watch_broker(Duration::from_secs(1), readiness.clone());
    let reloads = metrics.registry_reloads.clone();
    let reloader = sites.watch(move |ok| {
        reloads
            .with_label_values(&[if ok { "ok" } else { "error" }])
            .inc();
    });

    let shutdown = Shutdown::on_signals();
    let app = http::router(Arc::clone(&state), registry, readiness);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    tracing::info!(listen = %config.listen, "collector listening");
    server::serve(listener, app, &config, shutdown.wait()).await;

    watcher.abort();
    reloader.abort();
    sink.flush(Duration::from_secs(10))
        .context("flushing the producer on shutdown")?;
    state
        .replay
        .flush(Duration::from_secs(10))
        .context("flushing the replay producer on shutdown")?;
    tracing::info!("collector drained");
    Ok(())
}
