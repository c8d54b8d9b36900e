//! Form analytics of one closed session, by the definitions of `metrics.md`. Pure: a
//! `Session` in, rows out. Every figure a dashboard shows is a sum, count, average or
//! median of these rows.

use std::collections::{BTreeMap, HashMap};

use exatom_core::model::{EventKind, FormEventKind, Session, SessionEvent, TooltipAction};

pub use behaviour::{ClickBin, PageScroll, SessionError};

pub mod behaviour;

/// What one session did with one form.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FormSession {
    pub form_key: String,
    pub viewed: bool,
    pub started: bool,
    pub submitted: bool,
    pub converted: bool,
    /// Revenue of the conversions attributed to this form in this session.
    pub revenue: f64,
    pub first_view_ms: Option<i64>,
    pub first_interaction_ms: Option<i64>,
    pub first_start_ms: Option<i64>,
    /// Time of the first conversion attributed to the form.
    pub conversion_ms: Option<i64>,
    /// First interaction − first view, for started forms that were viewed.
    pub start_hesitation_ms: Option<i64>,
    /// Conversion − first start, for converted forms that were started.
    pub duration_to_conversion_ms: Option<i64>,
    /// Field of the last form event with a field, when started and not converted.
    pub abandon_field: Option<String>,
}

/// What one session did with one field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSession {
    pub form_key: String,
    pub field_key: String,
    pub focuses: u32,
    pub time_spent_ms: i64,
    pub hesitation_ms: Option<i64>,
    pub returns: u32,
    pub corrections: u32,
    pub errors: u32,
    pub blank_at_submit: bool,
    pub abandoned: bool,
}

/// A conversion with the form that earned it (`""`: none).
#[derive(Debug, Clone, PartialEq)]
pub struct Attributed {
    pub event_id: String,
    pub form_key: String,
    pub conversion_tag: String,
    pub transaction_id: String,
    pub revenue: f64,
    pub currency: String,
    pub event_time_ms: i64,
    /// False for a second conversion of the same (session, form): it adds revenue, not count.
    pub counts: bool,
}

/// A tooltip interaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Tooltip {
    pub event_id: String,
    pub trigger: String,
    pub action: TooltipAction,
    pub form_key: String,
    pub event_time_ms: i64,
}

/// Everything the aggregator writes for one session.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionAnalytics {
    pub forms: Vec<FormSession>,
    pub fields: Vec<FieldSession>,
    pub conversions: Vec<Attributed>,
    pub tooltips: Vec<Tooltip>,
    pub click_bins: Vec<ClickBin>,
    pub scrolls: Vec<PageScroll>,
    pub errors: Vec<SessionError>,
}

impl SessionAnalytics {
    /// Forms the session started and left without converting.
    pub fn abandoned_forms(&self) -> Vec<String> {
        self.forms
            .iter()
            .filter(|f| f.abandon_field.is_some())
            .map(|f| f.form_key.clone())
            .collect()
    }

    pub fn converted(&self) -> bool {
        !self.conversions.is_empty()
    }
}

/// Computes the analytics of a closed session (events in event-time order).
pub fn analyze(session: &Session) -> SessionAnalytics {
    let events = &session.events;
    let mut forms: BTreeMap<String, FormSession> = BTreeMap::new();
    let mut out = SessionAnalytics::default();
    let mut last_form: Option<String> = None;

    for e in events {
        match (e.kind, e.form_key.as_deref()) {
            (EventKind::FormView, Some(form)) => {
                let f = form_entry(&mut forms, form);
                f.viewed = true;
                f.first_view_ms.get_or_insert(e.event_time_ms);
            }
            (EventKind::FormEvent, Some(form)) => {
                let f = form_entry(&mut forms, form);
                f.first_interaction_ms.get_or_insert(e.event_time_ms);
                if e.form_event.is_some_and(FormEventKind::changes_data) {
                    f.started = true;
                    f.first_start_ms.get_or_insert(e.event_time_ms);
                }
                if e.form_event == Some(FormEventKind::Submit) {
                    f.submitted = true;
                }
                last_form = Some(form.to_owned());
            }
            (EventKind::Conversion, _) => {
                let form_key = last_form.clone().unwrap_or_default();
                let counts = if form_key.is_empty() {
                    !out.conversions.iter().any(|c| c.form_key.is_empty())
                } else {
                    let f = form_entry(&mut forms, &form_key);
                    let first = !f.converted;
                    f.converted = true;
                    f.revenue += e.revenue.unwrap_or_default();
                    f.conversion_ms.get_or_insert(e.event_time_ms);
                    first
                };
                out.conversions.push(Attributed {
                    event_id: e.event_id.clone(),
                    form_key,
                    conversion_tag: e.conversion_tag.clone().unwrap_or_default(),
                    transaction_id: e.transaction_id.clone().unwrap_or_default(),
                    revenue: e.revenue.unwrap_or_default(),
                    currency: e.currency.clone().unwrap_or_default(),
                    event_time_ms: e.event_time_ms,
                    counts,
                });
            }
            (EventKind::Tooltip, form) => out.tooltips.push(Tooltip {
                event_id: e.event_id.clone(),
                trigger: e.trigger.clone().unwrap_or_default(),
                action: e.tooltip_action.unwrap_or(TooltipAction::Unknown),
                form_key: form.unwrap_or_default().to_owned(),
                event_time_ms: e.event_time_ms,
            }),
            _ => {}
        }
    }

    for f in forms.values_mut() {
        if f.started {
            if let (Some(view), Some(first)) = (f.first_view_ms, f.first_interaction_ms) {
                f.start_hesitation_ms = Some(first - view);
            }
        }
        if let (Some(conversion), Some(start)) = (f.conversion_ms, f.first_start_ms) {
            f.duration_to_conversion_ms = Some(conversion - start);
        }
        if f.started && !f.converted {
            f.abandon_field = events
                .iter()
                .rev()
                .filter(|e| {
                    e.kind == EventKind::FormEvent && e.form_key.as_deref() == Some(&f.form_key)
                })
                .find_map(|e| e.field_key.clone());
        }
    }

    out.fields = field_sessions(events, &forms);
    out.forms = forms.into_values().collect();
    out.click_bins = behaviour::click_bins(events);
    out.scrolls = behaviour::page_scrolls(events);
    out.errors = behaviour::session_errors(events);
    out
}

