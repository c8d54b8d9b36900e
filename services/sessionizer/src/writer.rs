//! The sessionizer's writes: ClickHouse rows and closed sessions on `exatom.sessions`.
//! Every write is idempotent (keyed by event id / session id), so a replay after a crash
//! rewrites the same rows instead of adding new ones.

use std::collections::{BTreeSet, HashMap, HashSet};

use exatom_core::model::Session;
use exatom_plumbing::fault::{self, Cause, Fault};
use exatom_plumbing::kafka::SESSIONS_TOPIC;
use exatom_plumbing::warehouse::Warehouse;
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::encoder::{EventRow, SessionEncoder, SessionRow, FINAL_VERSION};
use crate::rules::ClosedSession;
use crate::stored::{self, Assembled, StoredEvent, STORED_COLUMNS};

/// Events per read-back query: keeps the query text under ClickHouse's default
/// `max_query_size` (256 KiB) at 39 bytes an event id and 67 a visitor id.
const READ_BACK_CHUNK: usize = 2_000;

/// Where the sessionizer writes.
pub struct Writer {
    pub warehouse: Warehouse,
    pub producer: FutureProducer,
    pub encoder: SessionEncoder,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("warehouse", &self.warehouse)
            .finish_non_exhaustive()
    }
}

/// A write that did not succeed: retried with backoff when it may pass, and never committed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("ClickHouse: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
    #[error("Kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("encoding: {0}")]
    Codec(#[from] exatom_core::avro::CodecError),
    #[error(transparent)]
    Missing(#[from] stored::Missing),
}

impl WriteError {
    pub fn fault(&self) -> Fault {
        match self {
            WriteError::ClickHouse(e) => fault::clickhouse(e),
            WriteError::Kafka(e) => fault::kafka(e),
            // A session the schema cannot hold: this build and the schema disagree.
            WriteError::Codec(e) => Fault::Deployment {
                what: format!("a closed session does not encode as Avro `Session`: {e}"),
                fix: "deploy a sessionizer built with the schemas of this pipeline".into(),
            },
            // A replica of ClickHouse that has not caught up: read again.
            WriteError::Missing(e) => Fault::retriable(Cause::NotVisibleYet, e.to_string()),
        }
    }
}

impl Writer {
    pub async fn insert_events(&self, rows: &[EventRow]) -> Result<(), WriteError> {
        Ok(self.warehouse.insert_rows("events", rows).await?)
    }

    pub async fn insert_sessions(&self, rows: &[SessionRow]) -> Result<(), WriteError> {
        Ok(self.warehouse.insert_rows("sessions", rows).await?)
    }

    /// Reads back the events of closed sessions and assembles each session's record and
    /// final rows. The query goes by the table's sort key (site, day, visitor, event id):
    /// each closing session costs one small granule per part, whatever the day holds.
    pub async fn assemble(&self, closed: &[ClosedSession]) -> Result<Vec<Assembled>, WriteError> {
        let mut by_site: HashMap<&str, Vec<(i64, &str, String)>> = HashMap::new();
        for session in closed {
            let wanted = by_site.entry(&session.site).or_default();
            wanted.extend(
                session
                    .events
                    .iter()
                    .map(|e| (e.event_time_ms, session.visitor_id.as_str(), e.event_id())),
            );
        }
        let mut stored: HashMap<String, StoredEvent> = HashMap::new();
        for (site, wanted) in by_site {
            for chunk in wanted.chunks(READ_BACK_CHUNK) {
                let days: BTreeSet<String> = chunk
                    .iter()
                    .map(|(t, _, _)| format!("'{}'", exatom_core::time::utc_day(*t)))
                    .collect();
                // Visitor ids (64 hex digits) and event ids (canonical UUIDs) come from
                // `rules`, which refuses any other shape: safe to inline.
                let visitors: BTreeSet<String> =
                    chunk.iter().map(|(_, v, _)| format!("'{v}'")).collect();
                let ids: Vec<String> = chunk.iter().map(|(_, _, id)| format!("'{id}'")).collect();
                let sql = format!(
                    "SELECT {STORED_COLUMNS} FROM events WHERE site = ? AND day IN ({}) \
                     AND visitor_id IN ({}) AND event_id IN ({})",
                    days.into_iter().collect::<Vec<_>>().join(","),
                    visitors.into_iter().collect::<Vec<_>>().join(","),
                    ids.join(",")
                );
                let rows: Vec<StoredEvent> = self
                    .warehouse
                    .client
                    .query(&sql)
                    .bind(site)
                    .fetch_all()
                    .await?;
                for row in rows {
                    let row = match stored.remove(&row.event_id) {
                        Some(seen) => seen.prefer(row),
                        None => row,
                    };
                    stored.insert(row.event_id.clone(), row);
                }
            }
        }
        let mut assembled = Vec::with_capacity(closed.len());
        for session in closed {
            assembled.push(stored::assemble(session, &stored)?);
        }
        Ok(assembled)
    }

    /// Produces closed sessions and waits for the broker to acknowledge all of them. Each
    /// record's timestamp is `received[i]`, when the collector received the session's newest
    /// event (0: the broker's time).
    pub async fn publish(&self, sessions: &[Session], received: &[i64]) -> Result<(), WriteError> {
        let mut encoded = Vec::with_capacity(sessions.len());
        for s in sessions {
            encoded.push(self.encoder.encode(s)?);
        }
        let records = encoded.iter().zip(received).map(|((key, payload), at)| {
            let record = FutureRecord::to(SESSIONS_TOPIC)
                .key(key.as_str())
                .payload(payload.as_slice());
            if *at > 0 {
                record.timestamp(*at)
            } else {
                record
            }
        });
        for delivered in exatom_plumbing::kafka::produce_all(&self.producer, records).await {
            delivered?;
        }
        Ok(())
    }

    /// Event ids of a partition, from `from_offset` on, whose session was already closed and
    /// written: a replay after a crash skips them instead of building partial sessions.
    /// `since_day` bounds the scan: no event of the replay is from an earlier day.
    pub async fn closed_event_ids(
        &self,
        partition: i32,
        from_offset: i64,
        since_day: u16,
    ) -> Result<HashSet<String>, WriteError> {
        let ids: Vec<String> = self
            .warehouse
            .client
            .query(
                "SELECT DISTINCT event_id FROM events WHERE day >= toDate(?) \
                 AND src_partition = ? AND src_offset >= ? AND version = ?",
            )
            .bind(since_day)
            .bind(partition)
            .bind(from_offset)
            .bind(FINAL_VERSION)
            .fetch_all()
            .await?;
        Ok(ids.into_iter().collect())
    }
}
