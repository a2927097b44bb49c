//! The registry's operations: each reads documents, decides with levee-core's rules
//! (`levee_core::fleet`), and commits with a compare-and-set that carries the change's events.
//! A lost race re-reads and decides again, so concurrent replicas and requests never lose an
//! update and never grant more probe leases than `half_open.permitted_calls`.

use crate::clock::millis;
use crate::config::{FailMode, RegistryConfig};
use crate::hub::Hub;
use crate::store::{Kind, Put, RawState, Store, StoreError};
use levee_core::breaker::{BreakerConfig, State, Transition};
use levee_core::fleet::{
    counts_as_open, BucketCounts, Degradation, FleetBreaker, FleetContext, FleetError,
    FleetOverride, LeaseDecision, Toggle, TransitionRecord,
};
use levee_core::random::SplitMix64;
use levee_core::{Clock, RandomSource, Timestamp};
use levee_registry_client::api::{
    BreakerView, CompleteRequest, DegradationRequest, EventData, FleetSnapshot, Health,
    LeaseRequest, LeaseResponse, PolicyView, ReportRequest, ReportResponse, ToggleView,
    TransitionView, WindowTotals,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Why an operation failed; the HTTP layer maps each to a status and problem code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryError {
    /// The request is malformed or impossible (400 `bad_request`).
    BadRequest(String),
    /// The thing asked for does not exist (404).
    NotFound(String),
    /// The probe lease lapsed before completion (410).
    LeaseExpired,
    /// The backend is unreachable (503).
    Unavailable(String),
    /// Too many concurrent writers on one document (503, retry).
    Busy,
    /// The stored state is unreadable (500).
    Internal(String),
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistryError::BadRequest(m) | RegistryError::NotFound(m) => f.write_str(m),
            RegistryError::LeaseExpired => FleetError::LeaseExpired.fmt(f),
            RegistryError::Unavailable(m) => write!(
                f,
                "the registry's backend is unavailable ({m}); instances keep their last state \
                 and local breakers meanwhile"
            ),
            RegistryError::Busy => {
                f.write_str("too many concurrent changes to the same entry; try again in a moment")
            }
            RegistryError::Internal(m) => write!(f, "internal registry error: {m}"),
        }
    }
}

impl std::error::Error for RegistryError {}

impl From<StoreError> for RegistryError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => RegistryError::Unavailable(m),
            StoreError::Corrupt(m) => RegistryError::Internal(m),
        }
    }
}

impl From<FleetError> for RegistryError {
    fn from(e: FleetError) -> Self {
        match e {
            FleetError::InvalidConfig(m) => RegistryError::Internal(m),
            FleetError::LeaseNotFound => RegistryError::NotFound(e.to_string()),
            FleetError::LeaseExpired => RegistryError::LeaseExpired,
        }
    }
}

/// A stored policy: `None` means reset to the SPEC defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PolicyDoc {
    config: Option<BreakerConfig>,
}

/// A stored toggle: `None` means deleted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ToggleDoc {
    toggle: Option<Toggle>,
}

/// The one degradation document's name.
const FLEET: &str = "fleet";

/// Most attempts of one compare-and-set before answering `Busy`.
const MAX_ATTEMPTS: u32 = 64;

/// Longest names accepted (endpoint keys, toggles, instances), in characters.
const MAX_NAME: usize = 256;
/// Most endpoint keys in one report.
const MAX_ENDPOINTS: usize = 1000;
/// Most buckets per endpoint key in one report (an hour of seconds).
const MAX_BUCKETS: usize = 3600;

/// What a decision does with the document it read.
enum Step<T, R> {
    /// Nothing to write.
    Keep(R),
    /// Write `value` with these events.
    Write {
        value: T,
        index: String,
        events: Vec<EventData>,
        result: R,
    },
}

/// Operator state worth keeping across restarts and Redis losses: toggles, policies,
/// overrides and the degradation setting (not breaker windows or leases, which describe the
/// moment and rebuild from fresh reports).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SavedState {
    /// File format version.
    pub format: u32,
    /// The last event id, so that ids keep increasing after a restart.
    pub last_event_id: u64,
    /// Toggles with their versions.
    pub toggles: BTreeMap<String, ToggleView>,
    /// Policies with their versions.
    pub policies: BTreeMap<String, PolicyView>,
    /// Breaker overrides.
    pub overrides: BTreeMap<String, FleetOverride>,
    /// The operator's degradation setting.
    pub degradation: Option<DegradationRequest>,
}