fn form_entry<'a>(forms: &'a mut BTreeMap<String, FormSession>, key: &str) -> &'a mut FormSession {
    forms.entry(key.to_owned()).or_insert_with(|| FormSession {
        form_key: key.to_owned(),
        ..FormSession::default()
    })
}

/// Per-field figures. Spans: a focus ends at the field's blur, or at the next event of the
/// same form on another field or on no field, or else at the session's last event.
fn field_sessions(
    events: &[SessionEvent],
    forms: &BTreeMap<String, FormSession>,
) -> Vec<FieldSession> {
    #[derive(Default)]
    struct Track {
        row: FieldSession,
        focused_at: Option<i64>,
        first_focus: Option<i64>,
        first_change: Option<i64>,
        value: Option<String>,
        blurred_with_data: bool,
    }
    let session_end = events.last().map_or(0, |e| e.event_time_ms);
    let mut fields: BTreeMap<(String, String), Track> = BTreeMap::new();
    // Which field of each form holds the focus now.
    let mut focus_of_form: HashMap<String, String> = HashMap::new();

    for e in events {
        let (EventKind::FormEvent, Some(form), Some(kind)) =
            (e.kind, e.form_key.as_deref(), e.form_event)
        else {
            continue;
        };
        // Any event of the form elsewhere ends the focus span of the field that had focus.
        if let Some(focused) = focus_of_form.get(form).cloned() {
            if e.field_key.as_deref() != Some(focused.as_str()) {
                if let Some(t) = fields.get_mut(&(form.to_owned(), focused.clone())) {
                    if let Some(start) = t.focused_at.take() {
                        t.row.time_spent_ms += e.event_time_ms - start;
                    }
                }
                focus_of_form.remove(form);
            }
        }
        if kind == FormEventKind::Submit {
            for ((f, _), t) in fields.iter_mut() {
                if f == form {
                    t.row.blank_at_submit = t.value.as_deref().is_none_or(str::is_empty);
                }
            }
        }
        let Some(field) = e.field_key.as_deref() else {
            continue;
        };
        let t = fields
            .entry((form.to_owned(), field.to_owned()))
            .or_insert_with(|| Track {
                row: FieldSession {
                    form_key: form.to_owned(),
                    field_key: field.to_owned(),
                    ..FieldSession::default()
                },
                ..Track::default()
            });
        match kind {
            FormEventKind::Focus => {
                t.row.focuses += 1;
                if t.blurred_with_data {
                    t.row.returns += 1;
                }
                t.blurred_with_data = false;
                if t.focused_at.is_none() {
                    t.focused_at = Some(e.event_time_ms);
                }
                t.first_focus.get_or_insert(e.event_time_ms);
                focus_of_form.insert(form.to_owned(), field.to_owned());
            }
            FormEventKind::Blur => {
                if let Some(start) = t.focused_at.take() {
                    t.row.time_spent_ms += e.event_time_ms - start;
                }
                t.blurred_with_data = e.value.as_deref() == Some("*");
                focus_of_form.remove(form);
            }
            FormEventKind::Invalid => t.row.errors += 1,
            k if k.changes_data() => {
                t.first_change.get_or_insert(e.event_time_ms);
            }
            _ => {}
        }
        if let Some(value) = e.value.as_deref() {
            if value.is_empty() && t.value.as_deref() == Some("*") {
                t.row.corrections += 1;
            }
            t.value = Some(value.to_owned());
        }
    }

    fields
        .into_values()
        .map(|mut t| {
            if let Some(start) = t.focused_at {
                t.row.time_spent_ms += session_end - start;
            }
            if let (Some(focus), Some(change)) = (t.first_focus, t.first_change) {
                t.row.hesitation_ms = Some(change - focus);
            }
            t.row.abandoned = forms
                .get(&t.row.form_key)
                .and_then(|f| f.abandon_field.as_deref())
                == Some(t.row.field_key.as_str());
            t.row
        })
        .collect()
}

#[cfg(test)]
mod tests;
