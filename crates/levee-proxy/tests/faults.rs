//! Fault injection end to end: faults from the config, the admin API and the `levee-fault`
//! header, injected per attempt so that the breaker, retries, fallbacks and metrics treat
//! them exactly as real failures, while the upstream receives nothing.

mod support;

use http::{Method, StatusCode};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use support::*;

const TOKEN: &str = "secret";

/// `upstream` with the inventory server, one route `items` with `route_extra` (indented as
/// route keys) and the top-level `extra`.
fn fault_config(a: &inventory::Server, breaker: &str, route_extra: &str, extra: &str) -> String {
    format!(
        "{}{extra}",
        config(
            &format!(
                "  inventory:\n    endpoints: [{}]\n    outlier: {{consecutive_failures: 0}}\n    breaker: {breaker}\n",
                a.addr
            ),
            &format!(
                "  - name: items\n    match: {{path_prefix: /items}}\n    upstream: inventory\n{route_extra}"
            ),
        )
    )
}

const OPENS_AFTER_4: &str =
    "{window: {kind: count, size: 4}, minimum_calls: 4, failure_rate_threshold: 50, open: {wait: 30s}}";

const NEVER_OPENS: &str = "{minimum_calls: 1000}";

/// The value of `levee_faults_injected_total{route, kind}`, 0 when the series is absent.
async fn injected(proxy: &Harness, route: &str, kind: &str) -> f64 {
    metric(
        proxy,
        "levee_faults_injected_total{",
        &[("route", route), ("kind", kind)],
    )
    .await
}

/// The value of the first series starting with `prefix` whose labels include `labels`.
async fn metric(proxy: &Harness, prefix: &str, labels: &[(&str, &str)]) -> f64 {
    let text = send(get(&format!("http://{}/metrics", proxy.admin)))
        .await
        .text();
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

fn admin_request(
    proxy: &Harness,
    method: Method,
    path: &str,
    body: &str,
    token: Option<&str>,
) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    let mut r = request(
        method,
        &format!("http://{}{path}", proxy.admin),
        body.to_string(),
    );
    if let Some(token) = token {
        r.headers_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("header"),
        );
    }
    r
}

#[tokio::test]
async fn a_config_abort_opens_the_breaker_like_a_real_503_and_never_reaches_the_upstream() {
    let a = inventory("inventory").await;
    let proxy = Harness::start(&fault_config(
        &a,
        OPENS_AFTER_4,
        "    retry: {max_attempts: 1}\n    fault:\n      abort: {percent: 100, status: 503}\n",
        "",
    ))
    .await;

    // Until the breaker opens, the injected 503 is relayed as an upstream's 503 would be.
    for _ in 0..4 {
        let r = send(get(&proxy.url("/items/1"))).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.text(), "injected fault\n");
        assert_eq!(r.header("levee-fault-injected"), Some("abort"));
    }
    let r = send(get(&proxy.url("/items/1"))).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert_eq!(r.json()["code"], "circuit_open");
    assert!(r.header("retry-after").is_some());
    assert_eq!(a.state.stats.received(), 0, "the upstream was never called");

    let health = proxy.health().await;
    assert_eq!(health["breakers"][0]["state"], "open");
    assert_eq!(injected(&proxy, "items", "abort").await, 4.0);
    assert_eq!(
        metric(
            &proxy,
            "levee_calls_total{",
            &[("endpoint", "inventory"), ("outcome", "failure")]
        )
        .await,
        4.0
    );

    let listed = send(get(&format!("http://{}/api/faults", proxy.admin))).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(
        listed.json(),
        serde_json::json!({"faults": [{"route": "items", "source": "config",
            "fault": {"abort": {"percent": 100.0, "status": 503}}}]})
    );
}

