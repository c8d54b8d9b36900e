//! The anonymizer as real processes against the real broker: replicas started together
//! agree on one salt per day; a salts topic that keeps salts over 48 hours is refused; an
//! event whose day's salt is gone, an undecodable record and an invalid one go to the DLQ
//! without stalling their partition.
//!
//! Each test gets its own salts topic (`EXATOM_SALTS_TOPIC`) and consumer group, whose
//! offsets start at the end of `exatom.raw`: salts and records of other tests on the shared
//! stack cannot change the outcome, and these tests touch nothing of theirs.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{NaiveDate, Utc};
use exatom_anonymizer::visitor::visitor_id;
use exatom_core::avro::{anon_event_codec, raw_event_codec};
use exatom_core::model::{EventBody, EventKind, RawEvent};
use exatom_e2e::{wait_until, Service, Stack};
use exatom_plumbing::kafka::{self, TopicSpec, ANON_TOPIC, DLQ_TOPIC, RAW_TOPIC};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::ClientConfig;

const DAY_MS: i64 = 86_400_000;

fn run_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..10].to_owned()
}

/// A salts topic of this test's own, with the given retention.
async fn salts_topic(stack: &Stack, run: &str, configs: &[(&'static str, &str)]) -> String {
    let name: &'static str = Box::leak(format!("exatom-test.salts-{run}").into_boxed_str());
    let spec = TopicSpec {
        name,
        partitions: 1,
        replication: 1,
        configs: configs.iter().map(|(k, v)| (*k, v.to_string())).collect(),
    };
    kafka::ensure_topics(&stack.brokers, &[spec]).await.unwrap();
    name.to_owned()
}

const SALTS_48H: &[(&str, &str)] = &[
    ("cleanup.policy", "delete"),
    ("retention.ms", "172800000"),
    ("segment.ms", "3600000"),
];

/// Commits the current end of every `exatom.raw` partition for `group`, so that replicas
/// of the group read only what this test writes.
fn start_group_at_end(stack: &Stack, group: &str) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &stack.brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(RAW_TOPIC), Duration::from_secs(10))
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in metadata.topics()[0].partitions() {
        let (_, high) = consumer
            .fetch_watermarks(RAW_TOPIC, p.id(), Duration::from_secs(10))
            .unwrap();
        tpl.add_partition_offset(RAW_TOPIC, p.id(), Offset::Offset(high))
            .unwrap();
    }
    consumer.commit(&tpl, CommitMode::Sync).unwrap();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One anonymizer replica and its admin port.
fn replica(stack: &Stack, env: &[(&str, String)]) -> (Service, u16) {
    let port = free_port();
    let mut all = env.to_vec();
    all.push(("EXATOM_ADMIN_LISTEN", format!("127.0.0.1:{port}")));
    all.push(("EXATOM_BATCH_MAX", "50".into()));
    (Service::start(stack, "anonymizer", &all), port)
}

async fn ready(port: u16) {
    let url = format!("http://127.0.0.1:{port}/readyz");
    wait_until(Duration::from_secs(30), "anonymizer ready", || async {
        reqwest::get(&url)
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
}

/// A series (summed over the labels not named) on a replica's `/metrics`.
async fn metric(port: u16, selector: &str) -> f64 {
    exatom_e2e::metric(&format!("http://127.0.0.1:{port}/metrics"), selector).await
}

fn raw(site: &str, ip: &str, user_agent: &str, received_at_ms: i64) -> RawEvent {
    RawEvent {
        event_id: uuid::Uuid::new_v4().to_string(),
        site: site.into(),
        kind: EventKind::PageView,
        ts_ms: received_at_ms,
        sent_at_ms: received_at_ms,
        received_at_ms,
        event_time_ms: received_at_ms,
        body: EventBody {
            page: Some("https://shop.test/".into()),
            ..EventBody::default()
        },
        ip: ip.into(),
        user_agent: user_agent.into(),
    }
}

/// Produces `payload` to one partition of `exatom.raw`; returns its offset.
async fn produce(producer: &FutureProducer, partition: i32, key: &str, payload: &[u8]) -> i64 {
    let record = FutureRecord::to(RAW_TOPIC)
        .partition(partition)
        .key(key)
        .payload(payload);
    let delivered = producer
        .send(record, Duration::from_secs(10))
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    delivered.offset
}

/// A record as read back, with its headers.
struct Record {
    key: String,
    payload: Vec<u8>,
    headers: BTreeMap<String, String>,
}

/// Every record of a topic, from the beginning.
fn records(stack: &Stack, topic: &str) -> Vec<Record> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &stack.brokers)
        .set("group.id", format!("exatom-test-reader-{}", run_id()))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let partitions = metadata.topics()[0].partitions().len();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions as i32 {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let mut ended = std::collections::HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while ended.len() < partitions && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => {
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| {
                                let value = h.value.map(String::from_utf8_lossy);
                                (h.key.to_owned(), value.unwrap_or_default().into_owned())
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(Record {
                    key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                    payload: m.payload().unwrap_or_default().to_vec(),
                    headers,
                });
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                ended.insert(p);
            }
            _ => {}
        }
    }
    out
}

/// The salt records of a topic, per day, in the topic's order.
fn salt_records(stack: &Stack, topic: &str) -> BTreeMap<NaiveDate, Vec<[u8; 32]>> {
    let mut days: BTreeMap<NaiveDate, Vec<[u8; 32]>> = BTreeMap::new();
    for r in records(stack, topic) {
        let day = NaiveDate::parse_from_str(&r.key, "%Y-%m-%d").unwrap();
        days.entry(day)
            .or_default()
            .push(r.payload.as_slice().try_into().unwrap());
    }
    days
}

#[tokio::test]
async fn replicas_started_together_agree_on_the_first_salt_of_the_day() {
    let stack = Stack::from_env();
    let run = run_id();
    let site = format!("RACE{run}");
    let salts = salts_topic(&stack, &run, SALTS_48H).await;
    let group = format!("exatom-test-race-{run}");
    start_group_at_end(&stack, &group);
    let env = vec![
        ("EXATOM_SALTS_TOPIC", salts.clone()),
        ("EXATOM_GROUP_ID", group.clone()),
    ];
    // Three replicas, one partition each: up to three candidates race for the day's salt.
    let mut replicas: Vec<_> = (0..3).map(|_| replica(&stack, &env)).collect();
    for (_, port) in &replicas {
        ready(*port).await;
    }
    // Both join the group before any event exists: each gets partitions of its own.
    tokio::time::sleep(Duration::from_secs(8)).await;

    let producer = kafka::producer(&stack.brokers, 10_000).unwrap();
    let codec = raw_event_codec();
    let (ip, user_agent) = ("198.51.100.23", format!("Mozilla/5.0 RaceTest/{run}"));
    // Today only: the later tests' pipelines read this `exatom.raw` too, and an event from
    // another day would move their sessionizer's stream time. Queued at once, so that the
    // broker gets them in one request on every partition.
    let now = Utc::now().timestamp_millis();
    let mut deliveries = Vec::new();
    for i in 0..30 {
        let payload = codec.encode(&raw(&site, ip, &user_agent, now + i)).unwrap();
        let record = FutureRecord::to(RAW_TOPIC)
            .partition((i % 3) as i32)
            .key(&site)
            .payload(&payload);
        deliveries.push(producer.send_result(record).map_err(|(e, _)| e).unwrap());
    }
    for delivery in deliveries {
        delivery.await.unwrap().map_err(|(e, _)| e).unwrap();
    }
    wait_until(Duration::from_secs(60), "events anonymized", || async {
        let out = records(&stack, ANON_TOPIC);
        out.iter()
            .filter(|r| r.key.starts_with(&format!("{site}:")))
            .count()
            >= 30
    })
    .await;

    let salts_by_day = salt_records(&stack, &salts);
    let anon = anon_event_codec();
    let mut ids_by_day: BTreeMap<NaiveDate, std::collections::BTreeSet<String>> = BTreeMap::new();
    for r in records(&stack, ANON_TOPIC) {
        if r.key.starts_with(&format!("{site}:")) {
            let event = anon.decode(&r.payload).unwrap();
            let day = exatom_core::time::utc_day(event.received_at_ms);
            ids_by_day.entry(day).or_default().insert(event.visitor_id);
        }
    }
    assert_eq!(ids_by_day.len(), 1, "{ids_by_day:?}");
    for (day, ids) in &ids_by_day {
        let candidates = &salts_by_day[day];
        println!("{day}: {} salt candidate(s) written", candidates.len());
        let first = visitor_id(&candidates[0], &site, &user_agent, ip, *day);
        assert_eq!(
            ids.iter().collect::<Vec<_>>(),
            vec![&first],
            "both replicas use the first salt of {day}"
        );
    }
    // Every replica took part, and each day's salt came from one of them: the candidate
    // that won, whoever wrote the others.
    let mut created = 0.0;
    for (_, port) in &replicas {
        let out = metric(*port, "exatom_anonymizer_records_out_total").await;
        assert!(out > 0.0, "a replica anonymized nothing");
        created += metric(*port, "exatom_anonymizer_salts_total{event=\"created\"}").await;
    }
    assert_eq!(created, 1.0);
    for (service, _) in &mut replicas {
        assert!(service.stop(), "replicas drain and exit cleanly");
    }
}

/// Starts the anonymizer and waits for it to exit; `None` if it is still running after
/// `wait` (it is then stopped). Returns the exit code and what it logged.
fn run_until_exit(stack: &Stack, env: &[(&str, String)], wait: Duration) -> Option<(i32, String)> {
    let log = stack
        .state
        .join(format!("logs/test-anonymizer-start-{}.log", run_id()));
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    let mut cmd = Command::new(stack.bin.join("exatom-anonymizer"));
    cmd.env("EXATOM_KAFKA_BROKERS", &stack.brokers)
        .env("EXATOM_TRANSACTION_KEY_FILE", stack.transaction_key_file())
        .env("EXATOM_ADMIN_LISTEN", format!("127.0.0.1:{}", free_port()))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            let text = std::fs::read_to_string(&log).unwrap();
            return Some((status.code().unwrap_or(-1), text));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
    None
}

/// Starts an anonymizer on `salts` and waits until it refuses to consume: it stays up to
/// say why on `/readyz` (returned) and to raise the alert's gauge; stopped, it exits with a
/// failure a supervisor sees.
async fn refuses(stack: &Stack, salts: &str) -> String {
    let (mut service, port) = replica(stack, &[("EXATOM_SALTS_TOPIC", salts.to_owned())]);
    let url = format!("http://127.0.0.1:{port}/readyz");
    let deadline = Instant::now() + Duration::from_secs(30);
    let says = loop {
        let says = match reqwest::get(&url).await {
            Ok(r) if r.status() == 503 => r.text().await.unwrap_or_default(),
            _ => String::new(),
        };
        if says.contains("privacy promise") {
            break says;
        }
        assert!(Instant::now() < deadline, "not refused within 30 s: {says}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        metric(port, "exatom_anonymizer_salts_topic_misconfigured").await,
        1.0
    );
    assert_eq!(metric(port, "exatom_consumer_stopped").await, 1.0);
    assert!(!service.stop(), "a refused start exits with a failure");
    says
}

#[tokio::test]
async fn a_salts_topic_that_keeps_salts_over_48_hours_is_refused() {
    let stack = Stack::from_env();
    let run = run_id();
    let week = salts_topic(
        &stack,
        &format!("{run}-week"),
        &[("cleanup.policy", "delete"), ("retention.ms", "604800000")],
    )
    .await;
    let says = refuses(&stack, &week).await;
    assert!(says.contains("604800000 ms, longer than 48 h"), "{says}");
    assert!(says.contains("EXATOM_ALLOW_LONG_SALT_RETENTION"), "{says}");

    let compacted = salts_topic(
        &stack,
        &format!("{run}-compact"),
        &[("cleanup.policy", "compact"), ("retention.ms", "3600000")],
    )
    .await;
    let says = refuses(&stack, &compacted).await;
    assert!(says.contains("cleanup.policy=compact"), "{says}");

    // Overridden explicitly, it starts (and warns).
    let (mut service, port) = replica(
        &stack,
        &[
            ("EXATOM_SALTS_TOPIC", week),
            ("EXATOM_ALLOW_LONG_SALT_RETENTION", "true".into()),
            ("EXATOM_GROUP_ID", format!("exatom-test-override-{run}")),
        ],
    );
    ready(port).await;
    assert!(service.stop());
}

#[tokio::test]
async fn without_a_transaction_key_the_anonymizer_does_not_start() {
    let stack = Stack::from_env();
    let (code, log) = run_until_exit(
        &stack,
        &[("EXATOM_TRANSACTION_KEY_FILE", String::new())],
        Duration::from_secs(30),
    )
    .expect("the anonymizer refuses to start");
    assert_ne!(code, 0);
    assert!(
        log.contains("EXATOM_TRANSACTION_KEY_FILE is not set"),
        "{log}"
    );

    let short = stack.state.join(format!("short-{}.key", run_id()));
    std::fs::write(&short, "abcd").unwrap();
    let (code, log) = run_until_exit(
        &stack,
        &[("EXATOM_TRANSACTION_KEY_FILE", short.display().to_string())],
        Duration::from_secs(30),
    )
    .expect("the anonymizer refuses to start");
    assert_ne!(code, 0);
    assert!(log.contains("must hold 64 hex digits"), "{log}");
}

#[tokio::test]
async fn the_default_geo_database_gives_public_addresses_their_country() {
    let stack = Stack::from_env();
    let database = std::env::var("STACK_GEO_DATABASE")
        .expect("STACK_GEO_DATABASE is not set: run the integration tests with `make integration`");
    let run = run_id();
    let site = format!("GEO{run}");
    let salts = salts_topic(&stack, &run, SALTS_48H).await;
    let group = format!("exatom-test-geo-{run}");
    start_group_at_end(&stack, &group);
    let (mut service, port) = replica(
        &stack,
        &[
            ("EXATOM_SALTS_TOPIC", salts),
            ("EXATOM_GROUP_ID", group),
            ("EXATOM_GEO_DATABASE", database),
        ],
    );
    ready(port).await;
    let producer = kafka::producer(&stack.brokers, 1_000).unwrap();
    let codec = raw_event_codec();
    let now = Utc::now().timestamp_millis();
    // Google's resolver (registered in the US), RIPE NCC's own web server (NL), an IPv6
    // address of Google's European network (IE), loopback (not in the database), and a
    // private address the database reads as AU (no place: not looked up).
    let mut expected = BTreeMap::new();
    for (ip, country) in [
        ("8.8.8.8", "US"),
        ("193.0.6.139", "NL"),
        ("2a00:1450:4001::1", "IE"),
        ("127.0.0.1", ""),
        ("192.168.1.1", ""),
    ] {
        let event = raw(&site, ip, "UA", now);
        expected.insert(event.event_id.clone(), country.to_owned());
        produce(&producer, 0, &site, &codec.encode(&event).unwrap()).await;
    }
    let anon = anon_event_codec();
    let mut countries = BTreeMap::new();
    for _ in 0..120 {
        countries = records(&stack, ANON_TOPIC)
            .iter()
            .filter(|r| r.key.starts_with(&format!("{site}:")))
            .filter_map(|r| anon.decode(&r.payload).ok())
            .map(|e| (e.event_id, e.device.country))
            .collect();
        if countries.len() == expected.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(countries, expected);
    assert!(service.stop());
}

#[tokio::test]
async fn records_that_cannot_be_anonymized_go_to_the_dlq_without_stalling() {
    let stack = Stack::from_env();
    let run = run_id();
    let site = format!("DLQ{run}");
    let salts = salts_topic(&stack, &run, SALTS_48H).await;
    let group = format!("exatom-test-dlq-{run}");
    start_group_at_end(&stack, &group);
    let (mut service, port) = replica(
        &stack,
        &[
            ("EXATOM_SALTS_TOPIC", salts.clone()),
            ("EXATOM_GROUP_ID", group),
        ],
    );
    ready(port).await;

    let producer = kafka::producer(&stack.brokers, 1_000).unwrap();
    let codec = raw_event_codec();
    let now = Utc::now().timestamp_millis();
    let three_days_ago = now - 3 * DAY_MS;
    let old = codec
        .encode(&raw(&site, "198.51.100.7", "UA", three_days_ago))
        .unwrap();
    let mut invalid = raw(&site, "198.51.100.7", "UA", now);
    invalid.event_id = "4111 1111 1111 1111".into();
    let invalid = codec.encode(&invalid).unwrap();
    let fresh = raw(&site, "198.51.100.7", "UA", now);
    let fresh_id = fresh.event_id.clone();
    let fresh = codec.encode(&fresh).unwrap();
    // All on one partition, the good event last: the bad ones must not hold it back.
    let expired_at = produce(&producer, 0, &site, &old).await;
    let garbage_at = produce(&producer, 0, &site, b"not avro at all").await;
    let invalid_at = produce(&producer, 0, &site, &invalid).await;
    produce(&producer, 0, &site, &fresh).await;

    let anon = anon_event_codec();
    wait_until(
        Duration::from_secs(60),
        "the good event anonymized",
        || async {
            records(&stack, ANON_TOPIC)
                .iter()
                .filter(|r| r.key.starts_with(&format!("{site}:")))
                .any(|r| {
                    anon.decode(&r.payload)
                        .is_ok_and(|e| e.event_id == fresh_id)
                })
        },
    )
    .await;
    let dead: BTreeMap<String, Record> = records(&stack, DLQ_TOPIC)
        .into_iter()
        .map(|r| (r.key.clone(), r))
        .collect();
    let reason = |offset: i64| -> String {
        let key = format!("{RAW_TOPIC}/0/{offset}");
        let record = dead
            .get(&key)
            .unwrap_or_else(|| panic!("{key} is in the DLQ"));
        assert_eq!(record.headers["exatom.source"], key);
        record.headers["exatom.reason"].clone()
    };
    let expired = reason(expired_at);
    let day = exatom_core::time::utc_day(three_days_ago);
    assert!(expired.starts_with("salt_expired:"), "{expired}");
    assert!(expired.contains(&day.to_string()), "{expired}");
    assert!(reason(garbage_at).starts_with("undecodable:"));
    assert_eq!(reason(invalid_at), "invalid: event_id is not a UUID");
    assert_eq!(dead[&format!("{RAW_TOPIC}/0/{expired_at}")].payload, old);

    // Never hashed with another day's salt, and no salt made for a day that is gone.
    let salts_by_day = salt_records(&stack, &salts);
    assert!(!salts_by_day.contains_key(&day), "{salts_by_day:?}");
    assert_eq!(
        metric(port, "exatom_dlq_records_total{reason=\"salt_expired\"}").await,
        1.0
    );
    assert_eq!(
        metric(port, "exatom_dlq_records_total{reason=\"undecodable\"}").await,
        1.0
    );
    assert_eq!(
        metric(port, "exatom_dlq_records_total{reason=\"invalid\"}").await,
        1.0
    );
    assert!(service.stop());
}
