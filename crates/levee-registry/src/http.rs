//! The HTTP/JSON API (`api/registry.openapi.yaml`): routes, bearer-token roles, bounded JSON
//! bodies, RFC 9457 errors and the SSE watch stream.
//!
//! Roles: the *reporter* token (given to every instance) may report outcomes and take probe
//! leases; the *operator* token may set overrides, toggles, levels and policies. Each write
//! endpoint takes exactly one role — an operator token on a reporter endpoint is refused too,
//! so a leaked operator token cannot be mistaken for an instance — and every read endpoint
//! takes either. No token or an unknown one is 401; a token of the wrong role is 403.
//!
//! Every error is `application/problem+json` in SPEC §7's envelope. Malformed input is SPEC
//! §7's `bad_request`; the registry's own failures use the same envelope with their own
//! codes: `unauthorized`, `forbidden`, `not_found`, `method_not_allowed`, `lease_expired`,
//! `payload_too_large`, `backend_unavailable`, `registry_busy`, `internal`.

use crate::config::FailMode;
use crate::hub::{Attach, HubMessage, StoredEvent};
use crate::registry::{Read, Registry, RegistryError};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::header::{
    HeaderName, HeaderValue, AUTHORIZATION, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE,
    RETRY_AFTER, WWW_AUTHENTICATE,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use levee_core::breaker::BreakerConfig;
use levee_core::fleet::Toggle;
use levee_registry_client::api::{
    CompleteRequest, DegradationRequest, EventData, FleetSnapshot, LeaseRequest, OverrideRequest,
    ReportRequest,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc, watch};

/// The OpenAPI description served at `/openapi.yaml`.
pub const OPENAPI: &str = include_str!("../../../api/registry.openapi.yaml");

/// Shared state of every handler.
#[derive(Clone)]
pub struct App {
    /// The registry.
    pub registry: Arc<Registry>,
    /// Flips to true on shutdown; watch streams end then.
    pub shutdown: watch::Receiver<bool>,
}

/// An error answer: problem+json.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    title: &'static str,
    detail: String,
}

#[derive(Serialize)]
struct ProblemBody<'a> {
    #[serde(rename = "type")]
    type_uri: String,
    title: &'a str,
    status: u16,
    code: &'a str,
    detail: &'a str,
    degraded: bool,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, title: &'static str, detail: String) -> Self {
        ApiError {
            status,
            code,
            title,
            detail,
        }
    }

    /// 400 `bad_request`.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "Bad request",
            detail.into(),
        )
    }

    fn unauthorized(detail: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Authentication required",
            detail.to_string(),
        )
    }

    fn forbidden(detail: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Not allowed",
            detail.to_string(),
        )
    }

    fn not_found(detail: String) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "Not found", detail)
    }

    fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "Request too large",
            format!("the body is larger than {limit} bytes: send less per request"),
        )
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        let detail = e.to_string();
        match e {
            RegistryError::BadRequest(_) => ApiError::bad_request(detail),
            RegistryError::NotFound(_) => ApiError::not_found(detail),
            RegistryError::LeaseExpired => ApiError::new(
                StatusCode::GONE,
                "lease_expired",
                "Probe lease expired",
                detail,
            ),
            RegistryError::Unavailable(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "backend_unavailable",
                "Registry temporarily unavailable",
                detail,
            ),
            RegistryError::Busy => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "registry_busy",
                "Registry busy",
                detail,
            ),
            RegistryError::Internal(_) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Registry error",
                detail,
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ProblemBody {
            type_uri: format!("urn:levee:error:{}", self.code),
            title: self.title,
            status: self.status.as_u16(),
            code: self.code,
            detail: &self.detail,
            degraded: self.status.is_server_error(),
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = (self.status, bytes).into_response();
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"levee-registry\""),
            );
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Reporter,
    Operator,
}

/// Compares without an early exit, so response timing does not reveal a token's prefix.
fn same(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

fn role(parts: &Parts, app: &App) -> Result<Role, ApiError> {
    let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
        ApiError::unauthorized(
            "send `Authorization: Bearer <token>` with a reporter or operator token",
        )
    })?;
    let value = header
        .to_str()
        .map_err(|_| ApiError::unauthorized("the Authorization header is not text"))?;
    let token = match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => {
            return Err(ApiError::unauthorized(
                "use the Bearer scheme: `Authorization: Bearer <token>`",
            ))
        }
    };
    let config = app.registry.config();
    if same(token.as_bytes(), config.reporter_token.as_bytes()) {
        Ok(Role::Reporter)
    } else if same(token.as_bytes(), config.operator_token.as_bytes()) {
        Ok(Role::Operator)
    } else {
        Err(ApiError::unauthorized(
            "the token is not valid for this registry",
        ))
    }
}

