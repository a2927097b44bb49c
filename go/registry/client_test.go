package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/levee-dev/levee/go"
	"github.com/levee-dev/levee/go/breaker"
)

func TestWatchSnapshotAndEventsFillTheCache(t *testing.T) {
	h := newHarness(t, nil)
	until := h.clock.Time().Add(5 * time.Second).UnixMilli()
	snapshot := `{"type":"snapshot","event_id":100,"degraded":false,` +
		`"breakers":{"inventory":` + breakerJSON("inventory", "open", fmt.Sprintf(`"observe":false,"open_until_ms":%d`, until)) +
		`,"search":` + breakerJSON("search", "closed", "") + `},` +
		`"toggles":{"beta":{"state":"on","version":1},"half":{"state":"percent","percent":50,"version":2}},` +
		`"degradation":{"operator_level":0,"rules":[],"level":2,"source":"rule","rule":"open_breakers >= 30%"},` +
		`"policies":{"inventory":{"key":"inventory","version":3,"config":{"window":{"kind":"time","size":10},"minimum_calls":10,` +
		`"failure_rate_threshold":50.0,"slow_call_rate_threshold":100.0,"slow_call_duration":"5s","consecutive_failures":0,` +
		`"open":{"wait":"300ms","backoff_multiplier":2.0,"max_wait":"1m","jitter":0.0},"half_open":{"permitted_calls":2,"max_wait":"0s"},"mode":"enforce"}}}}`
	s := h.connect(snapshot)
	ctx := context.Background()
	if st, ok := h.c.FleetState("inventory"); !ok || st != breaker.Open {
		t.Fatalf("FleetState(inventory) = %v, %v; want open", st, ok)
	}
	if st, ok := h.c.FleetState("search"); !ok || st != breaker.Closed {
		t.Fatalf("FleetState(search) = %v, %v; want closed", st, ok)
	}
	if _, ok := h.c.FleetState("never-reported"); ok {
		t.Fatal("a key the fleet does not know has a fleet state")
	}
	if !h.c.Enabled(ctx, "beta", "anyone") || h.c.Enabled(ctx, "nope", "anyone") {
		t.Fatal("toggle beta should be on and unknown toggles off")
	}
	// "half" at 50 %: user-4 is in bucket 8, user-0 in 64 (levee-core's buckets).
	if !h.c.Enabled(ctx, "half", "user-4") || h.c.Enabled(ctx, "half", "user-0") {
		t.Fatal("percent toggle does not follow ToggleBucket")
	}
	if got := h.c.DegradationLevel(); got != 2 {
		t.Fatalf("DegradationLevel = %d, want 2", got)
	}
	cfg, version, ok := h.c.Policy("inventory")
	if !ok || version != 3 || cfg.MinimumCalls != 10 || cfg.Open.Wait != 300*time.Millisecond || cfg.HalfOpen.PermittedCalls != 2 {
		t.Fatalf("Policy(inventory) = %+v, %d, %v", cfg, version, ok)
	}
	if c, l := h.gauges.last(); !c || l != 2 {
		t.Fatalf("gauges connected=%v level=%d, want true 2", c, l)
	}

	// Events change one thing each.
	s.event(t, 101, `{"type":"breaker","breaker":`+breakerJSON("search", "forced_open", "")+`,"transition":{"from":"closed","to":"forced_open","reason":"operator","at_ms":1}}`)
	s.event(t, 102, `{"type":"toggle","name":"beta","toggle":null}`)
	s.event(t, 103, `{"type":"degradation","degradation":{"operator_level":1,"rules":[],"level":1,"source":"operator","rule":null}}`)
	s.event(t, 104, `{"type":"policy","policy":{"key":"inventory","version":4,"config":{"minimum_calls":7}}}`)
	s.event(t, 105, `{"type":"something_new","x":1}`)
	eventually(t, "the events are applied", func() bool { return h.c.lastID.Load() == 105 })
	if st, _ := h.c.FleetState("search"); st != breaker.ForcedOpen {
		t.Fatalf("FleetState(search) = %v after the override event", st)
	}
	if st, _ := h.c.FleetState("inventory"); st != breaker.Open {
		t.Fatalf("FleetState(inventory) = %v: other keys must be untouched", st)
	}
	if h.c.Enabled(ctx, "beta", "anyone") {
		t.Fatal("a deleted toggle is still on")
	}
	if got := h.c.DegradationLevel(); got != 1 {
		t.Fatalf("DegradationLevel = %d, want 1", got)
	}
	if cfg, version, _ := h.c.Policy("inventory"); version != 4 || cfg.MinimumCalls != 7 {
		t.Fatalf("Policy(inventory) = %+v, %d", cfg, version)
	}
	if got := h.c.state.Load().eventID; got != 105 {
		t.Fatalf("cache event id %d, want 105", got)
	}
	h.mu.Lock()
	auth := h.auth[0]
	h.mu.Unlock()
	if auth != "Bearer reporter" {
		t.Fatalf("Authorization %q", auth)
	}
}

