// Package breaker is Levee's circuit breaker (SPEC §2), a port of levee-core's breaker module
// proved identical by the conformance vectors.
//
// One breaker per endpoint key. While closed, outcomes go into a count or time window; after
// recording, if the window holds at least minimum_calls counted calls and the failure rate
// (failure+timeout over counted) or the slow-call rate reaches its threshold, or
// consecutive_failures failures came in a row, the breaker opens. Open rejects calls until the
// open wait elapses; the first Acquire after that moves it to half_open (lazily: there is no
// timer). Half-open admits permitted_calls probes; once their failure or slow rate over
// permitted_calls is certain to reach its threshold it re-opens with a multiplied wait, and
// once all have reported below the thresholds it closes with a clean window.
//
// Operators can force the breaker open, disable it (permit all, still record), or put it in
// observe mode (evaluate everything, reject nothing).
//
// Decisions where SPEC §2 is silent, pinned by vectors (conformance/policies/breaker.md):
//   - consecutive_failures trips regardless of minimum_calls;
//   - when several rules trip on the same call the reason is the first of failure_rate,
//     slow_call_rate, consecutive_failures;
//   - for a count window the effective minimum_calls is min(minimum_calls, window.size);
//   - open wait: capped = min(max_wait, previous capped × multiplier) in float64 nanoseconds,
//     truncated; the jitter factor (1 − j) + (2 × j) × u then scales the capped wait,
//     truncated; one draw per opening, none when jitter is 0;
//   - a probe that ends cancelled, rejected or ignored frees its probe slot;
//   - slow probes re-open the breaker with reason probes_failed, like failed ones;
//   - half_open.max_wait is checked lazily on Acquire and Record;
//   - results carrying a permit from an earlier state (another generation) are ignored;
//   - clearing an override returns to closed with a clean window and the base wait.
//
// The pure core is Acquire(now) / Record(permit, outcome, duration, now), which return
// transitions instead of publishing them. Allow(ctx) is the two-step form for callers: it reads
// the injected clock, measures the call and calls the transition listeners after the lock is
// released.
//
// The closed path takes no lock, as in levee-core: Acquire reads one atomic state word, and
// Record of a closed (or disabled) breaker's call goes into a lock-free window (window.go) and
// takes the lock only to open the breaker. Everything else (open, half-open, overrides) runs
// under the breaker's lock.
package breaker

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/levee-dev/levee/go"
)

// Permit is permission to make one call; hand it back to Record.
type Permit struct {
	generation     uint64
	probe          bool
	shadowRejected bool
}

// IsProbe reports whether this call is a half-open probe.
func (p Permit) IsProbe() bool { return p.probe }

// ShadowRejected reports, in observe mode, whether an enforcing breaker would have rejected
// this call.
func (p Permit) ShadowRejected() bool { return p.shadowRejected }

// Rejection says why a call was not permitted (it maps to circuit_open).
type Rejection struct {
	State           State         // the state that rejected the call
	RetryAfter      time.Duration // how long until the breaker will probe, when known
	RetryAfterKnown bool
}

// Acquired is what Acquire decided, and the transition it caused, if any.
type Acquired struct {
	Permitted  bool
	Permit     Permit      // when Permitted
	Rejection  Rejection   // when not Permitted
	Transition *Transition // open → half_open (or a half-open timeout) happens lazily here
}

// Totals are the counted calls, failures and slow calls in a window.
type Totals struct {
	Counted  uint64
	Failures uint64
	Slow     uint64
}

// Snapshot is a point-in-time view for /health and dashboards.
type Snapshot struct {
	State               State
	Window              Totals
	ConsecutiveFailures uint32
	OpenRemaining       time.Duration // time left in open, if open
	ProbesAdmitted      uint32
	ProbesReported      uint32
	Observe             bool
}

// Override is an operator override (SPEC §2, §9).
type Override uint8

const (
	// NoOverride clears an override: back to closed with a clean window and the base wait.
	NoOverride Override = iota
	// OverrideForcedOpen rejects everything.
	OverrideForcedOpen
	// OverrideDisabled permits everything and still records.
	OverrideDisabled
)

const stateBits = 3

// permitsAll masks a state word: zero for Closed (0) and Disabled (4), the two states that
// permit every call without the lock, and for no other state.
const permitsAll = 3

func pack(s State, generation uint64) uint64 { return generation<<stateBits | uint64(s) }

func unpack(word uint64) (State, uint64) {
	return State(word & (1<<stateBits - 1)), word >> stateBits
}

