//! Property test of the bulkhead (SPEC §3): under random sequences of arrivals, releases,
//! completions, drops, cancellations, polls and time passing, the bulkhead never admits past a
//! class limit, never queues past `max_queue`, never leaves a waiting call that could run, and
//! never leaks a slot.

use levee_core::adaptive::{AdaptiveLimitConfig, Algorithm};
use levee_core::bulkhead::{Acquire, Bulkhead, BulkheadConfig, BulkheadPermit, QueuedCall};
use levee_core::{Criticality, Outcome, Timestamp};
use proptest::prelude::*;
use std::time::Duration;

#[derive(Debug, Clone)]
enum Op {
    Acquire(Criticality),
    /// Free the permit at this index (modulo the number held) with `release(now)`.
    Release(usize),
    /// Free it by dropping it (no time, no sample).
    Drop(usize),
    Complete(usize, Outcome),
    /// Drop the queued call at this index, whatever became of it.
    Cancel(usize),
    /// Take the results of every queued call.
    Poll,
    /// Move the clock and expire due waiters.
    Advance(u64),
}

fn class() -> impl Strategy<Value = Criticality> {
    prop::sample::select(Criticality::ALL.to_vec())
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => class().prop_map(Op::Acquire),
        2 => any::<usize>().prop_map(Op::Release),
        1 => any::<usize>().prop_map(Op::Drop),
        2 => (any::<usize>(), prop::sample::select(Outcome::ALL.to_vec()))
            .prop_map(|(i, o)| Op::Complete(i, o)),
        1 => any::<usize>().prop_map(Op::Cancel),
        2 => Just(Op::Poll),
        1 => (0u64..30).prop_map(Op::Advance),
    ]
}

fn config() -> impl Strategy<Value = BulkheadConfig> {
    let limit = prop_oneof![
        2 => Just(None),
        1 => (prop::sample::select(vec![Algorithm::Aimd, Algorithm::Gradient2]), 1u32..6)
            .prop_map(|(algorithm, initial)| Some(AdaptiveLimitConfig {
                algorithm,
                initial,
                min: 1,
                max: 8,
                ..AdaptiveLimitConfig::default()
            })),
    ];
    (1u32..8, 0u32..5, 1u64..40, limit).prop_map(|(max_concurrent, max_queue, wait, limit)| {
        BulkheadConfig {
            max_concurrent,
            max_queue,
            max_wait: if max_queue > 0 {
                Duration::from_millis(wait)
            } else {
                Duration::ZERO
            },
            limit,
            ..BulkheadConfig::default()
        }
    })
}

/// Checks what must hold after every operation.
fn check_invariants(bulkhead: &Bulkhead, config: &BulkheadConfig) -> Result<(), TestCaseError> {
    let snapshot = bulkhead.snapshot();
    prop_assert!(
        snapshot.queue_depth <= config.max_queue,
        "queue {snapshot:?}"
    );
    let ceiling = config
        .limit
        .as_ref()
        .map_or(config.max_concurrent, |l| l.max);
    prop_assert!(snapshot.in_flight <= ceiling, "in flight {snapshot:?}");
    if config.limit.is_none() {
        prop_assert!(
            snapshot.in_flight <= snapshot.limit,
            "fixed limit {snapshot:?}"
        );
    }
    // Grants are eager: a call still waiting could not be admitted now.
    for class in Criticality::ALL {
        let waiting = match class {
            Criticality::Critical => snapshot.waiting.critical,
            Criticality::Standard => snapshot.waiting.standard,
            Criticality::Sheddable => snapshot.waiting.sheddable,
        };
        if waiting > 0 {
            prop_assert!(
                snapshot.in_flight >= bulkhead.class_limit(class),
                "a {class} call waits although it fits: {snapshot:?}"
            );
        }
    }
    Ok(())
}

/// A permit was admitted within `cap`, its class limit when it was admitted.
fn check_admission(permit: &BulkheadPermit, cap: u32) -> Result<(), TestCaseError> {
    prop_assert!(
        permit.in_flight_at_acquire() <= cap,
        "{} call admitted at in-flight {} over its limit {cap}",
        permit.class(),
        permit.in_flight_at_acquire()
    );
    Ok(())
}

fn pick<T>(items: &mut Vec<T>, index: usize) -> Option<T> {
    if items.is_empty() {
        None
    } else {
        let i = index % items.len();
        Some(items.swap_remove(i))
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn bulkhead_respects_limits_and_never_leaks(config in config(), ops in prop::collection::vec(op(), 1..80)) {
        let bulkhead = Bulkhead::new(config.clone()).map_err(TestCaseError::fail)?;
        let mut now = Timestamp::from_nanos(1_000_000_000);
        let mut permits: Vec<BulkheadPermit> = Vec::new();
        // Each queued call with the highest limit its class had since it was queued: a grant
        // happens in some operation after queueing, within the class limit of that moment.
        let mut queued: Vec<(QueuedCall, u32)> = Vec::new();
        for op in ops {
            match op {
                Op::Acquire(class) => match bulkhead.try_acquire(class, now) {
                    Acquire::Permitted(permit) => {
                        check_admission(&permit, bulkhead.class_limit(class))?;
                        permits.push(permit);
                    }
                    Acquire::Queued(call) => queued.push((call, bulkhead.class_limit(class))),
                    Acquire::Rejected(rejection) => prop_assert_eq!(rejection.class, class),
                },
                Op::Release(i) => {
                    if let Some(permit) = pick(&mut permits, i) {
                        permit.release(now);
                    }
                }
                Op::Drop(i) => drop(pick(&mut permits, i)),
                Op::Complete(i, outcome) => {
                    if let Some(permit) = pick(&mut permits, i) {
                        permit.complete(outcome, now + Duration::from_millis(1));
                    }
                }
                Op::Cancel(i) => drop(pick(&mut queued, i)),
                Op::Poll => {
                    let mut still_waiting = Vec::new();
                    for (mut call, cap) in queued.drain(..) {
                        match call.try_take() {
                            None => still_waiting.push((call, cap)),
                            Some(Ok(permit)) => {
                                check_admission(&permit, cap)?;
                                permits.push(permit);
                            }
                            Some(Err(rejection)) => prop_assert_eq!(rejection.class, call.class()),
                        }
                    }
                    queued = still_waiting;
                    // With every result taken, the live permits are exactly the calls in flight
                    // and the calls still waiting are exactly the queue.
                    prop_assert_eq!(bulkhead.in_flight() as usize, permits.len());
                    prop_assert_eq!(bulkhead.queue_depth(), queued.len());
                }
                Op::Advance(ms) => {
                    now = now + Duration::from_millis(ms);
                    bulkhead.expire_waiting(now);
                }
            }
            check_invariants(&bulkhead, &config)?;
            for (call, cap) in &mut queued {
                *cap = (*cap).max(bulkhead.class_limit(call.class()));
            }
        }
        // Every slot comes back, however the calls ended.
        drop(permits);
        drop(queued);
        prop_assert_eq!(bulkhead.in_flight(), 0);
        prop_assert_eq!(bulkhead.queue_depth(), 0);
    }
}
