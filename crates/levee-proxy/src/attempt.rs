//! One try of a call against one endpoint: build the upstream request, send it within the
//! attempt's time, and say how it ended in SPEC §1 words.
//!
//! Every attempt holds a breaker permit from before it is sent until its outcome is recorded.
//! [`AttemptRecord`] makes that unconditional: if the request future is dropped mid-attempt
//! (the client went away, so hyper dropped the handler), the record's `Drop` reports the
//! attempt as `cancelled` — to the breaker (which frees a half-open probe slot), to the
//! metrics and to the endpoint's load — and dropping the client future has already closed the
//! upstream request.
//!
//! A gRPC answer usually carries its status in trailers, after the body. For one whose head
//! has no `grpc-status` (not trailers-only), the attempt is recorded when the trailers pass
//! through [`GrpcOutcome`]: `grpc-status` classified by SPEC §1; a body that ends without one,
//! or breaks, is a `failure` (gRPC clients read a missing status as an error too); a client
//! that goes away first makes it `cancelled`. The recorded duration is still the time to the
//! response head, as for every other call: a long server stream is not a slow call. The
//! retry decision, the endpoint's outlier detection and the access log see the head (a
//! streamed body cannot be retried anyway).
//!
//! The record also carries the attempt to the fleet (see `fleet`): its outcome goes to the
//! registry client's report batch, and a fleet probe lease, when the attempt holds one, is
//! completed with the same outcome (`cancelled` when dropped).

use crate::body::ProxyBody;
use crate::carried::Carried;
use crate::client;
use crate::fleet::Fleet;
use crate::forwarding;
use crate::runtime::Route;
use crate::upstream::{Chosen, Upstream};
use crate::upstream_body::UpstreamBody;
use http::request::Parts;
use http::uri::Authority;
use http::{Request, Response};
use levee_core::breaker::{Permit, Transition};
use levee_core::outcome::{classify, classify_grpc, AttemptResult};
use levee_core::time::Timestamp;
use levee_core::Outcome;
use levee_http::TraceContext;
use levee_registry_client::ProbeLease;
use levee_telemetry::Metrics;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;

/// How an attempt ended.
pub enum AttemptEnd {
    /// The upstream answered.
    Response {
        /// The answer (body not read yet).
        response: Response<UpstreamBody>,
        /// `Status(code)`.
        result: AttemptResult,
        /// Its classification.
        outcome: Outcome,
    },
    /// No answer: connect failure, reset, refused stream or timeout.
    Failed {
        /// What happened.
        result: AttemptResult,
        /// Its classification.
        outcome: Outcome,
        /// Details for the log.
        detail: String,
    },
}

impl AttemptEnd {
    /// The attempt's result.
    pub fn result(&self) -> AttemptResult {
        match self {
            AttemptEnd::Response { result, .. } | AttemptEnd::Failed { result, .. } => *result,
        }
    }

    /// The attempt's outcome.
    pub fn outcome(&self) -> Outcome {
        match self {
            AttemptEnd::Response { outcome, .. } | AttemptEnd::Failed { outcome, .. } => *outcome,
        }
    }
}

/// What the upstream request is made of.
pub struct Outbound<'a> {
    /// The inbound request's head.
    pub parts: &'a Parts,
    /// The body for this attempt.
    pub body: ProxyBody,
    /// The trace, for the child `traceparent`.
    pub trace: &'a TraceContext,
    /// Time left for the call, written as the outbound deadline.
    pub remaining: Option<Duration>,
    /// The client's address (`X-Forwarded-For`).
    pub client: Option<SocketAddr>,
    /// Whether the client spoke TLS (`X-Forwarded-Proto`).
    pub tls: bool,
    /// Which of Levee's headers the inbound request carries.
    pub carried: Carried,
}

/// Builds the upstream request for `endpoint`.
pub fn build_request(
    upstream: &Upstream,
    chosen: &Chosen,
    out: Outbound<'_>,
) -> Result<Request<ProxyBody>, http::Error> {
    let version = client::version(upstream.config().protocol);
    let uri = forwarding::upstream_uri(&out.parts.uri, chosen.endpoint.authority(), version)?;
    let mut headers = forwarding::upstream_headers(
        &out.parts.headers,
        &out.parts.uri,
        version,
        out.client,
        out.tls,
        out.carried.any(Carried::X_FORWARDED_FOR),
    );
    if let Some(remaining) = out.remaining {
        levee_http::headers::write_deadline_given(
            &mut headers,
            remaining,
            out.carried.any(Carried::GRPC_TIMEOUT),
        );
    }
    out.trace
        .inject_given(&mut headers, out.carried.any(Carried::TRACESTATE));
    let mut request = Request::new(out.body);
    *request.method_mut() = out.parts.method.clone();
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    *request.headers_mut() = headers;
    Ok(request)
}

