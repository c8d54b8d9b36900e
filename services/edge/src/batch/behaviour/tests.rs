//! The behaviour events at the edge: what is kept, what is cut, what is refused and why.

use serde_json::json;

use crate::batch::{parse, validate, Received, Validated};
use crate::limits::Limits;
use exatom_core::model::EventKind;

fn run(events: Vec<serde_json::Value>) -> Validated {
    let body = serde_json::to_vec(&json!({
        "site": "DEMO", "sent_at": "2026-11-18T11:06:39.000Z", "events": events
    }))
    .unwrap();
    let limits = Limits::default();
    let received = Received {
        received_at_ms: 1_795_000_000_000,
        ip: "203.0.113.7",
        user_agent: "Mozilla/5.0",
        conversion_tags: &[],
    };
    validate(parse(&body, &limits).unwrap(), &received, &limits)
}

fn event(n: u32, kind: &str, fields: serde_json::Value) -> serde_json::Value {
    let mut e = json!({"id": format!("00000000-0000-4000-8000-{n:012}"), "type": kind,
        "ts": "2026-11-18T11:06:38.500Z", "page": "https://shop.example/a"});
    e.as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    e
}

fn click(n: u32, fields: serde_json::Value) -> serde_json::Value {
    let mut base = json!({"x": 0.25, "y": 900, "viewport_width": 1280,
        "path": "main>div.btn", "interactive": false, "rage": true, "dead": true});
    base.as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    event(n, "click", base)
}

fn codes(out: &Validated) -> Vec<&'static str> {
    out.rejected.iter().map(|r| r.code).collect()
}

#[test]
fn a_click_keeps_its_position_path_and_flags() {
    let out = run(vec![click(1, json!({}))]);
    assert!(out.rejected.is_empty(), "{:?}", out.rejected);
    let e = &out.events[0];
    assert_eq!(e.kind, EventKind::Click);
    let c = e.body.click.as_ref().unwrap();
    assert_eq!(
        (c.x, c.y, c.viewport_width, c.path.as_str()),
        (0.25, 900, 1280, "main>div.btn")
    );
    assert!(c.rage && c.dead && !c.interactive);
}

#[test]
fn an_interactive_target_is_never_a_dead_click() {
    let out = run(vec![click(1, json!({"interactive": true, "dead": true}))]);
    let c = out.events[0].body.click.as_ref().unwrap();
    assert!(c.interactive && !c.dead);
}

#[test]
fn positions_out_of_bounds_are_refused_one_by_one() {
    let out = run(vec![
        click(1, json!({"x": 1.5})),
        click(2, json!({"y": -1})),
        click(3, json!({"viewport_width": 100_001})),
        click(4, json!({"path": "a".repeat(513)})),
        event(5, "click", json!({})),
        event(6, "scroll", json!({"depth": 101})),
        event(7, "scroll", json!({})),
        event(8, "scroll", json!({"depth": 75})),
        event(
            9,
            "click",
            json!({"x": 0.5, "y": 1, "viewport_width": 1, "page": null}),
        ),
    ]);
    assert_eq!(
        codes(&out),
        [
            "invalid_click",
            "invalid_click",
            "invalid_click",
            "too_long",
            "invalid_click",
            "invalid_depth",
            "invalid_depth",
            "missing_page"
        ]
    );
    assert_eq!(out.events.len(), 1);
    assert_eq!(out.events[0].body.scroll_depth, Some(75));
}

#[test]
fn an_error_keeps_its_script_urls_without_query_or_fragment() {
    let out = run(vec![event(
        1,
        "js_error",
        json!({"message": "boom", "source": "https://cdn.example/app.js?token=SECRET#x",
               "line": 12, "column": 7,
               "frames": [{"file": "https://u:p@cdn.example/lib.js?v=SECRET2", "line": 3, "column": 9},
                          {"file": "", "line": 0, "column": 0}]}),
    )]);
    assert!(out.rejected.is_empty(), "{:?}", out.rejected);
    let e = out.events[0].body.error.as_ref().unwrap();
    assert_eq!(e.source, "https://cdn.example/app.js");
    assert_eq!((e.line, e.column), (12, 7));
    let files: Vec<_> = e.frames.iter().map(|f| f.file.as_str()).collect();
    assert_eq!(files, ["https://cdn.example/lib.js", ""]);
    assert!(!format!("{:?}", out.events).contains("SECRET"));
}

#[test]
fn errors_are_bounded_and_need_a_message() {
    let frame = json!({"file": "https://cdn.example/a.js", "line": 1, "column": 1});
    let out = run(vec![
        event(1, "js_error", json!({"message": ""})),
        event(
            2,
            "js_error",
            json!({"message": "m", "frames": vec![frame.clone(); 11]}),
        ),
        event(
            3,
            "js_error",
            json!({"message": "m", "source": "javascript:alert(1)"}),
        ),
        event(4, "js_error", json!({"message": "m", "line": -3})),
        event(
            5,
            "js_error",
            json!({"message": "m", "frames": vec![frame; 10]}),
        ),
    ]);
    assert_eq!(
        codes(&out),
        [
            "missing_message",
            "too_many_frames",
            "invalid_url",
            "invalid_position"
        ]
    );
    assert_eq!(out.events[0].body.error.as_ref().unwrap().frames.len(), 10);
}
