//! The live dashboard: its state document, the page, and the fleet controls behind it.
//!
//! | route | answer |
//! |---|---|
//! | `GET /` | 307 to `dashboard` |
//! | `GET /dashboard` | the page (HTML; its CSS and JS are the two routes below) |
//! | `GET /dashboard/dashboard.css`, `GET /dashboard/dashboard.js` | the page's assets |
//! | `GET /api/dashboard` | 200 [`DashboardSnapshot`] (what the stream's `snapshot` events carry) |
//! | `GET /api/events` | Server-Sent Events, see [`crate::events`] |
//! | `GET /api/degradation` | 200 the fleet [`Degradation`], from the registry |
//! | `PUT /api/degradation` | `{"level": 0..3}` (and optionally `"rules"`), bearer token; 200 [`Degradation`] |
//! | `GET /api/toggles` | 200 `{"toggles": {name: {"state", "percent"?, "version"}}}`, from the registry |
//! | `PUT /api/toggles/{name}` | `{"state": "on" \| "off"}` or `{"state": "percent", "percent": 25}`, bearer token; 200 the toggle |
//!
//! The page, its stylesheet and its script are compiled into the binary (`include_str!` of
//! `src/dashboard/`): no CDN, no build step, nothing to deploy beside `levee`. They are served
//! as three same-origin files rather than one page with inline code so that the
//! Content-Security-Policy can forbid inline script and style altogether (`script-src 'self'`).
//!
//! Counters (retries, fallbacks, rejections, injected faults…) are read from the same
//! OpenMetrics text `/metrics` serves ([`parse_counters`]): the dashboard can never disagree
//! with what Prometheus scrapes, and a counter family added to the metrics later shows up in
//! the document without a change here.

use crate::auth::AdminAuth;
use crate::backend::{AdminBackend, BreakerView, BulkheadView, Readiness, RegistryStatus};
use crate::events::Hub;
use crate::problem::AdminProblem;
use crate::server::{AdminOptions, HealthDocument, HealthStatus};
use axum::body::Body;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use http::header::{CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use levee_core::breaker::{Mode, Reason, State as BreakerState};
use levee_core::fleet::{Degradation, LevelRule, Toggle, MAX_LEVEL};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

const PAGE: &str = include_str!("dashboard/index.html");
const STYLE: &str = include_str!("dashboard/dashboard.css");
const SCRIPT: &str = include_str!("dashboard/dashboard.js");

/// The Content-Security-Policy of the page: same-origin script, style and connections only,
/// no inline code, no frames, no forms posting elsewhere.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// How many transitions a snapshot carries (the newest).
pub const SNAPSHOT_TRANSITIONS: usize = 50;

/// The future a fleet control returns (boxed so that [`AdminBackend`] stays object-safe).
pub type FleetFuture<T> = Pin<Box<dyn Future<Output = Result<T, FleetError>> + Send + 'static>>;

/// Why a fleet setting (degradation level, toggles) could not be read or changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FleetError {
    /// The registry cannot be reached, or this process has none (503).
    Unavailable(String),
    /// The registry refused the request as malformed (400), with its reason.
    Invalid(String),
    /// The request cannot be carried out from this instance (409), e.g. a remote registry
    /// whose operator token this instance does not hold.
    Conflict(String),
}

impl fmt::Display for FleetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FleetError::Unavailable(m) | FleetError::Invalid(m) | FleetError::Conflict(m) => {
                f.write_str(m)
            }
        }
    }
}

impl std::error::Error for FleetError {}

impl From<FleetError> for AdminProblem {
    fn from(e: FleetError) -> Self {
        match e {
            FleetError::Unavailable(m) => AdminProblem::unavailable(m),
            FleetError::Invalid(m) => AdminProblem::bad_request(m),
            FleetError::Conflict(m) => AdminProblem::conflict(m),
        }
    }
}

/// The answer of a backend without a registry connection.
pub fn no_registry<T: Send + 'static>() -> FleetFuture<T> {
    Box::pin(async {
        Err(FleetError::Unavailable(
            "This instance has no registry connection, so it has no fleet degradation level \
             or toggles to show or change."
                .into(),
        ))
    })
}

