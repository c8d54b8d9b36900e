use std::io::Write;

use serde_json::{json, Value};

use super::*;

fn gzip_hex(events: &Value) -> Value {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(events.to_string().as_bytes()).unwrap();
    Value::from(hex::encode(gz.finish().unwrap()).to_uppercase())
}

fn batches(rows: Vec<(Value, i64)>) -> Table {
    Table {
        columns: vec!["events".into(), "skew_ms".into(), "page_ms".into()],
        rows: rows
            .into_iter()
            .map(|(events, skew)| vec![gzip_hex(&events), json!(skew), json!(0)])
            .collect(),
    }
}

fn marks(rows: &[(i64, &str, &str, &str, &str)]) -> Table {
    Table {
        columns: ["at", "event_kind", "what", "form", "field"]
            .iter()
            .map(|c| (*c).to_owned())
            .collect(),
        rows: rows
            .iter()
            .map(|(t, k, e, f, field)| vec![json!(t), json!(k), json!(e), json!(f), json!(field)])
            .collect(),
    }
}

#[test]
fn a_session_plays_its_pages_on_the_collector_s_clock_with_its_form_events_marked() {
    // Two pages, the second's browser clock 500 ms behind the collector.
    let first = json!([
        {"type": 4, "timestamp": 1_000, "data": {"href": "https://shop.example/a"}},
        {"type": 2, "timestamp": 1_001, "data": {}},
        {"type": 3, "timestamp": 1_500, "data": {"source": 5, "text": "*"}}
    ]);
    let second = json!([
        {"type": 4, "timestamp": 2_000, "data": {"href": "https://shop.example/b"}},
        {"type": 2, "timestamp": 2_001, "data": {}}
    ]);
    let events = assemble(
        &batches(vec![(first, 0), (second, 500)]),
        &marks(&[
            (900, "form_event", "focus", "signup", "email"),
            (1_400, "form_event", "focus", "signup", "name"),
            (1_450, "form_event", "invalid", "signup", "email"),
            (1_600, "form_event", "submit", "signup", ""),
            (2_600, "conversion", "", "", ""),
        ]),
    )
    .unwrap();
    let seen: Vec<(i64, Value, Value)> = events
        .iter()
        .map(|e| {
            (
                e["timestamp"].as_i64().unwrap(),
                e["type"].clone(),
                e["data"]["tag"].clone(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (1_000, json!(4), Value::Null),
            // A focus before the recorder's first event starts there.
            (1_000, json!(5), json!("form start")),
            (1_001, json!(2), Value::Null),
            (1_450, json!(5), json!("field refused")),
            (1_500, json!(3), Value::Null),
            (1_600, json!(5), json!("form submit")),
            (2_500, json!(4), Value::Null),
            (2_501, json!(2), Value::Null),
            (2_600, json!(5), json!("conversion")),
        ],
        "the second focus of a form is not a start"
    );
    assert_eq!(events[1]["data"]["payload"]["field"], "email");
}

#[test]
fn a_corrupt_batch_is_refused_and_an_empty_replay_is_empty() {
    let mut table = batches(vec![(json!([]), 0)]);
    table.rows[0][0] = json!("00FF");
    assert!(matches!(
        assemble(&table, &marks(&[])),
        Err(Unplayable::Corrupt(_))
    ));
    assert_eq!(
        assemble(&batches(vec![]), &marks(&[(1, "conversion", "", "", "")])),
        Ok(vec![])
    );
}

#[test]
fn session_ids_are_32_lowercase_hex_digits() {
    assert_eq!(
        session_id("0123456789abcdef0123456789abcdef"),
        Some("0123456789abcdef0123456789abcdef")
    );
    for bad in [
        "",
        "0123456789ABCDEF0123456789ABCDEF",
        "0123456789abcdef",
        "../../etc/passwd0123456789abcdef",
        "0123456789abcdef0123456789abcdeg",
    ] {
        assert_eq!(session_id(bad), None, "{bad}");
    }
}
