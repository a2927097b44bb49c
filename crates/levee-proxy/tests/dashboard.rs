//! The admin dashboard against the real proxy library, its real admin listener and a real
//! embedded registry (in-process, loopback): the page and its headers, the event stream
//! (a snapshot first, then what an override changes), the token on every change, and the
//! degradation level and toggles round-tripping through the registry.

mod support;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use levee_proxy::{Fleet, Proxy, Server};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use support::*;

const TOKEN: &str = "dashboard-test-token";

/// A proxy with an embedded registry whose operator token is the admin token, as
/// `levee run` wires it.
struct Fixture {
    _proxy: Proxy,
    fleet: Fleet,
    admin: SocketAddr,
    server: Server,
    _upstream: inventory::Server,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Fixture {
    async fn start() -> Fixture {
        let upstream = inventory("inventory").await;
        let yaml = format!(
            "service: shop\nlisteners:\n  - address: 127.0.0.1:0\nregistry:\n  mode: embedded\n  \
             report_interval: 100ms\nupstreams:\n  inventory:\n    endpoints: [{}]\n    \
             breaker: {{minimum_calls: 1000, failure_rate_threshold: 40}}\n    \
             bulkhead: {{max_concurrent: 8}}\nroutes:\n  - {{name: items, match: {{path_prefix: /items}}, \
             upstream: inventory}}\n",
            upstream.addr
        );
        let config = levee_config::parse(&yaml, "dashboard.yaml").unwrap_or_else(|e| panic!("{e}"));
        let metrics = Arc::new(levee_telemetry::Metrics::new(&config.service));
        let listeners = levee_proxy::bind(&config).await.expect("bind");
        let fleet = Fleet::embedded(&config, Some(TOKEN))
            .await
            .expect("embedded registry");
        let proxy = Proxy::with_fleet(config, metrics, Some(fleet.clone())).expect("proxy");
        let server = Server::start(&proxy, listeners);
        let admin_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("admin bind");
        let admin = admin_listener.local_addr().expect("admin addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(levee_admin::serve(
            admin_listener,
            Arc::new(proxy.clone()),
            levee_admin::AdminAuth::with_token(TOKEN),
            stopped,
        ));
        let fixture = Fixture {
            _proxy: proxy,
            fleet,
            admin,
            server,
            _upstream: upstream,
            _stop: stop,
        };
        eventually("the embedded registry is connected", || async {
            let health = fixture.admin_get("/health").await.json();
            (health["registry"]["connected"] == true).then_some(())
        })
        .await;
        fixture
    }

    fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }

    async fn admin_get(&self, path: &str) -> Answer {
        send(get(&self.admin_url(path))).await
    }

    async fn admin_put(&self, path: &str, body: Value, token: Option<&str>) -> Answer {
        let mut request = request(Method::PUT, &self.admin_url(path), body.to_string());
        if let Some(token) = token {
            request.headers_mut().insert(
                http::header::AUTHORIZATION,
                format!("Bearer {token}").parse().expect("header"),
            );
        }
        send(request).await
    }
}

/// One server-sent event.
#[derive(Debug)]
struct SseEvent {
    event: String,
    data: String,
}

/// Reads `GET /api/events` as events.
struct EventReader {
    body: Incoming,
    buffer: String,
}

impl EventReader {
    async fn open(url: &str) -> (http::response::Parts, EventReader) {
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        let request = Request::get(url)
            .header("accept", "text/event-stream")
            .body(Full::new(Bytes::new()))
            .expect("request");
        let response = tokio::time::timeout(PATIENCE, client.request(request))
            .await
            .expect("answer in time")
            .expect("response");
        let (parts, body) = response.into_parts();
        (
            parts,
            EventReader {
                body,
                buffer: String::new(),
            },
        )
    }

