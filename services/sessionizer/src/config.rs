//! Sessionizer configuration (`EXATOM_*` variables or the TOML file in `EXATOM_CONFIG`).

use std::net::SocketAddr;

use exatom_core::config::Endpoints;
use serde::{Deserialize, Serialize};

/// Everything the sessionizer can be told; see the configuration table in the README.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct SessionizerConfig {
    #[serde(flatten)]
    pub endpoints: Endpoints,
    pub admin_listen: SocketAddr,
    pub group_id: String,
    /// How long after an event (and after a batch's arrival) its session stays open for
    /// stragglers, in ms.
    pub lateness_ms: i64,
    /// How far behind the wall clock an idle partition's stream time is set, in ms: the
    /// longest expected delay from the collector to here.
    pub idle_margin_ms: i64,
    /// Open sessions at which reading pauses until sessions close (bounded memory).
    pub max_open_sessions: usize,
    /// Records per batch (one commit per batch).
    pub batch_max: usize,
    /// How long a batch waits for more records after its first, in ms: ClickHouse takes
    /// fewer, larger inserts better (a second here; freshness budget 5 s).
    pub batch_linger_ms: u64,
}

impl Default for SessionizerConfig {
    fn default() -> Self {
        SessionizerConfig {
            endpoints: Endpoints::default(),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9103)),
            group_id: "exatom-sessionizer".into(),
            lateness_ms: 5 * 60_000,
            idle_margin_ms: 10_000,
            max_open_sessions: 1_000_000,
            batch_max: 5_000,
            batch_linger_ms: 1_000,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_setting_is_in_the_list_of_settings() {
        assert_eq!(
            exatom_core::config::struct_keys::<super::SessionizerConfig>(),
            exatom_core::config::keys_of("sessionizer")
        );
    }
}
