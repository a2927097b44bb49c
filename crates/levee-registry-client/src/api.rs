//! The registry's wire types (`api/registry.openapi.yaml`), shared by the server, this client
//! and the tests so that the three cannot drift apart.
//!
//! Times on the wire are Unix milliseconds (`*_ms`), durations are milliseconds, and breaker
//! states, reasons, outcomes and overrides use the SPEC spellings. Breaker policies travel as
//! the SPEC §2 config object, durations as strings (`"5s"`), exactly as in the YAML file.

use levee_core::breaker::{BreakerConfig, Reason, State};
use levee_core::fleet::{Degradation, FleetOverride, LevelRule, Toggle};
use levee_core::Outcome;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `POST /v1/reports`: one instance's batched outcome counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportRequest {
    /// The reporting service (metrics label `service`).
    pub service: String,
    /// `rust` or `go`.
    pub language: String,
    /// The reporting instance's id.
    pub instance: String,
    /// Counts per endpoint key.
    pub endpoints: Vec<EndpointReport>,
}

/// Counts of one endpoint key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointReport {
    /// The endpoint key (SPEC §2).
    pub key: String,
    /// One bucket per second.
    pub buckets: Vec<ReportBucket>,
}

/// One second of one endpoint key's outcomes at one instance. Counts are deltas: the
/// registry adds buckets of the same second, so an instance may report a second in parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportBucket {
    /// The bucket's second, in Unix seconds.
    pub start_s: u64,
    /// `success` outcomes.
    #[serde(default)]
    pub success: u64,
    /// `failure` outcomes.
    #[serde(default)]
    pub failure: u64,
    /// `timeout` outcomes.
    #[serde(default)]
    pub timeout: u64,
    /// Counted calls that were slow (at least `slow_call_duration`).
    #[serde(default)]
    pub slow: u64,
    /// `cancelled` outcomes (not counted toward rates).
    #[serde(default)]
    pub cancelled: u64,
    /// `rejected` outcomes (not counted toward rates).
    #[serde(default)]
    pub rejected: u64,
    /// `ignored` outcomes (not counted toward rates).
    #[serde(default)]
    pub ignored: u64,
    /// Sum of the counted calls' durations, in milliseconds.
    #[serde(default)]
    pub latency_sum_ms: u64,
}

impl ReportBucket {
    /// Adds one outcome.
    pub fn add(&mut self, outcome: Outcome, duration_ms: u64, slow: bool) {
        let counted = outcome.is_counted();
        match outcome {
            Outcome::Success => self.success += 1,
            Outcome::Failure => self.failure += 1,
            Outcome::Timeout => self.timeout += 1,
            Outcome::Cancelled => self.cancelled += 1,
            Outcome::Rejected => self.rejected += 1,
            Outcome::Ignored => self.ignored += 1,
        }
        if counted {
            self.slow += u64::from(slow);
            self.latency_sum_ms = self.latency_sum_ms.saturating_add(duration_ms);
        }
    }

    /// Adds another bucket's counts (same second).
    pub fn merge(&mut self, other: &ReportBucket) {
        self.success = self.success.saturating_add(other.success);
        self.failure = self.failure.saturating_add(other.failure);
        self.timeout = self.timeout.saturating_add(other.timeout);
        self.slow = self.slow.saturating_add(other.slow);
        self.cancelled = self.cancelled.saturating_add(other.cancelled);
        self.rejected = self.rejected.saturating_add(other.rejected);
        self.ignored = self.ignored.saturating_add(other.ignored);
        self.latency_sum_ms = self.latency_sum_ms.saturating_add(other.latency_sum_ms);
    }
}

/// What the registry did with a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ReportResponse {
    /// Buckets added to fleet windows.
    pub accepted: u64,
    /// Buckets older than the window (or than its last clearing): dropped.
    pub late: u64,
    /// Buckets that arrived while the fleet breaker was open: not counted.
    pub not_counted: u64,
}

/// Window totals of a fleet breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WindowTotals {
    /// Counted calls.
    pub counted: u64,
    /// Failures and timeouts.
    pub failures: u64,
    /// Slow calls.
    pub slow: u64,
}

