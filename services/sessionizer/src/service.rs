//! The sessionizer's writes: ClickHouse rows and closed sessions on `exatom.sessions`.
//! Every write is idempotent (keyed by event id / session id), so a replay after a crash
//! rewrites the same rows instead of adding new ones.

use std::collections::{BTreeSet, HashMap, HashSet};

use exatom_shared::kafka::SESSIONS_TOPIC;
use exatom_shared::model::Session;
use exatom_shared::warehouse::Warehouse;
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::encoder::{EventRow, SessionEncoder, SessionRow, FINAL_VERSION};
use crate::rules::ClosedSession;
use crate::stored::{self, Assembled, StoredEvent, STORED_COLUMNS};

/// Event ids per read-back query: keeps the query text well under ClickHouse's default
/// `max_query_size` (256 KiB) at 39 bytes an id.
const READ_BACK_CHUNK: usize = 2_000;

/// Where the sessionizer writes.
pub struct Writer {
    pub warehouse: Warehouse,
    pub producer: FutureProducer,
    pub encoder: SessionEncoder,
}

/// A write that did not succeed: the caller retries with backoff and does not commit.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("ClickHouse: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
    #[error("Kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("encoding: {0}")]
    Codec(#[from] exatom_shared::avro::CodecError),
    #[error(transparent)]
    Missing(#[from] stored::Missing),
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
                    .map(|(t, _, _)| format!("'{}'", exatom_shared::time::utc_day(*t)))
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

    /// Produces closed sessions and waits for the broker to acknowledge all of them.
    pub async fn publish(&self, sessions: &[Session]) -> Result<(), WriteError> {
        let mut encoded = Vec::with_capacity(sessions.len());
        for s in sessions {
            encoded.push(self.encoder.encode(s)?);
        }
        let records = encoded.iter().map(|(key, payload)| {
            FutureRecord::to(SESSIONS_TOPIC)
                .key(key.as_str())
                .payload(payload.as_slice())
        });
        for delivered in exatom_shared::kafka::produce_all(&self.producer, records).await {
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
