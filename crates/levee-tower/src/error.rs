//! The one error every layer answers with, and its SPEC §7 problem+json answer.
//!
//! A layer that refuses a call (breaker open, bulkhead full, rate limited, deadline spent, a
//! malformed Levee header) fails it with a [`LeveeError`] carrying the SPEC §7 code, the
//! upstream (or partition, or route) it protects and, when known, when to try again. The
//! layers' error type is [`BoxError`] (tower's convention, so layers stack with tower's own);
//! [`find_levee_error`] digs a `LeveeError` out of it, and [`error_response`] /
//! [`ProblemLayer`] turn any error into the envelope, so a server answers exactly as the Levee
//! proxy and the Go SDK do.
//!
//! Errors that are not Levee's are classified here too ([`attempt_result_of`]): a hyper-util
//! client error is a connect failure, a refused stream or a reset (the same rule as the proxy's
//! client), tower's `Elapsed` is a timeout, anything else is a reset (the exchange broke).

use bytes::Bytes;
use http::{Response, StatusCode};
use levee_core::outcome::AttemptResult;
use levee_core::{ErrorCode, Outcome};
use levee_http::{problem_response, Problem};
use std::convert::Infallible;
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tower::{Layer, Service};

/// Tower's boxed error: every levee-tower service fails with one.
pub type BoxError = tower::BoxError;

/// A boxed, sendable response future, as every levee-tower service returns.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Levee refused or cut short a call: the SPEC §7 code and what the envelope needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeveeError {
    code: ErrorCode,
    upstream: Arc<str>,
    retry_after: Option<Duration>,
    reason: Option<&'static str>,
    cause: Option<String>,
}

impl LeveeError {
    /// An error with `code` for `upstream` (the endpoint key, partition or route; empty when
    /// not known).
    pub fn new(code: ErrorCode, upstream: impl Into<Arc<str>>) -> Self {
        LeveeError {
            code,
            upstream: upstream.into(),
            retry_after: None,
            reason: None,
            cause: None,
        }
    }

    /// Sets when the caller may try again.
    #[must_use]
    pub fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// Sets the fixed reason word (`full`, `evicted`, `open`, `retry_budget_exhausted` …).
    #[must_use]
    pub fn with_reason(mut self, reason: &'static str) -> Self {
        self.reason = Some(reason);
        self
    }

    /// Sets the precise cause, for logs (never shown to clients).
    #[must_use]
    pub fn with_cause(mut self, cause: impl Into<String>) -> Self {
        self.cause = Some(cause.into());
        self
    }

    /// The SPEC §7 code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The upstream, partition or route the error names.
    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    /// When the caller may try again, when known.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The reason word, when the layer gave one.
    pub fn reason(&self) -> Option<&'static str> {
        self.reason
    }

    /// The precise cause, when the layer gave one.
    pub fn cause(&self) -> Option<&str> {
        self.cause.as_deref()
    }

    /// The SPEC §1 outcome of a call that ended with this error: `timeout` for
    /// `deadline_exceeded` and `upstream_timeout`, except a deadline already spent on arrival
    /// (reason `spent`), which Levee refused (`rejected`); `failure` for
    /// `upstream_unavailable`; `rejected` for everything else Levee refused.
    pub fn outcome(&self) -> Outcome {
        match self.code {
            ErrorCode::DeadlineExceeded if self.reason == Some(crate::deadline::SPENT) => {
                Outcome::Rejected
            }
            ErrorCode::DeadlineExceeded | ErrorCode::UpstreamTimeout => Outcome::Timeout,
            ErrorCode::UpstreamUnavailable => Outcome::Failure,
            _ => Outcome::Rejected,
        }
    }

    /// The envelope (SPEC §7) for this error.
    pub fn to_problem(&self) -> Problem {
        let mut problem =
            Problem::new(self.code, self.upstream.as_ref()).with_retry_after(self.retry_after);
        problem.cause = self.cause.clone();
        problem
    }

    /// The whole problem+json answer.
    pub fn to_response<B: From<Bytes>>(&self) -> Response<B> {
        self.to_problem().to_response()
    }
}

