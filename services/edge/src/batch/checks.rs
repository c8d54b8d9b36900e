//! Checks of single values sent by browsers: lengths, text, URLs, times, UUIDs, and what
//! to say when JSON does not parse.

use chrono::DateTime;
use serde::Deserialize;

use super::Invalid;
use crate::limits::Limits;

/// What is wrong with a JSON text that did not parse as `T` (`first` is the error that
/// said so), naming the field (`events[3]`, `seq`) when there is one. Parses a second time,
/// with the path tracked: only refusals pay for it.
pub(super) fn json_error<'a, T: Deserialize<'a>>(
    text: &'a str,
    first: serde_json::Error,
) -> String {
    let mut de = serde_json::Deserializer::from_str(text);
    match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Err(e) if e.path().iter().next().is_some() => format!("`{}`: {}", e.path(), e.inner()),
        _ => first.to_string(),
    }
}

/// The UUID in its lowercase hyphenated form, the event's idempotency key.
pub(crate) fn canonical_uuid(text: &str) -> Option<String> {
    let uuid = uuid::Uuid::try_parse(text).ok()?;
    let mut buf = uuid::Uuid::encode_buffer();
    Some(uuid.hyphenated().encode_lower(&mut buf).to_owned())
}

pub(super) fn bounded(
    name: &str,
    value: Option<String>,
    max: usize,
) -> Result<Option<String>, Invalid> {
    value.map(|v| bounded_str(name, v, max)).transpose()
}

pub(super) fn bounded_str(name: &str, value: String, max: usize) -> Result<String, Invalid> {
    if value.len() > max && value.chars().count() > max {
        return Err((
            "too_long",
            format!("`{name}` is longer than {max} characters"),
        ));
    }
    if value.contains('\0') {
        return Err(("invalid_text", format!("`{name}` contains a NUL character")));
    }
    Ok(value)
}

/// An absolute http(s) URL. `last_valid` is the last URL found valid in this batch: the
/// events of a batch mostly share their page, which is then parsed once.
pub(super) fn url_field(
    name: &str,
    value: Option<String>,
    limits: &Limits,
    last_valid: &mut String,
) -> Result<Option<String>, Invalid> {
    let Some(value) = bounded(name, value, limits.max_url_chars)? else {
        return Ok(None);
    };
    if value == *last_valid {
        return Ok(Some(value));
    }
    match url::Url::parse(&value) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => {
            last_valid.clone_from(&value);
            Ok(Some(value))
        }
        _ => Err((
            "invalid_url",
            format!("`{name}` must be an absolute http(s) URL"),
        )),
    }
}

pub(crate) fn parse_time(text: &str) -> Result<i64, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|_| "must be an RFC 3339 time such as 2026-11-23T10:00:05.120Z".to_owned())
}

/// An absolute http(s) URL cut to its origin and path: no credentials, query or fragment.
pub(super) fn url_path(name: &str, value: String, limits: &Limits) -> Result<String, Invalid> {
    let value = bounded_str(name, value, limits.max_url_chars)?;
    match url::Url::parse(&value) {
        Ok(mut u) if matches!(u.scheme(), "http" | "https") => {
            u.set_query(None);
            u.set_fragment(None);
            // Infallible for http(s) URLs, which always have a host.
            let _ = u.set_username("");
            let _ = u.set_password(None);
            Ok(u.into())
        }
        _ => Err((
            "invalid_url",
            format!("`{name}` must be an absolute http(s) URL"),
        )),
    }
}
