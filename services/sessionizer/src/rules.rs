//! Sessions by the rule of `metrics.md`: one visitor's events with no gap over 30 minutes
//! of event time (exactly 30:00.000 keeps the session). Pure: no clock, no I/O.
//!
//! **Time.** Each partition has a *stream time*: the latest `received_at` (collector clock)
//! seen on it. A session's deadline is the latest of: its last event + 30 min; its last
//! arrival (a batch uploaded long after its events — a tab woken from sleep — still gathers
//! into one session); the stream time when it last took an event (events of one visitor
//! that reach us behind other visitors' newer ones still gather) — plus the allowed
//! lateness. A session closes when stream time passes
//! its deadline: because stream time comes from the log, replaying a partition closes the
//! same sessions at the same points. When a partition is idle (nothing left to read), the
//! wall clock less a margin stands in for stream time, so sessions close on time with
//! sparse traffic; a session that received an event less than the lateness ago (wall
//! clock) stays open, so a pipeline stall never splits one upload into many sessions.
//!
//! **Ids.** A session's id is derived from (site, visitor, the id of the event that opened
//! it), so reprocessing yields the same ids, and an earlier event arriving late does not
//! change it. When a late event bridges two open sessions, they merge under the id of the
//! one that started first; the other id is reported so rows written under it are rewritten.
//!
//! **Late events.** An event that arrives more than the lateness after it happened is
//! counted as late. If the session it belongs to was already closed, it opens a session of
//! its own: never dropped.

use std::collections::{BTreeSet, HashMap};

use exatom_shared::model::{AnonEvent, Device, Session, SessionEvent};
use sha2::{Digest, Sha256};

/// The longest gap inside a session, in ms: 30:00.000.
pub const SESSION_GAP_MS: i64 = 30 * 60_000;

/// Whose events these are: site and daily visitor id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VisitorKey {
    pub site: String,
    pub visitor_id: String,
}

/// An open session: its events in event-time order, and where its oldest record sits.
#[derive(Debug, Clone)]
pub struct OpenSession {
    pub session_id: String,
    pub events: Vec<SessionEvent>,
    pub device: Device,
    /// Smallest source offset among the session's events: offsets below it may be committed.
    pub min_offset: i64,
    /// Latest `received_at` among the session's events.
    pub last_received_ms: i64,
    /// Stream time when the session last took an event.
    pub last_placed_ms: i64,
    /// Wall clock when the session last took an event (idle closing only).
    pub touched_ms: i64,
}

impl OpenSession {
    pub fn first_ms(&self) -> i64 {
        self.events.first().map_or(0, |e| e.event_time_ms)
    }

    pub fn last_ms(&self) -> i64 {
        self.events.last().map_or(0, |e| e.event_time_ms)
    }

    fn insert(&mut self, event: SessionEvent) {
        let at = self.events.partition_point(|e| {
            (e.event_time_ms, &e.event_id) < (event.event_time_ms, &event.event_id)
        });
        self.events.insert(at, event);
    }
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
    visitors: HashMap<VisitorKey, Vec<OpenSession>>,
    /// (closing deadline, visitor) for every visitor with open sessions.
    deadlines: BTreeSet<(i64, VisitorKey)>,
    open: usize,
}

