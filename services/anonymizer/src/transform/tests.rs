use super::*;

/// The transaction key of these tests.
const TEST_KEYS: TransactionKeys = TransactionKeys::new([9; 32]);
use crate::scrub::QueryAllowList;
use exatom_core::avro::anon_event_codec;
use exatom_core::model::{EventKind, FormEventKind, FormField};
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
    /// A password-reset or session token: letters and digits. Identifiers keep short
    /// numbers (a site's generated field ids look just like it), so a token is only
    /// required to vanish from what a person reads and from URLs.
    token: String,
}

impl Secrets {
    /// What must vanish from every byte of the record.
    fn identity(&self) -> [&str; 7] {
        [
            &self.ipv4,
            &self.ipv6,
            &self.user_agent,
            &self.email,
            &self.phone,
            &self.card,
            &self.date,
        ]
    }

    fn all(&self) -> [&str; 8] {
        [
            &self.ipv4,
            &self.ipv6,
            &self.user_agent,
            &self.email,
            &self.phone,
            &self.card,
            &self.date,
            &self.token,
        ]
    }
}

fn ipv6() -> impl Strategy<Value = String> {
    // Zero groups make the compressed forms (`2001:db8::7`); a mapped IPv4 tail is also
    // an IPv6 address.
    let group = prop_oneof![1 => Just(0u16), 3 => 1u16..=0xffff];
    prop_oneof![
        proptest::array::uniform8(group)
            .prop_map(|g| std::net::Ipv6Addr::from(g).to_string())
            .prop_filter("long enough to be told apart", |s| s.len() >= 8),
        proptest::array::uniform8(any::<u16>()).prop_map(|g| g
            .iter()
            .map(|x| format!("{x:04X}"))
            .collect::<Vec<_>>()
            .join(":")),
        (1u8..=223, any::<u8>(), any::<u8>(), 1u8..=254)
            .prop_map(|(a, b, c, d)| format!("::ffff:{a}.{b}.{c}.{d}")),
    ]
}

fn user_agent() -> impl Strategy<Value = String> {
    let platform = prop_oneof![
        Just("Windows NT 10.0; Win64; x64"),
        Just("X11; Linux x86_64"),
        Just("Macintosh; Intel Mac OS X 10_15_7"),
        Just("Linux; Android 14; Pixel 8"),
        Just("iPhone; CPU iPhone OS 17_1 like Mac OS X"),
    ];
    (platform, 60u32..140, 1000u32..7000, 1u32..200).prop_map(|(p, major, build, patch)| {
        format!("Mozilla/5.0 ({p}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{major}.0.{build}.{patch} Safari/537.36")
    })
}

fn email() -> impl Strategy<Value = String> {
    let plain = "[a-z][a-z0-9._+-]{0,14}[a-z0-9]@[a-z][a-z0-9-]{1,10}\\.(com|nl|co\\.uk|org|de)";
    prop_oneof![
        plain.prop_map(|s| s),
        plain.prop_map(|s| s.to_uppercase()),
        "[a-zäöüé]{2,10}\\.[a-zß]{2,8}@[a-zä]{3,10}\\.de".prop_map(|s| s),
    ]
}

fn phone() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\+31 6 [0-9]{8}".prop_map(|s| s),
        "06-[0-9]{4} [0-9]{4}".prop_map(|s| s),
        "\\(0[0-9]{2}\\) [0-9]{3}-[0-9]{4}".prop_map(|s| s),
        "\\+1 [0-9]{3} [0-9]{3} [0-9]{4}".prop_map(|s| s),
        // Full-width digits, as Japanese pages write them.
        "06[0-9]{8}".prop_map(|s| s
            .chars()
            .map(|c| char::from_u32(c as u32 - '0' as u32 + 0xFF10).unwrap())
            .collect()),
    ]
}

fn card() -> impl Strategy<Value = String> {
    (
        "4[0-9]{3}",
        "[0-9]{4}",
        "[0-9]{4}",
        "[0-9]{4}",
        prop_oneof![Just(""), Just(" "), Just("-")],
    )
        .prop_map(|(a, b, c, d, sep)| [a, b, c, d].join(sep))
}

fn date() -> impl Strategy<Value = String> {
    (1u32..=28, 1u32..=12, 1930u32..=2030, 0u8..4)
        .prop_map(|(d, m, y, style)| match style {
            0 => format!("{d:02}/{m:02}/{y}"),
            1 => format!("{y}-{m:02}-{d:02}"),
            2 => format!("{d}.{m}.{:02}", y % 100),
            _ => format!("{d:02}-{m:02}-{y}"),
        })
        // The placeholder itself is no secret: found in the output, it proves nothing leaked.
        .prop_filter("the date placeholder", |d| {
            d != crate::scrub::DATE_PLACEHOLDER
        })
}

