// Package registry connects a Go service to Levee's fleet registry (SPEC §9, §10): the
// server `levee registry` runs, shared by every Levee instance (the proxy, the Rust library,
// Go services), so that all callers of an endpoint agree on its breaker state. It is the Go
// twin of the Rust crate levee-registry-client and speaks the HTTP/JSON API of
// api/registry.openapi.yaml.
//
//   - Reporting: Record adds a call's outcome to an in-memory bucket per endpoint key and
//     second; a background goroutine sends the buckets every ReportInterval. Record never
//     waits on the network; while the registry is unreachable the buckets are kept, bounded,
//     the oldest dropped first.
//   - Watching: a background goroutine holds the registry's Server-Sent Events watch stream,
//     resumes it with Last-Event-ID after a disconnect and reconnects with jittered exponential
//     backoff; a stream silent for IdleTimeout (the registry sends heartbeats) counts as lost.
//   - Reading is a lock-free cache lookup. Fleet breaker states and the degradation level are
//     served while fresh — connected, or disconnected for less than StaleTTL — and after that
//     the instance runs on its local breakers alone (protection decided on stale data must not
//     outlive an outage). A registry that is up but has lost its backend serves last-known
//     state, so it counts as disconnected too. Toggles and policies are configuration rather
//     than protection: they keep their last-known values.
//   - Probe leases coordinate half-open probing fleet-wide: AcquireLease is the one call that
//     waits for the registry, bounded by LeaseTimeout; completing a lease never waits.
//
// Fail-static, exactly as the proxy: a registry outage never becomes an error on a request
// path by itself. Record, FleetState, Enabled, DegradationLevel and Connected never fail; only
// fleet state known to be fresh refuses calls (circuit_open), and once StaleTTL has passed
// without contact nothing does. AcquireLease and Admit return no other errors than those
// refusals and the caller's context ending.
//
// Install the client in the SDK's breakers with breaker.WithFleet: a breaker then rejects
// calls the fleet rejects (levee.ErrCircuitOpen), sends half-open probes only under a fleet
// lease, reports every outcome, and reports as its EffectiveState the more severe of its
// local state and the fleet's.
//
//	reg, err := registry.New(registry.Config{URL: "http://registry:9911", Token: token, Service: "checkout"})
//	reg.Start(ctx)
//	defer reg.Close()
//	breakers, _ := breaker.NewGroup(breaker.Config{}, breaker.WithFleet(reg))
//	client := &http.Client{Transport: &levhttp.Transport{Breakers: breakers}}
package registry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/levee-dev/levee/go"
	"github.com/levee-dev/levee/go/breaker"
)

// DefaultURL is the registry `levee registry` serves by default.
const DefaultURL = "http://127.0.0.1:9911"

// TokenEnv is the environment variable a zero Config.Token is read from: the default of the
// config file's registry.token_env.
const TokenEnv = "LEVEE_REGISTRY_TOKEN"

// Gauges receives the registry's two metrics; *levprom.Metrics implements it
// (levee_registry_connected and levee_degradation_level, labelled language="go").
type Gauges interface {
	SetRegistryConnected(connected bool)
	SetDegradationLevel(level int)
}

