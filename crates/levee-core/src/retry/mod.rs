//! Retry decisions (SPEC §4): whether to try again after a failed attempt, and after how long.
//!
//! After each attempt the edge calls [`decide`] with what happened ([`RetryInput`]); the answer
//! is [`RetryDecision::Retry`] with the wait, or [`RetryDecision::GiveUp`] with a fixed
//! [`GiveUpReason`]. The checks run in this order, and the first that applies decides:
//!
//! 1. the attempt's result is not in `retry_on` → `not_retryable`;
//! 2. the request is not idempotent and `retry_non_idempotent` is false → `non_idempotent`
//!    (see [`is_idempotent`]: GET, HEAD, OPTIONS, PUT, DELETE, TRACE, or any request carrying
//!    an `Idempotency-Key`);
//! 3. `attempts_made >= max_attempts` (the first try counts) → `attempts_exhausted`;
//! 4. the breaker for the endpoint key is open → `circuit_open`;
//! 5. the backoff is computed ([`backoff()`]; one random draw unless `jitter: none`), and an
//!    upstream `Retry-After` replaces it when longer;
//! 6. with a deadline: `Retry-After` longer than the remaining time →
//!    `retry_after_exceeds_deadline`; then a wait at least as long as the remaining time →
//!    `deadline_exceeded` (the retry would start with no time left);
//! 7. the retry budget refuses a withdrawal → `retry_budget_exhausted` (the last real
//!    response is returned to the client);
//! 8. otherwise retry after the wait. Only a retry that is actually decided spends budget.
//!
//! Config, rules and the conformance vector format: `conformance/policies/retry.md`.

pub mod backoff;
mod retry_after;

pub use backoff::{backoff, BackoffConfig, Jitter};
pub use retry_after::{parse_retry_after, MAX_DELTA_SECONDS};

use crate::budget::{RetryBudget, RetryBudgetConfig};
use crate::error::ErrorCode;
use crate::outcome::{AttemptResult, StatusSet};
use crate::time::Timestamp;
use crate::RandomSource;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::Duration;

/// `retry:` on a route (SPEC §4). Every key defaults to the SPEC value; unknown keys are errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Attempts in all, the first try included. `1` turns retries off.
    pub max_attempts: u32,
    /// The wait between attempts.
    pub backoff: BackoffConfig,
    /// Which attempt results are retried.
    pub retry_on: RetryOn,
    /// The timeout of each attempt; none by default (only the call's deadline applies).
    #[serde(with = "crate::duration::serde_str::option")]
    pub per_try_timeout: Option<Duration>,
    /// Also retry requests that are not idempotent (POST, PATCH without `Idempotency-Key`).
    pub retry_non_idempotent: bool,
    /// The retry budget of the endpoint key.
    pub budget: RetryBudgetConfig,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: 2,
            backoff: BackoffConfig::default(),
            retry_on: RetryOn::default(),
            per_try_timeout: None,
            retry_non_idempotent: false,
            budget: RetryBudgetConfig::default(),
        }
    }
}

impl RetryConfig {
    /// Checks the values; the message says what is wrong, where, and how to fix it.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_attempts == 0 {
            return Err(
                "max_attempts is 0: it counts the first try too, so use 1 to turn \
                        retries off or 2 or more to retry"
                    .to_string(),
            );
        }
        self.backoff.validate()?;
        if self.per_try_timeout == Some(Duration::ZERO) {
            return Err(
                "per_try_timeout is 0s: give each attempt some time, such as 250ms, or \
                        leave per_try_timeout out for no per-try limit"
                    .to_string(),
            );
        }
        self.budget.validate()
    }
}

/// One `retry_on` item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RetryCondition {
    /// `connect_failure`
    ConnectFailure,
    /// `reset`
    Reset,
    /// `refused_stream`
    RefusedStream,
    /// `timeout`: the per-try timeout (or the deadline) expired.
    Timeout,
    /// A status or inclusive status range: `503`, `500-504`, `5xx` (= `500-599`).
    Statuses(u16, u16),
}

impl RetryCondition {
    /// Parses one item: `connect_failure`, `reset`, `refused_stream`, `timeout`, `5xx`, `4xx`,
    /// a status (`503`) or a range (`500-504`).
    pub fn parse(item: &str) -> Result<Self, String> {
        Ok(match item.trim() {
            "connect_failure" => RetryCondition::ConnectFailure,
            "reset" => RetryCondition::Reset,
            "refused_stream" => RetryCondition::RefusedStream,
            "timeout" => RetryCondition::Timeout,
            "cancelled" => {
                return Err(
                    "retry_on cannot contain `cancelled`: the caller has gone away, \
                            so nobody would receive the retry's answer"
                        .to_string(),
                )
            }
            other => {
                let (lo, hi) = StatusSet::parse_item(other).map_err(|e| {
                    format!(
                        "retry_on: {e}; the other items are connect_failure, reset, \
                         refused_stream, timeout and 5xx"
                    )
                })?;
                RetryCondition::Statuses(lo, hi)
            }
        })
    }