/// `PUT /api/degradation`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DegradationUpdate {
    /// The operator level, 0 (normal) to 3 (critical traffic only).
    pub level: u8,
    /// Rules that raise the level; absent: the registry's current rules are kept.
    #[serde(default)]
    pub rules: Option<Vec<LevelRule>>,
}

/// A named toggle and its version (the registry's shape).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToggleEntry {
    /// `on`, `off` or `percent` with `percent`.
    #[serde(flatten)]
    pub toggle: Toggle,
    /// Bumps on every change of this toggle.
    pub version: u64,
}

/// The fleet settings as last received from the registry's watch stream.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct FleetSettings {
    /// The degradation setting and effective level.
    pub degradation: Degradation,
    /// Toggles by name.
    pub toggles: BTreeMap<String, ToggleEntry>,
    /// Every fleet breaker the registry holds, by key: those of this instance and those of
    /// the services beside it (a Go storefront's `pricing`), whatever their language. The
    /// registry holds a breaker from its first transition or override on.
    pub breakers: BTreeMap<String, FleetBreaker>,
}

/// A fleet breaker as the registry reports it: every reporter's outcomes together.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetBreaker {
    /// The fleet state.
    pub state: BreakerState,
    /// Counted calls in the fleet window.
    pub counted: u64,
    /// Failures and timeouts among them.
    pub failures: u64,
    /// When `open` ends (Unix ms), while open.
    pub open_until_unix_ms: Option<u64>,
    /// The last transition: from, to, why, when.
    pub last_transition: Option<FleetTransition>,
}

/// A fleet breaker's last transition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetTransition {
    /// The state left.
    pub from: BreakerState,
    /// The state entered.
    pub to: BreakerState,
    /// Why (SPEC §2 words).
    pub reason: Reason,
    /// When (Unix ms).
    pub at_unix_ms: u64,
}

/// One breaker transition, as the dashboard's feed shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransitionEvent {
    /// Increases by one per transition of the process; the page drops ones it already has.
    pub seq: u64,
    /// The endpoint key.
    pub key: String,
    /// The state left.
    pub from: BreakerState,
    /// The state entered.
    pub to: BreakerState,
    /// Why (SPEC §2 words).
    pub reason: Reason,
    /// When, in milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
}

/// A breaker as the dashboard shows it: the admin API's view plus what it is measured against.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DashboardBreaker {
    /// The admin API's view (`state` is the effective state, `fleet_state` the fleet's).
    #[serde(flatten)]
    pub view: BreakerView,
    /// The local breaker's own state (the effective `state` is the more severe of this and
    /// the fleet's).
    pub local_state: BreakerState,
    /// The mode the config asks for (`mode` is the mode in force, which an `observe`
    /// override changes); `null` when unknown.
    pub configured_mode: Option<Mode>,
    /// Percent; `null` when unknown.
    pub failure_rate_threshold: Option<f64>,
    /// Percent; `null` when unknown.
    pub slow_call_rate_threshold: Option<f64>,
    /// Counted calls needed before rates are evaluated; `null` when unknown.
    pub minimum_calls: Option<u32>,
    /// Failures in a row that trip the breaker (0 = off); `null` when unknown.
    pub consecutive_failures_threshold: Option<u32>,
    /// When the breaker entered its current state (Unix ms); for a breaker that never
    /// changed state, when the process started; `null` when unknown.
    pub state_since_unix_ms: Option<u64>,
}

impl DashboardBreaker {
    /// A view with nothing known beyond the admin API's.
    pub fn from_view(view: BreakerView) -> Self {
        DashboardBreaker {
            local_state: view.state,
            view,
            configured_mode: None,
            failure_rate_threshold: None,
            slow_call_rate_threshold: None,
            minimum_calls: None,
            consecutive_failures_threshold: None,
            state_since_unix_ms: None,
        }
    }
}

/// One series of a counter family, less the `service` and `language` labels every series has.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CounterSeries {
    /// The series' labels.
    pub labels: BTreeMap<String, String>,
    /// The count.
    pub value: f64,
}

