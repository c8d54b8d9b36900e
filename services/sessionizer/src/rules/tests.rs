use super::*;
use exatom_core::model::{Device, EventBody, EventKind};

const T0: i64 = 1_795_000_000_000;
const MIN: i64 = 60_000;
const LATENESS: i64 = 2 * MIN;

/// A short name written into the 16 bytes of a UUID (zero padded), so that tests read as
/// names and ids still order as the names do.
fn uuid_of(name: &str) -> String {
    let mut bytes = [0u8; 16];
    bytes[..name.len()].copy_from_slice(name.as_bytes());
    uuid::Uuid::from_bytes(bytes).hyphenated().to_string()
}

/// A visitor name written into a 64-hex visitor id.
fn visitor_of(name: &str) -> String {
    let mut bytes = [0u8; 32];
    bytes[..name.len()].copy_from_slice(name.as_bytes());
    hex::encode(bytes)
}

fn name_of(bytes: &[u8]) -> String {
    String::from_utf8(bytes.iter().copied().take_while(|b| *b != 0).collect()).unwrap()
}

fn event(visitor: &str, id: &str, t: i64) -> AnonEvent {
    AnonEvent {
        event_id: uuid_of(id),
        site: "DEMO".into(),
        visitor_id: visitor_of(visitor),
        kind: EventKind::PageView,
        event_time_ms: t,
        received_at_ms: t,
        body: EventBody::default(),
        device: Device::default(),
    }
}

/// Feeds events in arrival order (received_at = arrival), then closes everything.
fn sessionize(events: &[(AnonEvent, i64)]) -> Vec<ClosedSession> {
    let mut state = PartitionState::new(LATENESS);
    let mut closed = Vec::new();
    for (offset, (e, received_at)) in events.iter().enumerate() {
        closed.extend(state.advance(*received_at));
        let mut e = e.clone();
        e.received_at_ms = *received_at;
        state.place(&e, offset as i64, 0).unwrap();
    }
    closed.extend(state.close_all());
    closed.sort_by_key(|s| (s.started_ms, s.session_id.clone()));
    closed
}

fn ids(sessions: &[ClosedSession]) -> Vec<Vec<String>> {
    sessions
        .iter()
        .map(|s| s.events.iter().map(|e| name_of(&e.event_id)).collect())
        .collect()
}

fn at_arrival(events: Vec<AnonEvent>) -> Vec<(AnonEvent, i64)> {
    events
        .into_iter()
        .map(|e| {
            let t = e.received_at_ms;
            (e, t)
        })
        .collect()
}

#[test]
fn gap_of_exactly_thirty_minutes_keeps_the_session() {
    for (gap, sessions) in [(30 * MIN - 1, 1), (30 * MIN, 1), (30 * MIN + 1, 2)] {
        let got = sessionize(&at_arrival(vec![
            event("v", "a", T0),
            event("v", "b", T0 + gap),
        ]));
        assert_eq!(got.len(), sessions, "gap {gap} ms");
    }
}

#[test]
fn session_bounds_and_order_follow_event_time() {
    let got = sessionize(&at_arrival(vec![
        event("v", "a", T0),
        event("v", "b", T0 + 10 * MIN),
        event("v", "c", T0 + 39 * MIN),
    ]));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].started_ms, T0);
    assert_eq!(got[0].ended_ms, T0 + 39 * MIN);
    assert_eq!(ids(&got), vec![vec!["a", "b", "c"]]);
}

#[test]
fn shuffled_within_lateness_gives_the_same_sessions_and_ids() {
    let times = [0, 5, 20, 45, 80, 81, 130, 131, 132];
    let ordered: Vec<_> = times
        .iter()
        .enumerate()
        .map(|(i, m)| event("v", &format!("e{i}"), T0 + m * MIN))
        .collect();
    let baseline = sessionize(&at_arrival(ordered.clone()));
    assert_eq!(baseline.len(), 3);
    // Arrivals shuffled: each event reaches us up to 90 s (< lateness) after its time.
    let delays = [90, 0, 60, 5, 80, 1, 30, 70, 0];
    let mut shuffled: Vec<(AnonEvent, i64)> = ordered
        .iter()
        .zip(delays)
        .map(|(e, d)| (e.clone(), e.event_time_ms + d * 1000))
        .collect();
    shuffled.sort_by_key(|(_, arrival)| *arrival);
    let got = sessionize(&shuffled);
    assert_eq!(ids(&got), ids(&baseline));
    // Ids follow the opening event, so they differ only where the first arrival differs.
    assert_eq!(got.len(), baseline.len());
}

#[test]
fn an_earlier_event_arriving_late_keeps_the_session_id() {
    let mut state = PartitionState::new(LATENESS);
    state.advance(T0 + MIN);
    let first = state.place(&event("v", "b", T0 + MIN), 0, 0).unwrap();
    state.advance(T0 + MIN + 1000);
    let earlier = state.place(&event("v", "a", T0), 1, 0).unwrap();
    assert_eq!(first.session_id, earlier.session_id);
    assert!(!earlier.late);
    let closed = state.close_all();
    assert_eq!(closed[0].started_ms, T0);
    assert_eq!(ids(&closed), vec![vec!["a", "b"]]);
}

