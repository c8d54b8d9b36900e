//! Crash safety with real processes: the anonymizer and the sessionizer are killed with
//! SIGKILL mid-stream and restarted; the sessions and events written must be exactly those
//! of the session rule applied to what was sent — nothing lost, nothing counted twice — and
//! delivering the same sessions to the aggregator twice must leave every view unchanged.
//! Two sessionizer replicas share the partitions, and stopping one mid-stream changes no count.
//! ClickHouse stopped mid-stream: the writers wait and retry, and resume by themselves.
//! Replay batches ride along the first test: across the anonymizer's kill and a second
//! delivery, each is stored once and every visitor's replay is joined to its session.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::Utc;
use exatom_e2e::{
    fast_sessions, metric, poll_until, rfc3339, sites_file, wait_until, Outage, Part, Pipeline,
    Ports, Service, Stack,
};
use serde_json::json;

const VISITORS: usize = 240;
const MINUTE: i64 = 60_000;

/// One visitor's events: (event id, ms before now). Some visitors come back after more than
/// 30 minutes (two sessions), some after exactly 30:00.000 (one session).
fn visit(v: usize) -> Vec<(String, i64)> {
    let mut times: Vec<i64> = (0..12).map(|i| 90 * MINUTE - i * 20_000).collect();
    match v % 3 {
        0 => times.extend([50 * MINUTE, 49 * MINUTE]), // gap of ~36 min: a second session
        1 => times.push(times[11] - 30 * MINUTE),      // gap of exactly 30:00.000: same session
        _ => {}
    }
    times
        .into_iter()
        .enumerate()
        .map(|(i, ago)| (format!("00000000-{v:04}-4000-8000-{i:012}"), ago))
        .collect()
}

/// The session rule applied by hand: split each visitor's events at gaps over 30 minutes.
fn expected_sessions(visitors: usize) -> BTreeSet<Vec<String>> {
    let mut out = BTreeSet::new();
    for v in 0..visitors {
        let mut events = visit(v);
        events.sort_by_key(|(_, ago)| -ago);
        let mut current: Vec<String> = Vec::new();
        let mut last: Option<i64> = None;
        for (id, ago) in events {
            if last.is_some_and(|l| l - ago > 30 * MINUTE) {
                out.insert(std::mem::take(&mut current));
            }
            current.push(id);
            last = Some(ago);
        }
        out.insert(current);
    }
    out
}

