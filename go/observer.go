package levee

import "time"

// Observer receives what policies and middleware did, for metrics and logs. levprom.Metrics
// implements it with the SPEC §11 metric names. Methods must be safe for concurrent use and
// cheap; they are never called with a policy's lock held.
type Observer interface {
	// Call is one guarded call to endpoint that ended in outcome after d.
	Call(endpoint string, outcome Outcome, d time.Duration)
	// BreakerTransition is a breaker transition (states and reason as their wire words).
	BreakerTransition(endpoint, from, to, reason string)
	// BulkheadRejected is a call a bulkhead refused (reason full, queue_timeout or evicted).
	BulkheadRejected(partition string, class Criticality, reason string)
	// BulkheadLoad is a bulkhead's in-flight count and queue depth after a change.
	BulkheadLoad(partition string, inFlight, queueDepth int)
	// Retry is a retry of a call to endpoint; reason is what was retried (the attempt's
	// result, such as 503 or connect_failure).
	Retry(endpoint, reason string)
	// RetryBudgetExhausted is a retry refused by endpoint's retry budget.
	RetryBudgetExhausted(endpoint string)
	// Fallback is a fallback served for route (kind: stale, static or hook).
	Fallback(route, kind string)
	// RateLimited is a request refused by route's rate limit.
	RateLimited(route string)
}

// NopObserver is an Observer that does nothing; embed it to implement only some methods.
type NopObserver struct{}

// Call does nothing.
func (NopObserver) Call(string, Outcome, time.Duration) {}

// BreakerTransition does nothing.
func (NopObserver) BreakerTransition(string, string, string, string) {}

// BulkheadRejected does nothing.
func (NopObserver) BulkheadRejected(string, Criticality, string) {}

// BulkheadLoad does nothing.
func (NopObserver) BulkheadLoad(string, int, int) {}

// Retry does nothing.
func (NopObserver) Retry(string, string) {}

// RetryBudgetExhausted does nothing.
func (NopObserver) RetryBudgetExhausted(string) {}

// Fallback does nothing.
func (NopObserver) Fallback(string, string) {}

// RateLimited does nothing.
func (NopObserver) RateLimited(string) {}