impl SavedState {
    /// The operator state in a snapshot.
    pub fn from_snapshot(s: &FleetSnapshot) -> SavedState {
        SavedState {
            format: 1,
            last_event_id: s.event_id,
            toggles: s.toggles.clone(),
            policies: s.policies.clone(),
            overrides: s
                .breakers
                .iter()
                .filter_map(|(k, b)| b.override_.map(|o| (k.clone(), o)))
                .collect(),
            degradation: (s.degradation.operator_level != 0 || !s.degradation.rules.is_empty())
                .then(|| DegradationRequest {
                    level: s.degradation.operator_level,
                    rules: s.degradation.rules.clone(),
                }),
        }
    }

    /// True when there is nothing to keep.
    pub fn is_empty(&self) -> bool {
        self.toggles.is_empty()
            && self.policies.is_empty()
            && self.overrides.is_empty()
            && self.degradation.is_none()
    }
}

/// A read answered from the backend, or from the last known state while it is down.
#[derive(Debug, Clone, PartialEq)]
pub enum Read<T> {
    /// From the backend.
    Fresh(T),
    /// Last known state (fail-open mode, backend down).
    Stale(T),
}

/// The registry: store, event hub, clock and settings.
pub struct Registry {
    pub(crate) store: Store,
    pub(crate) hub: Arc<Hub>,
    clock: Arc<dyn Clock>,
    random: Arc<SplitMix64>,
    pub(crate) config: RegistryConfig,
    persist_lock: tokio::sync::Mutex<()>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("store", &self.store.name())
            .finish_non_exhaustive()
    }
}

fn parse<T: DeserializeOwned>(json: &str) -> Result<T, RegistryError> {
    serde_json::from_str(json).map_err(|e| RegistryError::Internal(format!("stored JSON: {e}")))
}

fn to_json<T: Serialize>(value: &T) -> Result<String, RegistryError> {
    serde_json::to_string(value).map_err(|e| RegistryError::Internal(e.to_string()))
}

fn transition_view(t: &TransitionRecord) -> TransitionView {
    TransitionView {
        from: t.from,
        to: t.to,
        reason: t.reason,
        at_ms: t.at_nanos / 1_000_000,
    }
}

