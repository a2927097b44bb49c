//! The admin API over a real TCP listener, against a backend made of real levee-core breakers
//! and bulkheads and real telemetry (a fixture, not a mock: overrides change actual breakers).

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use levee_admin::*;
use levee_core::breaker::{BreakerConfig, CircuitBreaker, OpenConfig, State};
use levee_core::bulkhead::{Acquire, Bulkhead, BulkheadConfig};
use levee_core::random::SplitMix64;
use levee_core::time::ManualClock;
use levee_core::{Clock, Criticality, Outcome, Timestamp};
use levee_telemetry::Metrics;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const TOKEN: &str = "correct-horse-battery-staple";

struct Fixture {
    clock: ManualClock,
    breakers: BTreeMap<String, CircuitBreaker>,
    bulkheads: BTreeMap<String, Bulkhead>,
    readiness: Mutex<Readiness>,
    metrics: Metrics,
}

impl Fixture {
    fn new() -> Fixture {
        let config = BreakerConfig {
            minimum_calls: 2,
            open: OpenConfig {
                jitter: 0.0,
                ..OpenConfig::default()
            },
            ..BreakerConfig::default()
        };
        let metrics = Metrics::new("checkout");
        let mut breakers = BTreeMap::new();
        for key in ["inventory", "pricing", "inventory/lookup"] {
            let breaker = CircuitBreaker::new(key, config.clone(), Arc::new(SplitMix64::new(1)))
                .expect("valid breaker config");
            metrics.breaker_state(key, breaker.state());
            breakers.insert(key.to_owned(), breaker);
        }
        let mut bulkheads = BTreeMap::new();
        bulkheads.insert(
            "inventory".to_owned(),
            Bulkhead::new(BulkheadConfig {
                max_concurrent: 4,
                max_queue: 2,
                max_wait: Duration::from_millis(50),
                ..BulkheadConfig::default()
            })
            .expect("valid bulkhead config"),
        );
        Fixture {
            clock: ManualClock::new(Timestamp::from_nanos(1_000_000_000_000)),
            breakers,
            bulkheads,
            readiness: Mutex::new(Readiness::Ready),
            metrics,
        }
    }

    fn breaker(&self, key: &str) -> &CircuitBreaker {
        &self.breakers[key]
    }

    /// Two failures: with `minimum_calls: 2` the breaker opens.
    fn trip(&self, key: &str) {
        let now = self.clock.now();
        for _ in 0..2 {
            let permit = self.breaker(key).acquire(now).result.expect("permitted");
            if let Some(t) =
                self.breaker(key)
                    .record(permit, Outcome::Failure, Duration::from_millis(1), now)
            {
                self.metrics.breaker_transition(&t);
            }
        }
    }

    fn set_readiness(&self, r: Readiness) {
        *self.readiness.lock().expect("lock") = r;
    }
}

impl AdminBackend for Fixture {
    fn readiness(&self) -> Readiness {
        self.readiness.lock().expect("lock").clone()
    }

    fn health(&self) -> HealthReport {
        HealthReport {
            service: "checkout".into(),
            degradation_level: 0,
            upstreams: vec![UpstreamHealth::new(
                "inventory",
                vec![
                    EndpointHealth {
                        address: "127.0.0.1:7001".into(),
                        health: EndpointStatus::Healthy,
                        ejected: false,
                        ejection_remaining_ms: None,
                        ejections: 0,
                        weight: 1.0,
                        in_flight: 3,
                    },
                    EndpointHealth {
                        address: "127.0.0.1:7002".into(),
                        health: EndpointStatus::Healthy,
                        ejected: true,
                        ejection_remaining_ms: Some(30_000),
                        ejections: 1,
                        weight: 0.1,
                        in_flight: 0,
                    },
                ],
            )],
            config: ConfigStatus {
                path: Some("levee.yaml".into()),
                generation: 1,
                last_reload: Some(ReloadAttempt {
                    ok: false,
                    at_unix_ms: 1_700_000_000_000,
                    error: Some(
                        "levee.yaml:7:5: unknown key `breakr`: did you mean `breaker`?".into(),
                    ),
                }),
            },
            registry: Some(RegistryStatus {
                mode: "embedded".into(),
                connected: true,
                fleet_state_age_ms: Some(120),
                stale: false,
                url: Some("http://127.0.0.1:9911".into()),
            }),
        }
    }

