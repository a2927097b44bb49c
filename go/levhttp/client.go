package levhttp

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/levee-dev/levee/go"
	"github.com/levee-dev/levee/go/breaker"
	"github.com/levee-dev/levee/go/bulkhead"
	"github.com/levee-dev/levee/go/deadline"
	"github.com/levee-dev/levee/go/retry"
)

// DefaultMaxReplayBody is the largest request body Transport replays on a retry.
const DefaultMaxReplayBody = 64 << 10

// Transport is an http.RoundTripper that guards every outbound call (SPEC §2–§5, §7):
//
//   - the request context's deadline is written as levee-timeout-ms (remaining time, rounded
//     down, recomputed for every attempt); a call whose deadline is already spent is refused
//     with deadline_exceeded before any upstream work;
//   - the context's criticality (levee.WithCriticality) is sent as levee-criticality and
//     decides the bulkhead class;
//   - Bulkhead, when set, bounds concurrent calls; the slot is held until the response body is
//     closed;
//   - Breakers, when set, keeps one breaker per endpoint key (Endpoint, default the URL host);
//     an open breaker refuses with circuit_open; a group made with breaker.WithFleet (a
//     registry.Client) also refuses what the fleet's breaker refuses and reports every outcome
//     to the fleet;
//   - Retry, when set, retries per SPEC §4 with one retry budget per endpoint key: only
//     idempotent requests (or with Idempotency-Key, or RetryNonIdempotent), only bodies that
//     can be replayed (GetBody, at most MaxReplayBody bytes), never when the breaker is open or
//     the deadline too short; Retry-After is honoured; with the budget spent the last real
//     response is returned;
//   - Fallback, when set, may answer instead of an error;
//   - the W3C trace (SPEC §11) is continued under a new span id per call: the request's own
//     traceparent (and tracestate) when valid, else the trace in its context (WithTrace;
//     Handler puts the inbound request's there), else a new trace; see Trace;
//   - Classify, when set, decides each attempt's outcome for the breaker, bulkhead and
//     metrics instead of the status-only SPEC §1 default.
//
// Refusals are *levee.Error values (errors.Is(err, levee.ErrCircuitOpen) …); wrap a handler
// with levee.WriteError to answer them as problem+json. The zero value is a plain pass-through
// to http.DefaultTransport with deadline and criticality propagation. Fields must not change
// once the Transport is in use.
type Transport struct {
	Base            http.RoundTripper          // nil = http.DefaultTransport
	Endpoint        func(*http.Request) string // the endpoint key; nil = the URL's host
	Breakers        *breaker.Group             // nil = no breaker
	Bulkhead        *bulkhead.Bulkhead         // nil = no bulkhead
	Retry           *retry.Policy              // nil = no retries
	FailureStatuses levee.StatusSet            // zero value = 500, 502, 503, 504
	Fallback        func(*http.Request, error) (*http.Response, error)
	Observer        levee.Observer   // nil = none
	Clock           levee.Clock      // policy time, and retry waits while Sleep is nil; nil = levee.SystemClock
	Random          levee.Random     // backoff jitter; nil = a SplitMix64 from entropy
	Now             func() time.Time // wall clock for deadlines; nil = time.Now
	MaxReplayBody   int64            // 0 = DefaultMaxReplayBody

	// Classify, when set, is each attempt's outcome (SPEC §1) from its response (nil when the
	// attempt failed) and error: what the breaker, the bulkhead and Observer record. It must
	// not read or close the body. It does not change what is retried (Retry's retry_on does).
	// nil = the SPEC default: a transport error is a failure (timeout for a deadline,
	// cancelled when the caller left), and FailureStatuses decides statuses. A Classify that
	// wants the default for some answers calls DefaultClassify.
	Classify func(resp *http.Response, err error) levee.Outcome
	// Sleep waits d before a retry, or returns ctx's error when ctx ends first. nil = a wait
	// on Clock (a levee.ManualClock then holds retries until advanced). Tests that freeze
	// breaker time with a ManualClock and still want retries to run set SleepWallClock.
	Sleep func(ctx context.Context, d time.Duration) error

	once    sync.Once
	mu      sync.Mutex
	budgets map[string]*retry.Budget
}

