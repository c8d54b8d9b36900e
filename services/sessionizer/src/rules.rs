//! Sessions by the rule of `metrics.md`: one visitor's events with no gap over 30 minutes
//! of event time (exactly 30:00.000 keeps the session). Pure: no clock, no I/O.
//!
//! **Time.** Each partition has a *stream time*: the latest `received_at` (collector clock)
//! seen on it. A session's deadline is the latest of: its last event + 30 min; its last
//! arrival (a batch uploaded long after its events — a tab woken from sleep — still gathers
//! into one session); the stream time when it last took an event (events of one visitor
//! that reach us behind other visitors' newer ones still gather) — plus the allowed
//! lateness. A session closes when stream time passes its deadline: because stream time
//! comes from the log, replaying a partition closes the same sessions at the same points.
//! When a partition is idle (nothing left to read), the wall clock less a margin stands in
//! for stream time, so sessions close on time with sparse traffic; a session that received
//! an event less than the lateness ago (wall clock) stays open, so a pipeline stall never
//! splits one upload into many sessions.
//!
//! **Ids.** A session's id is derived from (site, visitor, the id of the event that opened
//! it), so reprocessing yields the same ids, and an earlier event arriving late does not
//! change it. When a late event bridges two open sessions, they merge under the id of the
//! one that started first; the other id is reported so rows written under it are rewritten.
//!
//! **Late events.** An event that arrives more than the lateness after it happened is
//! counted as late. If the session it belongs to was already closed, it opens a session of
//! its own: never dropped.
//!
//! **Memory.** An open session holds no event content, only each event's time and 16-byte
//! id: the content is in ClickHouse `events` already (written the moment the event is
//! placed) and is read back when the session closes. Visitors are keyed by the 32 bytes of
//! their id and an interned site. BENCHMARKS.md gives the measured bytes per open session.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use exatom_core::model::AnonEvent;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The longest gap inside a session, in ms: 30:00.000.
pub const SESSION_GAP_MS: i64 = 30 * 60_000;

/// How far past this host's clock a collector's `received_at` may lie (the collector's own
/// `future` bound is the same size). One collector whose clock runs a day ahead would
/// otherwise move its partitions' stream time a day on, and every session there would wait
/// a day to close.
pub const MAX_CLOCK_AHEAD_MS: i64 = 5 * 60_000;

/// `Some(the latest believable arrival)` when `received_at_ms` lies further ahead of
/// `now_ms` than [`MAX_CLOCK_AHEAD_MS`]; such an event is taken to have arrived then.
pub fn clock_ahead(received_at_ms: i64, now_ms: i64) -> Option<i64> {
    let latest = now_ms + MAX_CLOCK_AHEAD_MS;
    (received_at_ms > latest).then_some(latest)
}

/// Whose events these are: site and daily visitor id, as they appear in records and rows.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VisitorKey {
    pub site: String,
    pub visitor_id: String,
}

/// The same key as held in memory: an interned site and the visitor id's 32 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Visitor {
    site: u32,
    id: [u8; 32],
}

/// An event as the rules see it: when it happened and its id. Ordered by (time, id), which
/// is the order of (time, canonical id text) too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EventStub {
    pub event_time_ms: i64,
    pub event_id: [u8; 16],
}

impl EventStub {
    /// The event id as every record and row writes it (lowercase, hyphenated).
    pub fn event_id(&self) -> String {
        Uuid::from_bytes(self.event_id).hyphenated().to_string()
    }
}

/// An event the rules cannot hold: ids that are not what the anonymizer writes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unplaceable {
    #[error("event id {0:?} is not a lowercase hyphenated UUID")]
    EventId(String),
    #[error("visitor id is not 64 lowercase hex digits")]
    VisitorId,
}

/// An open session: its events in event-time order, and where its oldest record sits.
#[derive(Debug, Clone)]
struct OpenSession {
    session_id: [u8; 16],
    events: Vec<EventStub>,
    /// Smallest source offset among the session's events: offsets below it may be committed.
    min_offset: i64,
    /// Latest `received_at` among the session's events.
    last_received_ms: i64,
    /// Stream time when the session last took an event.
    last_placed_ms: i64,
    /// Wall clock when the session last took an event (idle closing only).
    touched_ms: i64,
}

impl OpenSession {
    fn first_ms(&self) -> i64 {
        self.events.first().map_or(0, |e| e.event_time_ms)
    }

    fn last_ms(&self) -> i64 {
        self.events.last().map_or(0, |e| e.event_time_ms)
    }

    fn insert(&mut self, event: EventStub) {
        let at = self.events.partition_point(|e| *e < event);
        // Exact growth: a doubling Vec would hold up to twice the events' 24 bytes each.
        self.events.reserve_exact(1);
        self.events.insert(at, event);
    }
}

/// A session the rules closed: which events it holds, in order. The sink reads their
/// content back from ClickHouse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedSession {
    pub session_id: String,
    pub site: String,
    pub visitor_id: String,
    pub started_ms: i64,
    pub ended_ms: i64,
    pub events: Vec<EventStub>,
}