/// Sends `request` to `endpoint` and waits for the response head at most `timeout`.
///
/// The request goes into the client's future at once, so this future does not hold it as well
/// (an `async fn` would: its by-value arguments stay in its state). And it is a hand-written
/// future, not an `async` block around `tokio::time::timeout(call)`: a block keeps the call it
/// captured *and* the timeout it moved the call into, twice the upstream call's state, which
/// every future awaiting this one carries and copies when it moves (docs/benchmarks.md, the
/// eighth data-path pass).
pub fn send<'a>(
    upstream: &'a Upstream,
    endpoint: &'a Authority,
    request: Request<ProxyBody>,
    timeout: Option<Duration>,
) -> Sending<
    'a,
    impl Future<Output = Result<Response<UpstreamBody>, client::ClientError>> + Send + 'a,
> {
    Sending {
        call: upstream.client().request(endpoint, request),
        deadline: timeout.map(tokio::time::sleep),
        timeout,
        upstream,
    }
}

pin_project_lite::pin_project! {
    /// The future of [`send`]: the upstream call, raced against its timeout.
    pub struct Sending<'a, F> {
        #[pin]
        call: F,
        #[pin]
        deadline: Option<tokio::time::Sleep>,
        timeout: Option<Duration>,
        upstream: &'a Upstream,
    }
}

impl<F> Future for Sending<'_, F>
where
    F: Future<Output = Result<Response<UpstreamBody>, client::ClientError>>,
{
    type Output = AttemptEnd;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<AttemptEnd> {
        let this = self.project();
        // The call first, as `tokio::time::timeout` does: an answer that is ready wins.
        if let Poll::Ready(answered) = this.call.poll(cx) {
            return Poll::Ready(ended(answered, this.upstream));
        }
        match this.deadline.as_pin_mut().map(|d| d.poll(cx)) {
            Some(Poll::Ready(())) => {
                let t = this.timeout.unwrap_or_default();
                Poll::Ready(AttemptEnd::Failed {
                    result: AttemptResult::Timeout,
                    outcome: Outcome::Timeout,
                    detail: format!("no response within {} ms", t.as_millis()),
                })
            }
            _ => Poll::Pending,
        }
    }
}

/// What an answered (or failed) upstream call makes of the attempt.
fn ended(
    answered: Result<Response<UpstreamBody>, client::ClientError>,
    upstream: &Upstream,
) -> AttemptEnd {
    match answered {
        Ok(response) => {
            let (result, outcome) = classify_response(&response, upstream);
            AttemptEnd::Response {
                response,
                result,
                outcome,
            }
        }
        Err(e) => {
            let result = client::classify_error(&e);
            AttemptEnd::Failed {
                result,
                outcome: classify(result, &upstream.config().failure_statuses),
                detail: client::describe(&e),
            }
        }
    }
}

/// Classifies a response head: the HTTP status against the upstream's `failure_statuses`, or,
/// for a gRPC answer that already carries `grpc-status` in its head (trailers-only), the gRPC
/// code (SPEC §1).
fn classify_response<B>(response: &Response<B>, upstream: &Upstream) -> (AttemptResult, Outcome) {
    let result = AttemptResult::Status(response.status().as_u16());
    let grpc = response
        .headers()
        .get(GRPC_STATUS)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u32>().ok());
    let outcome = match grpc {
        Some(code) if response.status().is_success() => classify_grpc(code),
        _ => classify(result, &upstream.config().failure_statuses),
    };
    (result, outcome)
}

/// True when the attempt's outcome is in the response's trailers: a gRPC answer
/// (`content-type: application/grpc…`) with HTTP 200 and no `grpc-status` in its head.
pub fn awaits_grpc_trailers(end: &AttemptEnd) -> bool {
    let AttemptEnd::Response { response, .. } = end else {
        return false;
    };
    // The content type first: a standard name's lookup is cheaper, and it settles most
    // answers (not gRPC) before `grpc-status` is looked for.
    response.status() == http::StatusCode::OK
        && response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/grpc"))
        && !response.headers().contains_key(GRPC_STATUS)
}

/// A ready name: a `&str` key would be parsed on every lookup.
const GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");

/// gRPC `UNKNOWN`: what a body that ends without a status counts as.
const GRPC_UNKNOWN: u32 = 2;

