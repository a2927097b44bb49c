package levhttp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/levee-dev/levee/go"
	"github.com/levee-dev/levee/go/breaker"
	"github.com/levee-dev/levee/go/bulkhead"
	"github.com/levee-dev/levee/go/levhttp"
	"github.com/levee-dev/levee/go/retry"
)

// zero draws 0: full jitter then waits 0, so retries need no clock movement.
type zero struct{}

func (zero) Float64() float64 { return 0 }

var epoch = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func pinned() time.Time { return epoch }

func problem(t *testing.T, rec *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("content type %q", ct)
	}
	var p map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestServerMapsLeveeHeadersIntoTheContext(t *testing.T) {
	var gotDeadline time.Time
	var gotClass levee.Criticality
	h := levhttp.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotDeadline, _ = r.Context().Deadline()
		gotClass = levee.CriticalityFrom(r.Context())
	}), levhttp.ServerOptions{Service: "checkout", Timeout: 800 * time.Millisecond, Now: pinned})

	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("levee-timeout-ms", "250")
	req.Header.Set("levee-criticality", "Critical")
	h.ServeHTTP(httptest.NewRecorder(), req)
	if !gotDeadline.Equal(epoch.Add(250*time.Millisecond)) || gotClass != levee.Critical {
		t.Errorf("deadline %v class %v", gotDeadline, gotClass)
	}

	req = httptest.NewRequest("GET", "/", nil)
	req.Header.Set("grpc-timeout", "2S")
	h.ServeHTTP(httptest.NewRecorder(), req)
	if !gotDeadline.Equal(epoch.Add(800 * time.Millisecond)) {
		t.Errorf("route timeout must win when shorter: %v", gotDeadline)
	}
}

func TestServerRejectsMalformedHeadersAndSpentDeadlines(t *testing.T) {
	var reached atomic.Int32
	h := levhttp.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached.Add(1) }),
		levhttp.ServerOptions{Service: "checkout", Now: pinned})
	cases := []struct {
		header, value string
		status        int
		code          string
	}{
		{"levee-timeout-ms", "soon", 400, "bad_request"},
		{"levee-timeout-ms", "-5", 400, "bad_request"},
		{"grpc-timeout", "100", 400, "bad_request"},
		{"levee-criticality", "urgent", 400, "bad_request"},
		{"levee-timeout-ms", "0", 504, "deadline_exceeded"},
		{"grpc-timeout", "0m", 504, "deadline_exceeded"},
	}
	for _, c := range cases {
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set(c.header, c.value)
		req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != c.status {
			t.Errorf("%s: %s → %d, want %d", c.header, c.value, rec.Code, c.status)
			continue
		}
		p := problem(t, rec)
		if p["code"] != c.code || p["type"] != "urn:levee:error:"+c.code || p["trace_id"] != "4bf92f3577b34da6a3ce929d0e0e4736" {
			t.Errorf("%s: %s → %v", c.header, c.value, p)
		}
	}
	if reached.Load() != 0 {
		t.Errorf("the handler ran %d times", reached.Load())
	}
}

func TestClientPropagatesDeadlineAndCriticality(t *testing.T) {
	var header http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { header = r.Header.Clone() }))
	defer srv.Close()
	client := &http.Client{Transport: &levhttp.Transport{Now: pinned}}
	ctx, cancel := context.WithDeadline(context.Background(), epoch.Add(1500*time.Millisecond+999*time.Microsecond))
	defer cancel()
	// The pinned clock is far in the future of the real one, so this context never expires
	// during the test; only the header arithmetic uses it.
	ctx = levee.WithCriticality(ctx, levee.Sheddable)
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if header.Get("levee-timeout-ms") != "1500" || header.Get("levee-criticality") != "sheddable" {
		t.Errorf("headers %v", header)
	}
}

