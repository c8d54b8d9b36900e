//! Visitor journeys through the demo's sign-up form, as the browser tag reports them: what the
//! whole-chain load run and the volume test send. Deterministic for a seed, so a run can be
//! repeated and its expected figures computed without looking at the pipeline.
//!
//! Proportions (those of the demo journeys: a share leaves without typing, the others stop at
//! some field or go through to the thank-you page and convert):
//! - 30 % view the form and leave (page view, form view);
//! - 35 % start and abandon after 1–5 fields (focus, input, blur per field);
//! - 35 % fill all six fields, submit, land on the thank-you page and convert.
//!
//! Every page also reports what its tag sees besides the form: two clicks (one in 15 dead,
//! one in 20 a rage click), the depth read, and in one journey of ten a script error.
//!
//! About 15 events a journey, in two batches (the form page, then the thank-you page).

use rand::Rng;
use serde_json::{json, Value};

/// The demo form's fields, in page order.
pub const FIELDS: [&str; 6] = ["full_name", "email", "plan", "contact", "notes", "terms"];

/// User agents a journey picks from: real browsers, so the anonymizer's cache sees a mix.
pub const USER_AGENTS: [&str; 4] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
];

/// How a journey ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Saw the form, typed nothing.
    Viewed,
    /// Typed in this many fields, then left.
    Abandoned(usize),
    /// Filled every field, submitted and converted.
    Converted,
}

/// One visitor's visit: who they are to the collector, and the batches their tag sends.
#[derive(Debug, Clone)]
pub struct Journey {
    /// The visitor's address, sent as `X-Forwarded-For` (the collector trusts loopback).
    pub ip: String,
    pub user_agent: &'static str,
    pub outcome: Outcome,
    /// The batches' events, in the order they are sent; ids are fresh UUIDs.
    pub batches: Vec<Vec<Value>>,
}

impl Journey {
    pub fn events(&self) -> usize {
        self.batches.iter().map(Vec::len).sum()
    }
}

/// The generator journeys are drawn from: seeded, so a run can be repeated.
pub type Seeded = rand::rngs::StdRng;

/// A generator for `seed`.
pub fn seeded(seed: u64) -> Seeded {
    rand::SeedableRng::seed_from_u64(seed)
}

fn uuid(rng: &mut Seeded) -> String {
    uuid::Builder::from_random_bytes(rng.gen())
        .into_uuid()
        .to_string()
}

