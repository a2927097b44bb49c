package bench

import (
	"context"
	"testing"

	failsafe "github.com/failsafe-go/failsafe-go"
	fsbh "github.com/failsafe-go/failsafe-go/bulkhead"

	"github.com/levee-dev/levee/go"
	"github.com/levee-dev/levee/go/bulkhead"
)

// maxConcurrent is far above the goroutines a run uses, so every call is admitted.
const maxConcurrent = 1000

func leveeBulkhead(b *testing.B) *bulkhead.Bulkhead {
	b.Helper()
	bh, err := bulkhead.New("bench", bulkhead.Config{MaxConcurrent: maxConcurrent})
	if err != nil {
		b.Fatal(err)
	}
	return bh
}

func bulkheadCases() []closedCase {
	ctx := context.Background()
	clock := levee.SystemClock
	return []closedCase{
		// The pure core with the clock reads a caller makes: admission, then Complete (which
		// feeds an adaptive limit when one is set) after the call.
		{"levee_tryacquire_complete", func(b *testing.B) func() {
			bh := leveeBulkhead(b)
			return func() {
				a := bh.TryAcquire(levee.Standard, clock.Now())
				if a.Result != bulkhead.Permitted {
					notClosed("levee bulkhead")
				}
				a.Permit.Complete(levee.Success, clock.Now())
			}
		}},
		{"levee_tryacquire_complete_manualclock", func(b *testing.B) func() {
			bh := leveeBulkhead(b)
			manual := levee.NewManualClock(levee.TimestampFromNanos(10_000_000_000))
			return func() {
				a := bh.TryAcquire(levee.Standard, manual.Now())
				if a.Result != bulkhead.Permitted {
					notClosed("levee bulkhead")
				}
				a.Permit.Complete(levee.Success, manual.Now())
			}
		}},
		{"levee_allow", func(b *testing.B) func() {
			bh := leveeBulkhead(b)
			return func() {
				done, err := bh.Allow(ctx)
				if err != nil {
					notClosed("levee bulkhead")
				}
				done(levee.Success)
			}
		}},
		{"failsafe_permit_release", func(*testing.B) func() {
			bh := fsbh.New[any](maxConcurrent)
			return func() {
				if !bh.TryAcquirePermit() {
					notClosed("failsafe-go bulkhead")
				}
				bh.ReleasePermit()
			}
		}},
		{"failsafe_run", func(*testing.B) func() {
			exec := failsafe.With[any](fsbh.New[any](maxConcurrent))
			return func() {
				if exec.Run(okRun) != nil {
					notClosed("failsafe-go bulkhead")
				}
			}
		}},
	}
}

// BenchmarkBulkhead is one bulkhead acquire + release per iteration, one goroutine.
func BenchmarkBulkhead(b *testing.B) {
	for _, c := range bulkheadCases() {
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

// BenchmarkBulkheadParallel is the same from GOMAXPROCS goroutines sharing one bulkhead.
func BenchmarkBulkheadParallel(b *testing.B) {
	for _, c := range bulkheadCases() {
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
