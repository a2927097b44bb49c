//! The breaker's outcome windows: lock-free on the recording path.
//!
//! The closed path (acquire + record success) is the hot path of every guarded call, so the
//! windows are built from atomics: recording is a swap and an add (count window) or one or two
//! adds (time window), and reading the totals is a handful of loads. No call takes a lock here except the first
//! record in a new time bucket, which resets the bucket under a small lock.
//!
//! A count window's totals are packed in one `u64` (counted calls in bits 0..22, failures in
//! 22..43, slow calls in 43..64); it never holds more than `MAX_WINDOW_SIZE` calls, far below
//! those widths. A time bucket counts calls in a word of its own and failures and slow calls in
//! 32-bit halves of a second word: 4 billion per second per key before anything could wrap.
//!
//! Under concurrent recording the totals are exact once every in-flight `record` has returned;
//! a reader racing a writer may see a call that is half recorded, which can delay or advance a
//! trip by one call. Single-threaded use (and so every conformance vector) is exact.

use crate::time::Timestamp;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;

const COUNTED: u64 = 1;
const FAILURE: u64 = 1 << 22;
const SLOW: u64 = 1 << 43;
const COUNTED_MASK: u64 = (1 << 22) - 1;
const FAILURE_MASK: u64 = (1 << 21) - 1;

/// Counted calls, failures and slow calls in a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    /// Calls that count toward rates (success, failure, timeout).
    pub counted: u64,
    /// Failures and timeouts.
    pub failures: u64,
    /// Slow calls.
    pub slow: u64,
}

fn encode(failed: bool, slow: bool) -> u64 {
    COUNTED | if failed { FAILURE } else { 0 } | if slow { SLOW } else { 0 }
}

fn decode(packed: u64) -> Totals {
    Totals {
        counted: packed & COUNTED_MASK,
        failures: (packed >> 22) & FAILURE_MASK,
        slow: packed >> 43,
    }
}

/// Either window kind.
#[derive(Debug)]
pub(crate) enum Window {
    Count(CountWindow),
    Time(TimeWindow),
}

impl Window {
    /// Records one counted call and returns the totals including it.
    pub(crate) fn record(&self, now: Timestamp, failed: bool, slow: bool) -> Totals {
        match self {
            Window::Count(w) => w.record(failed, slow),
            Window::Time(w) => w.record(now, failed, slow),
        }
    }

    /// The totals as of `now`.
    pub(crate) fn totals(&self, now: Timestamp) -> Totals {
        match self {
            Window::Count(w) => w.totals(),
            Window::Time(w) => w.totals(now),
        }
    }

    /// Forgets every call (on closing, and when an override is cleared).
    pub(crate) fn clear(&self) {
        match self {
            Window::Count(w) => w.clear(),
            Window::Time(w) => w.clear(),
        }
    }
}

/// The last `size` counted calls: a ring of one byte per call plus running totals.
#[derive(Debug)]
pub(crate) struct CountWindow {
    slots: Box<[AtomicU8]>,
    cursor: AtomicU64,
    totals: AtomicU64,
}

// Slot byte: bit 0 = holds a call, bit 1 = failed, bit 2 = slow.
fn slot_packed(byte: u8) -> u64 {
    if byte & 1 == 0 {
        0
    } else {
        encode(byte & 2 != 0, byte & 4 != 0)
    }
}

impl CountWindow {
    pub(crate) fn new(size: u32) -> Self {
        CountWindow {
            slots: (0..size.max(1)).map(|_| AtomicU8::new(0)).collect(),
            cursor: AtomicU64::new(0),
            totals: AtomicU64::new(0),
        }
    }

    fn record(&self, failed: bool, slow: bool) -> Totals {
        let index = self.cursor.fetch_add(1, Ordering::Relaxed) % self.slots.len() as u64;
        let byte = 1 | if failed { 2 } else { 0 } | if slow { 4 } else { 0 };
        let old = self.slots[index as usize].swap(byte, Ordering::AcqRel);
        // Packed fields add independently as long as each stays in range, so one wrapping add
        // of (new - old) updates all three.
        let delta = slot_packed(byte).wrapping_sub(slot_packed(old));
        let after = self
            .totals
            .fetch_add(delta, Ordering::AcqRel)
            .wrapping_add(delta);
        self.checked(after)
    }

    fn totals(&self) -> Totals {
        self.checked(self.totals.load(Ordering::Acquire))
    }

    /// Totals can only exceed the ring while writers race; then recount from the slots.
    fn checked(&self, packed: u64) -> Totals {
        let t = decode(packed);
        let n = self.slots.len() as u64;
        if t.counted <= n && t.failures <= t.counted && t.slow <= t.counted {
            return t;
        }
        let recount = self
            .slots
            .iter()
            .map(|s| slot_packed(s.load(Ordering::Acquire)))
            .fold(0u64, u64::wrapping_add);
        decode(recount)
    }

    fn clear(&self) {
        for slot in self.slots.iter() {
            slot.store(0, Ordering::Release);
        }
        self.totals.store(0, Ordering::Release);
    }
}

/// The last `size` seconds in 1 s buckets aligned to whole seconds of the clock.
#[derive(Debug)]
pub(crate) struct TimeWindow {
    buckets: Box<[Bucket]>,
    rotate: Mutex<()>,
}

