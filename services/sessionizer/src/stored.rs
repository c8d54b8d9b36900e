//! Closed sessions get their content back from ClickHouse: open sessions hold only event
//! ids and times (see `rules`), and every event was written to `events` the moment it was
//! placed. Pure: the query lives in `service`.

use std::collections::HashMap;

use clickhouse::Row;
use exatom_core::model::{
    Click, Device, EventKind, FormEventKind, ScriptError, Session, SessionEvent, TooltipAction,
};
use serde::Deserialize;

use crate::encoder::{frame, EventRow, CLICK_DEAD, CLICK_INTERACTIVE, CLICK_RAGE, FINAL_VERSION};
use crate::rules::ClosedSession;

/// The columns of [`StoredEvent`], in its field order, for the read-back query.
pub const STORED_COLUMNS: &str = "site, day, event_id, visitor_id, kind, event_time_ms, \
    received_at_ms, page, title, referrer, form_key, field_key, field_order, form_event, value, \
    value_present, conversion_tag, transaction_id, revenue, currency, tooltip_action, \
    trigger, click_x, click_y, viewport_width, element_path, click_flags, scroll_depth, \
    error_message, error_source, error_line, error_column, error_frames, country, region, browser_family, browser_major, os_family, device_class, \
    is_bot, src_partition, src_offset, session_id, version";

/// A row of `events` as read back: its content (the same in every row of one event id) and
/// the session and version it was written under.
#[derive(Debug, Clone, PartialEq, Row, Deserialize)]
pub struct StoredEvent {
    pub site: String,
    pub day: u16,
    pub event_id: String,
    pub visitor_id: String,
    pub kind: String,
    pub event_time_ms: i64,
    pub received_at_ms: i64,
    pub page: String,
    pub title: String,
    pub referrer: String,
    pub form_key: String,
    pub field_key: String,
    pub field_order: i32,
    pub form_event: String,
    pub value: String,
    pub value_present: u8,
    pub conversion_tag: String,
    pub transaction_id: String,
    pub revenue: f64,
    pub currency: String,
    pub tooltip_action: String,
    pub trigger: String,
    pub click_x: f64,
    pub click_y: i32,
    pub viewport_width: i32,
    pub element_path: String,
    pub click_flags: u8,
    pub scroll_depth: i8,
    pub error_message: String,
    pub error_source: String,
    pub error_line: i32,
    pub error_column: i32,
    pub error_frames: Vec<String>,
    pub country: String,
    pub region: String,
    pub browser_family: String,
    pub browser_major: String,
    pub os_family: String,
    pub device_class: String,
    pub is_bot: u8,
    pub src_partition: i32,
    pub src_offset: i64,
    pub session_id: String,
    pub version: u64,
}

impl StoredEvent {
    /// The click of a `click` event's row.
    fn click(&self) -> Click {
        Click {
            x: self.click_x,
            y: self.click_y,
            viewport_width: self.viewport_width,
            path: self.element_path.clone(),
            interactive: self.click_flags & CLICK_INTERACTIVE != 0,
            rage: self.click_flags & CLICK_RAGE != 0,
            dead: self.click_flags & CLICK_DEAD != 0,
        }
    }

    /// The error of a `js_error` event's row.
    fn error(&self) -> ScriptError {
        ScriptError {
            message: self.error_message.clone(),
            source: self.error_source.clone(),
            line: self.error_line,
            column: self.error_column,
            frames: self.error_frames.iter().map(|f| frame(f)).collect(),
        }
    }

    /// Which of two rows of one event tells more: a final row says where the event ended up.
    pub fn prefer(self, other: StoredEvent) -> StoredEvent {
        if other.version > self.version {
            other
        } else {
            self
        }
    }
}

/// A closed session, assembled: its record for `exatom.sessions` and its final `events` rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Assembled {
    /// `None` when every event of the session was already written in another one.
    pub session: Option<Session>,
    pub final_rows: Vec<EventRow>,
    /// Events left out because a session already written holds them: a record delivered
    /// again by an upstream replay after its first copy's session had closed.
    pub already_written: usize,
}

/// An event of a closing session that ClickHouse did not return (yet): the read is retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event {event_id} of session {session_id} is not readable in ClickHouse `events` yet")]
pub struct Missing {
    pub session_id: String,
    pub event_id: String,
}

