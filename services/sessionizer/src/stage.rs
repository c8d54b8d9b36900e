//! The sessionizer's stage of the consume loop: `exatom.anon` → sessions → ClickHouse and
//! `exatom.sessions`.
//!
//! **Crash safety.** Each partition's safe offset is never past the oldest record of a
//! session still open, so a restart replays every open session in full. Records of sessions
//! already closed and written are recognised on replay (their final rows exist in `events`)
//! and skipped. Writes are idempotent (ReplacingMergeTree keyed by event id and session id;
//! the aggregator deduplicates sessions by id), so the replayed tail rewrites the same rows.
//!
//! **Read-back.** Every event is written to `events` as it is placed (live rows); a session
//! that closes gets its events' content back from there (`stored`), so open sessions hold
//! only ids and times. A read that misses an event (a replica that has not caught up) is
//! retried like a failed write: nothing is published from a partial session.

use std::collections::{HashMap, HashSet};

use exatom_core::avro::{anon_event_codec, Codec};
use exatom_core::model::{AnonEvent, Session};
use exatom_plumbing::consume::{Batch, Io, Offsets, Source, Stage, SITE_DELETED};
use exatom_plumbing::dead_letter::Reason;
use exatom_plumbing::deleted_sites::DeletedSites;
use exatom_plumbing::fault::Fault;
use exatom_plumbing::kafka::{ANON_TOPIC, SESSIONS_TOPIC};
use exatom_plumbing::retry;
use rdkafka::message::{Message, OwnedMessage};

use crate::encoder::{session_row, EventRow};
use crate::metrics::SessionizerMetrics;
use crate::rules::{clock_ahead, ClosedSession, PartitionState};
use crate::writer::Writer;

/// One partition's open sessions and what replay needs.
#[derive(Debug)]
struct Partition {
    state: PartitionState,
    /// Events whose session was closed before the last restart.
    skip: HashSet<String>,
    next_offset: i64,
    caught_up: bool,
}

/// The sessionizer's state and settings.
#[derive(Debug)]
pub struct Sessionize {
    pub writer: Writer,
    pub metrics: SessionizerMetrics,
    pub lateness_ms: i64,
    pub idle_margin_ms: i64,
    pub max_open_sessions: usize,
    codec: Codec<AnonEvent>,
    partitions: HashMap<i32, Partition>,
    /// At EXATOM_MAX_OPEN_SESSIONS consumption pauses; sessions then close by the clock.
    paused: bool,
    /// The consumer's rebalance count when the partitions' states were last valid.
    rebalances_seen: u64,
    /// Sites that left: their events are dropped, their open sessions never written.
    deleted: DeletedSites,
}

impl Sessionize {
    pub fn new(
        writer: Writer,
        metrics: SessionizerMetrics,
        lateness_ms: i64,
        idle_margin_ms: i64,
        max_open_sessions: usize,
    ) -> Self {
        Sessionize {
            writer,
            metrics,
            lateness_ms,
            idle_margin_ms,
            max_open_sessions,
            codec: anon_event_codec(),
            partitions: HashMap::new(),
            paused: false,
            rebalances_seen: 0,
            deleted: DeletedSites::default(),
        }
    }

    /// Drops the events and sessions of the sites `deleted` names.
    pub fn dropping(mut self, deleted: DeletedSites) -> Self {
        self.deleted = deleted;
        self
    }