func TestReconnectResumesWithLastEventIDAndBacksOff(t *testing.T) {
	draws := make([]float64, 20) // factor 0.5 for every backoff
	h := newHarness(t, func(c *Config) { c.Random = levee.NewScriptedRandom(draws...) })
	s := h.connect(snapshotJSON(breakerJSONEntry("inventory", "open"), "", 0))
	s.event(t, 101, `{"type":"toggle","name":"beta","toggle":{"state":"on","version":1}}`)
	s.event(t, 102, `{"type":"toggle","name":"gamma","toggle":{"state":"on","version":1}}`)
	eventually(t, "the events are applied", func() bool { return h.c.lastID.Load() == 102 })

	// The registry goes away: the stream ends and new watches are refused for a while.
	h.set(func(f *fakeRegistry) { f.watchStatus = http.StatusServiceUnavailable })
	s.close()
	eventually(t, "the client notices", func() bool { return !h.c.Connected() })
	if c, _ := h.gauges.last(); c {
		t.Fatal("levee_registry_connected still 1")
	}
	// Backoff: ReconnectMin doubled per failed attempt up to ReconnectMax, times 0.5 here.
	want := []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond,
		400 * time.Millisecond, 800 * time.Millisecond, 1600 * time.Millisecond, 2500 * time.Millisecond, 2500 * time.Millisecond}
	var got []time.Duration
	for i := range want {
		d := receive(t, "a reconnect backoff", h.waits[waitReconnect])
		got = append(got, d)
		if i == len(want)-1 {
			// Back: the next watch resumes after the last event received.
			h.set(func(f *fakeRegistry) { f.watchStatus = 0 })
		}
		h.clock.Advance(d)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("backoffs %v, want %v", got, want)
	}
	s = receive(t, "the resumed watch", h.streams)
	ids := h.lastWatchIDs()
	if ids[0] != "" || ids[len(ids)-1] != "102" {
		t.Fatalf("Last-Event-IDs %q: the first watch has none, a resumed one the last id", ids)
	}
	eventually(t, "connected again", h.c.Connected)
	s.event(t, 103, `{"type":"breaker","breaker":`+breakerJSON("inventory", "closed", "")+`,"transition":null}`)
	eventually(t, "the replayed event is applied", func() bool { st, _ := h.c.FleetState("inventory"); return st == breaker.Closed })
	if !h.c.Enabled(context.Background(), "gamma", "x") {
		t.Fatal("state from before the disconnect was lost")
	}
	// A successful stream resets the backoff.
	s.close()
	if d := receive(t, "a backoff", h.waits[waitReconnect]); d != 50*time.Millisecond {
		t.Fatalf("backoff after a successful stream %v, want 50ms", d)
	}
}