// control is everything that changes only under the lock.
type control struct {
	openUntil       levee.Timestamp
	cappedWaitNanos uint64
	halfOpenSince   levee.Timestamp
	probesAdmitted  uint32
	probesReported  uint32
	probeFailures   uint32
	probeSlow       uint32
}

// Option configures a Breaker.
type Option func(*Breaker)

// WithClock sets the clock Allow reads (default levee.SystemClock).
func WithClock(c levee.Clock) Option { return func(b *Breaker) { b.clock = c } }

// WithRandom sets the source of jitter draws (default a SplitMix64 seeded from entropy).
func WithRandom(r levee.Random) Option { return func(b *Breaker) { b.random = r } }

// OnTransition adds a listener called with every transition Allow, its done function and
// SetOverrideNow cause, after the breaker's lock is released (so it may read the breaker).
func OnTransition(f func(Transition)) Option {
	return func(b *Breaker) { b.listeners = append(b.listeners, f) }
}

// Breaker is a circuit breaker for one endpoint key. It is safe for concurrent use.
type Breaker struct {
	// Read by every call; written only by a transition (state) or when the run of failures
	// changes (consecutive).
	state        atomic.Uint64
	consecutive  atomic.Uint32
	observe      atomic.Bool
	window       window
	minimumCalls uint64
	slowNanos    int64
	jitter       float64
	key          string
	config       Config

	mu  sync.Mutex // guards ctl, and every transition
	ctl control

	clock     levee.Clock
	random    levee.Random
	listeners []func(Transition)
	fleet     FleetView // nil = local only (fleet.go)
}

// New returns a closed breaker for key. Zero fields of config take the SPEC defaults; an
// impossible config is an error naming the key and the fix.
func New(key string, config Config, opts ...Option) (*Breaker, error) {
	config = config.WithDefaults()
	if err := config.Validate(); err != nil {
		return nil, err
	}
	b := &Breaker{
		key:          key,
		config:       config,
		minimumCalls: uint64(config.effectiveMinimumCalls()),
		slowNanos:    int64(config.SlowCallDuration),
		jitter:       *config.Open.Jitter,
		clock:        levee.SystemClock,
	}
	if config.Window.Kind == WindowCount {
		b.window.count = newCountWindow(config.Window.Size)
	} else {
		b.window.time = newTimeWindow(config.Window.Size)
	}
	b.ctl.cappedWaitNanos = uint64(config.Open.Wait)
	b.observe.Store(config.Mode == Observe)
	for _, o := range opts {
		o(b)
	}
	if b.random == nil {
		b.random = levee.NewRandom()
	}
	return b, nil
}

// Key returns the endpoint key.
func (b *Breaker) Key() string { return b.key }

// Config returns the config this breaker runs, defaults filled in.
func (b *Breaker) Config() Config { return b.config }

// State returns the current state (no lazy transition happens here).
func (b *Breaker) State() State {
	s, _ := unpack(b.state.Load())
	return s
}

// Acquire asks to make a call at now.
func (b *Breaker) Acquire(now levee.Timestamp) Acquired {
	if word := b.state.Load(); word&permitsAll == 0 {
		return Acquired{Permitted: true, Permit: Permit{generation: word >> stateBits}}
	}
	return b.acquireLocked(now)
}

// acquireLocked is Acquire of a breaker that is neither closed nor disabled, under the lock.
func (b *Breaker) acquireLocked(now levee.Timestamp) Acquired {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.acquireSlow(now)
}

func (b *Breaker) acquireSlow(now levee.Timestamp) Acquired {
	s, generation := unpack(b.state.Load())
	observe := b.observe.Load()
	shadow := func(r Rejection, generation uint64, t *Transition) Acquired {
		if observe {
			return Acquired{Permitted: true, Permit: Permit{generation: generation, shadowRejected: true}, Transition: t}
		}
		return Acquired{Rejection: r, Transition: t}
	}
	switch s {
	case Closed, Disabled:
		return Acquired{Permitted: true, Permit: Permit{generation: generation}}
	case ForcedOpen:
		return shadow(Rejection{State: s}, generation, nil)
	case Open:
		if now < b.ctl.openUntil {
			return shadow(Rejection{State: s, RetryAfter: b.ctl.openUntil.Since(now), RetryAfterKnown: true}, generation, nil)
		}
		t := b.enterHalfOpen(generation, now)
		b.ctl.probesAdmitted = 1
		return Acquired{Permitted: true, Permit: Permit{generation: generation + 1, probe: true}, Transition: &t}
	default: // HalfOpen
		if t := b.halfOpenExpired(generation, now); t != nil {
			r := Rejection{State: Open, RetryAfter: b.ctl.openUntil.Since(now), RetryAfterKnown: true}
			return shadow(r, generation+1, t)
		}
		if b.ctl.probesAdmitted < uint32(b.config.HalfOpen.PermittedCalls) {
			b.ctl.probesAdmitted++
			return Acquired{Permitted: true, Permit: Permit{generation: generation, probe: true}}
		}
		return shadow(Rejection{State: s}, generation, nil)
	}
}