/// Any valid token.
pub struct Reader;
/// The reporter token.
pub struct Reporter;
/// The operator token.
pub struct Operator;

impl FromRequestParts<App> for Reader {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, ApiError> {
        role(parts, app).map(|_| Reader)
    }
}

impl FromRequestParts<App> for Reporter {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, ApiError> {
        match role(parts, app)? {
            Role::Reporter => Ok(Reporter),
            Role::Operator => Err(ApiError::forbidden(
                "this endpoint is for instances: use the reporter token",
            )),
        }
    }
}

impl FromRequestParts<App> for Operator {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, ApiError> {
        match role(parts, app)? {
            Role::Operator => Ok(Operator),
            Role::Reporter => Err(ApiError::forbidden(
                "this endpoint changes fleet settings: use the operator token",
            )),
        }
    }
}

/// A JSON body read within the size limit (`LARGE`: the report limit).
pub struct JsonBody<T, const LARGE: bool = false>(pub T);

impl<T: DeserializeOwned, const LARGE: bool> FromRequest<App> for JsonBody<T, LARGE> {
    type Rejection = ApiError;
    async fn from_request(req: Request, app: &App) -> Result<Self, ApiError> {
        let config = app.registry.config();
        let limit = if LARGE {
            config.max_report_bytes
        } else {
            config.max_body_bytes
        };
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > limit) {
            return Err(ApiError::too_large(limit));
        }
        let bytes = match Limited::new(req.into_body(), limit).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
                return Err(ApiError::too_large(limit))
            }
            Err(_) => return Err(ApiError::bad_request("the request body could not be read")),
        };
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            ApiError::bad_request(format!(
                "the body is not valid JSON for this endpoint: {e} (see /openapi.yaml)"
            ))
        })
    }
}

/// One path parameter, percent-decoded.
pub struct Name(pub String);

impl FromRequestParts<App> for Name {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, ApiError> {
        Path::<String>::from_request_parts(parts, app)
            .await
            .map(|Path(n)| Name(n))
            .map_err(|e| ApiError::bad_request(e.body_text()))
    }
}

/// Two path parameters.
pub struct Names(pub String, pub String);

impl FromRequestParts<App> for Names {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, ApiError> {
        Path::<(String, String)>::from_request_parts(parts, app)
            .await
            .map(|Path((a, b))| Names(a, b))
            .map_err(|e| ApiError::bad_request(e.body_text()))
    }
}

const DEGRADED: HeaderName = HeaderName::from_static("levee-degraded");

/// A read answer; stale ones carry `levee-degraded: stale; reason=backend_unavailable`
/// (SPEC §7's header for an answer from last-known state).
fn read_response<T: Serialize>(read: Read<T>) -> Response {
    match read {
        Read::Fresh(v) => Json(v).into_response(),
        Read::Stale(v) => {
            let mut r = Json(v).into_response();
            r.headers_mut().insert(
                DEGRADED,
                HeaderValue::from_static("stale; reason=backend_unavailable"),
            );
            r
        }
    }
}

/// Saves the memory backend's operator state after a change. A failed save is logged, not
/// returned: the change itself took effect and the next save retries.
async fn persist(app: &App) {
    if let Err(e) = app.registry.persist().await {
        tracing::error!(error = %e, "registry snapshot not written; operator state would not survive a restart");
    }
}

/// The router.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/openapi.yaml", get(openapi))
        .route("/v1/reports", post(report))
        .route("/v1/state", get(state))
        .route("/v1/watch", get(watch_stream))
        .route("/v1/breakers/{key}", get(breaker))
        .route(
            "/v1/breakers/{key}/override",
            put(put_override).delete(delete_override),
        )
        .route("/v1/breakers/{key}/leases", post(lease))
        .route(
            "/v1/breakers/{key}/leases/{lease_id}/complete",
            post(complete),
        )
        .route("/v1/toggles", get(toggles))
        .route(
            "/v1/toggles/{name}",
            get(toggle).put(put_toggle).delete(delete_toggle),
        )
        .route("/v1/degradation", get(degradation).put(put_degradation))
        .route("/v1/policies", get(policies))
        .route(
            "/v1/policies/{key}",
            get(policy).put(put_policy).delete(reset_policy),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(app)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such registry endpoint: see /openapi.yaml".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "Method not allowed",
        "this endpoint does not take that method: see /openapi.yaml".into(),
    )
}

