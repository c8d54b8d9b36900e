//! The dead-letter writer: a record that can never be processed goes to `exatom.dlq`, keyed
//! by where it came from, with a reason from a closed set, and its partition moves on. The
//! same writer, metric and reasons serve every consumer.

use std::time::Duration;

use prometheus::{IntCounterVec, Opts, Registry};
use rdkafka::message::{Header, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::consume::ConsumerMetrics;
use crate::fault::{self, Fault};
use crate::kafka::DLQ_TOPIC;
use crate::retry;
use crate::telemetry::Shutdown;

/// Why a record was dead-lettered: the `reason` label of `exatom_dlq_records_total` and the
/// first word of the record's `exatom.reason` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The bytes are not a record of the topic's schema.
    Undecodable,
    /// The record decodes but breaks a promise of the stage that wrote it (a site, id or
    /// currency the collector would never let through).
    Invalid,
    /// The day's salt is gone: hashing with another day's would link visitors across days.
    SaltExpired,
    /// The record claims a day more than a day ahead of this replica's clock.
    SaltFuture,
    /// The stage's output could not be encoded.
    Unencodable,
    /// The sessionizer cannot hold the record (ids not in the shape the anonymizer writes).
    Unplaceable,
}

impl Reason {
    pub const ALL: [Reason; 6] = [
        Reason::Undecodable,
        Reason::Invalid,
        Reason::SaltExpired,
        Reason::SaltFuture,
        Reason::Unencodable,
        Reason::Unplaceable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Undecodable => "undecodable",
            Reason::Invalid => "invalid",
            Reason::SaltExpired => "salt_expired",
            Reason::SaltFuture => "salt_future",
            Reason::Unencodable => "unencodable",
            Reason::Unplaceable => "unplaceable",
        }
    }
}

/// Writes dead letters and counts them.
#[derive(Clone)]
pub struct DeadLetters {
    producer: FutureProducer,
    records: IntCounterVec,
    /// Where a write to the DLQ that had to be retried is counted (`kafka`).
    consumer: ConsumerMetrics,
}

impl std::fmt::Debug for DeadLetters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetters").finish_non_exhaustive()
    }
}

impl DeadLetters {
    /// `exatom_dlq_records_total{reason}`, every reason at 0 from the start so that a rate
    /// over it is defined before the first dead letter.
    pub fn new(
        producer: FutureProducer,
        registry: &Registry,
        consumer: ConsumerMetrics,
    ) -> prometheus::Result<Self> {
        let records = IntCounterVec::new(
            Opts::new(
                "exatom_dlq_records_total",
                "Records sent to exatom.dlq, by reason",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(records.clone()))?;
        for reason in Reason::ALL {
            records.with_label_values(&[reason.as_str()]);
        }
        Ok(DeadLetters {
            producer,
            records,
            consumer,
        })
    }

    /// Sends `source` to the DLQ and waits for the broker (retrying while it is away). The
    /// detail goes into the header after the reason; it must not quote the record.
    pub async fn send(
        &self,
        source: &OwnedMessage,
        reason: Reason,
        detail: &str,
        shutdown: &Shutdown,
    ) -> Result<(), Fault> {
        let key = format!(
            "{}/{}/{}",
            source.topic(),
            source.partition(),
            source.offset()
        );
        let header = if detail.is_empty() {
            reason.as_str().to_owned()
        } else {
            format!("{}: {detail}", reason.as_str())
        };
        tracing::warn!(
            topic = source.topic(),
            partition = source.partition(),
            offset = source.offset(),
            reason = reason.as_str(),
            "record sent to the DLQ"
        );
        retry::until_ok(
            "exatom.dlq",
            shutdown,
            self.consumer.on_retry("kafka"),
            || async {
                let headers = OwnedHeaders::new()
                    .insert(Header {
                        key: "exatom.reason",
                        value: Some(&header),
                    })
                    .insert(Header {
                        key: "exatom.source",
                        value: Some(&key),
                    });
                let record = FutureRecord::to(DLQ_TOPIC)
                    .key(&key)
                    .payload(source.payload().unwrap_or_default())
                    .headers(headers);
                self.producer
                    .send(record, Duration::from_secs(30))
                    .await
                    .map(|_| ())
                    .map_err(|(e, _)| fault::kafka(&e))
            },
        )
        .await?;
        self.records.with_label_values(&[reason.as_str()]).inc();
        Ok(())
    }
}
