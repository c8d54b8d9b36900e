//! A recorded visit's replay: `load/replay_visit.json`, the batches Chromium sent for the
//! browser test's three-page visit (written by `a_recorded_visit_plays_its_pages_in_order…`
//! to `target/test-screenshots/replay-visit.json`; already scrubbed by the recorder). The
//! load programs send it again as new visits, or produce it as the collector would.

use std::path::Path;

use anyhow::{bail, Context};
use exatom_core::avro::replay_batch_codec;
use exatom_edge::limits::Limits;
use serde_json::Value;

/// The recorded visit, relative to this crate.
pub const VISIT: &str = "load/replay_visit.json";

/// A visit's replay: per page, its batches in `seq` order, as the browser sent them.
#[derive(Debug)]
pub struct Visit {
    pages: Vec<Vec<Value>>,
    /// Its first and last event's times.
    first_ms: i64,
    last_ms: i64,
}

impl Visit {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the recorded visit {}", path.display()))?;
        let pages: Vec<Vec<Value>> = serde_json::from_str(&text)?;
        let times = pages
            .iter()
            .flatten()
            .flat_map(|b| b["events"].as_array().into_iter().flatten())
            .filter_map(|e| e["timestamp"].as_i64());
        let (first_ms, last_ms) =
            times.fold((i64::MAX, i64::MIN), |(a, b), t| (a.min(t), b.max(t)));
        if first_ms > last_ms {
            bail!("{} holds no replay event", path.display());
        }
        Ok(Visit {
            pages,
            first_ms,
            last_ms,
        })
    }

    /// Batches in all.
    pub fn batches(&self) -> usize {
        self.pages.iter().map(Vec::len).sum()
    }

    /// How long the visit was recorded.
    pub fn recorded_ms(&self) -> i64 {
        self.last_ms - self.first_ms
    }

    /// The visit again, for a new visitor of `site` whose visit ends at `now_ms`: new page
    /// view ids, every event's time moved by the same amount; the bodies in the order the
    /// browser sent them.
    pub fn again(&self, site: &str, now_ms: i64) -> Vec<Vec<u8>> {
        let shift = now_ms - self.last_ms;
        let sent_at =
            crate::rfc3339(chrono::DateTime::from_timestamp_millis(now_ms).unwrap_or_default());
        let mut bodies = Vec::with_capacity(self.batches());
        for page in &self.pages {
            let page_view_id = uuid::Uuid::new_v4().to_string();
            for batch in page {
                let mut batch = batch.clone();
                batch["site"] = site.into();
                batch["page_view_id"] = page_view_id.clone().into();
                batch["sent_at"] = sent_at.clone().into();
                for event in batch["events"].as_array_mut().into_iter().flatten() {
                    if let Some(t) = event["timestamp"].as_i64() {
                        event["timestamp"] = (t + shift).into();
                    }
                }
                bodies.push(serde_json::to_vec(&batch).unwrap_or_default());
            }
        }
        bodies
    }

    /// The visit's batches as the collector produces them to `exatom.replay`: key (the page
    /// view) and Avro bytes.
    pub fn records(&self, site: &str) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
        let codec = replay_batch_codec();
        let now = exatom_core::time::now_ms();
        self.again(site, now)
            .iter()
            .map(|body| {
                let checked = exatom_edge::replay::check(body, &Limits::default())?;
                let record = exatom_collector::replay::to_record(checked, 30, now)?;
                Ok((record.page_view_id.clone(), codec.encode(&record)?))
            })
            .collect()
    }
}
