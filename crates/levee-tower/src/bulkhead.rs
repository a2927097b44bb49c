//! The bulkhead as a tower layer (SPEC §3), on the server side (protect a handler) or the
//! client side (bound calls to an upstream).
//!
//! Every decision is levee-core's [`Bulkhead`]. Each request's class comes from, in order: a
//! [`Criticality`] in the request's extensions (the Rust API), the `levee-criticality` header,
//! or the layer's default (`standard`). A malformed header is answered `bad_request` rather
//! than guessed (a guessed class would silently change how the request is protected).
//!
//! The call is admitted, queued or rejected per levee-core: a queued call waits for a slot
//! until `max_wait`, and a more critical arrival at a full queue evicts the newest waiting call
//! of the lowest lower class. Rejections fail with a [`LeveeError`] `bulkhead_full` whose
//! reason is `full`, `queue_timeout` or `evicted`.
//!
//! The slot lives in the response future: it is released with the call's outcome (a sample
//! for an adaptive limit) when the future completes, and without one when the future is
//! dropped, so a client that goes away frees its slot at once and a queued call that is
//! dropped leaves the queue. The slot is held until the response head is ready, not while its
//! body streams.
//!
//! Queue timeouts need a timer: the layer sleeps (tokio) until the waiting call's deadline and
//! then expires it at `max(now, deadline)`, so a manual clock in tests cannot keep a call
//! queued forever.

use crate::classify::{Classify, HttpClassifier};
use crate::error::{BoxError, BoxFuture, LeveeError};
use crate::{default_clock, Clock};
use http::Request;
use levee_core::bulkhead::{Acquire, Bulkhead, BulkheadPermit, Rejection};
use levee_core::{Criticality, ErrorCode, Outcome};
use levee_telemetry::PartitionMetrics;
use std::error::Error;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service};

#[derive(Clone)]
struct Shared {
    bulkhead: Bulkhead,
    partition: Arc<str>,
    default_class: Criticality,
    clock: Arc<dyn Clock>,
    metrics: Option<Arc<PartitionMetrics>>,
}

impl Shared {
    fn gauges(&self) {
        if let Some(metrics) = &self.metrics {
            metrics.gauges(self.bulkhead.in_flight(), self.bulkhead.queue_depth());
        }
    }

    fn rejected(&self, rejection: Rejection) -> BoxError {
        if let Some(metrics) = &self.metrics {
            metrics.rejection(rejection.class, rejection.reason);
        }
        self.gauges();
        Box::new(
            LeveeError::new(ErrorCode::BulkheadFull, self.partition.as_ref())
                .with_reason(rejection.reason.as_str())
                .with_cause(rejection.to_string()),
        )
    }
}

/// Bounds concurrent calls by criticality; see the [module docs](self).
///
/// ```
/// use levee_core::bulkhead::{Bulkhead, BulkheadConfig};
/// use levee_tower::BulkheadLayer;
///
/// let bulkhead = Bulkhead::new(BulkheadConfig { max_concurrent: 8, ..Default::default() })?;
/// let service = tower::ServiceBuilder::new()
///     .layer(BulkheadLayer::new("pricing", bulkhead))
///     .service(tower::service_fn(|_req: http::Request<()>| async {
///         Ok::<_, std::convert::Infallible>(http::Response::new(()))
///     }));
/// # drop(service);
/// # Ok::<(), String>(())
/// ```
#[derive(Clone)]
pub struct BulkheadLayer<C = HttpClassifier> {
    shared: Shared,
    classifier: C,
}

impl std::fmt::Debug for BulkheadLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkheadLayer")
            .field("partition", &self.shared.partition)
            .finish_non_exhaustive()
    }
}

impl BulkheadLayer<HttpClassifier> {
    /// A layer over `bulkhead` for `partition` (the name in errors and metrics).
    pub fn new(partition: impl Into<Arc<str>>, bulkhead: Bulkhead) -> Self {
        BulkheadLayer {
            shared: Shared {
                bulkhead,
                partition: partition.into(),
                default_class: Criticality::Standard,
                clock: default_clock(),
                metrics: None,
            },
            classifier: HttpClassifier::default(),
        }
    }
}

impl<C> BulkheadLayer<C> {
    /// Classifies results with `classifier` (the samples of an adaptive limit).
    pub fn classifier<C2>(self, classifier: C2) -> BulkheadLayer<C2> {
        BulkheadLayer {
            shared: self.shared,
            classifier,
        }
    }

