//! What an operator sees of the salts without ever reading one: the age of the oldest salt
//! held, and whether the salts topic still deletes salts in time. The same pass forgets
//! expired salts, so that a replica with no events to anonymize does not hold them past
//! their 48 hours (the stage forgets them too, but only when a batch arrives).

use std::time::Duration;

use chrono::NaiveDate;
use exatom_plumbing::telemetry::Shutdown;

use super::book::record_timestamp_ms;
use super::keeper::{verify_salts_topic, SaltKeeper, StartError};
use crate::metrics::AnonymizerMetrics;

/// How often the age is updated and expired salts forgotten.
const EVERY: Duration = Duration::from_secs(30);
/// How many passes between two reads of the topic's configuration (5 minutes).
const CONFIG_EVERY_PASSES: u32 = 10;

/// Seconds since the start of the oldest held salt's day; 0 when none is held. By design at
/// most 48 hours: yesterday's salt, at today's end.
pub fn salt_age_seconds(oldest: Option<NaiveDate>, now_ms: i64) -> f64 {
    oldest.map_or(0.0, |day| {
        (now_ms - record_timestamp_ms(day)).max(0) as f64 / 1000.0
    })
}

/// Where the salts topic is, and whether its long retention was allowed on purpose.
#[derive(Debug, Clone)]
pub struct SaltsTopic {
    pub brokers: String,
    pub topic: String,
    pub allow_long: bool,
}

/// Runs until shutdown. The topic's configuration is read again every 5 minutes: an admin
/// client per read, whose teardown blocks its thread for a moment.
pub async fn watch(
    keeper: SaltKeeper,
    topic: SaltsTopic,
    metrics: AnonymizerMetrics,
    shutdown: Shutdown,
) {
    let mut pass: u32 = 0;
    while !shutdown.is_triggered() {
        let now_ms = exatom_core::time::now_ms();
        let today = exatom_core::time::utc_day(now_ms);
        let forgotten = keeper.forget_expired(today);
        if forgotten > 0 {
            metrics
                .salts
                .with_label_values(&["forgotten"])
                .inc_by(forgotten as u64);
        }
        metrics
            .salt_age_seconds
            .set(salt_age_seconds(keeper.oldest_day(), now_ms));
        // The start read the configuration already (and refused a bad one).
        if pass > 0 && pass.is_multiple_of(CONFIG_EVERY_PASSES) {
            match verify_salts_topic(&topic.brokers, &topic.topic, topic.allow_long).await {
                Ok(()) => metrics.salts_topic_misconfigured.set(0),
                // The broker's probe reports an absent broker; the last verdict stands.
                Err(StartError::Unreadable(_)) => {}
                Err(e) => {
                    tracing::error!(error = %e, "the salts topic no longer deletes salts in time");
                    metrics.salts_topic_misconfigured.set(1);
                }
            }
        }
        pass = pass.wrapping_add(1);
        tokio::select! {
            () = tokio::time::sleep(EVERY) => {}
            () = shutdown.wait() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_age_counts_from_the_start_of_the_oldest_salts_day() {
        let day = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        let midnight = record_timestamp_ms(day);
        assert_eq!(salt_age_seconds(None, midnight), 0.0);
        assert_eq!(salt_age_seconds(Some(day), midnight), 0.0);
        assert_eq!(
            salt_age_seconds(Some(day), midnight + 47 * 3_600_000),
            47.0 * 3600.0
        );
        // A clock behind the day's start: not negative.
        assert_eq!(salt_age_seconds(Some(day), midnight - 1000), 0.0);
    }
}