/// A gRPC response body that records its attempt when the trailers pass (see the module
/// docs). Dropped before the end: the record reports `cancelled`.
pub struct GrpcOutcome {
    inner: UpstreamBody,
    record: Option<AttemptRecord>,
}

impl GrpcOutcome {
    /// Wraps `inner`; `record` is finished by its trailers.
    pub fn new(inner: UpstreamBody, record: AttemptRecord) -> Self {
        GrpcOutcome {
            inner,
            record: Some(record),
        }
    }

    fn finish(&mut self, outcome: Outcome) {
        if let Some(record) = self.record.take() {
            record.finish(outcome);
        }
    }
}

impl http_body::Body for GrpcOutcome {
    type Data = bytes::Bytes;
    type Error = crate::body::BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        use std::task::Poll;
        let this = self.get_mut();
        let polled = std::pin::Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    let code = trailers
                        .get(GRPC_STATUS)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u32>().ok())
                        .unwrap_or(GRPC_UNKNOWN);
                    this.finish(classify_grpc(code));
                }
            }
            Poll::Ready(Some(Err(_))) => this.finish(Outcome::Failure),
            Poll::Ready(None) => this.finish(classify_grpc(GRPC_UNKNOWN)),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        // Until the outcome is recorded, say there is more, so the end is polled and seen.
        self.record.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Reports one attempt to the breaker, the metrics and the fleet exactly once: through
/// [`AttemptRecord::finish`], or as `cancelled` when dropped unfinished.
pub struct AttemptRecord {
    /// The route: its breaker, fleet gate and endpoint key (one reference count, where
    /// copying the key was an allocation per attempt).
    route: Arc<Route>,
    permit: Option<Permit>,
    metrics: Arc<Metrics>,
    fleet: Option<Fleet>,
    lease: Option<ProbeLease>,
    started: Instant,
    /// Time to the response head, once known (gRPC trailers are recorded later).
    answered: Option<Duration>,
}

impl AttemptRecord {
    /// Starts recording an attempt on `route` that holds `permit`.
    pub fn new(
        route: &Arc<Route>,
        permit: Permit,
        metrics: Arc<Metrics>,
        fleet: Option<&Fleet>,
    ) -> Self {
        AttemptRecord {
            route: Arc::clone(route),
            permit: Some(permit),
            metrics,
            fleet: fleet.cloned(),
            lease: None,
            started: crate::clock::now(),
            answered: None,
        }
    }

    /// Notes that the attempt was answered now (response head or failure): the duration later
    /// recorded is this one, which is returned.
    pub fn mark_answered(&mut self) -> Duration {
        let took = crate::clock::now().saturating_duration_since(self.started);
        self.answered = Some(took);
        took
    }

    /// Makes the attempt a fleet probe: `lease` is completed with its outcome. The attempt's
    /// clock restarts, so the wait for the lease is not counted as the upstream's latency.
    pub fn attach_lease(&mut self, lease: ProbeLease) {
        self.lease = Some(lease);
        self.started = crate::clock::now();
    }

    /// Records `outcome`; returns the breaker transition it caused.
    pub fn finish(self, outcome: Outcome) -> Option<Transition> {
        self.finish_at(outcome, crate::clock::timestamp())
    }

    /// [`finish`](Self::finish) with the caller's reading of the clock.
    pub fn finish_at(mut self, outcome: Outcome, now: Timestamp) -> Option<Transition> {
        self.report(outcome, now)
    }

    fn report(&mut self, outcome: Outcome, now: Timestamp) -> Option<Transition> {
        let permit = self.permit.take()?;
        let duration = self
            .answered
            .unwrap_or_else(|| crate::clock::now().saturating_duration_since(self.started));
        let route = &self.route;
        route
            .endpoint_metrics(&self.metrics)
            .call(outcome, duration);
        if let Some(fleet) = &self.fleet {
            let slow = duration >= route.breaker.config().slow_call_duration;
            fleet.record(&route.endpoint_key, outcome, duration, slow);
        }
        if let Some(lease) = self.lease.take() {
            lease.complete(outcome, duration);
        }
        let transition = route.breaker.record(permit, outcome, duration, now);
        if let Some(t) = &transition {
            crate::observe::transition(&self.metrics, t, Some(&route.gate));
        }
        transition
    }
}

impl Drop for AttemptRecord {
    fn drop(&mut self) {
        if self.permit.is_some() {
            self.report(Outcome::Cancelled, crate::clock::timestamp());
        }
    }
}
