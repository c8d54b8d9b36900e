//! What an SRE sees, checked against the real Prometheus of the test stack (with the rules of
//! `deploy/prometheus`): it scrapes every service; the freshness histogram moves when visits
//! come in; every recording rule, alert and dashboard panel evaluates and finds the series
//! it reads; the README's metrics table is what the services serve; and a stage that stops
//! fires its alert within its `for:` and a few evaluations.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use chrono::Utc;
use exatom_benches::journeys::{journey, seeded};
use exatom_e2e::{
    fast_sessions, poll_until, send_journeys, sites_file, split_series, wait_until, Console,
    ConsoleUser, Pipeline, Prometheus, Stack,
};
use serde_json::{json, Value};

const SERVICES: [&str; 4] = ["collector", "anonymizer", "sessionizer", "aggregator"];

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A pipeline on a site of its own, scraped by the test stack's Prometheus, every target up.
async fn watched_pipeline(stack: &Stack, prometheus: &Prometheus) -> (Pipeline, String) {
    let site = format!("MON{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    let tag = format!("{site}1");
    let sites = sites_file(stack, "monitoring", &[(&site, &[], &[tag.as_str()])]);
    let pipeline = Pipeline::start(stack, &sites, &fast_sessions()).await;
    prometheus.scrape(&pipeline);
    let ports: Vec<String> = std::iter::once(pipeline.collector_port())
        .chain(pipeline.admin_ports.values().copied())
        .map(|p| format!("127.0.0.1:{p}"))
        .collect();
    wait_until(
        Duration::from_secs(60),
        "every service scraped and up",
        || async {
            let up = prometheus
                .query(r#"up{job=~"exatom-.+"} == 1"#)
                .await
                .unwrap_or_default();
            ports.iter().all(|p| {
                up.iter()
                    .any(|s| s["metric"]["instance"].as_str() == Some(p.as_str()))
            })
        },
    )
    .await;
    (pipeline, site)
}

/// The metric names an expression reads: recorded series (`level:metric:op`) and raw ones.
fn series_read_by(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut word = String::new();
    let mut in_quotes = false;
    for c in expr.chars().chain(std::iter::once(' ')) {
        if c == '"' {
            in_quotes = !in_quotes;
        }
        if !in_quotes && (c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            word.push(c);
            continue;
        }
        if word.starts_with("exatom_")
            || word.contains(":exatom_")
            || word == "up"
            || word.starts_with("process_")
        {
            names.insert(word.clone());
        }
        word.clear();
    }
    names
}

/// (type, labels) of every `exatom_` family a `/metrics` page serves.
fn families(page: &str) -> BTreeMap<String, (String, BTreeSet<String>)> {
    let mut out: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
    for line in page.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            if name.starts_with("exatom_") {
                out.insert(name.to_owned(), (kind.to_owned(), BTreeSet::new()));
            }
        } else if !line.starts_with('#') && line.starts_with("exatom_") {
            let (series, _) = line.rsplit_once(' ').unwrap();
            let (name, labels) = split_series(series);
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|f| out.contains_key(*f)))
                .unwrap_or(name);
            if let Some((_, names)) = out.get_mut(family) {
                for label in labels {
                    let key = label.split('=').next().unwrap();
                    if key != "le" {
                        names.insert(key.to_owned());
                    }
                }
            }
        }
    }
    out
}

/// The README's metrics table: name → (type, labels, the services that serve it).
fn documented() -> BTreeMap<String, (String, BTreeSet<String>, BTreeSet<String>)> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let ticked = |cell: &str| -> BTreeSet<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    };
    readme
        .lines()
        .filter(|l| l.starts_with("| `exatom_"))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
            let name = cells[0].trim_matches('`').to_owned();
            let services = cells[3].split(',').map(|s| s.trim().to_owned()).collect();
            (name, (cells[1].to_owned(), ticked(cells[2]), services))
        })
        .collect()
}