#[test]
fn a_bridging_event_merges_two_sessions_under_the_first_id() {
    let mut state = PartitionState::new(40 * MIN);
    state.advance(T0);
    let a = state.place(&event("v", "a", T0), 0, 0).unwrap();
    let c = state.place(&event("v", "c", T0 + 50 * MIN), 1, 0).unwrap();
    assert_ne!(a.session_id, c.session_id);
    assert_eq!(state.open_sessions(), 2);
    let b = state.place(&event("v", "b", T0 + 25 * MIN), 2, 0).unwrap();
    assert_eq!(b.session_id, a.session_id);
    assert_eq!(b.merged, vec![c.session_id]);
    assert_eq!(state.open_sessions(), 1);
    assert_eq!(state.min_open_offset(), Some(0));
    assert_eq!(ids(&state.close_all()), vec![vec!["a", "b", "c"]]);
}

#[test]
fn two_visitors_interleaved_stay_apart() {
    let got = sessionize(&at_arrival(vec![
        event("v1", "a1", T0),
        event("v2", "a2", T0 + 1),
        event("v1", "b1", T0 + 10 * MIN),
        event("v2", "b2", T0 + 45 * MIN),
    ]));
    let mut by_visitor: Vec<(String, usize)> = got
        .iter()
        .map(|s| {
            (
                name_of(&hex::decode(&s.visitor_id).unwrap()),
                s.events.len(),
            )
        })
        .collect();
    by_visitor.sort();
    assert_eq!(
        by_visitor,
        vec![("v1".into(), 2), ("v2".into(), 1), ("v2".into(), 1)]
    );
}

#[test]
fn midnight_changes_the_visitor_id_and_so_the_session() {
    // 23:50 and 00:05 UTC: within 30 minutes, but the anonymizer gives the visitor a new
    // id at midnight, so these are two visitors and two sessions.
    let midnight = 1_795_478_400_000;
    let got = sessionize(&at_arrival(vec![
        event("monday-id", "a", midnight - 10 * MIN),
        event("tuesday-id", "b", midnight + 5 * MIN),
    ]));
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(
        |s| exatom_core::time::utc_day(s.started_ms) == exatom_core::time::utc_day(s.ended_ms)
    ));
}

#[test]
fn duplicates_are_ignored_and_late_events_flagged_not_dropped() {
    let mut state = PartitionState::new(LATENESS);
    state.advance(T0);
    state.place(&event("v", "a", T0), 0, 0).unwrap();
    assert!(state.place(&event("v", "a", T0), 1, 0).unwrap().duplicate);
    // Stream time moves far on: the session closes.
    let closed = state.advance(T0 + 40 * MIN);
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].events.len(), 1);
    // An event from back then, arriving now, is late: it forms its own session.
    let mut straggler = event("v", "x", T0 + MIN);
    straggler.received_at_ms = T0 + 40 * MIN;
    let late = state.place(&straggler, 2, 0).unwrap();
    assert!(late.late);
    assert_eq!(state.advance(T0 + 40 * MIN + LATENESS + 1).len(), 1);
    assert_eq!(state.open_sessions(), 0);
    assert_eq!(state.min_open_offset(), None);
}

#[test]
fn a_batch_uploaded_long_after_its_events_stays_one_session() {
    // Three events from 40 minutes ago arrive together now: they gather into one session
    // (closing waits for the last arrival + lateness), and each is counted late.
    let now = T0 + 40 * MIN;
    let mut state = PartitionState::new(LATENESS);
    let mut placed = Vec::new();
    for (i, minute) in [0, 3, 7].into_iter().enumerate() {
        let mut e = event("v", &format!("e{i}"), T0 + minute * MIN);
        e.received_at_ms = now;
        assert!(state.advance(now).is_empty());
        placed.push(state.place(&e, i as i64, 0).unwrap());
    }
    assert!(placed
        .iter()
        .all(|p| p.late && p.session_id == placed[0].session_id));
    assert!(state.advance(now + LATENESS).is_empty());
    let closed = state.advance(now + LATENESS + 1);
    assert_eq!(ids(&closed), vec![vec!["e0", "e1", "e2"]]);
}

#[test]
fn commit_point_is_the_oldest_record_of_an_open_session() {
    let mut state = PartitionState::new(LATENESS);
    state.advance(T0);
    state.place(&event("v1", "a", T0), 10, 0).unwrap();
    state.place(&event("v2", "b", T0 + 5 * MIN), 11, 0).unwrap();
    state.place(&event("v1", "c", T0 + 2), 12, 0).unwrap();
    assert_eq!(state.min_open_offset(), Some(10));
    // v1's session closes before v2's.
    let closed = state.advance(T0 + 33 * MIN);
    assert_eq!(closed.len(), 1);
    assert_eq!(state.min_open_offset(), Some(11));
}

