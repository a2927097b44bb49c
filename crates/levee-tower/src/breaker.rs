//! The circuit breaker as a tower layer (SPEC §2), for the client side of a call.
//!
//! Every decision is levee-core's [`CircuitBreaker`]: the layer asks it for a permit when the
//! call is made (in `call`, never in `poll_ready`, so a service that is polled ready but never
//! called holds no probe slot), runs the call, classifies the result ([`Classify`], SPEC §1 by
//! default) and records the outcome with the call's duration. A rejected call fails at once
//! with a [`LeveeError`] whose code is `circuit_open` and whose retry-after is the time left in
//! `open`, without touching the service below.
//!
//! A call whose response future is dropped before it finished is recorded as `cancelled`:
//! it does not count toward the rates, and a probe slot it held is freed for another probe.
//! Transitions (returned by the breaker, never published under its lock) go to the optional
//! [`EndpointMetrics`] and transition hook after the breaker is done with them.
//!
//! Share one breaker per endpoint key (`Arc<CircuitBreaker>`) between every stack that calls
//! that endpoint; the key names it in errors and metrics.

use crate::classify::{Classify, HttpClassifier};
use crate::error::{BoxError, BoxFuture, LeveeError};
use crate::{default_clock, Clock};
use levee_core::breaker::{CircuitBreaker, Permit, Transition};
use levee_core::{ErrorCode, Outcome, Timestamp};
use levee_telemetry::EndpointMetrics;
use std::error::Error;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tower::{Layer, Service};

/// Called with every breaker transition, after the breaker's lock is released.
pub type TransitionHook = Arc<dyn Fn(&Transition) + Send + Sync>;

/// What every breaker service of one layer shares.
#[derive(Clone)]
struct Shared {
    breaker: Arc<CircuitBreaker>,
    clock: Arc<dyn Clock>,
    metrics: Option<Arc<EndpointMetrics>>,
    on_transition: Option<TransitionHook>,
}

impl Shared {
    fn publish(&self, transition: Option<Transition>) {
        let Some(transition) = transition else {
            return;
        };
        if let Some(metrics) = &self.metrics {
            metrics.breaker_transition(&transition);
        }
        if let Some(hook) = &self.on_transition {
            hook(&transition);
        }
    }

    fn count(&self, outcome: Outcome, duration: Duration) {
        if let Some(metrics) = &self.metrics {
            metrics.call(outcome, duration);
        }
    }
}

/// Guards calls with a circuit breaker; see the [module docs](self).
///
/// ```
/// use levee_core::breaker::{BreakerConfig, CircuitBreaker};
/// use levee_core::random::SplitMix64;
/// use levee_tower::BreakerLayer;
/// use std::sync::Arc;
///
/// let breaker = CircuitBreaker::new("inventory", BreakerConfig::default(), Arc::new(SplitMix64::new(1)))?;
/// let layer = BreakerLayer::new(Arc::new(breaker));
/// let service = tower::ServiceBuilder::new().layer(layer).service(tower::service_fn(
///     |_req: http::Request<()>| async { Ok::<_, std::convert::Infallible>(http::Response::new(())) },
/// ));
/// # drop(service);
/// # Ok::<(), String>(())
/// ```
#[derive(Clone)]
pub struct BreakerLayer<C = HttpClassifier> {
    shared: Shared,
    classifier: C,
}

impl std::fmt::Debug for BreakerLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BreakerLayer")
            .field("breaker", &self.shared.breaker)
            .finish_non_exhaustive()
    }
}

impl BreakerLayer<HttpClassifier> {
    /// A layer over `breaker` (its key names the endpoint), with SPEC §1 HTTP classification
    /// and the system clock.
    pub fn new(breaker: Arc<CircuitBreaker>) -> Self {
        BreakerLayer {
            shared: Shared {
                breaker,
                clock: default_clock(),
                metrics: None,
                on_transition: None,
            },
            classifier: HttpClassifier::default(),
        }
    }

