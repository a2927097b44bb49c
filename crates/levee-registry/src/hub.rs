//! The replica-local event hub: the ring of recent events, the broadcast to this replica's
//! watchers, and the mirror of fleet state the events describe.
//!
//! Every change is an event with a monotonically increasing id assigned by the backend (the
//! memory store's counter, or one Redis `INCR` shared by all replicas). The backend hands the
//! events to [`Hub::publish`] in id order — the memory store under its lock, the Redis store
//! from its pub/sub subscription — so every replica's watchers see every change, in order.
//!
//! A watcher that resumes with `Last-Event-ID` gets the events after it from the ring when the
//! ring still holds them all; otherwise (too old, from another epoch, or the ring had a gap)
//! it gets a full snapshot first. The mirror is that snapshot: it is kept in step with the
//! ring under one lock, so "snapshot as of id N, then every event after N" has no gap and no
//! duplicate. The mirror is also the last known state served while the backend is down in
//! fail-open mode.

use levee_registry_client::api::{EventData, FleetSnapshot};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// An event as stored and sent.
#[derive(Debug)]
pub struct StoredEvent {
    /// Its id.
    pub id: u64,
    /// The `event:` name.
    pub kind: &'static str,
    /// The JSON `data:` (one line).
    pub json: String,
}

/// What watchers receive from the hub.
#[derive(Debug, Clone)]
pub enum HubMessage {
    /// The next event.
    Event(Arc<StoredEvent>),
    /// The backend was re-read after a gap: everything, as of the snapshot's `event_id`.
    Resync(Arc<FleetSnapshot>),
    /// The backend was lost (false) or regained (true).
    Status(bool),
    /// End every stream (fail-closed backend loss, shutdown).
    Close,
}

/// Where a new watcher starts.
#[derive(Debug)]
pub enum Attach {
    /// Send these events (possibly none), then follow the broadcast.
    Replay(Vec<Arc<StoredEvent>>),
    /// Send this snapshot, then follow the broadcast.
    Snapshot(Box<FleetSnapshot>),
}

#[derive(Debug)]
struct HubState {
    ring: VecDeque<Arc<StoredEvent>>,
    last_id: u64,
    mirror: FleetSnapshot,
}

/// See the module docs.
#[derive(Debug)]
pub struct Hub {
    state: Mutex<HubState>,
    tx: broadcast::Sender<HubMessage>,
    ring_size: usize,
}

impl Hub {
    /// A hub keeping `ring_size` events.
    pub fn new(ring_size: usize) -> Hub {
        let (tx, _) = broadcast::channel(ring_size.clamp(16, 4096));
        Hub {
            state: Mutex::new(HubState {
                ring: VecDeque::with_capacity(ring_size.min(4096)),
                last_id: 0,
                mirror: FleetSnapshot::default(),
            }),
            tx,
            ring_size: ring_size.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes event `id` with JSON `json` (an [`EventData`]). Ids at or below the last one
    /// are duplicates (a replayed backlog) and ignored; a jump in ids means events were missed,
    /// so the ring restarts at this one and older resumes get a snapshot.
    pub fn publish(&self, id: u64, json: &str) {
        let data: EventData = match serde_json::from_str(json) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(id, error = %e, "undecodable registry event skipped");
                return;
            }
        };
        let mut state = self.lock();
        if id <= state.last_id {
            return;
        }
        if state.last_id != 0 && id != state.last_id.saturating_add(1) {
            state.ring.clear();
        }
        let event = Arc::new(StoredEvent {
            id,
            kind: data.kind(),
            json: json.to_string(),
        });
        state.mirror.apply(id, &data);
        state.last_id = id;
        state.ring.push_back(event.clone());
        while state.ring.len() > self.ring_size {
            state.ring.pop_front();
        }
        // Sent under the lock so that attach() sees ring and broadcast in step.
        let _ = self.tx.send(HubMessage::Event(event));
    }

