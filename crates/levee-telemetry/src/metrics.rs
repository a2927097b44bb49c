//! The SPEC §11 metrics, under their exact names and labels, in one registry.
//!
//! Every series carries `service` (the config's `service`) and `language="rust"` besides the
//! labels SPEC lists, so one dashboard reads the Rust proxy and Go services alike. Both are
//! registry-wide constant labels: they cost nothing per series or per call.
//!
//! # Hot path
//!
//! Looking a series up by label values hashes the labels under a lock. The recording methods on
//! [`Metrics`] avoid allocating after a key's first use (a per-key handle is cached in a map
//! looked up by `&str`), but the cheapest path is to hold a handle:
//! [`Metrics::endpoint`], [`Metrics::partition`] and [`Metrics::route`] return an `Arc` whose
//! series are resolved once, lazily, on first use; recording through it is an atomic add (and
//! the histogram's short lock), with no lookup and no allocation. The proxy should create the
//! handles when it builds its routes and upstreams, and keep them beside the policies they
//! measure.
//!
//! # Decisions where SPEC is silent
//!
//! - Latency buckets are [`LATENCY_BUCKETS`], the Prometheus default buckets (5 ms to 10 s),
//!   because the Go SDK (`levprom`) uses `prometheus.DefBuckets`: a histogram can only be
//!   aggregated across services (`sum by (le)`) when every service uses the same bounds. Finer
//!   buckets must change in both languages at once.
//! - `levee_retries_total{reason}` is what was retried: the attempt's result in `retry_on`
//!   words (`503`, `connect_failure`, `reset`, `refused_stream`, `timeout`), as in Go.
//! - `levee_fallbacks_total{kind}` is `stale` or `static`, the `levee-degraded` kinds.
//! - A breaker's transition also moves `levee_breaker_state` to the new state, so the gauge
//!   can never disagree with the last transition counted.
//! - Series are never removed: their number is bounded by the config (endpoint keys, routes,
//!   partitions), and a series that disappears breaks `rate()` over a reload.
//! - The text is OpenMetrics 1.0 ([`CONTENT_TYPE`]), which Prometheus scrapes natively;
//!   counters are registered without their `_total` suffix, which the format adds back.

use levee_core::breaker::{State, Transition};
use levee_core::bulkhead::RejectReason;
use levee_core::names::{metric, LANGUAGE};
use levee_core::outcome::AttemptResult;
use levee_core::{Criticality, Outcome};
use levee_http::DegradedKind;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use crate::transitions::TransitionLog;

