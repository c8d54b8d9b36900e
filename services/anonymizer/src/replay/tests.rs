use serde_json::{json, Value};

use super::pass::{second_pass, Findings};
use super::*;

fn allow() -> QueryAllowList {
    QueryAllowList::parse("utm_*")
}

fn pass(events: Value) -> (Value, Findings) {
    let (out, findings) = second_pass(&events.to_string(), &allow()).unwrap();
    (serde_json::from_str(&out).unwrap(), findings)
}

/// A page as the recorder sends it: every rule already applied in the browser.
fn recorded_page() -> Value {
    json!([
        {"type": 4, "timestamp": 1, "data": {"href": "https://shop.example/signup?utm_source=mail", "width": 1280, "height": 720}},
        {"type": 2, "timestamp": 2, "data": {"node": {"type": 0, "id": 1, "childNodes": [
            {"type": 2, "id": 2, "tagName": "html", "attributes": {"lang": "en"}, "childNodes": [
                {"type": 2, "id": 3, "tagName": "style", "attributes": {"_cssText": "a::before{content:'x'}.col-6{width:50%}"}, "childNodes": []},
                {"type": 2, "id": 4, "tagName": "h1", "attributes": {"class": "headline col-6"}, "childNodes": [
                    {"type": 3, "id": 5, "textContent": "Call ### ### #### or write privacy@exatom.io before 01/01/1970"}
                ]},
                {"type": 2, "id": 6, "tagName": "input", "attributes": {"type": "email", "name": "email", "value": "*"}, "childNodes": []},
                {"type": 2, "id": 7, "tagName": "div", "attributes": {"class": "ex-block", "rr_width": "300px", "rr_height": "120px"}, "childNodes": []},
                {"type": 2, "id": 8, "tagName": "a", "attributes": {"href": "https://shop.example/products/12"}, "childNodes": []}
            ]}
        ]}, "initialOffset": {"left": 0, "top": 0}}},
        {"type": 3, "timestamp": 3, "data": {"source": 5, "id": 6, "text": "*", "isChecked": false}},
        {"type": 3, "timestamp": 4, "data": {"source": 1, "positions": [{"x": 10, "y": 20, "id": 4, "timeOffset": 0}]}}
    ])
}

#[test]
fn what_the_recorder_sent_passes_unchanged_and_nothing_is_counted() {
    let page = recorded_page();
    let (out, findings) = pass(page.clone());
    assert_eq!(out, page);
    assert_eq!(findings, Findings::default());
}

