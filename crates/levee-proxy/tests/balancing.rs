//! Routing, balancing across endpoints, passive outlier ejection and active health checks.

mod support;

use http::{Method, StatusCode};
use support::*;

fn two_endpoint_config(a: &inventory::Server, b: &inventory::Server, extra: &str) -> String {
    config(
        &format!(
            "  inv:\n    endpoints: [{}, {}]\n    balancer: round_robin\n    outlier: {{consecutive_failures: 2, base_ejection: 30s, max_ejection_percent: 50}}\n    breaker: {{minimum_calls: 1000}}\n{extra}",
            a.addr, b.addr
        ),
        "  - name: items\n    match: {path_prefix: /items}\n    upstream: inv\n    timeout: 2s\n    retry: {max_attempts: 2, budget: {min_per_second: 100}}\n",
    )
}

#[tokio::test]
async fn endpoint_killed_traffic_moves_to_the_healthy_one_and_health_shows_the_ejection() {
    let a = inventory("a").await;
    let b = inventory("b").await;
    let proxy = Harness::start(&two_endpoint_config(&a, &b, "")).await;

    for _ in 0..4 {
        let r = send(get(&proxy.url("/items/1"))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
    assert!(a.state.stats.received() > 0 && b.state.stats.received() > 0);

    a.kill();
    let a_addr = a.addr.to_string();
    // Every request still succeeds: connect failures to `a` are retried on `b`.
    for _ in 0..10 {
        let r = send(get(&proxy.url("/items/2"))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert_eq!(r.header("x-served-by"), Some("b"));
    }
    let endpoint = eventually("endpoint a ejected in /health", || async {
        let health = proxy.health().await;
        health["upstreams"][0]["endpoints"]
            .as_array()?
            .iter()
            .find(|e| e["address"] == a_addr.as_str() && e["ejected"] == true)
            .cloned()
    })
    .await;
    assert!(endpoint["ejection_remaining_ms"].as_u64().unwrap_or(0) > 0);
    assert_eq!(endpoint["ejections"], 1);
    let health = proxy.health().await;
    assert_eq!(health["upstreams"][0]["available_endpoints"], 1);

    // Once ejected, `a` is not even tried: every request goes straight to `b`.
    let before = b.state.stats.received();
    for _ in 0..6 {
        let r = send(get(&proxy.url("/items/3"))).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    assert_eq!(b.state.stats.received(), before + 6);
}

#[tokio::test]
async fn active_health_checks_take_a_failing_endpoint_out_and_bring_it_back() {
    let a = inventory("a").await;
    let b = inventory("b").await;
    let checks = "    health_check: {path: /healthz, interval: 50ms, timeout: 40ms, healthy: 1, unhealthy: 2}\n    slow_start: 1s\n";
    let proxy = Harness::start(&two_endpoint_config(&a, &b, checks)).await;
    a.state.update(|s| s.health_status = 503);
    let a_addr = a.addr.to_string();
    eventually("a unhealthy", || async {
        let h = proxy.health().await;
        h["upstreams"][0]["endpoints"]
            .as_array()?
            .iter()
            .any(|e| e["address"] == a_addr.as_str() && e["health"] == "unhealthy")
            .then_some(())
    })
    .await;
    let before = a.state.stats.received();
    for _ in 0..6 {
        assert_eq!(
            send(get(&proxy.url("/items/1"))).await.status,
            StatusCode::OK
        );
    }
    assert_eq!(
        a.state.stats.received(),
        before,
        "an unhealthy endpoint gets no traffic"
    );

    a.state.update(|s| s.health_status = 200);
    let weight = eventually("a healthy again, in slow start", || async {
        let h = proxy.health().await;
        h["upstreams"][0]["endpoints"]
            .as_array()?
            .iter()
            .find(|e| e["address"] == a_addr.as_str() && e["health"] == "healthy")
            .and_then(|e| e["weight"].as_f64())
    })
    .await;
    assert!((0.1..=1.0).contains(&weight), "weight {weight}");
}

#[tokio::test]
async fn routes_match_in_order_by_prefix_exact_path_host_method_and_header() {
    let a = inventory("a").await;
    let b = inventory("b").await;
    let yaml = config(
        &format!(
            "  a: {{endpoints: [{}]}}\n  b: {{endpoints: [{}]}}\n",
            a.addr, b.addr
        ),
        "  - {match: {path_prefix: /items, headers: {x-tenant: blue}}, upstream: b}\n  - {match: {path_prefix: /items, methods: [GET]}, upstream: a}\n  - {match: {path: /echo, host: '*.example.com'}, upstream: b}\n",
    );
    let proxy = Harness::start(&yaml).await;

    let r = send(get(&proxy.url("/items/7"))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["served_by"], "a");
    assert!(r.header("x-request-id").is_some_and(|id| !id.is_empty()));

    let mut blue = get(&proxy.url("/items/7"));
    blue.headers_mut()
        .insert("x-tenant", "blue".parse().expect("value"));
    assert_eq!(send(blue).await.json()["served_by"], "b");

    // Segment-aware: /itemsfoo is not under /items.
    let r = send(get(&proxy.url("/itemsfoo"))).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert_eq!(r.json()["status"], 404);
    assert!(r.json()["trace_id"].as_str().is_some_and(|t| t.len() == 32));

    let mut echo = request(Method::POST, &proxy.url("/echo"), "hello");
    echo.headers_mut()
        .insert("host", "shop.example.com".parse().expect("host"));
    let r = send(echo).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text(), "hello");
    let r = send(request(Method::POST, &proxy.url("/echo"), "hello")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "host does not match");
}

#[tokio::test]
async fn trace_context_and_deadline_travel_to_the_upstream() {
    let a = inventory("a").await;
    let yaml = config(
        &format!("  a: {{endpoints: [{}]}}\n", a.addr),
        "  - {match: {path_prefix: /}, upstream: a, timeout: 800ms}\n",
    );
    let proxy = Harness::start(&yaml).await;
    let mut r = get(&proxy.url("/items/1"));
    r.headers_mut().insert(
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            .parse()
            .expect("value"),
    );
    r.headers_mut()
        .insert("levee-timeout-ms", "500".parse().expect("value"));
    let r = send(r).await;
    assert_eq!(r.status, StatusCode::OK);
    let seen = r
        .header("x-traceparent-seen")
        .unwrap_or_default()
        .to_string();
    assert!(
        seen.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{seen}"
    );
    assert!(
        !seen.contains("00f067aa0ba902b7"),
        "Levee's own span is the parent: {seen}"
    );
    let deadline: u64 = r
        .header("x-deadline-ms")
        .unwrap_or("")
        .parse()
        .expect("deadline");
    assert!(
        deadline <= 500 && deadline > 0,
        "remaining time, less time spent: {deadline}"
    );
    assert_eq!(r.header("x-forwarded-for-seen"), Some("127.0.0.1"));

    // A forwarded-for chain from an earlier proxy is extended, not replaced.
    let mut r = get(&proxy.url("/items/1"));
    r.headers_mut()
        .insert("x-forwarded-for", "10.0.0.1".parse().expect("value"));
    let r = send(r).await;
    assert_eq!(
        r.header("x-forwarded-for-seen"),
        Some("10.0.0.1, 127.0.0.1")
    );
    assert!(r
        .header("x-traceparent-seen")
        .is_some_and(|t| t.starts_with("00-") && !t.contains("4bf92f3577b34da6a3ce929d0e0e4736")));
}
