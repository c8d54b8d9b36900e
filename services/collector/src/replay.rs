//! Session replay at the collector: `GET /replay.js` (the recorder, for the visitors a site
//! samples; nothing for everyone else) and `POST /v1/replay`, produced to `exatom.replay` by
//! a producer of its own, so that a flood of replay never queues ahead of events. The
//! checks are `exatom_edge::replay`'s.

use std::io::Write;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use exatom_core::avro::{replay_batch_codec, Codec};
use exatom_core::model::ReplayBatch;
use exatom_edge::body;
use exatom_edge::client::client_address;
use exatom_edge::limits::Limits;
use exatom_edge::replay::{self, ReplayError, SiteQuota};
use exatom_edge::sites::Refusal;
use exatom_plumbing::kafka::{self, REPLAY_TOPIC};
use flate2::write::GzEncoder;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Semaphore;

use crate::assets::Asset;
use crate::config::CollectorConfig;
use crate::http::{answer, error, origin_of, read_body, with_retry_after, AppState};

/// The recorder as served: built from `tags/src` by `tags/build.sh` (rrweb bundled).
pub const REPLAY_JS: &str = include_str!("../../../tags/dist/replay.js");

const JS: &str = "application/javascript; charset=utf-8";

/// Everything replay needs beside the collector's shared state.
pub struct Replay {
    producer: FutureProducer,
    codec: Codec<ReplayBatch>,
    /// The recorder, for a visitor in the sample: private, since the next visitor of the
    /// same URL may not be. All three answers are revalidated on every page (`no-cache`,
    /// a 304 when unchanged), so a site that turns replay off stops it at the next page.
    recorder: Asset,
    /// Nothing, for a site without replay.
    off: Asset,
    /// Nothing, for a visitor outside the sample.
    not_picked: Asset,
    quota: Mutex<SiteQuota>,
    /// Requests between their admission and their answer (`max_replay_requests`).
    in_progress: Arc<Semaphore>,
    /// Batches in their CPU part at once: half the cores, so the events keep the rest.
    cpu: Semaphore,
}

impl std::fmt::Debug for Replay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replay").finish_non_exhaustive()
    }
}

impl Replay {
    pub fn new(
        brokers: &str,
        max_queue_batches: usize,
        max_requests: usize,
    ) -> Result<Self, KafkaError> {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let queue = u32::try_from(max_queue_batches.saturating_mul(2)).unwrap_or(u32::MAX);
        Ok(Replay {
            producer: kafka::producer(brokers, queue)?,
            codec: replay_batch_codec(),
            recorder: Asset::new(JS, "private, no-cache", REPLAY_JS.into()),
            off: Asset::new(JS, "no-cache", Vec::new()),
            not_picked: Asset::new(JS, "private, no-cache", Vec::new()),
            quota: Mutex::new(SiteQuota::default()),
            in_progress: Arc::new(Semaphore::new(max_requests)),
            cpu: Semaphore::new((cores / 2).max(1)),
        })
    }

    /// Waits for what is queued to reach the broker (SIGTERM drain).
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer.flush(timeout)
    }
}

#[derive(Debug, Deserialize)]
pub struct RecorderQuery {
    #[serde(default)]
    site: String,
}

/// `GET /replay.js?site=`: the recorder when the site records and the visitor is in its
/// sample, else an empty script (the tag loads this on every page).
pub async fn recorder(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Query(query): Query<RecorderQuery>,
    headers: HeaderMap,
) -> Response {
    let replay = &state.replay;
    let registry = state.registry.current();
    let rate = registry
        .sites
        .get(&query.site)
        .map_or(0.0, |s| s.replay_sample);
    if rate <= 0.0 {
        return replay.off.respond(&headers);
    }
    let client = client_of(&state, peer.ip(), &headers);
    let user_agent = user_agent(&headers);
    let day = exatom_core::time::now_ms().div_euclid(86_400_000);
    if replay::in_sample(&query.site, day, &client.to_string(), user_agent, rate) {
        replay.recorder.respond(&headers)
    } else {
        replay.not_picked.respond(&headers)
    }
}

/// `POST /v1/replay`: one batch of a page's replay.
pub async fn post_replay(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let origin = origin_of(&headers);
    let response = handle(&state, peer.ip(), &headers, origin.as_deref(), body).await;
    answer(&state, "/v1/replay", origin.as_deref(), response)
}

