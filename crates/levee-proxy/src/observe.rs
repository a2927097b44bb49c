//! The proxy's side of telemetry: the metric names and the log format are levee-telemetry's;
//! this file only says *when* the proxy reports, so every call site reports the same way.

use levee_core::breaker::Transition;
use levee_core::bulkhead::Bulkhead;
use levee_telemetry::Metrics;

/// A breaker changed state: counted, the state gauge moved, and logged (warn when it opens,
/// so an outage is loud; info otherwise).
pub fn transition(metrics: &Metrics, t: &Transition) {
    metrics.breaker_transition(t);
    let opened = matches!(
        t.to,
        levee_core::breaker::State::Open | levee_core::breaker::State::ForcedOpen
    );
    if opened {
        tracing::warn!(
            endpoint = %t.key, from = %t.from, to = %t.to, reason = %t.reason,
            "circuit breaker opened"
        );
    } else {
        tracing::info!(
            endpoint = %t.key, from = %t.from, to = %t.to, reason = %t.reason,
            "circuit breaker changed state"
        );
    }
}

/// Refreshes a bulkhead partition's gauges after an admission or a release.
pub fn bulkhead_gauges(metrics: &Metrics, partition: &str, bulkhead: &Bulkhead) {
    metrics.bulkhead_gauges(partition, bulkhead.in_flight(), bulkhead.queue_depth());
}
