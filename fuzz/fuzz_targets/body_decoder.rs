//! The collector's body decoder against arbitrary bytes: plain or gzip (the first byte
//! chooses), then the batch envelope, each event's validation and its Avro encoding.
//! Whatever comes in, nothing panics, nothing over the body limit is ever held, and no
//! value other than "" or "*" comes out.
#![no_main]

use exatom_core::avro::raw_event_codec;
use exatom_edge::batch::{self, Received};
use exatom_edge::body;
use exatom_edge::limits::Limits;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let (gzip, raw) = match data.split_first() {
        Some((first, rest)) => (first & 1 == 1, rest),
        None => (false, data),
    };
    let Ok(decoded) = body::decode(raw, gzip, &limits) else {
        return;
    };
    assert!(decoded.len() <= limits.max_body_bytes);
    let Ok(parsed) = batch::parse(&decoded, &limits) else {
        return;
    };
    let received = Received {
        received_at_ms: 1_795_000_000_000,
        ip: "203.0.113.7",
        user_agent: "fuzz",
        conversion_tags: &[],
    };
    let out = batch::validate(parsed, &received, &limits);
    assert!(out.events.len() + out.rejected.len() <= limits.max_events);
    let codec = raw_event_codec();
    for event in &out.events {
        assert!(matches!(event.body.value.as_deref(), None | Some("" | "*")));
        codec.encode(event).expect("a validated event always encodes");
    }
});
