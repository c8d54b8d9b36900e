use super::*;

const PV: &str = "0B6F1C1E-8A0F-4C5E-9D51-2A1D7F3C9E10";

fn body(seq: u32, events: &str) -> Vec<u8> {
    format!(
        r#"{{"site":"DEMO","page_view_id":"{PV}","seq":{seq},"sent_at":"2026-12-03T10:00:05.000Z","events":{events}}}"#
    )
    .into_bytes()
}

#[test]
fn a_batch_keeps_its_events_as_sent_in_order() {
    let events = r#"[{"type":4,"timestamp":1000,"data":{"href":"https://shop.example/","width":1280,"height":720}},{"type":3,"timestamp":1500,"data":{"source":1,"positions":[]}},{"type":3,"timestamp":1200,"data":{"source":2}}]"#;
    let batch = check(&body(4, events), &Limits::default()).unwrap();
    assert_eq!(batch.site, "DEMO");
    assert_eq!(batch.page_view_id, PV.to_lowercase(), "canonical UUID");
    assert_eq!(batch.seq, 4);
    assert_eq!(batch.sent_at_ms, 1_796_292_005_000);
    assert_eq!(batch.events, events);
    assert_eq!(
        (batch.event_count, batch.first_ms, batch.last_ms),
        (3, 1000, 1500)
    );
    assert_eq!(batch.snapshots_replaced, 0);
}

#[test]
fn a_snapshot_over_the_limit_becomes_a_placeholder_page_that_is_still_json() {
    let limits = Limits {
        max_replay_snapshot_bytes: 200,
        ..Limits::default()
    };
    let big_text = "x".repeat(300);
    let events = format!(
        r#"[{{"type":4,"timestamp":10,"data":{{}}}},{{"type":2,"timestamp":11,"data":{{"node":{{"type":3,"id":1,"textContent":"{big_text}"}}}}}},{{"type":2,"timestamp":12,"data":{{"node":{{"type":0,"id":1,"childNodes":[]}}}}}}]"#
    );
    let batch = check(&body(0, &events), &limits).unwrap();
    assert_eq!(batch.snapshots_replaced, 1);
    assert!(!batch.events.contains(&big_text));
    let parsed: serde_json::Value = serde_json::from_str(&batch.events).unwrap();
    assert_eq!(parsed[1]["type"], 2);
    assert_eq!(parsed[1]["timestamp"], 11);
    assert_eq!(
        parsed[1]["data"]["node"]["childNodes"][0]["childNodes"][0]["childNodes"][0]["textContent"],
        "This page was too large to record."
    );
    assert_eq!(
        parsed[2]["data"]["node"]["childNodes"],
        serde_json::json!([])
    );
}

