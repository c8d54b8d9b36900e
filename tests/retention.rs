//! The two retention classes and a site that leaves, on the real server: event data goes
//! after 90 days while reporting data stays (and the views answer for it); a deleted site
//! leaves no row in any table, its events still in flight are dropped with a counted reason,
//! the collector refuses it, and deleting it again changes nothing.

use std::process::Command;
use std::time::Duration;

use chrono::Utc;
use exatom_benches::journeys::{journey, seeded};
use exatom_e2e::{
    fast_sessions, metric, poll_until, rfc3339, send_journeys, sites_file, wait_until, Pipeline,
    Service, Stack,
};
use exatom_plumbing::retention::{BOOKKEEPING, EVENT_DATA, REPORTING_DATA};
use exatom_plumbing::warehouse::{Connection, Warehouse};

fn code(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..6]
    )
}

async fn warehouse(stack: &Stack) -> Warehouse {
    Warehouse::connect(&Connection {
        url: stack.clickhouse_url.clone(),
        database: "exatom".into(),
        user: "default".into(),
        password: String::new(),
    })
    .await
    .unwrap()
}

async fn rows(stack: &Stack, table: &str, site: &str, day: Option<chrono::NaiveDate>) -> u64 {
    let day = day.map_or(String::new(), |d| format!(" AND day = '{d}'"));
    stack
        .query(&format!(
            "SELECT count() FROM exatom.{table} WHERE site = '{site}'{day}"
        ))
        .await
        .trim()
        .parse()
        .unwrap()
}

