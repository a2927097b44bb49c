//! The in-process backend: documents in a map under one mutex. Events get their ids and reach
//! the hub under the same lock, so their order is the order of the writes.

use super::{Doc, Kind, Put};
use crate::hub::Hub;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
struct State {
    docs: HashMap<(Kind, String), Doc>,
    index: HashMap<Kind, BTreeMap<String, String>>,
    seq: u64,
}

/// See the module docs.
#[derive(Debug)]
pub struct MemoryStore {
    state: Mutex<State>,
    hub: Arc<Hub>,
}

impl MemoryStore {
    /// A store whose event ids continue after `seq` (the hub is told too).
    pub fn new(hub: Arc<Hub>, seq: u64) -> MemoryStore {
        hub.start_after(seq);
        MemoryStore {
            state: Mutex::new(State {
                seq,
                ..State::default()
            }),
            hub,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn get(&self, kind: Kind, name: &str) -> Option<Doc> {
        self.lock().docs.get(&(kind, name.to_string())).cloned()
    }

    pub(crate) fn list(&self, kind: Kind) -> BTreeMap<String, Doc> {
        self.lock()
            .docs
            .iter()
            .filter(|((k, _), _)| *k == kind)
            .map(|((_, n), d)| (n.clone(), d.clone()))
            .collect()
    }

    pub(crate) fn index(&self, kind: Kind) -> BTreeMap<String, String> {
        self.lock().index.get(&kind).cloned().unwrap_or_default()
    }

    fn write(&self, state: &mut State, put: &Put<'_>, version: u64) {
        state.docs.insert(
            (put.kind, put.name.to_string()),
            Doc {
                version,
                json: put.json.to_string(),
            },
        );
        state
            .index
            .entry(put.kind)
            .or_default()
            .insert(put.name.to_string(), put.index.to_string());
        for event in put.events {
            state.seq += 1;
            self.hub.publish(state.seq, event);
        }
    }

    pub(crate) fn cas(&self, put: &Put<'_>, expected: u64) -> Option<u64> {
        let mut state = self.lock();
        let current = state
            .docs
            .get(&(put.kind, put.name.to_string()))
            .map_or(0, |d| d.version);
        if current != expected {
            return None;
        }
        let version = current + 1;
        self.write(&mut state, put, version);
        Some(version)
    }

    pub(crate) fn restore(&self, put: &Put<'_>, version: u64) -> bool {
        let mut state = self.lock();
        if state.docs.contains_key(&(put.kind, put.name.to_string())) {
            return false;
        }
        self.write(&mut state, put, version.max(1));
        true
    }
}
