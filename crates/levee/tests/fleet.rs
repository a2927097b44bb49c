//! The proxy as a registry client, end to end (SPEC §9, §10): real `levee run` processes, a
//! real `levee registry` process (or the embedded one), in-process inventory upstreams.
//!
//! The proxies' own breakers are made hard to trip (`minimum_calls: 1000`) unless a test says
//! otherwise, so rejections here are the fleet's doing — except after a test distributes a
//! policy through the registry's operator API (as an operator would): in remote mode that
//! policy governs the proxies' own breakers too.

mod support;

use http::StatusCode;
use levee_core::breaker::BreakerConfig;
use levee_registry_client::api::DegradationRequest;
use support::*;

/// A proxy config in remote mode for `registry`, one upstream `inventory` and the route
/// `/items`, plus `routes` (YAML list items indented by two spaces).
fn remote(service: &str, registry: &str, upstream: &inventory::Server, routes: &str) -> String {
    format!(
        "service: {service}
listeners:
  - address: 127.0.0.1:0
admin:
  address: 127.0.0.1:0
registry:
  mode: remote
  url: {registry}
  stale_ttl: 2s
  report_interval: 200ms
upstreams:
  inventory:
    endpoints: [{addr}]
    outlier: {{consecutive_failures: 0}}
    breaker: {{minimum_calls: 1000}}
routes:
  - name: items
    match: {{path_prefix: /items}}
    upstream: inventory
    retry: {{max_attempts: 1}}
{routes}",
        addr = upstream.addr
    )
}

fn policy(json: serde_json::Value) -> BreakerConfig {
    serde_json::from_value(json).expect("a breaker policy")
}