func TestClientRefusesASpentDeadlineBeforeAnyUpstreamWork(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer srv.Close()
	now := time.Now()
	client := &http.Client{Transport: &levhttp.Transport{Now: func() time.Time { return now.Add(time.Hour) }}}
	ctx, cancel := context.WithDeadline(context.Background(), now.Add(time.Minute))
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	_, err := client.Do(req)
	if !errors.Is(err, levee.ErrDeadlineExceeded) || hits.Load() != 0 {
		t.Fatalf("err %v hits %d", err, hits.Load())
	}
}

type counting struct {
	levee.NopObserver
	mu        sync.Mutex
	retries   []string
	exhausted int
	calls     map[levee.Outcome]int
	fallbacks int
}

func (c *counting) Retry(_, reason string) {
	c.mu.Lock()
	c.retries = append(c.retries, reason)
	c.mu.Unlock()
}

func (c *counting) RetryBudgetExhausted(string) { c.mu.Lock(); c.exhausted++; c.mu.Unlock() }

func (c *counting) Fallback(string, string) { c.mu.Lock(); c.fallbacks++; c.mu.Unlock() }

func (c *counting) Call(_ string, o levee.Outcome, _ time.Duration) {
	c.mu.Lock()
	if c.calls == nil {
		c.calls = map[levee.Outcome]int{}
	}
	c.calls[o]++
	c.mu.Unlock()
}

func mustRetry(t *testing.T, c retry.Config) *retry.Policy {
	t.Helper()
	p, err := retry.New(c)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestClientRetriesIdempotentRequestsAndReplaysBodies(t *testing.T) {
	var hits atomic.Int32
	var bodies []string
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
		if hits.Add(1)%2 == 1 {
			w.WriteHeader(503)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	defer srv.Close()
	obs := &counting{}
	client := &http.Client{Transport: &levhttp.Transport{
		Retry: mustRetry(t, retry.Config{MaxAttempts: 3}), Random: zero{},
		Clock: levee.NewManualClock(1e12), Observer: obs,
	}}

	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok" || hits.Load() != 2 {
		t.Fatalf("status %d body %q hits %d", resp.StatusCode, body, hits.Load())
	}

	// POST is not idempotent: the 503 comes back as is.
	resp, err = client.Post(srv.URL, "text/plain", strings.NewReader("order-1"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || hits.Load() != 3 {
		t.Fatalf("POST: status %d hits %d", resp.StatusCode, hits.Load())
	}

	// With an Idempotency-Key it is retried, and its body is sent again.
	hits.Add(1) // the next attempt fails
	req, _ := http.NewRequest("POST", srv.URL, bytes.NewReader([]byte("order-2")))
	req.Header.Set("Idempotency-Key", "k-2")
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	mu.Lock()
	defer mu.Unlock()
	if resp.StatusCode != 200 || hits.Load() != 6 || bodies[3] != "order-2" || bodies[4] != "order-2" {
		t.Fatalf("keyed POST: status %d hits %d bodies %q", resp.StatusCode, hits.Load(), bodies)
	}
	if strings.Join(obs.retries, ",") != "503,503" {
		t.Errorf("retries %v", obs.retries)
	}
}

func TestClientStopsRetryingWhenTheBudgetIsSpent(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(502)
	}))
	defer srv.Close()
	obs := &counting{}
	budget := retry.BudgetConfig{Ratio: levee.Ptr(0.0), MinPerSecond: levee.Ptr(1), TTL: time.Second}
	client := &http.Client{Transport: &levhttp.Transport{
		Retry:  mustRetry(t, retry.Config{MaxAttempts: 5, Budget: budget}),
		Random: zero{}, Clock: levee.NewManualClock(1e12), Observer: obs,
	}}
	for i := 0; i < 2; i++ {
		resp, err := client.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 502 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	// One retry fits in a 1 s window with min_per_second 1: 2 + 1 attempts in all.
	if hits.Load() != 3 || obs.exhausted != 2 || obs.calls[levee.Failure] != 2 {
		t.Errorf("hits %d exhausted %d calls %v", hits.Load(), obs.exhausted, obs.calls)
	}
}

func TestClientBreakerOpensAndRefuses(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(500)
	}))
	defer srv.Close()
	clock := levee.NewManualClock(1e12)
	group, err := breaker.NewGroup(breaker.Config{MinimumCalls: 2, Open: breaker.OpenConfig{Jitter: levee.Ptr(0.0)}}, breaker.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &levhttp.Transport{Breakers: group, Clock: clock,
		Endpoint: func(*http.Request) string { return "inventory" }}}
	for i := 0; i < 2; i++ {
		resp, err := client.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	_, err = client.Get(srv.URL)
	var le *levee.Error
	if !errors.Is(err, levee.ErrCircuitOpen) || !errors.As(err, &le) || le.RetryAfter != 5*time.Second || hits.Load() != 2 {
		t.Fatalf("err %v hits %d", err, hits.Load())
	}
	if group.Get("inventory").State() != breaker.Open {
		t.Fatal("breaker not open")
	}
	rec := httptest.NewRecorder()
	levee.WriteError(rec, le, "")
	if rec.Code != 503 || rec.Header().Get("Retry-After") != "5" {
		t.Errorf("envelope %d %v", rec.Code, rec.Header())
	}
}

