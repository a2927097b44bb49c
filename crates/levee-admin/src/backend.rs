//! What the admin API asks of the process it runs in, and the typed views it answers with.
//!
//! The proxy implements [`AdminBackend`]; the admin crate owns HTTP, auth and JSON shapes, so
//! the data plane never sees an admin request and the admin API never reaches into the data
//! plane's internals. Every view is a plain serde struct: its JSON is the public shape of
//! `/health` and `/api/*`, documented field by field.

use levee_core::breaker::{CircuitBreaker, Mode, Override, Snapshot, State, Transition};
use levee_core::bulkhead::BulkheadSnapshot;
use levee_core::fault::FaultSpec;
use levee_core::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The process the admin API reports on and steers. Implemented by the proxy.
///
/// Methods are called on the admin listener's tasks: they must answer from in-memory state
/// and never block on I/O (a registry round trip belongs in a background task whose last
/// result the method returns).
pub trait AdminBackend: Send + Sync + 'static {
    /// Whether the instance should receive traffic (`/readyz`).
    fn readiness(&self) -> Readiness;

    /// Upstreams, endpoints, degradation level, config and registry status (`/health`; the
    /// admin API adds readiness, breakers and bulkheads).
    fn health(&self) -> HealthReport;

    /// The metrics in the text format of [`levee_telemetry::CONTENT_TYPE`] (`/metrics`).
    fn metrics(&self) -> String;

    /// Every breaker, by endpoint key.
    fn breakers(&self) -> Vec<BreakerView>;

    /// One breaker; `None` for an unknown key. The default searches [`breakers`](Self::breakers).
    fn breaker(&self, key: &str) -> Option<BreakerView> {
        self.breakers().into_iter().find(|b| b.key == key)
    }

    /// Every bulkhead, by partition.
    fn bulkheads(&self) -> Vec<BulkheadView>;

    /// Every breaker as the dashboard shows it: the [`BreakerView`] plus its thresholds and
    /// how long it has been in its state. The default knows only the views.
    fn dashboard_breakers(&self) -> Vec<crate::DashboardBreaker> {
        self.breakers()
            .into_iter()
            .map(crate::DashboardBreaker::from_view)
            .collect()
    }

    /// The breaker transitions recorded after sequence number `seq`, oldest first, at most
    /// `limit` (the newest). The dashboard's feed; the default records none.
    fn transitions_since(&self, seq: u64, limit: usize) -> Vec<crate::TransitionEvent> {
        let _ = (seq, limit);
        Vec::new()
    }

    /// The fleet degradation setting and toggles as last received from the registry (no
    /// I/O); `None` without a registry or before its first state.
    fn fleet_settings(&self) -> Option<crate::FleetSettings> {
        None
    }

    /// Everything the dashboard shows (`GET /api/dashboard`, the `/api/events` snapshots).
    fn dashboard(&self) -> crate::DashboardSnapshot {
        crate::dashboard::gather(self)
    }

    /// The fleet degradation setting, read from the registry (`GET /api/degradation`).
    /// Unlike the other methods this one may do I/O: it returns a future, awaited off the
    /// data plane. The default: no registry (503).
    fn degradation(&self) -> crate::FleetFuture<levee_core::fleet::Degradation> {
        crate::dashboard::no_registry()
    }

    /// Sets the fleet degradation level at the registry (`PUT /api/degradation`).
    fn set_degradation(
        &self,
        update: crate::DegradationUpdate,
    ) -> crate::FleetFuture<levee_core::fleet::Degradation> {
        let _ = update;
        crate::dashboard::no_registry()
    }

    /// Every toggle, read from the registry (`GET /api/toggles`).
    fn toggles(
        &self,
    ) -> crate::FleetFuture<std::collections::BTreeMap<String, crate::ToggleEntry>> {
        crate::dashboard::no_registry()
    }

    /// Sets toggle `name` at the registry (`PUT /api/toggles/{name}`).
    fn set_toggle(
        &self,
        name: String,
        toggle: levee_core::fleet::Toggle,
    ) -> crate::FleetFuture<crate::ToggleEntry> {
        let _ = (name, toggle);
        crate::dashboard::no_registry()
    }

    /// Sets or clears the operator override of breaker `key` (see [`OperatorOverride`];
    /// [`apply_override`] implements the semantics over a local breaker). The backend
    /// publishes the transition (metrics, logs, registry) before returning.
    fn set_override(
        &self,
        key: &str,
        value: OperatorOverride,
    ) -> Result<OverrideResult, AdminError>;

    /// Every route with a fault in force (`GET /api/faults`): its admin fault if one was set,
    /// else its config fault when that is not empty. The default: none (a process without
    /// fault injection).
    fn faults(&self) -> Vec<FaultView> {
        Vec::new()
    }

    /// Replaces the runtime (admin) fault of `route` with `fault` (`PUT /api/faults/{route}`),
    /// or clears it with `None` (`DELETE`), after which the config's fault applies again.
    /// Answers the route's fault now in force. `fault` has passed [`FaultSpec::validate`].
    fn set_fault(&self, route: &str, fault: Option<FaultSpec>) -> Result<FaultView, FaultError> {
        let _ = (route, fault);
        Err(FaultError::Unsupported)
    }
}

