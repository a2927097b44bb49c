//! Routes, handlers and the listener loop.

use crate::auth::AdminAuth;
use crate::backend::{AdminBackend, AdminError, BreakerView, BulkheadView, OperatorOverride};
use crate::backend::{HealthReport, Readiness};
use crate::problem::AdminProblem;
use axum::body::Body;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use http::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use levee_core::breaker::State as BreakerState;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

mod faults;

/// Limits of the admin listener. The defaults suit an API used by operators and scrapers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminOptions {
    /// Longest time to handle one request, body read included; then 503. Default 10 s.
    pub request_timeout: Duration,
    /// Longest time a client may take to send a request's headers; then the connection is
    /// closed (slow clients must not hold admin connections). Default 10 s.
    pub header_read_timeout: Duration,
    /// Largest request body accepted; larger ones get 413. Default 16 KiB (an override body
    /// is a few dozen bytes).
    pub body_limit: usize,
    /// After shutdown, how long open connections may take to finish. Default 5 s.
    pub drain_timeout: Duration,
}

impl Default for AdminOptions {
    fn default() -> Self {
        AdminOptions {
            request_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            body_limit: 16 * 1024,
            drain_timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Clone)]
struct AppState {
    backend: Arc<dyn AdminBackend>,
    auth: Arc<AdminAuth>,
    body_limit: usize,
}

/// The admin API as an axum router (for merging in more routes, such as a dashboard, before
/// serving it with [`serve_router`]).
///
/// | route | answer |
/// |---|---|
/// | `GET /livez` | 200 `ok` while the process runs |
/// | `GET /readyz` | 200 `ready`; 503 `draining` or `not ready: <why>` |
/// | `GET /health` | 200 JSON [`HealthDocument`] |
/// | `GET /metrics` | 200 OpenMetrics text |
/// | `GET /api/breakers` | 200 `{"breakers": [BreakerView…]}` sorted by key |
/// | `GET /api/breakers/{key}` | 200 [`BreakerView`], or 404 |
/// | `PUT`/`POST /api/breakers/{key}/override` | `{"state": "forced_open" \| "disabled" \| "observe" \| "none"}`, bearer token; 200 [`OverrideResult`](crate::OverrideResult) |
/// | `GET /api/bulkheads` | 200 `{"bulkheads": [BulkheadView…]}` sorted by partition |
/// | `GET /dashboard`, `GET /api/events`, `/api/degradation`, `/api/toggles` | the live dashboard, its event stream and fleet controls: see [`dashboard`](crate::dashboard) |
/// | `GET /api/faults` | 200 `{"faults": [FaultView…]}` sorted by route |
/// | `PUT /api/faults/{route}` | a route `fault` block as JSON, bearer token; 200 [`FaultView`](crate::FaultView) |
/// | `DELETE /api/faults/{route}` | bearer token; 200 the [`FaultView`](crate::FaultView) in force after |
///
/// Endpoint keys may contain `/` (`upstream/route`); send them as they are or percent-encoded
/// (`inventory%2Flookup`). Every error is problem+json; every answer is `no-store`.
pub fn router(
    backend: Arc<dyn AdminBackend>,
    auth: impl Into<AdminAuth>,
    options: &AdminOptions,
) -> Router {
    let state = AppState {
        backend,
        auth: Arc::new(auth.into()),
        body_limit: options.body_limit,
    };
    let dashboard = crate::dashboard::routes(&state.backend, &state.auth, options);
    let routes = Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/api/breakers", get(list_breakers))
        .route(
            "/api/breakers/{*path}",
            get(get_breaker).put(set_override).post(set_override),
        )
        .route("/api/bulkheads", get(list_bulkheads))
        .route("/api/faults", get(faults::list))
        .route(
            "/api/faults/{route}",
            axum::routing::put(faults::set).delete(faults::clear),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(options.body_limit))
        .with_state(state)
        .merge(dashboard);
    with_common_layers(routes, options.request_timeout)
}

/// The request timeout and `cache-control: no-store` on every answer: admin answers describe
/// this moment and must never be served from a cache.
fn with_common_layers(router: Router, request_timeout: Duration) -> Router {
    router
        .layer(middleware::map_response(no_store))
        .layer(middleware::from_fn_with_state(request_timeout, timeout))
}

async fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .entry(CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

async fn timeout(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => AdminProblem::unavailable(format!(
            "The admin API did not answer within {} ms; try again.",
            limit.as_millis()
        ))
        .into_response(),
    }
}

fn text(status: StatusCode, body: impl Into<Body>) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

async fn livez() -> Response {
    text(StatusCode::OK, "ok")
}

async fn readyz(State(state): State<AppState>) -> Response {
    match state.backend.readiness() {
        Readiness::Ready => text(StatusCode::OK, "ready"),
        Readiness::Draining => text(StatusCode::SERVICE_UNAVAILABLE, "draining"),
        Readiness::NotReady(why) => {
            text(StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}"))
        }
    }
}

/// The overall verdict of `/health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Ready, level 0, every breaker closed or disabled, every upstream with an endpoint.
    Ok,
    /// Ready but degraded: a degradation level above 0, a breaker open, half-open or forced
    /// open, or an upstream without any available endpoint.
    Degraded,
    /// Shutting down.
    Draining,
    /// Not ready yet.
    NotReady,
}

