//! The collector's Prometheus metrics.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

#[derive(Debug, Clone)]
pub struct CollectorMetrics {
    pub requests: IntCounterVec,
    pub events_accepted: IntCounter,
    pub events_rejected: IntCounterVec,
    pub values_masked: IntCounter,
    pub bytes_in: IntCounter,
    pub produce_latency: Histogram,
    pub producer_queue: IntGauge,
    pub delivery_failures: IntCounter,
    pub rate_limited: IntCounter,
    pub registry_reloads: IntCounterVec,
    pub replay_batches_accepted: IntCounter,
    pub replay_bytes_accepted: IntCounter,
    pub replay_snapshots_replaced: IntCounter,
}

impl CollectorMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let m = CollectorMetrics {
            requests: IntCounterVec::new(
                Opts::new(
                    "exatom_collector_requests_total",
                    "HTTP requests by route and status",
                ),
                &["route", "status"],
            )?,
            events_accepted: IntCounter::new(
                "exatom_collector_events_accepted_total",
                "Events acknowledged by the broker",
            )?,
            events_rejected: IntCounterVec::new(
                Opts::new(
                    "exatom_collector_events_rejected_total",
                    "Events refused, by reason",
                ),
                &["reason"],
            )?,
            values_masked: IntCounter::new(
                "exatom_collector_values_masked_total",
                "Field values other than \"\" or \"*\" replaced by \"*\"",
            )?,
            bytes_in: IntCounter::new(
                "exatom_collector_bytes_in_total",
                "Request body bytes received, as sent (compressed or not)",
            )?,
            produce_latency: Histogram::with_opts(
                HistogramOpts::new(
                    "exatom_collector_produce_latency_seconds",
                    "Time from enqueue to broker acknowledgement of a batch",
                )
                .buckets(vec![
                    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
                ]),
            )?,
            producer_queue: IntGauge::new(
                "exatom_collector_producer_queue_events",
                "Events waiting in the producer for the broker",
            )?,
            delivery_failures: IntCounter::new(
                "exatom_collector_delivery_failures_total",
                "Events the broker did not acknowledge (answered 503)",
            )?,
            rate_limited: IntCounter::new(
                "exatom_collector_rate_limited_total",
                "Requests answered 429",
            )?,
            registry_reloads: IntCounterVec::new(
                Opts::new(
                    "exatom_collector_site_registry_reloads_total",
                    "Site registry reloads",
                ),
                &["result"],
            )?,
            replay_batches_accepted: IntCounter::new(
                "exatom_collector_replay_batches_accepted_total",
                "Replay batches acknowledged by the broker",
            )?,
            replay_bytes_accepted: IntCounter::new(
                "exatom_collector_replay_bytes_accepted_total",
                "Replay events taken, as JSON bytes before compression",
            )?,
            replay_snapshots_replaced: IntCounter::new(
                "exatom_collector_replay_snapshots_replaced_total",
                "Full snapshots over the size limit, replaced by a placeholder page",
            )?,
        };
        // Series at 0 from the start: a rate over a counter that appears at its first
        // increment misses that increment, and an alert on 503s would miss the first burst.
        for status in [
            "202", "204", "400", "403", "408", "413", "415", "429", "503",
        ] {
            m.requests.with_label_values(&["/v1/events", status]);
            m.requests.with_label_values(&["/v1/replay", status]);
        }
        for result in ["ok", "error"] {
            m.registry_reloads.with_label_values(&[result]);
        }
        registry.register(Box::new(m.requests.clone()))?;
        registry.register(Box::new(m.events_accepted.clone()))?;
        registry.register(Box::new(m.events_rejected.clone()))?;
        registry.register(Box::new(m.values_masked.clone()))?;
        registry.register(Box::new(m.bytes_in.clone()))?;
        registry.register(Box::new(m.produce_latency.clone()))?;
        registry.register(Box::new(m.producer_queue.clone()))?;
        registry.register(Box::new(m.delivery_failures.clone()))?;
        registry.register(Box::new(m.rate_limited.clone()))?;
        registry.register(Box::new(m.registry_reloads.clone()))?;
        registry.register(Box::new(m.replay_batches_accepted.clone()))?;
        registry.register(Box::new(m.replay_bytes_accepted.clone()))?;
        registry.register(Box::new(m.replay_snapshots_replaced.clone()))?;
        Ok(m)
    }
}
