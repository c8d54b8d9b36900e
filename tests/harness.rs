//! What the cross-service tests share: the running test stack (broker and ClickHouse,
//! started by `make integration`), the services as real child processes, and helpers to
//! talk to each.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::ClientConfig;

use exatom_benches::journeys::{body, Journey};

#[path = "harness/prometheus.rs"]
mod prometheus;
pub use prometheus::Prometheus;
#[path = "harness/console.rs"]
mod console;
pub use console::{assert_same_rows, field_csv_of_the_view, Console, ConsoleUser};

/// The stack the tests run against, from the environment `make integration` sets.
#[derive(Debug, Clone)]
pub struct Stack {
    pub brokers: String,
    pub clickhouse_url: String,
    pub state: PathBuf,
    pub bin: PathBuf,
}

impl Stack {
    /// The stack's transaction key (made on first use, as `services.sh up` does): every
    /// service started by a test hashes transaction ids under the same one.
    pub fn transaction_key_file(&self) -> PathBuf {
        let path = self.state.join("transaction.key");
        if !path.exists() {
            std::fs::create_dir_all(&self.state).unwrap();
            let key: [u8; 32] = rand::random();
            let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
            std::fs::write(&path, hex).unwrap();
        }
        path
    }

    pub fn from_env() -> Self {
        let var = |k: &str| {
            std::env::var(k).unwrap_or_else(|_| {
                panic!("{k} is not set: run the integration tests with `make integration`")
            })
        };
        Stack {
            brokers: var("EXATOM_KAFKA_BROKERS"),
            clickhouse_url: var("EXATOM_CLICKHOUSE_URL"),
            state: PathBuf::from(var("STACK_TEST_STATE")),
            bin: PathBuf::from(var("STACK_BIN")),
        }
    }

    /// Runs a ClickHouse query and returns its TSV output.
    pub async fn query(&self, sql: &str) -> String {
        self.post(sql, format!("{sql} FORMAT TSV")).await
    }

    /// Runs a ClickHouse statement that returns nothing (DDL, `INSERT … VALUES`).
    pub async fn execute(&self, sql: &str) {
        self.post(sql, sql.to_owned()).await;
    }

    async fn post(&self, sql: &str, body: String) -> String {
        let response = reqwest::Client::new()
            .post(&self.clickhouse_url)
            .body(body)
            .send()
            .await
            .expect("ClickHouse answers");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "{sql}: {status} {text}");
        text
    }

    /// Every record of a topic, from the beginning: (key, value).
    pub fn topic_records(&self, topic: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.topic_log(topic)
            .into_iter()
            .map(|r| (r.key, r.value))
            .collect()
    }

    /// Every record of a topic, from the beginning, with where it sits, in offset order
    /// per partition. Panics if the topic cannot be read to its end within 60 s.
    pub fn topic_log(&self, topic: &str) -> Vec<Record> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set(
                "group.id",
                format!("exatom-test-reader-{}", uuid::Uuid::new_v4()),
            )
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .create()
            .expect("consumer");
        let partitions = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .expect("metadata")
            .topics()[0]
            .partitions()
            .len();
        consumer.subscribe(&[topic]).expect("subscribe");
        let mut records = Vec::new();
        let mut ended = std::collections::HashSet::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while ended.len() < partitions {
            assert!(Instant::now() < deadline, "{topic} not read to its end");
            match consumer.poll(Duration::from_millis(500)) {
                Some(Ok(m)) => records.push(Record {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().unwrap_or_default().to_vec(),
                    value: m.payload().unwrap_or_default().to_vec(),
                }),
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                    ended.insert(p);
                }
                _ => {}
            }
        }
        records.sort_by_key(|r| (r.partition, r.offset));
        records
    }

    /// Produces `records` (key, value) to `topic` again, as an at-least-once redelivery
    /// would, and waits until the broker has them.
    pub async fn redeliver(&self, topic: &str, records: &[(Vec<u8>, Vec<u8>)]) {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .create()
            .expect("producer");
        for (key, value) in records {
            producer
                .send(
                    FutureRecord::to(topic).key(key).payload(value),
                    Duration::from_secs(10),
                )
                .await
                .expect("redelivered");
        }
        producer.flush(Duration::from_secs(10)).expect("flushed");
    }
}

