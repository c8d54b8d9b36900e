//! One browser test's world: its own site, the services as real processes, the
//! recording proxy and the browser; and the checks every test shares.

use std::sync::Mutex;
use std::time::Duration;

use exatom_e2e::{contains, sites_file, wait_until, Pipeline, Stack};
use serde_json::Value;

use crate::chrome::Browser;
use crate::recorder::Recorder;

const TOPICS: [&str; 6] = [
    "exatom.raw",
    "exatom.anon",
    "exatom.sessions",
    "exatom.salts",
    "exatom.dlq",
    "exatom.replay",
];

/// One test's world: its own site, the pipeline, the proxy and the browser.
pub(crate) struct World {
    pub stack: Stack,
    pub run: String,
    pub site: String,
    pub env: Vec<(&'static str, String)>,
    pub sites: std::path::PathBuf,
    pub recorder: Recorder,
    /// Behind a lock so a test can stop and restart a service while the browser is in use.
    pub pipeline: Mutex<Pipeline>,
    pub browser: Browser,
}

impl World {
    pub(crate) async fn start(name: &str) -> Self {
        Self::start_with(name, "").await
    }

    /// A world whose site has `settings` besides its origins and tag (`replay_sample = 1`).
    pub(crate) async fn start_with(name: &str, settings: &str) -> Self {
        let stack = Stack::from_env();
        let run = uuid::Uuid::new_v4().simple().to_string();
        // Letters only: the anonymizer scrubs long digit runs from conversion tags.
        let site: String = "TAG"
            .chars()
            .chain(run[..10].chars().map(|c| match c.to_digit(10) {
                Some(d) => char::from(b'g' + d as u8),
                None => c,
            }))
            .collect();
        let recorder = Recorder::start().await;
        let conversion_tag = format!("{site}1");
        let sites = sites_file(
            &stack,
            name,
            &[(
                &site,
                &[recorder.origin.as_str()],
                &[conversion_tag.as_str()],
            )],
        );
        if !settings.is_empty() {
            // The file's one site is its last table: these lines are its own.
            let text = std::fs::read_to_string(&sites).unwrap();
            std::fs::write(&sites, format!("{text}{settings}\n")).unwrap();
        }
        // A session closes 20 s after its last event: the sessionizer's idle clock runs
        // 31 minutes ahead (negative margin), standing in for the 30-minute gap a real
        // visit waits out.
        let env = vec![
            ("EXATOM_DEMO_SITE", site.clone()),
            ("EXATOM_LATENESS_MS", "20000".to_owned()),
            ("EXATOM_IDLE_MARGIN_MS", (-31 * 60_000).to_string()),
        ];
        let pipeline = Pipeline::start(&stack, &sites, &env).await;
        recorder.forward_to(&pipeline.collector_url);
        let browser = Browser::start(&stack.state).await;
        World {
            stack,
            run,
            site,
            env,
            sites,
            recorder,
            pipeline: Mutex::new(pipeline),
            browser,
        }
    }

    pub(crate) fn demo(&self, page: &str) -> String {
        format!("{}/demo/{page}", self.recorder.origin)
    }

    /// A string no page, label or figure holds: what a visitor types.
    pub(crate) fn marker(&self, what: &str) -> String {
        format!("{what}{}", &self.run[8..20])
    }

    /// Events the collector answered 202 for.
    pub(crate) fn accepted(&self) -> Vec<Value> {
        self.recorder.events(202)
    }

    pub(crate) async fn wait_accepted(&self, what: &str, check: impl Fn(&Value) -> bool) {
        wait_until(Duration::from_secs(30), what, || async {
            self.accepted().iter().any(&check)
        })
        .await;
    }

    /// Waits until ClickHouse holds every accepted event once (and nothing else), and
    /// returns their ids. Accepted is read on every look: a click is sent a second late.
    pub(crate) async fn wait_all_stored(&self) -> std::collections::HashSet<String> {
        let accepted = || -> std::collections::HashSet<String> {
            self.accepted()
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_owned())
                .collect()
        };
        let stored = || async {
            let rows = self
                .query("SELECT event_id FROM exatom.events FINAL WHERE site = '{site}'")
                .await;
            let ids: Vec<String> = rows.lines().map(str::to_owned).collect();
            let unique: std::collections::HashSet<String> = ids.iter().cloned().collect();
            (ids.len() == unique.len()).then_some(unique)
        };
        wait_until(
            Duration::from_secs(60),
            "every event in ClickHouse",
            || async { stored().await == Some(accepted()) },
        )
        .await;
        accepted()
    }

