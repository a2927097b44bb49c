// Package levprom exports Levee's metrics to Prometheus with the SPEC §11 names. Every series
// carries the labels service and language="go" besides those SPEC lists, so dashboards built
// for the Rust proxy read Go services unchanged.
//
//	m, err := levprom.New("checkout", prometheus.DefaultRegisterer)
//	breakers, _ := breaker.NewGroup(breaker.Config{}, breaker.OnTransition(m.BreakerTransitionFunc()))
//	client := &http.Client{Transport: &levhttp.Transport{Breakers: breakers, Observer: m}}
package levprom

import (
	"time"

	"github.com/levee-dev/levee/go"
	"github.com/levee-dev/levee/go/breaker"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics holds the SPEC §11 collectors for one service and implements levee.Observer.
type Metrics struct {
	calls              *prometheus.CounterVec
	duration           *prometheus.HistogramVec
	breakerState       *prometheus.GaugeVec
	breakerTransitions *prometheus.CounterVec
	bulkheadInFlight   *prometheus.GaugeVec
	bulkheadQueueDepth *prometheus.GaugeVec
	bulkheadRejections *prometheus.CounterVec
	retries            *prometheus.CounterVec
	budgetExhausted    *prometheus.CounterVec
	fallbacks          *prometheus.CounterVec
	rateLimited        *prometheus.CounterVec
	degradationLevel   prometheus.Gauge
	registryConnected  prometheus.Gauge
	collectors         []prometheus.Collector
}

var _ levee.Observer = (*Metrics)(nil)

// New creates the collectors for service and registers them with reg (nil: not registered;
// use Collectors to register them yourself).
func New(service string, reg prometheus.Registerer) (*Metrics, error) {
	constLabels := prometheus.Labels{"service": service, "language": levee.Language}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: constLabels}, labels)
	}
	gauge := func(name, help string, labels ...string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: constLabels}, labels)
	}
	m := &Metrics{
		calls: counter(levee.MetricCallsTotal, "Guarded calls by endpoint key and outcome.", "endpoint", "outcome"),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: levee.MetricCallDurationSeconds, Help: "Duration of guarded calls.",
			ConstLabels: constLabels, Buckets: prometheus.DefBuckets,
		}, []string{"endpoint", "outcome"}),
		breakerState:       gauge(levee.MetricBreakerState, "1 for the breaker's current state.", "endpoint", "state"),
		breakerTransitions: counter(levee.MetricBreakerTransitionsTotal, "Breaker transitions.", "endpoint", "from", "to", "reason"),
		bulkheadInFlight:   gauge(levee.MetricBulkheadInFlight, "Calls holding a bulkhead slot.", "partition"),
		bulkheadQueueDepth: gauge(levee.MetricBulkheadQueueDepth, "Calls waiting for a bulkhead slot.", "partition"),
		bulkheadRejections: counter(levee.MetricBulkheadRejectionsTotal, "Calls a bulkhead refused.", "partition", "criticality", "reason"),
		retries:            counter(levee.MetricRetriesTotal, "Retries by endpoint key and what was retried.", "endpoint", "reason"),
		budgetExhausted:    counter(levee.MetricRetryBudgetExhaustedTotal, "Retries refused by the retry budget.", "endpoint"),
		fallbacks:          counter(levee.MetricFallbacksTotal, "Fallbacks served.", "route", "kind"),
		rateLimited:        counter(levee.MetricRateLimitedTotal, "Requests refused by a rate limit.", "route"),
		degradationLevel: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: levee.MetricDegradationLevel, Help: "The fleet degradation level (0-3).", ConstLabels: constLabels,
		}),
		registryConnected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: levee.MetricRegistryConnected, Help: "1 while the registry is reachable.", ConstLabels: constLabels,
		}),
	}
	m.collectors = []prometheus.Collector{m.calls, m.duration, m.breakerState, m.breakerTransitions,
		m.bulkheadInFlight, m.bulkheadQueueDepth, m.bulkheadRejections, m.retries, m.budgetExhausted,
		m.fallbacks, m.rateLimited, m.degradationLevel, m.registryConnected}
	if reg != nil {
		for _, c := range m.collectors {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// Collectors returns every collector, for registering them yourself.
func (m *Metrics) Collectors() []prometheus.Collector { return m.collectors }

// Call counts a guarded call and observes its duration.
func (m *Metrics) Call(endpoint string, outcome levee.Outcome, d time.Duration) {
	m.calls.WithLabelValues(endpoint, outcome.String()).Inc()
	m.duration.WithLabelValues(endpoint, outcome.String()).Observe(d.Seconds())
}

// BreakerTransition counts a transition and moves levee_breaker_state to the new state.
func (m *Metrics) BreakerTransition(endpoint, from, to, reason string) {
	m.breakerTransitions.WithLabelValues(endpoint, from, to, reason).Inc()
	m.SetBreakerState(endpoint, to)
}

// SetBreakerState sets levee_breaker_state to 1 for state and 0 for every other state.
func (m *Metrics) SetBreakerState(endpoint, state string) {
	for _, s := range breaker.States {
		v := 0.0
		if s.String() == state {
			v = 1
		}
		m.breakerState.WithLabelValues(endpoint, s.String()).Set(v)
	}
}

// BreakerTransitionFunc returns a listener for breaker.OnTransition.
func (m *Metrics) BreakerTransitionFunc() func(breaker.Transition) {
	return func(t breaker.Transition) {
		m.BreakerTransition(t.Key, t.From.String(), t.To.String(), t.Reason.String())
	}
}

// BulkheadRejected counts a bulkhead rejection.
func (m *Metrics) BulkheadRejected(partition string, class levee.Criticality, reason string) {
	m.bulkheadRejections.WithLabelValues(partition, class.String(), reason).Inc()
}

// BulkheadLoad sets the in-flight and queue-depth gauges.
func (m *Metrics) BulkheadLoad(partition string, inFlight, queueDepth int) {
	m.bulkheadInFlight.WithLabelValues(partition).Set(float64(inFlight))
	m.bulkheadQueueDepth.WithLabelValues(partition).Set(float64(queueDepth))
}

// Retry counts a retry.
func (m *Metrics) Retry(endpoint, reason string) { m.retries.WithLabelValues(endpoint, reason).Inc() }

// RetryBudgetExhausted counts a retry the budget refused.
func (m *Metrics) RetryBudgetExhausted(endpoint string) {
	m.budgetExhausted.WithLabelValues(endpoint).Inc()
}

// Fallback counts a fallback served.
func (m *Metrics) Fallback(route, kind string) { m.fallbacks.WithLabelValues(route, kind).Inc() }

// RateLimited counts a request refused by a rate limit.
func (m *Metrics) RateLimited(route string) { m.rateLimited.WithLabelValues(route).Inc() }

// SetDegradationLevel sets levee_degradation_level.
func (m *Metrics) SetDegradationLevel(level int) { m.degradationLevel.Set(float64(level)) }

// SetRegistryConnected sets levee_registry_connected to 1 or 0.
func (m *Metrics) SetRegistryConnected(connected bool) {
	v := 0.0
	if connected {
		v = 1
	}
	m.registryConnected.Set(v)
}