#[test]
fn malformed_batches_are_refused_without_quoting_the_page() {
    let limits = Limits::default();
    let secret = "visitor-typed-secret";
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"not json".to_vec(), "expected"),
        (body(0, "[]"), "`events` is empty"),
        (body(0, &format!(r#"["{secret}"]"#)), "event 0 is not an rrweb event"),
        (body(0, r#"[{"type":9,"timestamp":1}]"#), "type 9"),
        (body(0, r#"[{"type":3,"timestamp":-5}]"#), "timestamp -5"),
        (
            format!(r#"{{"site":"DEMO","page_view_id":"{secret}","seq":0,"sent_at":"2026-12-03T10:00:05Z","events":[]}}"#).into_bytes(),
            "`page_view_id`",
        ),
        (
            format!(r#"{{"site":"D","page_view_id":"{PV}","seq":0,"sent_at":"2026-12-03T10:00:05Z","events":[]}}"#).into_bytes(),
            "`site`",
        ),
        (
            format!(r#"{{"site":"DEMO","page_view_id":"{PV}","seq":0,"sent_at":"{secret}","events":[]}}"#).into_bytes(),
            "`sent_at`",
        ),
        (
            format!(r#"{{"site":"DEMO","page_view_id":"{PV}","seq":0,"sent_at":"2026-12-03T10:00:05Z","events":[],"{secret}":1}}"#).into_bytes(),
            "unknown field",
        ),
    ];
    for (body, named) in cases {
        let e = check(&body, &limits).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, ReplayError::Malformed(_)), "{text}");
        assert!(text.contains(named), "{text} should name {named}");
        assert!(!text.contains(secret), "{text} quotes the body");
    }
}

#[test]
fn a_page_past_its_batches_and_a_batch_past_its_events_are_refused_as_too_large() {
    let limits = Limits {
        max_replay_batches_per_page: 3,
        max_replay_events: 2,
        ..Limits::default()
    };
    let one = r#"[{"type":3,"timestamp":1,"data":{}}]"#;
    assert!(check(&body(2, one), &limits).is_ok());
    assert_eq!(
        check(&body(3, one), &limits),
        Err(ReplayError::PageSpent(3))
    );
    let three = r#"[{"type":3,"timestamp":1},{"type":3,"timestamp":2},{"type":3,"timestamp":3}]"#;
    assert_eq!(
        check(&body(0, three), &limits),
        Err(ReplayError::TooManyEvents(2))
    );
}

#[test]
fn the_sample_is_the_same_for_a_visitor_all_day_and_near_the_rate_over_many() {
    let ua = "Mozilla/5.0 (X11; Linux x86_64)";
    assert!(!in_sample("DEMO", 20_000, "192.0.2.1", ua, 0.0));
    assert!(in_sample("DEMO", 20_000, "192.0.2.1", ua, 1.0));
    let picked = |day: i64, rate: f64| {
        (0..20_000)
            .filter(|i| {
                in_sample(
                    "DEMO",
                    day,
                    &format!("10.0.{}.{}", i / 256, i % 256),
                    ua,
                    rate,
                )
            })
            .count()
    };
    for rate in [0.01, 0.1, 0.5] {
        let n = picked(20_000, rate) as f64 / 20_000.0;
        assert!((n - rate).abs() < 0.01 + rate * 0.1, "rate {rate}: {n}");
    }
    // Stable within a day, drawn anew the next.
    let visitor = |day| in_sample("DEMO", day, "198.51.100.7", ua, 0.5);
    assert_eq!(visitor(20_000), visitor(20_000));
    let days: Vec<bool> = (20_000..20_040).map(visitor).collect();
    assert!(days.contains(&true) && days.contains(&false), "{days:?}");
    // A larger rate keeps everyone a smaller one picked.
    for i in 0..2_000 {
        let ip = format!("10.1.{}.{}", i / 256, i % 256);
        if in_sample("DEMO", 20_000, &ip, ua, 0.2) {
            assert!(in_sample("DEMO", 20_000, &ip, ua, 0.3));
        }
    }
}

#[test]
fn a_site_over_its_minute_waits_for_the_next_and_other_sites_do_not() {
    let mut quota = SiteQuota::default();
    let t = 1_796_292_000_000; // a minute's start
    assert_eq!(quota.take("DEMO", 600, 1_000, t), Ok(()));
    assert_eq!(quota.take("DEMO", 400, 1_000, t + 1_000), Ok(()));
    assert_eq!(quota.take("DEMO", 1, 1_000, t + 45_500), Err(15));
    assert_eq!(quota.take("SHOP", 1_000, 1_000, t + 45_500), Ok(()));
    assert_eq!(
        quota.take("DEMO", 1, 1_000, t + 60_000),
        Ok(()),
        "a new minute"
    );
    // One batch over the whole quota still passes in a fresh minute, alone.
    assert_eq!(quota.take("BIG", 5_000, 1_000, t + 60_000), Ok(()));
    assert_eq!(quota.take("BIG", 1, 1_000, t + 61_000), Err(59));
}
