//! Turning a request body into validated events: the collector's pure core.
//!
//! A body that is not a batch is refused whole (400). Inside a batch each event is checked
//! on its own: invalid ones are listed with a reason, valid ones are kept. Values other than
//! `""` and `"*"` are replaced by `"*"` here, before anything is written or logged.

use exatom_core::model::{
    EventBody, EventKind, FieldRef, Form, FormEventKind, FormField, RawEvent, TooltipAction,
};
use serde_json::value::RawValue;

use crate::limits::Limits;
use checks::{bounded, bounded_str, canonical_uuid, json_error, parse_time, url_field};
use wire::{decode_event, Envelope, WireEvent, WireField, WireForm};

/// Why a whole body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("body is not a batch: {0}")]
    Malformed(String),
    #[error("body is over the limit of {0} bytes after decompression")]
    TooLarge(usize),
    #[error("gzip body expands more than {0} times: refused as a compression bomb")]
    CompressionBomb(usize),
    #[error("body is not valid gzip: {0}")]
    BadGzip(String),
}

/// An event refused inside an accepted batch, with a machine code and a human reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub index: usize,
    pub code: &'static str,
    pub detail: String,
}

impl Rejection {
    /// What the 202 body says: `code: detail`.
    pub fn reason(&self) -> String {
        format!("{}: {}", self.code, self.detail)
    }
}

/// Batch-level facts checked before the site registry is consulted.
pub struct Parsed<'a> {
    pub site: String,
    pub sent_at_ms: i64,
    events: Events<'a>,
}

/// A batch's events: decoded with the envelope when every one is well formed (one pass over
/// the body), else kept as JSON text to be decoded one by one, each problem named.
enum Events<'a> {
    Decoded(Vec<WireEvent<'a>>),
    Raw(Vec<&'a RawValue>),
}

/// Counts only: an event as sent may hold a typed value, which must never reach a log line.
impl std::fmt::Debug for Parsed<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parsed")
            .field("site", &self.site)
            .field("sent_at_ms", &self.sent_at_ms)
            .field("events", &self.events.len())
            .finish()
    }
}

impl Events<'_> {
    fn len(&self) -> usize {
        match self {
            Events::Decoded(events) => events.len(),
            Events::Raw(events) => events.len(),
        }
    }
}

/// What the request carried besides its body.
#[derive(Debug, Clone)]
pub struct Received<'r> {
    pub received_at_ms: i64,
    pub ip: &'r str,
    pub user_agent: &'r str,
    /// Conversion tags the site owns; empty means any tag is taken.
    pub conversion_tags: &'r [String],
}

/// The outcome of one batch: events to produce, refusals to report, values masked.
#[derive(Debug, Default)]
pub struct Validated {
    pub events: Vec<RawEvent>,
    pub rejected: Vec<Rejection>,
    pub values_masked: usize,
}

/// Parses the envelope: 400-class problems surface here.
pub fn parse<'a>(body: &'a [u8], limits: &Limits) -> Result<Parsed<'a>, BatchError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        BatchError::Malformed(format!("not valid UTF-8 (at byte {})", e.valid_up_to()))
    })?;
    // serde would also read an array as the envelope's fields in order: refuse it plainly.
    if !text.trim_start().starts_with('{') {
        return Err(BatchError::Malformed(
            "expected a JSON object {\"site\", \"sent_at\", \"events\"}".into(),
        ));
    }
    let (site, sent_at, events) = match wire::decode_whole(text, limits.max_events) {
        Some(whole) => (whole.site, whole.sent_at, Events::Decoded(whole.events)),
        None => {
            let envelope: Envelope<'a> = serde_json::from_str(text)
                .map_err(|e| BatchError::Malformed(json_error::<Envelope>(text, e)))?;
            (
                envelope.site,
                envelope.sent_at,
                Events::Raw(envelope.events),
            )
        }
    };
    if !valid_site_code(&site) {
        return Err(BatchError::Malformed(
            "`site` must be 2 to 32 characters of A-Z, a-z, 0-9, _ or -".into(),
        ));
    }
    let sent_at_ms =
        parse_time(&sent_at).map_err(|e| BatchError::Malformed(format!("`sent_at` {e}")))?;
    let n = events.len();
    if n == 0 || n > limits.max_events {
        return Err(BatchError::Malformed(format!(
            "`events` must hold 1 to {} events, got {n}",
            limits.max_events
        )));
    }
    Ok(Parsed {
        site,
        sent_at_ms,
        events,
    })
}

