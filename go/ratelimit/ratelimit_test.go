package ratelimit_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/levee-dev/levee/go"
	"github.com/levee-dev/levee/go/ratelimit"
)

func ms(n int64) levee.Timestamp { return levee.Timestamp(n * 1e6) }

func TestBurstThenSteadyRefill(t *testing.T) {
	c, err := ratelimit.ParseConfig([]byte(`{"rate": "10/s", "burst": 3}`))
	if err != nil {
		t.Fatal(err)
	}
	l, _ := ratelimit.New("r", c)
	for i := 0; i < 3; i++ {
		if !l.Acquire(nil, ms(0)).Allowed {
			t.Fatal("burst")
		}
	}
	if d := l.Acquire(nil, ms(0)); d.Allowed || d.RetryAfter != 100*time.Millisecond {
		t.Fatalf("%+v", d)
	}
	if d := l.Acquire(nil, ms(40)); d.Allowed || d.RetryAfter != 60*time.Millisecond {
		t.Fatalf("%+v", d)
	}
	if !l.Acquire(nil, ms(100)).Allowed || l.Acquire(nil, ms(100)).Allowed {
		t.Fatal("refill")
	}
}

func TestKeysAreIsolatedAndEvictedLeastRecentlyUsedFirst(t *testing.T) {
	c, _ := ratelimit.ParseConfig([]byte(`{"rate": "1/m", "key": "header:X-Client-Id", "max_keys": 2}`))
	l, _ := ratelimit.New("r", c)
	k := func(s string) *string { return &s }
	if !l.Acquire(k("a"), ms(0)).Allowed || !l.Acquire(k("b"), ms(0)).Allowed || l.Acquire(k("a"), ms(1)).Allowed {
		t.Fatal("isolation")
	}
	if !l.Acquire(k("c"), ms(2)).Allowed || l.TrackedKeys() != 2 || l.Acquire(k("a"), ms(3)).Allowed || !l.Acquire(k("b"), ms(4)).Allowed {
		t.Fatal("eviction")
	}
}

func TestConfigErrorsAndAllow(t *testing.T) {
	for in, want := range map[string]string{
		`{}`:                             "missing field `rate`",
		`{"rate": 100}`:                  "no unit",
		`{"rate": "1/s", "burst": 0}`:    "rate_limit.burst",
		`{"rate": "1/s", "max_keys": 0}`: "rate_limit.max_keys",
		`{"rate": "1/s", "bursts": 2}`:   "unknown field",
		`{"rate": "0/s"}`:                "allows no requests",
		`{"rate": "1/d"}`:                "not `<count>/<unit>`",
		`{"rate": "1/s", "key": "ip"}`:   "header:<name>",
	} {
		if _, err := ratelimit.ParseConfig([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseConfig(%s) = %v; want %q", in, err, want)
		}
	}
	clock := levee.NewManualClock(ms(0))
	l, err := ratelimit.New("search", ratelimit.Config{Rate: ratelimit.PerSecondRate(1), Key: "x-client-id"}, ratelimit.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-Client-Id", "a")
	if err := l.Allow(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	err = l.Allow(context.Background(), r)
	var le *levee.Error
	if !errors.Is(err, levee.ErrRateLimited) || !errors.As(err, &le) || le.RetryAfter != time.Second {
		t.Fatalf("%v", err)
	}
	clock.Advance(time.Second)
	if err := l.Allow(context.Background(), r); err != nil {
		t.Fatal(err)
	}
}

func TestNullMeansAbsentForOptionalKeys(t *testing.T) {
	c, err := ratelimit.ParseConfig([]byte(`{"rate": "5/s", "burst": null, "key": null}`))
	if err != nil || c.EffectiveBurst() != 5 || c.Key != "" {
		t.Fatalf("%+v %v", c, err)
	}
	if _, err := ratelimit.ParseConfig([]byte(`{"rate": null}`)); err == nil {
		t.Fatal("rate: null accepted")
	}
}
