//! Passive outlier ejection (SPEC §8): an endpoint that fails too often in a row is taken out
//! of rotation for a while, longer each time it happens again.
//!
//! # Rules
//!
//! - Every attempt to an endpoint reports whether it failed (connect error, reset, timeout, or
//!   a status the upstream classifies as a failure). A success resets the streak.
//! - When the streak reaches `consecutive_failures` (0 = off), the endpoint is ejected for
//!   `base_ejection × n`, where `n` is the number of times it has now been ejected, capped at
//!   [`MAX_EJECTION_FACTOR`] × `base_ejection` so a flapping endpoint is not lost for hours.
//! - An ejection is refused when it would take more than `max_ejection_percent` of the
//!   upstream's endpoints out (`(ejected + 1) × 100 > total × percent`), or the last endpoint
//!   still in rotation: at least one always stays. A refused ejection keeps the streak, so the
//!   endpoint is ejected as soon as room frees up and it fails again.
//! - The ejection ends lazily: at or after `ejected_until` the endpoint is back (the caller
//!   starts its slow start from that time, see [`crate::balance::slow_start_weight`]) with a
//!   clean streak.
//!
//! Pure: every call takes `now`; nothing here reads a clock.

use crate::time::Timestamp;
use std::time::Duration;

/// An ejection lasts at most this many times `base_ejection`.
pub const MAX_EJECTION_FACTOR: u32 = 10;

/// The policy of one upstream (SPEC §8 `outlier`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutlierPolicy {
    /// Failures in a row that eject; 0 = off.
    pub consecutive_failures: u32,
    /// First ejection time; multiplied by the number of ejections.
    pub base_ejection: Duration,
    /// Never eject more than this percent of the endpoints.
    pub max_ejection_percent: u32,
}

/// An ejection that just happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ejection {
    /// When the endpoint comes back.
    pub until: Timestamp,
    /// How many times it has been ejected, this one included.
    pub times: u32,
}

/// One endpoint's outlier state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutlierState {
    consecutive: u32,
    times_ejected: u32,
    ejected_until: Option<Timestamp>,
}

impl OutlierState {
    /// True while an ejection runs at `now`.
    pub fn is_ejected(&self, now: Timestamp) -> bool {
        self.ejected_until.is_some_and(|until| now < until)
    }

    /// When the current or last ejection ends (`None` if never ejected).
    pub fn ejected_until(&self) -> Option<Timestamp> {
        self.ejected_until
    }

    /// How many times the endpoint has been ejected.
    pub fn times_ejected(&self) -> u32 {
        self.times_ejected
    }

    /// Failures in a row so far.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive
    }

    /// Records one attempt at `now`. `ejected_now` is how many of the upstream's `total`
    /// endpoints are ejected at `now` (this one not included). Returns the ejection this
    /// failure caused, if any.
    pub fn record(
        &mut self,
        policy: &OutlierPolicy,
        failed: bool,
        now: Timestamp,
        ejected_now: usize,
        total: usize,
    ) -> Option<Ejection> {
        if self.is_ejected(now) {
            // A late answer from before the ejection: it changes nothing.
            return None;
        }
        if !failed {
            self.consecutive = 0;
            return None;
        }
        self.consecutive = self.consecutive.saturating_add(1);
        if policy.consecutive_failures == 0 || self.consecutive < policy.consecutive_failures {
            return None;
        }
        if !may_eject(policy, ejected_now, total) {
            return None;
        }
        self.times_ejected = self.times_ejected.saturating_add(1);
        let factor = self.times_ejected.min(MAX_EJECTION_FACTOR);
        let until = now + policy.base_ejection.saturating_mul(factor);
        self.ejected_until = Some(until);
        self.consecutive = 0;
        Some(Ejection {
            until,
            times: self.times_ejected,
        })
    }
}

/// True when one more of `total` endpoints may be ejected while `ejected_now` already are.
pub fn may_eject(policy: &OutlierPolicy, ejected_now: usize, total: usize) -> bool {
    let after = ejected_now.saturating_add(1);
    after < total
        && (after as u128) * 100 <= (total as u128) * u128::from(policy.max_ejection_percent)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = Timestamp::from_nanos(1_000_000_000_000);

    fn policy() -> OutlierPolicy {
        OutlierPolicy {
            consecutive_failures: 3,
            base_ejection: Duration::from_secs(30),
            max_ejection_percent: 50,
        }
    }

    #[test]
    fn ejects_after_the_streak_and_returns_lazily() {
        let mut s = OutlierState::default();
        assert_eq!(s.record(&policy(), true, T0, 0, 2), None);
        assert_eq!(s.record(&policy(), true, T0, 0, 2), None);
        let e = s.record(&policy(), true, T0, 0, 2).expect("ejected");
        assert_eq!(e.until, T0 + Duration::from_secs(30));
        assert!(s.is_ejected(T0 + Duration::from_secs(29)));
        assert!(!s.is_ejected(T0 + Duration::from_secs(30)));
    }

    #[test]
    fn a_success_resets_the_streak() {
        let mut s = OutlierState::default();
        s.record(&policy(), true, T0, 0, 2);
        s.record(&policy(), true, T0, 0, 2);
        s.record(&policy(), false, T0, 0, 2);
        assert_eq!(s.record(&policy(), true, T0, 0, 2), None);
        assert_eq!(s.consecutive_failures(), 1);
    }

    #[test]
    fn ejection_time_grows_with_each_ejection_up_to_the_cap() {
        let mut s = OutlierState::default();
        let mut now = T0;
        let mut lengths = Vec::new();
        for _ in 0..12 {
            let mut ejection = None;
            for _ in 0..3 {
                ejection = s.record(&policy(), true, now, 0, 4);
            }
            let e = ejection.expect("ejected");
            lengths.push((e.until - now).as_secs());
            now = e.until;
        }
        assert_eq!(&lengths[..3], &[30, 60, 90]);
        assert_eq!(lengths[11], 300);
    }

    #[test]
    fn never_ejects_past_the_percentage_or_the_last_endpoint() {
        let p = policy();
        assert!(may_eject(&p, 0, 2));
        assert!(!may_eject(&p, 1, 2));
        assert!(!may_eject(&p, 0, 1));
        let all = OutlierPolicy {
            max_ejection_percent: 100,
            ..p
        };
        assert!(may_eject(&all, 2, 4));
        assert!(!may_eject(&all, 3, 4), "at least one stays");
        let mut s = OutlierState::default();
        for _ in 0..5 {
            assert_eq!(s.record(&p, true, T0, 1, 2), None);
        }
        assert!(
            s.record(&p, true, T0, 0, 2).is_some(),
            "the streak was kept"
        );
    }
}
