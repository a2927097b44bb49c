// Package bench measures the overhead of a guarded call in Levee's Go SDK beside
// sony/gobreaker and failsafe-go, in the same `go test -bench` run. It is a module of its
// own so that the SDK (github.com/levee-dev/levee/go) never depends on its peers.
//
//	cd bench/go && go test -run '^$' -bench . -benchmem -count 5
//
// Every peer is configured like the Levee policy it stands beside: a window of 10 (calls,
// or seconds in 1 s buckets), a 50 % failure-rate threshold evaluated from 10 calls, 5
// half-open probes, a 5 s open wait; a bulkhead of 1000 concurrent calls.
// ../go.sh runs the benchmarks and prints the ratios; docs/benchmarks.md holds the figures.
package bench
