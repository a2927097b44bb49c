//! Deadlines as a tower layer (SPEC §5): remaining time in, remaining time out.
//!
//! For each request the layer takes the shortest of:
//! - the layer's configured timeout (a route's `timeout`), if any;
//! - the inbound remaining time in `levee-timeout-ms` / `grpc-timeout` (parsed by levee-http;
//!   a malformed value is answered `bad_request`);
//! - a [`Deadline`] already in the request's extensions (put there by an outer deadline
//!   layer), or the deadline of the request being served by this task ([`current`]: a server
//!   side layer makes it visible to everything its handler awaits, so an outbound call made
//!   while serving inherits what is left).
//!
//! A request whose deadline is already spent is rejected before the service below runs
//! (`deadline_exceeded`, 504). Otherwise the [`Deadline`] is put into the request's
//! extensions, the client-side layer writes the remaining time into the outbound headers
//! (`levee-timeout-ms`, plus `grpc-timeout` for gRPC), and the call is cut off when the time
//! runs out, failing with `deadline_exceeded`. Deadlines are read on the injected clock; the
//! cut-off itself is a tokio timer of the remaining time.
//!
//! Put the deadline layer outside the retry layer: the retry policy reads the request's
//! [`Deadline`] to avoid retries that cannot finish, and rewrites the outbound header before
//! each retry with what will be left after its backoff.

use crate::error::{BoxError, BoxFuture, LeveeError};
use crate::{default_clock, Clock};
use http::Request;
use levee_core::deadline::Deadline;
use levee_core::ErrorCode;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tower::{Layer, Service};

/// The reason of a `deadline_exceeded` refused on arrival (outcome `rejected`).
pub const SPENT: &str = "spent";
/// The reason of a `deadline_exceeded` that cut a running call off (outcome `timeout`).
pub const EXPIRED: &str = "expired";

tokio::task_local! {
    static CURRENT: Deadline;
}

/// The deadline of the request this task is serving, when a [`DeadlineLayer`] set one.
/// Futures spawned onto other tasks do not see it; pass the [`Deadline`] along explicitly
/// (in the outbound request's extensions) there.
pub fn current() -> Option<Deadline> {
    CURRENT.try_with(|d| *d).ok()
}

/// Applies deadlines; see the [module docs](self).
///
/// ```
/// use levee_tower::DeadlineLayer;
/// use std::time::Duration;
///
/// // Server: honour the caller's levee-timeout-ms, and never run longer than 2 s.
/// let server = DeadlineLayer::server(Some(Duration::from_secs(2)));
/// // Client: at most 800 ms per call, and tell the upstream what is left.
/// let client = DeadlineLayer::client(Some(Duration::from_millis(800)));
/// # drop((server, client));
/// ```
#[derive(Clone)]
pub struct DeadlineLayer {
    timeout: Option<Duration>,
    propagate: bool,
    name: Arc<str>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for DeadlineLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadlineLayer")
            .field("timeout", &self.timeout)
            .field("propagate", &self.propagate)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl DeadlineLayer {
    /// For a server: reads the inbound deadline headers; `timeout` caps every request.
    pub fn server(timeout: Option<Duration>) -> Self {
        DeadlineLayer {
            timeout,
            propagate: false,
            name: Arc::from(""),
            clock: default_clock(),
        }
    }

    /// For a client: like [`server`](Self::server), and writes the remaining time into the
    /// outbound `levee-timeout-ms` (and `grpc-timeout` for gRPC).
    pub fn client(timeout: Option<Duration>) -> Self {
        DeadlineLayer {
            propagate: true,
            ..DeadlineLayer::server(timeout)
        }
    }

    /// The service or upstream named in errors (`The request ran out of time before <name>
    /// could answer.`).
    #[must_use]
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = name.into();
        self
    }

    /// Reads time from `clock`.
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = DeadlineService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        DeadlineService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`DeadlineLayer`].
#[derive(Clone)]
pub struct DeadlineService<S> {
    inner: S,
    layer: DeadlineLayer,
}

impl<S> std::fmt::Debug for DeadlineService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadlineService")
            .field("layer", &self.layer)
            .finish_non_exhaustive()
    }
}

impl<S, B> Service<Request<B>> for DeadlineService<S>
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

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let layer = &self.layer;
        let now = layer.clock.now();
        let fail =
            |err: LeveeError| -> Self::Future { Box::pin(std::future::ready(Err(err.into()))) };
        let inbound = match levee_http::headers::inbound_deadline(request.headers()) {
            Ok(inbound) => inbound,
            Err(e) => {
                return fail(
                    LeveeError::new(ErrorCode::BadRequest, layer.name.as_ref())
                        .with_cause(e.to_string()),
                )
            }
        };
        let ambient = request
            .extensions()
            .get::<Deadline>()
            .copied()
            .or_else(current)
            .map(|d| d.remaining(now));
        let remaining = [layer.timeout, inbound, ambient]
            .into_iter()
            .flatten()
            .min();
        let Some(remaining) = remaining else {
            // No deadline from anywhere: nothing to enforce or propagate.
            let future = self.inner.call(request);
            return Box::pin(async move { future.await.map_err(Into::into) });
        };
        let expired = || {
            LeveeError::new(ErrorCode::DeadlineExceeded, layer.name.as_ref())
                .with_cause(format!("deadline of {remaining:?} spent"))
        };
        if remaining.is_zero() {
            return fail(
                expired()
                    .with_reason(SPENT)
                    .with_cause("the deadline was already spent on arrival"),
            );
        }
        let deadline = Deadline::after(now, remaining);
        request.extensions_mut().insert(deadline);
        if layer.propagate {
            levee_http::headers::write_deadline(request.headers_mut(), remaining);
        }
        let timed_out = expired().with_reason(EXPIRED);
        let future = self.inner.call(request);
        Box::pin(CURRENT.scope(deadline, async move {
            match tokio::time::timeout(remaining, future).await {
                Ok(result) => result.map_err(Into::into),
                Err(_) => Err(timed_out.into()),
            }
        }))
    }
}
