//! [`RegistryClient`]: what a Levee instance (the proxy, the tower layers) uses to take part in
//! the fleet (SPEC §9), built so that the registry is never on a request's failure path.
//!
//! - **Reporting** ([`RegistryClient::record`]) only adds to an in-memory bucket per endpoint
//!   key and second; a background task sends the buckets every `report_interval`. While the
//!   registry is unreachable the buckets stay (merged back after a failed send) up to
//!   `max_pending_buckets`, and the oldest seconds are dropped first: old counts matter least
//!   to a time window, and memory stays bounded however long the outage lasts.
//! - **Watching**: a background task holds the SSE watch stream, resumes it with
//!   `Last-Event-ID` after a disconnect, and reconnects with jittered exponential backoff. A
//!   stream silent for `idle_timeout` (the registry sends heartbeats) counts as lost.
//! - **Reading** is synchronous and lock-light: fleet breaker states and the degradation level
//!   come from the cache while it is fresh — connected, or disconnected for less than
//!   `stale_ttl` — and are `None` afterwards, so the instance runs on its local breakers alone
//!   (protection decided on stale data must not outlive an outage). A registry that is up but
//!   has lost its backend (a `status` event) serves last-known state, so it counts as
//!   disconnected here too. Toggles and policies are configuration rather than protection: they
//!   keep their last-known values.
//! - **Probe leases** are the one call that waits for the registry, bounded by
//!   `lease_timeout`; any failure is `None` ("no fleet opinion"), and completing a lease never
//!   waits: the result goes to a background task. A lease dropped without completion is
//!   reported `cancelled`, freeing its slot at once instead of at its TTL.

use crate::api::{
    BreakerView, CompleteRequest, EndpointReport, Event, EventData, FleetSnapshot, LeaseRequest,
    PolicyView, ReportBucket, ReportRequest, ReportResponse,
};
use crate::http::{Api, ClientError, WatchItem};
use levee_core::breaker::State;
use levee_core::random::SplitMix64;
use levee_core::{Outcome, RandomSource};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{broadcast, mpsc, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How a [`RegistryClient`] behaves. [`ClientConfig::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The registry, `http://host:port`.
    pub url: String,
    /// The reporter token (reads accept it too).
    pub token: String,
    /// This instance's service name.
    pub service: String,
    /// `rust` (the `language` label).
    pub language: String,
    /// This instance's id; a random 16-hex-digit id when `None`.
    pub instance: Option<String>,
    /// How often buckets are sent (default 1 s).
    pub report_interval: Duration,
    /// Most (endpoint key, second) buckets held while the registry is unreachable (default
    /// 4096); the oldest are dropped beyond it.
    pub max_pending_buckets: usize,
    /// How long fleet state outlives a lost connection (SPEC §9 `registry.stale_ttl`,
    /// default 30 s).
    pub stale_ttl: Duration,
    /// Bound of each background call (default 2 s).
    pub request_timeout: Duration,
    /// Bound of a probe lease request, which a caller waits for (default 500 ms).
    pub lease_timeout: Duration,
    /// How long a granted lease lasts (default 10 s).
    pub lease_ttl: Duration,
    /// A watch stream silent this long is reconnected (default 15 s: three missed
    /// heartbeats).
    pub idle_timeout: Duration,
    /// First reconnect delay (default 100 ms), doubled up to `reconnect_max` (default 5 s),
    /// each scaled by a random factor in [0.5, 1.0) so a fleet does not reconnect in step.
    pub reconnect_min: Duration,
    /// Largest reconnect delay.
    pub reconnect_max: Duration,
}

impl ClientConfig {
    /// The defaults for `url`, `token` and `service`.
    pub fn new(url: &str, token: &str, service: &str) -> ClientConfig {
        ClientConfig {
            url: url.to_string(),
            token: token.to_string(),
            service: service.to_string(),
            language: levee_core::names::LANGUAGE.to_string(),
            instance: None,
            report_interval: Duration::from_secs(1),
            max_pending_buckets: 4096,
            stale_ttl: Duration::from_secs(30),
            request_timeout: Duration::from_secs(2),
            lease_timeout: Duration::from_millis(500),
            lease_ttl: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(15),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
        }
    }
}

/// What the fleet says about one call to an endpoint key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FleetAdmission {
    /// No fresh fleet state for this key: decide on the local breaker alone.
    NoOpinion,
    /// The fleet breaker lets calls through (closed, disabled, or `observe`).
    Allow,
    /// The fleet breaker is open or forced open.
    Reject {
        /// When the fleet will probe, when known.
        retry_after: Option<Duration>,
    },
    /// The fleet is probing (or ready to): the call may go only as a probe, with a lease
    /// from [`RegistryClient::acquire_probe`].
    NeedsLease,
}

