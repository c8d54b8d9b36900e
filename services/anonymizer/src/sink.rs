//! The stream loop: `exatom.raw` → anonymize → `exatom.anon`, committing a batch's offsets
//! only after every record of it is delivered (or dead-lettered).

use std::time::{Duration, Instant};

use exatom_shared::avro::{raw_event_codec, Codec, CodecError};
use exatom_shared::kafka::{self, ANON_TOPIC, RAW_TOPIC};
use exatom_shared::model::{Device, RawEvent};
use exatom_shared::telemetry::Shutdown;
use prometheus::IntCounterVec;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::device::Classifier;
use crate::encoder::AnonEncoder;
use crate::geo::Geo;
use crate::metrics::AnonymizerMetrics;
use crate::salts::OutOfRange;
use crate::scrub::{ScrubCounts, Scrubber};
use crate::service::{SaltError, SaltKeeper};
use crate::transform::{anonymize, check};

/// What the loop needs, built once at start.
pub struct Pipeline {
    pub consumer: kafka::Consumer,
    pub producer: FutureProducer,
    pub salts: SaltKeeper,
    pub classifier: Classifier,
    pub geo: Geo,
    pub scrubber: Scrubber,
    pub metrics: AnonymizerMetrics,
    pub batch_max: usize,
}

/// One encoded output record, or the reason its input goes to the DLQ.
enum Outcome {
    Anon { key: String, payload: Vec<u8> },
    DeadLetter(String),
}

/// Time spent in each stage over one batch: measured per event, observed once per batch.
#[derive(Default)]
struct StageTimes {
    decode: Duration,
    salt: Duration,
    user_agent: Duration,
    geo: Duration,
    anonymize: Duration,
    encode: Duration,
}

/// The time since `*mark`, moving the mark to now: one clock read per stage.
fn lap(mark: &mut Instant) -> Duration {
    let now = Instant::now();
    let elapsed = now - *mark;
    *mark = now;
    elapsed
}

/// The DLQ reason of an undecodable record. Avro's own messages may quote the datum, and
/// reasons are stored and logged, so only the kind of failure is kept.
fn undecodable(e: &CodecError) -> String {
    match e {
        CodecError::Avro(_) => "undecodable: the datum does not match the RawEvent schema".into(),
        other => format!("undecodable: {other}"),
    }
}

impl Pipeline {
    /// Runs until shutdown; returns after committing what was delivered.
    pub async fn run(mut self, shutdown: Shutdown) -> anyhow::Result<()> {
        self.consumer.subscribe(&[RAW_TOPIC])?;
        let raw_codec = raw_event_codec();
        let anon_codec = AnonEncoder::default();
        let mut lag_sampled = Instant::now();
        let (mut ua_counted, mut scrub_counted) = ((0, 0), (0, 0));
        while !shutdown.is_triggered() {
            let batch = kafka::next_batch(
                &self.consumer,
                self.batch_max,
                Duration::from_millis(500),
                Duration::from_millis(20),
            )
            .await?
            .messages;
            if lag_sampled.elapsed() > Duration::from_secs(10) {
                self.report_lag();
                lag_sampled = Instant::now();
            }
            if batch.is_empty() {
                continue;
            }
            self.metrics.records_in.inc_by(batch.len() as u64);
            let today = chrono::Utc::now().date_naive();
            let forgotten = self.salts.forget_expired(today);
            if forgotten > 0 {
                self.metrics
                    .salts
                    .with_label_values(&["forgotten"])
                    .inc_by(forgotten as u64);
            }
            let mut outcomes = Vec::with_capacity(batch.len());
            let mut counts = ScrubCounts::default();
            let mut stages = StageTimes::default();
            for message in &batch {
                let outcome = self
                    .transform(
                        message,
                        (&raw_codec, &anon_codec),
                        today,
                        (&mut counts, &mut stages),
                        &shutdown,
                    )
                    .await?;
                outcomes.push(outcome);
            }
            self.record_counts(counts);
            self.record_stages(&stages);
            let ua = (self.classifier.hits, self.classifier.misses);
            count_lookups(&self.metrics.ua_cache, ua, &mut ua_counted);
            let scrub = (self.scrubber.hits, self.scrubber.misses);
            count_lookups(&self.metrics.scrub_cache, scrub, &mut scrub_counted);

            let mut mark = Instant::now();
            self.deliver(&batch, outcomes, &shutdown).await?;
            self.observe("deliver", lap(&mut mark));
            kafka::commit(
                &self.consumer,
                &kafka::next_offsets(&batch),
                CommitMode::Sync,
            )?;
            self.observe("commit", lap(&mut mark));
        }
        tracing::info!("anonymizer drained");
        Ok(())
    }

