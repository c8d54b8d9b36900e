//! Session replay in Chromium: a visit of three pages recorded on a site that samples every
//! visitor, then the same site sampling (almost) nobody.

use std::collections::HashMap;
use std::time::Duration;

use exatom_e2e::wait_until;
use serde_json::Value;

use crate::recorder::Exchange;
use crate::world::{assert_nowhere, expanded, World};

/// The demo page's own strings that must never leave it: pre-filled, hidden, textarea and
/// contenteditable content, a blocked and a masked region, structured data, and the
/// attributes the rules remove; then its visible e-mail address, phone number and date.
const PAGE_SECRETS: [&str; 15] = [
    "prefilled-zqxw",
    "hidden-zqxw",
    "textarea-zqxw",
    "editable-zqxw",
    "blocked-zqxw",
    "masked-zqxw",
    "itemprop-zqxw",
    "placeholder-zqxw",
    "title-zqxw",
    "dataattr-zqxw",
    "alt-zqxw",
    "help-desk@example.org",
    "020 555 0199",
    "31/12/2026",
    "Pro, 12 months",
];

/// A replay batch a request carried, as the browser sent it (gzipped or not).
fn replay_batch(x: &Exchange) -> Option<Value> {
    if x.method != "POST" || x.target != "/v1/replay" {
        return None;
    }
    let body = expanded(&x.body);
    let start = body.iter().position(|b| *b == b'{')?;
    // The expanded bytes are the compressed body and then what it holds: the JSON is the
    // last `{…}` run when gzipped, the whole body when not.
    let json = if x.body.starts_with(&[0x1f, 0x8b]) {
        &body[x.body.len()..]
    } else {
        &body[start..]
    };
    serde_json::from_slice(json).ok()
}

/// Per page view: the replay batches the collector took (202), by `seq`.
fn accepted_batches(world: &World) -> HashMap<String, Vec<Value>> {
    let mut pages: HashMap<String, Vec<Value>> = HashMap::new();
    for x in world.recorder.exchanges() {
        if x.status != 202 {
            continue;
        }
        if let Some(batch) = replay_batch(&x) {
            let page = batch["page_view_id"].as_str().unwrap().to_owned();
            pages.entry(page).or_default().push(batch);
        }
    }
    pages
}

async fn page_view_id(world: &World) -> String {
    let id = world.browser.eval("return window.exatom.pageView").await;
    id.as_str()
        .expect("the tag set its page view id")
        .to_owned()
}

/// Every node of a serialized DOM, depth first.
fn nodes(node: &Value, out: &mut Vec<Value>) {
    out.push(node.clone());
    for child in node["childNodes"].as_array().into_iter().flatten() {
        nodes(child, out);
    }
}

