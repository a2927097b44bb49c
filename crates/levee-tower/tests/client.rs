//! Client-side layers around a real hyper-util client calling a real hyper server.
#![allow(clippy::unwrap_used)]

mod common;

use common::{client, get, post, serve, text};
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use levee_core::breaker::{BreakerConfig, CircuitBreaker, State, WindowConfig, WindowKind};
use levee_core::budget::RetryBudgetConfig;
use levee_core::random::SplitMix64;
use levee_core::rate_limit::{KeySource, KeyedRateLimiter, RateLimitConfig};
use levee_core::retry::{BackoffConfig, Jitter, RetryConfig};
use levee_core::time::ManualClock;
use levee_core::{Clock, ErrorCode, Timestamp};
use levee_telemetry::Metrics;
use levee_tower::{
    find_levee_error, BoxError, BreakerLayer, DeadlineLayer, LeveeError, RateLimitLayer,
    RetryLayer, RetryPolicy,
};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower::{Service, ServiceBuilder, ServiceExt};

/// What the upstream saw.
#[derive(Clone, Default)]
struct Seen {
    hits: Arc<AtomicU64>,
    deadlines: Arc<Mutex<Vec<String>>>,
}

impl Seen {
    fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }
    fn deadlines(&self) -> Vec<String> {
        self.deadlines.lock().unwrap().clone()
    }
}

/// `/status/N` answers N; everything else 200. Counts requests and records
/// `levee-timeout-ms`.
async fn upstream() -> (common::TestServer, Seen) {
    let seen = Seen::default();
    let recorder = seen.clone();
    let server = serve(tower::service_fn(move |request: Request<Incoming>| {
        let seen = recorder.clone();
        async move {
            seen.hits.fetch_add(1, Ordering::SeqCst);
            if let Some(value) = request.headers().get("levee-timeout-ms") {
                let value = value.to_str().unwrap_or("?").to_string();
                seen.deadlines.lock().unwrap().push(value);
            }
            let status = request
                .uri()
                .path()
                .strip_prefix("/status/")
                .and_then(|s| s.parse().ok())
                .unwrap_or(200);
            Ok::<_, Infallible>(text(status, "upstream"))
        }
    }))
    .await;
    (server, seen)
}

fn manual_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Timestamp::from_nanos(3_600_000_000_000)))
}

fn levee(err: &BoxError) -> &LeveeError {
    find_levee_error(&**err).unwrap_or_else(|| panic!("not a Levee error: {err}"))
}

fn fast_retries(max_attempts: u32) -> RetryConfig {
    RetryConfig {
        max_attempts,
        backoff: BackoffConfig {
            base: Duration::from_millis(1),
            max: Duration::from_millis(1),
            jitter: Jitter::None,
        },
        ..RetryConfig::default()
    }
}

async fn send<S>(
    service: &mut S,
    request: Request<Full<bytes::Bytes>>,
) -> Result<Response<Incoming>, S::Error>
where
    S: Service<Request<Full<bytes::Bytes>>, Response = Response<Incoming>>,
{
    service.ready().await?.call(request).await
}

