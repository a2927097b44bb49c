//! Outcomes and their classification (SPEC §1).
//!
//! Every guarded call ends in exactly one [`Outcome`]. Only `success`, `failure` and `timeout`
//! count toward breaker rates; `cancelled`, `rejected` and `ignored` do not. A counted call is
//! also *slow* when it took at least `slow_call_duration`.
//!
//! Classification of HTTP responses: connect errors, resets, refused streams and statuses
//! 500, 502, 503 and 504 are failures by default; every other status, 4xx included, is a
//! success. The failing statuses are configurable as a [`StatusSet`] (`[500-599, 429]`).
//! gRPC: `UNAVAILABLE`, `INTERNAL`, `UNKNOWN` and `RESOURCE_EXHAUSTED` are failures,
//! `DEADLINE_EXCEEDED` is a timeout, `CANCELLED` is cancelled, every other code a success.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// How a guarded call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Completed and classified as success.
    Success,
    /// An error, or a response classified as failure.
    Failure,
    /// The deadline or per-try timeout expired.
    Timeout,
    /// The caller gave up.
    Cancelled,
    /// Levee refused the call.
    Rejected,
    /// Classified as neither success nor failure.
    Ignored,
}

impl Outcome {
    /// Every outcome, in SPEC order.
    pub const ALL: [Outcome; 6] = [
        Outcome::Success,
        Outcome::Failure,
        Outcome::Timeout,
        Outcome::Cancelled,
        Outcome::Rejected,
        Outcome::Ignored,
    ];

    /// The metric label and wire spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Timeout => "timeout",
            Outcome::Cancelled => "cancelled",
            Outcome::Rejected => "rejected",
            Outcome::Ignored => "ignored",
        }
    }

    /// True for the outcomes that count toward breaker rates.
    pub const fn is_counted(self) -> bool {
        matches!(self, Outcome::Success | Outcome::Failure | Outcome::Timeout)
    }

    /// True for the outcomes that count as failures in rates (`failure` and `timeout`).
    pub const fn is_failure(self) -> bool {
        matches!(self, Outcome::Failure | Outcome::Timeout)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one attempt at an upstream ended, before classification. Shared by outcome
/// classification and retry decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttemptResult {
    /// The upstream answered with this HTTP status.
    Status(u16),
    /// The connection could not be made.
    ConnectFailure,
    /// The connection or stream was reset.
    Reset,
    /// HTTP/2 `REFUSED_STREAM`: the upstream did not process the request.
    RefusedStream,
    /// The per-try timeout or the deadline expired.
    Timeout,
    /// The caller went away.
    Cancelled,
}

impl AttemptResult {
    /// The spelling used in config (`retry_on`) and vectors.
    pub fn label(self) -> String {
        match self {
            AttemptResult::Status(s) => s.to_string(),
            AttemptResult::ConnectFailure => "connect_failure".into(),
            AttemptResult::Reset => "reset".into(),
            AttemptResult::RefusedStream => "refused_stream".into(),
            AttemptResult::Timeout => "timeout".into(),
            AttemptResult::Cancelled => "cancelled".into(),
        }
    }
}

impl FromStr for AttemptResult {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "connect_failure" => AttemptResult::ConnectFailure,
            "reset" => AttemptResult::Reset,
            "refused_stream" => AttemptResult::RefusedStream,
            "timeout" => AttemptResult::Timeout,
            "cancelled" => AttemptResult::Cancelled,
            other => match other.parse::<u16>() {
                Ok(code) if (100..=599).contains(&code) => AttemptResult::Status(code),
                _ => {
                    return Err(format!(
                        "unknown attempt result `{other}`: use an HTTP status (100-599), \
                         connect_failure, reset, refused_stream, timeout or cancelled"
                    ))
                }
            },
        })
    }
}

/// A set of HTTP statuses written as single codes and inclusive ranges: `[500-599, 429]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSet {
    ranges: Vec<(u16, u16)>,
}

impl StatusSet {
    /// The SPEC default failure statuses: 500, 502, 503, 504.
    pub fn default_failures() -> Self {
        StatusSet {
            ranges: vec![(500, 500), (502, 504)],
        }
    }

    /// True when `status` is in the set.
    pub fn contains(&self, status: u16) -> bool {
        self.ranges
            .iter()
            .any(|&(lo, hi)| (lo..=hi).contains(&status))
    }

    /// Parses one item: `503` or `500-599`.
    pub fn parse_item(item: &str) -> Result<(u16, u16), String> {
        let bad = || {
            format!("invalid status `{item}`: write a status such as `503` or a range such as `500-599`")
        };
        let parse = |t: &str| -> Result<u16, String> {
            let v: u16 = t.trim().parse().map_err(|_| bad())?;
            if (100..=599).contains(&v) {
                Ok(v)
            } else {
                Err(format!("status {v} is outside 100-599"))
            }
        };
        let t = item.trim();
        if t.eq_ignore_ascii_case("5xx") {
            return Ok((500, 599));
        }
        if t.eq_ignore_ascii_case("4xx") {
            return Ok((400, 499));
        }
        match t.split_once('-') {
            Some((lo, hi)) => {
                let (lo, hi) = (parse(lo)?, parse(hi)?);
                if lo > hi {
                    Err(format!(
                        "status range `{item}` is backwards: write `{hi}-{lo}`"
                    ))
                } else {
                    Ok((lo, hi))
                }
            }
            None => parse(t).map(|v| (v, v)),
        }
    }

