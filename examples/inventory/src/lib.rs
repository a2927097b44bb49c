//! # inventory: a small upstream that fails on demand
//!
//! A hyper HTTP/1.1 + h2c server for Levee's demos and end-to-end tests. It serves items, a
//! health check and a gRPC-style echo, and it can be told — by flags at start, by control
//! endpoints, or per request by headers — to fail, slow down or hang. It counts what it
//! received and, crucially for cancellation tests, how many requests were abandoned by the
//! caller before they finished.
//!
//! | route | answer |
//! |---|---|
//! | `GET /healthz` | `200 ok` (or the status set by `POST /control/health?status=N`) |
//! | `GET /items/{id}` | `200` JSON `{"id", "name", "served_by"}` |
//! | `POST /reserve/{id}` | `200` JSON `{"id", "reserved": true, "served_by"}` |
//! | `POST /echo` | `200` with the request body |
//! | `POST /grpc.Echo/Echo` | gRPC-style: `application/grpc`, the request body, trailers `grpc-status: 0` |
//! | `GET /stats` | `{"received", "completed", "cancelled", "in_flight", "bodies"}` |
//! | `POST /control/fail?status=503&ratio=1` | fail this fraction of calls with this status |
//! | `POST /control/delay?ms=300` | wait this long before answering |
//! | `POST /control/hang?on=true` | never answer (until the caller gives up) |
//! | `POST /control/health?status=503` | what `/healthz` answers |
//! | `POST /control/reset` | back to healthy and fast; counters kept |
//!
//! Per-request headers override the switches for one call: `x-inventory-status: 503`,
//! `x-inventory-delay-ms: 250`, `x-inventory-hang: 1`. Control and stats routes are never
//! failed, delayed or counted.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// How the server misbehaves.
#[derive(Debug, Clone, PartialEq)]
pub struct Behaviour {
    /// Status of failed calls.
    pub fail_status: u16,
    /// Fraction of calls that fail, 0 to 1.
    pub fail_ratio: f64,
    /// Wait before answering.
    pub delay: Duration,
    /// Never answer.
    pub hang: bool,
    /// What `/healthz` answers.
    pub health_status: u16,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            fail_status: 503,
            fail_ratio: 0.0,
            delay: Duration::ZERO,
            hang: false,
            health_status: 200,
        }
    }
}

/// Counters, as `/stats` reports them.
#[derive(Debug, Default)]
pub struct Stats {
    received: AtomicU64,
    completed: AtomicU64,
    cancelled: AtomicU64,
    bodies: Mutex<Vec<Bytes>>,
}

impl Stats {
    /// Calls received (control routes excluded).
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::SeqCst)
    }

    /// Calls answered.
    pub fn completed(&self) -> u64 {
        self.completed.load(Ordering::SeqCst)
    }

    /// Calls the caller abandoned before they were answered.
    pub fn cancelled(&self) -> u64 {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// Calls in progress.
    pub fn in_flight(&self) -> u64 {
        self.received()
            .saturating_sub(self.completed())
            .saturating_sub(self.cancelled())
    }

    /// Bodies received by `/echo` and the gRPC echo, in order.
    pub fn bodies(&self) -> Vec<Bytes> {
        lock(&self.bodies).clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Shared server state.
#[derive(Debug)]
pub struct State {
    /// The name in answers (`served_by`).
    pub name: String,
    behaviour: Mutex<Behaviour>,
    /// The counters.
    pub stats: Stats,
    calls: AtomicU64,
}

impl State {
    /// A server called `name` behaving as `behaviour`.
    pub fn new(name: &str, behaviour: Behaviour) -> Arc<State> {
        Arc::new(State {
            name: name.to_string(),
            behaviour: Mutex::new(behaviour),
            stats: Stats::default(),
            calls: AtomicU64::new(0),
        })
    }

    /// The current behaviour.
    pub fn behaviour(&self) -> Behaviour {
        lock(&self.behaviour).clone()
    }

    /// Changes the behaviour.
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *lock(&self.behaviour) = behaviour;
    }

    /// Changes part of the behaviour.
    pub fn update(&self, f: impl FnOnce(&mut Behaviour)) {
        f(&mut lock(&self.behaviour));
    }

    /// Deterministic "random" failures: call n fails when the running fraction of failures
    /// is below the ratio, so a ratio of 0.5 fails every other call.
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

/// A running server.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its state (switches and counters).
    pub state: Arc<State>,
    task: JoinHandle<()>,
}

impl Server {
    /// Binds `addr` (port 0 = any free port) and serves until [`Server::kill`] or drop.
    pub async fn start(addr: &str, name: &str, behaviour: Behaviour) -> std::io::Result<Server> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Server::serve(listener, State::new(name, behaviour)))
    }

    /// Serves `listener` with `state`.
    pub fn serve(listener: TcpListener, state: Arc<State>) -> Server {
        let addr = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&state)));
        Server { addr, state, task }
    }

    /// Stops at once: the listener closes and every connection is dropped (a crash, as far
    /// as clients can tell).
    pub fn kill(&self) {
        self.task.abort();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let state = Arc::clone(&state);
        connections.spawn(async move {
            let service = service_fn(move |request| {
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(handle(state, request).await) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
}

type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>;

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()).boxed_unsync());
    *response.status_mut() = status;
    response
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut response = text(status, value.to_string());
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    response
}

fn query(request: &Request<Incoming>, key: &str) -> Option<String> {
    request.uri().query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then(|| v.to_string())
    })
}

