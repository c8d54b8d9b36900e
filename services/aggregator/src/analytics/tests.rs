//! Figures worked out by hand from `metrics.md`, one scenario at a time.

use super::*;
use exatom_core::model::Device;

const T: i64 = 1_795_000_000_000;

struct Script(Vec<SessionEvent>);

impl Script {
    fn new() -> Self {
        Script(Vec::new())
    }

    fn push(
        mut self,
        t: i64,
        kind: EventKind,
        form: Option<&str>,
        field: Option<&str>,
        fe: Option<FormEventKind>,
        value: Option<&str>,
    ) -> Self {
        self.0.push(SessionEvent {
            event_id: format!("e{}", self.0.len()),
            kind,
            event_time_ms: T + t,
            page: Some("https://shop.example/".into()),
            form_key: form.map(str::to_owned),
            field_key: field.map(str::to_owned),
            form_event: fe,
            value: value.map(str::to_owned),
            ..SessionEvent::default()
        });
        self
    }

    fn view(self, t: i64, form: &str) -> Self {
        self.push(t, EventKind::FormView, Some(form), None, None, None)
    }

    fn on(self, t: i64, form: &str, field: &str, fe: FormEventKind, value: Option<&str>) -> Self {
        self.push(
            t,
            EventKind::FormEvent,
            Some(form),
            Some(field),
            Some(fe),
            value,
        )
    }

    fn submit(self, t: i64, form: &str) -> Self {
        self.push(
            t,
            EventKind::FormEvent,
            Some(form),
            None,
            Some(FormEventKind::Submit),
            None,
        )
    }

    fn convert(mut self, t: i64, revenue: f64, tx: &str) -> Self {
        self = self.push(t, EventKind::Conversion, None, None, None, None);
        let e = self.0.last_mut().unwrap();
        e.revenue = Some(revenue);
        e.transaction_id = Some(tx.into());
        e.conversion_tag = Some("DEMO1".into());
        self
    }

    fn session(self) -> Session {
        Session {
            session_id: "s".into(),
            site: "DEMO".into(),
            visitor_id: "v".into(),
            started_ms: self.0.first().unwrap().event_time_ms,
            ended_ms: self.0.last().unwrap().event_time_ms,
            device: Device::default(),
            events: self.0,
        }
    }
}

use FormEventKind::*;

fn field<'a>(a: &'a SessionAnalytics, form: &str, name: &str) -> &'a FieldSession {
    a.fields
        .iter()
        .find(|f| f.form_key == form && f.field_key == name)
        .unwrap()
}

#[test]
fn a_converted_signup() {
    let a = analyze(
        &Script::new()
            .push(0, EventKind::PageView, None, None, None, None)
            .view(1_000, "signup")
            .on(4_000, "signup", "email", Focus, None)
            .on(6_500, "signup", "email", Input, Some("*"))
            .on(9_000, "signup", "email", Blur, Some("*"))
            .on(9_500, "signup", "name", Focus, None)
            .on(12_000, "signup", "name", Change, Some("*"))
            .on(13_000, "signup", "name", Invalid, None)
            .on(14_000, "signup", "name", Input, Some(""))
            .on(15_000, "signup", "email", Focus, None)
            .on(16_000, "signup", "email", Blur, Some("*"))
            .submit(17_000, "signup")
            .convert(20_000, 10.0, "T1")
            .session(),
    );
    assert_eq!(
        a.forms,
        vec![FormSession {
            form_key: "signup".into(),
            viewed: true,
            started: true,
            submitted: true,
            converted: true,
            revenue: 10.0,
            first_view_ms: Some(T + 1_000),
            first_interaction_ms: Some(T + 4_000),
            first_start_ms: Some(T + 6_500),
            conversion_ms: Some(T + 20_000),
            start_hesitation_ms: Some(3_000),
            duration_to_conversion_ms: Some(13_500),
            abandon_field: None,
        }]
    );
    let email = field(&a, "signup", "email");
    assert_eq!(
        (
            email.focuses,
            email.time_spent_ms,
            email.hesitation_ms,
            email.returns,
            email.corrections,
            email.errors,
            email.blank_at_submit
        ),
        (2, 5_000 + 1_000, Some(2_500), 1, 0, 0, false)
    );
    // name: focused 9.5 s, its span ends when email takes the focus at 15 s.
    let name = field(&a, "signup", "name");
    assert_eq!(
        (
            name.focuses,
            name.time_spent_ms,
            name.hesitation_ms,
            name.returns,
            name.corrections,
            name.errors,
            name.blank_at_submit
        ),
        (1, 5_500, Some(2_500), 0, 1, 1, true)
    );
    assert_eq!(a.conversions.len(), 1);
    assert_eq!(a.conversions[0].form_key, "signup");
    assert!(a.conversions[0].counts);
}