/// What one event did to the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    /// The session the event is in now.
    pub session_id: String,
    /// Sessions absorbed by a bridging event: their rows now belong to `session_id`.
    pub merged: Vec<String>,
    /// The event's id was already in the session (an upstream retry): nothing changed.
    pub duplicate: bool,
    /// The event arrived more than the allowed lateness after it happened.
    pub late: bool,
}

/// The open sessions of one partition.
#[derive(Debug)]
pub struct PartitionState {
    lateness_ms: i64,
    /// Latest collector time seen: drives closing.
    pub stream_time_ms: i64,
    sites: Vec<Arc<str>>,
    site_numbers: HashMap<Arc<str>, u32>,
    visitors: HashMap<Visitor, Vec<OpenSession>>,
    /// (closing deadline, visitor) for every visitor with open sessions.
    deadlines: BTreeSet<(i64, Visitor)>,
    open: usize,
}

impl PartitionState {
    pub fn new(lateness_ms: i64) -> Self {
        PartitionState {
            lateness_ms,
            stream_time_ms: i64::MIN,
            sites: Vec::new(),
            site_numbers: HashMap::new(),
            visitors: HashMap::new(),
            deadlines: BTreeSet::new(),
            open: 0,
        }
    }

    pub fn open_sessions(&self) -> usize {
        self.open
    }

    /// The smallest source offset still needed by an open session.
    pub fn min_open_offset(&self) -> Option<i64> {
        self.visitors.values().flatten().map(|s| s.min_offset).min()
    }

    /// Moves stream time forward (never back) and returns the sessions it closes.
    pub fn advance(&mut self, time_ms: i64) -> Vec<ClosedSession> {
        self.stream_time_ms = self.stream_time_ms.max(time_ms);
        let now = self.stream_time_ms;
        self.close_due(now, |_| true)
    }

    /// Closes, on an idle partition, the sessions whose deadline is before `clock_ms` and
    /// that took no event in the last lateness (wall clock `now_ms`).
    pub fn idle(&mut self, clock_ms: i64, now_ms: i64) -> Vec<ClosedSession> {
        let lateness = self.lateness_ms;
        self.close_due(clock_ms, |s| s.touched_ms + lateness < now_ms)
    }

    /// Closes every open session (used by tests to compare runs; never on shutdown, where
    /// open sessions are left to the next owner of the partition).
    pub fn close_all(&mut self) -> Vec<ClosedSession> {
        self.advance(i64::MAX)
    }

    fn close_due(
        &mut self,
        clock_ms: i64,
        quiet: impl Fn(&OpenSession) -> bool,
    ) -> Vec<ClosedSession> {
        let mut closed = Vec::new();
        let mut waiting = Vec::new();
        while let Some((deadline, _)) = self.deadlines.first() {
            if *deadline >= clock_ms {
                break;
            }
            let (_, visitor) = self.deadlines.pop_first().expect("checked non-empty");
            let sessions = self.visitors.remove(&visitor).unwrap_or_default();
            let (due, keep): (Vec<_>, Vec<_>) = sessions
                .into_iter()
                .partition(|s| self.deadline_of(s) < clock_ms && quiet(s));
            self.open -= due.len();
            closed.extend(due.into_iter().map(|s| self.close(visitor, s)));
            if !keep.is_empty() {
                waiting.push((visitor, keep));
            }
        }
        for (visitor, keep) in waiting {
            self.track(visitor, keep);
        }
        closed
    }

    fn deadline_of(&self, s: &OpenSession) -> i64 {
        (s.last_ms() + SESSION_GAP_MS)
            .max(s.last_received_ms)
            .max(s.last_placed_ms)
            + self.lateness_ms
    }

    fn track(&mut self, visitor: Visitor, sessions: Vec<OpenSession>) {
        let deadline = sessions
            .iter()
            .map(|s| self.deadline_of(s))
            .min()
            .expect("tracked visitors have sessions");
        self.deadlines.insert((deadline, visitor));
        self.visitors.insert(visitor, sessions);
    }

    fn untrack(&mut self, visitor: &Visitor) -> Vec<OpenSession> {
        let sessions = self.visitors.remove(visitor).unwrap_or_default();
        if let Some(deadline) = sessions.iter().map(|s| self.deadline_of(s)).min() {
            self.deadlines.remove(&(deadline, *visitor));
        }
        sessions
    }

    fn site_number(&mut self, site: &str) -> u32 {
        if let Some(n) = self.site_numbers.get(site) {
            return *n;
        }
        let n = u32::try_from(self.sites.len()).expect("fewer than 2^32 sites");
        let site: Arc<str> = Arc::from(site);
        self.sites.push(site.clone());
        self.site_numbers.insert(site, n);
        n
    }

