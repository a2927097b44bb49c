//! # levee-registry-client
//!
//! How a Levee instance takes part in the fleet (SPEC §9, §10): it reports batched outcome
//! counts, watches the registry's stream of fleet breaker states, overrides, toggles,
//! degradation levels and policies, and coordinates half-open probes through leases.
//!
//! - [`RegistryClient`] is for request paths: every read is a synchronous cache lookup that
//!   answers `Option`/last-known values, reporting never waits on the network, and a registry
//!   outage never becomes an error for a caller (STYLE point 10).
//! - [`Api`] is the typed, low-level client of every endpoint, returning `Result`s: for
//!   operators' tools, the admin API and tests.
//! - [`api`] holds the wire types, shared with the `levee-registry` server.

//! # Using it on a request path
//!
//! ```no_run
//! # async fn call(client: &levee_registry_client::RegistryClient) {
//! use levee_registry_client::{FleetAdmission, ProbeDecision};
//! use levee_core::Outcome;
//! use std::time::Duration;
//! // Combine with the local breaker: the more severe wins (SPEC §9).
//! match client.admission("inventory") {
//!     FleetAdmission::NoOpinion | FleetAdmission::Allow => { /* local breaker decides */ }
//!     FleetAdmission::Reject { retry_after } => { /* circuit_open, Retry-After */ }
//!     FleetAdmission::NeedsLease => match client.acquire_probe("inventory").await {
//!         Some(ProbeDecision::Probe(lease)) => {
//!             // ... send the call ...
//!             lease.complete(Outcome::Success, Duration::from_millis(12));
//!         }
//!         Some(ProbeDecision::Allowed) | None => { /* local breaker decides */ }
//!         Some(ProbeDecision::Denied { .. }) => { /* circuit_open */ }
//!     },
//! }
//! // Every call's outcome, for the fleet's rates (never waits on the network):
//! client.record("inventory", Outcome::Success, Duration::from_millis(12), false);
//! # }
//! ```

pub mod api;
mod client;
pub mod http;
pub mod sse;

pub use client::{ClientConfig, FleetAdmission, ProbeDecision, ProbeLease, RegistryClient};
pub use http::{Api, ClientError, EventStream, WatchItem};
