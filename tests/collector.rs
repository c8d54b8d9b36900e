//! The collector as a real process against the real broker: what it writes to `exatom.raw`
//! (each accepted event once, one visitor's events in order, values masked, skew
//! corrected, the client address by the trusted-proxy rule), how it refuses (rate limits,
//! bad input: a 4xx with a message, never a crash), and how it behaves while the broker is
//! away (503 with `Retry-After`, then recovery by itself, nothing acknowledged lost).

#[path = "collector/bad_input.rs"]
mod bad_input;
#[path = "collector/operations.rs"]
mod operations;
#[path = "collector/replay.rs"]
mod replay;
#[path = "collector/support.rs"]
mod support;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::Utc;
use exatom_collector::encoder::partition_key;
use exatom_e2e::{contains, rfc3339, wait_until, Outage, Part, Stack};
use serde_json::Value;
use support::{batch, event_id, form_event, new_site, page_view, raw_records, Collector};

#[tokio::test]
async fn accepted_events_land_once_in_visitor_order_masked_and_skew_corrected() {
    let stack = Stack::from_env();
    let (site, sites) = new_site(&stack, "order", &["http://shop.test"]);
    // Debug logs: the privacy check below then covers everything the collector says.
    let collector = Collector::start(&stack, &sites, &[("RUST_LOG", "debug".into())]).await;
    let url = collector.events_url();
    let run = uuid::Uuid::new_v4().simple().to_string();
    let typed = format!("jane.{run}@example.com");

    // Four visitors behind the local proxy (127.0.0.1 is trusted), sending at the same
    // time, five batches of 20 each. Their clocks run an hour late; events are 2 s old.
    let visitors: Vec<(String, String)> = (0..4)
        .map(|v| {
            (
                format!("198.51.100.{}", 10 + v),
                format!("Mozilla/5.0 (X11; Linux x86_64) ExatomCollectorTest/{run}/{v}"),
            )
        })
        .collect();
    let sends: Vec<_> = visitors
        .iter()
        .map(|(ip, ua)| {
            let (url, site, typed) = (url.clone(), site.clone(), typed.clone());
            let (ip, ua) = (ip.clone(), ua.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut ids = Vec::new();
                for b in 0..5i64 {
                    let sent_at = Utc::now() - chrono::Duration::hours(1);
                    let ts = rfc3339(sent_at - chrono::Duration::seconds(2));
                    let events: Vec<Value> = (0..20)
                        .map(|i| {
                            let id = event_id();
                            ids.push(id.clone());
                            let value = if i % 2 == 0 { typed.as_str() } else { "*" };
                            form_event(&id, &ts, b * 20 + i, value)
                        })
                        .collect();
                    let response = client
                        .post(&url)
                        .header("content-type", "text/plain;charset=UTF-8")
                        .header("origin", "http://shop.test")
                        .header("x-forwarded-for", &ip)
                        .header("user-agent", &ua)
                        .body(batch(&site, &rfc3339(sent_at), &events))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status(), 202);
                    let answer: Value = response.json().await.unwrap();
                    assert_eq!(answer["accepted"], 20, "{answer}");
                    assert_eq!(answer["rejected"], serde_json::json!([]));
                }
                (ip, ua, ids)
            })
        })
        .collect();
    let mut sent = Vec::new();
    for visitor in sends {
        sent.push(visitor.await.expect("visitor task"));
    }

    let records = raw_records(&stack, &site);
    let mut copies: HashMap<&str, usize> = HashMap::new();
    for r in &records {
        *copies.entry(r.event.event_id.as_str()).or_default() += 1;
    }
    let all_ids: HashSet<&str> = sent
        .iter()
        .flat_map(|(_, _, ids)| ids.iter().map(String::as_str))
        .collect();
    assert_eq!(all_ids.len(), 400);
    assert_eq!(
        copies.keys().copied().collect::<HashSet<_>>(),
        all_ids,
        "exactly the accepted events are in exatom.raw"
    );
    assert!(copies.values().all(|&n| n == 1), "each exactly once");

    for (ip, ua, ids) in &sent {
        let mine: Vec<_> = records.iter().filter(|r| &r.event.ip == ip).collect();
        assert_eq!(mine.len(), 100);
        // One key, one partition: offsets follow the order the visitor sent.
        let key = partition_key(&site, ip, ua);
        assert!(mine
            .iter()
            .all(|r| r.key == key && !r.key.contains(ip.as_str())));
        assert!(mine.iter().all(|r| r.partition == mine[0].partition));
        let seqs: Vec<i64> = mine.iter().map(|r| r.event.body.seq.unwrap()).collect();
        assert_eq!(seqs, (0..100).collect::<Vec<_>>(), "visitor order kept");
        let in_offset_order: Vec<&str> = mine.iter().map(|r| r.event.event_id.as_str()).collect();
        assert_eq!(in_offset_order, *ids);
        for r in &mine {
            let e = &r.event;
            assert_eq!(&e.user_agent, ua);
            // Skew corrected with the batch clock: the event is 2 s before receipt.
            assert_eq!(e.event_time_ms - e.ts_ms, e.received_at_ms - e.sent_at_ms);
            assert_eq!(e.event_time_ms, e.received_at_ms - 2_000);
            assert_eq!(e.body.value.as_deref(), Some("*"));
            assert!(
                !contains(&r.bytes, &typed),
                "a typed value reached the topic"
            );
        }
    }
    assert_eq!(
        collector
            .metric("exatom_collector_values_masked_total")
            .await,
        200.0
    );
    assert_eq!(
        collector
            .metric("exatom_collector_events_accepted_total")
            .await,
        400.0
    );

    // Nothing a visitor sent or is reaches the log.
    let log = std::fs::read(stack.state.join("logs/test-collector.log")).unwrap();
    assert!(!log.is_empty(), "the collector logs");
    for needle in std::iter::once(typed.as_str())
        .chain(
            visitors
                .iter()
                .flat_map(|(ip, ua)| [ip.as_str(), ua.as_str()]),
        )
        .chain([run.as_str()])
    {
        assert!(
            !contains(&log, needle),
            "{needle} found in the collector log"
        );
    }
}

