//! What a caller holds: a [`BulkheadPermit`] (a slot, released on drop) or a [`QueuedCall`]
//! (a place in line, a future of a permit, left on drop). Neither can leak a slot.

use super::rejection::Rejection;
use super::state::{Sample, TicketStatus};
use super::Shared;
use crate::criticality::Criticality;
use crate::outcome::Outcome;
use crate::time::Timestamp;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// One slot in a bulkhead. Dropping it frees the slot; [`complete`](Self::complete) also
/// reports the call to the adaptive limit.
#[derive(Debug)]
#[must_use = "dropping a permit frees its slot at once"]
pub struct BulkheadPermit {
    shared: Option<Arc<Shared>>,
    class: Criticality,
    acquired_at: Timestamp,
    in_flight: u32,
}

impl BulkheadPermit {
    pub(super) fn new(
        shared: Arc<Shared>,
        class: Criticality,
        acquired_at: Timestamp,
        in_flight: u32,
    ) -> Self {
        BulkheadPermit {
            shared: Some(shared),
            class,
            acquired_at,
            in_flight,
        }
    }

    /// The call's class.
    pub fn class(&self) -> Criticality {
        self.class
    }

    /// When the slot was granted (for a queued call: when it left the queue).
    pub fn acquired_at(&self) -> Timestamp {
        self.acquired_at
    }

    /// The bulkhead's in-flight count right after this call was admitted (itself included).
    pub fn in_flight_at_acquire(&self) -> u32 {
        self.in_flight
    }

    /// The call ended with `outcome` at `now`: a `success`, `failure` or `timeout` is a sample
    /// for the adaptive limit (round trip `now - acquired_at`, dropped when `failure` or
    /// `timeout`); any other outcome teaches it nothing. Then the slot is freed.
    pub fn complete(mut self, outcome: Outcome, now: Timestamp) {
        let sample = outcome.is_counted().then(|| Sample {
            rtt: now.saturating_since(self.acquired_at),
            in_flight: self.in_flight,
            dropped: outcome.is_failure(),
        });
        if let Some(shared) = self.shared.take() {
            shared.release(Some(now), sample);
        }
    }

    /// Frees the slot at `now` without a sample (the same as dropping, with the time known).
    pub fn release(mut self, now: Timestamp) {
        if let Some(shared) = self.shared.take() {
            shared.release(Some(now), None);
        }
    }
}

impl Drop for BulkheadPermit {
    /// Frees the slot without a sample, at the latest time the bulkhead has seen.
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            shared.release(None, None);
        }
    }
}

/// A call waiting in a bulkhead's queue. Poll it as a future, or call
/// [`try_take`](Self::try_take), to learn whether it got a slot or was rejected. It does not
/// time out by itself (nothing here reads a clock): the caller sleeps until
/// [`deadline`](Self::deadline) and then calls [`super::Bulkhead::expire_waiting`], and every
/// bulkhead call made at or after the deadline also rejects it. Dropping it leaves the queue,
/// or frees the slot it was granted.
#[derive(Debug)]
#[must_use = "dropping a queued call leaves the queue"]
pub struct QueuedCall {
    shared: Arc<Shared>,
    seq: u64,
    class: Criticality,
    enqueued_at: Timestamp,
    deadline: Timestamp,
    taken: bool,
}

impl QueuedCall {
    pub(super) fn new(
        shared: Arc<Shared>,
        seq: u64,
        class: Criticality,
        enqueued_at: Timestamp,
        deadline: Timestamp,
    ) -> Self {
        QueuedCall {
            shared,
            seq,
            class,
            enqueued_at,
            deadline,
            taken: false,
        }
    }

    /// The call's class.
    pub fn class(&self) -> Criticality {
        self.class
    }

    /// When the call joined the queue.
    pub fn enqueued_at(&self) -> Timestamp {
        self.enqueued_at
    }

    /// `enqueued_at + max_wait`: at this time the call is rejected with `queue_timeout`.
    pub fn deadline(&self) -> Timestamp {
        self.deadline
    }

    /// `None` while the call waits (and after its result was taken); otherwise the permit or
    /// the rejection, once. Never blocks.
    pub fn try_take(&mut self) -> Option<Result<BulkheadPermit, Rejection>> {
        self.poll_inner(None)
    }

    fn poll_inner(
        &mut self,
        waker: Option<&std::task::Waker>,
    ) -> Option<Result<BulkheadPermit, Rejection>> {
        if self.taken {
            return None;
        }
        let status = self.shared.with_state(|state| state.take(self.seq, waker));
        let result = match status {
            None | Some(TicketStatus::Waiting) => return None,
            Some(TicketStatus::Granted {
                acquired_at,
                in_flight,
            }) => Ok(BulkheadPermit::new(
                Arc::clone(&self.shared),
                self.class,
                acquired_at,
                in_flight,
            )),
            Some(TicketStatus::Rejected(reason)) => Err(Rejection {
                reason,
                class: self.class,
            }),
        };
        self.taken = true;
        Some(result)
    }
}

impl Future for QueuedCall {
    type Output = Result<BulkheadPermit, Rejection>;

    /// Ready with the permit or the rejection. Polling again after that stays pending.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut().poll_inner(Some(cx.waker())) {
            Some(result) => Poll::Ready(result),
            None => Poll::Pending,
        }
    }
}

impl Drop for QueuedCall {
    fn drop(&mut self) {
        if !self.taken {
            let seq = self.seq;
            self.shared
                .with_wakers(|state, wakers| state.abandon(seq, wakers));
        }
    }
}
