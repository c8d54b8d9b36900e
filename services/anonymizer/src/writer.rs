//! The anonymizer's writes: anonymized records to `exatom.anon`, every one acknowledged.

use std::sync::Mutex;

use exatom_plumbing::consume::{Io, Source};
use exatom_plumbing::fault::{self, Fault};
use exatom_plumbing::kafka::{self, ANON_TOPIC};
use exatom_plumbing::retry;
use prometheus::IntCounter;
use rdkafka::producer::{FutureProducer, FutureRecord};

/// One anonymized record: its key, its Avro bytes, and when the collector received it.
#[derive(Debug)]
pub struct AnonRecord {
    pub key: String,
    pub payload: Vec<u8>,
    pub received_at_ms: i64,
}

/// Produces to `exatom.anon`.
pub struct Writer {
    pub producer: FutureProducer,
    pub records_out: IntCounter,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

impl Writer {
    /// Produces every record and waits for every acknowledgement; the ones the broker did
    /// not take are sent again with backoff (the idempotent producer keeps each key's order).
    pub async fn deliver<S: Source>(
        &self,
        records: Vec<AnonRecord>,
        io: &Io<'_, S>,
    ) -> Result<(), Fault> {
        let pending = Mutex::new(records);
        retry::until_ok(
            "exatom.anon",
            io.shutdown,
            io.metrics.on_retry("kafka"),
            || async {
                let batch = std::mem::take(&mut *pending.lock().expect("not poisoned"));
                let results = kafka::produce_all(
                    &self.producer,
                    batch.iter().map(|r| {
                        FutureRecord::to(ANON_TOPIC)
                            .key(r.key.as_str())
                            .payload(r.payload.as_slice())
                    }),
                )
                .await;
                let mut failed = Vec::new();
                let mut first_fault = None;
                for (record, result) in batch.into_iter().zip(results) {
                    match result {
                        Ok(()) => {
                            self.records_out.inc();
                            io.metrics.written(ANON_TOPIC, record.received_at_ms);
                        }
                        Err(e) => {
                            first_fault.get_or_insert_with(|| fault::kafka(&e));
                            failed.push(record);
                        }
                    }
                }
                *pending.lock().expect("not poisoned") = failed;
                first_fault.map_or(Ok(()), Err)
            },
        )
        .await
    }
}