func breakerJSONEntry(key, state string) string {
	return fmt.Sprintf("%q:%s", key, breakerJSON(key, state, ""))
}

func TestAnUnreadableEventReconnectsForASnapshot(t *testing.T) {
	h := newHarness(t, nil)
	s := h.connect(snapshotJSON("", "", 0))
	s.event(t, 101, `{"type":"degradation","degradation":{"level":1}}`)
	eventually(t, "applied", func() bool { return h.c.lastID.Load() == 101 })
	s.write(t, "id: 102\nevent: breaker\ndata: {not json\n\n")
	h.nextStream()
	if ids := h.lastWatchIDs(); ids[len(ids)-1] != "" {
		t.Fatalf("resumed with %q after an unreadable event; want a fresh snapshot", ids[len(ids)-1])
	}
}

func TestStaleTTLOnAManualClock(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.StaleTTL = 30 * time.Second })
	ctx := context.Background()
	s := h.connect(snapshotJSON(breakerJSONEntry("search", "forced_open"), `"beta":{"state":"on","version":1}`, 2))
	if _, err := h.c.Admit(ctx, "search"); !errors.Is(err, levee.ErrCircuitOpen) {
		t.Fatalf("Admit(search) = %v, want circuit_open", err)
	}

	h.set(func(f *fakeRegistry) { f.watchStatus = http.StatusServiceUnavailable })
	s.close()
	eventually(t, "the client notices", func() bool { return !h.c.Connected() })
	// Last-known state for StaleTTL...
	h.clock.Advance(30*time.Second - time.Nanosecond)
	if st, ok := h.c.FleetState("search"); !ok || st != breaker.ForcedOpen {
		t.Fatalf("FleetState before StaleTTL = %v, %v; want forced_open", st, ok)
	}
	if h.c.DegradationLevel() != 2 {
		t.Fatal("the degradation level was dropped before StaleTTL")
	}
	// ...then local-only.
	h.clock.Advance(time.Nanosecond)
	if st, ok := h.c.FleetState("search"); ok {
		t.Fatalf("FleetState after StaleTTL = %v, true; want local-only", st)
	}
	if h.c.DegradationLevel() != 0 {
		t.Fatal("the degradation level outlived StaleTTL")
	}
	if done, err := h.c.Admit(ctx, "search"); done != nil || err != nil {
		t.Fatalf("Admit after StaleTTL = %v, %v; want no restriction", done != nil, err)
	}
	if !h.c.Enabled(ctx, "beta", "user-1") {
		t.Fatal("toggles must keep their last-known values")
	}
	// The report loop's tick refreshes the gauges.
	h.clock.Advance(time.Second)
	eventually(t, "gauges at 0", func() bool { c, l := h.gauges.last(); return !c && l == 0 })

	// The registry returns: the client resumes by itself.
	h.set(func(f *fakeRegistry) { f.watchStatus = 0 })
	s = h.nextStream()
	eventually(t, "connected again", h.c.Connected)
	if st, ok := h.c.FleetState("search"); !ok || st != breaker.ForcedOpen {
		t.Fatalf("FleetState after reconnecting = %v, %v", st, ok)
	}
	s.close()
}

func TestABackendLossStatusStartsStaleTTL(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.StaleTTL = 10 * time.Second })
	s := h.connect(snapshotJSON(breakerJSONEntry("search", "open"), "", 1))
	s.event(t, 100, `{"type":"status","backend_connected":false}`)
	eventually(t, "disconnected while the stream is up", func() bool { return !h.c.Connected() })
	h.clock.Advance(10*time.Second - time.Nanosecond)
	if _, ok := h.c.FleetState("search"); !ok {
		t.Fatal("fleet state dropped before StaleTTL")
	}
	h.clock.Advance(time.Nanosecond)
	if _, ok := h.c.FleetState("search"); ok {
		t.Fatal("fleet state from a registry without its backend outlived StaleTTL")
	}
	s.event(t, 100, `{"type":"status","backend_connected":true}`)
	eventually(t, "connected again", h.c.Connected)
	if _, ok := h.c.FleetState("search"); !ok {
		t.Fatal("fleet state not live again")
	}
	// A snapshot marked degraded counts as a backend loss too.
	s.event(t, 106, strings.Replace(snapshotJSON("", "", 0), `"degraded":false`, `"degraded":true`, 1))
	eventually(t, "degraded snapshot", func() bool { return !h.c.Connected() })
}