/// `[A-Za-z0-9_-]{2,32}`.
pub fn valid_site_code(site: &str) -> bool {
    (2..=32).contains(&site.len())
        && site
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Validates each event of a parsed batch.
pub fn validate(parsed: Parsed<'_>, received: &Received<'_>, limits: &Limits) -> Validated {
    let mut out = Validated {
        events: Vec::with_capacity(parsed.events.len()),
        ..Validated::default()
    };
    let batch = Batch {
        site: &parsed.site,
        sent_at_ms: parsed.sent_at_ms,
        received,
        limits,
    };
    let mut last_url = String::new();
    let mut take = |index: usize, wire: Result<WireEvent, Invalid>| {
        let masked = &mut out.values_masked;
        match wire.and_then(|wire| validate_event(wire, &batch, masked, &mut last_url)) {
            Ok(event) => out.events.push(event),
            Err((code, detail)) => out.rejected.push(Rejection {
                index,
                code,
                detail,
            }),
        }
    };
    match parsed.events {
        Events::Decoded(events) => {
            for (index, wire) in events.into_iter().enumerate() {
                take(index, Ok(wire));
            }
        }
        Events::Raw(events) => {
            for (index, raw) in events.into_iter().enumerate() {
                take(index, decode_event(raw.get()));
            }
        }
    }
    out
}

/// What every event of a batch is checked against.
struct Batch<'b> {
    site: &'b str,
    sent_at_ms: i64,
    received: &'b Received<'b>,
    limits: &'b Limits,
}

