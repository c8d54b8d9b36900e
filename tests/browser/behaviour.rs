//! Clicks, scroll depth and script errors from real Chromium to the views: a dead element,
//! a button that works on the third click, a long page read to its end, a payment widget
//! that throws when its field gets focus, and a page throwing 10 000 errors.

use std::time::Duration;

use exatom_e2e::wait_until;
use serde_json::Value;

use crate::world::{assert_not_reported, assert_not_stored, assert_nothing_rejected, World};

/// The heatmap bin of a click as the tag sent it (README, `v_heatmap_daily`).
fn bin(click: &Value) -> (u64, u64) {
    let x = click["x"].as_f64().unwrap();
    let y = click["y"].as_u64().unwrap();
    (((x * 50.0).floor() as u64).min(49), y / 25)
}

pub(crate) async fn clicks_scrolls_and_errors_reach_their_views() {
    let world = World::start("browser-behaviour").await;
    let b = &world.browser;
    let origin = world.recorder.origin.clone();
    let behaviour = format!("{origin}/demo/behaviour.html");
    let broken = format!("{origin}/demo/broken.html");
    let flood = format!("{origin}/demo/flood.html");
    // The pages as the views hold them: an IP address for a host is scrubbed.
    let stored = |page: &str| page.replace("127.0.0.1", "ip.invalid");
    let clicks_on = |page: &str| -> Vec<Value> {
        world
            .accepted()
            .into_iter()
            .filter(|e| e["type"] == "click" && e["page"] == page)
            .collect()
    };

    // One click on an element that does nothing, then three fast ones on a button that
    // answers only the third.
    b.open(&world.demo("behaviour.html"), "#dead").await;
    b.click("#dead").await;
    // Dead means nothing changed for a second: the button's answer would be a change.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for _ in 0..3 {
        b.click("#third").await;
    }
    b.find("#third-done:not([hidden])").await;
    // Where the dead element is, as the tag measures a click (page x ÷ document width).
    let dead_at = b
        .eval(
            "const r = document.getElementById('dead').getBoundingClientRect(); \
             return [(r.left + r.width / 2) / document.documentElement.scrollWidth, \
                     r.top + r.height / 2 + window.scrollY]",
        )
        .await;
    // Read to the end of the long page.
    b.eval("window.scrollTo(0, document.documentElement.scrollHeight); return 1")
        .await;
    world
        .wait_accepted("the end of the long page", |e| {
            e["type"] == "scroll" && e["page"] == behaviour.as_str() && e["depth"] == 100
        })
        .await;
    wait_until(Duration::from_secs(10), "the four clicks", || async {
        clicks_on(&behaviour).len() == 4
    })
    .await;
    let clicks = clicks_on(&behaviour);
    let flags: Vec<(bool, bool, bool)> = clicks
        .iter()
        .map(|c| {
            let flag = |name: &str| c[name].as_bool().unwrap();
            (flag("interactive"), flag("rage"), flag("dead"))
        })
        .collect();
    assert_eq!(
        flags,
        [
            (false, false, true),
            (true, false, false),
            (true, false, false),
            (true, true, false)
        ],
        "{clicks:?}"
    );
    assert_eq!(clicks[0]["path"], "html>body>div#dead.btn");
    let dead_x = dead_at[0].as_f64().unwrap();
    let dead_y = dead_at[1].as_f64().unwrap();
    assert!(
        (clicks[0]["x"].as_f64().unwrap() - dead_x).abs() < 0.01,
        "{dead_at} {}",
        clicks[0]
    );
    assert!(
        (clicks[0]["y"].as_f64().unwrap() - dead_y).abs() < 15.0,
        "{dead_at} {}",
        clicks[0]
    );

    // Checkout: a click on the account box (a user id and an e-mail in its id and class),
    // a name typed, then the card field, whose widget throws on focus; the visitor leaves.
    b.open(&world.demo("broken.html"), "#co-card").await;
    b.click("#user-99887766").await;
    b.type_into("#co-name", "Jane").await;
    b.click("#co-card").await;
    world
        .wait_accepted("the widget's error", |e| {
            e["type"] == "js_error" && e["page"] == broken.as_str()
        })
        .await;
    wait_until(Duration::from_secs(10), "the account click", || async {
        clicks_on(&broken)
            .iter()
            .any(|c| c["path"].as_str().unwrap().contains("user-"))
    })
    .await;
    let account = clicks_on(&broken)
        .into_iter()
        .find(|c| c["path"].as_str().unwrap().contains("user-"))
        .unwrap();
    assert_eq!(
        account["path"],
        "html>body>div#user-########.privacy@exatom.io.card"
    );

    // A page throwing 10 000 errors stays responsive and reports 20 of them.
    let flood_errors = || {
        world
            .accepted()
            .iter()
            .filter(|e| e["type"] == "js_error" && e["page"] == flood.as_str())
            .count()
    };
    b.open(&world.demo("flood.html"), "#flood").await;
    b.click("#flood").await;
    wait_until(Duration::from_secs(20), "the flood page alive", || async {
        b.eval("return document.getElementById('alive').textContent")
            .await
            == "alive"
    })
    .await;
    wait_until(Duration::from_secs(10), "the flood's reports", || async {
        flood_errors() >= 20
    })
    .await;
    b.open(&world.demo("index.html"), "body").await;
    world
        .wait_accepted("the last page", |e| {
            e["type"] == "page_view" && e["page"].as_str().unwrap().ends_with("/demo/index.html")
        })
        .await;
    assert_eq!(flood_errors(), 20, "the cap of a page view");

    // The session closes 20 s after its last event; the rollups follow.
    wait_until(Duration::from_secs(120), "the behaviour rollups", || async {
        world
            .query("SELECT (SELECT count() FROM exatom.errors_daily WHERE site = '{site}') > 0 AND (SELECT count() FROM exatom.scroll_daily WHERE site = '{site}') > 0 AND (SELECT count() FROM exatom.heatmap_daily WHERE site = '{site}') > 0")
            .await
            == "1"
    })
    .await;

    // The heatmap holds each click in the bin of where it landed.
    let mut expected: Vec<String> = Vec::new();
    let mut bins: std::collections::BTreeMap<(u64, u64), (u32, u32, u32)> = Default::default();
    for c in &clicks {
        let e = bins.entry(bin(c)).or_default();
        e.0 += 1;
        e.1 += u32::from(c["rage"] == true);
        e.2 += u32::from(c["dead"] == true);
    }
    for ((x, y), (n, rage, dead)) in &bins {
        expected.push(format!("{x}\t{y}\t{n}\t{rage}\t{dead}"));
    }
    let heatmap = world
        .query(&format!("SELECT x_bin, y_bin, clicks, rage_clicks, dead_clicks FROM exatom.v_heatmap_daily WHERE site = '{{site}}' AND page = '{}' ORDER BY x_bin, y_bin", stored(&behaviour)))
        .await;
    assert_eq!(heatmap, expected.join("\n"));
    let (dead_bin_x, dead_bin_y) = bin(&clicks[0]);
    assert_eq!(
        (dead_bin_x, dead_bin_y),
        (((dead_x * 50.0).floor() as u64).min(49), dead_y as u64 / 25),
        "the dead click's bin is where the element is"
    );
    let every_click: Vec<Value> = world
        .accepted()
        .into_iter()
        .filter(|e| e["type"] == "click")
        .collect();
    let count = |flag: &str| every_click.iter().filter(|c| c[flag] == true).count();
    // The account box does nothing either: a second dead click.
    assert_eq!((count("rage"), count("dead")), (1, 2));
    assert_eq!(
        world
            .query("SELECT sum(clicks), sum(rage_clicks), sum(dead_clicks), any(device_class) = (SELECT any(device_class) FROM exatom.sessions FINAL WHERE site = '{site}') FROM exatom.v_heatmap_daily WHERE site = '{site}'")
            .await,
        format!("{}\t1\t2\t1", every_click.len()),
        "every click of the visit, in the session's device class"
    );

    // Scroll depth: the long page read to its end once; the short pages whole at once.
    assert_eq!(
        world
            .query(&format!("SELECT views, reached_25, reached_50, reached_75, reached_100 FROM exatom.v_scroll_daily WHERE site = '{{site}}' AND page = '{}'", stored(&behaviour)))
            .await,
        "1\t1\t1\t1\t1"
    );

    // The widget's error, scrubbed, tied to the session that gave up at the card field.
    let card_error = world
        .query(&format!("SELECT message, source, errors, sessions, sessions_abandoning_a_form, sessions_converting FROM exatom.v_errors_daily WHERE site = '{{site}}' AND page = '{}'", stored(&broken)))
        .await;
    assert_eq!(
        card_error,
        format!("Card widget failed for privacy@exatom.io order ######## at https://pay.example.org/widget\t{}/demo/widget.js\t1\t1\t1\t0", stored(&origin))
    );
    assert_eq!(
        world
            .query("SELECT form_key, abandon_field FROM exatom.form_sessions FINAL WHERE site = '{site}' AND started = 1")
            .await,
        "checkout\tcard"
    );
    assert_eq!(
        world
            .query(&format!("SELECT sum(errors), max(sessions) FROM exatom.v_errors_daily WHERE site = '{{site}}' AND page = '{}'", stored(&flood)))
            .await,
        "20\t1"
    );

    // Nothing of the markers in ids, classes, messages and script URLs got past the page.
    let needles: Vec<String> = ["99887766", "jane.doe", "SECRETQUERY", "12345678", "token="]
        .map(String::from)
        .to_vec();
    assert_not_reported(&world, &needles);
    assert_not_stored(&world, &needles).await;
    assert_nothing_rejected(&world);
    world.browser.close().await;
}