async fn healthz(State(app): State<App>) -> Response {
    let (ok, health) = app.registry.health();
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(health)).into_response()
}

async fn openapi() -> Response {
    ([(CONTENT_TYPE, "application/yaml")], OPENAPI).into_response()
}

async fn report(
    State(app): State<App>,
    _: Reporter,
    JsonBody(request): JsonBody<ReportRequest, true>,
) -> Result<Response, ApiError> {
    Ok(Json(app.registry.report(&request).await?).into_response())
}

async fn state(State(app): State<App>, _: Reader) -> Result<Response, ApiError> {
    let snapshot = app.registry.state()?;
    Ok(if snapshot.degraded {
        read_response(Read::Stale(snapshot))
    } else {
        read_response(Read::Fresh(snapshot))
    })
}

async fn breaker(State(app): State<App>, _: Reader, Name(key): Name) -> Result<Response, ApiError> {
    Ok(read_response(app.registry.read_breaker(&key).await?))
}

async fn put_override(
    State(app): State<App>,
    _: Operator,
    Name(key): Name,
    JsonBody(request): JsonBody<OverrideRequest>,
) -> Result<Response, ApiError> {
    let view = app.registry.set_override(&key, Some(request.value)).await?;
    persist(&app).await;
    Ok(Json(view).into_response())
}

async fn delete_override(
    State(app): State<App>,
    _: Operator,
    Name(key): Name,
) -> Result<Response, ApiError> {
    let view = app.registry.set_override(&key, None).await?;
    persist(&app).await;
    Ok(Json(view).into_response())
}

async fn lease(
    State(app): State<App>,
    _: Reporter,
    Name(key): Name,
    JsonBody(request): JsonBody<LeaseRequest>,
) -> Result<Response, ApiError> {
    Ok(Json(app.registry.acquire_lease(&key, &request).await?).into_response())
}

async fn complete(
    State(app): State<App>,
    _: Reporter,
    Names(key, lease_id): Names,
    JsonBody(request): JsonBody<CompleteRequest>,
) -> Result<Response, ApiError> {
    Ok(Json(
        app.registry
            .complete_lease(&key, &lease_id, &request)
            .await?,
    )
    .into_response())
}

async fn toggles(State(app): State<App>, _: Reader) -> Result<Response, ApiError> {
    Ok(read_response(app.registry.toggles().await?))
}

async fn toggle(State(app): State<App>, _: Reader, Name(name): Name) -> Result<Response, ApiError> {
    Ok(read_response(app.registry.toggle(&name).await?))
}

async fn put_toggle(
    State(app): State<App>,
    _: Operator,
    Name(name): Name,
    JsonBody(toggle): JsonBody<Toggle>,
) -> Result<Response, ApiError> {
    let view = app.registry.set_toggle(&name, toggle).await?;
    persist(&app).await;
    Ok(Json(view).into_response())
}

