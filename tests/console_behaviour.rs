//! The console's behaviour pages (Heatmap, Scroll depth, Errors) as a real process against
//! the test ClickHouse: rollup and session rows written here for two sites, some in two
//! versions (only the newest counts) and over two days, then each page and its API tables
//! read as each site's user. A shows exactly A's figures and nothing of B's, even where B
//! has rows for the same page, message and script; B's pages are a 404 for A's user.

use exatom_e2e::{Console, ConsoleUser, Stack};
use serde_json::{json, Value};

const ANN: &str = "ann-behaviour-1";
const BOB: &str = "bob-behaviour-2";

/// A's pages: one with a heatmap, one clicked less, one whose address cannot be framed.
const CART: &str = "https://a-shop.example/cart";
const HELP: &str = "https://a-shop.example/help";
const APP: &str = "android-app://com.a-shop/home";
const TYPE_ERROR: &str = "TypeError: x is undefined";
const SCRIPT: &str = "https://a-shop.example/app.js";
const MARKUP: &str = "<img src=x onerror=alert(1)>";

/// What only B has (its pages, messages, forms and figures as pages show them): none of it
/// may reach A's user. A's figures are checked exactly besides.
const B_ONLY: [&str; 6] = [
    "b-secret.example",
    "b_secret_error",
    "b_only_form",
    "777 views",
    ">1000<",
    ">1099<",
];

struct World {
    stack: Stack,
    a: String,
    b: String,
    console: Console,
    range: String,
}