    fn metrics(&self) -> String {
        self.metrics.encode()
    }

    fn breakers(&self) -> Vec<BreakerView> {
        let now = self.clock.now();
        self.breakers
            .values()
            .map(|b| BreakerView::of(b, now))
            .collect()
    }

    fn bulkheads(&self) -> Vec<BulkheadView> {
        self.bulkheads
            .iter()
            .map(|(partition, b)| BulkheadView {
                partition: partition.clone(),
                snapshot: b.snapshot(),
            })
            .collect()
    }

    fn set_override(
        &self,
        key: &str,
        value: OperatorOverride,
    ) -> Result<OverrideResult, AdminError> {
        let breaker = self
            .breakers
            .get(key)
            .ok_or_else(|| AdminError::UnknownBreaker { key: key.into() })?;
        let now = self.clock.now();
        let transition = apply_override(breaker, value, now);
        if let Some(t) = &transition {
            self.metrics.breaker_transition(t);
        }
        Ok(OverrideResult {
            breaker: BreakerView::of(breaker, now),
            applied: value,
            transition: transition.as_ref().map(TransitionView::from),
        })
    }
}

struct Server {
    addr: SocketAddr,
    fixture: Arc<Fixture>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    client: Client<HttpConnector, Full<Bytes>>,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    fn text(&self) -> String {
        String::from_utf8(self.body.to_vec()).expect("utf-8 body")
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
    }

    /// Asserts a problem+json answer with `status` and `type` `urn:levee:admin:<code>`.
    fn assert_problem(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status.as_u16(), status, "{}", self.text());
        assert_eq!(self.header("content-type"), "application/problem+json");
        let v = self.json();
        assert_eq!(v["status"], status);
        assert_eq!(v["code"], code);
        assert_eq!(v["type"], format!("urn:levee:admin:{code}"));
        assert!(v["title"].is_string() && v["detail"].is_string(), "{v}");
        v
    }
}

impl Server {
    async fn start(auth: AdminAuth) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let fixture = Arc::new(Fixture::new());
        let (stop, stopped) = oneshot::channel::<()>();
        let backend: Arc<dyn AdminBackend> = fixture.clone();
        let task = tokio::spawn(serve(listener, backend, auth, stopped));
        Server {
            addr,
            fixture,
            stop: Some(stop),
            task,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    async fn with_token() -> Server {
        Server::start(AdminAuth::with_token(TOKEN)).await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{}", self.addr, path));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let request = request.body(Full::new(body.into())).expect("request");
        let response = self.client.request(request).await.expect("response");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, &[], Bytes::new()).await
    }

    async fn override_(&self, key: &str, body: &str) -> Answer {
        let auth = format!("Bearer {TOKEN}");
        self.send(
            Method::PUT,
            &format!("/api/breakers/{key}/override"),
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            body.to_owned(),
        )
        .await
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await.expect("server task");
    }
}

