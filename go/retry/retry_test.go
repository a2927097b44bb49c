package retry_test

import (
	"strings"
	"testing"
	"time"

	"github.com/levee-dev/levee/go"
	"github.com/levee-dev/levee/go/retry"
)

func TestBackoffJitterModes(t *testing.T) {
	none := retry.BackoffConfig{Base: 25 * time.Millisecond, Max: time.Second, Jitter: retry.NoJitter}
	var got []time.Duration
	for a := uint32(1); a <= 8; a++ {
		got = append(got, retry.Backoff(none, a, nil, nil))
	}
	want := []time.Duration{25, 50, 100, 200, 400, 800, 1000, 1000}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("none: %v", got)
		}
	}
	rng := levee.NewScriptedRandom(0.5, 0.5, 0.5, 0.999999999999)
	full := retry.BackoffConfig{Base: 100 * time.Millisecond, Max: time.Second}
	if d := retry.Backoff(full, 2, nil, rng); d != 100*time.Millisecond {
		t.Errorf("full %v", d)
	}
	full.Jitter = retry.Equal
	if d := retry.Backoff(full, 2, nil, rng); d != 150*time.Millisecond {
		t.Errorf("equal %v", d)
	}
	full.Jitter = retry.Decorrelated
	prev := 200 * time.Millisecond
	if d := retry.Backoff(full, 5, &prev, rng); d != 350*time.Millisecond {
		t.Errorf("decorrelated %v", d)
	}
	prev = time.Second
	if d := retry.Backoff(full, 5, &prev, rng); d != time.Second {
		t.Errorf("decorrelated cap %v", d)
	}
	if rng.TakeRanDry() || retry.Draw(-0.5, 100) != 0 || retry.Draw(7, 100) != 100 {
		t.Error("draws")
	}
}

func TestDecideChecksInOrder(t *testing.T) {
	p, err := retry.New(retry.Config{Backoff: retry.BackoffConfig{Jitter: retry.NoJitter}})
	if err != nil {
		t.Fatal(err)
	}
	budget := p.NewBudget(0)
	ms := func(n int) *time.Duration { d := time.Duration(n) * time.Millisecond; return &d }
	in := retry.Input{AttemptsMade: 2, Result: levee.StatusResult(500), BreakerOpen: true}
	check := func(want retry.GiveUpReason) {
		t.Helper()
		d := p.Decide(in, budget, 0, nil)
		if d.Retry || d.Reason != want {
			t.Fatalf("got %+v, want %v", d, want)
		}
	}
	check(retry.NotRetryable)
	in.Result = levee.Reset
	check(retry.NonIdempotent)
	in.Idempotent = true
	check(retry.AttemptsExhausted)
	in.AttemptsMade = 1
	check(retry.CircuitOpen)
	in.BreakerOpen = false
	in.Remaining = ms(25)
	check(retry.DeadlineExceeded)
	in.RetryAfter = ms(26)
	check(retry.RetryAfterExceedsDeadline)
	in.Remaining = ms(27)
	if d := p.Decide(in, budget, 0, nil); !d.Retry || d.After != 26*time.Millisecond || d.Backoff != 25*time.Millisecond {
		t.Fatalf("retry: %+v", d)
	}
	if code, ok := retry.RetryBudgetExhausted.ErrorCode(); !ok || code != levee.CodeRetryBudgetExhausted {
		t.Error("error code")
	}
}

func TestParseRetryAfter(t *testing.T) {
	const now = 1_445_412_470 // Wed, 21 Oct 2015 07:27:50 GMT
	ok := map[string]time.Duration{
		"0": 0, " 5\t": 5 * time.Second, "007": 7 * time.Second,
		"99999999999999999999999":           retry.MaxDeltaSeconds * time.Second,
		"Wed, 21 Oct 2015 07:28:00 GMT":     10 * time.Second,
		"Wednesday, 21-Oct-15 07:28:00 GMT": 10 * time.Second,
		"Wed Oct 21 07:28:00 2015":          10 * time.Second,
		"Wed, 21 Oct 2015 07:00:00 GMT":     0,
	}
	for in, want := range ok {
		if d, good := retry.ParseRetryAfter(in, now); !good || d != want {
			t.Errorf("%q → %v %v, want %v", in, d, good, want)
		}
	}
	for _, bad := range []string{"", " ", "-5", "+5", "1.5", "5s", "1 2", "soon", "Thu, 21 Oct 2015 07:28:00 GMT",
		"Wed, 21 Oct 2015 07:28:00 UTC", "Wed, 32 Oct 2015 07:28:00 GMT", "é", "Mon, 29 Feb 2021 00:00:00 GMT"} {
		if _, good := retry.ParseRetryAfter(bad, now); good {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestConfigParsingMatchesLeveeCore(t *testing.T) {
	for in, want := range map[string]string{
		`{"max_attempts": 0}`:                           "max_attempts is 0",
		`{"per_try_timeout": "0s"}`:                     "per_try_timeout is 0s",
		`{"retry_on": ["cancelled"]}`:                   "cannot contain `cancelled`",
		`{"retry_on": ["teapot"]}`:                      "retry_on",
		`{"backoff": {"base": "2s"}}`:                   "backoff.max",
		`{"backoff": {"jitter": "wild"}}`:               "unknown variant",
		`{"budget": {"ratio": 0, "min_per_second": 0}}`: "no retries at all",
		`{"budget": {"ttl": "2m"}}`:                     "budget.ttl",
		`{"max_attempt": 3}`:                            "unknown field",
	} {
		if _, err := retry.ParseConfig([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseConfig(%s) = %v; want %q", in, err, want)
		}
	}
	c, err := retry.ParseConfig([]byte(`{"retry_on": [], "per_try_timeout": "250ms"}`))
	if err != nil || len(c.RetryOn) != 0 || c.RetryOn == nil || c.PerTryTimeout != 250*time.Millisecond {
		t.Fatalf("%+v %v", c, err)
	}
	c, _ = retry.ParseConfig([]byte(`{}`))
	if len(c.RetryOn) != 6 || c.PerTryTimeout != 0 || !retry.IsIdempotent("GET", false) || retry.IsIdempotent("get", false) {
		t.Error("defaults")
	}
}

func TestNullPerTryTimeoutIsAbsent(t *testing.T) {
	c, err := retry.ParseConfig([]byte(`{"per_try_timeout": null}`))
	if err != nil || c.PerTryTimeout != 0 {
		t.Fatalf("%+v %v", c, err)
	}
}
