//! Fixtures for the benchmarks: realistic batches and records, built once, and the visitor
//! journeys of the whole-chain load run (`journeys`), a recorded visit's replay (`replay`).

pub mod journeys;
pub mod measure;
pub mod replay;

use anyhow::{bail, Context};
use exatom_collector::encoder::{partition_key, RawEncoder};
use exatom_core::model::{
    AnonEvent, Device, EventBody, EventKind, FieldRef, Form, FormEventKind, RawEvent,
};
use exatom_edge::batch::{parse, validate, Received};
use exatom_edge::limits::Limits;

/// RFC 3339 with milliseconds, as the browser tag writes times.
pub fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Client time of the fixtures: 2026-11-18T11:06:40Z.
pub const T0: i64 = 1_795_000_000_000;

pub const USER_AGENT: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

/// A 20-event batch as the browser tag sends it: a page view, a form view and form events.
pub fn batch_json(events: usize) -> Vec<u8> {
    let ts = "2026-11-18T11:06:39.500Z";
    let mut list = Vec::with_capacity(events);
    for i in 0..events {
        let id = format!("6f1c2e3a-0000-4000-8000-{i:012}");
        list.push(match i {
            0 => format!(r#"{{"id":"{id}","type":"page_view","ts":"{ts}","page":"https://shop.example/checkout?utm_source=news&session=abc","title":"Checkout — step 2 of 3","referrer":"https://search.example/?q=shoes"}}"#),
            1 => format!(r#"{{"id":"{id}","type":"form_view","ts":"{ts}","page":"https://shop.example/checkout","form":{{"name":"checkout","id":"co","order":0,"title":"Your details","visible":true,"fields":[{{"name":"email","label":"E-mail","id":"email","tag":"input","type":"email","order":0,"visible":true,"group":""}},{{"name":"phone","label":"Phone","id":"phone","tag":"input","type":"tel","order":1,"visible":true,"group":""}}]}}}}"#),
            _ => format!(r#"{{"id":"{id}","type":"form_event","ts":"{ts}","page":"https://shop.example/checkout","form":{{"name":"checkout","id":"co","order":0}},"event":"input","seq":{i},"field":{{"name":"email","id":"email","tag":"input","type":"email","order":0,"label":"E-mail"}},"value":"*"}}"#),
        });
    }
    format!(
        r#"{{"site":"DEMO","sent_at":"2026-11-18T11:06:40.000Z","events":[{}]}}"#,
        list.join(",")
    )
    .into_bytes()
}

/// One 20-event request's records as the collector writes them to `exatom.raw`: the single
/// partition key of its visitor and each event's Avro bytes, encoded once so a load program
/// sends the broker the real sizes and key shape.
#[derive(Debug)]
pub struct Request {
    pub key: String,
    pub payloads: Vec<Vec<u8>>,
}

/// The records the collector makes of `batch_json(20)`.
pub fn collector_request() -> anyhow::Result<Request> {
    let body = batch_json(20);
    let limits = Limits::default();
    let parsed = parse(&body, &limits).context("the fixture batch parses")?;
    let received = Received {
        received_at_ms: exatom_core::time::now_ms(),
        ip: "203.0.113.7",
        user_agent: USER_AGENT,
        conversion_tags: &[],
    };
    let key = partition_key(&parsed.site, received.ip, received.user_agent);
    let validated = validate(parsed, &received, &limits);
    if validated.events.len() != 20 {
        bail!(
            "the fixture batch kept {} of 20 events",
            validated.events.len()
        );
    }
    let encoder = RawEncoder::default();
    let payloads = validated
        .events
        .iter()
        .map(|e| encoder.encode(e))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Request { key, payloads })
}

/// A raw form event as the collector produces it.
pub fn raw_event(i: u64) -> RawEvent {
    RawEvent {
        event_id: format!("6f1c2e3a-0000-4000-8000-{i:012}"),
        site: "DEMO".into(),
        kind: EventKind::FormEvent,
        ts_ms: T0,
        sent_at_ms: T0,
        received_at_ms: T0,
        event_time_ms: T0,
        body: EventBody {
            page: Some(
                "https://shop.example/checkout/4711?utm_source=news&email=jane@example.com#top"
                    .into(),
            ),
            title: Some("Order 123456 for jane@example.com".into()),
            form: Some(Form {
                name: "checkout".into(),
                id: "co".into(),
                ..Form::default()
            }),
            form_event: Some(FormEventKind::Input),
            seq: Some(7),
            field: Some(FieldRef {
                name: "address_line_1".into(),
                id: "a1".into(),
                tag: "input".into(),
                input_type: "text".into(),
                order: 3,
                label: "Address line 1".into(),
            }),
            value: Some("*".into()),
            ..EventBody::default()
        },
        ip: "203.0.113.77".into(),
        user_agent: USER_AGENT.into(),
    }
}

/// An anonymized event of visitor `visitor` at `t`.
pub fn anon_event(visitor: u64, i: u64, t: i64) -> AnonEvent {
    AnonEvent {
        event_id: format!("{visitor:08x}-0000-4000-8000-{i:012x}"),
        site: "DEMO".into(),
        visitor_id: format!("{visitor:064x}"),
        kind: EventKind::FormEvent,
        event_time_ms: t,
        received_at_ms: t,
        body: raw_event(i).body,
        device: Device::default(),
    }
}

/// A GeoIP2-City-shaped database of 4 096 IPv4 /20 networks and 1 024 IPv6 /40 networks
/// (a tree as deep as a real one's), each record with city, coordinates, postal code and
/// ASN, as a real database carries and the anonymizer skips.
pub fn geo_database() -> Vec<u8> {
    let mut writer = mmdb_writer::Writer::new("GeoIP2-City");
    let record = |i: u32| {
        serde_json::json!({
            "city": {"geoname_id": 2_759_794 + i, "names": {"en": "Amsterdam", "de": "Amsterdam"}},
            "continent": {"code": "EU", "names": {"en": "Europe"}},
            "country": {"iso_code": "NL", "names": {"en": "Netherlands", "de": "Niederlande"}},
            "location": {"latitude": 52.3759, "longitude": 4.8975, "accuracy_radius": 20,
                         "time_zone": "Europe/Amsterdam"},
            "postal": {"code": format!("{:04}", 1000 + i % 9000)},
            "subdivisions": [{"iso_code": "NH", "names": {"en": "North Holland"}}],
            "autonomous_system_number": 64_512 + i % 1000,
            "autonomous_system_organization": "Example Transit B.V.",
        })
    };
    for i in 0..4096u32 {
        let net = ipnet::Ipv4Net::new(std::net::Ipv4Addr::from(i << 20), 20).unwrap();
        writer.insert(net, &record(i)).unwrap();
    }
    for i in 0..1024u32 {
        let first = 0x2a02_0000_0000_0000_0000_0000_0000_0000u128 | (u128::from(i) << 88);
        let net = ipnet::Ipv6Net::new(std::net::Ipv6Addr::from(first), 40).unwrap();
        writer.insert(net, &record(i)).unwrap();
    }
    writer.to_bytes().unwrap()
}
