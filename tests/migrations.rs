//! Migrations against the real ClickHouse: a database left by an older release keeps its
//! figures when a newer migration rebuilds its tables, and a migration that stopped halfway
//! can run again.

use std::time::Duration;

use exatom_e2e::{metric, Service, Stack};
use exatom_plumbing::warehouse::{Connection, Warehouse};

/// A database of its own, at the state migrations `1..=last` leave.
async fn database_at(stack: &Stack, name: &str, last: u32) -> Warehouse {
    stack
        .execute(&format!("DROP DATABASE IF EXISTS {name}"))
        .await;
    let warehouse = Warehouse::connect(&Connection {
        url: stack.clickhouse_url.clone(),
        database: name.to_owned(),
        user: "default".to_owned(),
        password: String::new(),
        cluster: String::new(),
        insert_quorum: 0,
    })
    .await
    .expect("ClickHouse answers");
    let applied = warehouse
        .migrate_up_to(last)
        .await
        .expect("migrations apply");
    assert_eq!(applied, (1..=last).collect::<Vec<_>>());
    warehouse
}

/// Every rollup row and the field rollups computed from the raw rows, as TSV.
async fn figures(stack: &Stack, db: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (table, key) in [
        ("form_daily", "day, form_key"),
        ("form_segment_daily", "day, form_key, device_class"),
        ("conversions_daily", "day, form_key"),
        ("conversion_segment_daily", "day, form_key, device_class"),
        ("tooltips_daily", "day, trigger, device_class"),
    ] {
        out.push(
            stack
                .query(&format!("SELECT * FROM {db}.{table} FINAL ORDER BY {key}"))
                .await,
        );
    }
    out
}

const FIELDS: &str = "interactions, abandons, time_spent_ms, \
    finalizeAggregation(hesitation), returns, corrections, errors, version";

