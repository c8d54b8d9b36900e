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
    let watcher = sink.watch_broker(Duration::from_secs(1), readiness.clone());
    let reloader = spawn_registry_reloader(Arc::clone(&state));

    let shutdown = Shutdown::on_signals();
    let app = service::router(Arc::clone(&state), registry, readiness);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    tracing::info!(listen = %config.listen, "collector listening");
    serve(listener, app, &config, shutdown.wait()).await;

    watcher.abort();
    reloader.abort();
    sink.flush(Duration::from_secs(10))
        .context("flushing the producer on shutdown")?;
    tracing::info!("collector drained");
    Ok(())
}

/// Serves HTTP/1.1 (keep-alive) and HTTP/2 cleartext on `listener` until `shutdown`, then
/// stops accepting and gives the connections in flight a bounded time to finish.
///
/// Not `axum::serve`: it sets no timer, so a client trickling its headers would hold a
/// connection (and the drain) forever. Here headers must arrive within the request timeout.
async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    config: &CollectorConfig,
    shutdown: impl std::future::Future<Output = ()>,
) {
    use axum::extract::ConnectInfo;
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;

    let request_timeout = Duration::from_millis(config.request_timeout_ms);
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(request_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(20)));
    let connections = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service =
            TowerToHyperService::new(app.clone().layer(axum::Extension(ConnectInfo(peer))));
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let drain = request_timeout + Duration::from_millis(config.delivery_timeout_ms);
    if tokio::time::timeout(drain, connections.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(after = ?drain, "connections still open after the drain; closing them");
    }
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
