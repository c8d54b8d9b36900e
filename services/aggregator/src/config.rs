//! Aggregator configuration (`EXATOM_*` variables or the TOML file in `EXATOM_CONFIG`).

use std::net::SocketAddr;

use exatom_core::config::Endpoints;
use serde::{Deserialize, Serialize};

/// Everything the aggregator can be told; see the configuration table in the README.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct AggregatorConfig {
    #[serde(flatten)]
    pub endpoints: Endpoints,
    pub admin_listen: SocketAddr,
    pub group_id: String,
    /// Sessions per batch (one commit per batch).
    pub batch_max: usize,
    /// How long a batch waits for more sessions after its first, in ms: each batch
    /// recomputes the rollups it touched, so fewer, larger batches cost ClickHouse less.
    pub batch_linger_ms: u64,
    /// How often the 90-day retention task runs on servers without TTL, in seconds.
    pub retention_interval_s: u64,
}

impl Default for AggregatorConfig {
    fn default() -> Self {
        AggregatorConfig {
            endpoints: Endpoints::default(),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9104)),
            group_id: "exatom-aggregator".into(),
            batch_max: 2_000,
            batch_linger_ms: 1_000,
            retention_interval_s: 3_600,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_setting_is_in_the_list_of_settings() {
        assert_eq!(
            exatom_core::config::struct_keys::<super::AggregatorConfig>(),
            exatom_core::config::keys_of("aggregator")
        );
    }
}
