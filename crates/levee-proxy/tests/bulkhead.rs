//! Overload: the bulkhead sheds sheddable calls before critical ones.

mod support;

use http::StatusCode;
use support::*;

fn hanging(url: &str, class: &str) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    let mut r = get(url);
    r.headers_mut()
        .insert("x-inventory-hang", "1".parse().expect("value"));
    r.headers_mut()
        .insert("levee-criticality", class.parse().expect("value"));
    r
}

#[tokio::test]
async fn under_overload_sheddable_calls_are_shed_before_critical_ones() {
    let a = inventory("inventory").await;
    // max_concurrent 4 with the default shares: sheddable calls fill 2 slots, critical 4.
    let yaml = config(
        &format!(
            "  inventory:\n    endpoints: [{}]\n    bulkhead: {{max_concurrent: 4}}\n",
            a.addr
        ),
        "  - {match: {path_prefix: /items}, upstream: inventory}\n",
    );
    let proxy = Harness::start(&yaml).await;
    let url = proxy.url("/items/1");
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(tokio::spawn(send(hanging(&url, "sheddable"))));
    }
    eventually("two sheddable calls in flight", || async {
        (a.state.stats.in_flight() == 2).then_some(())
    })
    .await;

    let shed = send(hanging(&url, "sheddable")).await;
    assert_eq!(shed.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(shed.json()["code"], "bulkhead_full");

    for expected in [3, 4] {
        held.push(tokio::spawn(send(hanging(&url, "critical"))));
        eventually("a critical call admitted", || async {
            (a.state.stats.in_flight() == expected).then_some(())
        })
        .await;
    }
    let full = send(hanging(&url, "critical")).await;
    assert_eq!(full.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(full.json()["code"], "bulkhead_full");

    let health = proxy.health().await;
    let bulkhead = &health["bulkheads"][0];
    assert_eq!(bulkhead["partition"], "inventory");
    assert_eq!(bulkhead["in_flight"], 4);

    let metrics = send(get(&format!("http://{}/metrics", proxy.admin)))
        .await
        .text();
    for class in ["sheddable", "critical"] {
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("levee_bulkhead_rejections_total{")
                    && l.contains(&format!("criticality=\"{class}\""))
                    && l.ends_with(" 1")),
            "{class}: {metrics}"
        );
    }
    for task in held {
        task.abort();
    }
    eventually("slots freed when the clients go away", || async {
        (proxy.proxy.in_flight() == 0).then_some(())
    })
    .await;
    let health = proxy.health().await;
    assert_eq!(health["bulkheads"][0]["in_flight"], 0);
}
