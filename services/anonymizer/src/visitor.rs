//! The visitor id: who someone is for one site, for one UTC day, and never again.
//!
//! `visitor_id = hex(HMAC-SHA256(salt_of_day, message))` where `message` is the ASCII tag
//! `exatom-visitor-v1` followed by four fields, each as a 4-byte big-endian length and its
//! UTF-8 bytes: site, user agent, IP address (as written by the collector), and the date
//! `YYYY-MM-DD`. Length prefixes make the encoding unambiguous: no two different field
//! tuples produce the same message.

use std::borrow::Cow;

use chrono::NaiveDate;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The random key of one UTC day. Held in memory only.
pub type Salt = [u8; 32];

const DOMAIN: &[u8] = b"exatom-visitor-v1";

/// Derives the visitor id (64 lowercase hex characters).
pub fn visitor_id(salt: &Salt, site: &str, user_agent: &str, ip: &str, day: NaiveDate) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(salt).expect("HMAC takes any key length");
    mac.update(DOMAIN);
    let mut date = [0u8; 10];
    let date = iso_date(day, &mut date);
    for field in [site.as_bytes(), user_agent.as_bytes(), ip.as_bytes(), &date] {
        mac.update(&(field.len() as u32).to_be_bytes());
        mac.update(field);
    }
    let mut id = [0u8; 64];
    hex::encode_to_slice(mac.finalize().into_bytes(), &mut id).expect("64 hex digits");
    String::from_utf8(id.to_vec()).expect("hex is ASCII")
}

/// `YYYY-MM-DD` without a formatter (this is on every event's path); a year outside
/// 0–9999 is written as chrono writes it.
fn iso_date(day: NaiveDate, buf: &mut [u8; 10]) -> Cow<'_, [u8]> {
    use chrono::Datelike;
    let (year, month, date) = (day.year(), day.month(), day.day());
    if !(0..=9999).contains(&year) {
        return Cow::Owned(day.format("%Y-%m-%d").to_string().into_bytes());
    }
    let digit = |n: u32| b'0' + (n % 10) as u8;
    let year = year as u32;
    *buf = [
        digit(year / 1000),
        digit(year / 100),
        digit(year / 10),
        digit(year),
        b'-',
        digit(month / 10),
        digit(month),
        b'-',
        digit(date / 10),
        digit(date),
    ];
    Cow::Borrowed(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
    }

    const SALT: Salt = [7; 32];
    const UA: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0";

    #[test]
    fn same_inputs_same_id() {
        let a = visitor_id(&SALT, "DEMO", UA, "203.0.113.9", day(23));
        assert_eq!(a, visitor_id(&SALT, "DEMO", UA, "203.0.113.9", day(23)));
        assert_eq!(a.len(), 64);
        assert!(a
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }

    #[test]
    fn any_change_gives_another_id() {
        let base = visitor_id(&SALT, "DEMO", UA, "203.0.113.9", day(23));
        let others = [
            visitor_id(&SALT, "SHOP", UA, "203.0.113.9", day(23)),
            visitor_id(&SALT, "DEMO", "curl/8", "203.0.113.9", day(23)),
            visitor_id(&SALT, "DEMO", UA, "203.0.113.10", day(23)),
            visitor_id(&SALT, "DEMO", UA, "203.0.113.9", day(24)),
            visitor_id(&[8; 32], "DEMO", UA, "203.0.113.9", day(23)),
        ];
        for other in others {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn fields_cannot_bleed_into_each_other() {
        assert_ne!(
            visitor_id(&SALT, "DEMO", "ab", "c", day(23)),
            visitor_id(&SALT, "DEMO", "a", "bc", day(23))
        );
        assert_ne!(
            visitor_id(&SALT, "DEMOa", "b", "c", day(23)),
            visitor_id(&SALT, "DEMO", "ab", "c", day(23))
        );
    }

    #[test]
    fn dates_are_written_as_chrono_writes_them() {
        for (y, m, d) in [
            (2026, 11, 23),
            (1970, 1, 1),
            (999, 12, 31),
            (9999, 1, 9),
            (10_000, 2, 3),
            (-5, 6, 7),
        ] {
            let day = NaiveDate::from_ymd_opt(y, m, d).unwrap();
            let mut buf = [0; 10];
            assert_eq!(
                iso_date(day, &mut buf).as_ref(),
                day.format("%Y-%m-%d").to_string().as_bytes()
            );
        }
    }

    /// A published vector: anyone re-implementing the encoding can check theirs against it.
    #[test]
    fn known_answer() {
        let id = visitor_id(&[0; 32], "DEMO", "UA", "192.0.2.1", day(23));
        let mut mac = Hmac::<Sha256>::new_from_slice(&[0; 32]).unwrap();
        mac.update(
            b"exatom-visitor-v1\0\0\0\x04DEMO\0\0\0\x02UA\0\0\0\x09192.0.2.1\0\0\0\x0a2026-11-23",
        );
        assert_eq!(id, hex::encode(mac.finalize().into_bytes()));
    }
}
