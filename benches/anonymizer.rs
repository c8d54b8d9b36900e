//! Per-event cost of the anonymizer's hot path: HMAC, geo lookup, user agent (cold and
//! cached), scrubbing, and the whole chain from an Avro `RawEvent` to an Avro `AnonEvent`
//! beside its ceiling (decode + encode alone). Run:
//! `cargo bench -p exatom-benches --bench anonymizer`. Figures are in BENCHMARKS.md.
//!
//! Its own binary because it runs with the anonymizer's allocator (see its `main.rs`):
//! per-event costs are mostly small allocations, and glibc's allocator made them depend on
//! what ran before in the same process.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use exatom_anonymizer::device::Classifier;
use exatom_anonymizer::geo::Geo;
use exatom_anonymizer::scrub::{scrub_text, scrub_url, QueryAllowList, ScrubCounts, Scrubber};
use exatom_anonymizer::transactions::TransactionKeys;
use exatom_anonymizer::transform::{anonymize, check};
use exatom_anonymizer::visitor::visitor_id;
use exatom_benches::{anon_event, geo_database, raw_event, T0, USER_AGENT};
use exatom_core::avro::{anon_event_codec, raw_event_codec};
use exatom_core::model::{AnonEvent, Device};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// User agents of the cold-parse benchmark: a desktop browser, a phone, a crawler.
const COLD_USER_AGENTS: [&str; 3] = [
    USER_AGENT,
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
];

fn anonymizer(c: &mut Criterion) {
    let mut g = c.benchmark_group("anonymizer");
    let salt = [7u8; 32];
    let keys = TransactionKeys::new([5u8; 32]);
    let day = exatom_core::time::utc_day(T0);
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
    // The chain: decode → check → geo → cached UA → HMAC + scrub → encode, on three streams.
    // Every event of a page carries the page's URL and title, which the scrubber remembers
    // (`Scrubber`, 1 024 of each here); the streams differ in how often a page repeats.
    let pages = |events_per_page: usize| -> Vec<Vec<u8>> {
        (0..4096 * events_per_page)
            .map(|i| {
                let mut raw = raw_event(i as u64);
                let page = i / events_per_page;
                raw.body.page = Some(format!(
                    "https://shop.example/checkout/4711?utm_source=news&email=jane@example.com&p={page}#top"
                ));
                raw.body.title = Some(format!("Order 123456 for jane@example.com, step {page}"));
                raw_codec.encode(&raw).unwrap()
            })
            .collect()
    };
    for (name, stream) in [
        // A page never seen before on every event: the worst case, every rule fires afresh.
        ("chain_new_page_every_event", pages(1)),
        // A page's events together, 20 of them (page view, form view, form events).
        ("chain_20_events_per_page", pages(20)),
        // One page over and over: the floor of the chain with every scrub remembered.
        ("chain_same_page", vec![input.clone()]),
    ] {
        let mut scrubber = Scrubber::new(allow.clone(), 1024);
        let mut counts = ScrubCounts::default();
        let mut next = stream.iter().cycle();
        g.bench_function(name, |b| {
            b.iter(|| {
                let raw = raw_codec.decode(black_box(next.next().unwrap())).unwrap();
                check(&raw).unwrap();
                let (country, region) = geo.locate(&raw.ip);
                let mut device = Device {
                    country,
                    region,
                    ..Device::default()
                };
                classifier.classify(&raw.user_agent).apply(&mut device);
                let anon = anonymize(raw, &salt, device, &keys, &mut scrubber, &mut counts);
                black_box(anon_codec.encode(&anon).unwrap())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, anonymizer);
criterion_main!(benches);
