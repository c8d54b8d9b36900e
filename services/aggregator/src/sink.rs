//! The stream loop: `exatom.sessions` → analytics → ClickHouse, committing a batch's offsets
//! only after all its rows are written.

use std::time::{Duration, Instant};

use exatom_shared::avro::session_codec;
use exatom_shared::kafka::{self, SESSIONS_TOPIC};
use exatom_shared::retry;
use exatom_shared::telemetry::Shutdown;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::FutureProducer;

use crate::analytics::analyze;
use crate::encoder::Rows;
use crate::metrics::AggregatorMetrics;
use crate::service::Writer;

pub struct Pipeline {
    pub consumer: kafka::Consumer,
    pub writer: Writer,
    pub dlq: FutureProducer,
    pub metrics: AggregatorMetrics,
    pub batch_max: usize,
}

impl Pipeline {
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        self.consumer.subscribe(&[SESSIONS_TOPIC])?;
        let codec = session_codec();
        let mut lag_sampled = Instant::now();
        while !shutdown.is_triggered() {
            let batch = kafka::next_batch(
                &self.consumer,
                self.batch_max,
                Duration::from_millis(500),
                Duration::from_millis(1000),
            )
            .await?
            .messages;
            if lag_sampled.elapsed() > Duration::from_secs(10) {
                for (topic, partition, lag) in kafka::lag(&self.consumer) {
                    self.metrics
                        .consumer_lag
                        .with_label_values(&[&topic, &partition.to_string()])
                        .set(lag);
                }
                lag_sampled = Instant::now();
            }
            if batch.is_empty() {
                continue;
            }
            let mut rows = Rows::default();
            for message in &batch {
                match codec.decode(message.payload().unwrap_or_default()) {
                    Ok(session) => {
                        self.metrics.sessions_in.inc();
                        let analytics = analyze(&session);
                        rows.add(&session, analytics);
                    }
                    Err(e) => {
                        self.metrics.dlq.inc();
                        tracing::warn!(
                            partition = message.partition(),
                            offset = message.offset(),
                            "record sent to the DLQ"
                        );
                        let reason = format!("undecodable: {e}");
                        retry::until_ok(
                            "exatom.dlq",
                            &shutdown,
                            || {},
                            || kafka::send_dead_letter(&self.dlq, message, &reason),
                        )
                        .await?;
                    }
                }
            }
            let started = Instant::now();
            let retries = self.metrics.write_retries.clone();
            let refreshed = retry::until_ok(
                "clickhouse",
                &shutdown,
                || retries.inc(),
                || self.writer.write(&rows),
            )
            .await?;
            for (rollup, groups) in refreshed {
                self.metrics
                    .rollup_groups
                    .with_label_values(&[rollup])
                    .inc_by(groups as u64);
            }
            self.metrics
                .write_seconds
                .observe(started.elapsed().as_secs_f64());
            for (table, n) in [
                ("form_sessions", rows.forms.len()),
                ("field_interactions", rows.fields.len()),
                ("conversions", rows.conversions.len()),
                ("tooltip_events", rows.tooltips.len()),
            ] {
                self.metrics
                    .rows_written
                    .with_label_values(&[table])
                    .inc_by(n as u64);
            }
            kafka::commit(
                &self.consumer,
                &kafka::next_offsets(&batch),
                CommitMode::Sync,
            )?;
        }
        tracing::info!("aggregator drained");
        Ok(())
    }
}
