//! Per-event cost of each service's hot path. Run: `make bench` (or
//! `cargo bench -p exatom-benches -- <filter>`). Figures are recorded in BENCHMARKS.md.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use exatom_benches::{anon_event, batch_json, raw_event, T0, USER_AGENT};
use exatom_collector::encoder::{partition_key, RawEncoder};
use exatom_core::avro::{anon_event_codec, raw_event_codec, Codec};
use exatom_edge::batch::{parse, validate, Received};
use exatom_edge::limits::Limits;
use exatom_sessionizer::rules::PartitionState;

fn collector(c: &mut Criterion) {
    let body = batch_json(20);
    let limits = Limits::default();
    let encoder = RawEncoder::default();
    let mut g = c.benchmark_group("collector");
    g.throughput(Throughput::Elements(20));
    g.bench_function("decode_validate_encode_20_event_batch", |b| {
        b.iter(|| {
            let parsed = parse(black_box(&body), &limits).unwrap();
            let received = Received {
                received_at_ms: T0,
                ip: "203.0.113.7",
                user_agent: USER_AGENT,
                conversion_tags: &[],
            };
            // As the sink does: one key per request, one buffer for every event's bytes.
            black_box(partition_key(
                &parsed.site,
                received.ip,
                received.user_agent,
            ));
            let out = validate(parsed, &received, &limits);
            let mut payload = Vec::with_capacity(512);
            for e in &out.events {
                encoder.encode_into(e, &mut payload).unwrap();
                black_box(&payload);
            }
        })
    });
    g.finish();
}

/// A record's own Avro writer beside the schema-driven encoding it is held to, in one run:
/// what the writers buy on every hop of the chain.
fn avro_encode(c: &mut Criterion) {
    fn pair<T: serde::Serialize + serde::de::DeserializeOwned>(
        c: &mut Criterion,
        name: &str,
        codec: &Codec<T>,
        record: &T,
    ) {
        let mut g = c.benchmark_group(format!("avro_encode/{name}"));
        g.throughput(Throughput::Elements(1));
        let mut out = Vec::with_capacity(1024);
        g.bench_function("own_writer", |b| {
            b.iter(|| {
                out.clear();
                codec.encode_into(black_box(record), &mut out).unwrap();
                black_box(&out);
            })
        });
        g.bench_function("by_schema", |b| {
            b.iter(|| {
                out.clear();
                codec
                    .encode_by_schema_into(black_box(record), &mut out)
                    .unwrap();
                black_box(&out);
            })
        });
        g.finish();
    }
    pair(c, "raw_event", &raw_event_codec(), &raw_event(7));
    pair(c, "anon_event", &anon_event_codec(), &anon_event(1, 7, T0));
}

fn sessionizer(c: &mut Criterion) {
    // 10 000 visitors, 10 events each, one second apart, interleaved as traffic arrives.
    let events: Vec<_> = (0..10u64)
        .flat_map(|i| (0..10_000u64).map(move |v| anon_event(v, i, T0 + i as i64 * 1000)))
        .collect();
    let mut g = c.benchmark_group("sessionizer");
    g.throughput(Throughput::Elements(events.len() as u64));
    g.sample_size(10);
    g.bench_function("place_100k_events_10k_visitors", |b| {
        b.iter_batched(
            || PartitionState::new(300_000),
            |mut state| {
                for (offset, e) in events.iter().enumerate() {
                    state.advance(e.received_at_ms);
                    state.place(e, offset as i64, T0).unwrap();
                }
                black_box(state.open_sessions())
            },
            BatchSize::LargeInput,
        )
    });
    // The ceiling: the least any sessionizer does per event, a hash-map entry per visitor
    // holding the event's id and time, with the same keys decoded from the same records.
    g.bench_function("ceiling_hashmap_100k_events_10k_visitors", |b| {
        b.iter_batched(
            HashMap::<[u8; 32], Vec<(i64, [u8; 16])>>::new,
            |mut visitors| {
                for e in &events {
                    let mut visitor = [0u8; 32];
                    hex::decode_to_slice(&e.visitor_id, &mut visitor).unwrap();
                    let id = *uuid::Uuid::try_parse(&e.event_id).unwrap().as_bytes();
                    visitors
                        .entry(visitor)
                        .or_default()
                        .push((e.event_time_ms, id));
                }
                black_box(visitors.len())
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, collector, avro_encode, sessionizer);
criterion_main!(benches);
