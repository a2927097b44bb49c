// Package storefront is the fleet's front service: GET /product/{id} assembles a product page
// from three dependencies, each called through the Go SDK's levhttp.Transport with its own
// breaker, retries with a budget (idempotent GETs), the page's deadline sent as
// levee-timeout-ms and a criticality sent as levee-criticality:
//
//	dependency       GET                                         criticality  when it fails
//	inventory        {inventory}/inventory/items/{id}            critical     the page fails: SPEC §7 problem+json
//	pricing          {pricing}/prices/{id}                       standard     "price": null, degraded
//	recommendations  {recommendations}/recommendations?item={id} sheddable    "recommendations": [], degraded
//
// Inventory is reached through a Levee sidecar proxy, which applies its own policies: its
// refusals arrive as problem+json and are answered as such (with their code and Retry-After),
// and a stale answer it serves (levee-degraded: stale; reason=...) is passed on.
//
// A degraded page says so, as SPEC §7 asks of every fallback: one levee-degraded response
// header per part left out (static; reason=<code>) or passed on from a dependency, and a
// "degraded" list in the body naming the parts. Fallbacks are counted in
// levee_fallbacks_total and logged at warn level.
//
// With Config.Registry the breakers join the fleet through the SDK's registry client, and the
// fleet degradation level sheds recommendations from level 1 and pricing from level 3.
package storefront

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/levee-dev/levee/examples/fleet/internal/chaos"
	"github.com/levee-dev/levee/go"
	"github.com/levee-dev/levee/go/breaker"
	"github.com/levee-dev/levee/go/levhttp"
	"github.com/levee-dev/levee/go/levprom"
	"github.com/levee-dev/levee/go/registry"
	"github.com/levee-dev/levee/go/retry"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ServiceName names the service in metrics, the registry and error envelopes.
const ServiceName = "storefront"

// Defaults of Config.
const (
	DefaultInventory              = "http://127.0.0.1:8080"
	DefaultPricing                = "http://127.0.0.1:7004"
	DefaultRecommendations        = "http://127.0.0.1:7003"
	DefaultTimeout                = 2 * time.Second
	DefaultPricingTimeout         = 500 * time.Millisecond
	DefaultRecommendationsTimeout = 300 * time.Millisecond
)

// The breakers' endpoint keys: the names under which the storefront's breakers appear in
// metrics and, with a registry, in the fleet state. The inventory key is not "inventory":
// that is the sidecar's own breaker on the inventory service, and the storefront's breaker
// guards its calls to the sidecar. Sharing the key would let the sidecar's open breaker stop
// the storefront from reaching the sidecar, and so from its stale fallback, and would feed the
// sidecar's own refusals back into the fleet's count of inventory failures.
const (
	KeyInventory       = "inventory-sidecar"
	KeyPricing         = "pricing"
	KeyRecommendations = "recommendations"
)

// Config configures the storefront. The zero value of every field means its default.
type Config struct {
	Inventory       string // base URL of the inventory sidecar; "" = DefaultInventory
	Pricing         string // base URL of the pricing service; "" = DefaultPricing
	Recommendations string // base URL of the recommendations service; "" = DefaultRecommendations

	// Timeout is the page's deadline (a shorter inbound levee-timeout-ms wins); 0 =
	// DefaultTimeout. Inventory may use all of it.
	Timeout time.Duration
	// PricingTimeout and RecommendationsTimeout bound the optional parts, so that a slow
	// dependency costs the page at most this; 0 = DefaultPricingTimeout and
	// DefaultRecommendationsTimeout.
	PricingTimeout         time.Duration
	RecommendationsTimeout time.Duration

	// Breaker is the breaker config of every dependency; its zero fields take the SPEC
	// defaults. nil = breaker.Config{MinimumCalls: 10}: trips when half of the last 10 s of
	// calls failed, once 10 were made. The inventory breaker guards the hop to the sidecar:
	// it counts connect failures, resets and timeouts, not the sidecar's answers.
	Breaker *breaker.Config
	// Retry is the retry policy of pricing and recommendations (GETs are idempotent); zero
	// fields take the SPEC defaults (2 attempts, 25 ms base backoff, budget 20% + 10/s).
	// Inventory uses it with retry_on narrowed to connect_failure, reset and refused_stream:
	// the sidecar retries inventory itself.
	Retry retry.Config

	// Registry, when set, makes the breakers join the fleet (SPEC §9) through the SDK's
	// registry client; Service and Metrics are filled in. nil = local breakers only.
	Registry *registry.Config

	// Clock is the breakers' clock; nil = levee.SystemClock. Tests pass a levee.ManualClock
	// so that an open breaker stays open until they move it.
	Clock levee.Clock
	// Base sends the requests; nil = a clone of http.DefaultTransport.
	Base http.RoundTripper
	// Logger receives fallbacks (warn) and failures; nil = silent.
	Logger *slog.Logger
	// Chaos configures the /control/* endpoints (Service is filled in).
	Chaos chaos.Config
}

