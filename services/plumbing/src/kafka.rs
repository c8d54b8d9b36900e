//! Kafka plumbing: topic layout, producers and consumers configured the same way everywhere.
//!
//! Nothing here depends on a particular broker: the local stack runs tansu, production
//! runs Apache Kafka, Redpanda or a managed Kafka.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;

pub const RAW_TOPIC: &str = "exatom.raw";
pub const ANON_TOPIC: &str = "exatom.anon";
pub const SESSIONS_TOPIC: &str = "exatom.sessions";
pub const SALTS_TOPIC: &str = "exatom.salts";
pub const DLQ_TOPIC: &str = "exatom.dlq";
pub const REPLAY_TOPIC: &str = "exatom.replay";

const HOUR_MS: u64 = 3_600_000;

/// A topic as the project creates it: partitions and the configs that make retention real.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicSpec {
    pub name: &'static str,
    pub partitions: i32,
    pub replication: i32,
    pub configs: Vec<(&'static str, String)>,
}

/// The topic chain. `cleanup.policy=delete` is stated explicitly everywhere because some
/// brokers (tansu) apply `retention.ms` only when the policy is set on the topic.
pub fn topic_layout(partitions: i32, replication: i32) -> Vec<TopicSpec> {
    let delete_after = |ms: u64, segment_ms: u64| {
        vec![
            ("cleanup.policy", "delete".to_owned()),
            ("retention.ms", ms.to_string()),
            // Retention drops whole segments: small segments make the deadline tight.
            ("segment.ms", segment_ms.to_string()),
        ]
    };
    vec![
        TopicSpec {
            name: RAW_TOPIC,
            partitions,
            replication,
            configs: delete_after(24 * HOUR_MS, HOUR_MS),
        },
        TopicSpec {
            name: ANON_TOPIC,
            partitions,
            replication,
            configs: delete_after(7 * 24 * HOUR_MS, 6 * HOUR_MS),
        },
        TopicSpec {
            name: SESSIONS_TOPIC,
            partitions,
            replication,
            configs: delete_after(7 * 24 * HOUR_MS, 6 * HOUR_MS),
        },
        TopicSpec {
            // One partition: every replica must see every salt in the same order.
            name: SALTS_TOPIC,
            partitions: 1,
            replication,
            configs: delete_after(48 * HOUR_MS, HOUR_MS),
        },
        TopicSpec {
            // Replay batches: large, so apart from `exatom.raw`, whose events they must not
            // slow. Browser-masked but not yet through the server's second pass: 24 h.
            name: REPLAY_TOPIC,
            partitions,
            replication,
            configs: delete_after(24 * HOUR_MS, HOUR_MS),
        },
        TopicSpec {
            // Dead letters from the anonymizer are raw records, IP address and user agent
            // included: they may not outlive `exatom.raw`.
            name: DLQ_TOPIC,
            partitions: 1,
            replication,
            configs: delete_after(24 * HOUR_MS, HOUR_MS),
        },
    ]
}

fn admin(brokers: &str) -> Result<AdminClient<DefaultClientContext>, KafkaError> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("socket.timeout.ms", "10000")
        .create()
}

/// Creates the topics that do not exist yet; existing topics are left as they are.
pub async fn ensure_topics(brokers: &str, specs: &[TopicSpec]) -> Result<(), KafkaError> {
    let admin = admin(brokers)?;
    let new_topics: Vec<NewTopic> = specs
        .iter()
        .map(|spec| {
            spec.configs.iter().fold(
                NewTopic::new(
                    spec.name,
                    spec.partitions,
                    TopicReplication::Fixed(spec.replication),
                ),
                |topic, (k, v)| topic.set(k, v),
            )
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics(&new_topics, &opts).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(KafkaError::AdminOp(code)).inspect_err(
                    |_| tracing::error!(topic = %name, error = %code, "topic creation failed"),
                )
            }
        }
    }
    Ok(())
}

/// Reads a topic's effective configuration (for checks such as the salts retention bound).
pub async fn topic_config(
    brokers: &str,
    topic: &str,
) -> Result<HashMap<String, String>, KafkaError> {
    let admin = admin(brokers)?;
    let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let mut out = HashMap::new();
    for resource in admin
        .describe_configs(&[ResourceSpecifier::Topic(topic)], &opts)
        .await?
    {
        let resource = resource.map_err(KafkaError::AdminOp)?;
        for entry in resource.entries {
            if let Some(value) = entry.value {
                out.insert(entry.name, value);
            }
        }
    }
    Ok(out)
}

