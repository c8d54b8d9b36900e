//! Session replay's stage: `exatom.replay` → the second scrub pass (`pass`) → the
//! ClickHouse table `replay_batches`. It runs in the anonymizer beside the events' loop,
//! with a consumer group of its own, so that replay's large records never hold up events.
//!
//! A replay batch carries no identity (no IP address or user agent ever reaches it): there
//! is no visitor id to make. It joins its session through its page view's id, which is
//! the `event_id` of the page's `page_view` row in `events`.

pub mod pass;

use std::io::{Read, Write};

use clickhouse::Row;
use exatom_core::avro::{replay_batch_codec, Codec};
use exatom_core::model::ReplayBatch;
use exatom_core::time::days_since_epoch;
use exatom_plumbing::consume::{Batch, Io, Offsets, Source, Stage};
use exatom_plumbing::dead_letter::Reason;
use exatom_plumbing::fault::{self, Fault};
use exatom_plumbing::retry;
use exatom_plumbing::warehouse::{Warehouse, RETENTION_DAYS};
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use prometheus::{IntCounter, IntCounterVec, Opts, Registry};
use rdkafka::message::Message;
use serde::Serialize;

use crate::scrub::QueryAllowList;
use pass::{second_pass, Findings};

/// The largest batch the collector lets through, with room: a record expanding past it
/// was not made by the collector and is dead-lettered rather than held in memory.
const MAX_EVENTS_BYTES: u64 = 64 * 1024 * 1024;

/// A row of `replay_batches`.
#[derive(Debug, Clone, PartialEq, Row, Serialize)]
pub struct ReplayRow {
    pub site: String,
    pub day: u16,
    pub page_view_id: String,
    pub seq: u32,
    pub received_ms: i64,
    pub skew_ms: i64,
    pub first_ms: i64,
    pub last_ms: i64,
    pub event_count: u32,
    /// The events' JSON size before compression.
    pub bytes: u32,
    /// The events, a JSON array, gzipped.
    #[serde(with = "serde_bytes")]
    pub events: Vec<u8>,
    /// The first day the row is no longer kept.
    pub expires: u16,
    /// What the second pass fixed in this batch.
    pub findings: u32,
    pub version: u64,
}

/// Why a record cannot become a row: it goes to the dead-letter topic.
#[derive(Debug, thiserror::Error)]
pub enum Unstorable {
    #[error("not a replay batch: {0}")]
    Undecodable(String),
    #[error("events are not gzipped JSON of rrweb events: {0}")]
    Events(String),
}

/// A record of `exatom.replay` made safe and ready to store. Pure.
pub fn to_row(
    batch: ReplayBatch,
    allow: &QueryAllowList,
) -> Result<(ReplayRow, Findings), Unstorable> {
    let mut json = String::new();
    GzDecoder::new(batch.events_gzip.as_slice())
        .take(MAX_EVENTS_BYTES + 1)
        .read_to_string(&mut json)
        .map_err(|e| Unstorable::Events(e.to_string()))?;
    if json.len() as u64 > MAX_EVENTS_BYTES {
        return Err(Unstorable::Events(format!(
            "over {MAX_EVENTS_BYTES} bytes decompressed"
        )));
    }
    let (json, findings) =
        second_pass(&json, allow).map_err(|e| Unstorable::Events(e.to_string()))?;
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::new(3));
    gz.write_all(json.as_bytes())
        .map_err(|e| Unstorable::Events(e.to_string()))?;
    let events = gz.finish().map_err(|e| Unstorable::Events(e.to_string()))?;
    let day = days_since_epoch(batch.received_ms);
    let keep = u32::try_from(batch.keep_days)
        .unwrap_or(0)
        .clamp(1, RETENTION_DAYS);
    Ok((
        ReplayRow {
            site: batch.site,
            day,
            page_view_id: batch.page_view_id,
            seq: u32::try_from(batch.seq).unwrap_or(0),
            received_ms: batch.received_ms,
            skew_ms: batch.skew_ms,
            first_ms: batch.first_ms,
            last_ms: batch.last_ms,
            event_count: u32::try_from(batch.event_count).unwrap_or(0),
            bytes: u32::try_from(json.len()).unwrap_or(u32::MAX),
            events,
            expires: day.saturating_add(u16::try_from(keep).unwrap_or(90)),
            findings: u32::try_from(findings.total()).unwrap_or(u32::MAX),
            // A batch sent again is the same batch: any version will do, and the newest
            // write wins.
            version: u64::try_from(batch.received_ms).unwrap_or(0),
        },
        findings,
    ))
}