// Service is a storefront, ready to serve.
type Service struct {
	handler  http.Handler
	chaos    *chaos.Chaos
	metrics  *levprom.Metrics
	registry *registry.Client
	log      *slog.Logger

	inventory, pricing, recommendations *dependency
}

// dependency is one upstream of the page, with its own guarded client.
type dependency struct {
	name        string // its name in envelopes, logs and the degraded list
	base        *url.URL
	client      *http.Client
	criticality levee.Criticality
	timeout     time.Duration // 0 = the page's deadline
	shedAt      int           // the fleet degradation level from which it is skipped; 0 = never
}

// New checks cfg and builds the service. Call Start to join the fleet (with a registry) and
// Close when done.
func New(cfg Config) (*Service, error) {
	setDefault := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	setDefault(&cfg.Inventory, DefaultInventory)
	setDefault(&cfg.Pricing, DefaultPricing)
	setDefault(&cfg.Recommendations, DefaultRecommendations)
	for _, t := range []struct {
		d    *time.Duration
		def  time.Duration
		name string
	}{
		{&cfg.Timeout, DefaultTimeout, "timeout"},
		{&cfg.PricingTimeout, DefaultPricingTimeout, "pricing timeout"},
		{&cfg.RecommendationsTimeout, DefaultRecommendationsTimeout, "recommendations timeout"},
	} {
		if *t.d == 0 {
			*t.d = t.def
		}
		if *t.d < 0 {
			return nil, fmt.Errorf("storefront: %s is %s: use a positive duration such as 500ms", t.name, *t.d)
		}
	}
	brCfg := breaker.Config{MinimumCalls: 10}
	if cfg.Breaker != nil {
		brCfg = *cfg.Breaker
	}
	if cfg.Clock == nil {
		cfg.Clock = levee.SystemClock
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	policy, err := retry.New(cfg.Retry)
	if err != nil {
		return nil, fmt.Errorf("storefront: retry: %w", err)
	}
	// The sidecar retries inventory itself; the storefront retries only what went wrong on
	// the hop to the sidecar, so that retries do not multiply across the two layers.
	hopRetry := cfg.Retry
	hopRetry.RetryOn = hopRetryOn()
	hopPolicy, err := retry.New(hopRetry)
	if err != nil {
		return nil, fmt.Errorf("storefront: retry: %w", err)
	}
	reg := prometheus.NewRegistry()
	metrics, err := levprom.New(ServiceName, reg)
	if err != nil {
		return nil, fmt.Errorf("storefront: metrics: %w", err)
	}
	s := &Service{metrics: metrics, log: log}
	opts := []breaker.Option{breaker.WithClock(cfg.Clock), breaker.OnTransition(func(t breaker.Transition) {
		metrics.BreakerTransition(t.Key, t.From.String(), t.To.String(), t.Reason.String())
		log.Warn("breaker transition", "endpoint", t.Key, "from", t.From.String(), "to", t.To.String(), "reason", t.Reason.String())
	})}
	if cfg.Registry != nil {
		rc := *cfg.Registry
		rc.Service = ServiceName
		rc.Metrics = metrics
		if rc.Logger == nil {
			rc.Logger = log
		}
		if s.registry, err = registry.New(rc); err != nil {
			return nil, fmt.Errorf("storefront: registry: %w", err)
		}
		opts = append(opts, breaker.WithFleet(s.registry))
	}
	base := cfg.Base
	if base == nil {
		base = newBaseTransport()
	}
	newDep := func(name, key, rawURL string, c levee.Criticality, timeout time.Duration, shedAt int, policy *retry.Policy, failureStatuses levee.StatusSet) (*dependency, error) {
		u, err := ParseBaseURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("storefront: %s URL: %w", name, err)
		}
		group, err := breaker.NewGroup(brCfg, opts...)
		if err != nil {
			return nil, fmt.Errorf("storefront: breaker: %w", err)
		}
		metrics.SetBreakerState(key, breaker.Closed.String())
		t := &levhttp.Transport{
			Base:     base,
			Endpoint: func(*http.Request) string { return key },
			Breakers: group,
			Retry:    policy,
			// The zero set is the SPEC default (500, 502-504).
			FailureStatuses: failureStatuses,
			Observer:        metrics,
		}
		return &dependency{name: name, base: u, client: &http.Client{Transport: t},
			criticality: c, timeout: timeout, shedAt: shedAt}, nil
	}
	// Every answer from the sidecar is the sidecar working: its 5xx are its own policies'
	// verdicts on inventory (with the stale fallback it may serve next). The storefront's
	// breaker on the hop counts only connect failures, resets and timeouts, so that it never
	// cuts the storefront off from the sidecar's fallbacks.
	if s.inventory, err = newDep("inventory", KeyInventory, cfg.Inventory, levee.Critical, 0, 0, hopPolicy, levee.MustStatusSet()); err != nil {
		return nil, err
	}
	if s.pricing, err = newDep("pricing", KeyPricing, cfg.Pricing, levee.Standard, cfg.PricingTimeout, 3, policy, levee.StatusSet{}); err != nil {
		return nil, err
	}
	if s.recommendations, err = newDep("recommendations", KeyRecommendations, cfg.Recommendations, levee.Sheddable, cfg.RecommendationsTimeout, 1, policy, levee.StatusSet{}); err != nil {
		return nil, err
	}

	cfg.Chaos.Service = ServiceName
	s.chaos = chaos.New(cfg.Chaos)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.Handle("/control/", s.chaos.Controls())
	mux.Handle("GET /product/{id}", levhttp.Handler(s.chaos.Wrap(http.HandlerFunc(s.product)),
		levhttp.ServerOptions{Service: ServiceName, Timeout: cfg.Timeout}))
	s.handler = mux
	return s, nil
}