func TestASilentStreamIsReconnected(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.IdleTimeout = 15 * time.Second; c.StaleTTL = time.Hour })
	s := h.connect(snapshotJSON("", "", 0))
	// The report loop's timer and the idle watchdog.
	eventually(t, "the idle watchdog is armed", func() bool { return h.clock.Timers() == 2 })
	h.clock.Advance(10 * time.Second)
	s.event(t, 101, `{"type":"degradation","degradation":{"level":1}}`)
	eventually(t, "applied", func() bool { return h.c.DegradationLevel() == 1 })
	h.clock.Advance(10 * time.Second) // 10 s since the last event: still up
	if !h.c.Connected() {
		t.Fatal("a stream heard from 10 s ago was cut")
	}
	eventually(t, "the watchdog re-armed", func() bool { return h.clock.Timers() == 2 })
	h.clock.Advance(5 * time.Second) // 15 s of silence
	eventually(t, "the silent stream is cut", func() bool { return !h.c.Connected() })
	h.nextStream()
	if ids := h.lastWatchIDs(); ids[len(ids)-1] != "101" {
		t.Fatalf("resumed with %q, want 101", ids[len(ids)-1])
	}
}

// wallSecond is the Unix second a ManualClock at clockStart reads.
func wallSecond(h *harness) uint64 { return uint64(h.clock.Time().Unix()) }

func TestRecordBatchesPerKeyAndSecond(t *testing.T) {
	h := newHarness(t, nil)
	c := h.c
	s0 := wallSecond(h)
	c.Record("inventory", levee.Success, 12*time.Millisecond, false)
	c.Record("inventory", levee.Failure, 9*time.Millisecond, true)
	c.Record("inventory", levee.Timeout, 2*time.Second, true)
	c.Record("inventory", levee.Cancelled, time.Second, true) // not counted: no slow, no latency
	c.Record("inventory", levee.Rejected, 0, false)
	c.Record("inventory", levee.Ignored, 0, false)
	c.Record("search", levee.Success, 1500*time.Microsecond, false)
	h.clock.Advance(time.Second)
	c.Record("inventory", levee.Success, 3*time.Millisecond, false)
	if err := c.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	reports := h.sentReports()
	if len(reports) != 1 {
		t.Fatalf("%d reports, want 1", len(reports))
	}
	want := reportRequest{Service: "checkout", Language: "go", Instance: "go-test-1", Endpoints: []endpointReport{
		{Key: "inventory", Buckets: []bucket{
			{StartS: s0, Success: 1, Failure: 1, Timeout: 1, Slow: 2, Cancelled: 1, Rejected: 1, Ignored: 1, LatencySumMs: 2021},
			{StartS: s0 + 1, Success: 1, LatencySumMs: 3},
		}},
		{Key: "search", Buckets: []bucket{{StartS: s0, Success: 1, LatencySumMs: 1}}},
	}}
	if !reflect.DeepEqual(reports[0], want) {
		t.Fatalf("report\n got %+v\nwant %+v", reports[0], want)
	}
	// Nothing pending: no request.
	if err := c.Flush(context.Background()); err != nil || len(h.sentReports()) != 1 {
		t.Fatalf("an empty flush sent a report (%v)", err)
	}
}

