//! Replay load: the recorded visit (`exatom_benches::replay`) sent again as SESSIONS new
//! visits to a running collector, and how fast the anonymizer's replay loop stores them.
//!
//!   replay-load COLLECTOR CLICKHOUSE SITE SESSIONS CONNECTIONS [one-client]
//!
//! 1. Probe alone: for 10 s, a batch of 5 events every 100 ms to `/v1/events` (a visitor of
//!    its own each time); the time to its 202 is what a visitor's events wait.
//! 2. Flood: SESSIONS visits over CONNECTIONS keep-alive connections, each visit's batches in
//!    the order the browser sent them, as fast as the collector answers (a 429 or 503 is sent
//!    again after its Retry-After, as the recorder does). The probe goes on meanwhile.
//! 3. Prints the batches/s and bytes/s the collector took, the probe's 202 times alone and
//!    during the flood, and, polling `replay_batches` every second, the rate rows arrived
//!    and how long after the last 202 the last one did.
//! 4. Storage: the table merged (`OPTIMIZE … FINAL`), its bytes on disk per 1 000 visits.
//!
//! `one-client`: every visit from one client address, as a flood from one browser or script
//! comes; a 429 is not waited for but counted, and the flood goes on with the next batch
//! (no storage figure: what is stored is the rate limit's share, not visits).
//!
//! The site must record replays (`replay_sample > 0`) and the collector's
//! `EXATOM_REPLAY_SITE_BYTES_PER_MINUTE` be above the flood, or the run measures the quota.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use exatom_benches::measure::{percentiles, query, Unit};
use exatom_benches::replay::{Visit, VISIT};
use exatom_benches::rfc3339;

#[derive(Default)]
struct Tally {
    batches: u64,
    json_bytes: u64,
    sent_bytes: u64,
    /// Answers sent again after their Retry-After (or, from one client, dropped: 429).
    retried: std::collections::HashMap<u16, u64>,
}

/// Posts one batch until it is taken; its body's bytes as sent.
async fn post(
    http: &reqwest::Client,
    url: &str,
    client: &str,
    body: Vec<u8>,
    tally: &Mutex<Tally>,
    flooder: bool,
) -> anyhow::Result<()> {
    // Gzipped in the browser, as the recorder sends every batch.
    let json_bytes = body.len() as u64;
    let gz = {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&body)?;
        gz.finish()?
    };
    let sent_bytes = gz.len() as u64;
    loop {
        let response = http
            .post(url)
            .header("content-type", "text/plain;charset=UTF-8")
            .header("x-forwarded-for", client)
            .body(gz.clone())
            .send()
            .await?;
        let status = response.status().as_u16();
        match status {
            202 => {
                let mut t = tally.lock().expect("tally");
                t.batches += 1;
                t.json_bytes += json_bytes;
                t.sent_bytes += sent_bytes;
                return Ok(());
            }
            429 | 503 => {
                *tally
                    .lock()
                    .expect("tally")
                    .retried
                    .entry(status)
                    .or_default() += 1;
                if flooder && status == 429 {
                    return Ok(());
                }
                let wait = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok()?.parse().ok())
                    .unwrap_or(1);
                tokio::time::sleep(Duration::from_secs(wait)).await;
            }
            _ => bail!(
                "a replay batch answered {status}: {}",
                response.text().await?
            ),
        }
    }
}

/// Every 100 ms until `stop`, 5 events to `/v1/events`; the seconds to each 202.
async fn probe(
    http: reqwest::Client,
    collector: String,
    site: String,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<Vec<f64>> {
    let mut times = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut n = 0u32;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        n += 1;
        let now = rfc3339(chrono::Utc::now());
        let events: Vec<serde_json::Value> = (0..5)
            .map(|_| {
                serde_json::json!({"id": uuid::Uuid::new_v4().to_string(), "type": "page_view",
                                        "ts": now, "page": "https://shop.example/"})
            })
            .collect();
        let body = serde_json::json!({"site": site, "sent_at": now, "events": events});
        let started = Instant::now();
        let status = http
            .post(format!("{collector}/v1/events"))
            .header("content-type", "text/plain;charset=UTF-8")
            .header(
                "x-forwarded-for",
                format!("198.51.{}.{}", n / 250 % 250, n % 250),
            )
            .body(body.to_string())
            .send()
            .await?
            .status();
        if status != 202 {
            bail!("the probe's events answered {status}");
        }
        times.push(started.elapsed().as_secs_f64());
    }
    Ok(times)
}

