//! Keeps one replica in step with Redis: the subscription that feeds the replica's hub with
//! every replica's events, loss detection, and catching up after a loss.
//!
//! A session subscribes first, then reads the whole state (documents, last event id and the
//! event ring, atomically) and catches the hub up: by replaying the ring when it still holds
//! everything the hub missed, else by resetting the hub to a snapshot (current watchers get it
//! as a `snapshot` event). Messages that arrived meanwhile are duplicates by id and dropped.
//! A jump in ids on the subscription means a message was lost: the session catches up again.
//!
//! Loss detection does not wait for TCP: the subscriber sends `PING` on its subscription
//! every `ping_interval` (one at a time) and gives up when a `PING` is not answered within
//! `timeout`, when nothing (message or pong) arrived for `ping_interval + timeout`, or when
//! the connection ends, so a frozen or blackholed Redis is noticed within about two seconds
//! at the defaults (TCP keepalive is only the backstop). Then the backend is marked
//! down (`/healthz` degraded; writes 503; reads last-known or 503 per fail mode) and the
//! session is retried every `ping_interval`.
//!
//! A Redis without the `meta` key is new or restarted empty: the first replica to claim it
//! writes back the operator state it knew (toggles, overrides, levels, policies) wherever Redis
//! holds nothing yet, so operator decisions outlive a Redis restart without persistence.

use crate::config::FailMode;
use crate::registry::{Registry, SavedState};
use crate::store::redis::{parse_event, RedisStore};
use futures_util::StreamExt;
use redis::aio::PubSubSink;
use redis::Value;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// Runs until shutdown.
pub async fn run(
    registry: Arc<Registry>,
    store: Arc<RedisStore>,
    mut shutdown: watch::Receiver<bool>,
) {
    let interval = store.config().ping_interval;
    loop {
        if *shutdown.borrow() {
            return;
        }
        match session(&registry, &store, &mut shutdown).await {
            Ok(()) => return,
            Err(e) => {
                store.clear_pool();
                if store.set_connected(false) {
                    tracing::warn!(error = %e, "registry lost Redis; serving {}", match registry.config().fail_mode {
                        FailMode::Open => "last known state (fail-open)",
                        FailMode::Closed => "503s (fail-closed)",
                    });
                    match registry.config().fail_mode {
                        FailMode::Closed => registry.hub().close_watchers(),
                        FailMode::Open => registry.hub().backend_status(false),
                    }
                } else {
                    tracing::debug!(error = %e, "Redis still unavailable");
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// A ping in flight on the subscription: its pong, or why there was none.
type Pong = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

fn ping(sink: &PubSubSink, timeout: Duration) -> Pong {
    let mut sink = sink.clone();
    Box::pin(async move {
        match tokio::time::timeout(timeout, sink.ping::<Value>()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("Redis did not answer a PING: {e}")),
            Err(_) => Err("Redis did not answer a PING in time".to_string()),
        }
    })
}

async fn session(
    registry: &Registry,
    store: &RedisStore,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), String> {
    let config = store.config().clone();
    // Messages are queued by the crate's reader task from here on, so none published while
    // catching up is missed.
    let (sink, mut messages) = store.subscribe().await.map_err(|e| e.to_string())?;
    catch_up(registry, store).await?;
    if !store.set_connected(true) {
        tracing::info!(url = %config.url, "registry connected to Redis");
        registry.hub().backend_status(true);
    }
    let mut ticker = tokio::time::interval(config.ping_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    let silence = config.ping_interval + config.timeout;
    let mut pong: Option<Pong> = None;
    loop {
        tokio::select! {
            message = messages.next() => {
                let Some(message) = message else {
                    return Err("the Redis subscription closed".into());
                };
                last_heard = Instant::now();
                let message = String::from_utf8_lossy(message.get_payload_bytes());
                let Some((id, json)) = parse_event(&message) else {
                    tracing::error!(%message, "unreadable event on the Redis channel");
                    continue;
                };
                let last = registry.hub().last_id();
                if last != 0 && id > last.saturating_add(1) {
                    catch_up(registry, store).await?;
                } else {
                    registry.hub().publish(id, json);
                }
            }
            answered = async {
                match pong.as_mut() {
                    Some(pong) => pong.await,
                    None => std::future::pending().await,
                }
            } => {
                pong = None;
                answered?;
                last_heard = Instant::now();
            }
            _ = ticker.tick() => {
                if last_heard.elapsed() > silence {
                    return Err(format!("Redis sent nothing for {silence:?}"));
                }
                if pong.is_none() {
                    pong = Some(ping(&sink, config.timeout));
                }
            }
            _ = shutdown.changed() => return Ok(()),
        }
    }
}

/// Brings the hub up to date with Redis (see the module docs).
async fn catch_up(registry: &Registry, store: &RedisStore) -> Result<(), String> {
    let (mut raw, seeded) = store.raw_state().await.map_err(|e| e.to_string())?;
    if !seeded && store.claim_seed().await.map_err(|e| e.to_string())? {
        let saved = SavedState::from_snapshot(&registry.hub().mirror());
        if !saved.is_empty() {
            tracing::warn!(
                "Redis holds no registry state (new, or restarted empty): restoring the \
                 toggles, overrides, degradation setting and policies this replica knew"
            );
            registry.restore(&saved).await.map_err(|e| e.to_string())?;
            raw = store.raw_state().await.map_err(|e| e.to_string())?.0;
        }
    }
    let hub = registry.hub();
    let last = hub.last_id();
    if last != 0 && raw.seq == last {
        return Ok(());
    }
    let covers = raw
        .ring
        .first()
        .is_some_and(|(first, _)| *first <= last.saturating_add(1));
    if last != 0 && raw.seq > last && covers {
        for (id, json) in &raw.ring {
            if *id > last {
                hub.publish(*id, json);
            }
        }
    } else {
        let snapshot = registry.build_snapshot(&raw).map_err(|e| e.to_string())?;
        hub.reset(snapshot, raw.ring);
    }
    Ok(())
}

/// Waits up to `limit` for the first successful session, so a replica starting next to a
/// healthy Redis serves fresh state from its first request.
pub async fn wait_connected(store: &RedisStore, limit: Duration) {
    let deadline = Instant::now() + limit;
    while !store.connected() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
