//! Producing validated events to `exatom.raw`, with backpressure instead of unbounded buffers.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use exatom_shared::kafka::RAW_TOPIC;
use exatom_shared::model::RawEvent;
use exatom_shared::telemetry::Readiness;
use rdkafka::client::ClientContext;
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientConfig;
use tokio::sync::oneshot;

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
    encoder: Arc<RawEncoder>,
    broker_up: Arc<AtomicBool>,
    max_queue_events: usize,
    delivery_timeout: Duration,
    metrics: CollectorMetrics,
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
        Ok(RawSink {
            producer: producer(brokers, queue)?,
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
    pub fn watch_broker(
        &self,
        every: Duration,
        readiness: Readiness,
    ) -> tokio::task::JoinHandle<()> {
        let sink = self.clone();
        tokio::spawn(async move {
            loop {
                let producer = sink.producer.clone();
                let up = tokio::task::spawn_blocking(move || {
                    producer
                        .client()
                        .fetch_metadata(Some(RAW_TOPIC), Duration::from_secs(2))
                        .is_ok_and(|m| m.topics().iter().any(|t| t.error().is_none()))
                })
                .await
                .unwrap_or(false);
                readiness.set(up);
                if up != sink.broker_up.swap(up, Ordering::Relaxed) {
                    if up {
                        tracing::info!("broker reachable: taking events");
                    } else {
                        tracing::warn!("broker unreachable: answering 503");
                    }
                }
                sink.metrics
                    .producer_queue
                    .set(i64::from(sink.producer.in_flight_count()));
                tokio::time::sleep(every).await;
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
        .set("message.timeout.ms", "30000");
    config
}

fn producer(
    brokers: &str,
    queue_messages: u32,
) -> Result<ThreadedProducer<RequestAcks>, KafkaError> {
    ThreadedProducer::from_config_and_context(
        &producer_config(brokers, queue_messages),
        RequestAcks,
    )
}

/// Routes each record's delivery report to the request it came from.
struct RequestAcks;

impl ClientContext for RequestAcks {}

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

    #[test]
    fn reports_after_the_request_gave_up_are_harmless() {
        let (pending, acknowledged) = Pending::new(2);
        drop(acknowledged);
        pending.settle(true);
        pending.settle(true);
        assert_eq!(pending.remaining.load(Ordering::Relaxed), 0);
    }
}