async fn send_visitor(client: &reqwest::Client, url: &str, site: &str, v: usize) {
    let now = Utc::now();
    let events: Vec<_> = visit(v)
        .into_iter()
        .enumerate()
        .map(|(i, (id, ago))| {
            let ts = rfc3339(now - chrono::Duration::milliseconds(ago));
            let page = "https://shop.test/";
            if i == 0 {
                json!({"id": id, "type": "page_view", "ts": ts, "page": page})
            } else if i == 3 {
                json!({"id": id, "type": "click", "ts": ts, "page": page, "x": 0.5, "y": 100,
                       "viewport_width": 1280, "path": "main>div.promo", "interactive": false,
                       "rage": false, "dead": true})
            } else if i == 6 {
                json!({"id": id, "type": "scroll", "ts": ts, "page": page, "depth": 75})
            } else if i == 9 {
                json!({"id": id, "type": "js_error", "ts": ts, "page": page, "message": "boom",
                       "source": "https://shop.test/app.js", "line": 1, "column": 2, "frames": []})
            } else {
                json!({"id": id, "type": "form_event", "ts": ts, "page": "https://shop.test/",
                       "form": {"name": "signup"}, "event": if i % 2 == 0 { "focus" } else { "input" },
                       "seq": i, "field": {"name": format!("f{}", i % 4)}, "value": "*"})
            }
        })
        .collect();
    let body = json!({"site": site, "sent_at": rfc3339(now), "events": events});
    loop {
        let response = client
            .post(url)
            .header("user-agent", format!("CrashTest/{v}"))
            .header(
                "x-forwarded-for",
                format!("198.51.{}.{}", 100 + v / 250, 1 + v % 250),
            )
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        if response.status() == 202 {
            return;
        }
        assert_eq!(
            response.status(),
            503,
            "only backpressure may refuse a valid batch"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Two replay batches of the visitor's first page (its `page_view` event's id), as a
/// recorder sends them; retried on backpressure like events.
async fn send_replay(client: &reqwest::Client, collector: &str, site: &str, v: usize) {
    let now = Utc::now();
    let page_view_id = visit(v)[0].0.clone();
    for seq in 0..2 {
        let t = now.timestamp_millis() + seq;
        let body = json!({
            "site": site, "page_view_id": page_view_id, "seq": seq, "sent_at": rfc3339(now),
            "events": [
                {"type": 4, "timestamp": t, "data": {"href": "https://shop.test/", "width": 1280, "height": 720}},
                {"type": 3, "timestamp": t + 1, "data": {"source": 1, "positions": [{"x": 10, "y": 20, "id": 1, "timeOffset": 0}]}}
            ]
        });
        loop {
            let response = client
                .post(format!("{collector}/v1/replay"))
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            if response.status() == 202 {
                break;
            }
            assert_eq!(
                response.status(),
                503,
                "only backpressure may refuse a valid batch"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// An HTTP client that drops idle connections before the collector closes them
/// (`EXATOM_REQUEST_TIMEOUT_MS`, 10 s), as a proxy in front of it must: a pause in a test
/// never sends a request down a connection the server is closing.
fn collector_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(5))
        .build()
        .expect("client")
}

/// Waits until every session of `site` is closed and written, then checks row for row that
/// each holds exactly the events the rule puts together, in order, under the id the rule
/// derives. Returns the expected sessions.
async fn sessions_match_the_rule(
    stack: &Stack,
    site: &str,
    visitors: usize,
) -> BTreeSet<Vec<String>> {
    let expected = expected_sessions(visitors);
    let total_events: usize = expected.iter().map(Vec::len).sum();
    let count = format!("SELECT count() FROM exatom.sessions FINAL WHERE site = '{site}'");
    let finals =
        format!("SELECT count() FROM exatom.events FINAL WHERE site = '{site}' AND version = 2");
    wait_until(
        Duration::from_secs(180),
        "every session closed and written",
        || async {
            stack.query(&count).await.trim() == expected.len().to_string()
                && stack.query(&finals).await.trim() == total_events.to_string()
        },
    )
    .await;

    let rows = stack
        .query(&format!(
            "SELECT session_id, visitor_id, groupArray(event_id), groupArray(seq) FROM \
             (SELECT session_id, visitor_id, event_id, seq FROM exatom.events FINAL WHERE site = '{site}' ORDER BY seq) \
             GROUP BY session_id, visitor_id"
        ))
        .await;
    let mut got = BTreeSet::new();
    // What each session's row must say, from its events: (id, visitor, events, pageviews,
    // duration). The first event of every visit is its page view.
    let ago: std::collections::HashMap<String, i64> = (0..visitors).flat_map(visit).collect();
    let mut expected_rows = BTreeSet::new();
    for line in rows.lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        let ids: Vec<String> = serde_json::from_str(&cols[2].replace('\'', "\"")).unwrap();
        let seqs: Vec<u32> = serde_json::from_str(cols[3]).unwrap();
        assert_eq!(
            seqs,
            (0..ids.len() as u32).collect::<Vec<_>>(),
            "positions in {}",
            cols[0]
        );
        let key = exatom_sessionizer::rules::VisitorKey {
            site: site.to_owned(),
            visitor_id: cols[1].to_owned(),
        };
        assert_eq!(
            cols[0],
            exatom_sessionizer::rules::session_id(&key, &ids[0]),
            "session id rule"
        );
        expected_rows.insert(format!(
            "{}\t{}\t{}\t{}\t{}",
            cols[0],
            cols[1],
            ids.len(),
            ids.iter()
                .filter(|id| id.ends_with("-000000000000"))
                .count(),
            ago[&ids[0]] - ago[&ids[ids.len() - 1]],
        ));
        got.insert(ids);
    }
    assert_eq!(got.len(), expected.len());
    assert_eq!(got, expected);
    // Row for row, the sessions table agrees with the events.
    let session_rows: BTreeSet<String> = stack
        .query(&format!(
            "SELECT session_id, visitor_id, events, pageviews, duration_ms \
             FROM exatom.sessions FINAL WHERE site = '{site}'"
        ))
        .await
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(session_rows, expected_rows);

    expected
}

/// Fast session closing, small batches and no rate limit: what every test here runs the
/// services with.
fn settings() -> Vec<(&'static str, String)> {
    let mut all = fast_sessions();
    all.push(("EXATOM_BATCH_MAX", "200".into()));
    all.push(("EXATOM_RATE_BURST", "100000".into()));
    all
}

/// Waits until the stream flows through the sessionizer.
async fn sessionizer_consuming(pipeline: &Pipeline) {
    let metrics = format!(
        "http://127.0.0.1:{}/metrics",
        pipeline.admin_ports["sessionizer"]
    );
    wait_until(Duration::from_secs(60), "sessionizer consuming", || async {
        metric(&metrics, "exatom_sessionizer_events_in_total").await > 0.0
    })
    .await;
}

/// A site of its own (`prefix` + random), registered, and the four services running.
async fn start(stack: &Stack, prefix: &str) -> (String, Pipeline) {
    let site = format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..6]
    );
    let sites = sites_file(stack, &prefix.to_lowercase(), &[(&site, &[], &[])]);
    // Every site here records replays (the file's one site is its last table).
    let text = std::fs::read_to_string(&sites).unwrap();
    std::fs::write(&sites, format!("{text}replay_sample = 1.0\n")).unwrap();
    let pipeline = Pipeline::start(stack, &sites, &settings()).await;
    (site, pipeline)
}

#[tokio::test]
async fn killed_mid_stream_the_pipeline_still_counts_every_session_once() {
    let stack = Stack::from_env();
    let (site, mut pipeline) = start(&stack, "CRASH").await;
    let url = format!("{}/v1/events", pipeline.collector_url);
    let client = collector_client();
    let restart = |pipeline: &mut Pipeline, name: &'static str| {
        pipeline.kill_and_restart(&stack, name, &settings());
    };

    // Every visitor's replay first, so that the anonymizer's replay loop is still at work
    // when it is killed below, while the events' stream keeps the pace the kills are timed
    // for (a sessionizer killed again while its group is still rebalancing from the last
    // kill can leave tansu's group without an owner for minutes).
    for v in 0..VISITORS {
        send_replay(&client, &pipeline.collector_url, &site, v).await;
    }
    for v in 0..VISITORS {
        send_visitor(&client, &url, &site, v).await;
        match v {
            // kill -9 while the stream flows, twice for the sessionizer; the anonymizer's
            // kill stops its replay loop too.
            60 => restart(&mut pipeline, "sessionizer"),
            110 => restart(&mut pipeline, "anonymizer"),
            150 => {
                tokio::time::sleep(Duration::from_millis(700)).await;
                restart(&mut pipeline, "sessionizer");
            }
            _ => {}
        }
    }

    let expected = sessions_match_the_rule(&stack, &site, VISITORS).await;

    // The aggregator's views, then the same sessions delivered a second time.
    let views = |site: String| {
        let stack = stack.clone();
        async move {
            let mut all = String::new();
            for view in [
                "v_sessions_daily",
                "v_form_daily",
                "v_field_daily",
                "v_conversions_daily",
                "v_heatmap_daily",
                "v_scroll_daily",
                "v_errors_daily",
            ] {
                all += &stack
                    .query(&format!(
                        "SELECT * FROM exatom.{view} WHERE site = '{site}' ORDER BY tuple(*)"
                    ))
                    .await;
            }
            all
        }
    };
    // Every replay batch once, and every visitor's replay joined to its session.
    let replays = format!(
        "SELECT (SELECT count() FROM exatom.replay_batches FINAL WHERE site = '{site}'), \
         (SELECT uniqExact(page_view_id, seq) FROM exatom.replay_batches WHERE site = '{site}'), \
         (SELECT count() FROM exatom.v_replays WHERE site = '{site}'), \
         (SELECT sum(bytes) FROM exatom.v_replays WHERE site = '{site}') = \
         (SELECT sum(bytes) FROM exatom.replay_batches FINAL WHERE site = '{site}')"
    );
    let replays_expected = format!("{}\t{}\t{VISITORS}\t1", 2 * VISITORS, 2 * VISITORS);
    wait_until(
        Duration::from_secs(60),
        "every replay batch stored",
        || async { stack.query(&replays).await.trim() == replays_expected },
    )
    .await;
    let form_rows = format!("SELECT count() FROM exatom.form_sessions FINAL WHERE site = '{site}'");
    wait_until(Duration::from_secs(60), "aggregator caught up", || async {
        stack.query(&form_rows).await.trim() == expected.len().to_string()
    })
    .await;
    // The aggregator writes a batch's rows, then recomputes the rollups one after the other:
    // the views are read once the rows are all there and two readings a second apart agree.
    let mut before = views(site.clone()).await;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let again = views(site.clone()).await;
        if again == before {
            break;
        }
        before = again;
    }
    assert!(before.contains("signup"), "{before}");
    // One click, one error a visitor, across the kills: none lost, none twice.
    assert_eq!(
        stack
            .query(&format!(
                "SELECT (SELECT sum(clicks) FROM exatom.v_heatmap_daily WHERE site = '{site}'), \
                 (SELECT sum(errors) FROM exatom.v_errors_daily WHERE site = '{site}')"
            ))
            .await
            .trim(),
        format!("{VISITORS}\t{VISITORS}")
    );
    let ours: Vec<_> = stack
        .topic_records("exatom.sessions")
        .into_iter()
        .filter(|(key, _)| key.starts_with(format!("{site}:").as_bytes()))
        .collect();
    assert!(ours.len() >= expected.len());
    // Counted before the second delivery, which the aggregator may take at once.
    let metrics_url = format!(
        "http://127.0.0.1:{}/metrics",
        pipeline.admin_ports["aggregator"]
    );
    let sessions_in = || metric(&metrics_url, "exatom_aggregator_sessions_in_total");
    let seen = sessions_in().await;
    stack.redeliver("exatom.sessions", &ours).await;
    wait_until(Duration::from_secs(60), "duplicates consumed", || async {
        sessions_in().await >= seen + ours.len() as f64
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        views(site.clone()).await,
        before,
        "a second delivery changed the figures"
    );
    // The replay batches delivered a second time: stored once still.
    let ours: BTreeSet<Vec<u8>> = (0..VISITORS)
        .map(|v| visit(v)[0].0.clone().into_bytes())
        .collect();
    let replay_records: Vec<_> = stack
        .topic_records("exatom.replay")
        .into_iter()
        .filter(|(key, _)| ours.contains(key))
        .collect();
    assert!(replay_records.len() >= 2 * VISITORS);
    let anonymizer_metrics = format!(
        "http://127.0.0.1:{}/metrics",
        pipeline.admin_ports["anonymizer"]
    );
    let stored = || {
        metric(
            &anonymizer_metrics,
            "exatom_anonymizer_replay_batches_stored_total",
        )
    };
    let stored_before = stored().await;
    stack.redeliver("exatom.replay", &replay_records).await;
    wait_until(
        Duration::from_secs(60),
        "replay duplicates written",
        || async { stored().await >= stored_before + replay_records.len() as f64 },
    )
    .await;
    assert_eq!(stack.query(&replays).await.trim(), replays_expected);

    // Nothing the anonymizer read was lost across its kill: every event id is in exatom.anon.
    let anon_ids: BTreeSet<String> = stack
        .query(&format!(
            "SELECT DISTINCT event_id FROM exatom.events WHERE site = '{site}'"
        ))
        .await
        .lines()
        .map(str::to_owned)
        .collect();
    let sent: BTreeSet<String> = (0..VISITORS).flat_map(visit).map(|(id, _)| id).collect();
    assert_eq!(anon_ids, sent);
    assert!(pipeline.stop().is_empty());
}

