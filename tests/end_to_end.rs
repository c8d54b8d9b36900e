//! One visitor's journey through the whole pipeline, real processes against the real broker
//! and ClickHouse: browser batch → collector → anonymizer → sessionizer → aggregator →
//! dashboard views. Checks the figures and that no identity or typed value got past the
//! anonymizer.

use std::time::Duration;

use chrono::Utc;
use exatom_e2e::{contains, fast_sessions, rfc3339, sites_file, wait_until, Pipeline, Stack};
use serde_json::{json, Value};

fn event_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[tokio::test]
async fn a_visit_becomes_a_session_and_form_figures_without_identity() {
    let stack = Stack::from_env();
    let run = uuid::Uuid::new_v4().simple().to_string();
    let site = format!("E2E{}", &run[..8]);
    let sites = sites_file(&stack, "e2e", &[(&site, &["http://shop.test"], &["E2E1"])]);
    let mut pipeline = Pipeline::start(&stack, &sites, &fast_sessions()).await;

    // Identity and typed data the pipeline must not let through.
    let ip = format!("198.51.100.{}", 1 + (run.as_bytes()[0] % 250));
    let user_agent = format!("Mozilla/5.0 (X11; Linux x86_64) ExatomTest/{run}");
    let typed = format!("typed-{run}@example.com");
    let phone = "+31 6 48151623";

    // The visit happened 40 minutes ago (the tab sent it late), so its session is complete.
    let now = Utc::now();
    let base = now - chrono::Duration::minutes(40);
    let at = |ms: i64| rfc3339(base + chrono::Duration::milliseconds(ms));
    let page = format!("https://shop.test/signup?email={typed}&utm_source=news#step-1");
    let form = json!({"name": "signup", "id": "f1", "order": 0});
    let field = |name: &str| json!({"name": name, "id": name, "tag": "input", "type": "text", "order": 0, "label": name});
    let form_event = |ms: i64, kind: &str, name: &str, value: Option<&str>| {
        let mut e = json!({"id": event_id(), "type": "form_event", "ts": at(ms), "page": page,
            "form": form, "event": kind, "seq": ms, "field": field(name)});
        if let Some(v) = value {
            e["value"] = json!(v);
        }
        e
    };
    let events = vec![
        json!({"id": event_id(), "type": "page_view", "ts": at(0), "page": page,
               "title": format!("Sign up — call {phone}"), "referrer": "https://search.test/?q=shoes"}),
        json!({"id": event_id(), "type": "form_view", "ts": at(1_000), "page": page,
               "form": {"name": "signup", "id": "f1", "order": 0, "title": format!("Questions? {typed}"),
                        "fields": [{"name": "email", "label": "E-mail"}, {"name": "name", "label": "Name"}]}}),
        form_event(4_000, "focus", "email", None),
        form_event(6_500, "input", "email", Some(&typed)),
        form_event(9_000, "blur", "email", Some("*")),
        form_event(9_500, "focus", "name", None),
        form_event(12_000, "change", "name", Some("*")),
        form_event(13_000, "invalid", "name", None),
        form_event(14_000, "input", "name", Some("")),
        form_event(15_000, "focus", "email", None),
        form_event(16_000, "blur", "email", Some("*")),
        // Behaviour events straight from a client, not the tag: what the tag scrubs in the
        // browser arrives here unscrubbed, and must not get past the anonymizer either.
        json!({"id": event_id(), "type": "click", "ts": at(16_200), "page": page,
               "x": 0.51, "y": 260, "viewport_width": 1280, "interactive": false, "rage": false, "dead": true,
               "path": format!("form#signup>div#user-{run}.{typed}")}),
        json!({"id": event_id(), "type": "scroll", "ts": at(16_300), "page": page, "depth": 60}),
        json!({"id": event_id(), "type": "js_error", "ts": at(16_400), "page": page,
               "message": format!("No account for {typed} ({phone}), see https://api.shop.test/u?key={run}#x"),
               "source": format!("https://cdn.shop.test/app.js?v={run}"), "line": 12, "column": 5,
               "frames": [{"file": format!("https://cdn.shop.test/app.js?v={run}"), "line": 12, "column": 5}]}),
        json!({"id": event_id(), "type": "form_event", "ts": at(17_000), "page": page,
               "form": form, "event": "submit", "seq": 17_000}),
        json!({"id": event_id(), "type": "conversion", "ts": at(20_000), "tag": "E2E1",
               "transaction_id": format!("order-{typed}"), "revenue": 10.5, "currency": "EUR"}),
    ];
    let body = json!({"site": site, "sent_at": rfc3339(now), "events": events});
    let response = reqwest::Client::new()
        .post(format!("{}/v1/events", pipeline.collector_url))
        .header("content-type", "text/plain;charset=UTF-8")
        .header("origin", "http://shop.test")
        .header("user-agent", &user_agent)
        .header("x-forwarded-for", &ip)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer, json!({"accepted": 16, "rejected": []}));

    // The session closes (stream time passes the batch's arrival + 2 s) and is aggregated:
    // its rows, then the rollups one after the other, the conversion segments last here.
    let aggregated = format!(
        "SELECT (SELECT count() FROM exatom.form_sessions FINAL WHERE site = '{site}'), \
         (SELECT count() FROM exatom.conversion_segment_daily WHERE site = '{site}') > 0 \
         AND (SELECT count() FROM exatom.errors_daily WHERE site = '{site}') > 0"
    );
    wait_until(
        Duration::from_secs(90),
        "form analytics written",
        || async { stack.query(&aggregated).await.trim() == "1\t1" },
    )
    .await;

    let sessions = stack
        .query(&format!(
            "SELECT visitor_id, events, pageviews, duration_ms, forms_viewed, forms_started, forms_submitted, converted, revenue \
             FROM exatom.sessions FINAL WHERE site = '{site}'"
        ))
        .await;
    let cols: Vec<&str> = sessions.trim().split('\t').collect();
    assert_eq!(sessions.trim().lines().count(), 1, "{sessions}");
    assert_eq!(cols[0].len(), 64, "visitor id is a hex HMAC: {}", cols[0]);
    assert!(cols[0].bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(
        &cols[1..],
        &["16", "1", "20000", "1", "1", "1", "1", "10.5"]
    );

    let events = stack
        .query(&format!(
            "SELECT count(), uniqExact(session_id), min(version), max(seq) FROM exatom.events FINAL WHERE site = '{site}'"
        ))
        .await;
    assert_eq!(events.trim(), "16\t1\t2\t15");

    let daily = stack
        .query(&format!("SELECT sessions, visitors, pageviews, avg_session_duration_s FROM exatom.v_sessions_daily WHERE site = '{site}'"))
        .await;
    assert_eq!(daily.trim(), "1\t1\t1\t20");

    // Figures worked out by hand from metrics.md for this visit.
    let form = stack
        .query(&format!(
            "SELECT form, views, starts, submits, conversions, page_abandoners, initial_abandoners, \
             avg_duration_to_conversion_s, median_start_hesitation_ms FROM exatom.v_form_daily WHERE site = '{site}'"
        ))
        .await;
    assert_eq!(form.trim(), "signup\t1\t1\t1\t1\t0\t0\t13.5\t3000");
    let fields = stack
        .query(&format!(
            "SELECT field, interactions, abandons, avg_time_spent_ms, median_hesitation_ms, returns, corrections, errors \
             FROM exatom.v_field_daily WHERE site = '{site}' ORDER BY field"
        ))
        .await;
    assert_eq!(
        fields.trim(),
        "email\t1\t0\t6000\t2500\t1\t0\t0\nname\t1\t0\t5500\t2500\t0\t1\t1"
    );
    let conversions = stack
        .query(&format!("SELECT form, conversions, revenue FROM exatom.v_conversions_daily WHERE site = '{site}'"))
        .await;
    assert_eq!(conversions.trim(), "signup\t1\t10.5");
    // The click in its bin (x 0.51 → column 25, y 260 → row 10), the page read to 60 %, and
    // the error in a session that converted; the page without its query.
    let stack = &stack;
    let view = |sql: String| async move { stack.query(&sql).await.trim().to_owned() };
    assert_eq!(
        view(format!("SELECT page, x_bin, y_bin, clicks, rage_clicks, dead_clicks FROM exatom.v_heatmap_daily WHERE site = '{site}'")).await,
        "https://shop.test/signup\t25\t10\t1\t0\t1"
    );
    assert_eq!(
        view(format!("SELECT views, reached_25, reached_50, reached_75, reached_100 FROM exatom.v_scroll_daily WHERE site = '{site}'")).await,
        "1\t1\t1\t0\t0"
    );
    assert_eq!(
        view(format!("SELECT message, source, errors, sessions, sessions_abandoning_a_form, sessions_converting FROM exatom.v_errors_daily WHERE site = '{site}'")).await,
        "No account for privacy@exatom.io (+## # ########), see https://api.shop.test/u\thttps://cdn.shop.test/app.js\t1\t1\t0\t1"
    );

    // Privacy: past the anonymizer, no IP, no user agent, no typed value, no phone number.
    let needles = [
        ip.as_str(),
        user_agent.as_str(),
        run.as_str(),
        "48151623",
        "example.com",
    ];
    for topic in ["exatom.anon", "exatom.sessions"] {
        let records = stack.topic_records(topic);
        assert!(!records.is_empty(), "{topic} is empty");
        for (key, value) in &records {
            for needle in needles {
                assert!(
                    !contains(value, needle) && !contains(key, needle),
                    "{needle} found in {topic}"
                );
            }
        }
    }
    let tables = stack
        .query("SELECT name FROM system.tables WHERE database = 'exatom' AND engine LIKE '%MergeTree%'")
        .await;
    for table in tables.lines() {
        let dump = stack.query(&format!("SELECT * FROM exatom.{table}")).await;
        for needle in needles {
            assert!(!dump.contains(needle), "{needle} found in table {table}");
        }
    }
    // The needles are real: the raw topic (24 h, identity by design) holds the IP and UA,
    // but already not the typed value.
    let raw = stack.topic_records("exatom.raw");
    assert!(raw
        .iter()
        .any(|(_, v)| contains(v, &ip) && contains(v, &user_agent)));
    assert!(!raw
        .iter()
        .any(|(_, v)| contains(v, &format!("\"{typed}\""))));
    // The referrer's query and the page's fragment and e-mail parameter are gone; utm_ stays.
    let pages = stack
        .query(&format!("SELECT DISTINCT page, referrer FROM exatom.events FINAL WHERE site = '{site}' AND kind = 'page_view'"))
        .await;
    assert_eq!(
        pages.trim(),
        "https://shop.test/signup?utm_source=news\thttps://search.test/"
    );

    assert!(
        pipeline.stop().is_empty(),
        "every service drains and exits cleanly on SIGTERM"
    );
}

