//! The browser tags in real headless Chromium, against the whole pipeline as real
//! processes: the demo site and the tags are served by the collector; a recording proxy
//! sits between the browser and the collector, so the tests read byte for byte what left
//! the browser, and then what the broker and ClickHouse hold.

mod behaviour;
mod chrome;
mod console;
mod recorder;
mod replay;
mod world;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use exatom_e2e::{wait_until, Service};
use serde_json::Value;
use world::{
    assert_not_sent, assert_nothing_rejected, assert_nowhere, form_event, is, within, World,
};

/// WebDriver's Backspace key.
const BACKSPACE: &str = "\u{E003}";

#[tokio::test]
async fn a_visit_in_chromium_converts_in_one_session_and_nothing_typed_leaves_the_browser() {
    within(journey()).await;
}

#[tokio::test]
async fn the_tag_survives_page_errors_late_forms_route_changes_blocked_sections_and_an_outage() {
    within(robustness()).await;
}

#[tokio::test]
async fn a_site_owner_sees_the_visit_live_then_its_form_in_the_console() {
    within(console::owner_sees_the_visit_live_then_its_form()).await;
}

#[tokio::test]
async fn clicks_scroll_depth_and_script_errors_reach_their_views_without_a_marker() {
    within(behaviour::clicks_scrolls_and_errors_reach_their_views()).await;
}

#[tokio::test]
async fn a_replay_plays_a_visit_s_three_pages_and_nothing_typed_or_blocked_leaves_the_browser() {
    within(replay::a_recorded_visit_plays_its_pages_in_order_and_nothing_typed_leaves()).await;
}

#[tokio::test]
async fn no_text_from_inside_an_itemprop_element_leaves_the_browser() {
    within(structured_data()).await;
}

