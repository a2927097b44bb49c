// Package retry is Levee's retry policy (SPEC §4), a port of levee-core's retry and budget
// modules proved identical by the conformance vectors: retry decisions, backoff with jitter,
// Retry-After parsing and the retry budget.
//
// After each attempt the caller asks Policy.Decide with what happened (Input); the answer is
// a retry after a wait, or a give-up with a fixed reason. The checks run in this order, and
// the first that applies decides:
//
//  1. the attempt's result is not in retry_on → not_retryable;
//  2. the request is not idempotent and retry_non_idempotent is false → non_idempotent
//     (IsIdempotent: GET, HEAD, OPTIONS, PUT, DELETE, TRACE, or an Idempotency-Key);
//  3. attempts_made >= max_attempts (the first try counts) → attempts_exhausted;
//  4. the breaker for the endpoint key is open → circuit_open;
//  5. the backoff is computed (one random draw unless jitter is none), and an upstream
//     Retry-After replaces it when longer;
//  6. with a deadline: Retry-After longer than the remaining time →
//     retry_after_exceeds_deadline; then a wait at least as long as the remaining time →
//     deadline_exceeded;
//  7. the retry budget refuses a withdrawal → retry_budget_exhausted (the last real response
//     is returned to the client);
//  8. otherwise retry after the wait. Only a retry that is actually decided spends budget.
package retry

import (
	"time"

	"github.com/levee-dev/levee/go"
)

// GiveUpReason is why a call is not retried. The spellings are public (logs, metrics,
// vectors).
type GiveUpReason uint8

// The reasons, in check order.
const (
	NotRetryable GiveUpReason = iota + 1
	NonIdempotent
	AttemptsExhausted
	CircuitOpen
	RetryAfterExceedsDeadline
	DeadlineExceeded
	RetryBudgetExhausted
)

// GiveUpReasons lists every reason, in check order.
var GiveUpReasons = [...]GiveUpReason{NotRetryable, NonIdempotent, AttemptsExhausted, CircuitOpen,
	RetryAfterExceedsDeadline, DeadlineExceeded, RetryBudgetExhausted}

var reasonNames = [...]string{"", "not_retryable", "non_idempotent", "attempts_exhausted", "circuit_open",
	"retry_after_exceeds_deadline", "deadline_exceeded", "retry_budget_exhausted"}

// String returns the public spelling.
func (r GiveUpReason) String() string {
	if int(r) < len(reasonNames) && r > 0 {
		return reasonNames[r]
	}
	return "none"
}

// ErrorCode returns the SPEC §7 code to answer with when no upstream response exists to
// return; ok is false when the call should be answered as for the last attempt's own result.
func (r GiveUpReason) ErrorCode() (code levee.Code, ok bool) {
	switch r {
	case CircuitOpen:
		return levee.CodeCircuitOpen, true
	case RetryBudgetExhausted:
		return levee.CodeRetryBudgetExhausted, true
	case RetryAfterExceedsDeadline, DeadlineExceeded:
		return levee.CodeDeadlineExceeded, true
	}
	return 0, false
}

// IsIdempotent reports whether a request may be sent twice (SPEC §4): the methods RFC 9110
// §9.2.2 calls idempotent (GET, HEAD, OPTIONS, PUT, DELETE, TRACE; matched case-sensitively),
// or any request with an Idempotency-Key header.
func IsIdempotent(method string, hasIdempotencyKey bool) bool {
	if hasIdempotencyKey {
		return true
	}
	switch method {
	case "GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE":
		return true
	}
	return false
}

// Input is what the caller knows after an attempt. Optional values are nil when absent.
type Input struct {
	AttemptsMade    uint32              // attempts so far, the one that just ended included
	Result          levee.AttemptResult // how that attempt ended
	Idempotent      bool                // whether the request may be sent again
	Remaining       *time.Duration      // time left before the deadline; nil = no deadline
	BreakerOpen     bool                // whether the breaker for the endpoint key is open now
	RetryAfter      *time.Duration      // the upstream's Retry-After, parsed
	PreviousBackoff *time.Duration      // the Backoff of this call's previous retry decision
}

// Decision is the answer of Decide: Retry with After and Backoff, or a give-up with Reason.
type Decision struct {
	Retry   bool
	After   time.Duration // the wait: the computed backoff, or Retry-After when longer
	Backoff time.Duration // the computed backoff alone; pass it as PreviousBackoff next time
	Reason  GiveUpReason  // when !Retry
}

// Policy is a validated retry config.
type Policy struct {
	config Config
}

// New returns the policy for config; zero fields take the SPEC defaults, and an impossible
// config is an error naming the key and the fix.
func New(config Config) (*Policy, error) {
	config = config.WithDefaults()
	if err := config.Validate(); err != nil {
		return nil, err
	}
	return &Policy{config: config}, nil
}

// Config returns the config, defaults filled in.
func (p *Policy) Config() Config { return p.config }

// NewBudget returns a budget with this policy's budget config, starting at start.
func (p *Policy) NewBudget(start levee.Timestamp) *Budget { return NewBudget(p.config.Budget, start) }

// Decide decides whether to retry after an attempt (see the package doc for the order of
// checks). budget is the endpoint key's retry budget; a retry decision has already withdrawn
// from it.
func (p *Policy) Decide(in Input, budget *Budget, now levee.Timestamp, rng levee.Random) Decision {
	c := p.config
	giveUp := func(r GiveUpReason) Decision { return Decision{Reason: r} }
	if !c.RetryOn.Matches(in.Result) {
		return giveUp(NotRetryable)
	}
	if !in.Idempotent && !c.RetryNonIdempotent {
		return giveUp(NonIdempotent)
	}
	if uint64(in.AttemptsMade) >= uint64(c.MaxAttempts) {
		return giveUp(AttemptsExhausted)
	}
	if in.BreakerOpen {
		return giveUp(CircuitOpen)
	}
	backoff := Backoff(c.Backoff, in.AttemptsMade, in.PreviousBackoff, rng)
	after := backoff
	if in.RetryAfter != nil && *in.RetryAfter > backoff {
		after = *in.RetryAfter
	}
	if in.Remaining != nil {
		if in.RetryAfter != nil && *in.RetryAfter > *in.Remaining {
			return giveUp(RetryAfterExceedsDeadline)
		}
		if after >= *in.Remaining {
			return giveUp(DeadlineExceeded)
		}
	}
	if !budget.TryWithdraw(now) {
		return giveUp(RetryBudgetExhausted)
	}
	return Decision{Retry: true, After: after, Backoff: backoff}
}