impl fmt::Display for LeveeError {
    /// `circuit_open: inventory is failing; … (cause)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let upstream = if self.upstream.is_empty() {
            levee_http::problem::UNKNOWN_UPSTREAM
        } else {
            &self.upstream
        };
        write!(
            f,
            "{}: {}",
            self.code,
            self.code.detail(upstream, self.retry_after)
        )?;
        if let Some(cause) = &self.cause {
            write!(f, " ({cause})")?;
        }
        Ok(())
    }
}

impl Error for LeveeError {}

/// The [`LeveeError`] in `err` or in its chain of sources, if any.
pub fn find_levee_error<'a>(err: &'a (dyn Error + 'static)) -> Option<&'a LeveeError> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(levee) = e.downcast_ref::<LeveeError>() {
            return Some(levee);
        }
        current = e.source();
    }
    None
}

/// How an attempt that ended in `err` went, in SPEC §1 words; `None` when Levee itself
/// refused it (a [`LeveeError`] other than a timeout or `upstream_unavailable`), which is
/// never retried and never counted.
pub fn attempt_result_of(err: &(dyn Error + 'static)) -> Option<AttemptResult> {
    if let Some(levee) = find_levee_error(err) {
        return match levee.outcome() {
            Outcome::Timeout => Some(AttemptResult::Timeout),
            Outcome::Failure => Some(AttemptResult::ConnectFailure),
            _ => None,
        };
    }
    let mut current = Some(err);
    while let Some(e) = current {
        if e.is::<tower::timeout::error::Elapsed>() || e.is::<tokio::time::error::Elapsed>() {
            return Some(AttemptResult::Timeout);
        }
        if let Some(client) = e.downcast_ref::<hyper_util::client::legacy::Error>() {
            if client.is_connect() {
                return Some(AttemptResult::ConnectFailure);
            }
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return Some(AttemptResult::ConnectFailure);
            }
        }
        // h2 is not a dependency, so its reason is recognised by its Debug spelling, as the
        // proxy's client does.
        if format!("{e:?}").contains("REFUSED_STREAM") {
            return Some(AttemptResult::RefusedStream);
        }
        current = e.source();
    }
    Some(AttemptResult::Reset)
}

/// An inner service's error type, as the retry policy needs to see it: how the attempt
/// ended, and whether a Levee error can replace it (to answer `retry_budget_exhausted` or
/// `circuit_open` when no upstream response exists).
pub trait AttemptError: Sized {
    /// How the attempt ended; `None` when Levee refused it (never retried).
    fn attempt_result(&self) -> Option<AttemptResult>;
    /// `err` as this type, when the type can hold it.
    fn from_levee(err: LeveeError) -> Option<Self>;
}

impl AttemptError for BoxError {
    fn attempt_result(&self) -> Option<AttemptResult> {
        attempt_result_of(&**self)
    }
    fn from_levee(err: LeveeError) -> Option<Self> {
        Some(Box::new(err))
    }
}

impl AttemptError for LeveeError {
    fn attempt_result(&self) -> Option<AttemptResult> {
        attempt_result_of(self)
    }
    fn from_levee(err: LeveeError) -> Option<Self> {
        Some(err)
    }
}

impl AttemptError for hyper_util::client::legacy::Error {
    fn attempt_result(&self) -> Option<AttemptResult> {
        attempt_result_of(self)
    }
    fn from_levee(_: LeveeError) -> Option<Self> {
        None
    }
}

/// The answer a server gives for `err`: the [`LeveeError`]'s envelope; `deadline_exceeded`
/// for a tower or tokio timeout; `upstream_unavailable` (502) for a client error that could
/// not connect; otherwise a plain 500 problem+json (`about:blank`), since the error is the
/// service's own and carries no SPEC code.
pub fn error_response<B: From<Bytes>>(err: &(dyn Error + 'static)) -> Response<B> {
    if let Some(levee) = find_levee_error(err) {
        return levee.to_response();
    }
    match attempt_result_of(err) {
        Some(AttemptResult::Timeout) => {
            return Problem::new(ErrorCode::DeadlineExceeded, "").to_response();
        }
        Some(AttemptResult::ConnectFailure) => {
            return Problem::new(ErrorCode::UpstreamUnavailable, "").to_response();
        }
        _ => {}
    }
    let json = serde_json::json!({
        "type": "about:blank",
        "title": "Internal Server Error",
        "status": 500,
        "detail": "The service failed to answer; please try again later.",
    });
    problem_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        Bytes::from(json.to_string()),
        None,
    )
}

