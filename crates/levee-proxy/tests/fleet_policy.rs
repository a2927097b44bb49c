//! Breaker policies distributed by a remote registry (SPEC §9) applied by the proxy: a real
//! registry server (in-process, on a loopback port), an operator setting policies through its
//! HTTP API, the proxy library in `registry.mode: remote` and a real upstream. The policy
//! replaces the file's breaker config for its key and the breaker keeps its state; a reload
//! does not undo it; without a policy the file's config runs.

mod support;

use levee_admin::{AdminBackend, DashboardBreaker};
use levee_core::breaker::BreakerConfig;
use levee_core::breaker::State;
use levee_registry_client::Api;
use std::sync::Arc;
use std::time::Duration;
use support::*;

const REPORTER: &str = "reporter-token";
const OPERATOR: &str = "operator-token";

async fn registry_at(addr: &str) -> levee_registry::Running {
    let config =
        levee_registry::RegistryConfig::new(addr.parse().expect("address"), REPORTER, OPERATOR);
    levee_registry::start(config, Arc::new(levee_registry::clock::UnixClock))
        .await
        .expect("registry")
}

/// The proxy's config: `inventory`'s breaker trips only on `consecutive` failures in a row
/// (the rates never trip with `minimum_calls: 1000`), and stays open for a minute.
fn proxy_yaml(registry: &str, upstream: std::net::SocketAddr, consecutive: u32) -> String {
    format!(
        "service: test\nlisteners:\n  - address: 127.0.0.1:0\nregistry:\n  mode: remote\n  \
         url: {registry}\n  report_interval: 100ms\nupstreams:\n  inventory:\n    \
         endpoints: [{upstream}]\n    outlier: {{consecutive_failures: 0}}\n    breaker: \
         {{minimum_calls: 1000, consecutive_failures: {consecutive}, open: {{wait: 1m, jitter: \
         0}}}}\nroutes:\n  - {{match: {{path_prefix: /items}}, upstream: inventory, retry: \
         {{max_attempts: 1}}}}\n"
    )
}

/// The same shape as a policy an operator PUTs.
fn policy(consecutive: u32) -> BreakerConfig {
    serde_json::from_value(serde_json::json!({
        "minimum_calls": 1000,
        "consecutive_failures": consecutive,
        "open": {"wait": "1m", "jitter": 0}
    }))
    .expect("policy")
}

/// The proxy's local breaker for `inventory` (its state, config and policy version).
fn inventory_breaker(proxy: &Harness) -> DashboardBreaker {
    proxy
        .proxy
        .dashboard_breakers()
        .into_iter()
        .find(|b| b.view.key == "inventory")
        .expect("inventory breaker")
}

