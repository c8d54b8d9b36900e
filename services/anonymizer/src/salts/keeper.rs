//! The salts topic, read from its start and written when a day has no salt yet; salts kept
//! in memory only.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::NaiveDate;
use exatom_plumbing::kafka;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::book::{fresh_salt, in_range, record_timestamp_ms, OutOfRange, SaltBook};
use crate::visitor::Salt;

/// Longest salts retention the product allows: a salt must be gone two days after its day.
pub const MAX_SALT_RETENTION_MS: i64 = 48 * 3_600_000;

/// Why an event cannot get a salt.
#[derive(Debug, thiserror::Error)]
pub enum SaltError {
    /// For good: the event goes to the DLQ.
    #[error(transparent)]
    OutOfRange(#[from] OutOfRange),
    /// For now (broker unreachable, topic not read yet): the event waits and is retried.
    #[error("the salt of {0} could not be agreed: {1}")]
    Unavailable(NaiveDate, String),
}

/// Why the anonymizer refuses to start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "the salts topic keeps records for {0} ms, longer than 48 h: salts would outlive \
         the privacy promise. Set retention.ms ≤ {MAX_SALT_RETENTION_MS} and \
         cleanup.policy=delete on the topic, or set EXATOM_ALLOW_LONG_SALT_RETENTION=true"
    )]
    RetentionTooLong(i64),
    #[error(
        "the salts topic has cleanup.policy={0}: salts must be deleted, not compacted. \
         Set cleanup.policy=delete, or EXATOM_ALLOW_LONG_SALT_RETENTION=true"
    )]
    NotDeleted(String),
    #[error("cannot read the configuration of the salts topic (create it with `exatom-admin topics`): {0}")]
    Unreadable(String),
}

/// Checks the salts topic deletes what it holds within 48 hours.
pub fn check_salt_retention(
    configs: &std::collections::HashMap<String, String>,
) -> Result<(), StartError> {
    let policy = configs
        .get("cleanup.policy")
        .map(String::as_str)
        .unwrap_or("delete");
    if policy.split(',').any(|p| p.trim() != "delete") {
        return Err(StartError::NotDeleted(policy.to_owned()));
    }
    let retention: i64 = configs
        .get("retention.ms")
        .and_then(|v| v.parse().ok())
        .unwrap_or(7 * 24 * 3_600_000);
    if !(0..=MAX_SALT_RETENTION_MS).contains(&retention) {
        return Err(StartError::RetentionTooLong(retention));
    }
    Ok(())
}

/// The salts every replica agrees on, kept in memory only.
#[derive(Clone)]
pub struct SaltKeeper {
    book: Arc<Mutex<SaltBook>>,
    producer: FutureProducer,
    reader: Arc<StreamConsumer>,
    topic: Arc<str>,
}

impl std::fmt::Debug for SaltKeeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaltKeeper").finish_non_exhaustive()
    }
}

