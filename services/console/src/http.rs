//! The console's routes: log-in and log-out, the pages and the JSON/CSV API of each site,
//! the embedded assets, and the admin endpoints. Every site route first finds who asks
//! (API token or session cookie) and answers 404 for a site they do not hold, exactly as
//! for a site that does not exist, so a guess learns nothing.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use exatom_edge::sites::{Registry, User};
use exatom_plumbing::site_registry::SiteRegistry;
use exatom_plumbing::telemetry::{admin_routes, Readiness};
use serde::Deserialize;
use serde_json::json;

use crate::access::{self, LoginGuard};
use crate::behaviour::FrameSource;
use crate::config::ConsoleConfig;
use crate::metrics::ConsoleMetrics;
use crate::pages;
use crate::request::BadRequest;
use crate::service::{Figures, Unavailable};
use crate::session::{self, SessionKey};

pub struct Console {
    pub config: ConsoleConfig,
    pub key: SessionKey,
    pub guard: Mutex<LoginGuard>,
    pub figures: Figures,
    pub metrics: ConsoleMetrics,
    pub sites: Arc<SiteRegistry>,
    /// Password checks at once: each takes 19 MiB and tens of milliseconds of a core, and
    /// anyone can post the log-in form.
    pub hashing: tokio::sync::Semaphore,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Console {
    pub fn new(
        config: ConsoleConfig,
        key: SessionKey,
        sites: Arc<SiteRegistry>,
        figures: Figures,
        metrics: ConsoleMetrics,
    ) -> Self {
        let guard = LoginGuard::new(
            config.console_login_failures,
            std::time::Duration::from_secs(config.console_lockout_s),
            100_000,
        );
        Console {
            config,
            key,
            guard: Mutex::new(guard),
            figures,
            metrics,
            sites,
            hashing: tokio::sync::Semaphore::new(4),
        }
    }

    /// The registry in force: a user added or a site taken away counts within 2 s of the
    /// file changing, or at once on SIGHUP.
    pub fn registry(&self) -> Arc<Registry> {
        self.sites.current()
    }
}

/// Who a request comes from.
#[derive(Clone)]
pub struct Viewer {
    pub name: String,
    pub user: User,
    /// The session cookie, when logged in by one (API clients have none).
    pub cookie: Option<String>,
}

/// The cookie is a credential: never in a log.
impl std::fmt::Debug for Viewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Viewer")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Viewer {
    /// The sites the viewer may open, sorted.
    pub fn sites(&self, registry: &Registry) -> Vec<String> {
        let mut sites: Vec<String> = registry
            .sites
            .keys()
            .filter(|s| self.user.holds(s))
            .cloned()
            .collect();
        sites.sort();
        sites
    }
}

pub fn router(state: Arc<Console>, registry: prometheus::Registry, readiness: Readiness) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/sites") }))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/sites", get(crate::dashboards::sites))
        .route("/sites/{site}/{page}", get(crate::dashboards::page))
        .route(
            "/sites/{site}/forms/{form}",
            get(crate::dashboards::form_page),
        )
        .route(
            "/sites/{site}/replays/{session}",
            get(crate::replays::player),
        )
        .route(
            "/api/sites/{site}/replays/{session}",
            get(crate::replays::events),
        )
        .route("/api/sites/{site}/{table}", get(crate::dashboards::api))
        .route(
            "/api/sites/{site}/forms/{form}/{table}",
            get(crate::dashboards::form_api),
        )
        .route("/assets/{file}", get(crate::assets::serve))
        .layer(axum::middleware::map_response(secure_headers))
        .with_state(state)
        .merge(admin_routes(registry, readiness))
}

/// The policy of every answer: scripts only from the console, nothing framed but the
/// console's own, the console framed by nobody.
const POLICY: &str = "default-src 'self'; script-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// [`POLICY`], with the one origin an answer frames (the heatmap's page) allowed as a frame
/// source for that answer alone.
pub fn content_security_policy(frame: Option<&FrameSource>, player: bool) -> String {
    let policy = match frame {
        Some(frame) => POLICY.replacen(
            "; frame-ancestors",
            &format!("; frame-src {}; frame-ancestors", frame.origin()),
            1,
        ),
        None => POLICY.to_owned(),
    };
    if player {
        // The recorded pages' own styles (inline, as rrweb rebuilds them), for the player
        // page alone; its frame is rrweb's, without scripts.
        policy.replacen(
            "; object-src",
            "; style-src 'self' 'unsafe-inline'; object-src",
            1,
        )
    } else {
        policy
    }
}