async fn handle(
    state: &Arc<AppState>,
    peer: IpAddr,
    headers: &HeaderMap,
    origin: Option<&str>,
    body: Body,
) -> Response {
    let cfg = &state.config;
    let now = exatom_core::time::now_ms();
    if let Err(refused) = crate::http::admit_client(state, peer, headers, now) {
        return *refused;
    }
    // Each request in progress may hold a body of the largest size: their number is bounded,
    // and over it the answer is a 503 at once rather than a queue of bodies in memory.
    let Ok(_in_progress) = state.replay.in_progress.clone().try_acquire_owned() else {
        return Refused::unavailable(cfg, "too many replay batches in progress").into_response();
    };
    let raw = match read_body(body, cfg, cfg.limits.max_replay_body_bytes).await {
        Ok(raw) => raw,
        Err(response) => return response,
    };
    state.metrics.bytes_in.inc_by(raw.len() as u64);
    // A beacon cannot set Content-Encoding: gzip is told by its magic bytes as well.
    let gzip = headers
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes() == b"gzip")
        || raw.starts_with(&[0x1f, 0x8b]);
    // Decompressing, checking and compressing a batch again is up to tens of milliseconds of
    // CPU: it runs off the async workers that serve the events, a few at a time.
    let Ok(cpu) = state.replay.cpu.acquire().await else {
        return Refused::unavailable(cfg, "the collector is stopping").into_response();
    };
    let prepared = {
        let (state, origin) = (Arc::clone(state), origin.map(str::to_owned));
        tokio::task::spawn_blocking(move || prepare(&state, &raw, gzip, origin.as_deref(), now))
            .await
    };
    drop(cpu);
    let record = match prepared {
        Ok(Ok(record)) => record,
        Ok(Err(refused)) => return refused.into_response(),
        Err(_) => return Refused::unavailable(cfg, "the collector is stopping").into_response(),
    };
    match produce(state, &record).await {
        Ok(()) => {
            let m = &state.metrics;
            m.replay_batches_accepted.inc();
            m.replay_bytes_accepted.inc_by(record.json_bytes);
            m.replay_snapshots_replaced
                .inc_by(record.snapshots_replaced as u64);
            (
                StatusCode::ACCEPTED,
                axum::Json(json!({"accepted": record.events, "snapshots_replaced": record.snapshots_replaced})),
            )
                .into_response()
        }
        Err(Produce::TooLarge) => error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "replay batch too large for the broker after compression: send smaller batches",
        ),
        Err(Produce::Unavailable(reason)) => {
            tracing::warn!(reason, "answering 503 to a replay batch");
            Refused::unavailable(cfg, &reason).into_response()
        }
    }
}

/// A batch ready for the broker, and what its answer and metrics say of it.
struct Prepared {
    page_view_id: String,
    payload: Vec<u8>,
    events: usize,
    snapshots_replaced: usize,
    json_bytes: u64,
}

/// Why a batch is not taken: its answer's status and message, and for a 429 when to come back.
struct Refused {
    status: StatusCode,
    message: String,
    retry_after_s: Option<u64>,
}

impl Refused {
    fn new(status: StatusCode, message: impl ToString) -> Self {
        Refused {
            status,
            message: message.to_string(),
            retry_after_s: None,
        }
    }

    /// A 503: the batch is fine, the collector cannot take it now.
    fn unavailable(cfg: &CollectorConfig, reason: &str) -> Self {
        Refused {
            retry_after_s: Some(cfg.retry_after_s),
            ..Refused::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot take replay now ({reason}); retry later"),
            )
        }
    }

    fn into_response(self) -> Response {
        let response = error(self.status, self.message);
        match self.retry_after_s {
            Some(seconds) => with_retry_after(response, seconds),
            None => response,
        }
    }
}