/// The answer to a lease request.
#[derive(Debug)]
pub enum ProbeDecision {
    /// Send the call as a fleet probe, then [`ProbeLease::complete`] it.
    Probe(ProbeLease),
    /// The fleet no longer restricts calls: send it as a normal call.
    Allowed,
    /// No probe slot now.
    Denied {
        /// When asking again may succeed, when known.
        retry_after: Option<Duration>,
    },
}

struct Completion {
    key: String,
    lease_id: String,
    request: CompleteRequest,
}

/// A granted fleet probe. Complete it with the probe's outcome; dropping it uncompleted
/// reports `cancelled`.
#[derive(Debug)]
pub struct ProbeLease {
    key: String,
    id: String,
    expires_at_ms: u64,
    sender: Option<mpsc::Sender<Completion>>,
}

impl ProbeLease {
    /// The lease id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// When the lease lapses (Unix ms).
    pub fn expires_at_ms(&self) -> u64 {
        self.expires_at_ms
    }

    /// Reports the probe's outcome. Never waits: a background task sends it.
    pub fn complete(mut self, outcome: Outcome, duration: Duration) {
        self.send(outcome, duration);
    }

    fn send(&mut self, outcome: Outcome, duration: Duration) {
        if let Some(sender) = self.sender.take() {
            let completion = Completion {
                key: std::mem::take(&mut self.key),
                lease_id: std::mem::take(&mut self.id),
                request: CompleteRequest {
                    outcome,
                    duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
                },
            };
            // A full queue means the registry is far behind; the lease will lapse on its own.
            let _ = sender.try_send(completion);
        }
    }
}

impl Drop for ProbeLease {
    fn drop(&mut self) {
        self.send(Outcome::Cancelled, Duration::ZERO);
    }
}

/// Buckets waiting to be sent.
#[derive(Debug, Default)]
struct Pending {
    by_key: HashMap<String, BTreeMap<u64, ReportBucket>>,
    entries: usize,
    dropped: u64,
}

impl Pending {
    /// Applies `f` to the bucket of `key` and `second`, creating it if needed. Allocates only
    /// for a key not pending yet.
    fn add(&mut self, key: &str, second: u64, f: impl FnOnce(&mut ReportBucket)) {
        fn slot(
            buckets: &mut BTreeMap<u64, ReportBucket>,
            entries: &mut usize,
            second: u64,
            f: impl FnOnce(&mut ReportBucket),
        ) {
            let bucket = buckets.entry(second).or_insert_with(|| {
                *entries += 1;
                ReportBucket {
                    start_s: second,
                    ..ReportBucket::default()
                }
            });
            f(bucket);
        }
        if let Some(buckets) = self.by_key.get_mut(key) {
            slot(buckets, &mut self.entries, second, f);
            return;
        }
        let mut buckets = BTreeMap::new();
        slot(&mut buckets, &mut self.entries, second, f);
        self.by_key.insert(key.to_string(), buckets);
    }

    fn take(&mut self) -> Vec<EndpointReport> {
        self.entries = 0;
        std::mem::take(&mut self.by_key)
            .into_iter()
            .map(|(key, buckets)| EndpointReport {
                key,
                buckets: buckets.into_values().collect(),
            })
            .collect()
    }

    fn restore(&mut self, endpoints: Vec<EndpointReport>, cap: usize) {
        for endpoint in endpoints {
            for b in endpoint.buckets {
                self.add(&endpoint.key, b.start_s, |bucket| bucket.merge(&b));
            }
        }
        self.enforce(cap);
    }

