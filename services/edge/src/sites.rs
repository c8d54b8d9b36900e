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
    /// Share of visitors whose pages are recorded for session replay, 0 (off) to 1.
    pub replay_sample: f64,
    /// Days a replay is kept; empty: `DEFAULT_REPLAY_DAYS`. Never past the events' 90.
    pub replay_days: Option<u16>,
}

/// How long a replay is kept when the site does not say.
pub const DEFAULT_REPLAY_DAYS: u16 = 30;
/// The events' own retention: a replay outliving them would play a session nobody can find.
pub const MAX_REPLAY_DAYS: u16 = 90;

impl Site {
    pub fn replay_days(&self) -> u16 {
        self.replay_days.unwrap_or(DEFAULT_REPLAY_DAYS)
    }
}

/// Someone who may open the console: the sites they hold, or all of them as an admin.
#[derive(Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct User {
    /// The password as a PHC string (Argon2id): `exatom-console hash-password` makes one.
    pub password_hash: String,
    /// SHA-256 (hex) of each API token the user's machine clients send as `Bearer`.
    pub token_sha256: Vec<String>,
    /// Client codes whose figures the user may read.
    pub sites: Vec<String>,
    /// Reads every site's figures.
    pub admin: bool,
}

/// Hashes are not secrets the way passwords are, but they still stay out of logs.
impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("sites", &self.sites)
            .field("admin", &self.admin)
            .finish_non_exhaustive()
    }
}

impl User {
    /// Whether the user may read site `code`.
    pub fn holds(&self, code: &str) -> bool {
        self.admin || self.sites.iter().any(|s| s == code)
    }
}

