//! [`Proxy`]: the handle to one running data plane — its current config generation, its
//! policy state, its metrics and its drain state. Cheap to clone; every clone is the same proxy.
//!
//! The running config is an `Arc<Runtime>` behind a `std::sync::RwLock`: a request takes a
//! clone of the `Arc` (a read lock held for one pointer copy) and runs to completion on that
//! generation, so a reload never changes the rules under a request in flight; a reload builds
//! the next generation outside the lock and swaps the pointer.
//!
//! A proxy built with [`Proxy::with_fleet`] takes part in the fleet (SPEC §9, see `fleet`);
//! one built with [`Proxy::new`] runs on its local breakers alone (tests, embedders).

use crate::drain::Drain;
use crate::error::ProxyError;
use crate::fleet::Fleet;
use crate::health_check;
use crate::runtime::Runtime;
use levee_admin::ReloadAttempt;
use levee_config::Config;
use levee_core::random::SplitMix64;
use levee_core::time::SystemClock;
use levee_core::{Clock, RandomSource};
use levee_telemetry::Metrics;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

/// The running data plane.
#[derive(Clone)]
pub struct Proxy {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy").finish_non_exhaustive()
    }
}

/// State every connection and request shares.
pub(crate) struct Shared {
    runtime: RwLock<Arc<Runtime>>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) random: Arc<dyn RandomSource>,
    pub(crate) drain: Arc<Drain>,
    /// The registry connection; `None`: local breakers alone.
    pub(crate) fleet: Option<Fleet>,
    status: Mutex<ReloadStatus>,
    /// Serialises reloads, so two cannot interleave their builds.
    reloading: Mutex<()>,
}

#[derive(Debug, Default)]
pub(crate) struct ReloadStatus {
    pub(crate) path: Option<PathBuf>,
    pub(crate) generation: u64,
    pub(crate) last_reload: Option<ReloadAttempt>,
}

impl Proxy {
    /// Builds the proxy for `config`, reporting to `metrics`, on its local breakers alone
    /// (no registry). Must be called inside a tokio runtime (active health checks are started
    /// here).
    pub fn new(config: Config, metrics: Arc<Metrics>) -> Result<Proxy, ProxyError> {
        Proxy::with_fleet(config, metrics, None)
    }