/// Where the fault in force on a route comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultSource {
    /// The route's `fault` block in the config file.
    Config,
    /// Set at runtime through `PUT /api/faults/{route}`; stays until `DELETE`.
    Admin,
    /// No fault (the answer to a `DELETE` on a route without a config fault).
    None,
}

/// A route's fault in force, as `/api/faults` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultView {
    /// The route's name (its `route` metric label: `name`, or `route<N>`).
    pub route: String,
    /// Where the fault comes from.
    pub source: FaultSource,
    /// The fault, in the shape of the config's `fault` block (durations as strings).
    pub fault: FaultSpec,
}

/// Why a fault could not be set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultError {
    /// No route has this name (404).
    UnknownRoute {
        /// The name asked for.
        route: String,
        /// The routes there are, for the message.
        known: Vec<String>,
    },
    /// This process does not inject faults (503).
    Unsupported,
}

impl fmt::Display for FaultError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultError::UnknownRoute { route, known } => write!(
                f,
                "No route is named `{route}`: use a route's name as the `route` metric label \
                 shows it (`name`, or `route<N>` for the N-th unnamed route); routes: {}.",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ),
            FaultError::Unsupported => f.write_str("This process does not inject faults."),
        }
    }
}

impl std::error::Error for FaultError {}

/// Whether the instance should receive traffic (SPEC §8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Config loaded, listeners bound, not draining.
    Ready,
    /// SIGTERM received: `/readyz` is 503 at once while in-flight requests finish.
    Draining,
    /// Not ready yet, and why (shown in the `/readyz` body).
    NotReady(String),
}

impl Readiness {
    /// True only for [`Readiness::Ready`].
    pub fn is_ready(&self) -> bool {
        matches!(self, Readiness::Ready)
    }
}

/// The operator states an override can put a breaker in (`PUT /api/breakers/{key}/override`
/// with `{"state": "..."}`).
///
/// One override is in force at a time; each request replaces the previous one:
///
/// - `forced_open`: reject every call. Also switches the breaker to `enforce`, because a
///   forced-open breaker in `observe` mode would reject nothing and the operator's action
///   would silently do nothing.
/// - `disabled`: permit every call, still record outcomes.
/// - `observe`: clear any state override (back to `closed` with a clean window) and run the
///   breaker in `observe` mode: it evaluates, transitions and reports, but never rejects. The
///   safe way to roll a breaker out, or to stop one from rejecting while watching what it
///   would do.
/// - `none`: clear every override: back to `closed` (if forced open or disabled) and to the
///   mode the config asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperatorOverride {
    /// Reject every call.
    ForcedOpen,
    /// Permit every call, still record.
    Disabled,
    /// Evaluate and report, never reject.
    Observe,
    /// No override: the config's behaviour.
    #[serde(rename = "none")]
    Clear,
}

impl OperatorOverride {
    /// The wire spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            OperatorOverride::ForcedOpen => "forced_open",
            OperatorOverride::Disabled => "disabled",
            OperatorOverride::Observe => "observe",
            OperatorOverride::Clear => "none",
        }
    }
}