// Record records how a permitted call ended, duration after it started, at now. It returns
// the transition it caused, if any.
func (b *Breaker) Record(p Permit, outcome levee.Outcome, duration time.Duration, now levee.Timestamp) *Transition {
	s, generation := unpack(b.state.Load())
	if generation != p.generation {
		return nil
	}
	if p.probe {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.recordProbe(p, outcome, duration, now)
	}
	if !outcome.IsCounted() || !(s == Closed || s == Disabled) {
		return nil
	}
	failed := outcome.IsFailure()
	slow := int64(duration) >= b.slowNanos
	var totals Totals
	if w := b.window.count; w != nil {
		totals = w.record(failed, slow)
	} else {
		totals = b.window.time.record(now, failed, slow)
	}
	var consecutive uint32
	if failed {
		consecutive = b.failedInARow()
	} else if b.consecutive.Load() != 0 {
		b.consecutive.Store(0)
	}
	if s == Disabled {
		return nil
	}
	reason, trips := b.tripReason(totals, consecutive)
	if !trips {
		return nil
	}
	return b.openFromClosed(generation, reason, now)
}

// failedInARow counts one more failure in a row, saturating, and returns the count.
func (b *Breaker) failedInARow() uint32 {
	for {
		n := b.consecutive.Load()
		if n == math.MaxUint32 {
			return n
		}
		if b.consecutive.CompareAndSwap(n, n+1) {
			return n + 1
		}
	}
}

// openFromClosed opens a closed breaker of this generation, unless another call already
// moved it on.
func (b *Breaker) openFromClosed(generation uint64, reason Reason, now levee.Timestamp) *Transition {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s, current := unpack(b.state.Load()); s != Closed || current != generation {
		return nil
	}
	t := b.enterOpen(Closed, generation, reason, now)
	return &t
}

// tripReason says which rule, if any, trips a closed breaker with these totals.
func (b *Breaker) tripReason(t Totals, consecutive uint32) (Reason, bool) {
	if t.Failures == 0 && t.Slow == 0 {
		return 0, false
	}
	if t.Counted >= b.minimumCalls {
		if reaches(t.Failures, t.Counted, b.config.FailureRateThreshold) {
			return ReasonFailureRate, true
		}
		if reaches(t.Slow, t.Counted, b.config.SlowCallRateThreshold) {
			return ReasonSlowCallRate, true
		}
	}
	if limit := b.config.ConsecutiveFailures; limit > 0 && uint64(consecutive) >= uint64(limit) {
		return ReasonConsecutiveFailures, true
	}
	return 0, false
}

func (b *Breaker) recordProbe(p Permit, outcome levee.Outcome, duration time.Duration, now levee.Timestamp) *Transition {
	s, generation := unpack(b.state.Load())
	if s != HalfOpen || generation != p.generation {
		return nil
	}
	if t := b.halfOpenExpired(generation, now); t != nil {
		return t
	}
	if !outcome.IsCounted() {
		if b.ctl.probesAdmitted > 0 {
			b.ctl.probesAdmitted--
		}
		return nil
	}
	b.ctl.probesReported++
	if outcome.IsFailure() {
		b.ctl.probeFailures++
	}
	if int64(duration) >= b.slowNanos {
		b.ctl.probeSlow++
	}
	permitted := uint64(b.config.HalfOpen.PermittedCalls)
	failed := reaches(uint64(b.ctl.probeFailures), permitted, b.config.FailureRateThreshold)
	slow := reaches(uint64(b.ctl.probeSlow), permitted, b.config.SlowCallRateThreshold)
	if failed || slow {
		b.ctl.cappedWaitNanos = b.nextCappedWait(b.ctl.cappedWaitNanos)
		t := b.enterOpen(HalfOpen, generation, ReasonProbesFailed, now)
		return &t
	}
	if uint64(b.ctl.probesReported) >= permitted {
		b.window.clear()
		b.consecutive.Store(0)
		b.ctl.cappedWaitNanos = uint64(b.config.Open.Wait)
		b.publish(Closed, generation+1)
		t := b.transition(HalfOpen, Closed, ReasonProbesSucceeded, now)
		return &t
	}
	return nil
}

