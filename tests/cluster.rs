//! The pipeline on a ClickHouse cluster (ZooKeeper and 2 shards × 2 replicas, the local
//! cluster profile of `deploy/local/stack.sh`) with several replicas of every stage, broken
//! on purpose mid-stream: a ClickHouse replica killed with SIGKILL and restarted, a
//! sessionizer replica killed and restarted, an aggregator replica added (a rebalance). Every
//! dashboard view must equal, row for row, the views of a single-server run of the same
//! events — a sessionizer and an aggregator of their own consumer groups, writing to the test
//! stack's one server — and the two replicas of each shard must hold the same rows.
//!
//! `make test` sends 400 journeys; `make test-cluster` sends `CLUSTER_JOURNEYS` (3 000).

use std::time::Duration;

use chrono::Utc;
use exatom_benches::journeys::{journey, seeded};
use exatom_e2e::{fast_sessions, send_journeys, sites_file, wait_until, Ports, Service, Stack};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

const CLUSTER: &str = "exatom_cluster";
const REFERENCE_DB: &str = "exatom_single";

/// The local cluster of the test stack, stopped when dropped whatever the test did.
struct LocalCluster {
    stack: Stack,
    port_base: u16,
    zk_port: u16,
}

impl LocalCluster {
    fn start(stack: &Stack) -> Self {
        let port = |var: &str, default: u16| {
            std::env::var(var)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        let cluster = LocalCluster {
            stack: stack.clone(),
            port_base: port("STACK_CLUSTER_PORT_BASE", 18130),
            zk_port: port("STACK_ZK_PORT", 12181),
        };
        cluster.command(&["cluster-up"]);
        cluster
    }

    fn command(&self, args: &[&str]) {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("tests/ is inside the project");
        let status = std::process::Command::new(root.join("deploy/local/stack.sh"))
            .args(args)
            .env("STACK_STATE", &self.stack.state)
            .env("STACK_CLUSTER", "1")
            .env("STACK_CLUSTER_PORT_BASE", self.port_base.to_string())
            .env("STACK_ZK_PORT", self.zk_port.to_string())
            .env("STACK_BIN", &self.stack.bin)
            .status()
            .expect("stack.sh runs");
        assert!(status.success(), "stack.sh {args:?} failed");
    }

    fn url(&self, node: u16) -> String {
        format!("http://127.0.0.1:{}", self.port_base + node)
    }

    /// Settings of a service of the cluster's pipeline, talking to `node`.
    fn env(&self, node: u16) -> Vec<(&'static str, String)> {
        let mut env = fast_sessions();
        env.push(("EXATOM_CLICKHOUSE_URL", self.url(node)));
        env.push(("EXATOM_CLICKHOUSE_CLUSTER", CLUSTER.to_owned()));
        env
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.command(&["cluster-down"]);
    }
}

/// A ClickHouse query over HTTP against `url`, in `database`; its TSV output.
async fn query(url: &str, database: &str, sql: &str) -> String {
    post(url, database, sql, format!("{sql} FORMAT TSV")).await
}

/// `database` may carry settings after it (`exatom&insert_quorum=2`).
async fn post(url: &str, database: &str, sql: &str, body: String) -> String {
    let response = reqwest::Client::new()
        .post(format!("{url}/?database={database}"))
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    assert!(status.is_success(), "{sql}: {status} {text}");
    text
}

/// `exatom-admin migrate` with `env`.
fn migrate(stack: &Stack, env: &[(&str, String)]) {
    let mut cmd = std::process::Command::new(stack.bin.join("exatom-admin"));
    cmd.arg("migrate")
        .env("EXATOM_KAFKA_BROKERS", &stack.brokers)
        .env("RUST_BACKTRACE", "0");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "migrate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Commits `group`'s offsets at the end of `topic`: the reference chain starts with this
/// test's records, not with everything earlier tests left in the topic.
fn start_group_at_end(stack: &Stack, group: &str, topic: &str) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &stack.brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let mut ends = TopicPartitionList::new();
    for partition in metadata.topics()[0].partitions() {
        let (_, high) = consumer
            .fetch_watermarks(topic, partition.id(), Duration::from_secs(10))
            .expect("watermarks");
        ends.add_partition_offset(topic, partition.id(), Offset::Offset(high))
            .unwrap();
    }
    consumer
        .commit(&ends, CommitMode::Sync)
        .expect("commit at the end");
}

/// Every row of `table` (a view, or a table read with `FINAL`) for `site`, floats rounded
/// (shards sum in another order), sorted by every column.
async fn rows(url: &str, database: &str, table: &str, site: &str) -> String {
    let columns = query(
        url,
        database,
        &format!(
            "SELECT name, type FROM system.columns WHERE database = '{database}' \
             AND table = '{table}'"
        ),
    )
    .await;
    let select: Vec<String> = columns
        .lines()
        .map(|l| {
            let (name, kind) = l.split_once('\t').expect("name and type");
            if kind.contains("Float") {
                format!("round({name}, 6)")
            } else {
                name.to_owned()
            }
        })
        .collect();
    let list = select.join(", ");
    let last = if table.starts_with("v_") {
        ""
    } else {
        " FINAL"
    };
    query(
        url,
        database,
        &format!("SELECT {list} FROM {table}{last} WHERE site = '{site}' ORDER BY {list}"),
    )
    .await
}

#[tokio::test]
async fn replicated_stages_on_a_broken_cluster_count_what_one_server_counts() {
    let stack = Stack::from_env();
    let journeys: u64 = std::env::var("CLUSTER_JOURNEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let cluster = LocalCluster::start(&stack);
    migrate(&stack, &cluster.env(1));
    let reference_env = vec![
        ("EXATOM_CLICKHOUSE_URL", stack.clickhouse_url.clone()),
        ("EXATOM_CLICKHOUSE_DATABASE", REFERENCE_DB.to_owned()),
    ];
    query(
        &stack.clickhouse_url,
        "default",
        &format!("DROP DATABASE IF EXISTS {REFERENCE_DB}"),
    )
    .await;
    migrate(&stack, &reference_env);

    let run = uuid::Uuid::new_v4().simple().to_string();
    let site = format!("CL{}", &run[..8]);
    let sites = sites_file(&stack, "cluster", &[(&site, &[], &[&format!("{site}1")])]);

    // The reference: one sessionizer and one aggregator of their own groups, on one server.
    let reference_groups = [
        (
            "sessionizer",
            format!("exatom-reference-sessionizer-{run}"),
            "exatom.anon",
        ),
        (
            "aggregator",
            format!("exatom-reference-aggregator-{run}"),
            "exatom.sessions",
        ),
    ];
    let mut reference = Vec::new();
    for (name, group, topic) in &reference_groups {
        start_group_at_end(&stack, group, topic);
        let mut env = fast_sessions();
        env.extend(reference_env.clone());
        env.push(("EXATOM_GROUP_ID", group.clone()));
        env.push((
            "EXATOM_ADMIN_LISTEN",
            format!("127.0.0.1:{}", Ports::pick().admin[0]),
        ));
        reference.push(Service::start(&stack, name, &env));
    }

    // The cluster's pipeline: 2 collectors, 2 anonymizers, 3 sessionizers, 2 aggregators,
    // spread over the nodes (ch2 serves no service: it is the replica that gets killed).
    let with = |node: u16, more: Vec<(&'static str, String)>| {
        let mut env = cluster.env(node);
        env.extend(more);
        env.push((
            "EXATOM_ADMIN_LISTEN",
            format!("127.0.0.1:{}", Ports::pick().admin[0]),
        ));
        env
    };
    let mut collectors = Vec::new();
    let mut collector_urls = Vec::new();
    for node in [1, 3] {
        let port = Ports::pick().collector;
        collector_urls.push(format!("http://127.0.0.1:{port}"));
        collectors.push(Service::start(
            &stack,
            "collector",
            &with(
                node,
                vec![
                    ("EXATOM_LISTEN", format!("127.0.0.1:{port}")),
                    ("EXATOM_SITES_FILE", sites.display().to_string()),
                ],
            ),
        ));
    }
    let mut anonymizers: Vec<Service> = [3, 4]
        .iter()
        .map(|&n| Service::start(&stack, "anonymizer", &with(n, vec![])))
        .collect();
    let sessionizer_env: Vec<_> = [1, 3, 4].iter().map(|&n| with(n, vec![])).collect();
    let mut sessionizers: Vec<Service> = sessionizer_env
        .iter()
        .map(|env| Service::start(&stack, "sessionizer", env))
        .collect();
    let mut aggregators: Vec<Service> = [3, 4]
        .iter()
        .map(|&n| Service::start(&stack, "aggregator", &with(n, vec![])))
        .collect();
    for url in &collector_urls {
        let ready = format!("{url}/readyz");
        wait_until(Duration::from_secs(30), "collector ready", || async {
            reqwest::get(&ready)
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
    }

    // Journeys 40 minutes old (their sessions close as soon as they are read), half to each
    // collector, in four waves with the faults between them.
    let ts = Utc::now() - chrono::Duration::minutes(40);
    let mut rng = seeded(2121);
    let all: Vec<_> = (0..journeys)
        .map(|n| journey(&site, n, &mut rng, ts))
        .collect();
    let mut waves: Vec<Vec<_>> = vec![Vec::new(); 4];
    for (i, j) in all.into_iter().enumerate() {
        waves[i * 4 / journeys as usize].push(j);
    }
    let send = |wave: Vec<exatom_benches::journeys::Journey>| {
        let urls: Vec<String> = collector_urls
            .iter()
            .map(|u| format!("{u}/v1/events"))
            .collect();
        let site = site.clone();
        async move {
            let (a, b): (Vec<_>, Vec<_>) =
                wave.into_iter().enumerate().partition(|(i, _)| i % 2 == 0);
            let strip = |v: Vec<(usize, _)>| v.into_iter().map(|(_, j)| j).collect();
            tokio::join!(
                send_journeys(&urls[0], &site, strip(a), 3),
                send_journeys(&urls[1], &site, strip(b), 3)
            );
        }
    };
    let mut waves = waves.into_iter();
    send(waves.next().unwrap()).await;

    // A replica of shard 1 dies mid-stream: writes to the shard wait for their quorum.
    cluster.command(&["node-kill", "2"]);
    send(waves.next().unwrap()).await;
    // Past ZooKeeper's session timeout (10 s): the shard then has one live replica, fewer
    // than the quorum, and its writers are refused at once instead of waiting.
    tokio::time::sleep(Duration::from_secs(12)).await;
    // A sessionizer replica dies too, and comes back on the same settings.
    sessionizers[1].kill();
    tokio::time::sleep(Duration::from_secs(3)).await;
    sessionizers[1] = Service::start(&stack, "sessionizer", &sessionizer_env[1]);
    send(waves.next().unwrap()).await;
    cluster.command(&["node-up", "2"]);
    // A third aggregator joins: its group rebalances mid-stream.
    aggregators.push(Service::start(&stack, "aggregator", &with(1, vec![])));
    send(waves.next().unwrap()).await;

    // Every session closed and written on both sides, then every view equal.
    let sessions = format!("SELECT count() FROM sessions FINAL WHERE site = '{site}'");
    let expected = journeys.to_string();
    wait_until(
        Duration::from_secs(300),
        "every session on both sides",
        || async {
            query(&cluster.url(1), "exatom", &sessions).await.trim() == expected
                && query(&stack.clickhouse_url, REFERENCE_DB, &sessions)
                    .await
                    .trim()
                    == expected
        },
    )
    .await;
    let views: Vec<String> = query(
        &cluster.url(1),
        "exatom",
        "SELECT name FROM system.tables WHERE database = 'exatom' AND engine = 'View' ORDER BY name",
    )
    .await
    .lines()
    .map(str::to_owned)
    .collect();
    assert!(views.len() >= 8, "{views:?}");
    let all_views = || async {
        let mut both = Vec::new();
        for view in &views {
            both.push((
                rows(&cluster.url(3), "exatom", view, &site).await,
                rows(&stack.clickhouse_url, REFERENCE_DB, view, &site).await,
            ));
        }
        both
    };
    // The aggregators write rollups one after another: equal once two readings 2 s apart
    // agree on both sides.
    let mut last = all_views().await;
    for _ in 0..90 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = all_views().await;
        let settled = now == last;
        last = now;
        if settled && last.iter().all(|(c, s)| c == s) {
            break;
        }
    }
    for (view, (on_cluster, on_one_server)) in views.iter().zip(&last) {
        assert_eq!(
            on_cluster, on_one_server,
            "{view}: the cluster's rows (left) differ from one server's (right)"
        );
    }
    let forms = query(
        &cluster.url(2),
        "exatom",
        &format!(
            "SELECT sum(views), sum(starts), sum(submits) FROM v_form_daily WHERE site = '{site}'"
        ),
    )
    .await;
    let figures: Vec<u64> = forms
        .split_whitespace()
        .map(|f| f.parse().unwrap())
        .collect();
    assert!(
        figures[0] >= journeys && figures[1] > 0 && figures[2] > 0,
        "{forms}"
    );
    println!("{site}: {journeys} journeys; forms (views, starts, submits) {forms}");

    // Both replicas of each shard hold the same rows (as readers see them), every table.
    let tables: Vec<String> = query(
        &cluster.url(1),
        "exatom",
        "SELECT name FROM system.tables WHERE database = 'exatom' \
         AND engine = 'ReplicatedReplacingMergeTree' ORDER BY name",
    )
    .await
    .lines()
    .map(str::to_owned)
    .collect();
    assert!(tables.len() >= 20, "{tables:?}");
    let mut shard_rows = [0usize; 2];
    for table in &tables {
        for (shard, (a, b)) in [(1u16, 2u16), (3, 4)].into_iter().enumerate() {
            let mut dumps = Vec::new();
            for node in [a, b] {
                let sync = format!("SYSTEM SYNC REPLICA {table}");
                post(&cluster.url(node), "exatom", &sync, sync.clone()).await;
                dumps.push(rows(&cluster.url(node), "exatom", table, &site).await);
            }
            assert_eq!(dumps[0], dumps[1], "{table}: ch{a} and ch{b} differ");
            shard_rows[shard] += dumps[0].lines().count();
        }
    }
    // Both shards hold rows: the sharding spread them.
    assert!(shard_rows.iter().all(|&n| n > 0), "{shard_rows:?}");

    // Retention per shard: sessions of a day past the 90 days, on both shards, go from every
    // replica; a reporting row of that day stays.
    let old = (Utc::now() - chrono::Duration::days(100)).date_naive();
    let values: Vec<String> = (0..20)
        .map(|v| format!("('{site}', '{old}', 'old-session-{v}', 'old-visitor-{v}', 1)"))
        .collect();
    let insert = format!(
        "INSERT INTO sessions (site, day, session_id, visitor_id, version) VALUES {}",
        values.join(", ")
    );
    // Written as the services write: on every replica of the shard before the answer.
    let quorum = "exatom&insert_distributed_sync=1&insert_quorum=2";
    post(&cluster.url(1), quorum, &insert, insert.clone()).await;
    let report = format!(
        "INSERT INTO form_daily (site, day, form_key, views, version) VALUES ('{site}', '{old}', 'old', 1, 1)"
    );
    post(&cluster.url(1), quorum, &report, report.clone()).await;
    let old_sessions = |node: u16| {
        let url = cluster.url(node);
        let sql =
            format!("SELECT count() FROM sessions_local WHERE site = '{site}' AND day = '{old}'");
        async move {
            query(&url, "exatom", &sql)
                .await
                .trim()
                .parse::<u64>()
                .unwrap()
        }
    };
    let before = [old_sessions(1).await, old_sessions(3).await];
    assert!(
        before.iter().all(|&n| n > 0) && before.iter().sum::<u64>() == 20,
        "{before:?}"
    );
    let out = std::process::Command::new(stack.bin.join("exatom-admin"))
        .arg("retention")
        .envs(cluster.env(2))
        .env("EXATOM_KAFKA_BROKERS", &stack.brokers)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains(&format!("(\"sessions\", \"{old}\")")),
        "{said}"
    );
    for node in 1..=4 {
        let sync = "SYSTEM SYNC REPLICA sessions_local".to_owned();
        post(&cluster.url(node), "exatom", &sync, sync.clone()).await;
        assert_eq!(
            old_sessions(node).await,
            0,
            "ch{node} keeps sessions past 90 days"
        );
    }
    let kept = query(
        &cluster.url(4),
        "exatom",
        &format!("SELECT count() FROM form_daily WHERE site = '{site}' AND day = '{old}'"),
    )
    .await;
    assert_eq!(kept.trim(), "1", "reporting data is kept");

    for service in collectors
        .iter_mut()
        .chain(anonymizers.iter_mut())
        .chain(sessionizers.iter_mut())
        .chain(aggregators.iter_mut())
        .chain(reference.iter_mut())
    {
        assert!(service.stop(), "{} exits cleanly on SIGTERM", service.name);
    }
}
