//! Sessions and events → ClickHouse rows and the Avro `Session` record.

use std::collections::BTreeSet;

use clickhouse::Row;
use exatom_core::avro::{session_codec, Codec, CodecError};
use exatom_core::model::{
    AnonEvent, Click, ErrorFrame, EventKind, FormEventKind, Session, SessionEvent,
};
use exatom_core::time::days_since_epoch;
use serde::Serialize;

/// Rows written as events arrive carry this version; rows written when their session
/// closes carry [`FINAL_VERSION`] and replace them (ReplacingMergeTree).
pub const LIVE_VERSION: u64 = 1;
pub const FINAL_VERSION: u64 = 2;

/// Bits of `click_flags`.
pub const CLICK_INTERACTIVE: u8 = 1;
pub const CLICK_RAGE: u8 = 2;
pub const CLICK_DEAD: u8 = 4;

/// A click's flags as `click_flags` holds them.
pub fn click_flags(c: &Click) -> u8 {
    [
        (c.interactive, CLICK_INTERACTIVE),
        (c.rage, CLICK_RAGE),
        (c.dead, CLICK_DEAD),
    ]
    .into_iter()
    .filter(|(set, _)| *set)
    .fold(0, |flags, (_, bit)| flags | bit)
}

/// A stack frame as `error_frames` holds it: `file:line:column`.
fn frame_text(f: &ErrorFrame) -> String {
    format!("{}:{}:{}", f.file, f.line, f.column)
}

/// `file:line:column` back into its parts (the file is a URL: it holds colons itself).
pub(crate) fn frame(text: &str) -> ErrorFrame {
    let mut parts = text.rsplitn(3, ':');
    let column = parts.next().and_then(|c| c.parse().ok()).unwrap_or(0);
    let line = parts.next().and_then(|l| l.parse().ok()).unwrap_or(0);
    ErrorFrame {
        file: parts.next().unwrap_or_default().to_owned(),
        line,
        column,
    }
}

/// A row of `events`.
#[derive(Debug, Clone, PartialEq, Row, Serialize)]
pub struct EventRow {
    pub site: String,
    pub day: u16,
    pub event_id: String,
    pub session_id: String,
    pub visitor_id: String,
    pub seq: u32,
    pub kind: &'static str,
    pub event_time_ms: i64,
    pub received_at_ms: i64,
    pub page: String,
    pub title: String,
    pub referrer: String,
    pub form_key: String,
    pub field_key: String,
    /// The field's position on its page; -1 without a field.
    pub field_order: i32,
    pub form_event: &'static str,
    pub value: String,
    /// Whether the event carried a value: `""` is one (an empty field), absence is another.
    pub value_present: u8,
    pub conversion_tag: String,
    pub transaction_id: String,
    pub revenue: f64,
    pub currency: String,
    pub tooltip_action: &'static str,
    pub trigger: String,
    pub click_x: f64,
    pub click_y: i32,
    pub viewport_width: i32,
    pub element_path: String,
    /// [`CLICK_INTERACTIVE`], [`CLICK_RAGE`] and [`CLICK_DEAD`].
    pub click_flags: u8,
    /// -1 on events other than `scroll`.
    pub scroll_depth: i8,
    pub error_message: String,
    pub error_source: String,
    pub error_line: i32,
    pub error_column: i32,
    /// `file:line:column`, innermost first.
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
    pub version: u64,
}

