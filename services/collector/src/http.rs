//! The HTTP edge: `POST /v1/events`, CORS preflight, health and metrics; replay's routes
//! are `replay`'s.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, MatchedPath, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use exatom_plumbing::telemetry::{admin_routes, Readiness};
use ipnet::IpNet;
use serde_json::json;

use crate::config::CollectorConfig;
use crate::metrics::CollectorMetrics;
use crate::writer::{RawSink, SinkError};
use exatom_edge::batch::{self, BatchError, Received};
use exatom_edge::body;
use exatom_edge::client::{client_address, RateLimiter};
use exatom_edge::sites::Refusal;
use exatom_plumbing::site_registry::SiteRegistry;

/// Everything a request handler needs.
pub struct AppState {
    pub config: CollectorConfig,
    pub trusted: Vec<IpNet>,
    pub registry: Arc<SiteRegistry>,
    pub limiter: Mutex<RateLimiter>,
    pub sink: RawSink,
    pub replay: crate::replay::Replay,
    pub metrics: CollectorMetrics,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

/// The collector's routes, metrics and health included.
pub fn router(
    state: Arc<AppState>,
    registry: prometheus::Registry,
    readiness: Readiness,
) -> Router {
    Router::new()
        .route("/v1/events", post(post_events).options(preflight))
        .route(
            "/v1/replay",
            post(crate::replay::post_replay).options(preflight),
        )
        .route("/replay.js", axum::routing::get(crate::replay::recorder))
        .merge(crate::assets::routes(&state.config.demo_site))
        .with_state(state)
        .merge(admin_routes(registry, readiness))
}

pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": message.into() }))).into_response()
}

pub(crate) fn with_retry_after(mut response: Response, seconds: u64) -> Response {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

async fn post_events(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let origin = origin_of(&headers);
    let response = handle(&state, peer.ip(), &headers, origin.as_deref(), body).await;
    answer(&state, "/v1/events", origin.as_deref(), response)
}

/// The request's `Origin`, when it is readable.
pub(crate) fn origin_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Every answer of a browser route, as it leaves: counted by route and status, with CORS.
pub(crate) fn answer(
    state: &AppState,
    route: &str,
    origin: Option<&str>,
    response: Response,
) -> Response {
    state
        .metrics
        .requests
        .with_label_values(&[route, response.status().as_str()])
        .inc();
    with_cors(state, origin, response)
}

async fn handle(
    state: &AppState,
    peer: IpAddr,
    headers: &HeaderMap,
    origin: Option<&str>,
    body: Body,
) -> Response {
    let cfg = &state.config;
    let now = exatom_core::time::now_ms();
    let client = match admit_client(state, peer, headers, now) {
        Ok(client) => client,
        Err(refused) => return *refused,
    };
    let gzip = match headers.get(header::CONTENT_ENCODING).map(|v| v.as_bytes()) {
        None | Some(b"identity") => false,
        Some(b"gzip") => true,
        Some(_) => {
            return error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Encoding must be gzip or absent",
            )
        }
    };

    let raw = match read_body(body, cfg, cfg.limits.max_body_bytes).await {
        Ok(raw) => raw,
        Err(response) => return response,
    };
    state.metrics.bytes_in.inc_by(raw.len() as u64);
    let decoded = match body::decode(&raw, gzip, &cfg.limits) {
        Ok(decoded) => decoded,
        Err(e) => return batch_error(e),
    };
    let parsed = match batch::parse(&decoded, &cfg.limits) {
        Ok(parsed) => parsed,
        Err(e) => return batch_error(e),
    };

    let registry = state.registry.current();
    let site = match registry.admit(&parsed.site, origin) {
        Ok(site) => site,
        Err(refusal @ (Refusal::UnknownSite(_) | Refusal::OriginNotAllowed(_))) => {
            return error(StatusCode::FORBIDDEN, refusal.to_string())
        }
    };

    let ip = client.to_string();
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let received = Received {
        received_at_ms: now,
        ip: &ip,
        user_agent,
        conversion_tags: &site.conversion_tags,
    };
    let validated = batch::validate(parsed, &received, &cfg.limits);
    state
        .metrics
        .values_masked
        .inc_by(validated.values_masked as u64);
    for r in &validated.rejected {
        state
            .metrics
            .events_rejected
            .with_label_values(&[r.code])
            .inc();
    }
    if !validated.events.is_empty() {
        if let Err(e) = state.sink.send(&validated.events).await {
            if matches!(e, SinkError::QueueFull | SinkError::BrokerDown) {
                tracing::warn!(reason = %e, events = validated.events.len(), "answering 503");
            } else {
                tracing::error!(reason = %e, events = validated.events.len(), "answering 503");
            }
            return with_retry_after(
                error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("cannot take events now ({e}); retry later"),
                ),
                cfg.retry_after_s,
            );
        }
        state
            .metrics
            .events_accepted
            .inc_by(validated.events.len() as u64);
    }
    let rejected: Vec<_> = validated
        .rejected
        .iter()
        .map(|r| json!({"index": r.index, "reason": r.reason()}))
        .collect();
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({"accepted": validated.events.len(), "rejected": rejected})),
    )
        .into_response()
}