#[tokio::test]
async fn the_client_address_is_the_peer_unless_a_trusted_proxy_forwarded_it() {
    let stack = Stack::from_env();
    let (site, sites) = new_site(&stack, "proxy", &["http://shop.test"]);
    let behind_proxy = Collector::start(
        &stack,
        &sites,
        &[(
            "EXATOM_TRUSTED_PROXIES",
            "127.0.0.1/32,10.0.0.0/8".to_owned(),
        )],
    )
    .await;
    // Here the peer, 127.0.0.1, is not a trusted proxy: whatever it forwards is ignored.
    let exposed = Collector::start(
        &stack,
        &sites,
        &[("EXATOM_TRUSTED_PROXIES", "10.0.0.0/8".to_owned())],
    )
    .await;
    let cases: [(&Collector, Option<&str>, &str); 7] = [
        (&behind_proxy, None, "127.0.0.1"),
        (&behind_proxy, Some("198.51.100.7"), "198.51.100.7"),
        // Right-most untrusted: the client wrote 6.6.6.6 itself, our proxies the rest.
        (
            &behind_proxy,
            Some("6.6.6.6, 198.51.100.8, 10.0.0.2"),
            "198.51.100.8",
        ),
        (&behind_proxy, Some("2001:db8::5"), "2001:db8::5"),
        // A hop that is not an address ends what can be vouched for.
        (&behind_proxy, Some("198.51.100.9, junk"), "127.0.0.1"),
        (&exposed, Some("198.51.100.7"), "127.0.0.1"),
        (&exposed, None, "127.0.0.1"),
    ];
    let client = reqwest::Client::new();
    let now = rfc3339(Utc::now());
    let mut expected = HashMap::new();
    for (collector, forwarded, ip) in cases {
        let id = event_id();
        let mut request = client
            .post(collector.events_url())
            .header("user-agent", "ProxyTest")
            .body(batch(&site, &now, &[page_view(&id, &now)]));
        if let Some(f) = forwarded {
            request = request.header("x-forwarded-for", f);
        }
        assert_eq!(request.send().await.unwrap().status(), 202);
        expected.insert(id, ip);
    }
    let records = raw_records(&stack, &site);
    assert_eq!(records.len(), expected.len());
    for r in records {
        let ip = expected[&r.event.event_id];
        assert_eq!(r.event.ip, ip, "forwarded-for case of {ip}");
        assert_eq!(r.key, partition_key(&site, ip, "ProxyTest"));
    }
}

