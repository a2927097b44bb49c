//! Deadlines and cancellation: slow upstreams get a 504 within the deadline and their request
//! is cancelled; spent deadlines are refused before any upstream work; a client that goes
//! away cancels the upstream call.

mod support;

use http::StatusCode;
use support::*;

fn slow_config(a: &inventory::Server) -> String {
    config(
        &format!("  inventory: {{endpoints: [{}]}}\n", a.addr),
        "  - {match: {path_prefix: /items}, upstream: inventory, timeout: 300ms}\n",
    )
}

#[tokio::test]
async fn a_slow_upstream_gets_504_upstream_timeout_and_its_request_is_cancelled() {
    let a = inventory("inventory").await;
    let proxy = Harness::start(&slow_config(&a)).await;
    let mut slow = get(&proxy.url("/items/1"));
    slow.headers_mut()
        .insert("x-inventory-delay-ms", "30000".parse().expect("value"));
    let r = send(slow).await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT);
    let body = r.json();
    assert_eq!(body["code"], "upstream_timeout");
    assert_eq!(body["upstream"], "inventory");
    eventually("the upstream saw its request cancelled", || async {
        (a.state.stats.cancelled() == 1).then_some(())
    })
    .await;
    assert_eq!(a.state.stats.completed(), 0);
}

#[tokio::test]
async fn a_spent_inbound_deadline_is_refused_before_any_upstream_work() {
    let a = inventory("inventory").await;
    let proxy = Harness::start(&slow_config(&a)).await;
    let mut spent = get(&proxy.url("/items/1"));
    spent
        .headers_mut()
        .insert("levee-timeout-ms", "0".parse().expect("value"));
    let r = send(spent).await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(r.json()["code"], "deadline_exceeded");

    let mut malformed = get(&proxy.url("/items/1"));
    malformed
        .headers_mut()
        .insert("grpc-timeout", "12".parse().expect("value"));
    let r = send(malformed).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["code"], "bad_request");
    assert_eq!(a.state.stats.received(), 0);
}

#[tokio::test]
async fn a_client_that_goes_away_cancels_the_upstream_call() {
    let a = inventory("inventory").await;
    let yaml = config(
        &format!("  inventory: {{endpoints: [{}]}}\n", a.addr),
        "  - {match: {path_prefix: /items}, upstream: inventory}\n",
    );
    let proxy = Harness::start(&yaml).await;
    let mut hanging = get(&proxy.url("/items/1"));
    hanging
        .headers_mut()
        .insert("x-inventory-hang", "1".parse().expect("value"));
    let client = tokio::spawn(send(hanging));
    eventually("the upstream is working on it", || async {
        (a.state.stats.in_flight() == 1).then_some(())
    })
    .await;
    client.abort();
    eventually("the upstream saw the call cancelled", || async {
        (a.state.stats.cancelled() == 1).then_some(())
    })
    .await;
    let metrics = eventually("the cancelled call is counted", || async {
        let text = send(get(&format!("http://{}/metrics", proxy.admin)))
            .await
            .text();
        text.lines()
            .any(|l| {
                l.starts_with("levee_calls_total{")
                    && l.contains("outcome=\"cancelled\"")
                    && l.ends_with(" 1")
            })
            .then_some(text)
    })
    .await;
    assert!(metrics.contains("endpoint=\"inventory\""));
    assert_eq!(proxy.proxy.in_flight(), 0);
}
