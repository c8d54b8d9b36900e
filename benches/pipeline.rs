//! Per-event cost of each service's hot path. Run: `make bench` (or
//! `cargo bench -p exatom-benches -- <filter>`). Figures are recorded in BENCHMARKS.md.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use exatom_anonymizer::device::Classifier;
use exatom_anonymizer::geo::Geo;
use exatom_anonymizer::scrub::{scrub_text, scrub_url, QueryAllowList, ScrubCounts};
use exatom_anonymizer::transform::{anonymize, check};
use exatom_anonymizer::visitor::visitor_id;
use exatom_benches::{anon_event, batch_json, geo_database, raw_event, T0, USER_AGENT};
use exatom_collector::batch::{parse, validate, Received};
use exatom_collector::encoder::{partition_key, RawEncoder};
use exatom_collector::limits::Limits;
use exatom_sessionizer::rules::PartitionState;
use exatom_shared::avro::{anon_event_codec, raw_event_codec};
use exatom_shared::model::{AnonEvent, Device};

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
            let out = validate(&parsed, &received, &limits);
            // As the sink does: one key per request, one buffer for every event's bytes.
            black_box(partition_key(
                &parsed.site,
                received.ip,
                received.user_agent,
            ));
            let mut payload = Vec::with_capacity(512);
            for e in &out.events {
                encoder.encode_into(e, &mut payload).unwrap();
                black_box(&payload);
            }
        })
    });
    g.finish();
}

/// User agents of the cold-parse benchmark: a desktop browser, a phone, a crawler.
const COLD_USER_AGENTS: [&str; 3] = [
    USER_AGENT,
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
];

fn anonymizer(c: &mut Criterion) {
    let mut g = c.benchmark_group("anonymizer");
    let salt = [7u8; 32];
    let day = exatom_shared::time::utc_day(T0);
    g.throughput(Throughput::Elements(1));
    g.bench_function("hmac_visitor_id", |b| {
        b.iter(|| visitor_id(&salt, "DEMO", black_box(USER_AGENT), "203.0.113.77", day))
    });
    let geo = Geo::from_bytes(geo_database()).unwrap();
    let mut ip = 0u32;
    g.bench_function("geo_lookup", |b| {
        b.iter(|| {
            // A different /20 network each time: no lookup is served by a warm path alone.
            ip = ip.wrapping_add(0x0010_0101);
            geo.locate(black_box(&std::net::Ipv4Addr::from(ip).to_string()))
        })
    });
    let mut classifier = Classifier::new(10_000);
    for (i, ua) in COLD_USER_AGENTS.iter().enumerate() {
        g.bench_function(format!("ua_parse_cold_{i}"), |b| {
            b.iter(|| classifier.parse(black_box(ua)))
        });
    }
    classifier.classify(USER_AGENT);
    g.bench_function("ua_cached", |b| {
        b.iter(|| classifier.classify(black_box(USER_AGENT)).device_class)
    });
    let allow = QueryAllowList::default();
    g.bench_function("scrub_url_and_title", |b| {
        let mut counts = ScrubCounts::default();
        b.iter(|| {
            black_box(scrub_url(
                black_box(
                    "https://shop.example/checkout/4711?utm_source=news&email=jane@example.com#top",
                ),
                &allow,
                &mut counts,
            ));
            black_box(scrub_text(
                black_box("Order 123456 for jane@example.com"),
                &mut counts,
            ));
        })
    });
    let raw_codec = raw_event_codec();
    let anon_codec = anon_event_codec();
    let input = raw_codec.encode(&raw_event(1)).unwrap();
    // The ceiling: the chain's two unavoidable steps, Avro in and Avro out, and nothing else
    // (the record moves across as the chain moves it; only the visitor id is made up).
    g.bench_function("ceiling_decode_encode", |b| {
        let template = anon_event(1, 1, T0);
        b.iter(|| {
            let raw = raw_codec.decode(black_box(&input)).unwrap();
            let anon = AnonEvent {
                event_id: raw.event_id,
                site: raw.site,
                visitor_id: template.visitor_id.clone(),
                kind: raw.kind,
                event_time_ms: raw.event_time_ms,
                received_at_ms: raw.received_at_ms,
                body: raw.body,
                device: Device::default(),
            };
            black_box(anon_codec.encode(&anon).unwrap())
        })
    });
    g.bench_function("decode_hash_geo_cached_ua_scrub_encode", |b| {
        let mut counts = ScrubCounts::default();
        b.iter(|| {
            let raw = raw_codec.decode(black_box(&input)).unwrap();
            check(&raw).unwrap();
            let (country, region) = geo.locate(&raw.ip);
            let mut device = Device {
                country,
                region,
                ..Device::default()
            };
            classifier.classify(&raw.user_agent).apply(&mut device);
            let anon = anonymize(raw, &salt, device, &allow, &mut counts);
            black_box(anon_codec.encode(&anon).unwrap())
        })
    });
    g.finish();
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

criterion_group!(benches, collector, anonymizer, sessionizer);
criterion_main!(benches);
