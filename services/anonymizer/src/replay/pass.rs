//! The server's second pass over a replay batch: the browser's privacy rules
//! (`tags/src/replay.js`) applied again to every text node and attribute, with the
//! anonymizer's own text rules (`scrub`). What the browser did already passes unchanged;
//! anything else is fixed and counted, since it means a recorder that missed something (an
//! old or altered one, or a rule the browser does not know, such as IP addresses).

use serde_json::{Map, Value};

use crate::scrub::{scrub_identifier, scrub_text, QueryAllowList, ScrubCounts};

/// What the pass had to fix, by where it was found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Findings {
    pub texts: u64,
    pub attributes: u64,
    pub inputs: u64,
    /// Custom and plugin events: the recorder sends none, so a batch holding one was not
    /// made by it.
    pub foreign_events: u64,
}

impl Findings {
    pub fn total(&self) -> u64 {
        self.texts + self.attributes + self.inputs + self.foreign_events
    }
}

// The browser's attribute rules (replay.js), by attribute name.
fn removed(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    matches!(
        lower.as_str(),
        "alt" | "placeholder" | "title" | "checked" | "selected" | "srcset"
    ) || lower.starts_with("data-")
}

fn is_url(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "href" | "src" | "action" | "poster" | "formaction" | "cite"
    )
}

/// CSS (an element's `style`, a stylesheet's `_cssText`): only e-mails and long digit runs
/// are masked, as the browser does; the identifier rule would read `a::before` as an IPv6
/// address.
fn is_css(name: &str) -> bool {
    name.eq_ignore_ascii_case("style") || name.eq_ignore_ascii_case("_cssText")
}

fn css(text: &str) -> String {
    static EMAIL: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    static DIGITS: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let email = EMAIL.get_or_init(|| {
        regex::Regex::new(r"[\w.%+\-]+@[\w\-]+(?:\.[\w\-]+)+").expect("valid regex")
    });
    let digits = DIGITS.get_or_init(|| regex::Regex::new(r"\d{6,}").expect("valid regex"));
    let text = email.replace_all(text, crate::scrub::EMAIL_PLACEHOLDER);
    digits
        .replace_all(&text, |m: &regex::Captures<'_>| {
            "#".repeat(m[0].chars().count())
        })
        .into_owned()
}

fn is_layout(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "class"
            | "id"
            | "for"
            | "name"
            | "rr_width"
            | "rr_height"
            | "width"
            | "height"
            | "type"
            | "role"
            | "rel"
    )
}

/// Passes a batch's events (a JSON array) through the rules: the events again as JSON, and
/// what had to be fixed.
pub fn second_pass(
    events: &str,
    allow: &QueryAllowList,
) -> Result<(String, Findings), serde_json::Error> {
    let mut events: Vec<Value> = serde_json::from_str(events)?;
    let mut findings = Findings::default();
    events.retain_mut(|e| event(e, allow, &mut findings));
    Ok((serde_json::to_string(&events)?, findings))
}

/// One event made safe in place; false when it is dropped.
fn event(e: &mut Value, allow: &QueryAllowList, f: &mut Findings) -> bool {
    let kind = e.get("type").and_then(Value::as_u64);
    if matches!(kind, Some(5 | 6)) {
        f.foreign_events += 1;
        return false;
    }
    let Some(data) = e.get_mut("data").and_then(Value::as_object_mut) else {
        return true;
    };
    match kind {
        Some(2) => {
            if let Some(n) = data.get_mut("node") {
                node(n, allow, f);
            }
        }
        Some(4) => {
            if let Some(Value::String(href)) = data.get_mut("href") {
                fix(href, &mut f.attributes, |h| url(h, allow));
            }
        }
        Some(3) => match data.get("source").and_then(Value::as_u64) {
            Some(0) => mutation(data, allow, f),
            Some(5) => input(data, f),
            _ => {}
        },
        _ => {}
    }
    true
}

fn mutation(data: &mut Map<String, Value>, allow: &QueryAllowList, f: &mut Findings) {
    for add in array(data, "adds") {
        if let Some(n) = add.get_mut("node") {
            node(n, allow, f);
        }
    }
    for change in array(data, "texts") {
        if let Some(Value::String(text)) = change.get_mut("value") {
            fix(text, &mut f.texts, |t| {
                scrub_text(t, &mut ScrubCounts::default()).into_owned()
            });
        }
    }
    for change in array(data, "attributes") {
        if let Some(Value::Object(attrs)) = change.get_mut("attributes") {
            attributes(attrs, allow, f);
        }
    }
}

