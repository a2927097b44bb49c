package breaker_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/levee-dev/levee/go"
	"github.com/levee-dev/levee/go/breaker"
)

func noJitter() *float64 { j := 0.0; return &j }

func TestZeroConfigIsTheSpecDefault(t *testing.T) {
	b, err := breaker.New("k", breaker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	c := b.Config()
	d := breaker.DefaultConfig()
	if c.MinimumCalls != d.MinimumCalls || c.Open.Wait != d.Open.Wait || *c.Open.Jitter != 0.1 ||
		c.HalfOpen.PermittedCalls != 5 || c.Window.Size != 10 || c.Window.Kind != breaker.WindowTime {
		t.Errorf("defaults %+v", c)
	}
}

func TestParseConfigTakesExplicitZerosAsWritten(t *testing.T) {
	for in, want := range map[string]string{
		`{"failure_rate_threshold": 0}`:         "failure_rate_threshold",
		`{"half_open": {"permitted_calls": 0}}`: "permitted_calls",
		`{"open": {"jitter": 1}}`:               "open.jitter",
		`{"open": {"wait": "90s"}}`:             "open.max_wait",
		`{"window": {"kind": "sliding"}}`:       "unknown variant",
		`{"failure_threshold": 50}`:             "unknown field",
		`{"slow_call_duration": 5}`:             "has no unit",
		`{"window": {"size": 100001}}`:          "window.size",
	} {
		if _, err := breaker.ParseConfig([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseConfig(%s) = %v; want an error containing %q", in, err, want)
		}
	}
	c, err := breaker.ParseConfig([]byte(`{"open": {"jitter": 0}, "window": {"kind": "count", "size": 5}}`))
	if err != nil || *c.Open.Jitter != 0 || c.Window.Kind != breaker.WindowCount {
		t.Fatalf("%+v %v", c, err)
	}
}

func TestAllowRejectsWithCircuitOpenAndNotifiesAfterTheLock(t *testing.T) {
	clock := levee.NewManualClock(1_000_000_000_000)
	var events []breaker.Transition
	var b *breaker.Breaker
	b, err := breaker.New("inventory", breaker.Config{MinimumCalls: 2, Open: breaker.OpenConfig{Jitter: noJitter()}},
		breaker.WithClock(clock),
		breaker.OnTransition(func(tr breaker.Transition) {
			events = append(events, tr)
			_ = b.State() // reading the breaker from a listener must not deadlock
		}))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		done, err := b.Allow(ctx)
		if err != nil {
			t.Fatal(err)
		}
		done(levee.Failure)
		done(levee.Success) // a second call is ignored
	}
	if b.State() != breaker.Open || len(events) != 1 || events[0].Reason != breaker.ReasonFailureRate {
		t.Fatalf("state %v events %v", b.State(), events)
	}
	clock.Advance(2 * time.Second)
	_, err = b.Allow(ctx)
	var le *levee.Error
	if !errors.Is(err, levee.ErrCircuitOpen) || !errors.As(err, &le) || le.RetryAfter != 3*time.Second || le.Upstream != "inventory" {
		t.Fatalf("err %v", err)
	}
	clock.Advance(3 * time.Second)
	done, err := b.Allow(ctx)
	if err != nil || b.State() != breaker.HalfOpen {
		t.Fatalf("probe: %v %v", err, b.State())
	}
	done(levee.Success)
	if len(events) != 2 || events[1].To != breaker.HalfOpen {
		t.Fatalf("events %v", events)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := b.Allow(cancelled); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
}

func TestConcurrentCallsNeverLoseATrip(t *testing.T) {
	b, err := breaker.New("k", breaker.Config{
		Window:       breaker.WindowConfig{Kind: breaker.WindowCount, Size: 100},
		MinimumCalls: 100,
	}, breaker.WithClock(levee.NewManualClock(1e12)), breaker.WithRandom(levee.NewSplitMix64(1)))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				if done, err := b.Allow(context.Background()); err == nil {
					done(levee.Failure)
				}
			}
		}()
	}
	wg.Wait()
	if b.State() != breaker.Open {
		t.Errorf("state %v", b.State())
	}
}

