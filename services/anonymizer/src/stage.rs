//! The anonymizer's stage of the consume loop: each raw record is decoded, checked, given
//! its visitor id, device and location, scrubbed and encoded; the batch is delivered to
//! `exatom.anon` (or dead-lettered) before its offsets are called safe.

use std::time::{Duration, Instant};

use exatom_core::avro::{raw_event_codec, Codec, CodecError};
use exatom_core::model::{Device, RawEvent};
use exatom_plumbing::consume::{Batch, Io, Offsets, Source, Stage};
use exatom_plumbing::dead_letter::Reason;
use exatom_plumbing::fault::{Cause, Fault};
use exatom_plumbing::retry;
use prometheus::IntCounterVec;
use rdkafka::message::{Message, OwnedMessage};

use crate::device::Classifier;
use crate::encoder::AnonEncoder;
use crate::geo::Geo;
use crate::metrics::AnonymizerMetrics;
use crate::salts::{OutOfRange, SaltError, SaltKeeper};
use crate::scrub::{ScrubCounts, Scrubber};
use crate::transactions::TransactionKeys;
use crate::transform::{anonymize, check};
use crate::writer::{AnonRecord, Writer};

/// What the stage holds, built once at start.
pub struct Anonymize {
    pub salts: SaltKeeper,
    pub classifier: Classifier,
    pub geo: Geo,
    pub scrubber: Scrubber,
    pub metrics: AnonymizerMetrics,
    pub writer: Writer,
    transactions: TransactionKeys,
    raw_codec: Codec<RawEvent>,
    anon_codec: AnonEncoder,
    /// Cache hits and misses already added to the counters.
    ua_counted: (u64, u64),
    scrub_counted: (u64, u64),
}

impl std::fmt::Debug for Anonymize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Anonymize").finish_non_exhaustive()
    }
}

/// One encoded output record, or why its input goes to the DLQ.
enum Outcome {
    Anon(AnonRecord),
    DeadLetter(Reason, String),
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

/// The DLQ detail of an undecodable record. Avro's own messages may quote the datum, and
/// reasons are stored and logged, so only the kind of failure is kept.
fn undecodable(e: &CodecError) -> String {
    match e {
        CodecError::Avro(_) => "the datum does not match the RawEvent schema".into(),
        other => other.to_string(),
    }
}

impl Anonymize {
    pub fn new(
        salts: SaltKeeper,
        classifier: Classifier,
        geo: Geo,
        scrubber: Scrubber,
        metrics: AnonymizerMetrics,
        writer: Writer,
        transactions: TransactionKeys,
    ) -> Self {
        Anonymize {
            salts,
            classifier,
            geo,
            scrubber,
            metrics,
            writer,
            transactions,
            raw_codec: raw_event_codec(),
            anon_codec: AnonEncoder::default(),
            ua_counted: (0, 0),
            scrub_counted: (0, 0),
        }
    }

    async fn transform<S: Source>(
        &mut self,
        message: &OwnedMessage,
        today: chrono::NaiveDate,
        (counts, stages): (&mut ScrubCounts, &mut StageTimes),
        io: &Io<'_, S>,
    ) -> Result<Outcome, Fault> {
        let mut mark = Instant::now();
        let raw = match self.raw_codec.decode(message.payload().unwrap_or_default()) {
            Ok(raw) => raw,
            Err(e) => return Ok(Outcome::DeadLetter(Reason::Undecodable, undecodable(&e))),
        };
        if let Err(e) = check(&raw) {
            return Ok(Outcome::DeadLetter(Reason::Invalid, e.to_string()));
        }
        stages.decode += lap(&mut mark);
        // The day of receipt, by the collector's clock: the same day `anonymize` hashes with.
        let day = exatom_core::time::utc_day(raw.received_at_ms);
        let salts = &self.salts;
        let salt = retry::until_ok(
            "salt",
            io.shutdown,
            io.metrics.on_retry("kafka"),
            || async {
                match salts.salt_for(day, today).await {
                    Ok(found) => Ok(Ok(found)),
                    Err(SaltError::OutOfRange(e)) => Ok(Err(e)),
                    Err(e @ SaltError::Unavailable(..)) => {
                        Err(Fault::retriable(Cause::Unreachable, e.to_string()))
                    }
                }
            },
        )
        .await?;
        let salt = match salt {
            Ok((salt, created)) => {
                if created {
                    self.metrics.salts.with_label_values(&["created"]).inc();
                    tracing::info!(%day, "created the salt of a new day");
                }
                salt
            }
            Err(e @ OutOfRange::Expired(_)) => {
                return Ok(Outcome::DeadLetter(Reason::SaltExpired, e.to_string()))
            }
            Err(e @ OutOfRange::Future(_)) => {
                return Ok(Outcome::DeadLetter(Reason::SaltFuture, e.to_string()))
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
        let received_at_ms = raw.received_at_ms;
        let anon = anonymize(
            raw,
            &salt,
            device,
            &self.transactions,
            &mut self.scrubber,
            counts,
        );
        stages.anonymize += lap(&mut mark);
        let outcome = match self.anon_codec.encode(&anon) {
            Ok((key, payload)) => Outcome::Anon(AnonRecord {
                key,
                payload,
                received_at_ms,
            }),
            Err(e) => Outcome::DeadLetter(Reason::Unencodable, e.to_string()),
        };
        stages.encode += lap(&mut mark);
        Ok(outcome)
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
}

impl Stage for Anonymize {
    async fn handle<S: Source>(&mut self, batch: Batch, io: &Io<'_, S>) -> Result<Offsets, Fault> {
        if batch.messages.is_empty() {
            return Ok(Offsets::new());
        }
        self.metrics.records_in.inc_by(batch.messages.len() as u64);
        let today = chrono::Utc::now().date_naive();
        let forgotten = self.salts.forget_expired(today);
        if forgotten > 0 {
            self.metrics
                .salts
                .with_label_values(&["forgotten"])
                .inc_by(forgotten as u64);
        }
        let mut counts = ScrubCounts::default();
        let mut stages = StageTimes::default();
        let mut records = Vec::with_capacity(batch.messages.len());
        for message in &batch.messages {
            match self
                .transform(message, today, (&mut counts, &mut stages), io)
                .await?
            {
                Outcome::Anon(record) => records.push(record),
                Outcome::DeadLetter(reason, detail) => {
                    io.dead_letters
                        .send(message, reason, &detail, io.shutdown)
                        .await?
                }
            }
        }
        self.record_counts(counts);
        self.record_stages(&stages);
        let ua = (self.classifier.hits, self.classifier.misses);
        count_lookups(&self.metrics.ua_cache, ua, &mut self.ua_counted);
        let scrub = (self.scrubber.hits, self.scrubber.misses);
        count_lookups(&self.metrics.scrub_cache, scrub, &mut self.scrub_counted);

        let mut mark = Instant::now();
        self.writer.deliver(records, io).await?;
        self.observe("deliver", lap(&mut mark));
        Ok(batch.next_offsets())
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
