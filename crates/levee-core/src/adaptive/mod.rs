//! Adaptive concurrency limits (SPEC §3): a bulkhead's `limit:` replaces its fixed
//! `max_concurrent` with a number that moves with what the upstream can take.
//!
//! An [`AdaptiveLimit`] learns from one *sample* per finished call: the call's round trip (time
//! holding the bulkhead slot), the bulkhead's in-flight count when the call was admitted (that
//! call included) and whether it was *dropped* (its outcome was `failure` or `timeout`). The
//! bulkhead only samples calls that ended `success`, `failure` or `timeout`; a cancelled,
//! rejected or ignored call teaches the limit nothing. The limit is always within
//! `[min, max]` and starts at `initial`.
//!
//! Two algorithms follow the published Netflix concurrency-limits library:
//!
//! - `aimd` (default): on a drop, `limit = floor(limit * backoff_ratio)`; on any other sample
//!   whose in-flight count had reached the limit, `limit + 1`; otherwise unchanged; then
//!   clamped to `[min, max]`. SPEC's wording is followed where it differs from Netflix (which
//!   grows at half the limit and also counts a round trip above 5 s as a drop).
//! - `gradient2`: a floating-point estimate moves by the gradient
//!   `clamp(tolerance * long_rtt / rtt, 0.5, 1.0)` against a long-term average round trip,
//!   plus `queue_size` of headroom, smoothed; the limit is `floor(estimate)`. It does not react
//!   to drops (neither does Netflix's). The exact operation order is written in the
//!   `gradient2` source and in `conformance/policies/adaptive_limit.md` so that the Go SDK
//!   computes the same estimate to the bit.
//!
//! The type is plain data: no clock, no lock, no I/O. The bulkhead keeps it behind its own
//! mutex.

mod aimd;
mod config;
mod gradient2;

pub use config::{AdaptiveLimitConfig, Algorithm};

use crate::time::duration_nanos;
use aimd::Aimd;
use gradient2::Gradient2;
use std::time::Duration;

/// A concurrency limit that adapts to samples of finished calls.
#[derive(Debug, Clone, PartialEq)]
pub struct AdaptiveLimit {
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Aimd(Aimd),
    Gradient2(Gradient2),
}

impl AdaptiveLimit {
    /// A limit at `config.initial`. The config should have passed
    /// [`AdaptiveLimitConfig::validate`]; an unvalidated one never panics, but its behaviour
    /// is only specified for valid values.
    pub fn new(config: &AdaptiveLimitConfig) -> Self {
        let kind = match config.algorithm {
            Algorithm::Aimd => Kind::Aimd(Aimd::new(config)),
            Algorithm::Gradient2 => Kind::Gradient2(Gradient2::new(config)),
        };
        AdaptiveLimit { kind }
    }

    /// The algorithm in use.
    pub fn algorithm(&self) -> Algorithm {
        match self.kind {
            Kind::Aimd(_) => Algorithm::Aimd,
            Kind::Gradient2(_) => Algorithm::Gradient2,
        }
    }

    /// The current limit: at least `min`, at most `max`.
    pub fn limit(&self) -> u32 {
        match &self.kind {
            Kind::Aimd(a) => a.limit(),
            Kind::Gradient2(g) => g.limit(),
        }
    }

    /// The unrounded estimate behind the limit (Gradient2); for AIMD the limit itself.
    pub fn estimate(&self) -> f64 {
        match &self.kind {
            Kind::Aimd(a) => f64::from(a.limit()),
            Kind::Gradient2(g) => g.estimate(),
        }
    }

    /// Gradient2's long-term average round trip in nanoseconds (0 before the first sample);
    /// `None` for AIMD.
    pub fn long_rtt_nanos(&self) -> Option<f64> {
        match &self.kind {
            Kind::Aimd(_) => None,
            Kind::Gradient2(g) => Some(g.long_rtt_nanos()),
        }
    }

