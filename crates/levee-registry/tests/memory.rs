//! End-to-end tests of the registry on the memory backend: real `levee-registry` processes
//! (or an in-process server on a real socket where the clock must be injected), real HTTP.

mod common;

use common::*;
use http::Method;
use levee_core::breaker::{BreakerConfig, Reason, State};
use levee_core::fleet::{FleetOverride, LevelRule, LevelSource, Toggle};
use levee_core::time::ManualClock;
use levee_core::{Outcome, Timestamp};
use levee_registry::RegistryConfig;
use levee_registry_client::api::{
    CompleteRequest, DegradationRequest, EndpointReport, EventData, LeaseRequest, Problem,
    ReportBucket, ReportRequest,
};
use levee_registry_client::{Api, ClientConfig, FleetAdmission, RegistryClient};
use std::sync::Arc;
use std::time::Duration;

fn report(key: &str, start_s: u64, success: u64, failure: u64) -> ReportRequest {
    ReportRequest {
        service: "checkout".into(),
        language: "rust".into(),
        instance: "test-instance".into(),
        endpoints: vec![EndpointReport {
            key: key.into(),
            buckets: vec![ReportBucket {
                start_s,
                success,
                failure,
                ..ReportBucket::default()
            }],
        }],
    }
}

fn client(url: &str, service: &str) -> RegistryClient {
    let mut config = ClientConfig::new(url, REPORTER, service);
    config.report_interval = Duration::from_millis(50);
    RegistryClient::start(config).expect("client")
}

async fn problem(api: &Api, method: Method, path: &str, body: Option<&str>) -> (u16, Problem) {
    let (status, headers, bytes) = api
        .raw(method, path, body.map(|b| b.as_bytes().to_vec()), &[])
        .await
        .expect("registry answered");
    assert_eq!(
        headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
        "application/problem+json",
        "{path}: {}",
        String::from_utf8_lossy(&bytes)
    );
    let p: Problem = serde_json::from_slice(&bytes).expect("problem+json body");
    assert_eq!(p.status, status.as_u16());
    assert_eq!(p.type_uri, format!("urn:levee:error:{}", p.code));
    (status.as_u16(), p)
}

#[tokio::test]
async fn outcomes_reported_by_one_client_open_the_breaker_another_client_watches() {
    let registry = RegistryProcess::start(&[]);
    registry
        .operator()
        .put_policy("inventory", &quick_policy(2, Duration::from_secs(30)))
        .await
        .expect("policy");
    let reporter = client(&registry.url, "checkout");
    let watcher = client(&registry.url, "cart");
    let mut events = watcher.subscribe();
    eventually("the watcher connects", || async {
        watcher.connected().then_some(())
    })
    .await;
    eventually("the watcher has the policy", || async {
        watcher.policy("inventory").filter(|p| p.version == 1)
    })
    .await;
    assert_eq!(watcher.admission("inventory"), FleetAdmission::NoOpinion);
    for _ in 0..4 {
        reporter.record(
            "inventory",
            Outcome::Success,
            Duration::from_millis(4),
            false,
        );
    }
    for _ in 0..8 {
        reporter.record(
            "inventory",
            Outcome::Failure,
            Duration::from_millis(9),
            false,
        );
    }
    reporter.flush().await.expect("report sent");
    let admission = eventually("the watcher sees the fleet breaker open", || async {
        match watcher.admission("inventory") {
            a @ FleetAdmission::Reject { .. } => Some(a),
            _ => None,
        }
    })
    .await;
    assert!(
        matches!(admission, FleetAdmission::Reject { retry_after: Some(d) } if d <= Duration::from_secs(30))
    );
    let view = watcher.breaker("inventory").expect("fresh fleet state");
    assert_eq!(view.state, State::Open);
    let t = view.last_transition.expect("transition");
    assert_eq!(
        (t.from, t.to, t.reason),
        (State::Closed, State::Open, Reason::FailureRate)
    );
    // The transition also arrived as an event.
    loop {
        let e = tokio::time::timeout(DEADLINE, events.recv())
            .await
            .expect("event in time")
            .expect("event");
        if let EventData::Breaker {
            transition: Some(t),
            ..
        } = &e.data
        {
            assert_eq!(t.to, State::Open);
            break;
        }
    }
}

