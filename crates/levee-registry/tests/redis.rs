//! End-to-end tests of registry replicas sharing a real `redis-server` (started by the tests on
//! free loopback ports; run scripts/ensure-redis.sh first — these tests fail, never skip,
//! without it).

mod common;

use common::*;
use http::Method;
use levee_core::breaker::State;
use levee_core::fleet::{FleetOverride, Toggle};
use levee_core::Outcome;
use levee_registry_client::api::{
    EndpointReport, EventData, LeaseRequest, Problem, ReportBucket, ReportRequest,
};
use levee_registry_client::{Api, ClientConfig, FleetAdmission, RegistryClient};
use std::time::{Duration, Instant};

fn replica(redis: &RedisServer, extra: &[&str]) -> RegistryProcess {
    let url = redis.url();
    let mut args = vec![
        "--backend",
        url.as_str(),
        "--redis-timeout",
        "300ms",
        "--redis-ping-interval",
        "100ms",
    ];
    args.extend_from_slice(extra);
    RegistryProcess::start(&args)
}

fn failures(key: &str, n: u64) -> ReportRequest {
    ReportRequest {
        service: "checkout".into(),
        language: "go".into(),
        instance: "i-1".into(),
        endpoints: vec![EndpointReport {
            key: key.into(),
            buckets: vec![ReportBucket {
                start_s: unix_s(),
                failure: n,
                ..ReportBucket::default()
            }],
        }],
    }
}

