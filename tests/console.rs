//! The console as a real process against the test ClickHouse: logging in, each site's
//! figures kept to its users (in the console and in ClickHouse itself), bad input, and the
//! lock after ten wrong passwords. The figures are rollup rows written here for two sites;
//! the browser test reads figures the whole pipeline made.

use exatom_e2e::{assert_same_rows, field_csv_of_the_view, Console, ConsoleUser, Stack};

struct World {
    stack: Stack,
    a: String,
    b: String,
    console: Console,
}

const ANN: &str = "ann-pass-1";
const BOB: &str = "bob-pass-2";
const ROOT: &str = "root-pass-3";
const TOKEN: &str = "ann-api-token-0123456789";

impl World {
    async fn start(name: &str) -> World {
        let stack = Stack::from_env();
        let run = &uuid::Uuid::new_v4().simple().to_string()[..10];
        let (a, b) = (format!("CA{run}"), format!("CB{run}"));
        for (site, form, field) in [
            (&a, "signup", "email"),
            (&b, "secret_b_form", "b_only_field"),
        ] {
            stack.execute(&format!(
                "INSERT INTO exatom.form_daily SELECT '{site}', today(), '{form}', 40, 20, 10, 5, 5, 300000, quantileExactState(toInt64(number * 100)), 1 FROM numbers(5)"
            )).await;
            stack.execute(&format!(
                "INSERT INTO exatom.form_segment_daily SELECT '{site}', today(), '{form}', 'desktop', 'NL', 'Chrome', 40, 20, 10, 5, 5, 300000, quantileExactState(toInt64(number * 100)), 1 FROM numbers(5)"
            )).await;
            for (f, abandons) in [(field.to_string(), 3), ("name".to_string(), 1)] {
                stack.execute(&format!(
                    "INSERT INTO exatom.field_daily SELECT '{site}', today(), '{form}', '{f}', 20, {abandons}, 60000, quantileExactState(toInt64(number * 250)), 2, 1, 4, 1 FROM numbers(3)"
                )).await;
            }
            stack.execute(&format!(
                "INSERT INTO exatom.conversions_daily VALUES ('{site}', today(), '{form}', 5, 97.5, 1), ('{site}', today(), '', 2, 10, 1)"
            )).await;
            // Conversions as events: a transaction sent twice (its revenue once), another
            // currency, one with no form before it; B's in a currency of its own.
            let (first, second) = if *site == a {
                ("EUR", "USD")
            } else {
                ("SEK", "SEK")
            };
            stack.execute(&format!(
                "INSERT INTO exatom.conversions (site, day, session_id, event_id, form_key, conversion_tag, transaction_id, revenue, currency, event_time_ms, counts, version) VALUES \
                 ('{site}', today(), 's1', 'e1', '{form}', 'T', 'tx1', 25, '{first}', 1000, 1, 1), \
                 ('{site}', today(), 's2', 'e2', '{form}', 'T', 'tx1', 25, '{first}', 2000, 1, 1), \
                 ('{site}', today(), 's3', 'e3', '{form}', 'T', '', 10, '{second}', 3000, 1, 1), \
                 ('{site}', today(), 's4', 'e4', '', 'T', '', 5, 'GBP', 4000, 1, 1)"
            )).await;
            stack.execute(&format!(
                "INSERT INTO exatom.tooltips_daily VALUES ('{site}', today(), 'ExatomFormStartHesitation', 'desktop', 'NL', 'Chrome', 30, 5, 10, 1)"
            )).await;
        }
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
                    token: Some(TOKEN),
                },
                ConsoleUser {
                    name: "bob",
                    password: BOB,
                    sites: &[&b],
                    admin: false,
                    token: None,
                },
                ConsoleUser {
                    name: "root",
                    password: ROOT,
                    sites: &[],
                    admin: true,
                    token: None,
                },
            ],
            &[("EXATOM_CONSOLE_LOCKOUT_S", "600".to_owned())],
        )
        .await;
        World {
            stack,
            a,
            b,
            console,
        }
    }
}

