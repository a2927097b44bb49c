//! One generation of the running config, compiled: routes with their matchers and policies,
//! upstreams with their pools, and the keyed policy state (breakers by endpoint key, bulkheads
//! by partition, retry budgets by endpoint key).
//!
//! A reload builds a new `Runtime` from the new config *and the previous runtime*: every piece
//! of state whose key and config are unchanged is carried over as the same value, so an
//! open breaker stays open, an ejected endpoint stays ejected and counters keep counting.
//! Requests in flight hold an `Arc` of the route they started on and finish on it.
//!
//! Keys (SPEC §2, §3):
//! - breaker: the upstream name, or `upstream/route` for a route with its own `breaker`;
//! - bulkhead partition: the upstream name, or `upstream/route` for a route with its own
//!   `bulkhead`;
//! - retry budget: per endpoint key; when several routes share a key, the first route's
//!   `retry.budget` config is used for it.
//! - fleet gate (the key's fleet breaker as last seen from the registry, see `fleet`): per
//!   endpoint key, carried over whatever the config, since it mirrors the registry rather
//!   than the file.
//! - fleet policy (remote registry, see `fleet`): per endpoint key. While the registry
//!   distributes a policy (version ≥ 1) for a key, its breaker runs the policy's config instead
//!   of the file's: fleet policy > file. A reload keeps the policies in force (they are carried
//!   in `policies`), so editing the file never undoes an operator's fleet-wide numbers; the
//!   file's config for the key takes effect when the policy goes away. A policy that arrives,
//!   changes or goes away swaps the key's breaker for [`CircuitBreaker::reconfigured`], which
//!   keeps its state; a file change (no policy involved) builds a fresh breaker, as always.

use crate::error::ProxyError;
use crate::fleet::FleetGate;
use crate::matcher::Matcher;
use crate::stale::StaleCache;
use crate::upstream::Upstream;
use levee_config::{Config, RouteConfig, StaticFallbackConfig};
use levee_core::breaker::{BreakerConfig, CircuitBreaker};
use levee_core::budget::RetryBudget;
use levee_core::bulkhead::Bulkhead;
use levee_core::rate_limit::KeyedRateLimiter;
use levee_core::{RandomSource, Timestamp};
use levee_telemetry::{EndpointMetrics, Metrics, PartitionMetrics};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

/// The compiled config.
#[derive(Debug)]
pub struct Runtime {
    /// The config it was built from.
    pub config: Arc<Config>,
    /// Routes in match order.
    pub routes: Vec<Arc<Route>>,
    /// Upstreams by name.
    pub upstreams: BTreeMap<String, Arc<Upstream>>,
    /// Breakers by endpoint key.
    pub breakers: BTreeMap<String, Arc<CircuitBreaker>>,
    /// Bulkheads by partition.
    pub bulkheads: BTreeMap<String, Bulkhead>,
    /// Retry budgets by endpoint key.
    pub budgets: BTreeMap<String, Arc<RetryBudget>>,
    /// Fleet gates by endpoint key.
    pub gates: BTreeMap<String, Arc<FleetGate>>,
    /// The fleet policies in force, by endpoint key (only keys with a breaker; empty unless
    /// the registry is remote, see `fleet`).
    pub policies: BTreeMap<String, FleetPolicy>,
    /// Fault injection state, carried across reloads (see `fault`).
    pub(crate) faults: Arc<crate::fault::Faults>,
}

/// A breaker policy distributed by the registry (SPEC §9) that a key's breaker runs.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetPolicy {
    /// The registry's version of it (≥ 1).
    pub version: u64,
    /// The config it sets.
    pub config: BreakerConfig,
}

/// One compiled route.
#[derive(Debug)]
pub struct Route {
    /// `name`, or `route<N>`.
    pub name: String,
    /// The route's config.
    pub config: RouteConfig,
    /// Its conditions.
    pub matcher: Matcher,
    /// Where it sends traffic.
    pub upstream: Arc<Upstream>,
    /// The breaker's key.
    pub endpoint_key: String,
    /// The breaker.
    pub breaker: Arc<CircuitBreaker>,
    /// The fleet breaker of the endpoint key, as the registry last said.
    pub gate: Arc<FleetGate>,
    /// The bulkhead partition's name.
    pub partition: String,
    /// The bulkhead.
    pub bulkhead: Bulkhead,
    /// The retry budget of the endpoint key.
    pub budget: Arc<RetryBudget>,
    /// The rate limiter, if any.
    pub rate_limiter: Option<Arc<KeyedRateLimiter>>,
    /// The stale cache, if `stale_if_error` is set.
    pub stale: Option<Arc<StaleCache>>,
    /// The process's fault state (the runtime's, shared by every route).
    pub(crate) faults: Arc<crate::fault::Faults>,
    /// The metric handles of the endpoint key and the partition, found on first use: every
    /// call counts in both, and looking them up by name each time (a hash of the name and a
    /// lock) cost more than the counting.
    metrics: OnceLock<RouteMetricHandles>,
}

