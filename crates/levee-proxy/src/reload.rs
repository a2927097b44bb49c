//! Hot reload (SPEC §12): on SIGHUP, and when the config file changes.
//!
//! **Watching**: the file is read and hashed once per `poll` interval (default 1 s) and a
//! reload runs when the hash differs from the last one seen. Polling needs no extra
//! dependency, works the same on every filesystem (bind mounts and Kubernetes ConfigMap
//! symlink swaps included, where inotify watches go stale), and a config file is small, so
//! reading it each second costs nothing that matters. A half-written file simply fails
//! validation and is retried when the next write changes it again.
//!
//! **Reloading**: `levee_config::load` validates the file. Invalid → the running config stays,
//! every problem is logged (`file:line:column: key: message`) and shown in `/health` until a
//! later reload succeeds. Valid and different → [`Proxy::apply`] swaps routes and upstreams
//! atomically, keeping the state of unchanged keys. Valid and equal → nothing changes.

use crate::error::ProxyError;
use crate::proxy::Proxy;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio::task::JoinHandle;

/// The default time between two looks at the file.
pub const DEFAULT_POLL: Duration = Duration::from_secs(1);

/// What happened to one reload request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadResult {
    /// The new config runs.
    Applied,
    /// The file holds the config already running.
    Unchanged,
    /// The file is invalid (or cannot run); the running config stays.
    Rejected(Vec<String>),
}

/// Loads `path` and applies it to `proxy` (see the module doc). Blocking file I/O runs off the
/// async threads.
pub async fn reload(proxy: &Proxy, path: &Path) -> ReloadResult {
    let owned = path.to_path_buf();
    let loaded = tokio::task::spawn_blocking(move || levee_config::load(&owned)).await;
    let config = match loaded {
        Ok(Ok(config)) => config,
        Ok(Err(e)) => {
            let errors: Vec<String> = e.problems().iter().map(ToString::to_string).collect();
            proxy.record_reload_failure(errors.clone());
            return ReloadResult::Rejected(errors);
        }
        Err(e) => {
            let errors = vec![format!("the config loader stopped: {e}")];
            proxy.record_reload_failure(errors.clone());
            return ReloadResult::Rejected(errors);
        }
    };
    if *proxy.config() == config {
        tracing::info!(path = %path.display(), "config file unchanged; nothing to reload");
        return ReloadResult::Unchanged;
    }
    match proxy.apply(config) {
        Ok(()) => ReloadResult::Applied,
        Err(e) => ReloadResult::Rejected(vec![e.to_string()]),
    }
}

/// Starts the watcher: SIGHUP and file changes, checked every `poll`.
pub fn spawn(proxy: Proxy, path: PathBuf, poll: Duration) -> Result<JoinHandle<()>, ProxyError> {
    let mut hangup = signal(SignalKind::hangup())
        .map_err(|e| ProxyError::Io(format!("cannot listen for SIGHUP: {e}")))?;
    Ok(tokio::spawn(async move {
        let mut seen = fingerprint(&path).await;
        let mut ticks = tokio::time::interval(poll);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                signalled = hangup.recv() => {
                    if signalled.is_none() {
                        return;
                    }
                    tracing::info!(path = %path.display(), "SIGHUP: reloading the config");
                    seen = fingerprint(&path).await;
                    reload(&proxy, &path).await;
                }
                _ = ticks.tick() => {
                    let now = fingerprint(&path).await;
                    if now != seen {
                        seen = now;
                        tracing::info!(path = %path.display(), "config file changed: reloading");
                        reload(&proxy, &path).await;
                    }
                }
            }
        }
    }))
}

/// A hash of the file's bytes; `None` when it cannot be read (a change too, once it can).
async fn fingerprint(path: &Path) -> Option<u64> {
    let bytes = tokio::fs::read(path).await.ok()?;
    let mut hasher = DefaultHasher::new();
    bytes.hash(&mut hasher);
    Some(hasher.finish())
}