#[test]
fn ten_thousand_events_of_one_visitor() {
    let events: Vec<_> = (0..10_000)
        .map(|i| event("v", &format!("e{i:05}"), T0 + i * 1000))
        .collect();
    let got = sessionize(&at_arrival(events));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].events.len(), 10_000);
    assert_eq!(got[0].ended_ms - got[0].started_ms, 9_999_000);
    assert!(got[0]
        .events
        .windows(2)
        .all(|w| w[0].event_time_ms <= w[1].event_time_ms));
}

#[test]
fn ids_are_deterministic_per_site_visitor_and_opening_event() {
    let key = VisitorKey {
        site: "DEMO".into(),
        visitor_id: "v".into(),
    };
    assert_eq!(session_id(&key, "a"), session_id(&key, "a"));
    assert_ne!(session_id(&key, "a"), session_id(&key, "b"));
    let other = VisitorKey {
        site: "SHOP".into(),
        visitor_id: "v".into(),
    };
    assert_ne!(session_id(&key, "a"), session_id(&other, "a"));
    assert_eq!(session_id(&key, "a").len(), 32);
}

#[test]
fn an_idle_partition_closes_by_the_clock_but_not_a_session_still_receiving() {
    let mut state = PartitionState::new(LATENESS);
    state.advance(T0);
    state.place(&event("v", "a", T0), 0, T0).unwrap();
    // The clock passed the deadline, but the session took an event 1 s ago (wall clock).
    let deadline = T0 + 30 * MIN + LATENESS;
    assert!(state.idle(deadline + 1, T0 + 1_000).is_empty());
    assert_eq!(state.open_sessions(), 1);
    // A stalled upstream delivers the rest of the upload late; it still joins.
    state
        .place(&event("v", "b", T0 + 5_000), 1, deadline + 2)
        .unwrap();
    assert!(state.idle(deadline + 3, deadline + 3).is_empty());
    // Quiet for longer than the lateness: closed, in one piece.
    let closed = state.idle(deadline + 10_000, deadline + 2 + LATENESS + 1);
    assert_eq!(ids(&closed), vec![vec!["a", "b"]]);
    // Idle closing never moved the log's stream time.
    assert_eq!(state.stream_time_ms, T0);
}

#[test]
fn a_visitor_behind_newer_traffic_still_gathers_into_one_session() {
    // Another visitor's newer events (received later) reach us first: stream time is ahead
    // of this visitor's arrival, yet its three events still form one session.
    let mut state = PartitionState::new(LATENESS);
    let mut other = event("w", "w1", T0 + 10 * MIN);
    other.received_at_ms = T0 + 10 * MIN;
    state.advance(other.received_at_ms);
    state.place(&other, 0, 0).unwrap();
    let mut ids_placed = Vec::new();
    for (i, minute) in [0, 1, 2].into_iter().enumerate() {
        let e = event("v", &format!("v{i}"), T0 + minute * 1000);
        assert!(state.advance(e.received_at_ms).is_empty());
        ids_placed.push(state.place(&e, 1 + i as i64, 0).unwrap().session_id);
    }
    assert!(ids_placed.iter().all(|id| *id == ids_placed[0]));
}

#[test]
fn the_placed_id_is_the_documented_rule() {
    let mut state = PartitionState::new(LATENESS);
    let e = event("v", "a", T0);
    let placed = state.place(&e, 0, 0).unwrap();
    let key = VisitorKey {
        site: e.site.clone(),
        visitor_id: e.visitor_id.clone(),
    };
    assert_eq!(placed.session_id, session_id(&key, &e.event_id));
    let closed = state.close_all();
    assert_eq!(closed[0].session_id, placed.session_id);
    assert_eq!(closed[0].visitor_id, e.visitor_id);
    assert_eq!(closed[0].events[0].event_id(), e.event_id);
}

#[test]
fn ids_not_written_as_the_pipeline_writes_them_are_refused() {
    let mut state = PartitionState::new(LATENESS);
    // "z" is byte 0x7a: its id has a hex letter to upper-case.
    let mut upper = event("v", "z", T0);
    upper.event_id = upper.event_id.to_uppercase();
    assert!(matches!(
        state.place(&upper, 0, 0),
        Err(Unplaceable::EventId(_))
    ));
    let mut short = event("v", "a", T0);
    short.visitor_id = "abc".into();
    assert_eq!(state.place(&short, 0, 0), Err(Unplaceable::VisitorId));
    let mut not_hex = event("v", "a", T0);
    not_hex.visitor_id = "z".repeat(64);
    assert_eq!(state.place(&not_hex, 0, 0), Err(Unplaceable::VisitorId));
    assert_eq!(state.open_sessions(), 0);
}

#[test]
fn an_arrival_from_a_clock_far_ahead_is_taken_as_now_plus_the_bound() {
    let now = T0;
    assert_eq!(clock_ahead(now, now), None);
    assert_eq!(clock_ahead(now + MAX_CLOCK_AHEAD_MS, now), None);
    assert_eq!(
        clock_ahead(now + 86_400_000, now),
        Some(now + MAX_CLOCK_AHEAD_MS)
    );
}
