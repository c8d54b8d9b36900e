//! The site registry as a running service holds it: loaded at start, read again on SIGHUP
//! and when its file changes (checked every 2 s); an invalid new file keeps the last good
//! registry. The collector (which sites may send) and the console (who may read which
//! site) hold it the same way.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use exatom_edge::sites::Registry;

#[derive(Debug)]
pub struct SiteRegistry {
    path: PathBuf,
    current: RwLock<Arc<Registry>>,
}

impl SiteRegistry {
    pub fn load(path: &Path) -> Result<Self, String> {
        Ok(SiteRegistry {
            path: path.to_owned(),
            current: RwLock::new(Arc::new(Registry::load(path)?)),
        })
    }

    /// The registry in force.
    pub fn current(&self) -> Arc<Registry> {
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Reads the file again; on success it is in force. Returns the number of sites.
    pub fn reload(&self) -> Result<usize, String> {
        let fresh = Registry::load(&self.path)?;
        let sites = fresh.sites.len();
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(fresh);
        Ok(sites)
    }

    /// Reloads on SIGHUP and when the file's modification time changes; `outcome` hears
    /// whether each reload took.
    pub fn watch(
        self: &Arc<Self>,
        outcome: impl Fn(bool) + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let registry = Arc::clone(self);
        tokio::spawn(async move {
            let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
            let mut seen: Option<SystemTime> = mtime(&registry.path);
            let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                .expect("SIGHUP handler installs");
            loop {
                let by_signal = tokio::select! {
                    _ = hup.recv() => true,
                    _ = tokio::time::sleep(Duration::from_secs(2)) => false,
                };
                let now = mtime(&registry.path);
                if !by_signal && now == seen {
                    continue;
                }
                seen = now;
                match registry.reload() {
                    Ok(sites) => {
                        tracing::info!(sites, "site registry reloaded");
                        outcome(true);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "site registry not reloaded; keeping the previous one");
                        outcome(false);
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_file_keeps_the_registry_in_force() {
        let dir = std::env::temp_dir().join(format!("exatom-registry-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sites.toml");
        std::fs::write(&path, "[sites.AA]\n").unwrap();
        let registry = SiteRegistry::load(&path).unwrap();
        std::fs::write(&path, "[sites.AA]\n[sites.BB]\n").unwrap();
        assert_eq!(registry.reload(), Ok(2));
        std::fs::write(&path, "[sites.X]\n").unwrap();
        assert!(registry.reload().unwrap_err().contains("`X`"));
        assert_eq!(registry.current().sites.len(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
