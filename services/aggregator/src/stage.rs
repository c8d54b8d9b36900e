//! The aggregator's stage of the consume loop: closed sessions → form analytics rows →
//! ClickHouse, rollups recomputed, before the batch's offsets are called safe.

use std::time::Instant;

use exatom_core::avro::{session_codec, Codec};
use exatom_core::model::Session;
use exatom_plumbing::consume::{Batch, Io, Offsets, Source, Stage, SITE_DELETED};
use exatom_plumbing::dead_letter::Reason;
use exatom_plumbing::deleted_sites::DeletedSites;
use exatom_plumbing::fault::{self, Fault};
use exatom_plumbing::retry;
use rdkafka::message::Message;

use crate::analytics::analyze;
use crate::encoder::Rows;
use crate::metrics::AggregatorMetrics;
use crate::writer::Writer;

/// The aggregator's state.
#[derive(Debug)]
pub struct Aggregate {
    pub writer: Writer,
    pub metrics: AggregatorMetrics,
    codec: Codec<Session>,
    /// Sites that left: their sessions are dropped.
    deleted: DeletedSites,
}

impl Aggregate {
    pub fn new(writer: Writer, metrics: AggregatorMetrics, deleted: DeletedSites) -> Self {
        Aggregate {
            writer,
            metrics,
            codec: session_codec(),
            deleted,
        }
    }
}

impl Stage for Aggregate {
    async fn handle<S: Source>(&mut self, batch: Batch, io: &Io<'_, S>) -> Result<Offsets, Fault> {
        if batch.messages.is_empty() {
            return Ok(Offsets::new());
        }
        let mut rows = Rows::default();
        // When the collector received each session's newest event (the record's timestamp,
        // set so by the sessionizer): how fresh the rollups are once written.
        let mut newest = Vec::with_capacity(batch.messages.len());
        for message in &batch.messages {
            match self.codec.decode(message.payload().unwrap_or_default()) {
                Ok(session) if self.deleted.contains(&session.site) => {
                    io.metrics.dropped.with_label_values(&[SITE_DELETED]).inc();
                }
                Ok(session) => {
                    self.metrics.sessions_in.inc();
                    newest.push(message.timestamp().to_millis().unwrap_or(session.ended_ms));
                    let analytics = analyze(&session);
                    rows.add(&session, analytics);
                }
                Err(e) => {
                    io.dead_letters
                        .send(message, Reason::Undecodable, &e.to_string(), io.shutdown)
                        .await?
                }
            }
        }
        let started = Instant::now();
        let refreshed = retry::until_ok(
            "clickhouse",
            io.shutdown,
            io.metrics.on_retry("clickhouse"),
            || async {
                self.writer
                    .write(&rows)
                    .await
                    .map_err(|e| fault::clickhouse(&e))
            },
        )
        .await?;
        for received_ms in newest {
            io.metrics.written("rollups", received_ms);
        }
        for (rollup, groups) in refreshed {
            self.metrics
                .rollup_groups
                .with_label_values(&[rollup])
                .inc_by(groups as u64);
        }
        self.metrics
            .write_seconds
            .observe(started.elapsed().as_secs_f64());
        for (table, n) in [
            ("form_sessions", rows.forms.len()),
            ("field_interactions", rows.fields.len()),
            ("conversions", rows.conversions.len()),
            ("tooltip_events", rows.tooltips.len()),
            ("click_bins", rows.click_bins.len()),
            ("page_scrolls", rows.scrolls.len()),
            ("session_errors", rows.errors.len()),
        ] {
            self.metrics
                .rows_written
                .with_label_values(&[table])
                .inc_by(n as u64);
        }
        Ok(batch.next_offsets())
    }
}
