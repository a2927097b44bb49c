//! Calls Levee refuses itself are counted: `levee_calls_total{outcome="rejected"}` of the
//! route's endpoint, once per refused call (SPEC §1, §11).

mod support;

use http::StatusCode;
use support::*;

async fn calls(proxy: &Harness, outcome: &str) -> f64 {
    let text = send(get(&format!("http://{}/metrics", proxy.admin)))
        .await
        .text();
    text.lines()
        .filter(|l| l.starts_with("levee_calls_total{"))
        .find(|l| {
            l.contains("endpoint=\"inventory\"") && l.contains(&format!("outcome=\"{outcome}\""))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn rate_limited_calls_are_counted_as_rejected_once_each() {
    let a = inventory("inventory").await;
    let yaml = config(
        &format!("  inventory: {{endpoints: [{}]}}\n", a.addr),
        "  - match: {path_prefix: /items}\n    upstream: inventory\n    rate_limit: {rate: 1/h, burst: 1}\n",
    );
    let proxy = Harness::start(&yaml).await;
    let first = send(get(&proxy.url("/items/1"))).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    for _ in 0..2 {
        let refused = send(get(&proxy.url("/items/1"))).await;
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.json()["code"], "rate_limited");
    }
    assert_eq!(
        a.state.stats.received(),
        1,
        "refused calls never reach the upstream"
    );
    assert_eq!(calls(&proxy, "success").await, 1.0);
    assert_eq!(calls(&proxy, "rejected").await, 2.0);
}

#[tokio::test]
async fn a_call_refused_by_an_open_breaker_is_counted_as_rejected() {
    // A port nothing listens on: every call is a connect failure until the breaker opens.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let yaml = config(
        &format!(
            "  inventory:\n    endpoints: [{dead}]\n    outlier: {{consecutive_failures: 0}}\n    breaker: {{window: {{kind: count, size: 4}}, minimum_calls: 4, failure_rate_threshold: 50, open: {{wait: 30s}}}}\n"
        ),
        "  - name: items\n    match: {path_prefix: /items}\n    upstream: inventory\n    retry: {max_attempts: 1}\n",
    );
    let proxy = Harness::start(&yaml).await;
    for _ in 0..4 {
        let r = send(get(&proxy.url("/items/1"))).await;
        assert_ne!(r.json()["code"], "circuit_open", "{}", r.text());
    }
    let refused = send(get(&proxy.url("/items/1"))).await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.json()["code"], "circuit_open", "{}", refused.text());
    assert_eq!(calls(&proxy, "failure").await, 4.0);
    assert_eq!(calls(&proxy, "rejected").await, 1.0);
}