/// One record of a topic and where it sits.
#[derive(Debug, Clone)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

/// A service process, stopped with SIGTERM (and then SIGKILL) when dropped.
pub struct Service {
    pub name: String,
    child: Child,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service").finish_non_exhaustive()
    }
}

impl Service {
    pub fn start(stack: &Stack, name: &str, env: &[(&str, String)]) -> Self {
        let log_dir = stack.state.join("logs");
        std::fs::create_dir_all(&log_dir).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_dir.join(format!("test-{name}.log")))
            .unwrap();
        let mut cmd = Command::new(stack.bin.join(format!("exatom-{name}")));
        cmd.env("EXATOM_KAFKA_BROKERS", &stack.brokers)
            .env("EXATOM_CLICKHOUSE_URL", &stack.clickhouse_url)
            .env("EXATOM_TRANSACTION_KEY_FILE", stack.transaction_key_file())
            .env("RUST_BACKTRACE", "0")
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Service {
            name: name.to_owned(),
            child,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then waits up to 20 s for the drain. Returns whether it exited cleanly.
    pub fn stop(&mut self) -> bool {
        signal(self.pid(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
        false
    }

    /// SIGKILL: the crash a test wants to survive.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if self.is_running() {
            self.stop();
        }
    }
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status();
}

/// Ports of one set of services; each test takes its own so a slow shutdown never clashes.
pub struct Ports {
    pub collector: u16,
    pub admin: [u16; 3],
}

impl std::fmt::Debug for Ports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ports").finish_non_exhaustive()
    }
}

impl Ports {
    pub fn pick() -> Self {
        let free = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        Ports {
            collector: free(),
            admin: [free(), free(), free()],
        }
    }
}

/// Sessions close 2 s after their last arrival and idle partitions follow the clock 1 s
/// behind: what tests whose visits happened long ago run the services with.
pub fn fast_sessions() -> Vec<(&'static str, String)> {
    vec![
        ("EXATOM_LATENESS_MS", "2000".into()),
        ("EXATOM_IDLE_MARGIN_MS", "1000".into()),
    ]
}

/// The whole pipeline as real processes.
pub struct Pipeline {
    pub collector_url: String,
    pub services: HashMap<&'static str, Service>,
    pub admin_ports: HashMap<&'static str, u16>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").finish_non_exhaustive()
    }
}