func TestClientBulkheadHoldsTheSlotUntilTheBodyIsClosed(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "x") }))
	defer srv.Close()
	bh, err := bulkhead.New("inventory", bulkhead.Config{MaxConcurrent: 1})
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &levhttp.Transport{Bulkhead: bh}}
	first, err := client.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Get(srv.URL); !errors.Is(err, levee.ErrBulkheadFull) {
		t.Fatalf("second call: %v", err)
	}
	first.Body.Close()
	if bh.InFlight() != 0 {
		t.Fatalf("in flight %d", bh.InFlight())
	}
	third, err := client.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.ReadAll(third.Body) // reading to the end frees the slot too
	if bh.InFlight() != 0 {
		t.Fatalf("in flight after EOF %d", bh.InFlight())
	}
	third.Body.Close()
}

func TestClientConnectFailuresBecomeUpstreamUnavailableAndFallbacks(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more
	obs := &counting{}
	tr := &levhttp.Transport{Retry: mustRetry(t, retry.Config{MaxAttempts: 3}), Random: zero{}, Observer: obs}
	_, err := (&http.Client{Transport: tr}).Get(url)
	if !errors.Is(err, levee.ErrUpstreamUnavailable) {
		t.Fatalf("err %v", err)
	}
	if strings.Join(obs.retries, ",") != "connect_failure,connect_failure" {
		t.Errorf("retries %v", obs.retries)
	}
	tr.Fallback = func(r *http.Request, err error) (*http.Response, error) {
		return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader("[]")), Header: http.Header{}, Request: r}, nil
	}
	resp, err := (&http.Client{Transport: tr}).Get(url)
	if err != nil || resp.StatusCode != 200 || obs.fallbacks != 1 {
		t.Fatalf("fallback: %v %v %d", resp, err, obs.fallbacks)
	}
	resp.Body.Close()
}

func TestClientQueuedCallWaitsOnTheClock(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	clock := levee.NewManualClock(1e12)
	bh, _ := bulkhead.New("p", bulkhead.Config{MaxConcurrent: 1, MaxQueue: 1, MaxWait: 50 * time.Millisecond}, bulkhead.WithClock(clock))
	client := &http.Client{Transport: &levhttp.Transport{Bulkhead: bh, Clock: clock}}
	first, err := client.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		resp, err := client.Get(srv.URL)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	for clock.Timers() == 0 { // wait until the second call is queued on the clock
		runtime.Gosched()
	}
	clock.Advance(50 * time.Millisecond)
	err = <-errc
	var le *levee.Error
	if !errors.As(err, &le) || le.Code != levee.CodeBulkheadFull || le.Reason != "queue_timeout" {
		t.Fatalf("queued call: %v", err)
	}
	first.Body.Close()
}