#[test]
fn conversion_goes_to_the_last_form_touched_and_abandonment_to_the_last_field() {
    let a = analyze(
        &Script::new()
            .convert(0, 5.0, "EARLY")
            .view(1_000, "newsletter")
            .view(1_000, "checkout")
            .on(2_000, "newsletter", "email", Focus, None)
            .on(3_000, "newsletter", "email", Input, Some("*"))
            .on(5_000, "checkout", "card", Focus, None)
            .on(7_000, "checkout", "card", Input, Some("*"))
            .convert(9_000, 30.0, "T2")
            .convert(9_500, 1.0, "T3")
            .session(),
    );
    let forms: Vec<(&str, bool, bool, f64)> = a
        .forms
        .iter()
        .map(|f| (f.form_key.as_str(), f.started, f.converted, f.revenue))
        .collect();
    assert_eq!(
        forms,
        vec![
            ("checkout", true, true, 31.0),
            ("newsletter", true, false, 0.0)
        ]
    );
    let newsletter = a.forms.iter().find(|f| f.form_key == "newsletter").unwrap();
    assert_eq!(newsletter.abandon_field.as_deref(), Some("email"));
    assert!(field(&a, "newsletter", "email").abandoned);
    assert!(!field(&a, "checkout", "card").abandoned);
    // What an error of this session is tied to: a form left, a conversion made.
    assert_eq!(a.abandoned_forms(), ["newsletter"]);
    assert!(a.converted());
    let attributed: Vec<(&str, bool)> = a
        .conversions
        .iter()
        .map(|c| (c.form_key.as_str(), c.counts))
        .collect();
    // The first conversion came before any form: not attributable. A second conversion of
    // the same (session, form) adds revenue but not count.
    assert_eq!(
        attributed,
        vec![("", true), ("checkout", true), ("checkout", false)]
    );
    // The newsletter's focus span ends at the next event of that form elsewhere... none came,
    // so at the session's last event; card's likewise.
    assert_eq!(
        field(&a, "newsletter", "email").time_spent_ms,
        9_500 - 2_000
    );
    assert_eq!(field(&a, "checkout", "card").time_spent_ms, 9_500 - 5_000);
}

#[test]
fn focus_without_change_is_not_a_start() {
    let a = analyze(
        &Script::new()
            .view(0, "contact")
            .on(1_000, "contact", "msg", Focus, None)
            .on(2_000, "contact", "msg", Blur, Some(""))
            .session(),
    );
    let f = &a.forms[0];
    assert!(f.viewed && !f.started);
    assert_eq!(f.start_hesitation_ms, None);
    assert_eq!(f.abandon_field, None);
    let msg = field(&a, "contact", "msg");
    assert_eq!((msg.time_spent_ms, msg.hesitation_ms), (1_000, None));
}

#[test]
fn a_start_without_a_view_has_no_hesitation_and_a_span_ends_at_a_form_level_event() {
    let a = analyze(
        &Script::new()
            .on(0, "quick", "q", Focus, None)
            .on(500, "quick", "q", Autofill, Some("*"))
            .submit(2_000, "quick")
            .session(),
    );
    let f = &a.forms[0];
    assert!(f.started && f.submitted && !f.viewed);
    assert_eq!(f.start_hesitation_ms, None);
    assert_eq!(f.abandon_field.as_deref(), Some("q"));
    // The submit (no field) ends the focus span.
    assert_eq!(field(&a, "quick", "q").time_spent_ms, 2_000);
}

#[test]
fn tooltips_are_listed_with_their_trigger() {
    let mut s = Script::new().push(0, EventKind::Tooltip, Some("signup"), None, None, None);
    s.0[0].tooltip_action = Some(TooltipAction::Click);
    s.0[0].trigger = Some("ExatomFormStartHesitation".into());
    let a = analyze(&s.session());
    assert_eq!(a.tooltips.len(), 1);
    assert_eq!(a.tooltips[0].action, TooltipAction::Click);
    assert_eq!(a.tooltips[0].form_key, "signup");
    assert!(a.forms.is_empty());
}