    /// Drops the oldest seconds until at most `cap` buckets remain.
    fn enforce(&mut self, cap: usize) {
        while self.entries > cap {
            let oldest = self
                .by_key
                .iter()
                .filter_map(|(k, b)| b.keys().next().map(|s| (*s, k.clone())))
                .min();
            let Some((second, key)) = oldest else { break };
            if let Some(buckets) = self.by_key.get_mut(&key) {
                buckets.remove(&second);
                if buckets.is_empty() {
                    self.by_key.remove(&key);
                }
            }
            self.entries -= 1;
            self.dropped += 1;
        }
    }
}

struct Inner {
    api: Api,
    config: ClientConfig,
    instance: String,
    pending: Mutex<Pending>,
    cache: RwLock<Option<FleetSnapshot>>,
    /// The watch stream is up.
    streaming: AtomicBool,
    /// The registry says its backend is down: what it sends is last-known state.
    degraded: AtomicBool,
    /// The last moment fleet state was known to be live.
    last_live: Mutex<Option<Instant>>,
    flush: Notify,
    events: broadcast::Sender<Arc<Event>>,
    completions: mpsc::Sender<Completion>,
    reports_sent: AtomicU64,
    random: SplitMix64,
}

struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// The fleet as this instance sees it. Cheap to clone; background tasks stop when the last
/// clone is dropped.
#[derive(Clone)]
pub struct RegistryClient {
    inner: Arc<Inner>,
    _tasks: Arc<Tasks>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("url", &self.inner.config.url)
            .field("instance", &self.inner.instance)
            .field("connected", &self.connected())
            .finish_non_exhaustive()
    }
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl RegistryClient {
    /// Starts the reporting, watching and lease-completing tasks. Must be called within a
    /// tokio runtime. Fails only for an unusable URL: an unreachable registry is not an error.
    pub fn start(config: ClientConfig) -> Result<RegistryClient, ClientError> {
        let api = Api::new(&config.url, Some(&config.token))?.with_timeout(config.request_timeout);
        let random = SplitMix64::from_entropy();
        let instance = config
            .instance
            .clone()
            .unwrap_or_else(|| format!("{:016x}", random.next_u64()));
        let (events, _) = broadcast::channel(1024);
        let (completions, completion_rx) = mpsc::channel(1024);
        let inner = Arc::new(Inner {
            api,
            config,
            instance,
            pending: Mutex::new(Pending::default()),
            cache: RwLock::new(None),
            streaming: AtomicBool::new(false),
            degraded: AtomicBool::new(false),
            last_live: Mutex::new(None),
            flush: Notify::new(),
            events,
            completions,
            reports_sent: AtomicU64::new(0),
            random,
        });
        let tasks = vec![
            tokio::spawn(report_loop(inner.clone())),
            tokio::spawn(watch_loop(inner.clone())),
            tokio::spawn(complete_loop(inner.clone(), completion_rx)),
        ];
        Ok(RegistryClient {
            inner,
            _tasks: Arc::new(Tasks(tasks)),
        })
    }

    /// This instance's id.
    pub fn instance(&self) -> &str {
        &self.inner.instance
    }

    /// Counts one call's outcome for the next report. `slow` is whether the call took at
    /// least the key's `slow_call_duration`. Never blocks on the network.
    pub fn record(&self, key: &str, outcome: Outcome, duration: Duration, slow: bool) {
        let second = unix_now().as_secs();
        let millis = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        let mut pending = lock(&self.inner.pending);
        pending.add(key, second, |b| b.add(outcome, millis, slow));
        let cap = self.inner.config.max_pending_buckets;
        pending.enforce(cap);
    }

    /// Buckets dropped because the registry was unreachable for too long.
    pub fn dropped_buckets(&self) -> u64 {
        lock(&self.inner.pending).dropped
    }

    /// Reports sent successfully so far.
    pub fn reports_sent(&self) -> u64 {
        self.inner.reports_sent.load(Ordering::Relaxed)
    }

    /// Sends the pending buckets now (tests, shutdown). On failure they stay pending.
    pub async fn flush(&self) -> Result<ReportResponse, ClientError> {
        send_pending(&self.inner).await
    }

    /// Asks the background reporter to send now, without waiting.
    pub fn flush_soon(&self) {
        self.inner.flush.notify_one();
    }

    /// True while fleet state is live: the watch stream is up and the registry has its
    /// backend. The value of `levee_registry_connected`.
    pub fn connected(&self) -> bool {
        live(&self.inner)
    }

    /// True while fleet state may be acted on: connected, or disconnected for less than
    /// `stale_ttl`. When false, [`breaker`](Self::breaker), [`admission`](Self::admission)
    /// and [`degradation_level`](Self::degradation_level) answer "no opinion" and the instance
    /// runs on its local breakers alone.
    pub fn is_fresh(&self) -> bool {
        if self.connected() {
            return true;
        }
        match *lock(&self.inner.last_live) {
            Some(at) => at.elapsed() < self.inner.config.stale_ttl,
            None => false,
        }
    }

    /// Time since fleet state was last known to be live (zero while connected); `None`
    /// before the first connection. What `/health` shows as the registry's last contact.
    pub fn last_contact(&self) -> Option<Duration> {
        if self.connected() {
            return Some(Duration::ZERO);
        }
        lock(&self.inner.last_live).map(|at| at.elapsed())
    }

    /// The registry's base URL.
    pub fn url(&self) -> &str {
        self.inner.api.base()
    }

    /// The configuration the client runs with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    fn read<T>(&self, f: impl FnOnce(&FleetSnapshot) -> Option<T>) -> Option<T> {
        let cache = self.inner.cache.read().unwrap_or_else(|p| p.into_inner());
        cache.as_ref().and_then(f)
    }

    /// The fleet breaker of `key`, while fleet state is fresh; `None` means local-only.
    pub fn breaker(&self, key: &str) -> Option<BreakerView> {
        if !self.is_fresh() {
            return None;
        }
        self.read(|s| s.breakers.get(key).cloned())
    }

    /// What the fleet says about a call to `key` now.
    pub fn admission(&self, key: &str) -> FleetAdmission {
        let Some(view) = self.breaker(key) else {
            return FleetAdmission::NoOpinion;
        };
        if view.observe {
            return FleetAdmission::Allow;
        }
        match view.state {
            State::Closed | State::Disabled => FleetAdmission::Allow,
            State::ForcedOpen => FleetAdmission::Reject { retry_after: None },
            State::HalfOpen => FleetAdmission::NeedsLease,
            State::Open => {
                let now_ms = u64::try_from(unix_now().as_millis()).unwrap_or(u64::MAX);
                match view.open_until_ms {
                    Some(until) if until > now_ms => FleetAdmission::Reject {
                        retry_after: Some(Duration::from_millis(until - now_ms)),
                    },
                    _ => FleetAdmission::NeedsLease,
                }
            }
        }
    }

    /// Whether toggle `name` is on for `key` (SPEC §10; the bucketing is
    /// [`levee_core::fleet::toggle_bucket`]). `None` when the toggle is unknown. Last-known
    /// values survive an outage.
    pub fn enabled(&self, name: &str, key: &str) -> Option<bool> {
        self.read(|s| s.toggles.get(name).map(|t| t.toggle.enabled(name, key)))
    }

    /// The fleet degradation level (SPEC §10) while fleet state is fresh.
    pub fn degradation_level(&self) -> Option<u8> {
        if !self.is_fresh() {
            return None;
        }
        self.read(|s| Some(s.degradation.level))
    }

    /// The distributed policy of `key`, last-known.
    pub fn policy(&self, key: &str) -> Option<PolicyView> {
        self.read(|s| s.policies.get(key).cloned())
    }

    /// Everything last received, whatever its age.
    pub fn snapshot(&self) -> Option<FleetSnapshot> {
        self.read(|s| Some(s.clone()))
    }

    /// The watch events as they arrive (a snapshot event replaces everything).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.inner.events.subscribe()
    }

    /// Asks the registry for a fleet probe lease for `key`, waiting at most `lease_timeout`.
    /// `None` when the registry cannot answer: decide on the local breaker alone.
    pub async fn acquire_probe(&self, key: &str) -> Option<ProbeDecision> {
        let ttl_ms = u64::try_from(self.inner.config.lease_ttl.as_millis()).unwrap_or(u64::MAX);
        let request = LeaseRequest {
            instance: self.inner.instance.clone(),
            ttl_ms: Some(ttl_ms),
        };
        let api = self
            .inner
            .api
            .clone()
            .with_timeout(self.inner.config.lease_timeout);
        match api.acquire_lease(key, &request).await {
            Ok(r) if r.granted && r.probe => match r.lease_id {
                Some(id) => Some(ProbeDecision::Probe(ProbeLease {
                    key: key.to_string(),
                    id,
                    expires_at_ms: r.expires_at_ms.unwrap_or(0),
                    sender: Some(self.inner.completions.clone()),
                })),
                None => None,
            },
            Ok(r) if r.granted => Some(ProbeDecision::Allowed),
            Ok(r) => Some(ProbeDecision::Denied {
                retry_after: r.retry_after_ms.map(Duration::from_millis),
            }),
            Err(e) => {
                tracing::debug!(error = %e, key, "registry probe lease unavailable");
                None
            }
        }
    }
}

