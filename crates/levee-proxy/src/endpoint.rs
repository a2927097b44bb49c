//! One endpoint of an upstream and what the proxy knows about it: requests in flight, latency
//! (peak EWMA), active health, and passive outlier state. The decisions themselves are
//! levee-core's (`balance`, `outlier`); this file only keeps the state they read.
//!
//! An endpoint takes traffic while it is healthy (active checks) and not ejected (passive
//! checks). It starts healthy, so traffic flows before the first check completes; it starts at
//! full weight, since slow start is for endpoints that *come back*, not for a fresh start.

use http::uri::Authority;
use levee_admin::{EndpointHealth, EndpointStatus};
use levee_core::balance::{slow_start_weight, Candidate, PeakEwma, DEFAULT_COST, DEFAULT_DECAY};
use levee_core::outlier::{Ejection, OutlierPolicy, OutlierState};
use levee_core::Timestamp;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// One `host:port` of an upstream.
#[derive(Debug)]
pub struct Endpoint {
    address: String,
    authority: Authority,
    in_flight: AtomicU32,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    ewma: PeakEwma,
    outlier: OutlierState,
    healthy: bool,
    passes: u32,
    failures: u32,
    /// When it last came back (health recovered or an ejection ended): the slow-start anchor.
    recovered_at: Option<Timestamp>,
}

/// What an active health check changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthChange {
    /// Nothing.
    None,
    /// It failed `unhealthy` checks in a row.
    BecameUnhealthy,
    /// It passed `healthy` checks in a row.
    BecameHealthy,
}

impl Endpoint {
    /// A healthy endpoint at `address` (already validated as an authority).
    pub fn new(address: String, authority: Authority, now: Timestamp) -> Self {
        Endpoint {
            address,
            authority,
            in_flight: AtomicU32::new(0),
            state: Mutex::new(State {
                ewma: PeakEwma::new(DEFAULT_COST, DEFAULT_DECAY, now),
                outlier: OutlierState::default(),
                healthy: true,
                passes: 0,
                failures: 0,
                recovered_at: None,
            }),
        }
    }

    /// `host:port` as configured.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The authority requests are sent to.
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True while an ejection runs.
    pub fn is_ejected(&self, now: Timestamp) -> bool {
        self.lock().outlier.is_ejected(now)
    }

    /// The balancer's view at `now`, or `None` when it may not take traffic.
    pub fn candidate(&self, now: Timestamp, slow_start: Duration) -> Option<Candidate> {
        let s = self.lock();
        if !s.healthy || s.outlier.is_ejected(now) {
            return None;
        }
        Some(Candidate {
            in_flight: self.in_flight.load(Ordering::Relaxed),
            cost_nanos: s.ewma.cost(),
            weight: slow_start_weight(recovered_at(&s, now), now, slow_start),
        })
    }

    /// Counts a request in flight until the guard drops.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }

    /// Records an attempt's result: latency for the balancer, failure streak for ejection.
    /// `ejected_now` and `total` describe the upstream at `now` (this endpoint not counted as
    /// ejected).
    pub fn record(
        &self,
        policy: &OutlierPolicy,
        failed: bool,
        rtt: Duration,
        now: Timestamp,
        ejected_now: usize,
        total: usize,
    ) -> Option<Ejection> {
        let mut s = self.lock();
        if failed {
            s.ewma.observe_failure(rtt, now);
        } else {
            s.ewma.observe(rtt, now);
        }
        let ejection = s.outlier.record(policy, failed, now, ejected_now, total);
        if let Some(e) = ejection {
            s.recovered_at = Some(e.until);
        }
        ejection
    }

    /// Records an active health check at `now`.
    pub fn record_check(
        &self,
        passed: bool,
        healthy_after: u32,
        unhealthy_after: u32,
        now: Timestamp,
    ) -> HealthChange {
        let mut s = self.lock();
        match passed {
            true => {
                s.passes = s.passes.saturating_add(1);
                s.failures = 0;
                if !s.healthy && s.passes >= healthy_after.max(1) {
                    s.healthy = true;
                    s.recovered_at = Some(now);
                    return HealthChange::BecameHealthy;
                }
            }
            false => {
                s.failures = s.failures.saturating_add(1);
                s.passes = 0;
                if s.healthy && s.failures >= unhealthy_after.max(1) {
                    s.healthy = false;
                    return HealthChange::BecameUnhealthy;
                }
            }
        }
        HealthChange::None
    }

    /// A view for `/health`.
    pub fn health(&self, now: Timestamp, slow_start: Duration) -> EndpointHealth {
        let s = self.lock();
        let ejected = s.outlier.is_ejected(now);
        EndpointHealth {
            address: self.address.clone(),
            health: if s.healthy {
                EndpointStatus::Healthy
            } else {
                EndpointStatus::Unhealthy
            },
            ejected,
            ejection_remaining_ms: ejected
                .then(|| s.outlier.ejected_until().map(|u| (u - now).as_millis()))
                .flatten()
                .map(|ms| u64::try_from(ms).unwrap_or(u64::MAX)),
            ejections: s.outlier.times_ejected(),
            weight: slow_start_weight(recovered_at(&s, now), now, slow_start),
            in_flight: self.in_flight.load(Ordering::Relaxed),
        }
    }
}

/// The slow-start anchor, once it has passed.
fn recovered_at(s: &State, now: Timestamp) -> Option<Timestamp> {
    s.recovered_at.filter(|t| *t <= now)
}

/// A request in flight to an endpoint; dropping it ends the count.
#[derive(Debug)]
pub struct InFlight(Arc<Endpoint>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}
