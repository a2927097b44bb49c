package registry

import (
	"github.com/levee-dev/levee/go/breaker"
)

// fleetState is everything last received from the watch stream. It is immutable once
// published: the watch goroutine (the only writer) builds a new one per event, copying only
// the map the event changes, so readers never lock.
type fleetState struct {
	eventID  uint64
	degraded bool
	breakers map[string]fleetBreaker
	toggles  map[string]toggle
	level    int
	policies map[string]policy
}

type fleetBreaker struct {
	state       breaker.State
	observe     bool
	openUntilMs uint64 // 0 unless open
	generation  uint64
}

type policy struct {
	version uint64
	config  breaker.Config
	ok      bool // the config could be read
}

func cloneMap[K comparable, V any](m map[K]V) map[K]V {
	out := make(map[K]V, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	return out
}

// apply returns the state after event (id, d), which must have been decoded successfully.
// A snapshot replaces everything.
func (c *Client) apply(s *fleetState, id uint64, d *eventData) *fleetState {
	if s == nil {
		s = &fleetState{}
	}
	next := *s
	switch d.Type {
	case "snapshot":
		next = fleetState{
			eventID:  d.EventID,
			degraded: d.Degraded,
			breakers: make(map[string]fleetBreaker, len(d.Breakers)),
			toggles:  make(map[string]toggle, len(d.Toggles)),
			policies: make(map[string]policy, len(d.Policies)),
		}
		for key, b := range d.Breakers {
			if fb, ok := c.readBreaker(b); ok {
				next.breakers[key] = fb
			}
		}
		for name, t := range d.Toggles {
			next.toggles[name] = readToggle(t)
		}
		if d.Degradation != nil {
			next.level = d.Degradation.Level
		}
		for key, p := range d.Policies {
			next.policies[key] = c.readPolicy(key, p)
		}
	case "breaker":
		if d.Breaker == nil {
			break
		}
		next.breakers = cloneMap(s.breakers)
		if fb, ok := c.readBreaker(*d.Breaker); ok {
			next.breakers[d.Breaker.Key] = fb
		}
		c.forgetDenial(d.Breaker.Key)
	case "toggle":
		next.toggles = cloneMap(s.toggles)
		if d.Toggle == nil {
			delete(next.toggles, d.Name)
		} else {
			next.toggles[d.Name] = readToggle(*d.Toggle)
		}
	case "degradation":
		if d.Degradation != nil {
			next.level = d.Degradation.Level
		}
	case "policy":
		if d.Policy == nil {
			break
		}
		next.policies = cloneMap(s.policies)
		next.policies[d.Policy.Key] = c.readPolicy(d.Policy.Key, *d.Policy)
	case "status":
		if d.BackendConnected != nil {
			next.degraded = !*d.BackendConnected
		}
	default:
		// A newer registry's event type: nothing this client acts on.
	}
	next.eventID = max(next.eventID, id)
	return &next
}

func (c *Client) readBreaker(b breakerWire) (fleetBreaker, bool) {
	st, ok := parseState(b.State)
	if !ok {
		c.logWarn("registry sent an unknown breaker state; key left as before", "key", b.Key, "state", b.State)
		return fleetBreaker{}, false
	}
	fb := fleetBreaker{state: st, observe: b.Observe, generation: b.Generation}
	if b.OpenUntilMs != nil {
		fb.openUntilMs = *b.OpenUntilMs
	}
	return fb, true
}

func readToggle(t toggleWire) toggle {
	out := toggle{state: t.State, version: t.Version}
	if t.Percent != nil {
		out.percent = *t.Percent
	}
	return out
}

func (c *Client) readPolicy(key string, p policyWire) policy {
	out := policy{version: p.Version}
	config, err := breaker.ParseConfig(p.Config)
	if err != nil {
		c.logWarn("registry sent a breaker policy this SDK cannot read; ignored", "key", key, "error", err)
		return out
	}
	out.config, out.ok = config, true
	return out
}
