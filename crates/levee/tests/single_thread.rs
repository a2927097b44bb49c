//! `levee run --threads 1`: the single-threaded runtime (what the benchmarks and a one-core
//! sidecar run) serves concurrent clients, and the access log — written in batches — has one
//! line for every request, the last ones included, once the process has exited on SIGTERM.

mod support;

use http::StatusCode;
use std::collections::HashMap;
use support::*;

const CLIENTS: usize = 4;
const REQUESTS_PER_CLIENT: usize = 30;

fn config(upstream: &inventory::Server) -> String {
    format!(
        "service: single
listeners:
  - address: 127.0.0.1:0
admin:
  address: 127.0.0.1:0
drain: {{delay: 0s, timeout: 5s}}
upstreams:
  inventory:
    endpoints: [{addr}]
    bulkhead: {{max_concurrent: 64}}
routes:
  - name: items
    match: {{path_prefix: /items}}
    upstream: inventory
    retry: {{max_attempts: 2}}
",
        addr = upstream.addr
    )
}

/// A W3C trace id of our own for request `n` of `client`, so its log line can be found (never
/// all zeros, which W3C calls invalid and Levee replaces).
fn trace_id(client: usize, n: usize) -> String {
    format!("{:016x}{:016x}", client + 1, n + 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_thread_serves_concurrent_clients_and_logs_every_request_before_exiting() {
    let upstream = inventory("single").await;
    let mut proxy = LeveeProcess::start_with_threads("single", &config(&upstream), 1);

    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let url = proxy.url("/items/7");
        clients.push(tokio::spawn(async move {
            for n in 0..REQUESTS_PER_CLIENT {
                let mut request = get(&url);
                let traceparent = format!("00-{}-00f067aa0ba902b7-01", trace_id(client, n));
                request
                    .headers_mut()
                    .insert("traceparent", traceparent.parse().expect("header"));
                let r = send(request).await;
                assert_eq!(r.status, StatusCode::OK, "{}", r.text());
                assert_eq!(r.json()["id"], "7");
            }
        }));
    }
    for client in clients {
        client.await.expect("client task");
    }
    assert_eq!(
        upstream.state.stats.completed(),
        (CLIENTS * REQUESTS_PER_CLIENT) as u64
    );

    // A line logged inside a request (not the access line) carries the request's fields too:
    // with JSON logs there is no tracing span, only the request's context.
    let mut bad = get(&proxy.url("/items/8"));
    let bad_trace = "0000000000000000000000000000beef";
    bad.headers_mut().insert(
        "traceparent",
        format!("00-{bad_trace}-00f067aa0ba902b7-01")
            .parse()
            .expect("header"),
    );
    bad.headers_mut()
        .insert("levee-criticality", "bogus".parse().expect("header"));
    let r = send(bad).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());

    let status = proxy.terminate();
    assert!(status.success(), "levee exited with {status}");

    let mut access: HashMap<String, serde_json::Value> = HashMap::new();
    let mut malformed = None;
    for line in proxy.log_text().lines() {
        let Ok(json) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if json["message"] == "malformed Levee header" {
            malformed = Some(json.clone());
        }
        if json["target"] == "levee::access" {
            let id = json["trace_id"].as_str().expect("trace_id").to_string();
            assert!(
                access.insert(id.clone(), json).is_none(),
                "two lines for {id}"
            );
        }
    }
    let malformed = malformed.expect("the malformed header was logged");
    assert_eq!(malformed["trace_id"], bad_trace, "{malformed}");
    assert_eq!(malformed["route"], "items", "{malformed}");
    assert_eq!(malformed["path"], "/items/8", "{malformed}");
    assert_eq!(malformed["span"], "request", "{malformed}");
    let bad_line = access.remove(bad_trace).expect("the 400's access line");
    assert_eq!(bad_line["status"], 400, "{bad_line}");
    assert_eq!(
        access.len(),
        CLIENTS * REQUESTS_PER_CLIENT,
        "one access line per request"
    );
    for client in 0..CLIENTS {
        for n in 0..REQUESTS_PER_CLIENT {
            let line = &access[&trace_id(client, n)];
            assert_eq!(line["status"], 200, "{line}");
            assert_eq!(line["outcome"], "success", "{line}");
            assert_eq!(line["route"], "items", "{line}");
            assert_eq!(line["upstream"], "inventory", "{line}");
            assert_eq!(line["path"], "/items/7", "{line}");
            assert_eq!(line["attempts"], 1, "{line}");
            assert_eq!(line["endpoint"], upstream.addr.to_string(), "{line}");
            assert_eq!(line["span"], "request", "{line}");
        }
    }
}
