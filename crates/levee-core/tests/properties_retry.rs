//! Properties of the retry budget, backoff, rate limiter and header parsers (SPEC §4-§6),
//! checked on random inputs.

#![allow(clippy::unwrap_used)]

use levee_core::budget::{RetryBudget, RetryBudgetConfig};
use levee_core::deadline::{self, MAX_REMAINING};
use levee_core::rate_limit::{KeySource, KeyedRateLimiter, Rate, RateLimitConfig};
use levee_core::retry::{self, BackoffConfig, Jitter};
use levee_core::{RandomSource, Timestamp};
use proptest::prelude::*;
use std::time::Duration;

/// Always returns the same draw, however out of range.
struct Fixed(f64);

impl RandomSource for Fixed {
    fn next_unit(&self) -> f64 {
        self.0
    }
}

#[derive(Debug, Clone)]
enum Op {
    Deposit(u32),
    Withdraw(u32),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1u32..20).prop_map(Op::Deposit),
        (1u32..20).prop_map(Op::Withdraw),
        (0u64..4_000).prop_map(Op::Advance),
    ]
}

fn budget_config() -> impl Strategy<Value = RetryBudgetConfig> {
    (0u32..=2_000, 0u32..5, 1_000u64..=20_000)
        .prop_filter("some retries allowed", |(r, m, _)| *r > 0 || *m > 0)
        .prop_map(
            |(ratio_thousandths, min_per_second, ttl_ms)| RetryBudgetConfig {
                ratio: f64::from(ratio_thousandths) / 1000.0,
                min_per_second,
                ttl: Duration::from_millis(ttl_ms),
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Against an independent log of every deposit and allowed retry: each withdrawal is
    /// allowed exactly when the documented inequality holds over the 10 live slots; whenever a
    /// retry is allowed, the retries in the live window (it included) do not exceed
    /// min_per_second × ttl_seconds + ratio × the deposits in that window; and the snapshot
    /// reports the window's counts.
    #[test]
    fn budget_matches_the_documented_window(config in budget_config(), ops in prop::collection::vec(op(), 1..80)) {
        let start = Timestamp::from_nanos(7_777_777_777);
        let budget = RetryBudget::new(config.clone(), start);
        let width = (config.ttl.as_nanos() / 10) as u64;
        let floor_ppm = u128::from(config.min_per_second) * config.ttl.as_millis() * 1000;
        let ratio_ppm = (config.ratio * 1e6).round() as u128;
        // (slot, is_retry)
        let mut log: Vec<(u64, bool)> = Vec::new();
        let mut now = start;
        let live = |log: &[(u64, bool)], slot: u64| {
            let oldest = slot.saturating_sub(9);
            let in_window = |&&(s, _): &&(u64, bool)| s >= oldest && s <= slot;
            let deposits = log.iter().filter(in_window).filter(|(_, r)| !r).count() as u128;
            let retries = log.iter().filter(in_window).filter(|(_, r)| *r).count() as u128;
            (deposits, retries)
        };
        for op in ops {
            let slot = (now.as_nanos() - start.as_nanos()) / width;
            match op {
                Op::Advance(ms) => now = now + Duration::from_millis(ms),
                Op::Deposit(n) => {
                    for _ in 0..n {
                        budget.deposit(now);
                        log.push((slot, false));
                    }
                }
                Op::Withdraw(n) => {
                    for _ in 0..n {
                        let (d, r) = live(&log, slot);
                        let expected = (r + 1) * 1_000_000 <= floor_ppm + ratio_ppm * d;
                        prop_assert_eq!(budget.try_withdraw(now), expected);
                        if expected {
                            log.push((slot, true));
                            // At the moment a retry is allowed, the window counting it stays
                            // within the bound. (Deposits may later expire before the retries
                            // they funded: the bound is checked when retries are made.)
                            let (d, r) = live(&log, slot);
                            let bound = f64::from(config.min_per_second) * config.ttl.as_secs_f64()
                                + config.ratio * d as f64;
                            prop_assert!(r as f64 <= bound + 1e-9, "{} retries > bound {}", r, bound);
                        }
                    }
                }
            }
            let slot = (now.as_nanos() - start.as_nanos()) / width;
            let (d, r) = live(&log, slot);
            let snap = budget.snapshot(now);
            prop_assert_eq!((u128::from(snap.deposits), u128::from(snap.retries)), (d, r));
        }
    }

    /// Every jitter kind stays within [0, max] (decorrelated within [base, max]) for any
    /// attempt count, previous backoff and draw, in range or not.
    #[test]
    fn backoff_stays_within_bounds(
        base_ns in 1u64..=10_000_000_000,
        extra_ns in 0u64..=3_600_000_000_000,
        jitter in prop_oneof![Just(Jitter::None), Just(Jitter::Full), Just(Jitter::Equal), Just(Jitter::Decorrelated)],
        attempts in prop_oneof![0u32..70, Just(u32::MAX)],
        previous in prop::option::of(any::<u64>()),
        u in prop_oneof![0.0f64..1.0, any::<f64>(), Just(1.0), Just(-0.0), Just(f64::NAN), Just(f64::INFINITY)],
    ) {
        let config = BackoffConfig {
            base: Duration::from_nanos(base_ns),
            max: Duration::from_nanos(base_ns.saturating_add(extra_ns)),
            jitter,
        };
        prop_assert!(config.validate().is_ok());
        let b = retry::backoff(&config, attempts, previous.map(Duration::from_nanos), &Fixed(u));
        prop_assert!(b <= config.max, "{:?} > max {:?}", b, config.max);
        let cap = Duration::from_nanos(retry::backoff::exponential_cap(&config, attempts.saturating_sub(1)));
        match jitter {
            Jitter::None => prop_assert_eq!(b, cap),
            Jitter::Full | Jitter::Equal => prop_assert!(b <= cap),
            Jitter::Decorrelated => prop_assert!(b >= config.base),
        }
        if jitter == Jitter::Equal {
            prop_assert!(b >= cap / 2);
        }
    }

    /// A bucket never admits more than burst + count × elapsed / period requests.
    #[test]
    fn rate_limiter_admits_at_most_burst_plus_rate(
        count in 1u64..50,
        burst in 1u64..20,
        gaps in prop::collection::vec(0u64..200_000_000, 1..150),
    ) {
        let rate: Rate = format!("{count}/s").parse().unwrap();
        let limiter = KeyedRateLimiter::new(RateLimitConfig { burst: Some(burst), ..RateLimitConfig::new(rate) });
        let start = Timestamp::from_nanos(1_000);
        let mut now = start;
        let mut allowed = 0u128;
        for gap in gaps {
            now = now + Duration::from_nanos(gap);
            if limiter.acquire(None, now).is_allowed() {
                allowed += 1;
            }
            let elapsed = u128::from(now.as_nanos() - start.as_nanos());
            let bound = u128::from(burst) + elapsed * u128::from(count) / 1_000_000_000;
            prop_assert!(allowed <= bound, "{} allowed > {}", allowed, bound);
        }
    }

    /// Header and config parsers return errors, never panic, on any text.
    #[test]
    fn parsers_never_panic(text in ".{0,40}", now in any::<u64>()) {
        let _ = deadline::parse_timeout_ms(&text);
        let _ = deadline::parse_grpc_timeout(&text);
        let _ = retry::parse_retry_after(&text, now);
        let _ = text.parse::<Rate>();
        let _ = text.parse::<KeySource>();
    }

    /// The same, on text made of the characters these parsers care about.
    #[test]
    fn parsers_never_panic_on_near_misses(text in "[0-9 \t+\\-.HMSmunµsh/:a-zA-Z,]{0,32}", now in any::<u64>()) {
        if let Ok(d) = deadline::parse_timeout_ms(&text) {
            prop_assert!(d <= MAX_REMAINING);
        }
        if let Ok(d) = deadline::parse_grpc_timeout(&text) {
            prop_assert!(d <= MAX_REMAINING);
        }
        if let Some(d) = retry::parse_retry_after(&text, now) {
            prop_assert!(d <= Duration::from_secs(1 << 31) || !text.trim().bytes().all(|b| b.is_ascii_digit()));
        }
        let _ = text.parse::<Rate>();
    }

    /// Written deadlines read back: levee-timeout-ms rounds down to the millisecond,
    /// grpc-timeout rounds up by less than one of its unit.
    #[test]
    fn deadline_headers_round_trip(nanos in prop_oneof![0u64..10_000_000_000, any::<u64>()]) {
        let d = Duration::from_nanos(nanos).min(MAX_REMAINING);
        let ms = deadline::parse_timeout_ms(&deadline::format_timeout_ms(d)).unwrap();
        prop_assert!(ms <= d && d - ms < Duration::from_millis(1));
        let text = deadline::format_grpc_timeout(d);
        let grpc = deadline::parse_grpc_timeout(&text).unwrap();
        prop_assert!(text.len() <= 9);
        if d < Duration::from_secs(100_000 * 3600) {
            // Below the last unit the value read back is >= d (rounded up) ...
            prop_assert!(grpc >= d, "{} read back as {:?} < {:?}", text, grpc, d);
        }
        let unit = match text.chars().last() {
            Some('n') => Duration::from_nanos(1),
            Some('u') => Duration::from_micros(1),
            Some('m') => Duration::from_millis(1),
            Some('S') => Duration::from_secs(1),
            Some('M') => Duration::from_secs(60),
            _ => Duration::from_secs(3600),
        };
        // ... and never more than one unit away (the cap can cut the last unit short).
        prop_assert!(grpc.abs_diff(d) < unit, "{} vs {:?}", text, d);
    }
}