#[tokio::test]
async fn an_undecodable_record_in_any_topic_goes_to_the_dlq_under_one_reason_everywhere() {
    let stack = Stack::from_env();
    let run = uuid::Uuid::new_v4().simple().to_string();
    let site = format!("DLQ{}", &run[..8]);
    let sites = sites_file(&stack, "dlq", &[(&site, &[], &[])]);
    let mut pipeline = Pipeline::start(&stack, &sites, &fast_sessions()).await;
    let topics = [
        ("exatom.raw", "anonymizer"),
        ("exatom.anon", "sessionizer"),
        ("exatom.sessions", "aggregator"),
    ];
    let garbage = |topic: &str| format!("not avro: {topic} {run}").into_bytes();
    for (topic, _) in topics {
        let key = format!("{site}:{run}").into_bytes();
        stack.redeliver(topic, &[(key, garbage(topic))]).await;
    }
    // A visit behind them: every stage moves past its bad record.
    let ago = Utc::now() - chrono::Duration::minutes(40);
    let body = json!({"site": site, "sent_at": rfc3339(Utc::now()), "events": [
        {"id": event_id(), "type": "page_view", "ts": rfc3339(ago), "page": "https://shop.test/"}]});
    let status = reqwest::Client::new()
        .post(format!("{}/v1/events", pipeline.collector_url))
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 202);
    let sessions = format!("SELECT count() FROM exatom.sessions FINAL WHERE site = '{site}'");
    wait_until(Duration::from_secs(120), "the visit's session", || async {
        stack.query(&sessions).await.trim() == "1"
    })
    .await;

    wait_until(
        Duration::from_secs(60),
        "every bad record in the DLQ",
        || async {
            let dead = stack.topic_log("exatom.dlq");
            topics.iter().all(|(topic, _)| {
                dead.iter().any(|r| {
                    r.value == garbage(topic) && r.key.starts_with(format!("{topic}/").as_bytes())
                })
            })
        },
    )
    .await;
    // The same metric and reason in every service.
    for (_, service) in topics {
        let url = format!("http://127.0.0.1:{}/metrics", pipeline.admin_ports[service]);
        let undecodable =
            exatom_e2e::metric(&url, "exatom_dlq_records_total{reason=\"undecodable\"}").await;
        assert!(undecodable >= 1.0, "{service}: {undecodable}");
    }
    assert!(pipeline.stop().is_empty());
}
