//! The proxy as levee-admin's [`AdminBackend`]: readiness, `/health`, metrics, breakers,
//! bulkheads and operator overrides, all answered from in-memory state.
//!
//! Readiness (SPEC §8): ready once the proxy exists (config loaded; the daemon builds it only
//! after the listeners are bound), `draining` from the moment draining starts.
//!
//! Breakers show their *effective* state (the more severe of local and fleet, SPEC §9) as
//! `state`, and the fleet's as `fleet_state`; `/health` shows the degradation level the proxy
//! acts on and the registry connection. Overrides set here are this instance's (its local
//! breakers); fleet-wide overrides are set at the registry.
//!
//! For the dashboard (levee-admin's `dashboard` module) it adds each breaker's thresholds and
//! time in state, the transitions recorded by the metrics' transition log, and the fleet
//! settings last received; the degradation level and toggles are read and set at the registry
//! (see the end of this file).

use crate::fleet::Fleet;
use crate::fleet::FleetGate;
use crate::proxy::Proxy;
use levee_admin::{
    apply_override, AdminBackend, AdminError, BreakerView, BulkheadView, ConfigStatus,
    HealthReport, OperatorOverride, OverrideResult, Readiness, RegistryStatus, TransitionView,
};
use levee_admin::{
    DashboardBreaker, DegradationUpdate, FleetBreaker, FleetError, FleetFuture, FleetSettings,
    FleetTransition, ToggleEntry, TransitionEvent,
};
use levee_admin::{FaultError, FaultView};
use levee_config::RegistryMode;
use levee_core::breaker::CircuitBreaker;
use levee_core::fault::FaultSpec;
use levee_core::fleet::{Degradation, Toggle};
use levee_core::time::SystemClock;
use levee_core::{Clock, Timestamp};
use levee_registry_client::api::{DegradationRequest, ToggleView};
use levee_registry_client::{Api, ClientError};
use std::collections::BTreeMap;

impl AdminBackend for Proxy {
    fn readiness(&self) -> Readiness {
        if self.is_draining() {
            Readiness::Draining
        } else {
            Readiness::Ready
        }
    }

    fn health(&self) -> HealthReport {
        let runtime = self.shared.runtime();
        let now = SystemClock.now();
        let status = self.shared.status();
        HealthReport {
            service: runtime.config.service.clone(),
            degradation_level: self.shared.degradation_level(),
            upstreams: runtime.upstreams.values().map(|u| u.health(now)).collect(),
            config: ConfigStatus {
                path: status.path.as_ref().map(|p| p.display().to_string()),
                generation: status.generation,
                last_reload: status.last_reload.clone(),
            },
            registry: self.shared.fleet.as_ref().map(|fleet| {
                let client = fleet.client();
                RegistryStatus {
                    mode: match fleet.mode() {
                        RegistryMode::Embedded => "embedded".into(),
                        RegistryMode::Remote => "remote".into(),
                    },
                    connected: client.connected(),
                    fleet_state_age_ms: client
                        .last_contact()
                        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                    stale: !client.is_fresh(),
                    url: Some(fleet.url().to_string()),
                }
            }),
        }
    }

    fn metrics(&self) -> String {
        self.metrics().encode()
    }

    fn breakers(&self) -> Vec<BreakerView> {
        let now = SystemClock.now();
        let runtime = self.shared.runtime();
        runtime
            .breakers
            .iter()
            .map(|(key, b)| {
                view(
                    b,
                    runtime.gates.get(key).map(AsRef::as_ref),
                    runtime.policies.get(key).map(|p| p.version),
                    now,
                )
            })
            .collect()
    }

    fn bulkheads(&self) -> Vec<BulkheadView> {
        self.shared
            .runtime()
            .bulkheads
            .iter()
            .map(|(partition, b)| BulkheadView {
                partition: partition.clone(),
                snapshot: b.snapshot(),
            })
            .collect()
    }