// Config says how a Client behaves. The zero value of every field means its default.
type Config struct {
	URL        string       // the registry, http(s)://host:port; "" = DefaultURL
	Token      string       // the reporter token (reads accept it too); "" = $LEVEE_REGISTRY_TOKEN
	Service    string       // this service's name in reports; "" = the executable's name
	InstanceID string       // this instance's id; "" = 16 random hex digits
	HTTPClient *http.Client // nil = a client of its own; its Timeout must be 0 (the watch stream is long-lived)

	ReportInterval    time.Duration // how often buckets are sent; 0 = 1s
	StaleTTL          time.Duration // how long fleet state outlives a lost connection (SPEC §9 registry.stale_ttl); 0 = 30s
	MaxPendingBuckets int           // (key, second) buckets kept while the registry is unreachable; 0 = 4096
	RequestTimeout    time.Duration // bound of each background call; 0 = 2s
	LeaseTimeout      time.Duration // bound of a lease request, which a caller waits for; 0 = 500ms
	LeaseTTL          time.Duration // how long a granted lease lasts uncompleted; 0 = 10s
	IdleTimeout       time.Duration // a watch stream silent this long is reconnected; 0 = 15s (three heartbeats)
	ReconnectMin      time.Duration // first reconnect delay, doubled up to ReconnectMax; 0 = 100ms
	ReconnectMax      time.Duration // 0 = 5s; each delay is scaled by a random factor in [0.5, 1)

	Clock   levee.Clock  // stale_ttl, intervals and backoff waits; nil = levee.SystemClock (tests: levee.ManualClock)
	Random  levee.Random // backoff jitter; nil = a SplitMix64 from entropy
	Metrics Gauges       // nil = none
	Logger  *slog.Logger // nil = silent
}

func (c Config) withDefaults() Config {
	if c.URL == "" {
		c.URL = DefaultURL
	}
	if c.Token == "" {
		c.Token = os.Getenv(TokenEnv)
	}
	if c.Service == "" {
		c.Service = filepath.Base(os.Args[0])
	}
	setDefault := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	setDefault(&c.ReportInterval, time.Second)
	setDefault(&c.StaleTTL, 30*time.Second)
	setDefault(&c.RequestTimeout, 2*time.Second)
	setDefault(&c.LeaseTimeout, 500*time.Millisecond)
	setDefault(&c.LeaseTTL, 10*time.Second)
	setDefault(&c.IdleTimeout, 15*time.Second)
	setDefault(&c.ReconnectMin, 100*time.Millisecond)
	setDefault(&c.ReconnectMax, 5*time.Second)
	if c.MaxPendingBuckets == 0 {
		c.MaxPendingBuckets = 4096
	}
	if c.Clock == nil {
		c.Clock = levee.SystemClock
	}
	if c.Random == nil {
		c.Random = levee.NewRandom()
	}
	return c
}

func (c Config) validate() error {
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("levee registry: URL %q is not understood: use http://host:port", c.URL)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"ReportInterval", c.ReportInterval}, {"StaleTTL", c.StaleTTL}, {"RequestTimeout", c.RequestTimeout},
		{"LeaseTimeout", c.LeaseTimeout}, {"LeaseTTL", c.LeaseTTL}, {"IdleTimeout", c.IdleTimeout},
		{"ReconnectMin", c.ReconnectMin}, {"ReconnectMax", c.ReconnectMax},
	} {
		if d.v < 0 {
			return fmt.Errorf("levee registry: %s is %v: use a positive duration (or 0 for the default)", d.name, d.v)
		}
	}
	if c.ReconnectMax < c.ReconnectMin {
		return fmt.Errorf("levee registry: ReconnectMax (%v) is below ReconnectMin (%v): raise it", c.ReconnectMax, c.ReconnectMin)
	}
	if c.HTTPClient != nil && c.HTTPClient.Timeout != 0 {
		return fmt.Errorf("levee registry: HTTPClient.Timeout is %v, which would cut the watch stream: use 0 (every call is bounded by RequestTimeout or LeaseTimeout)", c.HTTPClient.Timeout)
	}
	if c.MaxPendingBuckets < 0 {
		return fmt.Errorf("levee registry: MaxPendingBuckets is %d: use a positive count (or 0 for 4096)", c.MaxPendingBuckets)
	}
	for _, n := range []struct{ name, v string }{{"Service", c.Service}, {"InstanceID", c.InstanceID}} {
		if len(n.v) > 256 || strings.IndexFunc(n.v, isControl) >= 0 {
			return fmt.Errorf("levee registry: %s %q is not a valid name: use 1 to 256 characters without control characters", n.name, n.v)
		}
	}
	return nil
}

