//! Randomness as an input.
//!
//! Jitter (breaker open waits, retry backoff) draws from a [`RandomSource`] handed in by the
//! caller, so conformance vectors can fix every draw. A draw is a uniform `f64` in `[0, 1)`.
//! The production source is [`SplitMix64`], lock-free and allocation-free; [`ScriptedRandom`]
//! replays draws listed by a test or vector and notes when it runs out.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// A source of uniform draws in `[0, 1)`.
pub trait RandomSource: Send + Sync {
    /// The next draw, uniform in `[0, 1)`.
    fn next_unit(&self) -> f64;
}

/// SplitMix64 over one atomic word: fast, lock-free, and good enough for jitter (it is not a
/// cryptographic generator and must never be used as one).
#[derive(Debug)]
pub struct SplitMix64(AtomicU64);

const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(AtomicU64::new(seed))
    }

    /// A generator seeded from the process's hash-map random keys and the current time.
    pub fn from_entropy() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        SplitMix64::new(hasher.finish())
    }

    /// The next 64 random bits.
    pub fn next_u64(&self) -> u64 {
        let mut z = self
            .0
            .fetch_add(GOLDEN_GAMMA, Ordering::Relaxed)
            .wrapping_add(GOLDEN_GAMMA);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl Default for SplitMix64 {
    fn default() -> Self {
        SplitMix64::from_entropy()
    }
}

impl RandomSource for SplitMix64 {
    fn next_unit(&self) -> f64 {
        // 53 high bits make every representable value in [0, 1) equally likely.
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// Replays a fixed list of draws. When the list is empty it returns `0.5` and remembers that it
/// ran dry, so a conformance runner can name the step that needed a draw it did not supply.
#[derive(Debug, Default)]
pub struct ScriptedRandom {
    draws: Mutex<VecDeque<f64>>,
    ran_dry: AtomicBool,
}

impl ScriptedRandom {
    /// A source that will return `draws` in order.
    pub fn new(draws: impl IntoIterator<Item = f64>) -> Self {
        ScriptedRandom {
            draws: Mutex::new(draws.into_iter().collect()),
            ran_dry: AtomicBool::new(false),
        }
    }

    /// Appends draws.
    pub fn push(&self, draws: impl IntoIterator<Item = f64>) {
        self.lock().extend(draws);
    }

    /// Draws supplied but not yet used.
    pub fn remaining(&self) -> usize {
        self.lock().len()
    }

    /// True (once) if a draw was asked for after the list ran out; resets the flag.
    pub fn take_ran_dry(&self) -> bool {
        self.ran_dry.swap(false, Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<f64>> {
        self.draws
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl RandomSource for ScriptedRandom {
    fn next_unit(&self) -> f64 {
        match self.lock().pop_front() {
            Some(draw) => draw,
            None => {
                self.ran_dry.store(true, Ordering::SeqCst);
                0.5
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_draws_stay_in_unit_interval_and_vary() {
        let rng = SplitMix64::new(42);
        let draws: Vec<f64> = (0..1000).map(|_| rng.next_unit()).collect();
        assert!(draws.iter().all(|d| (0.0..1.0).contains(d)));
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        assert!((0.4..0.6).contains(&mean), "mean {mean}");
    }

    #[test]
    fn scripted_random_replays_then_reports_running_dry() {
        let rng = ScriptedRandom::new([0.25, 0.75]);
        assert_eq!(rng.next_unit(), 0.25);
        assert_eq!(rng.next_unit(), 0.75);
        assert!(!rng.take_ran_dry());
        assert_eq!(rng.next_unit(), 0.5);
        assert!(rng.take_ran_dry());
        assert!(!rng.take_ran_dry());
    }
}
