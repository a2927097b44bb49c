package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/levee-dev/levee/go"
	"github.com/levee-dev/levee/go/breaker"
	"github.com/levee-dev/levee/go/levhttp"
)

// Integration tests against the real Rust registry (see levee_process_test.go for how the
// binary is found). Time is real here: the registry's own clock decides open waits.

func newGoClient(t *testing.T, url string, edit func(*Config)) *Client {
	t.Helper()
	cfg := Config{URL: url, Token: reporterToken, Service: "checkout", ReportInterval: 50 * time.Millisecond}
	if edit != nil {
		edit(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.Start(ctx)
	t.Cleanup(func() {
		cancel()
		_ = c.Close()
	})
	eventually(t, "the Go client connects to the registry", func() bool { return c.Connected() && c.state.Load() != nil })
	return c
}

// view is fleet state reduced to what both sides must agree on.
type view struct {
	EventID  uint64
	Breakers map[string]string // key → state/generation/observe
	Toggles  map[string]string
	Level    int
	Policies map[string]uint64
}

// registryView is the Rust side's view: the registry's own GET /v1/state.
func registryView(p *registryProcess) view {
	var st eventData
	p.api(reporterToken, http.MethodGet, "/v1/state", nil, &st)
	v := view{EventID: st.EventID, Breakers: map[string]string{}, Toggles: map[string]string{}, Policies: map[string]uint64{}}
	for k, b := range st.Breakers {
		v.Breakers[k] = fmt.Sprintf("%s/%d/%v", b.State, b.Generation, b.Observe)
	}
	for k, tg := range st.Toggles {
		t := readToggle(tg)
		v.Toggles[k] = fmt.Sprintf("%s/%d/%d", t.state, t.percent, t.version)
	}
	if st.Degradation != nil {
		v.Level = st.Degradation.Level
	}
	for k, pol := range st.Policies {
		v.Policies[k] = pol.Version
	}
	return v
}

// goView is the Go client's cache in the same terms.
func goView(c *Client) view {
	s := c.state.Load()
	v := view{EventID: s.eventID, Breakers: map[string]string{}, Toggles: map[string]string{}, Level: s.level, Policies: map[string]uint64{}}
	for k, b := range s.breakers {
		v.Breakers[k] = fmt.Sprintf("%s/%d/%v", b.state, b.generation, b.observe)
	}
	for k, t := range s.toggles {
		v.Toggles[k] = fmt.Sprintf("%s/%d/%d", t.state, t.percent, t.version)
	}
	for k, p := range s.policies {
		v.Policies[k] = p.version
	}
	return v
}

// sameView waits until the Go client's cache equals the registry's state, event id included.
func sameView(t *testing.T, p *registryProcess, c *Client) view {
	t.Helper()
	deadline := time.Now().Add(testDeadline)
	for {
		want, got := registryView(p), goView(c)
		if reflect.DeepEqual(want, got) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("the Go client's fleet state never matched the registry's:\n  registry %+v\n  go       %+v", want, got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestIntegrationReportsOpenTheFleetBreakerAndLeasesAreLimited(t *testing.T) {
	reg := startRegistry(t, 0)
	reg.operator(http.MethodPut, "/v1/policies/inventory", map[string]any{
		"minimum_calls": 10,
		"open":          map[string]any{"wait": "1s", "jitter": 0},
		"half_open":     map[string]any{"permitted_calls": 2},
	})
	reporter := newGoClient(t, reg.url, nil)
	watcher := newGoClient(t, reg.url, nil)
	eventually(t, "the policy reaches the Go watcher", func() bool {
		cfg, version, ok := watcher.Policy("inventory")
		return ok && version == 1 && cfg.MinimumCalls == 10 && cfg.HalfOpen.PermittedCalls == 2
	})
	breakers, err := breaker.NewGroup(breaker.Config{}, breaker.WithFleet(watcher))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := watcher.FleetState("inventory"); ok {
		t.Fatal("a key never reported has a fleet state")
	}

	// Go reports failures for inventory: the fleet breaker opens and the watch says so.
	for i := 0; i < 4; i++ {
		reporter.Record("inventory", levee.Success, 4*time.Millisecond, false)
	}
	for i := 0; i < 8; i++ {
		reporter.Record("inventory", levee.Failure, 9*time.Millisecond, false)
	}
	if err := reporter.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the Go watcher sees the fleet breaker open", func() bool {
		s, ok := watcher.FleetState("inventory")
		return ok && s == breaker.Open
	})
	// The Rust side (the registry's own state) and the Go client agree, event id included.
	v := sameView(t, reg, watcher)
	if !strings.HasPrefix(v.Breakers["inventory"], "open/") {
		t.Fatalf("registry view %+v", v)
	}
	_, err = breakers.Get("inventory").Allow(context.Background())
	var le *levee.Error
	if !errors.As(err, &le) || le.Code != levee.CodeCircuitOpen || le.Reason != "fleet" || le.RetryAfter <= 0 || le.RetryAfter > time.Second {
		t.Fatalf("Allow(inventory) = %v, want the fleet's circuit_open with a retry-after up to 1s", err)
	}
	if s := breakers.Get("inventory"); s.State() != breaker.Closed || s.EffectiveState() != breaker.Open {
		t.Fatalf("local %v effective %v", s.State(), s.EffectiveState())
	}

	// Past the open wait, probes go only under leases: exactly permitted_calls fleet-wide.
	var b breakerWire
	reg.api(reporterToken, http.MethodGet, "/v1/breakers/inventory", nil, &b)
	for time.Now().UnixMilli() <= int64(*b.OpenUntilMs)+5 {
		time.Sleep(10 * time.Millisecond)
	}
	clients := []*Client{reporter, watcher, newGoClient(t, reg.url, nil), newGoClient(t, reg.url, nil)}
	var mu sync.Mutex
	var leases []*Lease
	var refused atomic.Int32
	var wg sync.WaitGroup
	for _, c := range clients {
		for j := 0; j < 5; j++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				l, err := c.AcquireLease(context.Background(), "inventory")
				switch {
				case errors.Is(err, levee.ErrCircuitOpen):
					refused.Add(1)
				case err != nil:
					t.Errorf("AcquireLease: %v", err)
				case l.Probe():
					mu.Lock()
					leases = append(leases, l)
					mu.Unlock()
				default:
					t.Error("a lease without a probe while the fleet is probing")
				}
			}()
		}
	}
	wg.Wait()
	if len(leases) != 2 || refused.Load() != 18 {
		t.Fatalf("%d probe leases and %d refusals, want exactly 2 (half_open.permitted_calls) and 18", len(leases), refused.Load())
	}
	reg.api(reporterToken, http.MethodGet, "/v1/breakers/inventory", nil, &b)
	if b.State != "half_open" {
		t.Fatalf("fleet breaker %s", b.State)
	}
	eventually(t, "the Go watcher sees half_open", func() bool {
		s, _ := watcher.FleetState("inventory")
		return s == breaker.HalfOpen
	})
	// Every slot is taken: the SDK breaker refuses too (no slot, so no probe).
	if _, err := breakers.Get("inventory").Allow(context.Background()); !errors.Is(err, levee.ErrCircuitOpen) {
		t.Fatalf("Allow while the fleet probes with every slot taken = %v", err)
	}
	// The probes succeed: the fleet closes, and the breaker lets calls through again.
	for _, l := range leases {
		l.Complete(levee.Success)
	}
	eventually(t, "the Go watcher sees the fleet breaker close", func() bool {
		s, _ := watcher.FleetState("inventory")
		return s == breaker.Closed
	})
	done, err := breakers.Get("inventory").Allow(context.Background())
	if err != nil {
		t.Fatalf("Allow after the fleet closed = %v", err)
	}
	done(levee.Success)
	sameView(t, reg, watcher)
}

func TestIntegrationOperatorChangesReachTheGoClient(t *testing.T) {
	reg := startRegistry(t, 0)
	c := newGoClient(t, reg.url, nil)
	breakers, err := breaker.NewGroup(breaker.Config{}, breaker.WithFleet(c))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	reg.operator(http.MethodPut, "/v1/breakers/search/override", map[string]string{"override": "forced_open"})
	eventually(t, "forced_open reaches Go", func() bool { s, ok := c.FleetState("search"); return ok && s == breaker.ForcedOpen })
	if _, err := breakers.Get("search").Allow(ctx); !errors.Is(err, levee.ErrCircuitOpen) {
		t.Fatalf("Allow(search) under forced_open = %v", err)
	}
	reg.operator(http.MethodPut, "/v1/breakers/search/override", map[string]string{"override": "disabled"})
	eventually(t, "disabled reaches Go", func() bool { s, _ := c.FleetState("search"); return s == breaker.Disabled })
	if s := breakers.Get("search").EffectiveState(); s != breaker.Closed {
		t.Fatalf("EffectiveState with the fleet disabled = %v: the local closed is more severe", s)
	}
	reg.operator(http.MethodDelete, "/v1/breakers/search/override", nil)
	eventually(t, "the cleared override reaches Go", func() bool { s, _ := c.FleetState("search"); return s == breaker.Closed })
	done, err := breakers.Get("search").Allow(ctx)
	if err != nil {
		t.Fatal(err)
	}
	done(levee.Success)

	// A 50 % toggle: Go puts each key on the side levee-core's toggle_bucket does.
	reg.operator(http.MethodPut, "/v1/toggles/half", map[string]any{"state": "percent", "percent": 50})
	eventually(t, "the toggle reaches Go", func() bool { return c.Enabled(ctx, "half", "user-4") })
	var on []string
	for i := 0; i < 20; i++ {
		if key := fmt.Sprintf("user-%d", i); c.Enabled(ctx, "half", key) {
			on = append(on, key)
		}
	}
	// levee_core::fleet::Toggle::Percent { percent: 50 }.enabled("half", "user-0".."user-19").
	rust := []string{"user-4", "user-5", "user-6", "user-7", "user-10", "user-15", "user-16", "user-17"}
	if !reflect.DeepEqual(on, rust) {
		t.Fatalf("on for %v; levee-core says %v", on, rust)
	}
	if c.Enabled(ctx, "new-checkout", "user-42") {
		t.Fatal("an unknown toggle is on")
	}

	reg.operator(http.MethodPut, "/v1/degradation", map[string]any{"level": 2})
	eventually(t, "the level reaches Go", func() bool { return c.DegradationLevel() == 2 })
	reg.operator(http.MethodDelete, "/v1/toggles/half", nil)
	eventually(t, "the deleted toggle is off", func() bool { return !c.Enabled(ctx, "half", "user-4") })
	v := sameView(t, reg, c)
	if v.Level != 2 || len(v.Toggles) != 0 || v.Breakers["search"] == "" {
		t.Fatalf("view %+v", v)
	}
}

func TestIntegrationARegistryOutageNeverFailsACall(t *testing.T) {
	reg := startRegistry(t, 0)
	reg.operator(http.MethodPut, "/v1/breakers/search/override", map[string]string{"override": "forced_open"})
	reg.operator(http.MethodPut, "/v1/toggles/beta", map[string]any{"state": "percent", "percent": 100})
	reg.operator(http.MethodPut, "/v1/degradation", map[string]any{"level": 2})
	c := newGoClient(t, reg.url, func(c *Config) {
		c.StaleTTL = time.Second
		c.ReconnectMax = 200 * time.Millisecond
		c.LeaseTimeout = 200 * time.Millisecond
	})
	ctx := context.Background()
	eventually(t, "the Go client has the fleet state", func() bool {
		s, _ := c.FleetState("search")
		return s == breaker.ForcedOpen && c.DegradationLevel() == 2 && c.Enabled(ctx, "beta", "user-1")
	})
	breakers, err := breaker.NewGroup(breaker.Config{}, breaker.WithFleet(c))
	if err != nil {
		t.Fatal(err)
	}
	var hits atomic.Int32
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = io.WriteString(w, "ok")
	}))
	defer upstream.Close()
	client := &http.Client{Transport: &levhttp.Transport{
		Breakers: breakers,
		Endpoint: func(r *http.Request) string { return strings.TrimPrefix(r.URL.Path, "/") },
	}}
	get := func(key string) error {
		resp, err := client.Get(upstream.URL + "/" + key)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.Body.Close()
	}
	if err := get("search"); !errors.Is(err, levee.ErrCircuitOpen) {
		t.Fatalf("GET search under a fleet forced_open = %v", err)
	}

	reg.kill()
	eventually(t, "the Go client notices the registry is gone", func() bool { return !c.Connected() })
	// Last-known state, for StaleTTL.
	if s, ok := c.FleetState("search"); !ok || s != breaker.ForcedOpen {
		t.Fatalf("FleetState right after the outage = %v, %v; want the last-known forced_open", s, ok)
	}
	// Nothing on a request path fails because of the outage.
	c.Record("inventory", levee.Success, time.Millisecond, false)
	if lease, err := c.AcquireLease(ctx, "inventory"); err != nil || lease.Probe() {
		t.Fatalf("AcquireLease during the outage = %+v, %v", lease, err)
	}
	if err := get("inventory"); err != nil {
		t.Fatalf("GET inventory during the outage = %v", err)
	}
	// After StaleTTL: local-only.
	eventually(t, "the fleet state expires after StaleTTL", func() bool { _, ok := c.FleetState("search"); return !ok })
	if c.DegradationLevel() != 0 {
		t.Fatal("the degradation level outlived StaleTTL")
	}
	if !c.Enabled(ctx, "beta", "user-1") {
		t.Fatal("toggles keep their last-known values")
	}
	if err := get("search"); err != nil {
		t.Fatalf("GET search once local-only = %v (the local breaker is closed)", err)
	}
	if hits.Load() != 2 {
		t.Fatalf("%d upstream calls, want 2", hits.Load())
	}

	// The registry comes back on the same address (empty: memory backend): the client
	// resumes by itself, from a snapshot.
	reg = startRegistry(t, reg.port)
	reg.operator(http.MethodPut, "/v1/toggles/beta", map[string]any{"state": "off"})
	eventually(t, "the Go client reconnects and follows", func() bool { return c.Connected() && !c.Enabled(ctx, "beta", "user-1") })
	if _, ok := c.FleetState("search"); ok {
		t.Fatal("a restarted registry without the override still has it in Go")
	}
	// The buckets recorded during the outage were kept and reach the new registry.
	if err := c.Flush(ctx); err != nil {
		t.Fatalf("Flush after the registry came back: %v", err)
	}
	sameView(t, reg, c)
}

// Both sides list the same keys: a guard against the view comparison passing vacuously.
func TestIntegrationViewsListKeysInTheSameTerms(t *testing.T) {
	reg := startRegistry(t, 0)
	for _, key := range []string{"a", "b/c", "é"} {
		reg.operator(http.MethodPut, "/v1/breakers/"+encodeSegment(key)+"/override", map[string]string{"override": "observe"})
	}
	c := newGoClient(t, reg.url, nil)
	v := sameView(t, reg, c)
	keys := make([]string, 0, len(v.Breakers))
	for k := range v.Breakers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if !reflect.DeepEqual(keys, []string{"a", "b/c", "é"}) {
		t.Fatalf("keys %v", keys)
	}
	// observe: the fleet never restricts calls.
	if _, ok := c.FleetState("b/c"); ok {
		t.Fatal("an observing fleet breaker holds a state over callers")
	}
	if done, err := c.Admit(context.Background(), "b/c"); done != nil || err != nil {
		t.Fatalf("Admit under observe = %v, %v", done != nil, err)
	}
}
