use super::*;
use crate::scrub::{QueryAllowList, ScrubCounts, Scrubber};
use crate::transform::anonymize;
use exatom_core::avro::anon_event_codec;
use exatom_core::model::{Device, EventBody, EventKind, RawEvent};
use ipnet::IpNet;
use serde_json::json;

/// Everything a GeoIP2 City + ASN record holds that must never reach an event.
const NEVER_COPIED: &[&str] = &[
    "Amsterdam",
    "2759794",
    "1012 AB",
    "Europe/Amsterdam",
    "52.3759",
    "4.8975",
    "Example Transit",
    "64512",
    "Netherlands",
    "North Holland",
];

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// A small database in the GeoIP2 City layout (plus ASN fields, as merged databases have),
/// an IPv6 network, and a flat country-only record.
fn database() -> Geo {
    let mut w = mmdb_writer::Writer::new("GeoIP2-City");
    let amsterdam = json!({
        "city": {"geoname_id": 2_759_794, "names": {"en": "Amsterdam", "nl": "Amsterdam"}},
        "continent": {"code": "EU", "geoname_id": 6_255_148, "names": {"en": "Europe"}},
        "country": {"iso_code": "NL", "geoname_id": 2_750_405, "names": {"en": "Netherlands"}},
        "location": {"latitude": 52.3759, "longitude": 4.8975, "accuracy_radius": 5,
                     "time_zone": "Europe/Amsterdam"},
        "postal": {"code": "1012 AB"},
        "subdivisions": [{"iso_code": "NH", "names": {"en": "North Holland"}}],
        "autonomous_system_number": 64_512,
        "autonomous_system_organization": "Example Transit B.V.",
    });
    w.insert(net("81.2.69.0/24"), &amsterdam).unwrap();
    let berlin = json!({
        "country": {"iso_code": "DE", "names": {"en": "Germany"}},
        "subdivisions": [{"iso_code": "BE"}, {"iso_code": "XX"}],
        "location": {"latitude": 52.52, "longitude": 13.405},
    });
    w.insert(net("2a02:8100::/32"), &berlin).unwrap();
    w.insert(net("91.198.174.0/24"), &json!({"country_code": "BE"}))
        .unwrap();
    // A damaged record: whatever is in the code fields is not a code, so nothing is copied.
    w.insert(
        net("185.15.56.0/25"),
        &json!({"country": {"iso_code": "Amsterdam 1012 AB"}, "subdivisions": [{"iso_code": "NH"}]}),
    )
    .unwrap();
    Geo::from_bytes(w.to_bytes().unwrap()).unwrap()
}

fn located(geo: &Geo, ip: &str) -> (String, String) {
    geo.locate(ip)
}

#[test]
fn only_country_and_region_codes_are_read() {
    let geo = database();
    assert!(geo.is_configured());
    assert_eq!(located(&geo, "81.2.69.77"), ("NL".into(), "NL-NH".into()));
    // The first subdivision is the region; IPv6 works the same.
    assert_eq!(located(&geo, "2a02:8100::7"), ("DE".into(), "DE-BE".into()));
    assert_eq!(located(&geo, "91.198.174.9"), ("BE".into(), String::new()));
    assert_eq!(located(&geo, "185.15.56.9"), (String::new(), String::new()));
    // Not in the database, or not an address.
    assert_eq!(
        located(&geo, "185.15.56.200"),
        (String::new(), String::new())
    );
    assert_eq!(located(&geo, "unknown"), (String::new(), String::new()));
}

#[test]
fn addresses_that_belong_to_no_place_are_not_located_whatever_the_database_says() {
    let mut w = mmdb_writer::Writer::new("geo-whois-asn-country");
    for network in ["0.0.0.0/1", "128.0.0.0/1", "2000::/3", "fc00::/6"] {
        w.insert(net(network), &json!({"country_code": "AU"}))
            .unwrap();
    }
    let geo = Geo::from_bytes(w.to_bytes().unwrap()).unwrap();
    for nowhere in [
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "127.0.0.1",
        "169.254.1.1",
        "100.64.0.1",
        "198.18.0.1",
        "192.0.2.1",
        "198.51.100.7",
        "203.0.113.9",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "0.0.0.0",
        "::1",
        "::",
        "fd00::1",
        "fe80::1",
        "ff02::1",
        "2001:db8::1",
        "::ffff:192.168.1.1",
    ] {
        assert_eq!(
            located(&geo, nowhere),
            (String::new(), String::new()),
            "{nowhere}"
        );
    }
    for somewhere in [
        "8.8.8.8",
        "100.128.0.1",
        "172.32.0.1",
        "2a00:1450::1",
        "::ffff:8.8.8.8",
    ] {
        assert_eq!(located(&geo, somewhere).0, "AU", "{somewhere}");
    }
}

#[test]
fn without_a_database_geo_fields_are_empty() {
    let geo = Geo::none();
    assert!(!geo.is_configured());
    assert_eq!(located(&geo, "81.2.69.77"), (String::new(), String::new()));
}

#[test]
fn city_coordinates_postal_code_and_asn_never_reach_the_record() {
    let geo = database();
    let (country, region) = geo.locate("81.2.69.77");
    let device = Device {
        country,
        region,
        ..Device::default()
    };
    assert_eq!(
        device,
        Device {
            country: "NL".into(),
            region: "NL-NH".into(),
            ..Device::default()
        }
    );
    let raw = RawEvent {
        event_id: "00000000-0000-4000-8000-000000000001".into(),
        site: "DEMO".into(),
        kind: EventKind::PageView,
        ts_ms: 1_795_000_000_000,
        sent_at_ms: 1_795_000_000_000,
        received_at_ms: 1_795_000_000_000,
        event_time_ms: 1_795_000_000_000,
        body: EventBody {
            page: Some("https://shop.example/".into()),
            ..EventBody::default()
        },
        ip: "81.2.69.77".into(),
        user_agent: "UA".into(),
    };
    let anon = anonymize(
        raw,
        &[1; 32],
        device,
        &crate::transactions::TransactionKeys::new([2; 32]),
        &mut Scrubber::new(QueryAllowList::default(), 16),
        &mut ScrubCounts::default(),
    );
    let bytes = anon_event_codec().encode(&anon).unwrap();
    for never in NEVER_COPIED {
        assert!(
            !bytes.windows(never.len()).any(|w| w == never.as_bytes()),
            "{never} reached the record"
        );
    }
    for coordinate in [52.3759f64, 4.8975] {
        let le = coordinate.to_le_bytes();
        assert!(!bytes.windows(8).any(|w| w == le), "{coordinate} copied");
    }
}
