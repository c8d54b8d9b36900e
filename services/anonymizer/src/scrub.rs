//! Free-text scrubbing: what a person can read (URLs, titles, labels) loses anything that
//! could identify someone before it leaves the anonymizer.
//!
//! Rules, applied in one left-to-right pass so that no rule sees another's output:
//! e-mail addresses → `privacy@exatom.io`; IP addresses → `[ip]`; numeric dates →
//! `01/01/1970`; every other digit → `#`. URLs also lose their fragment and every query
//! parameter not on the allow-list. Identifiers (form and field names and ids) keep short
//! digit runs, which tell `address_line_1` from `address_line_2`, but lose e-mails, IP
//! addresses and runs of six digits or more.

use std::borrow::Cow;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

use regex::{Captures, Regex};

pub const EMAIL_PLACEHOLDER: &str = "privacy@exatom.io";
pub const IP_PLACEHOLDER: &str = "[ip]";
pub const DATE_PLACEHOLDER: &str = "01/01/1970";
/// Digit runs at least this long are masked even inside identifiers.
pub const IDENTIFIER_MAX_DIGITS: usize = 6;

/// How many times each rule fired: exported as metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ScrubCounts {
    pub emails: u64,
    pub ips: u64,
    pub dates: u64,
    pub digit_runs: u64,
    pub query_params: u64,
    pub fragments: u64,
}

impl ScrubCounts {
    pub fn add(&mut self, other: ScrubCounts) {
        self.emails += other.emails;
        self.ips += other.ips;
        self.dates += other.dates;
        self.digit_runs += other.digit_runs;
        self.query_params += other.query_params;
        self.fragments += other.fragments;
    }
}

fn pattern() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(concat!(
            r"(?P<email>[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+)",
            r"|(?P<ipv6>(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?:%[0-9A-Za-z]+)?)",
            r"|(?P<ipv4>(?:\d{1,3}\.){3}\d{1,3})",
            r"|(?P<date>\b(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4})\b)",
            r"|(?P<digits>\d+)",
        ))
        .expect("scrub pattern compiles")
    })
}

/// Scrubs text a person reads: titles, labels.
pub fn scrub_text(text: &str, counts: &mut ScrubCounts) -> String {
    replace(text, counts, false)
}

/// Scrubs a site identifier (form or field name or id, trigger, tag): digits stay unless
/// they form a long run.
pub fn scrub_identifier(text: &str, counts: &mut ScrubCounts) -> String {
    replace(text, counts, true)
}

fn replace(text: &str, counts: &mut ScrubCounts, identifier: bool) -> String {
    if !text
        .bytes()
        .any(|b| b.is_ascii_digit() || b == b'@' || b == b':')
    {
        return text.to_owned();
    }
    pattern()
        .replace_all(text, |caps: &Captures<'_>| -> Cow<'static, str> {
            if caps.name("email").is_some() {
                counts.emails += 1;
                return Cow::Borrowed(EMAIL_PLACEHOLDER);
            }
            if let Some(m) = caps.name("ipv6") {
                let candidate = m.as_str().split('%').next().unwrap_or_default();
                // A digit is required: `std::vector` holds `d::`, which parses as an address.
                let has_digit = candidate.bytes().any(|b| b.is_ascii_digit());
                if has_digit && candidate.parse::<Ipv6Addr>().is_ok() {
                    counts.ips += 1;
                    return Cow::Borrowed(IP_PLACEHOLDER);
                }
                // Not an address (a time such as 10:30:00): digits are masked as usual.
                return Cow::Owned(mask_digits(m.as_str(), counts, identifier));
            }
            if let Some(m) = caps.name("ipv4") {
                if m.as_str().parse::<Ipv4Addr>().is_ok() {
                    counts.ips += 1;
                    return Cow::Borrowed(IP_PLACEHOLDER);
                }
                return Cow::Owned(mask_digits(m.as_str(), counts, identifier));
            }
            if let Some(m) = caps.name("date") {
                if identifier {
                    return Cow::Owned(mask_digits(m.as_str(), counts, identifier));
                }
                counts.dates += 1;
                return Cow::Borrowed(DATE_PLACEHOLDER);
            }
            Cow::Owned(mask_digits(&caps[0], counts, identifier))
        })
        .into_owned()
}

/// Every digit becomes `#`; in identifiers only runs of [`IDENTIFIER_MAX_DIGITS`] or more.
fn mask_digits(text: &str, counts: &mut ScrubCounts, identifier: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String, counts: &mut ScrubCounts| {
        if run.is_empty() {
            return;
        }
        if identifier && run.len() < IDENTIFIER_MAX_DIGITS {
            out.push_str(run);
        } else {
            counts.digit_runs += 1;
            out.extend(std::iter::repeat_n('#', run.len()));
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() {
            run.push(c);
        } else {
            flush(&mut run, &mut out, counts);
            out.push(c);
        }
    }
    flush(&mut run, &mut out, counts);
    out
}

/// Which query parameters survive: names equal to an entry, or starting with an entry that
/// ends in `*` (`utm_*`).
#[derive(Debug, Clone)]
pub struct QueryAllowList(Vec<String>);

impl QueryAllowList {
    pub fn parse(spec: &str) -> Self {
        QueryAllowList(
            spec.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    }

    fn allows(&self, name: &str) -> bool {
        self.0.iter().any(|rule| match rule.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == rule,
        })
    }
}

impl Default for QueryAllowList {
    fn default() -> Self {
        QueryAllowList::parse("utm_*")
    }
}

/// Scrubs a URL: no fragment, only allowed query parameters (their values scrubbed as
/// text), path scrubbed as text. The host stays unless it is an IP address. A string that
/// does not parse as a URL is scrubbed as plain text.
pub fn scrub_url(text: &str, allow: &QueryAllowList, counts: &mut ScrubCounts) -> String {
    let Ok(mut url) = url::Url::parse(text) else {
        return scrub_text(text, counts);
    };
    if url.fragment().is_some() {
        counts.fragments += 1;
        url.set_fragment(None);
    }
    if url.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .filter_map(|(k, v)| {
                if allow.allows(&k) {
                    Some((scrub_identifier(&k, counts), scrub_text(&v, counts)))
                } else {
                    counts.query_params += 1;
                    None
                }
            })
            .collect();
        if pairs.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
    }
    if matches!(url.host(), Some(url::Host::Ipv4(_) | url::Host::Ipv6(_))) {
        counts.ips += 1;
        let _ = url.set_host(Some("ip.invalid"));
    }
    let path = url.path().to_owned();
    let decoded = percent_decode(&path);
    let scrubbed = scrub_text(&decoded, counts);
    if scrubbed != decoded {
        url.set_path(&scrubbed);
    }
    if url.username() != "" {
        let _ = url.set_username("");
    }
    if url.password().is_some() {
        let _ = url.set_password(None);
    }
    url.into()
}

/// Decodes `%40` and friends so that an encoded e-mail in a path is recognised.
fn percent_decode(path: &str) -> String {
    url::form_urlencoded::parse(format!("p={}", path.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| path.to_owned())
}

#[cfg(test)]
mod tests;