async fn send_pending(inner: &Inner) -> Result<ReportResponse, ClientError> {
    let endpoints = lock(&inner.pending).take();
    if endpoints.is_empty() {
        return Ok(ReportResponse::default());
    }
    let request = ReportRequest {
        service: inner.config.service.clone(),
        language: inner.config.language.clone(),
        instance: inner.instance.clone(),
        endpoints,
    };
    match inner.api.report(&request).await {
        Ok(r) => {
            inner.reports_sent.fetch_add(1, Ordering::Relaxed);
            Ok(r)
        }
        Err(e) => {
            if e.is_transient() {
                lock(&inner.pending).restore(request.endpoints, inner.config.max_pending_buckets);
            } else {
                tracing::warn!(error = %e, "registry refused a report; its counts are dropped");
            }
            Err(e)
        }
    }
}

fn backoff(inner: &Inner, attempt: u32) -> Duration {
    let base = inner
        .config
        .reconnect_min
        .saturating_mul(1u32 << attempt.min(16))
        .min(inner.config.reconnect_max);
    base.mul_f64(0.5 + inner.random.next_unit() / 2.0)
}

async fn report_loop(inner: Arc<Inner>) {
    let mut failures = 0u32;
    loop {
        let wait = if failures == 0 {
            inner.config.report_interval
        } else {
            inner.config.report_interval + backoff(&inner, failures)
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = inner.flush.notified() => {}
        }
        match send_pending(&inner).await {
            Ok(_) => failures = 0,
            Err(e) => {
                failures = failures.saturating_add(1);
                tracing::debug!(error = %e, "registry report failed; buckets kept");
            }
        }
    }
}

