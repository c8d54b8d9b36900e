//! Free-text scrubbing: what a person can read (URLs, titles, labels) loses anything that
//! could identify someone before it leaves the anonymizer.
//!
//! Rules, applied in one left-to-right pass so that no rule sees another's output:
//! e-mail addresses → `privacy@exatom.io`; IP addresses → `[ip]`; numeric dates →
//! `01/01/1970`; every other digit → `#`. URLs also lose their fragment and every query
//! parameter not on the allow-list. Identifiers (form and field names and ids) keep short
//! numbers, which tell `address_line_1` from `address_line_2`, but lose e-mails, IP
//! addresses, dates and any number of six digits or more, counted across the separators
//! people write numbers with (`4111 1111 1111 1111`, `06-1234-5678`, `1985_03_12`).
//!
//! Digits are Unicode decimal digits: a phone number written in full-width digits is masked
//! like one written in ASCII.

use std::borrow::Cow;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Range;
use std::sync::OnceLock;

use percent_encoding::percent_decode_str;
use regex::Regex;

pub const EMAIL_PLACEHOLDER: &str = "privacy@exatom.io";
pub const IP_PLACEHOLDER: &str = "[ip]";
pub const DATE_PLACEHOLDER: &str = "01/01/1970";
/// Numbers with at least this many digits are masked even inside identifiers.
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

/// Compiles one of the rules' patterns once.
macro_rules! pattern {
    ($re:expr) => {{
        static RE: OnceLock<Regex> = OnceLock::new();
        RE.get_or_init(|| Regex::new($re).expect("scrub pattern compiles"))
    }};
}

/// Unicode word characters: `jösé@exämple.de` is an address too.
fn email() -> &'static Regex {
    pattern!(r"[\w.%+\-]+@[\w\-]+(?:\.[\w\-]+)+")
}

/// A run of what IPv6 addresses are written with (hex, `:`, and `.` for an embedded IPv4
/// tail such as `::ffff:192.0.2.1`) holding at least two colons: taken whole, so that no
/// address is cut in two by a neighbour; [`mask_ipv6`] finds the addresses inside.
fn ipv6() -> &'static Regex {
    pattern!(r"[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*")
}

fn ipv4() -> &'static Regex {
    pattern!(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")
}

/// A numeric date: `2024-03-12`, `12/03/1985`, `1.3.85`.
const DATE: &str = r"\b(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4})\b";

fn date() -> &'static Regex {
    pattern!(DATE)
}

/// Numeric dates, then any other run of digits. No capture group: a match is a date when
/// it holds a separator.
fn text_numbers() -> &'static Regex {
    pattern!(&format!(r"{DATE}|\d+"))
}

/// A number as people write it: digit groups joined by single separators.
fn identifier_numbers() -> &'static Regex {
    pattern!(r"\d+(?:[ _./:\-]\d+)*")
}

/// Scrubs text a person reads: titles, labels. Borrows the input back when no rule fired.
pub fn scrub_text<'t>(text: &'t str, counts: &mut ScrubCounts) -> Cow<'t, str> {
    replace(text, counts, false)
}

/// Scrubs a site identifier (form or field name or id, trigger, tag): short numbers stay;
/// dates and numbers of [`IDENTIFIER_MAX_DIGITS`] digits or more are masked. Borrows the
/// input back when no rule fired.
pub fn scrub_identifier<'t>(text: &'t str, counts: &mut ScrubCounts) -> Cow<'t, str> {
    replace(text, counts, true)
}

/// Whether any rule could fire: every rule needs an `@`, a `:` or a digit. Most labels,
/// titles and identifiers have none and leave after one byte scan.
fn may_hold_anything(text: &str) -> bool {
    let mut ascii = true;
    for b in text.bytes() {
        if b == b'@' || b == b':' || b.is_ascii_digit() {
            return true;
        }
        ascii &= b.is_ascii();
    }
    !ascii && text.chars().any(|c| c.is_numeric())
}

/// Whether `text` holds a digit, a dot and a digit in a row, as every IPv4 address does.
fn has_dotted_digits(text: &str) -> bool {
    text.as_bytes()
        .windows(3)
        .any(|w| w[1] == b'.' && w[0].is_ascii_digit() && w[2].is_ascii_digit())
}

