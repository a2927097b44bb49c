//! The recent breaker transitions of one instance, for the admin dashboard's feed.
//!
//! SPEC §2 says every transition emits an event `{key, from, to, reason, at}`; metrics count
//! them and logs show them, and this log keeps the last [`TransitionLog::CAPACITY`] of them in
//! memory so the dashboard can show a page that opens mid-outage what happened, and stream new
//! ones as they happen.
//!
//! Why here: [`Metrics::breaker_transition`](crate::Metrics::breaker_transition) is the one
//! place every transition of the process passes through (local, operator and fleet), so the
//! log is fed by that call and no data-plane code path needs to know about the dashboard.
//!
//! Cost on the data plane: a transition is rare (a breaker changes state at most a few times
//! per wait period); recording one is a short mutex-guarded push into a bounded ring. Readers
//! poll [`TransitionLog::sequence`] (one atomic load) and copy out only what is new.

use levee_core::breaker::{Reason, State, Transition};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

/// One recorded transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransitionRecord {
    /// Position in the log: 1 for the first transition of the process, +1 for each one after.
    pub seq: u64,
    /// The endpoint key.
    pub key: Arc<str>,
    /// The state left.
    pub from: State,
    /// The state entered.
    pub to: State,
    /// Why (SPEC §2 words).
    pub reason: Reason,
    /// When it was recorded, in milliseconds since the Unix epoch (wall clock, for people;
    /// the transition's own `at` is on the monotonic policy clock).
    pub at_unix_ms: u64,
}

#[derive(Debug, Default)]
struct Inner {
    ring: VecDeque<TransitionRecord>,
    /// The time of each key's last transition (not evicted with the ring: "in this state
    /// since" must stay right for a quiet breaker).
    last_change: HashMap<Arc<str>, u64>,
}

/// The last [`CAPACITY`](Self::CAPACITY) transitions, oldest first.
#[derive(Debug)]
pub struct TransitionLog {
    inner: Mutex<Inner>,
    sequence: AtomicU64,
    started_unix_ms: u64,
}

impl Default for TransitionLog {
    fn default() -> Self {
        TransitionLog {
            inner: Mutex::new(Inner::default()),
            sequence: AtomicU64::new(0),
            started_unix_ms: unix_ms(),
        }
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl TransitionLog {
    /// How many transitions are kept; older ones are dropped first.
    pub const CAPACITY: usize = 256;

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock only means a panic elsewhere; the ring is always consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records `transition` now.
    pub fn record(&self, transition: &Transition) {
        let at_unix_ms = unix_ms();
        let mut inner = self.lock();
        let seq = self.sequence.load(Ordering::Relaxed) + 1;
        if inner.ring.len() == Self::CAPACITY {
            inner.ring.pop_front();
        }
        inner.ring.push_back(TransitionRecord {
            seq,
            key: Arc::clone(&transition.key),
            from: transition.from,
            to: transition.to,
            reason: transition.reason,
            at_unix_ms,
        });
        inner
            .last_change
            .insert(Arc::clone(&transition.key), at_unix_ms);
        // Published after the record is in place, under the lock: a reader that sees the new
        // sequence finds the record.
        self.sequence.store(seq, Ordering::Release);
    }

    /// The sequence number of the last transition recorded (0 before any).
    pub fn sequence(&self) -> u64 {
        self.sequence.load(Ordering::Acquire)
    }

    /// The transitions after `seq` still in the log, oldest first, at most `limit` (the newest
    /// ones when there are more).
    pub fn since(&self, seq: u64, limit: usize) -> Vec<TransitionRecord> {
        if self.sequence() <= seq {
            return Vec::new();
        }
        let inner = self.lock();
        let newer = inner.ring.iter().filter(|r| r.seq > seq).count();
        inner
            .ring
            .iter()
            .filter(|r| r.seq > seq)
            .skip(newer.saturating_sub(limit))
            .cloned()
            .collect()
    }

    /// When `key` last changed state (Unix ms); `None` if it never did since the start.
    pub fn last_change(&self, key: &str) -> Option<u64> {
        self.lock().last_change.get(key).copied()
    }

    /// When this log was created (Unix ms): a breaker that never changed state has been in
    /// its state at least since then.
    pub fn started_unix_ms(&self) -> u64 {
        self.started_unix_ms
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use levee_core::Timestamp;

    fn t(key: &str, from: State, to: State) -> Transition {
        Transition {
            key: Arc::from(key),
            from,
            to,
            reason: Reason::Operator,
            at: Timestamp::from_nanos(1),
        }
    }

    #[test]
    fn records_in_order_and_reads_only_what_is_new() {
        let log = TransitionLog::default();
        assert_eq!(log.sequence(), 0);
        assert!(log.since(0, 10).is_empty());
        assert_eq!(log.last_change("a"), None);
        log.record(&t("a", State::Closed, State::Open));
        log.record(&t("b", State::Closed, State::ForcedOpen));
        assert_eq!(log.sequence(), 2);
        let all = log.since(0, 10);
        assert_eq!(all.len(), 2);
        assert_eq!((all[0].seq, &*all[0].key), (1, "a"));
        assert_eq!((all[1].seq, all[1].to), (2, State::ForcedOpen));
        let new = log.since(1, 10);
        assert_eq!(new.len(), 1);
        assert_eq!(&*new[0].key, "b");
        assert!(log.since(2, 10).is_empty());
        assert!(log.last_change("a").is_some());
        // A limit keeps the newest.
        let last = log.since(0, 1);
        assert_eq!(last.len(), 1);
        assert_eq!(last[0].seq, 2);
    }

    #[test]
    fn the_ring_is_bounded_but_last_change_is_kept() {
        let log = TransitionLog::default();
        log.record(&t("quiet", State::Closed, State::Open));
        for _ in 0..TransitionLog::CAPACITY + 10 {
            log.record(&t("busy", State::Closed, State::Open));
        }
        let all = log.since(0, usize::MAX);
        assert_eq!(all.len(), TransitionLog::CAPACITY);
        assert!(all.iter().all(|r| &*r.key == "busy"));
        assert_eq!(all[0].seq, 12);
        assert!(log.last_change("quiet").is_some());
    }
}
