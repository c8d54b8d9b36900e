use super::*;
use crate::model::*;
use apache_avro::schema_compatibility::SchemaCompatibility;

fn full_body() -> EventBody {
    EventBody {
        page: Some("https://shop.example/checkout?utm_source=x".into()),
        title: Some("Checkout".into()),
        referrer: Some("https://search.example/".into()),
        form: Some(Form {
            name: "checkout".into(),
            id: "f1".into(),
            order: 1,
            html_id: Some("checkout-form".into()),
            action: Some("/buy".into()),
            title: Some("Pay".into()),
            visible: Some(true),
            fields: vec![FormField {
                name: "email".into(),
                label: "E-mail".into(),
                id: "em".into(),
                tag: "input".into(),
                input_type: "email".into(),
                order: 0,
                visible: true,
                group: "contact".into(),
            }],
        }),
        form_event: Some(FormEventKind::Change),
        seq: Some(42),
        field: Some(FieldRef {
            name: "email".into(),
            id: "em".into(),
            tag: "input".into(),
            input_type: "email".into(),
            order: 0,
            label: "E-mail".into(),
        }),
        value: Some("*".into()),
        conversion_tag: Some("DEMO1".into()),
        transaction_id: Some("T-1".into()),
        revenue: Some(12.5),
        currency: Some("EUR".into()),
        tooltip_action: Some(TooltipAction::Click),
        trigger: Some("ExatomFormStartHesitation".into()),
        tooltip_id: Some("2b1f0c3e-0000-4000-8000-000000000001".into()),
        click: Some(Click {
            x: 0.4125,
            y: 1830,
            viewport_width: 1280,
            path: "form#checkout>button.primary".into(),
            interactive: true,
            rage: true,
            dead: false,
        }),
        scroll_depth: Some(75),
        error: Some(ScriptError {
            message: "Widget failed".into(),
            source: "https://shop.example/app.js".into(),
            line: 12,
            column: 5,
            frames: vec![ErrorFrame {
                file: "https://shop.example/app.js".into(),
                line: 12,
                column: 5,
            }],
        }),
    }
}

fn raw(body: EventBody) -> RawEvent {
    RawEvent {
        event_id: "9f0b7c1e-1111-4222-8333-444455556666".into(),
        site: "DEMO".into(),
        kind: EventKind::FormEvent,
        ts_ms: 1_795_000_000_000,
        sent_at_ms: 1_795_000_000_500,
        received_at_ms: 1_795_000_001_000,
        event_time_ms: 1_795_000_000_500,
        body,
        ip: "203.0.113.9".into(),
        user_agent: "Mozilla/5.0".into(),
    }
}

fn device() -> Device {
    Device {
        country: "NL".into(),
        region: "NL-NH".into(),
        browser_family: "Firefox".into(),
        browser_major: "120".into(),
        os_family: "Linux".into(),
        device_class: "desktop".into(),
        is_bot: false,
    }
}

#[test]
fn raw_event_round_trips_with_every_field_and_with_none() {
    let codec = raw_event_codec();
    for event in [raw(full_body()), raw(EventBody::default())] {
        let bytes = codec.encode(&event).unwrap();
        assert_eq!(&bytes[..2], &[0xC3, 0x01]);
        assert_eq!(codec.decode(&bytes).unwrap(), event);
    }
}

#[test]
fn anon_event_round_trips() {
    let codec = anon_event_codec();
    let event = AnonEvent {
        event_id: "e1".into(),
        site: "DEMO".into(),
        visitor_id: "ab".repeat(32),
        kind: EventKind::Conversion,
        event_time_ms: 1,
        received_at_ms: 2,
        body: full_body(),
        device: device(),
    };
    let bytes = codec.encode(&event).unwrap();
    assert_eq!(codec.decode(&bytes).unwrap(), event);
}

#[test]
fn session_round_trips() {
    let codec = session_codec();
    let anon = AnonEvent {
        event_id: "e1".into(),
        site: "DEMO".into(),
        visitor_id: "v".into(),
        kind: EventKind::FormEvent,
        event_time_ms: 10,
        received_at_ms: 11,
        body: full_body(),
        device: device(),
    };
    let session = Session {
        session_id: "s1".into(),
        site: "DEMO".into(),
        visitor_id: "v".into(),
        started_ms: 10,
        ended_ms: 10,
        device: device(),
        events: vec![SessionEvent::from_anon(&anon)],
    };
    assert_eq!(session.events[0].form_key.as_deref(), Some("checkout"));
    assert_eq!(session.events[0].field_key.as_deref(), Some("email"));
    let bytes = session_codec().encode(&session).unwrap();
    assert_eq!(codec.decode(&bytes).unwrap(), session);
}