func isControl(r rune) bool { return r < 0x20 || (r >= 0x7f && r <= 0x9f) }

// Client is this instance's view of the fleet. It is safe for concurrent use. New makes one;
// Start starts its background goroutines (reporting, watching, completing leases); Close
// stops them.
type Client struct {
	cfg      Config
	base     string
	token    string
	service  string
	instance string
	http     *http.Client
	clock    levee.Clock
	random   levee.Random
	gauges   Gauges
	log      *slog.Logger

	pending *pending
	flushMu sync.Mutex

	state     atomic.Pointer[fleetState] // nil until the first snapshot
	streaming atomic.Bool                // the watch stream is up
	degraded  atomic.Bool                // the registry says its backend is down
	lastLive  atomic.Int64               // the last moment fleet state was live (clock nanos); -1 = never
	lastID    atomic.Uint64              // the last event id received; 0 = none

	denialsMu sync.Mutex
	denials   map[string]levee.Timestamp // lease denied until

	completions chan completion

	lifeMu  sync.Mutex
	started bool
	closed  bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	onWait func(kind string, d time.Duration) // tests: called once a wait's timer is set

	watchersMu sync.Mutex
	watchers   map[uint64]func()
	watcherSeq uint64
}

// OnFleetChange registers f, called after every watch event is applied and every
// ReportInterval (so that the end of StaleTTL is noticed), from the client's goroutines, one
// call at a time per event. It is breaker.FleetNotifier's method: a breaker.Group made with
// breaker.WithFleet(client) registers itself, and so counts fleet transitions (reason fleet)
// and applies distributed policies without more code. cancel unregisters f.
func (c *Client) OnFleetChange(f func()) (cancel func()) {
	c.watchersMu.Lock()
	defer c.watchersMu.Unlock()
	if c.watchers == nil {
		c.watchers = map[uint64]func(){}
	}
	c.watcherSeq++
	id := c.watcherSeq
	c.watchers[id] = f
	return func() {
		c.watchersMu.Lock()
		defer c.watchersMu.Unlock()
		delete(c.watchers, id)
	}
}

// notifyChange calls the OnFleetChange functions.
func (c *Client) notifyChange() {
	c.watchersMu.Lock()
	list := make([]func(), 0, len(c.watchers))
	for _, f := range c.watchers {
		list = append(list, f)
	}
	c.watchersMu.Unlock()
	for _, f := range list {
		f()
	}
}

// The kinds of wait, for tests.
const (
	waitReport    = "report"
	waitReconnect = "reconnect"
)

// New checks cfg and returns a client that is not started yet. It fails only for an unusable
// config: an unreachable registry is not an error.
func New(cfg Config) (*Client, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	instance := cfg.InstanceID
	if instance == "" {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("levee registry: cannot draw an instance id: %w", err)
		}
		instance = hex.EncodeToString(b[:])
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{}
		if t, ok := http.DefaultTransport.(*http.Transport); ok {
			hc.Transport = t.Clone() // connections of its own
		}
	}
	c := &Client{
		cfg:         cfg,
		base:        strings.TrimRight(cfg.URL, "/"),
		token:       cfg.Token,
		service:     cfg.Service,
		instance:    instance,
		http:        hc,
		clock:       cfg.Clock,
		random:      cfg.Random,
		gauges:      cfg.Metrics,
		log:         cfg.Logger,
		pending:     newPending(cfg.MaxPendingBuckets),
		denials:     map[string]levee.Timestamp{},
		completions: make(chan completion, 1024),
	}
	c.lastLive.Store(-1)
	c.refreshGauges()
	return c, nil
}

