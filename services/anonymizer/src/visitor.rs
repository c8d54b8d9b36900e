//! The visitor id: who someone is for one site, for one UTC day, and never again.
//!
//! `visitor_id = hex(HMAC-SHA256(salt_of_day, message))` where `message` is the ASCII tag
//! `exatom-visitor-v1` followed by four fields, each as a 4-byte big-endian length and its
//! UTF-8 bytes: site, user agent, IP address (as written by the collector), and the date
//! `YYYY-MM-DD`. Length prefixes make the encoding unambiguous: no two different field
//! tuples produce the same message.

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
    let date = day.format("%Y-%m-%d").to_string();
    for field in [site, user_agent, ip, date.as_str()] {
        mac.update(&(field.len() as u32).to_be_bytes());
        mac.update(field.as_bytes());
    }
    hex::encode(mac.finalize().into_bytes())
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