#[test]
fn replay_batch_round_trips_and_is_told_from_an_event() {
    let codec = replay_batch_codec();
    let batch = ReplayBatch {
        site: "DEMO".into(),
        page_view_id: "0b6f1c1e-8a0f-4c5e-9d51-2a1d7f3c9e10".into(),
        seq: 3,
        received_ms: 1_700_000_000_500,
        skew_ms: -1_200,
        first_ms: 1_700_000_000_000,
        last_ms: 1_700_000_001_700,
        keep_days: 30,
        event_count: 2,
        events_gzip: vec![
            0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0x8b, 0x8e, 5, 0, 0x29, 0xbb, 0x4c, 0x0d, 2, 0, 0,
            0,
        ],
    };
    let bytes = codec.encode(&batch).unwrap();
    assert_eq!(codec.decode(&bytes).unwrap(), batch);
    assert!(matches!(
        raw_event_codec().decode(&bytes),
        Err(CodecError::UnknownSchema(_))
    ));
}

#[test]
fn each_topic_has_its_own_fingerprint_and_a_foreign_one_is_refused() {
    let raw_codec = raw_event_codec();
    let anon_codec = anon_event_codec();
    assert_ne!(raw_codec.header(), anon_codec.header());
    let bytes = raw_codec.encode(&raw(EventBody::default())).unwrap();
    assert!(matches!(
        anon_codec.decode(&bytes),
        Err(CodecError::UnknownSchema(_))
    ));
    assert!(matches!(
        raw_codec.decode(b"{\"json\":1}"),
        Err(CodecError::NotSingleObject(b'{', b'"'))
    ));
    assert!(matches!(
        raw_codec.decode(&[0xC3]),
        Err(CodecError::TooShort(1))
    ));
    let mut truncated = bytes.clone();
    truncated.truncate(bytes.len() / 2);
    assert!(matches!(
        raw_codec.decode(&truncated),
        Err(CodecError::Datum(_))
    ));
}

/// What a release still on the v1 schemas left in the topics reads after an upgrade: the
/// same record, the fields added since at their defaults (nothing dead-lettered).
#[test]
fn records_an_earlier_release_wrote_are_read() {
    use apache_avro::types::Value;
    // A v1 writer's datum: the record without the fields added since, written with v1.
    fn v1_datum<T: serde::Serialize>(record: &T, v1: &str, added: &[&str]) -> Vec<u8> {
        fn strip(value: Value, added: &[&str]) -> Value {
            match value {
                Value::Record(fields) => Value::Record(
                    fields
                        .into_iter()
                        .filter(|(name, _)| !added.contains(&name.as_str()))
                        .map(|(name, v)| (name, strip(v, added)))
                        .collect(),
                ),
                Value::Array(items) => {
                    Value::Array(items.into_iter().map(|v| strip(v, added)).collect())
                }
                Value::Union(i, v) => Value::Union(i, Box::new(strip(*v, added))),
                other => other,
            }
        }
        let v1 = Schema::parse_str(v1).unwrap();
        let value = strip(apache_avro::to_value(record).unwrap(), added);
        let mut out = RabinFingerprintHeader::from_schema(&v1).build_header();
        out.extend(apache_avro::to_avro_datum(&v1, value).unwrap());
        out
    }
    let added = ["click", "scroll_depth", "error"];
    let mut body = full_body();
    body.click = None;
    body.scroll_depth = None;
    body.error = None;
    let event = raw(body.clone());
    let bytes = v1_datum(&event, RAW_EVENT_SCHEMA_V1, &added);
    assert_ne!(bytes[..10], raw_event_codec().header()[..]);
    assert_eq!(raw_event_codec().decode(&bytes).unwrap(), event);

    let anon = AnonEvent {
        event_id: "e1".into(),
        site: "DEMO".into(),
        visitor_id: "ab".repeat(32),
        kind: EventKind::Tooltip,
        event_time_ms: 1,
        received_at_ms: 2,
        body,
        device: device(),
    };
    let bytes = v1_datum(&anon, ANON_EVENT_SCHEMA_V1, &added);
    assert_eq!(anon_event_codec().decode(&bytes).unwrap(), anon);

    let session = Session {
        session_id: "s".into(),
        site: "DEMO".into(),
        visitor_id: "v".into(),
        started_ms: 1,
        ended_ms: 2,
        device: device(),
        events: vec![SessionEvent::from_anon(&anon)],
    };
    let bytes = v1_datum(&session, SESSION_SCHEMA_V1, &added);
    assert_eq!(session_codec().decode(&bytes).unwrap(), session);
}

