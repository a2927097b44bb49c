package levee

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Code is one of the closed set of reasons Levee answered instead of the upstream (SPEC §7).
// Each has a status, a title and a detail text from one catalogue shared with levee-core.
type Code uint8

// The error codes, in SPEC order.
const (
	CodeCircuitOpen          Code = iota + 1 // breaker open or forced open
	CodeBulkheadFull                         // no slot and no queue room, wait expired, or evicted
	CodeRateLimited                          // the rate limit was exceeded
	CodeRetryBudgetExhausted                 // budget spent and no upstream response to return
	CodeDeadlineExceeded                     // the deadline was spent before or during the call
	CodeUpstreamUnavailable                  // no healthy endpoint, or the connection failed
	CodeUpstreamTimeout                      // the upstream did not answer in time
	CodeFeatureDisabled                      // the route is shed at the current degradation level
	CodeDraining                             // the instance is shutting down
	CodeBadRequest                           // a malformed Levee header or request
)

// Codes lists every code, in SPEC order.
var Codes = [...]Code{
	CodeCircuitOpen, CodeBulkheadFull, CodeRateLimited, CodeRetryBudgetExhausted,
	CodeDeadlineExceeded, CodeUpstreamUnavailable, CodeUpstreamTimeout, CodeFeatureDisabled,
	CodeDraining, CodeBadRequest,
}

var codeNames = [...]string{
	"", "circuit_open", "bulkhead_full", "rate_limited", "retry_budget_exhausted",
	"deadline_exceeded", "upstream_unavailable", "upstream_timeout", "feature_disabled",
	"draining", "bad_request",
}

// String returns the code field and the suffix of the problem type.
func (c Code) String() string {
	if c >= 1 && int(c) < len(codeNames) {
		return codeNames[c]
	}
	return "code(" + strconv.Itoa(int(c)) + ")"
}

// ParseCode reads the wire spelling.
func ParseCode(s string) (Code, bool) {
	for _, c := range Codes {
		if c.String() == s {
			return c, true
		}
	}
	return 0, false
}

// Status returns the HTTP status Levee answers with.
func (c Code) Status() int {
	switch c {
	case CodeRateLimited:
		return 429
	case CodeDeadlineExceeded, CodeUpstreamTimeout:
		return 504
	case CodeUpstreamUnavailable:
		return 502
	case CodeBadRequest:
		return 400
	}
	return 503
}

// TypeURI returns the problem type: urn:levee:error:<code>.
func (c Code) TypeURI() string { return "urn:levee:error:" + c.String() }

// Title returns the short, stable title.
func (c Code) Title() string {
	switch c {
	case CodeRateLimited:
		return "Too many requests"
	case CodeDeadlineExceeded, CodeUpstreamTimeout:
		return "Request took too long"
	case CodeFeatureDisabled:
		return "Feature temporarily turned off"
	case CodeDraining:
		return "Server is restarting"
	case CodeBadRequest:
		return "Bad request"
	}
	return "Service temporarily unavailable"
}

// Degraded reports whether the response is a degraded answer rather than the client's fault.
func (c Code) Degraded() bool { return c != CodeBadRequest }

// Detail returns the detail text: plain words, naming the upstream and when to try again.
// retryAfter is optional: left out, the text says "shortly"; given (even 0), "in about N s"
// with N = RetryAfterSeconds.
func (c Code) Detail(upstream string, retryAfter ...time.Duration) string {
	when := "shortly"
	if len(retryAfter) > 0 {
		when = fmt.Sprintf("in about %d s", RetryAfterSeconds(retryAfter[0]))
	}
	switch c {
	case CodeCircuitOpen:
		return fmt.Sprintf("%s is failing; Levee is protecting it and will retry %s.", upstream, when)
	case CodeBulkheadFull:
		return fmt.Sprintf("%s is at capacity; please try again %s.", upstream, when)
	case CodeRateLimited:
		return fmt.Sprintf("Too many requests to %s; please try again %s.", upstream, when)
	case CodeRetryBudgetExhausted:
		return fmt.Sprintf("%s is failing and Levee has stopped retrying to let it recover; please try again %s.", upstream, when)
	case CodeDeadlineExceeded:
		return fmt.Sprintf("The request ran out of time before %s could answer.", upstream)
	case CodeUpstreamUnavailable:
		return fmt.Sprintf("%s cannot be reached right now; please try again %s.", upstream, when)
	case CodeUpstreamTimeout:
		return fmt.Sprintf("%s did not answer in time.", upstream)
	case CodeFeatureDisabled:
		return fmt.Sprintf("%s is turned off for now to keep the most important features running.", upstream)
	case CodeDraining:
		return "This server is shutting down; please try again, another one will answer."
	case CodeBadRequest:
		return fmt.Sprintf("The request to %s was malformed.", upstream)
	}
	return c.String()
}