func TestReportsSurviveAnOutageBoundedOldestDroppedFirst(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxPendingBuckets = 3 })
	c := h.c
	s0 := wallSecond(h)
	h.set(func(f *fakeRegistry) { f.reportStatus = http.StatusServiceUnavailable })
	for i := 0; i < 5; i++ {
		c.Record("a", levee.Failure, time.Millisecond, false)
		h.clock.Advance(time.Second)
	}
	if got := c.DroppedBuckets(); got != 2 {
		t.Fatalf("dropped %d buckets, want 2", got)
	}
	err := c.Flush(context.Background())
	var se *StatusError
	if !errors.As(err, &se) || se.Status != 503 || se.Code != "backend_unavailable" {
		t.Fatalf("Flush = %v, want the 503", err)
	}
	// Kept, and merged with what comes later in the same second.
	h.clock.Advance(-time.Second)
	c.Record("a", levee.Success, time.Millisecond, false)
	h.set(func(f *fakeRegistry) { f.reportStatus = 0 })
	if err := c.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := h.sentReports()[0].Endpoints
	want := []endpointReport{{Key: "a", Buckets: []bucket{
		{StartS: s0 + 2, Failure: 1, LatencySumMs: 1},
		{StartS: s0 + 3, Failure: 1, LatencySumMs: 1},
		{StartS: s0 + 4, Success: 1, Failure: 1, LatencySumMs: 2},
	}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("sent %+v\nwant %+v", got, want)
	}
	// A report the registry refuses as malformed is dropped, not retried for ever.
	h.set(func(f *fakeRegistry) { f.reportStatus = http.StatusBadRequest })
	c.Record("b", levee.Success, 0, false)
	if err := c.Flush(context.Background()); err == nil {
		t.Fatal("a refused report is no error")
	}
	if c.pending.entries.Load() != 0 || c.DroppedBuckets() != 3 {
		t.Fatalf("refused buckets kept (%d pending, %d dropped)", c.pending.entries.Load(), c.DroppedBuckets())
	}
}

func TestTheReportLoopSendsEveryInterval(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.ReportInterval = 250 * time.Millisecond })
	h.start()
	if d := receive(t, "the report wait", h.waits[waitReport]); d != 250*time.Millisecond {
		t.Fatalf("report interval %v", d)
	}
	h.c.Record("inventory", levee.Failure, time.Millisecond, false)
	h.clock.Advance(250 * time.Millisecond)
	eventually(t, "a report", func() bool { return len(h.sentReports()) == 1 })
	// After a failure the loop waits longer (interval + backoff).
	h.set(func(f *fakeRegistry) { f.reportStatus = 503 })
	receive(t, "the next report wait", h.waits[waitReport])
	h.c.Record("inventory", levee.Failure, time.Millisecond, false)
	h.clock.Advance(250 * time.Millisecond)
	if d := receive(t, "the wait after a failure", h.waits[waitReport]); d <= 250*time.Millisecond {
		t.Fatalf("wait after a failed report %v, want more than the interval", d)
	}
}

func TestReportsAreSplitToTheRegistrysLimits(t *testing.T) {
	var endpoints []endpointReport
	for i := 0; i < 2500; i++ {
		endpoints = append(endpoints, endpointReport{Key: fmt.Sprintf("k%04d", i), Buckets: []bucket{{StartS: 1}}})
	}
	parts := chunks(endpoints)
	if len(parts) != 3 || len(parts[0]) != 1000 || len(parts[2]) != 500 {
		t.Fatalf("2500 keys split into %d parts", len(parts))
	}
	long := endpointReport{Key: "a", Buckets: make([]bucket, 4000)}
	parts = chunks([]endpointReport{long})
	if len(parts) != 1 || len(parts[0]) != 2 || len(parts[0][0].Buckets) != 3600 || len(parts[0][1].Buckets) != 400 {
		t.Fatalf("4000 buckets split into %d parts", len(parts))
	}
}