#[tokio::test]
async fn a_user_logs_in_and_reads_only_the_sites_they_hold() {
    let w = World::start("isolation").await;
    let c = &w.console;
    let (a, b) = (&w.a, &w.b);

    let anonymous = Console::client()
        .get(format!("{}/sites/{a}/forms", c.url))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 303);
    assert_eq!(anonymous.headers()["location"], "/login");
    let api = Console::client()
        .get(format!("{}/api/sites/{a}/forms", c.url))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 401);

    assert_eq!(c.log_in("ann", "wrong").await.status(), 401);
    assert_eq!(c.log_in("nobody", ANN).await.status(), 401);
    let answer = c.log_in("ann", ANN).await;
    assert_eq!(answer.status(), 303);
    let set_cookie = answer.headers()["set-cookie"].to_str().unwrap().to_owned();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(flag), "{set_cookie}");
    }
    assert!(
        !set_cookie.contains("Secure"),
        "plain HTTP here: {set_cookie}"
    );
    let ann = set_cookie.split(';').next().unwrap().to_owned();

    let (status, page) = c.get(&format!("/sites/{a}/forms"), &ann).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains(">signup</a>") && !page.contains("secret_b_form"),
        "{page}"
    );
    let (status, json) = c.get(&format!("/api/sites/{a}/forms"), &ann).await;
    assert_eq!(status, 200);
    let forms: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(forms["rows"][0][0], "signup");
    assert_eq!(forms["rows"][0][1], 40, "views: {json}");
    assert_eq!(
        forms["rows"][0][9], 97.5,
        "revenue attributed to the form: {json}"
    );

    // Revenue per currency: the repeated transaction once, B's currency nowhere.
    let (status, json) = c
        .get(&format!("/api/sites/{a}/conversion_currencies"), &ann)
        .await;
    assert_eq!(status, 200, "{json}");
    let currencies: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        currencies["rows"],
        serde_json::json!([
            ["signup", "EUR", 2, 25],
            ["signup", "USD", 1, 10],
            ["", "GBP", 1, 5]
        ]),
        "{json}"
    );

    // Site B, asked for every way a visitor of the console could.
    let attempts = [
        format!("/sites/{b}/forms"),
        format!("/sites/{b}/live"),
        format!("/sites/{b}/forms/secret_b_form"),
        format!("/api/sites/{b}/forms"),
        format!("/api/sites/{b}/live_events"),
        format!("/api/sites/{b}/forms/secret_b_form/fields?format=csv"),
        format!("/api/sites/{a}/forms/secret_b_form/fields"),
        format!("/sites/{a}/forms/secret_b_form"),
        format!("/api/sites/{a}/forms?site={b}"),
        format!("/api/sites/{a}%27%20OR%20site%3D%27{b}/forms"),
        format!("/api/sites/..%2F{b}/forms"),
        format!("/api/sites/{a}/forms/x%27%20OR%201%3D1%20--%20/fields"),
        "/api/sites/NOPE/forms".to_owned(),
    ];
    for path in &attempts {
        let (status, body) = c.get(path, &ann).await;
        assert!(
            [400, 404].contains(&status) || path.contains("?site="),
            "{path}: {status} {body}"
        );
        assert!(
            !body.contains("secret_b_form") || body.contains("no figures for form `secret_b_form`"),
            "{path}: {body}"
        );
        assert!(!body.contains("b_only_field"), "{path}: {body}");
        if path.starts_with(&format!("/sites/{b}")) || path.starts_with(&format!("/api/sites/{b}"))
        {
            assert_eq!(status, 404, "{path}");
        }
    }
    // An extra `site` parameter changes nothing: still A's figures.
    let (_, body) = c.get(&format!("/api/sites/{a}/forms?site={b}"), &ann).await;
    assert!(
        body.contains("signup") && !body.contains("secret_b_form"),
        "{body}"
    );

    // The API token reads the same, and only the same.
    let bearer = |path: String, token: &str| {
        Console::client()
            .get(format!("{}{path}", c.url))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(
        bearer(format!("/api/sites/{a}/forms"), TOKEN)
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        bearer(format!("/api/sites/{b}/forms"), TOKEN)
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        bearer(format!("/api/sites/{a}/forms"), "not-a-token")
            .await
            .unwrap()
            .status(),
        401
    );

    // Bob sees B and not A; the admin sees both.
    let bob = c.cookie("bob", BOB).await;
    assert_eq!(c.get(&format!("/api/sites/{a}/forms"), &bob).await.0, 404);
    let (status, body) = c.get(&format!("/api/sites/{b}/forms"), &bob).await;
    assert!(status == 200 && body.contains("secret_b_form"), "{body}");
    let root = c.cookie("root", ROOT).await;
    assert_eq!(c.get(&format!("/api/sites/{a}/forms"), &root).await.0, 200);
    assert_eq!(c.get(&format!("/api/sites/{b}/forms"), &root).await.0, 200);

    // Log-out needs the page's CSRF token; without it the session stays.
    let logout = |csrf: String, cookie: String| {
        Console::client()
            .post(format!("{}/logout", c.url))
            .header("cookie", cookie)
            .form(&[("csrf", csrf)])
            .send()
    };
    assert_eq!(
        logout("00".into(), ann.clone()).await.unwrap().status(),
        403
    );
    let (_, page) = c.get(&format!("/sites/{a}/forms"), &ann).await;
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let out = logout(csrf, ann.clone()).await.unwrap();
    assert_eq!(out.status(), 303);
    assert!(out.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));

    // Nothing secret in the console's log.
    let log = std::fs::read_to_string(w.stack.state.join("logs/test-console.log")).unwrap();
    for secret in [ANN, BOB, ROOT, TOKEN, ann.split('=').nth(1).unwrap()] {
        assert!(!log.contains(secret), "{secret} in the console's log");
    }
}

