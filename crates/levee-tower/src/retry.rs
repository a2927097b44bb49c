//! Retries as a `tower::retry::Policy` (SPEC §4).
//!
//! Every decision is levee-core's [`decide`]: the attempt's result must be in `retry_on`, the
//! request idempotent (GET, HEAD, OPTIONS, PUT, DELETE, TRACE, or any request with an
//! `Idempotency-Key`; or `retry_non_idempotent`), fewer than `max_attempts` made, the breaker
//! (when given) not open, the backoff (or a longer `Retry-After`) shorter than the remaining
//! deadline, and the endpoint's retry budget willing. Each original request deposits into the
//! budget once; each retry withdraws.
//!
//! Only requests whose body can be replayed are retried: the body type must be `Clone` and its
//! size known and at most `max_replay_body` (64 KiB by default); other requests pass through
//! once. When the policy gives up, the last real response is returned; when there is none (the
//! last attempt was a connect failure, a reset or a timeout) and the reason has a SPEC §7 code
//! (`retry_budget_exhausted`, `circuit_open`, `deadline_exceeded`), the error is replaced by a
//! [`LeveeError`] with that code. A failure that Levee itself produced below (a bulkhead or
//! rate limit refusal) is never retried.
//!
//! Before each retry the policy rewrites the outbound deadline header with what will be left
//! after its wait, so the upstream never hears of more time than there is. Backoff waits are
//! tokio timers; decisions read the injected clock and random source.
//!
//! ```
//! use levee_core::retry::RetryConfig;
//! use levee_tower::{RetryLayer, RetryPolicy};
//!
//! let policy = RetryPolicy::builder("inventory", RetryConfig::default()).build()?;
//! let layer = RetryLayer::new(policy);
//! # drop(layer);
//! # Ok::<(), String>(())
//! ```

use crate::error::{AttemptError, LeveeError};
use crate::{default_clock, default_random, Clock};
use http::{Request, Response};
use http_body::Body;
use levee_core::breaker::{CircuitBreaker, State};
use levee_core::budget::RetryBudget;
use levee_core::deadline::Deadline;
use levee_core::names::header;
use levee_core::outcome::AttemptResult;
use levee_core::retry::GiveUpReason;
use levee_core::retry::{
    decide, is_idempotent, parse_retry_after, RetryConfig, RetryDecision, RetryInput,
};
use levee_core::RandomSource;
use levee_telemetry::EndpointMetrics;
use std::sync::Arc;
use std::time::Duration;

/// The largest body replayed on a retry by default (64 KiB), as the Go SDK's
/// `DefaultMaxReplayBody`.
pub const DEFAULT_MAX_REPLAY_BODY: u64 = 64 << 10;

/// The layer: tower's retry layer with a [`RetryPolicy`].
pub type RetryLayer = tower::retry::RetryLayer<RetryPolicy>;

struct Shared {
    endpoint: Arc<str>,
    config: RetryConfig,
    budget: RetryBudget,
    clock: Arc<dyn Clock>,
    random: Arc<dyn RandomSource>,
    breaker: Option<Arc<CircuitBreaker>>,
    metrics: Option<Arc<EndpointMetrics>>,
    max_replay_body: u64,
}

/// Builds a [`RetryPolicy`].
pub struct RetryPolicyBuilder {
    endpoint: Arc<str>,
    config: RetryConfig,
    clock: Arc<dyn Clock>,
    random: Arc<dyn RandomSource>,
    breaker: Option<Arc<CircuitBreaker>>,
    metrics: Option<Arc<EndpointMetrics>>,
    max_replay_body: u64,
}