func TestLeases(t *testing.T) {
	h := newHarness(t, nil)
	h.start()
	ctx := context.Background()
	h.set(func(f *fakeRegistry) {
		f.leaseAnswers = []string{`{"granted":true,"probe":true,"lease_id":"L1","expires_at_ms":1735693210000,"state":"half_open","retry_after_ms":null}`}
	})
	lease, err := h.c.AcquireLease(ctx, "inventory/get")
	if err != nil || !lease.Probe() || lease.ID() != "L1" || lease.Expires().UnixMilli() != 1735693210000 {
		t.Fatalf("AcquireLease = %+v, %v", lease, err)
	}
	h.mu.Lock()
	body := h.leaseBodies[0]
	h.mu.Unlock()
	if body != (leaseRequest{Instance: "go-test-1", TTLMs: 10000}) {
		t.Fatalf("lease request %+v", body)
	}
	h.clock.Advance(120 * time.Millisecond)
	lease.Complete(levee.Failure)
	lease.Complete(levee.Success) // only the first counts
	got := receive(t, "the completion", h.completions)
	if got.path != "/v1/breakers/inventory%2Fget/leases/L1/complete" || got.req != (completeRequest{Outcome: levee.Failure, DurationMs: 120}) {
		t.Fatalf("completion %+v", got)
	}

	// Granted without a probe: the fleet does not restrict calls.
	h.set(func(f *fakeRegistry) {
		f.leaseAnswers = []string{`{"granted":true,"probe":false,"lease_id":null,"expires_at_ms":null,"state":"closed","retry_after_ms":null}`}
	})
	if lease, err := h.c.AcquireLease(ctx, "a"); err != nil || lease.Probe() {
		t.Fatalf("AcquireLease = %+v, %v; want a non-probe lease", lease, err)
	}
	lease.Complete(levee.Success) // does nothing

	// Denied: circuit_open with the retry-after, remembered briefly so callers do not each ask.
	h.set(func(f *fakeRegistry) {
		f.leaseAnswers = []string{`{"granted":false,"probe":false,"lease_id":null,"expires_at_ms":null,"state":"half_open","retry_after_ms":300}`}
	})
	calls := h.leaseCount()
	_, err = h.c.AcquireLease(ctx, "b")
	var le *levee.Error
	if !errors.As(err, &le) || !errors.Is(err, levee.ErrCircuitOpen) || le.RetryAfter != 300*time.Millisecond || le.Reason != "fleet" {
		t.Fatalf("denied lease: %v", err)
	}
	h.clock.Advance(100 * time.Millisecond)
	_, err = h.c.AcquireLease(ctx, "b")
	if !errors.As(err, &le) || le.RetryAfter != 200*time.Millisecond || h.leaseCount() != calls+1 {
		t.Fatalf("a remembered denial: %v (%d requests)", err, h.leaseCount()-calls)
	}
	h.clock.Advance(200 * time.Millisecond)
	_, _ = h.c.AcquireLease(ctx, "b")
	if h.leaseCount() != calls+2 {
		t.Fatal("a denial was remembered past its retry-after")
	}

	// Fail-static: a registry that cannot answer is no restriction, and no error.
	h.set(func(f *fakeRegistry) { f.leaseAnswers = []string{"status 503"} })
	if lease, err := h.c.AcquireLease(ctx, "c"); err != nil || lease.Probe() {
		t.Fatalf("AcquireLease with the registry failing = %+v, %v", lease, err)
	}
	// The caller's own context is the one error.
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := h.c.AcquireLease(cancelled, "c"); !errors.Is(err, context.Canceled) {
		t.Fatalf("AcquireLease with a cancelled context = %v", err)
	}
}