fn secrets() -> impl Strategy<Value = Secrets> {
    (
        (1u8..=223, any::<u8>(), any::<u8>(), 1u8..=254),
        ipv6(),
        user_agent(),
        email(),
        phone(),
        card(),
        date(),
        "[A-Za-z]{4,10}[0-9]{2,6}[A-Za-z0-9]{4,10}",
    )
        .prop_map(
            |(v4, ipv6, user_agent, email, phone, card, date, token)| Secrets {
                ipv4: format!("{}.{}.{}.{}", v4.0, v4.1, v4.2, v4.3),
                ipv6,
                user_agent,
                email,
                phone,
                card,
                date,
                token,
            },
        )
}

/// A raw event with every secret in every text field a page or its tag can fill.
fn leaky_event(s: &Secrets, sep: &str) -> RawEvent {
    let text = s.all().join(sep);
    let ident = format!("field{sep}{}", s.all().join(sep));
    let path: Vec<String> = s
        .all()
        .iter()
        .map(|x| url::form_urlencoded::byte_serialize(x.as_bytes()).collect())
        .collect();
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("email", &s.email)
        .append_pair("token", &s.token)
        .append_pair("utm_source", &text)
        .append_pair("utm_term", &s.card)
        .finish();
    let page = format!(
        "https://shop.example/u/{}/{}?{query}#{}",
        s.email,
        path.join("/"),
        s.token
    );
    let referrer = format!(
        "http://{}:{}@{}/signin/{}?{query}",
        s.token,
        s.token,
        s.ipv4,
        path.join("/")
    );
    let action = format!("http://[{}]/submit/{}", s.ipv6, path.join("/"));
    let script = format!(
        "https://cdn.example/{}/app.js?{query}#{}",
        path.join("/"),
        s.token
    );
    let message = format!("{text} at {page} and {script}, then {referrer}!");
    RawEvent {
        event_id: "00000000-0000-4000-8000-000000000001".into(),
        site: "DEMO".into(),
        kind: EventKind::FormEvent,
        ts_ms: 1_795_000_000_000,
        sent_at_ms: 1_795_000_000_000,
        received_at_ms: 1_795_000_000_000,
        event_time_ms: 1_795_000_000_000,
        body: EventBody {
            page: Some(page),
            title: Some(text.clone()),
            referrer: Some(referrer),
            form: Some(Form {
                name: ident.clone(),
                id: ident.clone(),
                order: 0,
                html_id: Some(ident.clone()),
                action: Some(action),
                title: Some(text.clone()),
                visible: Some(true),
                fields: vec![FormField {
                    name: ident.clone(),
                    label: text.clone(),
                    id: ident.clone(),
                    tag: ident.clone(),
                    input_type: ident.clone(),
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
                tag: ident.clone(),
                input_type: ident.clone(),
                order: 1,
                label: text.clone(),
            }),
            value: Some(text.clone()),
            conversion_tag: Some(ident.clone()),
            transaction_id: Some(text.clone()),
            revenue: Some(1.0),
            currency: Some("EUR".into()),
            tooltip_action: None,
            trigger: Some(ident.clone()),
            tooltip_id: None,
            click: Some(Click {
                x: 0.5,
                y: 10,
                viewport_width: 800,
                path: format!("main>div#{ident}.{}", text.replace(' ', ".")),
                interactive: false,
                rage: false,
                dead: true,
            }),
            scroll_depth: Some(50),
            error: Some(ScriptError {
                message,
                source: script.clone(),
                line: 1,
                column: 2,
                frames: vec![ErrorFrame {
                    file: script,
                    line: 3,
                    column: 4,
                }],
            }),
        },
        ip: s.ipv4.clone(),
        user_agent: s.user_agent.clone(),
    }
}

/// Every string of the record except the ids, which are random or hashed by design.
fn texts(anon: &AnonEvent) -> Vec<(String, String)> {
    fn walk(v: &serde_json::Value, key: &str, out: &mut Vec<(String, String)>) {
        match v {
            serde_json::Value::String(s)
                if !matches!(key, "visitor_id" | "event_id" | "transaction_id") =>
            {
                out.push((key.to_owned(), s.clone()))
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

/// Fields a person reads, where no digit at all may remain (identifiers keep short ones).
const READABLE: &[&str] = &[
    "page", "referrer", "action", "title", "label", "group", "path", "message", "source", "file",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn no_identity_or_typed_data_survives(
        s in secrets(),
        sep in prop_oneof![Just(" "), Just(", "), Just("_"), Just("-"), Just("/"), Just(":"), Just(" | ")],
    ) {
        let raw = leaky_event(&s, sep);
        let mut counts = ScrubCounts::default();
        let mut scrubber = Scrubber::new(QueryAllowList::default(), 16);
        let anon = anonymize(raw.clone(), &[3; 32], Device::default(), &TEST_KEYS, &mut scrubber, &mut counts);
        let bytes = anon_event_codec().encode(&anon).unwrap();
        // The same event again is scrubbed from memory: the same bytes, the same counts.
        let mut again = ScrubCounts::default();
        let repeat = anonymize(raw, &[3; 32], Device::default(), &TEST_KEYS, &mut scrubber, &mut again);
        prop_assert!(scrubber.hits > 0);
        prop_assert_eq!(anon_event_codec().encode(&repeat).unwrap(), bytes.clone());
        prop_assert_eq!(again, counts);
        for secret in s.identity() {
            let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
            prop_assert!(!contains(&bytes, secret), "{secret} survived in {anon:#?}");
            prop_assert!(!contains(&bytes, &encoded), "{encoded} survived in {anon:#?}");
        }
        let digit = regex::Regex::new(r"\d").unwrap();
        for (key, text) in texts(&anon) {
            // No long digit run anywhere, in any script.
            let longest = text
                .split(|c: char| !c.is_numeric())
                .map(|run| run.chars().count())
                .max()
                .unwrap_or(0);
            prop_assert!(longest < 6, "digit run of {longest} in {key}: {text}");
            if READABLE.contains(&key.as_str()) {
                // URLs write a masked digit `#` as `%23`: read them as a person would.
                let decoded = url::form_urlencoded::parse(format!("t={text}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                let rest = decoded.replace(crate::scrub::DATE_PLACEHOLDER, "");
                prop_assert!(!digit.is_match(&rest), "a digit survived in {key}: {text}");
                prop_assert!(!text.contains(&s.token), "the token survived in {key}: {text}");
            }
        }
        prop_assert_eq!(anon.body.value.as_deref(), Some("*"));
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
    let mut raw = leaky_event(&s, " ");
    raw.body.transaction_id = Some("a@b.example".into());
    let mut c = ScrubCounts::default();
    let mut scrubber = Scrubber::new(QueryAllowList::default(), 16);
    let a = anonymize(
        raw.clone(),
        &[1; 32],
        Device::default(),
        &TEST_KEYS,
        &mut scrubber,
        &mut c,
    );
    raw.received_at_ms += 86_400_000;
    let b = anonymize(
        raw,
        &[1; 32],
        Device::default(),
        &TEST_KEYS,
        &mut scrubber,
        &mut c,
    );
    assert_ne!(a.visitor_id, b.visitor_id);
    assert_eq!(
        a.visitor_id,
        crate::visitor::visitor_id(
            &[1; 32],
            "DEMO",
            "UA",
            "203.0.113.9",
            exatom_core::time::utc_day(1_795_000_000_000)
        )
    );
    assert_eq!(a.body.value.as_deref(), Some("*"));
    assert_eq!(
        a.body.transaction_id,
        Some(TEST_KEYS.key("DEMO", "a@b.example"))
    );
}

#[test]
fn identifiers_the_anonymizer_passes_unscrubbed_are_checked() {
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
    let good = leaky_event(&s, " ");
    assert_eq!(check(&good), Ok(()));
    let broken = |f: fn(&mut RawEvent)| {
        let mut raw = good.clone();
        f(&mut raw);
        check(&raw)
    };
    assert_eq!(
        broken(|r| r.site = "jane@example.com".into()),
        Err(Invalid::Site)
    );
    assert_eq!(broken(|r| r.site = "D".into()), Err(Invalid::Site));
    assert_eq!(
        broken(|r| r.event_id = "4111 1111 1111 1111".into()),
        Err(Invalid::EventId)
    );
    assert_eq!(
        broken(|r| r.body.tooltip_id = Some("+31 6 12345678".into())),
        Err(Invalid::TooltipId)
    );
    assert_eq!(
        broken(|r| r.body.currency = Some("jane".into())),
        Err(Invalid::Currency)
    );
    assert_eq!(
        broken(|r| r.body.tooltip_id = Some("6f1c2e3a-0000-4000-8000-000000000001".into())),
        Ok(())
    );
}