    /// Replaces everything after the backend was re-read (`snapshot` as of its `event_id`,
    /// with `ring` the backend's recent events up to it) and tells current watchers.
    pub fn reset(&self, mut snapshot: FleetSnapshot, ring: Vec<(u64, String)>) {
        let mut state = self.lock();
        snapshot.degraded = false;
        state.ring.clear();
        let mut expected = None;
        for (id, json) in ring {
            if id > snapshot.event_id {
                break;
            }
            if expected.is_some_and(|e| e != id) {
                state.ring.clear();
            }
            expected = Some(id + 1);
            let kind = serde_json::from_str::<EventData>(&json)
                .map(|d| d.kind())
                .unwrap_or("message");
            state
                .ring
                .push_back(Arc::new(StoredEvent { id, kind, json }));
            while state.ring.len() > self.ring_size {
                state.ring.pop_front();
            }
        }
        if state.ring.back().map(|e| e.id) != Some(snapshot.event_id) {
            // The ring must end where the snapshot does, or resumes could skip events.
            state.ring.clear();
        }
        state.last_id = snapshot.event_id;
        state.mirror = snapshot.clone();
        let _ = self.tx.send(HubMessage::Resync(Arc::new(snapshot)));
    }

    /// Where a watcher resuming after `resume` starts, and its subscription.
    pub fn attach(&self, resume: Option<u64>) -> (Attach, broadcast::Receiver<HubMessage>) {
        let state = self.lock();
        let rx = self.tx.subscribe();
        let attach = match resume {
            Some(r) if r == state.last_id => Attach::Replay(Vec::new()),
            Some(r)
                if r < state.last_id
                    && state
                        .ring
                        .front()
                        .is_some_and(|e| e.id <= r.saturating_add(1)) =>
            {
                Attach::Replay(state.ring.iter().filter(|e| e.id > r).cloned().collect())
            }
            _ => Attach::Snapshot(Box::new(state.mirror.clone())),
        };
        (attach, rx)
    }

    /// The mirror: last known state as of [`Hub::last_id`].
    pub fn mirror(&self) -> FleetSnapshot {
        self.lock().mirror.clone()
    }

    /// The last event id seen.
    pub fn last_id(&self) -> u64 {
        self.lock().last_id
    }

    /// The oldest event id the ring holds.
    pub fn oldest_id(&self) -> Option<u64> {
        self.lock().ring.front().map(|e| e.id)
    }

    /// Raises the last id without an event (a memory store starting after a restart), so new
    /// ids never repeat old ones.
    pub fn start_after(&self, id: u64) {
        let mut state = self.lock();
        if id > state.last_id {
            state.last_id = id;
            state.mirror.event_id = id;
            state.ring.clear();
        }
    }

    /// Tells watchers the backend was lost or regained.
    pub fn backend_status(&self, connected: bool) {
        let _ = self.tx.send(HubMessage::Status(connected));
    }

    /// Ends every watch stream.
    pub fn close_watchers(&self) {
        let _ = self.tx.send(HubMessage::Close);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toggle(name: &str) -> String {
        format!(r#"{{"type":"toggle","name":"{name}","toggle":{{"state":"on","version":1}}}}"#)
    }

    #[test]
    fn resumes_replay_from_the_ring_or_fall_back_to_a_snapshot() {
        let hub = Hub::new(3);
        for id in 1..=5 {
            hub.publish(id, &toggle(&format!("t{id}")));
        }
        // The ring holds 3, 4, 5.
        match hub.attach(Some(2)).0 {
            Attach::Replay(events) => {
                assert_eq!(events.iter().map(|e| e.id).collect::<Vec<_>>(), [3, 4, 5])
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(hub.attach(Some(1)).0, Attach::Snapshot(s) if s.event_id == 5 && s.toggles.len() == 5)
        );
        assert!(matches!(hub.attach(Some(5)).0, Attach::Replay(e) if e.is_empty()));
        assert!(matches!(hub.attach(Some(9)).0, Attach::Snapshot(_)));
        assert!(matches!(hub.attach(None).0, Attach::Snapshot(_)));
    }

    #[test]
    fn duplicates_are_ignored_and_gaps_restart_the_ring() {
        let hub = Hub::new(10);
        hub.publish(1, &toggle("a"));
        hub.publish(1, &toggle("a"));
        hub.publish(2, &toggle("b"));
        hub.publish(7, &toggle("c"));
        assert_eq!(hub.oldest_id(), Some(7));
        assert!(matches!(hub.attach(Some(2)).0, Attach::Snapshot(_)));
        assert!(matches!(hub.attach(Some(6)).0, Attach::Replay(e) if e.len() == 1));
    }
}
