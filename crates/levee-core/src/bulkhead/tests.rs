//! Unit tests for what the conformance vectors cannot express: `Drop`, the `Future`
//! implementation, `Send + Sync` and the snapshot.

use super::*;
use crate::adaptive::AdaptiveLimitConfig;
use crate::outcome::Outcome;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake};
use std::time::Duration;

const T0: Timestamp = Timestamp::from_nanos(1_000_000_000);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn bulkhead(max_concurrent: u32, max_queue: u32) -> Bulkhead {
    let max_wait = if max_queue > 0 {
        ms(50)
    } else {
        Duration::ZERO
    };
    Bulkhead::new(BulkheadConfig {
        max_concurrent,
        max_queue,
        max_wait,
        ..BulkheadConfig::default()
    })
    .expect("valid config")
}

fn permitted(answer: Acquire) -> BulkheadPermit {
    match answer {
        Acquire::Permitted(permit) => permit,
        other => panic!("expected a permit, got {other:?}"),
    }
}

fn queued(answer: Acquire) -> QueuedCall {
    match answer {
        Acquire::Queued(call) => call,
        other => panic!("expected a queued call, got {other:?}"),
    }
}

/// Counts wake-ups.
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn handles_are_send_sync_and_cheap_to_clone() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Bulkhead>();
    assert_send_sync::<BulkheadPermit>();
    assert_send_sync::<QueuedCall>();
    let a = bulkhead(1, 0);
    let b = a.clone();
    let _permit = permitted(a.try_acquire(Criticality::Critical, T0));
    assert_eq!(b.in_flight(), 1, "clones share one state");
}

#[test]
fn dropping_a_permit_frees_the_slot_and_grants_the_head() {
    let bh = bulkhead(1, 2);
    let first = permitted(bh.try_acquire(Criticality::Critical, T0));
    let mut waiter = queued(bh.try_acquire(Criticality::Critical, T0 + ms(5)));
    assert_eq!(waiter.deadline(), T0 + ms(55));
    assert!(waiter.try_take().is_none());
    drop(first);
    let permit = match waiter.try_take() {
        Some(Ok(permit)) => permit,
        other => panic!("expected a grant, got {other:?}"),
    };
    assert_eq!(
        permit.acquired_at(),
        T0 + ms(5),
        "granted at the latest time seen"
    );
    assert_eq!(permit.in_flight_at_acquire(), 1);
    assert!(waiter.try_take().is_none(), "a result is taken once");
    drop(permit);
    assert_eq!((bh.in_flight(), bh.queue_depth()), (0, 0));
}

#[test]
fn dropping_a_granted_but_untaken_call_frees_its_slot() {
    let bh = bulkhead(1, 2);
    let first = permitted(bh.try_acquire(Criticality::Critical, T0));
    let granted = queued(bh.try_acquire(Criticality::Critical, T0));
    let mut next = queued(bh.try_acquire(Criticality::Critical, T0));
    first.release(T0 + ms(1));
    assert_eq!(bh.in_flight(), 1, "the slot went to `granted`");
    drop(granted);
    assert!(
        matches!(next.try_take(), Some(Ok(_))),
        "and on to the next waiter"
    );
    assert_eq!((bh.in_flight(), bh.queue_depth()), (0, 0));
}

#[test]
fn dropping_a_waiting_call_leaves_the_queue() {
    let bh = bulkhead(1, 1);
    let _first = permitted(bh.try_acquire(Criticality::Critical, T0));
    let waiter = queued(bh.try_acquire(Criticality::Critical, T0));
    assert_eq!(bh.queue_depth(), 1);
    drop(waiter);
    assert_eq!(bh.queue_depth(), 0);
    assert!(matches!(
        bh.try_acquire(Criticality::Critical, T0),
        Acquire::Queued(_)
    ));
}

#[test]
fn the_future_registers_its_waker_and_is_woken_by_a_grant() {
    let bh = bulkhead(1, 1);
    let first = permitted(bh.try_acquire(Criticality::Critical, T0));
    let mut waiter = queued(bh.try_acquire(Criticality::Critical, T0));
    let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
    let waker = Waker::from(Arc::clone(&counter));
    let mut cx = Context::from_waker(&waker);
    assert!(Pin::new(&mut waiter).poll(&mut cx).is_pending());
    assert!(
        Pin::new(&mut waiter).poll(&mut cx).is_pending(),
        "re-polling is fine"
    );
    first.complete(Outcome::Success, T0 + ms(3));
    assert_eq!(
        counter.0.load(Ordering::SeqCst),
        1,
        "woken once, after the lock"
    );
    match Pin::new(&mut waiter).poll(&mut cx) {
        Poll::Ready(Ok(permit)) => assert_eq!(permit.acquired_at(), T0 + ms(3)),
        other => panic!("expected a permit, got {other:?}"),
    }
    assert!(
        Pin::new(&mut waiter).poll(&mut cx).is_pending(),
        "no panic after completion"
    );
}

