//! Cross-service tests of the aggregator: real processes against the real broker and
//! ClickHouse. A scripted stream of seven visitors goes through the four services; every
//! column of the four daily views and every query of the query pack is checked against
//! figures worked out by hand from `metrics.md`; the same sessions delivered again change
//! nothing; and daily partitions past 90 days are dropped on the packaged server.

use std::time::Duration;

use chrono::{DateTime, Utc};
use exatom_aggregator::rollup::{bind, Param};
use exatom_e2e::{
    fast_sessions, metric, rfc3339, sites_file, wait_until, Pipeline, Service, Stack,
};
use exatom_plumbing::retention::{BOOKKEEPING, EVENT_DATA, REPORTING_DATA};
use serde_json::{json, Value};

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0";
const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1";
const TAG: &str = "GOLD1";

/// One visitor's events, at ms offsets from the visitor's start.
struct Visit {
    start: DateTime<Utc>,
    events: Vec<Value>,
}

impl Visit {
    fn new(start: DateTime<Utc>) -> Self {
        Visit {
            start,
            events: Vec::new(),
        }
    }

    fn push(mut self, ms: i64, mut event: Value) -> Self {
        event["id"] = json!(uuid::Uuid::new_v4().to_string());
        event["ts"] = json!(rfc3339(self.start + chrono::Duration::milliseconds(ms)));
        event["page"] = json!("https://gold.test/form");
        self.events.push(event);
        self
    }

    fn page(self, ms: i64) -> Self {
        self.push(ms, json!({"type": "page_view"}))
    }

    fn view(self, ms: i64, form: &str) -> Self {
        self.push(
            ms,
            json!({"type": "form_view", "form": {"name": form, "fields": []}}),
        )
    }

    /// A form event on a field; `value` is what the field holds afterwards.
    fn on(self, ms: i64, form: &str, field: &str, event: &str, value: Option<&str>) -> Self {
        let seq = self.events.len();
        let mut e = json!({"type": "form_event", "form": {"name": form}, "event": event,
                           "seq": seq, "field": {"name": field}});
        if let Some(v) = value {
            e["value"] = json!(v);
        }
        self.push(ms, e)
    }

    fn submit(self, ms: i64, form: &str) -> Self {
        let seq = self.events.len();
        self.push(
            ms,
            json!({"type": "form_event", "form": {"name": form}, "event": "submit", "seq": seq}),
        )
    }

    fn convert(self, ms: i64, transaction: Option<&str>, revenue: f64) -> Self {
        let mut e =
            json!({"type": "conversion", "tag": TAG, "revenue": revenue, "currency": "EUR"});
        if let Some(t) = transaction {
            e["transaction_id"] = json!(t);
        }
        self.push(ms, e)
    }

    fn tooltip(self, ms: i64, action: &str, trigger: &str, form: &str) -> Self {
        self.push(
            ms,
            json!({"type": "tooltip", "action": action, "trigger": trigger,
                   "tooltip_id": uuid::Uuid::new_v4().to_string(), "form": {"name": form}}),
        )
    }
}

