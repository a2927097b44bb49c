//! Server-side layers in front of a real hyper server, called by a real hyper-util client.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::{client, json, serve, text, HttpClient};
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use levee_core::bulkhead::{Bulkhead, BulkheadConfig};
use levee_core::time::ManualClock;
use levee_core::{Clock, Timestamp};
use levee_tower::{BulkheadLayer, DeadlineLayer, ProblemLayer};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};
use tower::ServiceBuilder;

/// A handler that reports each request's class when it starts and then waits for the gate
/// (`/hang` waits forever; `/fast` does not wait; `/deadline` answers the task's deadline).
#[derive(Clone)]
struct Handler {
    started: mpsc::UnboundedSender<String>,
    gate: Arc<Semaphore>,
    clock: Arc<ManualClock>,
}

fn handler() -> (Handler, mpsc::UnboundedReceiver<String>) {
    let (started, receiver) = mpsc::unbounded_channel();
    let handler = Handler {
        started,
        gate: Arc::new(Semaphore::new(0)),
        clock: Arc::new(ManualClock::new(Timestamp::from_nanos(3_600_000_000_000))),
    };
    (handler, receiver)
}

impl Handler {
    async fn handle(self, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
        let class = request
            .headers()
            .get("levee-criticality")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_string();
        let _ = self.started.send(class);
        match request.uri().path() {
            "/fast" => return Ok(text(200, "fast")),
            "/hang" => std::future::pending::<()>().await,
            "/deadline" => {
                let left = levee_tower::deadline::current()
                    .map(|d| d.remaining(self.clock.now()).as_millis().to_string())
                    .unwrap_or_default();
                return Ok(text(200, left));
            }
            _ => {}
        }
        let _permit = self.gate.acquire().await.unwrap();
        Ok(text(200, "done"))
    }
}

fn request(server: &common::TestServer, path: &str, class: Option<&str>) -> Request<Full<Bytes>> {
    let mut builder = Request::get(server.url(path));
    if let Some(class) = class {
        builder = builder.header("levee-criticality", class);
    }
    builder.body(Full::new(Bytes::new())).unwrap()
}

fn spawn_call(
    http: &HttpClient,
    request: Request<Full<Bytes>>,
) -> tokio::task::JoinHandle<Response<Incoming>> {
    let http = http.clone();
    tokio::spawn(async move { http.request(request).await.unwrap() })
}

async fn bulkhead_server(
    bulkhead: &Bulkhead,
) -> (common::TestServer, Handler, mpsc::UnboundedReceiver<String>) {
    let (handler, started) = handler();
    let h = handler.clone();
    let service = ServiceBuilder::new()
        .layer(ProblemLayer::new())
        .layer(BulkheadLayer::new("handler", bulkhead.clone()))
        .service(tower::service_fn(move |r| h.clone().handle(r)));
    (serve(service).await, handler, started)
}

/// Waits until `condition` holds (a state another task reaches), failing after 10 s.
async fn until(what: &str, condition: impl Fn() -> bool) {
    for _ in 0..10_000 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("never reached: {what}");
}

#[tokio::test]
async fn bulkhead_sheds_sheddable_before_critical_when_full() {
    // Limit 2: critical may fill 2 slots, standard 1 (80%), sheddable 1 (50%).
    let bulkhead = Bulkhead::new(BulkheadConfig {
        max_concurrent: 2,
        ..BulkheadConfig::default()
    })
    .unwrap();
    let (server, handler, mut started) = bulkhead_server(&bulkhead).await;
    let http = client();

    let first = spawn_call(&http, request(&server, "/", Some("standard")));
    assert_eq!(started.recv().await.unwrap(), "standard");

    for class in ["sheddable", "standard"] {
        let response = http
            .request(request(&server, "/", Some(class)))
            .await
            .unwrap();
        assert_eq!(response.status(), 503, "{class} is shed at one in flight");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let body = json(response).await;
        assert_eq!(body["code"], "bulkhead_full");
        assert_eq!(body["upstream"], "handler");
    }
    assert!(
        started.try_recv().is_err(),
        "shed calls never reached the handler"
    );

    let critical = spawn_call(&http, request(&server, "/", Some("critical")));
    assert_eq!(
        started.recv().await.unwrap(),
        "critical",
        "critical still admitted"
    );
    assert_eq!(bulkhead.in_flight(), 2);

    handler.gate.add_permits(2);
    assert_eq!(first.await.unwrap().status(), 200);
    assert_eq!(critical.await.unwrap().status(), 200);
    assert_eq!(bulkhead.in_flight(), 0);

    let response = http
        .request(request(&server, "/", Some("urgent")))
        .await
        .unwrap();
    assert_eq!(response.status(), 400, "a malformed class is a bad request");
    assert_eq!(json(response).await["code"], "bad_request");
}

