//! The bulkhead (SPEC §3): bounds the concurrent calls of one partition (an upstream or a
//! route), queues the excess briefly, and sheds the least critical calls first.
//!
//! # Rules
//!
//! - **Limit.** `max_concurrent`, or the current value of the adaptive `limit`
//!   ([`crate::adaptive`]) when one is configured.
//! - **Admission.** A call of class *c* is admitted while the total in flight is below
//!   `max(1, floor(limit * shares[c] / 100))` (integer arithmetic). With the default shares and
//!   a limit of 10, critical calls fill 10 slots, standard 8, sheddable 5. Shares must not
//!   decrease with the class (validated), so the classes' limits are ordered too.
//! - **Queue.** A call that is not admitted waits if `max_queue > 0` and the queue has room.
//!   Waiting calls are ordered by class (critical first), then arrival.
//! - **Eviction.** When the queue is full, the arrival evicts the newest waiting call of the
//!   *lowest* class that is strictly lower than its own (lowest class first, newest within it);
//!   the evicted call is rejected (`evicted`) and the arrival takes its place. With no strictly
//!   lower class waiting, the arrival is rejected at once (`full`). With `max_queue: 0` every
//!   call that is not admitted is rejected at once.
//! - **Timeout.** A waiting call's deadline is `enqueued_at + max_wait`; at or after it, the
//!   call is rejected (`queue_timeout`). [`Bulkhead::expire_waiting`] does this, and so does
//!   every other bulkhead operation that knows the time, before it decides anything else.
//! - **Grants.** Whenever a slot frees, the head of the queue gets it if its class admits it;
//!   repeated while that holds. If the head is not admitted no later call is, so a lower class
//!   never overtakes a higher one. A granted call's slot counts from the grant.
//! - **Rejections.** `full`, `queue_timeout` and `evicted` are the `reason` label of
//!   `levee_bulkhead_rejections_total`; all are the outcome `rejected` with code
//!   `bulkhead_full` ([`crate::ErrorCode::BulkheadFull`]).
//! - **Samples.** [`BulkheadPermit::complete`] with `success`, `failure` or `timeout` feeds the
//!   adaptive limit (round trip = time holding the slot, in-flight count at admission, dropped
//!   = `failure` or `timeout`). Other outcomes, [`BulkheadPermit::release`] and dropping a
//!   permit free the slot without a sample: a cancelled call teaches the limit nothing.
//! - **Time.** Every decision takes `now`. The bulkhead remembers the latest `now` it was
//!   given and uses it when a caller passes an earlier one, and for work done in `Drop`
//!   (which has no `now`): dropping a permit or a granted queued call grants waiters at that
//!   remembered time.
//!
//! # Use
//!
//! ```
//! use levee_core::bulkhead::{Acquire, Bulkhead, BulkheadConfig};
//! use levee_core::{Criticality, Outcome, Timestamp};
//!
//! let bulkhead = Bulkhead::new(BulkheadConfig { max_concurrent: 1, ..Default::default() })?;
//! let now = Timestamp::from_nanos(1_000);
//! let permit = match bulkhead.try_acquire(Criticality::Critical, now) {
//!     Acquire::Permitted(permit) => permit,
//!     other => return Err(format!("an empty bulkhead admits, got {other:?}")),
//! };
//! assert!(matches!(bulkhead.try_acquire(Criticality::Critical, now), Acquire::Rejected(_)));
//! permit.complete(Outcome::Success, now);
//! assert_eq!(bulkhead.in_flight(), 0);
//! # Ok::<(), String>(())
//! ```
//!
//! The design notes and every decision where SPEC is silent are in
//! `conformance/policies/bulkhead.md`, with the vectors that pin them.

mod config;
mod permit;
mod rejection;
mod state;

pub use config::{BulkheadConfig, Shares};
pub use permit::{BulkheadPermit, QueuedCall};
pub use rejection::{RejectReason, Rejection};

use crate::adaptive::Algorithm;
use crate::criticality::Criticality;
use crate::time::Timestamp;
use serde::Serialize;
use state::{Admission, Sample, State};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;

/// A bulkhead for one partition. Cheap to clone (the clones share the state); `Send + Sync`.
#[derive(Debug, Clone)]
pub struct Bulkhead {
    shared: Arc<Shared>,
}

/// The state every clone, permit and queued call shares.
#[derive(Debug)]
pub(crate) struct Shared {
    config: BulkheadConfig,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves consistent counters (every update is
        // a single assignment), so a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` under the lock.
    fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.lock())
    }

    /// Runs `f` under the lock, then wakes the wakers it collected after unlocking.
    fn with_wakers<R>(&self, f: impl FnOnce(&mut State, &mut Vec<Waker>) -> R) -> R {
        let mut wakers = Vec::new();
        let result = f(&mut self.lock(), &mut wakers);
        for waker in wakers {
            waker.wake();
        }
        result
    }

    /// Frees one slot; `now` is `None` from `Drop`.
    fn release(&self, now: Option<Timestamp>, sample: Option<Sample>) {
        self.with_wakers(|state, wakers| {
            let now = state.observe(now);
            state.release(now, sample, wakers);
        });
    }
}

