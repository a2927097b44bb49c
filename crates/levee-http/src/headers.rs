//! Levee's request headers (SPEC §3, §5): `levee-criticality`, `levee-timeout-ms` and
//! `grpc-timeout`.
//!
//! Inbound, a malformed Levee header is the client's mistake and Levee says so at once
//! (`bad_request`, 400) rather than guessing: a guessed deadline or class would silently change
//! how the request is protected. An absent header is not an error; the route's config applies.
//!
//! Decisions where SPEC is silent:
//!
//! - A Levee header sent more than once is malformed: two deadlines or two classes leave no
//!   right answer to pick.
//! - A value that is not visible ASCII text is malformed (HTTP allows obs-text bytes, Levee's
//!   values never contain them).
//! - Outbound, `levee-timeout-ms` is written whenever the call has a deadline, so every hop
//!   after Levee knows what is left; `grpc-timeout` is written as well for gRPC requests
//!   (`content-type: application/grpc…`) and whenever the request already carried one, so an
//!   upstream never sees a deadline longer than what is really left.

use crate::problem::Problem;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderName, HeaderValue};
use levee_core::criticality::UnknownCriticality;
use levee_core::deadline::{self, DeadlineError};
use levee_core::names::header;
use levee_core::{Criticality, ErrorCode};
use std::fmt;
use std::time::Duration;

/// The header names of `levee_core::names::header` as [`HeaderName`]s, for inserting and
/// appending: `HeaderMap::insert` with a `&str` key builds (and allocates) a new name on every
/// call for a name that is not one of HTTP's standard ones; these constants cost nothing.
pub mod name {
    use http::HeaderName;
    use levee_core::names::header;

    /// `levee-timeout-ms`.
    pub const TIMEOUT_MS: HeaderName = HeaderName::from_static(header::TIMEOUT_MS);
    /// `grpc-timeout`.
    pub const GRPC_TIMEOUT: HeaderName = HeaderName::from_static(header::GRPC_TIMEOUT);
    /// `levee-criticality`.
    pub const CRITICALITY: HeaderName = HeaderName::from_static(header::CRITICALITY);
    /// `levee-degraded`.
    pub const DEGRADED: HeaderName = HeaderName::from_static(header::DEGRADED);
    /// `idempotency-key`.
    pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static(header::IDEMPOTENCY_KEY);
    /// `traceparent`.
    pub const TRACEPARENT: HeaderName = HeaderName::from_static(header::TRACEPARENT);
    /// `tracestate`.
    pub const TRACESTATE: HeaderName = HeaderName::from_static(header::TRACESTATE);
    /// `x-request-id`.
    pub const REQUEST_ID: HeaderName = HeaderName::from_static(header::REQUEST_ID);
    /// `x-forwarded-for`.
    pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
    /// `x-forwarded-proto`.
    pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
}

/// A malformed Levee request header. Always answered with `bad_request` (400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// `levee-criticality` is not `critical`, `standard` or `sheddable`.
    Criticality(UnknownCriticality),
    /// `levee-timeout-ms` or `grpc-timeout` is malformed.
    Deadline(DeadlineError),
    /// The value holds bytes that are not visible ASCII text.
    NotText {
        /// The header's name.
        header: &'static str,
    },
    /// The header was sent more than once.
    Repeated {
        /// The header's name.
        header: &'static str,
    },
}

impl HeaderError {
    /// The SPEC §7 code: always `bad_request`.
    pub const fn code(&self) -> ErrorCode {
        ErrorCode::BadRequest
    }

    /// The header at fault.
    pub fn header(&self) -> &'static str {
        match self {
            HeaderError::Criticality(_) => header::CRITICALITY,
            HeaderError::Deadline(e) => e.header,
            HeaderError::NotText { header } | HeaderError::Repeated { header } => header,
        }
    }

    /// The envelope to answer with; the precise reason goes into [`Problem::cause`].
    pub fn to_problem(&self, upstream: &str, trace_id: Option<&str>) -> Problem {
        let mut problem = Problem::new(self.code(), upstream).with_cause(self.to_string());
        problem.trace_id = trace_id.map(str::to_owned);
        problem
    }
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::Criticality(e) => write!(f, "{} header: {e}", header::CRITICALITY),
            HeaderError::Deadline(e) => e.fmt(f),
            HeaderError::NotText { header } => write!(
                f,
                "{header} header is not plain text: send visible ASCII characters only"
            ),
            HeaderError::Repeated { header } => write!(
                f,
                "{header} header was sent more than once: send it once, with one value"
            ),
        }
    }
}

impl std::error::Error for HeaderError {}

impl From<DeadlineError> for HeaderError {
    fn from(e: DeadlineError) -> Self {
        HeaderError::Deadline(e)
    }
}

/// The single value of header `name`: `Ok(None)` when absent, an error when repeated or not
/// text.
pub fn single_value<'a>(
    headers: &'a HeaderMap,
    name: &'static str,
) -> Result<Option<&'a str>, HeaderError> {
    single_value_of(headers, name, HeaderName::from_static(name))
}