func (t *Transport) init() {
	t.once.Do(func() {
		if t.Clock == nil {
			t.Clock = levee.SystemClock
		}
		if t.Random == nil {
			t.Random = levee.NewRandom()
		}
		if t.Now == nil {
			t.Now = time.Now
		}
		if t.Observer == nil {
			t.Observer = levee.NopObserver{}
		}
		if t.MaxReplayBody == 0 {
			t.MaxReplayBody = DefaultMaxReplayBody
		}
		t.budgets = map[string]*retry.Budget{}
	})
}

func (t *Transport) base() http.RoundTripper {
	if t.Base != nil {
		return t.Base
	}
	return http.DefaultTransport
}

func (t *Transport) budget(key string) *retry.Budget {
	t.mu.Lock()
	defer t.mu.Unlock()
	b, ok := t.budgets[key]
	if !ok {
		b = t.Retry.NewBudget(t.Clock.Now())
		t.budgets[key] = b
	}
	return b
}

// RoundTrip sends req under the configured policies.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.init()
	resp, err := t.roundTrip(req)
	if err != nil && t.Fallback != nil && req.Context().Err() == nil {
		if fr, ferr := t.Fallback(req, err); fr != nil || ferr != nil {
			t.Observer.Fallback(t.endpoint(req), "hook")
			return fr, ferr
		}
	}
	return resp, err
}

func (t *Transport) endpoint(req *http.Request) string {
	if t.Endpoint != nil {
		return t.Endpoint(req)
	}
	return req.URL.Host
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

func (t *Transport) roundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	key := t.endpoint(req)
	start := t.Clock.Now()
	if err := ctx.Err(); err != nil {
		closeBody(req)
		return nil, err
	}
	if remaining, ok := deadline.Remaining(ctx, t.Now()); ok && remaining == 0 {
		closeBody(req)
		t.Observer.Call(key, levee.Rejected, 0)
		return nil, &levee.Error{Code: levee.CodeDeadlineExceeded, Upstream: key, Err: context.DeadlineExceeded}
	}
	var releaseSlot func(levee.Outcome)
	if t.Bulkhead != nil {
		done, err := t.Bulkhead.Allow(ctx)
		if err != nil {
			closeBody(req)
			t.rejectedByBulkhead(key, ctx, err)
			return nil, err
		}
		releaseSlot = done
		t.bulkheadLoad()
	}
	finish := func(o levee.Outcome) {
		if releaseSlot != nil {
			releaseSlot(o)
			t.bulkheadLoad()
		}
		t.Observer.Call(key, o, t.Clock.Now().Since(start))
	}
	resp, outcome, err := t.attempts(req, key)
	if err != nil || resp == nil {
		finish(outcome)
		return resp, err
	}
	resp.Body = &releasingBody{ReadCloser: resp.Body, release: func() { finish(outcome) }}
	return resp, nil
}

func (t *Transport) rejectedByBulkhead(key string, ctx context.Context, err error) {
	var le *levee.Error
	if errors.As(err, &le) {
		t.Observer.BulkheadRejected(t.Bulkhead.Name(), levee.CriticalityFrom(ctx), le.Reason)
		t.Observer.Call(key, levee.Rejected, 0)
		return
	}
	t.Observer.Call(key, levee.OutcomeOf(err), 0)
}

func (t *Transport) bulkheadLoad() {
	t.Observer.BulkheadLoad(t.Bulkhead.Name(), int(t.Bulkhead.InFlight()), t.Bulkhead.QueueDepth())
}

// replayable reports whether req's body can be sent again.
func (t *Transport) replayable(req *http.Request) bool {
	if req.Body == nil || req.Body == http.NoBody {
		return true
	}
	return req.GetBody != nil && req.ContentLength >= 0 && req.ContentLength <= t.MaxReplayBody
}

