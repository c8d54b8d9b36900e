//! The edge collector: takes browser batches over HTTP, validates and masks them, and
//! produces them to `exatom.raw`. Pure logic (`batch`, `body`, `client`, `sites`) is kept
//! apart from the HTTP (`service`) and Kafka (`sink`) edges.

pub mod assets;
pub mod batch;
pub mod body;
pub mod client;
pub mod config;
pub mod encoder;
pub mod limits;
pub mod metrics;
pub mod service;
pub mod sink;
pub mod sites;

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use exatom_shared::telemetry::{Readiness, Shutdown};

use crate::config::CollectorConfig;
use crate::service::AppState;
use crate::sites::Registry;

/// Runs the collector until SIGTERM/SIGINT, then drains: stops accepting, lets requests in
/// flight finish, and flushes the producer.
pub async fn run(config: CollectorConfig) -> anyhow::Result<()> {
    let registry = prometheus::Registry::new();
    let metrics = metrics::CollectorMetrics::register(&registry)?;
    let trusted = client::parse_cidrs(&config.trusted_proxies)
        .map_err(|e| anyhow::anyhow!("EXATOM_TRUSTED_PROXIES: {e}"))?;
    let sites = Registry::load(&config.sites_file).map_err(anyhow::Error::msg)?;
    tracing::info!(sites = sites.sites.len(), "site registry loaded");
    let sink = sink::RawSink::new(
        &config.endpoints.kafka_brokers,
        config.max_queue_events,
        Duration::from_millis(config.delivery_timeout_ms),
        metrics.clone(),
    )?;
    let state = Arc::new(AppState {
        trusted,
        registry: RwLock::new(Arc::new(sites)),
        limiter: Mutex::new(client::RateLimiter::new(
            config.rate_per_second,
            config.rate_burst,
            config.rate_max_clients,
        )),
        sink: sink.clone(),
        metrics: metrics.clone(),
        config: config.clone(),
    });
    let readiness = Readiness::default();
    let watcher = sink.watch_broker(Duration::from_secs(1));
    let reloader = spawn_registry_reloader(Arc::clone(&state));
    let ready_task = {
        let (readiness, sink) = (readiness.clone(), sink.clone());
        tokio::spawn(async move {
            loop {
                readiness.set(sink.broker_up());
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };

    let shutdown = Shutdown::on_signals();
    let app = service::router(Arc::clone(&state), registry, readiness);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    tracing::info!(listen = %config.listen, "collector listening");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.wait())
    .await?;

    watcher.abort();
    reloader.abort();
    ready_task.abort();
    sink.flush(Duration::from_secs(10))
        .context("flushing the producer on shutdown")?;
    tracing::info!("collector drained");
    Ok(())
}

/// Reloads the site registry on SIGHUP and when the file's modification time changes.
fn spawn_registry_reloader(state: Arc<AppState>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let path = state.config.sites_file.clone();
        let mtime = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        let mut seen: Option<SystemTime> = mtime(&path);
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .expect("SIGHUP handler installs");
        loop {
            let by_signal = tokio::select! {
                _ = hup.recv() => true,
                _ = tokio::time::sleep(Duration::from_secs(2)) => false,
            };
            let now = mtime(&path);
            if !by_signal && now == seen {
                continue;
            }
            seen = now;
            match Registry::load(&path) {
                Ok(fresh) => {
                    tracing::info!(sites = fresh.sites.len(), "site registry reloaded");
                    if let Ok(mut current) = state.registry.write() {
                        *current = Arc::new(fresh);
                    }
                    state
                        .metrics
                        .registry_reloads
                        .with_label_values(&["ok"])
                        .inc();
                }
                Err(e) => {
                    tracing::error!(error = %e, "site registry not reloaded; keeping the previous one");
                    state
                        .metrics
                        .registry_reloads
                        .with_label_values(&["error"])
                        .inc();
                }
            }
        }
    })
}