/// The evolution rule: today's schema must read what the published v1 wrote, and v1
/// readers must read what today's schema writes. Adding a field without a default, or
/// removing or retyping one, fails here.
#[test]
fn schemas_stay_compatible_with_published_v1_both_ways() {
    let published = [
        (
            include_str!("../../../../schemas/avro/v1/raw_event.avsc"),
            RAW_EVENT_SCHEMA,
        ),
        (
            include_str!("../../../../schemas/avro/v1/anon_event.avsc"),
            ANON_EVENT_SCHEMA,
        ),
        (
            include_str!("../../../../schemas/avro/v1/session.avsc"),
            SESSION_SCHEMA,
        ),
    ];
    for (v1, now) in published {
        let v1 = Schema::parse_str(v1).unwrap();
        let current = Schema::parse_str(now).unwrap();
        SchemaCompatibility::can_read(&v1, &current).expect("current schema reads v1 data");
        // apache-avro's checker refuses any symbol a reader lacks, though the Avro rules
        // give such a symbol the reader's enum default (`unknown`, which v1 declares): the
        // structure is checked without the kinds added since, and the default by decoding.
        let without_new_kinds =
            Schema::parse_str(&without_symbols(now, &["click", "scroll", "js_error"])).unwrap();
        SchemaCompatibility::can_read(&without_new_kinds, &v1)
            .expect("v1 readers read current data");
    }
    // A v1 reader given an event of a kind added since reads it as `unknown`.
    let current = Schema::parse_str(ANON_EVENT_SCHEMA).unwrap();
    let v1 =
        Schema::parse_str(include_str!("../../../../schemas/avro/v1/anon_event.avsc")).unwrap();
    let event = AnonEvent {
        event_id: "e1".into(),
        site: "DEMO".into(),
        visitor_id: "ab".repeat(32),
        kind: EventKind::JsError,
        event_time_ms: 1,
        received_at_ms: 2,
        body: full_body(),
        device: device(),
    };
    let bytes = anon_event_codec().encode(&event).unwrap();
    let read = apache_avro::from_avro_datum(&current, &mut &bytes[10..], Some(&v1)).unwrap();
    let apache_avro::types::Value::Record(fields) = read else {
        panic!("a record")
    };
    let kind = &fields.iter().find(|(name, _)| name == "kind").unwrap().1;
    assert!(
        matches!(kind, apache_avro::types::Value::Enum(_, symbol) if symbol == "unknown"),
        "{kind:?}"
    );
}

/// The schema text with `symbols` taken out of every enum.
fn without_symbols(schema: &str, symbols: &[&str]) -> String {
    fn walk(value: &mut serde_json::Value, symbols: &[&str]) {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::Array(list)) = map.get_mut("symbols") {
                    list.retain(|s| !symbols.contains(&s.as_str().unwrap_or_default()));
                }
                map.values_mut().for_each(|v| walk(v, symbols));
            }
            serde_json::Value::Array(list) => list.iter_mut().for_each(|v| walk(v, symbols)),
            _ => {}
        }
    }
    let mut value: serde_json::Value = serde_json::from_str(schema).unwrap();
    walk(&mut value, symbols);
    value.to_string()
}

/// Every field that is not part of an event's identity carries a default, so a reader
/// with a newer schema can fill it when reading older data.
#[test]
fn every_optional_field_has_a_default() {
    fn walk(value: &serde_json::Value, missing: &mut Vec<String>) {
        if let Some(fields) = value.get("fields").and_then(|f| f.as_array()) {
            for field in fields {
                let name = field["name"].as_str().unwrap_or_default();
                let ty = &field["type"];
                let nullable = ty.as_array().is_some_and(|u| u[0] == "null");
                if nullable && field.get("default") != Some(&serde_json::Value::Null) {
                    missing.push(name.to_owned());
                }
                walk(ty, missing);
                if let Some(items) = ty.get("items") {
                    walk(items, missing);
                }
                if let Some(union) = ty.as_array() {
                    union.iter().for_each(|t| walk(t, missing));
                }
            }
        }
    }
    for text in [RAW_EVENT_SCHEMA, ANON_EVENT_SCHEMA, SESSION_SCHEMA] {
        let json: serde_json::Value = serde_json::from_str(text).unwrap();
        let mut missing = Vec::new();
        walk(&json, &mut missing);
        assert!(
            missing.is_empty(),
            "nullable fields without null default: {missing:?}"
        );
    }
}

