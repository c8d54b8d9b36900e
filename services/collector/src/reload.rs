//! The site registry, reloaded on SIGHUP and when its file changes; an invalid new file
//! keeps the old registry.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use exatom_edge::sites::Registry;

use crate::http::AppState;

/// Reloads the site registry on SIGHUP and when the file's modification time changes.
pub fn spawn_registry_reloader(state: Arc<AppState>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let path = state.config.sites_file.clone();
        let mtime = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        let mut seen: Option<SystemTime> = mtime(&path);
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .expect("SIGHUP handler installs");
        loop {
            let by_signal = tokio::select! {
                _ = hup.recv() => true,
                _ = tokio::time::sleep(Duration::from_secs(2)) => false,
            };
            let now = mtime(&path);
            if !by_signal && now == seen {
                continue;
            }
            seen = now;
            match Registry::load(&path) {
                Ok(fresh) => {
                    tracing::info!(sites = fresh.sites.len(), "site registry reloaded");
                    if let Ok(mut current) = state.registry.write() {
                        *current = Arc::new(fresh);
                    }
                    state
                        .metrics
                        .registry_reloads
                        .with_label_values(&["ok"])
                        .inc();
                }
                Err(e) => {
                    tracing::error!(error = %e, "site registry not reloaded; keeping the previous one");
                    state
                        .metrics
                        .registry_reloads
                        .with_label_values(&["error"])
                        .inc();
                }
            }
        }
    })
}