// hopRetryOn is what the storefront retries on its hop to the sidecar: the failures of the
// connection, never an answer.
func hopRetryOn() retry.RetryOn {
	on, err := retry.ParseRetryOn("connect_failure", "reset", "refused_stream")
	if err != nil {
		panic("storefront: fixed retry_on list rejected: " + err.Error())
	}
	return on
}

func newBaseTransport() http.RoundTripper {
	t, ok := http.DefaultTransport.(*http.Transport)
	if !ok {
		return http.DefaultTransport
	}
	t = t.Clone()
	t.MaxIdleConnsPerHost = 64
	return t
}

// ParseBaseURL checks a dependency's base URL: absolute http or https, with a host, no query;
// a trailing slash is dropped.
func ParseBaseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%q is not a URL: %v; use e.g. http://127.0.0.1:8080", raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q is not an absolute http(s) URL: use e.g. http://127.0.0.1:8080", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%q has a query or fragment: give the base URL only, e.g. http://127.0.0.1:8080", raw)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// Handler returns the service's routes.
func (s *Service) Handler() http.Handler { return s.handler }

// Chaos returns the service's chaos controls (Close it on shutdown to release hung calls).
func (s *Service) Chaos() *chaos.Chaos { return s.chaos }

// Start joins the fleet when a registry is configured (its background work runs until ctx
// ends or Close); without one it does nothing.
func (s *Service) Start(ctx context.Context) {
	if s.registry != nil {
		s.registry.Start(ctx)
	}
}

// Close leaves the fleet, sending the outcomes not reported yet.
func (s *Service) Close() error {
	if s.registry != nil {
		return s.registry.Close()
	}
	return nil
}

// Page is the body of GET /product/{id}.
type Page struct {
	ID              string          `json:"id"`
	Inventory       json.RawMessage `json:"inventory"`       // the inventory service's item, as it sent it
	Price           json.RawMessage `json:"price"`           // the pricing service's answer, or null
	Recommendations json.RawMessage `json:"recommendations"` // the items list, or []
	Degraded        []Degraded      `json:"degraded,omitempty"`
}

// Degraded names a part of the page that is a fallback, with its levee-degraded value.
type Degraded struct {
	Part  string `json:"part"`  // inventory, pricing or recommendations
	Value string `json:"value"` // e.g. "static; reason=circuit_open"
}

// Price is the pricing service's answer.
type Price struct {
	ID         string `json:"id"`
	PriceCents int64  `json:"price_cents"`
	Currency   string `json:"currency"`
}

// maxBody bounds what is read from a dependency.
const maxBody = 1 << 20

