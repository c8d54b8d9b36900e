//! The stream loop: `exatom.anon` → sessions → ClickHouse and `exatom.sessions`.
//!
//! **Crash safety.** Each partition's committed offset is never past the oldest record of
//! a session still open, so a restart replays every open session in full. Records of
//! sessions already closed and written are recognised on replay (their final rows exist in
//! `events`) and skipped. Writes are idempotent (ReplacingMergeTree keyed by event id and
//! session id; the aggregator deduplicates sessions by id), so the replayed tail rewrites
//! the same rows. Offsets are committed only after every write of the batch succeeded.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use exatom_shared::avro::anon_event_codec;
use exatom_shared::kafka::{self, ANON_TOPIC};
use exatom_shared::model::Session;
use exatom_shared::retry;
use exatom_shared::telemetry::Shutdown;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::FutureProducer;

use crate::encoder::{session_row, EventRow};
use crate::metrics::SessionizerMetrics;
use crate::rules::PartitionState;
use crate::service::Writer;

/// One partition's open sessions and what replay needs.
struct Partition {
    state: PartitionState,
    /// Live rows of events in open sessions, finalized when their session closes.
    rows: HashMap<String, EventRow>,
    /// Events whose session was closed before the last restart.
    skip: HashSet<String>,
    next_offset: i64,
    committed: i64,
    caught_up: bool,
}

pub struct Pipeline {
    pub consumer: kafka::Consumer,
    pub writer: Writer,
    pub dlq: FutureProducer,
    pub metrics: SessionizerMetrics,
    pub lateness_ms: i64,
    pub idle_margin_ms: i64,
    pub max_open_sessions: usize,
    pub batch_max: usize,
}