    /// True when `result` meets this condition.
    pub fn matches(self, result: AttemptResult) -> bool {
        match (self, result) {
            (RetryCondition::ConnectFailure, AttemptResult::ConnectFailure)
            | (RetryCondition::Reset, AttemptResult::Reset)
            | (RetryCondition::RefusedStream, AttemptResult::RefusedStream)
            | (RetryCondition::Timeout, AttemptResult::Timeout) => true,
            (RetryCondition::Statuses(lo, hi), AttemptResult::Status(s)) => (lo..=hi).contains(&s),
            _ => false,
        }
    }
}

impl fmt::Display for RetryCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetryCondition::ConnectFailure => f.write_str("connect_failure"),
            RetryCondition::Reset => f.write_str("reset"),
            RetryCondition::RefusedStream => f.write_str("refused_stream"),
            RetryCondition::Timeout => f.write_str("timeout"),
            RetryCondition::Statuses(lo, hi) if lo == hi => write!(f, "{lo}"),
            RetryCondition::Statuses(lo, hi) => write!(f, "{lo}-{hi}"),
        }
    }
}

/// The `retry_on` list. An empty list retries nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryOn(Vec<RetryCondition>);

impl RetryOn {
    /// Builds the list from items such as `["connect_failure", "5xx", "429"]`.
    pub fn from_items<S: AsRef<str>>(items: &[S]) -> Result<Self, String> {
        items
            .iter()
            .map(|i| RetryCondition::parse(i.as_ref()))
            .collect::<Result<_, _>>()
            .map(RetryOn)
    }

    /// The conditions, in config order.
    pub fn conditions(&self) -> &[RetryCondition] {
        &self.0
    }

    /// True when `result` is retried. `cancelled` never is.
    pub fn matches(&self, result: AttemptResult) -> bool {
        self.0.iter().any(|c| c.matches(result))
    }
}

impl Default for RetryOn {
    /// `[connect_failure, reset, refused_stream, 502, 503, 504]`.
    fn default() -> Self {
        RetryOn(vec![
            RetryCondition::ConnectFailure,
            RetryCondition::Reset,
            RetryCondition::RefusedStream,
            RetryCondition::Statuses(502, 502),
            RetryCondition::Statuses(503, 503),
            RetryCondition::Statuses(504, 504),
        ])
    }
}

impl<'de> Deserialize<'de> for RetryOn {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let texts = crate::outcome::status_items(deserializer)?;
        RetryOn::from_items(&texts).map_err(serde::de::Error::custom)
    }
}

impl Serialize for RetryOn {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let items: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        items.serialize(serializer)
    }
}

/// True for requests that may be sent twice (SPEC §4): the methods RFC 9110 §9.2.2 calls
/// idempotent (GET, HEAD, OPTIONS, PUT, DELETE, TRACE; matched case-sensitively, as HTTP
/// methods are), or any request with an `Idempotency-Key` header.
pub fn is_idempotent(method: &str, has_idempotency_key: bool) -> bool {
    has_idempotency_key
        || matches!(
            method,
            "GET" | "HEAD" | "OPTIONS" | "PUT" | "DELETE" | "TRACE"
        )
}

/// What the edge knows after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryInput {
    /// Attempts made so far, the one that just ended included (1 after the first try).
    pub attempts_made: u32,
    /// How that attempt ended.
    pub result: AttemptResult,
    /// Whether the request may be sent again ([`is_idempotent`]).
    pub idempotent: bool,
    /// Time left before the call's deadline; `None` when the call has no deadline.
    pub remaining: Option<Duration>,
    /// Whether the breaker for the endpoint key is open now.
    pub breaker_open: bool,
    /// The upstream's `Retry-After`, parsed ([`parse_retry_after`]).
    pub retry_after: Option<Duration>,
    /// The `backoff` of the previous [`RetryDecision::Retry`] of this call, if any.
    pub previous_backoff: Option<Duration>,
}

