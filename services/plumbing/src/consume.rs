//! The consume → transform → write → commit loop of every consumer, with its guarantees.
//!
//! **Commit rule.** A stage handles a batch and answers, per partition, the next offset that
//! is safe to commit: everything before it is written (produced and acknowledged, or
//! inserted into ClickHouse) or dead-lettered. The loop commits exactly that, and nothing
//! when the stage fails; a commit that fails is tried again with the next batch. So every
//! record is written at least once, and idempotent writes count it once.
//!
//! **Faults.** A broker that is away is waited out (counted, `/readyz` says so after a few
//! tries); a stage's write retries inside the stage ([`crate::retry`]). A
//! [`Fault::Deployment`] stops the loop: the service keeps serving `/readyz` (503 and the
//! fix) and `/metrics` (`exatom_consumer_stopped` 1) until it is stopped.
//!
//! **Lag.** Every `lag_every` the loop samples, per assigned partition, how many records are
//! behind (high watermark − position) and, while any wait, how long ago the newest record it
//! has read was produced: the time it is behind, which keeps growing when it is stuck.
//!
//! The broker side is a trait ([`Source`]) so that the commit rule is tested without Kafka.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use prometheus::{GaugeVec, IntGaugeVec};
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};
use rdkafka::consumer::{CommitMode, Consumer as _};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::dead_letter::DeadLetters;
use crate::fault::{self, Cause, Fault};
use crate::kafka;
use crate::retry;
use crate::telemetry::{Readiness, Shutdown};

/// The next offset to commit, per (topic, partition).
pub type Offsets = HashMap<(String, i32), i64>;

/// What one poll brought: messages, and the partitions found caught up (consumers created
/// with `enable.partition.eof=true` learn this; others never see it).
#[derive(Debug, Default)]
pub struct Batch {
    pub messages: Vec<OwnedMessage>,
    pub at_end: Vec<i32>,
}

impl Batch {
    /// The next offset of every partition the batch touched: its last offset + 1. What a
    /// stage that writes a whole batch before answering may commit.
    pub fn next_offsets(&self) -> Offsets {
        let mut next = Offsets::new();
        for m in &self.messages {
            let entry = next
                .entry((m.topic().to_owned(), m.partition()))
                .or_insert(i64::MIN);
            *entry = (*entry).max(m.offset() + 1);
        }
        next
    }
}

/// Errors librdkafka reports while it reconnects by itself.
fn is_connection_news(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::BrokerTransportFailure | RDKafkaErrorCode::AllBrokersDown
    )
}

/// Records behind, per (topic, partition).
pub type Lag = Vec<((String, i32), i64)>;

/// The broker side of a consumer, as the loop and the stages use it.
pub trait Source {
    fn subscribe(&self, topics: &[&str]) -> Result<(), KafkaError>;
    /// Up to `max` records: waits up to `idle` for the first, then at most `linger` for the
    /// rest. An empty batch means nothing arrived within `idle`.
    fn next_batch(
        &self,
        max: usize,
        idle: Duration,
        linger: Duration,
    ) -> impl Future<Output = Result<Batch, KafkaError>>;
    fn commit(&self, offsets: &Offsets) -> Result<(), KafkaError>;
    /// The partitions assigned to this consumer now.
    fn assignment(&self) -> Vec<(String, i32)>;
    /// Stops (`true`) or resumes fetching every assigned partition; the consumer stays in
    /// its group meanwhile.
    fn hold(&self, paused: bool) -> Result<(), KafkaError>;
    /// Records behind, per assigned partition (asks the broker: call it every few seconds).
    fn lag(&self) -> Result<Lag, KafkaError>;
    /// Rebalances so far (started or completed). Every rebalance hands every partition out
    /// again from its committed offset, so a stage's state for them is stale after one.
    fn rebalances(&self) -> u64;
}

/// A Kafka consumer as the services create it (`kafka::consumer`).
pub struct KafkaSource(pub kafka::Consumer);

impl std::fmt::Debug for KafkaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSource").finish_non_exhaustive()
    }
}

impl Source for KafkaSource {
    fn subscribe(&self, topics: &[&str]) -> Result<(), KafkaError> {
        self.0.subscribe(topics)
    }

    fn rebalances(&self) -> u64 {
        self.0.context().rebalances()
    }

