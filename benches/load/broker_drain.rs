//! What a broker does with a backlog: how fast it takes the collector's records, how fast a
//! service's consumer drains them, whether a fetch costs more when more is waiting, and how
//! long a consumer restarted in the middle waits for its first record.
//!
//!   broker-drain BROKERS RECORDS [PARTITIONS [KIND]]
//!
//! 1. Creates a topic of its own (`exatom.bench-drain-<random>`, PARTITIONS, default 3) and
//!    produces RECORDS of the collector's records with the services' producer settings, as
//!    fast as the broker acknowledges: KIND `raw` (the default), `exatom.raw`'s (real sizes,
//!    keys of 10 000 visitors); `replay`, `exatom.replay`'s (the recorded visit of
//!    `exatom_benches::replay`, keyed by page view, 1 000 visits).
//! 2. Drains it with the services' consumer settings and batches (`consume::Source`, 2 000
//!    records), from the beginning, in a consumer group; at half it commits, closes, and a
//!    new consumer of the same group takes over, as a restarted service does.
//! 3. Prints the produce rate, the drain rate of each tenth of the backlog (a fetch whose
//!    cost grows with the backlog shows as a first tenth slower than the last), and the wait
//!    for the first record at the start and after the restart.
//!
//! The topic is left behind with `retention.ms` of an hour: tansu cannot delete topics.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use exatom_benches::{collector_request, replay};
use exatom_plumbing::consume::{KafkaSource, Source};
use exatom_plumbing::kafka::{self, TopicSpec};
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;

/// Records in flight at once while producing: the collector's queue bound.
const IN_FLIGHT: usize = 50_000;
const VISITORS: usize = 10_000;

/// The records to produce, in turn: the collector's, with their keys.
fn kind_records(kind: &str) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    match kind {
        "raw" => {
            let request = collector_request()?;
            Ok((0..VISITORS)
                .map(|v| {
                    let payload = &request.payloads[v % request.payloads.len()];
                    (format!("DEMO:{v:016x}"), payload.clone())
                })
                .collect())
        }
        "replay" => {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(replay::VISIT);
            let visit = replay::Visit::load(&path)?;
            let mut records = Vec::new();
            for _ in 0..1_000 {
                records.extend(visit.records("DEMO")?);
            }
            Ok(records)
        }
        other => bail!("KIND is raw or replay, not {other}"),
    }
}

async fn produce(
    brokers: &str,
    topic: &'static str,
    records: usize,
    kind: &str,
) -> anyhow::Result<(f64, f64)> {
    let cycle = kind_records(kind)?;
    let producer = kafka::producer(brokers, 2 * IN_FLIGHT as u32)?;
    let mut bytes = 0;
    let started = Instant::now();
    let mut pending = std::collections::VecDeque::with_capacity(IN_FLIGHT);
    for i in 0..records {
        if pending.len() == IN_FLIGHT {
            let delivery: rdkafka::producer::DeliveryFuture = pending.pop_front().expect("full");
            delivery.await?.map_err(|(e, _)| e)?;
        }
        let (key, payload) = &cycle[i % cycle.len()];
        bytes += payload.len();
        let record = FutureRecord::to(topic).key(key).payload(payload);
        match producer.send_result(record) {
            Ok(delivery) => pending.push_back(delivery),
            Err((e, _)) => bail!("enqueueing a record: {e}"),
        }
    }
    for delivery in pending {
        delivery.await?.map_err(|(e, _)| e)?;
    }
    let took = started.elapsed().as_secs_f64();
    Ok((records as f64 / took, bytes as f64 / took))
}

/// Reads until `until` records were read in all (counting from `read`), committing what it
/// read when it stops. Returns the wait for the first record and, per tenth of `total`
/// completed, the seconds it took.
async fn drain(
    brokers: &str,
    topic: &str,
    group: &str,
    read: &mut usize,
    until: usize,
    total: usize,
    tenths: &mut Vec<f64>,
) -> anyhow::Result<Duration> {
    let consumer = KafkaSource(kafka::consumer(brokers, group)?);
    consumer.subscribe(&[topic])?;
    let started = Instant::now();
    let mut first = None;
    let mut tenth_started = Instant::now();
    let mut next_offsets: HashMap<(String, i32), i64> = HashMap::new();
    while *read < until {
        if started.elapsed() > Duration::from_secs(600) {
            bail!("{} of {until} records read after 10 minutes", *read);
        }
        let batch = consumer
            .next_batch(2_000, Duration::from_millis(500), Duration::from_millis(20))
            .await?;
        if batch.messages.is_empty() {
            continue;
        }
        first.get_or_insert_with(|| started.elapsed());
        for m in &batch.messages {
            next_offsets.insert((m.topic().to_owned(), m.partition()), m.offset() + 1);
        }
        let before = *read;
        *read += batch.messages.len();
        if *read * 10 / total > before * 10 / total {
            tenths.push(tenth_started.elapsed().as_secs_f64());
            tenth_started = Instant::now();
        }
    }
    consumer.commit(&next_offsets)?;
    first.context("no record read")
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (brokers, records, partitions, kind) = match args.as_slice() {
        [b, r] => (b.clone(), r.parse()?, 3, "raw"),
        [b, r, p] => (b.clone(), r.parse()?, p.parse()?, "raw"),
        [b, r, p, k] => (b.clone(), r.parse()?, p.parse()?, k.as_str()),
        _ => bail!("usage: broker-drain BROKERS RECORDS [PARTITIONS [raw|replay]]"),
    };
    let records: usize = records;
    let run = format!("{:08x}", rand_suffix());
    let topic: &'static str = Box::leak(format!("exatom.bench-drain-{run}").into_boxed_str());
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        kafka::ensure_topics(
            &brokers,
            &[TopicSpec {
                name: topic,
                partitions,
                replication: 1,
                configs: vec![
                    ("cleanup.policy", "delete".to_owned()),
                    ("retention.ms", "3600000".to_owned()),
                ],
            }],
        )
        .await?;
        let (produced, bytes) = produce(&brokers, topic, records, kind).await?;
        println!(
            "broker drain {records} {kind} records, {partitions} partitions: produced {produced:.0} records/s ({:.1} MB/s)",
            bytes / 1e6
        );
        let group = format!("exatom-bench-drain-{run}");
        let mut read = 0;
        let mut tenths = Vec::new();
        let started = Instant::now();
        let first = drain(&brokers, topic, &group, &mut read, records / 2, records, &mut tenths).await?;
        let resumed = drain(&brokers, topic, &group, &mut read, records, records, &mut tenths).await?;
        let elapsed = started.elapsed().as_secs_f64();
        let per_tenth: Vec<String> = tenths
            .iter()
            .map(|s| format!("{:.0}", records as f64 / 10.0 / s))
            .collect();
        println!(
            "  drained at {:.0} records/s overall; per tenth of the backlog: {} records/s",
            read as f64 / elapsed,
            per_tenth.join(" ")
        );
        println!(
            "  first record {:.2} s after subscribing; after the restart at half the backlog, {:.2} s",
            first.as_secs_f64(),
            resumed.as_secs_f64(),
        );
        anyhow::Ok(())
    })
}

fn rand_suffix() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    t.subsec_nanos() ^ std::process::id()
}
