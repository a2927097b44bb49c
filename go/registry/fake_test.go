package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/levee-dev/levee/go"
)

// testDeadline bounds every wait for another goroutine (never used to make time pass).
const testDeadline = 10 * time.Second

// eventually polls cond until it holds, failing the test after testDeadline. It waits for
// goroutines to get somewhere; policy time moves only on a ManualClock.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testDeadline)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// receive takes one value from ch, failing the test after testDeadline.
func receive[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(testDeadline):
		t.Fatalf("timed out waiting for: %s", what)
		panic("unreachable")
	}
}

// fakeRegistry is an httptest registry whose answers the test scripts.
type fakeRegistry struct {
	t   *testing.T
	srv *httptest.Server

	streams chan *fakeStream // every accepted watch stream

	mu           sync.Mutex
	watchIDs     []string // the Last-Event-ID of each watch request ("" = none)
	watchStatus  int      // non-zero: answer watches with this status
	auth         []string
	reports      []reportRequest
	reportStatus int
	leaseAnswers []string // JSON answers, in order; the last repeats
	leaseCalls   int
	leaseBodies  []leaseRequest
	completions  chan completeAt
}

type completeAt struct {
	path string
	req  completeRequest
}

type fakeStream struct {
	send chan string
	end  chan struct{}
	once sync.Once
}

func (s *fakeStream) write(t *testing.T, raw string) {
	t.Helper()
	select {
	case s.send <- raw:
	case <-time.After(testDeadline):
		t.Fatal("the watch stream did not take an event")
	}
}

func (s *fakeStream) event(t *testing.T, id uint64, data string) {
	t.Helper()
	var typ struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal([]byte(data), &typ); err != nil {
		t.Fatalf("bad test event %s: %v", data, err)
	}
	s.write(t, fmt.Sprintf("id: %d\nevent: %s\ndata: %s\n\n", id, typ.Type, data))
}

func (s *fakeStream) close() { s.once.Do(func() { close(s.end) }) }

func newFakeRegistry(t *testing.T) *fakeRegistry {
	f := &fakeRegistry{t: t, streams: make(chan *fakeStream, 16), completions: make(chan completeAt, 16)}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeRegistry) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	f.mu.Unlock()
	switch {
	case r.URL.Path == "/v1/watch":
		f.mu.Lock()
		f.watchIDs = append(f.watchIDs, r.Header.Get("Last-Event-ID"))
		status := f.watchStatus
		f.mu.Unlock()
		if status != 0 {
			problem(w, status)
			return
		}
		s := &fakeStream{send: make(chan string), end: make(chan struct{})}
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		f.streams <- s
		for {
			select {
			case raw := <-s.send:
				_, _ = io.WriteString(w, raw)
				w.(http.Flusher).Flush()
			case <-s.end:
				return
			case <-r.Context().Done():
				return
			}
		}
	case r.URL.Path == "/v1/reports" && r.Method == http.MethodPost:
		var req reportRequest
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			f.t.Errorf("report body: %v", err)
		}
		f.mu.Lock()
		status := f.reportStatus
		if status == 0 {
			f.reports = append(f.reports, req)
		}
		f.mu.Unlock()
		if status != 0 {
			problem(w, status)
			return
		}
		_, _ = io.WriteString(w, `{"accepted":1,"late":0,"not_counted":0}`)
	case strings.HasSuffix(r.URL.Path, "/complete"):
		var req completeRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			f.t.Errorf("complete body: %v", err)
		}
		f.completions <- completeAt{path: r.URL.EscapedPath(), req: req}
		_, _ = io.WriteString(w, `{}`)
	case strings.HasSuffix(r.URL.Path, "/leases"):
		var req leaseRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			f.t.Errorf("lease body: %v", err)
		}
		f.mu.Lock()
		f.leaseCalls++
		f.leaseBodies = append(f.leaseBodies, req)
		answer := `{"granted":true,"probe":false,"lease_id":null,"expires_at_ms":null,"state":"closed","retry_after_ms":null}`
		if n := len(f.leaseAnswers); n > 0 {
			answer = f.leaseAnswers[0]
			if n > 1 {
				f.leaseAnswers = f.leaseAnswers[1:]
			}
		}
		f.mu.Unlock()
		if strings.HasPrefix(answer, "status ") {
			var status int
			fmt.Sscanf(answer, "status %d", &status)
			problem(w, status)
			return
		}
		_, _ = io.WriteString(w, answer)
	default:
		problem(w, http.StatusNotFound)
	}
}