/// The answer to [`Bulkhead::try_acquire`].
#[derive(Debug)]
#[must_use = "dropping the answer frees the slot or leaves the queue"]
pub enum Acquire {
    /// Admitted: the call may run while the permit lives.
    Permitted(BulkheadPermit),
    /// Waiting for a slot until [`QueuedCall::deadline`].
    Queued(QueuedCall),
    /// Refused at once (reason `full`).
    Rejected(Rejection),
}

impl Bulkhead {
    /// A bulkhead with `config`, or the validation message.
    pub fn new(config: BulkheadConfig) -> Result<Self, String> {
        config.validate()?;
        let state = Mutex::new(State::new(&config));
        Ok(Bulkhead {
            shared: Arc::new(Shared { config, state }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &BulkheadConfig {
        &self.shared.config
    }

    /// Admits, queues or rejects a call of `class` arriving at `now` (see the module rules).
    /// Waiting calls whose deadline is at or before `now` are rejected first.
    pub fn try_acquire(&self, class: Criticality, now: Timestamp) -> Acquire {
        let shared = &self.shared;
        let admission = shared.with_wakers(|state, wakers| {
            let now = state.observe(Some(now));
            state.acquire(class, now, wakers)
        });
        match admission {
            Admission::Permitted {
                acquired_at,
                in_flight,
            } => Acquire::Permitted(BulkheadPermit::new(
                Arc::clone(shared),
                class,
                acquired_at,
                in_flight,
            )),
            Admission::Queued {
                seq,
                enqueued_at,
                deadline,
            } => Acquire::Queued(QueuedCall::new(
                Arc::clone(shared),
                seq,
                class,
                enqueued_at,
                deadline,
            )),
            Admission::Rejected(reason) => Acquire::Rejected(Rejection { reason, class }),
        }
    }

    /// Rejects (`queue_timeout`) every waiting call whose deadline is at or before `now` and
    /// returns how many. Async edges call this when a queued call's deadline passes.
    pub fn expire_waiting(&self, now: Timestamp) -> usize {
        self.shared.with_wakers(|state, wakers| {
            let now = state.observe(Some(now));
            state.expire(now, wakers)
        })
    }

    /// Calls holding a slot (`levee_bulkhead_in_flight`).
    pub fn in_flight(&self) -> u32 {
        self.shared.with_state(|state| state.in_flight())
    }

    /// Calls waiting (`levee_bulkhead_queue_depth`).
    pub fn queue_depth(&self) -> usize {
        self.shared.with_state(|state| state.queue_depth())
    }

    /// The current limit: `max_concurrent` or the adaptive limit's value.
    pub fn limit(&self) -> u32 {
        self.shared.with_state(|state| state.limit())
    }

    /// In-flight calls below which `class` is admitted: `max(1, floor(limit * share / 100))`.
    pub fn class_limit(&self, class: Criticality) -> u32 {
        self.shared.with_state(|state| state.class_limit(class))
    }

    /// A consistent view of the state, for `/health`.
    pub fn snapshot(&self) -> BulkheadSnapshot {
        self.shared.with_state(|state| {
            let waiting = state.waiting_by_class();
            let per_class = |f: &dyn Fn(Criticality) -> u32| PerClass {
                critical: f(Criticality::Critical),
                standard: f(Criticality::Standard),
                sheddable: f(Criticality::Sheddable),
            };
            BulkheadSnapshot {
                limit: state.limit(),
                algorithm: state.adaptive().map(|a| a.algorithm()),
                in_flight: state.in_flight(),
                queue_depth: u32::try_from(state.queue_depth()).unwrap_or(u32::MAX),
                max_queue: self.shared.config.max_queue,
                class_limits: per_class(&|c| state.class_limit(c)),
                waiting: per_class(&|c| waiting.get(c.index()).copied().unwrap_or(0)),
            }
        })
    }
}

/// A bulkhead's state at one moment, as `/health` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BulkheadSnapshot {
    /// The current limit.
    pub limit: u32,
    /// The adaptive algorithm, or `None` for a fixed `max_concurrent`.
    pub algorithm: Option<Algorithm>,
    /// Calls holding a slot.
    pub in_flight: u32,
    /// Calls waiting.
    pub queue_depth: u32,
    /// The queue's capacity.
    pub max_queue: u32,
    /// Each class's admission limit under the current limit.
    pub class_limits: PerClass,
    /// Waiting calls per class.
    pub waiting: PerClass,
}

/// One number per criticality class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PerClass {
    /// `critical`
    pub critical: u32,
    /// `standard`
    pub standard: u32,
    /// `sheddable`
    pub sheddable: u32,
}

#[cfg(test)]
mod tests;