/// The CPU part of a batch: decoded, checked, admitted for its site and within its minute,
/// compressed and encoded as `exatom.replay`'s record.
fn prepare(
    state: &AppState,
    raw: &[u8],
    gzip: bool,
    origin: Option<&str>,
    now: i64,
) -> Result<Prepared, Refused> {
    let cfg = &state.config;
    // A page's DOM as rrweb's JSON compresses 20 to well over 100 times: a replay body is
    // held to its decompressed size alone (and counts against the site's minute as such).
    let limits = Limits {
        max_body_bytes: cfg.limits.max_replay_body_bytes,
        max_compression_ratio: usize::MAX,
        ..cfg.limits.clone()
    };
    let decoded = body::decode(raw, gzip, &limits)
        .map_err(|e| Refused::new(crate::http::batch_status(&e), e))?;
    let batch = replay::check(&decoded, &limits).map_err(|e| {
        let status = match e {
            ReplayError::PageSpent(_) | ReplayError::TooManyEvents(_) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ReplayError::Malformed(_) => StatusCode::BAD_REQUEST,
        };
        Refused::new(status, e)
    })?;
    let registry = state.registry.current();
    let keep_days = match registry.admit(&batch.site, origin) {
        Ok(site) if site.replay_sample > 0.0 => site.replay_days(),
        Ok(_) => {
            return Err(Refused::new(
                StatusCode::FORBIDDEN,
                format!("site `{}` does not record replays", batch.site),
            ))
        }
        Err(refusal @ (Refusal::UnknownSite(_) | Refusal::OriginNotAllowed(_))) => {
            return Err(Refused::new(StatusCode::FORBIDDEN, refusal))
        }
    };
    let json_bytes = batch.events.len() as u64;
    let taken = state.replay.quota.lock().map_or(Ok(()), |mut q| {
        q.take(
            &batch.site,
            json_bytes,
            cfg.replay_site_bytes_per_minute,
            now,
        )
    });
    if let Err(wait) = taken {
        return Err(Refused {
            retry_after_s: Some(wait),
            ..Refused::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "site `{}` is over its replay bytes for this minute",
                    batch.site
                ),
            )
        });
    }
    let (events, snapshots_replaced) = (batch.event_count, batch.snapshots_replaced);
    let unavailable = |e: String| Refused::unavailable(cfg, &e);
    let record = to_record(batch, keep_days, now).map_err(|e| unavailable(e.to_string()))?;
    let payload = state
        .replay
        .codec
        .encode(&record)
        .map_err(|e| unavailable(e.to_string()))?;
    Ok(Prepared {
        page_view_id: record.page_view_id,
        payload,
        events,
        snapshots_replaced,
        json_bytes,
    })
}

enum Produce {
    TooLarge,
    Unavailable(String),
}

/// Produces the batch keyed by its page view (a page's batches stay on one partition, in
/// order) and waits for the broker's acknowledgement.
async fn produce(state: &AppState, record: &Prepared) -> Result<(), Produce> {
    let replay = &state.replay;
    let queued = usize::try_from(replay.producer.in_flight_count()).unwrap_or(0);
    if queued >= state.config.max_queue_replay_batches {
        return Err(Produce::Unavailable(
            "the replay producer queue is full".into(),
        ));
    }
    let delivery = replay
        .producer
        .send_result(
            FutureRecord::to(REPLAY_TOPIC)
                .key(&record.page_view_id)
                .payload(&record.payload),
        )
        .map_err(|(e, _)| refused(e))?;
    let timeout = Duration::from_millis(state.config.delivery_timeout_ms);
    match tokio::time::timeout(timeout, delivery).await {
        Err(_) => Err(Produce::Unavailable(
            "the broker did not acknowledge the batch in time".into(),
        )),
        Ok(Err(_)) => Err(Produce::Unavailable("the producer stopped".into())),
        Ok(Ok(Err((e, _)))) => Err(refused(e)),
        Ok(Ok(Ok(_))) => Ok(()),
    }
}

/// The record of `exatom.replay` a checked batch becomes: its events gzipped as they go
/// (the broker, the anonymizer and the table all keep them so).
pub fn to_record(
    batch: replay::CheckedBatch,
    keep_days: u16,
    now: i64,
) -> std::io::Result<ReplayBatch> {
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::new(3));
    gz.write_all(batch.events.as_bytes())?;
    Ok(ReplayBatch {
        site: batch.site,
        page_view_id: batch.page_view_id,
        seq: i32::try_from(batch.seq).unwrap_or(i32::MAX),
        received_ms: now,
        skew_ms: now - batch.sent_at_ms,
        first_ms: batch.first_ms,
        last_ms: batch.last_ms,
        keep_days: i32::from(keep_days),
        event_count: i32::try_from(batch.event_count).unwrap_or(i32::MAX),
        events_gzip: gz.finish()?,
    })
}

fn refused(e: KafkaError) -> Produce {
    match e.rdkafka_error_code() {
        Some(RDKafkaErrorCode::MessageSizeTooLarge) => Produce::TooLarge,
        Some(RDKafkaErrorCode::QueueFull) => {
            Produce::Unavailable("the replay producer queue is full".into())
        }
        _ => Produce::Unavailable(e.to_string()),
    }
}

fn client_of(state: &AppState, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
    let forwarded = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
    client_address(peer, forwarded, &state.trusted)
}

fn user_agent(headers: &HeaderMap) -> &str {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}