/// The script. Per visitor, the figures it contributes (worked out from metrics.md):
/// start hesitation = first interaction with the form − first form_view; field hesitation =
/// first focus → first input/change/autofill; time spent = focus→blur spans.
fn script(at: impl Fn(i64) -> DateTime<Utc>) -> Vec<(&'static str, Visit)> {
    vec![
        // V1 desktop, signup converted (T-100, 50). Form: start hesitation 3000−1000 = 2000;
        // first start 5000, conversion 12000 → duration 7000. email: spans 3000→6000 and
        // 9000→10500 = 4500, hesitation 2000, a return (blurred holding data, focused
        // again), a correction (* → ""). name: span 1000, hesitation 500.
        (
            FIREFOX,
            Visit::new(at(0))
                .page(0)
                .view(1_000, "signup")
                .on(3_000, "signup", "email", "focus", None)
                .on(5_000, "signup", "email", "input", Some("*"))
                .on(6_000, "signup", "email", "blur", Some("*"))
                .on(7_000, "signup", "name", "focus", None)
                .on(7_500, "signup", "name", "input", Some("*"))
                .on(8_000, "signup", "name", "blur", Some("*"))
                .on(9_000, "signup", "email", "focus", None)
                .on(9_500, "signup", "email", "input", Some(""))
                .on(10_000, "signup", "email", "input", Some("*"))
                .on(10_500, "signup", "email", "blur", Some("*"))
                .submit(11_000, "signup")
                .convert(12_000, Some("T-100"), 50.0),
        ),
        // V2 mobile, two-step checkout abandoned at card. Start hesitation 4000−1000 = 3000
        // (the step-2 form_view does not move the first view). address: span 2000, hes 500;
        // city: span 2000, hes 1500; card: span 12000→18000 = 6000 (tooltips are not form
        // events), hes 3000, an error, a correction; the last field event is on card.
        (
            IPHONE,
            Visit::new(at(20_000))
                .page(0)
                .view(1_000, "checkout")
                .on(4_000, "checkout", "address", "focus", None)
                .on(4_500, "checkout", "address", "input", Some("*"))
                .on(6_000, "checkout", "address", "blur", Some("*"))
                .on(6_500, "checkout", "city", "focus", None)
                .on(8_000, "checkout", "city", "change", Some("*"))
                .on(8_500, "checkout", "city", "blur", Some("*"))
                .page(9_000)
                .view(9_500, "checkout")
                .on(12_000, "checkout", "card", "focus", None)
                .tooltip(
                    13_000,
                    "impression",
                    "ExatomFormStartHesitation",
                    "checkout",
                )
                .tooltip(14_000, "click", "ExatomFormStartHesitation", "checkout")
                .on(15_000, "checkout", "card", "input", Some("*"))
                .on(16_000, "checkout", "card", "invalid", None)
                .on(17_000, "checkout", "card", "input", Some(""))
                .on(18_000, "checkout", "card", "blur", Some("")),
        ),
        // V3 desktop: starts signup (abandoned at password), then newsletter, submits it and
        // converts (T-200, 20): the conversion goes to newsletter, the last form touched.
        // signup: start hesitation 5000−1000 = 4000; email span 1500, hes 1000 (autofill);
        // password span 2500, hes 2000. newsletter: start hesitation 10000−1500 = 8500,
        // duration 13000−11000 = 2000; email span 1500, hes 1000.
        (
            FIREFOX,
            Visit::new(at(40_000))
                .page(0)
                .view(1_000, "signup")
                .view(1_500, "newsletter")
                .on(5_000, "signup", "email", "focus", None)
                .on(6_000, "signup", "email", "autofill", Some("*"))
                .on(6_500, "signup", "email", "blur", Some("*"))
                .on(7_000, "signup", "password", "focus", None)
                .on(9_000, "signup", "password", "input", Some("*"))
                .on(9_500, "signup", "password", "blur", Some("*"))
                .on(10_000, "newsletter", "email", "focus", None)
                .on(11_000, "newsletter", "email", "input", Some("*"))
                .on(11_500, "newsletter", "email", "blur", Some("*"))
                .submit(12_000, "newsletter")
                .convert(13_000, Some("T-200"), 20.0),
        ),
        // V4 mobile, checkout converted (T-300, 80), then the thank-you page sends it again:
        // one conversion, 80 once. Start hesitation 3000−2000 = 1000; duration
        // 10000−3200 = 6800. Spans: address 800, city 600, card 2500, cvc 800; hesitations
        // 200, 100, 2000, 300.
        (
            IPHONE,
            Visit::new(at(60_000))
                .page(0)
                .view(2_000, "checkout")
                .on(3_000, "checkout", "address", "focus", None)
                .on(3_200, "checkout", "address", "input", Some("*"))
                .on(3_800, "checkout", "address", "blur", Some("*"))
                .on(4_000, "checkout", "city", "focus", None)
                .on(4_100, "checkout", "city", "input", Some("*"))
                .on(4_600, "checkout", "city", "blur", Some("*"))
                .on(5_000, "checkout", "card", "focus", None)
                .on(7_000, "checkout", "card", "input", Some("*"))
                .on(7_500, "checkout", "card", "blur", Some("*"))
                .on(8_000, "checkout", "cvc", "focus", None)
                .on(8_300, "checkout", "cvc", "input", Some("*"))
                .on(8_800, "checkout", "cvc", "blur", Some("*"))
                .submit(9_000, "checkout")
                .convert(10_000, Some("T-300"), 80.0)
                .convert(11_000, Some("T-300"), 80.0),
        ),
        // V5 desktop, no form: T-100 again (V1's, earlier: no revenue) and one without a
        // transaction (5): form '' counts one conversion per session, revenue 5.
        (
            FIREFOX,
            Visit::new(at(80_000))
                .page(0)
                .convert(2_000, Some("T-100"), 50.0)
                .convert(3_000, None, 5.0),
        ),
        // V6 desktop views signup and focuses email without typing: a view, no start;
        // email span 4000→7000 = 3000, no hesitation.
        (
            FIREFOX,
            Visit::new(at(100_000))
                .page(0)
                .view(1_000, "signup")
                .on(4_000, "signup", "email", "focus", None)
                .on(7_000, "signup", "email", "blur", Some("")),
        ),
        // V7 mobile types in newsletter without a form_view (a start, no view, no start
        // hesitation), abandons at email: span 2000→4000 = 2000, hes 600.
        (
            IPHONE,
            Visit::new(at(120_000))
                .page(0)
                .on(2_000, "newsletter", "email", "focus", None)
                .on(2_600, "newsletter", "email", "input", Some("*"))
                .tooltip(3_000, "impression", "ExatomFieldHesitation", "newsletter")
                .tooltip(3_500, "close", "ExatomFieldHesitation", "newsletter")
                .on(4_000, "newsletter", "email", "blur", Some("*")),
        ),
    ]
}

