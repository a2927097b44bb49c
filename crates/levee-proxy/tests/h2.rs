//! HTTP/2: h2c clients on a plaintext listener, and gRPC-style calls with trailers to an h2c
//! upstream.

mod support;

use http::{Method, StatusCode, Version};
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