/// Builds the session record and final rows of `closed` from its stored events (per event
/// id, the row [`StoredEvent::prefer`] keeps).
pub fn assemble(
    closed: &ClosedSession,
    stored: &HashMap<String, StoredEvent>,
) -> Result<Assembled, Missing> {
    let mut events = Vec::with_capacity(closed.events.len());
    let mut final_rows = Vec::with_capacity(closed.events.len());
    let mut device = None;
    let mut already_written = 0;
    for stub in &closed.events {
        let event_id = stub.event_id();
        let Some(e) = stored.get(&event_id) else {
            return Err(Missing {
                session_id: closed.session_id.clone(),
                event_id,
            });
        };
        if e.version == FINAL_VERSION && e.session_id != closed.session_id {
            already_written += 1;
            continue;
        }
        device.get_or_insert_with(|| Device {
            country: e.country.clone(),
            region: e.region.clone(),
            browser_family: e.browser_family.clone(),
            browser_major: e.browser_major.clone(),
            os_family: e.os_family.clone(),
            device_class: e.device_class.clone(),
            is_bot: e.is_bot != 0,
        });
        final_rows.push(final_row(e, &closed.session_id, events.len() as u32));
        events.push(session_event(e));
    }
    let session = match (events.first(), events.last()) {
        (Some(first), Some(last)) => Some(Session {
            session_id: closed.session_id.clone(),
            site: closed.site.clone(),
            visitor_id: closed.visitor_id.clone(),
            started_ms: first.event_time_ms,
            ended_ms: last.event_time_ms,
            device: device.unwrap_or_default(),
            events,
        }),
        _ => None,
    };
    Ok(Assembled {
        session,
        final_rows,
        already_written,
    })
}

fn some(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

fn session_event(e: &StoredEvent) -> SessionEvent {
    let kind = EventKind::from_name(&e.kind);
    SessionEvent {
        event_id: e.event_id.clone(),
        kind,
        event_time_ms: e.event_time_ms,
        page: some(&e.page),
        form_key: some(&e.form_key),
        field_key: some(&e.field_key),
        form_event: (!e.form_event.is_empty()).then(|| FormEventKind::from_name(&e.form_event)),
        // `""` is a value (an empty field), so presence is stored apart from the text.
        value: (e.value_present != 0).then(|| e.value.clone()),
        conversion_tag: some(&e.conversion_tag),
        transaction_id: some(&e.transaction_id),
        revenue: (e.kind == EventKind::Conversion.as_str()).then_some(e.revenue),
        currency: some(&e.currency),
        tooltip_action: (!e.tooltip_action.is_empty())
            .then(|| TooltipAction::from_name(&e.tooltip_action)),
        trigger: some(&e.trigger),
        click: (kind == EventKind::Click).then(|| e.click()),
        scroll_depth: (kind == EventKind::Scroll).then_some(i32::from(e.scroll_depth)),
        error: (kind == EventKind::JsError).then(|| e.error()),
    }
}

fn final_row(e: &StoredEvent, session_id: &str, seq: u32) -> EventRow {
    EventRow {
        site: e.site.clone(),
        day: e.day,
        event_id: e.event_id.clone(),
        session_id: session_id.to_owned(),
        visitor_id: e.visitor_id.clone(),
        seq,
        kind: EventKind::from_name(&e.kind).as_str(),
        event_time_ms: e.event_time_ms,
        received_at_ms: e.received_at_ms,
        page: e.page.clone(),
        title: e.title.clone(),
        referrer: e.referrer.clone(),
        form_key: e.form_key.clone(),
        field_key: e.field_key.clone(),
        field_order: e.field_order,
        form_event: stored_name(
            &e.form_event,
            FormEventKind::from_name,
            FormEventKind::as_str,
        ),
        value: e.value.clone(),
        value_present: e.value_present,
        conversion_tag: e.conversion_tag.clone(),
        transaction_id: e.transaction_id.clone(),
        revenue: e.revenue,
        currency: e.currency.clone(),
        tooltip_action: stored_name(
            &e.tooltip_action,
            TooltipAction::from_name,
            TooltipAction::as_str,
        ),
        trigger: e.trigger.clone(),
        click_x: e.click_x,
        click_y: e.click_y,
        viewport_width: e.viewport_width,
        element_path: e.element_path.clone(),
        click_flags: e.click_flags,
        scroll_depth: e.scroll_depth,
        error_message: e.error_message.clone(),
        error_source: e.error_source.clone(),
        error_line: e.error_line,
        error_column: e.error_column,
        error_frames: e.error_frames.clone(),
        country: e.country.clone(),
        region: e.region.clone(),
        browser_family: e.browser_family.clone(),
        browser_major: e.browser_major.clone(),
        os_family: e.os_family.clone(),
        device_class: e.device_class.clone(),
        is_bot: e.is_bot,
        src_partition: e.src_partition,
        src_offset: e.src_offset,
        version: FINAL_VERSION,
    }
}

/// The `&'static` name of an enum column ("" stays "").
fn stored_name<T: Copy>(
    name: &str,
    parse: fn(&str) -> T,
    as_str: fn(T) -> &'static str,
) -> &'static str {
    if name.is_empty() {
        ""
    } else {
        as_str(parse(name))
    }
}

#[cfg(test)]
mod tests;
