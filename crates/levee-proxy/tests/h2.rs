//! HTTP/2: h2c clients on a plaintext listener, and gRPC-style calls with trailers to an h2c
//! upstream, whose `grpc-status` in trailers is the call's outcome.

mod support;

use http::{Method, StatusCode, Version};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use support::*;

#[tokio::test]
async fn h2c_clients_are_proxied_to_an_http1_upstream() {
    let a = inventory("inventory").await;
    let yaml = config(
        &format!("  inventory: {{endpoints: [{}]}}\n", a.addr),
        "  - {match: {path_prefix: /}, upstream: inventory}\n",
    );
    let proxy = Harness::start(&yaml).await;
    let r = send_h2(get(&proxy.url("/items/5"))).await;
    assert_eq!(r.version, Version::HTTP_2);
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["id"], "5");
    let r = send_h2(request(Method::POST, &proxy.url("/echo"), "over h2")).await;
    assert_eq!(r.text(), "over h2");
}

#[tokio::test]
async fn grpc_style_calls_pass_through_with_trailers() {
    let a = inventory("inventory").await;
    let yaml = config(
        &format!("  grpc:\n    endpoints: [{}]\n    protocol: h2c\n", a.addr),
        "  - {match: {path_prefix: /grpc.Echo}, upstream: grpc, timeout: 2s}\n",
    );
    let proxy = Harness::start(&yaml).await;
    let message: &[u8] = b"\x00\x00\x00\x00\x05hello";
    let mut call = request(
        Method::POST,
        &proxy.url("/grpc.Echo/Echo"),
        message.to_vec(),
    );
    call.headers_mut()
        .insert("content-type", "application/grpc".parse().expect("value"));
    call.headers_mut()
        .insert("te", "trailers".parse().expect("value"));
    let r = send_h2(call).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type"), Some("application/grpc"));
    assert_eq!(&r.body[..], message);
    let trailers = r.trailers.expect("trailers");
    assert_eq!(
        trailers.get("grpc-status").map(|v| v.as_bytes()),
        Some(&b"0"[..])
    );
    assert_eq!(
        trailers.get("grpc-message").map(|v| v.as_bytes()),
        Some(&b"ok"[..])
    );
    assert_eq!(
        a.state.stats.bodies().last().map(|b| b.to_vec()),
        Some(message.to_vec())
    );
}

/// An h2c upstream answering every call gRPC-style: HTTP 200, a body, then trailers with
/// `grpc-status: <status>` (not trailers-only: the status comes after the body).
async fn grpc_upstream(status: &'static str) -> (std::net::SocketAddr, Arc<AtomicU64>) {
    use bytes::Bytes;
    use http_body_util::{BodyExt, StreamBody};
    use hyper::body::Frame;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let calls = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&calls);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let calls = Arc::clone(&counted);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_request| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    async move {
                        let mut trailers = http::HeaderMap::new();
                        trailers.insert("grpc-status", http::HeaderValue::from_static(status));
                        let frames = vec![
                            Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from_static(
                                b"\x00\x00\x00\x00\x00",
                            ))),
                            Ok(Frame::trailers(trailers)),
                        ];
                        let body = StreamBody::new(futures_util::stream::iter(frames)).boxed();
                        let mut response = http::Response::new(body);
                        response.headers_mut().insert(
                            "content-type",
                            http::HeaderValue::from_static("application/grpc"),
                        );
                        Ok::<_, std::convert::Infallible>(response)
                    }
                });
                let _ =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
            });
        }
    });
    (addr, calls)
}

fn grpc_call(proxy: &Harness) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    let mut call = request(
        Method::POST,
        &proxy.url("/grpc.Echo/Echo"),
        b"\x00\x00\x00\x00\x00".to_vec(),
    );
    call.headers_mut()
        .insert("content-type", "application/grpc".parse().expect("value"));
    call.headers_mut()
        .insert("te", "trailers".parse().expect("value"));
    call
}

#[tokio::test]
async fn grpc_status_in_trailers_decides_the_breaker_and_metrics_outcome() {
    let (addr, calls) = grpc_upstream("14").await;
    let yaml = config(
        &format!(
            "  grpc:\n    endpoints: [{addr}]\n    protocol: h2c\n    outlier: {{consecutive_failures: 0}}\n    breaker: {{window: {{kind: count, size: 4}}, minimum_calls: 4, open: {{wait: 30s}}}}\n"
        ),
        "  - {match: {path_prefix: /grpc.Echo}, upstream: grpc, retry: {max_attempts: 1}}\n",
    );
    let proxy = Harness::start(&yaml).await;
    for _ in 0..4 {
        let r = send_h2(grpc_call(&proxy)).await;
        assert_eq!(r.status, StatusCode::OK, "relayed as it is");
        let trailers = r.trailers.expect("trailers");
        assert_eq!(
            trailers.get("grpc-status").map(|v| v.as_bytes()),
            Some(&b"14"[..])
        );
    }
    // UNAVAILABLE in trailers is a failure: four of them open the breaker.
    let r = eventually("the breaker opens on trailer statuses", || async {
        let r = send_h2(grpc_call(&proxy)).await;
        (r.status == StatusCode::SERVICE_UNAVAILABLE).then_some(r)
    })
    .await;
    assert_eq!(r.json()["code"], "circuit_open");
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    let metrics = send(get(&format!("http://{}/metrics", proxy.admin)))
        .await
        .text();
    assert!(
        metrics.lines().any(|l| l.starts_with("levee_calls_total{")
            && l.contains("endpoint=\"grpc\"")
            && l.contains("outcome=\"failure\"")
            && l.ends_with(" 4")),
        "{metrics}"
    );
    assert!(metrics.contains("reason=\"failure_rate\""), "{metrics}");
}

#[tokio::test]
async fn grpc_ok_in_trailers_is_a_success() {
    let (addr, _) = grpc_upstream("0").await;
    let yaml = config(
        &format!("  grpc:\n    endpoints: [{addr}]\n    protocol: h2c\n"),
        "  - {match: {path_prefix: /grpc.Echo}, upstream: grpc}\n",
    );
    let proxy = Harness::start(&yaml).await;
    let r = send_h2(grpc_call(&proxy)).await;
    assert_eq!(r.status, StatusCode::OK);
    eventually("the call is counted a success", || async {
        let metrics = send(get(&format!("http://{}/metrics", proxy.admin)))
            .await
            .text();
        metrics
            .lines()
            .any(|l| {
                l.starts_with("levee_calls_total{")
                    && l.contains("endpoint=\"grpc\"")
                    && l.contains("outcome=\"success\"")
                    && l.ends_with(" 1")
            })
            .then_some(())
    })
    .await;
}
