//! A named upstream cluster: its endpoints, its connection pool and its balancer.
//!
//! One `Upstream` lives as long as its config is unchanged: a reload that keeps an upstream's
//! block byte-for-byte equal keeps the same value (pool, latencies, ejections and health), and
//! its active health checks stop on their own once the last reference is gone.

use crate::client::{self, UpstreamClient};
use crate::endpoint::{Endpoint, InFlight};
use crate::error::ProxyError;
use http::uri::Authority;
use levee_admin::UpstreamHealth;
use levee_config::{BalancerKind, UpstreamConfig};
use levee_core::balance::{self, Algorithm, Candidate};
use levee_core::outlier::{Ejection, OutlierPolicy};
use levee_core::{RandomSource, Timestamp};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// An upstream cluster.
pub struct Upstream {
    name: String,
    config: UpstreamConfig,
    endpoints: Vec<Arc<Endpoint>>,
    client: UpstreamClient,
    algorithm: Algorithm,
    outlier: OutlierPolicy,
    turn: AtomicU64,
    random: Arc<dyn RandomSource>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

/// The endpoint chosen for one attempt, counted in flight while this lives.
#[derive(Debug)]
pub struct Chosen {
    /// The endpoint.
    pub endpoint: Arc<Endpoint>,
    /// Its in-flight count.
    pub in_flight: InFlight,
}

impl Upstream {
    /// Builds the upstream `name` (endpoints validated as `host:port`).
    pub fn new(
        name: &str,
        config: &UpstreamConfig,
        random: Arc<dyn RandomSource>,
        now: Timestamp,
    ) -> Result<Upstream, ProxyError> {
        if config.endpoints.is_empty() {
            return Err(ProxyError::Config(format!(
                "upstreams.{name}.endpoints is empty: list at least one host:port"
            )));
        }
        let endpoints = config
            .endpoints
            .iter()
            .map(|address| {
                let authority: Authority = address
                    .parse()
                    .ok()
                    .filter(|a: &Authority| a.port_u16().is_some())
                    .ok_or_else(|| {
                        ProxyError::Config(format!(
                            "upstreams.{name}.endpoints: `{address}` is not host:port \
                             (e.g. 127.0.0.1:7001)"
                        ))
                    })?;
                Ok(Arc::new(Endpoint::new(address.clone(), authority, now)))
            })
            .collect::<Result<Vec<_>, ProxyError>>()?;
        Ok(Upstream {
            name: name.to_string(),
            client: client::build(
                config,
                endpoints.iter().map(|e| e.authority().clone()).collect(),
            ),
            algorithm: match config.balancer {
                BalancerKind::P2cEwma => Algorithm::P2cEwma,
                BalancerKind::RoundRobin => Algorithm::RoundRobin,
                BalancerKind::LeastRequest => Algorithm::LeastRequest,
            },
            outlier: OutlierPolicy {
                consecutive_failures: config.outlier.consecutive_failures,
                base_ejection: config.outlier.base_ejection,
                max_ejection_percent: config.outlier.max_ejection_percent,
            },
            config: config.clone(),
            endpoints,
            turn: AtomicU64::new(0),
            random,
        })
    }

    /// The upstream's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its config.
    pub fn config(&self) -> &UpstreamConfig {
        &self.config
    }

    /// Its endpoints.
    pub fn endpoints(&self) -> &[Arc<Endpoint>] {
        &self.endpoints
    }

    /// The pooled client.
    pub fn client(&self) -> &UpstreamClient {
        &self.client
    }

    /// Chooses an endpoint for the next attempt at `now`; `None` when none may take traffic
    /// (`upstream_unavailable`).
    pub fn pick(&self, now: Timestamp) -> Option<Chosen> {
        // Upstreams of up to `STACK` endpoints (nearly all) pick from stack arrays: no
        // allocation per attempt.
        const STACK: usize = 16;
        let turn = self.turn.fetch_add(1, Ordering::Relaxed);
        let slow_start = self.config.slow_start;
        let index = if self.endpoints.len() <= STACK {
            let mut candidates = [Candidate {
                in_flight: 0,
                cost_nanos: 0.0,
                weight: 0.0,
            }; STACK];
            let mut indices = [0usize; STACK];
            let mut n = 0;
            for (i, endpoint) in self.endpoints.iter().enumerate() {
                if let Some(c) = endpoint.candidate(now, slow_start) {
                    candidates[n] = c;
                    indices[n] = i;
                    n += 1;
                }
            }
            let chosen =
                balance::pick(self.algorithm, &candidates[..n], turn, self.random.as_ref())?;
            *indices[..n].get(chosen)?
        } else {
            let mut candidates: Vec<Candidate> = Vec::with_capacity(self.endpoints.len());
            let mut indices: Vec<usize> = Vec::with_capacity(self.endpoints.len());
            for (i, endpoint) in self.endpoints.iter().enumerate() {
                if let Some(c) = endpoint.candidate(now, slow_start) {
                    candidates.push(c);
                    indices.push(i);
                }
            }
            let chosen = balance::pick(self.algorithm, &candidates, turn, self.random.as_ref())?;
            *indices.get(chosen)?
        };
        let endpoint = Arc::clone(self.endpoints.get(index)?);
        let in_flight = endpoint.begin();
        Some(Chosen {
            endpoint,
            in_flight,
        })
    }

    /// Records an attempt's result on `endpoint`; returns the ejection it caused, if any.
    pub fn record(
        &self,
        endpoint: &Endpoint,
        failed: bool,
        rtt: Duration,
        now: Timestamp,
    ) -> Option<Ejection> {
        let ejected_now = self
            .endpoints
            .iter()
            .filter(|e| !std::ptr::eq(e.as_ref(), endpoint) && e.is_ejected(now))
            .count();
        let ejection = endpoint.record(
            &self.outlier,
            failed,
            rtt,
            now,
            ejected_now,
            self.endpoints.len(),
        );
        if let Some(e) = ejection {
            tracing::warn!(
                upstream = %self.name,
                endpoint = %endpoint.address(),
                times_ejected = e.times,
                ejection_ms = u64::try_from((e.until - now).as_millis()).unwrap_or(u64::MAX),
                "endpoint ejected after consecutive failures"
            );
        }
        ejection
    }

    /// A view for `/health`.
    pub fn health(&self, now: Timestamp) -> UpstreamHealth {
        let endpoints = self
            .endpoints
            .iter()
            .map(|e| e.health(now, self.config.slow_start))
            .collect();
        UpstreamHealth::new(self.name.clone(), endpoints)
    }
}
