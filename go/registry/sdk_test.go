package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/levee-dev/levee/go"
	"github.com/levee-dev/levee/go/breaker"
	"github.com/levee-dev/levee/go/levhttp"
	"github.com/levee-dev/levee/go/levprom"
	"github.com/prometheus/client_golang/prometheus"
)

var _ breaker.FleetView = (*Client)(nil)
var _ Gauges = (*levprom.Metrics)(nil)

// The SDK with the registry installed: breakers and levhttp.Transport follow the fleet.
func TestBreakersAndTransportFollowTheFleet(t *testing.T) {
	h := newHarness(t, nil)
	until := h.clock.Time().Add(5 * time.Second).UnixMilli()
	breakers := strings.Join([]string{
		fmt.Sprintf("%q:%s", "inventory", breakerJSON("inventory", "open", fmt.Sprintf(`"observe":false,"open_until_ms":%d`, until))),
		breakerJSONEntry("search", "closed"),
		breakerJSONEntry("probing", "half_open"),
	}, ",")
	h.connect(snapshotJSON(breakers, "", 0))

	group, err := breaker.NewGroup(breaker.Config{}, breaker.WithFleet(h.c), breaker.WithClock(h.clock))
	if err != nil {
		t.Fatal(err)
	}
	_, err = group.Get("inventory").Allow(context.Background())
	var le *levee.Error
	if !errors.As(err, &le) || le.Code != levee.CodeCircuitOpen || le.RetryAfter != 5*time.Second {
		t.Fatalf("Allow(inventory) = %v, want circuit_open for 5s", err)
	}
	if s := group.Get("inventory").EffectiveState(); s != breaker.Open {
		t.Fatalf("EffectiveState = %v", s)
	}

	var hits atomic.Int32
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = io.WriteString(w, "ok")
	}))
	defer upstream.Close()
	client := &http.Client{Transport: &levhttp.Transport{
		Breakers: group, Clock: h.clock,
		Endpoint: func(r *http.Request) string { return strings.TrimPrefix(r.URL.Path, "/") },
	}}
	get := func(key string) error {
		resp, err := client.Get(upstream.URL + "/" + key)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.Body.Close()
	}
	if err := get("inventory"); !errors.Is(err, levee.ErrCircuitOpen) {
		t.Fatalf("GET inventory = %v, want circuit_open", err)
	}
	if hits.Load() != 0 {
		t.Fatal("the upstream was called although the fleet breaker is open")
	}
	if err := get("search"); err != nil {
		t.Fatal(err)
	}
	h.set(func(f *fakeRegistry) {
		f.leaseAnswers = []string{`{"granted":true,"probe":true,"lease_id":"P1","expires_at_ms":1,"state":"half_open","retry_after_ms":null}`}
	})
	if err := get("probing"); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, "the probe's completion", h.completions); got.path != "/v1/breakers/probing/leases/P1/complete" || got.req.Outcome != levee.Success {
		t.Fatalf("completion %+v", got)
	}
	if hits.Load() != 2 {
		t.Fatalf("%d upstream calls, want 2", hits.Load())
	}
	// Every outcome is reported to the fleet.
	if err := h.c.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, e := range h.sentReports()[0].Endpoints {
		for _, b := range e.Buckets {
			got[e.Key] += b.Success
		}
	}
	if got["search"] != 1 || got["probing"] != 1 || len(got) != 2 {
		t.Fatalf("reported successes %v", got)
	}
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		m := f.GetMetric()[0]
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["language"] != "go" || labels["service"] != "checkout" {
			t.Fatalf("%s labels %v", name, labels)
		}
		return m.GetGauge().GetValue()
	}
	t.Fatalf("no %s", name)
	return 0
}

func TestMetricsThroughLevprom(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := levprom.New("checkout", reg)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, func(c *Config) { c.Metrics = m; c.StaleTTL = 5 * time.Second })
	if gauge(t, reg, levee.MetricRegistryConnected) != 0 {
		t.Fatal("connected before connecting")
	}
	s := h.connect(snapshotJSON("", "", 2))
	if gauge(t, reg, levee.MetricRegistryConnected) != 1 || gauge(t, reg, levee.MetricDegradationLevel) != 2 {
		t.Fatal("gauges do not follow the registry")
	}
	h.set(func(f *fakeRegistry) { f.watchStatus = http.StatusServiceUnavailable })
	s.close()
	eventually(t, "levee_registry_connected 0", func() bool { return gauge(t, reg, levee.MetricRegistryConnected) == 0 })
	if gauge(t, reg, levee.MetricDegradationLevel) != 2 {
		t.Fatal("the level is last-known until StaleTTL")
	}
	h.clock.Advance(5 * time.Second) // StaleTTL, and the report loop's tick
	eventually(t, "levee_degradation_level 0", func() bool { return gauge(t, reg, levee.MetricDegradationLevel) == 0 })
}
