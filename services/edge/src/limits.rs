//! Every bound a stranger's request is held to, with the defaults the contract names.

use serde::{Deserialize, Serialize};

/// Bounds on one request. All configurable (`EXATOM_MAX_*`), all documented in the README.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct Limits {
    /// Body size after decompression, in bytes.
    pub max_body_bytes: usize,
    /// Decompressed size over compressed size: above it a gzip body is refused as a bomb.
    pub max_compression_ratio: usize,
    /// Events in one batch.
    pub max_events: usize,
    /// Any string in an event (titles, labels, names, ids).
    pub max_string_chars: usize,
    /// Page and referrer URLs.
    pub max_url_chars: usize,
    /// Fields described by one `form_view`.
    pub max_form_fields: usize,
    /// How far an event's skew-corrected time may lie before receipt (`stale`), in ms.
    pub max_age_ms: i64,
    /// How far it may lie after receipt (`future`), in ms.
    pub max_ahead_ms: i64,
    /// A replay batch's body after decompression, in bytes (as sent, too).
    pub max_replay_body_bytes: usize,
    /// One full snapshot (a page's DOM) as JSON: a larger one becomes a placeholder page.
    pub max_replay_snapshot_bytes: usize,
    /// rrweb events in one replay batch.
    pub max_replay_events: usize,
    /// Replay batches of one page view (the recorder sends one every 5 s: an hour is 720).
    pub max_replay_batches_per_page: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 64 * 1024,
            max_compression_ratio: 50,
            max_events: 100,
            max_string_chars: 512,
            max_url_chars: 2048,
            max_form_fields: 200,
            max_age_ms: 24 * 3_600_000,
            max_ahead_ms: 5 * 60_000,
            max_replay_body_bytes: 4 * 1024 * 1024,
            max_replay_snapshot_bytes: 2 * 1024 * 1024,
            max_replay_events: 10_000,
            max_replay_batches_per_page: 1_000,
        }
    }
}
