//! The proxy as levee-admin's [`AdminBackend`]: readiness, `/health`, metrics, breakers,
//! bulkheads and operator overrides, all answered from in-memory state.
//!
//! Readiness (SPEC §8): ready once the proxy exists (config loaded; the daemon builds it only
//! after the listeners are bound), `draining` from the moment draining starts.

use crate::proxy::Proxy;
use levee_admin::{
    apply_override, AdminBackend, AdminError, BreakerView, BulkheadView, ConfigStatus,
    HealthReport, OperatorOverride, OverrideResult, Readiness, TransitionView,
};
use levee_core::time::SystemClock;
use levee_core::Clock;

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
            degradation_level: 0,
            upstreams: runtime.upstreams.values().map(|u| u.health(now)).collect(),
            config: ConfigStatus {
                path: status.path.as_ref().map(|p| p.display().to_string()),
                generation: status.generation,
                last_reload: status.last_reload.clone(),
            },
            registry: None,
        }
    }

    fn metrics(&self) -> String {
        self.metrics().encode()
    }

    fn breakers(&self) -> Vec<BreakerView> {
        let now = SystemClock.now();
        self.shared
            .runtime()
            .breakers
            .values()
            .map(|b| BreakerView::of(b, now))
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
        let transition = apply_override(breaker, value, now);
        if let Some(t) = &transition {
            crate::observe::transition(&self.shared.metrics, t);
        }
        tracing::warn!(
            endpoint = key,
            r#override = value.as_str(),
            "operator override applied"
        );
        Ok(OverrideResult {
            breaker: BreakerView::of(breaker, now),
            applied: value,
            transition: transition.as_ref().map(TransitionView::from),
        })
    }
}