func problem(w http.ResponseWriter, status int) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, `{"type":"urn:levee:error:x","title":"x","status":%d,"code":"backend_unavailable","detail":"scripted","degraded":true}`, status)
}

func (f *fakeRegistry) set(fn func(f *fakeRegistry)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeRegistry) lastWatchIDs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.watchIDs...)
}

func (f *fakeRegistry) sentReports() []reportRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]reportRequest(nil), f.reports...)
}

func (f *fakeRegistry) leaseCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.leaseCalls
}

// harness is a Client on a ManualClock against a fakeRegistry, with its waits observable.
type harness struct {
	*fakeRegistry
	c      *Client
	clock  *levee.ManualClock
	waits  map[string]chan time.Duration
	gauges *recordingGauges
	cancel context.CancelFunc
}

type recordingGauges struct {
	mu        sync.Mutex
	connected []bool
	levels    []int
}

func (g *recordingGauges) SetRegistryConnected(c bool) {
	g.mu.Lock()
	g.connected = append(g.connected, c)
	g.mu.Unlock()
}

func (g *recordingGauges) SetDegradationLevel(l int) {
	g.mu.Lock()
	g.levels = append(g.levels, l)
	g.mu.Unlock()
}

func (g *recordingGauges) last() (bool, int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.connected[len(g.connected)-1], g.levels[len(g.levels)-1]
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// clockStart is where test clocks start: an hour in, like the system clock.
const clockStart = levee.Timestamp(time.Hour)

func newHarness(t *testing.T, edit func(*Config)) *harness {
	f := newFakeRegistry(t)
	clock := levee.NewManualClock(clockStart)
	g := &recordingGauges{}
	cfg := Config{
		URL: f.srv.URL, Token: "reporter", Service: "checkout", InstanceID: "go-test-1",
		StaleTTL: 30 * time.Second, Clock: clock, Random: levee.NewSplitMix64(1), Metrics: g,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if edit != nil {
		edit(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{fakeRegistry: f, c: c, clock: clock, gauges: g, waits: map[string]chan time.Duration{
		waitReport: make(chan time.Duration, 1024), waitReconnect: make(chan time.Duration, 1024),
	}}
	c.onWait = func(kind string, d time.Duration) {
		select {
		case h.waits[kind] <- d:
		default:
		}
	}
	t.Cleanup(func() { _ = c.Close() })
	return h
}

func (h *harness) start() {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.t.Cleanup(cancel)
	h.c.Start(ctx)
}

// connect starts the client (if needed), takes its watch stream and sends snapshot.
func (h *harness) connect(snapshot string) *fakeStream {
	h.t.Helper()
	if h.cancel == nil {
		h.start()
	}
	s := receive(h.t, "a watch stream", h.streams)
	if snapshot != "" {
		s.event(h.t, 100, snapshot)
		eventually(h.t, "the snapshot", func() bool { return h.c.lastID.Load() == 100 })
	}
	eventually(h.t, "connected", h.c.Connected)
	return s
}

// nextStream lets reconnect backoffs pass (ReconnectMax at a time) until the client opens a
// new watch stream, and returns it.
func (h *harness) nextStream() *fakeStream {
	h.t.Helper()
	deadline := time.Now().Add(testDeadline)
	for {
		select {
		case s := <-h.streams:
			return s
		case <-time.After(2 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			h.t.Fatal("timed out waiting for a new watch stream")
		}
		h.clock.Advance(h.c.cfg.ReconnectMax)
	}
}

func snapshotJSON(breakers, toggles string, level int) string {
	return fmt.Sprintf(`{"type":"snapshot","event_id":100,"degraded":false,"breakers":{%s},"toggles":{%s},`+
		`"degradation":{"operator_level":%d,"rules":[],"level":%d,"source":"operator","rule":null},"policies":{}}`,
		breakers, toggles, level, level)
}

func breakerJSON(key, state string, extra string) string {
	if extra == "" {
		extra = `"observe":false,"open_until_ms":null`
	}
	return fmt.Sprintf(`{"key":%q,"state":%q,%s,"override":null,"permitted_probes":2,"leased_probes":0,`+
		`"reported_probes":0,"window":{"counted":0,"failures":0,"slow":0},"last_transition":null,"generation":1,"policy_version":0}`,
		key, state, extra)
}
