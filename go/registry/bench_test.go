package registry

import (
	"context"
	"testing"
	"time"

	"github.com/levee-dev/levee/go"
	"github.com/levee-dev/levee/go/breaker"
)

func benchClient(b *testing.B) *Client {
	c, err := New(Config{URL: "http://127.0.0.1:9", Service: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// Record is on every guarded call's path: a key's lock and a bucket update, no allocation.
func BenchmarkRecord(b *testing.B) {
	c := benchClient(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Record("inventory", levee.Success, 3*time.Millisecond, false)
		}
	})
}

// A guarded call through a breaker that follows a connected, closed fleet breaker.
func BenchmarkAllowWithFleet(b *testing.B) {
	c := benchClient(b)
	c.streaming.Store(true)
	c.state.Store(&fleetState{breakers: map[string]fleetBreaker{"inventory": {state: breaker.Closed}}})
	br, _ := breaker.New("inventory", breaker.Config{}, breaker.WithFleet(c))
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			done, err := br.Allow(ctx)
			if err != nil {
				b.Fatal(err)
			}
			done(levee.Success)
		}
	})
}