/// Turns every error of the service below into its problem+json answer ([`error_response`]),
/// so the stack's error type becomes [`Infallible`] as hyper and axum servers want. The
/// [`LeveeError`], when there is one, is also put into the response's extensions.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProblemLayer;

impl ProblemLayer {
    /// The layer.
    pub fn new() -> Self {
        ProblemLayer
    }
}

impl<S> Layer<S> for ProblemLayer {
    type Service = ProblemService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        ProblemService {
            inner,
            broken: None,
        }
    }
}

/// The service of [`ProblemLayer`].
#[derive(Debug)]
pub struct ProblemService<S> {
    inner: S,
    /// The inner service failed to become ready: the next call is answered with this error
    /// (the inner service is never called while not ready).
    broken: Option<BoxError>,
}

impl<S: Clone> Clone for ProblemService<S> {
    fn clone(&self) -> Self {
        ProblemService {
            inner: self.inner.clone(),
            broken: None,
        }
    }
}

impl<S, Req, B> Service<Req> for ProblemService<S>
where
    S: Service<Req, Response = Response<B>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: From<Bytes> + Send + 'static,
{
    type Response = Response<B>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Response<B>, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        if self.broken.is_some() {
            return Poll::Ready(Ok(()));
        }
        match self.inner.poll_ready(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Ready(Err(err)) => {
                self.broken = Some(err.into());
                Poll::Ready(Ok(()))
            }
        }
    }

    fn call(&mut self, request: Req) -> Self::Future {
        if let Some(err) = self.broken.take() {
            return Box::pin(std::future::ready(Ok(answer(err))));
        }
        let future = self.inner.call(request);
        Box::pin(async move {
            Ok(match future.await {
                Ok(response) => response,
                Err(err) => answer(err.into()),
            })
        })
    }
}

/// The envelope for `err`, with the [`LeveeError`] (if any) in the response's extensions so
/// outer middleware (metrics, access logs) can see what Levee decided.
fn answer<B: From<Bytes>>(err: BoxError) -> Response<B> {
    let mut response: Response<B> = error_response(&*err);
    if let Some(levee) = find_levee_error(&*err) {
        response.extensions_mut().insert(levee.clone());
    }
    response
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn levee_errors_render_their_envelope_and_outcome() {
        let err = LeveeError::new(ErrorCode::CircuitOpen, "inventory")
            .with_retry_after(Some(Duration::from_millis(4001)));
        assert_eq!(err.outcome(), Outcome::Rejected);
        let response: Response<Bytes> = err.to_response();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "5");
        let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(body["code"], "circuit_open");
        assert_eq!(body["upstream"], "inventory");
        assert!(err
            .to_string()
            .starts_with("circuit_open: inventory is failing"));
    }

    #[test]
    fn boxed_errors_are_found_and_classified() {
        let boxed: BoxError = Box::new(LeveeError::new(ErrorCode::DeadlineExceeded, "x"));
        assert_eq!(
            find_levee_error(&*boxed).map(LeveeError::code),
            Some(ErrorCode::DeadlineExceeded)
        );
        assert_eq!(boxed.attempt_result(), Some(AttemptResult::Timeout));
        let rejected: BoxError = Box::new(LeveeError::new(ErrorCode::BulkheadFull, "x"));
        assert_eq!(rejected.attempt_result(), None);
        let refused: BoxError =
            Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(
            refused.attempt_result(),
            Some(AttemptResult::ConnectFailure)
        );
        let other: BoxError = "broken pipe".into();
        assert_eq!(other.attempt_result(), Some(AttemptResult::Reset));
        let response: Response<Bytes> = error_response(&*other);
        assert_eq!(response.status(), 500);
    }
}
