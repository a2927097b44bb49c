//! Property: whatever the sequence of calls, outcomes and clock moves, a half-open breaker
//! never has more than `half_open.permitted_calls` probes outstanding, and it never permits a
//! non-probe call while open or half-open (enforce mode).

use levee_core::breaker::{
    BreakerConfig, CircuitBreaker, HalfOpenConfig, OpenConfig, Permit, State, WindowConfig,
    WindowKind,
};
use levee_core::random::SplitMix64;
use levee_core::time::Timestamp;
use levee_core::Outcome;
use proptest::prelude::*;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone)]
enum Op {
    Acquire,
    Record {
        index: usize,
        outcome: Outcome,
        slow: bool,
    },
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Acquire),
        3 => (any::<usize>(), prop::sample::select(Outcome::ALL.to_vec()), any::<bool>())
            .prop_map(|(index, outcome, slow)| Op::Record { index, outcome, slow }),
        1 => (0u64..8_000).prop_map(Op::Advance),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn half_open_never_admits_more_than_permitted(
        permitted in 1u32..6,
        minimum in 1u32..5,
        count_window in any::<bool>(),
        max_wait_ms in prop::sample::select(vec![0u64, 500, 3_000]),
        ops in prop::collection::vec(op(), 1..300),
    ) {
        let config = BreakerConfig {
            window: WindowConfig { kind: if count_window { WindowKind::Count } else { WindowKind::Time }, size: 10 },
            minimum_calls: minimum,
            slow_call_rate_threshold: 50.0,
            slow_call_duration: Duration::from_secs(1),
            open: OpenConfig { wait: Duration::from_secs(2), ..OpenConfig::default() },
            half_open: HalfOpenConfig { permitted_calls: permitted, max_wait: Duration::from_millis(max_wait_ms) },
            ..BreakerConfig::default()
        };
        let breaker = CircuitBreaker::new("p", config, Arc::new(SplitMix64::new(3))).expect("valid");
        let mut now = Timestamp::from_nanos(5_000_000_000);
        let mut held: Vec<Permit> = Vec::new();
        let mut outstanding_probes = 0u32;
        for op in ops {
            match op {
                Op::Acquire => {
                    let before = breaker.state();
                    let acquired = breaker.acquire(now);
                    if acquired.transition.as_ref().is_some_and(|t| t.to == State::HalfOpen) {
                        outstanding_probes = 0;
                    }
                    if let Ok(permit) = acquired.result {
                        if permit.is_probe() {
                            outstanding_probes += 1;
                        } else {
                            prop_assert!(matches!(before, State::Closed | State::Disabled),
                                "non-probe permit granted in {before:?}");
                        }
                        held.push(permit);
                    }
                }
                Op::Record { index, outcome, slow } => {
                    if held.is_empty() { continue; }
                    let permit = held.swap_remove(index % held.len());
                    let in_round = breaker.state() == State::HalfOpen && permit.is_probe();
                    let duration = if slow { Duration::from_secs(1) } else { Duration::ZERO };
                    let transition = breaker.record(permit, outcome, duration, now);
                    if in_round && transition.is_none() && !outcome.is_counted() {
                        outstanding_probes = outstanding_probes.saturating_sub(1);
                    }
                }
                Op::Advance(ms) => now = now + Duration::from_millis(ms),
            }
            if breaker.state() == State::HalfOpen {
                prop_assert!(outstanding_probes <= permitted,
                    "{outstanding_probes} probes outstanding, {permitted} permitted");
            }
        }
    }
}