#[tokio::test]
async fn breaker_opens_after_failures_and_rejects_without_touching_the_server() {
    let (server, seen) = upstream().await;
    let clock = manual_clock();
    let config = BreakerConfig {
        window: WindowConfig {
            kind: WindowKind::Count,
            size: 4,
        },
        minimum_calls: 2,
        open: levee_core::breaker::OpenConfig {
            jitter: 0.0,
            ..Default::default()
        },
        half_open: levee_core::breaker::HalfOpenConfig {
            permitted_calls: 1,
            ..Default::default()
        },
        ..BreakerConfig::default()
    };
    let breaker =
        Arc::new(CircuitBreaker::new("upstream", config, Arc::new(SplitMix64::new(1))).unwrap());
    let metrics = Metrics::new("test");
    let mut service = ServiceBuilder::new()
        .layer(
            BreakerLayer::new(Arc::clone(&breaker))
                .clock(clock.clone() as Arc<dyn Clock>)
                .metrics(metrics.endpoint("upstream")),
        )
        .service(client());

    for _ in 0..2 {
        let response = send(&mut service, get(&server.url("/status/503")))
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            503,
            "failures pass through until the breaker opens"
        );
    }
    assert_eq!(breaker.state(), State::Open);

    let err = send(&mut service, get(&server.url("/status/200")))
        .await
        .unwrap_err();
    let err = levee(&err);
    assert_eq!(err.code(), ErrorCode::CircuitOpen);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(5)));
    assert_eq!(err.upstream(), "upstream");
    assert_eq!(seen.hits(), 2, "a rejected call never reaches the server");

    // After the open wait the next call is a probe; its success closes the breaker.
    clock.advance(Duration::from_secs(5));
    let response = send(&mut service, get(&server.url("/status/200")))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(seen.hits(), 3);
    assert_eq!(breaker.state(), State::Closed);

    let text = metrics.encode();
    assert!(
        text.lines()
            .any(|l| l.starts_with("levee_breaker_transitions_total")
                && l.contains("to=\"open\"")
                && l.ends_with(" 1")),
        "transition counted:\n{text}"
    );
}

#[tokio::test]
async fn a_dropped_probe_frees_its_slot_for_another_probe() {
    let clock = manual_clock();
    let config = BreakerConfig {
        consecutive_failures: 1,
        open: levee_core::breaker::OpenConfig {
            jitter: 0.0,
            ..Default::default()
        },
        half_open: levee_core::breaker::HalfOpenConfig {
            permitted_calls: 1,
            ..Default::default()
        },
        ..BreakerConfig::default()
    };
    let breaker =
        Arc::new(CircuitBreaker::new("upstream", config, Arc::new(SplitMix64::new(1))).unwrap());
    let (server, _seen) = upstream().await;
    let mut service = ServiceBuilder::new()
        .layer(BreakerLayer::new(Arc::clone(&breaker)).clock(clock.clone() as Arc<dyn Clock>))
        .service(client());
    let response = send(&mut service, get(&server.url("/status/500")))
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    assert_eq!(breaker.state(), State::Open);
    clock.advance(Duration::from_secs(5));
    // The probe's future is made and dropped before it runs: recorded as cancelled.
    let probe = service
        .ready()
        .await
        .unwrap()
        .call(get(&server.url("/status/200")));
    assert_eq!(breaker.state(), State::HalfOpen);
    drop(probe);
    let response = send(&mut service, get(&server.url("/status/200")))
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        200,
        "the freed probe slot admitted another probe"
    );
    assert_eq!(breaker.state(), State::Closed);
}

#[tokio::test]
async fn retry_retries_503_for_get_but_not_post() {
    let (server, seen) = upstream().await;
    let policy = RetryPolicy::builder("upstream", fast_retries(3))
        .clock(manual_clock() as Arc<dyn Clock>)
        .build()
        .unwrap();
    let mut service = ServiceBuilder::new()
        .layer(RetryLayer::new(policy))
        .service(client());

    let response = send(&mut service, get(&server.url("/status/503")))
        .await
        .unwrap();
    assert_eq!(response.status(), 503, "the last real response is returned");
    assert_eq!(seen.hits(), 3, "GET is tried max_attempts times");

    let response = send(&mut service, post(&server.url("/status/503"), "{}"))
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(seen.hits(), 4, "POST is not idempotent: one try");

    let mut keyed = post(&server.url("/status/503"), "{}");
    keyed
        .headers_mut()
        .insert("idempotency-key", "order-1".parse().unwrap());
    send(&mut service, keyed).await.unwrap();
    assert_eq!(seen.hits(), 7, "an Idempotency-Key makes POST retryable");

    let response = send(&mut service, get(&server.url("/status/404")))
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(seen.hits(), 8, "404 is not in retry_on");
}

