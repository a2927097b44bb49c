package levhttp_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/levee-dev/levee/go"
	"github.com/levee-dev/levee/go/breaker"
	"github.com/levee-dev/levee/go/bulkhead"
	"github.com/levee-dev/levee/go/levhttp"
	"github.com/levee-dev/levee/go/retry"
)

const validTP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

type shedding struct {
	levee.NopObserver
	mu       sync.Mutex
	rejected []string
}

func (s *shedding) BulkheadRejected(partition string, c levee.Criticality, reason string) {
	s.mu.Lock()
	s.rejected = append(s.rejected, partition+"/"+c.String()+"/"+reason)
	s.mu.Unlock()
}

func getWith(t *testing.T, url string, header ...string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestServerBulkheadShedsByCriticalityAndReleasesOnReturn(t *testing.T) {
	// 2 slots: sheddable may fill 50% (1), critical 100% (2).
	pool, err := bulkhead.New("recs", bulkhead.Config{MaxConcurrent: 2})
	if err != nil {
		t.Fatal(err)
	}
	obs := &shedding{}
	entered, release := make(chan struct{}, 4), make(chan struct{})
	h := levhttp.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("hold") != "" {
			entered <- struct{}{}
			<-release
		}
		fmt.Fprint(w, levee.CriticalityFrom(r.Context()))
	}), levhttp.ServerOptions{Service: "recs", Bulkhead: pool, Observer: obs, BulkheadRetryAfter: time.Second})
	srv := httptest.NewServer(h)
	defer srv.Close()

	held := make(chan *http.Response, 1)
	go func() { held <- getWith(t, srv.URL+"?hold=1", "levee-criticality", "sheddable") }()
	<-entered
	if pool.InFlight() != 1 {
		t.Fatalf("in flight %d", pool.InFlight())
	}
	resp := getWith(t, srv.URL, "levee-criticality", "sheddable", "traceparent", validTP)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var p levee.Problem
	_ = json.Unmarshal(body, &p)
	if resp.StatusCode != 503 || p.Code != "bulkhead_full" || resp.Header.Get("Retry-After") != "1" ||
		p.RetryAfterS != 1 || p.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" || p.Upstream != "recs" {
		t.Fatalf("sheddable over its share: %d %s %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if fmt.Sprint(obs.rejected) != "[recs/sheddable/full]" {
		t.Errorf("rejections %v", obs.rejected)
	}
	// A critical request still fits.
	resp = getWith(t, srv.URL, "levee-criticality", "critical")
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "critical" {
		t.Fatalf("critical: %d %s", resp.StatusCode, body)
	}
	close(release)
	if r := <-held; r.StatusCode != 200 {
		t.Fatalf("held request: %d", r.StatusCode)
	} else {
		r.Body.Close()
	}
	// The slot was released when the handler returned: a sheddable request fits again.
	if pool.InFlight() != 0 {
		t.Fatalf("in flight after return %d", pool.InFlight())
	}
	resp = getWith(t, srv.URL, "levee-criticality", "sheddable")
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("sheddable after release: %d", resp.StatusCode)
	}
}

func TestParseTraceparentFollowsW3CStrictly(t *testing.T) {
	cases := map[string]error{
		"": levhttp.ErrTraceparentLength,
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0":    levhttp.ErrTraceparentLength,
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-":  levhttp.ErrTraceparentLength,
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01":   levhttp.ErrTraceparentVersion,
		"0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01":   levhttp.ErrTraceparentVersion,
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01":   levhttp.ErrTraceparentFormat,
		"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01":   levhttp.ErrTraceparentFormat,
		"00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01":   levhttp.ErrTraceparentFormat,
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x":   levhttp.ErrTraceparentFormat,
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01":   levhttp.ErrTraceparentZeroTraceID,
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01":   levhttp.ErrTraceparentZeroParentID,
		"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.x": levhttp.ErrTraceparentLength,
	}
	for v, want := range cases {
		if _, err := levhttp.ParseTraceparent(v); !errors.Is(err, want) {
			t.Errorf("%q: %v, want %v", v, err, want)
		}
	}
	tp, err := levhttp.ParseTraceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds")
	if err != nil || tp.Version != 0xcc || tp.String() != validTP {
		t.Errorf("higher version: %+v %v", tp, err)
	}
}

// upstreamHeaders serves and remembers the trace headers of every request.
func upstreamHeaders(t *testing.T, status ...int) (*httptest.Server, func() []http.Header) {
	var mu sync.Mutex
	var seen []http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n := len(seen)
		seen = append(seen, r.Header.Clone())
		mu.Unlock()
		if n < len(status) {
			w.WriteHeader(status[n])
		}
	}))
	t.Cleanup(srv.Close)
	return srv, func() []http.Header { mu.Lock(); defer mu.Unlock(); return seen }
}