/// The `/health` document: the backend's report plus readiness, breakers and bulkheads.
///
/// `/health` answers 200 whatever the verdict: it is a report for people and dashboards, and
/// `/readyz` is the signal for load balancers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthDocument {
    /// The verdict.
    pub status: HealthStatus,
    /// Why the instance is not ready, when it is not.
    pub not_ready_reason: Option<String>,
    /// The backend's report (service, degradation level, upstreams, config, registry),
    /// flattened into this object.
    #[serde(flatten)]
    pub report: HealthReport,
    /// Every breaker, sorted by key.
    pub breakers: Vec<BreakerView>,
    /// Every bulkhead, sorted by partition.
    pub bulkheads: Vec<BulkheadView>,
}

impl HealthDocument {
    /// Combines the parts and decides the verdict.
    pub fn new(
        readiness: Readiness,
        report: HealthReport,
        mut breakers: Vec<BreakerView>,
        mut bulkheads: Vec<BulkheadView>,
    ) -> Self {
        breakers.sort_by(|a, b| a.key.cmp(&b.key));
        bulkheads.sort_by(|a, b| a.partition.cmp(&b.partition));
        let degraded = report.degradation_level > 0
            || breakers.iter().any(|b| {
                matches!(
                    b.state,
                    BreakerState::Open | BreakerState::HalfOpen | BreakerState::ForcedOpen
                )
            })
            || report
                .upstreams
                .iter()
                .any(|u| !u.endpoints.is_empty() && u.available_endpoints == 0);
        let (status, not_ready_reason) = match readiness {
            Readiness::Draining => (HealthStatus::Draining, None),
            Readiness::NotReady(why) => (HealthStatus::NotReady, Some(why)),
            Readiness::Ready if degraded => (HealthStatus::Degraded, None),
            Readiness::Ready => (HealthStatus::Ok, None),
        };
        HealthDocument {
            status,
            not_ready_reason,
            report,
            breakers,
            bulkheads,
        }
    }
}

async fn health(State(state): State<AppState>) -> Json<HealthDocument> {
    let b = &state.backend;
    Json(HealthDocument::new(
        b.readiness(),
        b.health(),
        b.breakers(),
        b.bulkheads(),
    ))
}

async fn metrics(State(state): State<AppState>) -> Response {
    let mut response = text(StatusCode::OK, state.backend.metrics());
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(levee_telemetry::CONTENT_TYPE),
    );
    response
}

#[derive(Serialize)]
struct BreakerList {
    breakers: Vec<BreakerView>,
}

#[derive(Serialize)]
struct BulkheadList {
    bulkheads: Vec<BulkheadView>,
}

async fn list_breakers(State(state): State<AppState>) -> Json<BreakerList> {
    let mut breakers = state.backend.breakers();
    breakers.sort_by(|a, b| a.key.cmp(&b.key));
    Json(BreakerList { breakers })
}

async fn list_bulkheads(State(state): State<AppState>) -> Json<BulkheadList> {
    let mut bulkheads = state.backend.bulkheads();
    bulkheads.sort_by(|a, b| a.partition.cmp(&b.partition));
    Json(BulkheadList { bulkheads })
}

fn path_param(path: Result<Path<String>, PathRejection>) -> Result<String, AdminProblem> {
    path.map(|Path(p)| p).map_err(|e| {
        AdminProblem::bad_request(format!(
            "The path is not valid: {e}. Percent-encode the endpoint key if it holds special \
             characters."
        ))
    })
}

fn unknown_breaker(key: &str) -> AdminProblem {
    AdminProblem::not_found(
        "unknown_breaker",
        AdminError::UnknownBreaker {
            key: key.to_owned(),
        }
        .to_string(),
    )
}

async fn get_breaker(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<BreakerView>, Response> {
    let key = path_param(path).map_err(IntoResponse::into_response)?;
    if key == "override" || key.ends_with("/override") {
        let mut response = AdminProblem::method_not_allowed(
            "Overrides are set with PUT or POST and a JSON body such as {\"state\": \"forced_open\"}.",
        )
        .into_response();
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("PUT, POST"));
        return Err(response);
    }
    state
        .backend
        .breaker(&key)
        .map(Json)
        .ok_or_else(|| unknown_breaker(&key).into_response())
}

/// The body of `PUT /api/breakers/{key}/override`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideRequest {
    /// The override to put in force.
    pub state: OperatorOverride,
}

const OVERRIDE_BODY_HELP: &str = r#"send {"state": "forced_open"}, {"state": "disabled"}, {"state": "observe"} or {"state": "none"}"#;