#[tokio::test]
async fn livez_and_readyz_follow_readiness() {
    let server = Server::with_token().await;
    let live = server.get("/livez").await;
    assert_eq!(live.status, StatusCode::OK);
    assert_eq!(live.text(), "ok");
    assert_eq!(live.header("cache-control"), "no-store");

    let ready = server.get("/readyz").await;
    assert_eq!(
        (ready.status, ready.text()),
        (StatusCode::OK, "ready".into())
    );

    server.fixture.set_readiness(Readiness::Draining);
    let draining = server.get("/readyz").await;
    assert_eq!(draining.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(draining.text(), "draining");
    assert_eq!(server.get("/livez").await.status, StatusCode::OK);

    server
        .fixture
        .set_readiness(Readiness::NotReady("config not loaded".into()));
    let starting = server.get("/readyz").await;
    assert_eq!(starting.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(starting.text(), "not ready: config not loaded");
    server.stop().await;
}

#[tokio::test]
async fn health_reports_upstreams_breakers_bulkheads_and_config() {
    let server = Server::with_token().await;
    let healthy = server.get("/health").await;
    assert_eq!(healthy.status, StatusCode::OK);
    assert_eq!(healthy.header("content-type"), "application/json");
    let v = healthy.json();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["service"], "checkout");
    assert_eq!(v["degradation_level"], 0);
    let upstream = &v["upstreams"][0];
    assert_eq!(upstream["name"], "inventory");
    assert_eq!(upstream["available_endpoints"], 1);
    assert_eq!(upstream["endpoints"][1]["ejected"], true);
    assert_eq!(upstream["endpoints"][1]["ejection_remaining_ms"], 30_000);
    assert_eq!(upstream["endpoints"][0]["health"], "healthy");
    assert_eq!(v["config"]["last_reload"]["ok"], false);
    assert!(v["config"]["last_reload"]["error"]
        .as_str()
        .is_some_and(|e| e.contains("levee.yaml:7:5")));
    assert_eq!(v["registry"]["connected"], true);
    let keys: Vec<&str> = v["breakers"]
        .as_array()
        .expect("breakers array")
        .iter()
        .filter_map(|b| b["key"].as_str())
        .collect();
    assert_eq!(keys, ["inventory", "inventory/lookup", "pricing"]);
    assert_eq!(v["bulkheads"][0]["partition"], "inventory");
    assert_eq!(v["bulkheads"][0]["limit"], 4);

    server.fixture.trip("pricing");
    let v = server.get("/health").await.json();
    assert_eq!(v["status"], "degraded");
    let pricing = v["breakers"]
        .as_array()
        .and_then(|a| a.iter().find(|b| b["key"] == "pricing"))
        .expect("pricing breaker");
    assert_eq!(pricing["state"], "open");
    assert_eq!(pricing["open_remaining_ms"], 5000);
    assert_eq!(pricing["window"]["failure_rate"], 100.0);

    server.fixture.set_readiness(Readiness::Draining);
    let v = server.get("/health").await;
    assert_eq!(v.status, StatusCode::OK, "health is a report, not a probe");
    assert_eq!(v.json()["status"], "draining");
    server.stop().await;
}

#[tokio::test]
async fn metrics_are_openmetrics_text_with_spec_names() {
    let server = Server::with_token().await;
    server.fixture.trip("inventory");
    let m = server.get("/metrics").await;
    assert_eq!(m.status, StatusCode::OK);
    assert_eq!(
        m.header("content-type"),
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let text = m.text();
    assert!(
        text.contains(
            r#"levee_breaker_state{service="checkout",language="rust",endpoint="inventory",state="open"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains(r#"levee_breaker_transitions_total{service="checkout",language="rust",endpoint="inventory",from="closed",to="open",reason="failure_rate"} 1"#), "{text}");
    assert!(text.ends_with("# EOF\n"));
    server.stop().await;
}

#[tokio::test]
async fn breaker_and_bulkhead_lists() {
    let server = Server::with_token().await;
    let bulkhead = &server.fixture.bulkheads["inventory"];
    let held = bulkhead.try_acquire(Criticality::Critical, Timestamp::from_nanos(1));
    assert!(matches!(held, Acquire::Permitted(_)));

    let breakers = server.get("/api/breakers").await;
    assert_eq!(breakers.status, StatusCode::OK);
    let v = breakers.json();
    let first = &v["breakers"][0];
    assert_eq!(first["key"], "inventory");
    assert_eq!(first["state"], "closed");
    assert_eq!(first["mode"], "enforce");
    assert_eq!(first["window"]["counted"], 0);
    assert_eq!(first["window"]["failure_rate"], Value::Null);
    assert_eq!(first["open_remaining_ms"], Value::Null);
    assert_eq!(first["fleet_state"], Value::Null);

    let one = server.get("/api/breakers/pricing").await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.json()["key"], "pricing");
    server
        .get("/api/breakers/nope")
        .await
        .assert_problem(404, "unknown_breaker");

    let v = server.get("/api/bulkheads").await.json();
    assert_eq!(
        v["bulkheads"][0],
        json!({"partition": "inventory", "limit": 4, "algorithm": null, "in_flight": 1,
               "queue_depth": 0, "max_queue": 2,
               "class_limits": {"critical": 4, "standard": 3, "sheddable": 2},
               "waiting": {"critical": 0, "standard": 0, "sheddable": 0}})
    );
    drop(held);
    server.stop().await;
}

#[tokio::test]
async fn overrides_are_refused_with_403_when_no_token_is_configured() {
    let server = Server::start(AdminAuth::not_configured("LEVEE_ADMIN_TOKEN")).await;
    let answer = server
        .override_("inventory", r#"{"state": "forced_open"}"#)
        .await;
    let v = answer.assert_problem(403, "admin_token_not_configured");
    let detail = v["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("LEVEE_ADMIN_TOKEN"), "{detail}");
    assert!(detail.contains("token_env"), "{detail}");
    assert_eq!(server.fixture.breaker("inventory").state(), State::Closed);
    // Reads still work without a token.
    assert_eq!(server.get("/api/breakers").await.status, StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn overrides_need_the_right_bearer_token() {
    let server = Server::with_token().await;
    let body = r#"{"state": "forced_open"}"#;
    let path = "/api/breakers/inventory/override";
    for (headers, invalid_token) in [
        (vec![], false),
        (vec![("authorization", "Basic Zm9vOmJhcg==")], false),
        (vec![("authorization", "Bearer wrong")], true),
        (
            vec![("authorization", "Bearer correct-horse-battery-stapl")],
            true,
        ),
        (
            vec![("authorization", "Bearer correct-horse-battery-staple2")],
            true,
        ),
    ] {
        let answer = server.send(Method::PUT, path, &headers, body).await;
        answer.assert_problem(401, "unauthorized");
        let challenge = answer.header("www-authenticate");
        assert!(challenge.starts_with("Bearer realm=\"levee-admin\""));
        assert_eq!(
            challenge.contains("invalid_token"),
            invalid_token,
            "{headers:?}"
        );
    }
    assert_eq!(server.fixture.breaker("inventory").state(), State::Closed);
    let lower = server
        .send(
            Method::POST,
            path,
            &[("authorization", &format!("bearer {TOKEN}"))],
            body,
        )
        .await;
    assert_eq!(lower.status, StatusCode::OK, "{}", lower.text());
    assert_eq!(
        server.fixture.breaker("inventory").state(),
        State::ForcedOpen
    );
    server.stop().await;
}

#[tokio::test]
async fn forced_open_then_none_changes_the_real_breaker_and_its_metrics() {
    let server = Server::with_token().await;
    let answer = server
        .override_("inventory", r#"{"state": "forced_open"}"#)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let v = answer.json();
    assert_eq!(v["override"], "forced_open");
    assert_eq!(v["breaker"]["key"], "inventory");
    assert_eq!(v["breaker"]["state"], "forced_open");
    assert_eq!(
        v["transition"],
        json!({"key": "inventory", "from": "closed", "to": "forced_open", "reason": "operator"})
    );
    let breaker = server.fixture.breaker("inventory");
    assert!(breaker.acquire(server.fixture.clock.now()).result.is_err());
    let text = server.get("/metrics").await.text();
    assert!(
        text.contains(r#"endpoint="inventory",state="forced_open"} 1"#),
        "{text}"
    );

    // The same override again changes nothing.
    let again = server
        .override_("inventory", r#"{"state": "forced_open"}"#)
        .await
        .json();
    assert_eq!(again["transition"], Value::Null);

    let cleared = server
        .override_("inventory", r#"{"state": "none"}"#)
        .await
        .json();
    assert_eq!(cleared["breaker"]["state"], "closed");
    assert_eq!(cleared["transition"]["to"], "closed");
    assert!(breaker.acquire(server.fixture.clock.now()).result.is_ok());

    let disabled = server
        .override_("pricing", r#"{"state": "disabled"}"#)
        .await
        .json();
    assert_eq!(disabled["breaker"]["state"], "disabled");
    server.fixture.trip("pricing");
    assert_eq!(server.fixture.breaker("pricing").state(), State::Disabled);
    server.stop().await;
}

#[tokio::test]
async fn observe_is_a_mode_a_tripped_breaker_stops_rejecting() {
    let server = Server::with_token().await;
    let fixture = &server.fixture;
    fixture.trip("pricing");
    assert!(fixture
        .breaker("pricing")
        .acquire(fixture.clock.now())
        .result
        .is_err());

    let v = server
        .override_("pricing", r#"{"state": "observe"}"#)
        .await
        .json();
    assert_eq!(v["breaker"]["mode"], "observe");
    assert_eq!(
        v["breaker"]["state"], "open",
        "observe keeps the state machine"
    );
    assert_eq!(v["transition"], Value::Null);
    let permit = fixture
        .breaker("pricing")
        .acquire(fixture.clock.now())
        .result
        .expect("observe mode never rejects");
    assert!(permit.shadow_rejected());

    // forced_open switches back to enforce, or it would reject nothing.
    let v = server
        .override_("pricing", r#"{"state": "forced_open"}"#)
        .await
        .json();
    assert_eq!(v["breaker"]["mode"], "enforce");
    assert!(fixture
        .breaker("pricing")
        .acquire(fixture.clock.now())
        .result
        .is_err());

    // observe from forced_open: back to closed, observing.
    let v = server
        .override_("pricing", r#"{"state": "observe"}"#)
        .await
        .json();
    assert_eq!(v["breaker"]["state"], "closed");
    assert_eq!(v["breaker"]["mode"], "observe");
    assert_eq!(v["transition"]["from"], "forced_open");

    // none returns to the configured mode (enforce).
    let v = server
        .override_("pricing", r#"{"state": "none"}"#)
        .await
        .json();
    assert_eq!(v["breaker"]["mode"], "enforce");
    server.stop().await;
}

#[tokio::test]
async fn bad_keys_bodies_and_sizes_are_problems() {
    let server = Server::with_token().await;
    server
        .override_("nope", r#"{"state": "forced_open"}"#)
        .await
        .assert_problem(404, "unknown_breaker");
    for body in [
        "",
        "{",
        r#"{"state": "open"}"#,
        r#"{"state": "forced_open", "for": "5m"}"#,
        r#"{"mode": "observe"}"#,
        "\u{0}\u{ff}",
    ] {
        let v = server
            .override_("inventory", body)
            .await
            .assert_problem(400, "bad_request");
        assert!(
            v["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("forced_open"),
            "the detail shows a valid body: {v}"
        );
    }
    let huge = format!(
        r#"{{"state": "forced_open", "pad": "{}"}}"#,
        "x".repeat(64 * 1024)
    );
    server
        .override_("inventory", &huge)
        .await
        .assert_problem(413, "payload_too_large");
    assert_eq!(server.fixture.breaker("inventory").state(), State::Closed);
    server.stop().await;
}

#[tokio::test]
async fn endpoint_keys_with_slashes_work_raw_or_percent_encoded() {
    let server = Server::with_token().await;
    let v = server
        .override_("inventory/lookup", r#"{"state": "forced_open"}"#)
        .await
        .json();
    assert_eq!(v["breaker"]["key"], "inventory/lookup");
    assert_eq!(
        server.fixture.breaker("inventory/lookup").state(),
        State::ForcedOpen
    );
    assert_eq!(server.fixture.breaker("inventory").state(), State::Closed);
    let v = server
        .override_("inventory%2Flookup", r#"{"state": "none"}"#)
        .await
        .json();
    assert_eq!(v["breaker"]["state"], "closed");
    let one = server.get("/api/breakers/inventory%2Flookup").await;
    assert_eq!(one.json()["key"], "inventory/lookup");
    server.stop().await;
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let server = Server::with_token().await;
    server.get("/nope").await.assert_problem(404, "not_found");
    let wrong = server
        .send(Method::DELETE, "/api/breakers", &[], Bytes::new())
        .await;
    wrong.assert_problem(405, "method_not_allowed");
    let get_override = server.get("/api/breakers/inventory/override").await;
    get_override.assert_problem(405, "method_not_allowed");
    assert_eq!(get_override.header("allow"), "PUT, POST");
    let auth = format!("Bearer {TOKEN}");
    server
        .send(
            Method::PUT,
            "/api/breakers/inventory",
            &[("authorization", &auth)],
            r#"{"state": "none"}"#,
        )
        .await
        .assert_problem(404, "not_found");
    server.stop().await;
}

#[tokio::test]
async fn shutdown_stops_the_listener() {
    let server = Server::with_token().await;
    assert_eq!(server.get("/livez").await.status, StatusCode::OK);
    let addr = server.addr;
    server.stop().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener is closed once serve returns"
    );
}