func TestTransportContinuesOrStartsTheTrace(t *testing.T) {
	srv, seen := upstreamHeaders(t)
	client := &http.Client{Transport: &levhttp.Transport{}}
	send := func(ctx context.Context, header ...string) http.Header {
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Add(header[i], header[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		s := seen()
		return s[len(s)-1]
	}
	parse := func(h http.Header) levhttp.Traceparent {
		t.Helper()
		if n := len(h.Values("traceparent")); n != 1 {
			t.Fatalf("%d traceparent headers", n)
		}
		tp, err := levhttp.ParseTraceparent(h.Get("traceparent"))
		if err != nil {
			t.Fatalf("sent %q: %v", h.Get("traceparent"), err)
		}
		return tp
	}

	// The request's own traceparent: continued under a new span, tracestate kept, flags kept.
	h := send(context.Background(), "traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
		"tracestate", "congo=t61rcWkgMzE", "tracestate", "rojo=00f067aa0ba902b7")
	tp := parse(h)
	if tp.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" || tp.ParentID == "00f067aa0ba902b7" || tp.Flags != 0 {
		t.Errorf("continued: %+v", tp)
	}
	if got := strings.Join(h.Values("tracestate"), "|"); got != "congo=t61rcWkgMzE|rojo=00f067aa0ba902b7" {
		t.Errorf("tracestate %q", got)
	}

	// None at all: a new sampled trace, and a new one per call.
	a, b := parse(send(context.Background())), parse(send(context.Background()))
	if a.TraceID == b.TraceID || a.Flags != 1 {
		t.Errorf("new traces %+v %+v", a, b)
	}

	// Invalid: a new trace, and the tracestate of the discarded one dropped.
	h = send(context.Background(), "traceparent", "garbage", "tracestate", "congo=t61rcWkgMzE")
	if tp := parse(h); tp.TraceID == "4bf92f3577b34da6a3ce929d0e0e4736" || h.Get("tracestate") != "" {
		t.Errorf("invalid inbound: %+v %q", tp, h.Get("tracestate"))
	}

	// The context's trace (what Handler puts there): its span is the parent.
	ctx := levhttp.WithTrace(context.Background(), levhttp.Trace{TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", SpanID: "1111111111111111", Flags: 1, TraceState: []string{"k=v"}})
	h = send(ctx)
	if tp := parse(h); tp.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" || tp.ParentID == "1111111111111111" || h.Get("tracestate") != "k=v" {
		t.Errorf("from the context: %+v %q", tp, h.Get("tracestate"))
	}
}

func TestTraceFlowsFromHandlerThroughTransportIntoTheEnvelope(t *testing.T) {
	up, seen := upstreamHeaders(t, 503, 503, 503, 503)
	client := &http.Client{Transport: &levhttp.Transport{
		Retry: mustRetry(t, retry.Config{MaxAttempts: 3}), Random: zero{}, Sleep: levhttp.SleepWallClock,
		Classify: func(*http.Response, error) levee.Outcome { return levee.Failure },
	}}
	var handlerSpan string
	front := httptest.NewServer(levhttp.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tr, _ := levhttp.TraceFrom(r.Context())
		handlerSpan = tr.SpanID
		req, _ := http.NewRequestWithContext(r.Context(), "GET", up.URL, nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			err = &levee.Error{Code: levee.CodeUpstreamUnavailable, Upstream: "up"}
		}
		levee.WriteError(w, err, levhttp.TraceIDFrom(r.Context()))
	}), levhttp.ServerOptions{Service: "front"}))
	defer front.Close()

	resp := getWith(t, front.URL, "traceparent", validTP)
	p, ok := levee.ProblemFromResponse(resp)
	resp.Body.Close()
	if !ok || p.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Fatalf("envelope %+v", p)
	}
	hs := seen()
	if len(hs) != 3 {
		t.Fatalf("%d attempts", len(hs))
	}
	first := hs[0].Get("traceparent")
	for _, h := range hs {
		// One span per call: every attempt of it carries the same child traceparent.
		if h.Get("traceparent") != first {
			t.Errorf("attempts differ: %q vs %q", h.Get("traceparent"), first)
		}
	}
	tp, _ := levhttp.ParseTraceparent(first)
	if tp.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" || tp.ParentID == handlerSpan || tp.ParentID == "00f067aa0ba902b7" {
		t.Errorf("the transport's span must be a child of the handler's: %+v (handler %s)", tp, handlerSpan)
	}

	// Without an inbound traceparent the handler starts a trace; the envelope shows its id.
	resp = getWith(t, front.URL)
	p, _ = levee.ProblemFromResponse(resp)
	resp.Body.Close()
	last := seen()[len(seen())-1]
	if tp, _ := levhttp.ParseTraceparent(last.Get("traceparent")); p == nil || p.TraceID == "" || tp.TraceID != p.TraceID {
		t.Errorf("new trace: envelope %+v, upstream saw %q", p, last.Get("traceparent"))
	}
}

