//! The life of one proxied request, in order:
//!
//! 1. **Trace and ids**: continue or start the W3C trace, keep or create `x-request-id`, open
//!    the request span every log line of the request belongs to.
//! 2. **Route**: the first matching route; none → `404`. A route whose `shed_at_level` is at
//!    or below the fleet's degradation level (SPEC §10) is shed: its fallbacks (stale, then
//!    static) or `503 feature_disabled`, before any other work.
//! 3. **Levee headers**: `levee-criticality` (else the route's class) and the inbound deadline;
//!    a malformed one → `400 bad_request`. The deadline is the shorter of the route `timeout`
//!    and the inbound time; already spent → `504 deadline_exceeded` before any upstream work.
//! 4. **Rate limit** → `429 rate_limited` with `Retry-After`.
//! 5. **Body**: over `max_body_bytes` by its length → `413`; small bodies are read now so
//!    retries can replay them (see `body`).
//! 6. **Bulkhead** of the route's partition, by criticality; queued calls wait at most
//!    `max_wait` and never past the deadline → `503 bulkhead_full`.
//! 7. **Attempts**: for each, the fleet breaker (open → `503 circuit_open` with the fleet's
//!    `Retry-After`; probing → a probe lease from the registry or `circuit_open`, see
//!    `fleet`), a local breaker permit (open → `503 circuit_open` with `Retry-After`),
//!    an endpoint from the balancer (none → `502 upstream_unavailable`), the outbound deadline
//!    header rewritten with what is left, and the attempt bounded by the per-try timeout and
//!    the deadline (→ `504 upstream_timeout`; the upstream request is dropped, which closes it).
//!    Each attempt's outcome goes to the breaker, the endpoint (latency, outlier ejection) and
//!    the metrics; then levee-core's `retry::decide` says whether to try again (budget,
//!    idempotency, backoff with jitter, `Retry-After`, deadline).
//! 8. **Answer**: a successful response streams back (a copy of cacheable GETs is kept for
//!    `stale_if_error`; a gRPC answer whose `grpc-status` comes in trailers is recorded to
//!    the breaker, metrics and fleet when the trailers pass, see `attempt`); otherwise the
//!    route's fallbacks are tried in order — stale, then static — and then the upstream's own
//!    failure response if there is one, else the SPEC §7 envelope.
//!
//! Decisions where SPEC is silent:
//! - Fallbacks answer upstream-side failures only. A request refused for the client's own
//!   sake (`bad_request`, `rate_limited`) gets the envelope: serving it stale would defeat the
//!   limit and hide the client's mistake.
//! - A failure-classified upstream response that no fallback replaces is returned as it is
//!   (the client learns more from the real 503 than from an envelope); the fallback `reason`
//!   for such a response is `upstream_unavailable`.
//! - An attempt that outlives the deadline is `upstream_timeout` (the upstream was slow);
//!   `deadline_exceeded` is kept for deadlines spent before the call or while backing off.
//! - The deadline bounds the wait for the response head, not the streaming of its body:
//!   long-lived streams (gRPC server streaming) are bounded by the deadline the upstream
//!   receives in its header.
//! - Request bodies that stream (unknown or large length, gRPC) are sent once and never
//!   retried; bodies up to `limits.retry_buffer_bytes` with a known length are buffered.

use crate::access_log::AccessLog;
use crate::attempt::{self, AttemptEnd, AttemptRecord, GrpcOutcome, Outbound};
use crate::body::{self, BodyFaultKind, ProxyBody, ReadError, RequestBody};
use crate::carried::Carried;
use crate::client_body::ClientBody;
use crate::clock::PollClock;
use crate::fleet::{Admission, Probe};
use crate::forwarding;
use crate::matcher;
use crate::observe;
use crate::proxy::Shared;
use crate::responses;
use crate::runtime::Route;
use crate::stale::{CachingBody, StaleCache};
use crate::upstream_body::UpstreamBody;
use http::header::{HeaderMap, HeaderValue, CONNECTION, CONTENT_LENGTH};
use http::request::Parts;
use http::{Response, StatusCode, Version};
use http_body::Body;
use levee_config::LimitsConfig;
use levee_core::breaker::State;
use levee_core::bulkhead::{Acquire, BulkheadPermit};
use levee_core::deadline::{effective_deadline, Deadline};
use levee_core::names::header;
use levee_core::outcome::AttemptResult;
use levee_core::rate_limit::RateDecision;
use levee_core::retry::{
    decide, is_idempotent, parse_retry_after, GiveUpReason, RetryDecision, RetryInput,
};
use levee_core::{Clock, Criticality, ErrorCode, Outcome};
use levee_http::headers::HeaderError;
use levee_http::{DegradedKind, TraceContext};
use levee_telemetry::RequestContext;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing::Instrument;