/// Everything the dashboard shows, at one moment (`GET /api/dashboard`, and the `snapshot`
/// events of `GET /api/events`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DashboardSnapshot {
    /// The config's `service`.
    pub service: String,
    /// When this snapshot was taken (Unix ms).
    pub at_unix_ms: u64,
    /// `ok`, `degraded`, `draining` or `not_ready`, as `/health` says.
    pub status: HealthStatus,
    /// Why the instance is not ready, when it is not.
    pub not_ready_reason: Option<String>,
    /// The degradation level this instance acts on (0–3).
    pub degradation_level: u8,
    /// The fleet's degradation setting and toggles as last received; `null` without a
    /// registry connection or before the first state.
    pub fleet: Option<FleetSettings>,
    /// The registry connection; `null` when none is configured.
    pub registry: Option<RegistryStatus>,
    /// Whether admin changes are possible (an admin token is configured).
    pub mutations_enabled: bool,
    /// Every breaker, sorted by key.
    pub breakers: Vec<DashboardBreaker>,
    /// Every bulkhead, sorted by partition.
    pub bulkheads: Vec<BulkheadView>,
    /// Every `levee_*_total` counter family by its full name (for instance
    /// `levee_retries_total`), each series with its labels.
    pub counters: BTreeMap<String, Vec<CounterSeries>>,
    /// The newest breaker transitions, oldest first.
    pub transitions: Vec<TransitionEvent>,
}

/// Gathers the dashboard state from `backend` (the default of [`AdminBackend::dashboard`]).
pub fn gather<B: AdminBackend + ?Sized>(backend: &B) -> DashboardSnapshot {
    let mut breakers = backend.dashboard_breakers();
    breakers.sort_by(|a, b| a.view.key.cmp(&b.view.key));
    let mut bulkheads = backend.bulkheads();
    bulkheads.sort_by(|a, b| a.partition.cmp(&b.partition));
    // The same verdict as `/health`, decided from the same parts.
    let document = HealthDocument::new(
        backend.readiness(),
        backend.health(),
        breakers.iter().map(|b| b.view.clone()).collect(),
        Vec::new(),
    );
    let report = document.report;
    DashboardSnapshot {
        service: report.service,
        at_unix_ms: unix_ms(),
        status: document.status,
        not_ready_reason: document.not_ready_reason,
        degradation_level: report.degradation_level,
        fleet: backend.fleet_settings(),
        registry: report.registry,
        mutations_enabled: false,
        breakers,
        bulkheads,
        counters: parse_counters(&backend.metrics()),
        transitions: backend.transitions_since(0, SNAPSHOT_TRANSITIONS),
    }
}

pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The `levee_*_total` counter series of an OpenMetrics (or Prometheus) text exposition, by
/// family name, without the `service` and `language` labels. Lines that do not parse are
/// skipped: the dashboard shows what it can read rather than nothing.
pub fn parse_counters(text: &str) -> BTreeMap<String, Vec<CounterSeries>> {
    let mut out: BTreeMap<String, Vec<CounterSeries>> = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with('#') || !line.starts_with("levee_") {
            continue;
        }
        let Some((name, labels, value)) = parse_sample(line) else {
            continue;
        };
        if !name.ends_with("_total") {
            continue;
        }
        let labels = labels
            .into_iter()
            .filter(|(k, _)| k != "service" && k != "language")
            .collect();
        out.entry(name.to_owned())
            .or_default()
            .push(CounterSeries { labels, value });
    }
    out
}

/// A sample's labels, in order.
type Labels = Vec<(String, String)>;

/// `name{a="x",b="y"} value [timestamp] [# exemplar]`.
fn parse_sample(line: &str) -> Option<(&str, Labels, f64)> {
    let name_end = line.find(['{', ' '])?;
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices();
        let end;
        loop {
            // Skip separators, then read `key="value"` or stop at `}`.
            let (i, c) = chars.next()?;
            if c == '}' {
                end = i + 1;
                break;
            }
            if c == ',' || c == ' ' {
                continue;
            }
            let key_start = i;
            let key_end = loop {
                let (j, c) = chars.next()?;
                if c == '=' {
                    break j;
                }
            };
            if chars.next()?.1 != '"' {
                return None;
            }
            let mut value = String::new();
            loop {
                let (_, c) = chars.next()?;
                match c {
                    '"' => break,
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    other => value.push(other),
                }
            }
            labels.push((body[key_start..key_end].trim().to_owned(), value));
        }
        rest = &body[end..];
    }
    let value = rest.split_whitespace().next()?.parse::<f64>().ok()?;
    Some((name, labels, value))
}

