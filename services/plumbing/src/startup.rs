//! How every consumer service starts, runs and stops: metrics and health endpoints first (so
//! an operator sees it while it connects), the shutdown signal, the dead-letter writer, then
//! the consume loop until SIGTERM. A fault that retrying cannot mend stops the loop but not
//! the process: `/readyz` answers 503 with the fix and `exatom_consumer_stopped` is 1 until
//! an operator stops it, so the reason is there to be read instead of in a restart loop.

use std::net::SocketAddr;

use anyhow::Context;
use prometheus::Registry;
use rdkafka::producer::FutureProducer;

use crate::consume::{self, ConsumerMetrics, Io, Settings, Source, Stage};
use crate::dead_letter::DeadLetters;
use crate::fault::Fault;
use crate::retry;
use crate::telemetry::{serve_admin, Readiness, Shutdown};
use crate::warehouse::{Connection, Warehouse};

/// A consumer service, started.
#[derive(Debug)]
pub struct Startup {
    pub registry: Registry,
    pub readiness: Readiness,
    pub shutdown: Shutdown,
    pub metrics: ConsumerMetrics,
    pub dead_letters: DeadLetters,
    admin: tokio::task::JoinHandle<()>,
}

impl Startup {
    /// Serves `/healthz`, `/readyz` (not ready yet) and `/metrics` on `admin_listen`, and
    /// listens for SIGTERM/SIGINT. `registry` already holds the service's own metrics.
    pub async fn begin(
        registry: Registry,
        admin_listen: SocketAddr,
        dead_letter_producer: FutureProducer,
    ) -> anyhow::Result<Self> {
        let metrics = ConsumerMetrics::register(&registry)?;
        let dead_letters = DeadLetters::new(dead_letter_producer, &registry)?;
        let shutdown = Shutdown::on_signals();
        let readiness = Readiness::default();
        readiness.set_unready("starting");
        let admin = serve_admin(
            admin_listen,
            registry.clone(),
            readiness.clone(),
            shutdown.wait(),
        )
        .await
        .with_context(|| format!("binding {admin_listen} (EXATOM_ADMIN_LISTEN)"))?;
        Ok(Startup {
            registry,
            readiness,
            shutdown,
            metrics,
            dead_letters,
            admin,
        })
    }

    /// Connects to ClickHouse, waiting while it is away; a refused account or a missing
    /// database is returned at once.
    pub async fn warehouse(&self, connection: &Connection) -> Result<Warehouse, Fault> {
        self.readiness.set_unready("connecting to ClickHouse");
        retry::until_ok(
            "clickhouse connect",
            &self.shutdown,
            self.metrics.on_retry("clickhouse"),
            || Warehouse::connect_checked(connection),
        )
        .await
    }

    /// Runs the consume loop until SIGTERM. After a deployment fault the service stays up,
    /// unready, until it is stopped, and then returns the fault.
    pub async fn run<S: Source, T: Stage>(
        self,
        source: S,
        mut stage: T,
        settings: Settings,
    ) -> anyhow::Result<()> {
        let io = Io {
            source: &source,
            dead_letters: &self.dead_letters,
            metrics: &self.metrics,
            shutdown: &self.shutdown,
        };
        self.readiness.set_ready();
        tracing::info!(topics = ?settings.topics, "consuming");
        let result = consume::run(&source, &mut stage, &settings, &io, &self.readiness).await;
        if let Err(fault) = &result {
            self.fail(fault).await;
        } else {
            tracing::info!("drained; stopping");
        }
        self.shutdown.trigger();
        let _ = self.admin.await;
        result.map_err(anyhow::Error::from)
    }

    /// Stops before consuming: the same report as a fault of the loop.
    pub async fn stop_with(self, fault: Fault) -> anyhow::Result<()> {
        self.fail(&fault).await;
        self.shutdown.trigger();
        let _ = self.admin.await;
        Err(fault.into())
    }

    async fn fail(&self, fault: &Fault) {
        tracing::error!(error = %fault, "stopped: this cannot be retried away");
        self.metrics.stopped.set(1);
        self.readiness.set_unready(&fault.to_string());
        self.shutdown.wait().await;
    }
}