/// Name → (type, labels, services) of every `exatom_` family the pipeline's services serve.
async fn served_families(
    pipeline: &Pipeline,
    console: &Console,
) -> BTreeMap<String, (String, BTreeSet<String>, BTreeSet<String>)> {
    let mut served: BTreeMap<String, (String, BTreeSet<String>, BTreeSet<String>)> =
        BTreeMap::new();
    for service in SERVICES.into_iter().chain(["console"]) {
        let url = match service {
            "collector" => pipeline.collector_url.clone(),
            "console" => console.url.clone(),
            name => format!("http://127.0.0.1:{}", pipeline.admin_ports[name]),
        };
        let page = reqwest::get(format!("{url}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for (name, (kind, labels)) in families(&page) {
            let entry = served
                .entry(name)
                .or_insert_with(|| (kind, labels, BTreeSet::new()));
            entry.2.insert(service.to_owned());
        }
    }
    served
}

#[tokio::test]
async fn prometheus_sees_every_stage_and_every_rule_and_panel_reads_real_series() {
    let stack = Stack::from_env();
    let prometheus = Prometheus::from_env(&stack);
    let (mut pipeline, site) = watched_pipeline(&stack, &prometheus).await;

    // Visits: journeys of 40 minutes ago (their sessions close at once), one with an e-mail
    // in its page address (scrubbed), and one event the collector refuses.
    let written = |to: &'static str| {
        let prometheus = prometheus.clone();
        async move {
            prometheus
                .value(&format!(
                    "sum(exatom_freshness_seconds_count{{written_to=\"{to}\"}})"
                ))
                .await
                .unwrap_or(0.0)
        }
    };
    let before = written("rollups").await;
    let mut rng = seeded(20);
    let ts = Utc::now() - chrono::Duration::minutes(40);
    let journeys = (0..40).map(|n| journey(&site, n, &mut rng, ts)).collect();
    let url = format!("{}/v1/events", pipeline.collector_url);
    send_journeys(&url, &site, journeys, 4).await;
    let odd = json!({"site": site, "sent_at": exatom_e2e::rfc3339(Utc::now()), "events": [
        {"id": uuid::Uuid::new_v4().to_string(), "type": "page_view", "ts": exatom_e2e::rfc3339(ts),
         "page": "https://shop.test/thanks?mail=someone@example.com"},
        {"id": uuid::Uuid::new_v4().to_string(), "type": "no_such_type", "ts": exatom_e2e::rfc3339(ts)}]});
    let answer = reqwest::Client::new()
        .post(&url)
        .header("x-forwarded-for", "10.200.0.1")
        .body(odd.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202);

    // The freshness histogram moves, as far as the rollups.
    wait_until(
        Duration::from_secs(90),
        "freshness observed in Prometheus",
        || async {
            for to in ["exatom.anon", "events", "exatom.sessions"] {
                if written(to).await == 0.0 {
                    return false;
                }
            }
            written("rollups").await > before
        },
    )
    .await;

    // The console, once someone has logged in and opened a page (its series start then).
    let console = Console::start(
        &stack,
        "monitoring",
        &format!("[sites.{site}]\norigins = []\n"),
        &[ConsoleUser {
            name: "sre",
            password: "sre-pass",
            sites: &[&site],
            admin: false,
            token: None,
        }],
        &[],
    )
    .await;
    let cookie = console.cookie("sre", "sre-pass").await;
    let (status, page) = console.get(&format!("/sites/{site}/forms"), &cookie).await;
    assert_eq!(status, 200, "{page}");

    // The README's table is what the services serve: names, types, labels, services. Lag
    // series appear at a consumer's first sample after its assignment (every 10 s).
    let documented = documented();
    let mut served = BTreeMap::new();
    for _ in 0..30 {
        served = served_families(&pipeline, &console).await;
        if served == documented {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let names = |m: &BTreeMap<String, _>| m.keys().cloned().collect::<BTreeSet<String>>();
    assert_eq!(
        names(&served)
            .difference(&names(&documented))
            .collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "served but not in the README's metrics table"
    );
    assert_eq!(
        names(&documented)
            .difference(&names(&served))
            .collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "in the README's metrics table but not served"
    );
    for (name, row) in &documented {
        assert_eq!(&served[name], row, "{name}: (type, labels, services)");
    }

    // Every rule Prometheus loaded is healthy and reads series that exist; every recorded
    // series exists. Rates need two samples of a window: polled, not read once.
    let rules = prometheus.rules().await;
    let alerts =
        std::fs::read_to_string(root().join("deploy/prometheus/rules/alerts.yml")).unwrap();
    let recording =
        std::fs::read_to_string(root().join("deploy/prometheus/rules/recording.yml")).unwrap();
    let in_files = alerts.matches("- alert: ").count() + recording.matches("- record: ").count();
    assert_eq!(
        rules.len(),
        in_files,
        "Prometheus loaded every rule of the files"
    );
    let mut expressions: Vec<String> = Vec::new();
    for rule in &rules {
        let name = rule["name"].as_str().unwrap();
        let query = rule["query"].as_str().unwrap();
        expressions.extend(series_read_by(query));
        if rule["type"] == "recording" {
            expressions.push(name.to_owned());
        }
    }
    // Every panel of the SRE dashboard returns series.
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("deploy/grafana/exatom-pipeline.json")).unwrap(),
    )
    .unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    let mut panel_exprs = Vec::new();
    for panel in panels.iter().filter(|p| p["type"] != "row") {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            panel_exprs.push(expr.replace("$__rate_interval", "1m"));
        }
    }
    assert!(
        panel_exprs.len() >= 20,
        "{} panel queries",
        panel_exprs.len()
    );
    expressions.extend(panel_exprs);
    expressions.sort();
    expressions.dedup();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut empty = expressions;
    loop {
        let mut still = Vec::new();
        for expr in empty {
            match prometheus.query(&expr).await {
                Ok(series) if !series.is_empty() => {}
                Ok(_) => still.push(expr),
                Err(e) => panic!("Prometheus refuses `{expr}`: {e}"),
            }
        }
        empty = still;
        if empty.is_empty() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(empty, Vec::<String>::new(), "expressions without series");
    for rule in prometheus.rules().await {
        assert_eq!(rule["health"], "ok", "{rule}");
    }

    prometheus.forget();
    assert_eq!(pipeline.stop(), Vec::<String>::new());
}

