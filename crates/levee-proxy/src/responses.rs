//! The answers Levee gives itself rather than relaying the upstream's: the SPEC §7 envelope
//! (rendered by levee-http), the two degraded answers (stale and static), and plain HTTP
//! errors for requests that never reached a route.
//!
//! Decisions where SPEC is silent:
//! - **No route** is `404 Not Found`, not `bad_request`: the request is well-formed, there is
//!   just nothing here, and clients and crawlers treat 404 correctly. The body is RFC 9457 with
//!   `type: about:blank` (no Levee code applies: Levee is not degrading anything).
//! - **Client limits**: a body over `max_body_bytes` is `413`, a body not sent within
//!   `body_timeout` is `408`; both are `about:blank` problems for the same reason. Oversized
//!   heads get `431` and malformed ones `400` from hyper itself, before any route is chosen.

use crate::body::{boxed, full, ProxyBody};
use crate::stale::CachedResponse;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, AGE, CONTENT_LENGTH};
use http::{Response, StatusCode};
use http_body_util::Full;
use levee_config::StaticFallbackConfig;
use levee_core::names::header;
use levee_core::ErrorCode;
use levee_http::{degraded_value, problem_response, DegradedKind, Problem};
use std::time::Duration;

/// The SPEC §7 envelope for `code`.
pub fn problem(
    code: ErrorCode,
    upstream: &str,
    retry_after: Option<Duration>,
    trace_id: &str,
) -> Response<ProxyBody> {
    Problem::new(code, upstream)
        .with_retry_after(retry_after)
        .with_trace_id(trace_id)
        .to_response::<Full<Bytes>>()
        .map(boxed)
}

/// An RFC 9457 `about:blank` problem for a plain HTTP status (no Levee code applies).
pub fn plain(status: StatusCode, detail: &str, trace_id: &str) -> Response<ProxyBody> {
    let body = serde_json::json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
        "trace_id": trace_id,
    });
    let json = serde_json::to_vec(&body)
        .map(Bytes::from)
        .unwrap_or_default();
    problem_response::<Full<Bytes>>(status, json, None).map(boxed)
}

/// A stale copy, `age` old, served because of `reason`.
pub fn stale(cached: CachedResponse, age: Duration, reason: ErrorCode) -> Response<ProxyBody> {
    let mut headers = cached.headers;
    let upstream_age = headers
        .get(AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    headers.insert(
        AGE,
        HeaderValue::from(upstream_age.saturating_add(age.as_secs())),
    );
    headers.insert(
        header::DEGRADED,
        degraded_value(DegradedKind::Stale, reason),
    );
    headers.insert(CONTENT_LENGTH, HeaderValue::from(cached.body.len()));
    let mut response = Response::new(full(cached.body));
    *response.status_mut() = cached.status;
    *response.headers_mut() = headers;
    response
}

/// The route's static fallback, served because of `reason`. The config was validated when
/// the route was built; a header that still fails to parse is skipped.
pub fn static_fallback(config: &StaticFallbackConfig, reason: ErrorCode) -> Response<ProxyBody> {
    let mut response = Response::new(full(Bytes::from(config.body.clone())));
    *response.status_mut() = StatusCode::from_u16(config.status).unwrap_or(StatusCode::OK);
    let headers = response.headers_mut();
    for (name, value) in &config.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(n, v);
        }
    }
    headers.insert(
        header::DEGRADED,
        degraded_value(DegradedKind::Static, reason),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    response
}