    /// Live rows first (dashboards see events within seconds), then for closed sessions:
    /// their events read back, the session record, the session row, the final event rows.
    async fn write<S: Source>(
        &self,
        live: &[EventRow],
        closed: &[ClosedSession],
        io: &Io<'_, S>,
    ) -> Result<(), Fault> {
        let clickhouse = || io.metrics.on_retry("clickhouse");
        retry::until_ok("events", io.shutdown, clickhouse(), || async {
            self.writer.insert_events(live).await.map_err(|e| e.fault())
        })
        .await?;
        for row in live {
            io.metrics.written("events", row.received_at_ms);
        }
        if closed.is_empty() {
            return Ok(());
        }
        let assembled = retry::until_ok("events read-back", io.shutdown, clickhouse(), || async {
            self.writer.assemble(closed).await.map_err(|e| e.fault())
        })
        .await?;
        let mut sessions: Vec<Session> = Vec::with_capacity(assembled.len());
        // Per session, when the collector received its newest event: the session record's
        // timestamp, so the aggregator can tell how fresh the rollups it writes are.
        let mut received: Vec<i64> = Vec::with_capacity(assembled.len());
        let mut final_rows: Vec<EventRow> = Vec::new();
        for a in assembled {
            self.metrics
                .events_duplicate
                .inc_by(a.already_written as u64);
            if let Some(session) = a.session {
                received.push(
                    a.final_rows
                        .iter()
                        .map(|r| r.received_at_ms)
                        .max()
                        .unwrap_or(0),
                );
                sessions.push(session);
            }
            final_rows.extend(a.final_rows);
        }
        retry::until_ok(
            "exatom.sessions",
            io.shutdown,
            io.metrics.on_retry("kafka"),
            || async {
                self.writer
                    .publish(&sessions, &received)
                    .await
                    .map_err(|e| e.fault())
            },
        )
        .await?;
        let session_rows: Vec<_> = sessions.iter().map(session_row).collect();
        retry::until_ok("sessions", io.shutdown, clickhouse(), || async {
            self.writer
                .insert_sessions(&session_rows)
                .await
                .map_err(|e| e.fault())
        })
        .await?;
        retry::until_ok("events", io.shutdown, clickhouse(), || async {
            self.writer
                .insert_events(&final_rows)
                .await
                .map_err(|e| e.fault())
        })
        .await?;
        for newest in &received {
            io.metrics.written(SESSIONS_TOPIC, *newest);
        }
        self.metrics.sessions_closed.inc_by(sessions.len() as u64);
        Ok(())
    }

    /// Per partition, the oldest offset an open session still needs.
    fn safe_offsets(&self) -> Offsets {
        self.partitions
            .iter()
            .map(|(p, part)| {
                let safe = part.state.min_open_offset().unwrap_or(part.next_offset);
                ((ANON_TOPIC.to_owned(), *p), safe)
            })
            .collect()
    }