async fn journey() {
    let world = World::start("browser-journey").await;
    let b = &world.browser;
    let name = world.marker("Zname");
    let mail_user = world.marker("zmail");
    let notes = world.marker("Znotes");

    b.open(&world.demo("form.html"), "#signup").await;
    // Not starting for 5 s raises the hesitation event; the demo shows and reports a tooltip.
    b.find("#help:not([hidden])").await;
    b.click("#help-close").await;

    // A second between focus and typing: the field's hesitation.
    b.click("#full_name").await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    b.find("#full_name").await.send_keys(&name).await.unwrap();
    let mistyped = format!("{mail_user}-at-example");
    b.type_into("#email", &mistyped).await;
    b.click("#next").await;
    b.find("#step-1-error:not([hidden])").await;
    // The correction: emptied key by key, typed again.
    let email = b.find("#email").await;
    email
        .send_keys(&BACKSPACE.repeat(mistyped.len()))
        .await
        .unwrap();
    email
        .send_keys(&format!("{mail_user}@example.com"))
        .await
        .unwrap();
    b.click("#next").await;
    b.find("#step-2:not([hidden])").await;
    b.find("#plan").await.select_by_label("Team").await.unwrap();
    b.click("#contact-phone").await;
    b.type_into("#notes", &notes).await;
    b.click("#terms").await;
    // The needles are real: the page holds what was typed.
    let typed = b
        .eval(
            "return ['full_name', 'email', 'notes'].map((id) => document.getElementById(id).value)",
        )
        .await;
    assert_eq!(
        typed,
        serde_json::json!([name, format!("{mail_user}@example.com"), notes])
    );
    b.click("#submit").await;
    b.find("#thanks").await;
    world
        .wait_accepted("the conversion", |e| e["type"] == "conversion")
        .await;
    world
        .wait_accepted("the thank-you page view", |e| {
            e["type"] == "page_view" && e["page"].as_str().unwrap().ends_with("/thanks.html")
        })
        .await;

    let needles = [name, mail_user, notes];
    assert_not_sent(&world, &needles);
    let accepted = world.accepted();
    assert_nothing_rejected(&world);
    let ids: HashSet<&str> = accepted.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), accepted.len(), "no event is sent twice");
    let tooltip: Vec<&str> = accepted
        .iter()
        .filter(|e| e["type"] == "tooltip")
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(tooltip, ["impression", "close"]);
    let name_inputs = accepted
        .iter()
        .filter(|e| form_event(e, "signup", "input") && e["field"]["name"] == "full_name")
        .count();
    assert_eq!(
        name_inputs,
        1,
        "{} keys typed, input events coalesced",
        needles[0].len()
    );
    // Both steps are described up front; the second is not visible yet.
    let view = accepted
        .iter()
        .find(|e| is(e, "form_view", "signup"))
        .unwrap();
    let described: Vec<(&str, bool)> = view["form"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["name"].as_str().unwrap(), f["visible"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        described,
        [
            ("full_name", true),
            ("email", true),
            ("plan", false),
            ("contact", false),
            ("notes", false),
            ("terms", false),
        ]
    );

    // The session closes 20 s after its last event; the aggregator then writes its rows and
    // recomputes the rollups one after the other, tooltips last.
    wait_until(
        Duration::from_secs(120),
        "the session's figures",
        || async {
            world
                .query("SELECT (SELECT count() FROM exatom.conversions FINAL WHERE site = '{site}'), (SELECT count() FROM exatom.tooltips_daily WHERE site = '{site}') > 0")
                .await
                == "1\t1"
        },
    )
    .await;
    assert_eq!(
        world
            .query("SELECT count(), uniqExact(event_id), uniqExact(session_id) FROM exatom.events FINAL WHERE site = '{site}'")
            .await,
        format!("{}\t{}\t1", ids.len(), ids.len()),
        "every accepted event is stored once, all in one session"
    );
    assert_eq!(
        world
            .query("SELECT count(), pageviews, forms_viewed, forms_started, forms_submitted, converted, revenue FROM exatom.sessions FINAL WHERE site = '{site}' GROUP BY pageviews, forms_viewed, forms_started, forms_submitted, converted, revenue")
            .await,
        "1\t2\t1\t1\t1\t1\t25"
    );
    assert_eq!(
        world
            .query("SELECT form_key, viewed, started, submitted, converted, has_start_hesitation, start_hesitation_ms >= 5000 FROM exatom.form_sessions FINAL WHERE site = '{site}'")
            .await,
        "signup\t1\t1\t1\t1\t1\t1"
    );
    let fields = world
        .query("SELECT field_key, has_hesitation, hesitation_ms >= 1000, corrections, errors FROM exatom.field_interactions FINAL WHERE site = '{site}' ORDER BY field_key")
        .await;
    let fields: HashMap<&str, &str> = fields
        .lines()
        .map(|l| l.split_once('\t').unwrap())
        .collect();
    let mut keys: Vec<&str> = fields.keys().copied().collect();
    keys.sort();
    assert_eq!(
        keys,
        ["contact", "email", "full_name", "notes", "plan", "terms"]
    );
    assert_eq!(
        fields["full_name"], "1\t1\t0\t0",
        "hesitation, no correction"
    );
    assert_eq!(fields["email"], "1\t0\t1\t1", "one correction, one error");
    assert_eq!(
        world
            .query("SELECT form_key, conversion_tag, revenue, currency, counts FROM exatom.conversions FINAL WHERE site = '{site}'")
            .await,
        format!("signup\t{}1\t25\tEUR\t1", world.site)
    );
    assert_eq!(
        world
            .query("SELECT form, views, starts, submits, conversions FROM exatom.v_form_daily WHERE site = '{site}'")
            .await,
        "signup\t1\t1\t1\t1"
    );
    assert_eq!(
        world
            .query("SELECT trigger, impressions, clicks, closes FROM exatom.v_tooltips_daily WHERE site = '{site}'")
            .await,
        "ExatomFormStartHesitation\t1\t0\t1"
    );

    assert_nowhere(&world, &needles).await;
    world.browser.close().await;
}