/// The client address behind trusted proxies, once it is within its token bucket (events and
/// replay share it: a client flooding one spends its own budget, nobody else's) and the
/// body's type is one a browser sends: else the 429 or 415 to answer.
pub(crate) fn admit_client(
    state: &AppState,
    peer: IpAddr,
    headers: &HeaderMap,
    now: i64,
) -> Result<IpAddr, Box<Response>> {
    let forwarded = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
    let client = client_address(peer, forwarded, &state.trusted);
    let limited = state
        .limiter
        .lock()
        .map(|mut l| l.take(client, now))
        .unwrap_or(Ok(()));
    if let Err(wait) = limited {
        state.metrics.rate_limited.inc();
        return Err(Box::new(with_retry_after(
            error(
                StatusCode::TOO_MANY_REQUESTS,
                "too many requests from this client address",
            ),
            wait,
        )));
    }
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or_default().to_ascii_lowercase();
        if !(ct.starts_with("application/json") || ct.starts_with("text/plain")) {
            return Err(Box::new(error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Type must be application/json or text/plain",
            )));
        }
    }
    Ok(client)
}

/// Reads at most `limit` bytes (as sent) within the request timeout.
pub(crate) async fn read_body(
    body: Body,
    cfg: &CollectorConfig,
    limit: usize,
) -> Result<Bytes, Response> {
    let read = axum::body::to_bytes(body, limit);
    match tokio::time::timeout(Duration::from_millis(cfg.request_timeout_ms), read).await {
        Err(_) => Err(error(
            StatusCode::REQUEST_TIMEOUT,
            "body not received within the request timeout",
        )),
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            Err(if too_large {
                error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("body is over the limit of {limit} bytes"),
                )
            } else {
                error(StatusCode::BAD_REQUEST, "body could not be read completely")
            })
        }
    }
}

pub(crate) fn batch_status(e: &BatchError) -> StatusCode {
    match e {
        BatchError::TooLarge(_) | BatchError::CompressionBomb(_) => StatusCode::PAYLOAD_TOO_LARGE,
        BatchError::Malformed(_) | BatchError::BadGzip(_) => StatusCode::BAD_REQUEST,
    }
}

fn batch_error(e: BatchError) -> Response {
    error(batch_status(&e), e.to_string())
}

async fn preflight(
    State(state): State<Arc<AppState>>,
    route: MatchedPath,
    headers: HeaderMap,
) -> Response {
    let origin = origin_of(&headers);
    let allowed = origin
        .as_deref()
        .is_some_and(|o| state.registry.current().any_site_allows(o));
    let response = if allowed {
        let mut r = StatusCode::NO_CONTENT.into_response();
        let h = r.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("POST"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("content-type, content-encoding"),
        );
        h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(86_400));
        r
    } else {
        error(StatusCode::FORBIDDEN, "origin is not allowed for any site")
    };
    answer(&state, route.as_str(), origin.as_deref(), response)
}

fn with_cors(state: &AppState, origin: Option<&str>, mut response: Response) -> Response {
    let Some(origin) = origin else {
        return response;
    };
    let allowed = state.registry.current().any_site_allows(origin);
    let h = response.headers_mut();
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    if allowed {
        if let Ok(v) = HeaderValue::from_str(origin) {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        }
    }
    response
}