    /// The next event (comments skipped), within [`PATIENCE`].
    async fn next(&mut self) -> SseEvent {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = SseEvent {
                    event: "message".into(),
                    data: String::new(),
                };
                let mut any = false;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event.event = v.trim().to_owned();
                        any = true;
                    } else if let Some(v) = line.strip_prefix("data:") {
                        event.data.push_str(v.strip_prefix(' ').unwrap_or(v));
                        any = true;
                    }
                }
                if any {
                    return event;
                }
                continue;
            }
            let frame = tokio::time::timeout(PATIENCE, self.body.frame())
                .await
                .expect("an event in time")
                .expect("the stream stays open")
                .expect("a readable frame");
            if let Ok(data) = frame.into_data() {
                self.buffer.push_str(&String::from_utf8_lossy(&data));
            }
        }
    }

    /// Reads events until `want` accepts one, within [`PATIENCE`] overall.
    async fn until<T>(&mut self, what: &str, mut want: impl FnMut(&SseEvent) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            let event = self.next().await;
            if let Some(found) = want(&event) {
                return found;
            }
        }
    }
}

fn breaker<'a>(snapshot: &'a Value, key: &str) -> &'a Value {
    snapshot["breakers"]
        .as_array()
        .expect("breakers")
        .iter()
        .find(|b| b["key"] == key)
        .unwrap_or_else(|| panic!("no breaker {key} in {snapshot}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_its_assets_are_served_with_strict_headers() {
    let f = Fixture::start().await;
    let home = f.admin_get("/").await;
    assert_eq!(home.status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(home.header("location"), Some("dashboard"));
    let page = f.admin_get("/dashboard").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let csp = page.header("content-security-policy").expect("a CSP");
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} missing from {csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert_eq!(page.header("cache-control"), Some("no-store"));
    let html = page.text();
    assert!(html.contains(r#"data-field="stream""#), "{html}");
    assert!(html.contains(r#"data-field="level""#), "{html}");
    assert!(!html.contains("<script>"), "no inline script");

    let script = f.admin_get("/dashboard/dashboard.js").await;
    assert_eq!(script.status, StatusCode::OK);
    assert_eq!(
        script.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert!(script.text().contains("EventSource"));
    let style = f.admin_get("/dashboard/dashboard.css").await;
    assert_eq!(style.status, StatusCode::OK);
    assert_eq!(
        style.header("content-type"),
        Some("text/css; charset=utf-8")
    );
    assert!(style.text().contains("prefers-color-scheme"));

    let snapshot = f.admin_get("/api/dashboard").await;
    assert_eq!(snapshot.status, StatusCode::OK);
    let s = snapshot.json();
    assert_eq!(s["service"], "shop");
    assert_eq!(s["mutations_enabled"], true);
    assert_eq!(s["registry"]["mode"], "embedded");
    let b = breaker(&s, "inventory");
    assert_eq!(b["state"], "closed");
    assert_eq!(b["failure_rate_threshold"], 40.0);
    assert_eq!(b["minimum_calls"], 1000);
    assert!(b["state_since_unix_ms"].as_u64().is_some(), "{b}");
    assert_eq!(s["bulkheads"][0]["partition"], "inventory");
    assert_eq!(s["bulkheads"][0]["limit"], 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_starts_with_a_snapshot_then_follows_an_override() {
    let f = Fixture::start().await;
    // Traffic so that the counters have something in them.
    let ok = send(get(&format!("http://{}/items/1", f.proxy_addr()))).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());

    let (parts, mut events) = EventReader::open(&f.admin_url("/api/events")).await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(
        parts
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    let first = events.next().await;
    assert_eq!(first.event, "snapshot", "the first event: {first:?}");
    let snapshot: Value = serde_json::from_str(&first.data).expect("snapshot JSON");
    assert_eq!(breaker(&snapshot, "inventory")["state"], "closed");
    let calls = &snapshot["counters"]["levee_calls_total"];
    assert!(
        calls
            .as_array()
            .is_some_and(|c| c.iter().any(|s| s["labels"]["endpoint"] == "inventory")),
        "{calls}"
    );

    let forced = f
        .admin_put(
            "/api/breakers/inventory/override",
            json!({"state": "forced_open"}),
            Some(TOKEN),
        )
        .await;
    assert_eq!(forced.status, StatusCode::OK, "{}", forced.text());

    let transition = events
        .until("the forced_open transition", |e| {
            (e.event == "transition").then(|| serde_json::from_str::<Value>(&e.data).expect("JSON"))
        })
        .await;
    assert_eq!(transition["key"], "inventory");
    assert_eq!(transition["from"], "closed");
    assert_eq!(transition["to"], "forced_open");
    assert_eq!(transition["reason"], "operator");
    assert!(transition["seq"].as_u64().is_some_and(|s| s >= 1));

    let after = events
        .until("a snapshot with the breaker forced open", |e| {
            if e.event != "snapshot" {
                return None;
            }
            let s: Value = serde_json::from_str(&e.data).expect("JSON");
            (breaker(&s, "inventory")["state"] == "forced_open").then_some(s)
        })
        .await;
    let feed = after["transitions"].as_array().expect("transitions");
    assert!(
        feed.iter()
            .any(|t| t["key"] == "inventory" && t["to"] == "forced_open"),
        "{feed:?}"
    );

    // Clearing it shows up the same way.
    let cleared = f
        .admin_put(
            "/api/breakers/inventory/override",
            json!({"state": "none"}),
            Some(TOKEN),
        )
        .await;
    assert_eq!(cleared.status, StatusCode::OK, "{}", cleared.text());
    events
        .until("the breaker closed again", |e| {
            if e.event != "snapshot" {
                return None;
            }
            let s: Value = serde_json::from_str(&e.data).expect("JSON");
            (breaker(&s, "inventory")["state"] == "closed").then_some(())
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_needs_the_admin_token() {
    let f = Fixture::start().await;
    let changes = [
        ("/api/degradation", json!({"level": 1})),
        ("/api/toggles/new-checkout", json!({"state": "on"})),
        (
            "/api/breakers/inventory/override",
            json!({"state": "forced_open"}),
        ),
    ];
    for (path, body) in &changes {
        for token in [None, Some("wrong-token")] {
            let r = f.admin_put(path, body.clone(), token).await;
            assert_eq!(
                r.status,
                StatusCode::UNAUTHORIZED,
                "{path} {token:?}: {}",
                r.text()
            );
            assert_eq!(
                r.header("content-type"),
                Some("application/problem+json"),
                "{path}"
            );
            assert!(r.header("www-authenticate").is_some(), "{path}");
        }
    }
    // Nothing changed.
    let level = f.admin_get("/api/degradation").await;
    assert_eq!(level.status, StatusCode::OK, "{}", level.text());
    assert_eq!(level.json()["operator_level"], 0);
    let toggles = f.admin_get("/api/toggles").await.json();
    assert_eq!(toggles["toggles"], json!({}));
    let s = f.admin_get("/api/dashboard").await.json();
    assert_eq!(breaker(&s, "inventory")["state"], "closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn degradation_and_toggles_round_trip_through_the_embedded_registry() {
    let f = Fixture::start().await;
    let set = f
        .admin_put("/api/degradation", json!({"level": 2}), Some(TOKEN))
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.text());
    assert_eq!(set.json()["operator_level"], 2);
    assert_eq!(set.json()["level"], 2);
    let read = f.admin_get("/api/degradation").await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.json()["operator_level"], 2);
    // The proxy acts on it once the watch brings it back, and the dashboard shows it.
    eventually("the proxy and its dashboard see level 2", || async {
        let s = f.admin_get("/api/dashboard").await.json();
        (s["degradation_level"] == 2 && s["fleet"]["degradation"]["operator_level"] == 2)
            .then_some(())
    })
    .await;

    let toggle = f
        .admin_put(
            "/api/toggles/new-checkout",
            json!({"state": "percent", "percent": 25}),
            Some(TOKEN),
        )
        .await;
    assert_eq!(toggle.status, StatusCode::OK, "{}", toggle.text());
    assert_eq!(toggle.json()["state"], "percent");
    assert_eq!(toggle.json()["percent"], 25);
    let version = toggle.json()["version"].as_u64().expect("version");
    let list = f.admin_get("/api/toggles").await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(
        list.json()["toggles"]["new-checkout"],
        json!({"state": "percent", "percent": 25, "version": version})
    );
    eventually("the dashboard shows the toggle", || async {
        let s = f.admin_get("/api/dashboard").await.json();
        (s["fleet"]["toggles"]["new-checkout"]["state"] == "percent").then_some(())
    })
    .await;

    // Bad input is refused with a reason, and changes nothing.
    for (path, body) in [
        ("/api/degradation", json!({"level": 7})),
        ("/api/degradation", json!({"level": "high"})),
        ("/api/toggles/new-checkout", json!({"state": "maybe"})),
        (
            "/api/toggles/new-checkout",
            json!({"state": "percent", "percent": 101}),
        ),
    ] {
        let r = f.admin_put(path, body.clone(), Some(TOKEN)).await;
        assert_eq!(
            r.status,
            StatusCode::BAD_REQUEST,
            "{path} {body}: {}",
            r.text()
        );
        assert!(!r.json()["detail"].as_str().unwrap_or("").is_empty());
    }
    assert_eq!(
        f.admin_get("/api/degradation").await.json()["operator_level"],
        2
    );

    // Back to normal.
    let reset = f
        .admin_put("/api/degradation", json!({"level": 0}), Some(TOKEN))
        .await;
    assert_eq!(reset.json()["level"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_registry_is_a_503_that_says_so() {
    let f = Fixture::start().await;
    // Stops the embedded registry: its port no longer answers.
    f.fleet.shutdown().await;
    for r in [
        f.admin_put("/api/degradation", json!({"level": 1}), Some(TOKEN))
            .await,
        f.admin_get("/api/toggles").await,
    ] {
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
        let detail = r.json()["detail"].as_str().unwrap_or("").to_owned();
        assert!(detail.contains("cannot be reached"), "{detail}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_registry_the_fleet_controls_say_there_is_none() {
    let upstream = inventory("inventory").await;
    let yaml = config(
        &format!("  inventory:\n    endpoints: [{}]", upstream.addr),
        "  - {match: {path_prefix: /items}, upstream: inventory}",
    );
    let h = Harness::start(&yaml).await;
    let r = send(get(&format!("http://{}/api/degradation", h.admin))).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
    assert!(r.text().contains("no registry"), "{}", r.text());
    let s = send(get(&format!("http://{}/api/dashboard", h.admin)))
        .await
        .json();
    assert_eq!(s["registry"], Value::Null);
    assert_eq!(s["fleet"], Value::Null);
    assert_eq!(breaker(&s, "inventory")["state"], "closed");
}

impl Fixture {
    fn proxy_addr(&self) -> SocketAddr {
        self.server.addresses()[0].1
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breakers_of_other_services_in_the_fleet_are_shown() {
    let f = Fixture::start().await;
    // Another service's breaker, `pricing`, as the Go storefront's would be: an operator
    // forces it open at the registry, which then holds it for the whole fleet.
    let registry = f.fleet.url().to_string();
    let mut request = request(
        Method::PUT,
        &format!("{registry}/v1/breakers/pricing/override"),
        json!({"override": "forced_open"}).to_string(),
    );
    request.headers_mut().insert(
        http::header::AUTHORIZATION,
        format!("Bearer {TOKEN}").parse().expect("header"),
    );
    let set = send(request).await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.text());
    let breaker = eventually(
        "the dashboard shows the fleet breaker `pricing`",
        || async {
            let s = f.admin_get("/api/dashboard").await.json();
            let b = s["fleet"]["breakers"]["pricing"].clone();
            (b["state"] == "forced_open").then_some(b)
        },
    )
    .await;
    assert_eq!(breaker["last_transition"]["to"], "forced_open");
    assert_eq!(breaker["last_transition"]["reason"], "operator");
    // It is not one of this instance's own breakers.
    let s = f.admin_get("/api/dashboard").await.json();
    let local: Vec<&str> = s["breakers"]
        .as_array()
        .expect("breakers")
        .iter()
        .filter_map(|b| b["key"].as_str())
        .collect();
    assert_eq!(local, ["inventory"]);
}