    /// A layer with a new breaker for `endpoint` running `config`, its jitter drawn from a
    /// SplitMix64 seeded from entropy; fails with the config's validation message. Use
    /// [`new`](Self::new) to share one breaker between several stacks.
    pub fn for_endpoint(
        endpoint: impl Into<Arc<str>>,
        config: levee_core::breaker::BreakerConfig,
    ) -> Result<Self, String> {
        let breaker = CircuitBreaker::new(endpoint, config, crate::default_random())?;
        Ok(BreakerLayer::new(Arc::new(breaker)))
    }
}

impl<C> BreakerLayer<C> {
    /// Classifies results with `classifier` instead.
    pub fn classifier<C2>(self, classifier: C2) -> BreakerLayer<C2> {
        BreakerLayer {
            shared: self.shared,
            classifier,
        }
    }

    /// Reads time from `clock` (tests pass a `ManualClock`).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.shared.clock = clock;
        self
    }

    /// Counts calls (`levee_calls_total`, `levee_call_duration_seconds`) and transitions.
    #[must_use]
    pub fn metrics(mut self, metrics: Arc<EndpointMetrics>) -> Self {
        self.shared.metrics = Some(metrics);
        self
    }

    /// Calls `hook` with every transition (logs, a registry reporter).
    #[must_use]
    pub fn on_transition(mut self, hook: TransitionHook) -> Self {
        self.shared.on_transition = Some(hook);
        self
    }

    /// The breaker.
    pub fn breaker(&self) -> &Arc<CircuitBreaker> {
        &self.shared.breaker
    }
}

impl<S, C: Clone> Layer<S> for BreakerLayer<C> {
    type Service = Breaker<S, C>;
    fn layer(&self, inner: S) -> Self::Service {
        Breaker {
            inner,
            shared: self.shared.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

/// The service of [`BreakerLayer`].
#[derive(Clone)]
pub struct Breaker<S, C = HttpClassifier> {
    inner: S,
    shared: Shared,
    classifier: C,
}

impl<S, C> std::fmt::Debug for Breaker<S, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Breaker")
            .field("breaker", &self.shared.breaker)
            .finish_non_exhaustive()
    }
}

/// Records the call's outcome exactly once: when it finishes, or as `cancelled` when its
/// future is dropped first.
struct Recorder {
    shared: Shared,
    permit: Option<Permit>,
    start: Timestamp,
}

impl Recorder {
    fn finish(mut self, outcome: Outcome) {
        self.record(outcome);
    }

    fn record(&mut self, outcome: Outcome) {
        if let Some(permit) = self.permit.take() {
            let now = self.shared.clock.now();
            let duration = now.saturating_since(self.start);
            let transition = self.shared.breaker.record(permit, outcome, duration, now);
            self.shared.publish(transition);
            self.shared.count(outcome, duration);
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.record(Outcome::Cancelled);
    }
}

impl<S, C, Req> Service<Req> for Breaker<S, C>
where
    S: Service<Req>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    C: Classify<S::Response>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BoxFuture<Result<S::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // No permit here: readiness is the inner service's alone.
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let now = self.shared.clock.now();
        let acquired = self.shared.breaker.acquire(now);
        self.shared.publish(acquired.transition);
        let permit = match acquired.result {
            Ok(permit) => permit,
            Err(rejection) => {
                self.shared.count(Outcome::Rejected, Duration::ZERO);
                let err =
                    LeveeError::new(ErrorCode::CircuitOpen, self.shared.breaker.key().as_ref())
                        .with_retry_after(rejection.retry_after)
                        .with_reason(rejection.state.as_str());
                return Box::pin(std::future::ready(Err(err.into())));
            }
        };
        let recorder = Recorder {
            shared: self.shared.clone(),
            permit: Some(permit),
            start: now,
        };
        let classifier = self.classifier.clone();
        let future = self.inner.call(request);
        Box::pin(async move {
            let result = future.await.map_err(Into::into);
            let outcome = classifier.classify(
                result
                    .as_ref()
                    .map_err(|e: &BoxError| &**e as &(dyn Error + 'static)),
            );
            recorder.finish(outcome);
            result
        })
    }
}