/// Sends one call to the failing upstream: `upstream` when it reached the upstream (503),
/// else the Levee error code.
async fn failed(proxy: &Harness) -> String {
    let r = send(get(&proxy.url("/items/1"))).await;
    if r.json()["error"] == "failing on purpose" {
        assert_eq!(r.status, http::StatusCode::SERVICE_UNAVAILABLE);
        return "upstream".into();
    }
    r.json()["code"].as_str().unwrap_or("none").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_policy_replaces_the_file_config_keeps_the_state_and_outlives_a_reload() {
    let running = registry_at("127.0.0.1:0").await;
    let operator = Api::new(&running.url(), Some(OPERATOR)).expect("api");
    let upstream = inventory("inventory").await;
    upstream.state.update(|b| b.fail_ratio = 1.0);
    let proxy =
        Harness::start_with_registry(&proxy_yaml(&running.url(), upstream.addr, 10), REPORTER)
            .await;
    eventually("connected to the registry", || async {
        let health = proxy.health().await;
        (health["registry"]["connected"] == true).then_some(())
    })
    .await;

    // No policy: the file's config runs (10 in a row), so 3 failures leave it closed.
    for _ in 0..3 {
        assert_eq!(failed(&proxy).await, "upstream");
    }
    let b = inventory_breaker(&proxy);
    assert_eq!(b.local_state, State::Closed);
    assert_eq!(b.view.consecutive_failures, 3);
    assert_eq!(b.consecutive_failures_threshold, Some(10));
    assert_eq!(b.view.policy_version, None);
    let health = proxy.health().await;
    assert!(
        health["breakers"][0].get("policy_version").is_none(),
        "no policy, no version: {health}"
    );

    // An operator distributes a policy tripping on 3 in a row. The breaker takes it and stays
    // closed, with an empty window (those counts were judged by other thresholds).
    let v1 = operator
        .put_policy("inventory", &policy(3))
        .await
        .expect("put policy");
    assert_eq!(v1.version, 1);
    let b = eventually("the proxy applies the policy", || async {
        let b = inventory_breaker(&proxy);
        (b.view.policy_version == Some(1)).then_some(b)
    })
    .await;
    assert_eq!(b.local_state, State::Closed);
    assert_eq!(b.consecutive_failures_threshold, Some(3));
    assert_eq!(b.view.consecutive_failures, 0);
    let health = proxy.health().await;
    assert_eq!(health["breakers"][0]["policy_version"], 1, "{health}");

    // It now trips on 3 failures, where the file says 10.
    for _ in 0..3 {
        assert_eq!(failed(&proxy).await, "upstream");
    }
    assert_eq!(inventory_breaker(&proxy).local_state, State::Open);
    assert_eq!(failed(&proxy).await, "circuit_open");
    let remaining = inventory_breaker(&proxy)
        .view
        .open_remaining_ms
        .expect("open");

    // A new version while open: the breaker stays open until the same moment (a fresh
    // breaker would be closed; a new opening would wait a full minute again).
    let v2 = operator
        .put_policy("inventory", &policy(4))
        .await
        .expect("put policy");
    assert_eq!(v2.version, 2);
    let b = eventually("the proxy applies version 2", || async {
        let b = inventory_breaker(&proxy);
        (b.view.policy_version == Some(2)).then_some(b)
    })
    .await;
    assert_eq!(b.local_state, State::Open);
    assert_eq!(b.consecutive_failures_threshold, Some(4));
    assert!(
        b.view.open_remaining_ms.expect("still open") <= remaining,
        "open until the same moment: {:?} > {remaining}",
        b.view.open_remaining_ms
    );
    assert_eq!(failed(&proxy).await, "circuit_open");

    // A reload that changes the file's breaker config does not undo the fleet policy, and
    // the breaker keeps its state.
    let reloaded = levee_config::parse(&proxy_yaml(&running.url(), upstream.addr, 20), "test.yaml")
        .expect("valid");
    proxy.proxy.apply(reloaded).expect("reloaded");
    let b = inventory_breaker(&proxy);
    assert_eq!(b.view.policy_version, Some(2));
    assert_eq!(b.consecutive_failures_threshold, Some(4));
    assert_eq!(b.local_state, State::Open);
    assert_eq!(proxy.health().await["config"]["generation"], 2);

    // DELETE resets the registry's policy to the SPEC defaults with a new version: that is
    // what the fleet runs, so the proxy runs it too (still keeping the state).
    let v3 = operator.reset_policy("inventory").await.expect("reset");
    assert_eq!(v3.version, 3);
    let b = eventually("the proxy applies version 3", || async {
        let b = inventory_breaker(&proxy);
        (b.view.policy_version == Some(3)).then_some(b)
    })
    .await;
    assert_eq!(
        b.minimum_calls,
        Some(BreakerConfig::default().minimum_calls)
    );
    assert_eq!(b.local_state, State::Open);

    drop(proxy);
    tokio::time::timeout(Duration::from_secs(10), running.stop())
        .await
        .expect("registry stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_policy_the_file_config_comes_back() {
    let running = registry_at("127.0.0.1:0").await;
    let addr = running.addr();
    let operator = Api::new(&running.url(), Some(OPERATOR)).expect("api");
    operator
        .put_policy("inventory", &policy(2))
        .await
        .expect("put policy");
    let upstream = inventory("inventory").await;
    upstream.state.update(|b| b.fail_ratio = 1.0);
    let proxy =
        Harness::start_with_registry(&proxy_yaml(&running.url(), upstream.addr, 10), REPORTER)
            .await;
    let b = eventually("the policy in the first snapshot is applied", || async {
        let b = inventory_breaker(&proxy);
        (b.view.policy_version == Some(1)).then_some(b)
    })
    .await;
    assert_eq!(b.consecutive_failures_threshold, Some(2));
    assert_eq!(failed(&proxy).await, "upstream");

    // The registry restarts empty (memory backend) at the same address: its snapshot has no
    // policy for the key, so the file's config runs again, keeping the state (closed, the
    // window emptied).
    running.stop().await;
    let running = registry_at(&addr.to_string()).await;
    let b = eventually("the policy is gone", || async {
        let b = inventory_breaker(&proxy);
        (b.view.policy_version.is_none()).then_some(b)
    })
    .await;
    assert_eq!(b.consecutive_failures_threshold, Some(10));
    assert_eq!(b.local_state, State::Closed);
    for _ in 0..3 {
        assert_eq!(
            failed(&proxy).await,
            "upstream",
            "2 in a row no longer trip"
        );
    }
    assert_eq!(inventory_breaker(&proxy).local_state, State::Closed);

    drop(proxy);
    tokio::time::timeout(Duration::from_secs(10), running.stop())
        .await
        .expect("registry stops");
}
