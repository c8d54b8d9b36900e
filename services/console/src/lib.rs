//! The console: the pages a site owner opens to see their forms' figures, and the same
//! tables as JSON and CSV for machine clients. It reads ClickHouse only (the rollups and
//! views the dashboards are for, and the recent `events` of the live page), every value a
//! bound parameter; who may read which site comes from the site registry. Pure parts:
//! `access` (passwords, tokens, the log-in lock), `session` (cookies, CSRF), `request`
//! (parameters), `encoder` (tables, CSV), `pages` (HTML), `behaviour::render` (heatmap and
//! scroll pictures). I/O: `service` and `behaviour::figures` (ClickHouse) and
//! `http`/`dashboards`/`behaviour` (the routes).

pub mod access;
pub mod assets;
pub mod behaviour;
pub mod config;
pub mod dashboards;
pub mod encoder;
pub mod grants;
pub mod http;
pub mod metrics;
pub mod pages;
pub mod replays;
pub mod request;
pub mod service;
pub mod session;

use std::sync::Arc;

use anyhow::Context;
use exatom_edge::sites::Registry;
use exatom_plumbing::site_registry::SiteRegistry;
use exatom_plumbing::telemetry::{Readiness, Shutdown};
use exatom_plumbing::warehouse::{Connection, Warehouse};

use crate::config::ConsoleConfig;
use crate::session::SessionKey;

/// The key that signs cookies (and derives the site users' passwords): from the key file,
/// or made now when none is configured.
pub fn session_key(config: &ConsoleConfig) -> anyhow::Result<SessionKey> {
    if config.console_session_key_file.as_os_str().is_empty() {
        tracing::warn!("no EXATOM_CONSOLE_SESSION_KEY_FILE: sessions are signed with a key made now, good for this process only");
        return Ok(SessionKey::random());
    }
    let path = &config.console_session_key_file;
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "reading the session key {} (EXATOM_CONSOLE_SESSION_KEY_FILE)",
            path.display()
        )
    })?;
    SessionKey::from_hex(&text).map_err(|e| {
        anyhow::anyhow!("session key {} (EXATOM_CONSOLE_SESSION_KEY_FILE): {e}; make one with `od -An -tx1 -N32 /dev/urandom | tr -d ' \\n'`", path.display())
    })
}

/// `exatom-console grant-sites FILE`: see [`grants`].
pub async fn grant_sites(
    config: ConsoleConfig,
    users_file: &std::path::Path,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        !config.console_session_key_file.as_os_str().is_empty(),
        "grant-sites needs EXATOM_CONSOLE_SESSION_KEY_FILE, the key the console will read with"
    );
    let key = session_key(&config)?;
    let sites = Registry::load(&config.sites_file).map_err(anyhow::Error::msg)?;
    let warehouse = Warehouse::connect(&Connection::from(&config.endpoints))
        .await
        .with_context(|| {
            format!(
                "connecting to ClickHouse at {}",
                config.endpoints.clickhouse_url
            )
        })?;
    grants::grant_sites(&warehouse, &sites, &key, users_file).await?;
    println!(
        "{} site(s) granted; users in {}",
        sites.sites.len(),
        users_file.display()
    );
    Ok(())
}

/// Runs the console until SIGTERM/SIGINT.
pub async fn run(config: ConsoleConfig) -> anyhow::Result<()> {
    let registry = exatom_plumbing::telemetry::registry()?;
    let metrics = metrics::ConsoleMetrics::register(&registry)?;
    let sites = Arc::new(SiteRegistry::load(&config.sites_file).map_err(anyhow::Error::msg)?);
    let loaded = sites.current();
    tracing::info!(
        sites = loaded.sites.len(),
        users = loaded.users.len(),
        "site registry loaded"
    );
    let reloader = sites.watch(|_| ());
    let key = session_key(&config)?;
    anyhow::ensure!(
        !config.console_site_users || !config.console_session_key_file.as_os_str().is_empty(),
        "EXATOM_CONSOLE_SITE_USERS needs EXATOM_CONSOLE_SESSION_KEY_FILE: the site users' passwords are derived from that key"
    );
    if !config.console_site_users {
        tracing::warn!("EXATOM_CONSOLE_SITE_USERS is off: each site's rows are kept to it by the console alone");
    }
    // Waits while ClickHouse is away (a console started before it comes up when it does);
    // a refused account or a schema behind this build stops the start with the fix.
    let shutdown = Shutdown::on_signals();
    let connection = Connection::from(&config.endpoints);
    let warehouse = exatom_plumbing::retry::until_ok(
        "clickhouse connect",
        &shutdown,
        |_| {},
        || Warehouse::connect_checked(&connection),
    )
    .await
    .map_err(|fault| {
        anyhow::anyhow!(
            "connecting to ClickHouse at {}: {fault}",
            config.endpoints.clickhouse_url
        )
    })?;
    let site_users = config.console_site_users.then(|| key.clone());
    let figures = service::Figures::new(warehouse, metrics.query_seconds.clone(), site_users);
    let readiness = Readiness::default();
    readiness.set_ready();
    let state = Arc::new(http::Console::new(
        config.clone(),
        key,
        sites,
        figures,
        metrics,
    ));
    let app = http::router(state, registry, readiness);
    let listener = tokio::net::TcpListener::bind(config.console_listen)
        .await
        .with_context(|| format!("binding {}", config.console_listen))?;
    tracing::info!(listen = %config.console_listen, "console listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.wait())
        .await
        .context("serving the console")?;
    reloader.abort();
    tracing::info!("console stopped");
    Ok(())
}