async fn robustness() {
    let world = World::start("browser-robustness").await;
    let origin = world.recorder.origin.clone();

    // The tags as served: gzip when accepted, an ETag that answers 304.
    let collector_url = world.pipeline.lock().unwrap().collector_url.clone();
    let http = reqwest::Client::new();
    let tag = http
        .get(format!("{collector_url}/tag.js"))
        .header("accept-encoding", "gzip, br")
        .send()
        .await
        .unwrap();
    assert_eq!(tag.status(), 200);
    assert_eq!(tag.headers()["content-encoding"], "gzip");
    assert!(tag.headers().contains_key("cache-control"));
    let etag = tag.headers()["etag"].clone();
    let again = http
        .get(format!("{collector_url}/tag.js"))
        .header("accept-encoding", "gzip, br")
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);

    // A page that throws its own errors, before the tag, in its handlers and timers.
    let b = &world.browser;
    b.open(&world.demo("errors.html"), "form[name=feedback]")
        .await;
    b.type_into("#message", "hello").await;
    b.click("#send").await;
    b.find("#sent:not([hidden])").await;
    world
        .wait_accepted("feedback submitted", |e| {
            form_event(e, "feedback", "submit")
        })
        .await;
    assert!(world
        .accepted()
        .iter()
        .any(|e| is(e, "form_view", "feedback")));
    assert!(world
        .accepted()
        .iter()
        .any(|e| form_event(e, "feedback", "input") && e["field"]["name"] == "message"));
    let page_errors = b.eval("return window.pageErrors").await;
    assert!(
        page_errors.as_u64().unwrap() >= 4,
        "the page did throw: {page_errors}"
    );

    // A form that appears 2 s after the page.
    b.open(&world.demo("late.html"), "#loading").await;
    b.type_into("#phone", "0612345678").await;
    world
        .wait_accepted("late form typed in", |e| {
            form_event(e, "callback", "input") && e["field"]["name"] == "phone"
        })
        .await;
    let time_of = |kind: &str, page: &str| {
        world
            .accepted()
            .iter()
            .find(|e| e["type"] == kind && e["page"].as_str().unwrap().ends_with(page))
            .map(|e| chrono::DateTime::parse_from_rfc3339(e["ts"].as_str().unwrap()).unwrap())
            .unwrap()
    };
    let found_after = time_of("form_view", "/late.html") - time_of("page_view", "/late.html");
    assert!(found_after.num_milliseconds() >= 2000, "{found_after}");

    // A single-page app: the contact form comes after a History API route change.
    b.open(&world.demo("spa/"), "#app h1").await;
    b.click("#to-contact").await;
    b.type_into("#topic", "pricing").await;
    b.click("#send").await;
    world
        .wait_accepted("SPA form submitted", |e| form_event(e, "contact", "submit"))
        .await;
    let contact_page = format!("{origin}/demo/spa/contact");
    assert!(world.accepted().iter().any(|e| e["type"] == "page_view"
        && e["page"] == contact_page.as_str()
        && e["referrer"] == format!("{origin}/demo/spa/").as_str()
        && e["title"] == "Contact — Exatom demo"));
    assert!(world
        .accepted()
        .iter()
        .any(|e| is(e, "form_view", "contact") && e["page"] == contact_page.as_str()));

    // Masked and blocked sections.
    let blocked = world.marker("Zblocked");
    let remark = world.marker("Zremark");
    b.open(&world.demo("privacy.html"), "#health").await;
    b.type_into("#city", "Utrecht").await;
    b.type_into("#birth_date", "31/12/1980").await;
    b.click("#condition_diabetes").await;
    b.type_into("#insurance_number", &blocked).await;
    b.type_into("#doctor", &blocked).await;
    b.type_into("#remarks", &remark).await;
    b.click("#send").await;
    world
        .wait_accepted("health form submitted", |e| {
            form_event(e, "health", "submit")
        })
        .await;
    let health: Vec<Value> = world
        .accepted()
        .into_iter()
        .filter(|e| e["form"]["name"] == "health")
        .collect();
    let view = health.iter().find(|e| e["type"] == "form_view").unwrap();
    let described: Vec<(&str, &str)> = view["form"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["name"].as_str().unwrap(), f["label"].as_str().unwrap()))
        .collect();
    assert_eq!(
        described,
        [
            (
                "city",
                "City (questions? write to privacy@exatom.io or call ### ### ####)"
            ),
            ("birth_date", "***"),
            ("remarks", ""),
        ],
        "blocked fields absent, masked label masked, e-mail and digits scrubbed, itemprop unread"
    );
    for e in health.iter().filter(|e| e["type"] == "form_event") {
        let field = e["field"]["name"].as_str().unwrap_or("");
        assert!(
            ["city", "birth_date", "remarks", ""].contains(&field),
            "{field} is in a blocked section"
        );
    }

    // The collector goes away while the visitor types; the tag retries until it is back.
    b.open(&world.demo("form.html"), "#signup").await;
    world
        .wait_accepted("the form seen before the outage", |e| {
            is(e, "form_view", "signup")
        })
        .await;
    let listen = {
        let mut pipeline = world.pipeline.lock().unwrap();
        assert!(pipeline.service("collector").stop(), "the collector drains");
        pipeline
            .collector_url
            .trim_start_matches("http://")
            .to_owned()
    };
    b.type_into("#full_name", "Ann").await;
    let failed = || {
        world
            .recorder
            .exchanges()
            .iter()
            .filter(|x| x.status == 502)
            .filter_map(|x| x.batch())
            .flat_map(|b| b["events"].as_array().cloned().unwrap_or_default())
            .collect::<Vec<_>>()
    };
    wait_until(Duration::from_secs(20), "a batch refused", || async {
        failed().iter().any(|e| form_event(e, "signup", "input"))
    })
    .await;
    let mut env = world.env.clone();
    env.push(("EXATOM_LISTEN", listen));
    env.push(("EXATOM_SITES_FILE", world.sites.display().to_string()));
    let collector = Service::start(&world.stack, "collector", &env);
    world
        .pipeline
        .lock()
        .unwrap()
        .services
        .insert("collector", collector);
    let lost: Vec<String> = failed()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    wait_until(
        Duration::from_secs(60),
        "refused events delivered",
        || async {
            let accepted: HashSet<String> = world
                .accepted()
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_owned())
                .collect();
            lost.iter().all(|id| accepted.contains(id))
        },
    )
    .await;

    // Nothing twice: each event was taken once, and ClickHouse holds each accepted id once.
    assert_nothing_rejected(&world);
    let accepted = world.accepted();
    let ids: HashSet<String> = accepted
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        ids.len(),
        accepted.len(),
        "an accepted event was sent again"
    );
    let stored = world.wait_all_stored().await;
    assert!(ids.is_subset(&stored));

    assert_nowhere(
        &world,
        &[
            blocked,
            remark,
            "Utrecht".into(),
            "31/12/1980".into(),
            "pricing".into(),
            "12345678".into(),
            "care@example.org".into(),
            "Jansen".into(),
            "insurance".into(),
            "Diabetes".into(),
        ],
    )
    .await;
    world.browser.close().await;
}

