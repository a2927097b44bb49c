//! # levee-tower: Levee's policies as tower layers
//!
//! Thin tower adapters over [`levee_core`]: every decision (admit, reject, retry, how long to
//! wait) is taken by levee-core, with the same rules as the Levee proxy and the Go SDK
//! (`go/levhttp`), so a Rust service guarded here behaves, answers and reports exactly as the
//! rest of the fleet. The contract is `SPEC.md`.
//!
//! | layer | policy | SPEC | refusal |
//! |---|---|---|---|
//! | [`BreakerLayer`] | circuit breaker per endpoint key (client side) | §2 | `circuit_open` 503 |
//! | [`BulkheadLayer`] | concurrency by criticality, queue and eviction | §3 | `bulkhead_full` 503 |
//! | [`RetryLayer`] / [`RetryPolicy`] | backoff, retry budget, idempotency | §4 | last response, or `retry_budget_exhausted` |
//! | [`DeadlineLayer`] | `levee-timeout-ms` / `grpc-timeout` in and out | §5 | `deadline_exceeded` 504 |
//! | [`RateLimitLayer`] | token bucket, global or per header value | §6 | `rate_limited` 429 |
//! | [`ProblemLayer`] | any error → SPEC §7 problem+json | §7 | |
//!
//! Every layer fails with tower's [`BoxError`]; Levee's own refusals are a [`LeveeError`]
//! inside it (find it with [`find_levee_error`]) carrying the SPEC §7 code and, when known,
//! the retry-after. A server puts [`ProblemLayer`] (or tower's `HandleErrorLayer` with
//! [`error_response`]) on top so refusals become the envelope every Levee implementation sends.
//!
//! Time and randomness are inputs, as in levee-core: each layer takes a
//! [`Clock`](levee_core::Clock) (default [`SystemClock`](levee_core::time::SystemClock)) and
//! the retry policy a [`RandomSource`](levee_core::RandomSource) (default SplitMix64 seeded
//! from entropy); tests pass a `ManualClock` and scripted draws. Waits that must really pass
//! (a backoff, a queue timeout, a deadline's cut-off) are tokio timers.
//!
//! Responses own their policy state: a breaker permit, a bulkhead slot or a deadline travel in
//! the response future and are released when it completes or is dropped (cancellation safe).
//!
//! # A client stack
//!
//! Outermost first: the deadline fixes the call's time, retries run inside it, and each attempt
//! asks the breaker. Here an operator has forced the breaker open, so the call is refused with
//! `circuit_open` before the service below runs.
//!
//! ```
//! use levee_core::breaker::{BreakerConfig, CircuitBreaker, Override};
//! use levee_core::random::SplitMix64;
//! use levee_core::retry::RetryConfig;
//! use levee_core::{ErrorCode, Timestamp};
//! use levee_tower::{find_levee_error, BreakerLayer, DeadlineLayer, RetryLayer, RetryPolicy};
//! use std::sync::Arc;
//! use std::time::Duration;
//! use tower::ServiceExt;
//!
//! let breaker = Arc::new(CircuitBreaker::new(
//!     "inventory",
//!     BreakerConfig::default(),
//!     Arc::new(SplitMix64::from_entropy()),
//! )?);
//! let retry = RetryPolicy::builder("inventory", RetryConfig::default())
//!     .breaker(Arc::clone(&breaker))
//!     .build()?;
//! let client = tower::ServiceBuilder::new()
//!     .layer(DeadlineLayer::client(Some(Duration::from_millis(800))).name("inventory"))
//!     .layer(RetryLayer::new(retry))
//!     .layer(BreakerLayer::new(Arc::clone(&breaker)))
//!     .service(tower::service_fn(|_req: http::Request<String>| async {
//!         // A real stack puts a hyper-util client here.
//!         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
//!     }));
//!
//! breaker.set_override(Some(Override::ForcedOpen), Timestamp::ZERO);
//! let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
//! let request = http::Request::get("http://inventory/items/1").body(String::new()).map_err(|e| e.to_string())?;
//! let err = runtime.block_on(client.oneshot(request)).expect_err("the breaker is forced open");
//! let levee = find_levee_error(&*err).expect("a Levee refusal");
//! assert_eq!(levee.code(), ErrorCode::CircuitOpen);
//! assert_eq!(levee.to_problem().status(), 503);
//! # Ok::<(), String>(())
//! ```

pub mod breaker;
pub mod bulkhead;
pub mod classify;
pub mod deadline;
pub mod error;
pub mod rate_limit;
pub mod retry;

pub use breaker::{Breaker, BreakerLayer};
pub use bulkhead::{BulkheadLayer, BulkheadService};
pub use classify::{Classify, ClassifyFn, HttpClassifier};
pub use deadline::{DeadlineLayer, DeadlineService};
pub use error::{
    error_response, find_levee_error, AttemptError, BoxError, LeveeError, ProblemLayer,
    ProblemService,
};
pub use levee_core::Clock;
pub use rate_limit::{RateLimit, RateLimitLayer};
pub use retry::{RetryLayer, RetryPolicy, RetryPolicyBuilder};

use levee_core::random::SplitMix64;
use levee_core::time::SystemClock;
use levee_core::RandomSource;
use std::sync::Arc;

/// The real clock, every layer's default.
pub(crate) fn default_clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

/// A SplitMix64 seeded from entropy, the retry policy's default jitter source.
pub(crate) fn default_random() -> Arc<dyn RandomSource> {
    Arc::new(SplitMix64::from_entropy())
}