impl Pipeline {
    /// Starts the four services; `extra` adds variables to all of them.
    pub async fn start(
        stack: &Stack,
        sites_file: &std::path::Path,
        extra: &[(&str, String)],
    ) -> Self {
        let ports = Ports::pick();
        let mut services = HashMap::new();
        let mut admin_ports = HashMap::new();
        let env = |more: Vec<(&'static str, String)>| {
            let mut all: Vec<(&str, String)> = extra.to_vec();
            all.extend(more);
            all
        };
        services.insert(
            "collector",
            Service::start(
                stack,
                "collector",
                &env(vec![
                    ("EXATOM_LISTEN", format!("127.0.0.1:{}", ports.collector)),
                    ("EXATOM_SITES_FILE", sites_file.display().to_string()),
                ]),
            ),
        );
        for (name, port) in ["anonymizer", "sessionizer", "aggregator"]
            .into_iter()
            .zip(ports.admin)
        {
            admin_ports.insert(name, port);
            services.insert(
                name,
                Service::start(
                    stack,
                    name,
                    &env(vec![("EXATOM_ADMIN_LISTEN", format!("127.0.0.1:{port}"))]),
                ),
            );
        }
        let pipeline = Pipeline {
            collector_url: format!("http://127.0.0.1:{}", ports.collector),
            services,
            admin_ports,
        };
        // Each answer within 2 s: a check that hangs must not outlast the wait.
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let ready = |url: String| {
            let client = client.clone();
            async move {
                client
                    .get(&url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            }
        };
        let collector = format!("{}/readyz", pipeline.collector_url);
        wait_until(Duration::from_secs(30), "collector ready", || {
            ready(collector.clone())
        })
        .await;
        for (name, port) in &pipeline.admin_ports {
            let url = format!("http://127.0.0.1:{port}/readyz");
            wait_until(Duration::from_secs(30), &format!("{name} ready"), || {
                ready(url.clone())
            })
            .await;
        }
        pipeline
    }

    /// kill -9 of `name`, started again at once on its admin port with `env`.
    pub fn kill_and_restart(&mut self, stack: &Stack, name: &'static str, env: &[(&str, String)]) {
        self.service(name).kill();
        self.restart(stack, name, env);
    }

    /// Starts `name` again (after a test stopped or killed it) on its admin port with `env`.
    pub fn restart(&mut self, stack: &Stack, name: &'static str, env: &[(&str, String)]) {
        let mut all = env.to_vec();
        if let Some(port) = self.admin_ports.get(name) {
            all.push(("EXATOM_ADMIN_LISTEN", format!("127.0.0.1:{port}")));
        }
        self.services
            .insert(name, Service::start(stack, name, &all));
    }

    /// The collector's port.
    pub fn collector_port(&self) -> u16 {
        self.collector_url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("the collector URL ends with its port")
    }

    pub fn service(&mut self, name: &str) -> &mut Service {
        self.services.get_mut(name).expect("known service")
    }

    /// Stops every service with SIGTERM; returns the ones that did not exit cleanly.
    pub fn stop(&mut self) -> Vec<String> {
        let mut unclean = Vec::new();
        for (name, s) in self.services.iter_mut() {
            if s.is_running() && !s.stop() {
                unclean.push((*name).to_owned());
            }
        }
        unclean
    }
}

/// Polls `check` every 200 ms until it holds; panics with `what` after `timeout`.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    if !poll_until(timeout, check).await {
        panic!("timed out after {timeout:?} waiting for: {what}");
    }
}

/// Polls `check` every 200 ms until it holds or `timeout` passes; returns whether it held.
pub async fn poll_until<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

/// The sum of the series on a Prometheus `/metrics` page that `selector` picks: a name,
/// with or without some of its labels (`name{a="x"}` sums over the other labels); 0 when
/// the page or the series is not there.
pub async fn metric(metrics_url: &str, selector: &str) -> f64 {
    let Ok(response) = reqwest::get(metrics_url).await else {
        return 0.0;
    };
    let text = response.text().await.unwrap_or_default();
    let (name, wanted) = split_series(selector);
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(series, _)| {
            let (n, labels) = split_series(series);
            n == name && wanted.iter().all(|w| labels.contains(w))
        })
        .filter_map(|(_, value)| value.trim().parse::<f64>().ok())
        .sum()
}

/// `name{a="x",b="y"}` → (`name`, [`a="x"`, `b="y"`]). Label values here never hold commas.
pub fn split_series(series: &str) -> (&str, Vec<&str>) {
    match series.split_once('{') {
        Some((name, rest)) => (
            name,
            rest.trim_end_matches('}')
                .split(',')
                .filter(|l| !l.is_empty())
                .collect(),
        ),
        None => (series, Vec::new()),
    }
}