/// Journey number `n` of a run: the visitor's address is unique per `n` (up to 2^24), so
/// each journey is one visitor and one session. `ts` is the client time of its first event,
/// RFC 3339 with milliseconds; the events follow it a few hundred ms apart.
pub fn journey(site: &str, n: u64, rng: &mut Seeded, ts: chrono::DateTime<chrono::Utc>) -> Journey {
    let ip = format!("10.{}.{}.{}", (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff);
    let user_agent = USER_AGENTS[rng.gen_range(0..USER_AGENTS.len())];
    let outcome = match rng.gen_range(0..100) {
        0..30 => Outcome::Viewed,
        30..65 => Outcome::Abandoned(rng.gen_range(1..=5)),
        _ => Outcome::Converted,
    };
    let mut at_ms = 0i64;
    let mut stamp = || {
        at_ms += 150 + (n as i64 % 7) * 40;
        crate::rfc3339(ts + chrono::Duration::milliseconds(at_ms))
    };
    let page = format!(
        "https://shop.example/signup?utm_source=bench&ref={}",
        n % 13
    );
    let form = json!({"name": "signup", "id": "signup", "order": 0});
    let mut first = vec![
        json!({"id": uuid(rng), "type": "page_view", "ts": stamp(), "page": page,
               "title": "Open an account", "referrer": "https://search.example/"}),
        json!({"id": uuid(rng), "type": "form_view", "ts": stamp(), "page": page,
               "form": {"name": "signup", "id": "signup", "html_id": "signup", "order": 0,
                        "title": "Step 1 of 2: about you", "visible": true,
                        "fields": FIELDS.iter().enumerate().map(|(i, f)| json!({
                            "name": f, "label": f, "id": f, "tag": "input", "type": "text",
                            "order": i, "visible": i < 2, "group": ""})).collect::<Vec<_>>()}}),
    ];
    let typed = match outcome {
        Outcome::Viewed => 0,
        Outcome::Abandoned(k) => k,
        Outcome::Converted => FIELDS.len(),
    };
    let mut seq = 0;
    for (i, name) in FIELDS.iter().take(typed).enumerate() {
        let field = json!({"name": name, "id": name, "tag": "input", "type": "text", "order": i, "label": name});
        for (kind, value) in [("focus", None), ("input", Some("*")), ("blur", Some("*"))] {
            seq += 1;
            let mut e = json!({"id": uuid(rng), "type": "form_event", "ts": stamp(), "page": page,
                               "form": form, "event": kind, "seq": seq, "field": field});
            if let Some(v) = value {
                e["value"] = json!(v);
            }
            first.push(e);
        }
    }
    first.extend(behaviour(n, rng, &page, user_agent, &mut stamp));
    let mut batches = vec![first];
    if outcome == Outcome::Converted {
        seq += 1;
        batches[0].push(
            json!({"id": uuid(rng), "type": "form_event", "ts": stamp(), "page": page,
                               "form": form, "event": "submit", "seq": seq}),
        );
        let thanks = "https://shop.example/thanks";
        batches.push(vec![
            json!({"id": uuid(rng), "type": "page_view", "ts": stamp(), "page": thanks,
                   "title": "Thank you", "referrer": page}),
            json!({"id": uuid(rng), "type": "conversion", "ts": stamp(), "tag": format!("{site}1"),
                   "transaction_id": format!("T-{n}"), "revenue": 25, "currency": "EUR"}),
            json!({"id": uuid(rng), "type": "scroll", "ts": stamp(), "page": thanks, "depth": 100}),
        ]);
    }
    Journey {
        ip,
        user_agent,
        outcome,
        batches,
    }
}

/// The form page's clicks, depth read and (one journey in ten) script error.
fn behaviour(
    n: u64,
    rng: &mut Seeded,
    page: &str,
    user_agent: &str,
    stamp: &mut impl FnMut() -> String,
) -> Vec<Value> {
    let viewport_width = if user_agent.contains("Mobile") {
        390
    } else {
        1280
    };
    let mut events = Vec::with_capacity(4);
    for i in 0..2 {
        let dead = i == 0 && n.is_multiple_of(15);
        let path = if dead {
            "main>div.promo>span.badge"
        } else {
            "main>form#signup>button.primary"
        };
        events.push(
            json!({"id": uuid(rng), "type": "click", "ts": stamp(), "page": page,
            "x": (rng.gen_range(0.0..1.0f64) * 1e4).round() / 1e4, "y": rng.gen_range(0..2400),
            "viewport_width": viewport_width, "path": path, "interactive": !dead,
            "rage": i == 1 && n.is_multiple_of(20), "dead": dead}),
        );
    }
    let depth = [25, 50, 75, 100][rng.gen_range(0..4)];
    events.push(
        json!({"id": uuid(rng), "type": "scroll", "ts": stamp(), "page": page, "depth": depth}),
    );
    if n.is_multiple_of(10) {
        let app = "https://shop.example/static/app.js";
        events.push(json!({"id": uuid(rng), "type": "js_error", "ts": stamp(), "page": page,
            "message": "TypeError: Cannot read properties of undefined (reading 'value')",
            "source": app, "line": 120, "column": 17,
            "frames": [{"file": app, "line": 120, "column": 17}, {"file": app, "line": 88, "column": 5}]}));
    }
    events
}

/// A batch's body as the tag sends it.
pub fn body(site: &str, events: &[Value], sent_at: chrono::DateTime<chrono::Utc>) -> String {
    json!({"site": site, "sent_at": crate::rfc3339(sent_at), "events": events}).to_string()
}

/// What a set of journeys must become: the figures a correct pipeline gives for them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expected {
    pub journeys: u64,
    pub events: u64,
    pub views: u64,
    pub starts: u64,
    pub conversions: u64,
    pub clicks: u64,
    pub script_errors: u64,
}

impl Expected {
    pub fn add(&mut self, j: &Journey) {
        self.journeys += 1;
        self.events += j.events() as u64;
        self.views += 1;
        if j.outcome != Outcome::Viewed {
            self.starts += 1;
        }
        if j.outcome == Outcome::Converted {
            self.conversions += 1;
        }
        let of = |kind: &str| {
            j.batches
                .iter()
                .flatten()
                .filter(|e| e["type"] == kind)
                .count() as u64
        };
        self.clicks += of("click");
        self.script_errors += of("js_error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journeys_have_the_stated_proportions_and_unique_ids() {
        let mut rng = seeded(7);
        let t = chrono::Utc::now();
        let mut expected = Expected::default();
        let mut ids = std::collections::HashSet::new();
        for n in 0..10_000 {
            let j = journey("BENCH", n, &mut rng, t);
            expected.add(&j);
            for e in j.batches.iter().flatten() {
                assert!(ids.insert(e["id"].as_str().unwrap().to_owned()));
            }
        }
        let share = |x: u64| x as f64 / expected.journeys as f64;
        assert!((0.27..0.33).contains(&(1.0 - share(expected.starts))));
        assert!((0.32..0.38).contains(&share(expected.conversions)));
        let per_journey = share(expected.events);
        assert!((13.0..17.0).contains(&per_journey), "{per_journey}");
        assert_eq!(expected.clicks, 2 * expected.journeys);
        assert_eq!(expected.script_errors, expected.journeys / 10);
    }

    #[test]
    fn a_seed_gives_the_same_journeys() {
        let t = chrono::Utc::now();
        let a = journey("S", 5, &mut seeded(1), t);
        let b = journey("S", 5, &mut seeded(1), t);
        assert_eq!(a.batches, b.batches);
        assert_eq!(a.ip, "10.0.0.5");
    }
}
