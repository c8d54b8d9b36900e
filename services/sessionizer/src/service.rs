//! The sessionizer's writes: ClickHouse rows and closed sessions on `exatom.sessions`.
//! Every write is idempotent (keyed by event id / session id), so a replay after a crash
//! rewrites the same rows instead of adding new ones.

use std::collections::HashSet;
use std::time::Duration;

use exatom_shared::kafka::SESSIONS_TOPIC;
use exatom_shared::model::Session;
use exatom_shared::warehouse::Warehouse;
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::encoder::{EventRow, SessionEncoder, SessionRow, FINAL_VERSION};

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
}

impl Writer {
    pub async fn insert_events(&self, rows: &[EventRow]) -> Result<(), WriteError> {
        Ok(self.warehouse.insert_rows("events", rows).await?)
    }

    pub async fn insert_sessions(&self, rows: &[SessionRow]) -> Result<(), WriteError> {
        Ok(self.warehouse.insert_rows("sessions", rows).await?)
    }

    /// Produces closed sessions and waits for the broker to acknowledge all of them.
    pub async fn publish(&self, sessions: &[Session]) -> Result<(), WriteError> {
        let mut encoded = Vec::with_capacity(sessions.len());
        for s in sessions {
            encoded.push(self.encoder.encode(s)?);
        }
        let deliveries: Vec<_> = encoded
            .iter()
            .map(|(key, payload)| {
                self.producer.send(
                    FutureRecord::to(SESSIONS_TOPIC).key(key).payload(payload),
                    Duration::from_secs(30),
                )
            })
            .collect();
        for d in deliveries {
            d.await.map_err(|(e, _)| e)?;
        }
        Ok(())
    }

    /// Event ids of a partition, from `from_offset` on, whose session was already closed and
    /// written: a replay after a crash skips them instead of building partial sessions.
    pub async fn closed_event_ids(
        &self,
        partition: i32,
        from_offset: i64,
    ) -> Result<HashSet<String>, WriteError> {
        let ids: Vec<String> = self
            .warehouse
            .client
            .query(
                "SELECT DISTINCT event_id FROM events \
                 WHERE src_partition = ? AND src_offset >= ? AND version = ?",
            )
            .bind(partition)
            .bind(from_offset)
            .bind(FINAL_VERSION)
            .fetch_all()
            .await?;
        Ok(ids.into_iter().collect())
    }
}
