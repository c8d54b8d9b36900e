//! IP address → country and region, from a MaxMind-format database.
//!
//! Only the ISO country code and the first subdivision's code are read from a record: the
//! type below names nothing else, so city, coordinates, postal code, time zone and network
//! owner (ASN) are skipped by the decoder and can never reach an event.

use std::net::IpAddr;
use std::path::Path;

use maxminddb::Reader;
use serde::Deserialize;

/// A geo database, or none (every lookup then answers empty fields).
pub struct Geo {
    reader: Option<Reader<Vec<u8>>>,
}

impl std::fmt::Debug for Geo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Geo").finish_non_exhaustive()
    }
}

/// What a record may tell: GeoIP2/GeoLite2 City and Country databases nest
/// `country.iso_code` and `subdivisions[].iso_code`; country-only databases (for example the
/// public-domain `geo-whois-asn-country`) hold a flat `country_code`.
#[derive(Deserialize)]
struct Place<'a> {
    #[serde(borrow)]
    country: Option<IsoCode<'a>>,
    #[serde(borrow)]
    subdivisions: Option<Vec<IsoCode<'a>>>,
    country_code: Option<&'a str>,
}

#[derive(Deserialize)]
struct IsoCode<'a> {
    iso_code: Option<&'a str>,
}

impl Geo {
    /// No database: country and region stay empty.
    pub fn none() -> Self {
        Geo { reader: None }
    }

    /// Loads a `.mmdb` file into memory (GeoIP2/GeoLite2 City or Country, or country-only).
    pub fn open(path: &Path) -> Result<Self, maxminddb::MaxMindDbError> {
        Ok(Geo {
            reader: Some(Reader::open_readfile(path)?),
        })
    }

    /// Reads a database already in memory (tests and benchmarks build their own).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, maxminddb::MaxMindDbError> {
        Ok(Geo {
            reader: Some(Reader::from_source(bytes)?),
        })
    }

    pub fn is_configured(&self) -> bool {
        self.reader.is_some()
    }

    /// `(country, region)`: ISO 3166-1 alpha-2 and ISO 3166-2 (`NL-NH`), empty when unknown
    /// or when the address belongs to no place ([`has_place`]).
    pub fn locate(&self, ip: &str) -> (String, String) {
        let (Some(reader), Ok(ip)) = (&self.reader, ip.parse::<IpAddr>()) else {
            return (String::new(), String::new());
        };
        // A dual-stack socket writes an IPv4 peer as `::ffff:a.b.c.d`; databases hold it as
        // IPv4.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        if !has_place(ip) {
            return (String::new(), String::new());
        }
        let Ok(Some(place)) = reader.lookup::<Place<'_>>(ip) else {
            return (String::new(), String::new());
        };
        let country = place
            .country
            .and_then(|c| c.iso_code)
            .or(place.country_code)
            .filter(|code| is_code(code))
            .unwrap_or_default();
        let region = place
            .subdivisions
            .and_then(|s| s.into_iter().next())
            .and_then(|s| s.iso_code)
            .filter(|code| !country.is_empty() && is_code(code))
            .map(|code| format!("{country}-{code}"))
            .unwrap_or_default();
        (country.to_owned(), region)
    }
}

/// Whether an address can be on a map: not private, loopback, link-local, shared (carrier
/// NAT), benchmarking, documentation, multicast, reserved or unspecified. Databases built
/// from registry data give some of those a country anyway (`geo-whois-asn-country` reads
/// 192.168.0.0/16 and 198.51.100.0/24 as AU): a visitor behind a proxy that is not in
/// `EXATOM_TRUSTED_PROXIES` would be counted in the wrong country.
pub fn has_place(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_documentation()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_unspecified()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19)))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return has_place(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || first & 0xfe00 == 0xfc00
                || first & 0xffc0 == 0xfe80
                || (first == 0x2001 && v6.segments()[1] == 0x0db8))
        }
    }
}

/// ISO codes are short and alphanumeric: anything else in those fields is not copied.
fn is_code(code: &str) -> bool {
    (1..=3).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests;