// part is the outcome of one dependency call for the page.
type part struct {
	body     json.RawMessage // nil: left out
	degraded []string        // levee-degraded values for this part
	problem  *levee.Problem  // inventory only: the page fails with this
	notFound bool            // the dependency has nothing for this id
	fallback bool            // degraded is the storefront's own static fallback
	cause    string          // why the fallback was served, for the log
}

func (s *Service) product(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	// levhttp.Handler continued the caller's trace (or started one) and put it in the
	// context: the envelopes show its id, and every dependency call continues it.
	traceID := levhttp.TraceIDFrom(r.Context())
	if !validID(id) {
		p := levee.NewProblem(levee.CodeBadRequest, ServiceName, 0, traceID)
		p.Detail = fmt.Sprintf("product id %q is not valid: use 1 to 64 letters, digits, '-', '_' or '.'", id)
		levee.WriteProblem(w, p)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	call := func(d *dependency, path string, q url.Values, read func([]byte) (json.RawMessage, bool)) part {
		return s.call(ctx, d, traceID, path, q, read)
	}
	var price, recs part
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		price = call(s.pricing, "/prices/"+id, nil, readPrice)
	}()
	go func() {
		defer wg.Done()
		recs = call(s.recommendations, "/recommendations", url.Values{"item": {id}}, readItems)
	}()
	inv := call(s.inventory, "/inventory/items/"+id, nil, readObject)
	if inv.notFound {
		cancel()
		wg.Wait()
		writeNotFound(w, id, traceID)
		return
	}
	if inv.problem != nil {
		cancel() // the page fails: the optional parts are not needed any more
		wg.Wait()
		levee.WriteProblem(w, *inv.problem)
		return
	}
	wg.Wait()

	page := Page{ID: id, Inventory: inv.body, Price: price.body, Recommendations: recs.body}
	if page.Price == nil {
		page.Price = json.RawMessage("null")
	}
	if page.Recommendations == nil {
		page.Recommendations = json.RawMessage("[]")
	}
	for _, p := range []struct {
		name string
		part part
	}{{"inventory", inv}, {"pricing", price}, {"recommendations", recs}} {
		for _, v := range p.part.degraded {
			w.Header().Add(levee.HeaderDegraded, v)
			page.Degraded = append(page.Degraded, Degraded{Part: p.name, Value: v})
			// Fallbacks must be loud (SPEC §7): counted and logged when the page goes out.
			if p.part.fallback {
				s.metrics.Fallback(p.name, "static")
				s.log.Warn("fallback served", "part", p.name, "levee_degraded", v, "cause", p.part.cause, "trace_id", traceID)
			} else {
				s.log.Warn("degraded answer passed on", "part", p.name, "levee_degraded", v, "trace_id", traceID)
			}
		}
	}
	body, err := json.Marshal(page)
	if err != nil {
		levee.WriteError(w, err, traceID)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)+1))
	_, _ = w.Write(append(body, '\n'))
}

// writeNotFound answers a product inventory does not know: a plain RFC 9457 404, not a Levee
// error code (the page is not degraded, the product does not exist), so the envelope has no
// code and no degraded field.
func writeNotFound(w http.ResponseWriter, id, traceID string) {
	levee.WriteProblem(w, levee.Problem{Type: "about:blank", Title: "Not found", Status: http.StatusNotFound,
		Detail: fmt.Sprintf("There is no product %s.", id), TraceID: traceID})
}