impl PartitionState {
    pub fn new(lateness_ms: i64) -> Self {
        PartitionState {
            lateness_ms,
            stream_time_ms: i64::MIN,
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
    pub fn advance(&mut self, time_ms: i64) -> Vec<Session> {
        self.stream_time_ms = self.stream_time_ms.max(time_ms);
        let mut closed = Vec::new();
        while let Some((deadline, _)) = self.deadlines.first() {
            if *deadline >= self.stream_time_ms {
                break;
            }
            let (_, key) = self.deadlines.pop_first().expect("checked non-empty");
            let sessions = self.visitors.remove(&key).unwrap_or_default();
            let (due, keep): (Vec<_>, Vec<_>) = sessions
                .into_iter()
                .partition(|s| self.deadline_of(s) < self.stream_time_ms);
            self.open -= due.len();
            closed.extend(due.into_iter().map(|s| close(&key, s)));
            if !keep.is_empty() {
                self.track(key, keep);
            }
        }
        closed
    }

    /// Closes, on an idle partition, the sessions whose deadline is before `clock_ms` and
    /// that took no event in the last lateness (wall clock `now_ms`).
    pub fn idle(&mut self, clock_ms: i64, now_ms: i64) -> Vec<Session> {
        let mut closed = Vec::new();
        let mut waiting = Vec::new();
        while let Some((deadline, _)) = self.deadlines.first() {
            if *deadline >= clock_ms {
                break;
            }
            let (_, key) = self.deadlines.pop_first().expect("checked non-empty");
            let sessions = self.visitors.remove(&key).unwrap_or_default();
            let (due, keep): (Vec<_>, Vec<_>) = sessions.into_iter().partition(|s| {
                self.deadline_of(s) < clock_ms && s.touched_ms + self.lateness_ms < now_ms
            });
            self.open -= due.len();
            closed.extend(due.into_iter().map(|s| close(&key, s)));
            if !keep.is_empty() {
                waiting.push((key, keep));
            }
        }
        for (key, keep) in waiting {
            self.track(key, keep);
        }
        closed
    }

    fn deadline_of(&self, s: &OpenSession) -> i64 {
        (s.last_ms() + SESSION_GAP_MS)
            .max(s.last_received_ms)
            .max(s.last_placed_ms)
            + self.lateness_ms
    }

    fn track(&mut self, key: VisitorKey, sessions: Vec<OpenSession>) {
        let deadline = sessions
            .iter()
            .map(|s| self.deadline_of(s))
            .min()
            .expect("tracked visitors have sessions");
        self.deadlines.insert((deadline, key.clone()));
        self.visitors.insert(key, sessions);
    }

    fn untrack(&mut self, key: &VisitorKey) -> Vec<OpenSession> {
        let sessions = self.visitors.remove(key).unwrap_or_default();
        if let Some(deadline) = sessions.iter().map(|s| self.deadline_of(s)).min() {
            self.deadlines.remove(&(deadline, key.clone()));
        }
        sessions
    }

    /// Places one event (already past [`advance`](Self::advance) for its `received_at`);
    /// `now_ms` is the wall clock, used only to keep idle closing from cutting a session
    /// that is still receiving.
    pub fn place(&mut self, event: &AnonEvent, offset: i64, now_ms: i64) -> Placed {
        let key = VisitorKey {
            site: event.site.clone(),
            visitor_id: event.visitor_id.clone(),
        };
        let t = event.event_time_ms;
        let late = event.received_at_ms - t > self.lateness_ms;
        let mut sessions = self.untrack(&key);
        if let Some(s) = sessions
            .iter()
            .find(|s| s.events.iter().any(|e| e.event_id == event.event_id))
        {
            let placed = Placed {
                session_id: s.session_id.clone(),
                merged: Vec::new(),
                duplicate: true,
                late,
            };
            self.track(key, sessions);
            return placed;
        }
        // Sessions within 30:00.000 of the event on either side.
        let (near, mut far): (Vec<_>, Vec<_>) = sessions
            .drain(..)
            .partition(|s| t >= s.first_ms() - SESSION_GAP_MS && t <= s.last_ms() + SESSION_GAP_MS);
        let mut near = near;
        near.sort_by(|a, b| (a.first_ms(), &a.session_id).cmp(&(b.first_ms(), &b.session_id)));
        let session_event = SessionEvent::from_anon(event);
        let mut merged = Vec::new();
        let session = match near.len() {
            0 => {
                self.open += 1;
                OpenSession {
                    session_id: session_id(&key, &event.event_id),
                    events: vec![session_event],
                    device: event.device.clone(),
                    min_offset: offset,
                    last_received_ms: event.received_at_ms,
                    last_placed_ms: self.stream_time_ms,
                    touched_ms: now_ms,
                }
            }
            _ => {
                let mut iter = near.into_iter();
                let mut keep = iter.next().expect("non-empty");
                for other in iter {
                    merged.push(other.session_id.clone());
                    keep.min_offset = keep.min_offset.min(other.min_offset);
                    keep.last_received_ms = keep.last_received_ms.max(other.last_received_ms);
                    keep.touched_ms = keep.touched_ms.max(other.touched_ms);
                    keep.last_placed_ms = keep.last_placed_ms.max(other.last_placed_ms);
                    for e in other.events {
                        keep.insert(e);
                    }
                    self.open -= 1;
                }
                keep.insert(session_event);
                keep.min_offset = keep.min_offset.min(offset);
                keep.last_received_ms = keep.last_received_ms.max(event.received_at_ms);
                keep.touched_ms = keep.touched_ms.max(now_ms);
                keep.last_placed_ms = keep.last_placed_ms.max(self.stream_time_ms);
                keep
            }
        };
        let placed = Placed {
            session_id: session.session_id.clone(),
            merged,
            duplicate: false,
            late,
        };
        far.push(session);
        self.track(key, far);
        placed
    }

    /// Closes every open session (used by tests to compare runs; never on shutdown, where
    /// open sessions are left to the next owner of the partition).
    pub fn close_all(&mut self) -> Vec<Session> {
        self.advance(i64::MAX)
    }
}

/// `hex(SHA-256(len-prefixed site, visitor id, opening event id))[..32]`.
pub fn session_id(key: &VisitorKey, opening_event_id: &str) -> String {
    let mut h = Sha256::new();
    for part in [&key.site, &key.visitor_id, opening_event_id] {
        h.update((part.len() as u32).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(&h.finalize()[..16])
}

fn close(key: &VisitorKey, s: OpenSession) -> Session {
    Session {
        session_id: s.session_id.clone(),
        site: key.site.clone(),
        visitor_id: key.visitor_id.clone(),
        started_ms: s.first_ms(),
        ended_ms: s.last_ms(),
        device: s.device,
        events: s.events,
    }
}

#[cfg(test)]
mod tests;