#[derive(Debug)]
struct RouteMetricHandles {
    endpoint: Arc<EndpointMetrics>,
    partition: Arc<PartitionMetrics>,
}

impl Route {
    fn metric_handles(&self, metrics: &Metrics) -> &RouteMetricHandles {
        self.metrics.get_or_init(|| RouteMetricHandles {
            endpoint: metrics.endpoint(&self.endpoint_key),
            partition: metrics.partition(&self.partition),
        })
    }

    /// The metrics of the route's endpoint key (`levee_calls_total`, durations, retries).
    pub fn endpoint_metrics(&self, metrics: &Metrics) -> &Arc<EndpointMetrics> {
        &self.metric_handles(metrics).endpoint
    }

    /// The metrics of the route's bulkhead partition (gauges, rejections).
    pub fn partition_metrics(&self, metrics: &Metrics) -> &Arc<PartitionMetrics> {
        &self.metric_handles(metrics).partition
    }

    /// The static fallback, if any.
    pub fn static_fallback(&self) -> Option<&StaticFallbackConfig> {
        self.config.fallback.static_response.as_ref()
    }
}

/// What a build produced besides the runtime: upstreams that are new and need their health
/// checks started.
pub struct Built {
    /// The runtime.
    pub runtime: Runtime,
    /// Upstreams created by this build (not carried over).
    pub new_upstreams: Vec<Arc<Upstream>>,
}

impl Runtime {
    /// Compiles `config`, carrying over state from `previous` where keys and configs match,
    /// and the fleet policies `previous` runs (fleet policy > file).
    pub fn build(
        config: Config,
        previous: Option<&Runtime>,
        random: &Arc<dyn RandomSource>,
        now: Timestamp,
    ) -> Result<Built, ProxyError> {
        let policies = previous.map(|p| p.policies.clone()).unwrap_or_default();
        Runtime::build_with_policies(config, previous, policies, random, now)
    }

    /// The same config with another set of fleet policies: keys whose policy arrived, changed
    /// or went away get their breaker reconfigured, keeping its state; everything else is
    /// carried over as it is. Each policy's config must be valid (the caller checks).
    pub fn with_policies(
        &self,
        policies: BTreeMap<String, FleetPolicy>,
        random: &Arc<dyn RandomSource>,
        now: Timestamp,
    ) -> Result<Runtime, ProxyError> {
        let built = Runtime::build_with_policies(
            (*self.config).clone(),
            Some(self),
            policies,
            random,
            now,
        )?;
        Ok(built.runtime)
    }

