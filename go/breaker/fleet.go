package breaker

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/levee-dev/levee/go"
)

// FleetView is the fleet's breaker for each endpoint key (SPEC §9): the registry's breaker of
// the same key, fed by every instance's reports. *registry.Client (package
// github.com/levee-dev/levee/go/registry) implements it; WithFleet installs it. Every method
// must be fail-static: a registry that cannot be reached is no restriction, never an error.
type FleetView interface {
	// FleetState returns the state the fleet breaker of key holds over callers, and false
	// when it holds none (no fresh fleet state, or a fleet breaker that only observes):
	// local-only.
	FleetState(key string) (State, bool)
	// Admit decides a call to key that the local breaker has permitted: nil, nil when the
	// fleet does not restrict it; a circuit_open *levee.Error when the fleet refuses it; a
	// non-nil done when the call goes as a fleet half-open probe (done is called once with its
	// outcome). The only other error allowed is ctx's.
	Admit(ctx context.Context, key string) (done func(levee.Outcome), err error)
	// Record adds a call's outcome to the fleet's counts, without waiting.
	Record(key string, outcome levee.Outcome, d time.Duration, slow bool)
}

// WithFleet makes Allow consult the fleet as well as the local breaker (SPEC §9): a call goes
// only if both permit it (a fleet open or forced_open breaker rejects with circuit_open; a
// half-open one admits only the probes it leases out), every outcome is reported to the fleet,
// and EffectiveState is the more severe of the two states. Pass it to NewGroup to cover every
// endpoint key, and so every levhttp.Transport using the group.
//
// In observe mode the fleet is told every outcome, and its rate-based open and half_open do
// not reject calls (the local breaker promised not to); an operator's fleet-wide forced_open
// still does, being an explicit action. This is the proxy's rule. The pure core (Acquire,
// Record) stays local: it is what the conformance vectors pin.
func WithFleet(v FleetView) Option { return func(b *Breaker) { b.fleet = v } }

// MoreSevere returns the more severe of two states, by Severity (disabled < closed <
// half_open < open < forced_open); levee-core's fleet::more_severe.
func MoreSevere(a, b State) State {
	if b.Severity() > a.Severity() {
		return b
	}
	return a
}

// EffectiveState is the state callers of this breaker see: the more severe of the local state
// and, with WithFleet, the fleet's while it is fresh.
func (b *Breaker) EffectiveState() State {
	s := b.State()
	if b.fleet != nil {
		if f, ok := b.fleet.FleetState(b.key); ok {
			s = MoreSevere(s, f)
		}
	}
	return s
}

// allowWithFleet is Allow for a breaker with a FleetView: the local breaker first (its
// refusal costs nothing and takes no fleet probe slot), then the fleet.
func (b *Breaker) allowWithFleet(ctx context.Context) (func(levee.Outcome), error) {
	start := b.clock.Now()
	a := b.Acquire(start)
	b.emit(a.Transition)
	if !a.Permitted {
		e := &levee.Error{Code: levee.CodeCircuitOpen, Upstream: b.key, Reason: a.Rejection.State.String()}
		if a.Rejection.RetryAfterKnown {
			e.RetryAfter = a.Rejection.RetryAfter
		}
		return nil, e
	}
	var fleetDone func(levee.Outcome)
	var err error
	if !b.observe.Load() {
		fleetDone, err = b.fleet.Admit(ctx, b.key)
	} else if s, ok := b.fleet.FleetState(b.key); ok && s == ForcedOpen {
		// Observe mode promised never to reject on rates; an operator's fleet-wide forced_open
		// is an explicit action and still does.
		err = &levee.Error{Code: levee.CodeCircuitOpen, Upstream: b.key, Reason: ReasonFleet.String()}
	}
	if err != nil {
		// The call is not made: hand the local permit back (a probe's slot is freed).
		end := b.clock.Now()
		b.emit(b.Record(a.Permit, levee.OutcomeOf(err), end.Since(start), end))
		return nil, err
	}
	var once atomic.Bool
	return func(o levee.Outcome) {
		if !once.CompareAndSwap(false, true) {
			return
		}
		end := b.clock.Now()
		d := end.Since(start)
		b.emit(b.Record(a.Permit, o, d, end))
		b.fleet.Record(b.key, o, d, d >= b.config.SlowCallDuration)
		if fleetDone != nil {
			fleetDone(o)
		}
	}, nil
}
