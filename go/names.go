package levee

// Every public string of the contract in one place (STYLE point 8), spelled exactly as in
// levee-core's names.rs: headers, metric names and the language label.

// HTTP header names (lower case, as HTTP/2 requires; net/http canonicalises them on the wire).
const (
	HeaderTimeoutMs      = "levee-timeout-ms"  // remaining deadline in integer milliseconds (§5)
	HeaderGRPCTimeout    = "grpc-timeout"      // gRPC's remaining deadline (§5)
	HeaderCriticality    = "levee-criticality" // critical, standard or sheddable (§3)
	HeaderDegraded       = "levee-degraded"    // stale; reason=<code> or static; reason=<code> (§7)
	HeaderRetryAfter     = "retry-after"       // on rejections and the envelope (§7)
	HeaderIdempotencyKey = "idempotency-key"   // makes POST/PATCH retryable (§4)
	HeaderTraceparent    = "traceparent"       // W3C trace context
	HeaderTracestate     = "tracestate"        // W3C trace context vendor state
	HeaderRequestID      = "x-request-id"      // request id propagated or created by the proxy
)

// Prometheus metric names (SPEC §11). Every series also carries service and language.
const (
	MetricCallsTotal                = "levee_calls_total"                  // counter: endpoint, outcome
	MetricCallDurationSeconds       = "levee_call_duration_seconds"        // histogram: endpoint, outcome
	MetricBreakerState              = "levee_breaker_state"                // gauge: endpoint, state
	MetricBreakerTransitionsTotal   = "levee_breaker_transitions_total"    // counter: endpoint, from, to, reason
	MetricBulkheadInFlight          = "levee_bulkhead_in_flight"           // gauge: partition
	MetricBulkheadQueueDepth        = "levee_bulkhead_queue_depth"         // gauge: partition
	MetricBulkheadRejectionsTotal   = "levee_bulkhead_rejections_total"    // counter: partition, criticality, reason
	MetricRetriesTotal              = "levee_retries_total"                // counter: endpoint, reason
	MetricRetryBudgetExhaustedTotal = "levee_retry_budget_exhausted_total" // counter: endpoint
	MetricFallbacksTotal            = "levee_fallbacks_total"              // counter: route, kind
	MetricRateLimitedTotal          = "levee_rate_limited_total"           // counter: route
	MetricDegradationLevel          = "levee_degradation_level"            // gauge
	MetricRegistryConnected         = "levee_registry_connected"           // gauge
)

// MetricNames lists every metric name, in SPEC order.
var MetricNames = [...]string{
	MetricCallsTotal, MetricCallDurationSeconds, MetricBreakerState, MetricBreakerTransitionsTotal,
	MetricBulkheadInFlight, MetricBulkheadQueueDepth, MetricBulkheadRejectionsTotal,
	MetricRetriesTotal, MetricRetryBudgetExhaustedTotal, MetricFallbacksTotal,
	MetricRateLimitedTotal, MetricDegradationLevel, MetricRegistryConnected,
}

// Language is the language label value of this implementation.
const Language = "go"
