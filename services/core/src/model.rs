//! The records that travel the topic chain, as Rust types.
//!
//! Field names and order mirror `schemas/avro/*.avsc`: the Avro codec serializes these
//! structs against those schemas, so a drift between the two fails the round-trip tests.

use serde::{Deserialize, Serialize};

/// What the browser tag reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    PageView,
    FormView,
    FormEvent,
    Conversion,
    Tooltip,
    /// A click anywhere on the page: where, on what, and whether in anger or in vain.
    Click,
    /// How far down the page a visitor got.
    Scroll,
    /// An unhandled script error or promise rejection of the site's own code.
    JsError,
    /// A symbol added by a newer writer; readers keep the record and ignore its meaning.
    #[default]
    Unknown,
}

impl EventKind {
    /// Every kind this version knows (all but `Unknown`), in the schema's order.
    pub const KNOWN: [EventKind; 8] = [
        EventKind::PageView,
        EventKind::FormView,
        EventKind::FormEvent,
        EventKind::Conversion,
        EventKind::Tooltip,
        EventKind::Click,
        EventKind::Scroll,
        EventKind::JsError,
    ];

    /// The value whose [`as_str`](Self::as_str) is `name` (how ClickHouse stores it);
    /// `Unknown` for any other name.
    pub fn from_name(name: &str) -> Self {
        Self::KNOWN
            .into_iter()
            .find(|v| v.as_str() == name)
            .unwrap_or(EventKind::Unknown)
    }

    /// The contract's name of the kind, as stored in ClickHouse.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::PageView => "page_view",
            EventKind::FormView => "form_view",
            EventKind::FormEvent => "form_event",
            EventKind::Conversion => "conversion",
            EventKind::Tooltip => "tooltip",
            EventKind::Click => "click",
            EventKind::Scroll => "scroll",
            EventKind::JsError => "js_error",
            EventKind::Unknown => "unknown",
        }
    }
}

/// What happened on a form or one of its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FormEventKind {
    Focus,
    Blur,
    Input,
    Change,
    Autofill,
    Invalid,
    Submit,
    Reset,
    Unknown,
}

impl FormEventKind {
    /// Every event this version knows (all but `Unknown`), in the schema's order.
    pub const KNOWN: [FormEventKind; 8] = [
        FormEventKind::Focus,
        FormEventKind::Blur,
        FormEventKind::Input,
        FormEventKind::Change,
        FormEventKind::Autofill,
        FormEventKind::Invalid,
        FormEventKind::Submit,
        FormEventKind::Reset,
    ];

    /// The value whose [`as_str`](Self::as_str) is `name` (how ClickHouse stores it);
    /// `Unknown` for any other name.
    pub fn from_name(name: &str) -> Self {
        Self::KNOWN
            .into_iter()
            .find(|v| v.as_str() == name)
            .unwrap_or(FormEventKind::Unknown)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FormEventKind::Focus => "focus",
            FormEventKind::Blur => "blur",
            FormEventKind::Input => "input",
            FormEventKind::Change => "change",
            FormEventKind::Autofill => "autofill",
            FormEventKind::Invalid => "invalid",
            FormEventKind::Submit => "submit",
            FormEventKind::Reset => "reset",
            FormEventKind::Unknown => "unknown",
        }
    }

    /// `input`, `change` and `autofill` change a field's data: they are what makes a start.
    pub fn changes_data(self) -> bool {
        matches!(
            self,
            FormEventKind::Input | FormEventKind::Change | FormEventKind::Autofill
        )
    }
}

/// What a visitor did with a site's tooltip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TooltipAction {
    Impression,
    Click,
    Close,
    Unknown,
}

impl TooltipAction {
    /// Every action this version knows (all but `Unknown`), in the schema's order.
    pub const KNOWN: [TooltipAction; 3] = [
        TooltipAction::Impression,
        TooltipAction::Click,
        TooltipAction::Close,
    ];

    /// The value whose [`as_str`](Self::as_str) is `name` (how ClickHouse stores it);
    /// `Unknown` for any other name.
    pub fn from_name(name: &str) -> Self {
        Self::KNOWN
            .into_iter()
            .find(|v| v.as_str() == name)
            .unwrap_or(TooltipAction::Unknown)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TooltipAction::Impression => "impression",
            TooltipAction::Click => "click",
            TooltipAction::Close => "close",
            TooltipAction::Unknown => "unknown",
        }
    }
}

/// One field of a form as found on the page: structure only, never a value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FormField {
    pub name: String,
    pub label: String,
    pub id: String,
    pub tag: String,
    #[serde(rename = "type")]
    pub input_type: String,
    pub order: i32,
    pub visible: bool,
    pub group: String,
}

/// A form: the reference carried by `form_event` and `tooltip`, with its structure on `form_view`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Form {
    pub name: String,
    pub id: String,
    pub order: i32,
    pub html_id: Option<String>,
    pub action: Option<String>,
    pub title: Option<String>,
    pub visible: Option<bool>,
    pub fields: Vec<FormField>,
}

impl Form {
    /// The key every report groups by: see [`crate::keys::form_key`].
    pub fn key(&self) -> String {
        crate::keys::form_key(&self.name, &self.id, self.order)
    }
}

/// The field a `form_event` happened on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FieldRef {
    pub name: String,
    pub id: String,
    pub tag: String,
    #[serde(rename = "type")]
    pub input_type: String,
    pub order: i32,
    pub label: String,
}

impl FieldRef {
    /// The key every report groups by: see [`crate::keys::field_key`].
    pub fn key(&self) -> String {
        crate::keys::field_key(&self.name, &self.id, self.order)
    }
}