/// The `content-type` of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds, in seconds, of `levee_call_duration_seconds` (see the module decisions).
pub const LATENCY_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The registry name of a counter: the SPEC name less the `_total` the format appends.
fn counter_name(name: &'static str) -> &'static str {
    name.strip_suffix("_total").unwrap_or(name)
}

fn new_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointOutcome {
    endpoint: Arc<str>,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointState {
    endpoint: Arc<str>,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransitionLabels {
    endpoint: Arc<str>,
    from: &'static str,
    to: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabels {
    partition: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectionLabels {
    partition: Arc<str>,
    criticality: &'static str,
    reason: &'static str,
}

/// An attempt result as a label value, written without allocating.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
struct RetryReason(AttemptResult);

impl EncodeLabelValue for RetryReason {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        match self.0 {
            AttemptResult::Status(code) => write!(encoder, "{code}"),
            AttemptResult::ConnectFailure => encoder.write_str("connect_failure"),
            AttemptResult::Reset => encoder.write_str("reset"),
            AttemptResult::RefusedStream => encoder.write_str("refused_stream"),
            AttemptResult::Timeout => encoder.write_str("timeout"),
            AttemptResult::Cancelled => encoder.write_str("cancelled"),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RetryLabels {
    endpoint: Arc<str>,
    reason: RetryReason,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FallbackLabels {
    route: Arc<str>,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FaultLabels {
    route: Arc<str>,
    kind: &'static str,
}

/// Faults injected into attempts, by route and kind (`delay`, `abort`, `reset`, `hang`).
/// Not a SPEC §11 metric: drills count what they injected with it.
pub const FAULTS_INJECTED_TOTAL: &str = "levee_faults_injected_total";

/// The metric families, shared by [`Metrics`] and every handle (each is an `Arc` inside).
#[derive(Clone)]
struct Families {
    calls: Family<EndpointOutcome, Counter>,
    duration: Family<EndpointOutcome, Histogram, fn() -> Histogram>,
    breaker_state: Family<EndpointState, Gauge>,
    transitions: Family<TransitionLabels, Counter>,
    in_flight: Family<PartitionLabels, Gauge>,
    queue_depth: Family<PartitionLabels, Gauge>,
    rejections: Family<RejectionLabels, Counter>,
    retries: Family<RetryLabels, Counter>,
    budget_exhausted: Family<EndpointLabels, Counter>,
    fallbacks: Family<FallbackLabels, Counter>,
    rate_limited: Family<RouteLabels, Counter>,
    faults_injected: Family<FaultLabels, Counter>,
}

/// Handles by key, looked up by `&str` without allocating.
struct HandleCache<T>(RwLock<HashMap<Arc<str>, Arc<T>>>);

impl<T> HandleCache<T> {
    fn new() -> Self {
        HandleCache(RwLock::new(HashMap::new()))
    }

    fn get_or_create(&self, key: &str, create: impl FnOnce(Arc<str>) -> T) -> Arc<T> {
        // A poisoned lock only means a panic elsewhere; the map itself is always consistent.
        if let Some(found) = self.0.read().unwrap_or_else(|p| p.into_inner()).get(key) {
            return Arc::clone(found);
        }
        let mut map = self.0.write().unwrap_or_else(|p| p.into_inner());
        Arc::clone(
            map.entry(Arc::from(key))
                .or_insert_with_key(|k| Arc::new(create(Arc::clone(k)))),
        )
    }
}

/// Every SPEC §11 metric of one Levee instance. `Send + Sync`: share it in an `Arc`.
pub struct Metrics {
    registry: Registry,
    families: Families,
    degradation_level: Gauge,
    registry_connected: Gauge,
    endpoints: HandleCache<EndpointMetrics>,
    partitions: HandleCache<PartitionMetrics>,
    routes: HandleCache<RouteMetrics>,
    /// Recent breaker transitions, for the admin dashboard (not a metric: see
    /// [`TransitionLog`]).
    transitions: TransitionLog,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// The metrics of `service` (the `service` label), every family registered and empty.
    pub fn new(service: &str) -> Metrics {
        let mut registry = Registry::with_labels(
            [
                (Cow::Borrowed("service"), Cow::Owned(service.to_owned())),
                (Cow::Borrowed("language"), Cow::Borrowed(LANGUAGE)),
            ]
            .into_iter(),
        );
        let families = Families {
            calls: Family::default(),
            duration: Family::new_with_constructor(new_histogram as fn() -> Histogram),
            breaker_state: Family::default(),
            transitions: Family::default(),
            in_flight: Family::default(),
            queue_depth: Family::default(),
            rejections: Family::default(),
            retries: Family::default(),
            budget_exhausted: Family::default(),
            fallbacks: Family::default(),
            rate_limited: Family::default(),
            faults_injected: Family::default(),
        };
        let degradation_level = Gauge::default();
        let registry_connected = Gauge::default();
        let f = &families;
        registry.register(
            counter_name(metric::CALLS_TOTAL),
            "Guarded calls by endpoint key and outcome",
            f.calls.clone(),
        );
        registry.register(
            metric::CALL_DURATION_SECONDS,
            "Duration of guarded calls",
            f.duration.clone(),
        );
        registry.register(
            metric::BREAKER_STATE,
            "1 for the breaker's current state, 0 for the others",
            f.breaker_state.clone(),
        );
        registry.register(
            counter_name(metric::BREAKER_TRANSITIONS_TOTAL),
            "Breaker transitions",
            f.transitions.clone(),
        );
        registry.register(
            metric::BULKHEAD_IN_FLIGHT,
            "Calls holding a bulkhead slot",
            f.in_flight.clone(),
        );
        registry.register(
            metric::BULKHEAD_QUEUE_DEPTH,
            "Calls waiting for a bulkhead slot",
            f.queue_depth.clone(),
        );
        registry.register(
            counter_name(metric::BULKHEAD_REJECTIONS_TOTAL),
            "Calls a bulkhead refused",
            f.rejections.clone(),
        );
        registry.register(
            counter_name(metric::RETRIES_TOTAL),
            "Retries by endpoint key and what was retried",
            f.retries.clone(),
        );
        registry.register(
            counter_name(metric::RETRY_BUDGET_EXHAUSTED_TOTAL),
            "Retries refused by the retry budget",
            f.budget_exhausted.clone(),
        );
        registry.register(
            counter_name(metric::FALLBACKS_TOTAL),
            "Fallbacks served",
            f.fallbacks.clone(),
        );
        registry.register(
            counter_name(metric::RATE_LIMITED_TOTAL),
            "Requests refused by a rate limit",
            f.rate_limited.clone(),
        );
        registry.register(
            counter_name(FAULTS_INJECTED_TOTAL),
            "Faults injected into attempts, by route and kind",
            f.faults_injected.clone(),
        );
        registry.register(
            metric::DEGRADATION_LEVEL,
            "The fleet degradation level (0-3)",
            degradation_level.clone(),
        );
        registry.register(
            metric::REGISTRY_CONNECTED,
            "1 while the registry is reachable",
            registry_connected.clone(),
        );
        Metrics {
            registry,
            families,
            degradation_level,
            registry_connected,
            endpoints: HandleCache::new(),
            partitions: HandleCache::new(),
            routes: HandleCache::new(),
            transitions: TransitionLog::default(),
        }
    }

    /// The registry, to add process or build-info metrics before the `Metrics` is shared.
    /// Metrics added here carry `service` and `language` too.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// The handle for endpoint key `key` (created on first use, then shared).
    pub fn endpoint(&self, key: &str) -> Arc<EndpointMetrics> {
        self.endpoints.get_or_create(key, |key| EndpointMetrics {
            key,
            families: self.families.clone(),
            calls: Default::default(),
            states: OnceLock::new(),
        })
    }

    /// The handle for bulkhead partition `name`.
    pub fn partition(&self, name: &str) -> Arc<PartitionMetrics> {
        self.partitions.get_or_create(name, |name| {
            let labels = PartitionLabels {
                partition: Arc::clone(&name),
            };
            PartitionMetrics {
                in_flight: self.families.in_flight.get_or_create_owned(&labels),
                queue_depth: self.families.queue_depth.get_or_create_owned(&labels),
                name,
                families: self.families.clone(),
                rejections: Default::default(),
            }
        })
    }

    /// The handle for route `name`.
    pub fn route(&self, name: &str) -> Arc<RouteMetrics> {
        self.routes.get_or_create(name, |name| RouteMetrics {
            name,
            families: self.families.clone(),
            fallbacks: Default::default(),
            rate_limited: OnceLock::new(),
        })
    }

    /// Counts a guarded call to `endpoint` and observes its duration.
    pub fn call(&self, endpoint: &str, outcome: Outcome, duration: Duration) {
        self.endpoint(endpoint).call(outcome, duration);
    }

    /// Sets `levee_breaker_state` of `endpoint`: 1 for `state`, 0 for every other state.
    pub fn breaker_state(&self, endpoint: &str, state: State) {
        self.endpoint(endpoint).breaker_state(state);
    }

    /// Counts a breaker transition and moves the state gauge to its `to` state.
    pub fn breaker_transition(&self, transition: &Transition) {
        self.endpoint(&transition.key)
            .breaker_transition(transition);
        self.transitions.record(transition);
    }

    /// The recent breaker transitions counted through
    /// [`breaker_transition`](Self::breaker_transition), for the admin dashboard's feed.
    pub fn transitions(&self) -> &TransitionLog {
        &self.transitions
    }

    /// Sets the in-flight and queue-depth gauges of a bulkhead partition.
    pub fn bulkhead_gauges(&self, partition: &str, in_flight: u32, queue_depth: usize) {
        self.partition(partition).gauges(in_flight, queue_depth);
    }

    /// Counts a call a bulkhead refused.
    pub fn bulkhead_rejection(
        &self,
        partition: &str,
        criticality: Criticality,
        reason: RejectReason,
    ) {
        self.partition(partition).rejection(criticality, reason);
    }

    /// Counts a retry of a call to `endpoint`; `reason` is what was retried.
    pub fn retry(&self, endpoint: &str, reason: AttemptResult) {
        self.endpoint(endpoint).retry(reason);
    }

    /// Counts a retry the retry budget refused.
    pub fn retry_budget_exhausted(&self, endpoint: &str) {
        self.endpoint(endpoint).retry_budget_exhausted();
    }

    /// Counts a fallback served for `route`.
    pub fn fallback(&self, route: &str, kind: DegradedKind) {
        self.route(route).fallback(kind);
    }

    /// Counts a request refused by `route`'s rate limit.
    pub fn rate_limited(&self, route: &str) {
        self.route(route).rate_limited();
    }

    /// Counts a fault of `kind` (`delay`, `abort`, `reset`, `hang`) injected into an attempt
    /// of `route`. Faults are rare drill traffic, so the series is looked up per call.
    pub fn fault_injected(&self, route: &str, kind: &'static str) {
        self.families
            .faults_injected
            .get_or_create(&FaultLabels {
                route: Arc::from(route),
                kind,
            })
            .inc();
    }

    /// Sets `levee_degradation_level` (0 normal … 3 critical traffic only).
    pub fn degradation_level(&self, level: u8) {
        self.degradation_level.set(i64::from(level));
    }

    /// Sets `levee_registry_connected` to 1 or 0.
    pub fn registry_connected(&self, connected: bool) {
        self.registry_connected.set(i64::from(connected));
    }

    /// Every series in the OpenMetrics text format ([`CONTENT_TYPE`]), ending in `# EOF`.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        // Writing into a String cannot fail; a label encoder error would leave a partial
        // scrape, which Prometheus rejects as a whole rather than misreading.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Resolves `(counter, histogram)` for one outcome on first use.
type CallSlot = OnceLock<(Counter, Histogram)>;

/// The metrics of one endpoint key: calls, durations, breaker state and transitions, retries.
pub struct EndpointMetrics {
    key: Arc<str>,
    families: Families,
    calls: [CallSlot; 6],
    states: OnceLock<[Gauge; 5]>,
}

impl std::fmt::Debug for EndpointMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointMetrics")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

fn outcome_index(outcome: Outcome) -> usize {
    match outcome {
        Outcome::Success => 0,
        Outcome::Failure => 1,
        Outcome::Timeout => 2,
        Outcome::Cancelled => 3,
        Outcome::Rejected => 4,
        Outcome::Ignored => 5,
    }
}

impl EndpointMetrics {
    /// The endpoint key.
    pub fn key(&self) -> &Arc<str> {
        &self.key
    }

    /// Counts a guarded call and observes its duration: lock-free counter add, no lookup.
    #[inline]
    pub fn call(&self, outcome: Outcome, duration: Duration) {
        let (count, histogram) = self.calls[outcome_index(outcome)].get_or_init(|| {
            let labels = EndpointOutcome {
                endpoint: Arc::clone(&self.key),
                outcome: outcome.as_str(),
            };
            (
                self.families.calls.get_or_create_owned(&labels),
                self.families.duration.get_or_create_owned(&labels),
            )
        });
        count.inc();
        histogram.observe(duration.as_secs_f64());
    }

    /// Sets `levee_breaker_state`: 1 for `state`, 0 for every other state. Call it once with
    /// the initial state when the breaker is created, so the gauge exists before any transition.
    pub fn breaker_state(&self, state: State) {
        let gauges = self.states.get_or_init(|| {
            State::ALL.map(|s| {
                self.families
                    .breaker_state
                    .get_or_create_owned(&EndpointState {
                        endpoint: Arc::clone(&self.key),
                        state: s.as_str(),
                    })
            })
        });
        for (gauge, s) in gauges.iter().zip(State::ALL) {
            gauge.set(i64::from(s == state));
        }
    }

    /// Counts a transition of this endpoint's breaker and moves the state gauge to `to`.
    pub fn breaker_transition(&self, transition: &Transition) {
        self.families
            .transitions
            .get_or_create(&TransitionLabels {
                endpoint: Arc::clone(&self.key),
                from: transition.from.as_str(),
                to: transition.to.as_str(),
                reason: transition.reason.as_str(),
            })
            .inc();
        self.breaker_state(transition.to);
    }

    /// Counts a retry; `reason` is what was retried (`503`, `connect_failure`, ...).
    pub fn retry(&self, reason: AttemptResult) {
        self.families
            .retries
            .get_or_create(&RetryLabels {
                endpoint: Arc::clone(&self.key),
                reason: RetryReason(reason),
            })
            .inc();
    }

    /// Counts a retry the retry budget refused.
    pub fn retry_budget_exhausted(&self) {
        self.families
            .budget_exhausted
            .get_or_create(&EndpointLabels {
                endpoint: Arc::clone(&self.key),
            })
            .inc();
    }
}

/// The metrics of one bulkhead partition.
pub struct PartitionMetrics {
    name: Arc<str>,
    families: Families,
    in_flight: Gauge,
    queue_depth: Gauge,
    /// By `[criticality.index()][reason]`.
    rejections: [[OnceLock<Counter>; 3]; 3],
}

impl std::fmt::Debug for PartitionMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionMetrics")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

fn reject_index(reason: RejectReason) -> usize {
    match reason {
        RejectReason::Full => 0,
        RejectReason::QueueTimeout => 1,
        RejectReason::Evicted => 2,
    }
}

impl PartitionMetrics {
    /// The partition's name.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// Sets the in-flight and queue-depth gauges (two atomic stores).
    #[inline]
    pub fn gauges(&self, in_flight: u32, queue_depth: usize) {
        self.in_flight.set(i64::from(in_flight));
        self.queue_depth
            .set(i64::try_from(queue_depth).unwrap_or(i64::MAX));
    }

    /// Counts a refused call: an atomic add once the series exists (rejections are hot under
    /// overload, exactly when metrics must stay cheap).
    #[inline]
    pub fn rejection(&self, criticality: Criticality, reason: RejectReason) {
        let slot = &self.rejections[criticality.index()][reject_index(reason)];
        slot.get_or_init(|| {
            self.families
                .rejections
                .get_or_create_owned(&RejectionLabels {
                    partition: Arc::clone(&self.name),
                    criticality: criticality.as_str(),
                    reason: reason.as_str(),
                })
        })
        .inc();
    }
}

/// The metrics of one route: fallbacks and rate limiting.
pub struct RouteMetrics {
    name: Arc<str>,
    families: Families,
    fallbacks: [OnceLock<Counter>; 2],
    rate_limited: OnceLock<Counter>,
}

impl std::fmt::Debug for RouteMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteMetrics")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl RouteMetrics {
    /// The route's name.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// Counts a fallback served.
    pub fn fallback(&self, kind: DegradedKind) {
        let index = match kind {
            DegradedKind::Stale => 0,
            DegradedKind::Static => 1,
        };
        self.fallbacks[index]
            .get_or_init(|| {
                self.families
                    .fallbacks
                    .get_or_create_owned(&FallbackLabels {
                        route: Arc::clone(&self.name),
                        kind: kind.as_str(),
                    })
            })
            .inc();
    }

    /// Counts a request the route's rate limit refused.
    #[inline]
    pub fn rate_limited(&self) {
        self.rate_limited
            .get_or_init(|| {
                self.families
                    .rate_limited
                    .get_or_create_owned(&RouteLabels {
                        route: Arc::clone(&self.name),
                    })
            })
            .inc();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use levee_core::breaker::Reason;
    use levee_core::Timestamp;

    /// One sample line: name, labels (in order), value.
    type Sample = (String, Vec<(String, String)>, f64);

    /// A metric name, its labels (besides service and language) and the expected value.
    type Expected<'a> = (&'a str, &'a [(&'a str, &'a str)], f64);

    /// Parses the sample lines of the text format (labels with `\"` and `\\` escapes).
    fn samples(text: &str) -> Vec<Sample> {
        let mut out = Vec::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let (name, mut rest) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.strip_suffix('}').unwrap()),
                None => (series, ""),
            };
            let mut labels = Vec::new();
            while !rest.is_empty() {
                let (key, after) = rest.split_once("=\"").unwrap();
                let mut value = String::new();
                let mut chars = after.char_indices();
                let end = loop {
                    match chars.next().unwrap() {
                        (_, '\\') => value.push(chars.next().unwrap().1),
                        (i, '"') => break i,
                        (_, c) => value.push(c),
                    }
                };
                labels.push((key.to_owned(), value));
                rest = after[end + 1..].trim_start_matches(',');
            }
            out.push((name.to_owned(), labels, value.parse().unwrap()));
        }
        out
    }

    /// The value of the series `name` with exactly `labels` plus `service` and `language`.
    fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut want: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        want.push(("service".into(), "checkout".into()));
        want.push(("language".into(), "rust".into()));
        want.sort();
        samples(text).into_iter().find_map(|(n, mut l, v)| {
            l.sort();
            (n == name && l == want).then_some(v)
        })
    }

    fn everything() -> Metrics {
        let m = Metrics::new("checkout");
        m.call("inventory", Outcome::Success, Duration::from_millis(30));
        m.call("inventory", Outcome::Failure, Duration::from_millis(7));
        m.breaker_transition(&Transition {
            key: Arc::from("inventory"),
            from: State::Closed,
            to: State::Open,
            reason: Reason::FailureRate,
            at: Timestamp::ZERO,
        });
        m.bulkhead_gauges("inventory", 7, 2);
        m.bulkhead_rejection("inventory", Criticality::Sheddable, RejectReason::Full);
        m.retry("inventory", AttemptResult::Status(503));
        m.retry("inventory", AttemptResult::ConnectFailure);
        m.retry_budget_exhausted("inventory");
        m.fallback("/recommendations", DegradedKind::Static);
        m.rate_limited("/search");
        m.degradation_level(2);
        m.registry_connected(true);
        m
    }

    #[test]
    fn every_spec_metric_is_exposed_under_its_exact_name_and_labels() {
        let text = everything().encode();
        let ep = ("endpoint", "inventory");
        let expect: [Expected; 16] = [
            ("levee_calls_total", &[ep, ("outcome", "success")], 1.0),
            ("levee_calls_total", &[ep, ("outcome", "failure")], 1.0),
            (
                "levee_call_duration_seconds_count",
                &[ep, ("outcome", "failure")],
                1.0,
            ),
            (
                "levee_call_duration_seconds_bucket",
                &[ep, ("outcome", "failure"), ("le", "0.01")],
                1.0,
            ),
            (
                "levee_call_duration_seconds_bucket",
                &[ep, ("outcome", "failure"), ("le", "0.005")],
                0.0,
            ),
            ("levee_breaker_state", &[ep, ("state", "open")], 1.0),
            (
                "levee_breaker_transitions_total",
                &[
                    ep,
                    ("from", "closed"),
                    ("to", "open"),
                    ("reason", "failure_rate"),
                ],
                1.0,
            ),
            (
                "levee_bulkhead_in_flight",
                &[("partition", "inventory")],
                7.0,
            ),
            (
                "levee_bulkhead_queue_depth",
                &[("partition", "inventory")],
                2.0,
            ),
            (
                "levee_bulkhead_rejections_total",
                &[
                    ("partition", "inventory"),
                    ("criticality", "sheddable"),
                    ("reason", "full"),
                ],
                1.0,
            ),
            ("levee_retries_total", &[ep, ("reason", "503")], 1.0),
            (
                "levee_retries_total",
                &[ep, ("reason", "connect_failure")],
                1.0,
            ),
            ("levee_retry_budget_exhausted_total", &[ep], 1.0),
            (
                "levee_fallbacks_total",
                &[("route", "/recommendations"), ("kind", "static")],
                1.0,
            ),
            ("levee_rate_limited_total", &[("route", "/search")], 1.0),
            ("levee_degradation_level", &[], 2.0),
        ];
        for (name, labels, want) in expect {
            assert_eq!(
                value(&text, name, labels),
                Some(want),
                "{name} {labels:?} in\n{text}"
            );
        }
        assert_eq!(value(&text, "levee_registry_connected", &[]), Some(1.0));
        let all = samples(&text);
        for name in metric::ALL {
            assert!(
                all.iter().any(|(n, _, _)| n.starts_with(name)),
                "{name} missing from\n{text}"
            );
        }
        for (name, labels, _) in &all {
            assert_eq!(
                &labels[..2],
                &[
                    ("service".to_owned(), "checkout".to_owned()),
                    ("language".to_owned(), "rust".to_owned())
                ],
                "{name}"
            );
        }
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn the_state_gauge_flips_to_the_current_state_only() {
        let m = Metrics::new("checkout");
        m.breaker_state("inventory", State::Closed);
        let state = |text: &str, s: &str| {
            value(
                text,
                "levee_breaker_state",
                &[("endpoint", "inventory"), ("state", s)],
            )
        };
        let text = m.encode();
        assert_eq!(state(&text, "closed"), Some(1.0));
        for s in ["open", "half_open", "forced_open", "disabled"] {
            assert_eq!(state(&text, s), Some(0.0), "{s}");
        }
        m.breaker_state("inventory", State::HalfOpen);
        let text = m.encode();
        assert_eq!(state(&text, "closed"), Some(0.0));
        assert_eq!(state(&text, "half_open"), Some(1.0));
        let ones = samples(&text)
            .into_iter()
            .filter(|(n, _, v)| n == "levee_breaker_state" && *v == 1.0)
            .count();
        assert_eq!(ones, 1, "{text}");
    }

    #[test]
    fn handles_share_series_with_the_string_api() {
        let m = Metrics::new("checkout");
        let handle = m.endpoint("inventory");
        assert!(Arc::ptr_eq(&handle, &m.endpoint("inventory")));
        handle.call(Outcome::Timeout, Duration::from_secs(20));
        m.call("inventory", Outcome::Timeout, Duration::from_millis(1));
        let text = m.encode();
        let labels = [("endpoint", "inventory"), ("outcome", "timeout")];
        assert_eq!(value(&text, "levee_calls_total", &labels), Some(2.0));
        // 20 s lands only in +Inf; 1 ms in every bucket.
        let bucket = |le: &str| {
            value(
                &text,
                "levee_call_duration_seconds_bucket",
                &[labels[0], labels[1], ("le", le)],
            )
        };
        assert_eq!(bucket("0.005"), Some(1.0));
        assert_eq!(bucket("10.0"), Some(1.0));
        assert_eq!(bucket("+Inf"), Some(2.0));
    }

    #[test]
    fn counters_accumulate_and_gauges_overwrite() {
        let m = Metrics::new("checkout");
        let p = m.partition("pricing");
        for _ in 0..3 {
            p.rejection(Criticality::Critical, RejectReason::QueueTimeout);
        }
        p.gauges(5, 1);
        p.gauges(0, 0);
        m.registry_connected(true);
        m.registry_connected(false);
        let text = m.encode();
        let rejections = [
            ("partition", "pricing"),
            ("criticality", "critical"),
            ("reason", "queue_timeout"),
        ];
        assert_eq!(
            value(&text, "levee_bulkhead_rejections_total", &rejections),
            Some(3.0)
        );
        assert_eq!(
            value(
                &text,
                "levee_bulkhead_in_flight",
                &[("partition", "pricing")]
            ),
            Some(0.0)
        );
        assert_eq!(value(&text, "levee_registry_connected", &[]), Some(0.0));
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::new("checkout");
        m.rate_limited("/a\"b\\c");
        let text = m.encode();
        assert_eq!(
            value(&text, "levee_rate_limited_total", &[("route", "/a\"b\\c")]),
            Some(1.0),
            "{text}"
        );
    }

    #[test]
    fn usable_from_many_threads() {
        let m = Arc::new(Metrics::new("checkout"));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let m = Arc::clone(&m);
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        m.call("inventory", Outcome::Success, Duration::from_millis(1));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let labels = [("endpoint", "inventory"), ("outcome", "success")];
        assert_eq!(
            value(&m.encode(), "levee_calls_total", &labels),
            Some(4000.0)
        );
    }
}
