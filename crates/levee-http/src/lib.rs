//! # levee-http: Levee's HTTP vocabulary
//!
//! Everything the proxy (and later the tower layers) says or reads in HTTP terms, in one small
//! crate with no I/O, so every edge speaks the same words:
//!
//! | module | what | SPEC |
//! |---|---|---|
//! | [`problem`] | the RFC 9457 `application/problem+json` error envelope | §7 |
//! | [`degraded`] | `levee-degraded: stale; reason=<code>` / `static; reason=<code>` | §7 |
//! | [`headers`] | `levee-criticality`, inbound and outbound deadlines | §3, §5 |
//! | [`trace`] | W3C `traceparent` / `tracestate`: parse, create, child for the upstream hop | §11 |
//! | [`request_id`] | `x-request-id`: propagate or create | §11 |
//!
//! Every parser here takes untrusted header bytes and never panics (a property test feeds them
//! arbitrary input). Malformed *Levee* headers are the caller's mistake and become a
//! `bad_request` [`Problem`]; malformed tracing headers are replaced, never refused.

pub mod decimal;
pub mod degraded;
pub mod headers;
pub mod problem;
mod random;
pub mod request_id;
pub mod trace;

pub use degraded::{degraded_value, DegradedKind};
pub use headers::HeaderError;
pub use problem::{problem_response, Problem, PROBLEM_CONTENT_TYPE};
pub use trace::{TraceContext, TraceParent};