/// Pages and figures are private: not cached, not framed, scripts only from the console.
async fn secure_headers(mut response: Response) -> Response {
    let policy = content_security_policy(
        response.extensions().get::<FrameSource>(),
        response
            .extensions()
            .get::<crate::replays::PlayerPolicy>()
            .is_some(),
    );
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_str(&policy).unwrap_or(HeaderValue::from_static(POLICY)),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// How a refusal is told: a page for browsers, JSON for the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    Page,
    Api,
}

pub fn refuse(audience: Audience, status: StatusCode, message: &str) -> Response {
    match audience {
        Audience::Api => (status, axum::Json(json!({ "error": message }))).into_response(),
        Audience::Page if status == StatusCode::NOT_FOUND => {
            (status, Html(pages::not_found(message))).into_response()
        }
        Audience::Page => (status, Html(pages::bad_request(message))).into_response(),
    }
}

impl From<(Audience, BadRequest)> for Failure {
    fn from((audience, e): (Audience, BadRequest)) -> Self {
        Failure::new(refuse(audience, StatusCode::BAD_REQUEST, &e.0))
    }
}

impl From<(Audience, Unavailable)> for Failure {
    fn from((audience, e): (Audience, Unavailable)) -> Self {
        tracing::warn!(error = %e, "figures unavailable");
        Failure::new(refuse(
            audience,
            StatusCode::SERVICE_UNAVAILABLE,
            "the figures are unavailable right now (ClickHouse did not answer); try again shortly",
        ))
    }
}

/// A response that ends a request early.
#[derive(Debug)]
pub struct Failure(pub Box<Response>);

impl Failure {
    pub fn new(response: Response) -> Self {
        Failure(Box::new(response))
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        *self.0
    }
}

/// The viewer, from a `Bearer` API token or the session cookie.
pub fn viewer(state: &Console, registry: &Registry, headers: &HeaderMap) -> Option<Viewer> {
    if let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return access::check_token(registry, token.trim()).map(|(name, user)| Viewer {
            name: name.to_owned(),
            user: user.clone(),
            cookie: None,
        });
    }
    let cookie = session::cookie_value(
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    )?;
    let name = state.key.verify(cookie, now_s(), |user| {
        registry.users.get(user).map(|u| u.password_hash.clone())
    })?;
    Some(Viewer {
        name: name.to_owned(),
        user: registry.users.get(name)?.clone(),
        cookie: Some(cookie.to_owned()),
    })
}

/// The viewer of a site route, or the response that refuses them: to log in when nobody
/// is logged in, 404 for a site they do not hold (the same as for one that does not exist).
pub fn authorize(
    state: &Console,
    headers: &HeaderMap,
    site: Option<&str>,
    audience: Audience,
) -> Result<(Viewer, Arc<Registry>), Failure> {
    let registry = state.registry();
    let Some(viewer) = viewer(state, &registry, headers) else {
        return Err(Failure::new(match audience {
            Audience::Page => Redirect::to("/login").into_response(),
            Audience::Api => refuse(
                audience,
                StatusCode::UNAUTHORIZED,
                "log in, or send an API token as `Authorization: Bearer <token>`",
            ),
        }));
    };
    if let Some(site) = site {
        if !(registry.sites.contains_key(site) && viewer.user.holds(site)) {
            return Err(Failure::new(refuse(
                audience,
                StatusCode::NOT_FOUND,
                &format!("no site `{site}` here"),
            )));
        }
    }
    Ok((viewer, registry))
}

pub fn now_s() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn login_page() -> Html<String> {
    Html(pages::login(None))
}

#[derive(Deserialize)]
struct Credentials {
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
}

/// A log-in posted from another site is refused: the browser sends `Origin` with every
/// POST, and it must be the console's own.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    origin
        .split_once("://")
        .is_some_and(|(_, authority)| authority == host)
}