async fn run(
    collector: String,
    clickhouse: String,
    site: String,
    sessions: usize,
    connections: usize,
    one_client: bool,
) -> anyhow::Result<()> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(VISIT);
    let visit = Arc::new(Visit::load(&path)?);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(connections + 1)
        .build()?;
    let stored_sql = format!("SELECT count() FROM exatom.replay_batches WHERE site = '{site}'");

    let stop = Arc::new(AtomicBool::new(false));
    let alone = tokio::spawn(probe(
        http.clone(),
        collector.clone(),
        site.clone(),
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(10)).await;
    stop.store(true, Ordering::Relaxed);
    let alone = alone.await??;

    let stop = Arc::new(AtomicBool::new(false));
    let during = tokio::spawn(probe(
        http.clone(),
        collector.clone(),
        site.clone(),
        stop.clone(),
    ));
    // Rows as they arrive, every second, from the flood's start.
    let arrivals = Arc::new(Mutex::new(Vec::<(f64, u64)>::new()));
    let started = Instant::now();
    let watcher = {
        let (http, clickhouse, sql, arrivals, stop) = (
            http.clone(),
            clickhouse.clone(),
            stored_sql.clone(),
            arrivals.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(n) = query(&http, &clickhouse, &sql).await {
                    let n = n.trim().parse().unwrap_or(0);
                    arrivals
                        .lock()
                        .expect("arrivals")
                        .push((started.elapsed().as_secs_f64(), n));
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };

    let tally = Arc::new(Mutex::new(Tally::default()));
    let next = Arc::new(AtomicUsize::new(0));
    let url = format!("{collector}/v1/replay");
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (http, url, site, visit, tally, next) = (
                http.clone(),
                url.clone(),
                site.clone(),
                visit.clone(),
                tally.clone(),
                next.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= sessions {
                        return anyhow::Ok(());
                    }
                    let client = if one_client {
                        "10.0.0.1".to_owned()
                    } else {
                        format!("10.{}.{}.{}", n >> 16 & 255, n >> 8 & 255, n & 255)
                    };
                    for body in visit.again(&site, exatom_core::time::now_ms()) {
                        post(&http, &url, &client, body, &tally, one_client).await?;
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await??;
    }
    let flood = started.elapsed().as_secs_f64();
    let taken = {
        let t = tally.lock().expect("tally");
        println!(
            "replay flood: {sessions} visits ({} batches each, {:.1} s recorded), {connections} connections, {}",
            visit.batches(),
            visit.recorded_ms() as f64 / 1e3,
            if one_client { "all from one client" } else { "a client each" }
        );
        println!(
            "  collector took {} batches in {flood:.1} s: {:.0} batches/s, {:.0} visits/s, {:.1} MB/s gzipped as sent ({:.1} MB/s of JSON); retried {:?}",
            t.batches,
            t.batches as f64 / flood,
            sessions as f64 / flood,
            t.sent_bytes as f64 / flood / 1e6,
            t.json_bytes as f64 / flood / 1e6,
            t.retried
        );
        t.batches
    };
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let n: u64 = query(&http, &clickhouse, &stored_sql)
            .await?
            .trim()
            .parse()?;
        if n >= taken {
            break;
        }
        if Instant::now() > deadline {
            bail!("{n} of {taken} replay batches in replay_batches after 15 minutes");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let last = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let during = during.await??;
    watcher.await?;
    let arrivals = arrivals.lock().expect("arrivals").clone();
    let first_row = arrivals
        .iter()
        .find(|(_, n)| *n > 0)
        .map_or(0.0, |(t, _)| *t);
    println!(
        "  stored: all {taken} in replay_batches {:.1} s after the last 202; {:.0} rows/s from the first row to the last",
        last - flood,
        taken as f64 / (last - first_row).max(1e-3)
    );
    println!(
        "  events' 202 alone:          {}",
        percentiles(alone, Unit::Millis, "batches")
    );
    println!(
        "  events' 202 during the flood: {}",
        percentiles(during, Unit::Millis, "batches")
    );

    if one_client {
        // What was taken is the rate limit's share, not visits: no storage per visit.
        return Ok(());
    }
    query(
        &http,
        &clickhouse,
        "OPTIMIZE TABLE exatom.replay_batches FINAL",
    )
    .await
    .ok();
    let table = query(
        &http,
        &clickhouse,
        "SELECT sum(rows), sum(bytes_on_disk), sum(data_uncompressed_bytes) FROM system.parts \
         WHERE database = 'exatom' AND table = 'replay_batches' AND active",
    )
    .await?;
    let ours = query(
        &http,
        &clickhouse,
        &format!("SELECT count(), sum(length(events)), sum(bytes) FROM exatom.replay_batches FINAL WHERE site = '{site}'"),
    )
    .await?;
    let parse = |line: &str| -> anyhow::Result<Vec<f64>> {
        line.split_whitespace()
            .map(|v| v.parse().context("a number from ClickHouse"))
            .collect()
    };
    let (table, ours) = (parse(&table)?, parse(&ours)?);
    let share = ours[0] / table[0].max(1.0);
    println!(
        "  storage: {:.2} MB on disk per 1 000 visits ({:.0} rows of the table's {:.0} are this run's; events gzipped {:.0} B per visit, {:.0} B of JSON)",
        table[1] * share / sessions as f64 * 1000.0 / 1e6,
        ours[0],
        table[0],
        ours[1] / sessions as f64,
        ours[2] / sessions as f64,
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (one_client, args) = match args.split_last() {
        Some((last, rest)) if last == "one-client" => (true, rest),
        _ => (false, args.as_slice()),
    };
    let [collector, clickhouse, site, sessions, connections] = args else {
        bail!("usage: replay-load COLLECTOR CLICKHOUSE SITE SESSIONS CONNECTIONS [one-client]");
    };
    tokio::runtime::Runtime::new()?.block_on(run(
        collector.clone(),
        clickhouse.clone(),
        site.clone(),
        sessions.parse()?,
        connections.parse()?,
        one_client,
    ))
}
