//! # levee-core: the policy engine
//!
//! Pure, deterministic resilience policy logic, shared by the Levee proxy, the tower layers and
//! (semantically, through the conformance vectors) the Go SDK. The contract is `SPEC.md`.
//!
//! Nothing here does I/O, spawns tasks or reads a clock: each decision is a call such as
//! `breaker.acquire(now)` that returns a value, with time ([`time::Timestamp`]) and randomness
//! ([`random::RandomSource`]) passed in. That makes every policy usable from sync and async code
//! alike and replayable step by step from a JSON vector.
//!
//! | module | SPEC |
//! |---|---|
//! | [`outcome`] | §1 outcomes and classification |
//! | [`breaker`] | §2 circuit breaker |
//! | [`bulkhead`], [`adaptive`] | §3 bulkhead with criticality; AIMD and Gradient2 limits |
//! | [`retry`], [`budget`] | §4 retry decisions, backoff and jitter, retry budget |
//! | [`deadline`] | §5 `levee-timeout-ms` and `grpc-timeout` |
//! | [`rate_limit`] | §6 keyed token bucket |
//! | [`error`] | §7 error codes and their texts |
//! | [`fault`] | fault injection: which fault an attempt gets |
//! | [`duration`] | duration strings |
//! | [`names`] | headers and metric names |

pub mod adaptive;
pub mod balance;
pub mod breaker;
pub mod budget;
pub mod bulkhead;
pub mod criticality;
pub mod deadline;
pub mod duration;
pub mod error;
pub mod fault;
pub mod fleet;
pub mod names;
pub mod outcome;
pub mod outlier;
pub mod random;
pub mod rate_limit;
pub mod retry;
pub mod time;

pub use criticality::Criticality;
pub use error::ErrorCode;
pub use outcome::Outcome;
pub use random::RandomSource;
pub use time::{Clock, Timestamp};
