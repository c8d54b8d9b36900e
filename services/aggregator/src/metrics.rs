//! The aggregator's Prometheus metrics.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry};

/// The aggregator's own metrics, besides every consumer's (`consume::ConsumerMetrics`).
#[derive(Clone, Debug)]
pub struct AggregatorMetrics {
    pub sessions_in: IntCounter,
    pub rows_written: IntCounterVec,
    pub rollup_groups: IntCounterVec,
    pub write_seconds: Histogram,
    pub partitions_dropped: IntCounter,
    pub retention_rows_deleted: IntCounter,
}

impl AggregatorMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let m = AggregatorMetrics {
            sessions_in: IntCounter::new(
                "exatom_aggregator_sessions_in_total",
                "Sessions read from exatom.sessions",
            )?,
            rows_written: IntCounterVec::new(
                Opts::new(
                    "exatom_aggregator_rows_written_total",
                    "Rows written, by table",
                ),
                &["table"],
            )?,
            rollup_groups: IntCounterVec::new(
                Opts::new(
                    "exatom_aggregator_rollup_groups_total",
                    "(site, day) rollup groups recomputed after a write, by rollup table",
                ),
                &["rollup"],
            )?,
            write_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "exatom_aggregator_write_seconds",
                    "Time to write one batch to ClickHouse and recompute its rollups",
                )
                .buckets(vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ]),
            )?,
            partitions_dropped: IntCounter::new(
                "exatom_aggregator_retention_partitions_dropped_total",
                "Partitions dropped whole by the 90-day retention task (daily ones, and months past it)",
            )?,
            retention_rows_deleted: IntCounter::new(
                "exatom_aggregator_retention_rows_deleted_total",
                "Rows of days past 90 deleted by the retention task from the month that straddles the cutoff",
            )?,
        };
        registry.register(Box::new(m.sessions_in.clone()))?;
        registry.register(Box::new(m.rows_written.clone()))?;
        registry.register(Box::new(m.rollup_groups.clone()))?;
        registry.register(Box::new(m.write_seconds.clone()))?;
        registry.register(Box::new(m.partitions_dropped.clone()))?;
        registry.register(Box::new(m.retention_rows_deleted.clone()))?;
        Ok(m)
    }
}
