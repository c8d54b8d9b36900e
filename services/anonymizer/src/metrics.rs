//! The anonymizer's Prometheus metrics.

use prometheus::{
    Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

/// What an operator watches besides every consumer's metrics (`consume::ConsumerMetrics`):
/// throughput, where time goes, the caches' hit rates, salts and scrubbing by rule.
#[derive(Clone, Debug)]
pub struct AnonymizerMetrics {
    pub records_in: IntCounter,
    pub records_out: IntCounter,
    pub stage_seconds: HistogramVec,
    pub ua_cache: IntCounterVec,
    pub scrub_cache: IntCounterVec,
    pub salts: IntCounterVec,
    pub scrubbed: IntCounterVec,
    pub salt_age_seconds: Gauge,
    pub salts_topic_misconfigured: IntGauge,
}

impl AnonymizerMetrics {
    /// Creates the metrics and registers them for `/metrics`.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let m = AnonymizerMetrics {
            records_in: IntCounter::new(
                "exatom_anonymizer_records_in_total",
                "Records read from exatom.raw",
            )?,
            records_out: IntCounter::new(
                "exatom_anonymizer_records_out_total",
                "Records delivered to exatom.anon",
            )?,
            stage_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "exatom_anonymizer_stage_seconds",
                    "Time per batch in each stage",
                )
                .buckets(vec![
                    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0,
                ]),
                &["stage"],
            )?,
            ua_cache: IntCounterVec::new(
                Opts::new(
                    "exatom_anonymizer_ua_cache_total",
                    "User agent cache lookups",
                ),
                &["result"],
            )?,
            scrub_cache: IntCounterVec::new(
                Opts::new(
                    "exatom_anonymizer_scrub_cache_total",
                    "Page URL and title scrubs answered from memory (hit) or done afresh (miss)",
                ),
                &["result"],
            )?,
            salts: IntCounterVec::new(
                Opts::new(
                    "exatom_anonymizer_salts_total",
                    "Daily salts created or forgotten",
                ),
                &["event"],
            )?,
            scrubbed: IntCounterVec::new(
                Opts::new(
                    "exatom_anonymizer_scrubbed_total",
                    "Free-text replacements, by rule",
                ),
                &["rule"],
            )?,
            salt_age_seconds: Gauge::new(
                "exatom_anonymizer_salt_age_seconds",
                "Age of the oldest salt held in memory: now minus the start of its day (at most 48 h by design)",
            )?,
            salts_topic_misconfigured: IntGauge::new(
                "exatom_anonymizer_salts_topic_misconfigured",
                "1 while the salts topic would keep salts past 48 h (retention.ms or cleanup.policy); read at start and every 5 minutes",
            )?,
        };
        for event in ["created", "forgotten"] {
            m.salts.with_label_values(&[event]);
        }
        registry.register(Box::new(m.salt_age_seconds.clone()))?;
        registry.register(Box::new(m.salts_topic_misconfigured.clone()))?;
        registry.register(Box::new(m.records_in.clone()))?;
        registry.register(Box::new(m.records_out.clone()))?;
        registry.register(Box::new(m.stage_seconds.clone()))?;
        registry.register(Box::new(m.ua_cache.clone()))?;
        registry.register(Box::new(m.scrub_cache.clone()))?;
        registry.register(Box::new(m.salts.clone()))?;
        registry.register(Box::new(m.scrubbed.clone()))?;
        Ok(m)
    }
}
