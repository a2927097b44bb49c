//! Hostile and broken clients get 4xx answers, never a crash.

mod support;

use http::{Method, StatusCode};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn proxy_for(a: &inventory::Server) -> Harness {
    proxy_with_limits(
        a,
        "max_header_bytes: 8192, max_body_bytes: 1000, body_timeout: 300ms, retry_buffer_bytes: 100",
    )
    .await
}

/// Writes `raw` and reads what comes back until the server closes or answers.
async fn raw_exchange(addr: std::net::SocketAddr, raw: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let _ = stream.write_all(raw).await;
    let mut buf = vec![0u8; 4096];
    let read = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
        .await
        .expect("an answer")
        .unwrap_or(0);
    String::from_utf8_lossy(&buf[..read]).into_owned()
}

#[tokio::test]
async fn malformed_request_lines_get_400() {
    let a = inventory("inventory").await;
    let proxy = proxy_for(&a).await;
    let answer = raw_exchange(proxy.addr, b"GARBAGE\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let answer = raw_exchange(
        proxy.addr,
        b"GET /items/1 HTTP/1.1\r\nHost: x\r\nbad header\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    // The proxy still serves.
    assert_eq!(
        send(get(&proxy.url("/items/1"))).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn oversized_heads_get_431() {
    let a = inventory("inventory").await;
    let proxy = proxy_for(&a).await;
    let huge = format!(
        "GET /items/1 HTTP/1.1\r\nHost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let answer = raw_exchange(proxy.addr, huge.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert_eq!(a.state.stats.received(), 0);
}

#[tokio::test]
async fn oversized_bodies_get_413_whether_announced_or_streamed() {
    let a = inventory("inventory").await;
    let proxy = proxy_for(&a).await;
    let r = send(request(Method::POST, &proxy.url("/echo"), "x".repeat(2000))).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert_eq!(a.state.stats.received(), 0);

    // Chunked, no length: caught while streaming.
    let mut raw = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..3 {
        raw.extend_from_slice(b"1f4\r\n");
        raw.extend_from_slice(&[b'y'; 500]);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let answer = raw_exchange(proxy.addr, &raw).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

#[tokio::test]
async fn a_body_that_never_arrives_gets_408() {
    let a = inventory("inventory").await;
    let proxy = proxy_for(&a).await;
    let answer = raw_exchange(
        proxy.addr,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\nonly-part",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

#[tokio::test]
async fn malformed_levee_headers_get_400_bad_request() {
    let a = inventory("inventory").await;
    let proxy = proxy_for(&a).await;
    let mut r = get(&proxy.url("/items/1"));
    r.headers_mut()
        .insert("levee-criticality", "urgent".parse().expect("value"));
    let r = send(r).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let body = r.json();
    assert_eq!(body["code"], "bad_request");
    assert_eq!(body["degraded"], false);
    assert_eq!(a.state.stats.received(), 0);
}
