package storefront_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/levee-dev/levee/examples/fleet/internal/recommend"
	"github.com/levee-dev/levee/examples/fleet/internal/storefront"
	"github.com/levee-dev/levee/go"
)

// seen records the Levee headers a dependency received.
type seen struct {
	mu          sync.Mutex
	criticality []string
	timeoutMs   []string
	traceparent []string
}

func (s *seen) record(r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.criticality = append(s.criticality, r.Header.Get(levee.HeaderCriticality))
	s.timeoutMs = append(s.timeoutMs, r.Header.Get(levee.HeaderTimeoutMs))
	s.traceparent = append(s.traceparent, r.Header.Get(levee.HeaderTraceparent))
}

func (s *seen) snapshot() (criticality, timeoutMs, traceparent []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.criticality...), append([]string(nil), s.timeoutMs...), append([]string(nil), s.traceparent...)
}

// fleet is a storefront with real HTTP servers behind it: stand-ins for the inventory sidecar
// and the pricing service (each answers through a function the test may replace), and the
// real recommendations service.
type fleet struct {
	storefront *httptest.Server
	svc        *storefront.Service
	clock      *levee.ManualClock

	inventory, pricing, recommendations  *httptest.Server
	inventorySeen, pricingSeen, recsSeen seen
	inventoryCalls, pricingCalls         atomic.Int64
	inventoryAnswer, pricingAnswer       atomic.Pointer[http.HandlerFunc]
	recs                                 atomic.Pointer[recommend.Service]
	recsHung                             chan struct{}
}

func inventoryOK(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(r.URL.Path, "/inventory/items/")
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"id": %q, "name": "item %s", "served_by": "a"}`, id, id)
}

func pricingOK(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(r.URL.Path, "/prices/")
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"id":%q,"price_cents":1234,"currency":"EUR"}`, id)
}

