package breaker_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/levee-dev/levee/go"
	"github.com/levee-dev/levee/go/breaker"
)

func TestReconfigureKeepsTheStateAndUsesTheNewNumbers(t *testing.T) {
	clock := levee.NewManualClock(1e12)
	cfg := breaker.Config{MinimumCalls: 2, Open: breaker.OpenConfig{Wait: 10 * time.Second, Jitter: levee.Ptr(0.0)}}
	g, err := breaker.NewGroup(cfg, breaker.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	fail := func(key string) {
		t.Helper()
		done, err := g.Get(key).Allow(ctx)
		if err != nil {
			t.Fatal(err)
		}
		done(levee.Failure)
	}

	// Closed: stays closed, the window is cleared, the new minimum applies.
	fail("a")
	if err := g.Reconfigure("a", breaker.Config{MinimumCalls: 3}); err != nil {
		t.Fatal(err)
	}
	if snap := g.Get("a").Snapshot(clock.Now()); snap.State != breaker.Closed || snap.Window.Counted != 0 {
		t.Fatalf("closed after reconfigure: %+v", snap)
	}
	fail("a")
	fail("a")
	if s := g.Get("a").State(); s != breaker.Closed {
		t.Fatalf("2 failures under minimum_calls 3 opened it: %v", s)
	}
	fail("a")
	if s := g.Get("a").State(); s != breaker.Open {
		t.Fatalf("3 failures under minimum_calls 3: %v", s)
	}

	// Open: stays open until the same moment.
	fail("b")
	fail("b")
	clock.Advance(4 * time.Second)
	if err := g.Reconfigure("b", breaker.Config{MinimumCalls: 5, Open: breaker.OpenConfig{Wait: time.Minute, MaxWait: 2 * time.Minute}}); err != nil {
		t.Fatal(err)
	}
	_, err = g.Get("b").Allow(ctx)
	var le *levee.Error
	if !errors.As(err, &le) || le.Code != levee.CodeCircuitOpen || le.RetryAfter != 6*time.Second {
		t.Fatalf("open after reconfigure: %v", err)
	}
	clock.Advance(6 * time.Second)
	if done, err := g.Get("b").Allow(ctx); err != nil {
		t.Fatalf("the wait elapsed at the old moment: %v", err)
	} else {
		done(levee.Success)
	}

	// An operator's forced_open stays; an impossible config changes nothing.
	g.Get("c").SetOverrideNow(breaker.OverrideForcedOpen)
	if err := g.Reconfigure("c", breaker.Config{MinimumCalls: 4}); err != nil {
		t.Fatal(err)
	}
	if s := g.Get("c").State(); s != breaker.ForcedOpen {
		t.Fatalf("forced_open lost: %v", s)
	}
	if err := g.Reconfigure("c", breaker.Config{FailureRateThreshold: 150}); err == nil {
		t.Fatal("an impossible config was accepted")
	}
	if got := g.Get("c").Config().MinimumCalls; got != 4 {
		t.Fatalf("a rejected config changed the breaker: minimum_calls %d", got)
	}
}

// policyFleet is a fakeFleet that also distributes policies and notifies.
type policyFleet struct {
	fakeFleet
	pmu      sync.Mutex
	policies map[string]breaker.Config
	versions map[string]uint64
	notify   []func()
}

func (f *policyFleet) Policy(key string) (breaker.Config, uint64, bool) {
	f.pmu.Lock()
	defer f.pmu.Unlock()
	v, ok := f.versions[key]
	return f.policies[key], v, ok
}

func (f *policyFleet) OnFleetChange(fn func()) func() {
	f.pmu.Lock()
	defer f.pmu.Unlock()
	f.notify = append(f.notify, fn)
	return func() {}
}

func (f *policyFleet) change(edit func()) {
	f.pmu.Lock()
	f.mu.Lock()
	edit()
	f.mu.Unlock()
	list := append([]func(){}, f.notify...)
	f.pmu.Unlock()
	for _, fn := range list {
		fn()
	}
}

func TestGroupFollowsTheFleetsPoliciesAndCountsFleetTransitions(t *testing.T) {
	fleet := &policyFleet{fakeFleet: fakeFleet{states: map[string]breaker.State{}},
		policies: map[string]breaker.Config{}, versions: map[string]uint64{}}
	var mu sync.Mutex
	var seen []breaker.Transition
	g, err := breaker.NewGroup(breaker.Config{}, breaker.WithFleet(fleet), breaker.OnTransition(func(tr breaker.Transition) {
		mu.Lock()
		seen = append(seen, tr)
		mu.Unlock()
	}))
	if err != nil {
		t.Fatal(err)
	}
	g.Get("inv")
	fleet.change(func() { fleet.policies["inv"], fleet.versions["inv"] = breaker.Config{MinimumCalls: 4}, 1 })
	if g.Get("inv").Config().MinimumCalls != 4 || g.PolicyVersion("inv") != 1 {
		t.Fatalf("policy v1 not applied: %d v%d", g.Get("inv").Config().MinimumCalls, g.PolicyVersion("inv"))
	}
	// Version 0 (never set) is not a policy: the group's config stays for that key.
	fleet.change(func() { fleet.policies["other"], fleet.versions["other"] = breaker.Config{MinimumCalls: 9}, 0 })
	if g.Get("other").Config().MinimumCalls != 20 {
		t.Fatal("a version-0 policy replaced the group's config")
	}

	fleet.change(func() { fleet.states["inv"] = breaker.Open })
	fleet.change(func() {}) // nothing changed: nothing emitted
	fleet.change(func() { fleet.states["inv"] = breaker.Disabled })
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 {
		t.Fatalf("transitions %+v", seen)
	}
	if tr := seen[0]; tr.Key != "inv" || tr.From != breaker.Closed || tr.To != breaker.Open || tr.Reason != breaker.ReasonFleet {
		t.Errorf("first %+v", tr)
	}
	// Disabled is less severe than the local closed: the effective state is closed again.
	if tr := seen[1]; tr.From != breaker.Open || tr.To != breaker.Closed || tr.Reason != breaker.ReasonFleet {
		t.Errorf("second %+v", tr)
	}
}