/// The expected rows of each view (after `site`, `day`), worked out from the script above.
const FORM_DAILY: &str = "\
checkout\t2\t2\t1\t1\t0\t1\t6.8\t3000
newsletter\t1\t2\t1\t1\t-1\t1\t2\t8500
signup\t3\t2\t1\t1\t1\t1\t7\t4000";
// checkout: V2, V4 viewed and started, V4 submitted and converted; avg duration 6800 ms;
//   start hesitations [3000, 1000] → quantileExact's median of an even count is the upper
//   middle value: 3000.
// newsletter: viewed by V3 only, started by V3 and V7 → page_abandoners 1 − 2 = −1; V3
//   converted (duration 2000); hesitation only from V3 (V7 had no form_view): 8500.
// signup: V1, V3, V6 viewed; V1, V3 started (V6 only focused); V1 submitted, converted
//   (7000 ms); hesitations [2000, 4000] → 4000.

const FIELD_DAILY: &str = "\
checkout\taddress\t2\t0\t1400\t500\t0\t0\t0
checkout\tcard\t2\t1\t4250\t3000\t0\t1\t1
checkout\tcity\t2\t0\t1300\t1500\t0\t0\t0
checkout\tcvc\t1\t0\t800\t300\t0\t0\t0
newsletter\temail\t2\t1\t1750\t1000\t0\t0\t0
signup\temail\t3\t0\t3000\t2000\t1\t1\t0
signup\tname\t1\t0\t1000\t500\t0\t0\t0
signup\tpassword\t1\t1\t2500\t2000\t0\t0\t0";
// address (2000 + 800) / 2, median [200, 500] → 500; card (6000 + 2500) / 2, V2 abandoned
// there with one error and one correction, median [2000, 3000] → 3000; city (2000 + 600) / 2,
// median [100, 1500] → 1500; newsletter email (1500 + 2000) / 2, V7 abandoned, median
// [600, 1000] → 1000; signup email (4500 + 1500 + 3000) / 3, median [1000, 2000] → 2000 (V6
// never typed), V1's return and correction; password: V3 abandoned there.

const CONVERSIONS_DAILY: &str = "\
\t1\t5
checkout\t1\t80
newsletter\t1\t20
signup\t1\t50";
// '': V5's two conversions count once; T-100 was V1's earlier → 0, plus 5 without a
// transaction. checkout: V4's repeated T-300 counts once, 80 once.

const TOOLTIPS_DAILY: &str = "\
ExatomFieldHesitation\t1\t0\t1
ExatomFormStartHesitation\t1\t1\t0";