/// One second of calls. Counted calls get a word of their own so no realistic rate can
/// overflow them; failures (low 32 bits) and slow calls (high 32 bits) share the second word,
/// which only failing or slow calls touch.
#[derive(Debug, Default)]
struct Bucket {
    /// The absolute second this bucket counts, plus one (0 = never used).
    second: AtomicU64,
    counted: AtomicU64,
    marks: AtomicU64,
}

const MARK_FAILURE: u64 = 1;
const MARK_SLOW: u64 = 1 << 32;

const NANOS_PER_SECOND: u64 = 1_000_000_000;

impl TimeWindow {
    pub(crate) fn new(size: u32) -> Self {
        TimeWindow {
            buckets: (0..size.max(1)).map(|_| Bucket::default()).collect(),
            rotate: Mutex::new(()),
        }
    }

    fn record(&self, now: Timestamp, failed: bool, slow: bool) -> Totals {
        let second = now.as_nanos() / NANOS_PER_SECOND;
        let tag = second + 1;
        let bucket = &self.buckets[(second % self.buckets.len() as u64) as usize];
        if bucket.second.load(Ordering::Acquire) != tag {
            let _guard = self.rotate.lock().unwrap_or_else(|p| p.into_inner());
            // A bucket holding an older second is reset; one already holding a newer second
            // (this call's clock reading is late) simply takes the call.
            if bucket.second.load(Ordering::Acquire) < tag {
                bucket.counted.store(0, Ordering::Release);
                bucket.marks.store(0, Ordering::Release);
                bucket.second.store(tag, Ordering::Release);
            }
        }
        bucket.counted.fetch_add(1, Ordering::AcqRel);
        let marks = if failed { MARK_FAILURE } else { 0 } | if slow { MARK_SLOW } else { 0 };
        if marks != 0 {
            bucket.marks.fetch_add(marks, Ordering::AcqRel);
        }
        self.totals(now)
    }

    fn totals(&self, now: Timestamp) -> Totals {
        let second = now.as_nanos() / NANOS_PER_SECOND;
        let size = self.buckets.len() as u64;
        let oldest = second.saturating_sub(size - 1);
        let mut sum = Totals::default();
        for bucket in self.buckets.iter() {
            let tag = bucket.second.load(Ordering::Acquire);
            if tag > oldest && tag <= second + 1 {
                let marks = bucket.marks.load(Ordering::Acquire);
                sum.counted += bucket.counted.load(Ordering::Acquire);
                sum.failures += marks & 0xFFFF_FFFF;
                sum.slow += marks >> 32;
            }
        }
        sum
    }

    fn clear(&self) {
        let _guard = self.rotate.lock().unwrap_or_else(|p| p.into_inner());
        for bucket in self.buckets.iter() {
            bucket.second.store(0, Ordering::Release);
            bucket.counted.store(0, Ordering::Release);
            bucket.marks.store(0, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: f64) -> Timestamp {
        Timestamp::from_nanos((secs * 1e9) as u64)
    }

    #[test]
    fn count_window_forgets_the_oldest_call() {
        let w = CountWindow::new(3);
        w.record(true, false);
        w.record(false, true);
        w.record(false, false);
        assert_eq!(
            w.totals(),
            Totals {
                counted: 3,
                failures: 1,
                slow: 1
            }
        );
        w.record(false, false); // pushes out the failure
        assert_eq!(
            w.totals(),
            Totals {
                counted: 3,
                failures: 0,
                slow: 1
            }
        );
        w.clear();
        assert_eq!(w.totals(), Totals::default());
    }

    #[test]
    fn time_window_rolls_buckets_over() {
        let w = TimeWindow::new(2);
        w.record(at(10.1), true, false);
        w.record(at(11.9), false, false);
        assert_eq!(
            w.totals(at(11.9)),
            Totals {
                counted: 2,
                failures: 1,
                slow: 0
            }
        );
        // At 12.0 the bucket of second 10 leaves the two-second window.
        assert_eq!(
            w.totals(at(12.0)),
            Totals {
                counted: 1,
                failures: 0,
                slow: 0
            }
        );
        w.record(at(12.5), false, true);
        assert_eq!(
            w.totals(at(12.5)),
            Totals {
                counted: 2,
                failures: 0,
                slow: 1
            }
        );
        assert_eq!(w.totals(at(20.0)), Totals::default());
    }

    #[test]
    fn a_busy_second_never_spills_successes_into_failures() {
        let w = TimeWindow::new(10);
        let now = at(5.0);
        let b = &w.buckets[5];
        b.second.store(6, Ordering::Release);
        b.counted.store(u64::from(u32::MAX) * 4, Ordering::Release);
        let t = w.record(now, false, false);
        assert_eq!(t.failures, 0);
        assert_eq!(t.counted, u64::from(u32::MAX) * 4 + 1);
    }

    #[test]
    fn concurrent_records_are_all_counted() {
        let w = std::sync::Arc::new(CountWindow::new(100_000));
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let w = w.clone();
                std::thread::spawn(move || {
                    for n in 0..10_000 {
                        w.record((n + i) % 3 == 0, n % 5 == 0);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("recording thread");
        }
        let t = w.totals();
        assert_eq!(t.counted, 40_000);
        assert_eq!(t.slow, 8_000);
    }
}
