//! # levee-admin: the admin listener
//!
//! Liveness, readiness, health, metrics and the breaker override API (SPEC §8, §9, §11, §12),
//! served on the admin address apart from the data plane's listeners, so that probes and
//! operators reach the instance even when its traffic listeners are saturated.
//!
//! The proxy implements [`AdminBackend`] over its live state and calls [`serve`]:
//!
//! ```no_run
//! # async fn run(backend: std::sync::Arc<dyn levee_admin::AdminBackend>) -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9901").await?;
//! let auth = levee_admin::AdminAuth::from_env("LEVEE_ADMIN_TOKEN");
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let server = tokio::spawn(levee_admin::serve(listener, backend, auth, stopped));
//! // ... on shutdown, after the drain delay:
//! let _ = stop.send(());
//! let _ = server.await;
//! # Ok(()) }
//! ```
//!
//! Routes, auth rules and JSON shapes: [`router`], [`auth`], [`backend`]; the live dashboard
//! (`GET /dashboard`), its event stream and fleet controls: [`dashboard`], [`events`].

pub mod auth;
pub mod backend;
pub mod dashboard;
pub mod events;
pub mod problem;
mod server;

pub use auth::{AdminAuth, DEFAULT_TOKEN_ENV};
pub use backend::{
    apply_override, AdminBackend, AdminError, BreakerView, BulkheadView, ConfigStatus,
    EndpointHealth, EndpointStatus, HealthReport, OperatorOverride, OverrideResult, Readiness,
    RegistryStatus, ReloadAttempt, TransitionView, UpstreamHealth, WindowView,
};
pub use backend::{FaultError, FaultSource, FaultView};
pub use dashboard::{
    CounterSeries, DashboardBreaker, DashboardSnapshot, DegradationUpdate, FleetBreaker,
    FleetError, FleetFuture, FleetSettings, FleetTransition, ToggleEntry, TransitionEvent,
};
pub use problem::AdminProblem;
pub use server::{
    router, serve, serve_router, AdminOptions, HealthDocument, HealthStatus, OverrideRequest,
};