/// A click: a position a heatmap can draw and the element it hit, never text typed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Click {
    /// Page x as a fraction of the document's width (0 to 1): layouts stretch sideways.
    pub x: f64,
    /// Page y in CSS pixels from the top of the document.
    pub y: i32,
    pub viewport_width: i32,
    /// A short element path (`form#signup>button.primary`): tags, ids and classes only.
    pub path: String,
    /// A link, button, form control or anything with a click role.
    pub interactive: bool,
    /// The third or later click within a second and 30 pixels.
    pub rage: bool,
    /// A click on something not interactive that changed nothing within a second.
    pub dead: bool,
}

/// One frame of a script error's stack: where, never what.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorFrame {
    /// Script URL without query or fragment.
    pub file: String,
    pub line: i32,
    pub column: i32,
}

/// An unhandled script error of the site's page.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScriptError {
    pub message: String,
    /// Script URL without query or fragment; `""` when the browser does not say.
    pub source: String,
    pub line: i32,
    pub column: i32,
    /// The top frames of its stack, innermost first.
    pub frames: Vec<ErrorFrame>,
}

/// The parts of an event that are the same on every topic, whatever its kind.
///
/// Kept flat (one optional field per kind-specific attribute) because Avro unions of
/// records cost a schema lookup per read and make evolution harder than optional fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventBody {
    pub page: Option<String>,
    pub title: Option<String>,
    pub referrer: Option<String>,
    pub form: Option<Form>,
    pub form_event: Option<FormEventKind>,
    pub seq: Option<i64>,
    pub field: Option<FieldRef>,
    pub value: Option<String>,
    pub conversion_tag: Option<String>,
    pub transaction_id: Option<String>,
    pub revenue: Option<f64>,
    pub currency: Option<String>,
    pub tooltip_action: Option<TooltipAction>,
    pub trigger: Option<String>,
    pub tooltip_id: Option<String>,
    pub click: Option<Click>,
    /// Deepest point of the page reached, in % of its height (0 to 100).
    pub scroll_depth: Option<i32>,
    pub error: Option<ScriptError>,
}

/// A validated browser event with the identity needed to derive a visitor id.
/// Exists only on `exatom.raw`, whose retention is 24 hours.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawEvent {
    pub event_id: String,
    pub site: String,
    pub kind: EventKind,
    pub ts_ms: i64,
    pub sent_at_ms: i64,
    pub received_at_ms: i64,
    pub event_time_ms: i64,
    pub body: EventBody,
    pub ip: String,
    pub user_agent: String,
}

/// A browser event with identity replaced by a daily visitor id: safe to show to anyone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnonEvent {
    pub event_id: String,
    pub site: String,
    pub visitor_id: String,
    pub kind: EventKind,
    pub event_time_ms: i64,
    pub received_at_ms: i64,
    pub body: EventBody,
    pub device: Device,
}

/// Coarse location and device class: everything identity leaves behind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Device {
    pub country: String,
    pub region: String,
    pub browser_family: String,
    pub browser_major: String,
    pub os_family: String,
    pub device_class: String,
    pub is_bot: bool,
}

/// One event of a session, reduced to what form analytics needs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionEvent {
    pub event_id: String,
    pub kind: EventKind,
    pub event_time_ms: i64,
    pub page: Option<String>,
    pub form_key: Option<String>,
    pub field_key: Option<String>,
    pub form_event: Option<FormEventKind>,
    pub value: Option<String>,
    pub conversion_tag: Option<String>,
    pub transaction_id: Option<String>,
    pub revenue: Option<f64>,
    pub currency: Option<String>,
    pub tooltip_action: Option<TooltipAction>,
    pub trigger: Option<String>,
    pub click: Option<Click>,
    pub scroll_depth: Option<i32>,
    pub error: Option<ScriptError>,
}

impl SessionEvent {
    /// Reduces an anonymized event to its session form, computing the report keys once.
    pub fn from_anon(event: &AnonEvent) -> Self {
        let b = &event.body;
        SessionEvent {
            event_id: event.event_id.clone(),
            kind: event.kind,
            event_time_ms: event.event_time_ms,
            page: b.page.clone(),
            form_key: b.form.as_ref().map(Form::key),
            field_key: b.field.as_ref().map(FieldRef::key),
            form_event: b.form_event,
            value: b.value.clone(),
            conversion_tag: b.conversion_tag.clone(),
            transaction_id: b.transaction_id.clone(),
            revenue: b.revenue,
            currency: b.currency.clone(),
            tooltip_action: b.tooltip_action,
            trigger: b.trigger.clone(),
            click: b.click.clone(),
            scroll_depth: b.scroll_depth,
            error: b.error.clone(),
        }
    }
}

/// A closed session: one visitor's events with no gap over 30 minutes, in event-time order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub session_id: String,
    pub site: String,
    pub visitor_id: String,
    pub started_ms: i64,
    pub ended_ms: i64,
    pub device: Device,
    pub events: Vec<SessionEvent>,
}

/// One batch of a page's session replay (`exatom.replay`): rrweb events as JSON, already
/// through the browser's privacy rules. It carries no IP address or user agent; it joins
/// its session through `page_view_id`, the id of the page's `page_view` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayBatch {
    pub site: String,
    pub page_view_id: String,
    pub seq: i32,
    pub received_ms: i64,
    pub skew_ms: i64,
    pub first_ms: i64,
    pub last_ms: i64,
    /// Days the site keeps its replays, as the registry said when the batch was taken.
    pub keep_days: i32,
    pub event_count: i32,
    /// The events as a gzipped JSON array.
    #[serde(with = "serde_bytes")]
    pub events_gzip: Vec<u8>,
}