/// Checks a name from a request: not empty, not too long, no control characters.
pub fn check_name(what: &str, value: &str) -> Result<(), RegistryError> {
    if value.is_empty() || value.chars().count() > MAX_NAME {
        return Err(RegistryError::BadRequest(format!(
            "{what} must be 1 to {MAX_NAME} characters long"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(RegistryError::BadRequest(format!(
            "{what} `{}` contains control characters",
            value.escape_debug()
        )));
    }
    Ok(())
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Registry {
    /// A registry over `store`, publishing to `hub`.
    pub fn new(
        store: Store,
        hub: Arc<Hub>,
        clock: Arc<dyn Clock>,
        config: RegistryConfig,
    ) -> Registry {
        Registry {
            store,
            hub,
            clock,
            random: Arc::new(SplitMix64::from_entropy()),
            config,
            persist_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// The registry's clock reading.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The hub (watchers attach here).
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// The settings.
    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    /// True while the backend is reachable.
    pub fn backend_connected(&self) -> bool {
        self.store.connected()
    }

    fn random(&self) -> Arc<dyn RandomSource> {
        self.random.clone()
    }

    fn check_writable(&self) -> Result<(), RegistryError> {
        if self.store.connected() {
            Ok(())
        } else {
            Err(RegistryError::Unavailable("not connected".into()))
        }
    }

    /// Reads `read` from the backend; in fail-open mode, while the backend is down, answers
    /// `from_mirror(last known state)` instead.
    async fn read<T>(
        &self,
        read: impl std::future::Future<Output = Result<T, RegistryError>>,
        from_mirror: impl FnOnce(&FleetSnapshot) -> T,
    ) -> Result<Read<T>, RegistryError> {
        let fail_open = self.config.fail_mode == FailMode::Open;
        if !self.store.connected() {
            return if fail_open {
                Ok(Read::Stale(from_mirror(&self.hub.mirror())))
            } else {
                Err(RegistryError::Unavailable("not connected".into()))
            };
        }
        match read.await {
            Ok(v) => Ok(Read::Fresh(v)),
            Err(RegistryError::Unavailable(_)) if fail_open => {
                Ok(Read::Stale(from_mirror(&self.hub.mirror())))
            }
            Err(e) => Err(e),
        }
    }

    /// Read, decide, compare-and-set; again on a lost race.
    async fn update<T, R>(
        &self,
        kind: Kind,
        name: &str,
        mut decide: impl FnMut(Option<T>, u64, Timestamp) -> Result<Step<T, R>, RegistryError>,
    ) -> Result<R, RegistryError>
    where
        T: Serialize + DeserializeOwned,
    {
        self.check_writable()?;
        for attempt in 0..MAX_ATTEMPTS {
            let doc = self.store.get(kind, name).await?;
            let (current, version) = match doc {
                Some(d) => (Some(parse::<T>(&d.json)?), d.version),
                None => (None, 0),
            };
            match decide(current, version, self.now())? {
                Step::Keep(result) => return Ok(result),
                Step::Write {
                    value,
                    index,
                    events,
                    result,
                } => {
                    let json = to_json(&value)?;
                    let events = events.iter().map(to_json).collect::<Result<Vec<_>, _>>()?;
                    let put = Put {
                        kind,
                        name,
                        json: &json,
                        index: &index,
                        events: &events,
                    };
                    if self.store.cas(&put, version).await?.is_some() {
                        return Ok(result);
                    }
                }
            }
            // Lost a race: back off a little, randomly, so contenders spread out.
            let spread = 50u64 << attempt.min(6);
            let wait = (self.random.next_unit() * spread as f64) as u64;
            tokio::time::sleep(Duration::from_micros(wait)).await;
        }
        Err(RegistryError::Busy)
    }

    async fn policy_of(&self, key: &str) -> Result<(u64, BreakerConfig), RegistryError> {
        match self.store.get(Kind::Policy, key).await? {
            None => Ok((0, BreakerConfig::default())),
            Some(doc) => {
                let p: PolicyDoc = parse(&doc.json)?;
                Ok((doc.version, p.config.unwrap_or_default()))
            }
        }
    }

    fn view(
        fleet: &FleetBreaker,
        config: &BreakerConfig,
        policy_version: u64,
        now: Timestamp,
    ) -> BreakerView {
        let v = fleet.view(config, now);
        BreakerView {
            key: fleet.key.clone(),
            state: v.state,
            observe: v.observe,
            override_: v.override_,
            open_until_ms: v.open_until_nanos.map(|n| n / 1_000_000),
            permitted_probes: v.permitted_probes,
            leased_probes: v.leased_probes,
            reported_probes: v.reported_probes,
            window: WindowTotals {
                counted: v.totals.counted,
                failures: v.totals.failures,
                slow: v.totals.slow,
            },
            last_transition: v.last_transition.as_ref().map(transition_view),
            generation: v.generation,
            policy_version,
        }
    }

    fn breaker_events(view: &BreakerView, transitions: &[Transition]) -> Vec<EventData> {
        if transitions.is_empty() {
            return vec![EventData::Breaker {
                breaker: view.clone(),
                transition: None,
            }];
        }
        transitions
            .iter()
            .map(|t| EventData::Breaker {
                breaker: view.clone(),
                transition: Some(transition_view(&TransitionRecord::from(t))),
            })
            .collect()
    }

    /// Applies a decision to a fleet breaker; writes only when it changed.
    async fn update_breaker<R>(
        &self,
        key: &str,
        mut decide: impl FnMut(
            &mut FleetBreaker,
            &FleetContext<'_>,
        ) -> Result<(R, Vec<Transition>, bool), RegistryError>,
    ) -> Result<(R, Vec<Transition>), RegistryError> {
        let (policy_version, config) = self.policy_of(key).await?;
        let random = self.random();
        let result = self
            .update::<FleetBreaker, (R, Vec<Transition>)>(Kind::Breaker, key, |current, _, now| {
                let mut fleet = match current {
                    Some(f) => f,
                    None => FleetBreaker::new(key, &config)?,
                };
                // A never-seen key that nothing changed stays unwritten (e.g. a lease request
                // for a closed breaker).
                let before = fleet.clone();
                let ctx = FleetContext {
                    config: &config,
                    random: random.clone(),
                    now,
                };
                let (result, transitions, announce) = decide(&mut fleet, &ctx)?;
                if transitions.is_empty() && !announce && before == fleet {
                    return Ok(Step::Keep((result, transitions)));
                }
                let view = Self::view(&fleet, &config, policy_version, now);
                let events = if transitions.is_empty() && !announce {
                    Vec::new()
                } else {
                    Self::breaker_events(&view, &transitions)
                };
                Ok(Step::Write {
                    index: fleet.record.state.as_str().to_string(),
                    value: fleet,
                    events,
                    result: (result, transitions),
                })
            })
            .await?;
        if !result.1.is_empty() {
            if let Err(e) = self.reevaluate_level().await {
                tracing::warn!(error = %e, "degradation rules not re-evaluated");
            }
        }
        Ok(result)
    }

    /// `POST /v1/reports`.
    pub async fn report(&self, report: &ReportRequest) -> Result<ReportResponse, RegistryError> {
        check_name("service", &report.service)?;
        check_name("language", &report.language)?;
        check_name("instance", &report.instance)?;
        if report.endpoints.len() > MAX_ENDPOINTS {
            return Err(RegistryError::BadRequest(format!(
                "a report holds {} endpoint keys: send at most {MAX_ENDPOINTS} per report",
                report.endpoints.len()
            )));
        }
        let mut batches = Vec::with_capacity(report.endpoints.len());
        for endpoint in &report.endpoints {
            check_name("endpoint key", &endpoint.key)?;
            if endpoint.buckets.len() > MAX_BUCKETS {
                return Err(RegistryError::BadRequest(format!(
                    "endpoint `{}` has {} buckets: send at most {MAX_BUCKETS} per report",
                    endpoint.key,
                    endpoint.buckets.len()
                )));
            }
            let mut buckets = Vec::with_capacity(endpoint.buckets.len());
            for b in &endpoint.buckets {
                let counts = BucketCounts {
                    success: b.success,
                    failure: b.failure,
                    timeout: b.timeout,
                    slow: b.slow,
                    latency_sum_ms: b.latency_sum_ms,
                };
                counts.validate().map_err(|m| {
                    RegistryError::BadRequest(format!(
                        "endpoint `{}`, bucket {}: {m}",
                        endpoint.key, b.start_s
                    ))
                })?;
                if counts.counted() > 0 {
                    buckets.push((b.start_s, counts));
                }
            }
            if !buckets.is_empty() {
                batches.push((endpoint.key.as_str(), buckets));
            }
        }
        let mut response = ReportResponse::default();
        for (key, buckets) in batches {
            let (ingested, _) = self
                .update_breaker(key, |fleet, ctx| {
                    let (ingested, transitions) = fleet.report(ctx, &buckets)?;
                    Ok((ingested, transitions, false))
                })
                .await?;
            response.accepted += ingested.accepted;
            response.late += ingested.late;
            response.not_counted += ingested.not_counted;
        }
        Ok(response)
    }

    /// `POST /v1/breakers/{key}/leases`.
    pub async fn acquire_lease(
        &self,
        key: &str,
        request: &LeaseRequest,
    ) -> Result<LeaseResponse, RegistryError> {
        check_name("endpoint key", key)?;
        check_name("instance", &request.instance)?;
        let ttl = match request.ttl_ms {
            Some(0) => {
                return Err(RegistryError::BadRequest(
                    "ttl_ms is 0: a lease must last long enough for one call, e.g. 10000".into(),
                ))
            }
            Some(ms) => Duration::from_millis(ms).min(self.config.max_lease_ttl),
            None => self.config.lease_ttl,
        };
        let lease_id = format!("{:016x}", self.random.next_u64());
        let ((decision, state), _) = self
            .update_breaker(key, |fleet, ctx| {
                let (decision, transitions) =
                    fleet.acquire_lease(ctx, &lease_id, &request.instance, ttl)?;
                Ok(((decision, fleet.record.state), transitions, false))
            })
            .await?;
        Ok(match decision {
            LeaseDecision::Probe(lease) => LeaseResponse {
                granted: true,
                probe: true,
                lease_id: Some(lease.id),
                expires_at_ms: Some(lease.expires_at_nanos / 1_000_000),
                state,
                retry_after_ms: None,
            },
            LeaseDecision::NotNeeded => LeaseResponse {
                granted: true,
                probe: false,
                lease_id: None,
                expires_at_ms: None,
                state,
                retry_after_ms: None,
            },
            LeaseDecision::Denied { retry_after, .. } => LeaseResponse {
                granted: false,
                probe: false,
                lease_id: None,
                expires_at_ms: None,
                state,
                retry_after_ms: retry_after.map(duration_ms),
            },
        })
    }

    /// `POST /v1/breakers/{key}/leases/{lease_id}/complete`.
    pub async fn complete_lease(
        &self,
        key: &str,
        lease_id: &str,
        request: &CompleteRequest,
    ) -> Result<BreakerView, RegistryError> {
        check_name("endpoint key", key)?;
        check_name("lease id", lease_id)?;
        let duration = Duration::from_millis(request.duration_ms);
        let (outcome, _) = self
            .update_breaker(key, |fleet, ctx| {
                match fleet.complete_lease(ctx, lease_id, request.outcome, duration) {
                    Ok(transitions) => Ok((Ok(()), transitions, false)),
                    // The lapse itself changed the breaker (a freed slot): keep that.
                    Err(FleetError::LeaseExpired) => {
                        Ok((Err(RegistryError::LeaseExpired), Vec::new(), false))
                    }
                    Err(e) => Err(e.into()),
                }
            })
            .await?;
        outcome?;
        self.breaker(key).await
    }

    /// `PUT`/`DELETE /v1/breakers/{key}/override`.
    pub async fn set_override(
        &self,
        key: &str,
        value: Option<FleetOverride>,
    ) -> Result<BreakerView, RegistryError> {
        check_name("endpoint key", key)?;
        self.update_breaker(key, |fleet, ctx| {
            let (changed, transitions) = fleet.set_override(ctx, value)?;
            Ok(((), transitions, changed))
        })
        .await?;
        self.breaker(key).await
    }

    /// `GET /v1/breakers/{key}` from the backend (a never-seen key is a closed breaker).
    pub async fn breaker(&self, key: &str) -> Result<BreakerView, RegistryError> {
        check_name("endpoint key", key)?;
        let (policy_version, config) = self.policy_of(key).await?;
        let fleet = match self.store.get(Kind::Breaker, key).await? {
            Some(doc) => parse::<FleetBreaker>(&doc.json)?,
            None => FleetBreaker::new(key, &config)?,
        };
        Ok(Self::view(&fleet, &config, policy_version, self.now()))
    }

    /// [`Registry::breaker`], or the last known view while the backend is down (fail-open).
    pub async fn read_breaker(&self, key: &str) -> Result<Read<BreakerView>, RegistryError> {
        check_name("endpoint key", key)?;
        self.read(self.breaker(key), |m| {
            m.breakers.get(key).cloned().unwrap_or_else(|| BreakerView {
                key: key.to_string(),
                state: State::Closed,
                observe: false,
                override_: None,
                open_until_ms: None,
                permitted_probes: BreakerConfig::default().half_open.permitted_calls,
                leased_probes: 0,
                reported_probes: 0,
                window: WindowTotals::default(),
                last_transition: None,
                generation: 0,
                policy_version: 0,
            })
        })
        .await
    }

    /// `GET /v1/state`: the mirror, as of its event id.
    pub fn state(&self) -> Result<FleetSnapshot, RegistryError> {
        let connected = self.store.connected();
        if !connected && self.config.fail_mode == FailMode::Closed {
            return Err(RegistryError::Unavailable("not connected".into()));
        }
        let mut s = self.hub.mirror();
        s.degraded = !connected;
        Ok(s)
    }

    /// `PUT /v1/toggles/{name}`.
    pub async fn set_toggle(
        &self,
        name: &str,
        toggle: Toggle,
    ) -> Result<ToggleView, RegistryError> {
        check_name("toggle name", name)?;
        toggle.validate().map_err(RegistryError::BadRequest)?;
        self.update::<ToggleDoc, ToggleView>(Kind::Toggle, name, |_, version, _| {
            let view = ToggleView {
                toggle,
                version: version + 1,
            };
            Ok(Step::Write {
                value: ToggleDoc {
                    toggle: Some(toggle),
                },
                index: String::new(),
                events: vec![EventData::Toggle {
                    name: name.to_string(),
                    toggle: Some(view),
                }],
                result: view,
            })
        })
        .await
    }

    /// `DELETE /v1/toggles/{name}`.
    pub async fn delete_toggle(&self, name: &str) -> Result<(), RegistryError> {
        check_name("toggle name", name)?;
        self.update::<ToggleDoc, Result<(), RegistryError>>(Kind::Toggle, name, |current, _, _| {
            if current.and_then(|d| d.toggle).is_none() {
                return Ok(Step::Keep(Err(RegistryError::NotFound(format!(
                    "no toggle named `{name}`"
                )))));
            }
            Ok(Step::Write {
                value: ToggleDoc { toggle: None },
                index: String::new(),
                events: vec![EventData::Toggle {
                    name: name.to_string(),
                    toggle: None,
                }],
                result: Ok(()),
            })
        })
        .await?
    }

    async fn toggles_fresh(&self) -> Result<BTreeMap<String, ToggleView>, RegistryError> {
        let mut out = BTreeMap::new();
        for (name, doc) in self.store.list(Kind::Toggle).await? {
            if let Some(toggle) = parse::<ToggleDoc>(&doc.json)?.toggle {
                out.insert(
                    name,
                    ToggleView {
                        toggle,
                        version: doc.version,
                    },
                );
            }
        }
        Ok(out)
    }

    /// `GET /v1/toggles`.
    pub async fn toggles(&self) -> Result<Read<BTreeMap<String, ToggleView>>, RegistryError> {
        self.read(self.toggles_fresh(), |m| m.toggles.clone()).await
    }

    /// `GET /v1/toggles/{name}`.
    pub async fn toggle(&self, name: &str) -> Result<Read<ToggleView>, RegistryError> {
        check_name("toggle name", name)?;
        let all = self.toggles().await?;
        let pick = |m: BTreeMap<String, ToggleView>| {
            m.get(name)
                .copied()
                .ok_or_else(|| RegistryError::NotFound(format!("no toggle named `{name}`")))
        };
        Ok(match all {
            Read::Fresh(m) => Read::Fresh(pick(m)?),
            Read::Stale(m) => Read::Stale(pick(m)?),
        })
    }

    async fn open_counts(&self) -> Result<(usize, usize), RegistryError> {
        let index = self.store.index(Kind::Breaker).await?;
        let open = index
            .values()
            .filter(|s| {
                State::ALL
                    .into_iter()
                    .any(|state| state.as_str() == s.as_str() && counts_as_open(state))
            })
            .count();
        Ok((open, index.len()))
    }

    /// `PUT /v1/degradation`.
    pub async fn set_degradation(
        &self,
        request: &DegradationRequest,
    ) -> Result<Degradation, RegistryError> {
        self.check_writable()?;
        let (open, total) = self.open_counts().await?;
        let wanted = Degradation::new(request.level, request.rules.clone(), open, total)
            .map_err(RegistryError::BadRequest)?;
        self.update::<Degradation, Degradation>(Kind::Degradation, FLEET, |_, _, _| {
            Ok(Step::Write {
                value: wanted.clone(),
                index: String::new(),
                events: vec![EventData::Degradation {
                    degradation: wanted.clone(),
                }],
                result: wanted.clone(),
            })
        })
        .await
    }

    /// Re-evaluates the degradation rules after breaker transitions.
    pub async fn reevaluate_level(&self) -> Result<(), RegistryError> {
        let (open, total) = self.open_counts().await?;
        self.update::<Degradation, ()>(Kind::Degradation, FLEET, |current, _, _| {
            let Some(mut d) = current else {
                return Ok(Step::Keep(()));
            };
            if !d.evaluate(open, total) {
                return Ok(Step::Keep(()));
            }
            Ok(Step::Write {
                value: d.clone(),
                index: String::new(),
                events: vec![EventData::Degradation { degradation: d }],
                result: (),
            })
        })
        .await
    }

    async fn degradation_fresh(&self) -> Result<Degradation, RegistryError> {
        match self.store.get(Kind::Degradation, FLEET).await? {
            Some(doc) => parse(&doc.json),
            None => Ok(Degradation::default()),
        }
    }

    /// `GET /v1/degradation`.
    pub async fn degradation(&self) -> Result<Read<Degradation>, RegistryError> {
        self.read(self.degradation_fresh(), |m| m.degradation.clone())
            .await
    }

    /// `PUT /v1/policies/{key}`.
    pub async fn put_policy(
        &self,
        key: &str,
        config: BreakerConfig,
    ) -> Result<PolicyView, RegistryError> {
        check_name("endpoint key", key)?;
        config.validate().map_err(RegistryError::BadRequest)?;
        self.write_policy(key, Some(config)).await
    }

    /// `DELETE /v1/policies/{key}`: back to the SPEC defaults, with a new version.
    pub async fn reset_policy(&self, key: &str) -> Result<PolicyView, RegistryError> {
        check_name("endpoint key", key)?;
        self.write_policy(key, None).await
    }

    async fn write_policy(
        &self,
        key: &str,
        config: Option<BreakerConfig>,
    ) -> Result<PolicyView, RegistryError> {
        self.update::<PolicyDoc, PolicyView>(Kind::Policy, key, |_, version, _| {
            let view = PolicyView {
                key: key.to_string(),
                version: version + 1,
                config: config.clone().unwrap_or_default(),
            };
            Ok(Step::Write {
                value: PolicyDoc {
                    config: config.clone(),
                },
                index: String::new(),
                events: vec![EventData::Policy {
                    policy: view.clone(),
                }],
                result: view,
            })
        })
        .await
    }

    async fn policies_fresh(&self) -> Result<BTreeMap<String, PolicyView>, RegistryError> {
        let mut out = BTreeMap::new();
        for (key, doc) in self.store.list(Kind::Policy).await? {
            let p: PolicyDoc = parse(&doc.json)?;
            out.insert(
                key.clone(),
                PolicyView {
                    key,
                    version: doc.version,
                    config: p.config.unwrap_or_default(),
                },
            );
        }
        Ok(out)
    }

    /// `GET /v1/policies`.
    pub async fn policies(&self) -> Result<Read<BTreeMap<String, PolicyView>>, RegistryError> {
        self.read(self.policies_fresh(), |m| m.policies.clone())
            .await
    }

    /// `GET /v1/policies/{key}` (version 0 and the SPEC defaults when none was ever set).
    pub async fn policy(&self, key: &str) -> Result<Read<PolicyView>, RegistryError> {
        check_name("endpoint key", key)?;
        let fresh = async {
            let (version, config) = self.policy_of(key).await?;
            Ok(PolicyView {
                key: key.to_string(),
                version,
                config,
            })
        };
        self.read(fresh, |m| {
            m.policies.get(key).cloned().unwrap_or_else(|| PolicyView {
                key: key.to_string(),
                version: 0,
                config: BreakerConfig::default(),
            })
        })
        .await
    }

    /// `GET /healthz`: the body, and whether to answer 200 (false: 503).
    pub fn health(&self) -> (bool, Health) {
        let connected = self.store.connected();
        let healthy = connected || self.config.fail_mode == FailMode::Open;
        (
            healthy,
            Health {
                status: if connected { "ok" } else { "degraded" }.to_string(),
                backend: self.store.name().to_string(),
                backend_connected: connected,
                fail_mode: self.config.fail_mode.as_str().to_string(),
                event_id: self.hub.last_id(),
            },
        )
    }

    /// Builds the watchers' snapshot from raw stored state.
    pub fn build_snapshot(&self, raw: &RawState) -> Result<FleetSnapshot, RegistryError> {
        let now = self.now();
        let mut s = FleetSnapshot {
            event_id: raw.seq,
            ..FleetSnapshot::default()
        };
        for ((kind, name), doc) in &raw.docs {
            match kind {
                Kind::Policy => {
                    let p: PolicyDoc = parse(&doc.json)?;
                    s.policies.insert(
                        name.clone(),
                        PolicyView {
                            key: name.clone(),
                            version: doc.version,
                            config: p.config.unwrap_or_default(),
                        },
                    );
                }
                Kind::Toggle => {
                    if let Some(toggle) = parse::<ToggleDoc>(&doc.json)?.toggle {
                        s.toggles.insert(
                            name.clone(),
                            ToggleView {
                                toggle,
                                version: doc.version,
                            },
                        );
                    }
                }
                Kind::Degradation => s.degradation = parse(&doc.json)?,
                Kind::Breaker => {}
            }
        }
        for ((kind, name), doc) in &raw.docs {
            if *kind == Kind::Breaker {
                let fleet: FleetBreaker = parse(&doc.json)?;
                let (version, config) = s
                    .policies
                    .get(name)
                    .map(|p| (p.version, p.config.clone()))
                    .unwrap_or_default();
                s.breakers
                    .insert(name.clone(), Self::view(&fleet, &config, version, now));
            }
        }
        Ok(s)
    }

    /// Writes saved operator state into the backend wherever it holds nothing yet (a snapshot
    /// file at start, or a Redis that lost its data), with events for watchers.
    pub async fn restore(&self, saved: &SavedState) -> Result<(), RegistryError> {
        let now = self.now();
        for (key, policy) in &saved.policies {
            let json = to_json(&PolicyDoc {
                config: Some(policy.config.clone()),
            })?;
            let events = [to_json(&EventData::Policy {
                policy: policy.clone(),
            })?];
            self.store
                .restore(
                    &Put {
                        kind: Kind::Policy,
                        name: key,
                        json: &json,
                        index: "",
                        events: &events,
                    },
                    policy.version,
                )
                .await?;
        }
        for (key, value) in &saved.overrides {
            let (policy_version, config) = saved
                .policies
                .get(key)
                .map(|p| (p.version, p.config.clone()))
                .unwrap_or_default();
            let mut fleet = FleetBreaker::new(key, &config)?;
            let ctx = FleetContext {
                config: &config,
                random: self.random(),
                now,
            };
            let (_, transitions) = fleet.set_override(&ctx, Some(*value))?;
            let view = Self::view(&fleet, &config, policy_version, now);
            let events = Self::breaker_events(&view, &transitions)
                .iter()
                .map(to_json)
                .collect::<Result<Vec<_>, _>>()?;
            let json = to_json(&fleet)?;
            self.store
                .restore(
                    &Put {
                        kind: Kind::Breaker,
                        name: key,
                        json: &json,
                        index: fleet.record.state.as_str(),
                        events: &events,
                    },
                    1,
                )
                .await?;
        }
        for (name, view) in &saved.toggles {
            let json = to_json(&ToggleDoc {
                toggle: Some(view.toggle),
            })?;
            let events = [to_json(&EventData::Toggle {
                name: name.clone(),
                toggle: Some(*view),
            })?];
            self.store
                .restore(
                    &Put {
                        kind: Kind::Toggle,
                        name,
                        json: &json,
                        index: "",
                        events: &events,
                    },
                    view.version,
                )
                .await?;
        }
        if let Some(request) = &saved.degradation {
            let (open, total) = self.open_counts().await?;
            let d = Degradation::new(request.level, request.rules.clone(), open, total)
                .map_err(RegistryError::Internal)?;
            let json = to_json(&d)?;
            let events = [to_json(&EventData::Degradation { degradation: d })?];
            self.store
                .restore(
                    &Put {
                        kind: Kind::Degradation,
                        name: FLEET,
                        json: &json,
                        index: "",
                        events: &events,
                    },
                    1,
                )
                .await?;
        }
        Ok(())
    }

    /// Saves the operator state to the snapshot file, when one is configured (memory
    /// backend). Writers are serialized so an older state never overwrites a newer one.
    pub async fn persist(&self) -> Result<(), String> {
        let Some(path) = self.config.snapshot.clone() else {
            return Ok(());
        };
        let _guard = self.persist_lock.lock().await;
        let saved = SavedState::from_snapshot(&self.hub.mirror());
        crate::snapshot::save(&path, &saved).await
    }

    /// Unix milliseconds now (for logs and views).
    pub fn now_ms(&self) -> u64 {
        millis(self.now())
    }
}
