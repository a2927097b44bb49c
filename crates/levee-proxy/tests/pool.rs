//! The HTTP/1.1 upstream pool: connections are reused, and one the upstream closes is
//! replaced without the call failing.

mod support;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use support::*;

/// An HTTP/1.1 upstream that counts the connections it accepted; with `close`, every answer
/// says `connection: close`, so each connection carries one exchange.
async fn counting_upstream(close: bool) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let service = service_fn(move |_request| async move {
                    let mut response = http::Response::new(Full::new(Bytes::from_static(b"ok")));
                    if close {
                        response
                            .headers_mut()
                            .insert(http::header::CONNECTION, "close".parse().expect("value"));
                    }
                    Ok::<_, Infallible>(response)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, accepted)
}

fn yaml(upstream: SocketAddr) -> String {
    config(
        &format!("  inventory: {{endpoints: [{upstream}]}}\n"),
        "  - {match: {path_prefix: /items}, upstream: inventory}\n",
    )
}

#[tokio::test]
async fn sequential_calls_share_one_upstream_connection() {
    let (upstream, accepted) = counting_upstream(false).await;
    let proxy = Harness::start(&yaml(upstream)).await;
    for _ in 0..5 {
        let r = send(get(&proxy.url("/items/1"))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert_eq!(r.text(), "ok");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_connection_the_upstream_closes_is_replaced() {
    let (upstream, accepted) = counting_upstream(true).await;
    let proxy = Harness::start(&yaml(upstream)).await;
    for _ in 0..3 {
        let r = send(get(&proxy.url("/items/1"))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert_eq!(r.text(), "ok");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}