/// A transition event `{from, to, reason, at}` (SPEC §2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransitionView {
    /// The state left.
    pub from: State,
    /// The state entered.
    pub to: State,
    /// The fixed reason word.
    pub reason: Reason,
    /// When, in Unix milliseconds.
    pub at_ms: u64,
}

/// A fleet breaker as readers and watchers see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreakerView {
    /// The endpoint key.
    pub key: String,
    /// The fleet state.
    pub state: State,
    /// `observe`: the fleet breaker never rejects.
    pub observe: bool,
    /// The operator override, if any.
    #[serde(rename = "override")]
    pub override_: Option<FleetOverride>,
    /// When `open` ends and a probe lease may be granted (Unix ms), while open.
    pub open_until_ms: Option<u64>,
    /// Probes the whole fleet may send at once (`half_open.permitted_calls`).
    pub permitted_probes: u32,
    /// Probe leases currently held.
    pub leased_probes: u32,
    /// Probes that reported in this half-open round.
    pub reported_probes: u32,
    /// Fleet window totals when the view was taken.
    pub window: WindowTotals,
    /// The last transition.
    pub last_transition: Option<TransitionView>,
    /// Bumps on every transition.
    pub generation: u64,
    /// The policy version the breaker runs (0 = the built-in SPEC defaults).
    pub policy_version: u64,
}

/// `PUT /v1/breakers/{key}/override`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideRequest {
    /// `forced_open`, `disabled` or `observe`.
    #[serde(rename = "override")]
    pub value: FleetOverride,
}

/// `POST /v1/breakers/{key}/leases`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseRequest {
    /// The asking instance.
    pub instance: String,
    /// How long the lease lasts before the probe counts as cancelled (server default when
    /// absent; capped by the server's maximum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
}

/// The answer to a lease request. Denials are answers, not errors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseResponse {
    /// True when the caller may send a call.
    pub granted: bool,
    /// True when the call is a fleet probe: complete the lease with its outcome.
    pub probe: bool,
    /// The lease to complete (probes only).
    pub lease_id: Option<String>,
    /// When the lease lapses (Unix ms; probes only).
    pub expires_at_ms: Option<u64>,
    /// The fleet state after the request.
    pub state: State,
    /// When asking again may succeed (denials only, when known).
    pub retry_after_ms: Option<u64>,
}

/// `POST /v1/breakers/{key}/leases/{lease_id}/complete`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompleteRequest {
    /// How the probe ended.
    pub outcome: Outcome,
    /// How long it took, in milliseconds (decides `slow`).
    #[serde(default)]
    pub duration_ms: u64,
}

/// A named toggle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToggleView {
    /// `on`, `off` or `percent`.
    #[serde(flatten)]
    pub toggle: Toggle,
    /// Bumps on every change of this toggle.
    pub version: u64,
}

/// `PUT /v1/degradation`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DegradationRequest {
    /// The operator level, 0 (normal) to 3 (critical traffic only).
    pub level: u8,
    /// Rules that raise the level while they hold.
    #[serde(default)]
    pub rules: Vec<LevelRule>,
}

/// A breaker policy distributed by the registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyView {
    /// The endpoint key.
    pub key: String,
    /// Bumps on every change (0 = no policy was ever set: the SPEC defaults).
    pub version: u64,
    /// The SPEC §2 breaker config.
    pub config: BreakerConfig,
}

/// Everything the registry holds, as of one event id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct FleetSnapshot {
    /// The id of the last event this snapshot includes.
    pub event_id: u64,
    /// True when the registry is serving last-known state because its backend is down.
    #[serde(default)]
    pub degraded: bool,
    /// Fleet breakers by key.
    pub breakers: BTreeMap<String, BreakerView>,
    /// Toggles by name.
    pub toggles: BTreeMap<String, ToggleView>,
    /// The degradation level.
    pub degradation: Degradation,
    /// Distributed policies by key.
    pub policies: BTreeMap<String, PolicyView>,
}