#[tokio::test]
async fn a_critical_arrival_evicts_a_waiting_sheddable_call() {
    let bulkhead = Bulkhead::new(BulkheadConfig {
        max_concurrent: 1,
        max_queue: 1,
        max_wait: Duration::from_secs(30),
        ..BulkheadConfig::default()
    })
    .unwrap();
    let (server, handler, mut started) = bulkhead_server(&bulkhead).await;
    let http = client();

    let running = spawn_call(&http, request(&server, "/", Some("critical")));
    assert_eq!(started.recv().await.unwrap(), "critical");
    let waiting = spawn_call(&http, request(&server, "/", Some("sheddable")));
    until("the sheddable call waits", || bulkhead.queue_depth() == 1).await;
    let arriving = spawn_call(&http, request(&server, "/", Some("critical")));

    let evicted = waiting.await.unwrap();
    assert_eq!(evicted.status(), 503);
    assert_eq!(json(evicted).await["code"], "bulkhead_full");
    assert_eq!(
        bulkhead.queue_depth(),
        1,
        "the critical call took its place"
    );

    handler.gate.add_permits(2);
    assert_eq!(running.await.unwrap().status(), 200);
    assert_eq!(arriving.await.unwrap().status(), 200);
    assert_eq!(started.recv().await.unwrap(), "critical");
    assert!(started.try_recv().is_err(), "the evicted call never ran");
}

#[tokio::test]
async fn a_client_that_goes_away_frees_its_slot() {
    let bulkhead = Bulkhead::new(BulkheadConfig {
        max_concurrent: 1,
        ..BulkheadConfig::default()
    })
    .unwrap();
    let (server, _handler, mut started) = bulkhead_server(&bulkhead).await;
    let http = client();
    let abandoned = spawn_call(&http, request(&server, "/hang", Some("critical")));
    started.recv().await.unwrap();
    assert_eq!(bulkhead.in_flight(), 1);
    abandoned.abort();
    until("the abandoned call's slot is freed", || {
        bulkhead.in_flight() == 0
    })
    .await;
    let response = http
        .request(request(&server, "/fast", Some("critical")))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn deadline_answers_504_and_rejects_spent_or_malformed_deadlines() {
    let (handler, mut started) = handler();
    let h = handler.clone();
    let service = ServiceBuilder::new()
        .layer(ProblemLayer::new())
        .layer(
            DeadlineLayer::server(None)
                .name("handler")
                .clock(handler.clock.clone() as Arc<dyn Clock>),
        )
        .service(tower::service_fn(move |r| h.clone().handle(r)));
    let server = serve(service).await;
    let http = client();
    let with_deadline = |path: &str, value: &str| {
        Request::get(server.url(path))
            .header("levee-timeout-ms", value)
            .body(Full::new(Bytes::new()))
            .unwrap()
    };

    let response = http.request(with_deadline("/hang", "50")).await.unwrap();
    assert_eq!(response.status(), 504);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body = json(response).await;
    assert_eq!(body["code"], "deadline_exceeded");
    assert_eq!(body["upstream"], "handler");
    started.recv().await.unwrap();

    let response = http.request(with_deadline("/fast", "0")).await.unwrap();
    assert_eq!(response.status(), 504);
    assert_eq!(json(response).await["code"], "deadline_exceeded");
    assert!(
        started.try_recv().is_err(),
        "a spent deadline never reaches the handler"
    );

    let response = http.request(with_deadline("/fast", "soon")).await.unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(json(response).await["code"], "bad_request");

    // The handler sees the request's deadline (what an outbound call would inherit).
    let response = http
        .request(with_deadline("/deadline", "300"))
        .await
        .unwrap();
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(&bytes[..], b"300");

    let response = http
        .request(
            Request::get(server.url("/fast"))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        200,
        "no deadline anywhere: nothing enforced"
    );
}

#[tokio::test]
async fn a_queued_call_is_refused_when_max_wait_passes_even_on_a_still_manual_clock() {
    let bulkhead = Bulkhead::new(BulkheadConfig {
        max_concurrent: 1,
        max_queue: 1,
        max_wait: Duration::from_millis(50),
        ..BulkheadConfig::default()
    })
    .unwrap();
    let (handler, mut started) = handler();
    let h = handler.clone();
    let still = Arc::new(ManualClock::new(Timestamp::from_nanos(1)));
    let service = ServiceBuilder::new()
        .layer(ProblemLayer::new())
        .layer(BulkheadLayer::new("handler", bulkhead.clone()).clock(still as Arc<dyn Clock>))
        .service(tower::service_fn(move |r| h.clone().handle(r)));
    let server = serve(service).await;
    let http = client();
    let running = spawn_call(&http, request(&server, "/", None));
    started.recv().await.unwrap();
    let response = http.request(request(&server, "/", None)).await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(json(response).await["code"], "bulkhead_full");
    assert_eq!(bulkhead.queue_depth(), 0);
    handler.gate.add_permits(1);
    assert_eq!(running.await.unwrap().status(), 200);
    assert!(started.try_recv().is_err(), "the timed-out call never ran");
}
