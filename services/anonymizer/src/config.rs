//! Anonymizer configuration (`EXATOM_*` variables or the TOML file in `EXATOM_CONFIG`).

use std::net::SocketAddr;
use std::path::PathBuf;

use exatom_core::config::Endpoints;
use serde::{Deserialize, Serialize};

/// Everything the anonymizer can be told; see the configuration table in the README.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct AnonymizerConfig {
    #[serde(flatten)]
    pub endpoints: Endpoints,
    /// `/healthz`, `/readyz`, `/metrics`.
    pub admin_listen: SocketAddr,
    /// Consumer group shared by every replica.
    pub group_id: String,
    /// A MaxMind-format database (GeoIP2/GeoLite2 City or Country, or a country-only
    /// `.mmdb`). Empty: no geo, empty country and region.
    pub geo_database: Option<PathBuf>,
    /// Distinct user agents whose classification is cached.
    pub ua_cache_entries: usize,
    /// Distinct page URLs and page titles whose scrubbed form is remembered (each).
    pub scrub_cache_entries: usize,
    /// Query parameters kept in URLs: names, or prefixes ending in `*`.
    pub query_allow_list: String,
    /// The topic the daily salts are shared through (one partition, retention ≤ 48 h).
    /// Environments that share one cluster each need their own.
    pub salts_topic: String,
    /// Starting with a salts topic that keeps salts longer than 48 hours breaks the
    /// product's promise; this must be set explicitly to allow it.
    pub allow_long_salt_retention: bool,
    /// The master key transaction ids are hashed under (32 random bytes as 64 hex digits):
    /// kept outside the pipeline's topics and tables (`transactions`).
    pub transaction_key_file: Option<PathBuf>,
    /// Messages handled per batch (one commit per batch).
    pub batch_max: usize,
    /// How long a batch waits for more records after its first, in ms.
    pub batch_linger_ms: u64,
}

impl Default for AnonymizerConfig {
    fn default() -> Self {
        AnonymizerConfig {
            endpoints: Endpoints::default(),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9102)),
            group_id: "exatom-anonymizer".into(),
            geo_database: None,
            ua_cache_entries: 10_000,
            scrub_cache_entries: 10_000,
            query_allow_list: "utm_*".into(),
            salts_topic: exatom_plumbing::kafka::SALTS_TOPIC.into(),
            allow_long_salt_retention: false,
            transaction_key_file: None,
            batch_max: 2_000,
            batch_linger_ms: 20,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_setting_is_in_the_list_of_settings() {
        assert_eq!(
            exatom_core::config::struct_keys::<super::AnonymizerConfig>(),
            exatom_core::config::keys_of("anonymizer")
        );
    }
}