/// [`single_value`] looked up by a ready [`HeaderName`] (no name parsing per lookup).
fn single_value_of<'a>(
    headers: &'a HeaderMap,
    name: &'static str,
    key: HeaderName,
) -> Result<Option<&'a str>, HeaderError> {
    let mut values = headers.get_all(key).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(HeaderError::Repeated { header: name });
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| HeaderError::NotText { header: name })
}

/// The request's class from `levee-criticality`; `Ok(None)` when absent (the route's
/// `criticality`, else `standard`, applies). Case and surrounding spaces are ignored.
///
/// ```
/// use http::HeaderMap;
/// use levee_core::Criticality;
/// let mut headers = HeaderMap::new();
/// headers.insert("levee-criticality", "critical".parse().unwrap());
/// assert_eq!(levee_http::headers::criticality(&headers), Ok(Some(Criticality::Critical)));
/// ```
pub fn criticality(headers: &HeaderMap) -> Result<Option<Criticality>, HeaderError> {
    let Some(value) = single_value_of(headers, header::CRITICALITY, name::CRITICALITY)? else {
        return Ok(None);
    };
    value.parse::<Criticality>().map(Some).map_err(|_| {
        // Keep log lines bounded whatever the client sent.
        HeaderError::Criticality(UnknownCriticality(value.chars().take(64).collect()))
    })
}

/// The inbound remaining time from `levee-timeout-ms` and/or `grpc-timeout` (the shorter when
/// both are sent); `Ok(None)` when the caller sent no deadline. Zero means already spent: the
/// caller rejects with `deadline_exceeded` before any upstream work.
pub fn inbound_deadline(headers: &HeaderMap) -> Result<Option<Duration>, HeaderError> {
    let timeout_ms = single_value_of(headers, header::TIMEOUT_MS, name::TIMEOUT_MS)?;
    let grpc = single_value_of(headers, header::GRPC_TIMEOUT, name::GRPC_TIMEOUT)?;
    Ok(deadline::inbound_remaining(timeout_ms, grpc)?)
}

/// True for gRPC requests (`content-type: application/grpc`, `application/grpc+proto`,
/// `application/grpc-web…`).
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.get(..16)
                .is_some_and(|p| p.eq_ignore_ascii_case("application/grpc"))
        })
}

/// Writes the outbound remaining deadline into the upstream request's headers (a copy of the
/// inbound ones): `levee-timeout-ms` always, `grpc-timeout` for gRPC requests and whenever the
/// request carried one. Call it at the moment of sending each attempt, with what is left then.
pub fn write_deadline(headers: &mut HeaderMap, remaining: Duration) {
    let carries_grpc_timeout = headers.contains_key(name::GRPC_TIMEOUT);
    write_deadline_given(headers, remaining, carries_grpc_timeout);
}

