//! Applying a new config: routes swap atomically, state of unchanged keys carries over, and a
//! request in flight finishes on the config it started with.

mod support;

use http::StatusCode;
use support::*;

fn yaml(a: &inventory::Server, extra_route: &str) -> String {
    config(
        &format!(
            "  inventory:\n    endpoints: [{}]\n    breaker: {{window: {{kind: count, size: 2}}, minimum_calls: 2, open: {{wait: 30s}}}}\n",
            a.addr
        ),
        &format!("  - {{match: {{path_prefix: /items}}, upstream: inventory, retry: {{max_attempts: 1}}}}\n{extra_route}"),
    )
}

#[tokio::test]
async fn a_reload_keeps_the_breaker_state_of_unchanged_keys() {
    let a = inventory("inventory").await;
    let proxy = Harness::start(&yaml(&a, "")).await;
    a.state.update(|b| b.fail_ratio = 1.0);
    for _ in 0..2 {
        send(get(&proxy.url("/items/1"))).await;
    }
    assert_eq!(proxy.health().await["breakers"][0]["state"], "open");

    let next = levee_config::parse(
        &yaml(&a, "  - {match: {path: /echo}, upstream: inventory}\n"),
        "test.yaml",
    )
    .expect("valid");
    proxy.proxy.apply(next).expect("applied");
    let health = proxy.health().await;
    assert_eq!(health["config"]["generation"], 2);
    assert_eq!(
        health["breakers"][0]["state"], "open",
        "same key, same config: kept"
    );
    let r = send(get(&proxy.url("/items/1"))).await;
    assert_eq!(r.json()["code"], "circuit_open");
    // The new route is live.
    let r = send(request(http::Method::POST, &proxy.url("/echo"), "x")).await;
    assert_eq!(
        r.json()["code"],
        "circuit_open",
        "routed, to the same open breaker"
    );
}

#[tokio::test]
async fn a_request_in_flight_finishes_on_its_own_config_across_a_reload() {
    let a = inventory("inventory").await;
    let proxy = Harness::start(&yaml(&a, "")).await;
    let mut slow = get(&proxy.url("/items/1"));
    slow.headers_mut()
        .insert("x-inventory-delay-ms", "300".parse().expect("value"));
    let in_flight = tokio::spawn(send(slow));
    eventually("the request reached the upstream", || async {
        (a.state.stats.in_flight() == 1).then_some(())
    })
    .await;
    // The new config no longer has the route the request is on.
    let next = config(
        &format!("  inventory: {{endpoints: [{}]}}\n", a.addr),
        "  - {match: {path: /echo}, upstream: inventory}\n",
    );
    proxy
        .proxy
        .apply(levee_config::parse(&next, "test.yaml").expect("valid"))
        .expect("applied");
    let answer = in_flight.await.expect("task");
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        send(get(&proxy.url("/items/1"))).await.status,
        StatusCode::NOT_FOUND
    );
}
