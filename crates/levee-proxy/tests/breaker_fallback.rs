//! A failing upstream: the breaker opens, Levee answers problem+json with Retry-After, and
//! routes with fallbacks answer stale or static instead.

mod support;

use http::StatusCode;
use support::*;

fn failing_config(a: &inventory::Server, fallback: &str) -> String {
    config(
        &format!(
            "  inventory:\n    endpoints: [{}]\n    outlier: {{consecutive_failures: 0}}\n    breaker: {{window: {{kind: count, size: 4}}, minimum_calls: 4, failure_rate_threshold: 50, open: {{wait: 30s}}}}\n",
            a.addr
        ),
        &format!("  - name: items\n    match: {{path_prefix: /items}}\n    upstream: inventory\n    retry: {{max_attempts: 1}}\n{fallback}"),
    )
}

#[tokio::test]
async fn a_failing_upstream_opens_the_breaker_and_gets_problem_json_with_retry_after() {
    let a = inventory("inventory").await;
    let proxy = Harness::start(&failing_config(&a, "")).await;
    a.state.update(|b| b.fail_ratio = 1.0);

    // Until the breaker opens, the upstream's own 503 is returned as it is.
    for _ in 0..4 {
        let r = send(get(&proxy.url("/items/1"))).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    }
    let received = a.state.stats.received();
    assert_eq!(received, 4);

    let r = send(get(&proxy.url("/items/1"))).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let retry_after: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((1..=33).contains(&retry_after), "{retry_after}");
    let body = r.json();
    assert_eq!(body["code"], "circuit_open");
    assert_eq!(body["type"], "urn:levee:error:circuit_open");
    assert_eq!(body["upstream"], "inventory");
    assert_eq!(body["retry_after_s"], retry_after);
    assert_eq!(body["degraded"], true);
    assert_eq!(body["trace_id"].as_str().map(str::len), Some(32));
    assert_eq!(
        a.state.stats.received(),
        received,
        "an open breaker sends nothing upstream"
    );

    let health = proxy.health().await;
    let breaker = &health["breakers"][0];
    assert_eq!(breaker["key"], "inventory");
    assert_eq!(breaker["state"], "open");
    assert_eq!(health["status"], "degraded");

    let metrics = send(get(&format!("http://{}/metrics", proxy.admin)))
        .await
        .text();
    assert!(
        metrics.contains("levee_breaker_transitions_total{")
            && metrics.contains("reason=\"failure_rate\""),
        "{metrics}"
    );
    assert!(metrics.contains("outcome=\"failure\""), "{metrics}");
}

#[tokio::test]
async fn gets_are_served_stale_while_the_upstream_fails_and_after_the_breaker_opens() {
    let a = inventory("inventory").await;
    let proxy = Harness::start(&failing_config(
        &a,
        "    fallback: {stale_if_error: {max_stale: 5m}}\n",
    ))
    .await;
    let fresh = send(get(&proxy.url("/items/1"))).await;
    assert_eq!(fresh.status, StatusCode::OK);
    assert!(fresh.header("levee-degraded").is_none());

    a.state.update(|b| b.fail_ratio = 1.0);
    let stale = send(get(&proxy.url("/items/1"))).await;
    assert_eq!(stale.status, StatusCode::OK);
    assert_eq!(stale.body, fresh.body);
    assert_eq!(
        stale.header("levee-degraded"),
        Some("stale; reason=upstream_unavailable")
    );
    assert!(stale.header("age").is_some());

    // Open the breaker, then the stale copy is served without calling the upstream.
    for _ in 0..3 {
        send(get(&proxy.url("/items/1"))).await;
    }
    let before = a.state.stats.received();
    let stale = send(get(&proxy.url("/items/1"))).await;
    assert_eq!(stale.status, StatusCode::OK);
    assert_eq!(
        stale.header("levee-degraded"),
        Some("stale; reason=circuit_open")
    );
    assert_eq!(a.state.stats.received(), before);

    // Nothing cached for this one: the envelope.
    let r = send(get(&proxy.url("/items/2"))).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json()["code"], "circuit_open");

    let metrics = send(get(&format!("http://{}/metrics", proxy.admin)))
        .await
        .text();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("levee_fallbacks_total{") && l.contains("kind=\"stale\"")),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_static_fallback_answers_when_nothing_else_can() {
    let a = inventory("inventory").await;
    let proxy = Harness::start(&failing_config(
        &a,
        "    fallback: {static: {status: 200, headers: {content-type: application/json}, body: '{\"items\": []}'}}\n",
    ))
    .await;
    a.state.update(|b| b.fail_ratio = 1.0);
    let r = send(get(&proxy.url("/items/9"))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text(), "{\"items\": []}");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.header("levee-degraded"),
        Some("static; reason=upstream_unavailable")
    );
}

#[tokio::test]
async fn an_operator_can_force_a_breaker_open_and_clear_it() {
    let a = inventory("inventory").await;
    let proxy = Harness::start(&failing_config(&a, "")).await;
    let mut put = request(
        http::Method::PUT,
        &format!("http://{}/api/breakers/inventory/override", proxy.admin),
        r#"{"state": "forced_open"}"#,
    );
    put.headers_mut()
        .insert("authorization", "Bearer secret".parse().expect("value"));
    put.headers_mut()
        .insert("content-type", "application/json".parse().expect("value"));
    let r = send(put).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = send(get(&proxy.url("/items/1"))).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json()["code"], "circuit_open");
    assert_eq!(a.state.stats.received(), 0);
}