    fn set_override(
        &self,
        key: &str,
        value: OperatorOverride,
    ) -> Result<OverrideResult, AdminError> {
        let runtime = self.shared.runtime();
        let breaker = runtime
            .breakers
            .get(key)
            .ok_or_else(|| AdminError::UnknownBreaker {
                key: key.to_string(),
            })?;
        let now = SystemClock.now();
        let gate = runtime.gates.get(key).map(AsRef::as_ref);
        let transition = apply_override(breaker, value, now);
        if let Some(t) = &transition {
            crate::observe::transition(&self.shared.metrics, t, gate);
        }
        tracing::warn!(
            endpoint = key,
            r#override = value.as_str(),
            "operator override applied"
        );
        Ok(OverrideResult {
            breaker: view(
                breaker,
                gate,
                runtime.policies.get(key).map(|p| p.version),
                now,
            ),
            applied: value,
            transition: transition.as_ref().map(TransitionView::from),
        })
    }

    fn dashboard_breakers(&self) -> Vec<DashboardBreaker> {
        let now = SystemClock.now();
        let runtime = self.shared.runtime();
        let log = self.shared.metrics.transitions();
        runtime
            .breakers
            .iter()
            .map(|(key, b)| {
                let gate = runtime.gates.get(key).map(AsRef::as_ref);
                let config = b.config();
                DashboardBreaker {
                    local_state: b.state(),
                    view: view(b, gate, runtime.policies.get(key).map(|p| p.version), now),
                    configured_mode: Some(config.mode),
                    failure_rate_threshold: Some(config.failure_rate_threshold),
                    slow_call_rate_threshold: Some(config.slow_call_rate_threshold),
                    minimum_calls: Some(config.minimum_calls),
                    consecutive_failures_threshold: Some(config.consecutive_failures),
                    state_since_unix_ms: Some(
                        log.last_change(key)
                            .unwrap_or_else(|| log.started_unix_ms()),
                    ),
                }
            })
            .collect()
    }

    fn transitions_since(&self, seq: u64, limit: usize) -> Vec<TransitionEvent> {
        self.shared
            .metrics
            .transitions()
            .since(seq, limit)
            .into_iter()
            .map(|r| TransitionEvent {
                seq: r.seq,
                key: r.key.to_string(),
                from: r.from,
                to: r.to,
                reason: r.reason,
                at_unix_ms: r.at_unix_ms,
            })
            .collect()
    }

    fn fleet_settings(&self) -> Option<FleetSettings> {
        let snapshot = self.shared.fleet.as_ref()?.client().snapshot()?;
        let mut settings = settings(snapshot.degradation, &snapshot.toggles);
        settings.breakers = snapshot
            .breakers
            .iter()
            .map(|(key, b)| (key.clone(), fleet_breaker(b)))
            .collect();
        Some(settings)
    }

    fn degradation(&self) -> FleetFuture<Degradation> {
        let Some(fleet) = self.shared.fleet.clone() else {
            return levee_admin::dashboard::no_registry();
        };
        Box::pin(async move {
            match fleet.operator() {
                Some(api) => api.degradation().await.map_err(|e| fleet_error(&fleet, &e)),
                None => cached(&fleet).map(|s| s.degradation),
            }
        })
    }

    fn set_degradation(&self, update: DegradationUpdate) -> FleetFuture<Degradation> {
        let Some(fleet) = self.shared.fleet.clone() else {
            return levee_admin::dashboard::no_registry();
        };
        Box::pin(async move {
            let api = operator(&fleet)?;
            let rules = match update.rules {
                Some(rules) => rules,
                // Keep the rules in force: the dashboard sets the operator level only.
                None => {
                    api.degradation()
                        .await
                        .map_err(|e| fleet_error(&fleet, &e))?
                        .rules
                }
            };
            let request = DegradationRequest {
                level: update.level,
                rules,
            };
            api.set_degradation(&request)
                .await
                .map_err(|e| fleet_error(&fleet, &e))
        })
    }

    fn toggles(&self) -> FleetFuture<BTreeMap<String, ToggleEntry>> {
        let Some(fleet) = self.shared.fleet.clone() else {
            return levee_admin::dashboard::no_registry();
        };
        Box::pin(async move {
            match fleet.operator() {
                Some(api) => api
                    .toggles()
                    .await
                    .map(|t| settings(Degradation::default(), &t).toggles)
                    .map_err(|e| fleet_error(&fleet, &e)),
                None => cached(&fleet).map(|s| s.toggles),
            }
        })
    }

