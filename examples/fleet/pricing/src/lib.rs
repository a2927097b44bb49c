//! # pricing: the Rust service of Levee's demo fleet
//!
//! A small axum service that prices items, guarded on the server side by levee-tower, so the
//! demo shows a Rust service shedding load and honouring deadlines exactly as the Levee proxy
//! and the Go services do. Like `examples/inventory`, it can be told to fail, slow down or
//! hang.
//!
//! | route | answer |
//! |---|---|
//! | `GET /prices/{id}` | `200 {"id", "price_cents", "currency": "EUR"}`, the price derived from the id |
//! | `GET /healthz` | `200 ok` |
//! | `GET /metrics` | SPEC §11 metrics (OpenMetrics text), `service="pricing"`, `language="rust"` |
//! | `POST /control/fail?status=503&ratio=1` | fail this fraction of price calls with this status |
//! | `POST /control/delay?ms=200` | wait this long before answering a price call |
//! | `POST /control/hang` (`?on=false` to stop) | price calls never answer (until the caller gives up) |
//! | `POST /control/reset` | heal everything: no failures, no delay, hung calls released |
//!
//! Only `/prices` is guarded, outermost first: [`DeadlineLayer`] (the caller's
//! `levee-timeout-ms` / `grpc-timeout`, capped by `--timeout-ms`), [`RateLimitLayer`] (one
//! bucket for the route) and [`BulkheadLayer`] (a small limit; `levee-criticality` decides who
//! is shed first). Refusals are SPEC §7 problem+json ([`ProblemLayer`]). Health, metrics and
//! controls are never guarded: an operator must be able to heal a service that sheds
//! everything.

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use levee_core::bulkhead::{Bulkhead, BulkheadConfig};
use levee_core::outcome::{classify, AttemptResult, StatusSet};
use levee_core::rate_limit::{KeyedRateLimiter, Rate, RateLimitConfig};
use levee_core::ErrorCode;
use levee_http::Problem;
use levee_telemetry::Metrics;
use levee_tower::{BulkheadLayer, DeadlineLayer, LeveeError, ProblemLayer, RateLimitLayer};
use std::collections::HashMap;
use std::future::{Future, IntoFuture};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceBuilder;

/// The service name in metrics, errors and the startup line.
pub const SERVICE: &str = "pricing";

/// How the service is guarded.
#[derive(Debug, Clone)]
pub struct Config {
    /// Price calls in flight at once (the bulkhead's `max_concurrent`).
    pub max_concurrent: u32,
    /// The longest a price call may take, whatever the caller allows.
    pub timeout: Duration,
    /// The route's rate limit.
    pub rate: Rate,
    /// The rate limit's burst (default: the rate's count).
    pub burst: Option<u64>,
}

/// How price calls misbehave.
#[derive(Debug, Clone, PartialEq)]
pub struct Behaviour {
    /// Status of failed calls.
    pub fail_status: u16,
    /// Fraction of calls that fail, 0 to 1.
    pub fail_ratio: f64,
    /// Wait before answering.
    pub delay: Duration,
    /// Never answer (until reset or `hang?on=false`).
    pub hang: bool,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            fail_status: 503,
            fail_ratio: 0.0,
            delay: Duration::ZERO,
            hang: false,
        }
    }
}

/// Shared state: the switches and the metrics.
#[derive(Debug)]
pub struct App {
    behaviour: watch::Sender<Behaviour>,
    calls: AtomicU64,
    metrics: Arc<Metrics>,
}

impl App {
    /// A healthy service's state.
    pub fn new() -> Arc<App> {
        Arc::new(App {
            behaviour: watch::Sender::new(Behaviour::default()),
            calls: AtomicU64::new(0),
            metrics: Arc::new(Metrics::new(SERVICE)),
        })
    }

    /// The current behaviour.
    pub fn behaviour(&self) -> Behaviour {
        self.behaviour.borrow().clone()
    }

    /// Deterministic failures, as inventory does: call n fails when the running fraction of
    /// failures is below the ratio, so a ratio of 0.5 fails every other call.
    fn should_fail(&self, ratio: f64) -> bool {
        if ratio <= 0.0 {
            return false;
        }
        if ratio >= 1.0 {
            return true;
        }
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let before = (n as f64 * ratio).floor();
        let after = ((n + 1) as f64 * ratio).floor();
        after > before
    }
}

/// The price of `id` in cents, from 1.00 to 999.99 EUR: FNV-1a of the id, so every instance
/// (and every language's demo service) quotes the same price.
pub fn price_cents(id: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    100 + hash % 99_900
}

/// Ids are 1 to 64 characters from `A-Z a-z 0-9 - _`.
fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn problem(code: ErrorCode, cause: String) -> Response {
    Problem::new(code, SERVICE)
        .with_cause(cause)
        .to_response::<Body>()
}

async fn price(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    if !valid_id(&id) {
        return problem(
            ErrorCode::BadRequest,
            "the id must be 1 to 64 letters, digits, '-' or '_'".to_string(),
        );
    }
    let mut behaviour = app.behaviour.subscribe();
    let current = behaviour.borrow_and_update().clone();
    if current.hang {
        // Released by `/control/reset` or `/control/hang?on=false`; the caller's deadline or
        // disconnect usually ends it first.
        let _ = behaviour.wait_for(|b| !b.hang).await;
    }
    if !current.delay.is_zero() {
        tokio::time::sleep(current.delay).await;
    }
    if app.should_fail(current.fail_ratio) {
        let status =
            StatusCode::from_u16(current.fail_status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let body = serde_json::json!({"error": "failing on purpose", "served_by": SERVICE});
        return (status, Json(body)).into_response();
    }
    Json(serde_json::json!({
        "id": id,
        "price_cents": price_cents(&id),
        "currency": "EUR",
    }))
    .into_response()
}

async fn healthz() -> &'static str {
    "ok"
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let mut response = app.metrics.encode().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(levee_telemetry::CONTENT_TYPE),
    );
    response
}