#[tokio::test]
async fn a_client_over_its_rate_is_told_when_to_come_back_and_others_are_not() {
    let stack = Stack::from_env();
    let (site, sites) = new_site(&stack, "rate", &["http://shop.test"]);
    let collector = Collector::start(
        &stack,
        &sites,
        &[
            ("EXATOM_RATE_BURST", "5".into()),
            ("EXATOM_RATE_PER_SECOND", "0.5".into()),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let send = |from: &'static str| {
        let now = rfc3339(Utc::now());
        let id = event_id();
        let request = client
            .post(collector.events_url())
            .header("x-forwarded-for", from)
            .body(batch(&site, &now, &[page_view(&id, &now)]));
        async move { (id, request.send().await.unwrap()) }
    };
    let mut accepted = HashSet::new();
    for _ in 0..5 {
        let (id, r) = send("203.0.113.50").await;
        assert_eq!(r.status(), 202);
        accepted.insert(id);
    }
    let (refused_id, refused) = send("203.0.113.50").await;
    assert_eq!(refused.status(), 429);
    let wait: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=2).contains(&wait), "one token at 0.5/s: {wait} s");
    let body: Value = refused.json().await.unwrap();
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("too many requests"));

    // Another address behind the same proxy has its own bucket.
    let (id, other) = send("203.0.113.51").await;
    assert_eq!(other.status(), 202);
    accepted.insert(id);

    // After the wait it asked for, the client is taken again.
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let (id, again) = send("203.0.113.50").await;
    assert_eq!(again.status(), 202);
    accepted.insert(id);

    assert_eq!(
        collector
            .metric("exatom_collector_rate_limited_total")
            .await,
        1.0
    );
    let stored: HashSet<String> = raw_records(&stack, &site)
        .into_iter()
        .map(|r| r.event.event_id)
        .collect();
    assert_eq!(stored, accepted, "the refused batch was not written");
    assert!(!stored.contains(&refused_id));
}

/// What the browser tag does: a batch answered 503 is kept and sent again later.
struct Browser {
    client: reqwest::Client,
    url: String,
    site: String,
    /// Batches waiting to be (re)sent, oldest first: (event ids, body).
    pending: Vec<(Vec<String>, String)>,
    accepted: HashSet<String>,
    ever_refused: HashSet<String>,
    refusals: usize,
}

impl Browser {
    fn new(url: String, site: String) -> Self {
        Browser {
            // Not a performance bound: a request left hanging fails the test.
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            url,
            site,
            pending: Vec::new(),
            accepted: HashSet::new(),
            ever_refused: HashSet::new(),
            refusals: 0,
        }
    }

    fn queue_new_batch(&mut self) {
        let now = rfc3339(Utc::now());
        let ids: Vec<String> = (0..5).map(|_| event_id()).collect();
        let events: Vec<Value> = ids.iter().map(|id| page_view(id, &now)).collect();
        self.pending.push((ids, batch(&self.site, &now, &events)));
    }