    /// Builds the proxy for `config` as a client of `fleet`'s registry (SPEC §9): it reports
    /// every attempt, applies fleet breaker states, probe leases and the degradation level.
    /// `None` is [`Proxy::new`]. Must be called inside a tokio runtime.
    pub fn with_fleet(
        config: Config,
        metrics: Arc<Metrics>,
        fleet: Option<Fleet>,
    ) -> Result<Proxy, ProxyError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(ProxyError::NoRuntime);
        }
        let random: Arc<dyn RandomSource> = Arc::new(SplitMix64::from_entropy());
        let built = Runtime::build(config, None, &random, SystemClock.now())?;
        for upstream in &built.new_upstreams {
            health_check::spawn(upstream);
        }
        publish_initial_state(&metrics, &built.runtime);
        let shared = Shared {
            runtime: RwLock::new(Arc::new(built.runtime)),
            metrics,
            random,
            drain: Arc::new(Drain::default()),
            fleet,
            status: Mutex::new(ReloadStatus {
                generation: 1,
                ..ReloadStatus::default()
            }),
            reloading: Mutex::new(()),
        };
        let shared = Arc::new(shared);
        if let Some(fleet) = &shared.fleet {
            fleet.attach(Arc::downgrade(&shared));
        }
        Ok(Proxy { shared })
    }

    /// The registry connection, when the proxy has one.
    pub fn fleet(&self) -> Option<&Fleet> {
        self.shared.fleet.as_ref()
    }

    /// Remembers the file the config came from (shown in `/health`).
    pub fn set_config_path(&self, path: PathBuf) {
        self.shared.status().path = Some(path);
    }

    /// The running config.
    pub fn config(&self) -> Arc<Config> {
        Arc::clone(&self.shared.runtime().config)
    }

    /// The metrics this proxy reports to.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.shared.metrics
    }

    /// Applies a new, already validated config: routes and upstreams swap atomically; breaker,
    /// bulkhead, budget, rate-limit, stale-cache and endpoint state carry over wherever key and
    /// config are unchanged. Listener, admin and limit changes need a restart (logged).
    /// On error the running config stays.
    pub fn apply(&self, config: Config) -> Result<(), ProxyError> {
        let _one_at_a_time = self
            .shared
            .reloading
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let previous = self.shared.runtime();
        if previous.config.listeners != config.listeners || previous.config.admin != config.admin {
            tracing::warn!(
                "listeners and admin changes take effect at the next restart; the running \
                 listeners stay as they are"
            );
        }
        if previous.config.registry != config.registry {
            tracing::warn!(
                "registry changes take effect at the next restart; the running registry \
                 connection stays as it is"
            );
        }
        let built = match Runtime::build(
            config,
            Some(&previous),
            &self.shared.random,
            SystemClock.now(),
        ) {
            Ok(built) => built,
            Err(e) => {
                self.record_reload_failure(vec![e.to_string()]);
                return Err(e);
            }
        };
        for upstream in &built.new_upstreams {
            health_check::spawn(upstream);
        }
        publish_initial_state(&self.shared.metrics, &built.runtime);
        let routes = built.runtime.routes.len();
        let upstreams = built.runtime.upstreams.len();
        *self
            .shared
            .runtime
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Arc::new(built.runtime);
        let generation = {
            let mut status = self.shared.status();
            status.generation += 1;
            status.last_reload = Some(ReloadAttempt {
                ok: true,
                at_unix_ms: unix_ms(),
                error: None,
            });
            status.generation
        };
        if let Some(fleet) = &self.shared.fleet {
            fleet.config_changed();
        }
        tracing::info!(generation, routes, upstreams, "config reloaded");
        Ok(())
    }

    /// Records that a reload failed validation: the running config stays, and `/health` shows
    /// `errors` until a later reload succeeds.
    pub fn record_reload_failure(&self, errors: Vec<String>) {
        for e in &errors {
            tracing::error!(error = %e, "config reload failed; keeping the running config");
        }
        self.shared.status().last_reload = Some(ReloadAttempt {
            ok: false,
            at_unix_ms: unix_ms(),
            error: Some(errors.join("\n")),
        });
    }

    /// Starts draining: `/readyz` answers 503 from now on.
    pub fn start_draining(&self) {
        self.shared.drain.start();
    }

    /// True once draining started.
    pub fn is_draining(&self) -> bool {
        self.shared.drain.is_draining()
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        self.shared.drain.in_flight()
    }

    /// Resolves when no request is in flight.
    pub async fn idle(&self) {
        self.shared.drain.idle().await;
    }
}

impl Shared {
    /// The current generation.
    pub(crate) fn runtime(&self) -> Arc<Runtime> {
        Arc::clone(&self.runtime.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Swaps in a runtime derived from the current one (`None`: keep it), one at a time with
    /// reloads so neither undoes the other: the fleet's distributed policies (see `fleet`).
    pub(crate) fn derive_runtime(&self, derive: impl FnOnce(&Runtime) -> Option<Runtime>) {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.runtime();
        if let Some(next) = derive(&current) {
            *self.runtime.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
        }
    }

    pub(crate) fn status(&self) -> MutexGuard<'_, ReloadStatus> {
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The degradation level requests are shed by: the fleet's while fresh, else 0.
    pub(crate) fn degradation_level(&self) -> u8 {
        self.fleet.as_ref().map_or(0, Fleet::degradation_level)
    }
}

/// Sets the breaker-state and bulkhead gauges of a new generation, so every series exists from
/// the start (a dashboard shows `closed`, not nothing).
fn publish_initial_state(metrics: &Metrics, runtime: &Runtime) {
    for (key, breaker) in &runtime.breakers {
        let state = match runtime.gates.get(key) {
            Some(gate) => gate.effective(breaker.state()),
            None => breaker.state(),
        };
        metrics.breaker_state(key, state);
    }
    for (partition, bulkhead) in &runtime.bulkheads {
        crate::observe::bulkhead_gauges(metrics, partition, bulkhead);
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