#[test]
fn whatever_a_recorder_let_through_is_fixed_and_counted() {
    let (out, findings) = pass(json!([
        {"type": 4, "timestamp": 1, "data": {"href": "https://ann:pw@shop.example/signup?email=ann@example.com&utm_source=x#step2"}},
        {"type": 2, "timestamp": 2, "data": {"node": {"type": 0, "id": 1, "childNodes": [
            {"type": 2, "id": 2, "tagName": "div", "attributes": {
                "title": "Ann's account", "data-user": "4711", "alt": "a", "placeholder": "p", "checked": "", "selected": "",
                "aria-label": "Account 12345678 of ann@example.com", "value": "typed secret",
                "id": "user-123456789", "style": "background:url(/u/ann@example.com/98765432.png)"
            }, "childNodes": [
                {"type": 3, "id": 3, "textContent": "Ann Smith, +31 6 1234 5678, ann@example.com, born 12/03/1985, from 192.0.2.44"},
                {"type": 5, "id": 4, "textContent": "user 4711"},
                {"type": 3, "id": 5, "isStyle": true, "textContent": ".w{width:120px}"}
            ]}
        ]}}},
        {"type": 3, "timestamp": 3, "data": {"source": 0,
            "adds": [{"parentId": 2, "node": {"type": 3, "id": 9, "textContent": "Order 99887766"}}],
            "texts": [{"id": 3, "value": "mail bob@example.com"}],
            "attributes": [{"id": 2, "attributes": {"data-x": "1", "title": "t", "value": "abc", "class": "a"}}],
            "removes": []}},
        {"type": 3, "timestamp": 4, "data": {"source": 5, "id": 6, "text": "hunter2", "isChecked": true}},
        {"type": 5, "timestamp": 5, "data": {"tag": "identify", "payload": {"email": "ann@example.com"}}},
        {"type": 6, "timestamp": 6, "data": {"plugin": "console", "payload": {"log": "ann"}}}
    ]));
    let text = out.to_string();
    for leaked in [
        "ann@example.com",
        "bob@example.com",
        "4711",
        "1234 5678",
        "12/03/1985",
        "192.0.2.44",
        "hunter2",
        "typed secret",
        "Ann's account",
        "99887766",
        "123456789",
        "98765432",
        "ann:pw",
        "step2",
        "identify",
    ] {
        assert!(!text.contains(leaked), "{leaked} in {text}");
    }
    assert_eq!(
        out.as_array().unwrap().len(),
        4,
        "custom and plugin events dropped"
    );
    assert_eq!(
        out[0]["data"]["href"],
        "https://shop.example/signup?utm_source=x"
    );
    let div = &out[1]["data"]["node"]["childNodes"][0];
    let attrs = div["attributes"].as_object().unwrap();
    // Sorted: the map keeps insertion order or sorts, as the workspace's serde_json features say.
    let mut names: Vec<&str> = attrs.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["aria-label", "id", "style", "value"]);
    assert_eq!(attrs["value"], "*");
    assert_eq!(attrs["id"], "user-#########");
    assert_eq!(div["childNodes"][1]["textContent"], "", "comments emptied");
    assert_eq!(
        div["childNodes"][2]["textContent"], ".w{width:120px}",
        "CSS text kept"
    );
    assert_eq!(out[3]["data"]["text"], "*");
    assert_eq!(out[3]["data"]["isChecked"], false);
    assert_eq!(
        findings,
        Findings {
            // The node text, the comment, the added text, the changed text.
            texts: 4,
            // 6 removed and 4 rewritten on the element, href; 2 removed and 1 rewritten in the mutation.
            attributes: 14,
            inputs: 2,
            foreign_events: 2,
        }
    );
}

#[test]
fn a_batch_becomes_its_row_with_the_site_s_retention_capped_at_ninety_days() {
    let json = recorded_page().to_string();
    let batch = |keep_days| ReplayBatch {
        site: "DEMO".into(),
        page_view_id: "0b6f1c1e-8a0f-4c5e-9d51-2a1d7f3c9e10".into(),
        seq: 2,
        received_ms: 1_796_292_005_000,
        skew_ms: 40,
        first_ms: 1,
        last_ms: 4,
        keep_days,
        event_count: 4,
        events_gzip: gzip(&json),
    };
    let (row, findings) = to_row(batch(30), &allow()).unwrap();
    assert_eq!(findings.total(), 0);
    assert_eq!(row.day, 20_790);
    assert_eq!(row.expires, 20_790 + 30);
    assert_eq!(
        (row.seq, row.event_count, row.bytes as usize),
        (2, 4, json.len())
    );
    let mut back = String::new();
    GzDecoder::new(row.events.as_slice())
        .read_to_string(&mut back)
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&back).unwrap(),
        recorded_page()
    );
    assert_eq!(to_row(batch(365), &allow()).unwrap().0.expires, 20_790 + 90);
    assert_eq!(to_row(batch(0), &allow()).unwrap().0.expires, 20_790 + 1);
    let mut bad = batch(30);
    bad.events_gzip = b"[not gzip]".to_vec();
    assert!(matches!(to_row(bad, &allow()), Err(Unstorable::Events(_))));
}

fn gzip(json: &str) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(json.as_bytes()).unwrap();
    gz.finish().unwrap()
}
