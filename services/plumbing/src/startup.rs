//! How every consumer service starts, runs and stops: metrics and health endpoints first (so
//! an operator sees it while it connects), the shutdown signal, the dead-letter writer, then
//! the consume loop until SIGTERM. A fault that retrying cannot mend stops the loop but not
//! the process: `/readyz` answers 503 with the fix and `exatom_consumer_stopped` is 1 until
//! an operator stops it, so the reason is there to be read instead of in a restart loop.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use prometheus::Registry;
use rdkafka::producer::{FutureProducer, Producer};

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
    broker_probe: tokio::task::JoinHandle<()>,
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
        let probe_client = dead_letter_producer.clone();
        let dead_letters = DeadLetters::new(dead_letter_producer, &registry, metrics.clone())?;
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
        let broker_probe = tokio::spawn(watch_broker(
            move || {
                let client = probe_client.clone();
                async move {
                    tokio::task::spawn_blocking(move || {
                        client
                            .client()
                            .fetch_metadata(None, Duration::from_secs(2))
                            .map(|_| ())
                            .map_err(|e| e.to_string())
                    })
                    .await
                    .unwrap_or_else(|e| Err(e.to_string()))
                }
            },
            readiness.clone(),
            shutdown.clone(),
            BROKER_PROBE_EVERY,
        ));
        Ok(Startup {
            registry,
            readiness,
            shutdown,
            metrics,
            dead_letters,
            admin,
            broker_probe,
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
        stage: T,
        settings: Settings,
    ) -> anyhow::Result<()> {
        self.run_beside(
            source,
            stage,
            settings,
            std::future::pending::<Result<(S, T, Settings), Fault>>(),
        )
        .await
    }

    /// Runs the consume loop and a second one beside it, with a source (and consumer
    /// group) of its own: the anonymizer's replay loop. `second` makes it (it may wait on
    /// ClickHouse meanwhile, without making the service unready: the first loop does not
    /// need it). A deployment fault of either stops both.
    pub async fn run_beside<S: Source, T: Stage, S2: Source, T2: Stage>(
        self,
        source: S,
        mut stage: T,
        settings: Settings,
        second: impl Future<Output = Result<(S2, T2, Settings), Fault>>,
    ) -> anyhow::Result<()> {
        let io = Io {
            source: &source,
            dead_letters: &self.dead_letters,
            metrics: &self.metrics,
            shutdown: &self.shutdown,
        };
        self.readiness.set_ready();
        tracing::info!(topics = ?settings.topics, "consuming");
        let first = consume::run(&source, &mut stage, &settings, &io, &self.readiness);
        let beside = async {
            tokio::pin!(second);
            // Stopped before the second loop could begin: nothing of it to finish.
            let made = tokio::select! {
                made = &mut second => made,
                () = self.shutdown.wait() => return Ok(()),
            };
            let (source, mut stage, settings) = made?;
            let io = Io {
                source: &source,
                dead_letters: &self.dead_letters,
                metrics: &self.metrics,
                shutdown: &self.shutdown,
            };
            tracing::info!(topics = ?settings.topics, "consuming");
            consume::run(&source, &mut stage, &settings, &io, &self.readiness).await
        };
        tokio::pin!(first, beside);
        let result = tokio::select! {
            r = &mut first => match r {
                Ok(()) => beside.await,
                fault => fault,
            },
            r = &mut beside => match r {
                Ok(()) => first.await,
                fault => fault,
            },
        };
        if let Err(fault) = &result {
            self.fail(fault).await;
        } else {
            tracing::info!("drained; stopping");
        }
        self.shutdown.trigger();
        let _ = self.admin.await;
        let _ = self.broker_probe.await;
        result.map_err(anyhow::Error::from)
    }

    /// Stops before consuming: the same report as a fault of the loop.
    pub async fn stop_with(self, fault: Fault) -> anyhow::Result<()> {
        self.fail(&fault).await;
        self.shutdown.trigger();
        let _ = self.admin.await;
        let _ = self.broker_probe.await;
        Err(fault.into())
    }

    async fn fail(&self, fault: &Fault) {
        tracing::error!(error = %fault, "stopped: this cannot be retried away");
        self.metrics.stopped.set(1);
        self.readiness.set_unready(&fault.to_string());
        self.shutdown.wait().await;
    }
}

/// How often a consumer asks the broker whether it answers.
const BROKER_PROBE_EVERY: Duration = Duration::from_secs(5);

/// Asks `probe` every `every` whether the broker answers and puts the verdict on `/readyz`,
/// until shutdown. Apart from the consume loop on purpose: a stage blocked in a write (a
/// producer waiting out its delivery timeout while the broker is gone) cannot report, and a
/// consumer's own errors say little (librdkafka reports a lost broker once, then the
/// consumer just sees nothing).
pub async fn watch_broker<F, Fut>(
    probe: F,
    readiness: Readiness,
    shutdown: Shutdown,
    every: Duration,
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut away = false;
    while !shutdown.is_triggered() {
        match probe().await {
            Ok(()) => {
                if away {
                    tracing::info!("the broker answers again");
                }
                away = false;
                readiness.set_broker_away(None);
            }
            Err(e) => {
                if !away {
                    tracing::warn!(error = %e, "the broker does not answer");
                }
                away = true;
                readiness.set_broker_away(Some(format!("the broker does not answer: {e}")));
            }
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shutdown.wait() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn readyz_says_the_broker_is_gone_while_it_does_not_answer_and_recovers_with_it() {
        let readiness = Readiness::default();
        readiness.set_ready();
        let shutdown = Shutdown::default();
        // Answers, gone twice, answers again.
        let answers = Arc::new(Mutex::new(VecDeque::from([
            Ok(()),
            Err("AllBrokersDown".to_owned()),
            Err("AllBrokersDown".to_owned()),
            Ok(()),
        ])));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let probe = {
            let (answers, seen, readiness, shutdown) = (
                answers.clone(),
                seen.clone(),
                readiness.clone(),
                shutdown.clone(),
            );
            move || {
                // What /readyz said before this probe: the previous verdict.
                seen.lock()
                    .unwrap()
                    .push((readiness.is_ready(), readiness.reason()));
                let next = answers.lock().unwrap().pop_front();
                if answers.lock().unwrap().is_empty() && next.is_none() {
                    shutdown.trigger();
                }
                std::future::ready(next.unwrap_or(Ok(())))
            }
        };
        watch_broker(probe, readiness.clone(), shutdown, Duration::from_secs(5)).await;
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen[1], (true, String::new()));
        assert_eq!(
            seen[2],
            (
                false,
                "the broker does not answer: AllBrokersDown".to_owned()
            )
        );
        assert!(!seen[3].0);
        assert_eq!(
            seen[4],
            (true, String::new()),
            "ready again once it answers"
        );

        // A fault of the service outranks the broker: the broker's return does not clear it.
        readiness.set_unready("stopped: a column is missing");
        readiness.set_broker_away(None);
        assert!(!readiness.is_ready());
        assert_eq!(readiness.reason(), "stopped: a column is missing");
    }
}
