//! Session analytics → ClickHouse rows. Every row of a session carries the session's day
//! and a constant version, so a session delivered twice rewrites identical rows.

use std::collections::{BTreeMap, BTreeSet};

use clickhouse::Row;
use exatom_core::model::Session;
use exatom_core::time::days_since_epoch;
use serde::Serialize;

use crate::analytics::SessionAnalytics;

const VERSION: u64 = 1;

#[derive(Debug, Clone, Row, Serialize)]
pub struct FormSessionRow {
    pub site: String,
    pub day: u16,
    pub session_id: String,
    pub form_key: String,
    pub device_class: String,
    pub country: String,
    pub browser_family: String,
    pub viewed: u8,
    pub started: u8,
    pub submitted: u8,
    pub converted: u8,
    pub revenue: f64,
    pub first_view_ms: i64,
    pub first_interaction_ms: i64,
    pub first_start_ms: i64,
    pub conversion_ms: i64,
    pub has_start_hesitation: u8,
    pub start_hesitation_ms: i64,
    pub has_duration_to_conversion: u8,
    pub duration_to_conversion_ms: i64,
    pub abandon_field: String,
    pub version: u64,
}

#[derive(Debug, Clone, Row, Serialize)]
pub struct FieldRow {
    pub site: String,
    pub day: u16,
    pub session_id: String,
    pub form_key: String,
    pub field_key: String,
    pub device_class: String,
    pub country: String,
    pub browser_family: String,
    pub focuses: u32,
    pub time_spent_ms: i64,
    pub has_hesitation: u8,
    pub hesitation_ms: i64,
    pub returns: u32,
    pub corrections: u32,
    pub errors: u32,
    pub blank_at_submit: u8,
    pub abandoned: u8,
    pub version: u64,
}

#[derive(Debug, Clone, Row, Serialize)]
pub struct ConversionRow {
    pub site: String,
    pub day: u16,
    pub session_id: String,
    pub event_id: String,
    pub form_key: String,
    pub device_class: String,
    pub country: String,
    pub browser_family: String,
    pub conversion_tag: String,
    pub transaction_id: String,
    pub revenue: f64,
    pub currency: String,
    pub event_time_ms: i64,
    pub counts: u8,
    pub version: u64,
}

#[derive(Debug, Clone, Row, Serialize)]
pub struct TooltipRow {
    pub site: String,
    pub day: u16,
    pub session_id: String,
    pub event_id: String,
    pub trigger: String,
    pub action: &'static str,
    pub form_key: String,
    pub device_class: String,
    pub country: String,
    pub browser_family: String,
    pub event_time_ms: i64,
    pub version: u64,
}

#[derive(Debug, Clone, Row, Serialize)]
pub struct ClickBinRow {
    pub site: String,
    pub day: u16,
    pub session_id: String,
    pub page: String,
    pub device_class: String,
    pub x_bin: u8,
    pub y_bin: u32,
    pub clicks: u32,
    pub rage_clicks: u32,
    pub dead_clicks: u32,
    pub version: u64,
}

#[derive(Debug, Clone, Row, Serialize)]
pub struct PageScrollRow {
    pub site: String,
    pub day: u16,
    pub session_id: String,
    pub page: String,
    pub view: u32,
    pub device_class: String,
    pub depth: u8,
    pub version: u64,
}

#[derive(Debug, Clone, Row, Serialize)]
pub struct SessionErrorRow {
    pub site: String,
    pub day: u16,
    pub session_id: String,
    pub page: String,
    pub message: String,
    pub source: String,
    pub device_class: String,
    pub errors: u32,
    pub first_error_ms: i64,
    pub abandoned_forms: Vec<String>,
    pub abandoned_form: u8,
    pub converted: u8,
    pub version: u64,
}

/// All rows of a batch of sessions, by table, and the rollup groups they touch.
#[derive(Debug, Default)]
pub struct Rows {
    pub forms: Vec<FormSessionRow>,
    pub fields: Vec<FieldRow>,
    pub conversions: Vec<ConversionRow>,
    pub tooltips: Vec<TooltipRow>,
    pub click_bins: Vec<ClickBinRow>,
    pub scrolls: Vec<PageScrollRow>,
    pub errors: Vec<SessionErrorRow>,
    pub touched: Touched,
}

/// The (site, day) groups of each rollup that a batch changed, with the form keys (or
/// triggers) in them: what the aggregator recomputes after writing the batch.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Touched {
    /// Form keys of `form_sessions` and `field_interactions` rows.
    pub forms: BTreeMap<(String, u16), BTreeSet<String>>,
    /// Attributed form keys (`''` included) of conversions.
    pub conversions: BTreeMap<(String, u16), BTreeSet<String>>,
    pub tooltips: BTreeMap<(String, u16), BTreeSet<String>>,
    /// Pages of `click_bins`, `page_scrolls` and `session_errors` rows.
    pub clicks: BTreeMap<(String, u16), BTreeSet<String>>,
    pub scrolls: BTreeMap<(String, u16), BTreeSet<String>>,
    pub errors: BTreeMap<(String, u16), BTreeSet<String>>,
    /// Transaction ids by site: their other conversions' days may need new revenue figures.
    pub transactions: BTreeMap<String, BTreeSet<String>>,
}