fn live(inner: &Inner) -> bool {
    inner.streaming.load(Ordering::Acquire) && !inner.degraded.load(Ordering::Acquire)
}

/// Notes that fleet state is live now (a no-op while it is not).
fn touch(inner: &Inner) {
    if live(inner) {
        *lock(&inner.last_live) = Some(Instant::now());
    }
}

/// Records whether the registry has its backend; the moment it loses it starts `stale_ttl`.
fn set_degraded(inner: &Inner, degraded: bool) {
    touch(inner);
    inner.degraded.store(degraded, Ordering::Release);
    touch(inner);
}

async fn watch_loop(inner: Arc<Inner>) {
    let mut last_id: Option<u64> = None;
    let mut attempt = 0u32;
    loop {
        match inner.api.watch(last_id).await {
            Ok(mut stream) => {
                // A registry whose backend is still down says so right after the first
                // events of the new stream.
                inner.degraded.store(false, Ordering::Release);
                inner.streaming.store(true, Ordering::Release);
                touch(&inner);
                attempt = 0;
                loop {
                    match tokio::time::timeout(inner.config.idle_timeout, stream.next()).await {
                        Ok(Ok(Some(WatchItem::Heartbeat))) => touch(&inner),
                        Ok(Ok(Some(WatchItem::Event(event)))) => {
                            match &event.data {
                                EventData::Status { backend_connected } => {
                                    set_degraded(&inner, !backend_connected)
                                }
                                EventData::Snapshot(s) => set_degraded(&inner, s.degraded),
                                _ => {}
                            }
                            touch(&inner);
                            last_id = Some(event.id);
                            {
                                let mut cache =
                                    inner.cache.write().unwrap_or_else(|p| p.into_inner());
                                cache
                                    .get_or_insert_with(FleetSnapshot::default)
                                    .apply(event.id, &event.data);
                            }
                            let _ = inner.events.send(Arc::new(event));
                        }
                        Ok(Ok(None)) => break,
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "registry watch stream broke");
                            break;
                        }
                        Err(_) => {
                            tracing::debug!("registry watch stream went silent; reconnecting");
                            break;
                        }
                    }
                }
                touch(&inner);
                inner.streaming.store(false, Ordering::Release);
            }
            Err(e) => {
                if matches!(e.status(), Some(401 | 403)) {
                    tracing::warn!(error = %e, "registry refused the watch: check the token");
                } else {
                    tracing::debug!(error = %e, "registry watch unavailable");
                }
            }
        }
        tokio::time::sleep(backoff(&inner, attempt)).await;
        attempt = attempt.saturating_add(1);
    }
}