impl fmt::Display for OperatorOverride {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Applies `value` to a local breaker at `now` with the semantics documented on
/// [`OperatorOverride`]; returns the transition to publish, if the state changed.
pub fn apply_override(
    breaker: &CircuitBreaker,
    value: OperatorOverride,
    now: Timestamp,
) -> Option<Transition> {
    match value {
        OperatorOverride::ForcedOpen => {
            breaker.set_mode(Mode::Enforce);
            breaker.set_override(Some(Override::ForcedOpen), now)
        }
        OperatorOverride::Disabled => {
            breaker.set_mode(Mode::Enforce);
            breaker.set_override(Some(Override::Disabled), now)
        }
        OperatorOverride::Observe => {
            let transition = breaker.set_override(None, now);
            breaker.set_mode(Mode::Observe);
            transition
        }
        OperatorOverride::Clear => {
            let transition = breaker.set_override(None, now);
            breaker.set_mode(breaker.config().mode);
            transition
        }
    }
}

/// Why an override could not be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminError {
    /// No breaker has this endpoint key (404).
    UnknownBreaker {
        /// The key asked for.
        key: String,
    },
    /// The request is understood but cannot be carried out for this breaker (409), e.g. the
    /// fleet owns it; `message` says why and what to do instead.
    Conflict {
        /// What to tell the operator.
        message: String,
    },
    /// The backend cannot act right now (503), e.g. the registry is unreachable for a fleet
    /// override; `message` says what to do.
    Unavailable {
        /// What to tell the operator.
        message: String,
    },
}

impl fmt::Display for AdminError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminError::UnknownBreaker { key } => write!(
                f,
                "no breaker has the endpoint key `{key}`: GET /api/breakers lists the keys"
            ),
            AdminError::Conflict { message } | AdminError::Unavailable { message } => {
                f.write_str(message)
            }
        }
    }
}

impl std::error::Error for AdminError {}

/// A breaker as the admin API and `/health` show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreakerView {
    /// The endpoint key (`upstream` or `upstream/route`).
    pub key: String,
    /// The effective state (SPEC §2 words).
    pub state: State,
    /// `enforce` or `observe`.
    pub mode: Mode,
    /// Counted calls, failures and slow calls in the current window.
    pub window: WindowView,
    /// Failures in a row.
    pub consecutive_failures: u32,
    /// Milliseconds left in `open`; `null` in any other state.
    pub open_remaining_ms: Option<u64>,
    /// Half-open probes admitted so far.
    pub probes_admitted: u32,
    /// Half-open probes that reported.
    pub probes_reported: u32,
    /// The fleet's state for this key from the registry, when known (SPEC §9: the more
    /// severe of local and fleet state is `state`).
    pub fleet_state: Option<State>,
    /// The version of the registry's breaker policy this breaker runs instead of its local
    /// config (SPEC §9); absent when it runs its local config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_version: Option<u64>,
}

/// A breaker window's totals with their rates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WindowView {
    /// Calls counted toward rates.
    pub counted: u64,
    /// Failures and timeouts.
    pub failures: u64,
    /// Slow calls.
    pub slow: u64,
    /// `failures / counted` in percent; `null` with no counted call.
    pub failure_rate: Option<f64>,
    /// `slow / counted` in percent; `null` with no counted call.
    pub slow_call_rate: Option<f64>,
}

impl BreakerView {
    /// The view of a local breaker's snapshot (no fleet state).
    pub fn from_snapshot(key: &str, snapshot: &Snapshot) -> BreakerView {
        let w = snapshot.window;
        let rate = |part: u64| (w.counted > 0).then(|| part as f64 * 100.0 / w.counted as f64);
        BreakerView {
            key: key.to_owned(),
            state: snapshot.state,
            mode: if snapshot.observe {
                Mode::Observe
            } else {
                Mode::Enforce
            },
            window: WindowView {
                counted: w.counted,
                failures: w.failures,
                slow: w.slow,
                failure_rate: rate(w.failures),
                slow_call_rate: rate(w.slow),
            },
            consecutive_failures: snapshot.consecutive_failures,
            open_remaining_ms: snapshot
                .open_remaining
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            probes_admitted: snapshot.probes_admitted,
            probes_reported: snapshot.probes_reported,
            fleet_state: None,
            policy_version: None,
        }
    }

    /// The view of a local breaker, now.
    pub fn of(breaker: &CircuitBreaker, now: Timestamp) -> BreakerView {
        BreakerView::from_snapshot(breaker.key(), &breaker.snapshot(now))
    }
}

/// A transition as the override API reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransitionView {
    /// The endpoint key.
    pub key: String,
    /// The state left.
    pub from: State,
    /// The state entered.
    pub to: State,
    /// Why (`operator` for overrides).
    pub reason: levee_core::breaker::Reason,
}