async fn wait_health(api: &Api, connected: bool) {
    eventually(
        &format!("the replica reports backend_connected = {connected}"),
        || async {
            let h = api.health().await.ok()?;
            (h.backend_connected == connected).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn a_change_through_replica_one_reaches_a_watcher_on_replica_three() {
    let redis = RedisServer::start();
    let r1 = replica(&redis, &[]);
    let r2 = replica(&redis, &[]);
    let r3 = replica(&redis, &[]);
    let mut on3 = r3.reporter().watch(None).await.expect("watch r3");
    assert!(matches!(
        next_event(&mut on3).await.data,
        EventData::Snapshot(_)
    ));
    let mut on1 = r1.reporter().watch(None).await.expect("watch r1");
    assert!(matches!(
        next_event(&mut on1).await.data,
        EventData::Snapshot(_)
    ));

    r1.operator()
        .set_toggle("dark-mode", Toggle::On)
        .await
        .expect("toggle via r1");
    let e3 = event_where(&mut on3, |d| matches!(d, EventData::Toggle { .. })).await;
    assert!(matches!(&e3.data, EventData::Toggle { name, toggle: Some(_) } if name == "dark-mode"));
    let e1 = event_where(&mut on1, |d| matches!(d, EventData::Toggle { .. })).await;
    assert_eq!(e1.id, e3.id, "one id space across replicas");

    r2.operator()
        .set_override("inventory", Some(FleetOverride::ForcedOpen))
        .await
        .expect("override via r2");
    let e = event_where(&mut on3, |d| matches!(d, EventData::Breaker { .. })).await;
    match &e.data {
        EventData::Breaker {
            breaker,
            transition,
        } => {
            assert_eq!(breaker.state, State::ForcedOpen);
            assert_eq!(transition.as_ref().map(|t| t.to), Some(State::ForcedOpen));
        }
        other => panic!("{other:?}"),
    }
    // A watcher can resume on another replica with the id it got from this one.
    let mut resumed = r2
        .reporter()
        .watch(Some(e3.id))
        .await
        .expect("resume on r2");
    let next = next_event(&mut resumed).await;
    assert_eq!(next.id, e.id);
    assert!(matches!(next.data, EventData::Breaker { .. }));
    // Reads agree on every replica.
    for r in [&r1, &r2, &r3] {
        let view = r.reporter().breaker("inventory").await.expect("view");
        assert_eq!(view.state, State::ForcedOpen);
    }
}

#[tokio::test]
async fn outcomes_reported_to_one_replica_open_the_breaker_a_client_of_another_watches() {
    let redis = RedisServer::start();
    let r1 = replica(&redis, &[]);
    let r2 = replica(&redis, &[]);
    r1.operator()
        .put_policy("payments", &quick_policy(2, Duration::from_secs(30)))
        .await
        .expect("policy");
    let mut config = ClientConfig::new(&r1.url, REPORTER, "checkout");
    config.report_interval = Duration::from_millis(50);
    let reporter = RegistryClient::start(config).expect("client");
    let watcher =
        RegistryClient::start(ClientConfig::new(&r2.url, REPORTER, "cart")).expect("client");
    eventually("the watcher has the policy", || async {
        watcher.policy("payments").filter(|p| p.version == 1)
    })
    .await;
    for i in 0..12 {
        let outcome = if i % 4 == 0 {
            Outcome::Success
        } else {
            Outcome::Timeout
        };
        reporter.record("payments", outcome, Duration::from_millis(20), false);
    }
    eventually(
        "the client of replica 2 sees the fleet breaker open",
        || async {
            matches!(watcher.admission("payments"), FleetAdmission::Reject { .. }).then_some(())
        },
    )
    .await;
    assert_eq!(
        r2.reporter()
            .breaker("payments")
            .await
            .expect("view")
            .window
            .failures,
        9
    );
}

#[tokio::test]
async fn fleet_probes_never_exceed_permitted_calls_across_replicas() {
    let redis = RedisServer::start();
    let replicas = [
        replica(&redis, &[]),
        replica(&redis, &[]),
        replica(&redis, &[]),
    ];
    replicas[0]
        .operator()
        .put_policy("db", &quick_policy(3, Duration::from_millis(300)))
        .await
        .expect("policy");
    replicas[1]
        .reporter()
        .report(&failures("db", 20))
        .await
        .expect("report");
    let view = replicas[2].reporter().breaker("db").await.expect("view");
    assert_eq!(view.state, State::Open);
    let until = view.open_until_ms.expect("open until");
    eventually("the open wait elapses", || async {
        (unix_ms() > until + 5).then_some(())
    })
    .await;
    let mut requests = Vec::new();
    for i in 0..4 {
        for j in 0..10 {
            let api = replicas[(i + j) % 3].reporter();
            requests.push(tokio::spawn(async move {
                api.acquire_lease(
                    "db",
                    &LeaseRequest {
                        instance: format!("client-{i}"),
                        ttl_ms: Some(30_000),
                    },
                )
                .await
            }));
        }
    }
    let mut probes = 0;
    for r in requests {
        if r.await.expect("task").expect("answer").probe {
            probes += 1;
        }
    }
    assert_eq!(
        probes, 3,
        "exactly permitted_calls probes across three replicas"
    );
    let view = replicas[0].reporter().breaker("db").await.expect("view");
    assert_eq!((view.state, view.leased_probes), (State::HalfOpen, 3));
}

#[tokio::test]
async fn losing_redis_degrades_fail_open_replicas_and_state_resumes_when_it_returns() {
    let mut redis = RedisServer::start();
    let mut r1 = replica(&redis, &[]);
    let mut r2 = replica(&redis, &[]);
    let operator = r1.operator();
    operator
        .set_toggle("beta", Toggle::On)
        .await
        .expect("toggle");
    operator
        .set_override("search", Some(FleetOverride::ForcedOpen))
        .await
        .expect("override");
    let client =
        RegistryClient::start(ClientConfig::new(&r1.url, REPORTER, "svc")).expect("client");
    let mut short = ClientConfig::new(&r1.url, REPORTER, "svc");
    short.stale_ttl = Duration::from_millis(300);
    let short = RegistryClient::start(short).expect("client");
    for c in [&client, &short] {
        eventually("the client has the state", || async {
            (c.enabled("beta", "u") == Some(true)
                && c.admission("search") == (FleetAdmission::Reject { retry_after: None }))
            .then_some(())
        })
        .await;
    }

    redis.kill();
    wait_health(&r1.anonymous(), false).await;
    let health = r1.anonymous().health().await.expect("health");
    assert_eq!(
        (health.status.as_str(), health.fail_mode.as_str()),
        ("degraded", "open")
    );
    let (status, _, _) = r1
        .anonymous()
        .raw(Method::GET, "/healthz", None, &[])
        .await
        .expect("health");
    assert_eq!(status, 200, "fail-open replicas stay in service");
    // The stream stays up on a fail-open replica, but what it serves is last-known state:
    // the client reports levee_registry_connected 0 and keeps that state for stale_ttl.
    eventually("the client learns the registry is degraded", || async {
        (!client.connected()).then_some(())
    })
    .await;
    assert_eq!(client.enabled("beta", "u"), Some(true));
    assert_eq!(
        client.admission("search"),
        FleetAdmission::Reject { retry_after: None }
    );
    // After stale_ttl, last-known protection gives way to the local breakers, although the
    // degraded registry's stream is still up.
    eventually("the short-ttl client goes local-only", || async {
        (short.admission("search") == FleetAdmission::NoOpinion).then_some(())
    })
    .await;
    assert_eq!(
        short.enabled("beta", "u"),
        Some(true),
        "toggles stay last-known"
    );
    // Reads answer last known state, marked degraded.
    let (status, headers, body) = r1
        .reporter()
        .raw(Method::GET, "/v1/toggles", None, &[])
        .await
        .expect("read");
    assert_eq!(status, 200);
    assert_eq!(
        headers.get("levee-degraded").and_then(|v| v.to_str().ok()),
        Some("stale; reason=backend_unavailable")
    );
    assert!(String::from_utf8_lossy(&body).contains("beta"));
    assert!(r1.reporter().state().await.expect("state").degraded);
    // Writes cannot be shared: 503 problem+json, promptly.
    let started = Instant::now();
    let err = operator
        .set_toggle("gamma", Toggle::On)
        .await
        .expect_err("503");
    assert_eq!(err.status(), Some(503));
    assert!(
        matches!(&err, levee_registry_client::ClientError::Status { problem: Some(Problem { code, .. }), .. } if code == "backend_unavailable")
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        r1.reporter()
            .report(&failures("x", 1))
            .await
            .expect_err("503")
            .status(),
        Some(503)
    );
    assert!(client.acquire_probe("search").await.is_none(), "local-only");
    assert!(r1.alive() && r2.alive(), "nothing panicked");

    // Redis returns on the same port, empty: a replica restores what it knew.
    redis.restart();
    wait_health(&r1.anonymous(), true).await;
    wait_health(&r2.anonymous(), true).await;
    let toggles = eventually("the toggles are back in Redis", || async {
        let (status, headers, body) = r2
            .reporter()
            .raw(Method::GET, "/v1/toggles", None, &[])
            .await
            .ok()?;
        (status == 200 && !headers.contains_key("levee-degraded")).then_some(body)
    })
    .await;
    assert!(String::from_utf8_lossy(&toggles).contains("beta"));
    assert_eq!(
        r2.reporter().breaker("search").await.expect("view").state,
        State::ForcedOpen
    );
    eventually("the client is live again", || async {
        client.connected().then_some(())
    })
    .await;
    // New changes flow to the client again, through the other replica.
    r2.operator()
        .set_toggle("gamma", Toggle::On)
        .await
        .expect("write after recovery");
    eventually("the client sees the new toggle", || async {
        (client.enabled("gamma", "u") == Some(true)).then_some(())
    })
    .await;
    assert!(r1.alive() && r2.alive());
}

#[tokio::test]
async fn fail_closed_replicas_answer_503_and_end_watches_while_redis_is_down() {
    let mut redis = RedisServer::start();
    let r = replica(&redis, &["--fail-mode", "closed"]);
    r.operator()
        .set_override("ledger", Some(FleetOverride::ForcedOpen))
        .await
        .expect("override");
    let mut config = ClientConfig::new(&r.url, REPORTER, "svc");
    config.stale_ttl = Duration::from_millis(800);
    config.reconnect_max = Duration::from_millis(200);
    let client = RegistryClient::start(config).expect("client");
    eventually("the client has the state", || async {
        matches!(client.admission("ledger"), FleetAdmission::Reject { .. }).then_some(())
    })
    .await;

    redis.kill();
    wait_health(&r.anonymous(), false).await;
    let (status, _, _) = r
        .anonymous()
        .raw(Method::GET, "/healthz", None, &[])
        .await
        .expect("health");
    assert_eq!(status, 503);
    for path in [
        "/v1/state",
        "/v1/toggles",
        "/v1/breakers/ledger",
        "/v1/policies",
    ] {
        let err = r
            .reporter()
            .raw(Method::GET, path, None, &[])
            .await
            .expect("answer");
        assert_eq!(err.0, 503, "{path}");
    }
    assert_eq!(
        r.reporter().watch(None).await.expect_err("503").status(),
        Some(503)
    );
    eventually("the client's stream ended", || async {
        (!client.connected()).then_some(())
    })
    .await;
    eventually("the client runs local-only after stale_ttl", || async {
        (client.admission("ledger") == FleetAdmission::NoOpinion).then_some(())
    })
    .await;

    redis.restart();
    wait_health(&r.anonymous(), true).await;
    eventually(
        "the client reconnects and gets the restored override",
        || async {
            (client.connected()
                && matches!(client.admission("ledger"), FleetAdmission::Reject { .. }))
            .then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn a_frozen_redis_never_hangs_a_request() {
    let redis = RedisServer::start();
    let mut r = replica(&redis, &[]);
    r.operator()
        .set_toggle("t", Toggle::On)
        .await
        .expect("toggle");
    redis.freeze();
    // A write while Redis accepts connections but never answers: bounded by the timeout.
    let started = Instant::now();
    let err = r
        .operator()
        .set_toggle("u", Toggle::On)
        .await
        .expect_err("503");
    assert_eq!(err.status(), Some(503));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    wait_health(&r.anonymous(), false).await;
    let started = Instant::now();
    let toggles = r.reporter().toggles().await.expect("last known state");
    assert!(toggles.contains_key("t"));
    assert!(started.elapsed() < Duration::from_millis(500));
    redis.thaw();
    wait_health(&r.anonymous(), true).await;
    r.operator()
        .set_toggle("u", Toggle::On)
        .await
        .expect("writes work again");
    assert!(r.alive());
}

#[tokio::test]
async fn replicas_log_in_and_select_a_database() {
    let redis = RedisServer::start_with(&["--requirepass", "s3cret"]);
    let url = format!("redis://:s3cret@127.0.0.1:{}/3", redis.port);
    let args = ["--backend", url.as_str(), "--redis-ping-interval", "100ms"];
    let r1 = RegistryProcess::start(&args);
    let r2 = RegistryProcess::start(&args);
    wait_health(&r1.anonymous(), true).await;
    r1.operator()
        .set_toggle("auth", Toggle::On)
        .await
        .expect("write through an authenticated connection");
    eventually("the other replica sees it", || async {
        r2.reporter().toggles().await.ok()?.get("auth").map(|_| ())
    })
    .await;
    // A wrong password: the replica starts degraded and says so, it does not crash.
    let bad = format!("redis://:wrong@127.0.0.1:{}", redis.port);
    let mut r3 = RegistryProcess::start(&["--backend", bad.as_str()]);
    let health = r3.anonymous().health().await.expect("health");
    assert!(!health.backend_connected);
    assert!(r3.alive());
}