    /// Learns from one finished call and returns the new limit. `rtt` is the time the call
    /// held its slot, `in_flight` the bulkhead's in-flight count right after the call was
    /// admitted (the call included), `dropped` whether it ended `failure` or `timeout`.
    pub fn on_sample(&mut self, rtt: Duration, in_flight: u32, dropped: bool) -> u32 {
        match &mut self.kind {
            Kind::Aimd(a) => a.on_sample(in_flight, dropped),
            Kind::Gradient2(g) => g.on_sample(duration_nanos(rtt), in_flight),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(algorithm: Algorithm) -> AdaptiveLimitConfig {
        AdaptiveLimitConfig {
            algorithm,
            ..AdaptiveLimitConfig::default()
        }
    }

    #[test]
    fn aimd_grows_at_the_limit_and_backs_off_on_drops() {
        let mut limit = AdaptiveLimit::new(&AdaptiveLimitConfig {
            initial: 10,
            min: 5,
            max: 11,
            ..config(Algorithm::Aimd)
        });
        let ms = Duration::from_millis(1);
        assert_eq!(
            limit.on_sample(ms, 9, false),
            10,
            "below the limit: unchanged"
        );
        assert_eq!(limit.on_sample(ms, 10, false), 11, "at the limit: +1");
        assert_eq!(limit.on_sample(ms, 11, false), 11, "capped at max");
        assert_eq!(limit.on_sample(ms, 1, true), 9, "floor(11 * 0.9)");
        assert_eq!(limit.on_sample(ms, 1, true), 8);
        assert_eq!(limit.on_sample(ms, 1, true), 7);
        assert_eq!(limit.on_sample(ms, 1, true), 6);
        assert_eq!(limit.on_sample(ms, 1, true), 5);
        assert_eq!(limit.on_sample(ms, 1, true), 5, "floored at min");
        assert_eq!(limit.long_rtt_nanos(), None);
    }

    #[test]
    fn gradient2_warms_up_with_a_plain_mean_and_ignores_drops() {
        let mut limit = AdaptiveLimit::new(&config(Algorithm::Gradient2));
        assert_eq!(limit.limit(), 20);
        // in_flight 10 is not below 20 / 2: not app-limited. Equal RTTs: gradient 1.
        assert_eq!(limit.on_sample(Duration::from_millis(10), 10, true), 20);
        // next = 20 * 1 + 4 = 24; smoothed: 20 * 0.8 + 24 * 0.2 = 20.8
        assert_eq!(limit.estimate(), 20.0 * 0.8 + 24.0 * 0.2);
        assert_eq!(limit.long_rtt_nanos(), Some(10_000_000.0));
        limit.on_sample(Duration::from_millis(20), 20, false);
        assert_eq!(limit.long_rtt_nanos(), Some(15_000_000.0));
    }

    #[test]
    fn gradient2_survives_zero_round_trips() {
        let mut limit = AdaptiveLimit::new(&config(Algorithm::Gradient2));
        for _ in 0..50 {
            limit.on_sample(Duration::ZERO, 1000, false);
        }
        assert!(limit.estimate().is_finite());
        assert!((1..=1000).contains(&limit.limit()));
    }

    #[test]
    fn unvalidated_configs_do_not_panic() {
        let mut limit = AdaptiveLimit::new(&AdaptiveLimitConfig {
            min: 10,
            max: 2,
            initial: 0,
            ..config(Algorithm::Aimd)
        });
        limit.on_sample(Duration::ZERO, u32::MAX, false);
        limit.on_sample(Duration::ZERO, 0, true);
        let mut limit = AdaptiveLimit::new(&AdaptiveLimitConfig {
            min: 10,
            max: 2,
            long_window: 0,
            ..config(Algorithm::Gradient2)
        });
        limit.on_sample(Duration::MAX, u32::MAX, false);
    }
}