impl RetryInput {
    /// An input with no deadline, breaker closed, no `Retry-After` and no previous backoff.
    pub fn new(attempts_made: u32, result: AttemptResult, idempotent: bool) -> Self {
        RetryInput {
            attempts_made,
            result,
            idempotent,
            remaining: None,
            breaker_open: false,
            retry_after: None,
            previous_backoff: None,
        }
    }
}

/// Why a call is not retried. The spellings are public (logs, metrics, vectors).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GiveUpReason {
    /// The result is not in `retry_on`.
    NotRetryable,
    /// The request is not idempotent and `retry_non_idempotent` is off.
    NonIdempotent,
    /// `max_attempts` attempts were made.
    AttemptsExhausted,
    /// The breaker for the endpoint key is open.
    CircuitOpen,
    /// The upstream's `Retry-After` is longer than the remaining deadline.
    RetryAfterExceedsDeadline,
    /// The wait would use up the remaining deadline.
    DeadlineExceeded,
    /// The retry budget is spent.
    RetryBudgetExhausted,
}

impl GiveUpReason {
    /// Every reason, in check order.
    pub const ALL: [GiveUpReason; 7] = [
        GiveUpReason::NotRetryable,
        GiveUpReason::NonIdempotent,
        GiveUpReason::AttemptsExhausted,
        GiveUpReason::CircuitOpen,
        GiveUpReason::RetryAfterExceedsDeadline,
        GiveUpReason::DeadlineExceeded,
        GiveUpReason::RetryBudgetExhausted,
    ];

    /// The public spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            GiveUpReason::NotRetryable => "not_retryable",
            GiveUpReason::NonIdempotent => "non_idempotent",
            GiveUpReason::AttemptsExhausted => "attempts_exhausted",
            GiveUpReason::CircuitOpen => "circuit_open",
            GiveUpReason::RetryAfterExceedsDeadline => "retry_after_exceeds_deadline",
            GiveUpReason::DeadlineExceeded => "deadline_exceeded",
            GiveUpReason::RetryBudgetExhausted => "retry_budget_exhausted",
        }
    }

    /// Parses the public spelling.
    pub fn parse(text: &str) -> Option<GiveUpReason> {
        GiveUpReason::ALL.into_iter().find(|r| r.as_str() == text)
    }

    /// The SPEC §7 code to answer with when no upstream response exists to return (the last
    /// attempt was a connect failure, reset or timeout). `None`: answer as for the last
    /// attempt's own result.
    pub const fn error_code(self) -> Option<ErrorCode> {
        match self {
            GiveUpReason::CircuitOpen => Some(ErrorCode::CircuitOpen),
            GiveUpReason::RetryBudgetExhausted => Some(ErrorCode::RetryBudgetExhausted),
            GiveUpReason::RetryAfterExceedsDeadline | GiveUpReason::DeadlineExceeded => {
                Some(ErrorCode::DeadlineExceeded)
            }
            _ => None,
        }
    }
}

impl fmt::Display for GiveUpReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The answer of [`decide`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Wait `after`, then try again.
    Retry {
        /// The wait: the computed backoff, or the upstream's `Retry-After` when longer.
        after: Duration,
        /// The computed backoff alone; pass it as `previous_backoff` after the next attempt.
        backoff: Duration,
    },
    /// Do not retry; return the last attempt's result.
    GiveUp {
        /// Why.
        reason: GiveUpReason,
    },
}

