//! Configuration: defaults in code, an optional TOML file, then `EXATOM_*` variables.
//!
//! Each service declares one `serde` struct with defaults; [`load`] fills it so that the
//! same key works in the file (`kafka_brokers = "..."`) and in the environment
//! (`EXATOM_KAFKA_BROKERS=...`). The environment wins, because that is what an operator
//! changes last.
//!
//! A key no service knows is refused at start-up, with the closest known one: a mistyped
//! `EXATOM_LATENESS_SM` silently ignored would leave the default in force. A key of another
//! service is accepted and ignored, so one environment (a ConfigMap) can serve them all.
//! [`SETTINGS`] lists every key; each service's tests hold its config struct to it, and a
//! test holds the README's configuration table to it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::de::DeserializeOwned;

/// One setting: its key (`EXATOM_` + upper case in the environment) and who reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    pub key: &'static str,
    pub services: &'static [&'static str],
}

const ALL: &[&str] = &[
    "collector",
    "anonymizer",
    "sessionizer",
    "aggregator",
    "admin",
    "console",
];
const CONSUMERS: &[&str] = &["anonymizer", "sessionizer", "aggregator"];

macro_rules! settings {
    ($($key:literal: $services:expr),* $(,)?) => {
        &[$(Setting { key: $key, services: $services }),*]
    };
}

/// Every setting of every service and of `exatom-admin`.
pub const SETTINGS: &[Setting] = settings![
    "kafka_brokers": ALL,
    "clickhouse_url": ALL,
    "clickhouse_database": ALL,
    "clickhouse_user": ALL,
    "clickhouse_password": ALL,
    "clickhouse_cluster": ALL,
    "clickhouse_insert_quorum": ALL,
    "listen": &["collector"],
    "sites_file": &["collector", "admin", "console"],
    "trusted_proxies": &["collector"],
    "rate_per_second": &["collector"],
    "rate_burst": &["collector"],
    "rate_max_clients": &["collector"],
    "max_body_bytes": &["collector"],
    "max_compression_ratio": &["collector"],
    "max_events": &["collector"],
    "max_string_chars": &["collector"],
    "max_url_chars": &["collector"],
    "max_form_fields": &["collector"],
    "max_age_ms": &["collector"],
    "max_ahead_ms": &["collector"],
    "max_replay_body_bytes": &["collector"],
    "max_replay_snapshot_bytes": &["collector"],
    "max_replay_events": &["collector"],
    "max_replay_batches_per_page": &["collector"],
    "replay_site_bytes_per_minute": &["collector"],
    "max_queue_replay_batches": &["collector"],
    "max_replay_requests": &["collector"],
    "max_queue_events": &["collector"],
    "delivery_timeout_ms": &["collector"],
    "request_timeout_ms": &["collector"],
    "retry_after_s": &["collector"],
    "demo_site": &["collector"],
    "admin_listen": CONSUMERS,
    "group_id": CONSUMERS,
    "batch_max": CONSUMERS,
    "batch_linger_ms": CONSUMERS,
    "geo_database": &["anonymizer"],
    "ua_cache_entries": &["anonymizer"],
    "scrub_cache_entries": &["anonymizer"],
    "query_allow_list": &["anonymizer"],
    "salts_topic": &["anonymizer"],
    "allow_long_salt_retention": &["anonymizer"],
    "transaction_key_file": &["anonymizer"],
    "lateness_ms": &["sessionizer"],
    "idle_margin_ms": &["sessionizer"],
    "max_open_sessions": &["sessionizer"],
    "retention_interval_s": &["aggregator"],
    "topic_partitions": &["admin"],
    "topic_replication": &["admin"],
    "console_listen": &["console"],
    "console_session_key_file": &["console"],
    "console_session_hours": &["console"],
    "console_cookie_secure": &["console"],
    "console_login_failures": &["console"],
    "console_lockout_s": &["console"],
    "console_max_range_days": &["console"],
    "console_live_minutes": &["console"],
    "console_site_users": &["console"],
];

