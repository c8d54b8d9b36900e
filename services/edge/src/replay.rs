//! Session replay at the edge: which visitors are recorded, and the checks a replay batch
//! passes before it reaches `exatom.replay`. Pure: the collector's `replay` module does the
//! HTTP and the producing.
//!
//! A batch on the wire (`POST /v1/replay`, gzip or plain JSON):
//! `{"site", "page_view_id", "seq", "sent_at", "events": [rrweb events]}`. The events were
//! masked in the browser (`tags/src/replay.js`); here they are only checked for shape and
//! size, never rewritten, except a full snapshot over the limit, which becomes a
//! placeholder page (cutting it would leave JSON no player can read).

use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::batch::checks::{canonical_uuid, parse_time};
use crate::limits::Limits;

/// rrweb's event types: 0 DomContentLoaded … 6 Plugin.
const MAX_EVENT_TYPE: u8 = 6;
const FULL_SNAPSHOT: u8 = 2;

/// Why a batch was refused: `TooLarge` and `PageSpent` are 413, the rest 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("body is not a replay batch: {0}")]
    Malformed(String),
    #[error("a replay batch holds at most {0} events")]
    TooManyEvents(usize),
    #[error("this page's replay is over its limit of {0} batches: the rest is not recorded")]
    PageSpent(u32),
}

/// A batch that passed: what the collector produces, before it is gzipped.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedBatch {
    pub site: String,
    pub page_view_id: String,
    pub seq: u32,
    pub sent_at_ms: i64,
    /// The events, a JSON array, each as the browser wrote it (snapshots over the limit
    /// replaced).
    pub events: String,
    pub event_count: usize,
    pub first_ms: i64,
    pub last_ms: i64,
    /// Full snapshots over the limit, replaced by a placeholder page.
    pub snapshots_replaced: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire<'a> {
    site: String,
    page_view_id: String,
    seq: u32,
    sent_at: String,
    #[serde(borrow)]
    events: Vec<&'a RawValue>,
}

/// The two fields every rrweb event has; the rest is the player's business.
#[derive(Deserialize)]
struct Head {
    #[serde(rename = "type")]
    kind: u8,
    timestamp: i64,
}

/// Checks a decoded body. Never echoes the events in an error: they are a page's content.
pub fn check(body: &[u8], limits: &Limits) -> Result<CheckedBatch, ReplayError> {
    let wire: Wire<'_> =
        serde_json::from_slice(body).map_err(|e| ReplayError::Malformed(wire_error(&e)))?;
    if !crate::batch::valid_site_code(&wire.site) {
        return Err(ReplayError::Malformed(
            "`site` must be a site code ([A-Za-z0-9_-]{2,32})".into(),
        ));
    }
    let page_view_id = canonical_uuid(&wire.page_view_id).ok_or_else(|| {
        ReplayError::Malformed("`page_view_id` must be the page view's UUID".into())
    })?;
    let sent_at_ms =
        parse_time(&wire.sent_at).map_err(|e| ReplayError::Malformed(format!("`sent_at` {e}")))?;
    if wire.seq >= limits.max_replay_batches_per_page {
        return Err(ReplayError::PageSpent(limits.max_replay_batches_per_page));
    }
    if wire.events.is_empty() {
        return Err(ReplayError::Malformed("`events` is empty".into()));
    }
    if wire.events.len() > limits.max_replay_events {
        return Err(ReplayError::TooManyEvents(limits.max_replay_events));
    }
    let mut events = String::with_capacity(body.len());
    events.push('[');
    let (mut first_ms, mut last_ms, mut replaced) = (i64::MAX, i64::MIN, 0);
    for (i, raw) in wire.events.iter().enumerate() {
        let head: Head = serde_json::from_str(raw.get()).map_err(|_| {
            ReplayError::Malformed(format!(
                "event {i} is not an rrweb event (an object with a numeric `type` and `timestamp`)"
            ))
        })?;
        if head.kind > MAX_EVENT_TYPE || head.timestamp <= 0 {
            return Err(ReplayError::Malformed(format!(
                "event {i}: type {} or timestamp {} out of range",
                head.kind, head.timestamp
            )));
        }
        first_ms = first_ms.min(head.timestamp);
        last_ms = last_ms.max(head.timestamp);
        if i > 0 {
            events.push(',');
        }
        if head.kind == FULL_SNAPSHOT && raw.get().len() > limits.max_replay_snapshot_bytes {
            events.push_str(&too_large_page(head.timestamp));
            replaced += 1;
        } else {
            events.push_str(raw.get());
        }
    }
    events.push(']');
    Ok(CheckedBatch {
        site: wire.site,
        page_view_id,
        seq: wire.seq,
        sent_at_ms,
        event_count: wire.events.len(),
        events,
        first_ms,
        last_ms,
        snapshots_replaced: replaced,
    })
}

