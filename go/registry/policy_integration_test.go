package registry

import (
	"context"
	"net/http"
	"testing"

	"github.com/levee-dev/levee/go"
	"github.com/levee-dev/levee/go/breaker"
	"github.com/levee-dev/levee/go/levprom"
	"github.com/prometheus/client_golang/prometheus"
)

// transitions reads levee_breaker_transitions_total{endpoint, from, to, reason} from reg.
func transitions(t *testing.T, reg *prometheus.Registry, endpoint, from, to, reason string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"endpoint": endpoint, "from": from, "to": to, "reason": reason}
	for _, f := range families {
		if f.GetName() != levee.MetricBreakerTransitionsTotal {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if v, ok := want[l.GetName()]; ok && v != l.GetValue() {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func TestIntegrationFleetTransitionsAreCountedWithReasonFleet(t *testing.T) {
	reg := startRegistry(t, 0)
	c := newGoClient(t, reg.url, nil)
	promReg := prometheus.NewRegistry()
	metrics, err := levprom.New("checkout", promReg)
	if err != nil {
		t.Fatal(err)
	}
	group, err := breaker.NewGroup(breaker.Config{}, breaker.WithFleet(c), breaker.OnTransition(metrics.BreakerTransitionFunc()))
	if err != nil {
		t.Fatal(err)
	}
	group.Get("search") // the group follows the keys it has breakers for

	reg.operator(http.MethodPut, "/v1/breakers/search/override", map[string]string{"override": "forced_open"})
	eventually(t, "closed → forced_open (fleet) is counted", func() bool {
		return transitions(t, promReg, "search", "closed", "forced_open", "fleet") == 1
	})
	if s := group.Get("search").State(); s != breaker.Closed {
		t.Fatalf("the local breaker moved to %v: a fleet transition is of the effective state only", s)
	}
	reg.operator(http.MethodDelete, "/v1/breakers/search/override", nil)
	eventually(t, "forced_open → closed (fleet) is counted", func() bool {
		return transitions(t, promReg, "search", "forced_open", "closed", "fleet") == 1
	})
	// One event, one count: later syncs (every ReportInterval) add nothing.
	reg.operator(http.MethodPut, "/v1/degradation", map[string]any{"level": 1})
	eventually(t, "a later event is seen", func() bool { return c.DegradationLevel() == 1 })
	if n := transitions(t, promReg, "search", "closed", "forced_open", "fleet"); n != 1 {
		t.Fatalf("closed → forced_open counted %v times", n)
	}
}

func TestIntegrationDistributedPoliciesReplaceTheLocalConfig(t *testing.T) {
	reg := startRegistry(t, 0)
	c := newGoClient(t, reg.url, nil)
	group, err := breaker.NewGroup(breaker.Config{}, breaker.WithFleet(c))
	if err != nil {
		t.Fatal(err)
	}
	if got := group.Get("inventory").Config().MinimumCalls; got != 20 {
		t.Fatalf("before any policy: minimum_calls %d, want the SPEC default 20", got)
	}

	reg.operator(http.MethodPut, "/v1/policies/inventory", map[string]any{"minimum_calls": 2, "open": map[string]any{"wait": "1m", "max_wait": "5m"}})
	eventually(t, "the policy replaces the local config", func() bool {
		return group.PolicyVersion("inventory") >= 1 && group.Get("inventory").Config().MinimumCalls == 2
	})
	// The distributed numbers protect: two failures now open the local breaker.
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		done, err := group.Get("inventory").Allow(ctx)
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		done(levee.Failure)
	}
	if s := group.Get("inventory").State(); s != breaker.Open {
		t.Fatalf("after 2 failures under minimum_calls 2: %v", s)
	}

	// A new version replaces the config again and keeps the breaker open.
	v1 := group.PolicyVersion("inventory")
	reg.operator(http.MethodPut, "/v1/policies/inventory", map[string]any{"minimum_calls": 3, "open": map[string]any{"wait": "1m", "max_wait": "5m"}})
	eventually(t, "the next version is applied", func() bool { return group.PolicyVersion("inventory") > v1 })
	b := group.Get("inventory")
	if b.Config().MinimumCalls != 3 || b.State() != breaker.Open {
		t.Fatalf("after the new version: minimum_calls %d, state %v (want 3, open)", b.Config().MinimumCalls, b.State())
	}

	// A key whose breaker is made after its policy arrived starts with the policy.
	reg.operator(http.MethodPut, "/v1/policies/pricing", map[string]any{"minimum_calls": 7})
	eventually(t, "the pricing policy reaches Go", func() bool { _, v, ok := c.Policy("pricing"); return ok && v >= 1 })
	if got := group.Get("pricing").Config().MinimumCalls; got != 7 {
		t.Fatalf("a new breaker runs minimum_calls %d, want the policy's 7", got)
	}
	// A key without a policy keeps the group's config.
	if got := group.Get("search").Config().MinimumCalls; got != 20 {
		t.Fatalf("a key without a policy runs minimum_calls %d", got)
	}
}