#[test]
fn the_future_is_woken_by_timeouts_and_evictions() {
    let bh = bulkhead(1, 1);
    let _first = permitted(bh.try_acquire(Criticality::Critical, T0));
    let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
    let waker = Waker::from(Arc::clone(&counter));
    let mut cx = Context::from_waker(&waker);

    let mut sheddable = queued(bh.try_acquire(Criticality::Sheddable, T0));
    assert!(Pin::new(&mut sheddable).poll(&mut cx).is_pending());
    let mut standard = queued(bh.try_acquire(Criticality::Standard, T0 + ms(1)));
    assert_eq!(counter.0.load(Ordering::SeqCst), 1);
    let evicted = Rejection {
        reason: RejectReason::Evicted,
        class: Criticality::Sheddable,
    };
    assert!(matches!(
        Pin::new(&mut sheddable).poll(&mut cx),
        Poll::Ready(Err(rejection)) if rejection == evicted
    ));
    assert_eq!(evicted.code(), crate::ErrorCode::BulkheadFull);

    assert!(Pin::new(&mut standard).poll(&mut cx).is_pending());
    assert_eq!(
        bh.expire_waiting(Timestamp::from_nanos(standard.deadline().as_nanos() - 1)),
        0
    );
    assert_eq!(
        bh.expire_waiting(standard.deadline()),
        1,
        "due exactly at the deadline"
    );
    assert_eq!(counter.0.load(Ordering::SeqCst), 2);
    assert!(matches!(
        standard.try_take(),
        Some(Err(Rejection {
            reason: RejectReason::QueueTimeout,
            ..
        }))
    ));
}

#[test]
fn complete_feeds_the_adaptive_limit_only_for_counted_outcomes() {
    let bh = Bulkhead::new(BulkheadConfig {
        limit: Some(AdaptiveLimitConfig {
            initial: 2,
            ..AdaptiveLimitConfig::default()
        }),
        ..BulkheadConfig::default()
    })
    .expect("valid config");
    let a = permitted(bh.try_acquire(Criticality::Critical, T0));
    let b = permitted(bh.try_acquire(Criticality::Critical, T0));
    b.complete(Outcome::Cancelled, T0 + ms(1));
    assert_eq!(bh.limit(), 2, "a cancelled call teaches nothing");
    a.complete(Outcome::Success, T0 + ms(1));
    assert_eq!(bh.limit(), 2, "a was admitted at in-flight 1 < 2");
    let a = permitted(bh.try_acquire(Criticality::Critical, T0));
    let b = permitted(bh.try_acquire(Criticality::Critical, T0));
    b.complete(Outcome::Success, T0 + ms(1));
    assert_eq!(bh.limit(), 3, "b was admitted at the limit");
    a.complete(Outcome::Timeout, T0 + ms(1));
    assert_eq!(bh.limit(), 2, "floor(3 * 0.9)");
}

#[test]
fn snapshot_reports_limits_and_waiting_calls() {
    let bh = bulkhead(10, 4);
    let permits: Vec<BulkheadPermit> = (0..5)
        .map(|_| permitted(bh.try_acquire(Criticality::Sheddable, T0)))
        .collect();
    let waiter = queued(bh.try_acquire(Criticality::Sheddable, T0));
    let snapshot = bh.snapshot();
    assert_eq!(snapshot.in_flight, 5);
    assert_eq!(snapshot.queue_depth, 1);
    assert_eq!(snapshot.waiting.sheddable, 1);
    assert_eq!(
        snapshot.class_limits,
        PerClass {
            critical: 10,
            standard: 8,
            sheddable: 5
        }
    );
    let json = serde_json::to_value(&snapshot).expect("serializes");
    assert_eq!(json["algorithm"], serde_json::Value::Null);
    assert_eq!(json["class_limits"]["standard"], 8);
    drop(waiter);
    drop(permits);
    assert_eq!((bh.in_flight(), bh.queue_depth()), (0, 0));
}

#[test]
fn time_never_runs_backwards_inside_the_bulkhead() {
    let bh = bulkhead(1, 1);
    let first = permitted(bh.try_acquire(Criticality::Critical, T0 + ms(100)));
    let mut waiter = queued(bh.try_acquire(Criticality::Critical, T0));
    assert_eq!(
        waiter.deadline(),
        T0 + ms(150),
        "enqueued at the latest time seen"
    );
    first.release(T0);
    match waiter.try_take() {
        Some(Ok(permit)) => assert_eq!(permit.acquired_at(), T0 + ms(100)),
        other => panic!("expected a permit, got {other:?}"),
    }
}