    fn close(&self, visitor: Visitor, s: OpenSession) -> ClosedSession {
        ClosedSession {
            session_id: hex::encode(s.session_id),
            site: self.sites[visitor.site as usize].to_string(),
            visitor_id: hex::encode(visitor.id),
            started_ms: s.first_ms(),
            ended_ms: s.last_ms(),
            events: s.events,
        }
    }

    /// Places one event (already past [`advance`](Self::advance) for its `received_at`);
    /// `now_ms` is the wall clock, used only to keep idle closing from cutting a session
    /// that is still receiving.
    pub fn place(
        &mut self,
        event: &AnonEvent,
        offset: i64,
        now_ms: i64,
    ) -> Result<Placed, Unplaceable> {
        let stub = EventStub {
            event_time_ms: event.event_time_ms,
            event_id: canonical_uuid(&event.event_id)
                .ok_or_else(|| Unplaceable::EventId(event.event_id.clone()))?,
        };
        let visitor = Visitor {
            site: self.site_number(&event.site),
            id: visitor_bytes(&event.visitor_id).ok_or(Unplaceable::VisitorId)?,
        };
        let t = event.event_time_ms;
        let late = event.received_at_ms - t > self.lateness_ms;
        let mut sessions = self.untrack(&visitor);
        if let Some(s) = sessions
            .iter()
            .find(|s| s.events.iter().any(|e| e.event_id == stub.event_id))
        {
            let placed = Placed {
                session_id: hex::encode(s.session_id),
                merged: Vec::new(),
                duplicate: true,
                late,
            };
            self.track(visitor, sessions);
            return Ok(placed);
        }
        // Sessions within 30:00.000 of the event on either side leave `sessions`.
        let mut near = Vec::new();
        let mut i = 0;
        while i < sessions.len() {
            let s = &sessions[i];
            if t >= s.first_ms() - SESSION_GAP_MS && t <= s.last_ms() + SESSION_GAP_MS {
                near.push(sessions.swap_remove(i));
            } else {
                i += 1;
            }
        }
        near.sort_by_key(|a| (a.first_ms(), a.session_id));
        let mut merged = Vec::new();
        let mut near = near.into_iter();
        let session = match near.next() {
            None => {
                self.open += 1;
                OpenSession {
                    session_id: session_id_bytes(&event.site, &event.visitor_id, &event.event_id),
                    events: vec![stub],
                    min_offset: offset,
                    last_received_ms: event.received_at_ms,
                    last_placed_ms: self.stream_time_ms,
                    touched_ms: now_ms,
                }
            }
            Some(mut keep) => {
                for other in near {
                    merged.push(hex::encode(other.session_id));
                    keep.min_offset = keep.min_offset.min(other.min_offset);
                    keep.last_received_ms = keep.last_received_ms.max(other.last_received_ms);
                    keep.touched_ms = keep.touched_ms.max(other.touched_ms);
                    keep.last_placed_ms = keep.last_placed_ms.max(other.last_placed_ms);
                    for e in other.events {
                        keep.insert(e);
                    }
                    self.open -= 1;
                }
                keep.insert(stub);
                keep.min_offset = keep.min_offset.min(offset);
                keep.last_received_ms = keep.last_received_ms.max(event.received_at_ms);
                keep.touched_ms = keep.touched_ms.max(now_ms);
                keep.last_placed_ms = keep.last_placed_ms.max(self.stream_time_ms);
                keep
            }
        };
        let placed = Placed {
            session_id: hex::encode(session.session_id),
            merged,
            duplicate: false,
            late,
        };
        // Most visitors have one open session: no spare capacity per visitor.
        sessions.reserve_exact(1);
        sessions.push(session);
        self.track(visitor, sessions);
        Ok(placed)
    }
}

/// `hex(SHA-256(len-prefixed site, visitor id, opening event id))[..32]`.
pub fn session_id(key: &VisitorKey, opening_event_id: &str) -> String {
    hex::encode(session_id_bytes(
        &key.site,
        &key.visitor_id,
        opening_event_id,
    ))
}

fn session_id_bytes(site: &str, visitor_id: &str, opening_event_id: &str) -> [u8; 16] {
    let mut h = Sha256::new();
    for part in [site, visitor_id, opening_event_id] {
        h.update((part.len() as u32).to_be_bytes());
        h.update(part.as_bytes());
    }
    let digest = h.finalize();
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    id
}

/// The UUID's bytes, if `text` is written as the collector writes ids (so that it can be
/// written back identically).
fn canonical_uuid(text: &str) -> Option<[u8; 16]> {
    let uuid = Uuid::try_parse(text).ok()?;
    let mut buf = Uuid::encode_buffer();
    (uuid.hyphenated().encode_lower(&mut buf) == text).then(|| *uuid.as_bytes())
}

/// The 32 bytes of a visitor id written as the anonymizer writes it (lowercase hex).
fn visitor_bytes(text: &str) -> Option<[u8; 32]> {
    if !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut id = [0u8; 32];
    hex::decode_to_slice(text, &mut id).ok()?;
    Some(id)
}

#[cfg(test)]
mod tests;
