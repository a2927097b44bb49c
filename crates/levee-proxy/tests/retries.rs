//! Retries: idempotency rules, the retry budget, and bodies that cannot be replayed.

mod support;

use http::{Method, StatusCode};
use support::*;

fn retry_config(a: &inventory::Server, retry: &str, limits: &str) -> String {
    format!(
        "{limits}{}",
        config(
            &format!(
                "  inventory:\n    endpoints: [{}]\n    outlier: {{consecutive_failures: 0}}\n    breaker: {{minimum_calls: 1000}}\n",
                a.addr
            ),
            &format!("  - match: {{path_prefix: /}}\n    upstream: inventory\n    retry: {retry}\n"),
        )
    )
}

#[tokio::test]
async fn a_failed_attempt_is_retried_and_the_retry_succeeds() {
    let a = inventory("inventory").await;
    let proxy = Harness::start(&retry_config(
        &a,
        "{max_attempts: 2, backoff: {base: 1ms}}",
        "",
    ))
    .await;
    // A ratio of 0.5 fails every second call: call 0 passes, call 1 fails, call 2 passes.
    a.state.update(|b| b.fail_ratio = 0.5);
    assert_eq!(
        send(get(&proxy.url("/items/1"))).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(get(&proxy.url("/items/1"))).await.status,
        StatusCode::OK
    );
    assert_eq!(a.state.stats.received(), 3);
}

#[tokio::test]
async fn post_is_retried_only_with_an_idempotency_key() {
    let a = inventory("inventory").await;
    let proxy = Harness::start(&retry_config(
        &a,
        "{max_attempts: 2, backoff: {base: 1ms}, budget: {min_per_second: 100}}",
        "",
    ))
    .await;
    a.state.update(|b| b.fail_ratio = 1.0);

    let r = send(request(Method::POST, &proxy.url("/echo"), "order")).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        a.state.stats.received(),
        1,
        "POST without a key is not retried"
    );

    let mut keyed = request(Method::POST, &proxy.url("/echo"), "order");
    keyed
        .headers_mut()
        .insert("idempotency-key", "k-1".parse().expect("value"));
    send(keyed).await;
    assert_eq!(a.state.stats.received(), 3, "with a key it is");

    send(get(&proxy.url("/items/1"))).await;
    assert_eq!(a.state.stats.received(), 5, "GET is idempotent");
}

#[tokio::test]
async fn the_retry_budget_caps_retries_and_the_last_real_response_is_returned() {
    let a = inventory("inventory").await;
    let proxy = Harness::start(&retry_config(
        &a,
        "{max_attempts: 3, backoff: {base: 1ms}, budget: {ratio: 0.1, min_per_second: 1, ttl: 1s}}",
        "",
    ))
    .await;
    a.state.update(|b| b.fail_ratio = 1.0);
    for _ in 0..20 {
        let r = send(get(&proxy.url("/items/1"))).await;
        // The upstream's own answer, not an envelope: a real response exists.
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.json()["error"], "failing on purpose");
    }
    let received = a.state.stats.received();
    assert!(
        (21..40).contains(&received),
        "the budget allowed {} retries for 20 requests",
        received - 20
    );
    let metrics = send(get(&format!("http://{}/metrics", proxy.admin)))
        .await
        .text();
    let exhausted = metrics
        .lines()
        .find(|l| l.starts_with("levee_retry_budget_exhausted_total{"))
        .unwrap_or_default();
    assert!(
        !exhausted.ends_with(" 0") && !exhausted.is_empty(),
        "{metrics}"
    );
}

#[tokio::test]
async fn bodies_too_large_to_buffer_stream_and_are_not_retried() {
    let a = inventory("inventory").await;
    let proxy = Harness::start(&retry_config(
        &a,
        "{max_attempts: 3, backoff: {base: 1ms}, budget: {min_per_second: 100}}",
        "limits: {retry_buffer_bytes: 16}\n",
    ))
    .await;
    let big = "x".repeat(1000);
    let r = send(request(Method::PUT, &proxy.url("/echo"), big.clone())).await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "inventory only echoes POST"
    );
    let r = send(request(Method::POST, &proxy.url("/echo"), big.clone())).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text(), big, "the streamed body arrives whole");

    a.state.update(|b| b.fail_ratio = 1.0);
    let before = a.state.stats.received();
    let r = send(request(Method::PUT, &proxy.url("/echo"), big)).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        a.state.stats.received(),
        before + 1,
        "a streamed PUT is sent once"
    );

    let small = send(request(Method::PUT, &proxy.url("/echo"), "tiny")).await;
    assert_eq!(small.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        a.state.stats.received(),
        before + 4,
        "a buffered PUT is retried"
    );
}