// attempts runs the attempt loop and returns the response to hand back (or the error), with
// the outcome of the call.
func (t *Transport) attempts(req *http.Request, key string) (*http.Response, levee.Outcome, error) {
	ctx := req.Context()
	var br *breaker.Breaker
	if t.Breakers != nil {
		br = t.Breakers.Get(key)
	}
	var budget *retry.Budget
	if t.Retry != nil {
		budget = t.budget(key)
		budget.Deposit(t.Clock.Now())
	}
	idempotent := retry.IsIdempotent(req.Method, req.Header.Get(levee.HeaderIdempotencyKey) != "")
	replayable := t.replayable(req)
	span := t.trace(req)
	var previous *time.Duration
	for attempt := uint32(1); ; attempt++ {
		var done func(levee.Outcome)
		if br != nil {
			var err error
			if done, err = br.Allow(ctx); err != nil {
				closeBody(req)
				return nil, levee.OutcomeOf(err), err
			}
		}
		resp, result, err := t.send(req, attempt, span)
		outcome := t.classify(resp, result, err)
		if done != nil {
			done(outcome)
		}
		if t.Retry == nil || result.Kind == levee.AttemptCancelled || !replayable {
			return t.final(resp, err, outcome, key, 0)
		}
		in := retry.Input{AttemptsMade: attempt, Result: result, Idempotent: idempotent, PreviousBackoff: previous}
		if remaining, ok := deadline.Remaining(ctx, t.Now()); ok {
			in.Remaining = &remaining
		}
		if br != nil {
			s := br.EffectiveState() // the more severe of local and fleet (breaker.WithFleet)
			in.BreakerOpen = s == breaker.Open || s == breaker.ForcedOpen
		}
		if resp != nil {
			if v := resp.Header.Get(levee.HeaderRetryAfter); v != "" {
				if d, ok := retry.ParseRetryAfter(v, uint64(max(t.Now().Unix(), 0))); ok {
					in.RetryAfter = &d
				}
			}
		}
		d := t.Retry.Decide(in, budget, t.Clock.Now(), t.Random)
		if !d.Retry {
			if d.Reason == retry.RetryBudgetExhausted {
				t.Observer.RetryBudgetExhausted(key)
			}
			return t.final(resp, err, outcome, key, d.Reason)
		}
		t.Observer.Retry(key, result.Label())
		if resp != nil {
			_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
			_ = resp.Body.Close()
		}
		if werr := t.wait(ctx, d.After); werr != nil {
			return nil, levee.Cancelled, werr
		}
		b := d.Backoff
		previous = &b
	}
}

// final turns the last attempt into what RoundTrip returns: the response if there is one,
// otherwise an error (a *levee.Error when the retry decision names a code).
func (t *Transport) final(resp *http.Response, err error, outcome levee.Outcome, key string, reason retry.GiveUpReason) (*http.Response, levee.Outcome, error) {
	if err == nil {
		return resp, outcome, nil
	}
	if outcome == levee.Cancelled {
		return nil, outcome, err
	}
	if code, ok := reason.ErrorCode(); ok {
		return nil, outcome, &levee.Error{Code: code, Upstream: key, Reason: reason.String(), Err: err}
	}
	if outcome == levee.Timeout {
		return nil, outcome, &levee.Error{Code: levee.CodeUpstreamTimeout, Upstream: key, Err: err}
	}
	return nil, outcome, &levee.Error{Code: levee.CodeUpstreamUnavailable, Upstream: key, Err: err}
}

// classify is an attempt's outcome: Classify's, or the SPEC §1 default.
func (t *Transport) classify(resp *http.Response, result levee.AttemptResult, err error) levee.Outcome {
	if t.Classify != nil {
		return t.Classify(resp, err)
	}
	outcome := levee.Classify(result, t.FailureStatuses)
	if err != nil && outcome == levee.Success {
		outcome = levee.Failure
	}
	return outcome
}