/// One change on the watch stream. The SSE `event:` field is the `type` value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventData {
    /// Everything, replacing what the watcher had (first event of a fresh or too-old watch).
    Snapshot(Box<FleetSnapshot>),
    /// A fleet breaker transition or override change.
    Breaker {
        /// The breaker after the change.
        breaker: BreakerView,
        /// The transition, when the state changed.
        transition: Option<TransitionView>,
    },
    /// A toggle was set or deleted.
    Toggle {
        /// Its name.
        name: String,
        /// The new value; absent when deleted.
        toggle: Option<ToggleView>,
    },
    /// The degradation level or its rules changed.
    Degradation {
        /// The new setting and effective level.
        degradation: Degradation,
    },
    /// A policy was set or reset (reset: back to the SPEC defaults, the version still bumps so
    /// that every instance can tell it is current).
    Policy {
        /// The policy.
        policy: PolicyView,
    },
    /// The registry lost or regained its backend. While it is lost, what the registry serves
    /// is last-known state: clients count their `stale_ttl` from that moment, exactly as if
    /// the registry itself were unreachable. Not kept in the ring; carries the id of the last
    /// event sent.
    Status {
        /// False while the backend is unreachable.
        backend_connected: bool,
    },
}

impl EventData {
    /// The SSE `event:` name.
    pub fn kind(&self) -> &'static str {
        match self {
            EventData::Snapshot(_) => "snapshot",
            EventData::Breaker { .. } => "breaker",
            EventData::Toggle { .. } => "toggle",
            EventData::Degradation { .. } => "degradation",
            EventData::Policy { .. } => "policy",
            EventData::Status { .. } => "status",
        }
    }
}

/// A watch-stream event with its id.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Monotonically increasing; resume with `Last-Event-ID`.
    pub id: u64,
    /// What changed.
    pub data: EventData,
}

impl FleetSnapshot {
    /// Applies one event, as a watcher does.
    pub fn apply(&mut self, id: u64, data: &EventData) {
        match data {
            EventData::Snapshot(s) => {
                *self = (**s).clone();
            }
            EventData::Breaker { breaker, .. } => {
                self.breakers.insert(breaker.key.clone(), breaker.clone());
            }
            EventData::Toggle { name, toggle } => match toggle {
                Some(t) => {
                    self.toggles.insert(name.clone(), *t);
                }
                None => {
                    self.toggles.remove(name);
                }
            },
            EventData::Degradation { degradation } => self.degradation = degradation.clone(),
            EventData::Policy { policy } => {
                self.policies.insert(policy.key.clone(), policy.clone());
            }
            EventData::Status { backend_connected } => self.degraded = !backend_connected,
        }
        self.event_id = self.event_id.max(id);
    }
}

/// `GET /healthz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// `ok`, or `degraded` while the backend is unreachable.
    pub status: String,
    /// `memory` or `redis`.
    pub backend: String,
    /// False while the backend is unreachable.
    pub backend_connected: bool,
    /// `open` (serve last-known state) or `closed` (503 while the backend is down).
    pub fail_mode: String,
    /// The last event id this replica has seen.
    pub event_id: u64,
}

/// The RFC 9457 envelope the registry answers errors with (SPEC §7's shape; `bad_request`
/// is SPEC §7's code, the others name the registry API's own failures).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// `urn:levee:error:<code>`.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// Short title.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// The code.
    pub code: String,
    /// What was wrong and what to do.
    pub detail: String,
    /// True when the answer is degraded rather than the caller's fault.
    pub degraded: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toggle_views_are_flat() {
        let v = ToggleView {
            toggle: Toggle::Percent { percent: 25 },
            version: 3,
        };
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(json, r#"{"state":"percent","percent":25,"version":3}"#);
        assert_eq!(serde_json::from_str::<ToggleView>(&json).unwrap(), v);
    }

    #[test]
    fn events_are_tagged_with_their_type() {
        let e = EventData::Toggle {
            name: "x".into(),
            toggle: None,
        };
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(json, r#"{"type":"toggle","name":"x","toggle":null}"#);
        assert_eq!(serde_json::from_str::<EventData>(&json).unwrap(), e);
    }

    #[test]
    fn unknown_report_fields_are_rejected() {
        let err = serde_json::from_str::<ReportBucket>(r#"{"start_s":1,"sucess":2}"#);
        assert!(err.is_err());
    }
}
