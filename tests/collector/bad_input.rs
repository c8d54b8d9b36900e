//! Garbage at the door: every bad body gets a 4xx naming the problem, the process stays up,
//! and the valid batches sent in between all arrive.

use std::collections::HashSet;
use std::io::Write;
use std::time::Duration;

use chrono::Utc;
use exatom_e2e::{rfc3339, Stack};
use flate2::write::GzEncoder;
use serde_json::{json, Value};

use crate::support::{
    batch, event_id, new_site, page_view, post_head, raw_http, raw_records, Collector,
};

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// A bad request: what it is, its body and headers, the status and a word the message has.
struct Case {
    what: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    body: Vec<u8>,
    status: u16,
    needle: &'static str,
}

fn case(what: &'static str, body: impl Into<Vec<u8>>, status: u16, needle: &'static str) -> Case {
    Case {
        what,
        headers: Vec::new(),
        body: body.into(),
        status,
        needle,
    }
}

fn with(mut c: Case, name: &'static str, value: &'static str) -> Case {
    c.headers.push((name, value));
    c
}

#[tokio::test]
async fn bad_input_gets_a_4xx_with_a_message_and_valid_batches_alongside_all_arrive() {
    let stack = Stack::from_env();
    let (site, sites) = new_site(&stack, "bad", &["http://ok.test"]);
    let mut collector = Collector::start(
        &stack,
        &sites,
        &[("EXATOM_REQUEST_TIMEOUT_MS", "1000".into())],
    )
    .await;
    let url = collector.events_url();
    // The collector closes connections idle for the request timeout (1 s here): a client
    // keeps them for less, as a proxy in front of it must.
    let client = reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let now = rfc3339(Utc::now());
    let valid = page_view(&event_id(), &now);
    let good = batch(&site, &now, std::slice::from_ref(&valid));

    let mut cut = good.clone().into_bytes();
    cut.truncate(good.len() / 2);
    let deep = format!("{}1{}", "[".repeat(30_000), "]".repeat(30_000));
    let huge_text = format!(
        r#"{{"site":"{site}","sent_at":"{now}","events":[{{"id":"{}","type":"page_view","ts":"{now}","page":"https://ok.test/","title":"{}"}}]}}"#,
        event_id(),
        "x".repeat(70_000)
    );
    let mut invalid_utf8 = good.clone().into_bytes();
    let at = good.find("checkout").unwrap();
    invalid_utf8[at..at + 2].copy_from_slice(b"\xff\xfe");
    let nul_byte = good.replacen("checkout", "check\0out", 1).into_bytes();
    let bomb = gzip(&vec![b' '; 8 << 20]);
    let dense = gzip(format!("{good}{}", " ".repeat(60_000)).as_bytes());
    let mut cut_gzip = gzip(good.as_bytes());
    cut_gzip.truncate(cut_gzip.len() - 8);

    let cases = vec![
        case("bad JSON", "{\"site\":", 400, "not a batch"),
        case("empty body", "", 400, "not a batch"),
        case("truncated body", cut, 400, "EOF"),
        case(
            "JSON but not a batch",
            "[1,2,3]",
            400,
            "expected a JSON object",
        ),
        case(
            "no events",
            json!({"site": site, "sent_at": now}).to_string(),
            400,
            "events",
        ),
        case(
            "site of the wrong type",
            json!({"site": 7, "sent_at": now, "events": [valid]}).to_string(),
            400,
            "expected a string",
        ),
        case(
            "events of the wrong type",
            json!({"site": site, "sent_at": now, "events": "page_view"}).to_string(),
            400,
            "expected a sequence",
        ),
        case(
            "sent_at not a time",
            json!({"site": site, "sent_at": 1_700_000_000, "events": [valid]}).to_string(),
            400,
            "expected a string",
        ),
        case("deep nesting", deep, 400, "expected a JSON object"),
        case("invalid UTF-8", invalid_utf8, 400, "UTF-8"),
        case("NUL byte", nul_byte, 400, "control character"),
        case("huge string", huge_text, 413, "limit"),
        case("huge body", vec![b' '; 70_000], 413, "limit"),
        with(
            case("gzip bomb", bomb, 413, "after decompression"),
            "content-encoding",
            "gzip",
        ),
        with(
            case("dense gzip", dense, 413, "compression bomb"),
            "content-encoding",
            "gzip",
        ),
        with(
            case("truncated gzip", cut_gzip, 400, "gzip"),
            "content-encoding",
            "gzip",
        ),
        with(
            case("not gzip at all", good.clone(), 400, "gzip"),
            "content-encoding",
            "gzip",
        ),
        with(
            case("brotli", good.clone(), 415, "Content-Encoding"),
            "content-encoding",
            "br",
        ),
        with(
            case("XML", "<batch/>", 415, "Content-Type"),
            "content-type",
            "application/xml",
        ),
        case(
            "unknown site",
            batch("NOPE", &now, std::slice::from_ref(&valid)),
            403,
            "not registered",
        ),
        with(
            case("foreign origin", good.clone(), 403, "origin"),
            "origin",
            "http://evil.test",
        ),
    ];

    let mut sent_valid = HashSet::new();
    let send_valid = |sent: &mut HashSet<String>| {
        let now = rfc3339(Utc::now());
        let id = event_id();
        sent.insert(id.clone());
        let request = client
            .post(&url)
            .header("origin", "http://ok.test")
            .body(batch(&site, &now, &[page_view(&id, &now)]));
        async move {
            let r = request.send().await.expect("collector answers");
            assert_eq!(r.status(), 202, "a valid batch beside the bad ones");
        }
    };
    for c in cases {
        let mut request = client.post(&url).body(c.body);
        for (name, value) in c.headers {
            request = request.header(name, value);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: {e:?}", c.what));
        assert_eq!(response.status().as_u16(), c.status, "{}", c.what);
        let body: Value = response.json().await.expect("a JSON error body");
        let message = body["error"].as_str().unwrap_or_default();
        assert!(
            message.contains(c.needle),
            "{}: {message:?} does not mention {:?}",
            c.what,
            c.needle
        );
        send_valid(&mut sent_valid).await;
    }

    // Bad events inside a good batch: 202, each listed with its reason, the valid ones kept.
    let keep = event_id();
    sent_valid.insert(keep.clone());
    let mut deep_event = "{\"a\":".repeat(5_000);
    deep_event.push('1');
    deep_event.push_str(&"}".repeat(5_000));
    let deep_array = format!("{}{}", "[".repeat(5_000), "]".repeat(5_000));
    let events = format!(
        "[{},{},{},{},{},{},{},{}]",
        page_view(&keep, &now),
        json!({"id": event_id(), "type": "page_view", "ts": now, "page": "https://ok.test/",
               "title": "x".repeat(600)}),
        json!({"id": event_id(), "type": "page_view", "ts": now, "page": "https://ok.test/",
               "title": "a\u{0}b"}),
        json!({"id": 42, "type": "page_view", "ts": now, "page": "https://ok.test/"}),
        json!({"id": event_id(), "type": "form_event", "ts": now, "page": "https://ok.test/",
               "form": {"name": "f"}, "event": "input", "seq": "seven", "field": {"name": "e"}}),
        json!({"id": event_id(), "type": "page_view", "ts": "yesterday", "page": "https://ok.test/"}),
        deep_event,
        deep_array,
    );
    let mixed = format!(r#"{{"site":"{site}","sent_at":"{now}","events":{events}}}"#);
    let response = client.post(&url).body(mixed).send().await.unwrap();
    assert_eq!(response.status(), 202);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["accepted"], 1, "{answer}");
    let reasons: Vec<(u64, String)> = answer["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["index"].as_u64().unwrap(),
                r["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let codes: Vec<(u64, &str)> = reasons
        .iter()
        .map(|(i, r)| (*i, r.split(':').next().unwrap()))
        .collect();
    assert_eq!(
        codes,
        [
            (1, "too_long"),
            (2, "invalid_text"),
            (3, "malformed"),
            (4, "malformed"),
            (5, "invalid_ts"),
            (6, "malformed"),
            (7, "malformed"),
        ],
        "{reasons:?}"
    );
    assert!(reasons[0]
        .1
        .contains("`title` is longer than 512 characters"));
    assert!(reasons[2].1.contains("`id`: invalid type: integer `42`"));
    assert!(reasons[3]
        .1
        .contains("`seq`: invalid type: string \"seven\""));
    assert!(reasons[5].1.contains("missing field `id`"));
    assert!(reasons[6].1.contains("an event must be a JSON object"));

    // A body cut short on the wire, and one that stalls past the request timeout.
    let body = good.as_bytes();
    let (status, answer) = raw_http(
        collector.port,
        &[post_head(body.len()), body[..20].to_vec()].concat(),
        Duration::ZERO,
        None,
    );
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("could not be read completely"), "{answer}");
    send_valid(&mut sent_valid).await;
    let (status, answer) = raw_http(
        collector.port,
        &[post_head(body.len()), body[..20].to_vec()].concat(),
        Duration::from_millis(2_500),
        Some(&body[20..]),
    );
    assert_eq!(status, 408, "{answer}");
    assert!(answer.contains("request timeout"), "{answer}");
    send_valid(&mut sent_valid).await;

    // Headers trickling in past the request timeout: the connection is closed.
    let mut slow = std::net::TcpStream::connect(("127.0.0.1", collector.port)).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    slow.write_all(b"POST /v1/events HTTP/1.1\r\nhost: 127.0.0.1\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(2_500));
    let _ = slow.write_all(b"content-type: application/json\r\n");
    let mut rest = Vec::new();
    // The server ends the connection (EOF, or a reset for the bytes sent after it closed);
    // a read that times out means it was still waiting.
    match std::io::Read::read_to_end(&mut slow, &mut rest) {
        Ok(_) => assert!(!String::from_utf8_lossy(&rest).contains(" 202 ")),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
    send_valid(&mut sent_valid).await;

    // CORS preflight: answered for an allowed origin only.
    let ok = client
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "http://ok.test")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 204);
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "http://ok.test"
    );
    let evil = client
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "http://evil.test")
        .send()
        .await
        .unwrap();
    assert_eq!(evil.status(), 403);
    assert!(!evil.headers().contains_key("access-control-allow-origin"));

    assert!(
        collector.service.is_running(),
        "the collector survived every bad input"
    );
    let stored: HashSet<String> = raw_records(&stack, &site)
        .into_iter()
        .map(|r| r.event.event_id)
        .collect();
    assert_eq!(
        stored, sent_valid,
        "every valid event arrived, nothing else"
    );

    for (sample, at_least) in [
        (
            "exatom_collector_requests_total{route=\"/v1/events\",status=\"400\"}",
            12.0,
        ),
        (
            "exatom_collector_requests_total{route=\"/v1/events\",status=\"413\"}",
            4.0,
        ),
        (
            "exatom_collector_requests_total{route=\"/v1/events\",status=\"415\"}",
            2.0,
        ),
        (
            "exatom_collector_requests_total{route=\"/v1/events\",status=\"403\"}",
            3.0,
        ),
        (
            "exatom_collector_requests_total{route=\"/v1/events\",status=\"408\"}",
            1.0,
        ),
        (
            "exatom_collector_events_rejected_total{reason=\"malformed\"}",
            3.0,
        ),
        (
            "exatom_collector_events_rejected_total{reason=\"too_long\"}",
            1.0,
        ),
        ("exatom_collector_bytes_in_total", 1_000.0),
        ("exatom_collector_produce_latency_seconds_count", 1.0),
    ] {
        let value = collector.metric(sample).await;
        assert!(
            value >= at_least,
            "{sample} = {value}, expected ≥ {at_least}"
        );
    }
    for sample in [
        "exatom_collector_producer_queue_events",
        "exatom_collector_delivery_failures_total",
        "exatom_collector_rate_limited_total",
        "exatom_collector_values_masked_total",
    ] {
        assert_eq!(collector.metric(sample).await, 0.0, "{sample}");
    }
}
