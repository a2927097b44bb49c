//! `GET /api/events` over a real TCP listener, against a backend made of a real levee-core
//! breaker and real telemetry (its transitions go through `Metrics`, whose transition log
//! feeds the stream): the bound on open streams, transitions in order, and the end of the
//! stream when the instance drains.

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use levee_admin::*;
use levee_core::breaker::{BreakerConfig, CircuitBreaker};
use levee_core::random::SplitMix64;
use levee_core::time::SystemClock;
use levee_core::Clock;
use levee_telemetry::Metrics;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(10);

struct Backend {
    breaker: CircuitBreaker,
    metrics: Metrics,
    readiness: Mutex<Readiness>,
}

impl AdminBackend for Backend {
    fn readiness(&self) -> Readiness {
        self.readiness.lock().expect("lock").clone()
    }

    fn health(&self) -> HealthReport {
        HealthReport {
            service: "events-test".into(),
            ..HealthReport::default()
        }
    }

    fn metrics(&self) -> String {
        self.metrics.encode()
    }

    fn breakers(&self) -> Vec<BreakerView> {
        vec![BreakerView::of(&self.breaker, SystemClock.now())]
    }

    fn bulkheads(&self) -> Vec<BulkheadView> {
        Vec::new()
    }

    fn set_override(
        &self,
        key: &str,
        value: OperatorOverride,
    ) -> Result<OverrideResult, AdminError> {
        if key != "inventory" {
            return Err(AdminError::UnknownBreaker { key: key.into() });
        }
        let transition = apply_override(&self.breaker, value, SystemClock.now());
        if let Some(t) = &transition {
            self.metrics.breaker_transition(t);
        }
        Ok(OverrideResult {
            breaker: BreakerView::of(&self.breaker, SystemClock.now()),
            applied: value,
            transition: transition.as_ref().map(TransitionView::from),
        })
    }

    fn transitions_since(&self, seq: u64, limit: usize) -> Vec<TransitionEvent> {
        self.metrics
            .transitions()
            .since(seq, limit)
            .into_iter()
            .map(|r| TransitionEvent {
                seq: r.seq,
                key: r.key.to_string(),
                from: r.from,
                to: r.to,
                reason: r.reason,
                at_unix_ms: r.at_unix_ms,
            })
            .collect()
    }
}

async fn serve() -> (Arc<Backend>, SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let backend = Arc::new(Backend {
        breaker: CircuitBreaker::new(
            "inventory",
            BreakerConfig::default(),
            Arc::new(SplitMix64::new(7)),
        )
        .expect("breaker"),
        metrics: Metrics::new("events-test"),
        readiness: Mutex::new(Readiness::Ready),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let dyn_backend: Arc<dyn AdminBackend> = backend.clone();
    tokio::spawn(levee_admin::serve(
        listener,
        dyn_backend,
        AdminAuth::with_token("t"),
        stopped,
    ));
    (backend, addr, stop)
}

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

async fn open(addr: SocketAddr) -> (StatusCode, Incoming) {
    let request = Request::get(format!("http://{addr}/api/events"))
        .body(Full::new(Bytes::new()))
        .expect("request");
    let response = tokio::time::timeout(PATIENCE, client().request(request))
        .await
        .expect("answer in time")
        .expect("response");
    let status = response.status();
    (status, response.into_body())
}

/// Reads events (`(event, data)`), comments skipped; `None` when the stream ends.
struct Events {
    body: Incoming,
    buffer: String,
}

impl Events {
    async fn next(&mut self) -> Option<(String, String)> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut event, mut data) = (None, String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                match event {
                    Some(event) => return Some((event, data)),
                    None => continue,
                }
            }
            let frame = tokio::time::timeout(PATIENCE, self.body.frame())
                .await
                .expect("an event in time")?
                .expect("a readable frame");
            if let Ok(data) = frame.into_data() {
                self.buffer.push_str(&String::from_utf8_lossy(&data));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transitions_are_streamed_in_order_after_the_first_snapshot() {
    let (backend, addr, _stop) = serve().await;
    let (status, body) = open(addr).await;
    assert_eq!(status, StatusCode::OK);
    let mut events = Events {
        body,
        buffer: String::new(),
    };
    let (event, data) = events.next().await.expect("a first event");
    assert_eq!(event, "snapshot");
    let snapshot: Value = serde_json::from_str(&data).expect("JSON");
    assert_eq!(snapshot["breakers"][0]["state"], "closed");
    assert_eq!(snapshot["transitions"], serde_json::json!([]));

    for value in [
        OperatorOverride::ForcedOpen,
        OperatorOverride::Disabled,
        OperatorOverride::Clear,
    ] {
        backend.set_override("inventory", value).expect("override");
    }
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let (event, data) = events.next().await.expect("the stream stays open");
        if event == "transition" {
            let t: Value = serde_json::from_str(&data).expect("JSON");
            seen.push((
                t["seq"].as_u64().expect("seq"),
                t["to"].as_str().unwrap_or("").to_owned(),
            ));
        }
    }
    assert_eq!(
        seen,
        vec![
            (1, "forced_open".to_owned()),
            (2, "disabled".to_owned()),
            (3, "closed".to_owned()),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_streams_are_bounded_and_a_closed_one_frees_its_slot() {
    let (_backend, addr, _stop) = serve().await;
    let mut streams = Vec::new();
    for i in 0..levee_admin::events::MAX_CLIENTS {
        let (status, body) = open(addr).await;
        assert_eq!(status, StatusCode::OK, "stream {i}");
        streams.push(body);
    }
    let (status, body) = open(addr).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let text = body.collect().await.expect("body").to_bytes();
    let problem: Value = serde_json::from_slice(&text).expect("problem JSON");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("dashboard streams")),
        "{problem}"
    );
    // Closing one stream frees its slot (once the server notices the connection is gone).
    drop(streams.pop());
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (status, body) = open(addr).await;
        if status == StatusCode::OK {
            streams.push(body);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the closed stream's slot was never freed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_ends_open_streams_and_refuses_new_ones() {
    let (backend, addr, _stop) = serve().await;
    let (_, body) = open(addr).await;
    let mut events = Events {
        body,
        buffer: String::new(),
    };
    assert_eq!(events.next().await.expect("first").0, "snapshot");
    *backend.readiness.lock().expect("lock") = Readiness::Draining;
    let mut last = None;
    while let Some((event, data)) = events.next().await {
        if event == "snapshot" {
            last = Some(serde_json::from_str::<Value>(&data).expect("JSON"));
        }
    }
    let last = last.expect("a last snapshot before the end");
    assert_eq!(last["status"], "draining");
    let (status, _) = open(addr).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}
