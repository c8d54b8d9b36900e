use super::*;
use crate::encoder::{EventRow, LIVE_VERSION};
use crate::rules::PartitionState;
use exatom_core::model::{AnonEvent, Click, ErrorFrame, EventBody, FieldRef, Form, ScriptError};

const T0: i64 = 1_795_000_000_000;
const VISITOR: &str = "5f1e0c7d2b3a4968a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718";

fn anon(n: u8, t: i64, kind: EventKind, body: EventBody) -> AnonEvent {
    AnonEvent {
        event_id: format!("6f1c2e3a-0000-4000-8000-0000000000{n:02x}"),
        site: "DEMO".into(),
        visitor_id: VISITOR.into(),
        kind,
        event_time_ms: t,
        received_at_ms: t + 50,
        body,
        device: Device {
            country: "NL".into(),
            region: "NH".into(),
            browser_family: "Firefox".into(),
            browser_major: "133".into(),
            os_family: "Linux".into(),
            device_class: "desktop".into(),
            is_bot: false,
        },
    }
}

fn form_event(n: u8, t: i64, kind: FormEventKind, value: Option<&str>) -> AnonEvent {
    anon(
        n,
        t,
        EventKind::FormEvent,
        EventBody {
            page: Some("https://shop.test/signup".into()),
            form: Some(Form {
                name: "signup".into(),
                ..Form::default()
            }),
            form_event: Some(kind),
            field: Some(FieldRef {
                name: "email".into(),
                ..FieldRef::default()
            }),
            value: value.map(str::to_owned),
            ..EventBody::default()
        },
    )
}

/// One visit with every kind of event, and the ways a value can be there or not.
fn visit() -> Vec<AnonEvent> {
    vec![
        anon(
            1,
            T0,
            EventKind::PageView,
            EventBody {
                page: Some("https://shop.test/signup".into()),
                title: Some("Sign up".into()),
                referrer: Some("https://search.test/".into()),
                ..EventBody::default()
            },
        ),
        form_event(2, T0 + 1_000, FormEventKind::Focus, None),
        form_event(3, T0 + 2_000, FormEventKind::Input, Some("*")),
        form_event(4, T0 + 3_000, FormEventKind::Input, Some("")),
        form_event(5, T0 + 4_000, FormEventKind::Blur, Some("")),
        anon(
            6,
            T0 + 9_000,
            EventKind::Conversion,
            EventBody {
                conversion_tag: Some("DEMO1".into()),
                transaction_id: Some("1f0a".into()),
                revenue: Some(12.5),
                currency: Some("EUR".into()),
                ..EventBody::default()
            },
        ),
        anon(
            7,
            T0 + 9_500,
            EventKind::Tooltip,
            EventBody {
                tooltip_action: Some(TooltipAction::Click),
                trigger: Some("ExatomFormStartHesitation".into()),
                ..EventBody::default()
            },
        ),
        anon(
            8,
            T0 + 9_600,
            EventKind::Click,
            EventBody {
                page: Some("https://shop.test/signup".into()),
                click: Some(Click {
                    x: 0.375,
                    y: 1210,
                    viewport_width: 390,
                    path: "main>div.btn".into(),
                    interactive: false,
                    rage: true,
                    dead: true,
                }),
                ..EventBody::default()
            },
        ),
        anon(
            9,
            T0 + 9_700,
            EventKind::Scroll,
            EventBody {
                page: Some("https://shop.test/signup".into()),
                scroll_depth: Some(75),
                ..EventBody::default()
            },
        ),
        anon(
            10,
            T0 + 9_800,
            EventKind::JsError,
            EventBody {
                page: Some("https://shop.test/signup".into()),
                error: Some(ScriptError {
                    message: "Widget failed".into(),
                    source: "https://cdn.shop.test:8443/widget.js".into(),
                    line: 3,
                    column: 11,
                    frames: vec![
                        ErrorFrame {
                            file: "https://cdn.shop.test:8443/widget.js".into(),
                            line: 3,
                            column: 11,
                        },
                        ErrorFrame::default(),
                    ],
                }),
                ..EventBody::default()
            },
        ),
    ]
}

/// What ClickHouse gives back for a live row: the row without its session id, seq, version.
fn as_stored(row: &EventRow) -> StoredEvent {
    StoredEvent {
        site: row.site.clone(),
        day: row.day,
        event_id: row.event_id.clone(),
        visitor_id: row.visitor_id.clone(),
        kind: row.kind.to_owned(),
        event_time_ms: row.event_time_ms,
        received_at_ms: row.received_at_ms,
        page: row.page.clone(),
        title: row.title.clone(),
        referrer: row.referrer.clone(),
        form_key: row.form_key.clone(),
        field_key: row.field_key.clone(),
        field_order: row.field_order,
        form_event: row.form_event.to_owned(),
        value: row.value.clone(),
        value_present: row.value_present,
        conversion_tag: row.conversion_tag.clone(),
        transaction_id: row.transaction_id.clone(),
        revenue: row.revenue,
        currency: row.currency.clone(),
        tooltip_action: row.tooltip_action.to_owned(),
        trigger: row.trigger.clone(),
        click_x: row.click_x,
        click_y: row.click_y,
        viewport_width: row.viewport_width,
        element_path: row.element_path.clone(),
        click_flags: row.click_flags,
        scroll_depth: row.scroll_depth,
        error_message: row.error_message.clone(),
        error_source: row.error_source.clone(),
        error_line: row.error_line,
        error_column: row.error_column,
        error_frames: row.error_frames.clone(),
        country: row.country.clone(),
        region: row.region.clone(),
        browser_family: row.browser_family.clone(),
        browser_major: row.browser_major.clone(),
        os_family: row.os_family.clone(),
        device_class: row.device_class.clone(),
        is_bot: row.is_bot,
        src_partition: row.src_partition,
        src_offset: row.src_offset,
        session_id: row.session_id.clone(),
        version: row.version,
    }
}