impl EventRow {
    /// The row written the moment an event is placed in a session.
    pub fn live(e: &AnonEvent, session_id: &str, partition: i32, offset: i64) -> Self {
        let b = &e.body;
        let (click, error) = (b.click.as_ref(), b.error.as_ref());
        EventRow {
            site: e.site.clone(),
            day: days_since_epoch(e.event_time_ms),
            event_id: e.event_id.clone(),
            session_id: session_id.to_owned(),
            visitor_id: e.visitor_id.clone(),
            seq: 0,
            kind: e.kind.as_str(),
            event_time_ms: e.event_time_ms,
            received_at_ms: e.received_at_ms,
            page: b.page.clone().unwrap_or_default(),
            title: b.title.clone().unwrap_or_default(),
            referrer: b.referrer.clone().unwrap_or_default(),
            form_key: b.form.as_ref().map(|f| f.key()).unwrap_or_default(),
            field_key: b.field.as_ref().map(|f| f.key()).unwrap_or_default(),
            field_order: b.field.as_ref().map_or(-1, |f| f.order),
            form_event: b.form_event.map_or("", FormEventKind::as_str),
            value: b.value.clone().unwrap_or_default(),
            value_present: u8::from(b.value.is_some()),
            conversion_tag: b.conversion_tag.clone().unwrap_or_default(),
            transaction_id: b.transaction_id.clone().unwrap_or_default(),
            revenue: b.revenue.unwrap_or_default(),
            currency: b.currency.clone().unwrap_or_default(),
            tooltip_action: b.tooltip_action.map_or("", |a| a.as_str()),
            trigger: b.trigger.clone().unwrap_or_default(),
            click_x: click.map_or(0.0, |c| c.x),
            click_y: click.map_or(0, |c| c.y),
            viewport_width: click.map_or(0, |c| c.viewport_width),
            element_path: click.map(|c| c.path.clone()).unwrap_or_default(),
            click_flags: click.map_or(0, click_flags),
            scroll_depth: b.scroll_depth.map_or(-1, |d| d.clamp(0, 100) as i8),
            error_message: error.map(|e| e.message.clone()).unwrap_or_default(),
            error_source: error.map(|e| e.source.clone()).unwrap_or_default(),
            error_line: error.map_or(0, |e| e.line),
            error_column: error.map_or(0, |e| e.column),
            error_frames: error
                .map(|e| e.frames.iter().map(frame_text).collect())
                .unwrap_or_default(),
            country: e.device.country.clone(),
            region: e.device.region.clone(),
            browser_family: e.device.browser_family.clone(),
            browser_major: e.device.browser_major.clone(),
            os_family: e.device.os_family.clone(),
            device_class: e.device.device_class.clone(),
            is_bot: u8::from(e.device.is_bot),
            src_partition: partition,
            src_offset: offset,
            version: LIVE_VERSION,
        }
    }
}

/// A row of `sessions`.
#[derive(Debug, Clone, PartialEq, Row, Serialize)]
pub struct SessionRow {
    pub site: String,
    pub day: u16,
    pub session_id: String,
    pub visitor_id: String,
    pub started_ms: i64,
    pub ended_ms: i64,
    pub duration_ms: i64,
    pub events: u32,
    pub pageviews: u32,
    pub entry_page: String,
    pub exit_page: String,
    pub country: String,
    pub region: String,
    pub browser_family: String,
    pub browser_major: String,
    pub os_family: String,
    pub device_class: String,
    pub is_bot: u8,
    pub forms_viewed: u16,
    pub forms_started: u16,
    pub forms_submitted: u16,
    pub converted: u8,
    pub revenue: f64,
    pub version: u64,
}

/// Summarizes a closed session into its `sessions` row.
pub fn session_row(s: &Session) -> SessionRow {
    let pages: Vec<&str> = s.events.iter().filter_map(|e| e.page.as_deref()).collect();
    let forms_with = |pred: &dyn Fn(&SessionEvent) -> bool| -> u16 {
        let set: BTreeSet<&str> = s
            .events
            .iter()
            .filter(|e| pred(e))
            .filter_map(|e| e.form_key.as_deref())
            .collect();
        u16::try_from(set.len()).unwrap_or(u16::MAX)
    };
    let conversions: Vec<&SessionEvent> = s
        .events
        .iter()
        .filter(|e| e.kind == EventKind::Conversion)
        .collect();
    let d = &s.device;
    SessionRow {
        site: s.site.clone(),
        day: days_since_epoch(s.started_ms),
        session_id: s.session_id.clone(),
        visitor_id: s.visitor_id.clone(),
        started_ms: s.started_ms,
        ended_ms: s.ended_ms,
        duration_ms: s.ended_ms - s.started_ms,
        events: u32::try_from(s.events.len()).unwrap_or(u32::MAX),
        pageviews: s
            .events
            .iter()
            .filter(|e| e.kind == EventKind::PageView)
            .count() as u32,
        entry_page: pages.first().copied().unwrap_or_default().to_owned(),
        exit_page: pages.last().copied().unwrap_or_default().to_owned(),
        country: d.country.clone(),
        region: d.region.clone(),
        browser_family: d.browser_family.clone(),
        browser_major: d.browser_major.clone(),
        os_family: d.os_family.clone(),
        device_class: d.device_class.clone(),
        is_bot: u8::from(d.is_bot),
        forms_viewed: forms_with(&|e| e.kind == EventKind::FormView),
        forms_started: forms_with(&|e| e.form_event.is_some_and(FormEventKind::changes_data)),
        forms_submitted: forms_with(&|e| e.form_event == Some(FormEventKind::Submit)),
        converted: u8::from(!conversions.is_empty()),
        revenue: session_revenue(&conversions),
        version: FINAL_VERSION,
    }
}

