package bench

import (
	"testing"

	failsafe "github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/retrypolicy"

	"github.com/levee-dev/levee/go"
	"github.com/levee-dev/levee/go/retry"
)

// retryCases are the cost retries add to a call that succeeds at once. Levee's is what its
// HTTP transport does per request: one budget deposit and one decision on the answer (a 200
// is not retryable). failsafe-go has no standalone decision, so its figure is an execution
// through a retry policy (3 attempts, no delay), which includes running the function.
func retryCases() []closedCase {
	clock := levee.SystemClock
	return []closedCase{
		{"levee_deposit_decide", func(b *testing.B) func() {
			policy, err := retry.New(retry.Config{MaxAttempts: 3})
			if err != nil {
				b.Fatal(err)
			}
			budget := policy.NewBudget(clock.Now())
			rng := levee.NewRandom()
			in := retry.Input{AttemptsMade: 1, Result: levee.StatusResult(200), Idempotent: true}
			return func() {
				now := clock.Now()
				budget.Deposit(now)
				if policy.Decide(in, budget, now, rng).Retry {
					panic("bench: a 200 was retried")
				}
			}
		}},
		{"failsafe_run", func(*testing.B) func() {
			exec := failsafe.With[any](retrypolicy.NewBuilder[any]().WithMaxAttempts(3).Build())
			return func() {
				if exec.Run(okRun) != nil {
					panic("bench: the retried call failed")
				}
			}
		}},
	}
}

// BenchmarkRetrySuccess is the retry overhead of one call that succeeds at once.
func BenchmarkRetrySuccess(b *testing.B) {
	for _, c := range retryCases() {
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

// BenchmarkRetrySuccessParallel is the same from GOMAXPROCS goroutines sharing one policy
// (and, for Levee, one budget).
func BenchmarkRetrySuccessParallel(b *testing.B) {
	for _, c := range retryCases() {
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
