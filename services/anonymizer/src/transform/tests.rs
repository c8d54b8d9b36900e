use super::*;
use exatom_shared::avro::anon_event_codec;
use exatom_shared::model::{EventKind, FormEventKind, FormField};
use proptest::prelude::*;

fn contains(haystack: &[u8], needle: &str) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
}

/// Identity and typed data a visitor might leak into any text a page exposes.
#[derive(Debug, Clone)]
struct Secrets {
    ipv4: String,
    ipv6: String,
    user_agent: String,
    email: String,
    phone: String,
    card: String,
    date: String,
    token: String,
}

fn secrets() -> impl Strategy<Value = Secrets> {
    (
        (1u8..=223, 0u8..=255, 0u8..=255, 1u8..=254),
        proptest::array::uniform8(1u16..=0xffff),
        "[A-Za-z]{3,8}/[0-9]{1,3}\\.[0-9] \\([A-Za-z]{4,10}; [A-Za-z0-9 ]{4,12}\\)",
        "[a-z]{3,10}\\.[a-z]{2,8}@[a-z]{3,10}\\.(com|nl|org)",
        "\\+31 6 [0-9]{8}",
        "4[0-9]{15}",
        (1u32..=28, 1u32..=12, 1950u32..=2030),
        "[A-Za-z]{6}[0-9]{6}[A-Za-z]{4}",
    )
        .prop_map(
            |(v4, v6, ua, email, phone, card, (d, m, y), token)| Secrets {
                ipv4: format!("{}.{}.{}.{}", v4.0, v4.1, v4.2, v4.3),
                ipv6: std::net::Ipv6Addr::from(v6).to_string(),
                user_agent: format!("Mozilla/5.0 {ua}"),
                email,
                phone,
                card,
                date: format!("{d:02}/{m:02}/{y}"),
                token,
            },
        )
}

fn leaky_event(s: &Secrets) -> RawEvent {
    let text = format!(
        "{} {} {} {} {} {}",
        s.email, s.phone, s.card, s.date, s.ipv4, s.ipv6
    );
    let ident = format!("{}_{}_{}_{}", s.email, s.ipv4, s.card, s.ipv6);
    let url = format!(
        "https://shop.example/u/{}/{}/{}?email={}&token={}&utm_source={}#{}",
        s.email, s.phone, s.card, s.email, s.token, s.phone, s.token
    );
    RawEvent {
        event_id: "00000000-0000-4000-8000-000000000001".into(),
        site: "DEMO".into(),
        kind: EventKind::FormEvent,
        ts_ms: 1_795_000_000_000,
        sent_at_ms: 1_795_000_000_000,
        received_at_ms: 1_795_000_000_000,
        event_time_ms: 1_795_000_000_000,
        body: EventBody {
            page: Some(url.clone()),
            title: Some(text.clone()),
            referrer: Some(url.clone()),
            form: Some(Form {
                name: ident.clone(),
                id: ident.clone(),
                order: 0,
                html_id: Some(ident.clone()),
                action: Some(url.clone()),
                title: Some(text.clone()),
                visible: Some(true),
                fields: vec![FormField {
                    name: ident.clone(),
                    label: text.clone(),
                    id: ident.clone(),
                    tag: "input".into(),
                    input_type: "text".into(),
                    order: 1,
                    visible: true,
                    group: text.clone(),
                }],
            }),
            form_event: Some(FormEventKind::Input),
            seq: Some(1),
            field: Some(FieldRef {
                name: ident.clone(),
                id: ident.clone(),
                tag: "input".into(),
                input_type: "text".into(),
                order: 1,
                label: text.clone(),
            }),
            value: Some(s.token.clone()),
            conversion_tag: Some(ident.clone()),
            transaction_id: Some(s.email.clone()),
            revenue: Some(1.0),
            currency: Some("EUR".into()),
            tooltip_action: None,
            trigger: Some(ident),
            tooltip_id: None,
        },
        ip: s.ipv4.clone(),
        user_agent: s.user_agent.clone(),
    }
}

/// Every string of the record except the ids, which are random or hashed by design.
fn texts(anon: &AnonEvent) -> Vec<String> {
    fn walk(v: &serde_json::Value, key: &str, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s)
                if !matches!(
                    key,
                    "visitor_id" | "event_id" | "tooltip_id" | "transaction_id"
                ) =>
            {
                out.push(s.clone())
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, key, out)),
            serde_json::Value::Object(o) => o.iter().for_each(|(k, x)| walk(x, k, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&serde_json::to_value(anon).unwrap(), "", &mut out);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn no_identity_or_typed_data_survives(s in secrets()) {
        let raw = leaky_event(&s);
        let mut counts = ScrubCounts::default();
        let anon = anonymize(raw, &[3; 32], Device::default(), &QueryAllowList::default(), &mut counts);
        let bytes = anon_event_codec().encode(&anon).unwrap();
        for secret in [&s.ipv4, &s.ipv6, &s.user_agent, &s.email, &s.phone, &s.card, &s.date, &s.token] {
            prop_assert!(!contains(&bytes, secret), "{secret} survived in {anon:?}");
        }
        // Long digit runs: none of six or more in any text the record carries.
        for text in texts(&anon) {
            let longest = text.split(|c: char| !c.is_ascii_digit()).map(str::len).max().unwrap_or(0);
            prop_assert!(longest < 6, "digit run of {longest} in {text}");
        }
    }
}

#[test]
fn the_visitor_id_uses_the_day_of_receipt() {
    let s = Secrets {
        ipv4: "203.0.113.9".into(),
        ipv6: "2001:db8::9".into(),
        user_agent: "UA".into(),
        email: "a@b.example".into(),
        phone: "+31 6 12345678".into(),
        card: "4111111111111111".into(),
        date: "01/02/2003".into(),
        token: "abcdef123456abcd".into(),
    };
    let mut raw = leaky_event(&s);
    let mut c = ScrubCounts::default();
    let allow = QueryAllowList::default();
    let a = anonymize(raw.clone(), &[1; 32], Device::default(), &allow, &mut c);
    raw.received_at_ms += 86_400_000;
    let b = anonymize(raw, &[1; 32], Device::default(), &allow, &mut c);
    assert_ne!(a.visitor_id, b.visitor_id);
    assert_eq!(
        a.visitor_id,
        crate::visitor::visitor_id(
            &[1; 32],
            "DEMO",
            "UA",
            "203.0.113.9",
            exatom_shared::time::utc_day(1_795_000_000_000)
        )
    );
    assert_eq!(a.body.value.as_deref(), Some("*"));
    assert_eq!(
        a.body.transaction_id,
        Some(transaction_key("DEMO", "a@b.example"))
    );
}
