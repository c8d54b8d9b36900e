//! The stream loop: `exatom.anon` → sessions → ClickHouse and `exatom.sessions`.
//!
//! **Crash safety.** Each partition's committed offset is never past the oldest record of
//! a session still open, so a restart replays every open session in full. Records of
//! sessions already closed and written are recognised on replay (their final rows exist in
//! `events`) and skipped. Writes are idempotent (ReplacingMergeTree keyed by event id and
//! session id; the aggregator deduplicates sessions by id), so the replayed tail rewrites
//! the same rows. Offsets are committed only after every write of the batch succeeded.
//!
//! **Read-back.** Every event is written to `events` as it is placed (live rows); a session
//! that closes gets its events' content back from there (`stored`), so open sessions hold
//! only ids and times. A read that misses an event (a replica that has not caught up) is
//! retried like a failed write: nothing is published from a partial session.

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
use crate::rules::{clock_ahead, ClosedSession, PartitionState};
use crate::service::Writer;

/// One partition's open sessions and what replay needs.
struct Partition {
    state: PartitionState,
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
        // At EXATOM_MAX_OPEN_SESSIONS consumption pauses; sessions then close by the clock.
        let mut paused = false;
        while !shutdown.is_triggered() {
            let batch = kafka::next_batch(
                &self.consumer,
                self.batch_max,
                Duration::from_millis(500),
                Duration::from_millis(1000),
            )
            .await?;
            self.forget_revoked(&mut partitions);

            let mut live = Vec::new();
            let mut closed: Vec<ClosedSession> = Vec::new();
            for message in &batch.messages {
                self.metrics.events_in.inc();
                let p = message.partition();
                // A partition kept through a rebalance is fetched again from its committed
                // offset: an offset going back means the state no longer matches the log,
                // so the partition starts over as it would with a new owner.
                let fresh = partitions
                    .get(&p)
                    .is_none_or(|part| message.offset() < part.next_offset);
                if fresh {
                    let part = self.open_partition(message, &shutdown).await?;
                    partitions.insert(p, part);
                }
                let part = partitions.get_mut(&p).expect("opened above");
                part.caught_up = false;
                part.next_offset = message.offset() + 1;
                let mut event = match codec.decode(message.payload().unwrap_or_default()) {
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
                let now = exatom_shared::time::now_ms();
                if let Some(clamped) = clock_ahead(event.received_at_ms, now) {
                    self.metrics.events_clock_ahead.inc();
                    event.received_at_ms = clamped;
                }
                closed.extend(part.state.advance(event.received_at_ms));
                let placed = match part.state.place(&event, message.offset(), now) {
                    Ok(placed) => placed,
                    Err(e) => {
                        self.dead_letter(message, &e.to_string(), &shutdown).await?;
                        continue;
                    }
                };
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
                live.push(EventRow::live(
                    &event,
                    &placed.session_id,
                    message.partition(),
                    message.offset(),
                ));
            }

            // The end of a partition is reported after the messages before it, but only
            // once per end offset: after a partition is fetched again it may not come. A
            // consumer with nothing at all to deliver for a whole poll is caught up too.
            for p in &batch.at_end {
                if let Some(part) = partitions.get_mut(p) {
                    part.caught_up = true;
                }
            }
            if batch.messages.is_empty() {
                for part in partitions.values_mut() {
                    part.caught_up = true;
                }
            }
            // Partitions with nothing left to read follow the wall clock: sessions close on
            // time even when traffic is sparse.
            let now = exatom_shared::time::now_ms();
            for part in partitions.values_mut() {
                if part.caught_up || paused {
                    closed.extend(part.state.idle(now - self.idle_margin_ms, now));
                }
            }

            self.write(&live, &closed, &shutdown).await?;
            self.commit(&mut partitions)?;
            self.report(&partitions);
            self.hold_at_cap(&partitions, &mut paused)?;
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
    /// their events read back, the session record, the session row, the final event rows.
    async fn write(
        &self,
        live: &[EventRow],
        closed: &[ClosedSession],
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
        let assembled =
            retry::until_ok("events read-back", shutdown, retried("clickhouse"), || {
                self.writer.assemble(closed)
            })
            .await?;
        let mut sessions: Vec<Session> = Vec::with_capacity(assembled.len());
        let mut final_rows: Vec<EventRow> = Vec::new();
        for a in assembled {
            self.metrics
                .events_duplicate
                .inc_by(a.already_written as u64);
            sessions.extend(a.session);
            final_rows.extend(a.final_rows);
        }
        retry::until_ok("exatom.sessions", shutdown, retried("kafka"), || {
            self.writer.publish(&sessions)
        })
        .await?;
        let session_rows: Vec<_> = sessions.iter().map(session_row).collect();
        retry::until_ok("sessions", shutdown, retried("clickhouse"), || {
            self.writer.insert_sessions(&session_rows)
        })
        .await?;
        retry::until_ok("events", shutdown, retried("clickhouse"), || {
            self.writer.insert_events(&final_rows)
        })
        .await?;
        self.metrics.sessions_closed.inc_by(sessions.len() as u64);
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
        // The replay starts at the oldest open session's record; records after it were
        // received at most a stream's reordering apart, and an event is at most a day older
        // than its receipt (the collector's `stale` bound): two days back cover them.
        let received_ms = anon_event_codec()
            .decode(first.payload().unwrap_or_default())
            .map_or(0, |e| e.received_at_ms);
        let since_day =
            exatom_shared::time::days_since_epoch((received_ms - 2 * 86_400_000).max(0));
        let retries = self.metrics.write_retries.clone();
        let skip = retry::until_ok(
            "replay check",
            shutdown,
            || retries.with_label_values(&["clickhouse"]).inc(),
            || self.writer.closed_event_ids(partition, offset, since_day),
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

    /// Bounded memory: at the cap, reading pauses (the consumer keeps polling, so it stays
    /// in its group) and sessions close by the wall clock as on an idle partition; reading
    /// resumes below 90 % of the cap. Stragglers of a session closed meanwhile are counted
    /// late and open a session of their own: a split session is better than an exhausted host.
    fn hold_at_cap(
        &self,
        partitions: &HashMap<i32, Partition>,
        paused: &mut bool,
    ) -> anyhow::Result<()> {
        let open: usize = partitions.values().map(|p| p.state.open_sessions()).sum();
        let hold = if *paused {
            open >= self.max_open_sessions / 10 * 9
        } else {
            open >= self.max_open_sessions
        };
        // Re-applied on every pass while held: partitions assigned by a rebalance start unpaused.
        if hold {
            self.consumer.pause(&self.consumer.assignment()?)?;
        } else if *paused {
            self.consumer.resume(&self.consumer.assignment()?)?;
        }
        if hold != *paused {
            if hold {
                tracing::warn!(
                    open,
                    cap = self.max_open_sessions,
                    "open sessions reached EXATOM_MAX_OPEN_SESSIONS: reading paused until sessions close"
                );
            } else {
                tracing::info!(open, "open sessions below 90% of the cap: reading resumed");
            }
            *paused = hold;
        }
        self.metrics.paused.set(i64::from(*paused));
        Ok(())
    }

    fn report(&self, partitions: &HashMap<i32, Partition>) {
        let open: usize = partitions.values().map(|p| p.state.open_sessions()).sum();
        self.metrics.open_sessions.set(open as i64);
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
