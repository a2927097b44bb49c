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

use crate::fleet::FleetGate;
use crate::proxy::Proxy;
use levee_admin::{
    apply_override, AdminBackend, AdminError, BreakerView, BulkheadView, ConfigStatus,
    HealthReport, OperatorOverride, OverrideResult, Readiness, RegistryStatus, TransitionView,
};
use levee_config::RegistryMode;
use levee_core::breaker::CircuitBreaker;
use levee_core::time::SystemClock;
use levee_core::{Clock, Timestamp};

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
            .map(|(key, b)| view(b, runtime.gates.get(key).map(AsRef::as_ref), now))
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
            breaker: view(breaker, gate, now),
            applied: value,
            transition: transition.as_ref().map(TransitionView::from),
        })
    }
}

/// A breaker's view with the fleet folded in: `state` effective, `fleet_state` the fleet's.
fn view(breaker: &CircuitBreaker, gate: Option<&FleetGate>, now: Timestamp) -> BreakerView {
    let mut view = BreakerView::of(breaker, now);
    if let Some(gate) = gate {
        view.fleet_state = gate.fleet_state();
        view.state = gate.effective(view.state);
    }
    view
}