#[tokio::test]
async fn monthly_rollups_keep_every_figure_and_the_migration_runs_again() {
    let stack = Stack::from_env();
    let db = "exatom_migration_0005";
    let warehouse = database_at(&stack, db, 4).await;

    // Rollup rows as 0003 wrote them (two versions of one row: the newer must survive), and
    // raw field rows in two segments on two days, one of them in another month.
    for (table, rows) in [
        ("form_daily", "VALUES ('S', today(), 'signup', 3, 2, 1, 1, 1, 7000, \
         arrayReduce('quantileExactState', [toInt64(2000), 4000]), 3), \
         ('S', today(), 'signup', 1, 1, 0, 0, 0, 0, arrayReduce('quantileExactState', [toInt64(9)]), 1), \
         ('S', today() - 40, 'signup', 5, 4, 2, 2, 2, 9000, arrayReduce('quantileExactState', [toInt64(100)]), 5)"),
        ("form_segment_daily", "VALUES ('S', today(), 'signup', 'mobile', 'NL', 'Safari', \
         3, 2, 1, 1, 1, 7000, arrayReduce('quantileExactState', [toInt64(2000), 4000]), 3)"),
        ("conversions_daily", "VALUES ('S', today(), 'signup', 2, 70.5, 3)"),
        ("conversion_segment_daily", "VALUES ('S', today(), '', 'desktop', 'DE', 'Firefox', 1, 5, 1)"),
        ("tooltips_daily", "VALUES ('S', today(), 'Help', 'desktop', 'DE', 'Firefox', 4, 2, 1, 7)"),
        ("field_interactions", "(site, day, session_id, form_key, field_key, device_class, \
         country, browser_family, time_spent_ms, has_hesitation, hesitation_ms, returns, \
         corrections, errors, abandoned, version) VALUES \
         ('S', today(), 's1', 'signup', 'email', 'mobile', 'NL', 'Safari', 1500, 1, 1000, 1, 0, 0, 0, 1), \
         ('S', today(), 's2', 'signup', 'email', 'desktop', 'DE', 'Firefox', 3000, 1, 2000, 0, 1, 1, 1, 1), \
         ('S', today(), 's3', 'signup', 'email', 'desktop', 'DE', 'Firefox', 500, 0, 0, 0, 0, 0, 0, 1), \
         ('S', today() - 40, 's4', 'signup', 'email', 'desktop', 'DE', 'Firefox', 700, 1, 300, 0, 0, 0, 1, 1)"),
    ] {
        stack
            .execute(&format!("INSERT INTO {db}.{table} {rows}"))
            .await;
    }
    let before = figures(&stack, db).await;
    assert!(before[0].contains("signup\t3\t2\t1"), "{}", before[0]);

    assert_eq!(warehouse.migrate_up_to(5).await.unwrap(), vec![5]);
    let after = figures(&stack, db).await;
    assert_eq!(after, before, "the copied rollups hold the same figures");

    // Fields: one row per (day, form, field) over the segments, and one per segment.
    let fields =
        format!("SELECT today() - day, {FIELDS} FROM {db}.field_daily FINAL ORDER BY day DESC");
    let field_rows = "0\t3\t1\t5000\t2000\t1\t1\t1\t3\n40\t1\t1\t700\t300\t0\t0\t0\t1\n";
    assert_eq!(stack.query(&fields).await, field_rows);
    let segments = format!(
        "SELECT today() - day, device_class, {FIELDS} FROM {db}.field_segment_daily FINAL \
         ORDER BY day DESC, device_class"
    );
    let segment_rows = "0\tdesktop\t2\t1\t3500\t2000\t0\t1\t1\t2\n\
                        0\tmobile\t1\t0\t1500\t1000\t1\t0\t0\t1\n\
                        40\tdesktop\t1\t1\t700\t300\t0\t0\t0\t1\n";
    assert_eq!(stack.query(&segments).await, segment_rows);

    // Every rollup is partitioned by month now; nothing of the copy is left behind.
    let partitions = stack
        .query(&format!(
            "SELECT DISTINCT table, length(partition) FROM system.parts \
             WHERE database = '{db}' AND active AND table LIKE '%daily' ORDER BY table"
        ))
        .await;
    assert_eq!(partitions.lines().count(), 7, "{partitions}");
    assert!(
        partitions.lines().all(|l| l.ends_with("\t6")),
        "{partitions}"
    );
    let leftovers = stack
        .query(&format!(
            "SELECT name FROM system.tables WHERE database = '{db}' \
             AND (name LIKE '%by_day' OR name LIKE '%by_month')"
        ))
        .await;
    assert_eq!(leftovers, "");

    // As if it had stopped before being recorded: it runs again, same figures.
    stack
        .execute(&format!(
            "ALTER TABLE {db}.schema_migrations DELETE WHERE version = 5"
        ))
        .await;
    exatom_e2e::wait_until(
        std::time::Duration::from_secs(30),
        "the migration record deleted",
        || async {
            stack
                .query(&format!(
                    "SELECT count() FROM {db}.schema_migrations WHERE version = 5"
                ))
                .await
                .trim()
                == "0"
        },
    )
    .await;
    assert_eq!(warehouse.migrate_up_to(5).await.unwrap(), vec![5]);
    assert_eq!(figures(&stack, db).await, before);
    assert_eq!(stack.query(&fields).await, field_rows);
    assert_eq!(stack.query(&segments).await, segment_rows);
    stack.execute(&format!("DROP DATABASE {db}")).await;
}

#[tokio::test]
async fn events_reordered_by_visitor_keep_every_row_and_still_deduplicate() {
    let stack = Stack::from_env();
    let db = "exatom_migration_0006";
    let warehouse = database_at(&stack, db, 5).await;
    // Two versions of one event (the final one must win), and events of two visitors.
    let row = |event: &str, visitor: &str, session: &str, version: u32| {
        format!(
            "('S', today(), '{event}', '{session}', '{visitor}', 0, 'form_event', 1, 2, 'p', '', '', \
             'f', 'x', 'input', '*', 1, '', '', 0, '', '', '', '', '', '', '', '', '', 0, 0, 7, {version})"
        )
    };
    stack
        .execute(&format!(
            "INSERT INTO {db}.events VALUES {}, {}, {}",
            row("e1", "v1", "live", 1),
            row("e1", "v1", "final", 2),
            row("e2", "v2", "s2", 1)
        ))
        .await;
    let rows = format!(
        "SELECT event_id, visitor_id, session_id, version FROM {db}.events FINAL ORDER BY event_id"
    );
    let before = stack.query(&rows).await;
    assert_eq!(before, "e1\tv1\tfinal\t2\ne2\tv2\ts2\t1\n");

    assert_eq!(warehouse.migrate_up_to(6).await.unwrap(), vec![6]);
    assert_eq!(stack.query(&rows).await, before);
    let key = stack
        .query(&format!(
            "SELECT sorting_key FROM system.tables WHERE database = '{db}' AND name = 'events'"
        ))
        .await;
    assert_eq!(key.trim(), "site, day, visitor_id, event_id");
    // A newer version of an event written after the migration still replaces the old one.
    stack
        .execute(&format!(
            "INSERT INTO {db}.events VALUES {}",
            row("e2", "v2", "s2-final", 2)
        ))
        .await;
    assert_eq!(
        stack.query(&rows).await,
        "e1\tv1\tfinal\t2\ne2\tv2\ts2-final\t2\n"
    );
    stack.execute(&format!("DROP DATABASE {db}")).await;
}