// Start starts the background goroutines, which run until ctx is done or Close is called.
// Calling it again, or after Close, does nothing.
func (c *Client) Start(ctx context.Context) {
	c.lifeMu.Lock()
	defer c.lifeMu.Unlock()
	if c.started || c.closed {
		return
	}
	c.started = true
	ctx, c.cancel = context.WithCancel(ctx)
	for _, loop := range []func(context.Context){c.reportLoop, c.watchLoop, c.completeLoop} {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			loop(ctx)
		}()
	}
}

// Close stops the background goroutines and then, within RequestTimeout, sends what is still
// pending (buckets and lease completions). It returns the error of that last report, if any;
// the client reads as disconnected afterwards.
func (c *Client) Close() error {
	c.lifeMu.Lock()
	if c.closed {
		c.lifeMu.Unlock()
		return nil
	}
	c.closed = true
	cancel := c.cancel
	c.lifeMu.Unlock()
	if cancel != nil {
		cancel()
	}
	c.wg.Wait()
	ctx, done := context.WithTimeout(context.Background(), c.cfg.RequestTimeout)
	defer done()
	err := c.Flush(ctx)
	for drained := false; !drained; {
		select {
		case comp := <-c.completions:
			c.sendCompletion(ctx, comp)
		default:
			drained = true
		}
	}
	c.refreshGauges()
	return err
}

// InstanceID returns this instance's id, as reports and leases name it.
func (c *Client) InstanceID() string { return c.instance }

// Connected reports whether fleet state is live: the watch stream is up and the registry has
// its backend. It is the value of levee_registry_connected.
func (c *Client) Connected() bool { return c.streaming.Load() && !c.degraded.Load() }

// touch notes that fleet state is live now (a no-op while it is not).
func (c *Client) touch() {
	if c.Connected() {
		c.lastLive.Store(int64(c.clock.Now()))
	}
}

// setDegraded records whether the registry has its backend; losing it starts StaleTTL.
func (c *Client) setDegraded(degraded bool) {
	c.touch()
	c.degraded.Store(degraded)
	c.touch()
}

// fresh reports whether cached protection state may be used: connected, or disconnected for
// less than StaleTTL.
func (c *Client) fresh() bool {
	if c.Connected() {
		return true
	}
	at := c.lastLive.Load()
	return at >= 0 && c.clock.Now().Since(levee.Timestamp(at)) < c.cfg.StaleTTL
}

// FleetState returns the state the fleet breaker of endpoint key holds over callers, while
// fleet state is fresh. False means local-only: the key is unknown to the fleet (never
// reported, so closed), its fleet breaker only observes (the observe override or policy mode:
// it never restricts), or StaleTTL passed without contact with the registry. It is
// breaker.FleetView's FleetState, so a breaker's EffectiveState is the more severe of its own
// state and this one, as the proxy's is.
func (c *Client) FleetState(key string) (breaker.State, bool) {
	b, ok := c.restricting(key)
	return b.state, ok
}

// restricting returns key's fleet breaker while fleet state is fresh and it is not observing.
func (c *Client) restricting(key string) (fleetBreaker, bool) {
	if !c.fresh() {
		return fleetBreaker{}, false
	}
	s := c.state.Load()
	if s == nil {
		return fleetBreaker{}, false
	}
	b, ok := s.breakers[key]
	if !ok || b.observe {
		return fleetBreaker{}, false
	}
	return b, true
}

// DegradationLevel returns the fleet degradation level (0 normal … 3 critical traffic only,
// SPEC §10) while fleet state is fresh, and 0 otherwise.
func (c *Client) DegradationLevel() int {
	if !c.fresh() {
		return 0
	}
	if s := c.state.Load(); s != nil {
		return s.level
	}
	return 0
}

// Policy returns the breaker policy the registry distributes for key, with its version, as
// last received (version 0 means the SPEC defaults were never changed for key). False when
// none was received or it could not be read.
func (c *Client) Policy(key string) (breaker.Config, uint64, bool) {
	s := c.state.Load()
	if s == nil {
		return breaker.Config{}, 0, false
	}
	p, ok := s.policies[key]
	if !ok || !p.ok {
		return breaker.Config{}, 0, false
	}
	return p.config, p.version, true
}

