//! # levee-proxy: the data plane
//!
//! A sidecar or edge HTTP proxy that applies Levee's resilience policies (SPEC §1–8) to every
//! request: route, deadline, rate limit, bulkhead, circuit breaker, balanced attempts with
//! retries, and fallbacks. Every decision is levee-core's; this crate does the I/O around
//! them. Problem+json comes from levee-http, metric names and JSON logs from levee-telemetry.
//!
//! | module | what |
//! |---|---|
//! | [`server`] | listeners, TLS/ALPN, HTTP/1.1 + h2c, connection limits, graceful shutdown |
//! | `pipeline` | the life of one request, policy by policy |
//! | `attempt` | one try against one endpoint, and its outcome |
//! | `upstream`, `endpoint`, `client`, `pool` | upstream clusters, endpoint state, connection pools |
//! | `health_check` | active health checks |
//! | `matcher`, `runtime` | routes, and one compiled config generation |
//! | `stale`, `responses` | `stale_if_error` cache, Levee's own answers |
//! | `forwarding`, `body`, `access_log` | header rewriting, request/response bodies, the log line |
//! | `admin` | the proxy as levee-admin's `AdminBackend` (`/health`, overrides) |
//! | `fault` | fault injection per attempt: config, admin API and `levee-fault` header |
//! | [`fleet`] | the registry client side: fleet breakers, probe leases, degradation level |
//! | [`reload`] | SIGHUP and file-change reloads |
//! | [`daemon`] | the whole `levee run` lifecycle, drain included |
//!
//! Decisions where SPEC is silent are documented in the module that makes them.

pub mod access_log;
mod admin;
mod attempt;
pub mod body;
mod carried;
mod client;
pub mod client_body;
mod clock;
pub mod daemon;
mod drain;
mod endpoint;
pub mod error;
mod fault;
pub mod fleet;
mod forwarding;
pub(crate) mod h1;
mod health_check;
mod matcher;
mod observe;
mod pipeline;
mod pool;
mod proxy;
pub mod reload;
mod responses;
mod runtime;
pub mod server;
mod stale;
mod tls;
mod upstream;
mod upstream_body;

pub use error::ProxyError;
pub use fleet::Fleet;
pub use pipeline::ConnInfo;
pub use proxy::Proxy;
pub use server::{bind, BoundListener, Server};