/// All registered sites, by client code, and the console's users, by name.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    #[serde(default)]
    pub sites: HashMap<String, Site>,
    #[serde(default)]
    pub users: HashMap<String, User>,
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
        for (code, site) in &registry.sites {
            if !crate::batch::valid_site_code(code) {
                return Err(format!("site code `{code}` is not [A-Za-z0-9_-]{{2,32}}"));
            }
            if !(0.0..=1.0).contains(&site.replay_sample) {
                return Err(format!(
                    "site `{code}`: replay_sample {} is not between 0 (off) and 1 (every visitor)",
                    site.replay_sample
                ));
            }
            if !(1..=MAX_REPLAY_DAYS).contains(&site.replay_days()) {
                return Err(format!(
                    "site `{code}`: replay_days {} is not between 1 and {MAX_REPLAY_DAYS} (the events' retention)",
                    site.replay_days()
                ));
            }
        }
        for (name, user) in &registry.users {
            if !crate::batch::valid_site_code(name) {
                return Err(format!("user name `{name}` is not [A-Za-z0-9_-]{{2,32}}"));
            }
            if let Some(site) = user.sites.iter().find(|s| !registry.sites.contains_key(*s)) {
                return Err(format!(
                    "user `{name}` holds site `{site}`, which is not registered"
                ));
            }
            if let Some(bad) = user
                .token_sha256
                .iter()
                .find(|t| t.len() != 64 || !t.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                return Err(format!(
                    "user `{name}`: token_sha256 `{bad}` is not 64 hex digits (sha256sum of the token)"
                ));
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

/// The registry's text without site `code`, its comments and other sites as they were, or
/// `None` when it has no such site. The result is checked to be a valid registry.
pub fn without_site(text: &str, code: &str) -> Result<Option<String>, String> {
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e| format!("{e}"))?;
    let Some(sites) = doc.get_mut("sites").and_then(|s| s.as_table_like_mut()) else {
        return Ok(None);
    };
    let Some(removed) = sites.remove(code) else {
        return Ok(None);
    };
    // The comment lines right above a site's header go with it; a block before them, apart
    // by a blank line, is the file's own header when the site came first: it stays.
    let prefix = removed
        .as_table()
        .and_then(|t| t.decor().prefix())
        .and_then(|p| p.as_str())
        .unwrap_or_default();
    let position = |item: &toml_edit::Item| item.as_table().and_then(|t| t.position());
    let first = sites
        .iter()
        .filter_map(|(_, i)| position(i))
        .min()
        .is_none_or(|other| position(&removed).is_some_and(|own| own < other));
    let header = match prefix.rfind("\n\n") {
        Some(end) if first => &prefix[..end + 2],
        _ => "",
    };
    // Users keep their other sites; the removed one leaves their lists too.
    if let Some(users) = doc.get_mut("users").and_then(|u| u.as_table_like_mut()) {
        for (_, user) in users.iter_mut() {
            if let Some(held) = user.get_mut("sites").and_then(|s| s.as_array_mut()) {
                held.retain(|s| s.as_str() != Some(code));
            }
        }
    }
    let out = format!("{header}{doc}");
    Registry::parse(&out)?;
    Ok(Some(out))
}

/// Takes site `code` out of the registry file at `path` (written beside it, then renamed
/// over it, so a collector never reads half a file). Returns whether it was there.
pub fn remove_site(path: &Path, code: &str) -> Result<bool, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read site registry {}: {e}", path.display()))?;
    let Some(out) =
        without_site(&text, code).map_err(|e| format!("site registry {}: {e}", path.display()))?
    else {
        return Ok(false);
    };
    let partial = path.with_extension("toml.part");
    std::fs::write(&partial, out)
        .and_then(|()| std::fs::rename(&partial, path))
        .map_err(|e| format!("cannot write site registry {}: {e}", path.display()))?;
    Ok(true)
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
    fn a_removed_site_leaves_the_others_and_the_comments_as_they_were() {
        let text = format!("# who may send\n{DEMO}\n# the shop\n[sites.SHOP]\norigins = []\n");
        let out = without_site(&text, "DEMO").unwrap().unwrap();
        let registry = Registry::parse(&out).unwrap();
        assert_eq!(registry.sites.keys().collect::<Vec<_>>(), ["SHOP"]);
        assert!(
            out.contains("# who may send") && out.contains("# the shop"),
            "{out}"
        );
        assert_eq!(without_site(&out, "DEMO"), Ok(None), "gone already");
        let shop_gone = without_site(&text, "SHOP").unwrap().unwrap();
        assert_eq!(
            shop_gone.matches("# who may send").count(),
            1,
            "{shop_gone}"
        );
        assert!(shop_gone.contains("[sites.DEMO]") && !shop_gone.contains("SHOP"));
        let last = without_site(&out, "SHOP").unwrap().unwrap();
        assert!(last.starts_with("# who may send\n"), "{last}");
        assert_eq!(without_site("", "DEMO"), Ok(None));
        assert!(without_site("[sites", "DEMO").is_err());
    }

    #[test]
    fn bad_files_are_refused_with_the_problem_named() {
        assert!(Registry::parse("[sites.X]\norigins=[]")
            .unwrap_err()
            .contains("`X`"));
        assert!(Registry::parse("[sites.DEMO]\norigin=[]")
            .unwrap_err()
            .contains("origin"));
        for (setting, named) in [
            ("replay_sample = 1.5", "replay_sample 1.5"),
            ("replay_sample = -0.1", "replay_sample -0.1"),
            ("replay_days = 91", "replay_days 91"),
            ("replay_days = 0", "replay_days 0"),
        ] {
            let e = Registry::parse(&format!("[sites.DEMO]\n{setting}")).unwrap_err();
            assert!(e.contains(named) && e.contains("`DEMO`"), "{e}");
        }
    }

    #[test]
    fn replay_is_off_and_kept_30_days_unless_a_site_says_otherwise() {
        let registry =
            Registry::parse("[sites.DEMO]\n[sites.SHOP]\nreplay_sample = 0.25\nreplay_days = 90")
                .unwrap();
        let (demo, shop) = (&registry.sites["DEMO"], &registry.sites["SHOP"]);
        assert_eq!((demo.replay_sample, demo.replay_days()), (0.0, 30));
        assert_eq!((shop.replay_sample, shop.replay_days()), (0.25, 90));
    }

    #[test]
    fn users_hold_their_sites_and_removing_a_site_takes_it_from_them() {
        let text = format!(
            "{DEMO}\n[sites.SHOP]\norigins = []\n\n[users.ann]\npassword_hash = \"h\"\nsites = [\"DEMO\", \"SHOP\"]\n\n[users.root]\nadmin = true\n"
        );
        let registry = Registry::parse(&text).unwrap();
        let ann = &registry.users["ann"];
        assert!(ann.holds("DEMO") && ann.holds("SHOP") && !ann.holds("OTHER"));
        assert!(registry.users["root"].holds("ANYTHING"));
        assert!(!format!("{ann:?}").contains("password_hash"), "{ann:?}");

        let out = without_site(&text, "SHOP").unwrap().unwrap();
        let after = Registry::parse(&out).unwrap();
        assert_eq!(after.users["ann"].sites, ["DEMO"]);
    }

    #[test]
    fn users_naming_unknown_sites_or_bad_tokens_are_refused() {
        let unknown = Registry::parse(&format!("{DEMO}\n[users.ann]\nsites = [\"SHOP\"]\n"));
        assert!(unknown.unwrap_err().contains("`SHOP`"));
        let token = Registry::parse(&format!(
            "{DEMO}\n[users.ann]\nsites = [\"DEMO\"]\ntoken_sha256 = [\"secret\"]\n"
        ));
        assert!(token.unwrap_err().contains("64 hex digits"));
        let name = Registry::parse(&format!("{DEMO}\n[users.\"a b\"]\n"));
        assert!(name.unwrap_err().contains("user name"));
    }
}