#[tokio::test]
async fn retry_respects_the_budget() {
    let (server, seen) = upstream().await;
    let metrics = Metrics::new("test");
    let config = RetryConfig {
        budget: RetryBudgetConfig {
            ratio: 0.5,
            min_per_second: 0,
            ttl: Duration::from_secs(10),
        },
        ..fast_retries(2)
    };
    let policy = RetryPolicy::builder("upstream", config)
        .clock(manual_clock() as Arc<dyn Clock>)
        .metrics(metrics.endpoint("upstream"))
        .build()
        .unwrap();
    let mut service = ServiceBuilder::new()
        .layer(RetryLayer::new(policy.clone()))
        .service(client());
    // ratio 0.5: a retry needs two deposits per retry in the window.
    let mut hits = Vec::new();
    for _ in 0..4 {
        let response = send(&mut service, get(&server.url("/status/503")))
            .await
            .unwrap();
        assert_eq!(response.status(), 503);
        hits.push(seen.hits());
    }
    assert_eq!(
        hits,
        vec![1, 3, 4, 6],
        "retries allowed on the 2nd and 4th request only"
    );
    let snapshot = policy
        .budget()
        .snapshot(Timestamp::from_nanos(3_600_000_000_000));
    assert_eq!((snapshot.deposits, snapshot.retries), (4, 2));
    let text = metrics.encode();
    assert!(
        text.lines()
            .any(|l| l.starts_with("levee_retry_budget_exhausted_total") && l.ends_with(" 2")),
        "two exhausted budgets counted:\n{text}"
    );
}

#[tokio::test]
async fn retry_of_a_connect_failure_with_no_budget_answers_retry_budget_exhausted() {
    // A port that was free a moment ago: nothing listens there.
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let config = RetryConfig {
        budget: RetryBudgetConfig {
            ratio: 0.5,
            min_per_second: 0,
            ttl: Duration::from_secs(10),
        },
        ..fast_retries(2)
    };
    let policy = RetryPolicy::builder("gone", config)
        .clock(manual_clock() as Arc<dyn Clock>)
        .build()
        .unwrap();
    let mut service = ServiceBuilder::new()
        .layer(RetryLayer::new(policy))
        .layer(tower::util::MapErrLayer::new(
            |e: hyper_util::client::legacy::Error| -> BoxError { Box::new(e) },
        ))
        .service(client());
    let err = send(&mut service, get(&format!("http://{addr}/")))
        .await
        .unwrap_err();
    let err = levee(&err);
    assert_eq!(err.code(), ErrorCode::RetryBudgetExhausted);
    assert_eq!(err.upstream(), "gone");
}

#[tokio::test]
async fn deadline_is_propagated_and_shrinks_for_each_retry() {
    let (server, seen) = upstream().await;
    let clock = manual_clock();
    let policy = RetryPolicy::builder("upstream", fast_retries(2))
        .clock(clock.clone() as Arc<dyn Clock>)
        .build()
        .unwrap();
    let mut service = ServiceBuilder::new()
        .layer(
            DeadlineLayer::client(Some(Duration::from_millis(800)))
                .name("upstream")
                .clock(clock.clone() as Arc<dyn Clock>),
        )
        .layer(RetryLayer::new(policy))
        .service(client());

    send(&mut service, get(&server.url("/status/503")))
        .await
        .unwrap();
    assert_eq!(
        seen.deadlines(),
        vec!["800".to_string(), "799".to_string()],
        "the retry announces what is left after its 1 ms backoff"
    );

    // A shorter deadline sent by the caller wins over the layer's timeout.
    let mut request = get(&server.url("/status/200"));
    request
        .headers_mut()
        .insert("levee-timeout-ms", "300".parse().unwrap());
    send(&mut service, request).await.unwrap();
    assert_eq!(seen.deadlines().last().map(String::as_str), Some("300"));

    // A spent deadline is refused before any upstream work.
    let hits = seen.hits();
    let mut spent = get(&server.url("/status/200"));
    spent
        .headers_mut()
        .insert("levee-timeout-ms", "0".parse().unwrap());
    let err = send(&mut service, spent).await.unwrap_err();
    assert_eq!(levee(&err).code(), ErrorCode::DeadlineExceeded);
    assert_eq!(seen.hits(), hits);
}

