//! Time as an input.
//!
//! Policy logic never reads a clock itself: every decision takes `now` as an argument, so the
//! same calls are deterministic under test and in conformance vectors (STYLE point 1). A
//! [`Timestamp`] is a point on a monotonic clock, in nanoseconds from an arbitrary origin; only
//! differences between timestamps mean anything. The edges read a [`Clock`] and pass the value in.

use std::ops::{Add, Sub};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A point on a monotonic clock, in nanoseconds from the clock's origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The clock's origin.
    pub const ZERO: Timestamp = Timestamp(0);

    /// A timestamp `nanos` nanoseconds after the origin.
    pub const fn from_nanos(nanos: u64) -> Self {
        Timestamp(nanos)
    }

    /// Nanoseconds since the origin.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Time elapsed from `earlier` to `self`; zero when `earlier` is later (clocks never run
    /// backwards for policy purposes).
    pub fn saturating_since(self, earlier: Timestamp) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, rhs: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(duration_nanos(rhs)))
    }
}

impl Sub<Timestamp> for Timestamp {
    type Output = Duration;
    fn sub(self, rhs: Timestamp) -> Duration {
        self.saturating_since(rhs)
    }
}

/// A duration in whole nanoseconds, saturating at `u64::MAX` (584 years).
pub fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A source of [`Timestamp`]s. Implemented by [`SystemClock`] in production and by
/// [`ManualClock`] in tests and conformance runs.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The process's monotonic clock. Every `SystemClock` shares one origin (the first use in the
/// process), so timestamps from different instances compare meaningfully.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl SystemClock {
    /// The timestamp of an instant already read (an edge that read the clock once for
    /// several uses), on the same scale as [`SystemClock::now`].
    pub fn timestamp_of(instant: Instant) -> Timestamp {
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        let origin = *ORIGIN.get_or_init(|| instant);
        // Start one hour in so that "an hour ago" is still a valid timestamp.
        Timestamp(duration_nanos(instant.saturating_duration_since(origin)) + 3_600_000_000_000)
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        SystemClock::timestamp_of(Instant::now())
    }
}

/// A clock that moves only when told to: the test and conformance clock.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock reading `start`.
    pub fn new(start: Timestamp) -> Self {
        ManualClock(AtomicU64::new(start.0))
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(duration_nanos(by), Ordering::SeqCst);
    }

    /// Sets the clock to `to`.
    pub fn set(&self, to: Timestamp) {
        self.0.store(to.0, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_advanced() {
        let clock = ManualClock::new(Timestamp::from_nanos(5));
        assert_eq!(clock.now(), Timestamp::from_nanos(5));
        clock.advance(Duration::from_millis(2));
        assert_eq!(clock.now().as_nanos(), 2_000_005);
    }

    #[test]
    fn differences_saturate_instead_of_panicking() {
        let early = Timestamp::from_nanos(10);
        let late = Timestamp::from_nanos(30);
        assert_eq!(late - early, Duration::from_nanos(20));
        assert_eq!(early - late, Duration::ZERO);
    }

    #[test]
    fn an_instant_read_once_keeps_its_distance_on_the_policy_clock() {
        let now = SystemClock.now();
        let read = Instant::now();
        let later = read + Duration::from_millis(1500);
        let (a, b) = (
            SystemClock::timestamp_of(read),
            SystemClock::timestamp_of(later),
        );
        assert_eq!(b - a, Duration::from_millis(1500));
        assert!(a >= now, "the same scale as SystemClock::now");
    }

    #[test]
    fn system_clock_is_monotonic() {
        let a = SystemClock.now();
        let b = SystemClock.now();
        assert!(b >= a);
    }
}