// halfOpenExpired re-opens a half-open breaker whose max_wait has expired.
func (b *Breaker) halfOpenExpired(generation uint64, now levee.Timestamp) *Transition {
	maxWait := b.config.HalfOpen.MaxWait
	if maxWait == 0 || now < b.ctl.halfOpenSince.Add(maxWait) {
		return nil
	}
	b.ctl.cappedWaitNanos = b.nextCappedWait(b.ctl.cappedWaitNanos)
	t := b.enterOpen(HalfOpen, generation, ReasonHalfOpenTimeout, now)
	return &t
}

func (b *Breaker) enterHalfOpen(generation uint64, now levee.Timestamp) Transition {
	b.ctl.halfOpenSince = now
	b.ctl.probesAdmitted = 0
	b.ctl.probesReported = 0
	b.ctl.probeFailures = 0
	b.ctl.probeSlow = 0
	b.publish(HalfOpen, generation+1)
	return b.transition(Open, HalfOpen, ReasonWaitElapsed, now)
}

func (b *Breaker) enterOpen(from State, generation uint64, reason Reason, now levee.Timestamp) Transition {
	b.ctl.openUntil = addNanos(now, b.jittered(b.ctl.cappedWaitNanos))
	b.publish(Open, generation+1)
	return b.transition(from, Open, reason, now)
}

// addNanos adds an unsigned nanosecond count, saturating.
func addNanos(t levee.Timestamp, nanos uint64) levee.Timestamp {
	if nanos > math.MaxInt64 {
		return levee.Timestamp(math.MaxInt64)
	}
	return t.Add(time.Duration(nanos))
}

// floatToNanos converts a non-negative float64 to whole nanoseconds, truncating and
// saturating as Rust's `as u64` does.
func floatToNanos(f float64) uint64 {
	switch {
	case !(f > 0): // NaN, zero or negative
		return 0
	case f >= 18446744073709551615.0:
		return math.MaxUint64
	}
	return uint64(f)
}

// nextCappedWait is min(max_wait, previous × multiplier), in truncated float64 nanoseconds.
func (b *Breaker) nextCappedWait(previous uint64) uint64 {
	grown := float64(previous) * b.config.Open.BackoffMultiplier
	maxNanos := uint64(b.config.Open.MaxWait)
	if grown >= float64(maxNanos) {
		return maxNanos
	}
	return floatToNanos(grown)
}

// jittered scales the capped wait by (1 − j) + (2 × j) × u; it draws only when j > 0.
func (b *Breaker) jittered(capped uint64) uint64 {
	j := b.jitter
	if j == 0 {
		return capped
	}
	u := b.random.Float64()
	// The explicit conversion keeps the product from being fused into the sum (FMA), so the
	// factor rounds exactly as levee-core's does.
	factor := (1.0 - j) + float64((2.0*j)*u)
	return floatToNanos(float64(float64(capped) * factor))
}

// SetOverride sets (OverrideForcedOpen, OverrideDisabled) or clears (NoOverride) an operator
// override at now, and returns the transition, if any.
func (b *Breaker) SetOverride(value Override, now levee.Timestamp) *Transition {
	b.mu.Lock()
	defer b.mu.Unlock()
	from, generation := unpack(b.state.Load())
	var to State
	switch value {
	case OverrideForcedOpen:
		to = ForcedOpen
	case OverrideDisabled:
		to = Disabled
	default:
		if from != ForcedOpen && from != Disabled {
			return nil
		}
		to = Closed
	}
	if to == from {
		return nil
	}
	if to != ForcedOpen || from == Disabled {
		b.window.clear()
		b.consecutive.Store(0)
	}
	if to == Closed {
		b.ctl.cappedWaitNanos = uint64(b.config.Open.Wait)
	}
	b.publish(to, generation+1)
	t := b.transition(from, to, ReasonOperator, now)
	return &t
}

// SetMode switches between enforce and observe (no transition; the state machine is the same).
func (b *Breaker) SetMode(m Mode) { b.observe.Store(m == Observe) }

// Snapshot returns a view for /health.
func (b *Breaker) Snapshot(now levee.Timestamp) Snapshot {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.State()
	snap := Snapshot{
		State:               s,
		Window:              b.window.totals(now),
		ConsecutiveFailures: b.consecutive.Load(),
		ProbesAdmitted:      b.ctl.probesAdmitted,
		ProbesReported:      b.ctl.probesReported,
		Observe:             b.observe.Load(),
	}
	if s == Open {
		snap.OpenRemaining = b.ctl.openUntil.Since(now)
	}
	return snap
}

