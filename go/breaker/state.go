package breaker

import (
	"fmt"

	"github.com/levee-dev/levee/go"
)

// State is a breaker state. ForcedOpen and Disabled are set only by an operator.
type State uint8

// The five states, in SPEC order.
const (
	Closed     State = iota // calls flow; outcomes are windowed
	Open                    // calls are rejected until the open wait elapses
	HalfOpen                // a limited number of probes test the upstream
	ForcedOpen              // operator override: reject everything
	Disabled                // operator override: permit everything, still record
)

// States lists every state, in SPEC order (the state label values of levee_breaker_state).
var States = [...]State{Closed, Open, HalfOpen, ForcedOpen, Disabled}

var stateNames = [...]string{"closed", "open", "half_open", "forced_open", "disabled"}

// String returns the label and wire spelling.
func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Severity says how severe the state is for callers: the more severe of a local and a fleet
// state wins (SPEC §9). Disabled is the least severe, ForcedOpen the most.
func (s State) Severity() int {
	switch s {
	case Disabled:
		return 0
	case Closed:
		return 1
	case HalfOpen:
		return 2
	case Open:
		return 3
	}
	return 4
}

// MarshalText writes the wire spelling.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Reason is why a transition happened: the fixed words of SPEC §2.
type Reason uint8

// The transition reasons, in SPEC order.
const (
	ReasonFailureRate         Reason = iota // the window's failure rate reached its threshold
	ReasonSlowCallRate                      // the window's slow-call rate reached its threshold
	ReasonConsecutiveFailures               // failures in a row reached consecutive_failures
	ReasonWaitElapsed                       // the open wait elapsed; probing starts
	ReasonProbesSucceeded                   // every probe reported below the thresholds
	ReasonProbesFailed                      // the probes' failure or slow rate reached its threshold
	ReasonHalfOpenTimeout                   // half_open.max_wait expired before the probes decided
	ReasonOperator                          // an operator override was set or cleared
	ReasonFleet                             // the fleet state from the registry
)

// Reasons lists every reason, in SPEC order.
var Reasons = [...]Reason{
	ReasonFailureRate, ReasonSlowCallRate, ReasonConsecutiveFailures, ReasonWaitElapsed,
	ReasonProbesSucceeded, ReasonProbesFailed, ReasonHalfOpenTimeout, ReasonOperator, ReasonFleet,
}

var reasonNames = [...]string{
	"failure_rate", "slow_call_rate", "consecutive_failures", "wait_elapsed",
	"probes_succeeded", "probes_failed", "half_open_timeout", "operator", "fleet",
}

// String returns the label and wire spelling.
func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// MarshalText writes the wire spelling.
func (r Reason) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// Transition is a transition event {key, from, to, reason, at}. Breakers return these;
// callers publish them (metrics, logs, registry) after the breaker's lock is released.
type Transition struct {
	Key    string
	From   State
	To     State
	Reason Reason
	At     levee.Timestamp // on the caller's clock
}
