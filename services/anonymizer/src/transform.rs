//! RawEvent → AnonEvent: the one place identity is turned into a daily visitor id and
//! free text is scrubbed. Pure: salt, device and location are given.

use std::borrow::Cow;

use exatom_core::model::{
    AnonEvent, Click, Device, ErrorFrame, EventBody, FieldRef, Form, RawEvent, ScriptError,
};

use crate::scrub::{scrub_identifier, scrub_text, ScrubCounts, Scrubber};
use crate::transactions::TransactionKeys;
use crate::visitor::{visitor_id, Salt};

/// Why a raw event that decodes is still refused (it goes to the DLQ). The messages name
/// the field, never its content: reasons are stored and logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("site is not 2 to 32 characters of A-Z, a-z, 0-9, _ or -")]
    Site,
    #[error("event_id is not a UUID")]
    EventId,
    #[error("tooltip_id is not a UUID")]
    TooltipId,
    #[error("currency is not an ISO 4217 code")]
    Currency,
}

/// Checks what the collector promises about a raw event's identifiers: anything may be
/// written to `exatom.raw`, and these fields pass the anonymizer unscrubbed.
pub fn check(raw: &RawEvent) -> Result<(), Invalid> {
    let site_ok = (2..=32).contains(&raw.site.len())
        && raw
            .site
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !site_ok {
        return Err(Invalid::Site);
    }
    if uuid::Uuid::try_parse(&raw.event_id).is_err() {
        return Err(Invalid::EventId);
    }
    if let Some(id) = &raw.body.tooltip_id {
        if uuid::Uuid::try_parse(id).is_err() {
            return Err(Invalid::TooltipId);
        }
    }
    if let Some(code) = &raw.body.currency {
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(Invalid::Currency);
        }
    }
    Ok(())
}

/// Builds the anonymized event (of an event that passed [`check`]). `device` already holds
/// the coarse location and UA class; `scrubber` remembers the page text it saw lately (the
/// result is the same as scrubbing afresh).
pub fn anonymize(
    raw: RawEvent,
    salt: &Salt,
    device: Device,
    transactions: &TransactionKeys,
    scrubber: &mut Scrubber,
    counts: &mut ScrubCounts,
) -> AnonEvent {
    let day = exatom_core::time::utc_day(raw.received_at_ms);
    let visitor_id = visitor_id(salt, &raw.site, &raw.user_agent, &raw.ip, day);
    let body = scrub_body(raw.body, &raw.site, transactions, scrubber, counts);
    AnonEvent {
        event_id: raw.event_id,
        site: raw.site,
        visitor_id,
        kind: raw.kind,
        event_time_ms: raw.event_time_ms,
        received_at_ms: raw.received_at_ms,
        body,
        device,
    }
}

fn scrub_body(
    b: EventBody,
    site: &str,
    transactions: &TransactionKeys,
    scrubber: &mut Scrubber,
    c: &mut ScrubCounts,
) -> EventBody {
    EventBody {
        page: b.page.map(|u| scrubber.url(u, c)),
        referrer: b.referrer.map(|u| scrubber.url(u, c)),
        title: b.title.map(|t| scrubber.page_text(t, c)),
        form: b.form.map(|f| scrub_form(f, scrubber, c)),
        form_event: b.form_event,
        seq: b.seq,
        field: b.field.map(|f| scrub_field(f, c)),
        // Enforced again: the collector already allows only "" and "*".
        value: b
            .value
            .map(|v| if v.is_empty() { v } else { "*".to_owned() }),
        conversion_tag: b.conversion_tag.map(|s| ident(s, c)),
        transaction_id: b.transaction_id.map(|t| transactions.key(site, &t)),
        revenue: b.revenue,
        currency: b.currency,
        tooltip_action: b.tooltip_action,
        trigger: b.trigger.map(|s| ident(s, c)),
        tooltip_id: b.tooltip_id,
        click: b.click.map(|click| Click {
            path: text(click.path, c),
            ..click
        }),
        scroll_depth: b.scroll_depth,
        error: b.error.map(|e| scrub_error(e, scrubber, c)),
    }
}

/// An error's message and script URLs: the message may quote what the page held (an
/// address, an order number, a URL with a token), the URLs a query.
fn scrub_error(e: ScriptError, scrubber: &mut Scrubber, c: &mut ScrubCounts) -> ScriptError {
    let script = |url: String, scrubber: &mut Scrubber, c: &mut ScrubCounts| {
        if url.is_empty() {
            url
        } else {
            scrubber.url(url, c)
        }
    };
    ScriptError {
        message: scrubber.message(&e.message, c),
        source: script(e.source, scrubber, c),
        line: e.line,
        column: e.column,
        frames: e
            .frames
            .into_iter()
            .map(|f| ErrorFrame {
                file: script(f.file, scrubber, c),
                ..f
            })
            .collect(),
    }
}

fn scrub_form(f: Form, scrubber: &mut Scrubber, c: &mut ScrubCounts) -> Form {
    Form {
        name: ident(f.name, c),
        id: ident(f.id, c),
        order: f.order,
        html_id: f.html_id.map(|s| ident(s, c)),
        action: f.action.map(|u| scrubber.url(u, c)),
        title: f.title.map(|t| scrubber.page_text(t, c)),
        visible: f.visible,
        fields: f
            .fields
            .into_iter()
            .map(|field| exatom_core::model::FormField {
                name: ident(field.name, c),
                label: text(field.label, c),
                id: ident(field.id, c),
                tag: ident(field.tag, c),
                input_type: ident(field.input_type, c),
                order: field.order,
                visible: field.visible,
                group: text(field.group, c),
            })
            .collect(),
    }
}

/// Scrubs text a person reads, handing the string back without a copy when no rule fired.
fn text(s: String, c: &mut ScrubCounts) -> String {
    keep_unless_changed(s, |s| scrub_text(s, c))
}

/// Scrubs a site identifier, handing the string back without a copy when no rule fired.
fn ident(s: String, c: &mut ScrubCounts) -> String {
    keep_unless_changed(s, |s| scrub_identifier(s, c))
}

fn keep_unless_changed(s: String, scrub: impl FnOnce(&str) -> Cow<'_, str>) -> String {
    let changed = match scrub(&s) {
        Cow::Borrowed(_) => None,
        Cow::Owned(changed) => Some(changed),
    };
    changed.unwrap_or(s)
}

fn scrub_field(f: FieldRef, c: &mut ScrubCounts) -> FieldRef {
    FieldRef {
        name: ident(f.name, c),
        id: ident(f.id, c),
        tag: ident(f.tag, c),
        input_type: ident(f.input_type, c),
        order: f.order,
        label: text(f.label, c),
    }
}

#[cfg(test)]
mod tests;