/// Every table of the database that holds rows of sites, but the deleted sites' marks.
async fn site_tables(stack: &Stack) -> Vec<String> {
    stack
        .query(
            "SELECT table FROM system.columns WHERE database = 'exatom' AND name = 'site' \
             AND table IN (SELECT name FROM system.tables WHERE database = 'exatom' \
             AND engine LIKE '%MergeTree') AND table != 'deleted_sites' ORDER BY table",
        )
        .await
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn event_data_leaves_after_90_days_and_reporting_data_stays() {
    let stack = Stack::from_env();
    let site = code("RET");
    let today = Utc::now().date_naive();
    let old = today - chrono::Days::new(400);
    let recent = today - chrono::Days::new(10);

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
    let mut classified: Vec<String> = EVENT_DATA
        .iter()
        .chain(REPORTING_DATA)
        .chain(BOOKKEEPING)
        .map(|t| t.to_string())
        .collect();
    tables.sort();
    classified.sort();
    assert_eq!(tables, classified);

    // A row 400 days old and one 10 days old in every table (other columns at defaults).
    for table in EVENT_DATA.iter().chain(REPORTING_DATA) {
        stack
            .execute(&format!(
                "INSERT INTO exatom.{table} (site, day) VALUES ('{site}', '{old}'), ('{site}', '{recent}')"
            ))
            .await;
    }
    let report = warehouse(&stack)
        .await
        .enforce_retention(today)
        .await
        .unwrap();
    assert!(!report.dropped.is_empty(), "{report:?}");

    // Partitions of days are dropped at once; a month straddling the cutoff is a mutation.
    let gone = poll_until(Duration::from_secs(60), || async {
        for table in EVENT_DATA {
            if rows(&stack, table, &site, Some(old)).await > 0 {
                return false;
            }
        }
        true
    })
    .await;
    assert!(gone, "event data 400 days old is gone");
    for table in EVENT_DATA {
        assert_eq!(rows(&stack, table, &site, Some(recent)).await, 1, "{table}");
    }
    for table in REPORTING_DATA {
        assert_eq!(rows(&stack, table, &site, Some(old)).await, 1, "{table}");
        assert_eq!(rows(&stack, table, &site, Some(recent)).await, 1, "{table}");
    }
    // The views over reporting data answer for that day.
    for view in ["v_form_daily", "v_field_daily", "v_conversions_daily"] {
        assert_eq!(rows(&stack, view, &site, Some(old)).await, 1, "{view}");
    }
    // A second pass finds nothing more to do with these rows.
    warehouse(&stack)
        .await
        .enforce_retention(today)
        .await
        .unwrap();
    for table in REPORTING_DATA {
        assert_eq!(rows(&stack, table, &site, Some(old)).await, 1, "{table}");
    }
}

fn delete_site(stack: &Stack, sites: &std::path::Path, site: &str) -> String {
    let out = Command::new(stack.bin.join("exatom-admin"))
        .args(["delete-site", site])
        .env("EXATOM_KAFKA_BROKERS", &stack.brokers)
        .env("EXATOM_CLICKHOUSE_URL", &stack.clickhouse_url)
        .env("EXATOM_SITES_FILE", sites)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[tokio::test]
async fn a_deleted_site_leaves_no_row_and_what_is_in_flight_is_dropped() {
    let stack = Stack::from_env();
    let (gone, kept) = (code("GONE"), code("KEPT"));
    let (gone_tag, kept_tag) = (format!("{gone}1"), format!("{kept}1"));
    let sites = sites_file(
        &stack,
        "delete-site",
        &[(&gone, &[], &[&gone_tag]), (&kept, &[], &[&kept_tag])],
    );
    let mut pipeline = Pipeline::start(&stack, &sites, &fast_sessions()).await;
    let url = format!("{}/v1/events", pipeline.collector_url);
    let ts = Utc::now() - chrono::Duration::minutes(40);
    let mut rng = seeded(23);
    for site in [&gone, &kept] {
        let journeys = (0..30).map(|n| journey(site, n, &mut rng, ts)).collect();
        send_journeys(&url, site, journeys, 4).await;
    }
    wait_until(
        Duration::from_secs(90),
        "both sites in the rollups",
        || async {
            rows(&stack, "form_daily", &gone, None).await > 0
                && rows(&stack, "form_daily", &kept, None).await > 0
                && rows(&stack, "conversions_daily", &gone, None).await > 0
        },
    )
    .await;
    let tables = site_tables(&stack).await;
    assert!(tables.len() >= 13, "{tables:?}");
    let mut kept_before = Vec::new();
    for table in &tables {
        kept_before.push(rows(&stack, table, &kept, None).await);
    }

    // In flight: a visit of the site waits in exatom.raw while the anonymizer is down.
    let anonymizer_port = pipeline.admin_ports["anonymizer"];
    assert!(pipeline.service("anonymizer").stop());
    let late = vec![journey(&gone, 1000, &mut rng, Utc::now())];
    let late_events = late[0].events() as f64;
    send_journeys(&url, &gone, late, 1).await;

    let said = delete_site(&stack, &sites, &gone);
    println!("{said}");
    assert!(said.contains("removed from the registry"), "{said}");
    assert!(said.contains("no row of it remains"), "{said}");
    for table in &tables {
        assert_eq!(rows(&stack, table, &gone, None).await, 0, "{table}: {said}");
    }
    for (table, before) in tables.iter().zip(&kept_before) {
        assert_eq!(rows(&stack, table, &kept, None).await, *before, "{table}");
    }

    // The collector refuses the site from its next reload of the registry.
    let body = serde_json::json!({"site": gone, "sent_at": rfc3339(Utc::now()), "events": [
        {"id": uuid::Uuid::new_v4().to_string(), "type": "page_view", "ts": rfc3339(Utc::now()),
         "page": "https://shop.test/"}]})
    .to_string();
    wait_until(
        Duration::from_secs(15),
        "the collector answers 403",
        || async {
            reqwest::Client::new()
                .post(&url)
                .body(body.clone())
                .send()
                .await
                .is_ok_and(|r| r.status() == 403)
        },
    )
    .await;

    // The anonymizer back: the visit in flight reaches the sessionizer, which drops it.
    let mut env = fast_sessions();
    env.push((
        "EXATOM_ADMIN_LISTEN",
        format!("127.0.0.1:{anonymizer_port}"),
    ));
    pipeline
        .services
        .insert("anonymizer", Service::start(&stack, "anonymizer", &env));
    let dropped = format!(
        "http://127.0.0.1:{}/metrics",
        pipeline.admin_ports["sessionizer"]
    );
    wait_until(
        Duration::from_secs(60),
        "the visit in flight dropped",
        || async {
            metric(
                &dropped,
                "exatom_records_dropped_total{reason=\"site_deleted\"}",
            )
            .await
                >= late_events
        },
    )
    .await;
    // A journey of the kept site after it: once it is stored, the dropped visit is behind.
    let after = vec![journey(&kept, 1000, &mut rng, ts)];
    send_journeys(&url, &kept, after, 1).await;
    wait_until(
        Duration::from_secs(60),
        "the kept site's later visit",
        || async {
            rows(&stack, "sessions", &kept, None).await
                > kept_before[tables.iter().position(|t| t == "sessions").unwrap()]
        },
    )
    .await;
    for table in &tables {
        assert_eq!(rows(&stack, table, &gone, None).await, 0, "{table}");
    }

    // Again: nothing left to do, and it says so.
    let again = delete_site(&stack, &sites, &gone);
    assert!(again.contains("not in the registry"), "{again}");
    assert!(again.contains("0 rows from 0 tables"), "{again}");
    assert_eq!(pipeline.stop(), Vec::<String>::new());
}