func answering(status int, header ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"error":"failing on purpose"}`))
	}
}

func newFleet(t *testing.T, tweak func(*storefront.Config)) *fleet {
	t.Helper()
	f := &fleet{clock: levee.NewManualClock(levee.TimestampFromNanos(int64(time.Hour))), recsHung: make(chan struct{}, 8)}
	f.SetInventory(inventoryOK)
	f.SetPricing(pricingOK)
	f.inventory = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || !strings.HasPrefix(r.URL.Path, "/inventory/items/") {
			http.NotFound(w, r)
			return
		}
		f.inventoryCalls.Add(1)
		f.inventorySeen.record(r)
		(*f.inventoryAnswer.Load())(w, r)
	}))
	t.Cleanup(f.inventory.Close)
	f.pricing = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || !strings.HasPrefix(r.URL.Path, "/prices/") {
			http.NotFound(w, r)
			return
		}
		f.pricingCalls.Add(1)
		f.pricingSeen.record(r)
		(*f.pricingAnswer.Load())(w, r)
	}))
	t.Cleanup(f.pricing.Close)
	f.SetRecommendations(t, recommend.Config{})
	f.recommendations = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/recommendations" {
			f.recsSeen.record(r)
		}
		f.recs.Load().Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(f.recommendations.Close)

	cfg := storefront.Config{
		Inventory:       f.inventory.URL,
		Pricing:         f.pricing.URL,
		Recommendations: f.recommendations.URL,
		Clock:           f.clock,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	var err error
	f.svc, err = storefront.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.storefront = httptest.NewServer(f.svc.Handler())
	t.Cleanup(f.storefront.Close)
	t.Cleanup(f.svc.Chaos().Close)
	return f
}

func (f *fleet) SetInventory(h http.HandlerFunc) { f.inventoryAnswer.Store(&h) }
func (f *fleet) SetPricing(h http.HandlerFunc)   { f.pricingAnswer.Store(&h) }

// SetRecommendations replaces the recommendations service (a real one) behind its server.
func (f *fleet) SetRecommendations(t *testing.T, cfg recommend.Config) {
	t.Helper()
	cfg.Chaos.OnHang = func(*http.Request) { f.recsHung <- struct{}{} }
	svc, err := recommend.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Chaos().Close)
	f.recs.Store(svc)
}

type answer struct {
	status int
	header http.Header
	body   string
}

func do(t *testing.T, method, url string, header ...string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, string(b)}
}

// page is GET /product/{id}, decoded.
type page struct {
	answer
	ID              string
	Inventory       map[string]any
	Price           *storefront.Price
	Recommendations []recommend.Item
	Degraded        []storefront.Degraded
}

func (f *fleet) page(t *testing.T, id string) page {
	t.Helper()
	a := do(t, "GET", f.storefront.URL+"/product/"+id)
	p := page{answer: a}
	if a.status != 200 {
		t.Fatalf("GET /product/%s: %d %s", id, a.status, a.body)
	}
	if ct := a.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
	if err := json.Unmarshal([]byte(a.body), &p); err != nil {
		t.Fatalf("page body %q: %v", a.body, err)
	}
	if p.Recommendations == nil {
		t.Fatalf(`"recommendations" must be a list, even empty: %s`, a.body)
	}
	return p
}

func (p page) degradedHeader() []string { return p.header.Values(levee.HeaderDegraded) }

func TestPageCombinesTheThreeDependencies(t *testing.T) {
	f := newFleet(t, nil)
	p := f.page(t, "42")
	if p.ID != "42" || p.Inventory["id"] != "42" || p.Inventory["name"] != "item 42" || p.Inventory["served_by"] != "a" {
		t.Errorf("inventory part: %s", p.body)
	}
	if p.Price == nil || *p.Price != (storefront.Price{ID: "42", PriceCents: 1234, Currency: "EUR"}) {
		t.Errorf("price part: %s", p.body)
	}
	want := recommend.For("42")
	if len(p.Recommendations) != len(want) || p.Recommendations[0] != want[0] {
		t.Errorf("recommendations part: %s", p.body)
	}
	if h := p.degradedHeader(); len(h) != 0 || len(p.Degraded) != 0 || strings.Contains(p.body, "degraded") {
		t.Errorf("a whole page must not be marked degraded: header %q, body %s", h, p.body)
	}
}

func TestEachDependencyGetsItsCriticalityAndTheRemainingDeadline(t *testing.T) {
	f := newFleet(t, func(c *storefront.Config) {
		c.Timeout = 1500 * time.Millisecond
		c.PricingTimeout = 400 * time.Millisecond
		c.RecommendationsTimeout = 200 * time.Millisecond
	})
	f.page(t, "7")
	for _, tc := range []struct {
		name        string
		seen        *seen
		criticality string
		maxMs       int
	}{
		{"inventory", &f.inventorySeen, "critical", 1500},
		{"pricing", &f.pricingSeen, "standard", 400},
		{"recommendations", &f.recsSeen, "sheddable", 200},
	} {
		crit, timeouts, traces := tc.seen.snapshot()
		if len(crit) != 1 || crit[0] != tc.criticality {
			t.Errorf("%s: levee-criticality %q, want [%s]", tc.name, crit, tc.criticality)
		}
		if len(timeouts) != 1 {
			t.Fatalf("%s: %d calls", tc.name, len(timeouts))
		}
		ms, err := strconv.Atoi(timeouts[0])
		if err != nil || ms < 0 || ms > tc.maxMs {
			t.Errorf("%s: levee-timeout-ms %q, want a number of ms up to %d", tc.name, timeouts[0], tc.maxMs)
		}
		if parts := strings.Split(traces[0], "-"); len(parts) != 4 || len(parts[1]) != 32 {
			t.Errorf("%s: traceparent %q", tc.name, traces[0])
		}
	}
	// One trace for the whole page.
	_, _, a := f.inventorySeen.snapshot()
	_, _, b := f.pricingSeen.snapshot()
	if strings.Split(a[0], "-")[1] != strings.Split(b[0], "-")[1] {
		t.Errorf("trace ids differ: %q %q", a[0], b[0])
	}
}

func TestInboundDeadlineShortensTheCalls(t *testing.T) {
	f := newFleet(t, nil)
	a := do(t, "GET", f.storefront.URL+"/product/1", "levee-timeout-ms", "250")
	if a.status != 200 {
		t.Fatalf("%d %s", a.status, a.body)
	}
	_, timeouts, _ := f.inventorySeen.snapshot()
	if ms, err := strconv.Atoi(timeouts[0]); err != nil || ms > 250 {
		t.Fatalf("inventory got levee-timeout-ms %q, want at most the caller's 250", timeouts[0])
	}
}

func TestRecommendationsFailingDegradesThePage(t *testing.T) {
	f := newFleet(t, nil)
	if a := do(t, "POST", f.recommendations.URL+"/control/fail?status=503"); a.status != 200 {
		t.Fatalf("control: %d %s", a.status, a.body)
	}
	p := f.page(t, "1")
	if len(p.Recommendations) != 0 || !strings.Contains(p.body, `"recommendations":[]`) {
		t.Errorf("recommendations: %s", p.body)
	}
	if p.Price == nil || p.Inventory["id"] != "1" {
		t.Errorf("the other parts must be there: %s", p.body)
	}
	if h := p.degradedHeader(); len(h) != 1 || h[0] != "static; reason=upstream_unavailable" {
		t.Errorf("levee-degraded %q", h)
	}
	if len(p.Degraded) != 1 || p.Degraded[0] != (storefront.Degraded{Part: "recommendations", Value: "static; reason=upstream_unavailable"}) {
		t.Errorf("degraded list %+v", p.Degraded)
	}
	m := do(t, "GET", f.storefront.URL+"/metrics")
	if !strings.Contains(m.body, `levee_fallbacks_total{kind="static",language="go",route="recommendations",service="storefront"} 1`) {
		t.Errorf("fallback not counted:\n%s", m.body)
	}

	do(t, "POST", f.recommendations.URL+"/control/reset")
	p = f.page(t, "1")
	if len(p.Recommendations) != 3 || len(p.degradedHeader()) != 0 {
		t.Errorf("after reset: %s %q", p.body, p.degradedHeader())
	}
}

func TestRecommendationsHangingCostsOnlyTheirTimeout(t *testing.T) {
	f := newFleet(t, func(c *storefront.Config) { c.RecommendationsTimeout = 50 * time.Millisecond })
	do(t, "POST", f.recommendations.URL+"/control/hang")
	p := f.page(t, "3")
	<-f.recsHung // the call reached the service and hung there
	if len(p.Recommendations) != 0 || p.Price == nil {
		t.Errorf("page: %s", p.body)
	}
	if h := p.degradedHeader(); len(h) != 1 || h[0] != "static; reason=upstream_timeout" {
		t.Errorf("levee-degraded %q", h)
	}
}

// The recommendations service sheds sheddable calls first: with one of its two slots held by
// a hung critical call, the storefront's sheddable call is refused (bulkhead_full) and the
// page says so.
func TestShedRecommendationsDegradeThePage(t *testing.T) {
	f := newFleet(t, nil)
	f.SetRecommendations(t, recommend.Config{MaxConcurrent: 2})
	do(t, "POST", f.recommendations.URL+"/control/hang")
	held := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("GET", f.recommendations.URL+"/recommendations?item=1", nil)
		req.Header.Set("levee-criticality", "critical")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			held <- 0
			return
		}
		resp.Body.Close()
		held <- resp.StatusCode
	}()
	<-f.recsHung
	p := f.page(t, "5")
	if h := p.degradedHeader(); len(h) != 1 || h[0] != "static; reason=bulkhead_full" {
		t.Errorf("levee-degraded %q, body %s", h, p.body)
	}
	do(t, "POST", f.recommendations.URL+"/control/reset")
	if status := <-held; status != 200 {
		t.Errorf("the critical call, released: %d", status)
	}
}

func TestPricingFailingLeavesThePriceOut(t *testing.T) {
	f := newFleet(t, nil)
	f.SetPricing(answering(500))
	p := f.page(t, "1")
	if p.Price != nil || !strings.Contains(p.body, `"price":null`) || len(p.Recommendations) != 3 {
		t.Errorf("page: %s", p.body)
	}
	if h := p.degradedHeader(); len(h) != 1 || h[0] != "static; reason=upstream_unavailable" {
		t.Errorf("levee-degraded %q", h)
	}
	if f.pricingCalls.Load() != 1 {
		t.Errorf("500 is not retried by default, got %d calls", f.pricingCalls.Load())
	}
}

func TestPriceNotFoundIsNotADegradation(t *testing.T) {
	f := newFleet(t, nil)
	f.SetPricing(answering(404))
	p := f.page(t, "1")
	if p.Price != nil || len(p.degradedHeader()) != 0 {
		t.Errorf("page: %s, levee-degraded %q", p.body, p.degradedHeader())
	}
}

// Repeated pricing failures open the pricing breaker: from then on the storefront stops
// calling pricing (the breaker's clock does not move, so it stays open) and says why.
func TestPricingBreakerOpensAfterRepeatedFailures(t *testing.T) {
	// Generous timeouts: every call must reach pricing, however slow the machine.
	f := newFleet(t, func(c *storefront.Config) { c.Timeout, c.PricingTimeout = time.Minute, time.Minute })
	f.SetPricing(answering(503))
	const minimumCalls = 10 // the storefront's default breaker
	for i := 0; f.pricingCalls.Load() < minimumCalls; i++ {
		if i == minimumCalls {
			t.Fatalf("after %d pages pricing saw only %d calls", i, f.pricingCalls.Load())
		}
		p := f.page(t, "1")
		if p.Price != nil || len(p.degradedHeader()) != 1 {
			t.Fatalf("page %d: %s %q", i, p.body, p.degradedHeader())
		}
	}
	for i := 0; i < 5; i++ {
		p := f.page(t, "1")
		if h := p.degradedHeader(); len(h) != 1 || h[0] != "static; reason=circuit_open" {
			t.Fatalf("page after opening: levee-degraded %q", h)
		}
		if p.Price != nil || p.Inventory["id"] != "1" || len(p.Recommendations) != 3 {
			t.Fatalf("page after opening: %s", p.body)
		}
	}
	if got := f.pricingCalls.Load(); got != minimumCalls {
		t.Fatalf("pricing received %d calls, want %d: an open breaker sends none", got, minimumCalls)
	}
	m := do(t, "GET", f.storefront.URL+"/metrics").body
	for _, want := range []string{
		`levee_breaker_state{endpoint="pricing",language="go",service="storefront",state="open"} 1`,
		`levee_breaker_transitions_total{endpoint="pricing",from="closed",language="go",reason="failure_rate",service="storefront",to="open"} 1`,
		`levee_breaker_state{endpoint="recommendations",language="go",service="storefront",state="closed"} 1`,
		`levee_calls_total{endpoint="pricing",language="go",outcome="rejected",service="storefront"} 5`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func problem(t *testing.T, a answer) levee.Problem {
	t.Helper()
	if ct := a.header.Get("Content-Type"); ct != levee.ContentTypeProblem {
		t.Fatalf("Content-Type %q, body %s", ct, a.body)
	}
	var p levee.Problem
	if err := json.Unmarshal([]byte(a.body), &p); err != nil {
		t.Fatalf("envelope %q: %v", a.body, err)
	}
	if p.Status != a.status || p.Type != "urn:levee:error:"+p.Code || p.Title == "" || p.Detail == "" || len(p.TraceID) != 32 {
		t.Fatalf("envelope %+v (status %d)", p, a.status)
	}
	return p
}

// The sidecar's refusal (problem+json with Retry-After) becomes the storefront's: same code,
// the retry-after passed on, the dependency named.
func TestInventoryRefusalIsAnsweredAsProblemJSON(t *testing.T) {
	f := newFleet(t, nil)
	f.SetInventory(func(w http.ResponseWriter, _ *http.Request) {
		levee.WriteProblem(w, levee.NewProblem(levee.CodeCircuitOpen, "inventory", 7*time.Second, ""))
	})
	a := do(t, "GET", f.storefront.URL+"/product/1", "traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	if a.status != 503 || a.header.Get("Retry-After") != "7" {
		t.Fatalf("got %d, Retry-After %q: %s", a.status, a.header.Get("Retry-After"), a.body)
	}
	p := problem(t, a)
	if p.Code != "circuit_open" || p.RetryAfterS != 7 || p.Upstream != "inventory" || !p.Degraded ||
		p.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" || !strings.Contains(p.Detail, "inventory is failing") {
		t.Errorf("envelope %+v", p)
	}
	// Retry-After (7 s) is past the page's deadline (2 s): not retried.
	if n := f.inventoryCalls.Load(); n != 1 {
		t.Errorf("inventory received %d calls, want 1", n)
	}
}

func TestInventoryUnreachableIsUpstreamUnavailable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	f := newFleet(t, func(c *storefront.Config) { c.Inventory = closed })
	a := do(t, "GET", f.storefront.URL+"/product/1")
	if a.status != 502 {
		t.Fatalf("got %d %s", a.status, a.body)
	}
	if p := problem(t, a); p.Code != "upstream_unavailable" || p.Upstream != "inventory" || p.RetryAfterS != 0 || a.header.Get("Retry-After") != "" {
		t.Errorf("envelope %+v", p)
	}
}

func TestInventoryFailureWithoutEnvelopeIsMappedByStatus(t *testing.T) {
	f := newFleet(t, nil)
	f.SetInventory(answering(504))
	a := do(t, "GET", f.storefront.URL+"/product/1")
	if p := problem(t, a); a.status != 504 || p.Code != "upstream_timeout" {
		t.Errorf("got %d %+v", a.status, p)
	}
	f.SetInventory(answering(404))
	if a := do(t, "GET", f.storefront.URL+"/product/1"); a.status != 404 || !strings.Contains(a.body, "There is no product 1.") ||
		strings.Contains(a.body, `"code"`) || a.header.Get("Content-Type") != levee.ContentTypeProblem {
		t.Errorf("not found: %d %s", a.status, a.body)
	}
}

// A stale answer the sidecar served is passed on, marked.
func TestStaleInventoryFromTheSidecarIsPassedOn(t *testing.T) {
	f := newFleet(t, nil)
	f.SetInventory(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("levee-degraded", "stale; reason=circuit_open")
		w.Header().Set("Age", "12")
		inventoryOK(w, r)
	})
	p := f.page(t, "9")
	if p.Inventory["id"] != "9" {
		t.Errorf("page %s", p.body)
	}
	if h := p.degradedHeader(); len(h) != 1 || h[0] != "stale; reason=circuit_open" {
		t.Errorf("levee-degraded %q", h)
	}
	if len(p.Degraded) != 1 || p.Degraded[0].Part != "inventory" {
		t.Errorf("degraded list %+v", p.Degraded)
	}
}

func TestSeveralDegradedPartsEachGetAHeader(t *testing.T) {
	f := newFleet(t, nil)
	f.SetPricing(answering(502))
	do(t, "POST", f.recommendations.URL+"/control/fail?status=500")
	p := f.page(t, "1")
	h := p.degradedHeader()
	if len(h) != 2 || h[0] != "static; reason=upstream_unavailable" || h[1] != "static; reason=upstream_unavailable" {
		t.Errorf("levee-degraded %q", h)
	}
	if len(p.Degraded) != 2 || p.Degraded[0].Part != "pricing" || p.Degraded[1].Part != "recommendations" {
		t.Errorf("degraded list %+v", p.Degraded)
	}
}

func TestStorefrontControls(t *testing.T) {
	f := newFleet(t, nil)
	if a := do(t, "POST", f.storefront.URL+"/control/fail?status=503&ratio=1"); a.status != 200 {
		t.Fatalf("fail: %d %s", a.status, a.body)
	}
	if a := do(t, "GET", f.storefront.URL+"/product/1"); a.status != 503 || !strings.Contains(a.body, `"served_by":"storefront"`) {
		t.Fatalf("failing storefront: %d %s", a.status, a.body)
	}
	if n := f.inventoryCalls.Load(); n != 0 {
		t.Errorf("a failing storefront called inventory %d times", n)
	}
	if a := do(t, "GET", f.storefront.URL+"/healthz"); a.status != 200 {
		t.Errorf("healthz: %d", a.status)
	}
	if a := do(t, "POST", f.storefront.URL+"/control/reset"); a.status != 200 {
		t.Fatalf("reset: %d", a.status)
	}
	f.page(t, "1")
}

func TestBadProductID(t *testing.T) {
	f := newFleet(t, nil)
	a := do(t, "GET", f.storefront.URL+"/product/a%20b")
	if p := problem(t, a); a.status != 400 || p.Code != "bad_request" || !strings.Contains(p.Detail, `"a b"`) {
		t.Errorf("got %d %+v", a.status, p)
	}
	if f.inventoryCalls.Load() != 0 {
		t.Error("a bad id reached inventory")
	}
}

func TestConfigErrorsSayWhatToFix(t *testing.T) {
	for _, tc := range []struct {
		cfg  storefront.Config
		want string
	}{
		{storefront.Config{Pricing: "127.0.0.1:7004"}, "pricing URL"},
		{storefront.Config{Inventory: "http://h/?q=1"}, "query"},
		{storefront.Config{Timeout: -time.Second}, "timeout is -1s"},
	} {
		if _, err := storefront.New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want an error about %s", tc.cfg, err, tc.want)
		}
	}
}

// The sidecar's refusals are its policies at work, not the sidecar failing: however many
// arrive, the storefront keeps asking it, and so gets the stale answer it serves next.
func TestSidecarRefusalsDoNotOpenTheHopBreaker(t *testing.T) {
	f := newFleet(t, nil)
	f.SetInventory(func(w http.ResponseWriter, _ *http.Request) {
		levee.WriteProblem(w, levee.NewProblem(levee.CodeUpstreamUnavailable, "inventory", 0, ""))
	})
	const pages = 25
	for i := 0; i < pages; i++ {
		if a := do(t, "GET", f.storefront.URL+"/product/1"); a.status != 502 {
			t.Fatalf("page %d: %d %s", i, a.status, a.body)
		}
	}
	// Not retried by the storefront either: the sidecar has retried already.
	if n := f.inventoryCalls.Load(); n != pages {
		t.Fatalf("inventory received %d calls, want %d", n, pages)
	}
	f.SetInventory(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("levee-degraded", "stale; reason=circuit_open")
		inventoryOK(w, r)
	})
	if p := f.page(t, "1"); len(p.degradedHeader()) != 1 || p.degradedHeader()[0] != "stale; reason=circuit_open" {
		t.Fatalf("stale page: %q %s", p.degradedHeader(), p.body)
	}
}

// A sidecar that cannot be reached is what the hop breaker is for: after enough failed
// connections the storefront answers circuit_open at once, with when to retry.
func TestUnreachableSidecarOpensTheHopBreaker(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	f := newFleet(t, func(c *storefront.Config) { c.Inventory = closed })
	var last answer
	for i := 0; i < 20; i++ { // 10 failed connections open it: at most 10 pages
		last = do(t, "GET", f.storefront.URL+"/product/1")
		if p := problem(t, last); p.Code == "circuit_open" {
			break
		}
	}
	p := problem(t, last)
	if last.status != 503 || p.Code != "circuit_open" || p.Upstream != "inventory" || p.RetryAfterS < 1 || last.header.Get("Retry-After") == "" {
		t.Fatalf("after repeated connect failures: %d %+v", last.status, p)
	}
}