/// The query pack on the golden site: (file, parameters beyond site and dates, answer).
fn query_pack_answers() -> Vec<(&'static str, Option<&'static str>, &'static str)> {
    vec![
        (
            "form_funnel",
            None,
            // start_rate = starts / views, conversion_rate = conversions / starts.
            "signup\t3\t2\t1\t1\t1\t1\t0.6667\t0.5\n\
             checkout\t2\t2\t1\t1\t0\t1\t1\t0.5\n\
             newsletter\t1\t2\t1\t1\t-1\t1\t2\t0.5",
        ),
        (
            "field_dropoff",
            Some("checkout"),
            "card\t1\t2\t0.5\naddress\t0\t2\t0\ncity\t0\t2\t0\ncvc\t0\t1\t0",
        ),
        (
            "field_hesitation",
            Some("checkout"),
            "card\t2\t3000\t4250\t0\t1\t1\ncity\t2\t1500\t1300\t0\t0\t0\n\
             address\t2\t500\t1400\t0\t0\t0\ncvc\t1\t300\t800\t0\t0\t0",
        ),
        (
            "conversion_attribution",
            None,
            // V5's conversions without a form: one counted, 5 of revenue (T-100 was V1's).
            "checkout\t1\t80\nsignup\t1\t50\nnewsletter\t1\t20\n\t1\t5",
        ),
        (
            "trends_daily",
            Some("signup"),
            "{day}\t3\t2\t1\t1\t4000\t50",
        ),
        (
            "by_device_class",
            Some("newsletter"),
            // desktop: V3 viewed, started, submitted, converted (hesitation 8500, 20);
            // mobile: V7 started only: no view, no hesitation (an empty state's median is 0),
            // no revenue.
            "desktop\t1\t1\t1\t1\t8500\t20\nmobile\t0\t1\t0\t0\t0\t0",
        ),
    ]
}

async fn views(stack: &Stack, site: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (view, order) in [
        ("v_form_daily", "form"),
        ("v_field_daily", "form, field"),
        ("v_conversions_daily", "form"),
        ("v_tooltips_daily", "trigger"),
    ] {
        out.push(
            stack
                .query(&format!(
                    "SELECT * FROM exatom.{view} WHERE site = '{site}' ORDER BY {order}"
                ))
                .await,
        );
    }
    out
}