#[tokio::test]
async fn a_column_dropped_by_hand_stops_the_writer_and_readyz_names_it_and_the_fix() {
    let stack = Stack::from_env();
    let db = "exatom_dropped_column";
    let newest = exatom_plumbing::warehouse::MIGRATIONS
        .last()
        .map_or(0, |m| m.version);
    database_at(&stack, db, newest).await;
    stack
        .execute(&format!("ALTER TABLE {db}.events DROP COLUMN referrer"))
        .await;

    // A sessionizer of its own (group, database) and one event for it to place.
    let run = uuid::Uuid::new_v4().simple().to_string();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut sessionizer = Service::start(
        &stack,
        "sessionizer",
        &[
            ("EXATOM_CLICKHOUSE_DATABASE", db.to_owned()),
            ("EXATOM_GROUP_ID", format!("exatom-test-dropped-{run}")),
            ("EXATOM_ADMIN_LISTEN", format!("127.0.0.1:{port}")),
        ],
    );
    let mut event = exatom_benches::anon_event(1, 1, exatom_core::time::now_ms());
    event.site = format!("DROP{}", &run[..6]);
    let key = format!("{}:{}", event.site, event.visitor_id).into_bytes();
    let value = exatom_core::avro::anon_event_codec()
        .encode(&event)
        .unwrap();
    stack.redeliver("exatom.anon", &[(key, value)]).await;

    let readyz = format!("http://127.0.0.1:{port}/readyz");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let answer = loop {
        let answer = match reqwest::get(&readyz).await {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(_) => (0, String::new()),
        };
        if (answer.0 == 503 && answer.1.contains("referrer"))
            || std::time::Instant::now() > deadline
        {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(answer.0, 503, "readyz: {answer:?}");
    assert!(answer.1.contains("referrer"), "readyz: {answer:?}");
    assert!(answer.1.contains("exatom-admin migrate"), "{}", answer.1);
    let metrics = format!("http://127.0.0.1:{port}/metrics");
    assert_eq!(metric(&metrics, "exatom_consumer_stopped").await, 1.0);
    // It stopped retrying: no retry counted against ClickHouse, and it stays up to be read.
    assert_eq!(
        metric(&metrics, "exatom_retries_total{dependency=\"clickhouse\"}").await,
        0.0
    );
    assert!(sessionizer.is_running());
    // SIGTERM: it exits, with a failure status a supervisor sees (the fault, not a drain).
    assert!(!sessionizer.stop());
    assert!(!sessionizer.is_running());
    stack.execute(&format!("DROP DATABASE {db}")).await;
}

#[tokio::test]
async fn a_database_made_for_one_server_is_not_migrated_or_served_as_a_cluster() {
    let stack = Stack::from_env();
    let newest = exatom_plumbing::warehouse::MIGRATIONS.len() as u32;
    database_at(&stack, "exatom_one_server", newest).await;
    let as_cluster = Connection {
        url: stack.clickhouse_url.clone(),
        database: "exatom_one_server".to_owned(),
        user: "default".to_owned(),
        password: String::new(),
        cluster: "exatom_cluster".to_owned(),
        insert_quorum: 2,
    };
    let warehouse = Warehouse::connect(&as_cluster).await.unwrap();
    let err = warehouse.migrate().await.unwrap_err();
    assert!(
        matches!(err, exatom_plumbing::warehouse::MigrationError::Mode { .. }),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("created for one server")
            && text.contains("configured on cluster `exatom_cluster`"),
        "{text}"
    );
    // Nothing was made on the way: the ledger still says one server, with every migration.
    let ledger = stack
        .query("SELECT count(), groupUniqArray(cluster) FROM exatom_one_server.schema_migrations")
        .await;
    assert_eq!(ledger.trim(), format!("{newest}\t['']"));
    // A service configured for a cluster refuses it too, naming the setting.
    let fault = Warehouse::connect_checked(&as_cluster).await.unwrap_err();
    assert!(
        fault.to_string().contains("EXATOM_CLICKHOUSE_CLUSTER"),
        "{fault}"
    );
}
