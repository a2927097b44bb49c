//! One try of a call against one endpoint: build the upstream request, send it within the
//! attempt's time, and say how it ended in SPEC §1 words.
//!
//! Every attempt holds a breaker permit from before it is sent until its outcome is recorded.
//! [`AttemptRecord`] makes that unconditional: if the request future is dropped mid-attempt
//! (the client went away, so hyper dropped the handler), the record's `Drop` reports the
//! attempt as `cancelled` — to the breaker (which frees a half-open probe slot), to the
//! metrics and to the endpoint's load — and dropping the client future has already closed the
//! upstream request.

use crate::body::ProxyBody;
use crate::client;
use crate::forwarding;
use crate::upstream::{Chosen, Upstream};
use http::request::Parts;
use http::{Request, Response};
use hyper::body::Incoming;
use levee_core::breaker::{CircuitBreaker, Permit, Transition};
use levee_core::outcome::{classify, classify_grpc, AttemptResult};
use levee_core::time::SystemClock;
use levee_core::{Clock, Outcome};
use levee_http::TraceContext;
use levee_telemetry::Metrics;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How an attempt ended.
pub enum AttemptEnd {
    /// The upstream answered.
    Response {
        /// The answer (body not read yet).
        response: Response<Incoming>,
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
}

/// Builds the upstream request for `endpoint`.
pub fn build_request(
    upstream: &Upstream,
    chosen: &Chosen,
    out: Outbound<'_>,
) -> Result<Request<ProxyBody>, http::Error> {
    let version = client::version(upstream.config().protocol);
    let uri = forwarding::upstream_uri(&out.parts.uri, chosen.endpoint.authority())?;
    let mut headers = forwarding::upstream_headers(
        &out.parts.headers,
        &out.parts.uri,
        version,
        out.client,
        out.tls,
    );
    if let Some(remaining) = out.remaining {
        levee_http::headers::write_deadline(&mut headers, remaining);
    }
    out.trace.inject(&mut headers);
    let mut request = Request::new(out.body);
    *request.method_mut() = out.parts.method.clone();
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    *request.headers_mut() = headers;
    Ok(request)
}

/// Sends `request` and waits for the response head at most `timeout`.
pub async fn send(
    upstream: &Upstream,
    request: Request<ProxyBody>,
    timeout: Option<Duration>,
) -> AttemptEnd {
    let call = upstream.client().request(request);
    let answered = match timeout {
        Some(t) => match tokio::time::timeout(t, call).await {
            Ok(answer) => answer,
            Err(_) => {
                return AttemptEnd::Failed {
                    result: AttemptResult::Timeout,
                    outcome: Outcome::Timeout,
                    detail: format!("no response within {} ms", t.as_millis()),
                }
            }
        },
        None => call.await,
    };
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
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u32>().ok());
    let outcome = match grpc {
        Some(code) if response.status().is_success() => classify_grpc(code),
        _ => classify(result, &upstream.config().failure_statuses),
    };
    (result, outcome)
}

/// Reports one attempt to the breaker and the metrics exactly once: through
/// [`AttemptRecord::finish`], or as `cancelled` when dropped unfinished.
pub struct AttemptRecord {
    breaker: Arc<CircuitBreaker>,
    permit: Option<Permit>,
    metrics: Arc<Metrics>,
    endpoint_key: String,
    started: Instant,
}

impl AttemptRecord {
    /// Starts recording an attempt that holds `permit`.
    pub fn new(
        breaker: Arc<CircuitBreaker>,
        permit: Permit,
        metrics: Arc<Metrics>,
        endpoint_key: &str,
    ) -> Self {
        AttemptRecord {
            breaker,
            permit: Some(permit),
            metrics,
            endpoint_key: endpoint_key.to_string(),
            started: Instant::now(),
        }
    }

    /// Time since the attempt started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Records `outcome`; returns the breaker transition it caused.
    pub fn finish(mut self, outcome: Outcome) -> Option<Transition> {
        self.report(outcome)
    }

    fn report(&mut self, outcome: Outcome) -> Option<Transition> {
        let permit = self.permit.take()?;
        let duration = self.started.elapsed();
        self.metrics.call(&self.endpoint_key, outcome, duration);
        let transition = self
            .breaker
            .record(permit, outcome, duration, SystemClock.now());
        if let Some(t) = &transition {
            crate::observe::transition(&self.metrics, t);
        }
        transition
    }
}

impl Drop for AttemptRecord {
    fn drop(&mut self) {
        if self.permit.is_some() {
            self.report(Outcome::Cancelled);
        }
    }
}