/// What the proxy knows about the connection a request came on.
#[derive(Clone, Debug, Default)]
pub struct ConnInfo {
    /// The client's address.
    pub peer: Option<SocketAddr>,
    /// True on a TLS listener.
    pub tls: bool,
}

/// What must live exactly as long as the response body, dropped in this order when it is sent
/// or dropped: the server's count of requests in progress, the drain count, the access log line
/// (written when its last clone goes), the endpoint's in-flight count and the bulkhead slot.
/// One plain value rather than a list of boxed guards: six allocations a request fewer.
/// The fields are never read: they are held for their `Drop`.
pub(crate) struct Guards {
    _active: crate::server::ActiveRequest,
    _drain: Option<crate::drain::RequestGuard>,
    _log: Option<AccessLog>,
    _in_flight: Option<crate::endpoint::InFlight>,
    _slot: Option<SlotGuard>,
}

impl Guards {
    /// The guards of a request the server counts as in progress (`active`).
    pub(crate) fn new(active: crate::server::ActiveRequest) -> Guards {
        Guards {
            _active: active,
            _drain: None,
            _log: None,
            _in_flight: None,
            _slot: None,
        }
    }
}

/// Handles one request from a listener: the work up to the first await is done here, at once;
/// the returned future does the rest.
///
/// Why a plain `fn` returning a hand-written future and not an `async fn`: an `async fn` would
/// hold the request, its parts and the call twice over (once as arguments, once as locals).
/// Built here, each is held once. The call's future (a few kilobytes) is boxed once, here:
/// the small [`Handling`] around it is what moves on its way into hyper's connection, where
/// each move of the unboxed future copied all of it (docs/benchmarks.md).
pub(crate) fn handle(
    shared: Arc<Shared>,
    conn: ConnInfo,
    request: http::Request<ClientBody>,
    carried: Carried,
    extra: Guards,
) -> Handling<impl Future<Output = (Response<ProxyBody>, Guards)> + Send> {
    // `carried`: which of Levee's headers the request carries (`Carried::scan`); the lookups
    // of those it does not are skipped (most requests carry none).
    let trace = if carried.any(Carried::TRACEPARENT) {
        TraceContext::from_headers(request.headers())
    } else {
        TraceContext::new_root()
    };
    let (mut parts, body) = request.into_parts();
    let fault = if carried.any(Carried::FAULT | Carried::FAULT_TOKEN) {
        crate::fault::take_headers(&mut parts.headers)
    } else {
        crate::fault::CallFault::default()
    };
    let request_id = if carried.any(Carried::REQUEST_ID) {
        levee_http::request_id::ensure_request_id(&mut parts.headers)
    } else {
        let id = levee_http::request_id::new_request_id();
        parts
            .headers
            .insert(levee_http::headers::name::REQUEST_ID, id.clone());
        id
    };
    let carried = carried.with(Carried::REQUEST_ID);
    let request_id_text = request_id.to_str().unwrap_or("");
    let (method, path) = (parts.method.as_str(), parts.uri.path());
    // With JSON logs the context alone gives every line the request's fields; a `tracing` span
    // (several times the cost) is made only for text logs and other subscribers.
    let context = RequestContext::new(&trace, request_id_text, method, path);
    let span = if levee_telemetry::request_spans_wanted() {
        levee_telemetry::request_span(&trace, request_id_text, method, path)
    } else {
        tracing::Span::none()
    };
    let log = AccessLog::new(Arc::clone(&context), span.clone());
    let mut guards: Guards = extra;
    guards._drain = Some(shared.drain.begin());
    guards._log = Some(log.clone());
    // Moves keep-alive clients to a fresh connection, which the next instance will take.
    let close = shared.drain.is_draining() && parts.version < Version::HTTP_2;
    let call = Call {
        shared,
        conn,
        trace,
        log,
        guards,
        trailer_record: None,
        fault,
        carried,
    };
    // The box is allocated first and the future written into it, so the compiler may build
    // the future in place; `Box::pin(future)` builds it on the stack, then allocates, then
    // copies all of it (a few kilobytes, mostly states not reached yet) into the box.
    let running = Box::write(
        Box::new_uninit(),
        context.scope(call.run(parts, body).instrument(span)),
    );
    Handling {
        running: Box::into_pin(running),
        request_id: Some(request_id),
        close,
    }
}

