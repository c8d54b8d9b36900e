//! Load for the whole chain: visitor journeys (`exatom_benches::journeys`) posted to a
//! running collector over HTTP, and how long their events take to reach ClickHouse.
//!
//!   chain-load rate  COLLECTORS CLICKHOUSE SITE EVENTS_PER_S SECONDS [ADMIN_URLS]
//!   chain-load burst COLLECTORS CLICKHOUSE SITE EVENTS CONNECTIONS
//!
//! COLLECTORS are one or more collector URLs joined by `,`: requests go to them in turn.
//! `rate` starts journeys so that EVENTS_PER_S events are offered each second for SECONDS
//! (at most 512 requests in flight: when the collector falls behind, the offered rate is not
//! held, and the achieved rate says so). One event of every request is followed: freshness
//! is the time from its 202 to its row in `events` (polled every second), and for converting
//! journeys, from the 202 of their last batch to their session's row in `form_sessions`,
//! written in the same aggregator batch that recomputes the rollups. ADMIN_URLS (`/metrics`
//! URLs, one per stage joined by `,`, a stage's replicas by `+`) are sampled every 10 s for
//! the consumer lag of each stage.
//!
//! `burst` sends EVENTS events' worth of journeys over CONNECTIONS keep-alive connections as
//! fast as the collector answers (a 503 or 429 is sent again after its Retry-After, as the
//! tag does), then waits until every accepted event is in `events` and every session of the
//! run is in `sessions` and in the rollups (`v_form_daily` views), and prints the times.
//!
//! The site must be in the collector's registry with the conversion tag `<SITE>1`; every run
//! should use a site of its own, since the figures are counted per site.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use exatom_benches::journeys::{self, seeded, Expected, Journey, Outcome};
use exatom_benches::measure::{percentiles, query, Unit};
use tokio::sync::Semaphore;

const IN_FLIGHT: usize = 512;

/// Events followed from their 202 to ClickHouse.
#[derive(Default)]
struct Followed {
    /// Event id → when its batch was answered 202.
    events: HashMap<String, Instant>,
    /// Last event id of a converting journey → when its last batch was answered 202.
    sessions: HashMap<String, Instant>,
    /// Seconds from the 202 to the row, as found.
    event_freshness: Vec<f64>,
    session_freshness: Vec<f64>,
}

#[derive(Default)]
struct Tally {
    accepted: u64,
    statuses: HashMap<u16, u64>,
    expected: Expected,
}

struct Shared {
    http: reqwest::Client,
    /// Collector replicas: requests go round-robin, as a load balancer would send them.
    collectors: Vec<String>,
    next: std::sync::atomic::AtomicUsize,
    site: String,
    followed: Mutex<Followed>,
    tally: Mutex<Tally>,
    /// Retry a 503/429 after its Retry-After (burst) or count it as lost (rate).
    retry: bool,
    /// Follow events to ClickHouse (rate); a burst is timed as a whole instead.
    follow: bool,
}

impl Shared {
    /// Posts one batch; returns whether it was accepted (202).
    async fn post(&self, journey: &Journey, events: &[serde_json::Value]) -> anyhow::Result<bool> {
        loop {
            let body = journeys::body(&self.site, events, chrono::Utc::now());
            let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let collector = &self.collectors[n % self.collectors.len()];
            let response = self
                .http
                .post(format!("{collector}/v1/events"))
                .header("content-type", "text/plain;charset=UTF-8")
                .header("user-agent", journey.user_agent)
                .header("x-forwarded-for", &journey.ip)
                .body(body)
                .send()
                .await;
            let status = match response {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let wait = r
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                        .unwrap_or(1);
                    let _ = r.bytes().await;
                    if self.retry && (status == 503 || status == 429) {
                        *self
                            .tally
                            .lock()
                            .unwrap()
                            .statuses
                            .entry(status)
                            .or_default() += 1;
                        tokio::time::sleep(Duration::from_secs(wait.min(5))).await;
                        continue;
                    }
                    status
                }
                Err(_) if self.retry => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
                Err(_) => 0,
            };
            let mut tally = self.tally.lock().unwrap();
            *tally.statuses.entry(status).or_default() += 1;
            if status == 202 {
                tally.accepted += events.len() as u64;
            }
            return Ok(status == 202);
        }
    }

    /// Sends a journey's batches one after the other, as its tag would.
    async fn run(&self, journey: Journey) -> anyhow::Result<()> {
        let last = journey.batches.len() - 1;
        for (i, batch) in journey.batches.iter().enumerate() {
            if !self.post(&journey, batch).await? {
                return Ok(());
            }
            if !self.follow {
                continue;
            }
            let now = Instant::now();
            let mut followed = self.followed.lock().unwrap();
            followed.events.insert(id_of(&batch[0]), now);
            if i == last && journey.outcome == Outcome::Converted {
                followed
                    .sessions
                    .insert(id_of(batch.last().expect("not empty")), now);
            }
        }
        self.tally.lock().unwrap().expected.add(&journey);
        Ok(())
    }
}