type Invalid = (&'static str, String);

fn validate_event(
    mut wire: WireEvent<'_>,
    batch: &Batch<'_>,
    values_masked: &mut usize,
    last_url: &mut String,
) -> Result<RawEvent, Invalid> {
    let (received, limits) = (batch.received, batch.limits);
    let event_id =
        canonical_uuid(&wire.id).ok_or_else(|| ("invalid_id", "`id` must be a UUID".to_owned()))?;
    let kind = match &*wire.kind {
        "page_view" => EventKind::PageView,
        "form_view" => EventKind::FormView,
        "form_event" => EventKind::FormEvent,
        "conversion" => EventKind::Conversion,
        "tooltip" => EventKind::Tooltip,
        "click" => EventKind::Click,
        "scroll" => EventKind::Scroll,
        "js_error" => EventKind::JsError,
        _ => return Err(("unknown_type", "`type` is not a known event type".into())),
    };
    let ts_ms = parse_time(&wire.ts).map_err(|e| ("invalid_ts", format!("`ts` {e}")))?;
    let event_time_ms = ts_ms + (received.received_at_ms - batch.sent_at_ms);
    if event_time_ms < received.received_at_ms - limits.max_age_ms {
        return Err((
            "stale",
            format!(
                "event time is more than {} s before receipt",
                limits.max_age_ms / 1000
            ),
        ));
    }
    if event_time_ms > received.received_at_ms + limits.max_ahead_ms {
        return Err((
            "future",
            format!(
                "event time is more than {} s after receipt",
                limits.max_ahead_ms / 1000
            ),
        ));
    }

    // Before the fields common to every kind are moved out of `wire`.
    let (click, scroll_depth, error) = match kind {
        EventKind::Click => (Some(behaviour::click_of(&mut wire, limits)?), None, None),
        EventKind::Scroll => (None, Some(behaviour::scroll_depth_of(&wire)?), None),
        EventKind::JsError => (None, None, Some(behaviour::error_of(&mut wire, limits)?)),
        _ => (None, None, None),
    };
    let text = |name: &str, v: Option<String>| -> Result<Option<String>, Invalid> {
        bounded(name, v, limits.max_string_chars)
    };
    let mut body = EventBody {
        click,
        scroll_depth,
        error,
        page: url_field("page", wire.page, limits, last_url)?,
        title: text("title", wire.title)?,
        referrer: match wire.referrer {
            Some(r) if r.is_empty() => None,
            other => url_field("referrer", other, limits, last_url)?,
        },
        ..EventBody::default()
    };
    if !matches!(kind, EventKind::Conversion | EventKind::Tooltip) && body.page.is_none() {
        return Err((
            "missing_page",
            format!("`page` is required for {}", kind.as_str()),
        ));
    }

    match kind {
        EventKind::PageView | EventKind::Unknown => {}
        EventKind::FormView => {
            let form = wire.form.ok_or((
                "missing_form",
                "`form` is required for form_view".to_owned(),
            ))?;
            body.form = Some(form_of(form, true, limits)?);
        }
        EventKind::FormEvent => {
            let form = wire.form.ok_or((
                "missing_form",
                "`form` is required for form_event".to_owned(),
            ))?;
            body.form = Some(form_of(form, false, limits)?);
            let event = form_event_kind(wire.event.as_deref())?;
            body.form_event = Some(event);
            body.seq = Some(
                wire.seq
                    .filter(|s| *s >= 0)
                    .ok_or(("invalid_seq", "`seq` must be a number ≥ 0".to_owned()))?,
            );
            let needs_field = !matches!(event, FormEventKind::Submit | FormEventKind::Reset);
            body.field = match (wire.field, needs_field) {
                (Some(f), true) => Some(field_of(f, limits)?),
                (None, true) => {
                    return Err((
                        "missing_field",
                        format!("`field` is required for {}", event.as_str()),
                    ))
                }
                (_, false) => None,
            };
            body.value = match (wire.value, event) {
                (_, FormEventKind::Focus) | (None, _) => None,
                (Some(v), _) => Some(mask_value(&v, values_masked)),
            };
        }
        EventKind::Conversion => {
            body.conversion_tag = Some(
                text("tag", wire.tag)?
                    .filter(|t| !t.is_empty())
                    .ok_or(("missing_tag", "`tag` is required for conversion".to_owned()))?,
            );
            let tag = body.conversion_tag.as_deref().unwrap_or_default();
            if !received.conversion_tags.is_empty()
                && !received.conversion_tags.iter().any(|t| t == tag)
            {
                return Err((
                    "unknown_tag",
                    "`tag` is not a conversion tag of this site".into(),
                ));
            }
            body.transaction_id = text("transaction_id", wire.transaction_id)?;
            body.revenue = match wire.revenue {
                Some(r) if !(r.is_finite() && r >= 0.0) => {
                    return Err(("invalid_revenue", "`revenue` must be a number ≥ 0".into()))
                }
                r => r,
            };
            body.currency = match wire.currency {
                Some(c) if c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()) => Some(c),
                Some(_) => {
                    return Err((
                        "invalid_currency",
                        "`currency` must be an ISO 4217 code such as EUR".into(),
                    ))
                }
                None => None,
            };
        }
        EventKind::Tooltip => {
            body.tooltip_action = Some(match wire.action.as_deref() {
                Some("impression") => TooltipAction::Impression,
                Some("click") => TooltipAction::Click,
                Some("close") => TooltipAction::Close,
                _ => {
                    return Err((
                        "invalid_action",
                        "`action` must be impression, click or close".into(),
                    ))
                }
            });
            body.trigger = Some(
                text("trigger", wire.trigger)?
                    .filter(|t| !t.is_empty())
                    .ok_or((
                        "missing_trigger",
                        "`trigger` is required for tooltip".to_owned(),
                    ))?,
            );
            let tooltip_id = wire.tooltip_id.unwrap_or_default();
            body.tooltip_id = Some(canonical_uuid(&tooltip_id).ok_or_else(|| {
                (
                    "invalid_tooltip_id",
                    "`tooltip_id` must be a UUID".to_owned(),
                )
            })?);
            body.form = wire.form.map(|f| form_of(f, false, limits)).transpose()?;
        }
        EventKind::Click | EventKind::Scroll | EventKind::JsError => {}
    }

    Ok(RawEvent {
        event_id,
        site: batch.site.to_owned(),
        kind,
        ts_ms,
        sent_at_ms: batch.sent_at_ms,
        received_at_ms: received.received_at_ms,
        event_time_ms,
        body,
        ip: received.ip.to_owned(),
        user_agent: received.user_agent.to_owned(),
    })
}

