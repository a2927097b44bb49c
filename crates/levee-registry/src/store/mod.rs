//! Where fleet state lives: versioned JSON documents with compare-and-set, plus the event log.
//!
//! Every piece of state is a *document* of a [`Kind`] and name (a breaker per endpoint key, a
//! policy per key, a toggle per name, one degradation setting) holding JSON and a version.
//! Writers read a document, decide in Rust (levee-core's rules), and commit with
//! [`Store::cas`], which succeeds only if the version is unchanged and, in the same atomic
//! step, appends the change's events to the log with fresh ids. A lost race is retried by the
//! caller. This keeps every rule in one place (Rust) and makes the two backends differ only in
//! where the bytes are:
//!
//! - [`memory::MemoryStore`]: a map under a mutex; events go straight to the hub.
//! - [`redis::RedisStore`]: one hash per document, updated by a Lua script (version check,
//!   write, `INCR` the event id, append to a capped list, `PUBLISH`) so several registry
//!   replicas share state atomically; each replica's subscriber feeds its own hub.
//!
//! Documents are never deleted (a deleted toggle or policy is a tombstone), so versions only
//! grow and a compare-and-set can never be fooled by a document deleted and re-created.

pub mod memory;
pub mod redis;

use std::collections::BTreeMap;
use std::fmt;

/// The kinds of documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A fleet breaker (`levee_core::fleet::FleetBreaker`), indexed by its state.
    Breaker,
    /// A distributed breaker policy.
    Policy,
    /// A named toggle.
    Toggle,
    /// The fleet degradation setting (one document, `fleet`).
    Degradation,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 4] = [Kind::Breaker, Kind::Policy, Kind::Toggle, Kind::Degradation];

    /// The spelling in Redis keys and snapshot files.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Breaker => "breaker",
            Kind::Policy => "policy",
            Kind::Toggle => "toggle",
            Kind::Degradation => "degradation",
        }
    }

    /// Parses [`Kind::as_str`].
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A document's JSON and version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doc {
    /// Bumps on every write; 0 means "absent".
    pub version: u64,
    /// The JSON.
    pub json: String,
}

/// Everything stored, as of one event id.
#[derive(Debug, Clone, Default)]
pub struct RawState {
    /// The last event id.
    pub seq: u64,
    /// Documents by kind and name.
    pub docs: BTreeMap<(Kind, String), Doc>,
    /// Recent events `(id, json)`, oldest first.
    pub ring: Vec<(u64, String)>,
}

/// Why the store could not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The backend is unreachable or did not answer in time.
    Unavailable(String),
    /// The backend answered something this registry cannot read.
    Corrupt(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Unavailable(m) => write!(f, "the registry backend is unavailable: {m}"),
            StoreError::Corrupt(m) => write!(f, "the registry backend holds unreadable data: {m}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// The backend.
#[derive(Debug)]
pub enum Store {
    /// In-process.
    Memory(memory::MemoryStore),
    /// Shared through Redis.
    Redis(std::sync::Arc<redis::RedisStore>),
}

impl Store {
    /// `memory` or `redis`.
    pub fn name(&self) -> &'static str {
        match self {
            Store::Memory(_) => "memory",
            Store::Redis(_) => "redis",
        }
    }

    /// False while the backend is unreachable.
    pub fn connected(&self) -> bool {
        match self {
            Store::Memory(_) => true,
            Store::Redis(r) => r.connected(),
        }
    }

    /// One document.
    pub async fn get(&self, kind: Kind, name: &str) -> Result<Option<Doc>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.get(kind, name)),
            Store::Redis(r) => r.get(kind, name).await,
        }
    }

    /// Every document of a kind, by name.
    pub async fn list(&self, kind: Kind) -> Result<BTreeMap<String, Doc>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.list(kind)),
            Store::Redis(r) => r.list(kind).await,
        }
    }

    /// The index of a kind: name → index value (a breaker's state).
    pub async fn index(&self, kind: Kind) -> Result<BTreeMap<String, String>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.index(kind)),
            Store::Redis(r) => r.index(kind).await,
        }
    }

    /// Writes `put` if the document's version is still `expected` (0: absent), setting its
    /// index value and appending its events with fresh ids, all atomically. `Ok(None)` when
    /// another writer got there first; otherwise the new version.
    pub async fn cas(&self, put: &Put<'_>, expected: u64) -> Result<Option<u64>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.cas(put, expected)),
            Store::Redis(r) => r.cas(put, expected).await,
        }
    }

    /// Writes `put` at `version` only if the document does not exist (restoring saved state).
    /// `Ok(false)` when it already exists.
    pub async fn restore(&self, put: &Put<'_>, version: u64) -> Result<bool, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.restore(put, version)),
            Store::Redis(r) => r.restore(put, version).await,
        }
    }
}

/// One document write with its events.
#[derive(Debug, Clone, Copy)]
pub struct Put<'a> {
    /// The document's kind.
    pub kind: Kind,
    /// Its name.
    pub name: &'a str,
    /// The new JSON.
    pub json: &'a str,
    /// The index value (a breaker's state; empty for other kinds).
    pub index: &'a str,
    /// Events (JSON) describing the change.
    pub events: &'a [String],
}