/// The fast encoder writes exactly what apache-avro, the reference, writes.
#[test]
fn encodings_match_the_reference_implementation() {
    let codec = raw_event_codec();
    for body in [full_body(), EventBody::default()] {
        let record = raw(body);
        let mut reference = codec.header().to_vec();
        apache_avro::write_avro_datum_ref(codec.schema(), &record, &mut reference).unwrap();
        assert_eq!(codec.encode(&record).unwrap(), reference);
    }
}

mod direct_writers {
    //! The records' own writers against the schema-driven encoding and apache-avro, on
    //! generated records of every shape: any drift between a writer and its schema fails.

    use super::*;
    use proptest::prelude::*;
    use proptest::strategy::Union;

    fn text() -> impl Strategy<Value = String> {
        // Empty, ASCII, any Unicode, and long enough for a multi-byte length.
        Union::new([
            Just(String::new()).boxed(),
            "[a-z0-9_:/.?=&-]{1,40}".boxed(),
            any::<String>().boxed(),
            "[a-z]{200,300}".boxed(),
        ])
    }

    fn maybe_text() -> impl Strategy<Value = Option<String>> {
        proptest::option::of(text())
    }

    fn number() -> impl Strategy<Value = i64> {
        Union::new([
            Just(0i64).boxed(),
            Just(i64::MIN).boxed(),
            Just(i64::MAX).boxed(),
            (-200i64..200).boxed(),
            any::<i64>().boxed(),
        ])
    }

    fn order() -> impl Strategy<Value = i32> {
        Union::new([
            Just(i32::MIN).boxed(),
            Just(i32::MAX).boxed(),
            (-200i32..200).boxed(),
        ])
    }

    fn form_field() -> impl Strategy<Value = FormField> {
        (
            text(),
            text(),
            text(),
            text(),
            text(),
            order(),
            any::<bool>(),
            text(),
        )
            .prop_map(
                |(name, label, id, tag, input_type, order, visible, group)| FormField {
                    name,
                    label,
                    id,
                    tag,
                    input_type,
                    order,
                    visible,
                    group,
                },
            )
    }

    fn form() -> impl Strategy<Value = Form> {
        (
            text(),
            text(),
            order(),
            maybe_text(),
            maybe_text(),
            maybe_text(),
            proptest::option::of(any::<bool>()),
            proptest::collection::vec(form_field(), 0..4),
        )
            .prop_map(
                |(name, id, order, html_id, action, title, visible, fields)| Form {
                    name,
                    id,
                    order,
                    html_id,
                    action,
                    title,
                    visible,
                    fields,
                },
            )
    }

    fn field_ref() -> impl Strategy<Value = FieldRef> {
        (text(), text(), text(), text(), order(), text()).prop_map(
            |(name, id, tag, input_type, order, label)| FieldRef {
                name,
                id,
                tag,
                input_type,
                order,
                label,
            },
        )
    }