impl World {
    async fn start(name: &str) -> World {
        let stack = Stack::from_env();
        let run = &uuid::Uuid::new_v4().simple().to_string()[..10];
        let (a, b) = (format!("BA{run}"), format!("BB{run}"));
        // The days the console's default range ends with (UTC), written as dates so that
        // the server's time zone does not matter.
        let today = chrono::Utc::now().date_naive();
        let (d0, d1) = (
            today.to_string(),
            (today - chrono::Duration::days(1)).to_string(),
        );
        let insert = |table: &str, rows: Vec<String>| {
            format!("INSERT INTO exatom.{table} VALUES {}", rows.join(", "))
        };
        // Heatmap: on the cart, desktop bin (10, 4) in two versions today (the newest: 8
        // clicks, 3 rage) and 4 clicks yesterday; bin (20, 39) with a dead click; one mobile
        // click. B: a page of its own, and 1000 clicks on A's very cart URL.
        stack
            .execute(&insert(
                "heatmap_daily",
                vec![
                    format!("('{a}', '{d0}', '{CART}', 'desktop', 10, 4, 6, 2, 0, 1)"),
                    format!("('{a}', '{d0}', '{CART}', 'desktop', 10, 4, 8, 3, 0, 2)"),
                    format!("('{a}', '{d1}', '{CART}', 'desktop', 10, 4, 4, 0, 0, 1)"),
                    format!("('{a}', '{d0}', '{CART}', 'desktop', 20, 39, 2, 0, 1, 1)"),
                    format!("('{a}', '{d0}', '{CART}', 'mobile', 5, 2, 1, 0, 0, 1)"),
                    format!("('{a}', '{d0}', '{HELP}', 'desktop', 0, 0, 3, 0, 0, 1)"),
                    format!("('{a}', '{d0}', '{APP}', 'tablet', 7, 1, 1, 0, 0, 1)"),
                    format!("('{b}', '{d0}', 'https://b-secret.example/vault', 'desktop', 1, 1, 99, 7, 5, 1)"),
                    format!("('{b}', '{d0}', '{CART}', 'desktop', 10, 4, 1000, 0, 0, 1)"),
                ],
            ))
            .await;
        stack
            .execute(&insert(
                "scroll_daily",
                vec![
                    format!("('{a}', '{d0}', '{CART}', 'desktop', 10, 9, 6, 3, 1, 1)"),
                    format!("('{a}', '{d0}', '{CART}', 'desktop', 20, 18, 12, 6, 2, 2)"),
                    format!("('{a}', '{d1}', '{CART}', 'desktop', 4, 4, 2, 1, 0, 1)"),
                    format!("('{a}', '{d0}', '{CART}', 'mobile', 5, 5, 5, 0, 0, 1)"),
                    format!("('{b}', '{d0}', 'https://b-secret.example/vault', 'desktop', 777, 700, 600, 500, 400, 1)"),
                    format!("('{b}', '{d0}', '{CART}', 'desktop', 1099, 1099, 1099, 1099, 1099, 1)"),
                ],
            ))
            .await;
        stack
            .execute(&insert(
                "errors_daily",
                vec![
                    format!("('{a}', '{d0}', '{CART}', '{TYPE_ERROR}', '{SCRIPT}', 9, 4, 2, 1, 1)"),
                    format!("('{a}', '{d0}', '{CART}', '{TYPE_ERROR}', '{SCRIPT}', 10, 5, 3, 1, 2)"),
                    format!("('{a}', '{d1}', '{CART}', '{TYPE_ERROR}', '{SCRIPT}', 2, 1, 0, 0, 1)"),
                    format!("('{a}', '{d0}', '{HELP}', '{MARKUP}', 'inline', 30, 8, 0, 2, 1)"),
                    format!("('{b}', '{d0}', 'https://b-secret.example/vault', 'b_secret_error', 'b.js', 50, 20, 10, 0, 1)"),
                    format!("('{b}', '{d0}', '{CART}', '{TYPE_ERROR}', '{SCRIPT}', 1099, 1099, 1099, 0, 1)"),
                ],
            ))
            .await;
        // Which forms the sessions that hit the TypeError abandoned: s1 (on both days) the
        // signup, s2 the signup and the checkout, s3 the checkout in its first version and
        // nothing in its newest. B: a session on the same page and error, its own form.
        let session = |site: &str, day: &str, id: &str, forms: &str, version: u32| {
            format!(
                "('{site}', '{day}', '{id}', '{CART}', '{TYPE_ERROR}', '{SCRIPT}', 'desktop', 1, 1000, {forms}, {}, 0, {version})",
                u8::from(forms != "[]")
            )
        };
        stack
            .execute(&format!(
                "INSERT INTO exatom.session_errors (site, day, session_id, page, message, source, device_class, errors, first_error_ms, abandoned_forms, abandoned_form, converted, version) VALUES {}",
                [
                    session(&a, &d0, "s1", "['signup']", 1),
                    session(&a, &d1, "s1", "['signup']", 1),
                    session(&a, &d0, "s2", "['signup', 'checkout']", 1),
                    session(&a, &d0, "s3", "['checkout']", 1),
                    session(&a, &d0, "s3", "[]", 2),
                    session(&b, &d0, "b1", "['b_only_form']", 1),
                ]
                .join(", ")
            ))
            .await;
        let registry = format!("[sites.{a}]\norigins = []\n\n[sites.{b}]\norigins = []\n");
        let console = Console::start(
            &stack,
            name,
            &registry,
            &[
                ConsoleUser {
                    name: "ann",
                    password: ANN,
                    sites: &[&a],
                    admin: false,
                    token: None,
                },
                ConsoleUser {
                    name: "bob",
                    password: BOB,
                    sites: &[&b],
                    admin: false,
                    token: None,
                },
            ],
            &[],
        )
        .await;
        World {
            stack,
            a,
            b,
            console,
            range: format!("from={}&to={d0}", today - chrono::Duration::days(29)),
        }
    }

    /// GET `path` with `cookie`: status, content security policy and body.
    async fn get(&self, path: &str, cookie: &str) -> (u16, String, String) {
        let answer = Console::client()
            .get(format!("{}{path}", self.console.url))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        let policy = answer
            .headers()
            .get("content-security-policy")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (
            answer.status().as_u16(),
            policy,
            answer.text().await.unwrap(),
        )
    }

    /// An API table as JSON: its columns and rows.
    async fn table(&self, path: &str, cookie: &str) -> (Value, Value) {
        let (status, _, body) = self.get(path, cookie).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_no_b(path, &body);
        let table: Value = serde_json::from_str(&body).unwrap();
        (table["columns"].clone(), table["rows"].clone())
    }
}

fn assert_no_b(path: &str, body: &str) {
    for b in B_ONLY {
        assert!(!body.contains(b), "{path} shows B's `{b}`: {body}");
    }
}

/// A query string's value, encoded as the console's own links encode it.
fn value(s: &str) -> String {
    exatom_console::pages::path_segment(s)
}