    fn set_toggle(&self, name: String, toggle: Toggle) -> FleetFuture<ToggleEntry> {
        let Some(fleet) = self.shared.fleet.clone() else {
            return levee_admin::dashboard::no_registry();
        };
        Box::pin(async move {
            let api = operator(&fleet)?;
            api.set_toggle(&name, toggle)
                .await
                .map(|v| ToggleEntry {
                    toggle: v.toggle,
                    version: v.version,
                })
                .map_err(|e| fleet_error(&fleet, &e))
        })
    }

    fn faults(&self) -> Vec<FaultView> {
        crate::fault::views(&self.shared.runtime())
    }

    fn set_fault(&self, route: &str, fault: Option<FaultSpec>) -> Result<FaultView, FaultError> {
        crate::fault::set(&self.shared.runtime(), route, fault)
    }
}

/// A breaker's view with the fleet folded in: `state` effective, `fleet_state` the fleet's.
fn view(
    breaker: &CircuitBreaker,
    gate: Option<&FleetGate>,
    policy_version: Option<u64>,
    now: Timestamp,
) -> BreakerView {
    let mut view = BreakerView::of(breaker, now);
    view.policy_version = policy_version;
    if let Some(gate) = gate {
        view.fleet_state = gate.fleet_state();
        view.state = gate.effective(view.state);
    }
    view
}

// ---- the dashboard's fleet controls (degradation level and toggles, SPEC §10) ----
//
// With the embedded registry, reads and writes go to it with its operator client, whose token
// is the admin token: the caller has just presented that token to the admin API. A remote
// registry's operator token is not this instance's to hold, so writes are refused there (409,
// saying where to make them) and reads answer from the registry client's watch cache while it
// is connected.

/// The dashboard's view of a registry breaker.
fn fleet_breaker(b: &levee_registry_client::api::BreakerView) -> FleetBreaker {
    FleetBreaker {
        state: b.state,
        counted: b.window.counted,
        failures: b.window.failures,
        open_until_unix_ms: b.open_until_ms,
        last_transition: b.last_transition.as_ref().map(|t| FleetTransition {
            from: t.from,
            to: t.to,
            reason: t.reason,
            at_unix_ms: t.at_ms,
        }),
    }
}

fn settings(degradation: Degradation, toggles: &BTreeMap<String, ToggleView>) -> FleetSettings {
    FleetSettings {
        degradation,
        breakers: BTreeMap::new(),
        toggles: toggles
            .iter()
            .map(|(name, v)| {
                (
                    name.clone(),
                    ToggleEntry {
                        toggle: v.toggle,
                        version: v.version,
                    },
                )
            })
            .collect(),
    }
}

/// The watch cache of a remote registry, while it is live.
fn cached(fleet: &Fleet) -> Result<FleetSettings, FleetError> {
    let client = fleet.client();
    match client.snapshot() {
        Some(s) if client.connected() => Ok(settings(s.degradation, &s.toggles)),
        _ => Err(FleetError::Unavailable(format!(
            "The registry at {} is unreachable, so the fleet's settings cannot be read now; \
             /health shows when it is connected again.",
            fleet.url()
        ))),
    }
}

fn operator(fleet: &Fleet) -> Result<&Api, FleetError> {
    fleet.operator().ok_or_else(|| {
        FleetError::Conflict(format!(
            "This instance uses the remote registry at {}: set the degradation level and \
             toggles there, with its operator token (PUT {0}/v1/degradation, PUT \
             {0}/v1/toggles/<name>).",
            fleet.url()
        ))
    })
}

fn fleet_error(fleet: &Fleet, e: &ClientError) -> FleetError {
    match e.status() {
        Some(400) | Some(422) => FleetError::Invalid(format!("The registry refused it: {e}.")),
        Some(status) if status < 500 && status != 429 => {
            FleetError::Conflict(format!("The registry at {} refused it: {e}.", fleet.url()))
        }
        _ => FleetError::Unavailable(format!(
            "The registry at {} cannot be reached ({e}); nothing was changed. Try again once \
             /health shows the registry connected.",
            fleet.url()
        )),
    }
}
