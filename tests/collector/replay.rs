//! Replay batches at the collector (README, "Session replay"): the contract's answer for
//! each kind of batch, a snapshot over the limit stored as a placeholder page, the recorder
//! served only for a recording site, and events taken all the while.

use std::io::{Read, Write};

use chrono::Utc;
use exatom_core::avro::replay_batch_codec;
use exatom_core::model::ReplayBatch;
use exatom_e2e::{rfc3339, wait_until, Stack};
use serde_json::{json, Value};

use crate::support::{batch, event_id, new_site, page_view, Collector};

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

fn replay(site: &str, page_view_id: &str, seq: u32, events: &Value) -> Vec<u8> {
    json!({"site": site, "page_view_id": page_view_id, "seq": seq,
           "sent_at": rfc3339(Utc::now()), "events": events})
    .to_string()
    .into_bytes()
}

fn events(n: usize) -> Value {
    let t = Utc::now().timestamp_millis();
    Value::Array(
        (0..n as i64)
            .map(|i| json!({"type": 3, "timestamp": t + i, "data": {"source": 1, "positions": []}}))
            .collect(),
    )
}

/// The batches of `site` in `exatom.replay`, their events decompressed.
fn stored(stack: &Stack, site: &str) -> Vec<(ReplayBatch, Value)> {
    let codec = replay_batch_codec();
    stack
        .topic_records("exatom.replay")
        .into_iter()
        .filter_map(|(_, value)| codec.decode(&value).ok())
        .filter(|b| b.site == site)
        .map(|b| {
            let mut json = String::new();
            flate2::read::GzDecoder::new(b.events_gzip.as_slice())
                .read_to_string(&mut json)
                .unwrap();
            let events = serde_json::from_str(&json).unwrap();
            (b, events)
        })
        .collect()
}

