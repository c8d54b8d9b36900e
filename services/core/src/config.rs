//! Configuration: defaults in code, an optional TOML file, then `EXATOM_*` variables.
//!
//! Each service declares one `serde` struct with defaults; [`load`] fills it so that the
//! same key works in the file (`kafka_brokers = "..."`) and in the environment
//! (`EXATOM_KAFKA_BROKERS=...`). The environment wins, because that is what an operator
//! changes last.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::de::DeserializeOwned;

/// A configuration that cannot be used, with the key to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("invalid configuration: {0} (check EXATOM_* variables and the config file)")]
    Invalid(String),
}

/// Loads `T` from `EXATOM_CONFIG` (a TOML file, optional) and the `EXATOM_*` environment.
pub fn load<T: DeserializeOwned>() -> Result<T, ConfigError> {
    load_from(std::env::vars())
}

/// Same as [`load`], with the environment given explicitly (tests).
pub fn load_from<T: DeserializeOwned>(
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<T, ConfigError> {
    let vars: BTreeMap<String, String> = vars.into_iter().collect();
    let mut table = match vars.get("EXATOM_CONFIG") {
        Some(path) => {
            let path = PathBuf::from(path);
            let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            toml::from_str::<toml::Table>(&text).map_err(|source| ConfigError::Parse {
                path,
                source: Box::new(source),
            })?
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
        table.insert(key.to_ascii_lowercase(), env_value(raw));
    }
    T::deserialize(toml::Value::Table(table)).map_err(|e| ConfigError::Invalid(e.to_string()))
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
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Endpoints {
    /// Bootstrap servers, comma separated.
    pub kafka_brokers: String,
    /// ClickHouse HTTP URL.
    pub clickhouse_url: String,
    pub clickhouse_database: String,
    pub clickhouse_user: String,
    pub clickhouse_password: String,
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints {
            kafka_brokers: "127.0.0.1:9092".into(),
            clickhouse_url: "http://127.0.0.1:8123".into(),
            clickhouse_database: "exatom".into(),
            clickhouse_user: "default".into(),
            clickhouse_password: String::new(),
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

    #[test]
    fn defaults_then_file_then_environment() {
        let dir = std::env::temp_dir().join(format!("exatom-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, "listen = \"0.0.0.0:9\"\nmax_events = 5\n").unwrap();
        let got: Example = load_from(vars(&[
            ("EXATOM_CONFIG", file.to_str().unwrap()),
            ("EXATOM_MAX_EVENTS", "7"),
            ("EXATOM_ENABLED", "true"),
            ("EXATOM_CODE", "42"),
            ("HOME", "/root"),
        ]))
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
        let untouched: Example = load_from(vars(&[])).unwrap();
        assert_eq!(untouched, Example::default());
    }

    #[test]
    fn a_wrong_type_names_the_key() {
        let err = load_from::<Example>(vars(&[("EXATOM_MAX_EVENTS", "many")])).unwrap_err();
        assert!(err.to_string().contains("max_events"), "{err}");
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let err =
            load_from::<Example>(vars(&[("EXATOM_CONFIG", "/nonexistent/x.toml")])).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/x.toml"), "{err}");
    }
}