func (b *Breaker) publish(s State, generation uint64) { b.state.Store(pack(s, generation)) }

func (b *Breaker) transition(from, to State, reason Reason, at levee.Timestamp) Transition {
	return Transition{Key: b.key, From: from, To: to, Reason: reason, At: at}
}

// reaches is part/whole >= threshold%, compared as part × 100 >= threshold × whole in float64
// so every implementation rounds the same way.
func reaches(part, whole uint64, threshold float64) bool {
	return whole > 0 && float64(part)*100.0 >= threshold*float64(whole)
}

// emit calls the listeners (never under the lock).
func (b *Breaker) emit(t *Transition) {
	if t == nil {
		return
	}
	for _, l := range b.listeners {
		l(*t)
	}
}

// SetOverrideNow is SetOverride at the breaker's clock reading, with listeners called.
func (b *Breaker) SetOverrideNow(value Override) {
	b.emit(b.SetOverride(value, b.clock.Now()))
}

// Allow asks to make a call now. On success it returns done, which must be called once with
// the call's outcome (further calls are ignored); the call's duration is measured on the
// breaker's clock. When the breaker rejects the call, err is a *levee.Error with code
// circuit_open (errors.Is(err, levee.ErrCircuitOpen)) carrying the retry-after when known.
// A context that is already done is returned as its error.
func (b *Breaker) Allow(ctx context.Context) (done func(levee.Outcome), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if b.fleet != nil {
		return b.allowWithFleet(ctx)
	}
	start := b.clock.Now()
	var permit Permit
	// Acquire's closed path, written out: Acquired is too large to travel cheaply.
	if word := b.state.Load(); word&permitsAll == 0 {
		permit = Permit{generation: word >> stateBits}
	} else if permit, err = b.allowLocked(start); err != nil {
		return nil, err
	}
	c := allowCalls.Get().(*allowCall)
	c.b, c.permit, c.start = b, permit, start
	seq := c.seq.Load()
	return func(o levee.Outcome) { c.done(seq, o) }, nil
}

// allowLocked is Allow's Acquire of a breaker that is not closed: the permit, or the
// circuit_open error.
func (b *Breaker) allowLocked(start levee.Timestamp) (Permit, error) {
	a := b.acquireLocked(start)
	b.emit(a.Transition)
	if !a.Permitted {
		e := &levee.Error{Code: levee.CodeCircuitOpen, Upstream: b.key, Reason: a.Rejection.State.String()}
		if a.Rejection.RetryAfterKnown {
			e.RetryAfter = a.Rejection.RetryAfter
		}
		return Permit{}, e
	}
	return a.Permit, nil
}

// allowCall is one call Allow permitted, until its done function is called. They are reused
// (so that Allow allocates only the done function itself): seq counts the calls an allowCall
// has served, and a done function acts only while seq still holds the value it was made with,
// which makes every call of it after the first (even once the allowCall serves another call)
// do nothing.
type allowCall struct {
	b      *Breaker
	permit Permit
	start  levee.Timestamp
	seq    atomic.Uint64
}

var allowCalls = sync.Pool{New: func() any { return new(allowCall) }}

func (c *allowCall) done(seq uint64, o levee.Outcome) {
	if !c.seq.CompareAndSwap(seq, seq+1) {
		return
	}
	b, permit, start := c.b, c.permit, c.start
	c.b = nil
	allowCalls.Put(c)
	end := b.clock.Now()
	b.emit(b.Record(permit, o, end.Since(start), end))
}

// adopt takes over old's state (see Group.Reconfigure): b is new and not shared yet.
func (b *Breaker) adopt(old *Breaker) {
	old.mu.Lock()
	s, generation := unpack(old.state.Load())
	ctl := old.ctl
	old.mu.Unlock()
	// The grown open wait (re-opens multiply it) carries over, within the new cap.
	grown := min(max(ctl.cappedWaitNanos, b.ctl.cappedWaitNanos), uint64(b.config.Open.MaxWait))
	switch s {
	case Open:
		b.ctl.openUntil = ctl.openUntil
		b.ctl.cappedWaitNanos = grown
	case HalfOpen:
		b.ctl.halfOpenSince = ctl.halfOpenSince
		b.ctl.cappedWaitNanos = grown
	}
	b.publish(s, generation+1)
}