// call makes one dependency's GET and turns its answer into a part of the page. read checks
// and extracts a 200 body. For optional parts, anything but a good answer leaves the part
// out, degraded; for inventory it is the problem the page fails with.
func (s *Service) call(parent context.Context, d *dependency, traceID, path string, q url.Values, read func([]byte) (json.RawMessage, bool)) part {
	fail := func(code levee.Code, retryAfter time.Duration, cause string) part {
		if d.criticality == levee.Critical {
			p := levee.NewProblem(code, d.name, retryAfter, traceID)
			s.log.Warn("page failed", "dependency", d.name, "code", code.String(), "cause", cause, "trace_id", traceID)
			return part{problem: &p}
		}
		if parent.Err() != nil {
			return part{} // the page no longer needs this part (it failed, or its caller left)
		}
		return part{degraded: []string{levee.DegradedValue(levee.DegradedStatic, code)}, fallback: true, cause: cause}
	}
	if s.registry != nil && d.shedAt > 0 {
		if level := s.registry.DegradationLevel(); level >= d.shedAt {
			return fail(levee.CodeFeatureDisabled, 0, fmt.Sprintf("fleet degradation level %d", level))
		}
	}
	ctx := levee.WithCriticality(parent, d.criticality)
	if d.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.timeout)
		defer cancel()
	}
	u := *d.base
	u.Path += path
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fail(levee.CodeUpstreamUnavailable, 0, err.Error())
	}
	req.Header.Set("Accept", "application/json")
	// The transport continues the page's trace (in ctx) under a span of its own.
	resp, err := d.client.Do(req)
	if err != nil {
		code, retryAfter := codeOf(err)
		return fail(code, retryAfter, err.Error())
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return part{notFound: true} // nothing for this item: left out, not degraded
	default:
		code, retryAfter := codeOfResponse(resp)
		return fail(code, retryAfter, "status "+strconv.Itoa(resp.StatusCode))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		code, _ := codeOf(err)
		if errors.Is(err, context.DeadlineExceeded) {
			code = levee.CodeUpstreamTimeout
		}
		return fail(code, 0, "reading the answer: "+err.Error())
	}
	v, ok := read(body)
	if !ok {
		return fail(levee.CodeUpstreamUnavailable, 0, "the answer is not the JSON expected")
	}
	return part{body: v, degraded: resp.Header.Values(levee.HeaderDegraded)}
}

// codeOf returns the SPEC §7 code of a failed call and its retry-after, if known.
func codeOf(err error) (levee.Code, time.Duration) {
	var le *levee.Error
	switch {
	case errors.As(err, &le):
		return le.Code, le.RetryAfter
	case errors.Is(err, context.DeadlineExceeded):
		return levee.CodeDeadlineExceeded, 0
	}
	return levee.CodeUpstreamUnavailable, 0
}

// codeOfResponse returns the SPEC §7 code of an error response: the code of a Levee envelope
// (a sidecar's refusal, read back by levee.ProblemFromResponse), otherwise what its status
// means, with the retry-after the response gives (its Retry-After header, or the envelope's
// retry_after_s). A dependency's deadline_exceeded is upstream_timeout here (an attempt that
// ran past the deadline), and its bad_request (a request the storefront built badly)
// upstream_unavailable.
func codeOfResponse(resp *http.Response) (levee.Code, time.Duration) {
	var retryAfter time.Duration
	if p, ok := levee.ProblemFromResponse(resp); ok {
		retryAfter = p.RetryAfter()
		if le, ok := p.AsError(); ok {
			switch le.Code {
			case levee.CodeDeadlineExceeded:
				// The dependency ran out of the time we gave it while working on our call:
				// for this page, it did not answer in time.
				return levee.CodeUpstreamTimeout, retryAfter
			case levee.CodeBadRequest:
			default:
				return le.Code, retryAfter
			}
		}
	} else if v := resp.Header.Get(levee.HeaderRetryAfter); v != "" {
		if d, ok := retry.ParseRetryAfter(v, uint64(max(time.Now().Unix(), 0))); ok {
			retryAfter = d
		}
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests:
		return levee.CodeRateLimited, retryAfter
	case http.StatusGatewayTimeout:
		return levee.CodeUpstreamTimeout, retryAfter
	}
	return levee.CodeUpstreamUnavailable, retryAfter
}

func readObject(b []byte) (json.RawMessage, bool) {
	var v map[string]json.RawMessage
	if json.Unmarshal(b, &v) != nil || v == nil {
		return nil, false
	}
	return compact(b)
}

func readPrice(b []byte) (json.RawMessage, bool) {
	var p Price
	if json.Unmarshal(b, &p) != nil || p.Currency == "" {
		return nil, false
	}
	return compact(b)
}

func readItems(b []byte) (json.RawMessage, bool) {
	var v struct {
		Items []json.RawMessage `json:"items"`
	}
	if json.Unmarshal(b, &v) != nil || v.Items == nil {
		return nil, false
	}
	items, err := json.Marshal(v.Items)
	return items, err == nil
}

// compact returns b without insignificant space (json.Marshal compacts a RawMessage).
func compact(b []byte) (json.RawMessage, bool) {
	out, err := json.Marshal(json.RawMessage(b))
	return out, err == nil
}

// validID reports whether s is a product id: 1 to 64 ASCII letters, digits, '-', '_' or '.'
// (so it is safe in a URL path as it is).
func validID(s string) bool {
	if len(s) == 0 || len(s) > 64 || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
