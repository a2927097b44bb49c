package bench

import (
	"context"
	"testing"
	"time"

	failsafe "github.com/failsafe-go/failsafe-go"
	fscb "github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/sony/gobreaker/v2"

	"github.com/levee-dev/levee/go"
	"github.com/levee-dev/levee/go/breaker"
)

// The comparable breaker config: a window of 10 (calls, or seconds in 1 s buckets), trip at a
// 50 % failure rate once 10 calls are in the window, 5 half-open probes, a 5 s open wait.
const (
	windowSize   = 10
	minimumCalls = 10
	failurePct   = 50
	probes       = 5
	openWait     = 5 * time.Second
)

func leveeBreaker(b *testing.B, kind breaker.WindowKind) *breaker.Breaker {
	b.Helper()
	br, err := breaker.New("bench", breaker.Config{
		Window:               breaker.WindowConfig{Kind: kind, Size: windowSize},
		MinimumCalls:         minimumCalls,
		FailureRateThreshold: failurePct,
		Open:                 breaker.OpenConfig{Wait: openWait},
		HalfOpen:             breaker.HalfOpenConfig{PermittedCalls: probes},
	})
	if err != nil {
		b.Fatal(err)
	}
	return br
}

// gobreaker has no count window: "default" is its default (Interval 0: counts kept from one
// state change to the next, its cheapest path), "rolling" a 10 s window in 1 s buckets like
// Levee's time window.
func gobreakerSettings(rolling bool) gobreaker.Settings {
	s := gobreaker.Settings{
		Name:        "bench",
		MaxRequests: probes,
		Timeout:     openWait,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.Requests >= minimumCalls && uint64(c.TotalFailures)*100 >= failurePct*uint64(c.Requests)
		},
	}
	if rolling {
		s.Interval = windowSize * time.Second
		s.BucketPeriod = time.Second
	}
	return s
}

func failsafeBreaker(timeWindow bool) fscb.CircuitBreaker[any] {
	builder := fscb.NewBuilder[any]().WithDelay(openWait).WithSuccessThreshold(probes)
	if timeWindow {
		builder = builder.WithFailureRateThreshold(failurePct/100.0, minimumCalls, windowSize*time.Second)
	} else {
		builder = builder.WithFailureThresholdRatio(windowSize*failurePct/100, windowSize)
	}
	return builder.Build()
}

// Package-level functions, so that no benchmark pays for a closure of its own.
var (
	okRun  = func() error { return nil }
	okCall = func(context.Context) error { return nil }
	okGet  = func() (struct{}, error) { return struct{}{}, nil }
)

// notClosed stops a run whose policy refused a call: every figure here is meant to be the
// path of a call that is let through.
func notClosed(what string) {
	panic("bench: " + what + " refused a call; the figure would not be the closed path")
}

// leveeAcquireRecord is the pure core with the clock reads a caller makes: one before the call
// (acquire) and one after it (record, with the call's duration).
func leveeAcquireRecord(br *breaker.Breaker, clock levee.Clock) {
	start := clock.Now()
	a := br.Acquire(start)
	if !a.Permitted {
		notClosed("levee breaker")
	}
	end := clock.Now()
	if br.Record(a.Permit, levee.Success, end.Since(start), end) != nil {
		notClosed("levee breaker")
	}
}

func leveeAllow(br *breaker.Breaker, ctx context.Context) {
	done, err := br.Allow(ctx)
	if err != nil {
		notClosed("levee breaker")
	}
	done(levee.Success)
}

type closedCase struct {
	name string
	// setup builds a fresh policy and returns one guarded call on it.
	setup func(b *testing.B) func()
}

