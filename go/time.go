package levee

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Timestamp is a point on a monotonic clock, in nanoseconds from the clock's origin. Only
// differences between timestamps mean anything. It mirrors levee-core's time::Timestamp.
type Timestamp int64

// TimestampFromNanos returns the timestamp nanos nanoseconds after the origin.
func TimestampFromNanos(nanos int64) Timestamp { return Timestamp(nanos) }

// Nanos returns the nanoseconds since the origin.
func (t Timestamp) Nanos() int64 { return int64(t) }

// Add returns t moved forward by d, saturating instead of overflowing. A negative d moves it
// back, never below zero.
func (t Timestamp) Add(d time.Duration) Timestamp {
	if d >= 0 {
		if int64(t) > math.MaxInt64-int64(d) {
			return Timestamp(math.MaxInt64)
		}
		return t + Timestamp(d)
	}
	if int64(t)+int64(d) < 0 {
		return 0
	}
	return t + Timestamp(d)
}

// Since returns the time elapsed from earlier to t; zero when earlier is later (clocks never
// run backwards for policy purposes).
func (t Timestamp) Since(earlier Timestamp) time.Duration {
	if t <= earlier {
		return 0
	}
	return time.Duration(t - earlier)
}

// Clock is a source of Timestamps: SystemClock in production, ManualClock in tests.
type Clock interface {
	Now() Timestamp
}

// SystemClock is the process's monotonic clock. Every use shares one origin (the first use in
// the process), so timestamps compare meaningfully across policies.
var SystemClock Clock = systemClock{}

type systemClock struct{}

var (
	originOnce sync.Once
	origin     time.Time
)

// Now reads the monotonic clock. It starts one hour in so that "an hour ago" is still a valid
// timestamp.
func (systemClock) Now() Timestamp {
	originOnce.Do(func() { origin = time.Now() })
	return Timestamp(int64(time.Since(origin)) + int64(time.Hour))
}

// ManualClock is a clock that moves only when told to: the test and conformance clock. It is
// safe for concurrent use. Besides Timestamps it reports a matching wall time (see Time), so
// code that works with context deadlines can be driven by the same clock.
type ManualClock struct {
	ns atomic.Int64

	mu      sync.Mutex
	waiters []*manualTimer
}

type manualTimer struct {
	at   Timestamp
	f    func()
	done bool
}

// manualEpoch is the wall time a ManualClock reads at Timestamp zero.
var manualEpoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// NewManualClock returns a clock reading start.
func NewManualClock(start Timestamp) *ManualClock {
	c := &ManualClock{}
	c.ns.Store(int64(start))
	return c
}

// Now returns the current reading.
func (c *ManualClock) Now() Timestamp { return Timestamp(c.ns.Load()) }

// Advance moves the clock forward by d and starts the functions of timers that became due.
func (c *ManualClock) Advance(d time.Duration) {
	for {
		old := c.ns.Load()
		if c.ns.CompareAndSwap(old, int64(Timestamp(old).Add(d))) {
			break
		}
	}
	c.fire()
}

// Set sets the clock to t and starts the functions of timers that became due.
func (c *ManualClock) Set(t Timestamp) {
	c.ns.Store(int64(t))
	c.fire()
}

// AfterFunc calls f in its own goroutine once the clock has been moved d past its current
// reading (at once when d <= 0).
func (c *ManualClock) AfterFunc(d time.Duration, f func()) (stop func() bool) {
	t := &manualTimer{at: c.Now().Add(d), f: f}
	c.mu.Lock()
	c.waiters = append(c.waiters, t)
	c.mu.Unlock()
	c.fire()
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		if t.done {
			return false
		}
		t.done = true
		return true
	}
}

// Timers returns the number of AfterFunc timers not yet due nor stopped: tests use it to
// wait until a goroutine is blocked on the clock before advancing it.
func (c *ManualClock) Timers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.waiters {
		if !t.done {
			n++
		}
	}
	return n
}

func (c *ManualClock) fire() {
	now := c.Now()
	var due []func()
	c.mu.Lock()
	kept := c.waiters[:0]
	for _, t := range c.waiters {
		switch {
		case t.done:
		case t.at <= now:
			t.done = true
			due = append(due, t.f)
		default:
			kept = append(kept, t)
		}
	}
	clear(c.waiters[len(kept):])
	c.waiters = kept
	c.mu.Unlock()
	for _, f := range due {
		go f()
	}
}

// Time returns the wall time matching the current reading: a fixed epoch plus Now.
func (c *ManualClock) Time() time.Time { return manualEpoch.Add(time.Duration(c.ns.Load())) }

// TimerClock is a Clock that can also call a function once its own time has advanced by d.
// ManualClock implements it, so code that waits (a queued bulkhead call, a retry backoff) can
// be tested without sleeping.
type TimerClock interface {
	Clock
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

// AfterFunc calls f in its own goroutine once d has passed on c: on c's own time line when c
// is a TimerClock, on the real clock otherwise. stop cancels the call and reports whether it
// did so before f was started.
func AfterFunc(c Clock, d time.Duration, f func()) (stop func() bool) {
	if tc, ok := c.(TimerClock); ok {
		return tc.AfterFunc(d, f)
	}
	return time.AfterFunc(d, f).Stop
}

// WallClock is a Clock that also tells wall time; ManualClock does.
type WallClock interface {
	Clock
	Time() time.Time
}

// WallTime returns c's wall time when c is a WallClock, and time.Now() otherwise.
func WallTime(c Clock) time.Time {
	if wc, ok := c.(WallClock); ok {
		return wc.Time()
	}
	return time.Now()
}