fn id_of(event: &serde_json::Value) -> String {
    event["id"]
        .as_str()
        .expect("every event has an id")
        .to_owned()
}

fn in_list<'a>(ids: impl Iterator<Item = &'a String>) -> String {
    ids.map(|id| format!("'{id}'"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Every second, looks up the followed events and sessions that have not arrived yet, by
/// the tables' sort keys (site, day, id), so that following costs ClickHouse little.
async fn follow(
    shared: Arc<Shared>,
    clickhouse: String,
    until: Arc<std::sync::atomic::AtomicBool>,
) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let days = "day IN (yesterday(), today())";
    let mut session_of: HashMap<String, String> = HashMap::new();
    loop {
        let done = until.load(std::sync::atomic::Ordering::Relaxed);
        let (events, sessions): (Vec<String>, Vec<String>) = {
            let f = shared.followed.lock().unwrap();
            (
                f.events.keys().take(3000).cloned().collect(),
                f.sessions.keys().take(3000).cloned().collect(),
            )
        };
        if done && events.is_empty() && sessions.is_empty() {
            return Ok(());
        }
        let site = &shared.site;
        if !events.is_empty() {
            let found = query(
                &http,
                &clickhouse,
                &format!(
                    "SELECT DISTINCT event_id FROM exatom.events WHERE site = '{site}' AND {days} AND event_id IN ({})",
                    in_list(events.iter())
                ),
            )
            .await?;
            let now = Instant::now();
            let mut f = shared.followed.lock().unwrap();
            for id in found.lines() {
                if let Some(at) = f.events.remove(id) {
                    f.event_freshness.push((now - at).as_secs_f64());
                }
            }
        }
        // A closed session's events are rewritten with their final session id (version 2);
        // its row in form_sessions comes with the aggregator batch that recomputes the rollups.
        let unknown: Vec<&String> = sessions
            .iter()
            .filter(|e| !session_of.contains_key(*e))
            .collect();
        if !unknown.is_empty() {
            let found = query(
                &http,
                &clickhouse,
                &format!(
                    "SELECT event_id, session_id FROM exatom.events WHERE site = '{site}' AND {days} AND version = 2 AND event_id IN ({})",
                    in_list(unknown.into_iter())
                ),
            )
            .await?;
            for line in found.lines() {
                if let Some((event, session)) = line.split_once('\t') {
                    session_of.insert(event.to_owned(), session.to_owned());
                }
            }
        }
        let closed: Vec<&String> = sessions.iter().filter_map(|e| session_of.get(e)).collect();
        if !closed.is_empty() {
            let found = query(
                &http,
                &clickhouse,
                &format!(
                    "SELECT DISTINCT session_id FROM exatom.form_sessions WHERE site = '{site}' AND {days} AND session_id IN ({})",
                    in_list(closed.into_iter())
                ),
            )
            .await?;
            let aggregated: std::collections::HashSet<&str> = found.lines().collect();
            let now = Instant::now();
            let mut f = shared.followed.lock().unwrap();
            for event in &sessions {
                if session_of
                    .get(event)
                    .is_some_and(|s| aggregated.contains(s.as_str()))
                {
                    session_of.remove(event);
                    if let Some(at) = f.sessions.remove(event) {
                        f.session_freshness.push((now - at).as_secs_f64());
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The sum of every `exatom_consumer_lag_records` series on the `/metrics` pages of one
/// stage (its replicas' URLs joined by `+`).
async fn lag(http: &reqwest::Client, urls: &str) -> f64 {
    let mut sum = 0.0;
    for url in urls.split('+') {
        let Ok(r) = http.get(url).send().await else {
            return f64::NAN;
        };
        let text = r.text().await.unwrap_or_default();
        sum += text
            .lines()
            .filter(|l| l.starts_with("exatom_consumer_lag_records{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
    }
    sum
}

/// The services' own `exatom_freshness_seconds` buckets, summed over `urls`: cumulative
/// counts by (written_to, upper bound).
type Buckets = std::collections::BTreeMap<(String, u64), f64>;

async fn freshness_buckets(http: &reqwest::Client, urls: &[String]) -> Buckets {
    let mut out = Buckets::new();
    for url in urls.iter().flat_map(|u| u.split('+')) {
        let Ok(r) = http.get(url).send().await else {
            continue;
        };
        for line in r.text().await.unwrap_or_default().lines() {
            let Some(labels) = line.strip_prefix("exatom_freshness_seconds_bucket{") else {
                continue;
            };
            let (labels, count) = labels.split_once("} ").unwrap_or_default();
            let label = |name: &str| {
                labels
                    .split(',')
                    .find_map(|kv| {
                        kv.strip_prefix(name)?
                            .strip_prefix("=\"")?
                            .strip_suffix('"')
                    })
                    .map(str::to_owned)
            };
            let (Some(le), Some(to), Ok(count)) =
                (label("le"), label("written_to"), count.parse::<f64>())
            else {
                continue;
            };
            // Milliseconds as the key keeps the bounds ordered; +Inf sorts last.
            let bound = le.parse::<f64>().map_or(u64::MAX, |b| (b * 1000.0) as u64);
            *out.entry((to, bound)).or_default() += count;
        }
    }
    out
}

/// p50 and p99 of what the services observed between two snapshots, per place written, as
/// the upper bound of the bucket each falls in.
fn freshness_quantiles(before: &Buckets, after: &Buckets) -> Vec<String> {
    let mut by_place: std::collections::BTreeMap<&str, Vec<(u64, f64)>> = Default::default();
    for ((to, bound), count) in after {
        let earlier = before.get(&(to.clone(), *bound)).copied().unwrap_or(0.0);
        by_place
            .entry(to)
            .or_default()
            .push((*bound, count - earlier));
    }
    by_place
        .into_iter()
        .filter_map(|(to, buckets)| {
            let total = buckets.last()?.1;
            (total > 0.0).then(|| {
                let at = |q: f64| {
                    buckets.iter().find(|(_, c)| *c >= q * total).map_or(
                        "?".to_owned(),
                        |(b, _)| match b {
                            &u64::MAX => "> last bucket".to_owned(),
                            b => format!("≤ {:.2} s", *b as f64 / 1000.0),
                        },
                    )
                };
                format!(
                    "{to}: p50 {}, p99 {} ({total:.0} writes)",
                    at(0.5),
                    at(0.99)
                )
            })
        })
        .collect()
}

/// Journeys happened two hours ago (the tag sends them late): their sessions close once the
/// sessionizer's lateness has passed since their last arrival, instead of 30 minutes after
/// their last event, so a run sees them through to the rollups. Stream time stays honest:
/// the idle rule is not made to jump ahead, which would close sessions whose next batch is
/// still on its way through the chain.
fn journey_start() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now() - chrono::Duration::hours(2)
}

async fn rate_mode(
    shared: Arc<Shared>,
    rate: f64,
    seconds: u64,
    admin: Vec<String>,
) -> anyhow::Result<()> {
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let mut rng = seeded(rate as u64 ^ seconds);
    let mut offered = 0f64;
    let mut n = 0u64;
    let mut tasks = tokio::task::JoinSet::new();
    let mut ticks = tokio::time::interval(Duration::from_millis(10));
    let mut lags: Vec<(f64, Vec<f64>)> = Vec::new();
    let mut sampled = Instant::now() - Duration::from_secs(10);
    let http = reqwest::Client::new();
    let fresh_before = freshness_buckets(&http, &admin).await;
    while Instant::now() < until {
        ticks.tick().await;
        let due = rate * started.elapsed().as_secs_f64();
        while offered < due {
            let journey = journeys::journey(&shared.site, n, &mut rng, journey_start());
            n += 1;
            offered += journey.events() as f64;
            let permit = permits.clone().acquire_owned().await?;
            let shared = shared.clone();
            tasks.spawn(async move {
                let _permit = permit;
                shared.run(journey).await
            });
        }
        while let Some(done) = tasks.try_join_next() {
            done??;
        }
        if sampled.elapsed() >= Duration::from_secs(10) {
            sampled = Instant::now();
            let mut row = Vec::new();
            for url in &admin {
                row.push(lag(&http, url).await);
            }
            lags.push((started.elapsed().as_secs_f64(), row));
        }
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    {
        let tally = shared.tally.lock().unwrap();
        println!(
            "offered {rate:.0} events/s for {seconds} s: accepted {:.0} events/s ({} journeys); answers {:?}",
            tally.accepted as f64 / elapsed,
            tally.expected.journeys,
            tally.statuses
        );
    }
    for (t, row) in &lags {
        let row: Vec<String> = row.iter().map(|l| format!("{l:.0}")).collect();
        println!(
            "  lag at {t:>4.0} s (records, per stage): {}",
            row.join(" ")
        );
    }
    // What the stages saw themselves (received_at → written), no ClickHouse query needed:
    // read once every stage has caught up (at most 120 s) and the last sessions have closed
    // (the run's lateness is 60 s).
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let mut behind = 0.0;
        for url in &admin {
            behind += lag(&http, url).await;
        }
        if behind == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    tokio::time::sleep(Duration::from_secs(65)).await;
    for line in freshness_quantiles(&fresh_before, &freshness_buckets(&http, &admin).await) {
        println!("  freshness by the services' histograms, {line}");
    }
    Ok(())
}

async fn burst_mode(
    shared: Arc<Shared>,
    clickhouse: &str,
    events: u64,
    connections: usize,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let offered = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..connections {
        let (shared, next, offered) = (shared.clone(), next.clone(), offered.clone());
        tasks.spawn(async move {
            let mut rng = seeded(c as u64 + 1);
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let journey = journeys::journey(&shared.site, n, &mut rng, journey_start());
                let total = offered.fetch_add(
                    journey.events() as u64,
                    std::sync::atomic::Ordering::Relaxed,
                );
                if total >= events {
                    return anyhow::Ok(());
                }
                shared.run(journey).await?;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let sent_in = started.elapsed();
    let last_202 = Instant::now();
    let expected = shared.tally.lock().unwrap().expected;
    let accepted = shared.tally.lock().unwrap().accepted;
    println!(
        "burst: {accepted} events of {} journeys accepted in {:.1} s ({:.0} events/s at the collector); answers {:?}",
        expected.journeys,
        sent_in.as_secs_f64(),
        accepted as f64 / sent_in.as_secs_f64(),
        shared.tally.lock().unwrap().statuses
    );
    let http = reqwest::Client::new();
    let site = &shared.site;
    let count = |sql: String| {
        let http = http.clone();
        async move {
            query(&http, clickhouse, &sql)
                .await
                .ok()
                .and_then(|t| t.trim().parse::<u64>().ok())
                .unwrap_or(0)
        }
    };
    let deadline = Duration::from_secs(1800);
    let mut in_events = None;
    let mut in_rollups = None;
    while in_rollups.is_none() || in_events.is_none() {
        if last_202.elapsed() > deadline {
            bail!("not drained 30 minutes after the last 202");
        }
        if in_events.is_none()
            && count(format!(
                "SELECT uniqExact(event_id) FROM exatom.events WHERE site = '{site}'"
            ))
            .await
                >= accepted
        {
            in_events = Some(last_202.elapsed());
            println!(
                "  every accepted event in `events` {:.1} s after the last 202",
                last_202.elapsed().as_secs_f64()
            );
        }
        if in_rollups.is_none()
            && count(format!(
                "SELECT count() FROM exatom.sessions FINAL WHERE site = '{site}'"
            ))
            .await
                >= expected.journeys
            && count(format!(
                "SELECT sum(views) FROM exatom.v_form_daily WHERE site = '{site}'"
            ))
            .await
                >= expected.views
        {
            in_rollups = Some(last_202.elapsed());
            println!(
                "  every session in `sessions` and in the rollups {:.1} s after the last 202",
                last_202.elapsed().as_secs_f64()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let figures = query(
        &http,
        clickhouse,
        &format!(
            "SELECT sum(views), sum(starts), sum(conversions) FROM exatom.v_form_daily WHERE site = '{site}'"
        ),
    )
    .await?;
    let want = format!(
        "{}\t{}\t{}",
        expected.views, expected.starts, expected.conversions
    );
    println!(
        "  v_form_daily views/starts/conversions {} (expected {want}): {}",
        figures.trim(),
        if figures.trim() == want {
            "exact"
        } else {
            "DIFFERENT"
        }
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: chain-load rate COLLECTORS CLICKHOUSE SITE EVENTS_PER_S SECONDS [ADMIN_URLS]\n       chain-load burst COLLECTORS CLICKHOUSE SITE EVENTS CONNECTIONS\n(COLLECTORS: URLs joined by `,`; ADMIN_URLS: one entry per stage joined by `,`, a stage's replicas by `+`)";
    let [mode, collector, clickhouse, site, n, m, rest @ ..] = args.as_slice() else {
        bail!("{usage}");
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let shared = Arc::new(Shared {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(IN_FLIGHT)
            .timeout(Duration::from_secs(30))
            .build()?,
        collectors: collector.split(',').map(str::to_owned).collect(),
        next: std::sync::atomic::AtomicUsize::new(0),
        site: site.clone(),
        followed: Mutex::new(Followed::default()),
        tally: Mutex::new(Tally::default()),
        retry: mode == "burst",
        follow: mode == "rate" && std::env::var("CHAIN_FOLLOW").as_deref() != Ok("0"),
    });
    runtime.block_on(async {
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let follower = tokio::spawn(follow(shared.clone(), clickhouse.clone(), done.clone()));
        match mode.as_str() {
            "rate" => {
                let admin = rest.first().map(|s| s.split(',').map(str::to_owned).collect()).unwrap_or_default();
                rate_mode(shared.clone(), n.parse().context("EVENTS_PER_S")?, m.parse().context("SECONDS")?, admin).await?
            }
            "burst" => burst_mode(shared.clone(), clickhouse, n.parse().context("EVENTS")?, m.parse().context("CONNECTIONS")?).await?,
            _ => bail!("{usage}"),
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        // Whatever has not arrived 120 s after the end counts as not arrived.
        let _ = tokio::time::timeout(Duration::from_secs(120), follower).await;
        let f = shared.followed.lock().unwrap();
        println!("  freshness 202 → events: {}", percentiles(f.event_freshness.clone(), Unit::Seconds, "followed"));
        println!(
            "  freshness 202 of a converting journey's last batch → its session in form_sessions (rollups recomputed in the same batch): {}",
            percentiles(f.session_freshness.clone(), Unit::Seconds, "followed")
        );
        if !f.events.is_empty() || !f.sessions.is_empty() {
            println!("  not arrived within 120 s of the end: {} events, {} sessions", f.events.len(), f.sessions.len());
        }
        anyhow::Ok(())
    })
}
