//! The `levee-degraded` header (SPEC §7): marks a fallback answer so clients, caches and
//! dashboards can tell it from a real one. Fallbacks must be loud.
//!
//! Values: `stale; reason=<code>` (a stale cached response served by `stale_if_error`) and
//! `static; reason=<code>` (the route's fixed degraded answer), where `<code>` is the SPEC §7
//! code of what went wrong. The kind is also the `kind` label of `levee_fallbacks_total`.

use http::HeaderValue;
use levee_core::error::ErrorCode;
use std::fmt;

/// Which fallback produced the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DegradedKind {
    /// The last good response, served by `stale_if_error`.
    Stale,
    /// The route's `static` fallback.
    Static,
}

impl DegradedKind {
    /// Both kinds.
    pub const ALL: [DegradedKind; 2] = [DegradedKind::Stale, DegradedKind::Static];

    /// The header token and the `kind` metric label: `stale` or `static`.
    pub const fn as_str(self) -> &'static str {
        match self {
            DegradedKind::Stale => "stale",
            DegradedKind::Static => "static",
        }
    }
}

impl fmt::Display for DegradedKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `levee-degraded` value for a fallback of `kind` served because of `reason`.
///
/// ```
/// use levee_core::ErrorCode;
/// use levee_http::degraded::{degraded_value, DegradedKind};
/// assert_eq!(degraded_value(DegradedKind::Stale, ErrorCode::CircuitOpen), "stale; reason=circuit_open");
/// ```
pub fn degraded_value(kind: DegradedKind, reason: ErrorCode) -> HeaderValue {
    // Both parts are fixed ASCII tokens, so the value is always valid; the match keeps the
    // header allocation-free on the fallback path.
    HeaderValue::from_static(match (kind, reason) {
        (DegradedKind::Stale, ErrorCode::CircuitOpen) => "stale; reason=circuit_open",
        (DegradedKind::Stale, ErrorCode::BulkheadFull) => "stale; reason=bulkhead_full",
        (DegradedKind::Stale, ErrorCode::RateLimited) => "stale; reason=rate_limited",
        (DegradedKind::Stale, ErrorCode::RetryBudgetExhausted) => {
            "stale; reason=retry_budget_exhausted"
        }
        (DegradedKind::Stale, ErrorCode::DeadlineExceeded) => "stale; reason=deadline_exceeded",
        (DegradedKind::Stale, ErrorCode::UpstreamUnavailable) => {
            "stale; reason=upstream_unavailable"
        }
        (DegradedKind::Stale, ErrorCode::UpstreamTimeout) => "stale; reason=upstream_timeout",
        (DegradedKind::Stale, ErrorCode::FeatureDisabled) => "stale; reason=feature_disabled",
        (DegradedKind::Stale, ErrorCode::Draining) => "stale; reason=draining",
        (DegradedKind::Stale, ErrorCode::BadRequest) => "stale; reason=bad_request",
        (DegradedKind::Static, ErrorCode::CircuitOpen) => "static; reason=circuit_open",
        (DegradedKind::Static, ErrorCode::BulkheadFull) => "static; reason=bulkhead_full",
        (DegradedKind::Static, ErrorCode::RateLimited) => "static; reason=rate_limited",
        (DegradedKind::Static, ErrorCode::RetryBudgetExhausted) => {
            "static; reason=retry_budget_exhausted"
        }
        (DegradedKind::Static, ErrorCode::DeadlineExceeded) => "static; reason=deadline_exceeded",
        (DegradedKind::Static, ErrorCode::UpstreamUnavailable) => {
            "static; reason=upstream_unavailable"
        }
        (DegradedKind::Static, ErrorCode::UpstreamTimeout) => "static; reason=upstream_timeout",
        (DegradedKind::Static, ErrorCode::FeatureDisabled) => "static; reason=feature_disabled",
        (DegradedKind::Static, ErrorCode::Draining) => "static; reason=draining",
        (DegradedKind::Static, ErrorCode::BadRequest) => "static; reason=bad_request",
    })
}

/// Reads a `levee-degraded` value back (tests, drills, the Go SDK's client side). Accepts
/// optional spaces around `;` and `=`; `None` for anything else.
pub fn parse_degraded(value: &str) -> Option<(DegradedKind, ErrorCode)> {
    let (kind, param) = value.split_once(';')?;
    let kind = match kind.trim() {
        "stale" => DegradedKind::Stale,
        "static" => DegradedKind::Static,
        _ => return None,
    };
    let (name, code) = param.split_once('=')?;
    if name.trim() != "reason" {
        return None;
    }
    Some((kind, ErrorCode::parse(code.trim())?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_and_code_round_trips() {
        for kind in DegradedKind::ALL {
            for code in ErrorCode::ALL {
                let value = degraded_value(kind, code);
                let text = value.to_str().unwrap_or_default();
                assert_eq!(text, format!("{kind}; reason={code}"));
                assert_eq!(parse_degraded(text), Some((kind, code)));
            }
        }
    }

    #[test]
    fn parse_rejects_other_shapes() {
        assert_eq!(
            parse_degraded("static ;reason = circuit_open"),
            Some((DegradedKind::Static, ErrorCode::CircuitOpen))
        );
        assert_eq!(parse_degraded("stale"), None);
        assert_eq!(parse_degraded("cached; reason=circuit_open"), None);
        assert_eq!(parse_degraded("stale; why=circuit_open"), None);
        assert_eq!(parse_degraded("stale; reason=oops"), None);
    }
}
