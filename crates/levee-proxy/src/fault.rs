//! Fault injection, the I/O side: which spec applies to an attempt, and carrying out the
//! decision of `levee_core::fault::decide` in place of the upstream call.
//!
//! Faults are injected **per attempt, in place of (or before) the upstream call**, after the
//! breaker permit and the endpoint pick, so every policy sees an injected failure exactly as
//! it sees a real one from that dependency: the breaker and the metrics get the attempt's
//! outcome, the endpoint's outlier detection its failure, the retry decision its result, and
//! the fallbacks the final answer. An `abort: 503` on every call opens the breaker and sends
//! GETs to `stale_if_error`, as a real outage would.
//!
//! - **delay**: sleep, then the real call (or another fault). The delay counts against the
//!   attempt's time (per-try timeout and deadline): a delay at least that long ends the
//!   attempt as `timeout` without calling the upstream.
//! - **abort**: the attempt's answer is a response with the status, `content-type:
//!   text/plain`, `levee-fault-injected: abort` and the body `injected fault`, classified by
//!   the upstream's `failure_statuses` like a real one. Its body is an `UpstreamBody` like a
//!   real answer's, so the synthesized answer takes exactly the path a real one does (relay,
//!   stale copies, failure relay).
//! - **reset**: the attempt fails with result `reset` (retried as a reset).
//! - **hang**: the attempt never answers; the per-try timeout or the deadline ends it as
//!   `timeout`, else the client going away (`cancelled`).
//!
//! Which spec an attempt uses, first that exists: the request's `levee-fault` header (when
//! `faults.allow_headers` is on and `levee-fault-token` is the admin token), the route's admin
//! fault (`PUT /api/faults/{route}`), the route's config `fault`. They replace each other;
//! they are never merged.
//!
//! Admin faults live in one [`Faults`] table carried from generation to generation: a reload
//! replaces config faults, and admin faults stay until `DELETE` (or until their route is
//! removed from the config, when they are dropped with it). Routes are named as the `route`
//! metric label names them (`name`, or `route<N>`).
//!
//! Both `levee-fault` headers are removed from every request before anything else, whatever
//! the settings, so the admin token can never reach an upstream.

use crate::access_log::AccessLog;
use crate::attempt::{self, AttemptEnd};
use crate::body::{self, ProxyBody};
use crate::proxy::Shared;
use crate::runtime::{Route, Runtime};
use crate::upstream_body::UpstreamBody;
use bytes::Bytes;
use futures_util::future::Either;
use http::header::CONTENT_TYPE;
use http::uri::Authority;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use levee_admin::{AdminAuth, FaultError, FaultSource, FaultView};
use levee_config::Config;
use levee_core::fault::{decide, parse_header, FaultAction, FaultDecision, FaultKind, FaultSpec};
use levee_core::outcome::{classify, AttemptResult};
use levee_core::{Outcome, RandomSource};
use levee_http::TraceContext;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// The request header asking for a fault (`delay=200ms,abort=503`, `reset`, `hang`).
pub const FAULT_HEADER: &str = "levee-fault";

/// The request header carrying the admin token that authorises `levee-fault`.
pub const FAULT_TOKEN_HEADER: &str = "levee-fault-token";

/// The response header marking a synthesized abort.
const INJECTED_HEADER: &str = "levee-fault-injected";

/// The body of a synthesized abort.
const INJECTED_BODY: &[u8] = b"injected fault\n";