/// One pass per rule, each over the previous pass's output: a candidate one rule turns down
/// (`std::vector` is no IPv6 address) is still seen whole by the next. Placeholders hold no
/// digit, `@` or `:`, so no later pass touches them. A pass runs only if the byte its
/// pattern cannot match without is there.
fn replace<'t>(text: &'t str, counts: &mut ScrubCounts, identifier: bool) -> Cow<'t, str> {
    if !may_hold_anything(text) {
        return Cow::Borrowed(text);
    }
    let mut out = Cow::Borrowed(text);
    if out.contains('@') {
        out = replace_all(out, email(), |_, _| {
            counts.emails += 1;
            Some(Cow::Borrowed(EMAIL_PLACEHOLDER))
        });
    }
    // The IPv6 pattern needs two colons.
    if out.bytes().filter(|&b| b == b':').nth(1).is_some() {
        out = replace_all(out, ipv6(), |haystack, at| {
            let candidate = &haystack[at.clone()];
            let before = haystack[..at.start].chars().next_back();
            let after = haystack[at.end..].chars().next();
            let masked = mask_ipv6(candidate, before, after, counts);
            (masked != candidate).then_some(Cow::Owned(masked))
        });
    }
    if has_dotted_digits(&out) {
        out = replace_all(out, ipv4(), |haystack, at| {
            haystack[at].parse::<Ipv4Addr>().ok().map(|_| {
                counts.ips += 1;
                Cow::Borrowed(IP_PLACEHOLDER)
            })
        });
    }
    if !out.chars().any(|c| c.is_numeric()) {
        return out;
    }
    // ASCII text, by far the most common, is searched without a regex (see `numbers`).
    let ascii = out.is_ascii();
    if identifier {
        let find = |t: &str, at: usize| match ascii {
            true => numbers::next_in_identifier(t.as_bytes(), at),
            false => identifier_numbers().find_at(t, at).map(|m| m.range()),
        };
        replace_found(out, find, |haystack, at| {
            let number = &haystack[at];
            let digits = number.chars().filter(|c| c.is_numeric()).count();
            // A date needs two separators: most short numbers are spared the date pattern.
            let separators = number.bytes().filter(|b| b"-/.".contains(b)).count();
            if digits < IDENTIFIER_MAX_DIGITS && (separators < 2 || !date().is_match(number)) {
                return None;
            }
            counts.digit_runs += 1;
            Some(Cow::Owned(mask_digits(number)))
        })
    } else {
        let find = |t: &str, at: usize| match ascii {
            true => numbers::next_in_text(t.as_bytes(), at),
            false => text_numbers().find_at(t, at).map(|m| m.range()),
        };
        replace_found(out, find, |haystack, at| {
            let number = &haystack[at];
            // The date branch always holds a separator, the digit-run branch never does.
            if number.bytes().any(|b| b"-/.".contains(&b)) {
                counts.dates += 1;
                return Some(Cow::Borrowed(DATE_PLACEHOLDER));
            }
            counts.digit_runs += 1;
            Some(Cow::Owned(mask_digits(number)))
        })
    }
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

/// Replaces every match of `re` by what `with` makes of it. Matches only, no capture
/// groups: finding a match's bounds is much cheaper than resolving its groups.
fn replace_all<'t>(
    text: Cow<'t, str>,
    re: &Regex,
    with: impl FnMut(&str, Range<usize>) -> Option<Cow<'static, str>>,
) -> Cow<'t, str> {
    replace_found(text, |t, at| re.find_at(t, at).map(|m| m.range()), with)
}

/// Replaces every match `find` reports (the next non-empty one from an offset) by what
/// `with` makes of it (given the haystack, so that it can look at a match's neighbours;
/// `None` keeps the match); borrows on as long as nothing was replaced.
fn replace_found<'t>(
    text: Cow<'t, str>,
    find: impl Fn(&str, usize) -> Option<Range<usize>>,
    mut with: impl FnMut(&str, Range<usize>) -> Option<Cow<'static, str>>,
) -> Cow<'t, str> {
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut from = 0;
    while let Some(m) = find(&text, from) {
        from = m.end;
        if let Some(replacement) = with(&text, m.clone()) {
            let out = out.get_or_insert_with(|| String::with_capacity(text.len() + 16));
            out.push_str(&text[copied..m.start]);
            out.push_str(&replacement);
            copied = m.end;
        }
    }
    match out {
        None => text,
        Some(mut out) => {
            out.push_str(&text[copied..]);
            Cow::Owned(out)
        }
    }
}

/// Every digit becomes `#`; separators stay.
fn mask_digits(number: &str) -> String {
    number
        .chars()
        .map(|c| if c.is_numeric() { '#' } else { c })
        .collect()
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

    pub fn allows(&self, name: &str) -> bool {
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
        return scrub_text(text, counts).into_owned();
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
                    Some((
                        scrub_identifier(&k, counts).into_owned(),
                        scrub_text(&v, counts).into_owned(),
                    ))
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
    let scrubbed_path = {
        // Decoded so that `%40` and friends are read as a person reads them.
        let decoded = percent_decode_str(url.path()).decode_utf8_lossy();
        match scrub_text(&decoded, counts) {
            Cow::Owned(scrubbed) if scrubbed != *decoded => Some(scrubbed),
            _ => None,
        }
    };
    if let Some(path) = scrubbed_path {
        url.set_path(&path);
    }
    if url.username() != "" {
        let _ = url.set_username("");
    }
    if url.password().is_some() {
        let _ = url.set_password(None);
    }
    url.into()
}

/// Scrubs a message a script wrote (an error's): every URL in it is scrubbed as a URL (its
/// query and fragment go), the rest as text a person reads.
pub fn scrub_message(text: &str, allow: &QueryAllowList, counts: &mut ScrubCounts) -> String {
    let urls = pattern!(r#"(?i)\b(?:https?|wss?)://[^\s'"<>()\[\]{}]+"#);
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    for m in urls.find_iter(text) {
        out.push_str(&scrub_text(&text[rest..m.start()], counts));
        out.push_str(&scrub_url(m.as_str(), allow, counts));
        rest = m.end();
    }
    out.push_str(&scrub_text(&text[rest..], counts));
    out
}

mod memo;
mod numbers;

pub use memo::Scrubber;

#[cfg(test)]
mod tests;
