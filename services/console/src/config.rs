//! Console configuration (`EXATOM_*` variables or the TOML file in `EXATOM_CONFIG`).

use std::net::SocketAddr;
use std::path::PathBuf;

use exatom_core::config::Endpoints;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct ConsoleConfig {
    #[serde(flatten)]
    pub endpoints: Endpoints,
    /// Where the console's pages and API listen; also `/healthz`, `/readyz`, `/metrics`.
    pub console_listen: SocketAddr,
    /// The site registry (TOML): the console's users and the sites each holds.
    pub sites_file: PathBuf,
    /// 32 random bytes (hex) that sign session cookies; every replica reads the same file,
    /// so a cookie from one is good at all. Empty: a key made at start (one process only,
    /// sessions end with it).
    pub console_session_key_file: PathBuf,
    /// How long a log-in lasts.
    pub console_session_hours: u64,
    /// Marks the cookie `Secure`: set it when a TLS proxy serves the console.
    pub console_cookie_secure: bool,
    /// Wrong passwords in a row after which a user's log-in is locked.
    pub console_login_failures: u32,
    /// How long a locked log-in stays locked.
    pub console_lockout_s: u64,
    /// The longest date range a page may ask for.
    pub console_max_range_days: u32,
    /// How far back the live page reads the site's events.
    pub console_live_minutes: u32,
    /// Reads each site as its own ClickHouse user (`exatom-console grant-sites` makes
    /// them): a second lock on each site's rows, in ClickHouse. Needs the session key file.
    pub console_site_users: bool,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            endpoints: Endpoints::default(),
            console_listen: SocketAddr::from(([127, 0, 0, 1], 8090)),
            sites_file: PathBuf::from("deploy/local/sites.toml"),
            console_session_key_file: PathBuf::new(),
            console_session_hours: 12,
            console_cookie_secure: false,
            console_login_failures: 10,
            console_lockout_s: 900,
            console_max_range_days: 400,
            console_live_minutes: 15,
            console_site_users: false,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_setting_is_in_the_list_of_settings() {
        assert_eq!(
            exatom_core::config::struct_keys::<super::ConsoleConfig>(),
            exatom_core::config::keys_of("console")
        );
    }
}
