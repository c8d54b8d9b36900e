//! Time helpers: the pipeline works in milliseconds since the Unix epoch, UTC.

use chrono::{DateTime, NaiveDate, Utc};

/// Now, in ms since the epoch.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// The UTC day a millisecond timestamp falls on.
pub fn utc_day(ms: i64) -> NaiveDate {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .date_naive()
}

/// Days since 1970-01-01: how ClickHouse's `Date` travels in RowBinary.
pub fn days_since_epoch(ms: i64) -> u16 {
    let day = utc_day(ms);
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
    u16::try_from((day - epoch).num_days()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_utc() {
        // 2026-11-23T23:59:59.999Z and a millisecond later.
        let before = 1_795_478_399_999;
        assert_eq!(utc_day(before).to_string(), "2026-11-23");
        assert_eq!(utc_day(before + 1).to_string(), "2026-11-24");
        assert_eq!(days_since_epoch(before) + 1, days_since_epoch(before + 1));
        assert_eq!(days_since_epoch(0), 0);
    }
}