#[derive(Clone)]
struct DashState {
    backend: Arc<dyn AdminBackend>,
    auth: Arc<AdminAuth>,
    hub: Arc<Hub>,
    body_limit: usize,
}

/// The dashboard's routes, merged into [`crate::router`].
pub(crate) fn routes(
    backend: &Arc<dyn AdminBackend>,
    auth: &Arc<AdminAuth>,
    options: &AdminOptions,
) -> Router {
    let hub = Hub::new(Arc::clone(backend), auth.is_configured());
    let state = DashState {
        backend: Arc::clone(backend),
        auth: Arc::clone(auth),
        hub,
        body_limit: options.body_limit,
    };
    Router::new()
        .route("/", get(home))
        .route("/dashboard", get(page))
        .route("/dashboard/dashboard.css", get(style))
        .route("/dashboard/dashboard.js", get(script))
        .route("/api/dashboard", get(snapshot))
        .route("/api/events", get(events))
        .route(
            "/api/degradation",
            get(get_degradation).put(put_degradation),
        )
        .route("/api/toggles", get(get_toggles))
        .route("/api/toggles/{name}", axum::routing::put(put_toggle))
        .layer(DefaultBodyLimit::max(options.body_limit))
        .with_state(state)
}

/// Headers every dashboard file carries: no sniffing, no framing, no referrer, and the CSP.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = Response::new(Body::from(body));
    let h = response.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(
        HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    response
}

/// `/` sends people to the dashboard (a relative `Location`, so a path prefix added by a
/// reverse proxy is kept).
async fn home() -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::TEMPORARY_REDIRECT;
    response.headers_mut().insert(
        http::header::LOCATION,
        HeaderValue::from_static("dashboard"),
    );
    response
}

async fn page() -> Response {
    asset("text/html; charset=utf-8", PAGE)
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

async fn snapshot(State(state): State<DashState>) -> Json<DashboardSnapshot> {
    Json(state.hub.snapshot())
}

async fn events(State(state): State<DashState>) -> Response {
    if matches!(state.backend.readiness(), Readiness::Draining) {
        return AdminProblem::unavailable(
            "This instance is shutting down; the dashboard stream is closed.",
        )
        .into_response();
    }
    match state.hub.stream() {
        Ok(response) => response,
        Err(problem) => problem.into_response(),
    }
}

fn read_body(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<Bytes, AdminProblem> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AdminProblem::too_large(limit)
        } else {
            AdminProblem::bad_request(format!("The request body could not be read: {e}."))
        }
    })
}

fn authorize(state: &DashState, headers: &HeaderMap, what: &str) -> Result<(), AdminProblem> {
    state.auth.authorize(headers).inspect_err(|p| {
        tracing::warn!(
            what,
            status = p.status.as_u16(),
            "admin fleet change refused: {}",
            p.code
        );
    })
}

async fn get_degradation(
    State(state): State<DashState>,
) -> Result<Json<Degradation>, AdminProblem> {
    Ok(Json(state.backend.degradation().await?))
}

