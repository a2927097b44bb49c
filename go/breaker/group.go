package breaker

import (
	"fmt"
	"sync"
)

// Group holds one breaker per endpoint key, created on first use with the same config and
// options. The key names the breaker in metrics and the registry, whichever language
// recorded it (SPEC §2).
//
// With WithFleet among the options, the group also follows the fleet (SPEC §9; see
// SyncFleet): a change of a key's effective state caused by the fleet is a transition with
// reason fleet, sent to the OnTransition listeners (and so counted in
// levee_breaker_transitions_total{reason="fleet"} by levprom); and when the FleetView is a
// PolicySource, the breaker policy the registry distributes for a key (version 1 and up)
// replaces the group's config for that key (Reconfigure), so every language runs the same
// numbers. When the FleetView is a FleetNotifier (*registry.Client is), the group syncs on
// every fleet change by itself.
type Group struct {
	config   Config
	opts     []Option
	fleet    FleetView // from opts; nil = local only
	mu       sync.RWMutex
	breakers map[string]*Breaker
	versions map[string]uint64 // the fleet policy version each key runs; absent = the group's config

	syncMu sync.Mutex            // serialises SyncFleet
	seen   map[string]fleetState // the fleet's restriction per key at the last sync
}

// fleetState is what the fleet said of a key: its state, when it restricts at all.
type fleetState struct {
	state State
	ok    bool
}

// PolicySource gives the breaker policy distributed for a key, with its version (SPEC §9).
// *registry.Client implements it. Version 0 means no policy was ever set (the group's own
// config stays); false means none is known or it could not be read.
type PolicySource interface {
	Policy(key string) (config Config, version uint64, ok bool)
}

// FleetNotifier is a FleetView that says when fleet state may have changed (a watch event,
// or time passing towards stale_ttl). *registry.Client implements it.
type FleetNotifier interface {
	// OnFleetChange registers f, called (from the notifier's goroutine) after each change;
	// cancel unregisters it.
	OnFleetChange(f func()) (cancel func())
}

// NewGroup validates config (zero fields take the SPEC defaults) and returns an empty group.
func NewGroup(config Config, opts ...Option) (*Group, error) {
	if err := config.WithDefaults().Validate(); err != nil {
		return nil, err
	}
	// The options are applied to a scratch breaker to learn the FleetView they install.
	var scratch Breaker
	for _, o := range opts {
		o(&scratch)
	}
	g := &Group{config: config, opts: opts, fleet: scratch.fleet, breakers: map[string]*Breaker{},
		versions: map[string]uint64{}, seen: map[string]fleetState{}}
	if n, ok := g.fleet.(FleetNotifier); ok {
		n.OnFleetChange(g.SyncFleet)
	}
	return g, nil
}

// Get returns the breaker for key, creating it closed on first use (with the key's fleet
// policy when one is distributed).
func (g *Group) Get(key string) *Breaker {
	g.mu.RLock()
	b, ok := g.breakers[key]
	g.mu.RUnlock()
	if ok {
		return b
	}
	config, version, fromFleet := g.fleetPolicy(key)
	g.mu.Lock()
	defer g.mu.Unlock()
	if b, ok := g.breakers[key]; ok {
		return b
	}
	b, err := New(key, config, g.opts...)
	if err != nil && fromFleet {
		// A distributed policy this SDK rejects: the group's own config, which NewGroup
		// validated, protects the key instead.
		fromFleet = false
		b, err = New(key, g.config, g.opts...)
	}
	if err != nil {
		panic("levee/breaker: config validated by NewGroup was rejected: " + err.Error())
	}
	if fromFleet {
		g.versions[key] = version
	}
	g.breakers[key] = b
	return b
}

// fleetPolicy returns the config a new breaker for key runs: the distributed policy when
// there is one (version 1 and up), else the group's config.
func (g *Group) fleetPolicy(key string) (Config, uint64, bool) {
	if src, ok := g.fleet.(PolicySource); ok {
		if c, v, ok := src.Policy(key); ok && v > 0 {
			return c, v, true
		}
	}
	return g.config, 0, false
}

// Reconfigure replaces the config of key's breaker, keeping its state: a closed breaker stays
// closed with its window cleared (its counts were judged by the old thresholds and window);
// an open one stays open until the same moment; a half-open one stays half-open with a fresh
// set of probes (calls in flight report to the breaker they started on); forced_open and
// disabled stay (they are an operator's). Zero fields of config take the SPEC defaults; an
// impossible config is an error and changes nothing. A key without a breaker yet gets one.
// No transition is emitted: the state does not change.
func (g *Group) Reconfigure(key string, config Config) error {
	return g.reconfigure(key, config, 0)
}

func (g *Group) reconfigure(key string, config Config, version uint64) error {
	nb, err := New(key, config, g.opts...)
	if err != nil {
		return fmt.Errorf("breaker %q: %w", key, err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if old, ok := g.breakers[key]; ok {
		nb.adopt(old)
	}
	g.breakers[key] = nb
	if version > 0 {
		g.versions[key] = version
	} else {
		delete(g.versions, key)
	}
	return nil
}

// PolicyVersion returns the version of the fleet policy key's breaker runs; 0 when it runs
// the group's config (or Reconfigure's).
func (g *Group) PolicyVersion(key string) uint64 {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.versions[key]
}

// SyncFleet brings the group up to date with the fleet (a no-op without WithFleet): every
// key whose distributed policy has a newer version than the one it runs is reconfigured
// (Reconfigure's rules), and every key whose effective state (EffectiveState: the more
// severe of local and fleet) changed because of the fleet gets a transition with reason
// fleet, from the old effective state to the new, sent to the OnTransition listeners. As the
// proxy does, local transitions keep their own reasons and local states.
//
// A FleetNotifier calls it on every change; call it yourself only with a FleetView that is
// not one.
func (g *Group) SyncFleet() {
	if g.fleet == nil {
		return
	}
	g.syncMu.Lock()
	defer g.syncMu.Unlock()
	if src, ok := g.fleet.(PolicySource); ok {
		for _, b := range g.list() {
			c, v, ok := src.Policy(b.key)
			if ok && v > 0 && v > g.PolicyVersion(b.key) {
				// An unreadable or impossible policy keeps the breaker as it is.
				_ = g.reconfigure(b.key, c, v)
			}
		}
	}
	for _, b := range g.list() {
		var now fleetState
		now.state, now.ok = g.fleet.FleetState(b.key)
		before := g.seen[b.key]
		g.seen[b.key] = now
		if before == now {
			continue
		}
		local := b.State()
		from, to := effective(local, before), effective(local, now)
		if from != to {
			b.emit(&Transition{Key: b.key, From: from, To: to, Reason: ReasonFleet, At: b.clock.Now()})
		}
	}
}

func effective(local State, f fleetState) State {
	if f.ok {
		return MoreSevere(local, f.state)
	}
	return local
}

func (g *Group) list() []*Breaker {
	g.mu.RLock()
	defer g.mu.RUnlock()
	list := make([]*Breaker, 0, len(g.breakers))
	for _, b := range g.breakers {
		list = append(list, b)
	}
	return list
}

// Each calls f for every breaker in the group (in no particular order).
func (g *Group) Each(f func(*Breaker)) {
	for _, b := range g.list() {
		f(b)
	}
}