/// Places the visit (in reverse arrival order), writes live rows, closes, assembles.
fn round_trip(events: &[AnonEvent]) -> (Assembled, Vec<EventRow>) {
    let mut state = PartitionState::new(60_000);
    let mut live = Vec::new();
    for (offset, e) in events.iter().enumerate().rev() {
        let placed = state.place(e, offset as i64, 0).unwrap();
        live.push(EventRow::live(e, &placed.session_id, 4, offset as i64));
    }
    let closed = state.close_all();
    assert_eq!(closed.len(), 1);
    let stored = live
        .iter()
        .map(|row| (row.event_id.clone(), as_stored(row)))
        .collect();
    (assemble(&closed[0], &stored).unwrap(), live)
}

#[test]
fn a_session_read_back_carries_what_its_events_carried() {
    let events = visit();
    let (assembled, _) = round_trip(&events);
    assert_eq!(assembled.already_written, 0);
    let session = assembled.session.unwrap();
    let expected: Vec<SessionEvent> = events.iter().map(SessionEvent::from_anon).collect();
    assert_eq!(session.events, expected);
    assert_eq!(session.device, events[0].device);
    assert_eq!(session.visitor_id, VISITOR);
    assert_eq!((session.started_ms, session.ended_ms), (T0, T0 + 9_800));
    // A focus has no value; an emptied field has the value "": they stay apart.
    assert_eq!(session.events[1].value, None);
    assert_eq!(session.events[3].value.as_deref(), Some(""));
}

#[test]
fn final_rows_are_the_live_rows_with_session_position_and_final_version() {
    let (assembled, live) = round_trip(&visit());
    let session_id = assembled.session.clone().unwrap().session_id;
    for (seq, row) in assembled.final_rows.iter().enumerate() {
        let mut before = live
            .iter()
            .find(|l| l.event_id == row.event_id)
            .unwrap()
            .clone();
        assert_eq!(before.version, LIVE_VERSION);
        before.session_id = session_id.clone();
        before.seq = seq as u32;
        before.version = FINAL_VERSION;
        assert_eq!(&before, row);
    }
}

#[test]
fn an_event_not_yet_readable_is_reported_not_skipped() {
    let events = visit();
    let mut state = PartitionState::new(60_000);
    for (offset, e) in events.iter().enumerate() {
        state.place(e, offset as i64, 0).unwrap();
    }
    let closed = state.close_all();
    let stored: HashMap<String, StoredEvent> = events[1..]
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let row = EventRow::live(e, "s", 0, i as i64);
            (row.event_id.clone(), as_stored(&row))
        })
        .collect();
    let missing = assemble(&closed[0], &stored).unwrap_err();
    assert_eq!(missing.event_id, events[0].event_id);
}

#[test]
fn events_already_written_in_another_session_are_left_out() {
    // An upstream replay delivers events again after their first copies' session closed:
    // their final rows name that session. The new session keeps only what is new.
    let events = visit();
    let mut state = PartitionState::new(60_000);
    for (offset, e) in events.iter().enumerate() {
        state.place(e, offset as i64, 0).unwrap();
    }
    let closed = state.close_all();
    let mut stored: HashMap<String, StoredEvent> = events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let row = EventRow::live(e, &closed[0].session_id, 0, i as i64);
            (row.event_id.clone(), as_stored(&row))
        })
        .collect();
    for e in &events[..2] {
        let row = stored.get_mut(&e.event_id).unwrap();
        row.version = FINAL_VERSION;
        row.session_id = "the-first-session".into();
    }
    let assembled = assemble(&closed[0], &stored).unwrap();
    assert_eq!(assembled.already_written, 2);
    let session = assembled.session.unwrap();
    assert_eq!(session.events.len(), events.len() - 2);
    assert_eq!(session.started_ms, events[2].event_time_ms);
    let seqs: Vec<u32> = assembled.final_rows.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (0..events.len() as u32 - 2).collect::<Vec<_>>());
    // The same rows under this session's own id (a second close of it) are kept.
    for row in stored.values_mut() {
        row.session_id = closed[0].session_id.clone();
    }
    assert_eq!(assemble(&closed[0], &stored).unwrap().already_written, 0);
    // Every event already written elsewhere: nothing to publish.
    for row in stored.values_mut() {
        row.version = FINAL_VERSION;
        row.session_id = "the-first-session".into();
    }
    let none = assemble(&closed[0], &stored).unwrap();
    assert_eq!((none.session, none.final_rows.len()), (None, 0));
}

#[test]
fn a_final_row_is_preferred_to_a_live_one() {
    let e = &visit()[0];
    let live = as_stored(&EventRow::live(e, "later", 0, 9));
    let mut done = live.clone();
    done.version = FINAL_VERSION;
    done.session_id = "first".into();
    assert_eq!(live.clone().prefer(done.clone()).session_id, "first");
    assert_eq!(done.prefer(live).session_id, "first");
}