pin_project_lite::pin_project! {
    /// The future [`handle`] returns: the call, then the headers every answer gets and the
    /// guards attached to the response body.
    pub(crate) struct Handling<F> {
        running: Pin<Box<F>>,
        request_id: Option<HeaderValue>,
        close: bool,
    }
}

impl<F> Future for Handling<F>
where
    F: Future<Output = (Response<ProxyBody>, Guards)>,
{
    type Output = Response<Attached>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response<Attached>> {
        let this = self.project();
        let (mut response, guards) = std::task::ready!(this.running.as_mut().poll(cx));
        let headers = response.headers_mut();
        if let Some(request_id) = this.request_id.take() {
            headers.insert(levee_http::headers::name::REQUEST_ID, request_id);
        }
        if *this.close {
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        Poll::Ready(response.map(|inner| Attached {
            inner,
            _guards: Some(guards),
        }))
    }
}

/// One request in progress.
struct Call {
    shared: Arc<Shared>,
    conn: ConnInfo,
    trace: TraceContext,
    log: AccessLog,
    guards: Guards,
    /// The attempt whose outcome the response's gRPC trailers will decide (boxed: only gRPC
    /// answers have one, and the request's future holds this field).
    trailer_record: Option<Box<AttemptRecord>>,
    /// The `levee-fault` headers (removed from the request) and the fault they were granted.
    fault: crate::fault::CallFault,
    /// Which of Levee's headers the request carries (`x-request-id` always, once ensured).
    carried: Carried,
}

/// The final answer of the attempts.
struct Ended {
    end: AttemptEnd,
    give_up: Option<GiveUpReason>,
}

impl Call {
    // The refusal and failure answers are `#[cold]`: the exception, laid out away from the
    // path of a call that succeeds.
    //
    // `run` and `route_and_call` are not `async fn`s: rustc keeps an `async fn`'s by-value
    // arguments twice in its state (as arguments, and as the locals they are moved into), and
    // `self` and `parts` are a few hundred bytes each; an `async move` block uses what it
    // captured in place. The request's future is smaller by that much, and so is every copy.
    #[allow(clippy::manual_async_fn)]
    fn run(
        mut self,
        parts: Parts,
        body: ClientBody,
    ) -> impl Future<Output = (Response<ProxyBody>, Guards)> + Send {
        async move {
            let response = self.route_and_call(&parts, body).await;
            (response, self.guards)
        }
    }

    /// `levee-criticality`, looked up only when the request carries it.
    fn criticality(&self, headers: &HeaderMap) -> Result<Option<Criticality>, HeaderError> {
        if !self.carried.any(Carried::CRITICALITY) {
            return Ok(None);
        }
        levee_http::headers::criticality(headers)
    }

    /// The inbound deadline, looked up only when the request carries one of its headers.
    fn inbound_deadline(&self, headers: &HeaderMap) -> Result<Option<Duration>, HeaderError> {
        if !self
            .carried
            .any(Carried::TIMEOUT_MS | Carried::GRPC_TIMEOUT)
        {
            return Ok(None);
        }
        levee_http::headers::inbound_deadline(headers)
    }

    fn trace_id(&self) -> String {
        self.trace.trace_id.to_hex()
    }

    /// Levee's own refusal, no fallback.
    #[cold]
    fn refuse(
        &self,
        code: ErrorCode,
        upstream: &str,
        retry_after: Option<Duration>,
    ) -> Response<ProxyBody> {
        self.log.code(code.as_str());
        self.log.respond(code.status(), Outcome::Rejected);
        responses::problem(code, upstream, retry_after, &self.trace_id())
    }

    /// Counts a call Levee refused before any attempt (SPEC §1 `rejected`: circuit open,
    /// bulkhead full, rate limited, deadline already spent, route shed) in
    /// `levee_calls_total{outcome="rejected"}` of the route's endpoint key, once per call.
    /// Refusals after an attempt was recorded are not counted again: the call's outcome is
    /// its attempts'. Malformed requests and fault-header refusals are not calls.
    #[cold]
    fn count_rejected(&self, route: &Route) {
        route
            .endpoint_metrics(&self.shared.metrics)
            .call(Outcome::Rejected, Duration::ZERO);
    }

    #[cold]
    fn plain(&self, status: StatusCode, detail: &str) -> Response<ProxyBody> {
        self.log.respond(status.as_u16(), Outcome::Rejected);
        responses::plain(status, detail, &self.trace_id())
    }

    // The head is borrowed: `run` owns it, and a moved-in head would be held twice.
    #[allow(clippy::manual_async_fn)] // see `run`
    fn route_and_call<'a>(
        &'a mut self,
        parts: &'a Parts,
        body: ClientBody,
    ) -> impl Future<Output = Response<ProxyBody>> + Send + 'a {
        async move {
            let runtime = self.shared.runtime();
            let Some(route) = runtime
                .route(&parts.method, &parts.uri, &parts.headers)
                .cloned()
            else {
                return self.plain(StatusCode::NOT_FOUND, "No route matches this request.");
            };
            drop(runtime);
            self.log.routed(route.name.as_str(), route.upstream.name());
            if let Some(refused) =
                crate::fault::admit(&mut self.fault, &route, &self.log, &self.trace)
            {
                return refused;
            }
            let upstream = route.upstream.name();

            if let Some(shed_at) = route.config.shed_at_level {
                let level = self.shared.degradation_level();
                if level >= shed_at {
                    tracing::debug!(
                        level,
                        shed_at_level = shed_at,
                        "route shed at this degradation level"
                    );
                    self.count_rejected(&route);
                    return self.degrade(&route, parts, ErrorCode::FeatureDisabled, None, None);
                }
            }

            let class = match self.criticality(&parts.headers) {
                Ok(class) => class.unwrap_or(route.config.criticality),
                Err(e) => {
                    tracing::info!(error = %e, "malformed Levee header");
                    return self.refuse(ErrorCode::BadRequest, upstream, None);
                }
            };
            let inbound = match self.inbound_deadline(&parts.headers) {
                Ok(d) => d,
                Err(e) => {
                    tracing::info!(error = %e, "malformed Levee header");
                    return self.refuse(ErrorCode::BadRequest, upstream, None);
                }
            };
            // One reading of the clock for the decisions taken before the call (deadline, rate
            // limit, budget, bulkhead): they happen within microseconds of each other, and each
            // reading costs about as much as one of them.
            let clock = PollClock;
            let now = clock.now();
            let deadline =
                effective_deadline(route.config.timeout, inbound).map(|d| Deadline::after(now, d));
            if deadline.is_some_and(|d| d.is_spent(now)) {
                self.count_rejected(&route);
                return self.degrade(&route, parts, ErrorCode::DeadlineExceeded, None, None);
            }

            if let Some(limiter) = &route.rate_limiter {
                let key = limiter
                    .config()
                    .key
                    .as_ref()
                    .and_then(|k| k.header())
                    .and_then(|name| parts.headers.get(name))
                    .map(HeaderValue::as_bytes);
                if let RateDecision::Limited { retry_after } = limiter.acquire(key, now) {
                    self.shared.metrics.rate_limited(&route.name);
                    self.count_rejected(&route);
                    return self.refuse(ErrorCode::RateLimited, upstream, Some(retry_after));
                }
            }

            let mut request_body = {
                // In a block of its own: the limits are not kept in the later states.
                let limits = self.shared.runtime().config.limits.clone();
                match self.prepare_body(parts, body, &limits).await {
                    Ok(b) => b,
                    Err(response) => return response,
                }
            };

            // Read again: a body may have taken a while.
            let now = clock.now();
            let permit = match self.admit(&route, class, deadline, now).await {
                Ok(permit) => permit,
                Err(code) => {
                    self.count_rejected(&route);
                    return self.degrade(&route, parts, code, None, None);
                }
            };
            let partition = route.partition_metrics(&self.shared.metrics);
            observe::partition_gauges(partition, &route.bulkhead);
            let slot = SlotGuard {
                permit: Some(permit),
                outcome: Outcome::Cancelled,
                partition: Arc::clone(partition),
                bulkhead: route.bulkhead.clone(),
            };

            route.budget.deposit(now);
            let ended = match self
                .attempts(&route, parts, &mut request_body, deadline)
                .await
            {
                Ok(ended) => ended,
                Err(response) => {
                    self.guards._slot = Some(slot);
                    return response;
                }
            };
            self.answer(&route, parts, ended, slot)
        }
    }

    /// Reads small bodies whole (for retries) and wraps the others in their limits.
    async fn prepare_body(
        &self,
        parts: &Parts,
        body: ClientBody,
        limits: &LimitsConfig,
    ) -> Result<RequestBody, Response<ProxyBody>> {
        let length = parts
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if length.is_some_and(|n| n > limits.max_body_bytes) {
            return Err(self.plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                "The request body is larger than this server accepts.",
            ));
        }
        if body.is_end_stream() {
            return Ok(RequestBody::Buffered(bytes::Bytes::new()));
        }
        let small = length.is_some_and(|n| n <= limits.retry_buffer_bytes as u64);
        if small && !levee_http::headers::is_grpc(&parts.headers) {
            return match body::read_limited(body, limits.max_body_bytes, limits.body_timeout).await
            {
                Ok(bytes) => Ok(RequestBody::Buffered(bytes)),
                Err(ReadError::Limit(kind)) => Err(self.body_fault(kind)),
                Err(ReadError::Client(e)) => {
                    tracing::info!(error = %e, "client failed while sending the body");
                    Err(self.plain(
                        StatusCode::BAD_REQUEST,
                        "The request body could not be read.",
                    ))
                }
            };
        }
        Ok(RequestBody::streamed(
            body,
            limits.max_body_bytes,
            limits.body_timeout,
        ))
    }

    #[cold]
    fn body_fault(&self, kind: BodyFaultKind) -> Response<ProxyBody> {
        match kind {
            BodyFaultKind::TooLarge => self.plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                "The request body is larger than this server accepts.",
            ),
            BodyFaultKind::TooSlow => self.plain(
                StatusCode::REQUEST_TIMEOUT,
                "The request body was not sent in time.",
            ),
            BodyFaultKind::Unreadable => self.plain(
                StatusCode::BAD_REQUEST,
                "The request body could not be read.",
            ),
        }
    }

    /// Waits for a bulkhead slot; `Err` with the code to answer.
    async fn admit(
        &self,
        route: &Route,
        class: Criticality,
        deadline: Option<Deadline>,
        now: levee_core::Timestamp,
    ) -> Result<BulkheadPermit, ErrorCode> {
        let clock = PollClock;
        let metrics = &self.shared.metrics;
        let rejected = |r: levee_core::bulkhead::Rejection| {
            route
                .partition_metrics(metrics)
                .rejection(r.class, r.reason);
            tracing::info!(partition = %route.partition, criticality = %r.class, reason = %r.reason, "bulkhead rejected the call");
            ErrorCode::BulkheadFull
        };
        let mut queued = match route.bulkhead.try_acquire(class, now) {
            Acquire::Permitted(permit) => return Ok(permit),
            Acquire::Rejected(r) => return Err(rejected(r)),
            Acquire::Queued(q) => q,
        };
        observe::partition_gauges(route.partition_metrics(metrics), &route.bulkhead);
        loop {
            let now = clock.now();
            let queue_left = queued.deadline().saturating_since(now);
            let deadline_left = deadline.map(|d| d.remaining(now));
            let wait = deadline_left.map_or(queue_left, |d| d.min(queue_left));
            tokio::select! {
                result = &mut queued => return result.map_err(rejected),
                _ = tokio::time::sleep(wait) => {
                    let now = clock.now();
                    if deadline.is_some_and(|d| d.is_spent(now)) {
                        return Err(ErrorCode::DeadlineExceeded);
                    }
                    route.bulkhead.expire_waiting(now);
                    if let Some(result) = queued.try_take() {
                        return result.map_err(rejected);
                    }
                }
            }
        }
    }

    /// The attempt loop. `Err` is an answer decided before any attempt ended (circuit open on
    /// the first try, or a client body fault).
    async fn attempts(
        &mut self,
        route: &Arc<Route>,
        parts: &Parts,
        request_body: &mut RequestBody,
        deadline: Option<Deadline>,
    ) -> Result<Ended, Response<ProxyBody>> {
        let clock = PollClock;
        let metrics = Arc::clone(&self.shared.metrics);
        let upstream = &route.upstream;
        let idempotent = is_idempotent(
            parts.method.as_str(),
            self.carried.any(Carried::IDEMPOTENCY_KEY),
        );
        let mut attempts = 0u32;
        let mut previous_backoff = None;
        let mut last: Option<AttemptEnd> = None;
        loop {
            // The clock is read once before the attempt (admission, breaker, deadline,
            // balancer) and once after it (endpoint statistics, retry decision), and again only
            // after a wait.
            let mut now = clock.now();
            let fleet_says = route.gate.admission(|| route.breaker.snapshot(now).observe);
            if let Admission::Reject { retry_after } = fleet_says {
                return self.circuit_open(route, parts, retry_after, last);
            }
            let acquired = route.breaker.acquire(now);
            if let Some(t) = &acquired.transition {
                observe::transition(&metrics, t, Some(&route.gate));
            }
            let permit = match acquired.result {
                Ok(permit) => permit,
                Err(rejection) => {
                    if last.is_none() {
                        // No attempt recorded this call: it ends here as `rejected`.
                        self.count_rejected(route);
                    }
                    return self.circuit_open(route, parts, rejection.retry_after, last);
                }
            };
            // The record exists before the lease is asked for, so a client that goes away
            // during the wait hands the local permit back (`cancelled`).
            let mut record = AttemptRecord::new(
                route,
                permit,
                Arc::clone(&metrics),
                self.shared.fleet.as_ref(),
            );
            if let (Admission::NeedsLease, Some(fleet)) = (fleet_says, &self.shared.fleet) {
                // Boxed: a fleet probe is rare (a half-open breaker shared with the fleet), and
                // its future, held inline, was the largest state of every request's future.
                match Box::pin(fleet.probe(&route.endpoint_key, &route.gate)).await {
                    Probe::Lease(lease) => record.attach_lease(lease),
                    Probe::Go => {}
                    Probe::Denied { retry_after } => {
                        record.finish(Outcome::Rejected);
                        return self.circuit_open(route, parts, retry_after, last);
                    }
                }
                now = clock.now();
            }
            let remaining = deadline.map(|d| d.remaining(now));
            if remaining == Some(Duration::ZERO) {
                record.finish(Outcome::Rejected);
                return match last {
                    Some(end) => Ok(Ended {
                        end,
                        give_up: Some(GiveUpReason::DeadlineExceeded),
                    }),
                    None => {
                        Err(self.degrade(route, parts, ErrorCode::DeadlineExceeded, None, None))
                    }
                };
            }
            let Some(body) = request_body.take_for_attempt() else {
                record.finish(Outcome::Rejected);
                break;
            };
            attempts += 1;
            let end = match upstream.pick(now) {
                None => {
                    self.log.attempt(None);
                    drop(body);
                    let end = AttemptEnd::Failed {
                        result: AttemptResult::ConnectFailure,
                        outcome: Outcome::Failure,
                        detail: "no endpoint is healthy".into(),
                    };
                    record.finish(end.outcome());
                    end
                }
                Some(chosen) => {
                    self.log.attempt(Some(&chosen.endpoint));
                    let out = Outbound {
                        parts,
                        body,
                        trace: &self.trace,
                        remaining,
                        client: self.conn.peer,
                        tls: self.conn.tls,
                        carried: self.carried,
                    };
                    let request = match attempt::build_request(upstream, &chosen, out) {
                        Ok(r) => r,
                        Err(e) => {
                            record.finish(Outcome::Ignored);
                            tracing::info!(error = %e, "request cannot be forwarded");
                            return Err(self.plain(
                                StatusCode::BAD_REQUEST,
                                "The request cannot be forwarded.",
                            ));
                        }
                    };
                    let per_try = route.config.retry.per_try_timeout;
                    let timeout = match (per_try, remaining) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    let endpoint = chosen.endpoint.authority();
                    let end = crate::fault::send(
                        &self.fault,
                        route,
                        &self.shared,
                        endpoint,
                        request,
                        timeout,
                    )
                    .await;
                    now = clock.now();
                    let elapsed = record.mark_answered();
                    if let (AttemptEnd::Failed { .. }, Some(kind)) = (&end, request_body.fault()) {
                        // The client broke a body limit or sent a broken body: not the
                        // upstream's failure.
                        record.finish(Outcome::Ignored);
                        return Err(self.body_fault(kind));
                    }
                    if attempt::awaits_grpc_trailers(&end) {
                        // The gRPC status comes after the body: the response body records
                        // the attempt when its trailers arrive (see `relay`).
                        self.trailer_record = Some(Box::new(record));
                    } else {
                        record.finish_at(end.outcome(), now);
                    }
                    upstream.record(&chosen.endpoint, end.outcome().is_failure(), elapsed, now);
                    if let AttemptEnd::Failed { detail, result, .. } = &end {
                        log_failed_attempt(&chosen.endpoint, *result, detail);
                    }
                    if matches!(end, AttemptEnd::Response { .. }) && !end.outcome().is_failure() {
                        // Keep the endpoint's in-flight count until the body is sent.
                        self.guards._in_flight = Some(chosen.in_flight);
                    }
                    end
                }
            };
            if !end.outcome().is_failure() {
                return Ok(Ended { end, give_up: None });
            }
            if !request_body.replayable() {
                return Ok(Ended { end, give_up: None });
            }
            let retry_after = match &end {
                AttemptEnd::Response { response, .. } => response
                    .headers()
                    .get(header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, unix_now())),
                AttemptEnd::Failed { .. } => None,
            };
            let input = RetryInput {
                attempts_made: attempts,
                result: end.result(),
                idempotent,
                remaining: deadline.map(|d| d.remaining(now)),
                breaker_open: matches!(route.breaker.state(), State::Open | State::ForcedOpen)
                    || matches!(
                        route.gate.admission(|| route.breaker.snapshot(now).observe),
                        Admission::Reject { .. }
                    ),
                retry_after,
                previous_backoff,
            };
            match decide(
                &route.config.retry,
                &input,
                &route.budget,
                now,
                self.shared.random.as_ref(),
            ) {
                RetryDecision::Retry { after, backoff } => {
                    metrics.retry(&route.endpoint_key, end.result());
                    previous_backoff = Some(backoff);
                    tracing::info!(attempt = attempts, wait_ms = u64::try_from(after.as_millis()).unwrap_or(u64::MAX), result = %end.result().label(), "retrying");
                    last = Some(end);
                    tokio::time::sleep(after).await;
                }
                RetryDecision::GiveUp { reason } => {
                    if reason == GiveUpReason::RetryBudgetExhausted {
                        metrics.retry_budget_exhausted(&route.endpoint_key);
                    }
                    return Ok(Ended {
                        end,
                        give_up: Some(reason),
                    });
                }
            }
        }
        match last {
            Some(end) => Ok(Ended { end, give_up: None }),
            None => Err(self.refuse(ErrorCode::UpstreamUnavailable, route.upstream.name(), None)),
        }
    }

    /// Turns the attempts' result into the client's answer.
    fn answer(
        &mut self,
        route: &Arc<Route>,
        parts: &Parts,
        ended: Ended,
        mut slot: SlotGuard,
    ) -> Response<ProxyBody> {
        let outcome = ended.end.outcome();
        slot.outcome = outcome;
        self.guards._slot = Some(slot);
        match ended.end {
            AttemptEnd::Response { response, .. } if !outcome.is_failure() => {
                self.relay(route, parts, response, outcome)
            }
            AttemptEnd::Response { response, .. } => {
                let retry_after = self.breaker_wait(route);
                self.degrade(
                    route,
                    parts,
                    ErrorCode::UpstreamUnavailable,
                    retry_after,
                    Some(response),
                )
            }
            AttemptEnd::Failed { result, .. } => {
                let code = match (ended.give_up, result) {
                    (Some(GiveUpReason::CircuitOpen), _) => ErrorCode::CircuitOpen,
                    (Some(GiveUpReason::RetryBudgetExhausted), _) => {
                        ErrorCode::RetryBudgetExhausted
                    }
                    (_, AttemptResult::Timeout) => ErrorCode::UpstreamTimeout,
                    (
                        Some(
                            GiveUpReason::DeadlineExceeded
                            | GiveUpReason::RetryAfterExceedsDeadline,
                        ),
                        _,
                    ) => ErrorCode::DeadlineExceeded,
                    _ => ErrorCode::UpstreamUnavailable,
                };
                let retry_after = self.breaker_wait(route);
                self.degrade(route, parts, code, retry_after, None)
            }
        }
    }

    /// Time until the route's breakers (local and fleet) probe again, when one is open.
    fn breaker_wait(&self, route: &Route) -> Option<Duration> {
        let local = route.breaker.snapshot(PollClock.now()).open_remaining;
        match (local, route.gate.open_remaining()) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// `circuit_open`: the last attempt's answer when there was one, else the route's
    /// fallbacks or the envelope.
    // The same shape as `attempts`, whose answer this is: moved once, never stored.
    #[allow(clippy::result_large_err)]
    #[cold]
    fn circuit_open(
        &self,
        route: &Route,
        parts: &Parts,
        retry_after: Option<Duration>,
        last: Option<AttemptEnd>,
    ) -> Result<Ended, Response<ProxyBody>> {
        match last {
            Some(end) => Ok(Ended {
                end,
                give_up: Some(GiveUpReason::CircuitOpen),
            }),
            None => Err(self.degrade(route, parts, ErrorCode::CircuitOpen, retry_after, None)),
        }
    }

    /// Streams the upstream's answer back, keeping a stale copy of cacheable GETs.
    fn relay(
        &mut self,
        route: &Arc<Route>,
        parts: &Parts,
        response: Response<UpstreamBody>,
        outcome: Outcome,
    ) -> Response<ProxyBody> {
        let (mut head, body) = response.into_parts();
        forwarding::strip_hop_by_hop(&mut head.headers);
        head.version = parts.version;
        self.log.respond(head.status.as_u16(), outcome);
        let trailer_record = self.trailer_record.take();
        let body = match (&route.stale, trailer_record) {
            // gRPC answers are POSTs: never cached.
            (_, Some(record)) => body::boxed(GrpcOutcome::new(body, *record)),
            (Some(cache), None)
                if StaleCache::request_is_cacheable(&parts.method)
                    && StaleCache::response_is_cacheable(head.status, &head.headers) =>
            {
                let key = StaleCache::key(
                    matcher::request_host(&parts.uri, &parts.headers),
                    &parts.uri,
                );
                body::boxed(CachingBody::new(
                    body,
                    Arc::clone(cache),
                    key,
                    head.status,
                    head.headers.clone(),
                ))
            }
            _ => body::boxed(body),
        };
        Response::from_parts(head, body)
    }

    /// The answer for a call that did not succeed: the route's fallbacks in order, then the
    /// upstream's own failure response, then the envelope.
    #[cold]
    fn degrade(
        &self,
        route: &Route,
        parts: &Parts,
        code: ErrorCode,
        retry_after: Option<Duration>,
        upstream_response: Option<Response<UpstreamBody>>,
    ) -> Response<ProxyBody> {
        let route_metrics = &self.shared.metrics;
        if let Some(cache) = &route.stale {
            if StaleCache::request_is_cacheable(&parts.method) {
                let key = StaleCache::key(
                    matcher::request_host(&parts.uri, &parts.headers),
                    &parts.uri,
                );
                if let Some((cached, age)) = cache.get(&key, PollClock.now()) {
                    route_metrics.fallback(&route.name, DegradedKind::Stale);
                    tracing::warn!(
                        reason = code.as_str(),
                        age_s = age.as_secs(),
                        "served stale fallback"
                    );
                    self.log.code(code.as_str());
                    self.log.fallback("stale");
                    self.log.respond(cached.status.as_u16(), Outcome::Failure);
                    let mut response = responses::stale(cached, age, code);
                    *response.version_mut() = parts.version;
                    return response;
                }
            }
        }
        if let Some(fallback) = route.static_fallback() {
            route_metrics.fallback(&route.name, DegradedKind::Static);
            tracing::warn!(reason = code.as_str(), "served static fallback");
            self.log.code(code.as_str());
            self.log.fallback("static");
            self.log.respond(fallback.status, Outcome::Failure);
            return responses::static_fallback(fallback, code);
        }
        if let Some(response) = upstream_response {
            let mut relayed = self.relay_failure(parts, response);
            if let Some(wait) = retry_after {
                if !relayed.headers().contains_key(http::header::RETRY_AFTER) {
                    relayed.headers_mut().insert(
                        http::header::RETRY_AFTER,
                        HeaderValue::from(levee_core::error::retry_after_seconds(wait)),
                    );
                }
            }
            return relayed;
        }
        self.log.code(code.as_str());
        let outcome = match code {
            ErrorCode::UpstreamTimeout => Outcome::Timeout,
            ErrorCode::UpstreamUnavailable => Outcome::Failure,
            _ => Outcome::Rejected,
        };
        self.log.respond(code.status(), outcome);
        responses::problem(code, route.upstream.name(), retry_after, &self.trace_id())
    }

    #[cold]
    fn relay_failure(
        &self,
        parts: &Parts,
        response: Response<UpstreamBody>,
    ) -> Response<ProxyBody> {
        let (mut head, body) = response.into_parts();
        forwarding::strip_hop_by_hop(&mut head.headers);
        head.version = parts.version;
        self.log.respond(head.status.as_u16(), Outcome::Failure);
        Response::from_parts(head, body::boxed(body))
    }
}