async fn run_pack(stack: &Stack, site: &str, day: &str) -> Vec<(String, String)> {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/clickhouse/queries");
    let mut out = Vec::new();
    for (name, form, _) in query_pack_answers() {
        let sql = std::fs::read_to_string(dir.join(format!("{name}.sql"))).unwrap();
        let date = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap();
        let days = (date - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() as u16;
        let mut params = vec![
            ("site", Param::Str(site.to_owned())),
            ("from", Param::Day(days)),
            ("to", Param::Day(days)),
        ];
        if let Some(form) = form {
            params.push(("form", Param::Str(form.to_owned())));
        }
        let sql = bind(&sql, &params).unwrap();
        // The pack names its tables without a database, as a dashboard connected to it does.
        let answer = in_exatom(stack, &format!("{sql} FORMAT TSV")).await;
        out.push((name.to_owned(), answer));
    }
    out
}

/// Runs a statement in the `exatom` database and returns its output.
async fn in_exatom(stack: &Stack, sql: &str) -> String {
    let response = reqwest::Client::new()
        .post(format!("{}/?database=exatom", stack.clickhouse_url))
        .body(sql.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "{sql}: {status} {text}");
    text
}

#[tokio::test]
async fn golden_stream_gives_hand_worked_figures_and_a_second_delivery_changes_nothing() {
    let stack = Stack::from_env();
    let site = format!("GOLD{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let sites = sites_file(&stack, "golden", &[(&site, &[], &[TAG])]);
    let mut pipeline = Pipeline::start(&stack, &sites, &fast_sessions()).await;

    // The visits happened 40 minutes ago (complete sessions), all on one UTC day.
    let now = Utc::now();
    let mut base = now - chrono::Duration::minutes(40);
    if base.date_naive() != (base + chrono::Duration::minutes(5)).date_naive() {
        base -= chrono::Duration::minutes(10);
    }
    let day = base.date_naive().format("%Y-%m-%d").to_string();
    let client = reqwest::Client::new();
    for (i, (user_agent, visit)) in script(|ms| base + chrono::Duration::milliseconds(ms))
        .into_iter()
        .enumerate()
    {
        let body = json!({"site": site, "sent_at": rfc3339(now), "events": visit.events});
        let response = client
            .post(format!("{}/v1/events", pipeline.collector_url))
            .header("user-agent", user_agent)
            .header("x-forwarded-for", format!("203.0.113.{}", 10 + i))
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["rejected"], json!([]), "visitor {i}");
    }

    // Every row and every rollup group written: rollup versions count the rows they saw
    // (7 (session, form) pairs, 14 (session, field) rows, 4 tooltips; conversions weigh
    // 2 + 1 + 2·2 + 2 + 1 = 10 with their transactions' other conversions).
    let settled = [
        "form_daily",
        "form_segment_daily",
        "field_daily",
        "field_segment_daily",
        "tooltips_daily",
        "conversions_daily",
        "conversion_segment_daily",
    ]
    .map(|t| format!("(SELECT sum(version) FROM exatom.{t} FINAL WHERE site = '{site}')"))
    .join(", ");
    let settled = format!("SELECT {settled}");
    wait_until(Duration::from_secs(120), "rollups complete", || async {
        stack.query(&settled).await.trim() == "7\t7\t14\t14\t4\t10\t10"
    })
    .await;

    let prefix = |rows: &str| -> String {
        rows.lines()
            .map(|l| format!("{site}\t{day}\t{l}\n"))
            .collect()
    };
    let before = views(&stack, &site).await;
    assert_eq!(before[0], prefix(FORM_DAILY), "v_form_daily");
    assert_eq!(before[1], prefix(FIELD_DAILY), "v_field_daily");
    assert_eq!(before[2], prefix(CONVERSIONS_DAILY), "v_conversions_daily");
    assert_eq!(before[3], prefix(TOOLTIPS_DAILY), "v_tooltips_daily");
    let pack = run_pack(&stack, &site, &day).await;
    for ((name, got), (_, _, want)) in pack.iter().zip(query_pack_answers()) {
        let want: String = want
            .replace("{day}", &day)
            .lines()
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(got, &want, "query pack: {name}");
    }
    // Segments: the rollups hold the browser family of each visitor's user agent.
    let browsers = stack
        .query(&format!(
            "SELECT device_class, browser_family, sum(views) FROM exatom.form_segment_daily FINAL \
             WHERE site = '{site}' GROUP BY device_class, browser_family ORDER BY device_class"
        ))
        .await;
    assert_eq!(browsers, "desktop\tFirefox\t4\nmobile\tMobile Safari\t2\n");

    // The same sessions again, as an at-least-once redelivery would bring them.
    let metrics_url = format!(
        "http://127.0.0.1:{}/metrics",
        pipeline.admin_ports["aggregator"]
    );
    let written = "exatom_aggregator_rows_written_total{table=\"form_sessions\"}";
    let rows_before = metric(&metrics_url, written).await;
    let ours: Vec<_> = stack
        .topic_records("exatom.sessions")
        .into_iter()
        .filter(|(key, _)| key.starts_with(format!("{site}:").as_bytes()))
        .collect();
    assert_eq!(ours.len(), 7, "one record per visitor's session");
    stack.redeliver("exatom.sessions", &ours).await;
    // Rows are counted after their batch's rollups are recomputed.
    wait_until(
        Duration::from_secs(60),
        "second delivery written",
        || async { metric(&metrics_url, written).await >= rows_before + 7.0 },
    )
    .await;
    assert_eq!(
        views(&stack, &site).await,
        before,
        "a second delivery changed a view"
    );
    assert_eq!(
        run_pack(&stack, &site, &day).await,
        pack,
        "a second delivery changed the query pack"
    );
    let raw = stack
        .query(&format!(
            "SELECT (SELECT count() FROM exatom.form_sessions FINAL WHERE site = '{site}'), \
                    (SELECT count() FROM exatom.conversions FINAL WHERE site = '{site}')"
        ))
        .await;
    assert_eq!(raw, "7\t6\n");
    assert!(pipeline.stop().is_empty());
}

/// Rows older than 90 days leave every table of event data, and reporting data keeps them:
/// the aggregator's retention task on the packaged server (modern servers: the TTL, checked
/// by `tests/modern_engine.py`).
#[tokio::test]
async fn event_data_past_ninety_days_goes_and_reporting_data_stays_on_the_packaged_server() {
    let stack = Stack::from_env();
    let version = stack.query("SELECT version()").await;
    assert!(
        version.starts_with("18."),
        "this test is for servers without TTL: {version}"
    );
    let site = format!("OLD{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    // Every table of the database is in one retention class.
    let mut tables: Vec<String> = stack
        .query(
            "SELECT name FROM system.tables WHERE database = 'exatom' \
             AND engine LIKE '%MergeTree' ORDER BY name",
        )
        .await
        .lines()
        .map(str::to_owned)
        .collect();
    let mut classified: Vec<String> = [EVENT_DATA, REPORTING_DATA, BOOKKEEPING]
        .concat()
        .iter()
        .map(|t| t.to_string())
        .collect();
    tables.sort();
    classified.sort();
    assert_eq!(tables, classified);
    // The segment rollups are partitioned by month (their older days are deleted), the
    // rest of event data by day (their old partitions dropped).
    let monthly = [
        "form_segment_daily",
        "field_segment_daily",
        "conversion_segment_daily",
        "tooltips_daily",
    ];
    // 400, 100 and 91 days old go; 90 days old (the last day kept) and today stay.
    for table in EVENT_DATA.iter().chain(REPORTING_DATA) {
        in_exatom(
            &stack,
            &format!(
                "INSERT INTO {table} (site, day) SELECT '{site}', today() - arrayJoin([400, 100, 91, 90, 0])"
            ),
        )
        .await;
    }
    let ages = |table: &'static str| {
        let stack = stack.clone();
        let site = site.clone();
        async move {
            stack
                .query(&format!(
                    "SELECT groupArray(today() - day) FROM \
                     (SELECT day FROM exatom.{table} WHERE site = '{site}' ORDER BY day DESC)"
                ))
                .await
                .trim()
                .to_owned()
        }
    };
    assert_eq!(ages(EVENT_DATA[0]).await, "[0,90,91,100,400]");
    // Replays of a site keeping them fewer days: the one whose `expires` has come goes.
    let replays = format!("{site}R");
    in_exatom(
        &stack,
        &format!(
            "INSERT INTO replay_batches (site, day, page_view_id, expires) VALUES \
             ('{replays}', today() - 10, 'gone', today()), ('{replays}', today() - 10, 'kept', today() + 1)"
        ),
    )
    .await;

    // The aggregator's retention task runs when it starts.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut aggregator = Service::start(
        &stack,
        "aggregator",
        &[("EXATOM_ADMIN_LISTEN", format!("127.0.0.1:{port}"))],
    );
    let days_left = || async {
        let mut left = Vec::new();
        for table in EVENT_DATA {
            left.push((ages(table).await, *table));
        }
        left
    };
    wait_until(Duration::from_secs(90), "days past 90 removed", || async {
        days_left().await.iter().all(|(ages, _)| ages == "[0,90]")
    })
    .await;
    for (ages, table) in days_left().await {
        assert_eq!(ages, "[0,90]", "{table}");
    }
    for table in REPORTING_DATA {
        assert_eq!(ages(table).await, "[0,90,91,100,400]", "{table}");
    }
    let replays_left = format!(
        "SELECT groupArray(page_view_id) FROM exatom.replay_batches WHERE site = '{replays}'"
    );
    wait_until(
        Duration::from_secs(30),
        "the expired replay deleted",
        || async { stack.query(&replays_left).await.trim() == "['kept']" },
    )
    .await;
    // The views over reporting data answer for the day 400 days ago.
    for view in ["v_form_daily", "v_field_daily", "v_conversions_daily"] {
        let rows = stack
            .query(&format!(
                "SELECT count() FROM exatom.{view} WHERE site = '{site}' AND day = today() - 400"
            ))
            .await;
        assert_eq!(rows.trim(), "1", "{view}");
    }
    let metrics_url = format!("http://127.0.0.1:{port}/metrics");
    let dropped = metric(
        &metrics_url,
        "exatom_aggregator_retention_partitions_dropped_total",
    )
    .await;
    let deleted = metric(
        &metrics_url,
        "exatom_aggregator_retention_rows_deleted_total",
    )
    .await;
    // Three old days per daily table, each its own partition; per monthly table at least
    // two partitions or rows (100 and 91 days ago can fall in one month past the cutoff).
    let daily = (EVENT_DATA.len() - monthly.len()) as f64;
    assert!(
        dropped >= 3.0 * daily && dropped + deleted >= 3.0 * daily + 2.0 * monthly.len() as f64,
        "{dropped} partitions dropped, {deleted} rows deleted"
    );
    assert!(aggregator.stop());
}