// Admit decides a call to key as far as the fleet is concerned; breakers installed with
// breaker.WithFleet ask it after their local breaker permitted the call. It returns nil, nil
// when the fleet does not restrict the call (closed, disabled, observe, unknown key, stale or
// unreachable registry); a circuit_open *levee.Error when the fleet breaker is open or forced
// open, or half-open with no probe lease for this call (every slot taken, or the registry
// not answering while its last word still holds); and a done function when the call goes as
// one of the fleet's half-open probes (under a lease from AcquireLease): call it once with
// the call's outcome. The only other error is ctx's, when it ends while a lease is asked for.
func (c *Client) Admit(ctx context.Context, key string) (done func(levee.Outcome), err error) {
	b, ok := c.restricting(key)
	if !ok {
		return nil, nil
	}
	switch b.state {
	case breaker.Closed, breaker.Disabled:
		return nil, nil
	case breaker.ForcedOpen:
		return nil, fleetRejection(key, 0)
	case breaker.Open:
		if now := levee.WallTime(c.clock).UnixMilli(); b.openUntilMs > uint64(max(now, 0)) {
			return nil, fleetRejection(key, time.Duration(b.openUntilMs-uint64(now))*time.Millisecond)
		}
	}
	// Half-open, or open past its wait: only a fleet probe may go.
	lease, err := c.AcquireLease(ctx, key)
	if err != nil {
		return nil, err
	}
	if !lease.Probe() {
		return nil, nil
	}
	return lease.Complete, nil
}

// fleetRejection is the circuit_open error for a call the fleet refuses; its reason is
// "fleet" (breaker.ReasonFleet's word), so logs tell it from a local refusal.
func fleetRejection(key string, retryAfter time.Duration) error {
	return &levee.Error{Code: levee.CodeCircuitOpen, Upstream: key, Reason: breaker.ReasonFleet.String(), RetryAfter: retryAfter}
}

// refreshGauges sets the metrics from the current state.
func (c *Client) refreshGauges() {
	if c.gauges == nil {
		return
	}
	c.gauges.SetRegistryConnected(c.Connected())
	c.gauges.SetDegradationLevel(c.DegradationLevel())
}

// backoff is the delay before reconnect (or report) attempt n (0-based): ReconnectMin doubled
// n times, at most ReconnectMax, scaled by a random factor in [0.5, 1) so a fleet does not
// reconnect in step.
func (c *Client) backoff(n int) time.Duration {
	d := c.cfg.ReconnectMin
	for i := 0; i < n && d < c.cfg.ReconnectMax; i++ {
		d *= 2
	}
	d = min(d, c.cfg.ReconnectMax)
	return time.Duration(float64(d) * (0.5 + c.random.Float64()/2))
}

// wait waits d on the client's clock, or until ctx is done.
func (c *Client) wait(ctx context.Context, kind string, d time.Duration) error {
	fired := make(chan struct{})
	stop := levee.AfterFunc(c.clock, d, func() { close(fired) })
	if c.onWait != nil {
		c.onWait(kind, d)
	}
	select {
	case <-fired:
		return nil
	case <-ctx.Done():
		stop()
		return ctx.Err()
	}
}

func (c *Client) logDebug(msg string, args ...any) {
	if c.log != nil {
		c.log.Debug(msg, args...)
	}
}

func (c *Client) logWarn(msg string, args ...any) {
	if c.log != nil {
		c.log.Warn(msg, args...)
	}
}

// The breaker package's optional fleet interfaces, checked at compile time.
var (
	_ breaker.FleetView     = (*Client)(nil)
	_ breaker.PolicySource  = (*Client)(nil)
	_ breaker.FleetNotifier = (*Client)(nil)
)
