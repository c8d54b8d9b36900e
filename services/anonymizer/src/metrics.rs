//! The anonymizer's Prometheus metrics.

use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry};

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
        };
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