async fn complete_loop(inner: Arc<Inner>, mut rx: mpsc::Receiver<Completion>) {
    while let Some(c) = rx.recv().await {
        if let Err(e) = inner
            .api
            .complete_lease(&c.key, &c.lease_id, &c.request)
            .await
        {
            // The lease lapses at its TTL and counts as cancelled: nothing else to do.
            tracing::debug!(error = %e, key = %c.key, "probe lease completion not delivered");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_buckets_drop_the_oldest_seconds_first() {
        let mut p = Pending::default();
        p.add("a", 10, |b| b.add(Outcome::Failure, 5, false));
        p.add("b", 11, |b| b.add(Outcome::Success, 5, true));
        p.add("a", 12, |b| b.add(Outcome::Success, 5, false));
        p.add("a", 12, |b| b.add(Outcome::Timeout, 7, false));
        assert_eq!(p.entries, 3);
        p.enforce(2);
        assert_eq!(p.dropped, 1);
        let sent = p.take();
        assert_eq!(p.entries, 0);
        let mut seconds: Vec<u64> = sent
            .iter()
            .flat_map(|e| e.buckets.iter().map(|b| b.start_s))
            .collect();
        seconds.sort_unstable();
        assert_eq!(seconds, vec![11, 12]);
        // A failed send merges back, still bounded.
        p.add("a", 13, |b| b.add(Outcome::Success, 1, false));
        p.restore(sent, 2);
        assert_eq!(p.entries, 2);
        let a = &p.by_key["a"];
        assert_eq!(a[&12].success, 1);
        assert_eq!(a[&12].timeout, 1);
        assert_eq!(a[&12].latency_sum_ms, 12);
    }

    #[tokio::test]
    async fn an_unreachable_registry_is_no_error_for_callers() {
        // Port 9 (discard) on loopback: nothing listens there in the test environment.
        let mut config = ClientConfig::new("http://127.0.0.1:9", "t", "svc");
        config.lease_timeout = Duration::from_millis(200);
        let client = RegistryClient::start(config).unwrap();
        client.record("k", Outcome::Failure, Duration::from_millis(3), false);
        assert!(client.acquire_probe("k").await.is_none());
        assert_eq!(client.admission("k"), FleetAdmission::NoOpinion);
        assert!(!client.connected());
        assert!(
            !client.is_fresh(),
            "never connected: no fleet state to trust"
        );
        assert_eq!(client.last_contact(), None);
        assert_eq!(client.url(), "http://127.0.0.1:9");
        assert_eq!(client.enabled("t", "x"), None);
        assert_eq!(client.degradation_level(), None);
        assert!(client.flush().await.is_err());
        assert_eq!(lock(&client.inner.pending).entries, 1, "kept for later");
    }
}