/// An input's value is "" or "*", never what was typed; a box is never shown checked.
fn input(data: &mut Map<String, Value>, f: &mut Findings) {
    if let Some(text) = data.get_mut("text") {
        let safe = match text {
            Value::String(s) if s.is_empty() || s == "*" => None,
            Value::String(_) => Some(Value::from("*")),
            _ => Some(Value::from("")),
        };
        if let Some(safe) = safe {
            *text = safe;
            f.inputs += 1;
        }
    }
    if data.get("isChecked") == Some(&Value::Bool(true)) {
        data.insert("isChecked".into(), Value::Bool(false));
        f.inputs += 1;
    }
}

fn array<'a>(data: &'a mut Map<String, Value>, key: &str) -> impl Iterator<Item = &'a mut Value> {
    data.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
}

/// A serialized DOM node and its children (rrweb-snapshot: 2 element, 3 text, 5 comment).
fn node(n: &mut Value, allow: &QueryAllowList, f: &mut Findings) {
    let Some(obj) = n.as_object_mut() else { return };
    match obj.get("type").and_then(Value::as_u64) {
        Some(2) => {
            if let Some(Value::Object(attrs)) = obj.get_mut("attributes") {
                attributes(attrs, allow, f);
            }
        }
        Some(3) if obj.get("isStyle") != Some(&Value::Bool(true)) => {
            if let Some(Value::String(text)) = obj.get_mut("textContent") {
                fix(text, &mut f.texts, |t| {
                    scrub_text(t, &mut ScrubCounts::default()).into_owned()
                });
            }
        }
        Some(5) => {
            if let Some(Value::String(text)) = obj.get_mut("textContent") {
                fix(text, &mut f.texts, |_| String::new());
            }
        }
        _ => {}
    }
    if let Some(Value::Array(children)) = obj.get_mut("childNodes") {
        for child in children {
            node(child, allow, f);
        }
    }
}

fn attributes(attrs: &mut Map<String, Value>, allow: &QueryAllowList, f: &mut Findings) {
    let before = attrs.len();
    attrs.retain(|name, _| !removed(name));
    f.attributes += (before - attrs.len()) as u64;
    for (name, value) in attrs.iter_mut() {
        let Value::String(v) = value else { continue };
        if name.eq_ignore_ascii_case("value") {
            fix(v, &mut f.attributes, |v| {
                if v.is_empty() {
                    String::new()
                } else {
                    "*".into()
                }
            });
        } else if is_url(name) {
            if !v.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("data:")) {
                fix(v, &mut f.attributes, |v| url(v, allow));
            }
        } else if is_css(name) {
            fix(v, &mut f.attributes, css);
        } else if is_layout(name) {
            fix(v, &mut f.attributes, |v| {
                scrub_identifier(v, &mut ScrubCounts::default()).into_owned()
            });
        } else {
            fix(v, &mut f.attributes, |v| {
                scrub_text(v, &mut ScrubCounts::default()).into_owned()
            });
        }
    }
}

/// The browser's URL rule: no credentials, no fragment, no query parameter but the allowed
/// ones; then the identifier rule over what is left (e-mails, IP addresses, dates and long
/// numbers), which keeps a path's short numbers (`/products/12`).
fn url(text: &str, allow: &QueryAllowList) -> String {
    let cleaned = match url::Url::parse(text) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_fragment(None);
            let kept: Vec<(String, String)> = u
                .query_pairs()
                .filter(|(k, _)| allow.allows(k))
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            if kept.is_empty() {
                u.set_query(None);
            } else {
                u.query_pairs_mut().clear().extend_pairs(kept);
            }
            u.to_string()
        }
        Err(_) => text.to_owned(),
    };
    scrub_identifier(&cleaned, &mut ScrubCounts::default()).into_owned()
}

/// Replaces `value` by `rule(value)` when that differs, counting it.
fn fix(value: &mut String, found: &mut u64, rule: impl FnOnce(&str) -> String) {
    let safe = rule(value);
    if safe != *value {
        *value = safe;
        *found += 1;
    }
}