/// Every way a text can attach to a field or a form, from inside an `itemprop` element:
/// none of it is sent, while the fields are still reported by name.
async fn structured_data() {
    let world = World::start("browser-itemprop").await;
    let b = &world.browser;
    // Words of letters only: the scrubbing of digits and e-mails leaves them as they are,
    // so a leak would show.
    let planted = [
        "Quokka",
        "Wombat",
        "Numbat",
        "Dingo",
        "Bilby",
        "Wallaby",
        "Platypus",
        "Echidna",
        "Kookaburra",
        "Quoll",
        "Cassowary",
        "Galah",
        "Lorikeet",
        "Kakapo",
        "Tuatara",
    ];
    let typed = world.marker("Ztyped");
    b.open(&world.demo("itemprop.html"), "#profile").await;
    for field in [
        "#nickname",
        "#given_name",
        "#street",
        "#city",
        "#phone",
        "#fax",
        "#mail",
    ] {
        b.type_into(field, &typed).await;
    }
    b.click("input[name=salutation][value=b]").await;
    b.type_into("#remarks", &typed).await;
    b.type_into("#quantity", &typed).await;
    b.type_into("#coupon", &typed).await;
    b.click("#save").await;
    b.find("#saved:not([hidden])").await;
    world
        .wait_accepted("the profile submitted", |e| {
            form_event(e, "profile", "submit")
        })
        .await;
    world
        .wait_accepted("the coupon typed", |e| {
            form_event(e, "offer", "input") && e["field"]["name"] == "coupon"
        })
        .await;
    assert_nothing_rejected(&world);

    let accepted = world.accepted();
    let view_of = |field: &str| -> Value {
        accepted
            .iter()
            .find(|e| {
                e["type"] == "form_view"
                    && e["form"]["fields"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|f| f["name"] == field)
            })
            .unwrap_or_else(|| panic!("a form_view with {field}"))["form"]
            .clone()
    };
    let described = |form: &Value| -> Vec<(String, String, String)> {
        form["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                let text = |k: &str| f[k].as_str().unwrap().to_owned();
                (text("name"), text("label"), text("group"))
            })
            .collect()
    };
    let profile = view_of("nickname");
    assert_eq!(profile["title"], "Your profile");
    let field = |name: &str, label: &str| (name.to_owned(), label.to_owned(), String::new());
    assert_eq!(
        described(&profile),
        [
            field("nickname", "Nickname"),
            field("given_name", ""),
            field("street", ""),
            field("city", ""),
            field("phone", ""),
            field("fax", ""),
            field("mail", ""),
            field("salutation", ""),
            field("remarks", "Remarks"),
        ],
        "fields reported by name; no label, legend or group read from inside itemprop"
    );
    // The form that carries itemprop gives neither its name, its id nor its heading.
    let order = view_of("quantity");
    assert_eq!(
        (
            &order["name"],
            &order["id"],
            &order["html_id"],
            &order["title"]
        ),
        (
            &Value::from(""),
            &Value::from(""),
            &Value::from(""),
            &Value::from("")
        )
    );
    assert_eq!(described(&order), [field("quantity", "")]);
    let offer = view_of("coupon");
    assert_eq!(
        (&offer["name"], &offer["title"]),
        (&Value::from("offer"), &Value::from(""))
    );
    assert_eq!(described(&offer), [field("coupon", "")]);
    // Field interactions inside itemprop elements are still counted.
    for name in ["given_name", "mail", "salutation", "quantity"] {
        assert!(
            accepted
                .iter()
                .any(|e| e["type"] == "form_event" && e["field"]["name"] == name),
            "{name} interactions are reported"
        );
    }
    let labelled = ["nickname", "remarks"];
    for e in accepted
        .iter()
        .filter(|e| e["type"] == "form_event" && e["field"].is_object())
    {
        let (name, label) = (
            e["field"]["name"].as_str().unwrap(),
            e["field"]["label"].as_str().unwrap(),
        );
        assert!(
            labelled.contains(&name) || label.is_empty(),
            "{name} labelled {label:?}"
        );
    }

    // Wait until the last event is in ClickHouse, then look everywhere.
    world.wait_all_stored().await;
    let mut needles: Vec<String> = planted.iter().map(|w| w.to_string()).collect();
    needles.push(typed);
    assert_nowhere(&world, &needles).await;
    world.browser.close().await;
}