#[tokio::test]
async fn clickhouse_itself_keeps_each_sites_rows_from_users_who_do_not_hold_it() {
    let w = World::start("clickhouse").await;
    let key = w.console.key();
    let (a, b) = (&w.a, &w.b);
    let client = reqwest::Client::new();
    // A hand-written query as the ClickHouse user the console reads with for `name`.
    let as_user = |name: &'static str, database: String, sql: String| {
        let client = client.clone();
        let url = format!("{}/?database={database}", w.stack.clickhouse_url);
        let password = exatom_console::grants::reader_password(&key, name);
        async move {
            let answer = client
                .post(url)
                .header(
                    "X-ClickHouse-User",
                    exatom_console::grants::reader_user("exatom", name),
                )
                .header("X-ClickHouse-Key", password)
                .body(sql)
                .send()
                .await
                .unwrap();
            (answer.status().as_u16(), answer.text().await.unwrap())
        }
    };
    let db_a = exatom_console::grants::site_database("exatom", a);
    let db_b = exatom_console::grants::site_database("exatom", b);
    // Ann's user on A's database reads A's rows, whatever the query asks for.
    let (status, sites) = as_user(
        "ann",
        db_a.clone(),
        "SELECT DISTINCT site FROM form_daily".into(),
    )
    .await;
    assert_eq!((status, sites.trim()), (200, a.as_str()));
    let (_, none) = as_user(
        "ann",
        db_a.clone(),
        format!("SELECT count() FROM field_daily WHERE site = '{b}'"),
    )
    .await;
    assert_eq!(none.trim(), "0");
    let (_, events) = as_user(
        "ann",
        db_a.clone(),
        format!("SELECT count() FROM events WHERE site != '{a}'"),
    )
    .await;
    assert_eq!(events.trim(), "0", "no other site's events either");
    // B's database, the raw tables, the filtered views, table functions, settings: closed.
    for (database, sql) in [
        (db_b.clone(), "SELECT count() FROM form_daily".to_owned()),
        (db_a.clone(), format!("SELECT count() FROM `{db_b}`.form_daily")),
        (db_a.clone(), "SELECT count() FROM exatom.form_daily".to_owned()),
        (db_a.clone(), format!("SELECT count() FROM `exatom_site_{b}`.form_daily")),
        (db_a.clone(), format!("SELECT count() FROM `exatom_site_{a}`.form_daily")),
        (db_a.clone(), "SELECT count() FROM remote('127.0.0.1:9000', exatom.form_daily)".to_owned()),
        (db_a.clone(), "SELECT count() FROM form_daily SETTINGS prefer_localhost_replica = 1".to_owned()),
        (db_a.clone(), "SET readonly = 0".to_owned()),
        (db_a.clone(), format!("CREATE TABLE steal AS exatom.form_daily ENGINE = Distributed(exatom_console, 'exatom_site_{b}', 'form_daily')")),
        (db_a.clone(), "INSERT INTO form_daily SELECT * FROM form_daily".to_owned()),
    ] {
        let (status, body) = as_user("ann", database.clone(), sql.clone()).await;
        assert_ne!(status, 200, "{database}: {sql}: {body}");
        assert!(body.contains("Exception"), "{database}: {sql}: {body}");
    }
    // Bob's user reads B's rows and not A's; the admin's reads both.
    let (_, forms) = as_user(
        "bob",
        db_b.clone(),
        "SELECT DISTINCT form_key FROM form_daily".into(),
    )
    .await;
    assert_eq!(forms.trim(), "secret_b_form");
    assert_ne!(as_user("bob", db_a.clone(), "SELECT 1".into()).await.0, 200);
    assert_eq!(
        as_user(
            "root",
            db_a.clone(),
            "SELECT count() > 0 FROM form_daily".into()
        )
        .await,
        (200, "1\n".to_owned())
    );
    assert_eq!(
        as_user(
            "root",
            db_b.clone(),
            "SELECT count() > 0 FROM form_daily".into()
        )
        .await,
        (200, "1\n".to_owned())
    );
}