/// The replay loop's metrics.
#[derive(Debug, Clone)]
pub struct ReplayMetrics {
    pub batches_stored: IntCounter,
    pub findings: IntCounterVec,
}

impl ReplayMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let m = ReplayMetrics {
            batches_stored: IntCounter::new(
                "exatom_anonymizer_replay_batches_stored_total",
                "Replay batches written to replay_batches",
            )?,
            findings: IntCounterVec::new(
                Opts::new(
                    "exatom_anonymizer_replay_findings_total",
                    "What the second pass over replay batches fixed, by where: anything \
                     here is something a recorder let through",
                ),
                &["where"],
            )?,
        };
        for place in ["text", "attribute", "input", "foreign_event"] {
            m.findings.with_label_values(&[place]);
        }
        registry.register(Box::new(m.batches_stored.clone()))?;
        registry.register(Box::new(m.findings.clone()))?;
        Ok(m)
    }

    fn count(&self, f: &Findings) {
        for (place, n) in [
            ("text", f.texts),
            ("attribute", f.attributes),
            ("input", f.inputs),
            ("foreign_event", f.foreign_events),
        ] {
            self.findings.with_label_values(&[place]).inc_by(n);
        }
    }
}

/// The stage: decode, second pass, insert; offsets are safe once the insert is done.
pub struct StoreReplays {
    pub warehouse: Warehouse,
    pub allow: QueryAllowList,
    pub metrics: ReplayMetrics,
    codec: Codec<ReplayBatch>,
}

impl std::fmt::Debug for StoreReplays {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreReplays").finish_non_exhaustive()
    }
}

impl StoreReplays {
    pub fn new(warehouse: Warehouse, allow: QueryAllowList, metrics: ReplayMetrics) -> Self {
        StoreReplays {
            warehouse,
            allow,
            metrics,
            codec: replay_batch_codec(),
        }
    }
}

impl Stage for StoreReplays {
    async fn handle<S: Source>(&mut self, batch: Batch, io: &Io<'_, S>) -> Result<Offsets, Fault> {
        if batch.messages.is_empty() {
            return Ok(Offsets::new());
        }
        let mut rows = Vec::with_capacity(batch.messages.len());
        for message in &batch.messages {
            let stored = self
                .codec
                .decode(message.payload().unwrap_or_default())
                .map_err(|e| (Reason::Undecodable, Unstorable::Undecodable(e.to_string())))
                .and_then(|b| to_row(b, &self.allow).map_err(|e| (Reason::Invalid, e)));
            match stored {
                Ok((row, findings)) => {
                    self.metrics.count(&findings);
                    rows.push(row);
                }
                Err((reason, e)) => {
                    io.dead_letters
                        .send(message, reason, &e.to_string(), io.shutdown)
                        .await?
                }
            }
        }
        retry::until_ok(
            "replay_batches",
            io.shutdown,
            io.metrics.on_retry("clickhouse"),
            || async {
                self.warehouse
                    .insert_rows("replay_batches", &rows)
                    .await
                    .map_err(|e| fault::clickhouse(&e))
            },
        )
        .await?;
        for row in &rows {
            io.metrics.written("replay_batches", row.received_ms);
        }
        self.metrics.batches_stored.inc_by(rows.len() as u64);
        Ok(batch.next_offsets())
    }
}

#[cfg(test)]
mod tests;