/// A switch to flip, parsed from a control request.
enum Change {
    Fail { status: u16, ratio: f64 },
    Delay(Duration),
    Hang(bool),
    Reset,
}

/// A control request that cannot be applied: the status and the message saying how to fix it.
struct ControlError(StatusCode, String);

fn param<T: std::str::FromStr>(
    query: &HashMap<String, String>,
    name: &str,
    default: T,
    example: &str,
) -> Result<T, ControlError> {
    match query.get(name) {
        None => Ok(default),
        Some(text) => text.parse().map_err(|_| {
            ControlError(
                StatusCode::BAD_REQUEST,
                format!("`{name}={text}` is not valid: write e.g. `{example}`\n"),
            )
        }),
    }
}

fn parse_control(what: &str, query: &HashMap<String, String>) -> Result<Change, ControlError> {
    let bad = |message: String| ControlError(StatusCode::BAD_REQUEST, message);
    match what {
        "fail" => {
            let status: u16 = param(query, "status", 503, "status=503")?;
            let ratio: f64 = param(query, "ratio", 1.0, "ratio=0.5")?;
            if !(100..=599).contains(&status) {
                return Err(bad(format!(
                    "`status={status}` is not an HTTP status: use 100 to 599, e.g. status=503\n"
                )));
            }
            if !(0.0..=1.0).contains(&ratio) {
                return Err(bad(format!(
                    "`ratio={ratio}` is not a fraction: use 0 to 1, e.g. ratio=0.5\n"
                )));
            }
            Ok(Change::Fail { status, ratio })
        }
        "delay" => Ok(Change::Delay(Duration::from_millis(param(
            query, "ms", 0, "ms=200",
        )?))),
        "hang" => Ok(Change::Hang(param(query, "on", true, "on=false")?)),
        "reset" => Ok(Change::Reset),
        other => Err(ControlError(
            StatusCode::NOT_FOUND,
            format!("unknown control `{other}`: use fail, delay, hang or reset\n"),
        )),
    }
}

async fn control(
    State(app): State<Arc<App>>,
    Path(what): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let change = match parse_control(&what, &query) {
        Ok(change) => change,
        Err(ControlError(status, message)) => return (status, message).into_response(),
    };
    app.behaviour.send_modify(|b| match change {
        Change::Fail { status, ratio } => {
            b.fail_status = status;
            b.fail_ratio = ratio;
        }
        Change::Delay(delay) => b.delay = delay,
        Change::Hang(on) => b.hang = on,
        Change::Reset => *b = Behaviour::default(),
    });
    Json(serde_json::json!({"ok": true})).into_response()
}

/// Counts every price call in `levee_calls_total{endpoint="pricing"}`: when Levee answered
/// (the [`LeveeError`] travels in the response's extensions) its own outcome (`rejected`,
/// or `timeout` for a deadline that ran out), otherwise the SPEC §1 status rule.
async fn count_call(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let response = next.run(request).await;
    let outcome = match response.extensions().get::<LeveeError>() {
        Some(err) => err.outcome(),
        None => classify(
            AttemptResult::Status(response.status().as_u16()),
            &StatusSet::default(),
        ),
    };
    app.metrics.call(SERVICE, outcome, start.elapsed());
    response
}

/// The whole service.
pub fn router(app: Arc<App>, config: &Config) -> Result<Router, String> {
    let bulkhead = Bulkhead::new(BulkheadConfig {
        max_concurrent: config.max_concurrent,
        ..BulkheadConfig::default()
    })
    .map_err(|e| format!("--max-concurrent: {e}"))?;
    let rate_limit = RateLimitConfig {
        burst: config.burst,
        ..RateLimitConfig::new(config.rate)
    };
    rate_limit
        .validate()
        .map_err(|e| format!("--rate/--burst: {e}"))?;
    let guard = ServiceBuilder::new()
        .layer(ProblemLayer::new())
        .layer(DeadlineLayer::server(Some(config.timeout)).name(SERVICE))
        .layer(
            RateLimitLayer::new("prices", Arc::new(KeyedRateLimiter::new(rate_limit)))
                .metrics(app.metrics.route("prices")),
        )
        .layer(BulkheadLayer::new(SERVICE, bulkhead).metrics(app.metrics.partition(SERVICE)));
    let prices = Router::new()
        .route("/prices/{id}", get(price))
        .layer(guard)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&app),
            count_call,
        ));
    Ok(Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/control/{what}", post(control))
        .merge(prices)
        .with_state(app))
}

/// Serves `listener` until `shutdown` resolves, then stops accepting and lets calls in flight
/// finish for at most `drain` (hung calls are not waited for longer than that).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain: Duration,
) -> std::io::Result<()> {
    let (stop, stopped) = watch::channel(false);
    let mut stopped_for_server = stopped.clone();
    let server = axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = stopped_for_server.wait_for(|s| *s).await;
        })
        .into_future();
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => result,
        () = shutdown => {
            let _ = stop.send(true);
            tokio::select! {
                result = &mut server => result,
                () = tokio::time::sleep(drain) => Ok(()),
            }
        }
    }
}