impl From<&Transition> for TransitionView {
    fn from(t: &Transition) -> Self {
        TransitionView {
            key: t.key.to_string(),
            from: t.from,
            to: t.to,
            reason: t.reason,
        }
    }
}

/// The answer to an override: the breaker afterwards, and the transition it caused (`null`
/// when the state did not change, e.g. forcing open an already forced-open breaker, or
/// switching the mode only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OverrideResult {
    /// The breaker after the override.
    pub breaker: BreakerView,
    /// The override now in force.
    #[serde(rename = "override")]
    pub applied: OperatorOverride,
    /// The state change, if any.
    pub transition: Option<TransitionView>,
}

/// A bulkhead as the admin API and `/health` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BulkheadView {
    /// The partition (an upstream or a route).
    pub partition: String,
    /// Limit, in-flight, queue and per-class numbers.
    #[serde(flatten)]
    pub snapshot: BulkheadSnapshot,
}

/// What the backend reports for `/health`.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct HealthReport {
    /// The config's `service`.
    pub service: String,
    /// The fleet degradation level, 0 (normal) to 3 (critical traffic only).
    pub degradation_level: u8,
    /// Every upstream and its endpoints.
    pub upstreams: Vec<UpstreamHealth>,
    /// The config in force and the last reload.
    pub config: ConfigStatus,
    /// The registry connection; `null` when none is configured.
    pub registry: Option<RegistryStatus>,
}

/// One upstream's endpoints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UpstreamHealth {
    /// The upstream's name.
    pub name: String,
    /// Endpoints that are healthy and not ejected (can take traffic).
    pub available_endpoints: usize,
    /// Every endpoint.
    pub endpoints: Vec<EndpointHealth>,
}

impl UpstreamHealth {
    /// An upstream with `endpoints`, counting the available ones.
    pub fn new(name: impl Into<String>, endpoints: Vec<EndpointHealth>) -> Self {
        UpstreamHealth {
            name: name.into(),
            available_endpoints: endpoints.iter().filter(|e| e.is_available()).count(),
            endpoints,
        }
    }
}

/// What active health checks last said about an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointStatus {
    /// Passing health checks (or none configured).
    Healthy,
    /// Failing health checks.
    Unhealthy,
    /// Not checked yet.
    Unknown,
}

/// One endpoint of an upstream (SPEC §8).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointHealth {
    /// `host:port`.
    pub address: String,
    /// The active health-check verdict.
    pub health: EndpointStatus,
    /// Ejected by passive outlier detection.
    pub ejected: bool,
    /// Milliseconds until the ejection ends; `null` when not ejected.
    pub ejection_remaining_ms: Option<u64>,
    /// Times this endpoint has been ejected (its ejection time is multiplied by this).
    pub ejections: u32,
    /// Balancing weight, 0.1 to 1.0 while slow start ramps it up, else 1.0.
    pub weight: f64,
    /// Requests in flight to this endpoint.
    pub in_flight: u32,
}

impl EndpointHealth {
    /// True when the endpoint can take traffic.
    pub fn is_available(&self) -> bool {
        !self.ejected && self.health != EndpointStatus::Unhealthy
    }
}

/// The config in force and the outcome of the last reload (SPEC §12).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct ConfigStatus {
    /// The config file.
    pub path: Option<String>,
    /// Configs applied since start: 1 for the initial one, +1 per successful reload.
    pub generation: u64,
    /// The last reload attempt; `null` when there was none.
    pub last_reload: Option<ReloadAttempt>,
}

/// One reload attempt (SIGHUP or a file change).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReloadAttempt {
    /// Whether the new config was applied.
    pub ok: bool,
    /// When, in milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
    /// Why it was rejected (file, line, column and fix); the previous config keeps running.
    pub error: Option<String>,
}

/// The registry connection (SPEC §9).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegistryStatus {
    /// `embedded` or `remote`.
    pub mode: String,
    /// Whether the registry is reachable (`levee_registry_connected`).
    pub connected: bool,
    /// Age of the last fleet state received, in milliseconds; `null` before the first.
    pub fleet_state_age_ms: Option<u64>,
    /// True once the registry has been unreachable for longer than `registry.stale_ttl`: the
    /// last fleet state is no longer applied and the instance runs on its local breakers
    /// alone (SPEC §9). Also true before the first connection.
    pub stale: bool,
    /// The registry's base URL (for an embedded registry, its loopback address: operators
    /// reach its API there with the admin token).
    pub url: Option<String>,
}