impl Pipeline {
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        self.consumer.subscribe(&[ANON_TOPIC])?;
        let codec = anon_event_codec();
        let mut partitions: HashMap<i32, Partition> = HashMap::new();
        let mut lag_sampled = Instant::now();
        let mut cap_warned = false;
        while !shutdown.is_triggered() {
            let batch = kafka::next_batch(
                &self.consumer,
                self.batch_max,
                Duration::from_millis(500),
                Duration::from_millis(50),
            )
            .await?;
            self.forget_revoked(&mut partitions);

            let mut live = Vec::new();
            let mut closed: Vec<(i32, Session)> = Vec::new();
            for message in &batch.messages {
                self.metrics.events_in.inc();
                let part = match partitions.get_mut(&message.partition()) {
                    Some(part) => part,
                    None => {
                        let part = self.open_partition(message, &shutdown).await?;
                        partitions.entry(message.partition()).or_insert(part)
                    }
                };
                part.caught_up = false;
                part.next_offset = message.offset() + 1;
                let event = match codec.decode(message.payload().unwrap_or_default()) {
                    Ok(event) => event,
                    Err(e) => {
                        self.dead_letter(message, &format!("undecodable: {e}"), &shutdown)
                            .await?;
                        continue;
                    }
                };
                if part.skip.remove(&event.event_id) {
                    self.metrics.events_replayed.inc();
                    continue;
                }
                closed.extend(
                    part.state
                        .advance(event.received_at_ms)
                        .into_iter()
                        .map(|s| (message.partition(), s)),
                );
                let placed =
                    part.state
                        .place(&event, message.offset(), exatom_shared::time::now_ms());
                if placed.late {
                    self.metrics.events_late.inc();
                }
                self.metrics
                    .sessions_merged
                    .inc_by(placed.merged.len() as u64);
                if placed.duplicate {
                    self.metrics.events_duplicate.inc();
                    continue;
                }
                let row = EventRow::live(
                    &event,
                    &placed.session_id,
                    message.partition(),
                    message.offset(),
                );
                live.push(row.clone());
                part.rows.insert(event.event_id, row);
            }

            // The end of a partition is reported after the messages before it.
            for p in &batch.at_end {
                if let Some(part) = partitions.get_mut(p) {
                    part.caught_up = true;
                }
            }
            // Partitions with nothing left to read follow the wall clock: sessions close on
            // time even when traffic is sparse.
            let now = exatom_shared::time::now_ms();
            for (p, part) in partitions.iter_mut() {
                if part.caught_up {
                    let idle = part.state.idle(now - self.idle_margin_ms, now);
                    closed.extend(idle.into_iter().map(|s| (*p, s)));
                }
            }

            self.write(&live, &closed, &mut partitions, &shutdown)
                .await?;
            self.commit(&mut partitions)?;
            self.report(&partitions, &mut cap_warned);
            if lag_sampled.elapsed() > Duration::from_secs(10) {
                for (topic, partition, lag) in kafka::lag(&self.consumer) {
                    self.metrics
                        .consumer_lag
                        .with_label_values(&[&topic, &partition.to_string()])
                        .set(lag);
                }
                lag_sampled = Instant::now();
            }
        }
        tracing::info!(
            open_sessions = partitions
                .values()
                .map(|p| p.state.open_sessions())
                .sum::<usize>(),
            "sessionizer drained; open sessions resume from the committed offsets"
        );
        Ok(())
    }

    /// Live rows first (dashboards see events within seconds), then for closed sessions:
    /// the session record, the session row, and the events' final rows.
    async fn write(
        &self,
        live: &[EventRow],
        closed: &[(i32, Session)],
        partitions: &mut HashMap<i32, Partition>,
        shutdown: &Shutdown,
    ) -> anyhow::Result<()> {
        let retried = |target: &'static str| {
            let m = self.metrics.write_retries.clone();
            move || m.with_label_values(&[target]).inc()
        };
        retry::until_ok("events", shutdown, retried("clickhouse"), || {
            self.writer.insert_events(live)
        })
        .await?;
        if closed.is_empty() {
            return Ok(());
        }
        let sessions: Vec<Session> = closed.iter().map(|(_, s)| s.clone()).collect();
        retry::until_ok("exatom.sessions", shutdown, retried("kafka"), || {
            self.writer.publish(&sessions)
        })
        .await?;
        let session_rows: Vec<_> = sessions.iter().map(session_row).collect();
        retry::until_ok("sessions", shutdown, retried("clickhouse"), || {
            self.writer.insert_sessions(&session_rows)
        })
        .await?;
        let mut final_rows = Vec::new();
        for (p, s) in closed {
            let Some(part) = partitions.get_mut(p) else {
                continue;
            };
            for (seq, e) in s.events.iter().enumerate() {
                if let Some(row) = part.rows.remove(&e.event_id) {
                    final_rows.push(row.finalized(&s.session_id, seq as u32));
                }
            }
        }
        retry::until_ok("events", shutdown, retried("clickhouse"), || {
            self.writer.insert_events(&final_rows)
        })
        .await?;
        self.metrics.sessions_closed.inc_by(closed.len() as u64);
        Ok(())
    }

    /// Commits, per partition, the oldest offset an open session still needs.
    fn commit(&self, partitions: &mut HashMap<i32, Partition>) -> anyhow::Result<()> {
        let mut offsets = HashMap::new();
        for (p, part) in partitions.iter_mut() {
            let safe = part.state.min_open_offset().unwrap_or(part.next_offset);
            if safe > part.committed {
                offsets.insert((ANON_TOPIC.to_owned(), *p), safe);
                part.committed = safe;
            }
        }
        kafka::commit(&self.consumer, &offsets, CommitMode::Sync)?;
        Ok(())
    }

    async fn open_partition(
        &self,
        first: &OwnedMessage,
        shutdown: &Shutdown,
    ) -> anyhow::Result<Partition> {
        let (partition, offset) = (first.partition(), first.offset());
        let skip = retry::until_ok(
            "replay check",
            shutdown,
            || {},
            || self.writer.closed_event_ids(partition, offset),
        )
        .await?;
        tracing::info!(
            partition,
            offset,
            replayed_closed_events = skip.len(),
            "partition assigned"
        );
        Ok(Partition {
            state: PartitionState::new(self.lateness_ms),
            rows: HashMap::new(),
            skip,
            next_offset: offset,
            committed: offset,
            caught_up: false,
        })
    }

    fn forget_revoked(&self, partitions: &mut HashMap<i32, Partition>) {
        let Ok(assignment) = self.consumer.assignment() else {
            return;
        };
        let assigned: HashSet<i32> = assignment
            .elements()
            .iter()
            .map(|e| e.partition())
            .collect();
        partitions.retain(|p, part| {
            let keep = assigned.contains(p);
            if !keep {
                tracing::info!(
                    partition = p,
                    open_sessions = part.state.open_sessions(),
                    "partition revoked; its next owner replays its open sessions"
                );
            }
            keep
        });
    }

    async fn dead_letter(
        &self,
        message: &OwnedMessage,
        reason: &str,
        shutdown: &Shutdown,
    ) -> anyhow::Result<()> {
        self.metrics.dlq.inc();
        tracing::warn!(
            partition = message.partition(),
            offset = message.offset(),
            "record sent to the DLQ"
        );
        retry::until_ok(
            "exatom.dlq",
            shutdown,
            || {},
            || kafka::send_dead_letter(&self.dlq, message, reason),
        )
        .await?;
        Ok(())
    }

    fn report(&self, partitions: &HashMap<i32, Partition>, cap_warned: &mut bool) {
        let open: usize = partitions.values().map(|p| p.state.open_sessions()).sum();
        self.metrics.open_sessions.set(open as i64);
        if open > self.max_open_sessions && !*cap_warned {
            tracing::warn!(
                open,
                cap = self.max_open_sessions,
                "open sessions above EXATOM_MAX_OPEN_SESSIONS"
            );
        }
        *cap_warned = open > self.max_open_sessions;
        if let Some(oldest) = partitions
            .values()
            .map(|p| p.state.stream_time_ms)
            .filter(|t| *t > 0)
            .min()
        {
            self.metrics
                .watermark_lag_ms
                .set(exatom_shared::time::now_ms() - oldest);
        }
    }
}
