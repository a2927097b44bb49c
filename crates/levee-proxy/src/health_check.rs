//! Active health checks (SPEC §8): every `interval`, `GET path` on each endpoint of an upstream
//! through its own pool; a 2xx within `timeout` passes. `unhealthy` failures in a row take an
//! endpoint out of rotation, `healthy` passes in a row bring it back (with slow start).
//!
//! The task holds only a weak reference: when a reload replaces the upstream (or the proxy
//! stops), the task ends at its next tick.

use crate::body;
use crate::client;
use crate::endpoint::HealthChange;
use crate::upstream::Upstream;
use futures_util::future::join_all;
use levee_config::HealthCheckConfig;
use levee_core::time::SystemClock;
use levee_core::Clock;
use std::sync::{Arc, Weak};

/// Starts the checks of `upstream` if it has any. Must run inside a tokio runtime.
pub fn spawn(upstream: &Arc<Upstream>) {
    let Some(config) = upstream.config().health_check.clone() else {
        return;
    };
    let weak = Arc::downgrade(upstream);
    tokio::spawn(run(weak, config));
}

async fn run(upstream: Weak<Upstream>, config: HealthCheckConfig) {
    let mut ticks = tokio::time::interval(config.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(upstream) = upstream.upgrade() else {
            return;
        };
        check_all(&upstream, &config).await;
    }
}

async fn check_all(upstream: &Upstream, config: &HealthCheckConfig) {
    let checks = upstream.endpoints().iter().map(|endpoint| async move {
        let result = check_one(upstream, endpoint.authority(), config).await;
        let change = endpoint.record_check(
            result.is_ok(),
            config.healthy,
            config.unhealthy,
            SystemClock.now(),
        );
        match change {
            HealthChange::BecameUnhealthy => tracing::warn!(
                upstream = %upstream.name(),
                endpoint = %endpoint.address(),
                error = %result.err().unwrap_or_default(),
                "endpoint failed its health checks and is out of rotation"
            ),
            HealthChange::BecameHealthy => tracing::info!(
                upstream = %upstream.name(),
                endpoint = %endpoint.address(),
                "endpoint passed its health checks and is back in rotation (slow start)"
            ),
            HealthChange::None => {}
        }
    });
    join_all(checks).await;
}

async fn check_one(
    upstream: &Upstream,
    authority: &http::uri::Authority,
    config: &HealthCheckConfig,
) -> Result<(), String> {
    let path: http::Uri = config
        .path
        .parse::<http::uri::PathAndQuery>()
        .map_err(|e| format!("bad health check path `{}`: {e}", config.path))?
        .into();
    // The URI form the client expects for this upstream's protocol, as a proxied request's.
    let version = client::version(upstream.config().protocol);
    let uri = crate::forwarding::upstream_uri(&path, authority, version)
        .map_err(|e| format!("bad health check path `{}`: {e}", config.path))?;
    let mut request = http::Request::new(body::empty());
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    request.headers_mut().insert(
        "user-agent",
        http::HeaderValue::from_static("levee-health-check"),
    );
    match tokio::time::timeout(
        config.timeout,
        upstream.client().request(authority, request),
    )
    .await
    {
        Err(_) => Err(format!("no answer within {:?}", config.timeout)),
        Ok(Err(e)) => Err(client::describe(&e)),
        Ok(Ok(response)) if response.status().is_success() => Ok(()),
        Ok(Ok(response)) => Err(format!("status {}", response.status().as_u16())),
    }
}
