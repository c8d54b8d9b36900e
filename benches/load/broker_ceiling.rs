//! The broker ceiling of the collector's load run: what the broker acknowledges when the
//! collector's producer (same settings, `sink::producer_config`) sends the collector's
//! records with no HTTP in front. Each of `concurrency` loops acts as one keep-alive
//! connection: it produces one 20-event request's records (the Avro bytes and the single
//! partition key the collector makes of `batch_json(20)`) and waits for every
//! acknowledgement before the next, as a 202 does. The collector cannot beat this figure
//! on the same broker and core.
//!
//!   broker-ceiling BROKERS CONCURRENCY SECONDS [NAME=VALUE ...]
//!
//! CONCURRENCY written `N/s` is a fixed rate instead: N events/s in requests started on a
//! 1 ms clock (tokio's timer), whatever the acknowledgements do, as the fixed-rate HTTP run.
//!
//! The optional librdkafka settings replace the collector's (e.g. `linger.ms=5`): how the
//! producer's settings were chosen. Prints one line: events/s acknowledged and the request
//! latency percentiles.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use exatom_benches::{collector_request, Request};
use exatom_collector::writer::producer_config;
use exatom_plumbing::kafka::RAW_TOPIC;
use rdkafka::producer::{FutureProducer, FutureRecord};

/// Produces one request's records and waits for every acknowledgement: its latency in µs.
async fn one_request(producer: &FutureProducer, request: &Request) -> anyhow::Result<u64> {
    let started = Instant::now();
    let mut deliveries = Vec::with_capacity(request.payloads.len());
    for payload in &request.payloads {
        let record = FutureRecord::to(RAW_TOPIC)
            .key(&request.key)
            .payload(payload);
        match producer.send_result(record) {
            Ok(delivery) => deliveries.push(delivery),
            Err((e, _)) => bail!("enqueueing a record: {e}"),
        }
    }
    for delivery in deliveries {
        match delivery.await {
            Ok(Ok(_)) => {}
            Ok(Err((e, _))) => bail!("the broker refused a record: {e}"),
            Err(_) => bail!("the producer dropped a delivery report"),
        }
    }
    Ok(started.elapsed().as_micros() as u64)
}

/// Sends requests one after the other until `until`, as a keep-alive connection does.
async fn connection(
    producer: FutureProducer,
    request: &'static Request,
    until: Instant,
) -> anyhow::Result<Vec<u64>> {
    let mut latencies = Vec::new();
    while Instant::now() < until {
        latencies.push(one_request(&producer, request).await?);
    }
    Ok(latencies)
}

/// Starts a request every `20 / events_per_s` seconds until `until`, not waiting for the
/// previous ones: the latency at a fixed rate, as h2load measures the collector's.
async fn fixed_rate(
    producer: FutureProducer,
    request: &'static Request,
    events_per_s: f64,
    until: Instant,
) -> anyhow::Result<Vec<u64>> {
    let every = Duration::from_secs_f64(request.payloads.len() as f64 / events_per_s);
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut started = Vec::new();
    while Instant::now() < until {
        ticks.tick().await;
        let producer = producer.clone();
        started.push(tokio::spawn(async move {
            one_request(&producer, request).await
        }));
    }
    let mut latencies = Vec::with_capacity(started.len());
    for request in started {
        latencies.push(request.await??);
    }
    Ok(latencies)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1000.0
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [brokers, concurrency, seconds, overrides @ ..] = args.as_slice() else {
        bail!("usage: broker-ceiling BROKERS CONCURRENCY SECONDS [NAME=VALUE ...]");
    };
    let rate: Option<f64> = match concurrency.strip_suffix("/s") {
        Some(rate) => Some(
            rate.parse()
                .context("a fixed rate is N/s, N events a second")?,
        ),
        None => None,
    };
    let concurrency: usize = match rate {
        Some(_) => 0,
        None => concurrency
            .parse()
            .context("CONCURRENCY is a number or N/s")?,
    };
    let seconds: u64 = seconds.parse().context("SECONDS is a number")?;
    let request: &'static Request = Box::leak(Box::new(collector_request()?));
    // The collector's own bound (max_queue_events 50 000, librdkafka's queue twice that).
    let mut config = producer_config(brokers, 100_000);
    for setting in overrides {
        let Some((name, value)) = setting.split_once('=') else {
            bail!("a librdkafka setting is NAME=VALUE, not {setting:?}");
        };
        config.set(name, value);
    }
    let producer: FutureProducer = config.create().context("creating the producer")?;
    // One thread, like the pinned collector's core; librdkafka's threads come on top.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (latencies, elapsed) = runtime.block_on(async {
        // Warm-up: metadata, producer id, connections.
        connection(
            producer.clone(),
            request,
            Instant::now() + Duration::from_secs(1),
        )
        .await?;
        let started = Instant::now();
        let until = started + Duration::from_secs(seconds);
        let all = match rate {
            Some(rate) => fixed_rate(producer.clone(), request, rate, until).await?,
            None => {
                let tasks: Vec<_> = (0..concurrency)
                    .map(|_| tokio::spawn(connection(producer.clone(), request, until)))
                    .collect();
                let mut all = Vec::new();
                for task in tasks {
                    all.extend(task.await??);
                }
                all
            }
        };
        anyhow::Ok((all, started.elapsed()))
    })?;
    let mut sorted = latencies;
    sorted.sort_unstable();
    if sorted.is_empty() {
        bail!("no request completed");
    }
    let events = sorted.len() * request.payloads.len();
    let load = match rate {
        Some(rate) => format!("at {rate} events/s"),
        None => format!("c={concurrency}"),
    };
    println!(
        "broker ceiling {load}{}: {} events/s acknowledged ({} requests), p50 {:.2}ms p90 {:.2}ms p99 {:.2}ms",
        overrides
            .iter()
            .map(|o| format!(" {o}"))
            .collect::<String>(),
        (events as f64 / elapsed.as_secs_f64()) as u64,
        sorted.len(),
        percentile(&sorted, 0.50),
        percentile(&sorted, 0.90),
        percentile(&sorted, 0.99),
    );
    Ok(())
}
