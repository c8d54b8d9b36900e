//! IP address → country and region, from a MaxMind-format database.
//!
//! Only the ISO country code and the first subdivision's code are kept: city, coordinates,
//! postal code and network owner are never read into the event.

use std::net::IpAddr;
use std::path::Path;

use maxminddb::{geoip2, Reader};
use serde::Deserialize;

/// A geo database, or none (every lookup then answers empty fields).
pub struct Geo {
    reader: Option<Reader<Vec<u8>>>,
}

/// Country-only databases (for example the public-domain `geo-whois-asn-country`) store
/// a flat `country_code`.
#[derive(Deserialize)]
struct FlatCountry<'a> {
    country_code: Option<&'a str>,
}

impl Geo {
    pub fn none() -> Self {
        Geo { reader: None }
    }

    pub fn open(path: &Path) -> Result<Self, maxminddb::MaxMindDbError> {
        Ok(Geo {
            reader: Some(Reader::open_readfile(path)?),
        })
    }

    pub fn is_configured(&self) -> bool {
        self.reader.is_some()
    }

    /// `(country, region)`: ISO 3166-1 alpha-2 and ISO 3166-2 (`NL-NH`), empty when unknown.
    pub fn locate(&self, ip: &str) -> (String, String) {
        let (Some(reader), Ok(ip)) = (&self.reader, ip.parse::<IpAddr>()) else {
            return (String::new(), String::new());
        };
        if let Ok(Some(city)) = reader.lookup::<geoip2::City>(ip) {
            let country = city
                .country
                .and_then(|c| c.iso_code)
                .unwrap_or_default()
                .to_owned();
            if !country.is_empty() {
                let region = city
                    .subdivisions
                    .and_then(|s| s.into_iter().next())
                    .and_then(|s| s.iso_code)
                    .map(|code| format!("{country}-{code}"))
                    .unwrap_or_default();
                return (country, region);
            }
        }
        if let Ok(Some(flat)) = reader.lookup::<FlatCountry>(ip) {
            return (
                flat.country_code.unwrap_or_default().to_owned(),
                String::new(),
            );
        }
        (String::new(), String::new())
    }
}
