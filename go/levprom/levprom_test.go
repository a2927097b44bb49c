package levprom_test

import (
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/levee-dev/levee/go"
	"github.com/levee-dev/levee/go/levprom"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMetricsUseTheSpecNamesAndLabels(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := levprom.New("checkout", reg)
	if err != nil {
		t.Fatal(err)
	}
	m.Call("inventory", levee.Failure, 30*time.Millisecond)
	m.BreakerTransition("inventory", "closed", "open", "failure_rate")
	m.BulkheadLoad("inventory", 3, 1)
	m.BulkheadRejected("inventory", levee.Sheddable, "full")
	m.Retry("inventory", "503")
	m.RetryBudgetExhausted("inventory")
	m.Fallback("/recommendations", "static")
	m.RateLimited("/search")
	m.SetDegradationLevel(2)
	m.SetRegistryConnected(true)

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range families {
		names = append(names, f.GetName())
		for _, metric := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range metric.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["service"] != "checkout" || labels["language"] != "go" {
				t.Errorf("%s: labels %v", f.GetName(), labels)
			}
		}
	}
	want := append([]string(nil), levee.MetricNames[:]...)
	sort.Strings(want)
	sort.Strings(names)
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Errorf("names %v\nwant %v", names, want)
	}
	expected := `
# HELP levee_breaker_state 1 for the breaker's current state.
# TYPE levee_breaker_state gauge
levee_breaker_state{endpoint="inventory",language="go",service="checkout",state="closed"} 0
levee_breaker_state{endpoint="inventory",language="go",service="checkout",state="disabled"} 0
levee_breaker_state{endpoint="inventory",language="go",service="checkout",state="forced_open"} 0
levee_breaker_state{endpoint="inventory",language="go",service="checkout",state="half_open"} 0
levee_breaker_state{endpoint="inventory",language="go",service="checkout",state="open"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(expected), "levee_breaker_state"); err != nil {
		t.Error(err)
	}
}
