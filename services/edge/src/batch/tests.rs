use super::*;
use serde_json::json;

const RECEIVED_AT: i64 = 1_795_000_000_000; // 2026-11-18T11:06:40.000Z
const SENT_AT: &str = "2026-11-18T11:06:39.000Z"; // RECEIVED_AT - 1 s on the client clock

fn received() -> Received<'static> {
    Received {
        received_at_ms: RECEIVED_AT,
        ip: "203.0.113.7",
        user_agent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0",
        conversion_tags: &[],
    }
}

fn run(batch: serde_json::Value) -> Result<Validated, BatchError> {
    let body = serde_json::to_vec(&batch).unwrap();
    let limits = Limits::default();
    let parsed = parse(&body, &limits)?;
    Ok(validate(parsed, &received(), &limits))
}

fn batch(events: Vec<serde_json::Value>) -> serde_json::Value {
    json!({"site": "DEMO", "sent_at": SENT_AT, "events": events})
}

fn id(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

fn page_view(n: u32) -> serde_json::Value {
    json!({"id": id(n), "type": "page_view", "ts": "2026-11-18T11:06:38.500Z",
           "page": "https://shop.example/a", "title": "A"})
}

fn form_event(n: u32, event: &str, value: Option<&str>) -> serde_json::Value {
    let mut e = json!({"id": id(n), "type": "form_event", "ts": "2026-11-18T11:06:38.900Z",
        "page": "https://shop.example/a", "form": {"name": "signup", "id": "f", "order": 0},
        "event": event, "seq": n,
        "field": {"name": "email", "id": "e", "tag": "input", "type": "email", "order": 1, "label": "E-mail"}});
    if let Some(v) = value {
        e["value"] = json!(v);
    }
    e
}

#[test]
fn skew_is_corrected_with_the_batch_clock() {
    let out = run(batch(vec![page_view(1)])).unwrap();
    assert!(out.rejected.is_empty(), "{:?}", out.rejected);
    let e = &out.events[0];
    // Sent 1 s (client clock) after... the event was 0.5 s before sending.
    assert_eq!(e.sent_at_ms, RECEIVED_AT - 1_000);
    assert_eq!(e.event_time_ms, RECEIVED_AT - 500);
    assert_eq!(e.ts_ms, RECEIVED_AT - 1_500);
    assert_eq!(e.ip, "203.0.113.7");
    assert_eq!(e.kind, EventKind::PageView);
}

#[test]
fn typed_values_never_pass_the_edge() {
    let out = run(batch(vec![
        form_event(1, "input", Some("jane@example.com")),
        form_event(2, "change", Some("")),
        form_event(3, "blur", Some("*")),
        form_event(4, "focus", Some("leaked on focus")),
    ]))
    .unwrap();
    let values: Vec<_> = out.events.iter().map(|e| e.body.value.clone()).collect();
    assert_eq!(
        values,
        vec![Some("*".into()), Some("".into()), Some("*".into()), None]
    );
    assert_eq!(out.values_masked, 1);
    let debug = format!("{:?}", out.events);
    assert!(!debug.contains("jane@example.com") && !debug.contains("leaked"));
}

#[test]
fn invalid_events_are_listed_and_valid_ones_kept() {
    let mut stale = page_view(3);
    stale["ts"] = json!("2026-11-17T08:00:00.000Z");
    let mut future = page_view(4);
    future["ts"] = json!("2026-11-18T11:20:00.000Z");
    let mut no_page = page_view(5);
    no_page.as_object_mut().unwrap().remove("page");
    let mut bad_type = page_view(6);
    bad_type["type"] = json!("hover");
    let mut bad_id = page_view(7);
    bad_id["id"] = json!("not-a-uuid");
    let mut wrong_type = page_view(8);
    wrong_type["title"] = json!(12);
    let mut long = page_view(9);
    long["title"] = json!("x".repeat(10_000));
    let mut nul = page_view(10);
    nul["title"] = json!("a\u{0}b");
    let out = run(batch(vec![
        page_view(1),
        json!("not an object"),
        page_view(2),
        stale,
        future,
        no_page,
        bad_type,
        bad_id,
        wrong_type,
        long,
        nul,
    ]))
    .unwrap();
    assert_eq!(out.events.len(), 2);
    let codes: Vec<(usize, &str)> = out.rejected.iter().map(|r| (r.index, r.code)).collect();
    assert_eq!(
        codes,
        vec![
            (1, "malformed"),
            (3, "stale"),
            (4, "future"),
            (5, "missing_page"),
            (6, "unknown_type"),
            (7, "invalid_id"),
            (8, "malformed"),
            (9, "too_long"),
            (10, "invalid_text"),
        ]
    );
    assert!(out.rejected[4].reason().contains("type"));
}

#[test]
fn the_edges_of_the_time_window_are_inclusive() {
    // Exactly 24 h before receipt and exactly 5 min after are kept; one ms more is not.
    let at = |offset_ms: i64| {
        let t = chrono::DateTime::from_timestamp_millis(RECEIVED_AT - 1_000 + offset_ms).unwrap();
        let mut e = page_view(1);
        e["ts"] = json!(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        run(batch(vec![e])).unwrap()
    };
    assert_eq!(at(-24 * 3_600_000).events.len(), 1);
    assert_eq!(at(-24 * 3_600_000 - 1).rejected[0].code, "stale");
    assert_eq!(at(5 * 60_000).events.len(), 1);
    assert_eq!(at(5 * 60_000 + 1).rejected[0].code, "future");
}

#[test]
fn kind_specific_rules() {
    let conversion = |revenue: serde_json::Value, currency: &str| {
        json!({"id": id(1), "type": "conversion", "ts": "2026-11-18T11:06:38.000Z",
               "tag": "DEMO1", "transaction_id": "T1", "revenue": revenue, "currency": currency})
    };
    let out = run(batch(vec![
        conversion(json!(10.5), "EUR"),
        conversion(json!(-1), "EUR"),
        conversion(json!(1), "euro"),
        form_event(2, "hover", None),
        json!({"id": id(3), "type": "form_event", "ts": "2026-11-18T11:06:38.000Z",
               "page": "https://x.example/", "form": {"name": "f"}, "event": "submit", "seq": 3}),
        json!({"id": id(4), "type": "form_event", "ts": "2026-11-18T11:06:38.000Z",
               "page": "https://x.example/", "form": {"name": "f"}, "event": "input", "seq": 4}),
        json!({"id": id(5), "type": "tooltip", "ts": "2026-11-18T11:06:38.000Z",
               "action": "click", "trigger": "ExatomFormStartHesitation", "tooltip_id": id(9)}),
        json!({"id": id(6), "type": "tooltip", "ts": "2026-11-18T11:06:38.000Z",
               "action": "wave", "trigger": "x", "tooltip_id": id(9)}),
        json!({"id": id(7), "type": "form_view", "ts": "2026-11-18T11:06:38.000Z",
               "page": "ftp://x.example/", "form": {"name": "f"}}),
    ]))
    .unwrap();
    let codes: Vec<&str> = out.rejected.iter().map(|r| r.code).collect();
    assert_eq!(
        codes,
        vec![
            "invalid_revenue",
            "invalid_currency",
            "invalid_event",
            "missing_field",
            "invalid_action",
            "invalid_url"
        ]
    );
    assert_eq!(out.events.len(), 3);
    assert_eq!(out.events[0].body.revenue, Some(10.5));
    assert_eq!(out.events[1].body.form_event, Some(FormEventKind::Submit));
    assert_eq!(
        out.events[2].body.tooltip_action,
        Some(TooltipAction::Click)
    );
}

#[test]
fn conversion_tags_of_another_site_are_refused() {
    let body = serde_json::to_vec(&batch(vec![
        json!({"id": id(1), "type": "conversion", "ts": "2026-11-18T11:06:38.000Z", "tag": "DEMO1"}),
        json!({"id": id(2), "type": "conversion", "ts": "2026-11-18T11:06:38.000Z", "tag": "OTHER1"}),
    ]))
    .unwrap();
    let limits = Limits::default();
    let parsed = parse(&body, &limits).unwrap();
    let tags = vec!["DEMO1".to_owned()];
    let rec = Received {
        conversion_tags: &tags,
        ..received()
    };
    let out = validate(parsed, &rec, &limits);
    assert_eq!(out.events.len(), 1);
    assert_eq!(out.rejected[0].code, "unknown_tag");
}

#[test]
fn form_view_structure_is_bounded() {
    let fields: Vec<_> = (0..201).map(|i| json!({"name": format!("f{i}")})).collect();
    let out = run(batch(vec![json!({"id": id(1), "type": "form_view",
        "ts": "2026-11-18T11:06:38.000Z", "page": "https://x.example/",
        "form": {"name": "f", "fields": fields}})]))
    .unwrap();
    assert_eq!(out.rejected[0].code, "too_many_fields");
}

#[test]
fn envelope_problems_are_refused_whole_with_the_field_named() {
    let cases = [
        (
            json!({"sent_at": SENT_AT, "events": [page_view(1)]}),
            "site",
        ),
        (json!({"site": "DEMO", "events": [page_view(1)]}), "sent_at"),
        (json!({"site": "DEMO", "sent_at": SENT_AT}), "events"),
        (
            json!({"site": "D", "sent_at": SENT_AT, "events": [page_view(1)]}),
            "site",
        ),
        (
            json!({"site": "DE MO", "sent_at": SENT_AT, "events": [page_view(1)]}),
            "site",
        ),
        (
            json!({"site": "DEMO", "sent_at": "yesterday", "events": [page_view(1)]}),
            "sent_at",
        ),
        (
            json!({"site": "DEMO", "sent_at": SENT_AT, "events": []}),
            "events",
        ),
        (
            json!({"site": "DEMO", "sent_at": SENT_AT, "events": "x"}),
            "sequence",
        ),
        (
            json!({"site": 7, "sent_at": SENT_AT, "events": [page_view(1)]}),
            "string",
        ),
        (batch((0..101).map(page_view).collect()), "events"),
    ];
    for (body, needle) in cases {
        let err = run(body.clone()).unwrap_err();
        assert!(
            err.to_string().contains(needle),
            "{body}: {err} does not name {needle}"
        );
    }
    for raw in [
        &b"{"[..],
        b"",
        b"[1,2]",
        b"\xff\xfe",
        b"{\"site\":\"DEMO\"\x00}",
    ] {
        assert!(matches!(
            parse(raw, &Limits::default()),
            Err(BatchError::Malformed(_))
        ));
    }
}

#[test]
fn refusals_name_the_field_and_the_byte() {
    let err = run(json!({"site": 7, "sent_at": SENT_AT, "events": [page_view(1)]})).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("body is not a batch: `site`: invalid type: integer `7`"),
        "{err}"
    );
    let err = run(json!({"site": "DEMO", "sent_at": SENT_AT, "events": {"a": 1}})).unwrap_err();
    assert!(
        err.to_string().contains("`events`: invalid type: map"),
        "{err}"
    );
    // Without a field to blame, serde's own message (with its position) is kept.
    let body = format!(r#"{{"site":"DEMO","sent_at":"{SENT_AT}","events":[]}} trailing"#);
    let err = parse(body.as_bytes(), &Limits::default()).unwrap_err();
    assert!(
        err.to_string()
            .contains("trailing characters at line 1 column 66"),
        "{err}"
    );
    let err = parse(b"{\"site\":\"DE\xffMO\"}", &Limits::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "body is not a batch: not valid UTF-8 (at byte 11)"
    );

    for not_an_object in [&b"[1, 2]"[..], b" \"DEMO\"", b""] {
        let err = parse(not_an_object, &Limits::default()).unwrap_err();
        assert!(err.to_string().contains("expected a JSON object"), "{err}");
    }
    let deep = format!(
        r#"{{"site":"DEMO","sent_at":"{SENT_AT}","events":[{}{}]}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let parsed = parse(deep.as_bytes(), &Limits::default()).unwrap();
    let out = validate(parsed, &received(), &Limits::default());
    assert_eq!(out.rejected[0].detail, "an event must be a JSON object");

    let mut wrong = form_event(1, "input", Some("*"));
    wrong["seq"] = json!("seven");
    wrong["field"]["order"] = json!("first");
    let out = run(batch(vec![wrong])).unwrap();
    assert_eq!(out.rejected[0].code, "malformed");
    assert!(
        out.rejected[0]
            .detail
            .starts_with("`field.order`: invalid type: string \"first\", expected i32")
            || out.rejected[0]
                .detail
                .starts_with("`seq`: invalid type: string \"seven\", expected i64"),
        "{}",
        out.rejected[0].detail
    );
}

#[test]
fn deep_nesting_is_refused_not_overflowed() {
    // Skipped values are walked without recursion; the event itself is simply invalid.
    let deep = format!("{}1{}", "{\"deep\":".repeat(100_000), "}".repeat(100_000));
    let body = format!(r#"{{"site":"DEMO","sent_at":"{SENT_AT}","events":[{deep}]}}"#);
    let limits = Limits::default();
    let parsed = parse(body.as_bytes(), &limits).unwrap();
    let out = validate(parsed, &received(), &limits);
    assert!(out.events.is_empty());
    assert_eq!(out.rejected[0].code, "malformed");
    let deep_envelope = format!("{}1{}", "{\"a\":".repeat(50_000), "}".repeat(50_000));
    assert!(matches!(
        parse(deep_envelope.as_bytes(), &limits),
        Err(BatchError::Malformed(_))
    ));
}

proptest::proptest! {
    /// Whatever a field's value claims to be, only "" or "*" comes out.
    #[test]
    fn any_value_becomes_empty_or_star(value in ".*") {
        let out = run(batch(vec![form_event(1, "input", Some(&value))])).unwrap();
        let kept = out.events[0].body.value.clone().unwrap();
        proptest::prop_assert!(kept.is_empty() || kept == "*");
        proptest::prop_assert_eq!(kept.is_empty(), value.is_empty());
    }

    /// Arbitrary bytes never panic the decoder.
    #[test]
    fn arbitrary_bodies_never_panic(body in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
        let limits = Limits::default();
        if let Ok(parsed) = parse(&body, &limits) {
            let _ = validate(parsed, &received(), &limits);
        }
    }
}

/// The same body through the event-by-event path only, as if the one-pass read had failed.
fn event_by_event(body: &[u8]) -> Validated {
    let text = std::str::from_utf8(body).unwrap();
    let envelope: Envelope = serde_json::from_str(text).unwrap();
    let parsed = Parsed {
        site: envelope.site,
        sent_at_ms: parse_time(&envelope.sent_at).unwrap(),
        events: Events::Raw(envelope.events),
    };
    validate(parsed, &received(), &Limits::default())
}

fn outcome(out: &Validated) -> (Vec<RawEvent>, Vec<Rejection>, usize) {
    (out.events.clone(), out.rejected.clone(), out.values_masked)
}

#[test]
fn well_formed_batches_are_read_in_one_pass_and_others_event_by_event() {
    let limits = Limits::default();
    let one_pass = |body: serde_json::Value| {
        let body = serde_json::to_vec(&body).unwrap();
        matches!(parse(&body, &limits).unwrap().events, Events::Decoded(_))
    };
    let mut escaped = page_view(2);
    escaped["title"] = json!("caf\u{e9} \"quoted\"");
    let typed = batch(vec![
        page_view(1),
        escaped,
        form_event(3, "input", Some("jane@example.com")),
    ]);
    assert!(one_pass(typed.clone()));
    // The one-pass read masks as the other path does: nothing typed leaves the edge.
    let out = run(typed).unwrap();
    assert_eq!(out.events[2].body.value.as_deref(), Some("*"));
    assert!(!format!("{:?}", out.events).contains("jane@example.com"));
    // Whatever this pass does not take goes the other way, where it is named.
    let mut wrong_type = page_view(2);
    wrong_type["seq"] = json!("seven");
    assert!(!one_pass(batch(vec![page_view(1), wrong_type])));
    assert!(!one_pass(batch(vec![page_view(1), json!([1, 2])])));
    let too_many = serde_json::to_vec(&batch((0..101).map(page_view).collect())).unwrap();
    assert!(parse(&too_many, &limits)
        .unwrap_err()
        .to_string()
        .contains("got 101"));
    let repeated =
        br#"{"site":"DEMO","site":"DEMO","sent_at":"2026-11-18T11:06:39.000Z","events":[]}"#;
    assert!(parse(repeated, &limits)
        .unwrap_err()
        .to_string()
        .contains("duplicate field"));
}

/// Event templates for the property below: every kind, valid and refused for each reason the
/// one-pass read could see differently (types, shapes, escapes, unknown fields).
fn event_template(n: u32, pick: u8) -> serde_json::Value {
    let ts = "2026-11-18T11:06:38.000Z";
    match pick % 14 {
        0 => page_view(n),
        1 => form_event(n, "input", Some("typed text")),
        2 => form_event(n, "submit", None),
        3 => json!({"id": id(n), "type": "form_view", "ts": ts, "page": "https://shop.example/a",
            "form": {"name": "signup", "id": "f", "order": 0, "title": "Sign \"up\"",
                     "fields": [{"name": "email", "type": "email", "label": "E-mail"}]}}),
        4 => json!({"id": id(n), "type": "conversion", "ts": ts, "tag": "DEMO1",
            "transaction_id": "T-1", "revenue": 49.9, "currency": "EUR"}),
        5 => json!({"id": id(n), "type": "tooltip", "ts": ts, "action": "click",
            "trigger": "ExatomFormStartHesitation", "tooltip_id": id(n + 1)}),
        6 => json!({"id": id(n), "type": "page_view", "ts": ts, "page": "https://x.example/",
            "unknown": {"nested": [1, {"deep": null}]}}),
        7 => json!({"id": id(n), "type": "page_view", "ts": ts, "page": 7}),
        8 => json!("not an object"),
        9 => json!({"id": id(n), "type": "form_event", "ts": ts, "page": "https://x.example/",
            "form": {"name": "f"}, "event": "input", "seq": -1, "field": {"name": "a"}}),
        10 => json!({"id": id(n), "type": "page_view", "ts": ts, "page": "ftp://x.example/"}),
        11 => json!({"id": "\u{41}", "type": "page_view", "ts": ts, "page": "https://x.example/"}),
        12 => json!({"id": id(n), "type": "form_view", "ts": ts, "page": "https://x.example/",
            "form": {"name": "f", "fields": {"not": "a list"}}}),
        _ => json!({"id": id(n), "type": "page_view", "ts": ts, "page": "https://x.example/",
            "title": null, "referrer": ""}),
    }
}

proptest::proptest! {
    /// The one-pass read and the event-by-event path keep and refuse exactly the same events,
    /// with the same reasons and the same masking count.
    #[test]
    fn one_pass_and_event_by_event_agree(picks in proptest::collection::vec(0u8..14, 1..30)) {
        let events = picks.iter().enumerate().map(|(i, p)| event_template(i as u32, *p)).collect();
        let body = serde_json::to_vec(&batch(events)).unwrap();
        let limits = Limits::default();
        let fast = validate(parse(&body, &limits).unwrap(), &received(), &limits);
        proptest::prop_assert_eq!(outcome(&fast), outcome(&event_by_event(&body)));
    }
}