// As the proxy: a lease request the registry does not answer leaves the fleet's fresh last
// word (it is probing the key) in force, remembered briefly; once stale, nothing restricts.
func TestAnUnansweredLeaseKeepsTheFleetsLastWordUntilStale(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.StaleTTL = 10 * time.Second })
	s := h.connect(snapshotJSON(breakerJSONEntry("probing", "half_open"), "", 0))
	h.set(func(f *fakeRegistry) { f.leaseAnswers = []string{"status 503"} })
	ctx := context.Background()
	if _, err := h.c.AcquireLease(ctx, "probing"); !errors.Is(err, levee.ErrCircuitOpen) {
		t.Fatalf("AcquireLease unanswered while the fleet probes = %v, want circuit_open", err)
	}
	if _, err := h.c.Admit(ctx, "probing"); !errors.Is(err, levee.ErrCircuitOpen) || h.leaseCount() != 1 {
		t.Fatalf("Admit = %v after %d lease requests; want the remembered refusal", err, h.leaseCount())
	}
	h.clock.Advance(maxDenialHold)
	if _, err := h.c.Admit(ctx, "probing"); !errors.Is(err, levee.ErrCircuitOpen) || h.leaseCount() != 2 {
		t.Fatalf("Admit = %v after %d lease requests; want a new request, refused", err, h.leaseCount())
	}
	// A fleet change forgets the refusal at once.
	s.event(t, 101, `{"type":"breaker","breaker":`+breakerJSON("probing", "half_open", "")+`,"transition":null}`)
	eventually(t, "applied", func() bool { return h.c.lastID.Load() == 101 })
	_, _ = h.c.Admit(ctx, "probing")
	if h.leaseCount() != 3 {
		t.Fatal("a breaker event did not forget the refusal")
	}
	// Stale: local-only, whatever the registry says or does not.
	h.set(func(f *fakeRegistry) { f.watchStatus = http.StatusServiceUnavailable })
	s.close()
	eventually(t, "disconnected", func() bool { return !h.c.Connected() })
	h.clock.Advance(10 * time.Second)
	if lease, err := h.c.AcquireLease(ctx, "probing"); err != nil || lease.Probe() {
		t.Fatalf("AcquireLease once stale = %+v, %v; want no restriction", lease, err)
	}
	if done, err := h.c.Admit(ctx, "probing"); done != nil || err != nil {
		t.Fatalf("Admit once stale = %v, %v", done != nil, err)
	}
}