/// The keys of `service`, sorted (as [`struct_keys`] gives a struct's).
pub fn keys_of(service: &str) -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = SETTINGS
        .iter()
        .filter(|s| s.services.contains(&service))
        .map(|s| s.key)
        .collect();
    keys.sort_unstable();
    keys
}

/// The keys a config struct reads, from its defaults: what each service's test holds to
/// [`keys_of`].
pub fn struct_keys<T: serde::Serialize + Default>() -> Vec<String> {
    let mut keys: Vec<String> = match serde_json::to_value(T::default()) {
        Ok(serde_json::Value::Object(map)) => map.into_iter().map(|(k, _)| k).collect(),
        _ => Vec::new(),
    };
    keys.sort();
    keys
}

/// A configuration that cannot be used, with what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path} (EXATOM_CONFIG): {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} (EXATOM_CONFIG) is not valid TOML: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("unknown setting {name}{}", suggestion.as_ref().map(|s| format!(" (did you mean {s}?)")).unwrap_or_default())]
    Unknown {
        name: String,
        suggestion: Option<String>,
    },
    #[error("invalid configuration: {name}: {message}")]
    Invalid { name: String, message: String },
}

/// Loads `T` from `EXATOM_CONFIG` (a TOML file, optional) and the `EXATOM_*` environment,
/// refusing keys that no service knows.
pub fn load<T: DeserializeOwned>() -> Result<T, ConfigError> {
    let known: Vec<&str> = SETTINGS.iter().map(|s| s.key).collect();
    load_from(std::env::vars(), &known)
}

/// Same as [`load`], with the environment and the known keys given (tests).
pub fn load_from<T: DeserializeOwned>(
    vars: impl IntoIterator<Item = (String, String)>,
    known: &[&str],
) -> Result<T, ConfigError> {
    let vars: BTreeMap<String, String> = vars.into_iter().collect();
    // Where each key came from, to name it the way the user wrote it.
    let mut named: BTreeMap<String, String> = BTreeMap::new();
    let mut table = match vars.get("EXATOM_CONFIG") {
        Some(path) => {
            let path = PathBuf::from(path);
            let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            let table =
                toml::from_str::<toml::Table>(&text).map_err(|source| ConfigError::Parse {
                    path: path.clone(),
                    source: Box::new(source),
                })?;
            for key in table.keys() {
                named.insert(key.clone(), format!("`{key}` in {}", path.display()));
            }
            table
        }
        None => toml::Table::new(),
    };
    for (name, raw) in &vars {
        let Some(key) = name.strip_prefix("EXATOM_") else {
            continue;
        };
        if key == "CONFIG" {
            continue;
        }
        let key = key.to_ascii_lowercase();
        named.insert(key.clone(), name.clone());
        table.insert(key, env_value(raw));
    }
    for (key, name) in &named {
        if !known.contains(&key.as_str()) {
            let env_style = name.starts_with("EXATOM_");
            return Err(ConfigError::Unknown {
                name: name.clone(),
                suggestion: closest(key, known).map(|k| {
                    if env_style {
                        format!("EXATOM_{}", k.to_ascii_uppercase())
                    } else {
                        format!("`{k}`")
                    }
                }),
            });
        }
    }
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let key = e
            .path()
            .iter()
            .next()
            .map(|s| s.to_string())
            .unwrap_or_default();
        ConfigError::Invalid {
            name: named.get(&key).cloned().unwrap_or(key),
            message: e.inner().to_string(),
        }
    })
}

/// The known key nearest to `key`, if it is near enough to be a slip of the fingers.
fn closest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(key, k), *k))
        .filter(|(distance, k)| *distance <= (k.len() / 3).max(2))
        .min()
        .map(|(_, k)| k)
}