    async fn next_batch(
        &self,
        max: usize,
        idle: Duration,
        linger: Duration,
    ) -> Result<Batch, KafkaError> {
        let mut batch = Batch::default();
        let mut deadline = tokio::time::Instant::now() + idle;
        while batch.messages.len() < max {
            match tokio::time::timeout_at(deadline, self.0.recv()).await {
                Err(_) => break,
                Ok(Err(KafkaError::PartitionEOF(partition))) => batch.at_end.push(partition),
                // News about connections, not faults: librdkafka reconnects by itself, and
                // it queues one of these per failed attempt. Waiting out a backoff for each
                // left a consumer draining stale ones, one per 10 s, for minutes after the
                // broker was back. Whether the broker answers is the broker probe's to say
                // (`startup::watch_broker`).
                Ok(Err(KafkaError::MessageConsumption(code))) if is_connection_news(code) => {
                    tracing::debug!(error = %code, "broker connection news");
                }
                // A fault after some records: hand those over first; the fault comes again.
                Ok(Err(e)) if batch.messages.is_empty() => return Err(e),
                Ok(Err(_)) => break,
                Ok(Ok(message)) => {
                    if batch.messages.is_empty() {
                        deadline = tokio::time::Instant::now() + linger;
                    }
                    batch.messages.push(message.detach());
                }
            }
        }
        Ok(batch)
    }

