//! Producing validated events to `exatom.raw`, with backpressure instead of unbounded buffers.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use exatom_core::model::RawEvent;
use exatom_plumbing::kafka::RAW_TOPIC;
use exatom_plumbing::telemetry::Readiness;
use rdkafka::client::ClientContext;
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientConfig;
use serde::Deserialize;
use tokio::sync::{oneshot, Notify};

use crate::encoder::{partition_key, RawEncoder};
use crate::metrics::CollectorMetrics;

/// Why events could not be taken: every variant becomes a 503 with `Retry-After`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SinkError {
    #[error("the broker is unreachable")]
    BrokerDown,
    #[error("the producer queue is full")]
    QueueFull,
    #[error("the broker did not acknowledge the events in time")]
    DeliveryTimeout,
    #[error("the broker refused the events: {0}")]
    Delivery(String),
}

/// The producer side of the collector.
#[derive(Clone)]
pub struct RawSink {
    producer: ThreadedProducer<RequestAcks>,
    producer_id: Arc<ProducerId>,
    encoder: Arc<RawEncoder>,
    broker_up: Arc<AtomicBool>,
    max_queue_events: usize,
    delivery_timeout: Duration,
    metrics: CollectorMetrics,
}

impl std::fmt::Debug for RawSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawSink").finish_non_exhaustive()
    }
}

impl RawSink {
    pub fn new(
        brokers: &str,
        max_queue_events: usize,
        delivery_timeout: Duration,
        metrics: CollectorMetrics,
    ) -> Result<Self, KafkaError> {
        // librdkafka's own queue is larger than our bound, so our bound answers first.
        let queue = u32::try_from(max_queue_events.saturating_mul(2)).unwrap_or(u32::MAX);
        let producer_id = Arc::new(ProducerId::default());
        Ok(RawSink {
            producer: producer(brokers, queue, Arc::clone(&producer_id))?,
            producer_id,
            encoder: Arc::new(RawEncoder::default()),
            broker_up: Arc::new(AtomicBool::new(false)),
            max_queue_events,
            delivery_timeout,
            metrics,
        })
    }

    pub fn broker_up(&self) -> bool {
        self.broker_up.load(Ordering::Relaxed)
    }

    /// Asks the broker for the raw topic's metadata every `every`: the fast path to 503
    /// while it is down, and to recovery when it is back. `/readyz` follows in the same
    /// step, before requests do: a 503 for a missing broker is never answered while
    /// `/readyz` still says ready.
    ///
    /// Reachable is not enough: until the idempotent producer holds its producer id,
    /// librdkafka keeps every record queued (0.5–1 s after a start here, on its own retry
    /// timer), so a collector that said ready at the first metadata answer held its first
    /// requests that long. The id is known from librdkafka's statistics, and a change of it
    /// wakes this loop at once.
    pub fn watch_broker(
        &self,
        every: Duration,
        readiness: Readiness,
    ) -> tokio::task::JoinHandle<()> {
        let sink = self.clone();
        tokio::spawn(async move {
            loop {
                let producer = sink.producer.clone();
                let reachable = tokio::task::spawn_blocking(move || {
                    producer
                        .client()
                        .fetch_metadata(Some(RAW_TOPIC), Duration::from_secs(2))
                        .is_ok_and(|m| m.topics().iter().any(|t| t.error().is_none()))
                })
                .await
                .unwrap_or(false);
                let assigned = sink.producer_id.is_assigned();
                let up = reachable && assigned;
                readiness.set(up);
                if up != sink.broker_up.swap(up, Ordering::Relaxed) {
                    if up {
                        tracing::info!("broker reachable: taking events");
                    } else if reachable {
                        tracing::warn!("producer has no producer id yet: answering 503");
                    } else {
                        tracing::warn!("broker unreachable: answering 503");
                    }
                }
                sink.metrics
                    .producer_queue
                    .set(i64::from(sink.producer.in_flight_count()));
                let _ = tokio::time::timeout(every, sink.producer_id.changed.notified()).await;
            }
        })
    }