async fn delete_toggle(
    State(app): State<App>,
    _: Operator,
    Name(name): Name,
) -> Result<Response, ApiError> {
    app.registry.delete_toggle(&name).await?;
    persist(&app).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn degradation(State(app): State<App>, _: Reader) -> Result<Response, ApiError> {
    Ok(read_response(app.registry.degradation().await?))
}

async fn put_degradation(
    State(app): State<App>,
    _: Operator,
    JsonBody(request): JsonBody<DegradationRequest>,
) -> Result<Response, ApiError> {
    let d = app.registry.set_degradation(&request).await?;
    persist(&app).await;
    Ok(Json(d).into_response())
}

async fn policies(State(app): State<App>, _: Reader) -> Result<Response, ApiError> {
    Ok(read_response(app.registry.policies().await?))
}

async fn policy(State(app): State<App>, _: Reader, Name(key): Name) -> Result<Response, ApiError> {
    Ok(read_response(app.registry.policy(&key).await?))
}

async fn put_policy(
    State(app): State<App>,
    _: Operator,
    Name(key): Name,
    JsonBody(config): JsonBody<BreakerConfig>,
) -> Result<Response, ApiError> {
    let view = app.registry.put_policy(&key, config).await?;
    persist(&app).await;
    Ok(Json(view).into_response())
}

async fn reset_policy(
    State(app): State<App>,
    _: Operator,
    Name(key): Name,
) -> Result<Response, ApiError> {
    let view = app.registry.reset_policy(&key).await?;
    persist(&app).await;
    Ok(Json(view).into_response())
}

/// `?last_event_id=` for clients that cannot set headers (browsers' `EventSource` sets
/// `Last-Event-ID` itself on reconnects).
#[derive(Debug, Deserialize)]
struct WatchQuery {
    last_event_id: Option<String>,
}

fn sse_event(event: &StoredEvent) -> SseEvent {
    SseEvent::default()
        .id(event.id.to_string())
        .event(event.kind)
        .data(&event.json)
}

fn status_event(id: u64, backend_connected: bool) -> SseEvent {
    let json = serde_json::to_string(&EventData::Status { backend_connected }).unwrap_or_default();
    SseEvent::default()
        .id(id.to_string())
        .event("status")
        .data(json)
}

fn snapshot_event(mut snapshot: FleetSnapshot, degraded: bool) -> SseEvent {
    snapshot.degraded = degraded;
    let id = snapshot.event_id;
    let json = serde_json::to_string(&EventData::Snapshot(Box::new(snapshot))).unwrap_or_default();
    SseEvent::default()
        .id(id.to_string())
        .event("snapshot")
        .data(json)
}

async fn watch_stream(
    State(app): State<App>,
    _: Reader,
    headers: HeaderMap,
    Query(query): Query<WatchQuery>,
) -> Result<Response, ApiError> {
    let registry = app.registry.clone();
    if !registry.backend_connected() && registry.config().fail_mode == FailMode::Closed {
        return Err(RegistryError::Unavailable("not connected".into()).into());
    }
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or(query.last_event_id)
        .and_then(|v| v.trim().parse::<u64>().ok());
    let (attach, mut rx) = registry.hub().attach(resume);
    let (tx, out) = mpsc::channel::<SseEvent>(256);
    let mut shutdown = app.shutdown.clone();
    tokio::spawn(async move {
        let degraded = || !registry.backend_connected();
        let mut sent = match attach {
            Attach::Replay(events) => {
                let mut sent = resume.unwrap_or(0);
                for e in events {
                    sent = e.id;
                    if tx.send(sse_event(&e)).await.is_err() {
                        return;
                    }
                }
                sent
            }
            Attach::Snapshot(snapshot) => {
                let id = snapshot.event_id;
                if tx
                    .send(snapshot_event(*snapshot, degraded()))
                    .await
                    .is_err()
                {
                    return;
                }
                id
            }
        };
        // A resumed watcher gets no snapshot: tell it now if the backend is down.
        if degraded() && tx.send(status_event(sent, false)).await.is_err() {
            return;
        }
        loop {
            tokio::select! {
                message = rx.recv() => match message {
                    Ok(HubMessage::Event(e)) => {
                        if e.id > sent {
                            sent = e.id;
                            if tx.send(sse_event(&e)).await.is_err() {
                                return;
                            }
                        }
                    }
                    Ok(HubMessage::Resync(snapshot)) => {
                        sent = snapshot.event_id;
                        if tx.send(snapshot_event((*snapshot).clone(), degraded())).await.is_err() {
                            return;
                        }
                    }
                    Ok(HubMessage::Status(connected)) => {
                        if tx.send(status_event(sent, connected)).await.is_err() {
                            return;
                        }
                    }
                    Ok(HubMessage::Close) | Err(broadcast::error::RecvError::Closed) => return,
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        // Too slow to follow event by event: start over from everything.
                        let snapshot = registry.hub().mirror();
                        sent = snapshot.event_id;
                        if tx.send(snapshot_event(snapshot, degraded())).await.is_err() {
                            return;
                        }
                    }
                },
                _ = shutdown.changed() => return,
                _ = tx.closed() => return,
            }
        }
    });
    let stream = futures_util::stream::unfold(out, |mut out| async move {
        out.recv().await.map(|e| (Ok::<_, Infallible>(e), out))
    });
    let heartbeat = app.registry.config().heartbeat;
    let mut response = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(heartbeat).text("ping"))
        .into_response();
    response.headers_mut().insert(
        HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison_is_exact() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
        assert!(!same(b"", b"a"));
    }
}