/// serde's message without anything of the input it may quote (a page's text, a field name
/// the browser made up): its kind, and where.
fn wire_error(e: &serde_json::Error) -> String {
    let message = e.to_string();
    let what = message.split(" at line ").next().unwrap_or_default();
    let what = if what.starts_with("missing field") {
        what
    } else {
        what.split([':', '`', '"'])
            .next()
            .unwrap_or_default()
            .trim()
    };
    format!("{what} (line {}, column {})", e.line(), e.column())
}

/// A full snapshot standing in for a page too large to record: a document whose body says
/// so, which any rrweb player renders.
pub fn too_large_page(timestamp: i64) -> String {
    format!(
        r#"{{"type":2,"timestamp":{timestamp},"data":{{"node":{{"type":0,"id":1,"childNodes":[{{"type":2,"id":2,"tagName":"html","attributes":{{}},"childNodes":[{{"type":2,"id":3,"tagName":"body","attributes":{{}},"childNodes":[{{"type":3,"id":4,"textContent":"This page was too large to record."}}]}}]}}]}},"initialOffset":{{"left":0,"top":0}}}}}}"#
    )
}

/// Whether a visitor's pages are recorded: the same answer for every page of a day (so a
/// replay has all of a session's pages), from a hash of what the collector sees of the
/// visitor. The hash decides and is dropped: nothing is stored, and the browser keeps no
/// mark of having been picked.
pub fn in_sample(site: &str, day: i64, ip: &str, user_agent: &str, rate: f64) -> bool {
    if rate <= 0.0 {
        return false;
    }
    if rate >= 1.0 {
        return true;
    }
    let mut hash = Sha256::new();
    for part in [
        site.as_bytes(),
        &day.to_be_bytes(),
        ip.as_bytes(),
        user_agent.as_bytes(),
    ] {
        hash.update(part);
        hash.update([0]);
    }
    let digest = hash.finalize();
    let x = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes of a SHA-256"));
    // The top 53 bits, as a uniform number in [0, 1).
    ((x >> 11) as f64 / (1u64 << 53) as f64) < rate
}

/// Replay bytes per site and minute (a collector's own count: N collectors let a site send
/// N times as much). Sites are the registry's, so the map is as small as it.
#[derive(Debug, Default)]
pub struct SiteQuota {
    minute: i64,
    used: std::collections::HashMap<String, u64>,
}

impl SiteQuota {
    /// Counts `bytes` against the site's minute, or says in how many seconds the next
    /// minute starts. A batch larger than the whole quota is taken when the minute is
    /// fresh, so that no limit setting makes a site's large pages unrecordable.
    pub fn take(
        &mut self,
        site: &str,
        bytes: u64,
        per_minute: u64,
        now_ms: i64,
    ) -> Result<(), u64> {
        let minute = now_ms.div_euclid(60_000);
        if minute != self.minute {
            self.minute = minute;
            self.used.clear();
        }
        let used = self.used.entry(site.to_owned()).or_default();
        if *used > 0 && used.saturating_add(bytes) > per_minute {
            return Err(u64::try_from(60 - now_ms.rem_euclid(60_000) / 1000).unwrap_or(60));
        }
        *used = used.saturating_add(bytes);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