async fn set_override(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AdminProblem> {
    let path = path_param(path)?;
    let Some(key) = path.strip_suffix("/override").filter(|k| !k.is_empty()) else {
        return Err(AdminProblem::not_found(
            "not_found",
            format!(
                "Nothing to change at /api/breakers/{path}: overrides go to \
                 /api/breakers/<key>/override."
            ),
        ));
    };
    state.auth.authorize(&headers).inspect_err(|p| {
        tracing::warn!(
            key,
            status = p.status.as_u16(),
            "admin override refused: {}",
            p.code
        );
    })?;
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AdminProblem::too_large(state.body_limit)
        } else {
            AdminProblem::bad_request(format!("The request body could not be read: {e}."))
        }
    })?;
    let request: OverrideRequest = serde_json::from_slice(&body).map_err(|e| {
        AdminProblem::bad_request(format!(
            "The body is not a valid override ({e}): {OVERRIDE_BODY_HELP}."
        ))
    })?;
    match state.backend.set_override(key, request.state) {
        Ok(result) => {
            tracing::warn!(
                key,
                state = request.state.as_str(),
                breaker_state = result.breaker.state.as_str(),
                "operator override applied through the admin API"
            );
            Ok(Json(result).into_response())
        }
        Err(AdminError::UnknownBreaker { key }) => Err(unknown_breaker(&key)),
        Err(e @ AdminError::Conflict { .. }) => Err(AdminProblem::conflict(e.to_string())),
        Err(e @ AdminError::Unavailable { .. }) => Err(AdminProblem::unavailable(e.to_string())),
    }
}

async fn not_found(request: Request) -> AdminProblem {
    AdminProblem::not_found(
        "not_found",
        format!(
            "No admin route at {}: try /livez, /readyz, /health, /metrics, /api/breakers or \
             /api/bulkheads.",
            request.uri().path()
        ),
    )
}

async fn method_not_allowed(request: Request) -> AdminProblem {
    AdminProblem::method_not_allowed(format!(
        "{} is not supported at {}.",
        request.method(),
        request.uri().path()
    ))
}

/// Serves the admin API on `listener` until `shutdown` completes, with the default
/// [`AdminOptions`]. `auth` is an [`AdminAuth`] or an `Option<String>` token.
///
/// On shutdown it stops accepting at once, lets open requests finish for
/// [`AdminOptions::drain_timeout`], then returns.
pub async fn serve<F: Future>(
    listener: TcpListener,
    backend: Arc<dyn AdminBackend>,
    auth: impl Into<AdminAuth>,
    shutdown: F,
) {
    let options = AdminOptions::default();
    let router = router(backend, auth, &options);
    serve_router(listener, router, &options, shutdown).await;
}

/// Serves any router (usually [`router`], perhaps merged with more routes) with the admin
/// listener's connection limits and graceful shutdown.
pub async fn serve_router<F: Future>(
    listener: TcpListener,
    router: Router,
    options: &AdminOptions,
    shutdown: F,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout);
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "admin API listening");
    }
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let _ = stream.set_nodelay(true);
                    let service = TowerToHyperService::new(router.clone());
                    let connection = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .into_owned();
                    let connection = graceful.watch(connection);
                    connections.spawn(async move {
                        if let Err(e) = connection.await {
                            tracing::debug!(error = %e, "admin connection ended with an error");
                        }
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly instead of
                    // spinning, and keep serving once the condition clears.
                    tracing::warn!(error = %e, "admin listener could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    drop(listener);
    if tokio::time::timeout(options.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("admin connections still open after the drain timeout; closing them");
    }
    connections.shutdown().await;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    #[tokio::test(start_paused = true)]
    async fn a_request_that_takes_too_long_gets_503() {
        let slow = Router::new().route(
            "/slow",
            get(|| async {
                std::future::pending::<()>().await;
                "never"
            }),
        );
        let app = with_common_layers(slow, Duration::from_secs(10));
        let response = app
            .oneshot(Request::get("/slow").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
        assert_eq!(
            response.headers()[CONTENT_TYPE],
            levee_http::PROBLEM_CONTENT_TYPE
        );
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["type"], "urn:levee:admin:unavailable");
        assert!(v["detail"].as_str().unwrap().contains("10000 ms"));
    }

    #[test]
    fn override_request_accepts_exactly_the_four_states() {
        for (text, want) in [
            ("forced_open", OperatorOverride::ForcedOpen),
            ("disabled", OperatorOverride::Disabled),
            ("observe", OperatorOverride::Observe),
            ("none", OperatorOverride::Clear),
        ] {
            let body = format!(r#"{{"state": "{text}"}}"#);
            let parsed: OverrideRequest = serde_json::from_str(&body).unwrap();
            assert_eq!(parsed.state, want);
            assert_eq!(want.as_str(), text);
        }
        for bad in [
            r#"{"state": "open"}"#,
            r#"{"state": "clear"}"#,
            r#"{"state": null}"#,
            r#"{}"#,
            r#"{"state": "disabled", "extra": 1}"#,
            r#"[]"#,
        ] {
            assert!(
                serde_json::from_str::<OverrideRequest>(bad).is_err(),
                "{bad}"
            );
        }
    }
}