// DefaultClassify is the SPEC §1 classification Transport applies without Classify: a
// response is a failure when its status is in failureStatuses (the zero set: 500, 502, 503,
// 504), a success otherwise; an error is cancelled when ctx was cancelled, a timeout when a
// deadline passed, a failure otherwise.
func DefaultClassify(ctx context.Context, resp *http.Response, err error, failureStatuses levee.StatusSet) levee.Outcome {
	if err != nil {
		switch {
		case ctx.Err() != nil && errors.Is(ctx.Err(), context.Canceled):
			return levee.Cancelled
		case ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded):
			return levee.Timeout
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return levee.Timeout
		}
		return levee.Failure
	}
	if resp == nil {
		return levee.Failure
	}
	return levee.ClassifyStatus(resp.StatusCode, failureStatuses)
}

// SleepWallClock waits d on a real timer, or until ctx is done: the Transport.Sleep for tests
// whose Clock is a levee.ManualClock that should not hold retries.
func SleepWallClock(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// wait sleeps d before a retry: with Sleep, or on the transport's clock, or until ctx is done.
func (t *Transport) wait(ctx context.Context, d time.Duration) error {
	if t.Sleep != nil {
		return t.Sleep(ctx, d)
	}
	if d <= 0 {
		return ctx.Err()
	}
	fired := make(chan struct{})
	stop := levee.AfterFunc(t.Clock, d, func() { close(fired) })
	defer stop()
	select {
	case <-fired:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// trace is the call's span: the request's traceparent continued, else its context's trace,
// else a new trace; each with a new span id.
func (t *Transport) trace(req *http.Request) Trace {
	if len(req.Header.Values(levee.HeaderTraceparent)) > 0 {
		return TraceFromHeader(req.Header)
	}
	if parent, ok := TraceFrom(req.Context()); ok {
		return Trace{TraceID: parent.TraceID, SpanID: newSpanID(), ParentID: parent.SpanID,
			Flags: parent.Flags, TraceState: parent.TraceState}
	}
	return NewTrace()
}

// send makes one attempt: a clone of req with a fresh body, the remaining deadline, the
// criticality and the call's traceparent written into the headers, under the per-try timeout.
func (t *Transport) send(req *http.Request, attempt uint32, span Trace) (*http.Response, levee.AttemptResult, error) {
	ctx := req.Context()
	var cancel context.CancelFunc = func() {}
	if t.Retry != nil && t.Retry.Config().PerTryTimeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, t.Retry.Config().PerTryTimeout)
	}
	out := req.Clone(ctx)
	if attempt > 1 && req.Body != nil && req.Body != http.NoBody {
		body, err := req.GetBody()
		if err != nil {
			cancel()
			return nil, levee.ConnectFailure, err
		}
		out.Body = body
	}
	if !deadline.SetHeader(out.Header, ctx, t.Now()) {
		out.Header.Del(levee.HeaderTimeoutMs)
	}
	if c, ok := levee.LookupCriticality(req.Context()); ok {
		out.Header.Set(levee.HeaderCriticality, c.String())
	}
	span.Inject(out.Header)
	resp, err := t.base().RoundTrip(out)
	if err != nil {
		cancel()
		return nil, classifyError(req.Context(), ctx, err), err
	}
	resp.Body = &releasingBody{ReadCloser: resp.Body, release: cancel}
	return resp, levee.StatusResult(resp.StatusCode), nil
}

// classifyError maps a transport error to an attempt result: the caller going away is
// cancelled, a deadline or per-try timeout is timeout, a failed dial is connect_failure, and
// anything else is reset.
func classifyError(parent, attempt context.Context, err error) levee.AttemptResult {
	switch {
	case parent.Err() != nil && errors.Is(parent.Err(), context.Canceled):
		return levee.AttemptCancel
	case parent.Err() != nil || attempt.Err() != nil || errors.Is(err, context.DeadlineExceeded):
		return levee.AttemptTimedOut
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return levee.AttemptTimedOut
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return levee.ConnectFailure
	}
	return levee.Reset
}

// releasingBody calls release once, when the body is closed or read to the end.
type releasingBody struct {
	io.ReadCloser
	once    sync.Once
	release func()
}

func (b *releasingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.once.Do(b.release)
	}
	return n, err
}

func (b *releasingBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.release)
	return err
}
