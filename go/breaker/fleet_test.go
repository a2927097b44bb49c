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

type recorded struct {
	key     string
	outcome levee.Outcome
	d       time.Duration
	slow    bool
}

// fakeFleet is a FleetView whose answers the test sets.
type fakeFleet struct {
	mu       sync.Mutex
	states   map[string]breaker.State
	admit    func(ctx context.Context, key string) (func(levee.Outcome), error)
	admitted int
	records  []recorded
}

func (f *fakeFleet) FleetState(key string) (breaker.State, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.states[key]
	return s, ok
}

func (f *fakeFleet) Admit(ctx context.Context, key string) (func(levee.Outcome), error) {
	f.mu.Lock()
	f.admitted++
	admit := f.admit
	f.mu.Unlock()
	if admit == nil {
		return nil, nil
	}
	return admit(ctx, key)
}

func (f *fakeFleet) Record(key string, o levee.Outcome, d time.Duration, slow bool) {
	f.mu.Lock()
	f.records = append(f.records, recorded{key, o, d, slow})
	f.mu.Unlock()
}

func fleetReject(_ context.Context, key string) (func(levee.Outcome), error) {
	return nil, &levee.Error{Code: levee.CodeCircuitOpen, Upstream: key, Reason: "fleet"}
}

func TestMoreSevereFollowsSeverity(t *testing.T) {
	// levee-core's fleet::more_severe cases.
	for _, c := range [][3]breaker.State{
		{breaker.Closed, breaker.Open, breaker.Open},
		{breaker.ForcedOpen, breaker.Open, breaker.ForcedOpen},
		{breaker.Disabled, breaker.Closed, breaker.Closed},
	} {
		if got := breaker.MoreSevere(c[0], c[1]); got != c[2] {
			t.Errorf("MoreSevere(%v, %v) = %v, want %v", c[0], c[1], got, c[2])
		}
	}
	order := []breaker.State{breaker.Disabled, breaker.Closed, breaker.HalfOpen, breaker.Open, breaker.ForcedOpen}
	for i, a := range order {
		for j, b := range order {
			want := order[max(i, j)]
			if got := breaker.MoreSevere(a, b); got != want {
				t.Errorf("MoreSevere(%v, %v) = %v, want %v", a, b, got, want)
			}
		}
	}
}