func TestTransportClassifyHookDecidesTheBreakersOutcome(t *testing.T) {
	srv, _ := upstreamHeaders(t, 404, 404, 404, 404, 404)
	clock := levee.NewManualClock(1e12)
	group, err := breaker.NewGroup(breaker.Config{MinimumCalls: 2, Open: breaker.OpenConfig{Jitter: levee.Ptr(0.0)}}, breaker.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	obs := &counting{}
	client := &http.Client{Transport: &levhttp.Transport{Breakers: group, Clock: clock, Observer: obs,
		// This upstream answers 404 when it lost its data: a failure here.
		Classify: func(resp *http.Response, err error) levee.Outcome {
			if resp != nil && resp.StatusCode == 404 {
				return levee.Failure
			}
			return levhttp.DefaultClassify(context.Background(), resp, err, levee.StatusSet{})
		}}}
	for i := 0; i < 2; i++ {
		resp, err := client.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if _, err := client.Get(srv.URL); !errors.Is(err, levee.ErrCircuitOpen) {
		t.Fatalf("the breaker must have opened on 404s: %v", err)
	}
	if obs.calls[levee.Failure] != 2 {
		t.Errorf("calls %v", obs.calls)
	}
}

func TestDefaultClassifyIsSPECSection1(t *testing.T) {
	ctx := context.Background()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	for _, c := range []struct {
		ctx    context.Context
		status int
		err    error
		want   levee.Outcome
	}{
		{ctx, 200, nil, levee.Success},
		{ctx, 404, nil, levee.Success},
		{ctx, 503, nil, levee.Failure},
		{ctx, 0, errors.New("connection reset"), levee.Failure},
		{ctx, 0, context.DeadlineExceeded, levee.Timeout},
		{cancelled, 0, context.Canceled, levee.Cancelled},
	} {
		var resp *http.Response
		if c.status != 0 {
			resp = &http.Response{StatusCode: c.status}
		}
		if got := levhttp.DefaultClassify(c.ctx, resp, c.err, levee.StatusSet{}); got != c.want {
			t.Errorf("%d %v: %v, want %v", c.status, c.err, got, c.want)
		}
	}
}

func TestTransportSleepIsSeparateFromTheBreakerClock(t *testing.T) {
	srv, seen := upstreamHeaders(t, 503)
	clock := levee.NewManualClock(1e12) // frozen: never advanced in this test
	group, _ := breaker.NewGroup(breaker.Config{}, breaker.WithClock(clock))
	var slept []time.Duration
	client := &http.Client{Transport: &levhttp.Transport{Breakers: group, Clock: clock,
		Retry: mustRetry(t, retry.Config{MaxAttempts: 2, Backoff: retry.BackoffConfig{Jitter: retry.NoJitter}}),
		Sleep: func(ctx context.Context, d time.Duration) error {
			slept = append(slept, d)
			return levhttp.SleepWallClock(ctx, d)
		},
	}}
	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || len(seen()) != 2 {
		t.Fatalf("status %d after %d attempts", resp.StatusCode, len(seen()))
	}
	if len(slept) != 1 || slept[0] != 25*time.Millisecond {
		t.Errorf("slept %v, want [25ms] (the base backoff)", slept)
	}
	if clock.Timers() != 0 {
		t.Errorf("%d timers on the frozen clock", clock.Timers())
	}
}

// Server-side admission by criticality: a full share answers 503 bulkhead_full (here with
// the Retry-After the options ask for), and the slot is free again once the handler returns.
func ExampleHandler_bulkhead() {
	pool, _ := bulkhead.New("recommendations", bulkhead.Config{MaxConcurrent: 2}) // sheddable: 1 slot
	inside := make(chan struct{})
	release := make(chan struct{})
	h := levhttp.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(inside)
			<-release
		}
	}), levhttp.ServerOptions{Service: "recommendations", Bulkhead: pool, BulkheadRetryAfter: time.Second})

	sheddable := func(path string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", path, nil)
		req.Header.Set("levee-criticality", "sheddable")
		req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	done := make(chan struct{})
	go func() { sheddable("/slow"); close(done) }()
	<-inside
	rec := sheddable("/")
	fmt.Println(rec.Code, rec.Header().Get("Retry-After"))
	fmt.Println(rec.Body.String())
	close(release)
	<-done
	fmt.Println(sheddable("/").Code)
	// Output:
	// 503 1
	// {"type":"urn:levee:error:bulkhead_full","title":"Service temporarily unavailable","status":503,"code":"bulkhead_full","detail":"recommendations is at capacity; please try again in about 1 s.","degraded":true,"retry_after_s":1,"upstream":"recommendations","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"}
	// 200
}

// The trace travels from the inbound request, through the handler's context, to the
// upstream: same trace id, the transport's own span as the parent.
func ExampleTransport_trace() {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tp, _ := levhttp.ParseTraceparent(r.Header.Get("traceparent"))
		fmt.Println("upstream sees trace", tp.TraceID, "state", r.Header.Get("tracestate"))
	}))
	defer upstream.Close()
	client := &http.Client{Transport: &levhttp.Transport{}}
	front := levhttp.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequestWithContext(r.Context(), "GET", upstream.URL, nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
		}
	}), levhttp.ServerOptions{})
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	req.Header.Set("tracestate", "congo=t61rcWkgMzE")
	front.ServeHTTP(httptest.NewRecorder(), req)
	// Output: upstream sees trace 4bf92f3577b34da6a3ce929d0e0e4736 state congo=t61rcWkgMzE
}