#[tokio::test]
async fn two_sessionizer_replicas_share_the_partitions_and_one_leaving_changes_no_count() {
    let stack = Stack::from_env();
    let (site, mut pipeline) = start(&stack, "REPL").await;
    let second_port = Ports::pick().admin[0];
    let mut env = settings();
    env.push(("EXATOM_ADMIN_LISTEN", format!("127.0.0.1:{second_port}")));
    let mut second = Service::start(&stack, "sessionizer", &env);
    let events_in = |port: u16| async move {
        let url = format!("http://127.0.0.1:{port}/metrics");
        metric(&url, "exatom_sessionizer_events_in_total").await
    };
    let first_port = pipeline.admin_ports["sessionizer"];
    let url = format!("{}/v1/events", pipeline.collector_url);
    let client = collector_client();
    let half = VISITORS / 2;
    for v in 0..half {
        send_visitor(&client, &url, &site, v).await;
    }
    // Both replicas took part: the group split the partitions between them.
    wait_until(
        Duration::from_secs(60),
        "both replicas consuming",
        || async { events_in(first_port).await > 0.0 && events_in(second_port).await > 0.0 },
    )
    .await;
    // One replica leaves mid-stream (SIGTERM: it drains and hands its partitions over).
    assert!(
        second.stop(),
        "the leaving replica drains and exits cleanly"
    );
    for v in half..VISITORS {
        send_visitor(&client, &url, &site, v).await;
    }
    sessions_match_the_rule(&stack, &site, VISITORS).await;
    assert!(pipeline.stop().is_empty());
}