#[tokio::test]
async fn replay_batches_get_the_contract_s_answers_while_events_are_taken() {
    let stack = Stack::from_env();
    let (site, sites) = new_site(&stack, "replay", &["http://shop.test"]);
    let quiet = format!("Q{}", &site[1..]);
    let text = std::fs::read_to_string(&sites).unwrap();
    std::fs::write(
        &sites,
        format!("{text}replay_sample = 1.0\n\n[sites.{quiet}]\norigins = [\"http://shop.test\"]\n"),
    )
    .unwrap();
    let collector = Collector::start(
        &stack,
        &sites,
        &[
            ("EXATOM_MAX_REPLAY_BODY_BYTES", "300000".into()),
            ("EXATOM_MAX_REPLAY_SNAPSHOT_BYTES", "20000".into()),
            ("EXATOM_MAX_REPLAY_EVENTS", "50".into()),
            ("EXATOM_MAX_REPLAY_BATCHES_PER_PAGE", "10".into()),
            ("EXATOM_REPLAY_SITE_BYTES_PER_MINUTE", "600000".into()),
        ],
    )
    .await;
    let url = format!("{}/v1/replay", collector.base);
    let client = reqwest::Client::new();
    let post = |body: Vec<u8>, content_type: &'static str| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let r = client
                .post(&url)
                .header("content-type", content_type)
                .header("origin", "http://shop.test")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let retry_after = r.headers().get("retry-after").is_some();
            let answer: Value = r.json().await.unwrap_or(Value::Null);
            (status, answer, retry_after)
        }
    };
    let page = event_id();
    let secret = format!("typed-{}", &page[..8]);

    // Taken: plain, and gzipped without a Content-Encoding (a beacon cannot set one).
    let (status, answer, _) = post(replay(&site, &page, 0, &events(3)), "text/plain").await;
    assert_eq!((status, &answer["accepted"]), (202, &json!(3)), "{answer}");
    let (status, _, _) = post(gzip(&replay(&site, &page, 1, &events(2))), "text/plain").await;
    assert_eq!(status, 202);
    // A full snapshot over the limit: taken, as a placeholder page.
    let big = json!([{"type": 2, "timestamp": Utc::now().timestamp_millis(),
                      "data": {"node": {"type": 3, "id": 1, "textContent": secret.repeat(2000)}}}]);
    let (status, answer, _) = post(gzip(&replay(&site, &page, 2, &big)), "text/plain").await;
    assert_eq!(
        (status, &answer["snapshots_replaced"]),
        (202, &json!(1)),
        "{answer}"
    );

    // Refused, each with the contract's status and a message that does not quote the page.
    let too_many = replay(&site, &page, 3, &events(51));
    let over_limit = replay(
        &site,
        &page,
        3,
        &json!([{"type": 3, "timestamp": 1, "data": {"text": "x".repeat(310_000)}}]),
    );
    let bomb = gzip(&vec![b' '; 2_000_000]);
    let cases: Vec<(Vec<u8>, &str, u16)> = vec![
        (
            format!("{{\"site\": \"{site}\", {secret}").into_bytes(),
            "text/plain",
            400,
        ),
        (replay(&site, &page, 3, &json!([])), "text/plain", 400),
        (replay(&site, &secret, 3, &events(1)), "text/plain", 400),
        (
            replay(&site, &page, 3, &json!([{"type": 3, "data": secret}])),
            "text/plain",
            400,
        ),
        (b"\x1f\x8b\x08not gzip".to_vec(), "text/plain", 400),
        (
            replay("CUNKNOWN0000", &page, 3, &events(1)),
            "text/plain",
            403,
        ),
        (replay(&quiet, &page, 3, &events(1)), "text/plain", 403),
        (replay(&site, &page, 10, &events(1)), "text/plain", 413),
        (too_many, "text/plain", 413),
        (over_limit, "text/plain", 413),
        (bomb, "text/plain", 413),
        (replay(&site, &page, 3, &events(1)), "image/png", 415),
    ];
    for (body, content_type, expected) in cases {
        let (status, answer, _) = post(body, content_type).await;
        assert_eq!(status, expected, "{answer}");
        let message = answer["error"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "a {status} says why");
        assert!(!message.contains(&secret), "{message} quotes the body");
    }

    // Events are taken while replay is refused and while it floods: the site's minute of
    // replay (600 000 bytes of JSON) runs out, a 429 says when to come back.
    let event_url = collector.events_url();
    let mut seq = 4;
    let mut throttled = false;
    for _ in 0..20 {
        let chunk = json!([{"type": 3, "timestamp": Utc::now().timestamp_millis(),
                            "data": {"source": 1, "text": "y".repeat(150_000)}}]);
        let (status, _, retry_after) =
            post(replay(&site, &event_id(), seq, &chunk), "text/plain").await;
        seq = (seq + 1) % 10;
        let taken = client
            .post(&event_url)
            .header("content-type", "text/plain")
            .header("origin", "http://shop.test")
            .body(batch(
                &site,
                &rfc3339(Utc::now()),
                &[page_view(&event_id(), &rfc3339(Utc::now()))],
            ))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(taken, 202, "events are taken beside replay");
        if status == 429 {
            assert!(retry_after, "a 429 says when to come back");
            throttled = true;
            break;
        }
        assert_eq!(status, 202);
    }
    assert!(throttled, "the site's replay bytes per minute are a limit");

    // What the topic holds: the batches taken, a record each, the snapshot a placeholder
    // page (still JSON), nothing of what was refused. (The record has no field for an
    // address or a user agent: `schemas/avro/replay_batch.avsc`.)
    wait_until(
        std::time::Duration::from_secs(30),
        "the batches in exatom.replay",
        || async {
            stored(&stack, &site)
                .iter()
                .filter(|(b, _)| b.page_view_id == page)
                .count()
                == 3
        },
    )
    .await;
    let ours: Vec<(ReplayBatch, Value)> = stored(&stack, &site)
        .into_iter()
        .filter(|(b, _)| b.page_view_id == page)
        .collect();
    let mut seqs: Vec<i32> = ours.iter().map(|(b, _)| b.seq).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, [0, 1, 2]);
    let snapshot = &ours.iter().find(|(b, _)| b.seq == 2).unwrap().1;
    assert_eq!(
        snapshot[0]["data"]["node"]["childNodes"][0]["childNodes"][0]["childNodes"][0]
            ["textContent"],
        "This page was too large to record."
    );
    for (b, events) in &ours {
        assert_eq!(b.keep_days, 30);
        assert!(!events.to_string().contains(&secret));
    }

    // The recorder: served for the recording site (every visitor sampled), nothing for the other.
    let recorder = reqwest::get(format!("{}/replay.js?site={site}", collector.base))
        .await
        .unwrap();
    assert_eq!(recorder.headers()["cache-control"], "private, no-cache");
    assert!(recorder.text().await.unwrap().contains("rrweb"));
    let nothing = reqwest::get(format!("{}/replay.js?site={quiet}", collector.base))
        .await
        .unwrap();
    assert_eq!(nothing.status(), 200);
    assert!(nothing.text().await.unwrap().is_empty());
    assert_eq!(
        collector
            .metric("exatom_collector_replay_snapshots_replaced_total")
            .await,
        1.0
    );
}