func newFleetBreaker(t *testing.T, fleet breaker.FleetView, clock levee.Clock, cfg breaker.Config) *breaker.Breaker {
	t.Helper()
	b, err := breaker.New("inventory", cfg, breaker.WithFleet(fleet), breaker.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAllowConsultsTheFleetAfterTheLocalBreaker(t *testing.T) {
	ctx := context.Background()
	clock := levee.NewManualClock(levee.Timestamp(time.Hour))
	fleet := &fakeFleet{states: map[string]breaker.State{}}
	b := newFleetBreaker(t, fleet, clock, breaker.Config{})

	// The fleet rejects: so does Allow, with the fleet's error.
	fleet.admit = fleetReject
	fleet.states["inventory"] = breaker.Open
	_, err := b.Allow(ctx)
	var le *levee.Error
	if !errors.Is(err, levee.ErrCircuitOpen) || !errors.As(err, &le) || le.Reason != "fleet" {
		t.Fatalf("Allow with the fleet open = %v", err)
	}
	if b.State() != breaker.Closed || b.EffectiveState() != breaker.Open {
		t.Fatalf("local %v, effective %v; want closed and open", b.State(), b.EffectiveState())
	}

	// The fleet permits: the outcome goes to both, slow by the local slow_call_duration (5 s).
	fleet.admit = nil
	delete(fleet.states, "inventory")
	done, err := b.Allow(ctx)
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(6 * time.Second)
	done(levee.Failure)
	done(levee.Success) // ignored
	if got := fleet.records; len(got) != 1 || got[0] != (recorded{"inventory", levee.Failure, 6 * time.Second, true}) {
		t.Fatalf("fleet records %+v", got)
	}
	if w := b.Snapshot(clock.Now()).Window; w.Counted != 1 || w.Failures != 1 || w.Slow != 1 {
		t.Fatalf("local window %+v", w)
	}
	if b.EffectiveState() != breaker.Closed {
		t.Fatal("without fleet state the effective state is the local one")
	}

	// A fleet probe: Admit's done gets the outcome.
	var probeOutcome []levee.Outcome
	fleet.admit = func(context.Context, string) (func(levee.Outcome), error) {
		return func(o levee.Outcome) { probeOutcome = append(probeOutcome, o) }, nil
	}
	done, err = b.Allow(ctx)
	if err != nil {
		t.Fatal(err)
	}
	done(levee.Success)
	if len(probeOutcome) != 1 || probeOutcome[0] != levee.Success {
		t.Fatalf("probe outcomes %v", probeOutcome)
	}
}

func TestALocalRefusalDoesNotAskTheFleet(t *testing.T) {
	clock := levee.NewManualClock(levee.Timestamp(time.Hour))
	fleet := &fakeFleet{}
	b := newFleetBreaker(t, fleet, clock, breaker.Config{})
	b.SetOverrideNow(breaker.OverrideForcedOpen)
	if _, err := b.Allow(context.Background()); !errors.Is(err, levee.ErrCircuitOpen) {
		t.Fatalf("Allow = %v", err)
	}
	if fleet.admitted != 0 {
		t.Fatal("the fleet was asked about a call the local breaker refused")
	}
	fleet.states = map[string]breaker.State{"inventory": breaker.Open}
	if b.EffectiveState() != breaker.ForcedOpen {
		t.Fatal("forced_open is more severe than a fleet open")
	}
}

// A local half-open probe refused by the fleet gives its probe slot back.
func TestAFleetRefusalFreesTheLocalProbeSlot(t *testing.T) {
	ctx := context.Background()
	clock := levee.NewManualClock(levee.Timestamp(time.Hour))
	fleet := &fakeFleet{}
	cfg := breaker.Config{MinimumCalls: 1, Open: breaker.OpenConfig{Wait: time.Second, Jitter: levee.Ptr(0.0)},
		HalfOpen: breaker.HalfOpenConfig{PermittedCalls: 1}}
	b := newFleetBreaker(t, fleet, clock, cfg)
	done, _ := b.Allow(ctx)
	done(levee.Failure)
	if b.State() != breaker.Open {
		t.Fatalf("state %v", b.State())
	}
	clock.Advance(time.Second)
	fleet.admit = fleetReject
	if _, err := b.Allow(ctx); !errors.Is(err, levee.ErrCircuitOpen) {
		t.Fatalf("Allow = %v", err)
	}
	if b.State() != breaker.HalfOpen {
		t.Fatalf("state %v", b.State())
	}
	fleet.admit = nil
	done, err := b.Allow(ctx)
	if err != nil {
		t.Fatalf("the only probe slot was not given back: %v", err)
	}
	done(levee.Success)
	if b.State() != breaker.Closed {
		t.Fatalf("state %v after the probe", b.State())
	}
}

// Observe mode does not reject on the fleet's rates either; an operator's forced_open does.
func TestObserveModeRejectsOnlyAFleetForcedOpen(t *testing.T) {
	clock := levee.NewManualClock(levee.Timestamp(time.Hour))
	fleet := &fakeFleet{admit: fleetReject, states: map[string]breaker.State{"inventory": breaker.Open}}
	b := newFleetBreaker(t, fleet, clock, breaker.Config{Mode: breaker.Observe})
	done, err := b.Allow(context.Background())
	if err != nil {
		t.Fatalf("observe mode rejected for a fleet open: %v", err)
	}
	done(levee.Success)
	if fleet.admitted != 0 || len(fleet.records) != 1 {
		t.Fatalf("admitted %d, recorded %d; want 0 and 1", fleet.admitted, len(fleet.records))
	}
	fleet.states["inventory"] = breaker.ForcedOpen
	_, err = b.Allow(context.Background())
	var le *levee.Error
	if !errors.As(err, &le) || le.Code != levee.CodeCircuitOpen || le.Reason != "fleet" {
		t.Fatalf("observe mode under a fleet forced_open: %v", err)
	}
}

func TestAContextEndingWhileTheFleetDecidesReleasesThePermit(t *testing.T) {
	clock := levee.NewManualClock(levee.Timestamp(time.Hour))
	ctx, cancel := context.WithCancel(context.Background())
	fleet := &fakeFleet{admit: func(ctx context.Context, _ string) (func(levee.Outcome), error) {
		cancel()
		return nil, ctx.Err()
	}}
	b := newFleetBreaker(t, fleet, clock, breaker.Config{})
	if _, err := b.Allow(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Allow = %v", err)
	}
	if w := b.Snapshot(clock.Now()).Window; w.Counted != 0 {
		t.Fatalf("a call never made was counted: %+v", w)
	}
}

func TestGroupsPassTheFleetToEveryBreaker(t *testing.T) {
	fleet := &fakeFleet{admit: fleetReject}
	g, err := breaker.NewGroup(breaker.Config{}, breaker.WithFleet(fleet))
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"a", "b"} {
		if _, err := g.Get(key).Allow(context.Background()); !errors.Is(err, levee.ErrCircuitOpen) {
			t.Fatalf("%s: Allow = %v", key, err)
		}
	}
	// Without a fleet nothing changes.
	b, _ := breaker.New("x", breaker.Config{})
	if b.EffectiveState() != breaker.Closed {
		t.Fatal("EffectiveState without a fleet")
	}
}
