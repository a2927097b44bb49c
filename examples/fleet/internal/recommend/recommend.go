// Package recommend is the fleet's recommendations service: a sheddable dependency of the
// storefront. It answers GET /recommendations?item=ID with {"items": [...]}, and protects
// itself the way a Levee-guarded Go service does:
//
//   - levhttp.Handler reads levee-timeout-ms (the caller's remaining time becomes the request
//     deadline, capped by Config.Timeout) and levee-criticality;
//   - levhttp.ServerOptions.Bulkhead bounds concurrent requests and sheds by criticality
//     (SPEC §3): sheddable requests may fill half of it, standard ones 80%, critical ones all
//     of it, so under load the storefront's sheddable calls are refused first, with 503
//     bulkhead_full problem+json and Retry-After;
//   - chaos controls (/control/*) make it fail, slow down or hang on demand.
//
// GET /healthz and GET /metrics (Prometheus, service="recommendations") always answer.
package recommend

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/http"
	"strconv"
	"time"

	"github.com/levee-dev/levee/examples/fleet/internal/chaos"
	"github.com/levee-dev/levee/go"
	"github.com/levee-dev/levee/go/bulkhead"
	"github.com/levee-dev/levee/go/levhttp"
	"github.com/levee-dev/levee/go/levprom"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ServiceName names the service in metrics and error envelopes.
const ServiceName = "recommendations"

// Defaults of Config.
const (
	DefaultMaxConcurrent = 16
	DefaultTimeout       = time.Second
)

// Config configures the service. The zero value is the default service.
type Config struct {
	// MaxConcurrent bounds requests in flight (the bulkhead); 0 = DefaultMaxConcurrent.
	// Sheddable requests may fill half of it.
	MaxConcurrent int
	// Timeout caps each request's deadline; 0 = DefaultTimeout.
	Timeout time.Duration
	// Chaos configures the control endpoints (Service is filled in).
	Chaos chaos.Config
}

// Service is a recommendations service, ready to serve.
type Service struct {
	handler http.Handler
	chaos   *chaos.Chaos
}

// New builds the service; a config with impossible values is an error saying which and how
// to fix it.
func New(cfg Config) (*Service, error) {
	if cfg.MaxConcurrent == 0 {
		cfg.MaxConcurrent = DefaultMaxConcurrent
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("recommendations: timeout is %s: use a positive duration such as 1s", cfg.Timeout)
	}
	reg := prometheus.NewRegistry()
	metrics, err := levprom.New(ServiceName, reg)
	if err != nil {
		return nil, fmt.Errorf("recommendations: metrics: %w", err)
	}
	pool, err := bulkhead.New(ServiceName, bulkhead.Config{MaxConcurrent: cfg.MaxConcurrent})
	if err != nil {
		return nil, fmt.Errorf("recommendations: bulkhead: %w", err)
	}
	cfg.Chaos.Service = ServiceName
	ch := chaos.New(cfg.Chaos)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.Handle("/control/", ch.Controls())
	mux.Handle("GET /recommendations", levhttp.Handler(ch.Wrap(http.HandlerFunc(recommendations)),
		levhttp.ServerOptions{Service: ServiceName, Timeout: cfg.Timeout, Bulkhead: pool, Observer: metrics}))
	return &Service{handler: mux, chaos: ch}, nil
}

// Handler returns the service's routes.
func (s *Service) Handler() http.Handler { return s.handler }

// Chaos returns the service's chaos controls (Close it on shutdown to release hung calls).
func (s *Service) Chaos() *chaos.Chaos { return s.chaos }

// Item is one recommendation.
type Item struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// For returns the recommendations for item: three other items, the same every time.
func For(item string) []Item {
	h := fnv.New32a()
	_, _ = h.Write([]byte(item))
	seed := h.Sum32()
	reasons := [...]string{"bought together", "viewed together", "similar"}
	items := make([]Item, 0, len(reasons))
	for i, reason := range reasons {
		id := strconv.FormatUint(uint64((seed+uint32(i)*7919)%1000+1), 10)
		if id == item {
			id = strconv.FormatUint(uint64((seed+uint32(i)*7919)%1000+1001), 10)
		}
		items = append(items, Item{ID: id, Name: "item " + id, Reason: reason})
	}
	return items
}

// validID reports whether s is an item id: 1 to 64 ASCII letters, digits, '-', '_' or '.'.
func validID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
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

func recommendations(w http.ResponseWriter, r *http.Request) {
	item := r.URL.Query().Get("item")
	if !validID(item) {
		p := levee.NewProblem(levee.CodeBadRequest, ServiceName, 0, levhttp.TraceIDFrom(r.Context()))
		p.Detail = fmt.Sprintf("item is %q: ask for /recommendations?item=ID, where ID is 1 to 64 letters, digits, '-', '_' or '.'", item)
		levee.WriteProblem(w, p)
		return
	}
	body, err := json.Marshal(map[string][]Item{"items": For(item)})
	if err != nil {
		levee.WriteError(w, err, levhttp.TraceIDFrom(r.Context()))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(body, '\n'))
}