    /// Enqueues the events and waits until the broker has acknowledged every one of them.
    ///
    /// On error some events may already be stored; the browser resends the batch and the
    /// pipeline deduplicates by event id.
    pub async fn send(&self, events: &[RawEvent]) -> Result<(), SinkError> {
        if !self.broker_up() {
            return Err(SinkError::BrokerDown);
        }
        let queued = usize::try_from(self.producer.in_flight_count()).unwrap_or(0);
        self.metrics.producer_queue.set(queued as i64);
        if queued + events.len() > self.max_queue_events {
            return Err(SinkError::QueueFull);
        }
        let started = Instant::now();
        let (pending, acknowledged) = Pending::new(events.len());
        let mut payload = Vec::with_capacity(512);
        // The events of one request share site, address and user agent: one key, hashed once.
        let mut key = String::new();
        let mut keyed: Option<&RawEvent> = None;
        for event in events {
            self.encoder
                .encode_into(event, &mut payload)
                .map_err(|e| SinkError::Delivery(e.to_string()))?;
            if !keyed.is_some_and(|k| same_visitor(k, event)) {
                key = partition_key(&event.site, &event.ip, &event.user_agent);
                keyed = Some(event);
            }
            let record = BaseRecord::with_opaque_to(RAW_TOPIC, Arc::clone(&pending))
                .key(&key)
                .payload(&payload);
            match self.producer.send(record) {
                Ok(()) => {}
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    return Err(SinkError::QueueFull)
                }
                Err((e, _)) => return Err(SinkError::Delivery(e.to_string())),
            }
        }
        drop(pending);
        let failed = tokio::time::timeout(self.delivery_timeout, acknowledged)
            .await
            .map_err(|_| {
                self.metrics.delivery_failures.inc_by(events.len() as u64);
                SinkError::DeliveryTimeout
            })?
            .map_err(|_| SinkError::Delivery("the producer stopped".into()))?;
        if failed > 0 {
            self.metrics.delivery_failures.inc_by(failed as u64);
            return Err(SinkError::Delivery(format!(
                "{failed} of {} events not acknowledged",
                events.len()
            )));
        }
        self.metrics
            .produce_latency
            .observe(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Waits for everything queued to reach the broker (SIGTERM drain).
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer.flush(timeout)
    }
}

/// The shared producer settings (`kafka::producer`: idempotent, `acks=all`, lz4) with a
/// 1 ms linger instead of 5: a 202 waits for the broker's acknowledgement, so the linger is
/// paid by every request. Measured against tansu here: p50 at one connection 7.4 → 2.9 ms,
/// and more events per second at 8 connections (BENCHMARKS.md).
///
/// Public so the broker-ceiling load program (`benches/load/broker_ceiling.rs`) produces
/// with exactly these settings.
pub fn producer_config(brokers: &str, queue_messages: u32) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "lz4")
        .set("linger.ms", "1")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", queue_messages.to_string())
        .set("message.timeout.ms", "30000")
        // Read for the idempotent producer's state (readiness); 1 s is librdkafka's
        // granularity.
        .set("statistics.interval.ms", "1000");
    config
}

fn producer(
    brokers: &str,
    queue_messages: u32,
    producer_id: Arc<ProducerId>,
) -> Result<ThreadedProducer<RequestAcks>, KafkaError> {
    ThreadedProducer::from_config_and_context(
        &producer_config(brokers, queue_messages),
        RequestAcks { producer_id },
    )
}

/// Whether the idempotent producer holds a producer id, as librdkafka's last statistics
/// said, and a wake-up for the broker watch when that changes.
#[derive(Default)]
struct ProducerId {
    assigned: AtomicBool,
    changed: Notify,
}

impl ProducerId {
    fn is_assigned(&self) -> bool {
        self.assigned.load(Ordering::Relaxed)
    }

    fn observe(&self, statistics: &[u8]) {
        let Some(assigned) = producer_id_assigned(statistics) else {
            tracing::warn!("librdkafka statistics without the idempotent producer's state");
            return;
        };
        if assigned != self.assigned.swap(assigned, Ordering::Relaxed) {
            self.changed.notify_one();
        }
    }
}

/// The one part of librdkafka's statistics the collector reads.
#[derive(Deserialize)]
struct Statistics {
    eos: Option<ExactlyOnce>,
}

#[derive(Deserialize)]
struct ExactlyOnce {
    idemp_state: String,
}

/// `Some(true)` once the idempotent producer is in librdkafka's `Assigned` state (it has
/// its producer id and sends records); `None` for statistics that do not say.
fn producer_id_assigned(statistics: &[u8]) -> Option<bool> {
    let statistics: Statistics = serde_json::from_slice(statistics).ok()?;
    Some(statistics.eos?.idemp_state == "Assigned")
}

/// Routes each record's delivery report to the request it came from, and librdkafka's
/// statistics to the producer id's state.
struct RequestAcks {
    producer_id: Arc<ProducerId>,
}

impl ClientContext for RequestAcks {
    fn stats_raw(&self, statistics: &[u8]) {
        self.producer_id.observe(statistics);
    }
}

impl ProducerContext for RequestAcks {
    type DeliveryOpaque = Arc<Pending>;

    fn delivery(&self, result: &DeliveryResult<'_>, pending: Arc<Pending>) {
        pending.settle(result.is_ok());
    }
}