impl std::fmt::Debug for RetryPolicyBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryPolicyBuilder")
            .field("endpoint", &self.endpoint)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl RetryPolicyBuilder {
    /// Reads time from `clock` (decisions and the budget's window).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Draws backoff jitter from `random`.
    #[must_use]
    pub fn random(mut self, random: Arc<dyn RandomSource>) -> Self {
        self.random = random;
        self
    }

    /// Never retries while this breaker (the endpoint's) is open.
    #[must_use]
    pub fn breaker(mut self, breaker: Arc<CircuitBreaker>) -> Self {
        self.breaker = Some(breaker);
        self
    }

    /// Counts `levee_retries_total` and `levee_retry_budget_exhausted_total`.
    #[must_use]
    pub fn metrics(mut self, metrics: Arc<EndpointMetrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Replays bodies up to `bytes` long (default [`DEFAULT_MAX_REPLAY_BODY`]).
    #[must_use]
    pub fn max_replay_body(mut self, bytes: u64) -> Self {
        self.max_replay_body = bytes;
        self
    }

    /// The policy, or the config's validation message.
    pub fn build(self) -> Result<RetryPolicy, String> {
        self.config.validate()?;
        let budget = RetryBudget::new(self.config.budget.clone(), self.clock.now());
        Ok(RetryPolicy {
            shared: Arc::new(Shared {
                endpoint: self.endpoint,
                config: self.config,
                budget,
                clock: self.clock,
                random: self.random,
                breaker: self.breaker,
                metrics: self.metrics,
                max_replay_body: self.max_replay_body,
            }),
            attempts: 0,
            previous_backoff: None,
        })
    }
}

/// SPEC §4 retries for tower; see the [module docs](self). Clones share the budget (one per
/// endpoint key); tower clones the policy per request to count that request's attempts.
#[derive(Clone)]
pub struct RetryPolicy {
    shared: Arc<Shared>,
    attempts: u32,
    previous_backoff: Option<Duration>,
}

impl std::fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("endpoint", &self.shared.endpoint)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

impl RetryPolicy {
    /// A builder for `endpoint` (the key of the budget, errors and metrics) with `config`.
    pub fn builder(endpoint: impl Into<Arc<str>>, config: RetryConfig) -> RetryPolicyBuilder {
        RetryPolicyBuilder {
            endpoint: endpoint.into(),
            config,
            clock: default_clock(),
            random: default_random(),
            breaker: None,
            metrics: None,
            max_replay_body: DEFAULT_MAX_REPLAY_BODY,
        }
    }

    /// The endpoint's retry budget.
    pub fn budget(&self) -> &RetryBudget {
        &self.shared.budget
    }

    fn breaker_open(&self) -> bool {
        self.shared
            .breaker
            .as_ref()
            .is_some_and(|b| matches!(b.state(), State::Open | State::ForcedOpen))
    }
}

fn idempotent<B>(request: &Request<B>) -> bool {
    is_idempotent(
        request.method().as_str(),
        request.headers().contains_key(header::IDEMPOTENCY_KEY),
    )
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl<B, Res, E> tower::retry::Policy<Request<B>, Response<Res>, E> for RetryPolicy
where
    B: Body + Clone,
    E: AttemptError,
{
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        request: &mut Request<B>,
        result: &mut Result<Response<Res>, E>,
    ) -> Option<Self::Future> {
        self.attempts = self.attempts.saturating_add(1);
        let shared = Arc::clone(&self.shared);
        let (attempt, retry_after) = match result {
            Ok(response) => (
                AttemptResult::Status(response.status().as_u16()),
                response
                    .headers()
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, now_unix())),
            ),
            Err(err) => (err.attempt_result()?, None),
        };
        let now = shared.clock.now();
        let deadline = request
            .extensions()
            .get::<Deadline>()
            .copied()
            .or_else(crate::deadline::current);
        let input = RetryInput {
            attempts_made: self.attempts,
            result: attempt,
            idempotent: idempotent(request),
            remaining: deadline.map(|d| d.remaining(now)),
            breaker_open: self.breaker_open(),
            retry_after,
            previous_backoff: self.previous_backoff,
        };
        match decide(
            &shared.config,
            &input,
            &shared.budget,
            now,
            shared.random.as_ref(),
        ) {
            RetryDecision::Retry { after, backoff } => {
                self.previous_backoff = Some(backoff);
                if let Some(metrics) = &shared.metrics {
                    metrics.retry(attempt);
                }
                if let Some(deadline) = deadline {
                    let left = deadline.remaining(now).saturating_sub(after);
                    levee_http::headers::write_deadline(request.headers_mut(), left);
                }
                Some(tokio::time::sleep(after))
            }
            RetryDecision::GiveUp { reason } => {
                if reason == GiveUpReason::RetryBudgetExhausted {
                    if let Some(metrics) = &shared.metrics {
                        metrics.retry_budget_exhausted();
                    }
                }
                if result.is_err() {
                    if let Some(code) = reason.error_code() {
                        let err = LeveeError::new(code, shared.endpoint.as_ref())
                            .with_reason(reason.as_str());
                        if let Some(replaced) = E::from_levee(err) {
                            *result = Err(replaced);
                        }
                    }
                }
                None
            }
        }
    }

    fn clone_request(&mut self, request: &Request<B>) -> Option<Request<B>> {
        if self.attempts == 0 {
            // Called once per original request on the service's own policy (whose attempt
            // count never moves): the request's one deposit.
            self.shared.budget.deposit(self.shared.clock.now());
        }
        if self.shared.config.max_attempts <= 1
            || (!idempotent(request) && !self.shared.config.retry_non_idempotent)
        {
            return None;
        }
        let size = request.body().size_hint().exact()?;
        if size > self.shared.max_replay_body {
            return None;
        }
        let mut copy = Request::new(request.body().clone());
        *copy.method_mut() = request.method().clone();
        *copy.uri_mut() = request.uri().clone();
        *copy.version_mut() = request.version();
        *copy.headers_mut() = request.headers().clone();
        *copy.extensions_mut() = request.extensions().clone();
        Some(copy)
    }
}
