//! The site registry: which client codes exist and which origins may send for them.
//!
//! Loaded from a TOML file; the collector reloads it on SIGHUP and when the file changes,
//! keeping the previous registry if the new file is invalid.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

/// One registered site.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Site {
    /// Origins (`scheme://host[:port]`) allowed to send for this site.
    pub origins: Vec<String>,
    /// Conversion tag ids of the site, e.g. `DEMO1`.
    pub conversion_tags: Vec<String>,
}

/// All registered sites, by client code.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    #[serde(default)]
    pub sites: HashMap<String, Site>,
}

/// Why a request is refused with 403.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("site `{0}` is not registered")]
    UnknownSite(String),
    #[error("origin is not allowed for site `{0}`")]
    OriginNotAllowed(String),
}

impl Registry {
    pub fn parse(text: &str) -> Result<Self, String> {
        let registry: Registry = toml::from_str(text).map_err(|e| e.to_string())?;
        for code in registry.sites.keys() {
            if !crate::batch::valid_site_code(code) {
                return Err(format!("site code `{code}` is not [A-Za-z0-9_-]{{2,32}}"));
            }
        }
        Ok(registry)
    }

    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read site registry {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("site registry {}: {e}", path.display()))
    }

    /// The site a batch names, if it exists and the request's origin (when sent) is allowed.
    pub fn admit(&self, site: &str, origin: Option<&str>) -> Result<&Site, Refusal> {
        let entry = self
            .sites
            .get(site)
            .ok_or_else(|| Refusal::UnknownSite(site.to_owned()))?;
        match origin {
            Some(o) if !entry.origins.iter().any(|allowed| allowed == o) => {
                Err(Refusal::OriginNotAllowed(site.to_owned()))
            }
            _ => Ok(entry),
        }
    }

    /// Whether any site allows this origin: what a CORS preflight (which carries no body,
    /// hence no site) can be answered on.
    pub fn any_site_allows(&self, origin: &str) -> bool {
        self.sites
            .values()
            .any(|s| s.origins.iter().any(|o| o == origin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEMO: &str = r#"
[sites.DEMO]
origins = ["http://localhost:8080", "http://127.0.0.1:8080"]
conversion_tags = ["DEMO1"]
"#;

    #[test]
    fn known_site_and_origin_are_admitted() {
        let r = Registry::parse(DEMO).unwrap();
        assert!(r.admit("DEMO", Some("http://localhost:8080")).is_ok());
        assert!(r.admit("DEMO", None).is_ok());
        assert_eq!(
            r.admit("DEMO", Some("https://evil.example")),
            Err(Refusal::OriginNotAllowed("DEMO".into()))
        );
        assert_eq!(
            r.admit("NOPE", None),
            Err(Refusal::UnknownSite("NOPE".into()))
        );
        assert!(r.any_site_allows("http://127.0.0.1:8080"));
        assert!(!r.any_site_allows("http://127.0.0.1:9999"));
    }

    #[test]
    fn bad_files_are_refused_with_the_problem_named() {
        assert!(Registry::parse("[sites.X]\norigins=[]")
            .unwrap_err()
            .contains("`X`"));
        assert!(Registry::parse("[sites.DEMO]\norigin=[]")
            .unwrap_err()
            .contains("origin"));
    }
}
