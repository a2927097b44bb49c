package registry_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/levee-dev/levee/go"
	"github.com/levee-dev/levee/go/breaker"
	"github.com/levee-dev/levee/go/levhttp"
	"github.com/levee-dev/levee/go/levprom"
	"github.com/levee-dev/levee/go/registry"
	"github.com/prometheus/client_golang/prometheus"
)

// A Go service in the fleet: its breakers follow the fleet's, every outcome is reported, and
// toggles and the degradation level come from the registry. (Compiled, not run: it needs a
// registry.)
func Example() {
	metrics, err := levprom.New("checkout", prometheus.DefaultRegisterer)
	if err != nil {
		log.Fatal(err)
	}
	reg, err := registry.New(registry.Config{
		URL:     "http://registry.internal:9911",
		Token:   os.Getenv("LEVEE_REGISTRY_TOKEN"), // the reporter token
		Service: "checkout",
		Metrics: metrics, // levee_registry_connected, levee_degradation_level
	})
	if err != nil {
		log.Fatal(err) // only a config that cannot work; an unreachable registry is no error
	}
	ctx := context.Background()
	reg.Start(ctx)
	defer reg.Close()

	// Effective state = the more severe of local and fleet; a fleet-open endpoint is refused
	// with levee.ErrCircuitOpen before any upstream work.
	breakers, _ := breaker.NewGroup(breaker.Config{}, breaker.WithFleet(reg),
		breaker.OnTransition(metrics.BreakerTransitionFunc()))
	client := &http.Client{Transport: &levhttp.Transport{Breakers: breakers, Observer: metrics}}
	_ = client

	// Toggles: the same users land on the same side in Go and Rust.
	if reg.Enabled(ctx, "new-checkout", "user-42") {
		// ... the new flow
	}
	// SPEC §10: shed optional work as the fleet degrades.
	if reg.DegradationLevel() >= 2 {
		// ... skip recommendations
	}
}

// A breaker of your own (not levhttp) following the fleet by hand: ask for a probe lease
// while the fleet is probing, and report every outcome.
func ExampleClient_AcquireLease() {
	reg, _ := registry.New(registry.Config{URL: "http://registry.internal:9911", Service: "checkout"})
	ctx := context.Background()
	call := func() error { return nil }

	lease, err := reg.AcquireLease(ctx, "inventory")
	if errors.Is(err, levee.ErrCircuitOpen) {
		return // the fleet is probing inventory and every probe slot is taken
	}
	start := time.Now()
	callErr := call()
	lease.Complete(levee.OutcomeOf(callErr)) // a no-op unless lease.Probe()
	reg.Record("inventory", levee.OutcomeOf(callErr), time.Since(start), time.Since(start) >= 5*time.Second)
}

func ExampleToggleBucket() {
	// A 50 % toggle is on for buckets 0–49: user-42 is just out for "new-checkout".
	fmt.Println(registry.ToggleBucket("new-checkout", "user-42"))
	// Output: 50
}
