//! Rate limits as a tower layer (SPEC §6).
//!
//! Every decision is levee-core's [`KeyedRateLimiter`]: one token bucket for the route, or
//! one per value of the configured key header (`key: header:x-client-id`; a request without
//! the header shares the `""` bucket). A request over the limit fails at once with a
//! [`LeveeError`] `rate_limited` (429) whose retry-after is when the next token will be
//! there, without touching the service below.

use crate::error::{BoxError, BoxFuture, LeveeError};
use crate::{default_clock, Clock};
use http::Request;
use levee_core::rate_limit::{KeyedRateLimiter, RateDecision};
use levee_core::ErrorCode;
use levee_telemetry::RouteMetrics;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// Limits the request rate; see the [module docs](self).
///
/// ```
/// use levee_core::rate_limit::{KeyedRateLimiter, RateLimitConfig};
/// use levee_tower::RateLimitLayer;
/// use std::sync::Arc;
///
/// let config = RateLimitConfig::new("100/s".parse()?);
/// let layer = RateLimitLayer::new("prices", Arc::new(KeyedRateLimiter::new(config)));
/// # drop(layer);
/// # Ok::<(), String>(())
/// ```
#[derive(Clone)]
pub struct RateLimitLayer {
    limiter: Arc<KeyedRateLimiter>,
    route: Arc<str>,
    clock: Arc<dyn Clock>,
    metrics: Option<Arc<RouteMetrics>>,
}

impl std::fmt::Debug for RateLimitLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("route", &self.route)
            .field("config", self.limiter.config())
            .finish_non_exhaustive()
    }
}

impl RateLimitLayer {
    /// A layer for `route` (the name in errors and metrics) over `limiter`.
    pub fn new(route: impl Into<Arc<str>>, limiter: Arc<KeyedRateLimiter>) -> Self {
        RateLimitLayer {
            limiter,
            route: route.into(),
            clock: default_clock(),
            metrics: None,
        }
    }

    /// Reads time from `clock`.
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Counts `levee_rate_limited_total` for the route.
    #[must_use]
    pub fn metrics(mut self, metrics: Arc<RouteMetrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`RateLimitLayer`].
#[derive(Clone)]
pub struct RateLimit<S> {
    inner: S,
    layer: RateLimitLayer,
}

impl<S> std::fmt::Debug for RateLimit<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit")
            .field("layer", &self.layer)
            .finish_non_exhaustive()
    }
}

impl<S, B> Service<Request<B>> for RateLimit<S>
where
    S: Service<Request<B>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BoxFuture<Result<S::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let layer = &self.layer;
        let key = layer
            .limiter
            .config()
            .key
            .as_ref()
            .and_then(|source| source.header())
            .and_then(|name| request.headers().get(name))
            .map(|value| value.as_bytes());
        match layer.limiter.acquire(key, layer.clock.now()) {
            RateDecision::Allowed => {
                let future = self.inner.call(request);
                Box::pin(async move { future.await.map_err(Into::into) })
            }
            RateDecision::Limited { retry_after } => {
                if let Some(metrics) = &layer.metrics {
                    metrics.rate_limited();
                }
                let err = LeveeError::new(ErrorCode::RateLimited, layer.route.as_ref())
                    .with_retry_after(Some(retry_after));
                Box::pin(std::future::ready(Err(err.into())))
            }
        }
    }
}
