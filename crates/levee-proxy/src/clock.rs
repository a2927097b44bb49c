//! One reading of the clock per poll of a connection.
//!
//! A request reads the time about a dozen times (its access line's start and end, the
//! attempt's timing, the breaker, the bulkhead slot, the pool's idle bookkeeping, the
//! connection's activity), and each reading is a `clock_gettime` call. While a connection's
//! task is polled ([`during_poll`], around every poll in `server::drive`), the clock is read
//! once, at the first reading of the poll, and every later reading in the same poll gets that
//! instant. A poll lasts microseconds, and readings in different polls — a request's start and
//! its answer — differ as they should. Outside a poll (other tasks, tests) every reading is
//! fresh.

use levee_core::time::{Clock, SystemClock};
use levee_core::Timestamp;
use std::cell::Cell;
use tokio::time::Instant;

#[derive(Clone, Copy)]
enum PollTime {
    /// Not inside a connection's poll: read the clock.
    Outside,
    /// Inside a poll that has not read the clock yet.
    Unread,
    /// Inside a poll that read it.
    Read(Instant),
}

thread_local! {
    static POLL_TIME: Cell<PollTime> = const { Cell::new(PollTime::Outside) };
}

/// Now: this poll's reading, or a fresh one.
pub(crate) fn now() -> Instant {
    POLL_TIME.with(|time| match time.get() {
        PollTime::Read(instant) => instant,
        PollTime::Unread => {
            let instant = Instant::now();
            time.set(PollTime::Read(instant));
            instant
        }
        PollTime::Outside => Instant::now(),
    })
}

/// [`now`] as a policy [`Timestamp`] (the scale of [`SystemClock`]).
pub(crate) fn timestamp() -> Timestamp {
    SystemClock::timestamp_of(now().into_std())
}

/// The proxy's [`Clock`]: [`timestamp`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PollClock;

impl Clock for PollClock {
    fn now(&self) -> Timestamp {
        timestamp()
    }
}

/// Runs `poll` (one poll of a connection's task) with one reading of the clock for all of it.
pub(crate) fn during_poll<R>(poll: impl FnOnce() -> R) -> R {
    struct Restore(PollTime);
    impl Drop for Restore {
        fn drop(&mut self) {
            POLL_TIME.with(|time| time.set(self.0));
        }
    }
    let _restore = Restore(POLL_TIME.with(|time| time.replace(PollTime::Unread)));
    poll()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waits (nanoseconds: the monotonic clock's resolution) until the clock has moved past `t`.
    fn clock_moved_past(t: Instant) {
        while Instant::now() <= t {
            std::hint::spin_loop();
        }
    }

    #[test]
    fn a_poll_reads_the_clock_once_and_outside_every_reading_is_fresh() {
        let first = during_poll(|| {
            let first = now();
            clock_moved_past(first);
            assert_eq!(now(), first, "one poll, one reading");
            first
        });
        assert!(now() > first, "the poll's reading is not kept after it");
        let outside = now();
        clock_moved_past(outside);
        assert!(now() > outside, "outside a poll every reading is fresh");
    }

    #[test]
    fn each_poll_takes_its_own_reading_and_nesting_restores_the_outer_one() {
        during_poll(|| {
            let outer = now();
            clock_moved_past(outer);
            let inner = during_poll(now);
            assert!(inner > outer, "a new poll reads the clock again");
            assert_eq!(now(), outer, "the outer poll keeps its reading");
            assert_eq!(
                timestamp(),
                SystemClock::timestamp_of(outer.into_std()),
                "the policy clock reads the same instant"
            );
        });
    }
}