func TestOverridesAndObserveMode(t *testing.T) {
	now := levee.Timestamp(1e12)
	b, _ := breaker.New("k", breaker.Config{Mode: breaker.Observe})
	if tr := b.SetOverride(breaker.OverrideForcedOpen, now); tr == nil || tr.Reason != breaker.ReasonOperator {
		t.Fatal("forced_open transition")
	}
	a := b.Acquire(now)
	if !a.Permitted || !a.Permit.ShadowRejected() {
		t.Fatalf("observe mode must permit with shadow_rejected: %+v", a)
	}
	b.SetMode(breaker.Enforce)
	if b.Acquire(now).Permitted {
		t.Fatal("forced_open permits in enforce mode")
	}
	if tr := b.SetOverride(breaker.NoOverride, now); tr == nil || tr.To != breaker.Closed {
		t.Fatal("clearing")
	}
	if b.SetOverride(breaker.NoOverride, now) != nil {
		t.Fatal("clearing twice emits")
	}
}

func TestGroupKeepsOneBreakerPerKey(t *testing.T) {
	g, err := breaker.NewGroup(breaker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if g.Get("a") != g.Get("a") || g.Get("a") == g.Get("b") || g.Get("b").Key() != "b" {
		t.Fatal("group identity")
	}
	n := 0
	g.Each(func(*breaker.Breaker) { n++ })
	if n != 2 {
		t.Errorf("each saw %d", n)
	}
	if _, err := breaker.NewGroup(breaker.Config{MinimumCalls: -1}); err == nil {
		t.Error("negative minimum_calls accepted")
	}
}

func TestAllowDoneCountsOnlyItsFirstCall(t *testing.T) {
	clock := levee.NewManualClock(1e12)
	b, err := breaker.New("k", breaker.Config{Window: breaker.WindowConfig{Kind: breaker.WindowCount, Size: 10}},
		breaker.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	first, err := b.Allow(ctx)
	if err != nil {
		t.Fatal(err)
	}
	first(levee.Success)
	// Allow reuses what a finished call leaves behind: a late second call of first must not
	// report for the call that reused it.
	second, err := b.Allow(ctx)
	if err != nil {
		t.Fatal(err)
	}
	first(levee.Failure)
	if w := b.Snapshot(clock.Now()).Window; w != (breaker.Totals{Counted: 1}) {
		t.Fatalf("after a repeated done: window %+v", w)
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			second(levee.Failure)
		}()
	}
	wg.Wait()
	if w := b.Snapshot(clock.Now()).Window; w != (breaker.Totals{Counted: 2, Failures: 1}) {
		t.Fatalf("after concurrent dones: window %+v", w)
	}
}

func TestConcurrentRecordsAreAllCounted(t *testing.T) {
	// A count window of 100 000 calls, or a time window of 10 s with every call in one second.
	for _, w := range []breaker.WindowConfig{{Kind: breaker.WindowCount, Size: 100_000}, {Kind: breaker.WindowTime, Size: 10}} {
		t.Run(w.Kind.String(), func(t *testing.T) {
			now := levee.Timestamp(1e12)
			b, err := breaker.New("k", breaker.Config{
				Window:                w,
				FailureRateThreshold:  100,
				SlowCallRateThreshold: 100,
				SlowCallDuration:      time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			for g := 0; g < 4; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < 10_000; i++ {
						outcome, took := levee.Success, time.Millisecond
						if (i+g)%3 == 0 {
							outcome = levee.Failure
						}
						if i%5 == 0 {
							took = 2 * time.Second
						}
						a := b.Acquire(now)
						if !a.Permitted {
							t.Error("rejected")
							return
						}
						if tr := b.Record(a.Permit, outcome, took, now); tr != nil {
							t.Errorf("transition %+v", tr)
							return
						}
					}
				}()
			}
			wg.Wait()
			want := breaker.Totals{Counted: 40_000, Failures: 3334 + 3333 + 3333 + 3334, Slow: 8_000}
			if w := b.Snapshot(now).Window; w != want {
				t.Errorf("window %+v, want %+v", w, want)
			}
		})
	}
}