/// The log line of an attempt that got no answer; out of line, as for the refusals.
#[cold]
fn log_failed_attempt(endpoint: &crate::endpoint::Endpoint, result: AttemptResult, detail: &str) {
    tracing::info!(endpoint = %endpoint.address(), result = %result.label(), error = %detail, "attempt failed");
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Holds a bulkhead slot until the response body is done, then completes it with the call's
/// outcome (the adaptive limit's sample) and refreshes the partition's gauges.
struct SlotGuard {
    permit: Option<BulkheadPermit>,
    outcome: Outcome,
    partition: Arc<levee_telemetry::PartitionMetrics>,
    bulkhead: levee_core::bulkhead::Bulkhead,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            permit.complete(self.outcome, PollClock.now());
        }
        observe::partition_gauges(&self.partition, &self.bulkhead);
    }
}

/// The body of every answer to a client: the response's, carrying the guards that must live
/// until it is done (none for the answer to a handler's panic). The connection holds it as it
/// is, not boxed once more.
pub(crate) struct Attached {
    inner: ProxyBody,
    _guards: Option<Guards>,
}

impl From<ProxyBody> for Attached {
    fn from(inner: ProxyBody) -> Attached {
        Attached {
            inner,
            _guards: None,
        }
    }
}

impl Body for Attached {
    type Data = bytes::Bytes;
    type Error = body::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