    /// The class of requests that name none (default `standard`; a route's `criticality`).
    #[must_use]
    pub fn default_criticality(mut self, class: Criticality) -> Self {
        self.shared.default_class = class;
        self
    }

    /// Reads time from `clock`.
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.shared.clock = clock;
        self
    }

    /// Keeps `levee_bulkhead_in_flight`, `levee_bulkhead_queue_depth` and
    /// `levee_bulkhead_rejections_total` for this partition.
    #[must_use]
    pub fn metrics(mut self, metrics: Arc<PartitionMetrics>) -> Self {
        self.shared.metrics = Some(metrics);
        self
    }

    /// The bulkhead.
    pub fn bulkhead(&self) -> &Bulkhead {
        &self.shared.bulkhead
    }
}

impl<S, C: Clone> Layer<S> for BulkheadLayer<C> {
    type Service = BulkheadService<S, C>;
    fn layer(&self, inner: S) -> Self::Service {
        BulkheadService {
            inner,
            shared: self.shared.clone(),
            classifier: self.classifier.clone(),
        }
    }
}

/// The service of [`BulkheadLayer`].
#[derive(Clone)]
pub struct BulkheadService<S, C = HttpClassifier> {
    inner: S,
    shared: Shared,
    classifier: C,
}

impl<S, C> std::fmt::Debug for BulkheadService<S, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkheadService")
            .field("partition", &self.shared.partition)
            .finish_non_exhaustive()
    }
}

/// The request's class: extensions, then `levee-criticality`, then `default`.
pub fn request_criticality<B>(
    request: &Request<B>,
    default: Criticality,
) -> Result<Criticality, levee_http::HeaderError> {
    if let Some(class) = request.extensions().get::<Criticality>() {
        return Ok(*class);
    }
    Ok(levee_http::headers::criticality(request.headers())?.unwrap_or(default))
}

/// Holds the slot; frees it (and refreshes the gauges) when dropped or completed.
struct Slot {
    shared: Shared,
    permit: Option<BulkheadPermit>,
}

impl Slot {
    fn complete(mut self, outcome: Outcome) {
        if let Some(permit) = self.permit.take() {
            permit.complete(outcome, self.shared.clock.now());
        }
        self.shared.gauges();
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            drop(permit);
            self.shared.gauges();
        }
    }
}

impl<S, C, B> Service<Request<B>> for BulkheadService<S, C>
where
    S: Service<Request<B>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    C: Classify<S::Response>,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BoxFuture<Result<S::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let shared = self.shared.clone();
        let class = match request_criticality(&request, shared.default_class) {
            Ok(class) => class,
            Err(e) => {
                let err = LeveeError::new(ErrorCode::BadRequest, shared.partition.as_ref())
                    .with_cause(e.to_string());
                return Box::pin(std::future::ready(Err(err.into())));
            }
        };
        // The service polled ready is the one that will be called, possibly after a wait.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let classifier = self.classifier.clone();
        let now = shared.clock.now();
        let admission = shared.bulkhead.try_acquire(class, now);
        shared.gauges();
        let permit_now = match admission {
            Acquire::Rejected(rejection) => {
                return Box::pin(std::future::ready(Err(shared.rejected(rejection))));
            }
            Acquire::Permitted(permit) => Ok(permit),
            Acquire::Queued(queued) => Err(queued),
        };
        Box::pin(async move {
            let permit = match permit_now {
                Ok(permit) => permit,
                Err(mut queued) => {
                    let deadline = queued.deadline();
                    let wait = deadline.saturating_since(shared.clock.now());
                    let granted = tokio::select! {
                        result = &mut queued => result,
                        () = tokio::time::sleep(wait) => {
                            // The timer is authoritative: a manual clock that has not moved
                            // must not keep the call queued forever.
                            let at = shared.clock.now().max(deadline);
                            shared.bulkhead.expire_waiting(at);
                            (&mut queued).await
                        }
                    };
                    match granted {
                        Ok(permit) => permit,
                        Err(rejection) => return Err(shared.rejected(rejection)),
                    }
                }
            };
            shared.gauges();
            let slot = Slot {
                shared,
                permit: Some(permit),
            };
            let result = inner.call(request).await.map_err(Into::into);
            let outcome = classifier.classify(
                result
                    .as_ref()
                    .map_err(|e: &BoxError| &**e as &(dyn Error + 'static)),
            );
            slot.complete(outcome);
            result
        })
    }
}
