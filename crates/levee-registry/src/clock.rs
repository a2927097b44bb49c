//! The registry's clock: Unix time as a levee-core [`Timestamp`].
//!
//! Several registry replicas share breaker state through Redis, so the open-until and lease
//! expiry times they store must mean the same on every replica: a process-local monotonic
//! clock would not. Instances bucket their reports by Unix second for the same reason. Tests
//! inject a [`levee_core::time::ManualClock`] instead.

use levee_core::time::duration_nanos;
use levee_core::{Clock, Timestamp};
use std::time::{SystemTime, UNIX_EPOCH};

/// Unix time in nanoseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct UnixClock;

impl Clock for UnixClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_nanos(duration_nanos(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
        ))
    }
}

/// Unix milliseconds of a registry timestamp.
pub fn millis(t: Timestamp) -> u64 {
    t.as_nanos() / 1_000_000
}