    fn click() -> impl Strategy<Value = Click> {
        (
            any::<f64>(),
            order(),
            order(),
            text(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(
                |(x, y, viewport_width, path, interactive, rage, dead)| Click {
                    x,
                    y,
                    viewport_width,
                    path,
                    interactive,
                    rage,
                    dead,
                },
            )
    }

    fn script_error() -> impl Strategy<Value = ScriptError> {
        let frame = (text(), order(), order()).prop_map(|(file, line, column)| ErrorFrame {
            file,
            line,
            column,
        });
        (
            text(),
            text(),
            order(),
            order(),
            proptest::collection::vec(frame, 0..4),
        )
            .prop_map(|(message, source, line, column, frames)| ScriptError {
                message,
                source,
                line,
                column,
                frames,
            })
    }

    fn body() -> impl Strategy<Value = EventBody> {
        let form_events = every(FormEventKind::KNOWN, FormEventKind::Unknown);
        let actions = every(TooltipAction::KNOWN, TooltipAction::Unknown);
        let page = (
            maybe_text(),
            maybe_text(),
            maybe_text(),
            proptest::option::of(form()),
            proptest::option::of(form_events),
            proptest::option::of(number()),
            proptest::option::of(field_ref()),
            maybe_text(),
        );
        let conversion = (
            maybe_text(),
            maybe_text(),
            proptest::option::of(any::<f64>()),
            maybe_text(),
            proptest::option::of(actions),
            maybe_text(),
            maybe_text(),
        );
        let behaviour = (
            proptest::option::of(click()),
            proptest::option::of(order()),
            proptest::option::of(script_error()),
        );
        (page, conversion, behaviour).prop_map(
            |(
                (page, title, referrer, form, form_event, seq, field, value),
                (
                    conversion_tag,
                    transaction_id,
                    revenue,
                    currency,
                    tooltip_action,
                    trigger,
                    tooltip_id,
                ),
                (click, scroll_depth, error),
            )| EventBody {
                page,
                title,
                referrer,
                form,
                form_event,
                seq,
                field,
                value,
                conversion_tag,
                transaction_id,
                revenue,
                currency,
                tooltip_action,
                trigger,
                tooltip_id,
                click,
                scroll_depth,
                error,
            },
        )
    }

    fn kind() -> impl Strategy<Value = EventKind> {
        every(EventKind::KNOWN, EventKind::Unknown)
    }

    /// Any symbol of an enum, the one for symbols of newer writers included.
    fn every<T: Copy + std::fmt::Debug + 'static, const N: usize>(
        known: [T; N],
        unknown: T,
    ) -> impl Strategy<Value = T> {
        proptest::sample::select(known.into_iter().chain([unknown]).collect::<Vec<_>>())
    }

    fn raw_event() -> impl Strategy<Value = RawEvent> {
        (
            text(),
            text(),
            kind(),
            number(),
            number(),
            number(),
            number(),
            body(),
            text(),
            text(),
        )
            .prop_map(
                |(
                    event_id,
                    site,
                    kind,
                    ts_ms,
                    sent_at_ms,
                    received_at_ms,
                    event_time_ms,
                    body,
                    ip,
                    user_agent,
                )| {
                    RawEvent {
                        event_id,
                        site,
                        kind,
                        ts_ms,
                        sent_at_ms,
                        received_at_ms,
                        event_time_ms,
                        body,
                        ip,
                        user_agent,
                    }
                },
            )
    }

    fn anon_event() -> impl Strategy<Value = AnonEvent> {
        let device = (
            text(),
            text(),
            text(),
            text(),
            text(),
            text(),
            any::<bool>(),
        )
            .prop_map(
                |(
                    country,
                    region,
                    browser_family,
                    browser_major,
                    os_family,
                    device_class,
                    is_bot,
                )| {
                    Device {
                        country,
                        region,
                        browser_family,
                        browser_major,
                        os_family,
                        device_class,
                        is_bot,
                    }
                },
            );
        (
            text(),
            text(),
            text(),
            kind(),
            number(),
            number(),
            body(),
            device,
        )
            .prop_map(
                |(
                    event_id,
                    site,
                    visitor_id,
                    kind,
                    event_time_ms,
                    received_at_ms,
                    body,
                    device,
                )| {
                    AnonEvent {
                        event_id,
                        site,
                        visitor_id,
                        kind,
                        event_time_ms,
                        received_at_ms,
                        body,
                        device,
                    }
                },
            )
    }

    /// The writer's bytes, the schema-driven bytes and apache-avro's must be one and the same.
    fn agree<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(
        codec: &Codec<T>,
        record: &T,
    ) -> Result<(), TestCaseError> {
        let direct = codec.encode(record).unwrap();
        let mut by_schema = Vec::new();
        codec.encode_by_schema_into(record, &mut by_schema).unwrap();
        let mut reference = codec.header().to_vec();
        apache_avro::write_avro_datum_ref(codec.schema(), record, &mut reference).unwrap();
        prop_assert_eq!(&direct, &by_schema);
        prop_assert_eq!(&direct, &reference);
        Ok(())
    }

    proptest! {
        #[test]
        fn raw_events_are_written_as_their_schema_says(event in raw_event()) {
            agree(&raw_event_codec(), &event)?;
        }

        #[test]
        fn anon_events_are_written_as_their_schema_says(event in anon_event()) {
            agree(&anon_event_codec(), &event)?;
        }
    }

    /// Every field set, then none: the two records the hand-made fixtures above describe.
    #[test]
    fn full_and_empty_records_agree() {
        for body in [full_body(), EventBody::default()] {
            agree(&raw_event_codec(), &raw(body.clone())).unwrap();
            let anon = AnonEvent {
                event_id: "e1".into(),
                site: "DEMO".into(),
                visitor_id: "ab".repeat(32),
                kind: EventKind::Conversion,
                event_time_ms: -1,
                received_at_ms: 2,
                body,
                device: device(),
            };
            agree(&anon_event_codec(), &anon).unwrap();
        }
    }
}