    fn commit(&self, offsets: &Offsets) -> Result<(), KafkaError> {
        if offsets.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), offset) in offsets {
            tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset))?;
        }
        self.0.commit(&tpl, CommitMode::Sync)
    }

    fn assignment(&self) -> Vec<(String, i32)> {
        self.0
            .assignment()
            .map(|tpl| {
                tpl.elements()
                    .iter()
                    .map(|e| (e.topic().to_owned(), e.partition()))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn hold(&self, paused: bool) -> Result<(), KafkaError> {
        let assigned = self.0.assignment()?;
        if paused {
            self.0.pause(&assigned)
        } else {
            self.0.resume(&assigned)
        }
    }

    fn lag(&self) -> Result<Lag, KafkaError> {
        // Watermarks are a blocking request to the broker: off the async workers.
        tokio::task::block_in_place(|| {
            let positions = self.0.position()?;
            if positions.count() == 0 {
                // Nothing assigned yet: ask for the cluster's metadata instead.
                self.0.fetch_metadata(None, Duration::from_secs(2))?;
                return Ok(Vec::new());
            }
            let mut lag = Vec::new();
            let mut failure = None;
            for e in positions.elements() {
                match self
                    .0
                    .fetch_watermarks(e.topic(), e.partition(), Duration::from_secs(1))
                {
                    Ok((_, high)) => {
                        if let Offset::Offset(position) = e.offset() {
                            lag.push((
                                (e.topic().to_owned(), e.partition()),
                                (high - position).max(0),
                            ));
                        }
                    }
                    Err(error) => failure = Some(error),
                }
            }
            match failure {
                Some(error) if lag.is_empty() => Err(error),
                _ => Ok(lag),
            }
        })
    }
}

/// The metrics every consumer has, under the same names in every service (the `job` label
/// tells the services apart).
#[derive(Clone, Debug)]
pub struct ConsumerMetrics {
    pub records_read: IntCounterVec,
    pub lag_records: IntGaugeVec,
    pub lag_seconds: GaugeVec,
    /// Retried faults, by dependency (`kafka`, `clickhouse`).
    pub retries: IntCounterVec,
    /// 1 once a deployment fault stopped the loop.
    pub stopped: IntGauge,
    /// Records left out on purpose, by reason (`site_deleted`: a site that left).
    pub dropped: IntCounterVec,
    /// Age of what a stage just wrote: now − the collector's `received_at` of its newest
    /// event, by where it was written (`exatom.anon`, `events`, `exatom.sessions`, `rollups`).
    pub freshness: HistogramVec,
}

/// The `reason` of `exatom_records_dropped_total` for a record of a deleted site.
pub const SITE_DELETED: &str = "site_deleted";

/// Buckets of `exatom_freshness_seconds`: from a healthy chain's fraction of a second to a
/// session that waited out its 30 minutes and 5 of lateness.
pub const FRESHNESS_BUCKETS: [f64; 20] = [
    0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0,
    1200.0, 1800.0, 2400.0, 3600.0,
];

impl ConsumerMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let m = ConsumerMetrics {
            records_read: IntCounterVec::new(
                Opts::new("exatom_consumer_records_total", "Records read, by topic"),
                &["topic"],
            )?,
            lag_records: IntGaugeVec::new(
                Opts::new(
                    "exatom_consumer_lag_records",
                    "Records behind the partition's end (sampled every 10 s)",
                ),
                &["topic", "partition"],
            )?,
            lag_seconds: GaugeVec::new(
                Opts::new(
                    "exatom_consumer_lag_seconds",
                    "While records wait: seconds since the newest record read was produced (0 when caught up)",
                ),
                &["topic", "partition"],
            )?,
            retries: IntCounterVec::new(
                Opts::new(
                    "exatom_retries_total",
                    "Failed calls to a dependency that were waited out and retried (every failed ClickHouse insert or query, every failed produce, fetch or commit), by dependency and reason",
                ),
                &["dependency", "reason"],
            )?,
            stopped: IntGauge::new(
                "exatom_consumer_stopped",
                "1 once a fault that retrying cannot mend stopped the consume loop (see /readyz)",
            )?,
            dropped: IntCounterVec::new(
                Opts::new(
                    "exatom_records_dropped_total",
                    "Records left out on purpose, by reason (site_deleted: the site left, exatom-admin delete-site)",
                ),
                &["reason"],
            )?,
            freshness: HistogramVec::new(
                HistogramOpts::new(
                    "exatom_freshness_seconds",
                    "Age of what was just written: now minus the collector's receipt of its newest event",
                )
                .buckets(FRESHNESS_BUCKETS.to_vec()),
                &["written_to"],
            )?,
        };
        registry.register(Box::new(m.records_read.clone()))?;
        registry.register(Box::new(m.lag_records.clone()))?;
        registry.register(Box::new(m.lag_seconds.clone()))?;
        registry.register(Box::new(m.retries.clone()))?;
        registry.register(Box::new(m.stopped.clone()))?;
        registry.register(Box::new(m.dropped.clone()))?;
        m.dropped.with_label_values(&[SITE_DELETED]);
        registry.register(Box::new(m.freshness.clone()))?;
        for dependency in ["kafka", "clickhouse"] {
            for cause in Cause::ALL {
                m.retries.with_label_values(&[dependency, cause.as_str()]);
            }
        }
        Ok(m)
    }

    /// A counter callback for [`retry::until_ok`].
    pub fn on_retry(&self, dependency: &'static str) -> impl FnMut(&Fault) + '_ {
        move |fault| self.retried(dependency, fault)
    }

    /// Counts a retried fault of `dependency` under its cause.
    pub fn retried(&self, dependency: &str, fault: &Fault) {
        let cause = fault.cause().unwrap_or(Cause::Other);
        self.retries
            .with_label_values(&[dependency, cause.as_str()])
            .inc();
    }

    /// Observes the age of an event received by the collector at `received_at_ms`, written
    /// now to `written_to`.
    pub fn written(&self, written_to: &str, received_at_ms: i64) {
        let age_ms = (exatom_core::time::now_ms() - received_at_ms).max(0);
        self.freshness
            .with_label_values(&[written_to])
            .observe(age_ms as f64 / 1000.0);
    }
}

/// What a stage gets besides its batch.
#[derive(Debug)]
pub struct Io<'a, S> {
    pub source: &'a S,
    pub dead_letters: &'a DeadLetters,
    pub metrics: &'a ConsumerMetrics,
    pub shutdown: &'a Shutdown,
}

/// A service's own part of the loop.
pub trait Stage {
    /// Handles a batch (empty when nothing arrived within the idle time) and returns the
    /// offsets now safe to commit: only partitions whose safe offset moved need be named.
    fn handle<S: Source>(
        &mut self,
        batch: Batch,
        io: &Io<'_, S>,
    ) -> impl Future<Output = Result<Offsets, Fault>>;
}

/// How a consumer reads.
#[derive(Debug, Clone)]
pub struct Settings {
    pub topics: Vec<&'static str>,
    /// Records per batch (one commit per batch).
    pub batch_max: usize,
    /// How long an empty poll waits.
    pub idle: Duration,
    /// How long a batch waits for more records after its first: longer for stages that
    /// insert into ClickHouse, which prefers fewer, larger inserts.
    pub linger: Duration,
    pub lag_every: Duration,
}

