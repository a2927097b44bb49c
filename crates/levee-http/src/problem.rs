//! The error envelope (SPEC §7): RFC 9457 `application/problem+json`, rendered in one place.
//!
//! Every answer Levee gives instead of the upstream — breaker open, bulkhead full, rate
//! limited, deadline spent, draining, a malformed Levee header — is a [`Problem`]. The facts
//! (status, title, detail text) come from the one catalogue in [`levee_core::error`]; this
//! module only turns them into bytes and headers, so the proxy, the tower layers and the admin
//! API cannot drift apart.
//!
//! # Wire shape
//!
//! ```json
//! {"type":"urn:levee:error:circuit_open","title":"Service temporarily unavailable",
//!  "status":503,"code":"circuit_open","detail":"inventory is failing; ...",
//!  "degraded":true,"retry_after_s":5,"upstream":"inventory",
//!  "trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"}
//! ```
//!
//! Decisions where SPEC §7 is silent:
//!
//! - `retry_after_s`, `upstream` and `trace_id` are **omitted** when unknown (never `null`),
//!   exactly as the Go SDK's `omitempty` envelope does, so both implementations emit the same
//!   bytes-for-meaning. A JSON reader sees "absent" either way; the `Retry-After` header
//!   follows `retry_after_s` (present if and only if it is).
//! - `retry_after_s` is whole seconds rounded up, at least 1
//!   ([`levee_core::error::retry_after_seconds`]): clients never come back before Levee would
//!   let them through.
//! - When the upstream is not known (the request failed before routing), the detail text says
//!   "the service" rather than leaving a hole in the sentence, and `upstream` is omitted.
//! - Every envelope carries `cache-control: no-store`: a shared cache must never replay an
//!   outage to other clients after it ends.
//! - The precise reason for a `bad_request` (which header, what was wrong) travels in
//!   [`Problem::cause`], which the edge logs; the body keeps to the catalogue's plain words so
//!   that every implementation answers the same.

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use http::{Response, StatusCode};
use levee_core::error::{retry_after_seconds, ErrorCode};
use serde::Serialize;
use std::fmt;
use std::time::Duration;

/// The media type of the envelope.
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// What the detail text calls an upstream Levee does not know yet.
pub const UNKNOWN_UPSTREAM: &str = "the service";

/// Why Levee answered instead of the upstream, with everything the envelope needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The SPEC §7 code: decides status, title and detail.
    pub code: ErrorCode,
    /// The upstream the request was for; empty when not known yet.
    pub upstream: String,
    /// When the client may try again, when Levee knows it (`Retry-After`, `retry_after_s`).
    pub retry_after: Option<Duration>,
    /// The request's W3C trace id (32 lowercase hex), so a user's report finds the logs.
    pub trace_id: Option<String>,
    /// The precise reason, for logs only (never rendered into the body).
    pub cause: Option<String>,
}

/// The JSON body, field for field as SPEC §7 lists them, borrowed from a [`Problem`].
#[derive(Debug, Serialize)]
pub struct ProblemBody<'a> {
    /// `urn:levee:error:<code>`.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// The catalogue's short title.
    pub title: &'static str,
    /// The HTTP status, repeated in the body as RFC 9457 asks.
    pub status: u16,
    /// The SPEC §7 code.
    pub code: &'static str,
    /// The catalogue's detail text.
    pub detail: String,
    /// False only for `bad_request` (the client's fault, not a degraded answer).
    pub degraded: bool,
    /// Whole seconds until a retry may succeed; omitted when unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_s: Option<u64>,
    /// The upstream; omitted when unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<&'a str>,
    /// The trace id; omitted when unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<&'a str>,
}

impl Problem {
    /// A problem with `code` for `upstream` (empty when the request was not routed yet).
    pub fn new(code: ErrorCode, upstream: impl Into<String>) -> Self {
        Problem {
            code,
            upstream: upstream.into(),
            retry_after: None,
            trace_id: None,
            cause: None,
        }
    }

    /// Sets when the client may try again.
    #[must_use]
    pub fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// Sets the trace id shown to the client.
    #[must_use]
    pub fn with_trace_id(mut self, trace_id: impl Into<String>) -> Self {
        self.trace_id = Some(trace_id.into());
        self
    }

    /// Sets the precise reason, for the edge's log line.
    #[must_use]
    pub fn with_cause(mut self, cause: impl Into<String>) -> Self {
        self.cause = Some(cause.into());
        self
    }

    /// The HTTP status of the answer.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
    }

    /// `retry_after_s` and the `Retry-After` header value, when known.
    pub fn retry_after_s(&self) -> Option<u64> {
        self.retry_after.map(retry_after_seconds)
    }

    /// The body as a serializable value.
    pub fn body(&self) -> ProblemBody<'_> {
        let upstream = (!self.upstream.is_empty()).then_some(self.upstream.as_str());
        ProblemBody {
            type_uri: self.code.type_uri(),
            title: self.code.title(),
            status: self.code.status(),
            code: self.code.as_str(),
            detail: self
                .code
                .detail(upstream.unwrap_or(UNKNOWN_UPSTREAM), self.retry_after),
            degraded: self.code.degraded(),
            retry_after_s: self.retry_after_s(),
            upstream,
            trace_id: self.trace_id.as_deref().filter(|t| !t.is_empty()),
        }
    }

    /// The body as JSON bytes.
    pub fn to_json(&self) -> Bytes {
        match serde_json::to_vec(&self.body()) {
            Ok(json) => Bytes::from(json),
            // Serializing strings and numbers cannot fail; if it ever did, the client still
            // gets a valid envelope with the right code rather than an empty body.
            Err(_) => Bytes::from(format!(
                r#"{{"type":"{}","status":{},"code":"{}"}}"#,
                self.code.type_uri(),
                self.code.status(),
                self.code.as_str()
            )),
        }
    }

    /// The whole answer: status, `content-type: application/problem+json`,
    /// `cache-control: no-store`, `retry-after` when known, and the JSON body.
    ///
    /// Generic over the body so it serves hyper (`Full<Bytes>`), axum (`Body`) and tower
    /// stacks alike.
    pub fn to_response<B: From<Bytes>>(&self) -> Response<B> {
        problem_response(self.status(), self.to_json(), self.retry_after_s())
    }
}