impl SaltKeeper {
    /// Starts reading the salts topic (`exatom.salts`) from its beginning.
    pub fn start(brokers: &str, topic: &str, producer: FutureProducer) -> Result<Self, KafkaError> {
        let reader: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            // Assigned, not subscribed: every replica reads the whole topic; nothing is committed.
            .set("group.id", "exatom-anonymizer-salts")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .set("fetch.wait.max.ms", "50")
            .create()?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, Offset::Beginning)?;
        reader.assign(&tpl)?;
        let keeper = SaltKeeper {
            book: Arc::new(Mutex::new(SaltBook::default())),
            producer,
            reader: Arc::new(reader),
            topic: topic.into(),
        };
        let reader = Arc::clone(&keeper.reader);
        let book = Arc::clone(&keeper.book);
        tokio::spawn(async move {
            loop {
                match reader.recv().await {
                    Ok(m) => {
                        let result = book.lock().map(|mut b| {
                            b.observe(
                                m.offset(),
                                m.key().unwrap_or_default(),
                                m.payload().unwrap_or_default(),
                            )
                        });
                        if let Ok(Err(e)) = result {
                            tracing::warn!(offset = m.offset(), error = %e, "ignoring a bad salts record");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "reading salts");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        });
        Ok(keeper)
    }

    /// The salt of `day`, writing a candidate when none exists yet; only yesterday's,
    /// today's and tomorrow's are ever used (`today` given by the caller's clock). Returns
    /// whether this replica's candidate became the day's salt.
    pub async fn salt_for(
        &self,
        day: NaiveDate,
        today: NaiveDate,
    ) -> Result<(Salt, bool), SaltError> {
        in_range(day, today)?;
        if let Some(salt) = self.known(day) {
            return Ok((salt, false));
        }
        // Before writing a candidate, read everything already in the topic.
        let (_, high) = self
            .reader
            .fetch_watermarks(&self.topic, 0, Duration::from_secs(5))
            .map_err(|e| SaltError::Unavailable(day, e.to_string()))?;
        self.wait_read_past(high - 1, day).await?;
        if let Some(salt) = self.known(day) {
            return Ok((salt, false));
        }
        let key = day.format("%Y-%m-%d").to_string();
        let candidate = fresh_salt();
        let delivered = self
            .producer
            .send(
                FutureRecord::to(&self.topic)
                    .key(&key)
                    .payload(&candidate[..])
                    .timestamp(record_timestamp_ms(day)),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| SaltError::Unavailable(day, e.to_string()))?;
        // Whoever wrote first wins: read up to our own record, then take the first of the day.
        self.wait_read_past(delivered.offset, day).await?;
        let salt = self
            .known(day)
            .ok_or_else(|| SaltError::Unavailable(day, "salt not read back".into()))?;
        Ok((salt, salt == candidate))
    }

    fn known(&self, day: NaiveDate) -> Option<Salt> {
        self.book.lock().ok().and_then(|b| b.get(day).copied())
    }

    async fn wait_read_past(&self, offset: i64, day: NaiveDate) -> Result<(), SaltError> {
        for _ in 0..300 {
            let read = self.book.lock().map(|b| b.read_up_to).unwrap_or(0);
            if read > offset {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(SaltError::Unavailable(
            day,
            format!("{} not read up to offset {offset} within 6 s", self.topic),
        ))
    }

    /// The day of the oldest salt held.
    pub fn oldest_day(&self) -> Option<NaiveDate> {
        self.book.lock().ok().and_then(|b| b.days().next().copied())
    }

    /// Forgets salts older than yesterday: the topic deletes them too. Returns how many.
    pub fn forget_expired(&self, today: NaiveDate) -> usize {
        self.book
            .lock()
            .map(|mut b| b.forget_before(today - chrono::Days::new(1)))
            .unwrap_or(0)
    }
}

/// Reads and checks the salts topic's configuration at start.
pub async fn verify_salts_topic(
    brokers: &str,
    topic: &str,
    allow_long: bool,
) -> Result<(), StartError> {
    let configs = kafka::topic_config(brokers, topic)
        .await
        .map_err(|e| StartError::Unreadable(e.to_string()));
    let verdict = configs.and_then(|c| check_salt_retention(&c));
    match verdict {
        Err(e) if allow_long => {
            tracing::warn!(error = %e, "salts retention check overridden");
            Ok(())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn configs(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn salts_retention_over_48_hours_is_refused() {
        assert!(check_salt_retention(&configs(&[
            ("cleanup.policy", "delete"),
            ("retention.ms", "172800000")
        ]))
        .is_ok());
        assert!(matches!(
            check_salt_retention(&configs(&[
                ("cleanup.policy", "delete"),
                ("retention.ms", "172800001")
            ])),
            Err(StartError::RetentionTooLong(172_800_001))
        ));
        assert!(matches!(
            check_salt_retention(&configs(&[("retention.ms", "-1")])),
            Err(StartError::RetentionTooLong(-1))
        ));
        // Kafka's default (7 days) when nothing is set.
        assert!(check_salt_retention(&configs(&[])).is_err());
        assert!(matches!(
            check_salt_retention(&configs(&[
                ("cleanup.policy", "compact,delete"),
                ("retention.ms", "1000")
            ])),
            Err(StartError::NotDeleted(_))
        ));
    }
}
