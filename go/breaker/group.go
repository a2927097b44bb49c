package breaker

import "sync"

// Group holds one breaker per endpoint key, created on first use with the same config and
// options. The key names the breaker in metrics and the registry, whichever language
// recorded it (SPEC §2).
type Group struct {
	config   Config
	opts     []Option
	mu       sync.RWMutex
	breakers map[string]*Breaker
}

// NewGroup validates config (zero fields take the SPEC defaults) and returns an empty group.
func NewGroup(config Config, opts ...Option) (*Group, error) {
	if err := config.WithDefaults().Validate(); err != nil {
		return nil, err
	}
	return &Group{config: config, opts: opts, breakers: map[string]*Breaker{}}, nil
}

// Get returns the breaker for key, creating it closed on first use.
func (g *Group) Get(key string) *Breaker {
	g.mu.RLock()
	b, ok := g.breakers[key]
	g.mu.RUnlock()
	if ok {
		return b
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if b, ok := g.breakers[key]; ok {
		return b
	}
	b, err := New(key, g.config, g.opts...)
	if err != nil {
		panic("levee/breaker: config validated by NewGroup was rejected: " + err.Error())
	}
	g.breakers[key] = b
	return b
}

// Each calls f for every breaker in the group (in no particular order).
func (g *Group) Each(f func(*Breaker)) {
	g.mu.RLock()
	list := make([]*Breaker, 0, len(g.breakers))
	for _, b := range g.breakers {
		list = append(list, b)
	}
	g.mu.RUnlock()
	for _, b := range list {
		f(b)
	}
}