#[tokio::test]
async fn bad_input_gets_a_clear_400_and_never_a_500() {
    let w = World::start("input").await;
    let c = &w.console;
    let a = &w.a;
    let ann = c.cookie("ann", ANN).await;
    let cases = [
        (
            format!("/api/sites/{a}/forms?from=2026-12-05&to=2026-12-01"),
            400,
            "after",
        ),
        (
            format!("/api/sites/{a}/forms?from=1990-01-01&to=2026-12-01"),
            400,
            "at most",
        ),
        (
            format!("/api/sites/{a}/forms?from=yesterday"),
            400,
            "YYYY-MM-DD",
        ),
        (
            format!("/api/sites/{a}/forms?to=2026-02-30"),
            400,
            "YYYY-MM-DD",
        ),
        (
            format!("/api/sites/{a}/forms?from=2026-12-01%27%3B%20DROP%20TABLE%20events"),
            400,
            "YYYY-MM-DD",
        ),
        (format!("/api/sites/{a}/forms?format=xml"), 400, "format"),
        (
            format!("/api/sites/{a}/forms/nope/fields"),
            400,
            "no figures for form `nope`",
        ),
        (
            format!("/api/sites/{a}/forms/%E2%9C%93%20%C3%BCber/fields"),
            400,
            "no figures for form `✓ über`",
        ),
        (
            format!("/api/sites/{a}/forms/{}/fields", "x".repeat(201)),
            400,
            "1 to 200 characters",
        ),
        (
            format!("/api/sites/{a}/forms/a%0Ab/fields"),
            400,
            "control characters",
        ),
        (
            format!("/api/sites/{a}/forms/signup/fields?segment=site"),
            400,
            "segment",
        ),
        (
            format!("/api/sites/{a}/forms/signup/nothing"),
            404,
            "no table",
        ),
        (format!("/api/sites/{a}/nothing"), 404, "no table"),
        (
            format!("/sites/{a}/forms/signup?from=2026-13-01"),
            400,
            "YYYY-MM-DD",
        ),
        (format!("/sites/{a}/nothing"), 404, "no page"),
    ];
    for (path, expected, says) in &cases {
        let (status, body) = c.get(path, &ann).await;
        assert_eq!(status, *expected, "{path}: {body}");
        assert!(body.contains(says), "{path}: {body}");
    }
    // The same figures answer when asked properly.
    let (status, body) = c
        .get(
            &format!("/api/sites/{a}/forms/signup/segments?segment=country"),
            &ann,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"NL\""), "{body}");
    // A long log-in form is refused before any hashing.
    let long = Console::client()
        .post(format!("{}/login", c.url))
        .form(&[("user", "ann"), ("password", &"p".repeat(5000))])
        .send()
        .await
        .unwrap();
    assert_eq!(long.status(), 400);
    let metrics = reqwest::get(format!("{}/metrics", c.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!metrics.lines().any(|l| l.starts_with("exatom_console_requests_total") && l.contains("status=\"500\"")), "{metrics}");
}

#[tokio::test]
async fn ten_wrong_passwords_lock_the_log_in_for_that_user() {
    let w = World::start("lockout").await;
    let c = &w.console;
    for i in 0..10 {
        assert_eq!(
            c.log_in("ann", &format!("guess-{i}")).await.status(),
            401,
            "guess {i}"
        );
    }
    let locked = c.log_in("ann", ANN).await;
    assert_eq!(
        locked.status(),
        429,
        "the right password is refused while locked"
    );
    let retry: u64 = locked.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((590..=600).contains(&retry), "{retry}");
    assert!(locked.text().await.unwrap().contains("locked"));
    assert_eq!(
        c.log_in("bob", BOB).await.status(),
        303,
        "another user is not locked"
    );
    let metrics = reqwest::get(format!("{}/metrics", c.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("exatom_console_logins_total{outcome=\"locked\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("exatom_console_logins_total{outcome=\"wrong\"} 10"),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_field_table_csv_equals_the_v_field_daily_rows() {
    let w = World::start("csv").await;
    let c = &w.console;
    let a = &w.a;
    let ann = c.cookie("ann", ANN).await;
    let today = chrono::Utc::now().date_naive();
    let (status, csv) = c
        .get(
            &format!("/api/sites/{a}/forms/signup/fields?from={today}&to={today}&format=csv"),
            &ann,
        )
        .await;
    assert_eq!(status, 200, "{csv}");
    let expected = field_csv_of_the_view(&w.stack, a, "signup").await;
    assert_same_rows(&csv, &expected);
    assert_eq!(csv.lines().count(), 3, "{csv}");
    // The page marks the field most abandoned at.
    let (_, page) = c.get(&format!("/sites/{a}/forms/signup"), &ann).await;
    assert!(
        page.contains("<tr class=\"abandon\"><td data-sort=\"email\">email</td>"),
        "{page}"
    );
}