#[tokio::test]
async fn rate_limit_rejects_beyond_burst_per_key() {
    let (server, seen) = upstream().await;
    let clock = manual_clock();
    let config = RateLimitConfig {
        burst: Some(2),
        key: Some(KeySource::Header("x-client-id".into())),
        ..RateLimitConfig::new("1/m".parse().unwrap())
    };
    let mut service = ServiceBuilder::new()
        .layer(
            RateLimitLayer::new("prices", Arc::new(KeyedRateLimiter::new(config)))
                .clock(clock.clone() as Arc<dyn Clock>),
        )
        .service(client());
    let from = |who: &str| {
        let mut request = get(&server.url("/"));
        request
            .headers_mut()
            .insert("x-client-id", who.parse().unwrap());
        request
    };
    for _ in 0..2 {
        assert_eq!(send(&mut service, from("a")).await.unwrap().status(), 200);
    }
    let err = send(&mut service, from("a")).await.unwrap_err();
    let err = levee(&err);
    assert_eq!(err.code(), ErrorCode::RateLimited);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(60)));
    assert_eq!(seen.hits(), 2, "a limited request never reaches the server");

    assert_eq!(
        send(&mut service, from("b")).await.unwrap().status(),
        200,
        "own bucket"
    );
    clock.advance(Duration::from_secs(60));
    assert_eq!(
        send(&mut service, from("a")).await.unwrap().status(),
        200,
        "refilled"
    );
    assert_eq!(seen.hits(), 4);
}

#[tokio::test]
async fn a_handler_s_outbound_call_inherits_what_is_left_of_its_deadline() {
    let (upstream, seen) = upstream().await;
    let clock = manual_clock();
    let outbound = ServiceBuilder::new()
        .layer(DeadlineLayer::client(None).clock(clock.clone() as Arc<dyn Clock>))
        .service(client());
    let url = upstream.url("/");
    let handler_clock = clock.clone();
    let front = serve(
        ServiceBuilder::new()
            .layer(levee_tower::ProblemLayer::new())
            .layer(DeadlineLayer::server(None).clock(clock.clone() as Arc<dyn Clock>))
            .service(tower::service_fn(move |_request: Request<Incoming>| {
                let outbound = outbound.clone();
                let url = url.clone();
                let clock = handler_clock.clone();
                async move {
                    // 120 ms of the caller's 300 ms are spent before calling out.
                    clock.advance(Duration::from_millis(120));
                    let response = outbound.oneshot(get(&url)).await?;
                    Ok::<_, BoxError>(text(response.status().as_u16(), "front"))
                }
            })),
    )
    .await;
    let mut request = get(&front.url("/"));
    request
        .headers_mut()
        .insert("levee-timeout-ms", "300".parse().unwrap());
    let response = client().request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(seen.deadlines(), vec!["180".to_string()]);
}

#[tokio::test]
async fn a_breaker_made_for_an_endpoint_names_it_in_its_refusals() {
    let (server, seen) = upstream().await;
    let layer = BreakerLayer::for_endpoint("inventory", BreakerConfig::default()).unwrap();
    layer.breaker().set_override(
        Some(levee_core::breaker::Override::ForcedOpen),
        Timestamp::ZERO,
    );
    let err = ServiceBuilder::new()
        .layer(layer)
        .service(client())
        .oneshot(get(&server.url("/")))
        .await
        .unwrap_err();
    assert_eq!(levee(&err).code(), ErrorCode::CircuitOpen);
    assert_eq!(levee(&err).upstream(), "inventory");
    assert_eq!(seen.hits(), 0);
    assert!(BreakerLayer::for_endpoint(
        "inventory",
        BreakerConfig {
            failure_rate_threshold: 150.0,
            ..BreakerConfig::default()
        }
    )
    .is_err());
}