    /// Builds a set from items such as `["500-599", "429"]`.
    pub fn from_items<S: AsRef<str>>(items: &[S]) -> Result<Self, String> {
        let ranges = items
            .iter()
            .map(|i| StatusSet::parse_item(i.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(StatusSet { ranges })
    }
}

impl Default for StatusSet {
    fn default() -> Self {
        StatusSet::default_failures()
    }
}

/// Reads a list whose items are status numbers (`503`) or text (`"500-599"`, `"reset"`) as
/// text, for the parsers of status sets and `retry_on`.
pub(crate) fn status_items<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Item {
        Code(u16),
        Text(String),
    }
    let items = Vec::<Item>::deserialize(deserializer)?;
    Ok(items
        .into_iter()
        .map(|i| match i {
            Item::Code(c) => c.to_string(),
            Item::Text(t) => t,
        })
        .collect())
}

impl<'de> Deserialize<'de> for StatusSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let texts = status_items(deserializer)?;
        StatusSet::from_items(&texts).map_err(serde::de::Error::custom)
    }
}

impl Serialize for StatusSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let items: Vec<String> = self
            .ranges
            .iter()
            .map(|&(lo, hi)| {
                if lo == hi {
                    lo.to_string()
                } else {
                    format!("{lo}-{hi}")
                }
            })
            .collect();
        items.serialize(serializer)
    }
}

/// Classifies an attempt's result with the given failure statuses.
pub fn classify(result: AttemptResult, failure_statuses: &StatusSet) -> Outcome {
    match result {
        AttemptResult::Status(s) if failure_statuses.contains(s) => Outcome::Failure,
        AttemptResult::Status(_) => Outcome::Success,
        AttemptResult::ConnectFailure | AttemptResult::Reset | AttemptResult::RefusedStream => {
            Outcome::Failure
        }
        AttemptResult::Timeout => Outcome::Timeout,
        AttemptResult::Cancelled => Outcome::Cancelled,
    }
}

/// gRPC status codes (the canonical numbering).
pub mod grpc {
    /// `OK`
    pub const OK: u32 = 0;
    /// `CANCELLED`
    pub const CANCELLED: u32 = 1;
    /// `UNKNOWN`
    pub const UNKNOWN: u32 = 2;
    /// `DEADLINE_EXCEEDED`
    pub const DEADLINE_EXCEEDED: u32 = 4;
    /// `RESOURCE_EXHAUSTED`
    pub const RESOURCE_EXHAUSTED: u32 = 8;
    /// `INTERNAL`
    pub const INTERNAL: u32 = 13;
    /// `UNAVAILABLE`
    pub const UNAVAILABLE: u32 = 14;
}

/// Classifies a gRPC status code (SPEC §1).
pub fn classify_grpc(code: u32) -> Outcome {
    match code {
        grpc::UNAVAILABLE | grpc::INTERNAL | grpc::UNKNOWN | grpc::RESOURCE_EXHAUSTED => {
            Outcome::Failure
        }
        grpc::DEADLINE_EXCEEDED => Outcome::Timeout,
        grpc::CANCELLED => Outcome::Cancelled,
        _ => Outcome::Success,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_http_classification_matches_spec() {
        let set = StatusSet::default();
        assert_eq!(classify(AttemptResult::Status(500), &set), Outcome::Failure);
        assert_eq!(classify(AttemptResult::Status(501), &set), Outcome::Success);
        assert_eq!(classify(AttemptResult::Status(503), &set), Outcome::Failure);
        assert_eq!(classify(AttemptResult::Status(429), &set), Outcome::Success);
        assert_eq!(classify(AttemptResult::Reset, &set), Outcome::Failure);
        assert_eq!(classify(AttemptResult::Timeout, &set), Outcome::Timeout);
    }

    #[test]
    fn status_sets_parse_ranges_and_reject_nonsense() {
        let set = StatusSet::from_items(&["500-599", "429"]).unwrap();
        assert!(set.contains(429) && set.contains(501) && !set.contains(404));
        assert!(StatusSet::from_items(&["599-500"])
            .unwrap_err()
            .contains("backwards"));
        assert!(StatusSet::from_items(&["700"]).is_err());
        assert!(StatusSet::from_items(&["abc"]).is_err());
    }

    #[test]
    fn grpc_codes_classify_per_spec() {
        assert_eq!(classify_grpc(grpc::UNAVAILABLE), Outcome::Failure);
        assert_eq!(classify_grpc(grpc::DEADLINE_EXCEEDED), Outcome::Timeout);
        assert_eq!(classify_grpc(grpc::OK), Outcome::Success);
        assert_eq!(classify_grpc(5), Outcome::Success);
    }
}