async fn put_degradation(
    State(state): State<DashState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Degradation>, AdminProblem> {
    authorize(&state, &headers, "degradation")?;
    let body = read_body(body, state.body_limit)?;
    let update: DegradationUpdate = serde_json::from_slice(&body).map_err(|e| {
        AdminProblem::bad_request(format!(
            "The body is not a valid degradation setting ({e}): send {{\"level\": 0}} to \
             {{\"level\": {MAX_LEVEL}}}."
        ))
    })?;
    if update.level > MAX_LEVEL {
        return Err(AdminProblem::bad_request(format!(
            "level {} is out of range: the degradation level is 0 (normal) to {MAX_LEVEL} \
             (critical traffic only).",
            update.level
        )));
    }
    let level = update.level;
    let result = state.backend.set_degradation(update).await?;
    tracing::warn!(
        level,
        effective = result.level,
        "degradation level set through the admin API"
    );
    Ok(Json(result))
}

#[derive(Serialize)]
struct ToggleList {
    toggles: BTreeMap<String, ToggleEntry>,
}

async fn get_toggles(State(state): State<DashState>) -> Result<Json<ToggleList>, AdminProblem> {
    Ok(Json(ToggleList {
        toggles: state.backend.toggles().await?,
    }))
}

async fn put_toggle(
    State(state): State<DashState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ToggleEntry>, AdminProblem> {
    let name = path.map(|Path(p)| p).map_err(|e| {
        AdminProblem::bad_request(format!("The toggle name in the path is not valid: {e}."))
    })?;
    authorize(&state, &headers, "toggle")?;
    let body = read_body(body, state.body_limit)?;
    let toggle: Toggle = serde_json::from_slice(&body).map_err(|e| {
        AdminProblem::bad_request(format!(
            "The body is not a valid toggle ({e}): send {{\"state\": \"on\"}}, \
             {{\"state\": \"off\"}} or {{\"state\": \"percent\", \"percent\": 25}}."
        ))
    })?;
    let result = state.backend.set_toggle(name.clone(), toggle).await?;
    tracing::warn!(toggle = %name, version = result.version, "toggle set through the admin API");
    Ok(Json(result))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_read_from_the_exposition_text() {
        let text = "# HELP levee_retries Retries\n# TYPE levee_retries counter\n\
            levee_retries_total{service=\"checkout\",language=\"rust\",endpoint=\"inventory\",reason=\"503\"} 7\n\
            levee_retries_total{endpoint=\"a\\\"b\",reason=\"timeout\",service=\"s\"} 2 # {trace_id=\"x\"} 1\n\
            levee_rate_limited_total{route=\"reserve\"} 3.0\n\
            levee_breaker_state{endpoint=\"inventory\",state=\"open\"} 1\n\
            levee_faults_injected_total{route=\"r\",kind=\"abort\"} 4\n\
            levee_broken_total{route=\"x} 1\n\
            # EOF\n";
        let c = parse_counters(text);
        let retries = &c["levee_retries_total"];
        assert_eq!(retries.len(), 2);
        assert_eq!(retries[0].value, 7.0);
        assert_eq!(retries[0].labels["endpoint"], "inventory");
        assert_eq!(retries[0].labels["reason"], "503");
        assert!(!retries[0].labels.contains_key("service"));
        assert!(!retries[0].labels.contains_key("language"));
        assert_eq!(retries[1].labels["endpoint"], "a\"b");
        assert_eq!(retries[1].value, 2.0);
        assert_eq!(c["levee_rate_limited_total"][0].value, 3.0);
        assert_eq!(c["levee_faults_injected_total"][0].labels["kind"], "abort");
        assert!(
            !c.contains_key("levee_breaker_state"),
            "gauges are not counters"
        );
        assert!(
            !c.contains_key("levee_broken_total"),
            "malformed lines are skipped"
        );
    }

    #[test]
    fn degradation_updates_are_strict() {
        let u: DegradationUpdate = serde_json::from_str(r#"{"level": 2}"#).unwrap();
        assert_eq!(u.level, 2);
        assert!(u.rules.is_none());
        assert!(serde_json::from_str::<DegradationUpdate>(r#"{"level": 1, "x": 1}"#).is_err());
        assert!(serde_json::from_str::<DegradationUpdate>(r#"{"level": -1}"#).is_err());
    }

    #[test]
    fn the_page_references_only_its_own_assets_and_the_test_hooks() {
        assert!(PAGE.contains("dashboard/dashboard.js"));
        assert!(PAGE.contains("dashboard/dashboard.css"));
        assert!(
            !PAGE.contains("<script>"),
            "no inline script: the CSP forbids it"
        );
        assert!(
            !PAGE.contains("style="),
            "no inline style: the CSP forbids it"
        );
        assert!(!PAGE.contains("http://") && !PAGE.contains("https://"));
        for hook in ["data-field=\"stream\"", "data-field=\"level\""] {
            assert!(PAGE.contains(hook), "{hook}");
        }
        assert!(SCRIPT.contains("data-breaker") || SCRIPT.contains("dataset.breaker"));
    }
}
