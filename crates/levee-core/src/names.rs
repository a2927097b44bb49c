//! Every public string of the contract in one place (STYLE point 8): headers, metric names,
//! transition reasons and rejection reasons. Users, dashboards and the Go SDK depend on these
//! exact spellings; `conformance/vectors/names/` pins them for both languages.

/// HTTP header names (lower case, as HTTP/2 requires).
pub mod header {
    /// Remaining deadline in integer milliseconds (SPEC §5).
    pub const TIMEOUT_MS: &str = "levee-timeout-ms";
    /// gRPC's remaining deadline (SPEC §5).
    pub const GRPC_TIMEOUT: &str = "grpc-timeout";
    /// Request class: critical, standard or sheddable (SPEC §3).
    pub const CRITICALITY: &str = "levee-criticality";
    /// Marks a fallback response: `stale; reason=<code>` or `static; reason=<code>` (SPEC §7).
    pub const DEGRADED: &str = "levee-degraded";
    /// Retry-After on rejections and the envelope (SPEC §7).
    pub const RETRY_AFTER: &str = "retry-after";
    /// Makes POST/PATCH retryable (SPEC §4).
    pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
    /// W3C trace context.
    pub const TRACEPARENT: &str = "traceparent";
    /// W3C trace context vendor state.
    pub const TRACESTATE: &str = "tracestate";
    /// Request id propagated or created by the proxy.
    pub const REQUEST_ID: &str = "x-request-id";
}

/// Prometheus metric names (SPEC §11). Every series also carries `service` and `language`.
pub mod metric {
    /// counter: `endpoint`, `outcome`
    pub const CALLS_TOTAL: &str = "levee_calls_total";
    /// histogram: `endpoint`, `outcome`
    pub const CALL_DURATION_SECONDS: &str = "levee_call_duration_seconds";
    /// gauge, 1 for the current state: `endpoint`, `state`
    pub const BREAKER_STATE: &str = "levee_breaker_state";
    /// counter: `endpoint`, `from`, `to`, `reason`
    pub const BREAKER_TRANSITIONS_TOTAL: &str = "levee_breaker_transitions_total";
    /// gauge: `partition`
    pub const BULKHEAD_IN_FLIGHT: &str = "levee_bulkhead_in_flight";
    /// gauge: `partition`
    pub const BULKHEAD_QUEUE_DEPTH: &str = "levee_bulkhead_queue_depth";
    /// counter: `partition`, `criticality`, `reason`
    pub const BULKHEAD_REJECTIONS_TOTAL: &str = "levee_bulkhead_rejections_total";
    /// counter: `endpoint`, `reason`
    pub const RETRIES_TOTAL: &str = "levee_retries_total";
    /// counter: `endpoint`
    pub const RETRY_BUDGET_EXHAUSTED_TOTAL: &str = "levee_retry_budget_exhausted_total";
    /// counter: `route`, `kind`
    pub const FALLBACKS_TOTAL: &str = "levee_fallbacks_total";
    /// counter: `route`
    pub const RATE_LIMITED_TOTAL: &str = "levee_rate_limited_total";
    /// gauge
    pub const DEGRADATION_LEVEL: &str = "levee_degradation_level";
    /// gauge
    pub const REGISTRY_CONNECTED: &str = "levee_registry_connected";

    /// Every metric name, in SPEC order.
    pub const ALL: [&str; 13] = [
        CALLS_TOTAL,
        CALL_DURATION_SECONDS,
        BREAKER_STATE,
        BREAKER_TRANSITIONS_TOTAL,
        BULKHEAD_IN_FLIGHT,
        BULKHEAD_QUEUE_DEPTH,
        BULKHEAD_REJECTIONS_TOTAL,
        RETRIES_TOTAL,
        RETRY_BUDGET_EXHAUSTED_TOTAL,
        FALLBACKS_TOTAL,
        RATE_LIMITED_TOTAL,
        DEGRADATION_LEVEL,
        REGISTRY_CONNECTED,
    ];
}

/// The `language` label value of this implementation.
pub const LANGUAGE: &str = "rust";