impl fmt::Display for Problem {
    /// `code (status) for upstream: cause`, for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.code, self.code.status())?;
        if !self.upstream.is_empty() {
            write!(f, " for {}", self.upstream)?;
        }
        if let Some(cause) = &self.cause {
            write!(f, ": {cause}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problem {}

/// Any problem+json answer: the one place that sets the envelope's headers. The admin API uses
/// it for its own problems (401, 403, 404) so they look like the data plane's.
pub fn problem_response<B: From<Bytes>>(
    status: StatusCode,
    json: Bytes,
    retry_after_s: Option<u64>,
) -> Response<B> {
    let mut response = Response::new(B::from(json));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_CONTENT_TYPE));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(seconds) = retry_after_s {
        headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use http_body_util::Full;
    use serde_json::{json, Value};

    fn body(p: &Problem) -> Value {
        serde_json::from_slice(&p.to_json()).unwrap()
    }

    #[test]
    fn circuit_open_matches_the_spec_example_field_for_field() {
        let p = Problem::new(ErrorCode::CircuitOpen, "inventory")
            .with_retry_after(Some(Duration::from_secs(5)))
            .with_trace_id("4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            body(&p),
            json!({"type": "urn:levee:error:circuit_open", "title": "Service temporarily unavailable",
                "status": 503, "code": "circuit_open",
                "detail": "inventory is failing; Levee is protecting it and will retry in about 5 s.",
                "degraded": true, "retry_after_s": 5, "upstream": "inventory",
                "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"})
        );
    }

    #[test]
    fn fields_appear_in_spec_order() {
        let p = Problem::new(ErrorCode::RateLimited, "search")
            .with_retry_after(Some(Duration::from_millis(2500)))
            .with_trace_id("0af7651916cd43dd8448eb211c80319c");
        let text = String::from_utf8(p.to_json().to_vec()).unwrap();
        let order = [
            "\"type\"",
            "\"title\"",
            "\"status\"",
            "\"code\"",
            "\"detail\"",
            "\"degraded\"",
            "\"retry_after_s\"",
            "\"upstream\"",
            "\"trace_id\"",
        ];
        let positions: Vec<usize> = order.iter().map(|k| text.find(k).unwrap()).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
    }

    #[test]
    fn unknown_fields_are_omitted_not_null() {
        let p = Problem::new(ErrorCode::RetryBudgetExhausted, "inventory");
        let v = body(&p);
        let obj = v.as_object().unwrap();
        assert!(!obj.contains_key("retry_after_s"));
        assert!(!obj.contains_key("trace_id"));
        assert_eq!(obj["upstream"], "inventory");
        assert_eq!(
            obj["detail"],
            "inventory is failing and Levee has stopped retrying to let it recover; \
             please try again shortly."
        );
        let r: http::Response<Full<Bytes>> = p.to_response();
        assert!(r.headers().get(RETRY_AFTER).is_none());
    }

    #[test]
    fn unknown_upstream_reads_as_plain_words() {
        let v = body(&Problem::new(ErrorCode::BadRequest, ""));
        assert_eq!(v["detail"], "The request to the service was malformed.");
        assert_eq!(v["degraded"], false);
        assert_eq!(v["status"], 400);
        assert!(v.get("upstream").is_none());
    }

    #[test]
    fn response_carries_status_and_headers() {
        let p = Problem::new(ErrorCode::BulkheadFull, "pricing")
            .with_retry_after(Some(Duration::from_millis(1)));
        let r: http::Response<Full<Bytes>> = p.to_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[CONTENT_TYPE], PROBLEM_CONTENT_TYPE);
        assert_eq!(r.headers()[CACHE_CONTROL], "no-store");
        assert_eq!(r.headers()[RETRY_AFTER], "1");
        assert_eq!(body(&p)["retry_after_s"], 1);
    }

    #[test]
    fn every_code_renders_its_status_type_and_title() {
        for code in ErrorCode::ALL {
            let p = Problem::new(code, "inventory").with_trace_id("t");
            let v = body(&p);
            assert_eq!(v["status"], code.status());
            assert_eq!(v["code"], code.as_str());
            assert_eq!(v["type"], format!("urn:levee:error:{code}"));
            assert_eq!(v["title"], code.title());
            assert_eq!(p.status().as_u16(), code.status());
        }
    }

    #[test]
    fn display_names_code_upstream_and_cause() {
        let p = Problem::new(ErrorCode::BadRequest, "inventory").with_cause("bad header");
        assert_eq!(p.to_string(), "bad_request (400) for inventory: bad header");
        assert!(body(&p).get("cause").is_none());
    }
}