    /// Sends the oldest pending batch; returns the status. Only 202 and 503 are acceptable.
    async fn send_oldest(&mut self) -> u16 {
        let (ids, body) = self.pending[0].clone();
        let response = self
            .client
            .post(&self.url)
            .body(body)
            .send()
            .await
            .expect("an answer, not a hang");
        let status = response.status().as_u16();
        match status {
            202 => {
                let answer: Value = response.json().await.unwrap();
                assert_eq!(answer["accepted"], 5, "{answer}");
                self.accepted.extend(ids);
                self.pending.remove(0);
            }
            503 => {
                assert!(response.headers().contains_key("retry-after"));
                let answer: Value = response.json().await.unwrap();
                let message = answer["error"].as_str().unwrap();
                assert!(message.contains("retry later"), "{message}");
                self.ever_refused.extend(ids);
                self.refusals += 1;
            }
            other => panic!("answered {other} while the broker came and went"),
        }
        status
    }
}

#[tokio::test]
async fn while_the_broker_is_away_the_answer_is_503_then_it_recovers_by_itself() {
    let stack = Stack::from_env();
    let (site, sites) = new_site(&stack, "outage", &["http://shop.test"]);
    let mut collector = Collector::start(
        &stack,
        &sites,
        &[
            ("EXATOM_DELIVERY_TIMEOUT_MS", "2000".into()),
            ("EXATOM_RETRY_AFTER_S", "1".into()),
        ],
    )
    .await;
    let mut browser = Browser::new(collector.events_url(), site.clone());
    for _ in 0..5 {
        browser.queue_new_batch();
        assert_eq!(browser.send_oldest().await, 202);
    }

    let mut outage = Outage::begin(&stack, Part::Broker);
    // New batches keep coming; every answer is 202 or 503, none hangs.
    let mut consecutive_503 = 0;
    let mut tries = 0;
    while consecutive_503 < 3 {
        tries += 1;
        assert!(tries < 100, "no 503 while the broker is down");
        browser.queue_new_batch();
        consecutive_503 = match browser.send_oldest().await {
            503 => consecutive_503 + 1,
            _ => 0,
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let readyz = reqwest::get(format!("{}/readyz", collector.base))
        .await
        .unwrap();
    assert_eq!(readyz.status(), 503, "not ready without a broker");
    let healthz = reqwest::get(format!("{}/healthz", collector.base))
        .await
        .unwrap();
    assert_eq!(healthz.status(), 200, "but alive");
    assert!(collector.service.is_running());

    outage.end();
    // The browser retries after Retry-After; the collector recovers without a restart.
    let mut recovered = false;
    for _ in 0..120 {
        if browser.send_oldest().await == 202 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(
        recovered,
        "the collector took events again after the broker came back"
    );
    while !browser.pending.is_empty() {
        assert_eq!(browser.send_oldest().await, 202, "recovered for good");
    }
    browser.queue_new_batch();
    assert_eq!(browser.send_oldest().await, 202);
    wait_until(Duration::from_secs(10), "ready again", || async {
        reqwest::get(format!("{}/readyz", collector.base))
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
    assert!(browser.refusals >= 3);
    assert_eq!(
        collector
            .metric("exatom_collector_requests_total{route=\"/v1/events\",status=\"503\"}")
            .await,
        browser.refusals as f64
    );

    // Nothing acknowledged is lost. An event answered 503 may also have reached the broker
    // before the answer (the tag resends it; the pipeline deduplicates by event id), but an
    // event only ever answered 202 is there exactly once.
    let records = raw_records(&stack, &site);
    let mut copies: HashMap<&str, usize> = HashMap::new();
    for r in &records {
        *copies.entry(r.event.event_id.as_str()).or_default() += 1;
    }
    for id in &browser.accepted {
        let n = copies.get(id.as_str()).copied().unwrap_or(0);
        if browser.ever_refused.contains(id) {
            assert!(n >= 1, "{id} was acknowledged but is not in exatom.raw");
        } else {
            assert_eq!(n, 1, "{id}: acknowledged once, stored {n} times");
        }
    }
    assert!(copies.keys().all(|id| browser.accepted.contains(*id)));
    assert!(collector.service.stop(), "drains and exits cleanly");
}