/// The process's fault state: admin faults by route, the header switch, and the admin token
/// that authorises header faults. One per proxy, carried across reloads.
pub(crate) struct Faults {
    auth: AdminAuth,
    allow_headers: AtomicBool,
    /// True while `admin` holds an entry: attempts skip its lock when there is none.
    any_admin: AtomicBool,
    admin: RwLock<BTreeMap<String, FaultSpec>>,
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults")
            .field("allow_headers", &self.allow_headers.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Faults {
    /// The table for a new generation built from `config`: `previous`'s, or a new one, whose
    /// admin token is read from `admin.token_env` (as the admin API reads it, at start).
    /// [`reconfigure`](Self::reconfigure) applies the config once the build succeeded.
    pub(crate) fn carry(previous: Option<&Arc<Faults>>, config: &Config) -> Arc<Faults> {
        match previous {
            Some(p) => Arc::clone(p),
            None => Arc::new(Faults {
                auth: AdminAuth::from_env(&config.admin.token_env),
                allow_headers: AtomicBool::new(config.faults.allow_headers),
                any_admin: AtomicBool::new(false),
                admin: RwLock::new(BTreeMap::new()),
            }),
        }
    }

    /// Applies a successfully built `config`: the header switch, and the admin faults of
    /// routes no longer in the config are dropped.
    pub(crate) fn reconfigure(&self, config: &Config) {
        self.allow_headers
            .store(config.faults.allow_headers, Ordering::Relaxed);
        let names: Vec<String> = (0..config.routes.len())
            .map(|i| config.routes[i].name_or_default(i))
            .collect();
        let mut admin = self.write();
        admin.retain(|route, _| {
            let kept = names.contains(route);
            if !kept {
                tracing::info!(
                    route,
                    "runtime fault dropped: its route is no longer in the config"
                );
            }
            kept
        });
        self.any_admin.store(!admin.is_empty(), Ordering::Relaxed);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, FaultSpec>> {
        self.admin.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, FaultSpec>> {
        self.admin.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The decision for one attempt of `route` (see the module docs for which spec applies).
    fn decide(&self, call: &CallFault, route: &Route, random: &dyn RandomSource) -> FaultDecision {
        if let Some(forced) = call.forced() {
            return decide(forced, random);
        }
        if self.any_admin.load(Ordering::Relaxed) {
            if let Some(spec) = self.read().get(&route.name) {
                return decide(spec, random);
            }
        }
        route
            .config
            .fault
            .as_ref()
            .map(|spec| decide(spec, random))
            .unwrap_or_default()
    }
}

/// What a request asked for with the `levee-fault` headers, and the spec it was granted.
///
/// One pointer, `None` for the requests without those headers (nearly all): the request's
/// future holds it, and every byte of that future is copied when it is boxed.
#[derive(Default)]
pub(crate) struct CallFault(Option<Box<AskedFault>>);

#[derive(Default)]
struct AskedFault {
    asked: Option<String>,
    token: Option<Vec<HeaderValue>>,
    /// The header's fault, every listed kind at 100 percent, once authorised.
    forced: Option<FaultSpec>,
}

impl CallFault {
    fn forced(&self) -> Option<&FaultSpec> {
        self.0.as_ref()?.forced.as_ref()
    }
}

/// The two names as `HeaderName`s: looked up on every request, and a `&str` key would be
/// parsed into a name at each lookup (about 600 instructions a request).
const FAULT_NAME: HeaderName = HeaderName::from_static(FAULT_HEADER);
const FAULT_TOKEN_NAME: HeaderName = HeaderName::from_static(FAULT_TOKEN_HEADER);

/// Removes both fault headers from `headers` (always: the token must never be forwarded) and
/// keeps what they said for [`admit`].
pub(crate) fn take_headers(headers: &mut HeaderMap) -> CallFault {
    if !headers.contains_key(FAULT_NAME) && !headers.contains_key(FAULT_TOKEN_NAME) {
        return CallFault::default();
    }
    let mut call = AskedFault::default();
    let asked: Vec<String> = headers
        .get_all(FAULT_NAME)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    if !asked.is_empty() {
        call.asked = Some(asked.join(","));
    }
    let tokens: Vec<HeaderValue> = headers.get_all(FAULT_TOKEN_NAME).iter().cloned().collect();
    if !tokens.is_empty() {
        call.token = Some(tokens);
    }
    headers.remove(FAULT_NAME);
    headers.remove(FAULT_TOKEN_NAME);
    CallFault(Some(Box::new(call)))
}

/// Grants or refuses the fault a request asked for: `Some` is the answer to send instead
/// (403 `fault_unauthorized`, 400 `fault_header_invalid`). Without `faults.allow_headers` the
/// headers are ignored.
pub(crate) fn admit(
    call: &mut CallFault,
    route: &Route,
    log: &AccessLog,
    trace: &TraceContext,
) -> Option<Response<ProxyBody>> {
    let call = call.0.as_deref_mut()?;
    let asked = call.asked.as_deref()?;
    let faults = &route.faults;
    if !faults.allow_headers.load(Ordering::Relaxed) {
        tracing::debug!("levee-fault header ignored: faults.allow_headers is off");
        return None;
    }
    let authorised = match call.token.as_deref() {
        Some([one]) => faults.auth.accepts(one.as_bytes()),
        _ => false,
    };
    if !authorised {
        let detail = if faults.auth.is_configured() {
            format!(
                "The levee-fault header needs `{FAULT_TOKEN_HEADER}: <admin token>`, sent once, \
                 with the admin token."
            )
        } else {
            format!(
                "Header faults are authorised by the admin token, and none is configured: set \
                 the environment variable {} and restart Levee.",
                faults.auth.token_env()
            )
        };
        tracing::info!("levee-fault refused: missing or wrong {FAULT_TOKEN_HEADER}");
        return Some(refusal(
            StatusCode::FORBIDDEN,
            "fault_unauthorized",
            "Fault injection not authorised",
            &detail,
            log,
            trace,
        ));
    }
    match parse_header(asked) {
        Ok(spec) => {
            tracing::debug!(route = %route.name, fault = asked, "header fault granted");
            call.forced = Some(spec);
            None
        }
        Err(message) => {
            tracing::info!(error = %message, "malformed levee-fault header");
            Some(refusal(
                StatusCode::BAD_REQUEST,
                "fault_header_invalid",
                "Malformed levee-fault header",
                &message,
                log,
                trace,
            ))
        }
    }
}

/// A problem+json answer in the admin namespace (`urn:levee:admin:<code>`): header faults
/// are an operator tool authorised by the admin token, not a SPEC §7 data-plane refusal.
fn refusal(
    status: StatusCode,
    code: &'static str,
    title: &str,
    detail: &str,
    log: &AccessLog,
    trace: &TraceContext,
) -> Response<ProxyBody> {
    log.code(code);
    log.respond(status.as_u16(), Outcome::Rejected);
    let json = serde_json::json!({
        "type": format!("urn:levee:admin:{code}"),
        "title": title,
        "status": status.as_u16(),
        "code": code,
        "detail": detail,
        "trace_id": trace.trace_id.to_hex(),
    });
    let bytes = serde_json::to_vec(&json)
        .map(Bytes::from)
        .unwrap_or_default();
    levee_http::problem_response::<Full<Bytes>>(status, bytes, None).map(body::boxed)
}

/// One attempt with its fault, if any: the hook that replaces `attempt::send` in the attempt
/// loop. `timeout` is the attempt's time (per-try timeout and deadline).
pub(crate) fn send<'a>(
    call: &CallFault,
    route: &'a Route,
    shared: &'a Shared,
    endpoint: &'a Authority,
    request: Request<ProxyBody>,
    timeout: Option<Duration>,
) -> Either<impl Future<Output = AttemptEnd> + Send + 'a, InjectedAttempt<'a>> {
    // Not one `async fn`: the common path would nest the upstream call's future in one more
    // state machine, which every move of the request's future copies (docs/benchmarks.md);
    // the injected path is boxed instead, as drills are rare.
    let decision = route.faults.decide(call, route, shared.random.as_ref());
    if decision.is_none() {
        return Either::Left(attempt::send(&route.upstream, endpoint, request, timeout));
    }
    Either::Right(Box::pin(inject(
        decision, route, shared, endpoint, request, timeout,
    )))
}

/// An attempt with a fault in place of (or before) the upstream call.
pub(crate) type InjectedAttempt<'a> = Pin<Box<dyn Future<Output = AttemptEnd> + Send + 'a>>;

async fn inject(
    decision: FaultDecision,
    route: &Route,
    shared: &Shared,
    endpoint: &Authority,
    request: Request<ProxyBody>,
    timeout: Option<Duration>,
) -> AttemptEnd {
    let mut left = timeout;
    if let Some(delay) = decision.delay {
        injected(shared, route, FaultKind::Delay);
        match left {
            Some(t) if delay >= t => {
                tokio::time::sleep(t).await;
                return timed_out(timeout);
            }
            Some(t) => left = Some(t - delay),
            None => {}
        }
        tokio::time::sleep(delay).await;
    }
    let Some(action) = decision.action else {
        return attempt::send(&route.upstream, endpoint, request, left).await;
    };
    // The upstream is not called: dropping the request drops its body.
    drop(request);
    injected(shared, route, action.kind());
    let failure_statuses = &route.upstream.config().failure_statuses;
    match action {
        FaultAction::Abort(status) => {
            let result = AttemptResult::Status(status);
            AttemptEnd::Response {
                response: synthesize(status),
                result,
                outcome: classify(result, failure_statuses),
            }
        }
        FaultAction::Reset => AttemptEnd::Failed {
            result: AttemptResult::Reset,
            outcome: classify(AttemptResult::Reset, failure_statuses),
            detail: "injected fault: connection reset".into(),
        },
        FaultAction::Hang => match left {
            Some(t) => {
                tokio::time::sleep(t).await;
                timed_out(timeout)
            }
            None => std::future::pending().await,
        },
    }
}

fn timed_out(timeout: Option<Duration>) -> AttemptEnd {
    AttemptEnd::Failed {
        result: AttemptResult::Timeout,
        outcome: Outcome::Timeout,
        detail: format!(
            "no response within {} ms (injected fault)",
            timeout.unwrap_or_default().as_millis()
        ),
    }
}

fn injected(shared: &Shared, route: &Route, kind: FaultKind) {
    shared.metrics.fault_injected(&route.name, kind.as_str());
    tracing::debug!(route = %route.name, kind = kind.as_str(), "fault injected");
}

/// An upstream answer with `status`, as the attempt path carries a real one.
fn synthesize(status: u16) -> Response<UpstreamBody> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let mut response = Response::new(UpstreamBody::Synthesized(Full::new(Bytes::from_static(
        INJECTED_BODY,
    ))));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(INJECTED_HEADER, HeaderValue::from_static("abort"));
    response
}

/// `GET /api/faults`: every route with an admin fault, or a non-empty config fault.
pub(crate) fn views(runtime: &Runtime) -> Vec<FaultView> {
    let admin = runtime.faults.read();
    runtime
        .routes
        .iter()
        .map(|route| view(route, &admin))
        .filter(|v| v.source != FaultSource::None)
        .collect()
}

fn view(route: &Route, admin: &BTreeMap<String, FaultSpec>) -> FaultView {
    let (source, fault) = match (admin.get(&route.name), &route.config.fault) {
        (Some(spec), _) => (FaultSource::Admin, spec.clone()),
        (None, Some(spec)) if !spec.is_empty() => (FaultSource::Config, spec.clone()),
        _ => (FaultSource::None, FaultSpec::default()),
    };
    FaultView {
        route: route.name.clone(),
        source,
        fault,
    }
}

/// `PUT` (`Some`) and `DELETE` (`None`) of a route's admin fault; the answer is the route's
/// fault in force afterwards.
pub(crate) fn set(
    runtime: &Runtime,
    route_name: &str,
    fault: Option<FaultSpec>,
) -> Result<FaultView, FaultError> {
    let Some(route) = runtime.routes.iter().find(|r| r.name == route_name) else {
        return Err(FaultError::UnknownRoute {
            route: route_name.to_string(),
            known: runtime.routes.iter().map(|r| r.name.clone()).collect(),
        });
    };
    let mut admin = runtime.faults.write();
    match fault {
        Some(spec) => {
            admin.insert(route.name.clone(), spec);
        }
        None => {
            admin.remove(&route.name);
        }
    }
    runtime
        .faults
        .any_admin
        .store(!admin.is_empty(), Ordering::Relaxed);
    Ok(view(route, &admin))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn both_headers_are_always_removed() {
        let mut headers = HeaderMap::new();
        headers.append(FAULT_HEADER, HeaderValue::from_static("delay=1ms"));
        headers.append(FAULT_HEADER, HeaderValue::from_static("abort=503"));
        headers.insert(FAULT_TOKEN_HEADER, HeaderValue::from_static("secret"));
        headers.insert("x-other", HeaderValue::from_static("kept"));
        let call = take_headers(&mut headers)
            .0
            .expect("the headers were taken");
        assert!(!headers.contains_key(FAULT_HEADER));
        assert!(!headers.contains_key(FAULT_TOKEN_HEADER));
        assert_eq!(headers["x-other"], "kept");
        assert_eq!(call.asked.as_deref(), Some("delay=1ms,abort=503"));
        assert_eq!(call.token.map(|t| t.len()), Some(1));
    }

    #[tokio::test]
    async fn a_synthesized_abort_is_a_real_response() {
        use http_body_util::BodyExt;
        let response = synthesize(503);
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[INJECTED_HEADER], "abort");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], INJECTED_BODY);
    }
}