pub(crate) async fn a_recorded_visit_plays_its_pages_in_order_and_nothing_typed_leaves() {
    let world = World::start_with("browser-replay", "replay_sample = 1.0").await;
    let b = &world.browser;
    let typed = world.marker("Ztyped");
    let autofilled = world.marker("zautofill");
    let notes = world.marker("Znotes");

    b.open(&world.demo("replay.html"), "#account").await;
    let first = page_view_id(&world).await;
    // The recorder's first batch (the full snapshot) leaves as soon as it is taken.
    wait_until(
        Duration::from_secs(30),
        "the first page's snapshot",
        || async { accepted_batches(&world).contains_key(&first) },
    )
    .await;
    let blocked_size = b
        .eval("const r = document.getElementById('blocked').getBoundingClientRect(); return [r.width + 'px', r.height + 'px'];")
        .await;
    b.type_into("#full_name", &typed).await;
    // Autofill sets a value without keystrokes and says so with input and change events.
    b.eval(&format!(
        "const e = document.getElementById('email'); e.value = '{autofilled}@example.com'; \
         e.dispatchEvent(new Event('input', {{bubbles: true}})); \
         e.dispatchEvent(new Event('change', {{bubbles: true}}));"
    ))
    .await;
    b.type_into("#notes", &notes).await;
    b.type_into("#editor", &typed).await;
    b.click("#terms").await;
    b.eval("const s = document.getElementById('plan'); s.value = 'basic'; s.dispatchEvent(new Event('change', {bubbles: true}));")
        .await;
    // A batch leaves every 5 s while the page is open.
    tokio::time::sleep(Duration::from_secs(6)).await;

    b.open(&world.demo("form.html"), "#signup").await;
    let second = page_view_id(&world).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    b.open(&world.demo("thanks.html"), "#thanks").await;
    let third = page_view_id(&world).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Leaving sends the last page's rest by beacon.
    b.client.goto("about:blank").await.unwrap();
    let views = [first.clone(), second.clone(), third.clone()];
    assert_eq!(
        views.iter().collect::<std::collections::HashSet<_>>().len(),
        3
    );
    wait_until(
        Duration::from_secs(30),
        "every page's replay taken",
        || async {
            let pages = accepted_batches(&world);
            views.iter().all(|v| pages.contains_key(v))
        },
    )
    .await;

    // Each page's batches are numbered from 0, and every input event carries "*" or "".
    let pages = accepted_batches(&world);
    for view in &views {
        let mut seqs: Vec<u64> = pages[view]
            .iter()
            .map(|b| b["seq"].as_u64().unwrap())
            .collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>(), "{view}");
    }
    let inputs: Vec<Value> = pages[&first]
        .iter()
        .flat_map(|b| b["events"].as_array().unwrap().clone())
        .filter(|e| e["type"] == 3 && e["data"]["source"] == 5)
        .collect();
    assert!(
        !inputs.is_empty(),
        "the typing was recorded as input events"
    );
    for e in &inputs {
        assert!(e["data"]["text"] == "*" || e["data"]["text"] == "", "{e}");
        assert_eq!(e["data"]["isChecked"], false, "{e}");
    }
    // No event per keystroke: a field's value changes from "" to "*" once.
    assert!(
        inputs.len() <= 8,
        "{} input events for 5 fields",
        inputs.len()
    );

    // Stored: every batch, then the session with its three pages in v_replays.
    let batches_sent: usize = pages.values().map(Vec::len).sum();
    wait_until(
        Duration::from_secs(60),
        "every batch in replay_batches",
        || async {
            let stored = world
                .query("SELECT count() FROM exatom.replay_batches FINAL WHERE site = '{site}'")
                .await;
            stored == batches_sent.to_string()
        },
    )
    .await;
    // What this visit's replay weighs (BENCHMARKS.md, "Session replay"): written beside the
    // screenshots, not asserted.
    let weight = world
        .query("SELECT count(), sum(bytes), sum(length(events)), max(last_ms) - min(first_ms) FROM exatom.replay_batches FINAL WHERE site = '{site}'")
        .await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("target/test-screenshots");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(
        root.join("replay-weight.tsv"),
        format!("batches\tjson_bytes\tgzip_bytes\trecorded_ms\n{weight}\n"),
    )
    .unwrap();
    // And the visit itself, as the browser sent it (already scrubbed): the replay load tool
    // replays such a visit (`benches/load/replay_visit.json` is one of these files).
    let visit: Vec<Vec<Value>> = views
        .iter()
        .map(|view| {
            let mut batches = pages[view].clone();
            batches.sort_by_key(|b| b["seq"].as_u64());
            batches
        })
        .collect();
    std::fs::write(
        root.join("replay-visit.json"),
        serde_json::to_vec(&visit).unwrap(),
    )
    .unwrap();
    world.wait_all_stored().await;
    let listed = "SELECT pages, forms_started, converted, bytes > 0 FROM exatom.v_replays WHERE site = '{site}'";
    wait_until(
        Duration::from_secs(120),
        "the session in v_replays",
        || async { !world.query(listed).await.is_empty() },
    )
    .await;
    assert_eq!(
        world.query(listed).await,
        "3\t1\t1\t1",
        "pages, forms started, converted, bytes"
    );

    // A session's replay reads back with one query, its pages in the order they were seen.
    let session = world
        .query("SELECT session_id FROM exatom.v_replays WHERE site = '{site}'")
        .await;
    let order = world
        .query(&format!(
            "SELECT arrayStringConcat(groupArray(page_view_id), ',') FROM (\
             SELECT page_view_id FROM exatom.replay_batches FINAL \
             ANY INNER JOIN (SELECT event_id AS page_view_id, event_time_ms FROM exatom.events FINAL \
                WHERE site = '{{site}}' AND session_id = '{session}' AND kind = 'page_view') USING page_view_id \
             WHERE site = '{{site}}' GROUP BY page_view_id ORDER BY min(event_time_ms))"
        ))
        .await;
    assert_eq!(order, views.join(","));

    // What plays back: the headline and labels, digits as #, the e-mail and date replaced.
    let played = world
        .replay_events(&format!("AND page_view_id = '{first}'"))
        .await;
    for shown in [
        "Open your account in # minutes",
        "Full name",
        "Member code",
        "privacy@exatom.io",
        "### ### ####",
        "01/01/1970",
        "Pro, ## months",
    ] {
        assert!(played.contains(shown), "{shown} is not in the replay");
    }
    let snapshot: Value = played
        .lines()
        .flat_map(|l| serde_json::from_str::<Vec<Value>>(l).unwrap())
        .find(|e| e["type"] == 2)
        .expect("a full snapshot");
    let mut all = Vec::new();
    nodes(&snapshot["data"]["node"], &mut all);
    // The blocked region and the itemprop element: empty boxes of their size.
    let placeholders: Vec<&Value> = all
        .iter()
        .filter(|n| n["attributes"]["rr_width"].is_string())
        .collect();
    assert!(placeholders.len() >= 2, "{placeholders:?}");
    let blocked = placeholders
        .iter()
        .find(|n| n["attributes"]["class"] == "ex-block")
        .expect("the ex-block region as a placeholder");
    assert_eq!(
        [
            &blocked["attributes"]["rr_width"],
            &blocked["attributes"]["rr_height"]
        ],
        [&blocked_size[0], &blocked_size[1]],
        "the placeholder has the blocked region's size"
    );
    assert_eq!(blocked["childNodes"], serde_json::json!([]));
    // The masked region's text as stars; every control's value "*" or "".
    assert!(played.contains("******* ******"), "masked text as stars");
    for n in &all {
        if let Some(v) = n["attributes"].get("value") {
            assert!(v == "*" || v == "", "{n}");
        }
    }

    // The site's owner watches it in the console: the Replays page lists the session, its
    // player plays the first page with digits as # and the form's labels.
    let console = crate::console::logged_in_owner(&world, "replay").await;
    b.open(
        &format!("{}/sites/{}/replays", console.url, world.site),
        "table#replays",
    )
    .await;
    b.click(&format!("table#replays a[href$='/replays/{session}']"))
        .await;
    let player_state = "const p = document.getElementById('player'); return [p.getAttribute('data-ready') || '', p.innerText.slice(0, 300)];";
    wait_until(
        Duration::from_secs(30),
        "the player loaded or said why not",
        || async {
            let state = b.eval(player_state).await;
            state[0] != "" || !state[1].as_str().unwrap_or_default().starts_with("Loading")
        },
    )
    .await;
    let state = b.eval(player_state).await;
    assert_ne!(state[0], "", "the player did not load: {}", state[1]);
    b.find("#player iframe").await;
    let shown = wait_until(
        Duration::from_secs(20),
        "the player shows the page",
        || async {
            let text = b
            .eval("const f = document.querySelector('#player iframe'); return f && f.contentDocument && f.contentDocument.body ? f.contentDocument.body.innerText : '';")
            .await;
            text.as_str()
                .is_some_and(|t| t.contains("Open your account in # minutes"))
        },
    );
    shown.await;
    let page_text = b
        .eval("return document.querySelector('#player iframe').contentDocument.body.innerText;")
        .await;
    let page_text = page_text.as_str().unwrap();
    for label in ["Full name", "E-mail", "Member code", "### ### ####"] {
        assert!(
            page_text.contains(label),
            "{label} not in the player: {page_text}"
        );
    }
    let marks = b
        .eval("return Array.from(document.querySelectorAll('#player .rr-progress [title]')).map(m => m.title);")
        .await;
    let marks: Vec<&str> = marks
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for mark in ["form start", "conversion"] {
        assert!(
            marks.contains(&mark),
            "{mark} not on the timeline: {marks:?}"
        );
    }

    let mut needles: Vec<String> = PAGE_SECRETS.iter().map(|s| (*s).to_owned()).collect();
    needles.extend([typed, autofilled, notes]);
    assert_nowhere(&world, &needles).await;

    // The same site now samples almost nobody: this visitor's pages load no recorder and
    // send nothing.
    let text = std::fs::read_to_string(&world.sites).unwrap();
    std::fs::write(
        &world.sites,
        text.replace("replay_sample = 1.0", "replay_sample = 0.000000001"),
    )
    .unwrap();
    let probe = format!("{}/replay.js?site={}", world.recorder.origin, world.site);
    wait_until(Duration::from_secs(30), "the registry reloaded", || async {
        let answer = reqwest::get(&probe).await.unwrap();
        answer.status() == 200 && answer.bytes().await.unwrap().is_empty()
    })
    .await;
    let sent_before = world.recorder.exchanges().len();
    b.open(&world.demo("replay.html"), "#account").await;
    let unsampled = page_view_id(&world).await;
    b.type_into("#full_name", "x").await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    b.client.goto("about:blank").await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let later: Vec<Exchange> = world.recorder.exchanges()[sent_before..].to_vec();
    assert!(later
        .iter()
        .any(|x| x.target.starts_with("/replay.js") && x.response.is_empty()));
    assert!(
        !later.iter().any(|x| x.target == "/v1/replay"),
        "a visitor outside the sample sent replay (page view {unsampled})"
    );
}
