//! The proxy's side of telemetry: the metric names and the log format are levee-telemetry's;
//! this file only says *when* the proxy reports, so every call site reports the same way.

use crate::fleet::FleetGate;
use levee_core::breaker::Transition;
use levee_core::bulkhead::Bulkhead;
use levee_telemetry::{Metrics, PartitionMetrics};

/// A breaker changed state: counted, the state gauge moved, and logged (warn when it opens,
/// so an outage is loud; info otherwise).
///
/// For a local breaker's transition, `gate` is its key's fleet gate: the gauge shows the
/// effective state (the more severe of local and fleet, SPEC §9), while the counted
/// transition keeps the local breaker's own `from`, `to` and reason. Fleet transitions are
/// published with `None`: their states are effective states already.
pub fn transition(metrics: &Metrics, t: &Transition, gate: Option<&FleetGate>) {
    metrics.breaker_transition(t);
    if let Some(gate) = gate {
        let effective = gate.effective(t.to);
        if effective != t.to {
            metrics.breaker_state(&t.key, effective);
        }
    }
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

/// [`bulkhead_gauges`] through the partition's handle (the request path has it).
pub fn partition_gauges(partition: &PartitionMetrics, bulkhead: &Bulkhead) {
    partition.gauges(bulkhead.in_flight(), bulkhead.queue_depth());
}