/// One request's records awaiting acknowledgement. The request is woken once, when the last
/// report arrives, instead of once per record: at 20 records a request that is most of the
/// wake-ups between librdkafka's polling thread and the HTTP runtime.
struct Pending {
    remaining: AtomicUsize,
    failed: AtomicUsize,
    done: Mutex<Option<oneshot::Sender<usize>>>,
}

impl Pending {
    /// The shared count and the receiver of the number of records that failed.
    fn new(records: usize) -> (Arc<Pending>, oneshot::Receiver<usize>) {
        let (done, acknowledged) = oneshot::channel();
        let pending = Pending {
            remaining: AtomicUsize::new(records),
            failed: AtomicUsize::new(0),
            done: Mutex::new(Some(done)),
        };
        (Arc::new(pending), acknowledged)
    }

    fn settle(&self, delivered: bool) {
        if !delivered {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            let done = self.done.lock().ok().and_then(|mut d| d.take());
            if let Some(done) = done {
                // The request may have given up (timeout, 503): nobody to tell.
                let _ = done.send(self.failed.load(Ordering::Relaxed));
            }
        }
    }
}

fn same_visitor(a: &RawEvent, b: &RawEvent) -> bool {
    a.site == b.site && a.ip == b.ip && a.user_agent == b.user_agent
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use super::*;

    #[test]
    fn a_request_hears_once_all_its_records_are_acknowledged() {
        let (pending, mut acknowledged) = Pending::new(3);
        pending.settle(true);
        pending.settle(true);
        assert!(acknowledged.try_recv().is_err(), "one record still out");
        pending.settle(true);
        assert_eq!(acknowledged.try_recv(), Ok(0));
    }

    #[test]
    fn failed_records_are_counted_whatever_order_the_reports_come_in() {
        let (pending, mut acknowledged) = Pending::new(3);
        pending.settle(false);
        pending.settle(true);
        pending.settle(false);
        assert_eq!(acknowledged.try_recv(), Ok(2));
    }

    /// Shaped as librdkafka 2.12 emits them (trimmed: brokers and topics are long).
    fn statistics(idemp_state: &str) -> String {
        format!(
            r#"{{"name":"rdkafka#producer-1","client_id":"rdkafka","type":"producer","ts":1,
            "msg_cnt":0,"brokers":{{"127.0.0.1:9092/111":{{"name":"127.0.0.1:9092/111",
            "state":"UP","rtt":{{"min":1,"max":9,"p99":9}}}}}},"topics":{{"exatom.raw":
            {{"topic":"exatom.raw","partitions":{{"0":{{"partition":0,"msgq_cnt":0}}}}}}}},
            "eos":{{"idemp_state":"{idemp_state}","idemp_stateage":1,"txn_state":"Init",
            "producer_id":1,"producer_epoch":0,"epoch_cnt":1}}}}"#
        )
    }

    #[test]
    fn only_an_assigned_producer_id_counts() {
        assert_eq!(
            producer_id_assigned(statistics("Assigned").as_bytes()),
            Some(true)
        );
        for state in [
            "Init",
            "RequestPID",
            "WaitTransport",
            "WaitPID",
            "DrainBump",
            "FatalError",
        ] {
            assert_eq!(
                producer_id_assigned(statistics(state).as_bytes()),
                Some(false),
                "{state}"
            );
        }
        assert_eq!(producer_id_assigned(br#"{"name":"x","msg_cnt":0}"#), None);
        assert_eq!(producer_id_assigned(b"{not json"), None);
    }

    /// Whether a wake-up is waiting, without waiting for one.
    fn woken(producer_id: &ProducerId) -> bool {
        let notified = std::pin::pin!(producer_id.changed.notified());
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        notified.poll(&mut context).is_ready()
    }

    #[test]
    fn the_watch_wakes_when_the_producer_id_changes_not_on_every_report() {
        let producer_id = ProducerId::default();
        producer_id.observe(statistics("WaitPID").as_bytes());
        assert!(!producer_id.is_assigned());
        assert!(!woken(&producer_id), "no change from the start");
        producer_id.observe(statistics("Assigned").as_bytes());
        assert!(producer_id.is_assigned());
        assert!(woken(&producer_id));
        producer_id.observe(statistics("Assigned").as_bytes());
        assert!(!woken(&producer_id), "woken without a change");
        producer_id.observe(b"{}");
        assert!(
            producer_id.is_assigned(),
            "statistics that do not say change nothing"
        );
        producer_id.observe(statistics("DrainBump").as_bytes());
        assert!(!producer_id.is_assigned());
        assert!(woken(&producer_id));
    }

    #[test]
    fn reports_after_the_request_gave_up_are_harmless() {
        let (pending, acknowledged) = Pending::new(2);
        drop(acknowledged);
        pending.settle(true);
        pending.settle(true);
        assert_eq!(pending.remaining.load(Ordering::Relaxed), 0);
    }
}