/// Consecutive broker faults after which `/readyz` says the broker is away.
const UNREADY_AFTER: u32 = 3;

/// Runs the loop until shutdown (Ok) or a deployment fault (Err).
pub async fn run<S: Source, T: Stage>(
    source: &S,
    stage: &mut T,
    settings: &Settings,
    io: &Io<'_, S>,
    readiness: &Readiness,
) -> Result<(), Fault> {
    source
        .subscribe(&settings.topics)
        .map_err(|e| fault::kafka(&e))?;
    let mut committed: Offsets = Offsets::new();
    let mut pending: Offsets = Offsets::new();
    // Per partition: when the newest record read was produced.
    let mut newest: HashMap<(String, i32), i64> = HashMap::new();
    let mut lag_sampled: Option<Instant> = None;
    let mut faults = 0u32;
    while !io.shutdown.is_triggered() {
        // Read before the fetch: a batch fetched or handled across a rebalance is not committed.
        let generation = source.rebalances();
        let batch = match source
            .next_batch(settings.batch_max, settings.idle, settings.linger)
            .await
        {
            Ok(batch) => {
                if faults > 0 {
                    faults = 0;
                    readiness.set_ready();
                }
                batch
            }
            Err(e) => match fault::kafka(&e) {
                fault @ Fault::Deployment { .. } => return Err(fault),
                fault => {
                    io.metrics.retried("kafka", &fault);
                    faults += 1;
                    if faults >= UNREADY_AFTER {
                        readiness.set_unready(&format!("reading from the broker fails: {fault}"));
                    }
                    tracing::warn!(error = %fault, "reading failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(retry::backoff(faults)) => {}
                        () = io.shutdown.wait() => {}
                    }
                    continue;
                }
            },
        };
        for m in &batch.messages {
            io.metrics
                .records_read
                .with_label_values(&[m.topic()])
                .inc();
            if let Some(t) = m.timestamp().to_millis() {
                newest.insert((m.topic().to_owned(), m.partition()), t);
            }
        }
        if lag_sampled.is_none_or(|at| at.elapsed() >= settings.lag_every) {
            lag_sampled = Some(Instant::now());
            // A failed sample leaves the last figures; the broker probe reports the outage.
            if let Ok(lag) = source.lag() {
                report_lag(lag, &newest, io.metrics);
            }
        }
        let safe = stage.handle(batch, io).await?;
        // A rebalance while the stage worked: its partitions may be someone else's now, and
        // a broker that does not check the group generation on commit (tansu) would take a
        // stale offset over the new owner's. What the batch wrote is idempotent; the
        // partitions' owners read it again from their committed offsets.
        if source.rebalances() != generation {
            tracing::info!("a rebalance overtook the batch: not committing it");
            pending.clear();
            committed.clear();
            continue;
        }
        for (partition, offset) in safe {
            let entry = pending.entry(partition).or_insert(offset);
            *entry = (*entry).max(offset);
        }
        pending.retain(|p, offset| committed.get(p).is_none_or(|c| *offset > *c));
        if pending.is_empty() {
            continue;
        }
        match source.commit(&pending) {
            Ok(()) => committed.extend(pending.drain()),
            Err(e) => match fault::kafka(&e) {
                fault @ Fault::Deployment { .. } => return Err(fault),
                fault => {
                    // Written but not committed: a restart would write it again, which the
                    // idempotent writes absorb; the next batch's commit covers it.
                    io.metrics.retried("kafka", &fault);
                    tracing::warn!(error = %fault, "commit failed; committing with the next batch");
                }
            },
        }
    }
    Ok(())
}

fn report_lag(lag: Lag, newest: &HashMap<(String, i32), i64>, metrics: &ConsumerMetrics) {
    let now = exatom_core::time::now_ms();
    for ((topic, partition), records) in lag {
        let labels = [topic.as_str(), &partition.to_string()];
        metrics.lag_records.with_label_values(&labels).set(records);
        // Nothing read yet from a partition with records waiting: unknown, not 0.
        let seconds = match newest.get(&(topic.clone(), partition)) {
            _ if records == 0 => Some(0.0),
            Some(produced_ms) => Some((now - produced_ms).max(0) as f64 / 1000.0),
            None => None,
        };
        if let Some(s) = seconds {
            metrics.lag_seconds.with_label_values(&labels).set(s);
        }
    }
}

#[cfg(test)]
mod tests;