    fn build_with_policies(
        config: Config,
        previous: Option<&Runtime>,
        mut policies: BTreeMap<String, FleetPolicy>,
        random: &Arc<dyn RandomSource>,
        now: Timestamp,
    ) -> Result<Built, ProxyError> {
        let mut upstreams = BTreeMap::new();
        let mut new_upstreams = Vec::new();
        for (name, upstream_config) in &config.upstreams {
            let kept = previous
                .and_then(|p| p.upstreams.get(name))
                .filter(|u| u.config() == upstream_config)
                .cloned();
            let upstream = match kept {
                Some(u) => u,
                None => {
                    let u = Arc::new(Upstream::new(
                        name,
                        upstream_config,
                        Arc::clone(random),
                        now,
                    )?);
                    new_upstreams.push(Arc::clone(&u));
                    u
                }
            };
            upstreams.insert(name.clone(), upstream);
        }

        let mut breakers: BTreeMap<String, Arc<CircuitBreaker>> = BTreeMap::new();
        let mut bulkheads: BTreeMap<String, Bulkhead> = BTreeMap::new();
        let mut budgets: BTreeMap<String, Arc<RetryBudget>> = BTreeMap::new();
        let mut gates: BTreeMap<String, Arc<FleetGate>> = BTreeMap::new();
        let mut routes = Vec::with_capacity(config.routes.len());
        let faults = crate::fault::Faults::carry(previous.map(|p| &p.faults), &config);
        for (i, route_config) in config.routes.iter().enumerate() {
            let name = route_config
                .name
                .clone()
                .unwrap_or_else(|| format!("route{}", i + 1));
            let at = |m: String| ProxyError::Config(format!("routes[{i}] ({name}): {m}"));
            let upstream = upstreams
                .get(&route_config.upstream)
                .cloned()
                .ok_or_else(|| {
                    at(format!(
                        "upstream `{}` is not defined under upstreams",
                        route_config.upstream
                    ))
                })?;
            let matcher = Matcher::new(&route_config.matcher).map_err(|e| at(e.0))?;
            route_config
                .retry
                .validate()
                .map_err(|e| at(format!("retry.{e}")))?;

            let (endpoint_key, file_breaker_config) = match &route_config.breaker {
                Some(own) => (format!("{}/{name}", upstream.name()), own.clone()),
                None => (
                    upstream.name().to_string(),
                    upstream.config().breaker.clone(),
                ),
            };
            let policy = policies.get(&endpoint_key);
            let breaker_config = policy.map_or(file_breaker_config, |p| p.config.clone());
            let breaker = match breakers.get(&endpoint_key) {
                Some(b) => Arc::clone(b),
                None => {
                    let old = previous.and_then(|p| p.breakers.get(&endpoint_key));
                    let kept = old.filter(|b| *b.config() == breaker_config).cloned();
                    // A policy that arrived, changed or went away keeps the breaker's state.
                    let policy_changed =
                        previous.is_some_and(|p| p.policies.get(&endpoint_key) != policy);
                    let b = match (kept, old) {
                        (Some(b), _) => b,
                        (None, Some(old)) if policy_changed => Arc::new(
                            old.reconfigured(breaker_config)
                                .map_err(|e| at(format!("breaker (fleet policy): {e}")))?,
                        ),
                        (None, _) => Arc::new(
                            CircuitBreaker::new(
                                endpoint_key.as_str(),
                                breaker_config,
                                Arc::clone(random),
                            )
                            .map_err(|e| at(format!("breaker: {e}")))?,
                        ),
                    };
                    breakers.insert(endpoint_key.clone(), Arc::clone(&b));
                    b
                }
            };

            let gate = match gates.get(&endpoint_key) {
                Some(g) => Arc::clone(g),
                None => {
                    let g = previous
                        .and_then(|p| p.gates.get(&endpoint_key))
                        .cloned()
                        .unwrap_or_default();
                    gates.insert(endpoint_key.clone(), Arc::clone(&g));
                    g
                }
            };

            let (partition, bulkhead_config) = match &route_config.bulkhead {
                Some(own) => (format!("{}/{name}", upstream.name()), own.clone()),
                None => (
                    upstream.name().to_string(),
                    upstream.config().bulkhead.clone(),
                ),
            };
            let bulkhead = match bulkheads.get(&partition) {
                Some(b) => b.clone(),
                None => {
                    let kept = previous
                        .and_then(|p| p.bulkheads.get(&partition))
                        .filter(|b| *b.config() == bulkhead_config)
                        .cloned();
                    let b = match kept {
                        Some(b) => b,
                        None => Bulkhead::new(bulkhead_config)
                            .map_err(|e| at(format!("bulkhead: {e}")))?,
                    };
                    bulkheads.insert(partition.clone(), b.clone());
                    b
                }
            };

            let budget = match budgets.get(&endpoint_key) {
                Some(b) => Arc::clone(b),
                None => {
                    let budget_config = route_config.retry.budget.clone();
                    let kept = previous
                        .and_then(|p| p.budgets.get(&endpoint_key))
                        .filter(|b| *b.config() == budget_config)
                        .cloned();
                    let b = kept.unwrap_or_else(|| Arc::new(RetryBudget::new(budget_config, now)));
                    budgets.insert(endpoint_key.clone(), Arc::clone(&b));
                    b
                }
            };

            let previous_route = previous.and_then(|p| p.routes.iter().find(|r| r.name == name));
            let rate_limiter = match &route_config.rate_limit {
                None => None,
                Some(rl) => {
                    rl.validate().map_err(&at)?;
                    let kept = previous_route
                        .and_then(|r| r.rate_limiter.clone())
                        .filter(|l| l.config() == rl);
                    Some(kept.unwrap_or_else(|| Arc::new(KeyedRateLimiter::new(rl.clone()))))
                }
            };
            let stale = route_config.fallback.stale_if_error.as_ref().map(|s| {
                previous_route
                    .and_then(|r| r.stale.clone())
                    .filter(|c| c.config() == s)
                    .unwrap_or_else(|| Arc::new(StaleCache::new(s.clone())))
            });
            if let Some(fallback) = &route_config.fallback.static_response {
                http::StatusCode::from_u16(fallback.status).map_err(|_| {
                    at(format!(
                        "fallback.static.status {} is not an HTTP status",
                        fallback.status
                    ))
                })?;
                for (k, v) in &fallback.headers {
                    http::HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
                        at(format!(
                            "fallback.static.headers: `{k}` is not a header name"
                        ))
                    })?;
                    http::HeaderValue::from_str(v).map_err(|_| {
                        at(format!(
                            "fallback.static.headers.{k}: the value is not plain text"
                        ))
                    })?;
                }
            }

            routes.push(Arc::new(Route {
                name,
                config: route_config.clone(),
                matcher,
                upstream,
                endpoint_key,
                breaker,
                gate,
                partition,
                bulkhead,
                budget,
                rate_limiter,
                stale,
                faults: Arc::clone(&faults),
                metrics: OnceLock::new(),
            }));
        }
        faults.reconfigure(&config);
        policies.retain(|key, _| breakers.contains_key(key));
        Ok(Built {
            runtime: Runtime {
                config: Arc::new(config),
                routes,
                upstreams,
                breakers,
                bulkheads,
                budgets,
                gates,
                policies,
                faults,
            },
            new_upstreams,
        })
    }

    /// The first route matching the request.
    pub fn route(
        &self,
        method: &http::Method,
        uri: &http::Uri,
        headers: &http::HeaderMap,
    ) -> Option<&Arc<Route>> {
        self.routes
            .iter()
            .find(|r| r.matcher.matches(method, uri, headers))
    }
}