/// The revenue of a session's conversions, each transaction id counted once: a thank-you
/// page loaded again reports its order again. (Across sessions the rollups count a
/// transaction once per site.) Conversions without a transaction id all count.
fn session_revenue(conversions: &[&SessionEvent]) -> f64 {
    let mut seen = BTreeSet::new();
    conversions
        .iter()
        .filter(|e| e.transaction_id.as_ref().is_none_or(|t| seen.insert(t)))
        .filter_map(|e| e.revenue)
        .sum()
}

/// Encodes closed sessions for `exatom.sessions`: key `site:session_id`.
#[derive(Debug)]
pub struct SessionEncoder {
    codec: Codec<Session>,
}

impl Default for SessionEncoder {
    fn default() -> Self {
        SessionEncoder {
            codec: session_codec(),
        }
    }
}

impl SessionEncoder {
    pub fn encode(&self, s: &Session) -> Result<(String, Vec<u8>), CodecError> {
        Ok((
            format!("{}:{}", s.site, s.session_id),
            self.codec.encode(s)?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use exatom_core::model::{Device, EventKind};

    fn ev(
        kind: EventKind,
        t: i64,
        page: Option<&str>,
        form: Option<&str>,
        fe: Option<FormEventKind>,
        revenue: Option<f64>,
    ) -> SessionEvent {
        SessionEvent {
            event_id: format!("e{t}"),
            kind,
            event_time_ms: t,
            page: page.map(str::to_owned),
            form_key: form.map(str::to_owned),
            field_key: None,
            form_event: fe,
            revenue,
            ..SessionEvent::default()
        }
    }

    #[test]
    fn session_row_summarizes_pages_forms_and_conversions() {
        let day0 = 1_795_000_000_000;
        let s = Session {
            session_id: "s".into(),
            site: "DEMO".into(),
            visitor_id: "v".into(),
            started_ms: day0,
            ended_ms: day0 + 90_000,
            device: Device::default(),
            events: vec![
                ev(
                    EventKind::PageView,
                    day0,
                    Some("https://x/a"),
                    None,
                    None,
                    None,
                ),
                ev(
                    EventKind::FormView,
                    day0 + 1,
                    Some("https://x/a"),
                    Some("f1"),
                    None,
                    None,
                ),
                ev(
                    EventKind::FormView,
                    day0 + 2,
                    Some("https://x/a"),
                    Some("f2"),
                    None,
                    None,
                ),
                ev(
                    EventKind::FormEvent,
                    day0 + 3,
                    Some("https://x/a"),
                    Some("f1"),
                    Some(FormEventKind::Focus),
                    None,
                ),
                ev(
                    EventKind::FormEvent,
                    day0 + 4,
                    Some("https://x/a"),
                    Some("f1"),
                    Some(FormEventKind::Input),
                    None,
                ),
                ev(
                    EventKind::FormEvent,
                    day0 + 5,
                    Some("https://x/a"),
                    Some("f2"),
                    Some(FormEventKind::Focus),
                    None,
                ),
                ev(
                    EventKind::FormEvent,
                    day0 + 6,
                    Some("https://x/a"),
                    Some("f1"),
                    Some(FormEventKind::Submit),
                    None,
                ),
                ev(
                    EventKind::PageView,
                    day0 + 7,
                    Some("https://x/thanks"),
                    None,
                    None,
                    None,
                ),
                ev(
                    EventKind::Conversion,
                    day0 + 90_000,
                    None,
                    None,
                    None,
                    Some(12.5),
                ),
            ],
        };
        let row = session_row(&s);
        assert_eq!(row.duration_ms, 90_000);
        assert_eq!(row.pageviews, 2);
        assert_eq!(row.events, 9);
        assert_eq!(
            (row.entry_page.as_str(), row.exit_page.as_str()),
            ("https://x/a", "https://x/thanks")
        );
        assert_eq!(
            (row.forms_viewed, row.forms_started, row.forms_submitted),
            (2, 1, 1)
        );
        assert_eq!((row.converted, row.revenue), (1, 12.5));
        assert_eq!(row.day, days_since_epoch(day0));
    }

    #[test]
    fn a_transaction_reported_again_in_a_session_counts_its_revenue_once() {
        let conversion = |transaction: Option<&str>, revenue: f64| SessionEvent {
            transaction_id: transaction.map(str::to_owned),
            ..ev(EventKind::Conversion, 0, None, None, None, Some(revenue))
        };
        let events = [
            conversion(Some("T-1"), 50.0),
            conversion(Some("T-1"), 50.0),
            conversion(Some("T-2"), 20.0),
            conversion(None, 5.0),
            conversion(None, 5.0),
        ];
        let refs: Vec<&SessionEvent> = events.iter().collect();
        assert_eq!(session_revenue(&refs), 80.0);
        assert_eq!(session_revenue(&refs[2..]), 30.0);
        assert_eq!(session_revenue(&[]), 0.0);
    }
}