    async fn open_partition<S: Source>(
        &self,
        first: &OwnedMessage,
        io: &Io<'_, S>,
    ) -> Result<Partition, Fault> {
        let (partition, offset) = (first.partition(), first.offset());
        // The replay starts at the oldest open session's record; records after it were
        // received at most a stream's reordering apart, and an event is at most a day older
        // than its receipt (the collector's `stale` bound): two days back cover them.
        let received_ms = self
            .codec
            .decode(first.payload().unwrap_or_default())
            .map_or(0, |e| e.received_at_ms);
        let since_day = exatom_core::time::days_since_epoch((received_ms - 2 * 86_400_000).max(0));
        let skip = retry::until_ok(
            "replay check",
            io.shutdown,
            io.metrics.on_retry("clickhouse"),
            || async {
                self.writer
                    .closed_event_ids(partition, offset, since_day)
                    .await
                    .map_err(|e| e.fault())
            },
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
            caught_up: false,
        })
    }

    fn forget_revoked<S: Source>(&mut self, source: &S) {
        let assigned: HashSet<i32> = source.assignment().into_iter().map(|(_, p)| p).collect();
        self.partitions.retain(|p, part| {
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

    /// Bounded memory: at the cap, reading pauses (the consumer keeps polling, so it stays
    /// in its group) and sessions close by the wall clock as on an idle partition; reading
    /// resumes below 90 % of the cap. Stragglers of a session closed meanwhile are counted
    /// late and open a session of their own: a split session is better than an exhausted host.
    fn hold_at_cap<S: Source>(&mut self, source: &S) -> Result<(), Fault> {
        let open: usize = self
            .partitions
            .values()
            .map(|p| p.state.open_sessions())
            .sum();
        let hold = if self.paused {
            open >= self.max_open_sessions / 10 * 9
        } else {
            open >= self.max_open_sessions
        };
        // Re-applied on every pass while held: partitions assigned by a rebalance start unpaused.
        if hold || self.paused {
            source
                .hold(hold)
                .map_err(|e| exatom_plumbing::fault::kafka(&e))?;
        }
        if hold != self.paused {
            if hold {
                tracing::warn!(
                    open,
                    cap = self.max_open_sessions,
                    "open sessions reached EXATOM_MAX_OPEN_SESSIONS: reading paused until sessions close"
                );
            } else {
                tracing::info!(open, "open sessions below 90% of the cap: reading resumed");
            }
            self.paused = hold;
        }
        self.metrics.paused.set(i64::from(self.paused));
        Ok(())
    }

    fn report(&self) {
        let open: usize = self
            .partitions
            .values()
            .map(|p| p.state.open_sessions())
            .sum();
        self.metrics.open_sessions.set(open as i64);
        if let Some(oldest) = self
            .partitions
            .values()
            .map(|p| p.state.stream_time_ms)
            .filter(|t| *t > 0)
            .min()
        {
            self.metrics
                .watermark_lag_seconds
                .set((exatom_core::time::now_ms() - oldest) as f64 / 1000.0);
        }
    }
}

impl Stage for Sessionize {
    async fn handle<S: Source>(&mut self, batch: Batch, io: &Io<'_, S>) -> Result<Offsets, Fault> {
        // After a rebalance every partition is fetched again from its committed offset, even
        // one this replica gets back (and another replica may have moved that offset
        // meanwhile): every partition starts over, replaying its open sessions.
        let rebalances = io.source.rebalances();
        if rebalances != self.rebalances_seen {
            if !self.partitions.is_empty() {
                tracing::info!(
                    partitions = self.partitions.len(),
                    "rebalance: every partition starts over from its committed offset"
                );
            }
            self.partitions.clear();
            self.rebalances_seen = rebalances;
        }
        self.forget_revoked(io.source);
        let mut live = Vec::new();
        let mut closed: Vec<ClosedSession> = Vec::new();
        for message in &batch.messages {
            self.metrics.events_in.inc();
            let p = message.partition();
            // A partition kept through a rebalance is fetched again from its committed
            // offset: an offset going back means the state no longer matches the log, so
            // the partition starts over as it would with a new owner.
            let fresh = self
                .partitions
                .get(&p)
                .is_none_or(|part| message.offset() < part.next_offset);
            if fresh {
                let part = self.open_partition(message, io).await?;
                self.partitions.insert(p, part);
            }
            let part = self.partitions.get_mut(&p).expect("opened above");
            part.caught_up = false;
            part.next_offset = message.offset() + 1;
            let mut event = match self.codec.decode(message.payload().unwrap_or_default()) {
                Ok(event) => event,
                Err(e) => {
                    let detail = format!("{e}");
                    io.dead_letters
                        .send(message, Reason::Undecodable, &detail, io.shutdown)
                        .await?;
                    continue;
                }
            };
            if self.deleted.contains(&event.site) {
                io.metrics.dropped.with_label_values(&[SITE_DELETED]).inc();
                continue;
            }
            if part.skip.remove(&event.event_id) {
                self.metrics.events_replayed.inc();
                continue;
            }
            let now = exatom_core::time::now_ms();
            if let Some(clamped) = clock_ahead(event.received_at_ms, now) {
                self.metrics.events_clock_ahead.inc();
                event.received_at_ms = clamped;
            }
            closed.extend(part.state.advance(event.received_at_ms));
            let placed = match part.state.place(&event, message.offset(), now) {
                Ok(placed) => placed,
                Err(e) => {
                    io.dead_letters
                        .send(message, Reason::Unplaceable, &e.to_string(), io.shutdown)
                        .await?;
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

        // The end of a partition is reported after the messages before it, but only once
        // per end offset: after a partition is fetched again it may not come. A consumer
        // with nothing at all to deliver for a whole poll is caught up too.
        for p in &batch.at_end {
            if let Some(part) = self.partitions.get_mut(p) {
                part.caught_up = true;
            }
        }
        if batch.messages.is_empty() {
            for part in self.partitions.values_mut() {
                part.caught_up = true;
            }
        }
        // Partitions with nothing left to read follow the wall clock: sessions close on
        // time even when traffic is sparse.
        let now = exatom_core::time::now_ms();
        for part in self.partitions.values_mut() {
            if part.caught_up || self.paused {
                closed.extend(part.state.idle(now - self.idle_margin_ms, now));
            }
        }

        // Sessions opened before their site was deleted: their rows are being deleted, so
        // they are neither read back nor written.
        closed.retain(|session| {
            let deleted = self.deleted.contains(&session.site);
            if deleted {
                io.metrics
                    .dropped
                    .with_label_values(&[SITE_DELETED])
                    .inc_by(session.events.len() as u64);
            }
            !deleted
        });
        self.write(&live, &closed, io).await?;
        self.report();
        self.hold_at_cap(io.source)?;
        Ok(self.safe_offsets())
    }
}