fn header<T: std::str::FromStr>(headers: &HeaderMap, name: &str) -> Option<T> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// Counts a call as cancelled unless it is marked done before it drops.
struct Tracked {
    state: Arc<State>,
    done: bool,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let counter = if self.done {
            &self.state.stats.completed
        } else {
            &self.state.stats.cancelled
        };
        counter.fetch_add(1, Ordering::SeqCst);
    }
}

async fn handle(state: Arc<State>, request: Request<Incoming>) -> Response<Body> {
    let path = request.uri().path().to_string();
    if let Some(control) = path.strip_prefix("/control/") {
        return control_route(&state, control, &request);
    }
    match (request.method(), path.as_str()) {
        (&Method::GET, "/stats") => {
            let s = &state.stats;
            return json(
                StatusCode::OK,
                &serde_json::json!({
                    "name": state.name,
                    "received": s.received(),
                    "completed": s.completed(),
                    "cancelled": s.cancelled(),
                    "in_flight": s.in_flight(),
                    "bodies": s.bodies().len(),
                }),
            );
        }
        (&Method::GET, "/healthz") => {
            let status =
                StatusCode::from_u16(state.behaviour().health_status).unwrap_or(StatusCode::OK);
            return text(status, "ok");
        }
        _ => {}
    }
    state.stats.received.fetch_add(1, Ordering::SeqCst);
    let mut tracked = Tracked {
        state: Arc::clone(&state),
        done: false,
    };
    let behaviour = state.behaviour();
    let headers = request.headers().clone();
    let delay = header::<u64>(&headers, "x-inventory-delay-ms")
        .map(Duration::from_millis)
        .unwrap_or(behaviour.delay);
    let hang = header::<u8>(&headers, "x-inventory-hang").is_some_and(|h| h == 1) || behaviour.hang;
    if hang {
        std::future::pending::<()>().await;
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let forced = header::<u16>(&headers, "x-inventory-status");
    let fail = forced.or_else(|| {
        state
            .should_fail(behaviour.fail_ratio)
            .then_some(behaviour.fail_status)
    });
    let response = match fail.and_then(|s| StatusCode::from_u16(s).ok()) {
        Some(status) if !status.is_success() => {
            let mut r = json(
                status,
                &serde_json::json!({"error": "failing on purpose", "served_by": state.name}),
            );
            if status == StatusCode::SERVICE_UNAVAILABLE {
                if let Some(after) = header::<u64>(&headers, "x-inventory-retry-after") {
                    r.headers_mut()
                        .insert("retry-after", HeaderValue::from(after));
                }
            }
            r
        }
        _ => serve(&state, request, &path).await,
    };
    tracked.done = true;
    response
}

async fn serve(state: &Arc<State>, request: Request<Incoming>, path: &str) -> Response<Body> {
    let method = request.method().clone();
    // Served both bare and behind the example config's `/inventory` route prefix.
    let path = path.strip_prefix("/inventory").unwrap_or(path);
    if method == Method::GET && path == "/recommendations" {
        return json(
            StatusCode::OK,
            &serde_json::json!({"items": [{"id": "42", "reason": "bought together"}], "served_by": state.name}),
        );
    }
    if let Some(id) = path.strip_prefix("/items/") {
        if method == Method::GET {
            let mut r = json(
                StatusCode::OK,
                &serde_json::json!({"id": id, "name": format!("item {id}"), "served_by": state.name}),
            );
            let h = r.headers_mut();
            h.insert(
                "x-served-by",
                HeaderValue::from_str(&state.name).unwrap_or(HeaderValue::from_static("inventory")),
            );
            h.insert("x-deadline-ms", deadline_seen(request.headers()));
            h.insert(
                "x-traceparent-seen",
                request
                    .headers()
                    .get("traceparent")
                    .cloned()
                    .unwrap_or(HeaderValue::from_static("")),
            );
            h.insert(
                "x-forwarded-for-seen",
                request
                    .headers()
                    .get("x-forwarded-for")
                    .cloned()
                    .unwrap_or(HeaderValue::from_static("")),
            );
            return r;
        }
    }
    if let Some(id) = path.strip_prefix("/reserve/") {
        if method == Method::POST {
            return json(
                StatusCode::OK,
                &serde_json::json!({"id": id, "reserved": true, "served_by": state.name}),
            );
        }
    }
    if method == Method::POST && path == "/echo" {
        let body = request
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        lock(&state.stats.bodies).push(body.clone());
        let mut r = text(StatusCode::OK, body);
        r.headers_mut().insert(
            "x-served-by",
            HeaderValue::from_str(&state.name).unwrap_or(HeaderValue::from_static("inventory")),
        );
        return r;
    }
    if method == Method::POST && path == "/grpc.Echo/Echo" {
        let body = request
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        lock(&state.stats.bodies).push(body.clone());
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        trailers.insert("grpc-message", HeaderValue::from_static("ok"));
        let frames = vec![
            Ok::<_, Infallible>(Frame::data(body)),
            Ok(Frame::trailers(trailers)),
        ];
        let stream = futures_util::stream::iter(frames);
        let mut r = Response::new(StreamBody::new(stream).boxed_unsync());
        r.headers_mut()
            .insert("content-type", HeaderValue::from_static("application/grpc"));
        return r;
    }
    text(StatusCode::NOT_FOUND, "not found")
}

/// What the caller said was left of its deadline (`levee-timeout-ms`), or empty.
fn deadline_seen(headers: &HeaderMap) -> HeaderValue {
    headers
        .get("levee-timeout-ms")
        .cloned()
        .unwrap_or(HeaderValue::from_static(""))
}

fn control_route(state: &Arc<State>, control: &str, request: &Request<Incoming>) -> Response<Body> {
    if request.method() != Method::POST {
        return text(StatusCode::METHOD_NOT_ALLOWED, "use POST");
    }
    match control {
        "fail" => state.update(|b| {
            b.fail_status = query(request, "status")
                .and_then(|s| s.parse().ok())
                .unwrap_or(503);
            b.fail_ratio = query(request, "ratio")
                .and_then(|s| s.parse().ok())
                .unwrap_or(1.0);
        }),
        "delay" => state.update(|b| {
            b.delay = Duration::from_millis(
                query(request, "ms")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0),
            );
        }),
        "hang" => state.update(|b| {
            b.hang = query(request, "on").is_none_or(|v| v == "true" || v == "1");
        }),
        "health" => state.update(|b| {
            b.health_status = query(request, "status")
                .and_then(|s| s.parse().ok())
                .unwrap_or(200);
        }),
        "reset" => state.set_behaviour(Behaviour::default()),
        _ => return text(StatusCode::NOT_FOUND, "unknown control"),
    }
    json(StatusCode::OK, &serde_json::json!({"ok": true}))
}
