//! The proxy as a registry client (SPEC §9, §10): fleet breakers, coordinated probes and the
//! degradation level.
//!
//! # One code path
//!
//! Whatever `registry.mode` says, the proxy talks to a registry over HTTP through
//! [`RegistryClient`]: batched reports, the SSE watch with `Last-Event-ID`, the fleet state
//! cache with `stale_ttl`, probe leases.
//!
//! - `mode: embedded` (the default) starts `levee-registry` inside the process on a loopback
//!   port the OS picks (memory backend), then connects to it like any remote one. An
//!   in-process shortcut would have been a second code path to keep honest; a loopback round
//!   trip costs little next to the report interval.
//! - `mode: remote` connects to the `levee registry` at `registry.url`.
//!
//! # Tokens
//!
//! - Remote: the reporter token comes from the variable named by `registry.token_env`
//!   (`LEVEE_REGISTRY_TOKEN` by default). Unset or empty is a loud warning, not a start
//!   failure: the proxy still protects with its local breakers, `/health` shows the registry
//!   disconnected, and a sidecar that refuses to start would turn a secret typo into an outage.
//! - Embedded: the reporter token is the value of `registry.token_env` when that variable is
//!   set, so the services beside this proxy (a Go app with the SDK's registry client) can report
//!   to it and share its breakers; otherwise 128 random bits from the OS, made per process and
//!   never shown: only this proxy reports to its own registry. The operator token is the admin token
//!   (`admin.token_env`): whoever may steer this proxy through its admin API may steer its
//!   registry (overrides, toggles, the degradation level) at the URL `/health` shows under
//!   `registry.url`. Without an admin token the operator token is random too, and — like the
//!   admin API's mutations — the embedded registry then takes no operator writes.
//! - Embedded: the proxy pushes each endpoint key's breaker config as the fleet policy
//!   (`PUT /v1/policies/{key}`, with its operator token), at start and after each reload, so the
//!   fleet breaker of a one-instance fleet runs the numbers the config file says — including
//!   `mode: observe`.
//! - `registry.backend` is for `levee registry`; an embedded registry always keeps memory
//!   (a warning says so when `backend` is set).
//!
//! # Distributed policies
//!
//! - Embedded: the proxy is the policy source (above); it never applies policies back.
//! - Remote: the registry's operators distribute breaker policies (SPEC §9: "so every
//!   language uses the same numbers"). When the watch brings a policy with version ≥ 1 for an
//!   endpoint key this proxy has a breaker for, that breaker runs the policy's config instead
//!   of the file's, keeping its state
//!   ([`levee_core::breaker::CircuitBreaker::reconfigured`]: closed stays closed with an
//!   empty window, open stays open until the same moment, half-open gets fresh probes,
//!   `forced_open`/`disabled` stay), exactly as the Go SDK's `breaker.Group` does.
//!   Logged at info with the version; `/health`'s breaker view shows `policy_version`.
//! - Precedence: fleet policy > file, while the policy exists. A reload keeps the policies in
//!   force (see `runtime`); the file's config for a key comes back when its policy is absent
//!   from the registry's state (never set, or gone from a registry that lost its memory) —
//!   a policy at version 0 means "never set" and is the file's config too.
//! - `DELETE /v1/policies/{key}` is not an absence: the registry resets the key to the SPEC
//!   defaults *with a new version*, and the proxy runs those defaults, as the registry's fleet
//!   breaker and the Go SDK do. To hand a key back to each instance's own config, an operator
//!   PUTs that config (or the registry would need a "no policy" state, which its API lacks).
//! - The last policy received stays in force while the registry is unreachable or stale: a
//!   registry outage changes no thresholds. An invalid policy is ignored with a warning (once
//!   per version) and the key keeps what it runs.
//! - Applying a policy swaps the breaker (and the routes holding it) in a new runtime,
//!   serialised with reloads; requests in flight finish on the breaker they started on.
//!
//! # On the request path
//!
//! The request path never waits on the registry except for a probe lease, and never reads
//! the client's cache: a background task (`sync`) copies each endpoint key's fleet breaker into
//! a [`FleetGate`] of atomics, so an admission with a closed (or absent) fleet breaker is one
//! relaxed atomic load. The task runs on every watch event (coalesced) and every
//! [`SYNC_INTERVAL`], which is also how the `stale_ttl` expiry is noticed.
//!
//! - The effective state of a key is the more severe ([`State::severity`]) of the local
//!   breaker's and the fleet's. A fleet breaker in `open` (before its wait ends) or
//!   `forced_open` rejects with `circuit_open` and the fleet's `Retry-After` even when the
//!   local breaker is closed.
//! - A fleet breaker that is `half_open` (or `open` past its wait, which the registry turns
//!   into `half_open` at the first lease) admits a call only with a probe lease
//!   ([`RegistryClient::acquire_probe`], bounded by its `lease_timeout`). The lease travels
//!   with the attempt and is completed with its outcome; an attempt dropped mid-way completes
//!   it `cancelled`. No lease → `circuit_open`. A denial (or an unanswered lease request) is
//!   remembered for at most [`DENIAL_MEMORY`], so a burst does not turn into a burst of lease
//!   requests; a fleet state change forgets it at once.
//! - A local breaker in `mode: observe` promised never to reject: the fleet's rate-based
//!   `open` / `half_open` do not reject its calls either (they show in `/health`). An
//!   operator's fleet-wide `forced_open` still does: it is an explicit action.
//! - A fleet breaker in `observe` mode never restricts.
//! - With the embedded registry the fleet is this one instance, so its fleet breaker follows
//!   the local one about a report interval behind: recovery may take that much longer and one
//!   more probe round (local probes, then fleet-leased ones). That is the price of one code
//!   path, and it keeps operator controls (overrides, the level) working the same way.
//! - When the registry is unreachable the client keeps the last fleet state for
//!   `registry.stale_ttl`; after that it has no opinion and every gate opens: local breakers
//!   alone, no leases needed. A registry outage never fails a request by itself: only fleet
//!   state known to be fresh rejects.
//!
//! # Reporting
//!
//! Every attempt's outcome (with `slow` judged by the key's `slow_call_duration`) goes to the
//! client's batch: a short-lock push into a per-second bucket, no I/O, flushed every
//! `registry.report_interval` by the client's own task.
//!
//! # Metrics and logs
//!
//! - `levee_registry_connected` is 1 while the watch stream is up and the registry has its
//!   backend. Connection changes and the `stale_ttl` expiry are logged once each.
//! - When a fleet change moves a key's *effective* state, the proxy counts
//!   `levee_breaker_transitions_total{reason="fleet"}` from the old effective state to the new
//!   one, moves `levee_breaker_state` to the effective state and logs it (warn when it opens).
//!   Local transitions keep their own reasons and local `from`/`to`.
//! - `levee_degradation_level` is the fleet level while fleet state is fresh, else 0.