#[tokio::test]
async fn a_stage_that_stops_fires_its_alert_in_the_real_prometheus() {
    let stack = Stack::from_env();
    let prometheus = Prometheus::from_env(&stack);
    let (mut pipeline, _) = watched_pipeline(&stack, &prometheus).await;
    let instance = format!("127.0.0.1:{}", pipeline.admin_ports["sessionizer"]);
    let firing = |alerts: &[Value]| {
        alerts.iter().any(|a| {
            a["labels"]["alertname"] == "ExatomStageDown"
                && a["labels"]["instance"].as_str() == Some(instance.as_str())
                && a["state"] == "firing"
        })
    };
    assert!(!firing(&prometheus.alerts().await));

    let stopped = Instant::now();
    pipeline.service("sessionizer").kill();
    // `for: 1m` plus scrapes and evaluations every second: the bound leaves room for a
    // loaded machine, the figure is printed.
    let fired = poll_until(Duration::from_secs(150), || async {
        firing(&prometheus.alerts().await)
    })
    .await;
    assert!(
        fired,
        "ExatomStageDown did not fire for the killed sessionizer"
    );
    println!(
        "ExatomStageDown firing {:.1} s after the sessionizer was killed (for: 1m, scrape 1 s)",
        stopped.elapsed().as_secs_f64()
    );
    // The other stages are not reported down.
    let down: Vec<Value> = prometheus
        .alerts()
        .await
        .into_iter()
        .filter(|a| a["labels"]["alertname"] == "ExatomStageDown")
        .collect();
    assert_eq!(down.len(), 1, "{down:?}");

    prometheus.forget();
    pipeline.stop();
}