#[tokio::test]
async fn missing_or_invalid_tokens_are_401_and_wrong_roles_403() {
    let registry = RegistryProcess::start(&[]);
    let body = serde_json::to_string(&report("k", unix_s(), 1, 0)).expect("json");
    // No token, a bad token, a wrong scheme: 401 with WWW-Authenticate.
    let (status, p) = problem(&registry.anonymous(), Method::GET, "/v1/state", None).await;
    assert_eq!((status, p.code.as_str()), (401, "unauthorized"));
    let wrong = registry.anonymous().with_token(Some("nope"));
    let (status, _) = problem(&wrong, Method::POST, "/v1/reports", Some(&body)).await;
    assert_eq!(status, 401);
    let (status, headers, _) = registry
        .anonymous()
        .raw(
            Method::GET,
            "/v1/toggles",
            None,
            &[(http::header::AUTHORIZATION, format!("Basic {REPORTER}"))],
        )
        .await
        .expect("answer");
    assert_eq!(status, 401);
    assert!(headers.contains_key("www-authenticate"));
    // Reporter on operator endpoints and operator on reporter endpoints: 403.
    let (status, p) = problem(
        &registry.reporter(),
        Method::PUT,
        "/v1/toggles/x",
        Some(r#"{"state":"on"}"#),
    )
    .await;
    assert_eq!((status, p.code.as_str()), (403, "forbidden"));
    let (status, _) = problem(
        &registry.operator(),
        Method::POST,
        "/v1/reports",
        Some(&body),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = problem(
        &registry.operator(),
        Method::POST,
        "/v1/breakers/k/leases",
        Some(r#"{"instance":"i"}"#),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = problem(
        &registry.reporter(),
        Method::DELETE,
        "/v1/breakers/k/override",
        None,
    )
    .await;
    assert_eq!(status, 403);
    // Reads take either role; health takes none.
    registry.reporter().state().await.expect("reporter reads");
    registry.operator().state().await.expect("operator reads");
    registry.anonymous().health().await.expect("health is open");
    // And the right roles write.
    registry
        .reporter()
        .report(&report("k", unix_s(), 1, 0))
        .await
        .expect("report");
    registry
        .operator()
        .set_toggle("x", Toggle::On)
        .await
        .expect("toggle");
}

#[tokio::test]
async fn malformed_bodies_are_400_problem_json() {
    let registry = RegistryProcess::start(&[]);
    let reporter = registry.reporter();
    let operator = registry.operator();
    let cases: Vec<(&Api, Method, &str, String)> = vec![
        (&reporter, Method::POST, "/v1/reports", "{".into()),
        (&reporter, Method::POST, "/v1/reports", String::new()),
        (&reporter, Method::POST, "/v1/reports", r#"{"service":"s"}"#.into()),
        (
            &reporter,
            Method::POST,
            "/v1/reports",
            r#"{"service":"s","language":"rust","instance":"i","endpoints":[],"extra":1}"#.into(),
        ),
        (
            &reporter,
            Method::POST,
            "/v1/reports",
            r#"{"service":"s","language":"rust","instance":"i","endpoints":[{"key":"k","buckets":[{"start_s":1,"success":1,"slow":2}]}]}"#.into(),
        ),
        (
            &reporter,
            Method::POST,
            "/v1/reports",
            r#"{"service":"","language":"rust","instance":"i","endpoints":[]}"#.into(),
        ),
        (&reporter, Method::POST, "/v1/breakers/k/leases", r#"{"instance":"i","ttl_ms":0}"#.into()),
        (
            &reporter,
            Method::POST,
            "/v1/breakers/k/leases/abc/complete",
            r#"{"outcome":"exploded"}"#.into(),
        ),
        (&operator, Method::PUT, "/v1/toggles/t", r#"{"state":"percent","percent":150}"#.into()),
        (&operator, Method::PUT, "/v1/toggles/t", r#"{"state":"maybe"}"#.into()),
        (&operator, Method::PUT, "/v1/breakers/k/override", r#"{"override":"closed"}"#.into()),
        (&operator, Method::PUT, "/v1/degradation", r#"{"level":7}"#.into()),
        (
            &operator,
            Method::PUT,
            "/v1/degradation",
            r#"{"level":1,"rules":[{"when":"cpu > 3","level":2}]}"#.into(),
        ),
        (&operator, Method::PUT, "/v1/policies/k", r#"{"open":{"wait":5}}"#.into()),
        (&operator, Method::PUT, "/v1/policies/k", r#"{"failure_rate_threshold":0}"#.into()),
        (&operator, Method::PUT, "/v1/policies/k", r#"{"minimum_cals":3}"#.into()),
    ];
    for (api, method, path, body) in cases {
        let (status, p) = problem(api, method, path, Some(&body)).await;
        assert_eq!(
            (status, p.code.as_str()),
            (400, "bad_request"),
            "{path} {body}: {p:?}"
        );
        assert!(!p.detail.is_empty());
        assert!(!p.degraded);
    }
    // Too large: 413, same envelope.
    let huge = format!("{{\"state\":\"on\",\"pad\":\"{}\"}}", "x".repeat(100_000));
    let (status, p) = problem(&operator, Method::PUT, "/v1/toggles/t", Some(&huge)).await;
    assert_eq!((status, p.code.as_str()), (413, "payload_too_large"));
    // Unknown routes and methods: problem+json too.
    let (status, _) = problem(&reporter, Method::GET, "/v1/nothing", None).await;
    assert_eq!(status, 404);
    let (status, _) = problem(&reporter, Method::PATCH, "/v1/state", None).await;
    assert_eq!(status, 405);
    // A bad percent-encoding in a key.
    let (status, _) = problem(&reporter, Method::GET, "/v1/breakers/%FF", None).await;
    assert_eq!(status, 400);
    assert!(registry.reporter().health().await.is_ok());
}

#[tokio::test]
async fn watch_resumes_with_last_event_id_and_snapshots_when_too_old() {
    let registry = RegistryProcess::start(&["--ring-size", "4"]);
    let operator = registry.operator();
    let reader = registry.reporter();
    let mut stream = reader.watch(None).await.expect("watch");
    let first = next_event(&mut stream).await;
    assert!(matches!(first.data, EventData::Snapshot(_)), "{first:?}");
    let start = first.id;
    for name in ["a", "b", "c"] {
        operator.set_toggle(name, Toggle::On).await.expect("toggle");
    }
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(next_event(&mut stream).await.id);
    }
    assert_eq!(
        ids,
        vec![start + 1, start + 2, start + 3],
        "ids increase by one"
    );
    drop(stream);
    // Resume inside the ring: exactly the missed events, no snapshot.
    let mut resumed = reader.watch(Some(start + 1)).await.expect("resume");
    let e = next_event(&mut resumed).await;
    assert_eq!(e.id, start + 2);
    assert!(matches!(&e.data, EventData::Toggle { name, .. } if name == "b"));
    assert_eq!(next_event(&mut resumed).await.id, start + 3);
    drop(resumed);
    // Push the resume point out of the four-event ring: a snapshot comes first.
    for i in 0..6 {
        operator
            .set_toggle(&format!("more{i}"), Toggle::Off)
            .await
            .expect("toggle");
    }
    let mut old = reader.watch(Some(start + 1)).await.expect("resume");
    let e = next_event(&mut old).await;
    match e.data {
        EventData::Snapshot(s) => {
            assert_eq!(e.id, start + 9);
            assert_eq!(s.event_id, start + 9);
            assert_eq!(s.toggles.len(), 9);
        }
        other => panic!("expected a snapshot first, got {other:?}"),
    }
    operator
        .set_toggle("after", Toggle::On)
        .await
        .expect("toggle");
    assert_eq!(next_event(&mut old).await.id, start + 10);
    // An id from the future (another epoch) also gets a snapshot.
    let mut future = reader.watch(Some(start + 1_000_000)).await.expect("watch");
    assert!(matches!(
        next_event(&mut future).await.data,
        EventData::Snapshot(_)
    ));
}

/// Lease expiry on the registry's injected clock: no time passes in the test but the
/// clock's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_frees_its_probe_slot() {
    let clock = Arc::new(ManualClock::new(Timestamp::from_nanos(
        1_800_000_000 * 1_000_000_000,
    )));
    let mut config = RegistryConfig::new("127.0.0.1:0".parse().expect("addr"), REPORTER, OPERATOR);
    config.lease_ttl = Duration::from_secs(2);
    let running = levee_registry::start(config, clock.clone())
        .await
        .expect("registry starts");
    let operator = Api::new(&running.url(), Some(OPERATOR)).expect("api");
    let reporter = Api::new(&running.url(), Some(REPORTER)).expect("api");
    operator
        .put_policy("pay", &quick_policy(2, Duration::from_secs(5)))
        .await
        .expect("policy");
    let second = 1_800_000_000;
    let r = reporter
        .report(&report("pay", second, 0, 10))
        .await
        .expect("report");
    assert_eq!(r.accepted, 1);
    assert_eq!(
        reporter.breaker("pay").await.expect("view").state,
        State::Open
    );
    let lease = |instance: &str| LeaseRequest {
        instance: instance.into(),
        ttl_ms: None,
    };
    let early = reporter
        .acquire_lease("pay", &lease("a"))
        .await
        .expect("answer");
    assert!(!early.granted);
    assert_eq!(early.retry_after_ms, Some(5000));
    clock.advance(Duration::from_secs(5));
    let a = reporter
        .acquire_lease("pay", &lease("dies"))
        .await
        .expect("answer");
    let b = reporter
        .acquire_lease("pay", &lease("dies-too"))
        .await
        .expect("answer");
    assert!(a.granted && a.probe && b.granted && b.probe);
    assert_eq!(a.state, State::HalfOpen);
    let full = reporter
        .acquire_lease("pay", &lease("c"))
        .await
        .expect("answer");
    assert!(!full.granted);
    assert_eq!(
        full.retry_after_ms,
        Some(2000),
        "the earliest lease lapses in 2 s"
    );
    assert_eq!(
        reporter.breaker("pay").await.expect("view").leased_probes,
        2
    );
    // Both holders die. Once their leases lapse, their slots are free again.
    clock.advance(Duration::from_millis(1999));
    assert!(
        !reporter
            .acquire_lease("pay", &lease("c"))
            .await
            .expect("answer")
            .granted
    );
    clock.advance(Duration::from_millis(1));
    let c = reporter
        .acquire_lease("pay", &lease("c"))
        .await
        .expect("answer");
    assert!(c.granted && c.probe, "{c:?}");
    // The dead holder's completion is refused: its probe already counted as cancelled.
    let late = reporter
        .complete_lease(
            "pay",
            a.lease_id.as_deref().expect("id"),
            &CompleteRequest {
                outcome: Outcome::Success,
                duration_ms: 3,
            },
        )
        .await
        .expect_err("lapsed");
    assert_eq!(late.status(), Some(404));
    // A lease completed after its TTL but before anyone noticed is 410.
    clock.advance(Duration::from_secs(3));
    let expired = reporter
        .complete_lease(
            "pay",
            c.lease_id.as_deref().expect("id"),
            &CompleteRequest {
                outcome: Outcome::Success,
                duration_ms: 3,
            },
        )
        .await
        .expect_err("expired");
    assert_eq!(expired.status(), Some(410));
    // Two fresh probes that succeed close the breaker.
    let mut ids = Vec::new();
    for i in 0..2 {
        let l = reporter
            .acquire_lease("pay", &lease(&format!("ok{i}")))
            .await
            .expect("answer");
        assert!(l.probe);
        ids.push(l.lease_id.expect("id"));
    }
    for id in ids {
        reporter
            .complete_lease(
                "pay",
                &id,
                &CompleteRequest {
                    outcome: Outcome::Success,
                    duration_ms: 3,
                },
            )
            .await
            .expect("completed");
    }
    let view = reporter.breaker("pay").await.expect("view");
    assert_eq!(view.state, State::Closed);
    assert_eq!(
        view.last_transition.map(|t| t.reason),
        Some(Reason::ProbesSucceeded)
    );
    running.stop().await;
}

#[tokio::test]
async fn fleet_probes_never_exceed_permitted_calls() {
    let registry = RegistryProcess::start(&[]);
    registry
        .operator()
        .put_policy("db", &quick_policy(3, Duration::from_millis(300)))
        .await
        .expect("policy");
    registry
        .reporter()
        .report(&report("db", unix_s(), 0, 20))
        .await
        .expect("report");
    let view = registry.reporter().breaker("db").await.expect("view");
    assert_eq!(view.state, State::Open);
    let until = view.open_until_ms.expect("open until");
    eventually("the open wait elapses", || async {
        (unix_ms() > until + 5).then_some(())
    })
    .await;
    // Four instances, ten concurrent lease requests each.
    let clients: Vec<Api> = (0..4).map(|_| registry.reporter()).collect();
    let mut requests = Vec::new();
    for (i, api) in clients.iter().enumerate() {
        for j in 0..10 {
            let api = api.clone();
            requests.push(tokio::spawn(async move {
                api.acquire_lease(
                    "db",
                    &LeaseRequest {
                        instance: format!("i{i}-{j}"),
                        ttl_ms: Some(30_000),
                    },
                )
                .await
            }));
        }
    }
    let mut probes = 0;
    for r in requests {
        let answer = r.await.expect("task").expect("answer");
        if answer.probe {
            probes += 1;
        }
    }
    assert_eq!(probes, 3, "exactly permitted_calls probes fleet-wide");
    let view = registry.reporter().breaker("db").await.expect("view");
    assert_eq!((view.state, view.leased_probes), (State::HalfOpen, 3));
}

#[tokio::test]
async fn a_client_keeps_last_state_then_goes_local_only_after_stale_ttl() {
    let mut registry = RegistryProcess::start(&[]);
    let operator = registry.operator();
    operator
        .set_override("search", Some(FleetOverride::ForcedOpen))
        .await
        .expect("override");
    operator
        .set_toggle("beta", Toggle::Percent { percent: 100 })
        .await
        .expect("toggle");
    operator
        .set_degradation(&DegradationRequest {
            level: 2,
            rules: vec![],
        })
        .await
        .expect("level");
    let mut config = ClientConfig::new(&registry.url, REPORTER, "svc");
    config.stale_ttl = Duration::from_millis(800);
    config.reconnect_max = Duration::from_millis(200);
    let client = RegistryClient::start(config).expect("client");
    eventually("the client has the fleet state", || async {
        (client.admission("search") == (FleetAdmission::Reject { retry_after: None })
            && client.degradation_level() == Some(2))
        .then_some(())
    })
    .await;
    registry.kill();
    eventually("the client notices", || async {
        (!client.connected()).then_some(())
    })
    .await;
    // Nothing the request path calls fails.
    client.record("search", Outcome::Failure, Duration::from_millis(1), false);
    assert!(client.acquire_probe("search").await.is_none());
    let _ = client.flush().await;
    eventually("fleet state expires after stale_ttl", || async {
        (client.admission("search") == FleetAdmission::NoOpinion).then_some(())
    })
    .await;
    assert_eq!(client.degradation_level(), None);
    assert_eq!(
        client.enabled("beta", "user-1"),
        Some(true),
        "toggles keep last-known"
    );
    // The registry comes back on the same address: the client resumes by itself.
    let registry = RegistryProcess::start_on(registry.port, &[]);
    registry
        .operator()
        .set_toggle("beta", Toggle::Off)
        .await
        .expect("toggle");
    eventually("the client reconnects and follows", || async {
        (client.connected() && client.enabled("beta", "user-1") == Some(false)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn toggles_levels_rules_and_policies_reach_clients() {
    let registry = RegistryProcess::start(&[]);
    let operator = registry.operator();
    let c = client(&registry.url, "svc");
    eventually("connected", || async { c.connected().then_some(()) }).await;
    operator
        .set_toggle("new-checkout", Toggle::Percent { percent: 30 })
        .await
        .expect("toggle");
    let on = eventually("the toggle arrives", || async {
        c.enabled("new-checkout", "x")?;
        Some(
            (0..200)
                .filter(|i| c.enabled("new-checkout", &format!("user-{i}")) == Some(true))
                .count(),
        )
    })
    .await;
    assert!((30..90).contains(&on), "about 30% of keys: {on}");
    // Every language agrees: the bucket is FNV-1a 64 of "name:key" mod 100.
    for i in 0..50 {
        let key = format!("user-{i}");
        let bucket = levee_core::fleet::fnv1a64(format!("new-checkout:{key}").as_bytes()) % 100;
        assert_eq!(c.enabled("new-checkout", &key), Some(bucket < 30));
    }
    // Three breakers known, a rule at 30% open.
    for key in ["a", "b", "c"] {
        registry
            .reporter()
            .report(&report(key, unix_s(), 5, 0))
            .await
            .expect("report");
    }
    operator
        .set_degradation(&DegradationRequest {
            level: 1,
            rules: vec![LevelRule {
                when: "open_breakers >= 30%".into(),
                level: 3,
            }],
        })
        .await
        .expect("level");
    eventually("level 1 from the operator", || async {
        (c.degradation_level() == Some(1)).then_some(())
    })
    .await;
    operator
        .set_override("b", Some(FleetOverride::ForcedOpen))
        .await
        .expect("override");
    eventually("the rule raises the level", || async {
        (c.degradation_level() == Some(3)).then_some(())
    })
    .await;
    let d = operator.degradation().await.expect("level");
    assert_eq!((d.level, d.source), (3, LevelSource::Rule));
    operator.set_override("b", None).await.expect("cleared");
    eventually("the level falls back", || async {
        (c.degradation_level() == Some(1)).then_some(())
    })
    .await;
    // Policies: same thresholds for every language, versioned.
    let mut policy = BreakerConfig {
        failure_rate_threshold: 25.0,
        ..BreakerConfig::default()
    };
    policy.half_open.permitted_calls = 2;
    let v1 = operator
        .put_policy("inventory/get", &policy)
        .await
        .expect("policy");
    assert_eq!(v1.version, 1);
    policy.minimum_calls = 7;
    let v2 = operator
        .put_policy("inventory/get", &policy)
        .await
        .expect("policy");
    assert_eq!(v2.version, 2);
    let got = eventually("the policy arrives", || async {
        c.policy("inventory/get").filter(|p| p.version == 2)
    })
    .await;
    assert_eq!(got.config, policy);
    let reset = operator.reset_policy("inventory/get").await.expect("reset");
    assert_eq!((reset.version, reset.config), (3, BreakerConfig::default()));
    // A key with a slash is one path segment.
    assert_eq!(
        registry
            .reporter()
            .breaker("inventory/get")
            .await
            .expect("view")
            .policy_version,
        3
    );
    operator
        .delete_toggle("new-checkout")
        .await
        .expect("deleted");
    eventually("the deletion arrives", || async {
        c.enabled("new-checkout", "x").is_none().then_some(())
    })
    .await;
    let missing = operator
        .delete_toggle("new-checkout")
        .await
        .expect_err("gone");
    assert_eq!(missing.status(), Some(404));
}

#[tokio::test]
async fn operator_state_survives_a_restart_with_a_snapshot_file() {
    let dir = std::env::temp_dir().join(format!("levee-registry-test-{}", free_port()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("registry.json");
    let file_arg = file.to_string_lossy().into_owned();
    let mut registry = RegistryProcess::start(&["--snapshot", &file_arg]);
    let operator = registry.operator();
    operator
        .set_toggle("t", Toggle::Percent { percent: 40 })
        .await
        .expect("toggle");
    operator
        .set_override("k", Some(FleetOverride::Disabled))
        .await
        .expect("override");
    operator
        .set_degradation(&DegradationRequest {
            level: 2,
            rules: vec![LevelRule {
                when: "open_breakers >= 2".into(),
                level: 3,
            }],
        })
        .await
        .expect("level");
    let policy = BreakerConfig {
        minimum_calls: 3,
        ..BreakerConfig::default()
    };
    operator.put_policy("k", &policy).await.expect("policy");
    operator.put_policy("k", &policy).await.expect("policy");
    let before = operator.state().await.expect("state");
    registry.kill();
    let registry = RegistryProcess::start_on(registry.port, &["--snapshot", &file_arg]);
    let after = registry.operator().state().await.expect("state");
    assert_eq!(after.toggles, before.toggles);
    assert_eq!(after.policies, before.policies, "versions kept");
    assert_eq!(after.degradation, before.degradation);
    assert_eq!(after.breakers["k"].state, State::Disabled);
    assert_eq!(after.breakers["k"].override_, Some(FleetOverride::Disabled));
    assert!(
        after.event_id > before.event_id,
        "ids keep increasing across restarts"
    );
    // No temp files left behind.
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}
