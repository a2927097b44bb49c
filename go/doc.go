// Package levee is the shared vocabulary of Levee's Go SDK: outcomes and their classification,
// request criticality, the closed set of error codes with their user-facing texts and the
// problem+json envelope, public names (headers, metric names), duration strings, and time and
// randomness as injected inputs.
//
// The contract is SPEC.md; the Rust crate levee-core is the reference implementation, and the
// JSON vectors under conformance/vectors prove that both behave identically (see
// conformance_test.go). Policies live in their own packages:
//
//	levee/breaker    SPEC §2 circuit breaker
//	levee/bulkhead   SPEC §3 bulkhead with criticality and adaptive limits
//	levee/retry      SPEC §4 retry decisions, backoff and jitter, retry budget
//	levee/deadline   SPEC §5 levee-timeout-ms and grpc-timeout, context deadlines
//	levee/ratelimit  SPEC §6 keyed token bucket
//	levee/levhttp    net/http client and server middleware
//	levee/levprom    Prometheus metrics with the SPEC §11 names
//
// Policy logic never reads a clock or a random source itself: every decision takes the current
// [Timestamp] as an argument and draws from an injected [Random], so tests use a [ManualClock]
// and a [ScriptedRandom] and never sleep.
package levee
