//! The scrubber as it was before its fast paths (one regex pass per rule, every result
//! owned): the reference the fast one must match byte for byte.

use std::borrow::Cow;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

use regex::{Captures, Regex};

// The rules' patterns are the product's; only how they are applied is the old way.
use crate::scrub::{
    date, email, identifier_numbers, ipv4, ipv6, QueryAllowList, ScrubCounts, DATE,
    DATE_PLACEHOLDER, EMAIL_PLACEHOLDER, IDENTIFIER_MAX_DIGITS, IP_PLACEHOLDER,
};

/// Compiles one of the rules' patterns once.
macro_rules! pattern {
    ($re:expr) => {{
        static RE: OnceLock<Regex> = OnceLock::new();
        RE.get_or_init(|| Regex::new($re).expect("scrub pattern compiles"))
    }};
}

/// Numeric dates, then any other run of digits.
fn text_numbers() -> &'static Regex {
    pattern!(&format!(r"(?P<date>{DATE})|\d+"))
}

/// Scrubs text a person reads: titles, labels.
pub(super) fn scrub_text(text: &str, counts: &mut ScrubCounts) -> String {
    replace(text, counts, false)
}

/// Scrubs a site identifier (form or field name or id, trigger, tag): short numbers stay;
/// dates and numbers of [`IDENTIFIER_MAX_DIGITS`] digits or more are masked.
pub(super) fn scrub_identifier(text: &str, counts: &mut ScrubCounts) -> String {
    replace(text, counts, true)
}

/// One pass per rule, each over the previous pass's output: a candidate one rule turns down
/// (`std::vector` is no IPv6 address) is still seen whole by the next. Placeholders hold no
/// digit, `@` or `:`, so no later pass touches them.
fn replace(text: &str, counts: &mut ScrubCounts, identifier: bool) -> String {
    let mut out = Cow::Borrowed(text);
    if out.contains('@') {
        out = replace_all(out, email(), |_, _| {
            counts.emails += 1;
            Cow::Borrowed(EMAIL_PLACEHOLDER)
        });
    }
    if out.contains(':') {
        out = replace_all(out, ipv6(), |haystack, m| {
            let at = m.get(0).expect("whole match");
            let before = haystack[..at.start()].chars().next_back();
            let after = haystack[at.end()..].chars().next();
            Cow::Owned(mask_ipv6(at.as_str(), before, after, counts))
        });
    }
    if out.contains('.') {
        out = replace_all(out, ipv4(), |_, m| {
            if m[0].parse::<Ipv4Addr>().is_ok() {
                counts.ips += 1;
                Cow::Borrowed(IP_PLACEHOLDER)
            } else {
                Cow::Owned(m[0].to_owned())
            }
        });
    }
    if !out.chars().any(|c| c.is_numeric()) {
        return out.into_owned();
    }
    if identifier {
        out = replace_all(out, identifier_numbers(), |_, m| {
            let digits = m[0].chars().filter(|c| c.is_numeric()).count();
            if digits < IDENTIFIER_MAX_DIGITS && !date().is_match(&m[0]) {
                return Cow::Owned(m[0].to_owned());
            }
            counts.digit_runs += 1;
            Cow::Owned(mask_digits(&m[0]))
        });
    } else {
        out = replace_all(out, text_numbers(), |_, m| {
            if m.name("date").is_some() {
                counts.dates += 1;
                return Cow::Borrowed(DATE_PLACEHOLDER);
            }
            counts.digit_runs += 1;
            Cow::Owned(mask_digits(&m[0]))
        });
    }
    out.into_owned()
}

/// Masks the IPv6 addresses inside a run [`ipv6`] found, longest first: a run such as
/// `1.0.0.1:1:0:87a::` holds the address `1:0:87a::`. Runs are ASCII (the pattern admits
/// nothing else); no address is longer than 45 characters.
fn mask_ipv6(
    candidate: &str,
    before: Option<char>,
    after: Option<char>,
    counts: &mut ScrubCounts,
) -> String {
    const LONGEST: usize = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255".len();
    // `std::vector` holds `d::`, which parses as an address: without a digit, a candidate
    // glued to a word is part of that word.
    let glued = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let is_address = |part: &str, before: Option<char>, after: Option<char>| {
        (part.bytes().any(|b| b.is_ascii_digit()) || !glued(before) && !glued(after))
            && part.parse::<Ipv6Addr>().is_ok()
    };
    let n = candidate.len();
    for len in (2..=n.min(LONGEST)).rev() {
        for start in 0..=n - len {
            let end = start + len;
            let part = &candidate[start..end];
            let before = candidate[..start].chars().next_back().or(before);
            let after = candidate[end..].chars().next().or(after);
            if is_address(part, before, after) {
                counts.ips += 1;
                let left = mask_ipv6(&candidate[..start], before, Some(':'), counts);
                let right = mask_ipv6(&candidate[end..], Some(':'), after, counts);
                return format!("{left}{IP_PLACEHOLDER}{right}");
            }
        }
    }
    candidate.to_owned()
}

/// Replaces every match of `re` by what `with` makes of it (given the haystack, so that it
/// can look at a match's neighbours); borrows on as long as nothing matched.
fn replace_all<'t>(
    text: Cow<'t, str>,
    re: &Regex,
    mut with: impl FnMut(&str, &Captures<'_>) -> Cow<'static, str>,
) -> Cow<'t, str> {
    let changed = match re.replace_all(&text, |c: &Captures<'_>| with(&text, c)) {
        Cow::Borrowed(_) => None,
        Cow::Owned(changed) => Some(changed),
    };
    changed.map_or(text, Cow::Owned)
}

/// Every digit becomes `#`; separators stay.
fn mask_digits(number: &str) -> String {
    number
        .chars()
        .map(|c| if c.is_numeric() { '#' } else { c })
        .collect()
}

/// Scrubs a URL: no fragment, only allowed query parameters (their values scrubbed as
/// text), path scrubbed as text. The host stays unless it is an IP address. A string that
/// does not parse as a URL is scrubbed as plain text.
pub(super) fn scrub_url(text: &str, allow: &QueryAllowList, counts: &mut ScrubCounts) -> String {
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