/// Waits until the proxy's `levee_registry_connected` is `value`.
async fn registry_connected(proxy: &LeveeProcess, value: f64) {
    eventually(&format!("levee_registry_connected {value}"), || async {
        let text = proxy.metrics().await;
        (metric(&text, "levee_registry_connected", &[]) == Some(value)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_seen_through_one_proxy_opens_the_breaker_in_the_other() {
    let registry = RegistryProcess::start("127.0.0.1:0");
    registry
        .operator()
        .put_policy(
            "inventory",
            &policy(serde_json::json!({
                "window": {"kind": "count", "size": 10},
                "minimum_calls": 5,
                "failure_rate_threshold": 50,
                "open": {"wait": "60s"}
            })),
        )
        .await
        .expect("policy");
    let upstream = inventory("inventory").await;
    let a = LeveeProcess::start("a", &remote("checkout", &registry.url, &upstream, ""));
    let b = LeveeProcess::start("b", &remote("checkout", &registry.url, &upstream, ""));
    registry_connected(&a, 1.0).await;
    registry_connected(&b, 1.0).await;

    for _ in 0..3 {
        assert_eq!(b.get("/items/1").await.status, StatusCode::OK);
    }

    // The upstream fails; only A sends traffic to it.
    upstream.state.update(|u| u.fail_ratio = 1.0);
    for _ in 0..8 {
        let r = a.get("/items/1").await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
    }

    // B sends nothing while the upstream fails; it learns of the outage from the fleet.
    eventually("B's breaker is open because of the fleet", || async {
        let health = b.health().await;
        (health["breakers"][0]["state"] == "open").then_some(())
    })
    .await;
    let before = upstream.state.stats.received();
    let r = b.get("/items/1").await;
    assert_eq!(r.code().as_deref(), Some("circuit_open"), "{}", r.text());
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    let retry_after: u64 = r
        .header("retry-after")
        .expect("Retry-After from the fleet")
        .parse()
        .expect("seconds");
    assert!((1..=66).contains(&retry_after), "{retry_after}");
    assert_eq!(r.json()["upstream"], "inventory");
    assert_eq!(
        upstream.state.stats.received(),
        before,
        "a fleet-open breaker sends nothing upstream"
    );

    let metrics = b.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "levee_calls_total",
            &["endpoint=\"inventory\"", "outcome=\"failure\""]
        )
        .unwrap_or(0.0),
        0.0,
        "B's own calls never failed:\n{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "levee_breaker_transitions_total",
            &["endpoint=\"inventory\"", "to=\"open\"", "reason=\"fleet\""]
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "levee_breaker_state",
            &["endpoint=\"inventory\"", "state=\"open\""]
        ),
        Some(1.0),
        "{metrics}"
    );
    let health = b.health().await;
    let breaker = &health["breakers"][0];
    assert_eq!(breaker["key"], "inventory");
    assert_eq!(breaker["state"], "open", "{health}");
    assert_eq!(breaker["fleet_state"], "open", "{health}");
    assert_eq!(
        breaker["window"]["failures"], 0,
        "B's local window is clean"
    );
    assert_eq!(health["registry"]["mode"], "remote");
    assert_eq!(health["registry"]["connected"], true);
    assert!(
        b.logged(&["\"reason\":\"fleet\"", "circuit breaker opened"]),
        "{}",
        b.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_outage_fails_no_request_and_both_proxies_reconnect() {
    let registry = RegistryProcess::start("127.0.0.1:0");
    let listen = registry.addr.to_string();
    let upstream = inventory("inventory").await;
    let a = LeveeProcess::start("a", &remote("checkout", &registry.url, &upstream, ""));
    let b = LeveeProcess::start("b", &remote("checkout", &registry.url, &upstream, ""));
    registry_connected(&a, 1.0).await;
    registry_connected(&b, 1.0).await;

    registry.kill();
    for proxy in [&a, &b] {
        eventually("levee_registry_connected 0", || async {
            let r = proxy.get("/items/1").await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text());
            let text = proxy.metrics().await;
            (metric(&text, "levee_registry_connected", &[]) == Some(0.0)).then_some(())
        })
        .await;
    }
    // Past stale_ttl the fleet state is dropped and /health says so; requests keep flowing.
    for proxy in [&a, &b] {
        eventually("/health shows the fleet state stale", || async {
            let r = proxy.get("/items/1").await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text());
            let health = proxy.health().await;
            let registry = &health["registry"];
            assert_eq!(registry["connected"], false);
            (registry["stale"] == true).then_some(())
        })
        .await;
        eventually("the stale fleet state is logged", || async {
            proxy
                .logged(&["running on local breakers alone"])
                .then_some(())
        })
        .await;
    }
    for _ in 0..20 {
        for proxy in [&a, &b] {
            let r = proxy.get("/items/1").await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        }
    }

    let _registry = RegistryProcess::start(&listen);
    for proxy in [&a, &b] {
        eventually("reconnected", || async {
            let r = proxy.get("/items/1").await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text());
            let text = proxy.metrics().await;
            (metric(&text, "levee_registry_connected", &[]) == Some(1.0)).then_some(())
        })
        .await;
        let health = proxy.health().await;
        assert_eq!(health["registry"]["connected"], true);
        assert_eq!(health["registry"]["stale"], false);
        assert_eq!(health["registry"]["fleet_state_age_ms"], 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_fleet_state_outlives_an_outage_by_stale_ttl_then_local_breakers_decide() {
    let registry = RegistryProcess::start("127.0.0.1:0");
    let upstream = inventory("inventory").await;
    let yaml =
        remote("checkout", &registry.url, &upstream, "").replace("stale_ttl: 2s", "stale_ttl: 10s");
    let proxy = LeveeProcess::start("a", &yaml);
    registry_connected(&proxy, 1.0).await;
    registry
        .operator()
        .set_override(
            "inventory",
            Some(levee_core::fleet::FleetOverride::ForcedOpen),
        )
        .await
        .expect("forced_open");
    eventually("the fleet's forced_open rejects", || async {
        let r = proxy.get("/items/1").await;
        (r.code().as_deref() == Some("circuit_open")).then_some(())
    })
    .await;
    let received = upstream.state.stats.received();

    registry.kill();
    eventually("levee_registry_connected 0", || async {
        let text = proxy.metrics().await;
        (metric(&text, "levee_registry_connected", &[]) == Some(0.0)).then_some(())
    })
    .await;
    // Within stale_ttl the last fleet state still protects. (Only checked while /health says
    // the state is not stale yet, so a slow machine cannot make this a timing assertion.)
    let r = proxy.get("/items/1").await;
    if proxy.health().await["registry"]["stale"] == false {
        assert_eq!(r.code().as_deref(), Some("circuit_open"), "{}", r.text());
        assert_eq!(upstream.state.stats.received(), received);
    }
    // After it, the local breaker (closed) decides alone.
    eventually("requests flow on the local breaker", || async {
        let r = proxy.get("/items/1").await;
        (r.status == StatusCode::OK).then_some(())
    })
    .await;
    assert_eq!(proxy.health().await["registry"]["stale"], true);
    let metrics = proxy.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "levee_breaker_transitions_total",
            &["from=\"forced_open\"", "to=\"closed\"", "reason=\"fleet\""]
        ),
        Some(1.0),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_open_fleet_sends_at_most_permitted_calls_probes_from_all_proxies() {
    let registry = RegistryProcess::start("127.0.0.1:0");
    let operator = registry.operator();
    operator
        .put_policy(
            "inventory",
            &policy(serde_json::json!({
                "window": {"kind": "count", "size": 10},
                "minimum_calls": 4,
                "failure_rate_threshold": 50,
                "open": {"wait": "1s", "jitter": 0},
                "half_open": {"permitted_calls": 2}
            })),
        )
        .await
        .expect("policy");
    let upstream = inventory("inventory").await;
    let a = LeveeProcess::start("a", &remote("checkout", &registry.url, &upstream, ""));
    let b = LeveeProcess::start("b", &remote("checkout", &registry.url, &upstream, ""));
    registry_connected(&a, 1.0).await;
    registry_connected(&b, 1.0).await;

    upstream.state.update(|u| u.fail_ratio = 1.0);
    eventually("the fleet breaker opens", || async {
        let _ = a.get("/items/1").await;
        let view = operator.breaker("inventory").await.ok()?;
        (view.state == levee_core::breaker::State::Open).then_some(())
    })
    .await;
    // Probes will hang on for a while and then fail: a probe round cannot end during the burst.
    upstream
        .state
        .update(|u| u.delay = std::time::Duration::from_millis(1500));
    eventually("the fleet open wait ends", || async {
        let view = operator.breaker("inventory").await.ok()?;
        view.open_until_ms
            .is_some_and(|t| t <= unix_ms())
            .then_some(())
    })
    .await;
    for proxy in [&a, &b] {
        eventually("both proxies know the fleet is open", || async {
            let health = proxy.health().await;
            (health["breakers"][0]["fleet_state"] == "open").then_some(())
        })
        .await;
    }

    let received = upstream.state.stats.received();
    let mut calls = Vec::new();
    for i in 0..16 {
        let url = if i % 2 == 0 {
            a.url("/items/1")
        } else {
            b.url("/items/1")
        };
        calls.push(tokio::spawn(async move { send(get(&url)).await }));
    }
    let mut probes = 0;
    let mut rejected = 0;
    for call in calls {
        let r = call.await.expect("call");
        match r.code().as_deref() {
            Some("circuit_open") => rejected += 1,
            _ => {
                assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
                probes += 1;
            }
        }
    }
    let sent = upstream.state.stats.received() - received;
    assert!(
        (1..=2).contains(&sent),
        "the fleet permits 2 probes; the upstream saw {sent}"
    );
    assert_eq!(
        probes, sent,
        "every call that reached the upstream was a probe"
    );
    assert_eq!(rejected, 16 - probes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_degradation_level_sheds_routes_and_level_0_restores_them() {
    let registry = RegistryProcess::start("127.0.0.1:0");
    let operator = registry.operator();
    let upstream = inventory("inventory").await;
    let routes = "  - name: recommendations
    match: {path_prefix: /recommendations}
    upstream: inventory
    shed_at_level: 1
    fallback: {static: {status: 200, headers: {content-type: application/json}, body: '{\"items\": []}'}}
  - name: reviews
    match: {path_prefix: /reviews}
    upstream: inventory
    shed_at_level: 2
";
    let proxy = LeveeProcess::start("a", &remote("checkout", &registry.url, &upstream, routes));
    registry_connected(&proxy, 1.0).await;
    let normal = proxy.get("/recommendations").await;
    assert_eq!(normal.status, StatusCode::OK);
    assert_eq!(normal.header("levee-degraded"), None);

    operator
        .set_degradation(&DegradationRequest {
            level: 2,
            rules: Vec::new(),
        })
        .await
        .expect("level 2");
    let shed = eventually("/reviews is shed", || async {
        let r = proxy.get("/reviews").await;
        (r.code().as_deref() == Some("feature_disabled")).then_some(r)
    })
    .await;
    assert_eq!(shed.status, StatusCode::SERVICE_UNAVAILABLE);
    let received = upstream.state.stats.received();
    let r = proxy.get("/recommendations").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text(), "{\"items\": []}");
    assert_eq!(
        r.header("levee-degraded"),
        Some("static; reason=feature_disabled")
    );
    assert_eq!(
        upstream.state.stats.received(),
        received,
        "shed routes send nothing upstream"
    );
    assert_eq!(proxy.get("/items/1").await.status, StatusCode::OK);
    let metrics = proxy.metrics().await;
    assert_eq!(
        metric(&metrics, "levee_degradation_level", &[]),
        Some(2.0),
        "{metrics}"
    );
    assert_eq!(proxy.health().await["degradation_level"], 2);

    operator
        .set_degradation(&DegradationRequest {
            level: 0,
            rules: Vec::new(),
        })
        .await
        .expect("level 0");
    eventually("/reviews is served again", || async {
        let r = proxy.get("/reviews").await;
        (r.code().is_none()).then_some(())
    })
    .await;
    let r = proxy.get("/recommendations").await;
    assert_eq!(r.header("levee-degraded"), None);
    assert_eq!(r.json()["items"][0]["id"], "42");
    let metrics = proxy.metrics().await;
    assert_eq!(metric(&metrics, "levee_degradation_level", &[]), Some(0.0));
    assert_eq!(proxy.health().await["degradation_level"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_config_runs_with_its_embedded_registry() {
    let inventory_a = inventory("a").await;
    let inventory_b = inventory("b").await;
    let recommendations = inventory("recommendations").await;
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/levee.yaml"
    ))
    .expect("examples/levee.yaml");
    let yaml = example
        .replace("127.0.0.1:8080", "127.0.0.1:0")
        .replace("127.0.0.1:9901", "127.0.0.1:0")
        .replace("127.0.0.1:7001", &inventory_a.addr.to_string())
        .replace("127.0.0.1:7002", &inventory_b.addr.to_string())
        .replace("127.0.0.1:7003", &recommendations.addr.to_string());
    assert!(yaml.contains("mode: embedded"));
    let proxy = LeveeProcess::start("example", &yaml);
    registry_connected(&proxy, 1.0).await;
    let health = proxy.health().await;
    assert_eq!(health["registry"]["mode"], "embedded", "{health}");
    let url = health["registry"]["url"]
        .as_str()
        .expect("the embedded registry's url")
        .to_string();

    let r = proxy.get("/inventory/items/7").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["id"], "7");
    let r = proxy.get("/recommendations").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("levee-degraded"), None);

    // The config's breakers are the embedded fleet's policies.
    let registry = levee_registry_client::Api::new(&url, Some(ADMIN)).expect("api");
    eventually("the config's breaker is the fleet policy", || async {
        let p = registry.policy("recommendations").await.ok()?;
        (p.config.mode == levee_core::breaker::Mode::Observe).then_some(())
    })
    .await;

    // The admin token is the embedded registry's operator token; the reporter's is not known.
    let wrong = levee_registry_client::Api::new(&url, Some("guess")).expect("api");
    assert!(wrong
        .set_degradation(&DegradationRequest {
            level: 3,
            rules: Vec::new()
        })
        .await
        .is_err());
    registry
        .set_degradation(&DegradationRequest {
            level: 1,
            rules: Vec::new(),
        })
        .await
        .expect("level 1 with the admin token");
    let shed = eventually("/recommendations is shed", || async {
        let r = proxy.get("/recommendations").await;
        (r.header("levee-degraded") == Some("static; reason=feature_disabled")).then_some(r)
    })
    .await;
    assert_eq!(shed.status, StatusCode::OK);
    assert_eq!(shed.text(), "{\"items\": []}");
    assert_eq!(
        proxy.get("/inventory/items/7").await.status,
        StatusCode::OK,
        "critical routes are not shed at level 1"
    );
    assert_eq!(proxy.health().await["degradation_level"], 1);

    registry
        .set_degradation(&DegradationRequest {
            level: 0,
            rules: Vec::new(),
        })
        .await
        .expect("level 0");
    eventually("/recommendations is served again", || async {
        let r = proxy.get("/recommendations").await;
        (r.header("levee-degraded").is_none() && r.status == StatusCode::OK).then_some(())
    })
    .await;
}