    async fn transform(
        &mut self,
        message: &OwnedMessage,
        (raw_codec, anon_codec): (&Codec<RawEvent>, &AnonEncoder),
        today: chrono::NaiveDate,
        (counts, stages): (&mut ScrubCounts, &mut StageTimes),
        shutdown: &Shutdown,
    ) -> anyhow::Result<Outcome> {
        let mut mark = Instant::now();
        let raw = match raw_codec.decode(message.payload().unwrap_or_default()) {
            Ok(raw) => raw,
            Err(e) => return Ok(Outcome::DeadLetter(undecodable(&e))),
        };
        if let Err(e) = check(&raw) {
            return Ok(Outcome::DeadLetter(format!("invalid: {e}")));
        }
        stages.decode += lap(&mut mark);
        // The day of receipt, by the collector's clock: the same day `anonymize` hashes with.
        let day = exatom_shared::time::utc_day(raw.received_at_ms);
        let salt = loop {
            match self.salts.salt_for(day, today).await {
                Ok((salt, created)) => {
                    if created {
                        self.metrics.salts.with_label_values(&["created"]).inc();
                        tracing::info!(%day, "created the salt of a new day");
                    }
                    break salt;
                }
                Err(SaltError::OutOfRange(e @ OutOfRange::Expired(_))) => {
                    return Ok(Outcome::DeadLetter(format!("salt_expired: {e}")))
                }
                Err(SaltError::OutOfRange(e @ OutOfRange::Future(_))) => {
                    return Ok(Outcome::DeadLetter(format!("salt_future: {e}")))
                }
                Err(e) if shutdown.is_triggered() => return Err(e.into()),
                Err(e) => {
                    tracing::warn!(error = %e, "salt not available yet; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        stages.salt += lap(&mut mark);
        let classified = self.classifier.classify(&raw.user_agent);
        stages.user_agent += lap(&mut mark);
        let (country, region) = self.geo.locate(&raw.ip);
        stages.geo += lap(&mut mark);
        let mut device = Device {
            country,
            region,
            ..Device::default()
        };
        classified.apply(&mut device);
        let anon = anonymize(raw, &salt, device, &mut self.scrubber, counts);
        stages.anonymize += lap(&mut mark);
        let outcome = match anon_codec.encode(&anon) {
            Ok((key, payload)) => Outcome::Anon { key, payload },
            Err(e) => Outcome::DeadLetter(format!("unencodable: {e}")),
        };
        stages.encode += lap(&mut mark);
        Ok(outcome)
    }

    /// Produces every outcome and waits for all acknowledgements; a failed delivery is
    /// retried with backoff (order per key is kept by the idempotent producer).
    async fn deliver(
        &self,
        batch: &[OwnedMessage],
        outcomes: Vec<Outcome>,
        shutdown: &Shutdown,
    ) -> anyhow::Result<()> {
        let mut pending = Vec::new();
        for (message, outcome) in batch.iter().zip(outcomes) {
            match outcome {
                Outcome::DeadLetter(reason) => {
                    let label = reason.split(':').next().unwrap_or("other").to_owned();
                    self.metrics.dlq.with_label_values(&[&label]).inc();
                    tracing::warn!(
                        partition = message.partition(),
                        offset = message.offset(),
                        reason = %label,
                        "record sent to the DLQ"
                    );
                    let mut backoff = Duration::from_millis(100);
                    while let Err(e) =
                        kafka::send_dead_letter(&self.producer, message, &reason).await
                    {
                        tracing::error!(error = %e, "DLQ write failed; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
                Outcome::Anon { key, payload } => pending.push((key, payload)),
            }
        }
        let mut backoff = Duration::from_millis(100);
        while !pending.is_empty() {
            let records = pending.iter().map(|(key, payload)| {
                FutureRecord::to(ANON_TOPIC)
                    .key(key.as_str())
                    .payload(payload.as_slice())
            });
            let delivered: Vec<bool> = kafka::produce_all(&self.producer, records)
                .await
                .into_iter()
                .map(|result| {
                    result
                        .inspect_err(|e| {
                            tracing::warn!(error = %e, "delivery to exatom.anon failed; will retry")
                        })
                        .is_ok()
                })
                .collect();
            self.metrics
                .records_out
                .inc_by(delivered.iter().filter(|d| **d).count() as u64);
            let failed: Vec<_> = pending
                .into_iter()
                .zip(delivered)
                .filter_map(|(item, ok)| (!ok).then_some(item))
                .collect();
            pending = failed;
            if !pending.is_empty() {
                if shutdown.is_triggered() {
                    anyhow::bail!(
                        "shutting down with {} undelivered records (not committed)",
                        pending.len()
                    );
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
        Ok(())
    }

    fn record_counts(&self, c: ScrubCounts) {
        for (rule, n) in [
            ("email", c.emails),
            ("ip", c.ips),
            ("date", c.dates),
            ("digits", c.digit_runs),
            ("query_param", c.query_params),
            ("fragment", c.fragments),
        ] {
            if n > 0 {
                self.metrics.scrubbed.with_label_values(&[rule]).inc_by(n);
            }
        }
    }

    fn record_stages(&self, s: &StageTimes) {
        for (stage, time) in [
            ("decode", s.decode),
            ("salt", s.salt),
            ("user_agent", s.user_agent),
            ("geo", s.geo),
            ("anonymize", s.anonymize),
            ("encode", s.encode),
        ] {
            self.observe(stage, time);
        }
    }

    fn observe(&self, stage: &str, time: Duration) {
        self.metrics
            .stage_seconds
            .with_label_values(&[stage])
            .observe(time.as_secs_f64());
    }

    fn report_lag(&self) {
        for (topic, partition, lag) in kafka::lag(&self.consumer) {
            self.metrics
                .consumer_lag
                .with_label_values(&[&topic, &partition.to_string()])
                .set(lag);
        }
    }
}

/// Adds a cache's hits and misses since the last call to its `{result}` counter.
fn count_lookups(counter: &IntCounterVec, (hits, misses): (u64, u64), counted: &mut (u64, u64)) {
    counter.with_label_values(&["hit"]).inc_by(hits - counted.0);
    counter
        .with_label_values(&["miss"])
        .inc_by(misses - counted.1);
    *counted = (hits, misses);
}
