//! Collector configuration (`EXATOM_*` variables or the TOML file in `EXATOM_CONFIG`).

use std::net::SocketAddr;
use std::path::PathBuf;

use exatom_core::config::Endpoints;
use serde::{Deserialize, Serialize};

use exatom_edge::limits::Limits;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct CollectorConfig {
    #[serde(flatten)]
    pub endpoints: Endpoints,
    /// Where browsers send events; also serves `/healthz`, `/readyz`, `/metrics`.
    pub listen: SocketAddr,
    /// The site registry (TOML); reloaded on SIGHUP and when it changes.
    pub sites_file: PathBuf,
    /// CIDRs whose `X-Forwarded-For` is believed.
    pub trusted_proxies: String,
    /// Requests per second one client address may send, sustained.
    pub rate_per_second: f64,
    /// Requests one client address may send at once.
    pub rate_burst: f64,
    /// Client addresses tracked at most by the rate limiter.
    pub rate_max_clients: usize,
    #[serde(flatten)]
    pub limits: Limits,
    /// Events waiting for the broker above which requests get 503.
    pub max_queue_events: usize,
    /// How long a request waits for the broker to acknowledge its events.
    pub delivery_timeout_ms: u64,
    /// How long a client may take to send its body.
    pub request_timeout_ms: u64,
    /// Seconds a 503 or 429 asks the browser to wait.
    pub retry_after_s: u64,
    /// Replay bytes (JSON, before compression) one site may send per minute, per collector.
    pub replay_site_bytes_per_minute: u64,
    /// Replay batches waiting for the broker above which replay requests get 503. Replay
    /// has a producer of its own: a flood of it never queues ahead of events.
    pub max_queue_replay_batches: usize,
    /// Replay requests in progress at once (each may hold a body of `max_replay_body_bytes`);
    /// more get 503 at once.
    pub max_replay_requests: usize,
    /// Site whose demo pages are served under `/demo/`; empty serves no demo.
    #[serde(deserialize_with = "crate::assets::demo_site")]
    pub demo_site: String,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            endpoints: Endpoints::default(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            sites_file: PathBuf::from("deploy/local/sites.toml"),
            trusted_proxies: "127.0.0.1/32,::1/128".into(),
            rate_per_second: 50.0,
            rate_burst: 200.0,
            rate_max_clients: 100_000,
            limits: Limits::default(),
            max_queue_events: 50_000,
            delivery_timeout_ms: 5_000,
            request_timeout_ms: 10_000,
            retry_after_s: 5,
            replay_site_bytes_per_minute: 64 * 1024 * 1024,
            max_queue_replay_batches: 1_000,
            max_replay_requests: 64,
            demo_site: String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_setting_is_in_the_list_of_settings() {
        assert_eq!(
            exatom_core::config::struct_keys::<super::CollectorConfig>(),
            exatom_core::config::keys_of("collector")
        );
    }
}