#[tokio::test]
async fn the_admin_api_starts_and_heals_an_outage_and_gets_serve_stale_meanwhile() {
    let a = inventory("inventory").await;
    let proxy = Harness::start(&fault_config(
        &a,
        NEVER_OPENS,
        "    retry: {max_attempts: 1}\n    fallback: {stale_if_error: {max_stale: 5m}}\n",
        "",
    ))
    .await;
    let fresh = send(get(&proxy.url("/items/1"))).await;
    assert_eq!(fresh.status, StatusCode::OK);
    let listed = send(get(&format!("http://{}/api/faults", proxy.admin))).await;
    assert_eq!(listed.json(), serde_json::json!({"faults": []}));

    let abort = r#"{"abort": {"percent": 100, "status": 503}}"#;
    let put = |body: &str, token: Option<&str>, route: &str| {
        admin_request(
            &proxy,
            Method::PUT,
            &format!("/api/faults/{route}"),
            body,
            token,
        )
    };
    for token in [None, Some("wrong")] {
        let r = send(put(abort, token, "items")).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text());
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
    }
    let r = send(put(abort, Some(TOKEN), "nope")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
    assert_eq!(r.json()["code"], "unknown_route");
    assert!(r.json()["detail"].as_str().unwrap_or("").contains("items"));
    for (body, says) in [
        (r#"{"abrt": {"percent": 1, "status": 503}}"#, "abrt"),
        (
            r#"{"abort": {"percent": 100, "status": 42}}"#,
            "abort.status",
        ),
        (
            r#"{"abort": {"percent": 101, "status": 503}}"#,
            "abort.percent",
        ),
        (r#"{"delay": {"percent": 1, "duration": "200"}}"#, "200ms"),
        ("not json", "abort"),
    ] {
        let r = send(put(body, Some(TOKEN), "items")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
        let detail = r.json()["detail"].as_str().unwrap_or("").to_string();
        assert!(detail.contains(says), "{body}: {detail}");
    }
    assert_eq!(a.state.stats.received(), 1);

    let r = send(put(abort, Some(TOKEN), "items")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        r.json(),
        serde_json::json!({"route": "items", "source": "admin",
            "fault": {"abort": {"percent": 100.0, "status": 503}}})
    );
    let listed = send(get(&format!("http://{}/api/faults", proxy.admin))).await;
    assert_eq!(listed.json()["faults"][0]["source"], "admin");

    // The outage: GETs are served stale, the upstream hears nothing.
    for _ in 0..3 {
        let stale = send(get(&proxy.url("/items/1"))).await;
        assert_eq!(stale.status, StatusCode::OK);
        assert_eq!(stale.body, fresh.body);
        assert_eq!(
            stale.header("levee-degraded"),
            Some("stale; reason=upstream_unavailable")
        );
    }
    assert_eq!(a.state.stats.received(), 1);
    assert_eq!(injected(&proxy, "items", "abort").await, 3.0);

    let delete =
        |token: Option<&str>| admin_request(&proxy, Method::DELETE, "/api/faults/items", "", token);
    let r = send(delete(None)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = send(delete(Some(TOKEN))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        r.json(),
        serde_json::json!({"route": "items", "source": "none", "fault": {}})
    );
    let healed = send(get(&proxy.url("/items/1"))).await;
    assert_eq!(healed.status, StatusCode::OK);
    assert!(healed.header("levee-degraded").is_none());
    assert_eq!(
        a.state.stats.received(),
        2,
        "requests reach the upstream again"
    );
    let listed = send(get(&format!("http://{}/api/faults", proxy.admin))).await;
    assert_eq!(listed.json(), serde_json::json!({"faults": []}));
}

#[tokio::test]
async fn an_admin_fault_outlives_a_reload_and_delete_returns_to_the_config_fault() {
    let a = inventory("inventory").await;
    let yaml = fault_config(
        &a,
        NEVER_OPENS,
        "    retry: {max_attempts: 1}\n    fault: {delay: {percent: 0, duration: 1s}}\n",
        "",
    );
    let proxy = Harness::start(&yaml).await;
    let r = send(admin_request(
        &proxy,
        Method::PUT,
        "/api/faults/items",
        r#"{"abort": {"percent": 100, "status": 500}}"#,
        Some(TOKEN),
    ))
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let config = levee_config::parse(&yaml.replace("1s}", "2s}"), "test.yaml").expect("valid");
    proxy.proxy.apply(config).expect("reload");
    let r = send(get(&proxy.url("/items/1"))).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(a.state.stats.received(), 0);

    let r = send(admin_request(
        &proxy,
        Method::DELETE,
        "/api/faults/items",
        "",
        Some(TOKEN),
    ))
    .await;
    assert_eq!(
        r.json(),
        serde_json::json!({"route": "items", "source": "config",
            "fault": {"delay": {"percent": 0.0, "duration": "2s"}}})
    );
    assert_eq!(
        send(get(&proxy.url("/items/1"))).await.status,
        StatusCode::OK
    );

    // An admin fault leaves with its route.
    let r = send(admin_request(
        &proxy,
        Method::PUT,
        "/api/faults/items",
        r#"{"reset": {"percent": 100}}"#,
        Some(TOKEN),
    ))
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let renamed = yaml.replace("name: items", "name: things");
    let config = levee_config::parse(&renamed, "test.yaml").expect("valid");
    proxy.proxy.apply(config).expect("reload");
    let listed = send(get(&format!("http://{}/api/faults", proxy.admin))).await;
    assert_eq!(
        listed.json(),
        serde_json::json!({"faults": [{"route": "things", "source": "config",
            "fault": {"delay": {"percent": 0.0, "duration": "1s"}}}]})
    );
    assert_eq!(
        send(get(&proxy.url("/items/1"))).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_delay_longer_than_the_per_try_timeout_is_a_timeout() {
    let a = inventory("inventory").await;
    let proxy = Harness::start(&fault_config(
        &a,
        NEVER_OPENS,
        "    retry: {max_attempts: 1, per_try_timeout: 100ms}\n    fault: {delay: {percent: 100, duration: 30s}}\n",
        "",
    ))
    .await;
    let r = send(get(&proxy.url("/items/1"))).await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT, "{}", r.text());
    assert_eq!(r.json()["code"], "upstream_timeout");
    assert_eq!(a.state.stats.received(), 0);
    assert_eq!(injected(&proxy, "items", "delay").await, 1.0);
    assert_eq!(
        metric(
            &proxy,
            "levee_calls_total{",
            &[("endpoint", "inventory"), ("outcome", "timeout")]
        )
        .await,
        1.0
    );
}

#[tokio::test]
async fn a_short_delay_is_followed_by_the_real_call() {
    let a = inventory("inventory").await;
    let proxy = Harness::start(&fault_config(
        &a,
        NEVER_OPENS,
        "    fault: {delay: {percent: 100, duration: 1ms}}\n",
        "",
    ))
    .await;
    let r = send(get(&proxy.url("/items/1"))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(a.state.stats.received(), 1);
    assert_eq!(injected(&proxy, "items", "delay").await, 1.0);
}

#[tokio::test]
async fn an_injected_reset_is_retried_as_a_reset() {
    let a = inventory("inventory").await;
    let proxy = Harness::start(&fault_config(
        &a,
        NEVER_OPENS,
        "    retry: {max_attempts: 2}\n    fault: {reset: {percent: 100}}\n",
        "",
    ))
    .await;
    let r = send(get(&proxy.url("/items/1"))).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text());
    assert_eq!(r.json()["code"], "upstream_unavailable");
    assert_eq!(a.state.stats.received(), 0);
    assert_eq!(injected(&proxy, "items", "reset").await, 2.0);
    assert_eq!(
        metric(
            &proxy,
            "levee_retries_total{",
            &[("endpoint", "inventory"), ("reason", "reset")]
        )
        .await,
        1.0
    );
}

#[tokio::test]
async fn a_hang_ends_at_the_deadline() {
    let a = inventory("inventory").await;
    let proxy = Harness::start(&fault_config(
        &a,
        NEVER_OPENS,
        "    timeout: 200ms\n    retry: {max_attempts: 1}\n    fault: {hang: {percent: 100}}\n",
        "",
    ))
    .await;
    let r = send(get(&proxy.url("/items/1"))).await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT, "{}", r.text());
    assert_eq!(r.json()["code"], "upstream_timeout");
    assert_eq!(a.state.stats.received(), 0);
    assert_eq!(injected(&proxy, "items", "hang").await, 1.0);
}

/// An upstream that answers every request with the names of the headers it received.
async fn header_echo() -> (std::net::SocketAddr, Arc<AtomicU64>) {
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
                let service = hyper::service::service_fn(move |request: http::Request<_>| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    let names: Vec<String> = request
                        .headers()
                        .keys()
                        .map(|k| k.as_str().to_string())
                        .collect();
                    let _body: hyper::body::Incoming = request.into_body();
                    async move {
                        let body = serde_json::to_vec(&names).unwrap_or_default();
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            http_body_util::Full::new(bytes::Bytes::from(body)),
                        ))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, calls)
}

fn echo_config(addr: std::net::SocketAddr, token_env: &str, allow: bool) -> String {
    format!(
        "{}admin:\n  token_env: {token_env}\nfaults:\n  allow_headers: {allow}\n",
        config(
            &format!("  echo:\n    endpoints: [{addr}]\n"),
            "  - name: echo\n    upstream: echo\n    retry: {max_attempts: 1}\n",
        )
    )
}

fn asking(
    proxy: &Harness,
    fault: &str,
    token: Option<&str>,
) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    let mut r = get(&proxy.url("/anything"));
    r.headers_mut()
        .insert("levee-fault", fault.parse().expect("header"));
    if let Some(token) = token {
        r.headers_mut()
            .insert("levee-fault-token", token.parse().expect("header"));
    }
    r
}

fn received_names(answer: &Answer) -> Vec<String> {
    serde_json::from_slice(&answer.body).expect("header names")
}

#[tokio::test]
async fn fault_headers_are_ignored_and_stripped_when_not_allowed() {
    std::env::set_var("LEVEE_FAULT_TEST_TOKEN_OFF", TOKEN);
    let (addr, calls) = header_echo().await;
    let proxy = Harness::start(&echo_config(addr, "LEVEE_FAULT_TEST_TOKEN_OFF", false)).await;
    let r = send(asking(&proxy, "abort=503", Some(TOKEN))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let names = received_names(&r);
    assert!(!names.is_empty());
    assert!(
        !names.iter().any(|n| n.starts_with("levee-fault")),
        "{names:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(injected(&proxy, "echo", "abort").await, 0.0);
}

#[tokio::test]
async fn fault_headers_need_the_admin_token_and_are_never_forwarded() {
    std::env::set_var("LEVEE_FAULT_TEST_TOKEN_ON", TOKEN);
    let (addr, calls) = header_echo().await;
    let proxy = Harness::start(&echo_config(addr, "LEVEE_FAULT_TEST_TOKEN_ON", true)).await;

    for token in [None, Some("wrong")] {
        let r = send(asking(&proxy, "abort=503", token)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
        assert_eq!(r.json()["code"], "fault_unauthorized");
        assert_eq!(r.json()["type"], "urn:levee:admin:fault_unauthorized");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    let r = send(asking(&proxy, "abort=503", Some(TOKEN))).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.text(), "injected fault\n");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(injected(&proxy, "echo", "abort").await, 1.0);

    let r = send(asking(&proxy, "delay=1ms,abort", Some(TOKEN))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert_eq!(r.json()["code"], "fault_header_invalid");
    let detail = r.json()["detail"].as_str().unwrap_or("").to_string();
    assert!(detail.contains("`abort`"), "{detail}");

    // A granted delay goes on to the real call, without either header.
    let r = send(asking(&proxy, "delay=1ms", Some(TOKEN))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let names = received_names(&r);
    assert!(
        !names.iter().any(|n| n.starts_with("levee-fault")),
        "{names:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}