/// Producer settings shared by every service: idempotent, `acks=all`, compressed, batched.
///
/// `queue_messages` bounds librdkafka's in-memory queue; a full queue is backpressure that
/// callers must surface (503, paused consumption), never a crash.
pub fn producer(brokers: &str, queue_messages: u32) -> Result<FutureProducer, KafkaError> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", queue_messages.to_string())
        .set("message.timeout.ms", "30000")
        .create()
}

/// Enqueues every record at once, so that librdkafka batches them, and waits for every
/// acknowledgement; the results come in the records' order. `FutureProducer::send` is lazy:
/// awaiting its futures one after the other sends one record per round trip (2 000 records
/// took 12 s that way). A full queue is waited out: it drains as acknowledgements arrive.
pub async fn produce_all<'a>(
    producer: &FutureProducer,
    records: impl IntoIterator<Item = FutureRecord<'a, str, [u8]>>,
) -> Vec<Result<(), KafkaError>> {
    let mut deliveries: Vec<Result<DeliveryFuture, KafkaError>> = Vec::new();
    for mut record in records {
        loop {
            match producer.send_result(record) {
                Ok(delivery) => {
                    deliveries.push(Ok(delivery));
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err((e, _)) => {
                    deliveries.push(Err(e));
                    break;
                }
            }
        }
    }
    let mut results = Vec::with_capacity(deliveries.len());
    for delivery in deliveries {
        results.push(match delivery {
            Ok(future) => match future.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err((e, _))) => Err(e),
                Err(_) => Err(KafkaError::Canceled),
            },
            Err(e) => Err(e),
        });
    }
    results
}

/// The client context of every consumer: librdkafka reports reaching the end of a
/// partition as an error, which for a streaming service is news, not a failure. It also
/// counts rebalances (`rebalances`): with the eager protocol every rebalance revokes every
/// partition and fetches them again from their committed offsets, so whatever a stage held
/// for them is stale from then on, even for a partition it gets back.
#[derive(Debug, Clone, Default)]
pub struct ServiceContext {
    rebalances: Arc<AtomicU64>,
}

impl ServiceContext {
    /// Rebalances completed so far.
    pub fn rebalances(&self) -> u64 {
        self.rebalances.load(Ordering::Acquire)
    }
}

impl ClientContext for ServiceContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(
            error,
            KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
        ) {
            tracing::trace!(%reason, "end of partition");
        } else {
            tracing::error!(error = %error, %reason, "kafka client error");
        }
    }
}

impl ConsumerContext for ServiceContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, _: &Rebalance<'_>) {
        // Before the revocation takes effect: a batch in flight sees the change when it
        // is about to commit, and does not commit.
        self.rebalances.fetch_add(1, Ordering::AcqRel);
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, _: &Rebalance<'_>) {
        self.rebalances.fetch_add(1, Ordering::AcqRel);
    }
}

/// A consumer as the services use it.
pub type Consumer = StreamConsumer<ServiceContext>;

/// Consumer settings shared by every service: manual commits, fast group rejoin.
///
/// Offsets are committed by the service only after what they cover is written downstream;
/// the short session timeout lets a restarted replica rejoin in seconds.
pub fn consumer(brokers: &str, group: &str) -> Result<Consumer, KafkaError> {
    consumer_with(brokers, group, ClientConfig::new())
}

/// [`consumer`] with extra settings of the caller's.
pub fn consumer_with(
    brokers: &str,
    group: &str,
    mut extra: ClientConfig,
) -> Result<Consumer, KafkaError> {
    extra
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "1000")
        .set("max.poll.interval.ms", "30000")
        .set("partition.assignment.strategy", "range")
        .create_with_context(ServiceContext::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_is_explicit_on_every_topic() {
        for spec in topic_layout(3, 1) {
            let configs: HashMap<_, _> = spec.configs.iter().cloned().collect();
            assert_eq!(configs["cleanup.policy"], "delete", "{}", spec.name);
            assert!(configs.contains_key("retention.ms"), "{}", spec.name);
        }
    }

    #[test]
    fn identity_and_salts_expire_on_time() {
        let layout = topic_layout(3, 1);
        let retention = |name: &str| -> u64 {
            let spec = layout.iter().find(|s| s.name == name).unwrap();
            spec.configs
                .iter()
                .find(|(k, _)| *k == "retention.ms")
                .unwrap()
                .1
                .parse()
                .unwrap()
        };
        assert_eq!(retention(RAW_TOPIC), 24 * HOUR_MS);
        assert_eq!(retention(DLQ_TOPIC), retention(RAW_TOPIC));
        assert_eq!(retention(REPLAY_TOPIC), retention(RAW_TOPIC));
        assert_eq!(retention(SALTS_TOPIC), 48 * HOUR_MS);
        let salts = layout.iter().find(|s| s.name == SALTS_TOPIC).unwrap();
        assert_eq!(salts.partitions, 1);
    }
}