func closedCases() []closedCase {
	ctx := context.Background()
	clock := levee.SystemClock
	var cases []closedCase
	for _, w := range []struct {
		name string
		kind breaker.WindowKind
	}{{"count", breaker.WindowCount}, {"time", breaker.WindowTime}} {
		cases = append(cases,
			closedCase{"levee_acquire_record/" + w.name, func(b *testing.B) func() {
				br := leveeBreaker(b, w.kind)
				return func() { leveeAcquireRecord(br, clock) }
			}},
			// As the Rust core's criterion bench measures it: a manual clock (one atomic load
			// per reading) standing still at 10 s, so the figure is the breaker alone.
			closedCase{"levee_acquire_record_manualclock/" + w.name, func(b *testing.B) func() {
				br := leveeBreaker(b, w.kind)
				manual := levee.NewManualClock(levee.TimestampFromNanos(10_000_000_000))
				return func() { leveeAcquireRecord(br, manual) }
			}},
			closedCase{"levee_allow/" + w.name, func(b *testing.B) func() {
				br := leveeBreaker(b, w.kind)
				return func() { leveeAllow(br, ctx) }
			}},
			// The one-call form, like gobreaker's Execute and failsafe-go's Run.
			closedCase{"levee_do/" + w.name, func(b *testing.B) func() {
				br := leveeBreaker(b, w.kind)
				return func() {
					if levee.Do(ctx, okCall, nil, br) != nil {
						notClosed("levee breaker")
					}
				}
			}},
		)
	}
	for _, w := range []struct {
		name    string
		rolling bool
	}{{"default", false}, {"rolling", true}} {
		cases = append(cases,
			closedCase{"gobreaker_execute/" + w.name, func(*testing.B) func() {
				cb := gobreaker.NewCircuitBreaker[struct{}](gobreakerSettings(w.rolling))
				return func() {
					if _, err := cb.Execute(okGet); err != nil {
						notClosed("gobreaker")
					}
				}
			}},
			closedCase{"gobreaker_twostep/" + w.name, func(*testing.B) func() {
				cb := gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreakerSettings(w.rolling))
				return func() {
					done, err := cb.Allow()
					if err != nil {
						notClosed("gobreaker")
					}
					done(nil)
				}
			}},
		)
	}
	for _, w := range []struct {
		name string
		time bool
	}{{"count", false}, {"time", true}} {
		cases = append(cases,
			closedCase{"failsafe_permit_record/" + w.name, func(*testing.B) func() {
				cb := failsafeBreaker(w.time)
				return func() {
					if !cb.TryAcquirePermit() {
						notClosed("failsafe-go breaker")
					}
					cb.RecordSuccess()
				}
			}},
			closedCase{"failsafe_run/" + w.name, func(*testing.B) func() {
				exec := failsafe.With[any](failsafeBreaker(w.time))
				return func() {
					if exec.Run(okRun) != nil {
						notClosed("failsafe-go breaker")
					}
				}
			}},
		)
	}
	return cases
}

// BenchmarkBreakerClosed is one guarded call (acquire + record success) per iteration on a
// closed breaker, one goroutine.
func BenchmarkBreakerClosed(b *testing.B) {
	for _, c := range closedCases() {
		b.Run(c.name, func(b *testing.B) {
			call := c.setup(b)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				call()
			}
		})
	}
}

// BenchmarkBreakerClosedParallel is the same call from GOMAXPROCS goroutines sharing one
// breaker (b.RunParallel): ns/op is wall time over all calls, so on 2 cores it is about half
// the time of one call when nothing is shared.
func BenchmarkBreakerClosedParallel(b *testing.B) {
	for _, c := range closedCases() {
		b.Run(c.name, func(b *testing.B) {
			call := c.setup(b)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					call()
				}
			})
		})
	}
}

// BenchmarkClock is the cost of the clock reads inside every figure above: two per call
// (levee.SystemClock in Levee, time.Now in gobreaker).
func BenchmarkClock(b *testing.B) {
	b.Run("levee_system_clock_x2", func(b *testing.B) {
		clock := levee.SystemClock
		b.ReportAllocs()
		var t levee.Timestamp
		for i := 0; i < b.N; i++ {
			t += clock.Now()
			t += clock.Now()
		}
		sinkTime = t
	})
	b.Run("time_now_x2", func(b *testing.B) {
		b.ReportAllocs()
		var t int64
		for i := 0; i < b.N; i++ {
			t += int64(time.Now().Nanosecond())
			t += int64(time.Now().Nanosecond())
		}
		sinkTime = levee.Timestamp(t)
	})
}

var sinkTime levee.Timestamp