/// Sends the journeys to the collector at `url`, `senders` at a time, each journey's
/// batches in order; a 503 (the
/// collector's back-pressure) is retried, anything else but 202 fails the test.
pub async fn send_journeys(url: &str, site: &str, journeys: Vec<Journey>, senders: usize) {
    let client = reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let queue = Arc::new(std::sync::Mutex::new(journeys));
    let mut tasks = Vec::new();
    for _ in 0..senders {
        let (client, queue, url, site) = (
            client.clone(),
            queue.clone(),
            url.to_owned(),
            site.to_owned(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let Some(j) = queue.lock().unwrap().pop() else {
                    return;
                };
                for events in &j.batches {
                    let payload = body(&site, events, chrono::Utc::now());
                    loop {
                        let response = client
                            .post(&url)
                            .header("content-type", "text/plain")
                            .header("user-agent", j.user_agent)
                            .header("x-forwarded-for", &j.ip)
                            .body(payload.clone())
                            .send()
                            .await
                            .unwrap();
                        match response.status().as_u16() {
                            202 => break,
                            503 => tokio::time::sleep(Duration::from_millis(200)).await,
                            status => {
                                panic!("{status}: {}", response.text().await.unwrap_or_default())
                            }
                        }
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// A part of the test stack that an outage test switches off.
#[derive(Debug, Clone, Copy)]
pub enum Part {
    Broker,
    ClickHouse,
}

impl Part {
    fn name(self) -> &'static str {
        match self {
            Part::Broker => "broker",
            Part::ClickHouse => "clickhouse",
        }
    }
}

/// A part of the test stack, stopped; started again by [`Outage::end`] or when dropped,
/// whatever the test did, so a failing test never leaves the stack down for the next one.
pub struct Outage<'a> {
    stack: &'a Stack,
    part: Part,
    down: bool,
}

impl<'a> std::fmt::Debug for Outage<'a> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outage").finish_non_exhaustive()
    }
}

impl<'a> Outage<'a> {
    pub fn begin(stack: &'a Stack, part: Part) -> Self {
        stack_command(stack, &format!("{}-down", part.name()));
        Outage {
            stack,
            part,
            down: true,
        }
    }

    /// The broker killed with SIGKILL: no drain, whatever it had not flushed is gone.
    pub fn kill_broker(stack: &'a Stack) -> Self {
        stack_command(stack, "broker-kill");
        Outage {
            stack,
            part: Part::Broker,
            down: true,
        }
    }

    pub fn end(&mut self) {
        if self.down {
            stack_command(self.stack, &format!("{}-up", self.part.name()));
            self.down = false;
        }
    }
}

impl Drop for Outage<'_> {
    fn drop(&mut self) {
        self.end();
    }
}

/// Runs `deploy/local/stack.sh COMMAND` on the test stack (e.g. `clickhouse-down`, to test
/// an outage; `clickhouse-up` to end it).
pub fn stack_command(stack: &Stack, command: &str) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the project");
    let port = |url: &str| url.rsplit(':').next().unwrap_or_default().to_owned();
    let mut cmd = Command::new(root.join("deploy/local/stack.sh"));
    cmd.arg(command)
        .env("STACK_STATE", &stack.state)
        .env("STACK_KAFKA_PORT", port(&stack.brokers))
        .env("STACK_CH_HTTP_PORT", port(&stack.clickhouse_url))
        .env("STACK_BIN", &stack.bin);
    if let Ok(tcp) = std::env::var("STACK_CH_TCP_PORT") {
        cmd.env("STACK_CH_TCP_PORT", tcp);
    }
    let status = cmd.status().expect("stack.sh runs");
    assert!(status.success(), "stack.sh {command} failed");
}

/// A site registry file for one test.
pub fn sites_file(stack: &Stack, name: &str, sites: &[(&str, &[&str], &[&str])]) -> PathBuf {
    let mut text = String::new();
    for (code, origins, tags) in sites {
        text.push_str(&format!(
            "[sites.{code}]\norigins = {origins:?}\nconversion_tags = {tags:?}\n\n"
        ));
    }
    let path = stack.state.join(format!("sites-{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// RFC 3339 with milliseconds, as the browser tag writes it.
pub fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Whether `needle` occurs anywhere in `haystack`.
pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}
