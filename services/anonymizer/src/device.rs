//! User agent → browser family and major version, OS family, device class. The string
//! itself goes no further.
//!
//! Parsing runs uap-core's few hundred regular expressions: tens of microseconds. Real
//! traffic repeats a small set of user agents, so results are kept in a bounded LRU cache
//! and a repeat costs one hash lookup.

use std::num::NonZeroUsize;

use exatom_core::model::Device;
use lru::LruCache;
use uaparser::{Parser, UserAgentParser};

/// uap-core's rules (Apache-2.0), vendored beside this crate.
const REGEXES: &[u8] = include_bytes!("../uap/regexes.yaml");

/// The device classes a report can segment by.
pub const DESKTOP: &str = "desktop";
pub const MOBILE: &str = "mobile";
pub const TABLET: &str = "tablet";
pub const BOT: &str = "bot";

/// The parsed, coarse view of a user agent (no geo: see [`crate::geo`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    pub browser_family: String,
    pub browser_major: String,
    pub os_family: String,
    pub device_class: &'static str,
}

impl Classified {
    pub fn apply(&self, device: &mut Device) {
        device.browser_family.clone_from(&self.browser_family);
        device.browser_major.clone_from(&self.browser_major);
        device.os_family.clone_from(&self.os_family);
        device.device_class = self.device_class.to_owned();
        device.is_bot = self.device_class == BOT;
    }
}

/// Classifies user agents, caching results.
pub struct Classifier {
    parser: UserAgentParser,
    cache: LruCache<String, Classified>,
    pub hits: u64,
    pub misses: u64,
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier").finish_non_exhaustive()
    }
}

impl Classifier {
    pub fn new(cache_entries: usize) -> Self {
        Classifier {
            // uap-core's rules are written for ASCII classes (`\d`, `\w`), as most of its
            // ports read them; Unicode classes make each of its ~1 000 regexes far slower.
            parser: UserAgentParser::builder()
                .with_unicode_support(false)
                .build_from_bytes(REGEXES)
                .expect("vendored uap-core rules parse"),
            cache: LruCache::new(NonZeroUsize::new(cache_entries.max(1)).expect("non-zero")),
            hits: 0,
            misses: 0,
        }
    }

    /// Classifies one user agent, from the cache when it was seen before (a hit is one
    /// lookup, no copy).
    pub fn classify(&mut self, user_agent: &str) -> &Classified {
        let parser = &self.parser;
        let mut missed = false;
        // Cache keys are user agents: bounded, in memory only, never written anywhere.
        let classified = self.cache.get_or_insert_ref(user_agent, || {
            missed = true;
            parse(parser, user_agent)
        });
        if missed {
            self.misses += 1;
        } else {
            self.hits += 1;
        }
        classified
    }

    /// Parses without the cache (benchmarks, uap-core conformance).
    pub fn parse(&self, user_agent: &str) -> Classified {
        parse(&self.parser, user_agent)
    }

    pub fn parser(&self) -> &UserAgentParser {
        &self.parser
    }
}

fn parse(parser: &UserAgentParser, user_agent: &str) -> Classified {
    let client = parser.parse(user_agent);
    let device_class = device_class(
        user_agent,
        &client.device.family,
        &client.os.family,
        &client.user_agent.family,
    );
    Classified {
        browser_family: client.user_agent.family.into_owned(),
        browser_major: client
            .user_agent
            .major
            .map(|m| m.into_owned())
            .unwrap_or_default(),
        os_family: client.os.family.into_owned(),
        device_class,
    }
}

/// uap-core marks crawlers with the device family `Spider`; tablets and phones are told
/// apart by the device family and the platform's own conventions (Android tablets omit
/// `Mobile`).
fn device_class(ua: &str, device: &str, os: &str, browser: &str) -> &'static str {
    let lower = ua.to_ascii_lowercase();
    if device == "Spider"
        || browser.contains("bot")
        || [
            "bot",
            "crawler",
            "spider",
            "headlesschrome",
            "curl/",
            "wget/",
            "python-requests",
        ]
        .iter()
        .any(|needle| lower.contains(needle))
    {
        return BOT;
    }
    if device.contains("iPad")
        || device.contains("Tablet")
        || lower.contains("tablet")
        || (os == "Android" && !lower.contains("mobile"))
    {
        return TABLET;
    }
    if matches!(os, "iOS" | "Android" | "Windows Phone" | "BlackBerry OS")
        || device.contains("iPhone")
        || lower.contains("mobile")
    {
        return MOBILE;
    }
    DESKTOP
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_agents_are_classified() {
        let mut c = Classifier::new(16);
        let firefox =
            c.classify("Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0");
        assert_eq!(
            *firefox,
            Classified {
                browser_family: "Firefox".into(),
                browser_major: "120".into(),
                os_family: "Linux".into(),
                device_class: DESKTOP,
            }
        );
        let iphone = c.classify("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1");
        assert_eq!(iphone.device_class, MOBILE);
        assert_eq!(iphone.os_family, "iOS");
        let ipad = c.classify("Mozilla/5.0 (iPad; CPU OS 16_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.0 Mobile/15E148 Safari/604.1");
        assert_eq!(ipad.device_class, TABLET);
        let android_tab = c.classify("Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36");
        assert_eq!(android_tab.device_class, TABLET);
        let android_phone = c.classify("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36");
        assert_eq!(android_phone.device_class, MOBILE);
        let google =
            c.classify("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)");
        assert_eq!(google.device_class, BOT);
        assert_eq!(c.classify("").device_class, DESKTOP);
    }

    #[test]
    fn repeats_come_from_the_bounded_cache() {
        let mut c = Classifier::new(2);
        c.classify("a/1");
        c.classify("a/1");
        c.classify("b/1");
        c.classify("c/1");
        c.classify("a/1"); // evicted by b and c
        assert_eq!((c.hits, c.misses), (1, 4));
        assert!(c.cache.len() <= 2);
    }
}
