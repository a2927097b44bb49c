//! `GET /api/events`: the dashboard's live stream, as Server-Sent Events.
//!
//! - On connect: `event: snapshot` with the whole [`DashboardSnapshot`] as JSON.
//! - Then `event: snapshot` again whenever the state changed, at most every
//!   [`SNAPSHOT_EVERY`] (countdowns and the snapshot's own time do not count as changes: the
//!   page counts down by itself).
//! - `event: transition` with a [`TransitionEvent`] for each breaker transition, within
//!   [`POLL_EVERY`] of it happening (`id:` is its `seq`).
//! - A `:keep-alive` comment every [`KEEP_ALIVE`], so proxies and browsers keep an idle
//!   stream open.
//! - When the instance starts draining, a last snapshot (with `status: "draining"`) and the
//!   stream ends; new streams are refused with 503 from then on.
//!
//! One producer task per admin listener serves every stream: it reads the backend every
//! [`POLL_EVERY`] and builds a snapshot at most every [`SNAPSHOT_EVERY`], whatever the number
//! of clients, and it stops when the last client leaves. It only reads in-memory state the
//! way `/health` does, so it never blocks the data plane. At most [`MAX_CLIENTS`] streams are
//! open at once; one more is refused with 503 rather than letting open dashboards grow
//! without bound.

