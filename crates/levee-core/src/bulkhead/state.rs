//! The bulkhead's bookkeeping, free of locks and wakers' side effects: admission, the waiting
//! queue, grants, evictions and timeouts. [`super::Bulkhead`] holds one `State` behind a mutex
//! and wakes the returned wakers after unlocking.

use super::config::{BulkheadConfig, Shares};
use super::rejection::RejectReason;
use crate::adaptive::AdaptiveLimit;
use crate::criticality::Criticality;
use crate::time::Timestamp;
use std::collections::{BTreeSet, HashMap};
use std::task::Waker;
use std::time::Duration;

/// Where the limit comes from.
#[derive(Debug)]
pub(super) enum Limiter {
    Fixed(u32),
    Adaptive(AdaptiveLimit),
}

/// A waiting call's place in line: higher class first (`rank` 0 = critical), then arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct QueueKey {
    rank: usize,
    seq: u64,
}

impl QueueKey {
    fn new(class: Criticality, seq: u64) -> Self {
        QueueKey {
            rank: Criticality::Critical.index() - class.index(),
            seq,
        }
    }
}

/// What became of a queued call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TicketStatus {
    Waiting,
    Granted {
        acquired_at: Timestamp,
        in_flight: u32,
    },
    Rejected(RejectReason),
}

#[derive(Debug)]
struct Ticket {
    class: Criticality,
    deadline: Timestamp,
    status: TicketStatus,
    waker: Option<Waker>,
}

/// The answer to an arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Admission {
    Permitted {
        acquired_at: Timestamp,
        in_flight: u32,
    },
    Queued {
        seq: u64,
        enqueued_at: Timestamp,
        deadline: Timestamp,
    },
    Rejected(RejectReason),
}

/// A finished call's report to the adaptive limit.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sample {
    pub rtt: Duration,
    pub in_flight: u32,
    pub dropped: bool,
}

#[derive(Debug)]
pub(super) struct State {
    shares: Shares,
    max_queue: usize,
    max_wait: Duration,
    limiter: Limiter,
    in_flight: u32,
    /// Waiting calls in grant order.
    queue: BTreeSet<QueueKey>,
    /// Waiting calls by deadline, for expiry.
    deadlines: BTreeSet<(Timestamp, u64)>,
    /// Every queued call not yet taken by its [`super::QueuedCall`]: waiting or resolved.
    tickets: HashMap<u64, Ticket>,
    next_seq: u64,
    /// The latest time any caller passed in; time never runs backwards inside the bulkhead.
    clock: Timestamp,
}

impl State {
    pub(super) fn new(config: &BulkheadConfig) -> Self {
        let limiter = match &config.limit {
            Some(limit) => Limiter::Adaptive(AdaptiveLimit::new(limit)),
            None => Limiter::Fixed(config.max_concurrent.max(1)),
        };
        State {
            shares: config.shares,
            max_queue: usize::try_from(config.max_queue).unwrap_or(usize::MAX),
            max_wait: config.max_wait,
            limiter,
            in_flight: 0,
            queue: BTreeSet::new(),
            deadlines: BTreeSet::new(),
            tickets: HashMap::new(),
            next_seq: 0,
            clock: Timestamp::ZERO,
        }
    }

    /// Advances the internal clock to `now` (if later) and returns the clock.
    pub(super) fn observe(&mut self, now: Option<Timestamp>) -> Timestamp {
        if let Some(now) = now {
            self.clock = self.clock.max(now);
        }
        self.clock
    }

    pub(super) fn limit(&self) -> u32 {
        match &self.limiter {
            Limiter::Fixed(n) => *n,
            Limiter::Adaptive(a) => a.limit(),
        }
    }

    pub(super) fn adaptive(&self) -> Option<&AdaptiveLimit> {
        match &self.limiter {
            Limiter::Fixed(_) => None,
            Limiter::Adaptive(a) => Some(a),
        }
    }

    pub(super) fn in_flight(&self) -> u32 {
        self.in_flight
    }

    pub(super) fn queue_depth(&self) -> usize {
        self.queue.len()
    }

    pub(super) fn class_limit(&self, class: Criticality) -> u32 {
        self.shares.class_limit(class, self.limit())
    }

    /// Waiting calls per class, indexed by [`Criticality::index`].
    pub(super) fn waiting_by_class(&self) -> [u32; 3] {
        let mut counts = [0u32; 3];
        for key in &self.queue {
            let index = Criticality::Critical.index().saturating_sub(key.rank);
            if let Some(count) = counts.get_mut(index) {
                *count = count.saturating_add(1);
            }
        }
        counts
    }

    fn admits(&self, class: Criticality) -> bool {
        self.in_flight < self.class_limit(class)
    }

