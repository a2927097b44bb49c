//! The closed set of error codes and their user-facing texts (SPEC §7).
//!
//! One catalogue, so the proxy, the tower layers and the Go SDK tell users the same thing in
//! the same plain words. Rendering the RFC 9457 problem+json body is the HTTP edge's job; this
//! module owns the facts: code, status, title and the detail text.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// Why Levee answered instead of the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Breaker open or forced open.
    CircuitOpen,
    /// No slot and no queue room, wait expired, or evicted.
    BulkheadFull,
    /// The rate limit was exceeded.
    RateLimited,
    /// The retry budget was spent and no upstream response exists to return.
    RetryBudgetExhausted,
    /// The deadline was spent before or during the call.
    DeadlineExceeded,
    /// No healthy endpoint, or the connection failed.
    UpstreamUnavailable,
    /// The upstream did not answer in time.
    UpstreamTimeout,
    /// The route is shed at the current degradation level.
    FeatureDisabled,
    /// The instance is shutting down.
    Draining,
    /// A malformed Levee header or request.
    BadRequest,
}

impl ErrorCode {
    /// Every code, in SPEC order.
    pub const ALL: [ErrorCode; 10] = [
        ErrorCode::CircuitOpen,
        ErrorCode::BulkheadFull,
        ErrorCode::RateLimited,
        ErrorCode::RetryBudgetExhausted,
        ErrorCode::DeadlineExceeded,
        ErrorCode::UpstreamUnavailable,
        ErrorCode::UpstreamTimeout,
        ErrorCode::FeatureDisabled,
        ErrorCode::Draining,
        ErrorCode::BadRequest,
    ];

    /// The `code` field and the suffix of `type` (`urn:levee:error:<code>`).
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::CircuitOpen => "circuit_open",
            ErrorCode::BulkheadFull => "bulkhead_full",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::RetryBudgetExhausted => "retry_budget_exhausted",
            ErrorCode::DeadlineExceeded => "deadline_exceeded",
            ErrorCode::UpstreamUnavailable => "upstream_unavailable",
            ErrorCode::UpstreamTimeout => "upstream_timeout",
            ErrorCode::FeatureDisabled => "feature_disabled",
            ErrorCode::Draining => "draining",
            ErrorCode::BadRequest => "bad_request",
        }
    }

    /// The HTTP status Levee answers with.
    pub const fn status(self) -> u16 {
        match self {
            ErrorCode::RateLimited => 429,
            ErrorCode::DeadlineExceeded | ErrorCode::UpstreamTimeout => 504,
            ErrorCode::UpstreamUnavailable => 502,
            ErrorCode::BadRequest => 400,
            _ => 503,
        }
    }

    /// The problem `type` URI.
    pub fn type_uri(self) -> String {
        format!("urn:levee:error:{}", self.as_str())
    }

    /// The short, stable `title`.
    pub const fn title(self) -> &'static str {
        match self {
            ErrorCode::CircuitOpen
            | ErrorCode::BulkheadFull
            | ErrorCode::RetryBudgetExhausted
            | ErrorCode::UpstreamUnavailable => "Service temporarily unavailable",
            ErrorCode::RateLimited => "Too many requests",
            ErrorCode::DeadlineExceeded | ErrorCode::UpstreamTimeout => "Request took too long",
            ErrorCode::FeatureDisabled => "Feature temporarily turned off",
            ErrorCode::Draining => "Server is restarting",
            ErrorCode::BadRequest => "Bad request",
        }
    }

    /// True when the response is a degraded answer rather than the client's fault.
    pub const fn degraded(self) -> bool {
        !matches!(self, ErrorCode::BadRequest)
    }

    /// The `detail` text: plain words, naming the upstream and when to try again.
    ///
    /// ```
    /// use levee_core::error::ErrorCode;
    /// use std::time::Duration;
    /// assert_eq!(
    ///     ErrorCode::CircuitOpen.detail("inventory", Some(Duration::from_secs(5))),
    ///     "inventory is failing; Levee is protecting it and will retry in about 5 s."
    /// );
    /// ```
    pub fn detail(self, upstream: &str, retry_after: Option<Duration>) -> String {
        let when = match retry_after {
            Some(d) => format!("in about {} s", retry_after_seconds(d)),
            None => "shortly".to_string(),
        };
        match self {
            ErrorCode::CircuitOpen => {
                format!("{upstream} is failing; Levee is protecting it and will retry {when}.")
            }
            ErrorCode::BulkheadFull => {
                format!("{upstream} is at capacity; please try again {when}.")
            }
            ErrorCode::RateLimited => {
                format!("Too many requests to {upstream}; please try again {when}.")
            }
            ErrorCode::RetryBudgetExhausted => format!(
                "{upstream} is failing and Levee has stopped retrying to let it recover; \
                 please try again {when}."
            ),
            ErrorCode::DeadlineExceeded => {
                format!("The request ran out of time before {upstream} could answer.")
            }
            ErrorCode::UpstreamUnavailable => {
                format!("{upstream} cannot be reached right now; please try again {when}.")
            }
            ErrorCode::UpstreamTimeout => format!("{upstream} did not answer in time."),
            ErrorCode::FeatureDisabled => format!(
                "{upstream} is turned off for now to keep the most important features running."
            ),
            ErrorCode::Draining => {
                "This server is shutting down; please try again, another one will answer."
                    .to_string()
            }
            ErrorCode::BadRequest => format!("The request to {upstream} was malformed."),
        }
    }

    /// Parses the wire spelling.
    pub fn parse(code: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == code)
    }
}

/// Whole seconds for `Retry-After` and `retry_after_s`: rounded up, at least 1, so clients
/// never retry before Levee would let them through.
pub fn retry_after_seconds(d: Duration) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(1)
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_map_to_spec_statuses() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
        }
        assert_eq!(ErrorCode::RateLimited.status(), 429);
        assert_eq!(ErrorCode::UpstreamUnavailable.status(), 502);
        assert_eq!(ErrorCode::DeadlineExceeded.status(), 504);
        assert_eq!(ErrorCode::BadRequest.status(), 400);
        assert_eq!(ErrorCode::Draining.status(), 503);
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_seconds(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_seconds(Duration::ZERO), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(4001)), 5);
        assert_eq!(retry_after_seconds(Duration::from_secs(5)), 5);
    }
}
