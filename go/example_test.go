package levee_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/levee-dev/levee/go"
	"github.com/levee-dev/levee/go/breaker"
	"github.com/levee-dev/levee/go/bulkhead"
	"github.com/levee-dev/levee/go/deadline"
	"github.com/levee-dev/levee/go/levhttp"
	"github.com/levee-dev/levee/go/retry"
)

// A breaker opens once the failure rate over minimum_calls reaches its threshold; Allow then
// refuses with circuit_open and says when it will probe again.
func Example_breaker() {
	clock := levee.NewManualClock(0)
	b, _ := breaker.New("inventory", breaker.Config{
		MinimumCalls: 2,
		Open:         breaker.OpenConfig{Wait: 5 * time.Second, Jitter: levee.Ptr(0.0)},
	}, breaker.WithClock(clock),
		breaker.OnTransition(func(t breaker.Transition) { fmt.Println(t.From, "->", t.To, t.Reason) }))

	for i := 0; i < 2; i++ {
		done, _ := b.Allow(context.Background())
		done(levee.Failure)
	}
	_, err := b.Allow(context.Background())
	fmt.Println(errors.Is(err, levee.ErrCircuitOpen), err)

	clock.Advance(5 * time.Second)
	done, err := b.Allow(context.Background())
	fmt.Println(err, b.State())
	done(levee.Success)
	// Output:
	// closed -> open failure_rate
	// true levee: circuit_open (open): inventory is failing; Levee is protecting it and will retry in about 5 s.
	// open -> half_open wait_elapsed
	// <nil> half_open
}

// Do composes guards: here a bulkhead around a breaker around the call.
func ExampleDo() {
	bh, _ := bulkhead.New("inventory", bulkhead.Config{MaxConcurrent: 10})
	br, _ := breaker.New("inventory", breaker.Config{})
	err := levee.Do(context.Background(), func(ctx context.Context) error {
		return nil // call the upstream with ctx
	}, nil, bh, br)
	fmt.Println(err, bh.InFlight())
	// Output: <nil> 0
}

// Retry decisions are pure: the same inputs and draws give the same answer in Go and Rust.
func Example_retry() {
	p, _ := retry.New(retry.Config{MaxAttempts: 3, Backoff: retry.BackoffConfig{Jitter: retry.NoJitter}})
	budget := p.NewBudget(0)
	budget.Deposit(0)
	d := p.Decide(retry.Input{AttemptsMade: 1, Result: levee.StatusResult(503), Idempotent: true}, budget, 0, nil)
	fmt.Println(d.Retry, d.After)
	d = p.Decide(retry.Input{AttemptsMade: 1, Result: levee.StatusResult(404), Idempotent: true}, budget, 0, nil)
	fmt.Println(d.Retry, d.Reason)
	// Output:
	// true 25ms
	// false not_retryable
}

// Durations are written with a unit; a bare number is rejected with the fix.
func ExampleParseDuration() {
	d, _ := levee.ParseDuration("1m30s")
	fmt.Println(d, levee.FormatDuration(d))
	_, err := levee.ParseDuration("250")
	fmt.Println(err)
	// Output:
	// 1m30s 90s
	// duration `250` has no unit: write `250ms` or `250s` (units: ns, us, ms, s, m, h)
}

// The deadline headers travel as remaining time.
func Example_deadline() {
	d, _ := deadline.ParseGRPCTimeout("250m")
	fmt.Println(d, deadline.FormatTimeoutMs(d), deadline.FormatGRPCTimeout(d))
	// Output: 250ms 250 250000u
}

// The server middleware answers malformed Levee headers itself, with problem+json.
func Example_server() {
	h := levhttp.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, levee.CriticalityFrom(r.Context()))
	}), levhttp.ServerOptions{Service: "checkout", Timeout: time.Second})

	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("levee-timeout-ms", "soon")
	// The trace is continued (or, without a traceparent, a new one starts): the envelope
	// shows its id.
	req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	fmt.Println(rec.Code, rec.Header().Get("Content-Type"))
	fmt.Print(rec.Body.String())
	// Output:
	// 400 application/problem+json
	// {"type":"urn:levee:error:bad_request","title":"Bad request","status":400,"code":"bad_request","detail":"The request to checkout was malformed.","degraded":false,"upstream":"checkout","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"}
}

// A client guarded by Levee: breaker per endpoint key, retries with a budget, deadline and
// criticality propagation.
func Example_client() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.Header.Get("levee-criticality"))
	}))
	defer srv.Close()
	breakers, _ := breaker.NewGroup(breaker.Config{})
	policy, _ := retry.New(retry.Config{MaxAttempts: 3})
	client := &http.Client{Transport: &levhttp.Transport{Breakers: breakers, Retry: policy}}

	ctx, cancel := context.WithTimeout(levee.WithCriticality(context.Background(), levee.Critical), time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	resp, err := client.Do(req)
	if err != nil {
		levee.WriteError(httptest.NewRecorder(), err, "")
		return
	}
	defer resp.Body.Close()
	buf := make([]byte, 16)
	n, _ := resp.Body.Read(buf)
	fmt.Println(resp.StatusCode, string(buf[:n]))
	// Output: 200 critical
}