/// [`write_deadline`] for a caller that already knows whether `headers` holds a
/// `grpc-timeout` (the proxy learns it from one pass over the inbound names and saves the
/// lookup).
pub fn write_deadline_given(
    headers: &mut HeaderMap,
    remaining: Duration,
    carries_grpc_timeout: bool,
) {
    // `format_timeout_ms` is `floor(remaining / 1 ms)` of the capped time, which always fits
    // in a u64: written straight into the value, without a `String` first.
    // Digits on the stack and one copy into the value: `HeaderValue::from(u64)` went
    // through a `BytesMut` and cost two allocations.
    let millis = remaining.min(deadline::MAX_REMAINING).as_millis();
    let n = u64::try_from(millis).unwrap_or(u64::MAX);
    if let Ok(value) = HeaderValue::from_bytes(crate::decimal::digits(n, &mut [0; 20])) {
        headers.insert(name::TIMEOUT_MS, value);
    }
    if carries_grpc_timeout || is_grpc(headers) {
        if let Ok(value) = HeaderValue::try_from(deadline::format_grpc_timeout(remaining)) {
            headers.insert(name::GRPC_TIMEOUT, value);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use levee_core::deadline::DeadlineErrorKind;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn criticality_absent_valid_and_malformed() {
        assert_eq!(criticality(&HeaderMap::new()), Ok(None));
        assert_eq!(
            criticality(&headers(&[("levee-criticality", " Sheddable ")])),
            Ok(Some(Criticality::Sheddable))
        );
        let err = criticality(&headers(&[("levee-criticality", "urgent")])).unwrap_err();
        assert_eq!(err.code(), ErrorCode::BadRequest);
        assert_eq!(err.header(), "levee-criticality");
        assert!(
            err.to_string().contains("critical, standard or sheddable"),
            "{err}"
        );
        let problem = err.to_problem("inventory", Some("abc"));
        assert_eq!(problem.status().as_u16(), 400);
        assert_eq!(problem.trace_id.as_deref(), Some("abc"));
        assert!(problem.cause.unwrap().contains("urgent"));
    }

    #[test]
    fn criticality_repeated_or_binary_is_malformed() {
        let err = criticality(&headers(&[
            ("levee-criticality", "critical"),
            ("levee-criticality", "sheddable"),
        ]))
        .unwrap_err();
        assert_eq!(
            err,
            HeaderError::Repeated {
                header: "levee-criticality"
            }
        );
        let mut map = HeaderMap::new();
        map.insert(
            "levee-criticality",
            HeaderValue::from_bytes(b"crit\xffcal").unwrap(),
        );
        assert_eq!(
            criticality(&map),
            Err(HeaderError::NotText {
                header: "levee-criticality"
            })
        );
    }

    #[test]
    fn long_bad_criticality_is_cut_for_logs() {
        let long = "x".repeat(1000);
        let Err(HeaderError::Criticality(UnknownCriticality(v))) =
            criticality(&headers(&[("levee-criticality", &long)]))
        else {
            panic!("expected a criticality error");
        };
        assert_eq!(v.len(), 64);
    }

    #[test]
    fn inbound_deadline_reads_either_header_and_takes_the_shorter() {
        assert_eq!(inbound_deadline(&HeaderMap::new()), Ok(None));
        assert_eq!(
            inbound_deadline(&headers(&[("levee-timeout-ms", "250")])),
            Ok(Some(Duration::from_millis(250)))
        );
        assert_eq!(
            inbound_deadline(&headers(&[("grpc-timeout", "1S")])),
            Ok(Some(Duration::from_secs(1)))
        );
        assert_eq!(
            inbound_deadline(&headers(&[
                ("levee-timeout-ms", "900"),
                ("grpc-timeout", "300m")
            ])),
            Ok(Some(Duration::from_millis(300)))
        );
        assert_eq!(
            inbound_deadline(&headers(&[("levee-timeout-ms", "0")])),
            Ok(Some(Duration::ZERO))
        );
    }

    #[test]
    fn malformed_deadlines_are_bad_requests_naming_the_header() {
        let err = inbound_deadline(&headers(&[("levee-timeout-ms", "-5")])).unwrap_err();
        let HeaderError::Deadline(e) = &err else {
            panic!("expected a deadline error, got {err:?}");
        };
        assert_eq!(e.kind, DeadlineErrorKind::Negative);
        assert_eq!(err.header(), "levee-timeout-ms");
        assert_eq!(err.code(), ErrorCode::BadRequest);
        let err = inbound_deadline(&headers(&[("grpc-timeout", "5x")])).unwrap_err();
        assert_eq!(err.header(), "grpc-timeout");
        let err = inbound_deadline(&headers(&[
            ("levee-timeout-ms", "5"),
            ("levee-timeout-ms", "6"),
        ]))
        .unwrap_err();
        assert!(matches!(err, HeaderError::Repeated { .. }));
    }

    #[test]
    fn outbound_deadline_for_plain_http_writes_only_timeout_ms() {
        let mut map = headers(&[("levee-timeout-ms", "900")]);
        write_deadline(&mut map, Duration::from_micros(299_999));
        assert_eq!(map["levee-timeout-ms"], "299");
        assert!(map.get("grpc-timeout").is_none());
    }

    #[test]
    fn outbound_deadline_for_grpc_writes_both() {
        let mut map = headers(&[("content-type", "application/grpc+proto")]);
        write_deadline(&mut map, Duration::from_millis(250));
        assert_eq!(map["levee-timeout-ms"], "250");
        assert_eq!(map["grpc-timeout"], "250000u");
    }

    #[test]
    fn outbound_deadline_replaces_an_inbound_grpc_timeout_even_without_grpc_content_type() {
        let mut map = headers(&[("grpc-timeout", "10S")]);
        write_deadline(&mut map, Duration::from_secs(1));
        assert_eq!(map.get_all("grpc-timeout").iter().count(), 1);
        assert_eq!(map["grpc-timeout"], "1000000u");
        assert_eq!(map["levee-timeout-ms"], "1000");
    }

    #[test]
    fn outbound_deadline_given_takes_the_callers_word_on_grpc_timeout() {
        let mut told = HeaderMap::new();
        write_deadline_given(&mut told, Duration::from_secs(2), true);
        assert_eq!(told["grpc-timeout"], "2000000u");
        let mut plain = HeaderMap::new();
        write_deadline_given(&mut plain, Duration::from_secs(2), false);
        assert!(plain.get("grpc-timeout").is_none());
        assert_eq!(plain["levee-timeout-ms"], "2000");
        // gRPC by its content type needs no word from the caller.
        let mut grpc = headers(&[("content-type", "application/grpc")]);
        write_deadline_given(&mut grpc, Duration::from_secs(2), false);
        assert_eq!(grpc["grpc-timeout"], "2000000u");
    }

    #[test]
    fn grpc_detection() {
        assert!(is_grpc(&headers(&[("content-type", "application/grpc")])));
        assert!(is_grpc(&headers(&[(
            "content-type",
            "Application/GRPC-web"
        )])));
        assert!(!is_grpc(&headers(&[("content-type", "application/json")])));
        assert!(!is_grpc(&HeaderMap::new()));
    }
}
