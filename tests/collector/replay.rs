//! Replay batches at the collector (README, "Session replay"): the contract's answer for
//! each kind of batch, a snapshot over the limit stored as a placeholder page, the recorder
//! served only for a recording site, and events taken all the while.

use std::io::{Read, Write};

use chrono::Utc;
use exatom_core::avro::replay_batch_codec;
use exatom_core::model::ReplayBatch;
use exatom_e2e::{rfc3339, wait_until, Stack};
use serde_json::{json, Value};

use std::time::Duration;

use crate::support::{batch, event_id, new_site, page_view, raw_records, Collector};

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
        Duration::from_secs(30),
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
    // A browser asks before a cross-origin batch: answered, and counted under replay's route.
    let preflight = client
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "http://shop.test")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 204);
    assert_eq!(
        collector
            .metric("exatom_collector_requests_total{route=\"/v1/replay\",status=\"204\"}")
            .await,
        1.0
    );
}

/// A client floods replay as hard as it can (the rate limit and the site's minute lifted: the
/// worst case, not the defaults) while other visitors send events. Both producers' queues are
/// held small: were replay's records queued with the events', the events would be refused
/// with "queue full" as soon as the flood filled it. Every event is taken and reaches
/// `exatom.raw`, while the flood meets its own limits (a full queue, too many replay requests
/// in progress: 503) and carries on.
#[tokio::test]
async fn a_replay_flood_from_one_client_leaves_the_events_path_alone() {
    let stack = Stack::from_env();
    let (site, sites) = new_site(&stack, "replay-flood", &["http://shop.test"]);
    let text = std::fs::read_to_string(&sites).unwrap();
    std::fs::write(&sites, format!("{text}replay_sample = 1.0\n")).unwrap();
    let collector = Collector::start(
        &stack,
        &sites,
        &[
            ("EXATOM_MAX_QUEUE_EVENTS", "20".into()),
            ("EXATOM_MAX_QUEUE_REPLAY_BATCHES", "8".into()),
            ("EXATOM_MAX_REPLAY_REQUESTS", "16".into()),
            ("EXATOM_REPLAY_SITE_BYTES_PER_MINUTE", "100000000000".into()),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flooders: Vec<_> = (0..24)
        .map(|_| {
            let (client, stop) = (client.clone(), stop.clone());
            let (url, site) = (format!("{}/v1/replay", collector.base), site.clone());
            tokio::spawn(async move {
                // A page's worth of text that does not compress away: the broker carries it.
                let noise: String = (0..200_000)
                    .map(|_| char::from(b'a' + rand::random::<u8>() % 26))
                    .collect();
                let (mut taken, mut full) = (0u32, 0u32);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let chunk = json!([{"type": 3, "timestamp": Utc::now().timestamp_millis(),
                                        "data": {"source": 0, "texts": [{"id": 1, "value": noise}]}}]);
                    let status = client
                        .post(&url)
                        .header("content-type", "text/plain")
                        .header("origin", "http://shop.test")
                        .header("x-forwarded-for", "203.0.113.7")
                        // A page of its own each time: a page's batches are limited.
                        .body(replay(&site, &event_id(), 0, &chunk))
                        .send()
                        .await
                        // A 503 for too many requests in progress is answered before the
                        // body is read, and the connection closed: a client still sending
                        // sees it cut.
                        .map_or(503, |r| {
                            let status = r.status().as_u16();
                            assert!(
                                status != 503 || r.headers().contains_key("retry-after"),
                                "a 503 says when to come back"
                            );
                            status
                        });
                    match status {
                        202 => taken += 1,
                        503 => full += 1,
                        other => panic!("replay answered {other}"),
                    }
                }
                (taken, full)
            })
        })
        .collect();

    // Meanwhile, 150 batches of 10 events, one after the other, from other visitors.
    let mut sent = Vec::new();
    let mut slowest = Duration::ZERO;
    for i in 0..150 {
        let events: Vec<Value> = (0..10)
            .map(|_| page_view(&event_id(), &rfc3339(Utc::now())))
            .collect();
        sent.extend(events.iter().map(|e| e["id"].as_str().unwrap().to_owned()));
        let started = std::time::Instant::now();
        let answer = client
            .post(collector.events_url())
            .header("content-type", "text/plain")
            .header("origin", "http://shop.test")
            .header("x-forwarded-for", format!("198.51.100.{}", i % 250))
            .body(batch(&site, &rfc3339(Utc::now()), &events))
            .send()
            .await
            .unwrap();
        slowest = slowest.max(started.elapsed());
        let status = answer.status();
        assert_eq!(
            status,
            202,
            "events refused during a replay flood: {}",
            answer.text().await.unwrap()
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut taken, mut full) = (0, 0);
    for flooder in flooders {
        let (t, f) = flooder.await.unwrap();
        taken += t;
        full += f;
    }
    // Printed, not asserted (machines are noisy): BENCHMARKS.md has the measured figures.
    eprintln!("flood: {taken} replay batches taken, {full} answered 503; slowest event answer {slowest:?}");
    assert!(taken > 0, "the flood reached the broker");
    assert!(full > 0, "the flood met replay's own limits");

    wait_until(
        Duration::from_secs(60),
        "every event in exatom.raw",
        || async {
            let found: std::collections::HashSet<String> = raw_records(&stack, &site)
                .into_iter()
                .map(|r| r.event.event_id)
                .collect();
            sent.iter().all(|id| found.contains(id))
        },
    )
    .await;
}

/// kill -9 of the collector while replay batches arrive: every batch it answered 202 is in
/// `exatom.replay` (the answer waits for the broker's acknowledgement), and those the kill
/// caught, sent again to the restarted collector as the recorder sends a failed batch again,
/// are there too. A batch in the topic twice is the same batch (page view, seq and events
/// alike), which `replay_batches` keeps once: `tests/crash.rs` redelivers the topic to show it.
#[tokio::test]
async fn killed_mid_replay_the_collector_loses_no_batch_it_took() {
    const SENDERS: usize = 8;
    const PAGES: usize = 25;
    let stack = Stack::from_env();
    let (site, sites) = new_site(&stack, "replay-kill", &["http://shop.test"]);
    let text = std::fs::read_to_string(&sites).unwrap();
    std::fs::write(&sites, format!("{text}replay_sample = 1.0\n")).unwrap();
    let mut collector = Collector::start(&stack, &sites, &[]).await;
    let base = std::sync::Arc::new(std::sync::RwLock::new(collector.base.clone()));
    let taken = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let client = reqwest::Client::new();
    let senders: Vec<_> = (0..SENDERS)
        .map(|_| {
            let (client, base, taken, site) =
                (client.clone(), base.clone(), taken.clone(), site.clone());
            tokio::spawn(async move {
                let mut sent = Vec::new();
                for _ in 0..PAGES {
                    let page = event_id();
                    for seq in 0..3 {
                        let body = replay(&site, &page, seq, &events(20));
                        loop {
                            let url = format!("{}/v1/replay", base.read().unwrap());
                            let answer = client
                                .post(url)
                                .header("content-type", "text/plain")
                                .header("origin", "http://shop.test")
                                .body(body.clone())
                                .send()
                                .await;
                            // Refused connections and 503s while the collector is down or
                            // starting: sent again, as the recorder does.
                            if answer.is_ok_and(|r| r.status() == 202) {
                                break;
                            }
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        taken.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        sent.push((page.clone(), seq));
                    }
                }
                sent
            })
        })
        .collect();

    // The kill lands with a third taken and the rest in flight or still to come.
    let total = SENDERS * PAGES * 3;
    wait_until(
        Duration::from_secs(60),
        "a third of the batches taken",
        || async { taken.load(std::sync::atomic::Ordering::Relaxed) >= total / 3 },
    )
    .await;
    collector.service.kill();
    let restarted = Collector::start(&stack, &sites, &[]).await;
    *base.write().unwrap() = restarted.base.clone();
    let mut sent = std::collections::HashSet::new();
    for sender in senders {
        sent.extend(sender.await.unwrap());
    }
    assert_eq!(sent.len(), total);

    let in_topic = || {
        stored(&stack, &site)
            .into_iter()
            .map(|(b, events)| ((b.page_view_id.clone(), b.seq as u32), events))
            .collect::<Vec<_>>()
    };
    wait_until(
        Duration::from_secs(60),
        "every batch taken in exatom.replay",
        || async {
            let found: std::collections::HashSet<_> =
                in_topic().into_iter().map(|(key, _)| key).collect();
            sent.iter().all(|key| found.contains(key))
        },
    )
    .await;
    let records = in_topic();
    let mut by_key: std::collections::HashMap<_, Vec<Value>> = std::collections::HashMap::new();
    for (key, events) in records.iter().cloned() {
        assert!(sent.contains(&key), "{key:?} was never sent");
        by_key.entry(key).or_default().push(events);
    }
    for (key, copies) in &by_key {
        assert!(
            copies.windows(2).all(|w| w[0] == w[1]),
            "{key:?} is in the topic twice with different events"
        );
    }
    eprintln!(
        "{} batches taken, {} records in the topic after the kill",
        sent.len(),
        records.len()
    );
}