/// Decides whether to retry after an attempt (see the module doc for the order of checks).
/// `budget` is the endpoint key's retry budget; a `Retry` answer has already withdrawn from it.
pub fn decide(
    config: &RetryConfig,
    input: &RetryInput,
    budget: &RetryBudget,
    now: Timestamp,
    rng: &dyn RandomSource,
) -> RetryDecision {
    let give_up = |reason| RetryDecision::GiveUp { reason };
    if !config.retry_on.matches(input.result) {
        return give_up(GiveUpReason::NotRetryable);
    }
    if !input.idempotent && !config.retry_non_idempotent {
        return give_up(GiveUpReason::NonIdempotent);
    }
    if input.attempts_made >= config.max_attempts {
        return give_up(GiveUpReason::AttemptsExhausted);
    }
    if input.breaker_open {
        return give_up(GiveUpReason::CircuitOpen);
    }
    let backoff = backoff::backoff(
        &config.backoff,
        input.attempts_made,
        input.previous_backoff,
        rng,
    );
    let after = match input.retry_after {
        Some(retry_after) if retry_after > backoff => retry_after,
        _ => backoff,
    };
    if let Some(remaining) = input.remaining {
        if input.retry_after.is_some_and(|r| r > remaining) {
            return give_up(GiveUpReason::RetryAfterExceedsDeadline);
        }
        if after >= remaining {
            return give_up(GiveUpReason::DeadlineExceeded);
        }
    }
    if !budget.try_withdraw(now) {
        return give_up(GiveUpReason::RetryBudgetExhausted);
    }
    RetryDecision::Retry { after, backoff }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::random::ScriptedRandom;

    fn setup() -> (RetryConfig, RetryBudget, ScriptedRandom) {
        let config = RetryConfig {
            backoff: BackoffConfig {
                jitter: Jitter::None,
                ..BackoffConfig::default()
            },
            ..RetryConfig::default()
        };
        let budget = RetryBudget::new(config.budget.clone(), Timestamp::ZERO);
        (config, budget, ScriptedRandom::default())
    }

    fn reason(d: RetryDecision) -> Option<GiveUpReason> {
        match d {
            RetryDecision::GiveUp { reason } => Some(reason),
            RetryDecision::Retry { .. } => None,
        }
    }

    #[test]
    fn retries_a_503_after_the_base_backoff() {
        let (config, budget, rng) = setup();
        let input = RetryInput::new(1, AttemptResult::Status(503), true);
        assert_eq!(
            decide(&config, &input, &budget, Timestamp::ZERO, &rng),
            RetryDecision::Retry {
                after: Duration::from_millis(25),
                backoff: Duration::from_millis(25)
            }
        );
    }

    #[test]
    fn checks_run_in_the_documented_order() {
        let (config, budget, rng) = setup();
        let now = Timestamp::ZERO;
        let mut input = RetryInput::new(2, AttemptResult::Status(500), false);
        input.breaker_open = true;
        let go = |i: &RetryInput| reason(decide(&config, i, &budget, now, &rng));
        assert_eq!(go(&input), Some(GiveUpReason::NotRetryable));
        input.result = AttemptResult::Reset;
        assert_eq!(go(&input), Some(GiveUpReason::NonIdempotent));
        input.idempotent = true;
        assert_eq!(go(&input), Some(GiveUpReason::AttemptsExhausted));
        input.attempts_made = 1;
        assert_eq!(go(&input), Some(GiveUpReason::CircuitOpen));
        input.breaker_open = false;
        input.remaining = Some(Duration::from_millis(25));
        assert_eq!(go(&input), Some(GiveUpReason::DeadlineExceeded));
        input.retry_after = Some(Duration::from_millis(26));
        assert_eq!(go(&input), Some(GiveUpReason::RetryAfterExceedsDeadline));
        input.remaining = Some(Duration::from_millis(27));
        assert_eq!(go(&input), None);
    }

    #[test]
    fn retry_on_parses_kinds_statuses_and_ranges() {
        let on = RetryOn::from_items(&["timeout", "5xx", "429", "400-401"]).unwrap();
        assert!(on.matches(AttemptResult::Timeout));
        assert!(on.matches(AttemptResult::Status(599)));
        assert!(on.matches(AttemptResult::Status(401)));
        assert!(!on.matches(AttemptResult::Status(404)));
        assert!(!on.matches(AttemptResult::Reset));
        assert!(!on.matches(AttemptResult::Cancelled));
        assert!(RetryOn::from_items(&["cancelled"])
            .unwrap_err()
            .contains("cancelled"));
        assert!(RetryOn::from_items(&["teapot"])
            .unwrap_err()
            .contains("retry_on"));
    }

    #[test]
    fn config_defaults_match_spec_and_round_trip() {
        let config: RetryConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(config, RetryConfig::default());
        assert_eq!(config.max_attempts, 2);
        assert_eq!(config.backoff.jitter, Jitter::Full);
        let json = serde_json::to_value(&config).unwrap();
        assert_eq!(
            json["retry_on"],
            serde_json::json!([
                "connect_failure",
                "reset",
                "refused_stream",
                "502",
                "503",
                "504"
            ])
        );
        let back: RetryConfig = serde_json::from_value(json).unwrap();
        assert_eq!(back, config);
        assert!(serde_json::from_str::<RetryConfig>(r#"{"max_attempt": 3}"#).is_err());
    }

    #[test]
    fn idempotency_follows_the_method_or_the_key() {
        assert!(is_idempotent("GET", false));
        assert!(is_idempotent("DELETE", false));
        assert!(!is_idempotent("POST", false));
        assert!(is_idempotent("POST", true));
        assert!(!is_idempotent("get", false));
    }

    #[test]
    fn reasons_round_trip() {
        for r in GiveUpReason::ALL {
            assert_eq!(GiveUpReason::parse(r.as_str()), Some(r));
        }
    }
}
