//! The sessionizer's Prometheus metrics.

use prometheus::{Gauge, IntCounter, IntGauge, Registry};

/// The sessionizer's own metrics, besides every consumer's (`consume::ConsumerMetrics`).
#[derive(Clone, Debug)]
pub struct SessionizerMetrics {
    pub events_in: IntCounter,
    pub events_late: IntCounter,
    pub events_clock_ahead: IntCounter,
    pub events_duplicate: IntCounter,
    pub events_replayed: IntCounter,
    pub open_sessions: IntGauge,
    pub paused: IntGauge,
    pub sessions_closed: IntCounter,
    pub sessions_merged: IntCounter,
    pub watermark_lag_seconds: Gauge,
}

impl SessionizerMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let m = SessionizerMetrics {
            events_in: IntCounter::new(
                "exatom_sessionizer_events_in_total",
                "Events read from exatom.anon",
            )?,
            events_late: IntCounter::new(
                "exatom_sessionizer_events_late_total",
                "Events that arrived more than the lateness after they happened",
            )?,
            events_clock_ahead: IntCounter::new(
                "exatom_sessionizer_events_clock_ahead_total",
                "Events whose received_at lay more than 5 minutes ahead of this host's clock",
            )?,
            events_duplicate: IntCounter::new(
                "exatom_sessionizer_events_duplicate_total",
                "Events already in their session (upstream retries)",
            )?,
            events_replayed: IntCounter::new(
                "exatom_sessionizer_events_replayed_total",
                "Events skipped on replay because their session was already written",
            )?,
            open_sessions: IntGauge::new("exatom_sessionizer_open_sessions", "Sessions held open")?,
            paused: IntGauge::new(
                "exatom_sessionizer_paused",
                "1 while reading is paused at EXATOM_MAX_OPEN_SESSIONS",
            )?,
            sessions_closed: IntCounter::new(
                "exatom_sessionizer_sessions_closed_total",
                "Sessions closed and written",
            )?,
            sessions_merged: IntCounter::new(
                "exatom_sessionizer_sessions_merged_total",
                "Sessions joined into another by a bridging event",
            )?,
            watermark_lag_seconds: Gauge::new(
                "exatom_sessionizer_watermark_lag_seconds",
                "Wall clock minus the oldest partition stream time",
            )?,
        };
        registry.register(Box::new(m.events_in.clone()))?;
        registry.register(Box::new(m.events_late.clone()))?;
        registry.register(Box::new(m.events_clock_ahead.clone()))?;
        registry.register(Box::new(m.events_duplicate.clone()))?;
        registry.register(Box::new(m.events_replayed.clone()))?;
        registry.register(Box::new(m.open_sessions.clone()))?;
        registry.register(Box::new(m.paused.clone()))?;
        registry.register(Box::new(m.sessions_closed.clone()))?;
        registry.register(Box::new(m.sessions_merged.clone()))?;
        registry.register(Box::new(m.watermark_lag_seconds.clone()))?;
        Ok(m)
    }
}