/// The privacy rule at the edge: a value is only ever `""` (empty) or `"*"` (holds data).
pub fn mask_value(value: &str, masked: &mut usize) -> String {
    if value.is_empty() {
        String::new()
    } else {
        if value != "*" {
            *masked += 1;
        }
        "*".to_owned()
    }
}

fn form_event_kind(event: Option<&str>) -> Result<FormEventKind, Invalid> {
    Ok(match event {
        Some("focus") => FormEventKind::Focus,
        Some("blur") => FormEventKind::Blur,
        Some("input") => FormEventKind::Input,
        Some("change") => FormEventKind::Change,
        Some("autofill") => FormEventKind::Autofill,
        Some("invalid") => FormEventKind::Invalid,
        Some("submit") => FormEventKind::Submit,
        Some("reset") => FormEventKind::Reset,
        _ => {
            return Err((
                "invalid_event",
                "`event` must be focus, blur, input, change, autofill, invalid, submit or reset"
                    .into(),
            ))
        }
    })
}

fn form_of(form: WireForm, with_structure: bool, limits: &Limits) -> Result<Form, Invalid> {
    let max = limits.max_string_chars;
    let fields = if with_structure {
        let fields = form.fields.unwrap_or_default();
        if fields.len() > limits.max_form_fields {
            return Err((
                "too_many_fields",
                format!("`form.fields` holds more than {}", limits.max_form_fields),
            ));
        }
        fields
            .into_iter()
            .map(|f| {
                Ok(FormField {
                    name: bounded_str("form.fields.name", f.name, max)?,
                    label: bounded_str("form.fields.label", f.label, max)?,
                    id: bounded_str("form.fields.id", f.id, max)?,
                    tag: bounded_str("form.fields.tag", f.tag, max)?,
                    input_type: bounded_str("form.fields.type", f.input_type, max)?,
                    order: f.order,
                    visible: f.visible.unwrap_or(true),
                    group: bounded_str("form.fields.group", f.group, max)?,
                })
            })
            .collect::<Result<Vec<_>, Invalid>>()?
    } else {
        Vec::new()
    };
    Ok(Form {
        name: bounded_str("form.name", form.name, max)?,
        id: bounded_str("form.id", form.id, max)?,
        order: form.order,
        html_id: bounded("form.html_id", form.html_id.filter(|_| with_structure), max)?,
        action: bounded("form.action", form.action.filter(|_| with_structure), max)?,
        title: bounded("form.title", form.title.filter(|_| with_structure), max)?,
        visible: form.visible.filter(|_| with_structure),
        fields,
    })
}

fn field_of(field: WireField, limits: &Limits) -> Result<FieldRef, Invalid> {
    let max = limits.max_string_chars;
    Ok(FieldRef {
        name: bounded_str("field.name", field.name, max)?,
        id: bounded_str("field.id", field.id, max)?,
        tag: bounded_str("field.tag", field.tag, max)?,
        input_type: bounded_str("field.type", field.input_type, max)?,
        order: field.order,
        label: bounded_str("field.label", field.label, max)?,
    })
}

mod behaviour;
pub(crate) mod checks;
mod wire;

pub use behaviour::{MAX_CLICK_Y, MAX_ERROR_FRAMES, MAX_SCRIPT_POSITION, MAX_VIEWPORT_WIDTH};

#[cfg(test)]
mod tests;