use crate::error::ProxyError;
use crate::observe;
use crate::proxy::Shared;
use crate::runtime::{FleetPolicy, Runtime};
use levee_config::{Config, RegistryMode};
use levee_core::breaker::{BreakerConfig, Reason, State, Transition};
use levee_core::fleet::more_severe;
use levee_core::time::SystemClock;
use levee_core::{Clock, Outcome};
use levee_registry_client::{Api, ClientConfig, ProbeDecision, ProbeLease, RegistryClient};
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// How often fleet state is copied into the gates even without a watch event (it notices
/// `stale_ttl` expiring and keeps the gauges current).
pub const SYNC_INTERVAL: Duration = Duration::from_millis(250);

/// Longest time a denied (or unanswered) lease request keeps later calls from asking again.
pub const DENIAL_MEMORY: Duration = Duration::from_secs(1);

/// How often the embedded registry's policies are compared with the config, besides after
/// every reload.
const POLICY_CHECK: Duration = Duration::from_secs(5);

const NO_STATE: u8 = u8::MAX;

fn encode(state: State) -> u8 {
    match state {
        State::Closed => 0,
        State::Open => 1,
        State::HalfOpen => 2,
        State::ForcedOpen => 3,
        State::Disabled => 4,
    }
}

fn decode(code: u8) -> Option<State> {
    match code {
        0 => Some(State::Closed),
        1 => Some(State::Open),
        2 => Some(State::HalfOpen),
        3 => Some(State::ForcedOpen),
        4 => Some(State::Disabled),
        _ => None,
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// What the fleet says about one call, as read from a [`FleetGate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// No fleet restriction: the local breaker decides.
    Allow,
    /// The fleet breaker is open or forced open: `circuit_open`.
    Reject {
        /// When the fleet will probe, when known.
        retry_after: Option<Duration>,
    },
    /// The fleet is probing: the call needs a probe lease.
    NeedsLease,
}

/// One endpoint key's fleet breaker, copied from the registry client's cache by the sync
/// task and read lock-free by requests. Tearing between the fields is harmless: each is
/// re-read on the next call and rewritten on the next sync.
#[derive(Debug)]
pub struct FleetGate {
    state: AtomicU8,
    observe: AtomicBool,
    open_until_ms: AtomicU64,
    /// Lease requests are not repeated before this (Unix ms).
    denied_until_ms: AtomicU64,
    /// What to answer as `Retry-After` meanwhile (Unix ms; 0 = unknown).
    denied_retry_ms: AtomicU64,
}

impl Default for FleetGate {
    fn default() -> Self {
        FleetGate {
            state: AtomicU8::new(NO_STATE),
            observe: AtomicBool::new(false),
            open_until_ms: AtomicU64::new(0),
            denied_until_ms: AtomicU64::new(0),
            denied_retry_ms: AtomicU64::new(0),
        }
    }
}

impl FleetGate {
    /// The fleet breaker's state, while fleet state is fresh (shown in `/health` as
    /// `fleet_state`).
    pub fn fleet_state(&self) -> Option<State> {
        decode(self.state.load(Ordering::Relaxed))
    }

    /// The fleet state that restricts callers: `None` without fresh state or in `observe`.
    pub fn restricting(&self) -> Option<State> {
        if self.observe.load(Ordering::Relaxed) {
            return None;
        }
        self.fleet_state()
    }

    /// The more severe of `local` and the restricting fleet state (SPEC §9).
    pub fn effective(&self, local: State) -> State {
        effective(local, self.restricting())
    }

    /// Time until the fleet probes, while the fleet breaker is open.
    pub fn open_remaining(&self) -> Option<Duration> {
        if self.restricting() != Some(State::Open) {
            return None;
        }
        let until = self.open_until_ms.load(Ordering::Relaxed);
        let now = unix_ms();
        (until > now).then(|| Duration::from_millis(until - now))
    }

    /// What the fleet says about a call now. `local_observe` is asked only when the fleet
    /// restricts (it may take the local breaker's lock).
    pub fn admission(&self, local_observe: impl FnOnce() -> bool) -> Admission {
        let code = self.state.load(Ordering::Relaxed);
        if code == NO_STATE || code == encode(State::Closed) || code == encode(State::Disabled) {
            return Admission::Allow;
        }
        if self.observe.load(Ordering::Relaxed) {
            return Admission::Allow;
        }
        let Some(state) = decode(code) else {
            return Admission::Allow;
        };
        if state == State::ForcedOpen {
            return Admission::Reject { retry_after: None };
        }
        if local_observe() {
            return Admission::Allow;
        }
        let now = unix_ms();
        if state == State::Open {
            let until = self.open_until_ms.load(Ordering::Relaxed);
            if until > now {
                return Admission::Reject {
                    retry_after: Some(Duration::from_millis(until - now)),
                };
            }
        }
        if self.denied_until_ms.load(Ordering::Relaxed) > now {
            let retry = self.denied_retry_ms.load(Ordering::Relaxed);
            return Admission::Reject {
                retry_after: (retry > now).then(|| Duration::from_millis(retry - now)),
            };
        }
        Admission::NeedsLease
    }

    /// Remembers a denied lease for a little while.
    fn deny(&self, retry_after: Option<Duration>) {
        let now = unix_ms();
        let remember = retry_after.map_or(DENIAL_MEMORY, |r| r.min(DENIAL_MEMORY));
        self.denied_retry_ms.store(
            retry_after.map_or(0, |r| now.saturating_add(millis(r))),
            Ordering::Relaxed,
        );
        self.denied_until_ms
            .store(now.saturating_add(millis(remember)), Ordering::Relaxed);
    }

    /// Copies the fleet view in (`None`: no fresh state). A changed state forgets denials.
    fn set(&self, view: Option<(State, bool, Option<u64>)>) {
        let (code, observe, until) = match view {
            Some((state, observe, until)) => (encode(state), observe, until.unwrap_or(0)),
            None => (NO_STATE, false, 0),
        };
        if self.state.swap(code, Ordering::Relaxed) != code {
            self.denied_until_ms.store(0, Ordering::Relaxed);
        }
        self.observe.store(observe, Ordering::Relaxed);
        self.open_until_ms.store(until, Ordering::Relaxed);
    }
}

/// The more severe of `local` and `fleet` (no fleet state: `local`).
pub fn effective(local: State, fleet: Option<State>) -> State {
    fleet.map_or(local, |f| more_severe(local, f))
}

/// The answer to a lease request, for the pipeline.
pub enum Probe {
    /// Send the call as a fleet probe and complete the lease with its outcome.
    Lease(ProbeLease),
    /// The fleet no longer restricts (or has no fresh opinion): send it normally.
    Go,
    /// No lease: `circuit_open`.
    Denied {
        /// When asking again may succeed, when known.
        retry_after: Option<Duration>,
    },
}

/// The proxy's registry connection. Cheap to clone.
#[derive(Clone)]
pub struct Fleet {
    inner: Arc<Inner>,
}

struct Inner {
    client: RegistryClient,
    mode: RegistryMode,
    level: AtomicU8,
    /// The embedded registry, stopped by [`Fleet::shutdown`].
    embedded: tokio::sync::Mutex<Option<levee_registry::Running>>,
    /// Embedded mode: the operator client that pushes policies.
    operator: Option<Api>,
    /// Wakes the policy pusher (after a reload).
    policies: Notify,
    /// Wakes the sync task (after a reload: a new key may have a fleet policy waiting).
    resync: Notify,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("mode", &self.inner.mode)
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// 128 random bits from the OS, as 32 hex digits.
fn random_token() -> Result<String, ProxyError> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| {
            ProxyError::Registry(format!(
                "cannot read /dev/urandom to make the embedded registry's token: {e}"
            ))
        })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn client_config(config: &Config, url: &str, token: &str) -> ClientConfig {
    let mut c = ClientConfig::new(url, token, &config.service);
    c.stale_ttl = config.registry.stale_ttl;
    c.report_interval = config.registry.report_interval;
    c
}

impl Fleet {
    /// Connects as `config.registry` says, reading tokens from the environment: the embedded
    /// registry's operator token from `admin.token_env`, a remote registry's reporter token
    /// from `registry.token_env`. Must be called within a tokio runtime.
    pub async fn start(config: &Config) -> Result<Fleet, ProxyError> {
        match config.registry.mode {
            RegistryMode::Embedded => {
                let admin = env(&config.admin.token_env);
                Fleet::embedded(config, admin.as_deref()).await
            }
            RegistryMode::Remote => {
                let token = env(&config.registry.token_env);
                if token.is_none() {
                    tracing::warn!(
                        token_env = %config.registry.token_env,
                        "registry.token_env names an unset or empty variable: the registry will \
                         refuse this instance's reports and watch, so it runs on its local \
                         breakers alone; set the reporter token there"
                    );
                }
                Fleet::remote(config, token.as_deref().unwrap_or(""))
            }
        }
    }

    /// Starts an embedded registry (memory backend, loopback, a port the OS picks) and
    /// connects to it. `operator_token` is the token its operator API takes (the admin token);
    /// `None` makes a random one nobody knows.
    pub async fn embedded(
        config: &Config,
        operator_token: Option<&str>,
    ) -> Result<Fleet, ProxyError> {
        if config.registry.backend.is_some() {
            tracing::warn!(
                "registry.backend is for a registry served by `levee registry`; the embedded \
                 registry keeps its state in memory"
            );
        }
        // The reporter token of `registry.token_env` when set, so the services beside this
        // proxy (a Go app using the SDK's registry client) can join its fleet; else random.
        let reporter = match env(&config.registry.token_env) {
            Some(token) => token,
            None => random_token()?,
        };
        let operator = match operator_token {
            Some(t) => t.to_string(),
            None => random_token()?,
        };
        let listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        let registry_config = levee_registry::RegistryConfig::new(listen, &reporter, &operator);
        let running =
            levee_registry::start(registry_config, Arc::new(levee_registry::clock::UnixClock))
                .await
                .map_err(|e| {
                    ProxyError::Registry(format!("the embedded registry cannot start: {e}"))
                })?;
        let url = running.url();
        let client = RegistryClient::start(client_config(config, &url, &reporter))
            .map_err(|e| ProxyError::Registry(format!("registry client: {e}")))?;
        let operator = Api::new(&url, Some(&operator))
            .map_err(|e| ProxyError::Registry(format!("registry client: {e}")))?;
        tracing::info!(
            url = %url,
            operator_token = if operator_token.is_some() { "the admin token" } else { "none (no admin token is set)" },
            "embedded registry started"
        );
        Ok(Fleet::new(
            client,
            RegistryMode::Embedded,
            Some(running),
            Some(operator),
        ))
    }

    /// Connects to the registry at `registry.url` with reporter token `token`.
    pub fn remote(config: &Config, token: &str) -> Result<Fleet, ProxyError> {
        let Some(url) = config.registry.url.as_deref() else {
            return Err(ProxyError::Registry(
                "registry.mode is remote but registry.url is not set".into(),
            ));
        };
        let client = RegistryClient::start(client_config(config, url, token)).map_err(|e| {
            ProxyError::Registry(format!(
                "registry.url `{url}` cannot be used: {e} (only http:// URLs are supported)"
            ))
        })?;
        tracing::info!(url = %url, instance = %client.instance(), "connecting to the registry");
        Ok(Fleet::new(client, RegistryMode::Remote, None, None))
    }

    fn new(
        client: RegistryClient,
        mode: RegistryMode,
        embedded: Option<levee_registry::Running>,
        operator: Option<Api>,
    ) -> Fleet {
        Fleet {
            inner: Arc::new(Inner {
                client,
                mode,
                level: AtomicU8::new(0),
                embedded: tokio::sync::Mutex::new(embedded),
                operator,
                policies: Notify::new(),
                resync: Notify::new(),
                tasks: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The registry client.
    pub fn client(&self) -> &RegistryClient {
        &self.inner.client
    }

    /// `embedded` or `remote`.
    pub fn mode(&self) -> RegistryMode {
        self.inner.mode
    }

    /// The registry's base URL.
    pub fn url(&self) -> &str {
        self.inner.client.url()
    }

    /// The operator API client of an embedded registry (its token is the admin token), used by
    /// the admin API's degradation and toggle endpoints; `None` for a remote registry, whose
    /// operator token this instance does not hold.
    pub fn operator(&self) -> Option<&Api> {
        self.inner.operator.as_ref()
    }

    /// The degradation level the proxy acts on: the fleet's while fresh, else 0.
    pub fn degradation_level(&self) -> u8 {
        self.inner.level.load(Ordering::Relaxed)
    }

    /// Counts one attempt's outcome for the next report (a short-lock push, no I/O).
    pub fn record(&self, key: &str, outcome: Outcome, duration: Duration, slow: bool) {
        self.inner.client.record(key, outcome, duration, slow);
    }

    /// Asks for a probe lease for `key` (waits at most the client's `lease_timeout`).
    pub async fn probe(&self, key: &str, gate: &FleetGate) -> Probe {
        match self.inner.client.acquire_probe(key).await {
            Some(ProbeDecision::Probe(lease)) => Probe::Lease(lease),
            Some(ProbeDecision::Allowed) => Probe::Go,
            Some(ProbeDecision::Denied { retry_after }) => {
                gate.deny(retry_after);
                Probe::Denied { retry_after }
            }
            // No answer: the fleet's last word still holds until it goes stale.
            None if self.inner.client.is_fresh() => {
                gate.deny(None);
                Probe::Denied { retry_after: None }
            }
            None => Probe::Go,
        }
    }

    /// Asks the policy pusher (embedded mode) to compare policies with the running config,
    /// and the sync task to apply the fleet's policies to new keys (remote mode).
    pub(crate) fn config_changed(&self) {
        self.inner.policies.notify_one();
        self.inner.resync.notify_one();
    }

    /// Starts the background tasks that serve `shared` (called once by the proxy).
    pub(crate) fn attach(&self, shared: Weak<Shared>) {
        let mut tasks = self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner());
        tasks.push(tokio::spawn(sync_loop(self.clone(), shared.clone())));
        if self.inner.operator.is_some() {
            self.inner.policies.notify_one();
            tasks.push(tokio::spawn(policy_loop(self.clone(), shared)));
        }
    }

    /// Stops the background tasks, sends what is pending (bounded by the client's request
    /// timeout) and stops an embedded registry. Call it when the proxy stops: an embedded
    /// registry keeps serving until then.
    pub async fn shutdown(&self) {
        let tasks =
            std::mem::take(&mut *self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for task in tasks {
            task.abort();
        }
        if let Err(e) = self.inner.client.flush().await {
            tracing::debug!(error = %e, "last registry report not delivered");
        }
        if let Some(running) = self.inner.embedded.lock().await.take() {
            running.stop().await;
        }
    }
}

/// What the sync task last saw, to log changes once.
struct Seen {
    connected: bool,
    fresh: bool,
    level: u8,
    /// Invalid policies already warned about: key → version.
    invalid: HashMap<String, u64>,
}

async fn sync_loop(fleet: Fleet, shared: Weak<Shared>) {
    let mut events = fleet.inner.client.subscribe();
    let mut tick = tokio::time::interval(SYNC_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen = Seen {
        connected: false,
        fresh: false,
        level: 0,
        invalid: HashMap::new(),
    };
    loop {
        tokio::select! {
            received = events.recv() => {
                if matches!(received, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                    return;
                }
                // Coalesce a burst: everything queued is in the cache already.
                while !matches!(
                    events.try_recv(),
                    Err(tokio::sync::broadcast::error::TryRecvError::Empty
                        | tokio::sync::broadcast::error::TryRecvError::Closed)
                ) {}
            }
            _ = tick.tick() => {}
            _ = fleet.inner.resync.notified() => {}
        }
        let Some(shared) = shared.upgrade() else {
            return;
        };
        sync(&fleet, &shared, &mut seen);
    }
}

/// Copies fleet state into the gates, the level and the gauges; publishes fleet transitions.
fn sync(fleet: &Fleet, shared: &Shared, seen: &mut Seen) {
    let client = &fleet.inner.client;
    let connected = client.connected();
    let fresh = client.is_fresh();
    let metrics = &shared.metrics;
    metrics.registry_connected(connected);
    if connected != seen.connected {
        if connected {
            tracing::info!(url = %client.url(), "registry connected");
        } else {
            tracing::warn!(
                url = %client.url(),
                stale_ttl_ms = millis(client.config().stale_ttl),
                "registry unreachable; keeping the last fleet state for registry.stale_ttl"
            );
        }
        seen.connected = connected;
    }
    if seen.fresh && !fresh {
        tracing::warn!(
            url = %client.url(),
            "fleet state is stale; running on local breakers alone until the registry is back"
        );
    }
    seen.fresh = fresh;
    let level = if fresh {
        client.degradation_level().unwrap_or(0)
    } else {
        0
    };
    fleet.inner.level.store(level, Ordering::Relaxed);
    metrics.degradation_level(level);
    if level != seen.level {
        if level > seen.level {
            tracing::warn!(from = seen.level, to = level, "degradation level raised");
        } else {
            tracing::info!(from = seen.level, to = level, "degradation level lowered");
        }
        seen.level = level;
    }

    if fleet.inner.mode == RegistryMode::Remote {
        apply_policies(client, shared, &mut seen.invalid);
    }

    let runtime = shared.runtime();
    let now = SystemClock.now();
    for (key, gate) in &runtime.gates {
        let view = client
            .breaker(key)
            .map(|v| (v.state, v.observe, v.open_until_ms));
        let before = gate.restricting();
        gate.set(view);
        let after = gate.restricting();
        if before == after {
            continue;
        }
        let Some(breaker) = runtime.breakers.get(key) else {
            continue;
        };
        let local = breaker.state();
        let (from, to) = (effective(local, before), effective(local, after));
        if from != to {
            let transition = Transition {
                key: Arc::clone(breaker.key()),
                from,
                to,
                reason: Reason::Fleet,
                at: now,
            };
            observe::transition(metrics, &transition, None);
        }
    }
}

/// The policies `runtime`'s breakers should run: the registry's (version ≥ 1, valid) for each
/// key that has one. An invalid one is warned about once per version and the key keeps what
/// it runs.
fn desired_policies(
    client: &RegistryClient,
    runtime: &Runtime,
    invalid: &mut HashMap<String, u64>,
) -> BTreeMap<String, FleetPolicy> {
    let mut out = BTreeMap::new();
    for key in runtime.breakers.keys() {
        let Some(view) = client.policy(key).filter(|p| p.version > 0) else {
            continue;
        };
        match view.config.validate() {
            Ok(()) => {
                out.insert(
                    key.clone(),
                    FleetPolicy {
                        version: view.version,
                        config: view.config,
                    },
                );
            }
            Err(e) => {
                if invalid.insert(key.clone(), view.version) != Some(view.version) {
                    tracing::warn!(
                        endpoint = %key,
                        version = view.version,
                        error = %e,
                        "the registry's breaker policy for this key is invalid; ignored, the \
                         breaker keeps the config it runs (fix the policy at the registry)"
                    );
                }
                if let Some(current) = runtime.policies.get(key) {
                    out.insert(key.clone(), current.clone());
                }
            }
        }
    }
    out
}

/// Remote mode: swaps in a runtime whose breakers run the registry's policies, when they
/// differ from what runs (see the module docs).
fn apply_policies(client: &RegistryClient, shared: &Shared, invalid: &mut HashMap<String, u64>) {
    if desired_policies(client, &shared.runtime(), invalid) == shared.runtime().policies {
        return;
    }
    shared.derive_runtime(|current| {
        // Again under the reload lock: a reload may have swapped the runtime meanwhile.
        let desired = desired_policies(client, current, invalid);
        if desired == current.policies {
            return None;
        }
        let next = match current.with_policies(desired, &shared.random, SystemClock.now()) {
            Ok(next) => next,
            Err(e) => {
                tracing::warn!(error = %e, "cannot apply the registry's breaker policies; keeping the running ones");
                return None;
            }
        };
        for (key, breaker) in &next.breakers {
            let (before, after) = (current.policies.get(key), next.policies.get(key));
            if before == after {
                continue;
            }
            match after {
                Some(policy) => tracing::info!(
                    endpoint = %key,
                    version = policy.version,
                    state = %breaker.state(),
                    "fleet breaker policy applied; the breaker keeps its state"
                ),
                None => tracing::info!(
                    endpoint = %key,
                    state = %breaker.state(),
                    "no fleet breaker policy any more; back to the config file's breaker config"
                ),
            }
        }
        Some(next)
    });
}

/// Embedded mode: keeps each key's fleet policy equal to its breaker config.
async fn policy_loop(fleet: Fleet, shared: Weak<Shared>) {
    let Some(api) = fleet.inner.operator.clone() else {
        return;
    };
    // Pushed and not yet seen back on the watch stream.
    let mut pushed: HashMap<String, BreakerConfig> = HashMap::new();
    loop {
        tokio::select! {
            _ = fleet.inner.policies.notified() => {}
            _ = tokio::time::sleep(POLICY_CHECK) => {}
        }
        let runtime = match shared.upgrade() {
            Some(shared) => shared.runtime(),
            None => return,
        };
        for (key, breaker) in &runtime.breakers {
            let desired = breaker.config();
            let current = fleet.inner.client.policy(key);
            if current.is_some_and(|p| p.config == *desired) {
                pushed.remove(key);
                continue;
            }
            if pushed.get(key) == Some(desired) {
                continue;
            }
            match api.put_policy(key, desired).await {
                Ok(view) => {
                    tracing::debug!(endpoint = %key, version = view.version, "fleet policy set from the config");
                    pushed.insert(key.clone(), desired.clone());
                }
                Err(e) => {
                    tracing::warn!(endpoint = %key, error = %e, "cannot set the embedded registry's policy; retrying");
                    pushed.remove(key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(state: State, observe: bool, open_until_ms: Option<u64>) -> FleetGate {
        let g = FleetGate::default();
        g.set(Some((state, observe, open_until_ms)));
        g
    }

    #[test]
    fn no_fresh_fleet_state_leaves_the_local_breaker_alone() {
        let g = FleetGate::default();
        assert_eq!(g.admission(|| false), Admission::Allow);
        assert_eq!(g.fleet_state(), None);
        assert_eq!(g.effective(State::HalfOpen), State::HalfOpen);
        let g = gate(State::Open, false, Some(unix_ms() + 60_000));
        g.set(None);
        assert_eq!(g.admission(|| false), Admission::Allow);
    }

    #[test]
    fn an_open_fleet_rejects_with_its_wait_and_the_more_severe_state_wins() {
        let g = gate(State::Open, false, Some(unix_ms() + 30_000));
        match g.admission(|| false) {
            Admission::Reject {
                retry_after: Some(wait),
            } => assert!(wait > Duration::from_secs(25) && wait <= Duration::from_secs(30)),
            other => panic!("{other:?}"),
        }
        assert_eq!(g.effective(State::Closed), State::Open);
        assert_eq!(g.effective(State::ForcedOpen), State::ForcedOpen);
        assert!(g.open_remaining().is_some());
        // A local breaker in observe mode promised never to reject.
        assert_eq!(g.admission(|| true), Admission::Allow);
    }

    #[test]
    fn forced_open_rejects_even_observing_breakers() {
        let g = gate(State::ForcedOpen, false, None);
        assert_eq!(
            g.admission(|| true),
            Admission::Reject { retry_after: None }
        );
    }

    #[test]
    fn observe_and_permissive_fleet_states_never_restrict() {
        for state in [State::Closed, State::Disabled] {
            assert_eq!(
                gate(state, false, None).admission(|| false),
                Admission::Allow
            );
        }
        let g = gate(State::Open, true, Some(unix_ms() + 30_000));
        assert_eq!(g.admission(|| false), Admission::Allow);
        assert_eq!(g.fleet_state(), Some(State::Open), "shown, not enforced");
        assert_eq!(g.effective(State::Closed), State::Closed);
        // Disabled is the least severe: a local breaker's own state still counts.
        assert_eq!(
            gate(State::Disabled, false, None).effective(State::Open),
            State::Open
        );
    }

    #[test]
    fn probing_needs_a_lease_and_a_denial_is_remembered_until_the_state_changes() {
        let g = gate(State::Open, false, Some(unix_ms().saturating_sub(1)));
        assert_eq!(g.admission(|| false), Admission::NeedsLease);
        let g = gate(State::HalfOpen, false, None);
        assert_eq!(g.admission(|| false), Admission::NeedsLease);
        g.deny(Some(Duration::from_secs(8)));
        match g.admission(|| false) {
            Admission::Reject {
                retry_after: Some(wait),
            } => assert!(wait > Duration::from_secs(5), "{wait:?}"),
            other => panic!("{other:?}"),
        }
        // Same state: still remembered. A new state: forgotten at once.
        g.set(Some((State::HalfOpen, false, None)));
        assert!(matches!(g.admission(|| false), Admission::Reject { .. }));
        g.set(Some((
            State::Open,
            false,
            Some(unix_ms().saturating_sub(1)),
        )));
        assert_eq!(g.admission(|| false), Admission::NeedsLease);
    }

    #[test]
    fn embedded_tokens_are_random_and_distinct() {
        let a = random_token().expect("token");
        let b = random_token().expect("token");
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