#[tokio::test]
async fn each_behaviour_page_shows_its_sites_figures_exactly_and_never_anothers() {
    let w = World::start("behaviour").await;
    let (a, b) = (&w.a, &w.b);
    let ann = w.console.cookie("ann", ANN).await;

    // Heatmap, by default the most clicked page for its device class with most clicks.
    let (status, policy, page) = w.get(&format!("/sites/{a}/heatmap"), &ann).await;
    assert_eq!(status, 200, "{page}");
    assert_no_b("heatmap", &page);
    for nav in [
        "Tooltips</a><a class=\"current\" href=\"/sites/",
        "/heatmap\">Heatmap</a><a href=\"/sites/",
    ] {
        assert!(page.contains(nav), "{nav}: {page}");
    }
    assert!(
        policy.contains("; frame-src https://a-shop.example; frame-ancestors 'none';"),
        "{policy}"
    );
    assert!(!policy.contains('*'), "{policy}");
    assert!(
        page.contains(&format!("<tr class=\"current\"><td data-sort=\"{CART}\"><a href=\"/sites/{a}/heatmap?page={}&amp;{}\">{CART}</a></td><td data-sort=\"15\">15</td><td data-sort=\"3\">3</td><td data-sort=\"1\">1</td></tr>", value(CART), w.range.replace('&', "&amp;"))),
        "{page}"
    );
    assert!(page.contains("<option value=\"desktop\" selected>desktop (14 clicks)</option><option value=\"mobile\">mobile (1 clicks)</option>"), "{page}");
    // The frame: the live page, sandboxed, desktop wide, down to bin 39 and 200 px more.
    assert!(
        page.contains(&format!(
            "<iframe src=\"{CART}\" width=\"1280\" height=\"1200\" scrolling=\"no\" sandbox=\"\""
        )),
        "{page}"
    );
    assert!(page
        .contains("<svg class=\"clicks\" width=\"1280\" height=\"1200\" pointer-events=\"none\""));
    // Bin (10, 4): 12 clicks (newest version today, and yesterday's), the busiest; 3 rage.
    assert!(page.contains("<rect class=\"bin\" x=\"20%\" y=\"100\" width=\"2%\" height=\"25\" fill=\"#dd6b20\" opacity=\"0.850\"/>"), "{page}");
    assert!(page.contains("<rect class=\"bin\" x=\"40%\" y=\"975\" width=\"2%\" height=\"25\" fill=\"#dd6b20\" opacity=\"0.225\"/>"), "{page}");
    assert!(
        page.contains("<rect class=\"rage\" x=\"20%\" y=\"100\""),
        "{page}"
    );
    assert_eq!(page.matches("<rect class=\"rage\"").count(), 1);
    assert!(
        page.contains("<line x1=\"40%\" y1=\"975\" x2=\"42%\" y2=\"1000\"/>"),
        "{page}"
    );
    assert!(page.contains("<td data-sort=\"10\">10</td><td data-sort=\"4\">4</td><td data-sort=\"12\">12</td><td data-sort=\"3\">3</td><td data-sort=\"0\">0</td>"), "{page}");
    // A new range keeps the page and device class shown.
    assert!(page.contains(&format!("<input type=\"hidden\" name=\"page\" value=\"{CART}\"><input type=\"hidden\" name=\"device\" value=\"desktop\">")), "{page}");

    let (status, policy, mobile) = w
        .get(
            &format!(
                "/sites/{a}/heatmap?page={}&device=mobile&{}",
                value(CART),
                w.range
            ),
            &ann,
        )
        .await;
    assert_eq!(status, 200, "{mobile}");
    assert!(
        policy.contains("frame-src https://a-shop.example;"),
        "{policy}"
    );
    assert!(
        mobile.contains("<option value=\"mobile\" selected>"),
        "{mobile}"
    );
    assert!(
        mobile.contains(&format!(
            "<iframe src=\"{CART}\" width=\"390\" height=\"275\""
        )),
        "{mobile}"
    );
    assert!(
        mobile.contains("<rect class=\"bin\" x=\"10%\" y=\"50\""),
        "{mobile}"
    );
    // A page whose address is no http(s) URL: its clicks, no frame, no frame source.
    let (status, policy, app) = w
        .get(&format!("/sites/{a}/heatmap?page={}", value(APP)), &ann)
        .await;
    assert_eq!(status, 200, "{app}");
    assert!(
        !app.contains("<iframe") && !policy.contains("frame-src"),
        "{policy} {app}"
    );
    assert!(
        app.contains("<svg class=\"clicks\" width=\"768\" height=\"250\""),
        "{app}"
    );
    // A page without clicks in the range says so.
    let (status, _, none) = w
        .get(
            &format!(
                "/sites/{a}/heatmap?page={}",
                value("https://a-shop.example/none")
            ),
            &ann,
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        none.contains("No clicks on this page") && !none.contains("<iframe"),
        "{none}"
    );

    // The heatmap's tables.
    let (columns, rows) = w
        .table(&format!("/api/sites/{a}/heatmap_pages"), &ann)
        .await;
    assert_eq!(
        columns,
        json!(["page", "clicks", "rage_clicks", "dead_clicks"])
    );
    assert_eq!(
        rows,
        json!([[CART, 15, 3, 1], [HELP, 3, 0, 0], [APP, 1, 0, 0]])
    );
    let (columns, rows) = w.table(&format!("/api/sites/{a}/heatmap"), &ann).await;
    assert_eq!(
        columns,
        json!(["x_bin", "y_bin", "clicks", "rage_clicks", "dead_clicks"])
    );
    assert_eq!(rows, json!([[10, 4, 12, 3, 0], [20, 39, 2, 0, 1]]));
    let (_, rows) = w
        .table(
            &format!("/api/sites/{a}/heatmap_devices?page={}", value(CART)),
            &ann,
        )
        .await;
    assert_eq!(rows, json!([["desktop", 14], ["mobile", 1]]));
    let (_, rows) = w
        .table(
            &format!("/api/sites/{a}/heatmap?page={}&device=desktop", value(HELP)),
            &ann,
        )
        .await;
    assert_eq!(rows, json!([[0, 0, 3, 0, 0]]));
    let (status, _, csv) = w
        .get(
            &format!(
                "/api/sites/{a}/heatmap?page={}&device=mobile&format=csv",
                value(CART)
            ),
            &ann,
        )
        .await;
    assert_eq!(
        (status, csv.as_str()),
        (
            200,
            "x_bin,y_bin,clicks,rage_clicks,dead_clicks\n5,2,1,0,0\n"
        )
    );

    // Scroll depth: the newest version today and yesterday's, per device class.
    let (status, policy, scroll) = w.get(&format!("/sites/{a}/scroll"), &ann).await;
    assert_eq!(status, 200, "{scroll}");
    assert_no_b("scroll", &scroll);
    assert!(!policy.contains("frame-src"), "{policy}");
    assert!(
        scroll.contains(&format!("{CART}</span> · desktop · 24 views")),
        "{scroll}"
    );
    assert!(
        scroll.contains(&format!("{CART}</span> · mobile · 5 views")),
        "{scroll}"
    );
    // 22 of 24 views reached a quarter of the page: 91.7 %, a bar of 0.9167 × 260 px.
    assert!(scroll.contains("width=\"238.3\" height=\"14\" fill=\"#2b6cb0\"/><text x=\"314\" y=\"15\">91.7 %</text>"), "{scroll}");
    let (columns, rows) = w.table(&format!("/api/sites/{a}/scroll"), &ann).await;
    assert_eq!(
        columns,
        json!([
            "page",
            "device_class",
            "views",
            "reached_25",
            "reached_50",
            "reached_75",
            "reached_100",
            "reached_25_rate",
            "reached_50_rate",
            "reached_75_rate",
            "reached_100_rate"
        ])
    );
    assert_eq!(
        rows,
        json!([
            [CART, "desktop", 24, 22, 14, 7, 2, 0.9167, 0.5833, 0.2917, 0.0833],
            [CART, "mobile", 5, 5, 5, 0, 0, 1, 1, 0, 0]
        ])
    );

    // Errors: those that cost forms first; the forms their sessions abandoned, linked.
    let (columns, rows) = w.table(&format!("/api/sites/{a}/errors"), &ann).await;
    assert_eq!(
        columns,
        json!([
            "page",
            "message",
            "source",
            "errors",
            "sessions",
            "sessions_abandoning_a_form",
            "sessions_converting",
            "forms_abandoned"
        ])
    );
    assert_eq!(
        rows,
        json!([
            [CART, TYPE_ERROR, SCRIPT, 12, 6, 3, 1, [{"form": "signup", "sessions": 2}, {"form": "checkout", "sessions": 1}]],
            [HELP, MARKUP, "inline", 30, 8, 0, 2, []]
        ])
    );
    let (_, rows) = w.table(&format!("/api/sites/{a}/error_forms"), &ann).await;
    assert_eq!(
        rows,
        json!([
            [CART, TYPE_ERROR, SCRIPT, "signup", 2],
            [CART, TYPE_ERROR, SCRIPT, "checkout", 1]
        ])
    );
    let (status, policy, errors) = w.get(&format!("/sites/{a}/errors"), &ann).await;
    assert_eq!(status, 200, "{errors}");
    assert_no_b("errors", &errors);
    assert!(!policy.contains("frame-src"), "{policy}");
    let q = w.range.replace('&', "&amp;");
    assert!(
        errors.contains(&format!("<td><span class=\"forms\"><a href=\"/sites/{a}/forms/signup?{q}\">signup</a> (2)<br><a href=\"/sites/{a}/forms/checkout?{q}\">checkout</a> (1)</span></td>")),
        "{errors}"
    );
    assert!(
        errors.find(TYPE_ERROR).unwrap() < errors.find("&lt;img src=x").unwrap(),
        "{errors}"
    );
    assert!(
        !errors.contains("<img src"),
        "markup in a message is text: {errors}"
    );

    // B's pages and tables, for A's user: not there.
    for path in [
        format!("/sites/{b}/heatmap"),
        format!("/sites/{b}/heatmap?page={}", value(CART)),
        format!("/sites/{b}/scroll"),
        format!("/sites/{b}/errors"),
        format!("/api/sites/{b}/heatmap_pages"),
        format!("/api/sites/{b}/heatmap?page={}", value(CART)),
        format!("/api/sites/{b}/heatmap_devices"),
        format!("/api/sites/{b}/scroll"),
        format!("/api/sites/{b}/errors"),
        format!("/api/sites/{b}/error_forms?format=csv"),
    ] {
        let (status, policy, body) = w.get(&path, &ann).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_no_b(&path, &body);
        assert!(!policy.contains("frame-src"), "{path}: {policy}");
    }
    // Nobody logged in: to the log-in page, or a 401 for the API.
    let (status, _, _) = w.get(&format!("/sites/{a}/heatmap"), "").await;
    assert_eq!(status, 303);
    let (status, _, _) = w.get(&format!("/api/sites/{a}/errors"), "").await;
    assert_eq!(status, 401);
    // Bad parameters: a 400 naming them.
    for (path, says) in [
        (format!("/sites/{a}/heatmap?device=Desk%20top"), "`device`"),
        (format!("/api/sites/{a}/heatmap?page=a%0Ab"), "`page`"),
        (
            format!("/api/sites/{a}/heatmap?page={}", "x".repeat(2049)),
            "`page`",
        ),
        (
            format!("/api/sites/{a}/scroll?from=yesterday"),
            "YYYY-MM-DD",
        ),
    ] {
        let (status, _, body) = w.get(&path, &ann).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains(says), "{path}: {body}");
    }

    // B's user reads B's figures, its 1000 clicks on the same cart URL among them.
    let bob = w.console.cookie("bob", BOB).await;
    let (_, rows) = {
        let (status, _, body) = w.get(&format!("/api/sites/{b}/heatmap_pages"), &bob).await;
        assert_eq!(status, 200, "{body}");
        let table: Value = serde_json::from_str(&body).unwrap();
        (table["columns"].clone(), table["rows"].clone())
    };
    assert_eq!(
        rows,
        json!([
            [CART, 1000, 0, 0],
            ["https://b-secret.example/vault", 99, 7, 5]
        ])
    );
    let (status, _, _) = w.get(&format!("/sites/{a}/errors"), &bob).await;
    assert_eq!(status, 404);

    // And ClickHouse itself gives A's reader none of B's behaviour rows.
    let key = w.console.key();
    for table in [
        "heatmap_daily",
        "scroll_daily",
        "errors_daily",
        "session_errors",
    ] {
        let answer = reqwest::Client::new()
            .post(format!(
                "{}/?database={}",
                w.stack.clickhouse_url,
                exatom_console::grants::site_database("exatom", a)
            ))
            .header(
                "X-ClickHouse-User",
                exatom_console::grants::reader_user("exatom", "ann"),
            )
            .header(
                "X-ClickHouse-Key",
                exatom_console::grants::reader_password(&key, "ann"),
            )
            .body(format!("SELECT groupUniqArray(site) FROM {table}"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "{table}");
        assert_eq!(
            answer.text().await.unwrap().trim(),
            format!("['{a}']"),
            "{table}"
        );
    }
}