    /// Rejects (`queue_timeout`) every waiting call whose deadline is at or before `now`.
    pub(super) fn expire(&mut self, now: Timestamp, wakers: &mut Vec<Waker>) -> usize {
        let mut expired = 0;
        while let Some(&(deadline, seq)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.deadlines.remove(&(deadline, seq));
            if let Some(ticket) = self.tickets.get_mut(&seq) {
                self.queue.remove(&QueueKey::new(ticket.class, seq));
                ticket.status = TicketStatus::Rejected(RejectReason::QueueTimeout);
                wakers.extend(ticket.waker.take());
                expired += 1;
            }
        }
        expired
    }

    /// Grants slots to the head of the queue while its class admits it. With shares that
    /// never decrease with the class (validated), a head that is not admitted means no waiting
    /// call is.
    fn grant(&mut self, now: Timestamp, wakers: &mut Vec<Waker>) {
        while let Some(&key) = self.queue.first() {
            let Some(ticket) = self.tickets.get(&key.seq) else {
                // Unreachable by construction; drop the stray key rather than loop forever.
                self.queue.remove(&key);
                continue;
            };
            let (class, deadline) = (ticket.class, ticket.deadline);
            if !self.admits(class) {
                break;
            }
            self.queue.remove(&key);
            self.deadlines.remove(&(deadline, key.seq));
            self.in_flight = self.in_flight.saturating_add(1);
            let in_flight = self.in_flight;
            if let Some(ticket) = self.tickets.get_mut(&key.seq) {
                ticket.status = TicketStatus::Granted {
                    acquired_at: now,
                    in_flight,
                };
                wakers.extend(ticket.waker.take());
            }
        }
    }

    /// Decides an arrival of `class` at `now` (already observed).
    pub(super) fn acquire(
        &mut self,
        class: Criticality,
        now: Timestamp,
        wakers: &mut Vec<Waker>,
    ) -> Admission {
        self.expire(now, wakers);
        if self.admits(class) {
            self.in_flight = self.in_flight.saturating_add(1);
            return Admission::Permitted {
                acquired_at: now,
                in_flight: self.in_flight,
            };
        }
        if self.max_queue == 0 {
            return Admission::Rejected(RejectReason::Full);
        }
        if self.queue.len() >= self.max_queue {
            // The last key is the newest call of the lowest waiting class.
            let victim = self
                .queue
                .last()
                .copied()
                .filter(|key| key.rank > QueueKey::new(class, 0).rank);
            let Some(victim) = victim else {
                return Admission::Rejected(RejectReason::Full);
            };
            self.queue.remove(&victim);
            if let Some(ticket) = self.tickets.get_mut(&victim.seq) {
                self.deadlines.remove(&(ticket.deadline, victim.seq));
                ticket.status = TicketStatus::Rejected(RejectReason::Evicted);
                wakers.extend(ticket.waker.take());
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let deadline = now + self.max_wait;
        self.queue.insert(QueueKey::new(class, seq));
        self.deadlines.insert((deadline, seq));
        self.tickets.insert(
            seq,
            Ticket {
                class,
                deadline,
                status: TicketStatus::Waiting,
                waker: None,
            },
        );
        Admission::Queued {
            seq,
            enqueued_at: now,
            deadline,
        }
    }

    /// Frees one slot (after feeding `sample` to an adaptive limit), then times out due
    /// waiters and grants slots to the head of the queue.
    pub(super) fn release(
        &mut self,
        now: Timestamp,
        sample: Option<Sample>,
        wakers: &mut Vec<Waker>,
    ) {
        if let (Some(sample), Limiter::Adaptive(limit)) = (sample, &mut self.limiter) {
            limit.on_sample(sample.rtt, sample.in_flight, sample.dropped);
        }
        self.in_flight = self.in_flight.saturating_sub(1);
        self.expire(now, wakers);
        self.grant(now, wakers);
    }

    /// What became of queued call `seq`; a resolved ticket is removed (it is taken). While it
    /// waits, `waker` (if any) replaces the stored one.
    pub(super) fn take(&mut self, seq: u64, waker: Option<&Waker>) -> Option<TicketStatus> {
        let ticket = self.tickets.get_mut(&seq)?;
        match ticket.status {
            TicketStatus::Waiting => {
                if let Some(waker) = waker {
                    match &ticket.waker {
                        Some(stored) if stored.will_wake(waker) => {}
                        _ => ticket.waker = Some(waker.clone()),
                    }
                }
                Some(TicketStatus::Waiting)
            }
            status => {
                self.tickets.remove(&seq);
                Some(status)
            }
        }
    }

    /// Queued call `seq` was dropped: leave the queue, or give back a slot granted but never
    /// taken.
    pub(super) fn abandon(&mut self, seq: u64, wakers: &mut Vec<Waker>) {
        let Some(ticket) = self.tickets.remove(&seq) else {
            return;
        };
        match ticket.status {
            TicketStatus::Waiting => {
                self.queue.remove(&QueueKey::new(ticket.class, seq));
                self.deadlines.remove(&(ticket.deadline, seq));
            }
            TicketStatus::Granted { .. } => {
                let now = self.clock;
                self.release(now, None, wakers);
            }
            TicketStatus::Rejected(_) => {}
        }
    }
}