// RetryAfterSeconds returns whole seconds for Retry-After and retry_after_s: rounded up, at
// least 1, so clients never retry before Levee would let them through.
func RetryAfterSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 1
	}
	secs := int64(d / time.Second)
	if d%time.Second != 0 {
		secs++
	}
	return max(secs, 1)
}

// Error is the error every Levee policy returns when it refuses or ends a call. It matches the
// sentinel of its code with errors.Is (errors.Is(err, levee.ErrCircuitOpen)) and unwraps to
// its cause, if any.
type Error struct {
	Code       Code
	Upstream   string        // the endpoint key, partition or route, for the detail text
	Reason     string        // the policy's reason word, such as "bulkhead_full" or "evicted"
	RetryAfter time.Duration // when to try again; 0 when unknown
	Err        error         // the cause, if any
}

// Error returns "levee: <code>[ (<reason>)]: <detail>[: <cause>]".
func (e *Error) Error() string {
	msg := "levee: " + e.Code.String()
	if e.Reason != "" && e.Reason != e.Code.String() {
		msg += " (" + e.Reason + ")"
	}
	if e.Upstream != "" {
		msg += ": " + e.detail()
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) detail() string {
	if e.RetryAfter > 0 {
		return e.Code.Detail(e.Upstream, e.RetryAfter)
	}
	return e.Code.Detail(e.Upstream)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is a *Error with the same code: the sentinels below match every
// error of their code.
func (e *Error) Is(target error) bool {
	var t *Error
	if errors.As(target, &t) {
		return t.Code == e.Code
	}
	return false
}

// Outcome returns the outcome of a call that ended in this error: Timeout for
// upstream_timeout, Failure for upstream_unavailable, Rejected for every other code (Levee
// refused the call).
func (e *Error) Outcome() Outcome {
	switch e.Code {
	case CodeUpstreamTimeout:
		return Timeout
	case CodeUpstreamUnavailable:
		return Failure
	}
	return Rejected
}

// Sentinel errors, one per code, for errors.Is.
var (
	ErrCircuitOpen          = &Error{Code: CodeCircuitOpen}
	ErrBulkheadFull         = &Error{Code: CodeBulkheadFull}
	ErrRateLimited          = &Error{Code: CodeRateLimited}
	ErrRetryBudgetExhausted = &Error{Code: CodeRetryBudgetExhausted}
	ErrDeadlineExceeded     = &Error{Code: CodeDeadlineExceeded}
	ErrUpstreamUnavailable  = &Error{Code: CodeUpstreamUnavailable}
	ErrUpstreamTimeout      = &Error{Code: CodeUpstreamTimeout}
	ErrFeatureDisabled      = &Error{Code: CodeFeatureDisabled}
	ErrDraining             = &Error{Code: CodeDraining}
	ErrBadRequest           = &Error{Code: CodeBadRequest}
)

// OutcomeOf classifies the error a call returned: nil is Success, a *Error its own outcome,
// context.Canceled is Cancelled, context.DeadlineExceeded is Timeout, anything else Failure.
func OutcomeOf(err error) Outcome {
	if err == nil {
		return Success
	}
	var le *Error
	if errors.As(err, &le) {
		return le.Outcome()
	}
	if errors.Is(err, context.Canceled) {
		return Cancelled
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return Timeout
	}
	return Failure
}

// Problem is the RFC 9457 error envelope (SPEC §7), identical in meaning in every Levee
// implementation.
//
// Fields with no value are left out of the JSON, as levee-http's envelope leaves them out
// (docs/decisions.md "Envelope fields with no value are left out"): a Levee envelope always
// fills type, title, status, code and detail, and a plain RFC 9457 problem that is not a Levee
// error (type about:blank, no code) can be written with the same struct. Degraded is written
// whenever Code is set, false included (bad_request is not a degraded answer, and says so, as
// levee-http does); a problem without a code is not Levee's and carries no degraded field.
type Problem struct {
	Type        string `json:"type,omitempty"` // "" reads as about:blank (RFC 9457 §4.2.1)
	Title       string `json:"title,omitempty"`
	Status      int    `json:"status,omitempty"`
	Code        string `json:"code,omitempty"` // the SPEC §7 code; "" for a problem that is not Levee's
	Detail      string `json:"detail,omitempty"`
	Degraded    bool   `json:"degraded"`
	RetryAfterS int64  `json:"retry_after_s,omitempty"`
	Upstream    string `json:"upstream,omitempty"`
	TraceID     string `json:"trace_id,omitempty"`
}

// MarshalJSON writes the envelope, leaving out the fields with no value (see Problem).
func (p Problem) MarshalJSON() ([]byte, error) {
	type wire Problem // no methods: no recursion
	if p.Code != "" {
		return json.Marshal(wire(p))
	}
	return json.Marshal(struct {
		wire
		Degraded bool `json:"degraded,omitempty"` // shadows wire.Degraded
	}{wire(p), p.Degraded})
}

// UnknownUpstream is what the detail text calls an upstream Levee does not know yet (the
// request failed before routing); the upstream field is then omitted. Same words as
// levee-http.
const UnknownUpstream = "the service"

// NewProblem fills the envelope for code from the catalogue, as levee-http renders it.
// upstream "" means unknown (the detail says "the service", the field is omitted); retryAfter
// 0 means unknown (no retry_after_s, no Retry-After header); traceID may be empty.
func NewProblem(code Code, upstream string, retryAfter time.Duration, traceID string) Problem {
	named := upstream
	if named == "" {
		named = UnknownUpstream
	}
	p := Problem{
		Type:     code.TypeURI(),
		Title:    code.Title(),
		Status:   code.Status(),
		Code:     code.String(),
		Detail:   code.Detail(named),
		Degraded: code.Degraded(),
		Upstream: upstream,
		TraceID:  traceID,
	}
	if retryAfter > 0 {
		p.Detail = code.Detail(named, retryAfter)
		p.RetryAfterS = RetryAfterSeconds(retryAfter)
	}
	return p
}

// ProblemOf returns the envelope for err: its own for a *Error, deadline_exceeded for
// context.DeadlineExceeded, upstream_unavailable for anything else.
func ProblemOf(err error, traceID string) Problem {
	var le *Error
	if errors.As(err, &le) {
		return NewProblem(le.Code, le.Upstream, le.RetryAfter, traceID)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return NewProblem(CodeDeadlineExceeded, "", 0, traceID)
	}
	return NewProblem(CodeUpstreamUnavailable, "", 0, traceID)
}

// ContentTypeProblem is the media type of the envelope.
const ContentTypeProblem = "application/problem+json"

// WriteProblem writes p as the response: Content-Type application/problem+json,
// Cache-Control no-store (a shared cache must never replay an outage), a Retry-After header
// when one is known, the status, and the JSON body.
func WriteProblem(w http.ResponseWriter, p Problem) {
	body, err := json.Marshal(p)
	if err != nil {
		body = []byte(`{"type":"urn:levee:error:upstream_unavailable","status":502}`)
	}
	h := w.Header()
	h.Set("Content-Type", ContentTypeProblem)
	h.Set("Cache-Control", "no-store")
	if p.RetryAfterS > 0 {
		h.Set(HeaderRetryAfter, strconv.FormatInt(p.RetryAfterS, 10))
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(p.Status)
	_, _ = w.Write(body)
}

// WriteError writes the envelope for err (see ProblemOf).
func WriteError(w http.ResponseWriter, err error, traceID string) {
	WriteProblem(w, ProblemOf(err, traceID))
}
