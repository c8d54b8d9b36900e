//! What operators see: structured logs, Prometheus metrics, health endpoints, and the
//! shutdown signal every service drains on.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus::{Encoder, Registry, TextEncoder};

/// JSON logs to stderr, filtered by `RUST_LOG` (default `info`).
///
/// Logs never carry IP addresses, user agents or request bodies: callers log ids and counts.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_current_span(false)
        .try_init();
}

/// A service's metrics registry, holding the process's own figures from the start
/// (`process_cpu_seconds_total`, `process_resident_memory_bytes`, open file descriptors):
/// the resource use the SRE dashboard shows per service.
pub fn registry() -> prometheus::Result<Registry> {
    let registry = Registry::new();
    registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ))?;
    Ok(registry)
}

/// Whether a service takes work, and if not, why: `/readyz` answers 503 with the reason.
///
/// Two conditions, kept apart so that neither clears the other: the service's own state
/// (starting, consuming, stopped by a fault) and whether the broker answers, which a probe
/// beside the consume loop reports ([`crate::startup`]).
#[derive(Clone, Default)]
pub struct Readiness {
    ready: Arc<AtomicBool>,
    reason: Arc<Mutex<String>>,
    broker_away: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readiness")
            .field("ready", &self.is_ready())
            .field("reason", &self.reason())
            .finish()
    }
}

impl Readiness {
    pub fn set(&self, ready: bool) {
        if ready {
            self.set_ready();
        } else {
            self.set_unready("not ready");
        }
    }

    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }

    /// Not ready, with what an operator should know (never identity or a record's content).
    pub fn set_unready(&self, reason: &str) {
        if let Ok(mut r) = self.reason.lock() {
            reason.clone_into(&mut r);
        }
        self.ready.store(false, Ordering::Relaxed);
    }

    /// The broker probe's verdict: `Some(why)` while the broker does not answer.
    pub fn set_broker_away(&self, why: Option<String>) {
        if let Ok(mut away) = self.broker_away.lock() {
            *away = why;
        }
    }

    fn broker_away(&self) -> Option<String> {
        self.broker_away.lock().ok().and_then(|a| a.clone())
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed) && self.broker_away().is_none()
    }

    /// Why not ready: the service's own reason first (a fault outranks a broker away).
    pub fn reason(&self) -> String {
        if !self.ready.load(Ordering::Relaxed) {
            return self.reason.lock().map(|r| r.clone()).unwrap_or_default();
        }
        self.broker_away().unwrap_or_default()
    }
}

/// `/healthz`, `/readyz` and `/metrics` for a registry: merged into the collector's router,
/// or served alone by the other services ([`serve_admin`]).
pub fn admin_routes(registry: Registry, readiness: Readiness) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let ready = readiness.is_ready();
                let reason = readiness.reason();
                async move {
                    if ready {
                        (StatusCode::OK, "ready\n".to_owned())
                    } else if reason.is_empty() {
                        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n".to_owned())
                    } else {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            format!("not ready: {reason}\n"),
                        )
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let registry = registry.clone();
                async move { render_metrics(&registry) }
            }),
        )
}

fn render_metrics(registry: &Registry) -> impl IntoResponse {
    let mut buf = Vec::new();
    let encoder = TextEncoder::new();
    match encoder.encode(&registry.gather(), &mut buf) {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, encoder.format_type().to_owned())],
            buf,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain".to_owned())],
            e.to_string().into_bytes(),
        ),
    }
}

/// Serves the admin routes on their own port until `shutdown` resolves.
pub async fn serve_admin(
    addr: SocketAddr,
    registry: Registry,
    readiness: Readiness,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let app = admin_routes(registry, readiness);
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "admin server stopped");
        }
    }))
}

/// Resolves on SIGTERM or SIGINT: the moment to stop taking work and drain.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// A shutdown flag that many tasks can wait on.
#[derive(Clone, Debug)]
pub struct Shutdown {
    tx: tokio::sync::watch::Sender<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown {
            tx: tokio::sync::watch::channel(false).0,
        }
    }
}

impl Shutdown {
    /// Starts listening for SIGTERM/SIGINT and returns the flag they set.
    pub fn on_signals() -> Self {
        let shutdown = Shutdown::default();
        let tx = shutdown.tx.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutdown requested: draining");
            tx.send_replace(true);
        });
        shutdown
    }

    /// Sets the flag. `send_replace`: `send` leaves the value as it was when no task waits.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    pub fn is_triggered(&self) -> bool {
        *self.tx.borrow()
    }

    /// Resolves once shutdown has been requested.
    pub fn wait(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.tx.subscribe();
        async move {
            let _ = rx.wait_for(|v| *v).await;
        }
    }
}
