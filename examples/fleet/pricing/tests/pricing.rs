//! Runs the real `pricing` binary on port 0 and talks to it over HTTP.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `pricing` process, killed when dropped.
struct Pricing {
    child: Child,
    addr: String,
    http: Client<HttpConnector, Full<Bytes>>,
}

impl Drop for Pricing {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Pricing {
    fn start(args: &[&str]) -> Pricing {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pricing"))
            .args(["--addr", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("pricing listening on ")
            .unwrap_or_else(|| panic!("unexpected startup line {line:?}"))
            .to_string();
        Pricing {
            child,
            addr,
            http: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(Full::new(Bytes::new())).unwrap()
    }

    async fn send(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
        let response = self
            .http
            .request(self.request(method, path, headers))
            .await
            .unwrap();
        read(response).await
    }

    async fn metric(&self, prefix: &str, needle: &str) -> Option<String> {
        let (_, text) = self.send("GET", "/metrics", &[]).await;
        text.lines()
            .find(|l| l.starts_with(prefix) && l.contains(needle))
            .map(str::to_string)
    }
}

async fn read(response: Response<Incoming>) -> (u16, String) {
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[tokio::test]
async fn prices_are_deterministic_and_ids_are_checked() {
    let pricing = Pricing::start(&[]);
    let (status, body) = pricing.send("GET", "/prices/sku-42", &[]).await;
    assert_eq!(status, 200, "{body}");
    let first = json(&body);
    assert_eq!(first["id"], "sku-42");
    assert_eq!(first["currency"], "EUR");
    let cents = first["price_cents"].as_u64().unwrap();
    assert!((100..100_000).contains(&cents), "{cents}");
    assert_eq!(cents, pricing::price_cents("sku-42"));
    let (_, again) = pricing.send("GET", "/prices/sku-42", &[]).await;
    assert_eq!(json(&again)["price_cents"], first["price_cents"]);

    let (status, body) = pricing.send("GET", "/prices/no%20spaces", &[]).await;
    assert_eq!(status, 400);
    assert_eq!(json(&body)["code"], "bad_request");

    let (status, body) = pricing.send("GET", "/healthz", &[]).await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    let (status, metrics) = pricing.send("GET", "/metrics", &[]).await;
    assert_eq!(status, 200);
    assert!(
        metrics.lines().any(|l| l.starts_with("levee_calls_total")
            && l.contains("service=\"pricing\"")
            && l.contains("language=\"rust\"")
            && l.contains("outcome=\"success\"")
            && l.ends_with(" 3")),
        "two prices and one 400 (4xx is success, SPEC §1):\n{metrics}"
    );
}

#[tokio::test]
async fn fail_control_fails_price_calls_until_reset() {
    let pricing = Pricing::start(&[]);
    let (status, _) = pricing
        .send("POST", "/control/fail?status=503&ratio=1", &[])
        .await;
    assert_eq!(status, 200);
    let (status, body) = pricing.send("GET", "/prices/a", &[]).await;
    assert_eq!(status, 503, "{body}");
    let (status, _) = pricing.send("GET", "/healthz", &[]).await;
    assert_eq!(status, 200, "controls never fail health checks");

    let (status, _) = pricing
        .send("POST", "/control/fail?status=500&ratio=0.5", &[])
        .await;
    assert_eq!(status, 200);
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(pricing.send("GET", "/prices/a", &[]).await.0);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 500).count(),
        2,
        "{statuses:?}"
    );

    let (status, body) = pricing.send("POST", "/control/fail?status=abc", &[]).await;
    assert_eq!(status, 400);
    assert!(body.contains("status=503"), "says how to fix it: {body}");
    let (status, _) = pricing.send("POST", "/control/reset", &[]).await;
    assert_eq!(status, 200);
    let (status, _) = pricing.send("GET", "/prices/a", &[]).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn sheds_sheddable_first_and_honours_the_callers_deadline() {
    // Limit 2: critical fills 2 slots, standard 1, sheddable 1.
    let pricing = Pricing::start(&["--max-concurrent", "2", "--timeout-ms", "60000"]);
    assert_eq!(pricing.send("POST", "/control/hang", &[]).await.0, 200);
    let hung = tokio::spawn(pricing.http.request(pricing.request(
        "GET",
        "/prices/slow",
        &[("levee-criticality", "sheddable")],
    )));
    let mut in_flight = None;
    for _ in 0..10_000 {
        in_flight = pricing
            .metric("levee_bulkhead_in_flight", "partition=\"pricing\"")
            .await;
        if in_flight.as_deref().is_some_and(|l| l.ends_with(" 1")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(
        in_flight.unwrap().ends_with(" 1"),
        "the hung call holds a slot"
    );

    for class in ["sheddable", "standard"] {
        let (status, body) = pricing
            .send("GET", "/prices/b", &[("levee-criticality", class)])
            .await;
        assert_eq!(status, 503, "{class}: {body}");
        assert_eq!(json(&body)["code"], "bulkhead_full");
    }
    // Critical is admitted; it hangs too and the caller's deadline cuts it off.
    let (status, body) = pricing
        .send(
            "GET",
            "/prices/c",
            &[
                ("levee-criticality", "critical"),
                ("levee-timeout-ms", "100"),
            ],
        )
        .await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(json(&body)["code"], "deadline_exceeded");

    let rejections = pricing
        .metric(
            "levee_bulkhead_rejections_total",
            "criticality=\"sheddable\"",
        )
        .await
        .unwrap();
    assert!(rejections.ends_with(" 1"), "{rejections}");

    // Reset heals everything, the hung call included.
    assert_eq!(pricing.send("POST", "/control/reset", &[]).await.0, 200);
    let (status, _) = read(hung.await.unwrap().unwrap()).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn rate_limit_rejects_beyond_burst() {
    let pricing = Pricing::start(&["--rate", "1/m", "--burst", "2"]);
    for _ in 0..2 {
        assert_eq!(pricing.send("GET", "/prices/a", &[]).await.0, 200);
    }
    let response = pricing
        .http
        .request(pricing.request("GET", "/prices/a", &[]))
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "60");
    let (_, body) = read(response).await;
    assert_eq!(json(&body)["code"], "rate_limited");
    assert_eq!(
        pricing.send("GET", "/healthz", &[]).await.0,
        200,
        "health is not limited"
    );
}

#[tokio::test]
async fn bad_flags_are_refused_with_a_clear_message() {
    let output = Command::new(env!("CARGO_BIN_EXE_pricing"))
        .args(["--addr", "127.0.0.1:0", "--rate", "100"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("100/s"), "{stderr}");
    assert!(output.stdout.is_empty());
}

#[cfg(unix)]
#[tokio::test]
async fn sigterm_exits_cleanly() {
    let mut pricing = Pricing::start(&[]);
    assert_eq!(pricing.send("GET", "/prices/a", &[]).await.0, 200);
    let status = Command::new("kill")
        .args(["-TERM", &pricing.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || {
        let exit = pricing.child.wait().unwrap();
        drop(pricing);
        exit
    })
    .await
    .unwrap();
    assert!(exit.success(), "{exit:?}");
}