impl Rows {
    pub fn add(&mut self, s: &Session, a: SessionAnalytics) {
        let day = days_since_epoch(s.started_ms);
        let d = &s.device;
        let group = (s.site.clone(), day);
        let t = &mut self.touched;
        for f in &a.forms {
            t.forms
                .entry(group.clone())
                .or_default()
                .insert(f.form_key.clone());
        }
        for c in &a.conversions {
            t.conversions
                .entry(group.clone())
                .or_default()
                .insert(c.form_key.clone());
            if !c.transaction_id.is_empty() {
                t.transactions
                    .entry(s.site.clone())
                    .or_default()
                    .insert(c.transaction_id.clone());
            }
        }
        for tip in &a.tooltips {
            t.tooltips
                .entry(group.clone())
                .or_default()
                .insert(tip.trigger.clone());
        }
        self.add_behaviour(s, &a);
        for f in a.forms {
            self.forms.push(FormSessionRow {
                site: s.site.clone(),
                day,
                session_id: s.session_id.clone(),
                form_key: f.form_key,
                device_class: d.device_class.clone(),
                country: d.country.clone(),
                browser_family: d.browser_family.clone(),
                viewed: f.viewed.into(),
                started: f.started.into(),
                submitted: f.submitted.into(),
                converted: f.converted.into(),
                revenue: f.revenue,
                first_view_ms: f.first_view_ms.unwrap_or(0),
                first_interaction_ms: f.first_interaction_ms.unwrap_or(0),
                first_start_ms: f.first_start_ms.unwrap_or(0),
                conversion_ms: f.conversion_ms.unwrap_or(0),
                has_start_hesitation: f.start_hesitation_ms.is_some().into(),
                start_hesitation_ms: f.start_hesitation_ms.unwrap_or(0),
                has_duration_to_conversion: f.duration_to_conversion_ms.is_some().into(),
                duration_to_conversion_ms: f.duration_to_conversion_ms.unwrap_or(0),
                abandon_field: f.abandon_field.unwrap_or_default(),
                version: VERSION,
            });
        }
        for f in a.fields {
            self.fields.push(FieldRow {
                site: s.site.clone(),
                day,
                session_id: s.session_id.clone(),
                form_key: f.form_key,
                field_key: f.field_key,
                device_class: d.device_class.clone(),
                country: d.country.clone(),
                browser_family: d.browser_family.clone(),
                focuses: f.focuses,
                time_spent_ms: f.time_spent_ms,
                has_hesitation: f.hesitation_ms.is_some().into(),
                hesitation_ms: f.hesitation_ms.unwrap_or(0),
                returns: f.returns,
                corrections: f.corrections,
                errors: f.errors,
                blank_at_submit: f.blank_at_submit.into(),
                abandoned: f.abandoned.into(),
                version: VERSION,
            });
        }
        for c in a.conversions {
            self.conversions.push(ConversionRow {
                site: s.site.clone(),
                day,
                session_id: s.session_id.clone(),
                event_id: c.event_id,
                form_key: c.form_key,
                device_class: d.device_class.clone(),
                country: d.country.clone(),
                browser_family: d.browser_family.clone(),
                conversion_tag: c.conversion_tag,
                transaction_id: c.transaction_id,
                revenue: c.revenue,
                currency: c.currency,
                event_time_ms: c.event_time_ms,
                counts: c.counts.into(),
                version: VERSION,
            });
        }
        for t in a.tooltips {
            self.tooltips.push(TooltipRow {
                site: s.site.clone(),
                day,
                session_id: s.session_id.clone(),
                event_id: t.event_id,
                trigger: t.trigger,
                action: t.action.as_str(),
                form_key: t.form_key,
                device_class: d.device_class.clone(),
                country: d.country.clone(),
                browser_family: d.browser_family.clone(),
                event_time_ms: t.event_time_ms,
                version: VERSION,
            });
        }
    }
}

impl Rows {
    /// The rows of a session's clicks, scroll depths and errors.
    fn add_behaviour(&mut self, s: &Session, a: &SessionAnalytics) {
        let day = days_since_epoch(s.started_ms);
        let group = (s.site.clone(), day);
        let device_class = &s.device.device_class;
        let t = &mut self.touched;
        let touch = |touched: &mut BTreeMap<(String, u16), BTreeSet<String>>, page: &str| {
            touched
                .entry(group.clone())
                .or_default()
                .insert(page.to_owned());
        };
        for b in &a.click_bins {
            touch(&mut t.clicks, &b.page);
            self.click_bins.push(ClickBinRow {
                site: s.site.clone(),
                day,
                session_id: s.session_id.clone(),
                page: b.page.clone(),
                device_class: device_class.clone(),
                x_bin: b.x_bin,
                y_bin: b.y_bin,
                clicks: b.clicks,
                rage_clicks: b.rage_clicks,
                dead_clicks: b.dead_clicks,
                version: VERSION,
            });
        }
        for v in &a.scrolls {
            touch(&mut t.scrolls, &v.page);
            self.scrolls.push(PageScrollRow {
                site: s.site.clone(),
                day,
                session_id: s.session_id.clone(),
                page: v.page.clone(),
                view: v.view,
                device_class: device_class.clone(),
                depth: v.depth,
                version: VERSION,
            });
        }
        let abandoned_forms = a.abandoned_forms();
        for e in &a.errors {
            touch(&mut t.errors, &e.page);
            self.errors.push(SessionErrorRow {
                site: s.site.clone(),
                day,
                session_id: s.session_id.clone(),
                page: e.page.clone(),
                message: e.message.clone(),
                source: e.source.clone(),
                device_class: device_class.clone(),
                errors: e.errors,
                first_error_ms: e.first_error_ms,
                abandoned_forms: abandoned_forms.clone(),
                abandoned_form: u8::from(!abandoned_forms.is_empty()),
                converted: u8::from(a.converted()),
                version: VERSION,
            });
        }
    }
}