#[tokio::test]
async fn clickhouse_stopped_mid_stream_the_writers_wait_and_resume_by_themselves() {
    const OUTAGE_VISITORS: usize = 60;
    let stack = Stack::from_env();
    let (site, mut pipeline) = start(&stack, "DOWN").await;
    let url = format!("{}/v1/events", pipeline.collector_url);
    let client = collector_client();
    for v in 0..OUTAGE_VISITORS / 2 {
        send_visitor(&client, &url, &site, v).await;
    }
    // The outage starts once the stream flows through the sessionizer.
    sessionizer_consuming(&pipeline).await;
    let mut outage = Outage::begin(&stack, Part::ClickHouse);
    for v in OUTAGE_VISITORS / 2..OUTAGE_VISITORS {
        send_visitor(&client, &url, &site, v).await;
    }
    let retries = |service: &'static str, name: &'static str| {
        let url = format!("http://127.0.0.1:{}/metrics", pipeline.admin_ports[service]);
        async move { metric(&url, name).await }
    };
    let waited = poll_until(Duration::from_secs(60), || async {
        retries(
            "sessionizer",
            "exatom_retries_total{dependency=\"clickhouse\",reason=\"unreachable\"}",
        )
        .await
            > 0.0
    })
    .await;
    outage.end();
    assert!(
        waited,
        "the sessionizer never retried a write while ClickHouse was down"
    );
    for name in ["collector", "anonymizer", "sessionizer", "aggregator"] {
        assert!(
            pipeline.service(name).is_running(),
            "{name} survived the outage"
        );
    }
    // Everything sent before and during the outage is written once it is back.
    let expected = sessions_match_the_rule(&stack, &site, OUTAGE_VISITORS).await;
    let form_rows = format!("SELECT count() FROM exatom.form_sessions FINAL WHERE site = '{site}'");
    wait_until(Duration::from_secs(60), "aggregator resumed", || async {
        stack.query(&form_rows).await.trim() == expected.len().to_string()
    })
    .await;
    assert!(pipeline.stop().is_empty());
}