    /// The stored replay events of the site's batches (`where_` narrows them: `AND
    /// page_view_id = '…'`), each batch's JSON array on its own line, in order.
    pub(crate) async fn replay_events(&self, where_: &str) -> String {
        use std::io::Read;
        let hex_rows = self
            .query(&format!(
                "SELECT hex(events) FROM exatom.replay_batches FINAL \
                 WHERE site = '{{site}}' {where_} ORDER BY first_ms, seq"
            ))
            .await;
        let mut out = String::new();
        for row in hex_rows.lines() {
            let gz = hex::decode(row).unwrap();
            flate2::read::GzDecoder::new(gz.as_slice())
                .read_to_string(&mut out)
                .unwrap();
            out.push('\n');
        }
        out
    }

    pub(crate) async fn query(&self, sql: &str) -> String {
        let sql = sql.replace("{site}", &self.site);
        self.stack.query(&sql).await.trim().to_owned()
    }
}

pub(crate) fn is(event: &Value, kind: &str, form: &str) -> bool {
    event["type"] == kind && event["form"]["name"] == form
}

pub(crate) fn form_event(event: &Value, form: &str, kind: &str) -> bool {
    is(event, "form_event", form) && event["event"] == kind
}

/// `bytes` and, when a gzip stream is in them (a replay batch, or its Avro record), what it
/// holds: a search must see through the compression.
pub(crate) fn expanded(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut all = bytes.to_vec();
    if let Some(at) = bytes.windows(3).position(|w| w == [0x1f, 0x8b, 0x08]) {
        let mut out = Vec::new();
        if flate2::read::GzDecoder::new(&bytes[at..])
            .read_to_end(&mut out)
            .is_ok()
        {
            all.extend_from_slice(&out);
        }
    }
    all
}

/// None of `needles` left the browser: not in any request's target or body.
pub(crate) fn assert_not_sent(world: &World, needles: &[String]) {
    let exchanges = world.recorder.exchanges();
    assert!(exchanges.iter().any(|x| x.batch().is_some()));
    for x in &exchanges {
        let body = expanded(&x.body);
        for needle in needles {
            assert!(
                !x.target.contains(needle.as_str()) && !contains(&body, needle),
                "{needle} left the browser: {} {}",
                x.method,
                x.target
            );
        }
    }
}

/// Every place a typed string could leak to: the requests the browser made (targets and
/// bodies), every topic, every table.
pub(crate) async fn assert_nowhere(world: &World, needles: &[String]) {
    assert_not_sent(world, needles);
    assert_not_stored(world, needles).await;
}

/// None of `needles` left the browser in a batch of events (the page itself may load URLs
/// holding them: a script's query string).
pub(crate) fn assert_not_reported(world: &World, needles: &[String]) {
    let batches: Vec<_> = world
        .recorder
        .exchanges()
        .into_iter()
        .filter(|x| x.batch().is_some())
        .collect();
    assert!(!batches.is_empty());
    for x in &batches {
        for needle in needles {
            assert!(
                !contains(&x.body, needle),
                "{needle} left the browser in a batch"
            );
        }
    }
}

/// None of `needles` is in any topic or table.
pub(crate) async fn assert_not_stored(world: &World, needles: &[String]) {
    for topic in TOPICS {
        for (key, value) in world.stack.topic_records(topic) {
            let value = expanded(&value);
            for needle in needles {
                assert!(
                    !contains(&key, needle) && !contains(&value, needle),
                    "{needle} found in {topic}"
                );
            }
        }
    }
    let tables = world
        .query("SELECT name FROM system.tables WHERE database = 'exatom' AND engine LIKE '%MergeTree%'")
        .await;
    for table in tables.lines() {
        let mut dump = world
            .stack
            .query(&format!("SELECT * FROM exatom.{table}"))
            .await;
        if table == "replay_batches" {
            // The events column is gzipped: searched as the player reads it.
            dump.push_str(&world.replay_events("").await);
        }
        for needle in needles {
            assert!(
                !dump.contains(needle.as_str()),
                "{needle} found in table {table}"
            );
        }
    }
}

/// Every 202 took all its events: the tag writes what the wire contract asks.
pub(crate) fn assert_nothing_rejected(world: &World) {
    for x in world.recorder.exchanges() {
        if x.batch().is_some() && x.status == 202 {
            let answer: Value = serde_json::from_slice(&x.response).unwrap();
            assert_eq!(answer["rejected"], serde_json::json!([]), "{answer}");
        }
    }
}

/// A browser or service that hangs fails the test instead of stalling the suite.
pub(crate) async fn within(test: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(Duration::from_secs(240), test)
        .await
        .expect("the test finishes within 4 minutes");
}
