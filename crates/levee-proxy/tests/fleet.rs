//! Fleet probe leases through the proxy library against a real registry server (in-process,
//! on a loopback port): a probe holds a lease while it runs, a client that goes away hands it
//! back as `cancelled`, and a successful probe closes the fleet breaker. The multi-process
//! fleet scenarios are in `crates/levee/tests/fleet.rs`.

mod support;

use levee_core::breaker::{BreakerConfig, State};
use levee_registry_client::Api;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::*;

const REPORTER: &str = "reporter-token";
const OPERATOR: &str = "operator-token";

async fn registry() -> levee_registry::Running {
    let config = levee_registry::RegistryConfig::new(
        "127.0.0.1:0".parse().expect("address"),
        REPORTER,
        OPERATOR,
    );
    levee_registry::start(config, Arc::new(levee_registry::clock::UnixClock))
        .await
        .expect("registry")
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_probe_holds_a_lease_that_a_departed_client_hands_back_and_success_closes() {
    let running = registry().await;
    let operator = Api::new(&running.url(), Some(OPERATOR)).expect("api");
    let policy: BreakerConfig = serde_json::from_value(serde_json::json!({
        "window": {"kind": "count", "size": 4},
        "minimum_calls": 4,
        "failure_rate_threshold": 50,
        "open": {"wait": "300ms", "jitter": 0},
        "half_open": {"permitted_calls": 1}
    }))
    .expect("policy");
    operator
        .put_policy("inventory", &policy)
        .await
        .expect("put policy");

    let a = inventory("inventory").await;
    let yaml = format!(
        "service: test\nlisteners:\n  - address: 127.0.0.1:0\nregistry:\n  mode: remote\n  \
         url: {}\n  report_interval: 100ms\nupstreams:\n  inventory:\n    endpoints: [{}]\n    \
         outlier: {{consecutive_failures: 0}}\n    breaker: {{minimum_calls: 1000}}\nroutes:\n  \
         - {{match: {{path_prefix: /items}}, upstream: inventory, retry: {{max_attempts: 1}}}}\n",
        running.url(),
        a.addr
    );
    let proxy = Harness::start_with_registry(&yaml, REPORTER).await;
    eventually("connected to the registry", || async {
        let health = proxy.health().await;
        (health["registry"]["connected"] == true).then_some(())
    })
    .await;
    // The policy governs the proxy's own breaker too (SPEC §9, see `fleet_policy.rs`), which
    // would trip before the fleet hears of it; disabled, it leaves this test the fleet's.
    eventually("the policy is applied locally", || async {
        (proxy.health().await["breakers"][0]["policy_version"] == 1).then_some(())
    })
    .await;
    levee_admin::AdminBackend::set_override(
        &proxy.proxy,
        "inventory",
        levee_admin::OperatorOverride::Disabled,
    )
    .expect("override");

    a.state.update(|b| b.fail_ratio = 1.0);
    eventually("the fleet breaker opens", || async {
        let _ = send(get(&proxy.url("/items/1"))).await;
        let view = operator.breaker("inventory").await.ok()?;
        (view.state == State::Open).then_some(())
    })
    .await;
    a.state.update(|b| {
        b.fail_ratio = 0.0;
        b.hang = true;
    });
    eventually("the fleet open wait ends and the proxy knows", || async {
        let view = operator.breaker("inventory").await.ok()?;
        let health = proxy.health().await;
        (view.open_until_ms.is_some_and(|t| t <= unix_ms())
            && health["breakers"][0]["fleet_state"] == "open")
            .then_some(())
    })
    .await;

    // A probe goes out with the only lease and hangs.
    let received = a.state.stats.received();
    let probe = tokio::spawn(send(get(&proxy.url("/items/1"))));
    eventually("the probe holds the fleet's lease", || async {
        let view = operator.breaker("inventory").await.ok()?;
        (view.state == State::HalfOpen && view.leased_probes == 1 && a.state.stats.in_flight() == 1)
            .then_some(())
    })
    .await;
    assert_eq!(a.state.stats.received(), received + 1);
    // Meanwhile nobody else may probe.
    let r = send(get(&proxy.url("/items/1"))).await;
    assert_eq!(
        r.json()["code"],
        "circuit_open",
        "no lease left: {}",
        r.text()
    );

    // The client goes away: the attempt is cancelled and the lease handed back.
    probe.abort();
    eventually("the lease is handed back", || async {
        let view = operator.breaker("inventory").await.ok()?;
        (view.state == State::HalfOpen && view.leased_probes == 0).then_some(())
    })
    .await;

    // The next call probes; it succeeds, which closes the fleet breaker everywhere.
    a.state.update(|b| b.hang = false);
    let r = eventually("a successful probe", || async {
        let r = send(get(&proxy.url("/items/1"))).await;
        (r.status == http::StatusCode::OK).then_some(r)
    })
    .await;
    assert_eq!(r.json()["id"], "1");
    eventually("the fleet breaker closes", || async {
        let view = operator.breaker("inventory").await.ok()?;
        let health = proxy.health().await;
        (view.state == State::Closed
            && health["breakers"][0]["state"] == "closed"
            && health["breakers"][0]["fleet_state"] == "closed")
            .then_some(())
    })
    .await;
    let metrics = send(get(&format!("http://{}/metrics", proxy.admin)))
        .await
        .text();
    // Into open from closed, or from the disabled local breaker when the fleet had no view
    // of the key yet.
    for (froms, to) in [
        (&["closed", "disabled"][..], "open"),
        (&["open"][..], "half_open"),
        (&["half_open"][..], "closed"),
    ] {
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("levee_breaker_transitions_total{")
                    && froms
                        .iter()
                        .any(|from| l
                            .contains(&format!("from=\"{from}\",to=\"{to}\",reason=\"fleet\"")))),
            "{froms:?} -> {to} (fleet):\n{metrics}"
        );
    }
    assert!(
        metrics.contains("outcome=\"cancelled\""),
        "the departed probe is counted cancelled:\n{metrics}"
    );
    drop(proxy);
    tokio::time::timeout(Duration::from_secs(10), running.stop())
        .await
        .expect("registry stops");
}
