//! The collector's pure path (parse, validate and mask, one partition key, Avro-encode) run
//! a fixed number of times on the benchmark batch, on the collector's allocator. Under
//! callgrind its instruction count per event is a figure the machine's noise cannot move
//! (criterion's times on this shared 2-core machine swing by 2×):
//!
//!   valgrind --tool=callgrind --callgrind-out-file=/tmp/edge.cg target/release/edge-path 2000
//!
//! instructions per event = (total − total at 0 iterations) / (iterations × 20).

use exatom_benches::{batch_json, T0, USER_AGENT};
use exatom_collector::encoder::{partition_key, RawEncoder};
use exatom_edge::batch::{parse, validate, Received};
use exatom_edge::limits::Limits;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let iterations: usize = match std::env::args().nth(1).map(|n| n.parse()) {
        Some(Ok(n)) => n,
        _ => {
            eprintln!("usage: edge-path ITERATIONS");
            std::process::exit(2);
        }
    };
    let body = batch_json(20);
    let limits = Limits::default();
    let encoder = RawEncoder::default();
    let mut payload = Vec::with_capacity(512);
    let mut bytes = 0;
    for _ in 0..iterations {
        let parsed = parse(std::hint::black_box(&body), &limits).expect("the batch parses");
        let received = Received {
            received_at_ms: T0,
            ip: "203.0.113.7",
            user_agent: USER_AGENT,
            conversion_tags: &[],
        };
        std::hint::black_box(partition_key(
            &parsed.site,
            received.ip,
            received.user_agent,
        ));
        for event in &validate(parsed, &received, &limits).events {
            payload.clear();
            encoder.encode_into(event, &mut payload).expect("encodes");
            bytes += std::hint::black_box(&payload).len();
        }
    }
    println!("{iterations} batches of 20 events, {bytes} Avro bytes");
}