/// `/readyz` of a service: its status code (0 when it does not answer).
async fn readyz(port: u16) -> u16 {
    reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[tokio::test]
async fn broker_killed_mid_stream_every_stage_recovers_by_itself() {
    const BROKER_VISITORS: usize = 60;
    let stack = Stack::from_env();
    let id = &uuid::Uuid::new_v4().simple().to_string()[..6];
    let (site, probe_site) = (format!("KILL{id}"), format!("PROBE{id}"));
    let sites = sites_file(
        &stack,
        "broker-kill",
        &[(&site, &[], &[]), (&probe_site, &[], &[])],
    );
    let mut pipeline = Pipeline::start(&stack, &sites, &settings()).await;
    let url = format!("{}/v1/events", pipeline.collector_url);
    let client = collector_client();
    for v in 0..BROKER_VISITORS / 2 {
        send_visitor(&client, &url, &site, v).await;
    }
    sessionizer_consuming(&pipeline).await;

    let mut outage = Outage::kill_broker(&stack);
    // The collector refuses (503), never acknowledges what it cannot store. The probe goes
    // to a site of its own, so a batch taken in the instant before it noticed counts nowhere.
    let probe = json!({"site": probe_site, "sent_at": rfc3339(Utc::now()), "events": [
        {"id": uuid::Uuid::new_v4().to_string(), "type": "page_view",
         "ts": rfc3339(Utc::now()), "page": "https://shop.test/"}]})
    .to_string();
    let refused = poll_until(Duration::from_secs(30), || async {
        let status = client
            .post(&url)
            .body(probe.clone())
            .send()
            .await
            .unwrap()
            .status();
        status == 503
    })
    .await;
    assert!(
        refused,
        "the collector answered 503 while the broker was gone"
    );
    assert_eq!(readyz(pipeline.collector_port()).await, 503);
    // Every consumer says so on /readyz (its lag sample is the probe, every 10 s).
    for name in ["anonymizer", "sessionizer", "aggregator"] {
        let port = pipeline.admin_ports[name];
        let unready = poll_until(Duration::from_secs(60), || async {
            readyz(port).await == 503
        })
        .await;
        assert!(unready, "{name} still said ready without a broker");
    }
    // Stages started while the broker is gone wait for it instead of exiting.
    for name in ["anonymizer", "sessionizer"] {
        pipeline.kill_and_restart(&stack, name, &settings());
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    for name in ["anonymizer", "sessionizer"] {
        assert!(
            pipeline.service(name).is_running(),
            "{name} started without a broker exited"
        );
        assert_eq!(readyz(pipeline.admin_ports[name]).await, 503, "{name}");
    }
    outage.end();

    for v in BROKER_VISITORS / 2..BROKER_VISITORS {
        send_visitor(&client, &url, &site, v).await;
    }
    sessions_match_the_rule(&stack, &site, BROKER_VISITORS).await;
    for name in ["anonymizer", "sessionizer", "aggregator"] {
        let port = pipeline.admin_ports[name];
        let ready = poll_until(Duration::from_secs(60), || async {
            readyz(port).await == 200
        })
        .await;
        assert!(ready, "{name} did not say ready again");
    }
    for name in ["collector", "anonymizer", "sessionizer", "aggregator"] {
        assert!(
            pipeline.service(name).is_running(),
            "{name} survived the broker's death"
        );
    }
    assert!(pipeline.stop().is_empty());
}