/// Environment values are text; numbers and booleans are recognised so that one struct
/// serves both sources.
fn env_value(raw: &str) -> toml::Value {
    if let Ok(i) = raw.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    if let Ok(f) = raw.parse::<f64>() {
        if raw.contains('.') {
            return toml::Value::Float(f);
        }
    }
    match raw {
        "true" => toml::Value::Boolean(true),
        "false" => toml::Value::Boolean(false),
        _ => toml::Value::String(raw.to_owned()),
    }
}

/// Accepts a number or a numeric string, so `EXATOM_X=007` and a quoted TOML value both work.
pub fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Either {
        S(String),
        I(i64),
        F(f64),
        B(bool),
    }
    Ok(match Either::deserialize(d)? {
        Either::S(s) => s,
        Either::I(i) => i.to_string(),
        Either::F(f) => f.to_string(),
        Either::B(b) => b.to_string(),
    })
}

use serde::Deserialize;

/// Where the services find Kafka and ClickHouse: the part every service shares.
#[derive(Clone, Deserialize, serde::Serialize)]
#[serde(default)]
pub struct Endpoints {
    /// Bootstrap servers, comma separated.
    pub kafka_brokers: String,
    /// ClickHouse HTTP URL.
    pub clickhouse_url: String,
    pub clickhouse_database: String,
    pub clickhouse_user: String,
    pub clickhouse_password: String,
    /// A cluster of the server's `remote_servers`: tables are replicated per shard with a
    /// Distributed table in front (README, "Running in production"). Empty: one server.
    pub clickhouse_cluster: String,
    /// Replicas that must hold an insert before it counts, in cluster mode: with every
    /// replica of a shard, a read on any replica sees every acknowledged row, which the
    /// aggregator's rollups (read back right after writing) need to stay exact.
    pub clickhouse_insert_quorum: u32,
}

