//! A site that leaves, on the real server (`exatom-admin delete-site`): no row of it remains
//! in any table while another site's rows are untouched, its events still in flight are
//! dropped with a counted reason, the collector refuses it, and deleting it again changes
//! nothing.

use std::process::Command;
use std::time::Duration;

use chrono::Utc;
use exatom_benches::journeys::{journey, seeded};
use exatom_e2e::{
    fast_sessions, metric, rfc3339, send_journeys, sites_file, wait_until, Pipeline, Stack,
};

fn code(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..6]
    )
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

/// Rows of `site` in `table` as readers see them (`FINAL`): a background merge of two
/// versions of a row changes the plain count, not this one.
async fn rows_final(stack: &Stack, table: &str, site: &str) -> u64 {
    stack
        .query(&format!(
            "SELECT count() FROM exatom.{table} FINAL WHERE site = '{site}'"
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
    // The aggregator writes a batch's rows, then its rollups one after the other: the kept
    // site's counts are taken once two readings two seconds apart agree.
    let counts = || async {
        let mut counts = Vec::new();
        for table in &tables {
            counts.push(rows_final(&stack, table, &kept).await);
        }
        counts
    };
    let mut kept_before = counts().await;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let again = counts().await;
        if again == kept_before {
            break;
        }
        kept_before = again;
    }

    // In flight: a visit of the site waits in exatom.raw while the anonymizer is down.
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
        assert_eq!(rows_final(&stack, table, &kept).await, *before, "{table}");
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
    pipeline.restart(&stack, "anonymizer", &fast_sessions());
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
            rows_final(&stack, "sessions", &kept).await
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