use crate::backend::AdminBackend;
use crate::dashboard::{DashboardSnapshot, TransitionEvent};
use crate::problem::AdminProblem;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use http::HeaderValue;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{broadcast, watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Most streams open at once.
pub const MAX_CLIENTS: usize = 64;
/// Shortest time between two snapshots of a stream.
pub const SNAPSHOT_EVERY: Duration = Duration::from_millis(500);
/// How often the producer looks for new transitions.
pub const POLL_EVERY: Duration = Duration::from_millis(100);
/// Time between keep-alive comments.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// A snapshot ready to send.
struct Frame {
    json: String,
    draining: bool,
}

#[derive(Clone)]
struct Channels {
    snapshots: watch::Sender<Arc<Frame>>,
    transitions: broadcast::Sender<Arc<TransitionEvent>>,
}

/// The streams' shared producer.
pub(crate) struct Hub {
    backend: Arc<dyn AdminBackend>,
    mutations_enabled: bool,
    clients: Arc<Semaphore>,
    /// The running producer's channels; `None` while no stream is open.
    producer: Mutex<Option<Channels>>,
}

impl Hub {
    pub(crate) fn new(backend: Arc<dyn AdminBackend>, mutations_enabled: bool) -> Arc<Hub> {
        Arc::new(Hub {
            backend,
            mutations_enabled,
            clients: Arc::new(Semaphore::new(MAX_CLIENTS)),
            producer: Mutex::new(None),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Option<Channels>> {
        self.producer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The dashboard state now.
    pub(crate) fn snapshot(&self) -> DashboardSnapshot {
        let mut snapshot = self.backend.dashboard();
        snapshot.mutations_enabled = self.mutations_enabled;
        snapshot
    }

    /// Opens a stream, or refuses with 503 when [`MAX_CLIENTS`] are open.
    pub(crate) fn stream(self: &Arc<Self>) -> Result<Response, AdminProblem> {
        let permit = Arc::clone(&self.clients).try_acquire_owned().map_err(|_| {
            AdminProblem::unavailable(format!(
                "{MAX_CLIENTS} dashboard streams are open already; close a dashboard tab and \
                 try again."
            ))
        })?;
        // Subscribe before taking the first snapshot: a transition in between is sent twice
        // at worst (the page drops duplicates by `seq`), never lost.
        let (mut snapshots, transitions) = {
            let mut running = self.lock();
            let channels = match &*running {
                Some(channels) => channels.clone(),
                None => {
                    let channels = Channels {
                        snapshots: watch::channel(Arc::new(Frame {
                            json: String::new(),
                            draining: false,
                        }))
                        .0,
                        transitions: broadcast::channel(256).0,
                    };
                    *running = Some(channels.clone());
                    let start = self
                        .backend
                        .transitions_since(0, 1)
                        .last()
                        .map_or(0, |t| t.seq);
                    tokio::spawn(produce(Arc::clone(self), channels.clone(), start));
                    channels
                }
            };
            (
                channels.snapshots.subscribe(),
                channels.transitions.subscribe(),
            )
        };
        snapshots.borrow_and_update();
        let first = self.snapshot();
        let first = Frame {
            json: serde_json::to_string(&first).unwrap_or_else(|_| "{}".into()),
            draining: false,
        };
        let client = Client {
            first: Some(first.json),
            snapshots,
            transitions,
            done: false,
            _permit: permit,
        };
        let stream = futures_util::stream::unfold(client, next_event);
        let mut response = Sse::new(stream)
            .keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive"))
            .into_response();
        // Tell buffering reverse proxies (nginx) to pass events through as they come.
        response
            .headers_mut()
            .insert("x-accel-buffering", HeaderValue::from_static("no"));
        Ok(response)
    }
}

/// The part of a snapshot that counts as a change: without its own time, countdowns and the
/// registry's contact age, which move on every read.
fn fingerprint(snapshot: &DashboardSnapshot) -> String {
    let mut s = snapshot.clone();
    s.at_unix_ms = 0;
    for b in &mut s.breakers {
        b.view.open_remaining_ms = None;
    }
    if let Some(r) = &mut s.registry {
        r.fleet_state_age_ms = None;
    }
    serde_json::to_string(&s).unwrap_or_default()
}

async fn produce(hub: Arc<Hub>, channels: Channels, mut seq: u64) {
    let mut tick = tokio::time::interval(POLL_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_fingerprint = String::new();
    let mut last_snapshot: Option<Instant> = None;
    loop {
        tick.tick().await;
        {
            let mut running = hub.lock();
            if channels.snapshots.receiver_count() == 0 {
                *running = None;
                return;
            }
        }
        for t in hub.backend.transitions_since(seq, 256) {
            seq = seq.max(t.seq);
            let _ = channels.transitions.send(Arc::new(t));
        }
        if last_snapshot.is_some_and(|at| at.elapsed() < SNAPSHOT_EVERY) {
            continue;
        }
        let snapshot = hub.snapshot();
        let fingerprint = fingerprint(&snapshot);
        if fingerprint == last_fingerprint {
            continue;
        }
        last_snapshot = Some(Instant::now());
        last_fingerprint = fingerprint;
        let draining = matches!(snapshot.status, crate::HealthStatus::Draining);
        let json = serde_json::to_string(&snapshot).unwrap_or_else(|_| "{}".into());
        channels
            .snapshots
            .send_replace(Arc::new(Frame { json, draining }));
    }
}

/// One open stream.
struct Client {
    first: Option<String>,
    snapshots: watch::Receiver<Arc<Frame>>,
    transitions: broadcast::Receiver<Arc<TransitionEvent>>,
    done: bool,
    _permit: OwnedSemaphorePermit,
}

async fn next_event(mut client: Client) -> Option<(Result<Event, Infallible>, Client)> {
    if let Some(json) = client.first.take() {
        return Some((Ok(Event::default().event("snapshot").data(json)), client));
    }
    if client.done {
        return None;
    }
    loop {
        tokio::select! {
            biased;
            received = client.transitions.recv() => match received {
                Ok(t) => {
                    let event = Event::default()
                        .event("transition")
                        .id(t.seq.to_string())
                        .data(serde_json::to_string(&*t).unwrap_or_else(|_| "{}".into()));
                    return Some((Ok(event), client));
                }
                // Too slow a reader: the missed transitions are in the next snapshot.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            },
            changed = client.snapshots.changed() => {
                if changed.is_err() {
                    return None;
                }
                let frame = Arc::clone(&client.snapshots.borrow_and_update());
                client.done = frame.draining;
                let event = Event::default().event("snapshot").data(frame.json.clone());
                return Some((Ok(event), client));
            }
        }
    }
}
