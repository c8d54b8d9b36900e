//! The console's Prometheus metrics.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

#[derive(Debug, Clone)]
pub struct ConsoleMetrics {
    pub requests: IntCounterVec,
    pub logins: IntCounterVec,
    pub query_seconds: HistogramVec,
}

impl ConsoleMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let m = ConsoleMetrics {
            requests: IntCounterVec::new(
                Opts::new(
                    "exatom_console_requests_total",
                    "Console requests by page and status",
                ),
                &["page", "status"],
            )?,
            logins: IntCounterVec::new(
                Opts::new(
                    "exatom_console_logins_total",
                    "Log-in attempts by outcome (ok, wrong, locked)",
                ),
                &["outcome"],
            )?,
            query_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "exatom_console_query_seconds",
                    "Time ClickHouse took to answer each console query",
                )
                .buckets(vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ]),
                &["query"],
            )?,
        };
        registry.register(Box::new(m.requests.clone()))?;
        registry.register(Box::new(m.logins.clone()))?;
        registry.register(Box::new(m.query_seconds.clone()))?;
        Ok(m)
    }
}