async fn login(
    State(state): State<Arc<Console>>,
    headers: HeaderMap,
    Form(credentials): Form<Credentials>,
) -> Response {
    let count = |outcome: &str| state.metrics.logins.with_label_values(&[outcome]).inc();
    if !same_origin(&headers) {
        return (
            StatusCode::FORBIDDEN,
            Html(pages::login(Some("log in from the console's own page"))),
        )
            .into_response();
    }
    let name = credentials.user.trim().to_owned();
    if name.is_empty() || name.len() > 32 || credentials.password.len() > 1024 {
        return (
            StatusCode::BAD_REQUEST,
            Html(pages::login(Some("enter a user name and a password"))),
        )
            .into_response();
    }
    let locked = state
        .guard
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .check(&name, Instant::now());
    if let Err(wait) = locked {
        count("locked");
        let minutes = wait.as_secs().div_ceil(60);
        let message = format!(
            "too many wrong passwords: log-in for this user is locked for {minutes} more minute(s)"
        );
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            Html(pages::login(Some(&message))),
        )
            .into_response();
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(wait.as_secs().max(1)),
        );
        return response;
    }
    let registry = state.registry();
    // Argon2 takes tens of milliseconds of CPU: off the async workers, a few at a time.
    let Ok(_permit) = state.hashing.acquire().await else {
        return refuse(
            Audience::Page,
            StatusCode::SERVICE_UNAVAILABLE,
            "the console is stopping",
        );
    };
    let checked = {
        let registry = Arc::clone(&registry);
        let name = name.clone();
        tokio::task::spawn_blocking(move || {
            access::check_password(&registry, &name, &credentials.password)
                .map(|u| u.password_hash.clone())
        })
        .await
        .ok()
        .flatten()
    };
    state
        .guard
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .record(&name, checked.is_some(), Instant::now());
    let Some(password_hash) = checked else {
        count("wrong");
        tracing::info!(user = %name, "log-in refused: wrong user or password");
        return (
            StatusCode::UNAUTHORIZED,
            Html(pages::login(Some("wrong user or password"))),
        )
            .into_response();
    };
    count("ok");
    tracing::info!(user = %name, "logged in");
    let max_age = i64::try_from(state.config.console_session_hours * 3600).unwrap_or(i64::MAX / 2);
    let cookie = state.key.issue(&name, &password_hash, now_s() + max_age);
    let mut response = Redirect::to("/sites").into_response();
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie(
        &cookie,
        max_age,
        state.config.console_cookie_secure,
    )) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

#[derive(Deserialize)]
struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(
    State(state): State<Arc<Console>>,
    headers: HeaderMap,
    Form(form): Form<LogoutForm>,
) -> Response {
    let registry = state.registry();
    let Some(viewer) = viewer(&state, &registry, &headers) else {
        return Redirect::to("/login").into_response();
    };
    let cookie = viewer.cookie.unwrap_or_default();
    if !same_origin(&headers) || !state.key.csrf_matches(&cookie, &form.csrf) {
        return refuse(
            Audience::Page,
            StatusCode::FORBIDDEN,
            "this form is stale: reload the page and log out again",
        );
    }
    let mut response = Redirect::to("/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie(
        "",
        0,
        state.config.console_cookie_secure,
    )) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

/// Query strings a handler could not parse are a 400 naming the problem (axum's own
/// rejection would be a bare text).
pub fn params(
    query: Result<Query<crate::request::Params>, axum::extract::rejection::QueryRejection>,
    audience: Audience,
) -> Result<crate::request::Params, Failure> {
    query.map(|Query(p)| p).map_err(|e| {
        Failure::new(refuse(
            audience,
            StatusCode::BAD_REQUEST,
            &format!("bad query string: {}", e.body_text()),
        ))
    })
}

/// Path parameters (site, page, form) as text, or a 400.
pub fn path<T: serde::de::DeserializeOwned>(
    path: Result<Path<T>, axum::extract::rejection::PathRejection>,
    audience: Audience,
) -> Result<T, Failure> {
    path.map(|Path(p)| p).map_err(|e| {
        Failure::new(refuse(
            audience,
            StatusCode::BAD_REQUEST,
            &format!("bad path: {}", e.body_text()),
        ))
    })
}