/// The password never reaches a log.
impl std::fmt::Debug for Endpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoints")
            .field("kafka_brokers", &self.kafka_brokers)
            .field("clickhouse_url", &self.clickhouse_url)
            .field("clickhouse_database", &self.clickhouse_database)
            .field("clickhouse_user", &self.clickhouse_user)
            .field("clickhouse_password", &"<hidden>")
            .field("clickhouse_cluster", &self.clickhouse_cluster)
            .field("clickhouse_insert_quorum", &self.clickhouse_insert_quorum)
            .finish()
    }
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints {
            kafka_brokers: "127.0.0.1:9092".into(),
            clickhouse_url: "http://127.0.0.1:8123".into(),
            clickhouse_database: "exatom".into(),
            clickhouse_user: "default".into(),
            clickhouse_password: String::new(),
            clickhouse_cluster: String::new(),
            clickhouse_insert_quorum: 2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(default)]
    struct Example {
        listen: String,
        max_events: u32,
        enabled: bool,
        #[serde(deserialize_with = "string_or_number")]
        code: String,
    }

    impl Default for Example {
        fn default() -> Self {
            Example {
                listen: "127.0.0.1:1".into(),
                max_events: 100,
                enabled: false,
                code: "x".into(),
            }
        }
    }

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const KNOWN: &[&str] = &["listen", "max_events", "enabled", "code", "lateness_ms"];

    #[test]
    fn defaults_then_file_then_environment() {
        let dir = std::env::temp_dir().join(format!("exatom-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, "listen = \"0.0.0.0:9\"\nmax_events = 5\n").unwrap();
        let got: Example = load_from(
            vars(&[
                ("EXATOM_CONFIG", file.to_str().unwrap()),
                ("EXATOM_MAX_EVENTS", "7"),
                ("EXATOM_ENABLED", "true"),
                ("EXATOM_CODE", "42"),
                ("HOME", "/root"),
            ]),
            KNOWN,
        )
        .unwrap();
        assert_eq!(
            got,
            Example {
                listen: "0.0.0.0:9".into(),
                max_events: 7,
                enabled: true,
                code: "42".into(),
            }
        );
        let untouched: Example = load_from(vars(&[]), KNOWN).unwrap();
        assert_eq!(untouched, Example::default());
    }

    #[test]
    fn a_wrong_type_names_the_variable_the_user_set() {
        let err = load_from::<Example>(vars(&[("EXATOM_MAX_EVENTS", "many")]), KNOWN).unwrap_err();
        assert!(err.to_string().contains("EXATOM_MAX_EVENTS"), "{err}");
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let err = load_from::<Example>(vars(&[("EXATOM_CONFIG", "/nonexistent/x.toml")]), KNOWN)
            .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/x.toml"), "{err}");
    }

    #[test]
    fn a_mistyped_variable_is_refused_with_the_closest_known_one() {
        let err = load_from::<Example>(vars(&[("EXATOM_LATENESS_SM", "5")]), KNOWN).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown setting EXATOM_LATENESS_SM (did you mean EXATOM_LATENESS_MS?)"
        );
        let err = load_from::<Example>(vars(&[("EXATOM_COLOUR", "blue")]), KNOWN).unwrap_err();
        assert_eq!(err.to_string(), "unknown setting EXATOM_COLOUR");
        // A key of another service is known: accepted, and ignored by this struct.
        let got: Example = load_from(vars(&[("EXATOM_LATENESS_MS", "5")]), KNOWN).unwrap();
        assert_eq!(got, Example::default());
    }

    #[test]
    fn a_mistyped_key_in_the_file_is_refused_naming_the_file() {
        let dir = std::env::temp_dir().join(format!("exatom-config-typo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, "max_event = 5\n").unwrap();
        let err = load_from::<Example>(vars(&[("EXATOM_CONFIG", file.to_str().unwrap())]), KNOWN)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("unknown setting `max_event` in "), "{err}");
        assert!(err.ends_with("(did you mean `max_events`?)"), "{err}");
    }

    #[test]
    fn every_key_is_listed_once() {
        let mut keys: Vec<&str> = SETTINGS.iter().map(|s| s.key).collect();
        keys.sort_unstable();
        let before = keys.len();
        keys.dedup();
        assert_eq!(keys.len(), before);
    }

    /// The README's configuration table, as (variable, services) pairs.
    fn readme_table() -> Vec<(String, Vec<String>)> {
        let readme = include_str!("../../../README.md");
        let section = readme
            .split("\n## Configuration\n")
            .nth(1)
            .expect("the README has a Configuration section");
        let section = section.split("\n## ").next().unwrap_or_default();
        section
            .lines()
            .filter(|l| l.starts_with("| `EXATOM_"))
            .flat_map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                let services: Vec<String> = match cells[2] {
                    "all" => ALL.iter().map(|s| s.to_string()).collect(),
                    "consumers" => CONSUMERS.iter().map(|s| s.to_string()).collect(),
                    other => other
                        .split(|c: char| !c.is_ascii_alphanumeric() && c != '-')
                        .filter(|w| !w.is_empty())
                        .map(|w| w.trim_start_matches("exatom-").to_owned())
                        .filter(|w| ALL.contains(&w.as_str()))
                        .collect(),
                };
                cells[1]
                    .split('`')
                    .filter(|t| t.starts_with("EXATOM_"))
                    .map(|t| (t.to_owned(), services.clone()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn the_readme_table_lists_every_setting_and_who_reads_it() {
        let mut table = readme_table();
        table.retain(|(name, _)| name != "EXATOM_CONFIG");
        table.sort();
        let mut settings: Vec<(String, Vec<String>)> = SETTINGS
            .iter()
            .map(|s| {
                let mut services: Vec<String> = s.services.iter().map(|s| s.to_string()).collect();
                services.sort();
                (format!("EXATOM_{}", s.key.to_ascii_uppercase()), services)
            })
            .collect();
        settings.sort();
        let table: Vec<(String, Vec<String>)> = table
            .into_iter()
            .map(|(name, mut services)| {
                services.sort();
                (name, services)
            })
            .collect();
        assert_eq!(table, settings);
    }
}