func TestAnUnreachableRegistryIsNoErrorForCallers(t *testing.T) {
	// Port 9 (discard) on loopback: nothing listens there in the test environment.
	c, err := New(Config{URL: "http://127.0.0.1:9", Service: "svc", LeaseTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c.Start(ctx)
	c.Record("k", levee.Failure, 3*time.Millisecond, false)
	if lease, err := c.AcquireLease(ctx, "k"); err != nil || lease.Probe() {
		t.Fatalf("AcquireLease = %+v, %v", lease, err)
	}
	if done, err := c.Admit(ctx, "k"); done != nil || err != nil {
		t.Fatalf("Admit = %v, %v", done != nil, err)
	}
	if _, ok := c.FleetState("k"); ok || c.Connected() || c.Enabled(ctx, "t", "x") || c.DegradationLevel() != 0 {
		t.Fatal("an unreachable registry has state")
	}
	if err := c.Flush(ctx); err == nil {
		t.Fatal("Flush to an unreachable registry succeeded")
	}
	if c.pending.entries.Load() != 1 {
		t.Fatal("the bucket was not kept for later")
	}
	if err := c.Close(); err == nil {
		t.Fatal("Close's last report to an unreachable registry succeeded")
	}
}

func TestAdmitFollowsTheFleetBreaker(t *testing.T) {
	h := newHarness(t, nil)
	now := h.clock.Time().UnixMilli()
	open := func(key string, untilMs int64, observe bool) string {
		return fmt.Sprintf("%q:%s", key, breakerJSON(key, "open", fmt.Sprintf(`"observe":%v,"open_until_ms":%d`, observe, untilMs)))
	}
	breakers := strings.Join([]string{
		breakerJSONEntry("closed", "closed"), breakerJSONEntry("disabled", "disabled"),
		breakerJSONEntry("forced", "forced_open"), open("open", now+5000, false), open("waited", now-1, false),
		breakerJSONEntry("half", "half_open"), open("observed", now+5000, true),
	}, ",")
	h.connect(snapshotJSON(breakers, "", 0))
	h.set(func(f *fakeRegistry) {
		f.leaseAnswers = []string{`{"granted":true,"probe":true,"lease_id":"P","expires_at_ms":1,"state":"half_open","retry_after_ms":null}`}
	})
	ctx := context.Background()
	if _, ok := h.c.FleetState("observed"); ok {
		t.Fatal("a fleet breaker that only observes holds a state over callers")
	}
	for _, c := range []struct {
		key        string
		probe      bool
		rejected   bool
		retryAfter time.Duration
	}{
		{key: "closed"}, {key: "disabled"}, {key: "unknown"}, {key: "observed"},
		{key: "forced", rejected: true},
		{key: "open", rejected: true, retryAfter: 5 * time.Second},
		{key: "waited", probe: true},
		{key: "half", probe: true},
	} {
		done, err := h.c.Admit(ctx, c.key)
		var le *levee.Error
		switch {
		case c.rejected:
			if !errors.As(err, &le) || le.Code != levee.CodeCircuitOpen || le.RetryAfter != c.retryAfter {
				t.Errorf("%s: Admit = %v, want circuit_open after %v", c.key, err, c.retryAfter)
			}
		case err != nil || (done != nil) != c.probe:
			t.Errorf("%s: Admit = probe %v, %v; want probe %v", c.key, done != nil, err, c.probe)
		}
	}
}

func TestNewChecksTheConfigAndFillsDefaults(t *testing.T) {
	for _, cfg := range []Config{
		{URL: "127.0.0.1:9911"}, {URL: "ftp://x"}, {URL: "http://x?y=1"},
		{StaleTTL: -time.Second}, {ReconnectMin: time.Second, ReconnectMax: time.Millisecond},
		{Service: "a\nb"}, {MaxPendingBuckets: -1}, {HTTPClient: &http.Client{Timeout: time.Second}},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
	t.Setenv(TokenEnv, "from-env")
	c, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if c.base != DefaultURL || c.token != "from-env" || c.service == "" || len(c.InstanceID()) != 16 {
		t.Fatalf("defaults: base %q token %q service %q instance %q", c.base, c.token, c.service, c.InstanceID())
	}
	d := c.cfg
	if d.ReportInterval != time.Second || d.StaleTTL != 30*time.Second || d.MaxPendingBuckets != 4096 ||
		d.LeaseTimeout != 500*time.Millisecond || d.LeaseTTL != 10*time.Second || d.IdleTimeout != 15*time.Second ||
		d.ReconnectMin != 100*time.Millisecond || d.ReconnectMax != 5*time.Second || d.RequestTimeout != 2*time.Second {
		t.Fatalf("defaults %+v", d)
	}
	if c2, _ := New(Config{}); c2.InstanceID() == c.InstanceID() {
		t.Fatal("two instances drew the same id")
	}
}

func TestCloseSendsWhatIsPendingAndStops(t *testing.T) {
	h := newHarness(t, nil)
	h.connect(snapshotJSON("", "", 0))
	h.c.Record("inventory", levee.Success, time.Millisecond, false)
	if err := h.c.Close(); err != nil {
		t.Fatal(err)
	}
	if len(h.sentReports()) != 1 {
		t.Fatal("Close did not send the pending buckets")
	}
	if h.c.Connected() {
		t.Fatal("connected after Close")
	}
	h.c.Start(context.Background()) // does nothing
	if err := h.c.Close(); err != nil {
		t.Fatal("a second Close failed")
	}
}
