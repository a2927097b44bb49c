//! Connection limits (`limits`): `max_connections` per listener, HTTP/2
//! `h2_max_concurrent_streams` per connection, and `idle_timeout`.
//!
//! The few "does not happen" checks watch for a short while and can only pass too easily on a
//! slow machine, never fail because of it; every "happens" check is polled with a deadline.

mod support;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::time::Duration;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a "does not happen" check watches.
const WATCH: Duration = Duration::from_millis(300);

async fn proxy_with(limits: &str, a: &inventory::Server) -> Harness {
    let yaml = format!(
        "limits: {{{limits}}}\n{}",
        config(
            &format!("  inventory: {{endpoints: [{}]}}\n", a.addr),
            "  - {match: {path_prefix: /}, upstream: inventory, timeout: 20s}\n",
        )
    );
    Harness::start(&yaml).await
}

/// Reads one HTTP/1.1 response with a `content-length` body from a keep-alive connection.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                return String::from_utf8_lossy(&buf).into_owned();
            }
        }
        let read = tokio::time::timeout(PATIENCE, stream.read(&mut chunk))
            .await
            .expect("an answer in time")
            .expect("read");
        assert!(read > 0, "closed before the response was complete");
        buf.extend_from_slice(&chunk[..read]);
    }
}

async fn request_on(stream: &mut TcpStream, path: &str, extra: &str) {
    let raw = format!("GET {path} HTTP/1.1\r\nHost: levee\r\n{extra}\r\n");
    stream.write_all(raw.as_bytes()).await.expect("write");
}

#[tokio::test]
async fn max_connections_holds_further_connections_until_one_closes() {
    let a = inventory("inventory").await;
    let proxy = proxy_with("max_connections: 2", &a).await;
    let mut first = TcpStream::connect(proxy.addr).await.expect("connect");
    let mut second = TcpStream::connect(proxy.addr).await.expect("connect");
    for stream in [&mut first, &mut second] {
        request_on(stream, "/items/1", "").await;
        let answer = read_response(stream).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }

    // The third connection waits in the kernel's backlog: connected, never answered...
    let mut third = TcpStream::connect(proxy.addr).await.expect("connect");
    request_on(&mut third, "/items/3", "").await;
    let mut byte = [0u8; 1];
    assert!(
        tokio::time::timeout(WATCH, third.read(&mut byte))
            .await
            .is_err(),
        "a third connection was served while two were open"
    );
    assert_eq!(a.state.stats.received(), 2);

    // ...until a slot frees up.
    drop(first);
    let answer = read_response(&mut third).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"id\":\"3\""), "{answer}");
    // The second connection is still being served.
    request_on(&mut second, "/items/2", "").await;
    assert!(read_response(&mut second).await.starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn h2_max_concurrent_streams_bounds_the_streams_of_one_connection() {
    let a = inventory("inventory").await;
    let proxy = proxy_with("h2_max_concurrent_streams: 2", &a).await;
    let stream = TcpStream::connect(proxy.addr).await.expect("connect");
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    let driver = tokio::spawn(connection);
    // Five calls on one connection; each hangs at the upstream until released.
    let mut calls = Vec::new();
    for i in 0..5 {
        let mut sender = sender.clone();
        let request = http::Request::builder()
            .uri(proxy.url(&format!("/items/{i}")))
            .header("x-inventory-delay-ms", "60000")
            .body(Full::new(Bytes::new()))
            .expect("request");
        calls.push(tokio::spawn(async move {
            let _ = sender.ready().await;
            sender.send_request(request).await
        }));
    }
    eventually("two streams reach the upstream", || async {
        (a.state.stats.in_flight() == 2).then_some(())
    })
    .await;
    tokio::time::sleep(WATCH).await;
    assert_eq!(
        a.state.stats.in_flight(),
        2,
        "no more than h2_max_concurrent_streams at once on one connection"
    );
    for call in &calls {
        call.abort();
    }
    driver.abort();
    eventually("the upstream saw the held calls cancelled", || async {
        (a.state.stats.in_flight() == 0).then_some(())
    })
    .await;
    // Other connections are not limited by this one.
    assert_eq!(
        send_h2(get(&proxy.url("/items/9"))).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn idle_connections_are_closed_after_idle_timeout_and_busy_ones_are_not() {
    let a = inventory("inventory").await;
    let proxy = proxy_with("idle_timeout: 300ms", &a).await;

    // A request in flight for longer than idle_timeout keeps its connection.
    let mut busy = TcpStream::connect(proxy.addr).await.expect("connect");
    request_on(&mut busy, "/items/1", "x-inventory-delay-ms: 1000\r\n").await;
    let answer = read_response(&mut busy).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // Then, idle, it is closed (EOF).
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(PATIENCE, busy.read(&mut byte))
        .await
        .expect("the idle connection is closed in time")
        .unwrap_or(0);
    assert_eq!(read, 0, "closed without another byte");

    // The same for HTTP/2: the idle connection ends (GOAWAY, then close).
    let stream = TcpStream::connect(proxy.addr).await.expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    let driver = tokio::spawn(connection);
    let request = http::Request::builder()
        .uri(proxy.url("/items/2"))
        .body(Full::new(Bytes::new()))
        .expect("request");
    let response = sender.send_request(request).await.expect("h2 answer");
    assert_eq!(response.status(), StatusCode::OK);
    let _ = response.into_body().collect().await;
    tokio::time::timeout(PATIENCE, driver)
        .await
        .expect("the idle h2 connection is closed in time")
        .expect("driver")
        .expect("closed cleanly");
}
