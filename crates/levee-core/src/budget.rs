//! The retry budget (SPEC §4): retries may add at most a fraction of the original requests,
//! plus a small floor of retries per second that is always allowed.
//!
//! Every original request *deposits* once ([`RetryBudget::deposit`]); every retry must
//! *withdraw* first ([`RetryBudget::try_withdraw`]) and is not attempted when the withdrawal is
//! refused (`retry_budget_exhausted`). A deposit lasts `ttl`. This is the design of Finagle's
//! `RetryBudget` and linkerd's retry budget, made exact so that Rust and Go agree to the
//! request:
//!
//! - The window is `ttl` split into 10 slots of `slot_width = ttl_ns / 10` nanoseconds
//!   (integer division). Slots are counted from the budget's creation time `start`:
//!   `slot(now) = (now_ns - start_ns) / slot_width` (a `now` before `start` counts as `start`;
//!   a `now` older than the newest slot already seen counts in the newest slot). The live slots
//!   at `now` are the 10 most recent: indexes `slot(now) - 9 ..= slot(now)`. The window
//!   therefore covers between `0.9 × ttl` and `ttl` of history.
//! - A withdrawal at `now` is allowed iff, with `D` deposits and `R` retries in the live
//!   slots,
//!   `(R + 1) × 1_000_000 <= min_per_second × ttl_ms × 1_000 + ratio_ppm × D`,
//!   where `ttl_ms = floor(ttl / 1ms)` and `ratio_ppm = round(ratio × 1_000_000)` (half away
//!   from zero). All arithmetic is exact integer arithmetic with 128-bit intermediates. An
//!   allowed withdrawal counts one retry in the current slot; a refused one counts nothing.
//!
//! The state is ten small counters behind one mutex: the check and the count must be one atomic
//! step for the bound to be exact, and the critical section is a dozen integer operations with
//! no allocation. Config rules and the vector format: `conformance/policies/retry_budget.md`.

use crate::time::{duration_nanos, Timestamp};
use serde::{Deserialize, Serialize};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// Number of slots the window is split into.
pub const SLOTS: u64 = 10;

/// `budget:` in a retry config (SPEC §4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryBudgetConfig {
    /// Retries may add at most this fraction on top of requests (`0.2` = 20 %). `0..=1000`.
    pub ratio: f64,
    /// Retries always allowed per second, whatever the traffic.
    pub min_per_second: u32,
    /// How long a request's deposit lasts: `1s..=60s`.
    #[serde(with = "crate::duration::serde_str")]
    pub ttl: Duration,
}

impl Default for RetryBudgetConfig {
    fn default() -> Self {
        RetryBudgetConfig {
            ratio: 0.2,
            min_per_second: 10,
            ttl: Duration::from_secs(10),
        }
    }
}

/// Shortest `ttl` accepted.
pub const MIN_TTL: Duration = Duration::from_secs(1);
/// Longest `ttl` accepted.
pub const MAX_TTL: Duration = Duration::from_secs(60);
/// Largest `ratio` accepted.
pub const MAX_RATIO: f64 = 1000.0;

impl RetryBudgetConfig {
    /// Checks the values; the message says what is wrong, where, and how to fix it.
    pub fn validate(&self) -> Result<(), String> {
        if !self.ratio.is_finite() || self.ratio < 0.0 || self.ratio > MAX_RATIO {
            return Err(format!(
                "budget.ratio is {}: it must be between 0 and 1000 (0.2 lets retries add 20% on \
                 top of requests)",
                self.ratio
            ));
        }
        if self.ttl < MIN_TTL || self.ttl > MAX_TTL {
            return Err(format!(
                "budget.ttl is {}: it must be between 1s and 60s (the default is 10s)",
                crate::duration::format(self.ttl)
            ));
        }
        if self.ratio_ppm() == 0 && self.min_per_second == 0 {
            return Err(
                "budget allows no retries at all (ratio 0 and min_per_second 0): raise \
                        budget.ratio or budget.min_per_second, or set max_attempts: 1 to turn \
                        retries off"
                    .to_string(),
            );
        }
        Ok(())
    }

    /// `round(ratio × 1_000_000)`, half away from zero.
    pub fn ratio_ppm(&self) -> u64 {
        if self.ratio.is_finite() && self.ratio > 0.0 {
            (self.ratio * 1_000_000.0).round() as u64
        } else {
            0
        }
    }

    /// The slot width in nanoseconds: `ttl_ns / 10`, at least 1.
    pub fn slot_width_nanos(&self) -> u64 {
        (duration_nanos(self.ttl) / SLOTS).max(1)
    }

    /// The floor allowance in millionths of a retry: `min_per_second × ttl_ms × 1000`.
    fn floor_ppm(&self) -> u128 {
        let ttl_ms = self.ttl.as_millis();
        u128::from(self.min_per_second) * ttl_ms * 1_000
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    index: u64,
    deposits: u64,
    retries: u64,
}

#[derive(Debug)]
struct State {
    /// The newest slot index seen.
    head: u64,
    slots: [Slot; SLOTS as usize],
}

/// What the budget holds at one moment (for metrics, `/health` and vectors).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BudgetSnapshot {
    /// Deposits in the live window.
    pub deposits: u64,
    /// Retries in the live window.
    pub retries: u64,
    /// Further retries that would be allowed now.
    pub available: u64,
}

/// A retry budget; share one per endpoint key (`Arc<RetryBudget>`). Thread-safe.
#[derive(Debug)]
pub struct RetryBudget {
    config: RetryBudgetConfig,
    start: Timestamp,
    slot_width: u64,
    floor_ppm: u128,
    ratio_ppm: u128,
    state: Mutex<State>,
}

impl RetryBudget {
    /// A budget whose window starts at `start`. The config should have passed
    /// [`RetryBudgetConfig::validate`]; out-of-range values are still handled without panics.
    pub fn new(config: RetryBudgetConfig, start: Timestamp) -> Self {
        RetryBudget {
            slot_width: config.slot_width_nanos(),
            floor_ppm: config.floor_ppm(),
            ratio_ppm: u128::from(config.ratio_ppm()),
            config,
            start,
            state: Mutex::new(State {
                head: 0,
                slots: [Slot::default(); SLOTS as usize],
            }),
        }
    }

    /// The config this budget was built from.
    pub fn config(&self) -> &RetryBudgetConfig {
        &self.config
    }

    /// Records one original request at `now`. Call it once per request, not per attempt.
    pub fn deposit(&self, now: Timestamp) {
        let index = self.slot_index(now);
        let mut state = self.lock();
        let slot = state.current(index);
        slot.deposits = slot.deposits.saturating_add(1);
    }

    /// Asks for one retry at `now`: true (and the retry is counted) when the budget allows it.
    pub fn try_withdraw(&self, now: Timestamp) -> bool {
        let index = self.slot_index(now);
        let mut state = self.lock();
        let (deposits, retries) = state.totals(index);
        if !self.allows(deposits, retries) {
            return false;
        }
        let slot = state.current(index);
        slot.retries = slot.retries.saturating_add(1);
        true
    }

    /// The live window's counts at `now`.
    pub fn snapshot(&self, now: Timestamp) -> BudgetSnapshot {
        let index = self.slot_index(now);
        let mut state = self.lock();
        let (deposits, retries) = state.totals(index);
        let capacity = (self.floor_ppm + self.ratio_ppm * u128::from(deposits)) / 1_000_000;
        let available = capacity.saturating_sub(u128::from(retries));
        BudgetSnapshot {
            deposits,
            retries,
            available: u64::try_from(available).unwrap_or(u64::MAX),
        }
    }

    fn allows(&self, deposits: u64, retries: u64) -> bool {
        let wanted = (u128::from(retries) + 1) * 1_000_000;
        wanted <= self.floor_ppm + self.ratio_ppm * u128::from(deposits)
    }

    fn slot_index(&self, now: Timestamp) -> u64 {
        now.as_nanos().saturating_sub(self.start.as_nanos()) / self.slot_width
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is plain counters, valid after any panic elsewhere.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl State {
    /// Moves the head to `index` (never backwards) and returns the head's slot, cleared if it
    /// last held an older index.
    fn current(&mut self, index: u64) -> &mut Slot {
        self.head = self.head.max(index);
        let head = self.head;
        let slot = &mut self.slots[(head % SLOTS) as usize];
        if slot.index != head {
            *slot = Slot {
                index: head,
                deposits: 0,
                retries: 0,
            };
        }
        slot
    }

    /// Deposits and retries in the live slots for `index` (or the head, if newer).
    fn totals(&mut self, index: u64) -> (u64, u64) {
        self.head = self.head.max(index);
        let head = self.head;
        let oldest = head.saturating_sub(SLOTS - 1);
        self.slots
            .iter()
            .filter(|s| s.index >= oldest && s.index <= head)
            .fold((0u64, 0u64), |(d, r), s| {
                (d.saturating_add(s.deposits), r.saturating_add(s.retries))
            })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn at_ms(ms: u64) -> Timestamp {
        Timestamp::from_nanos(ms * 1_000_000)
    }

    fn config(ratio: f64, min_per_second: u32, ttl_secs: u64) -> RetryBudgetConfig {
        RetryBudgetConfig {
            ratio,
            min_per_second,
            ttl: Duration::from_secs(ttl_secs),
        }
    }

    #[test]
    fn floor_allows_min_per_second_times_ttl() {
        let budget = RetryBudget::new(config(0.2, 10, 10), Timestamp::ZERO);
        let allowed = (0..150).filter(|_| budget.try_withdraw(at_ms(0))).count();
        assert_eq!(allowed, 100);
    }

    #[test]
    fn ratio_adds_a_fraction_of_deposits() {
        let budget = RetryBudget::new(config(0.5, 0, 1), Timestamp::ZERO);
        for _ in 0..10 {
            budget.deposit(at_ms(0));
        }
        let allowed = (0..10).filter(|_| budget.try_withdraw(at_ms(0))).count();
        assert_eq!(allowed, 5);
        assert_eq!(
            budget.snapshot(at_ms(0)),
            BudgetSnapshot {
                deposits: 10,
                retries: 5,
                available: 0
            }
        );
    }

    #[test]
    fn deposits_and_retries_expire_after_ttl() {
        let budget = RetryBudget::new(config(1.0, 0, 1), Timestamp::ZERO);
        budget.deposit(at_ms(0));
        assert!(budget.try_withdraw(at_ms(0)));
        assert!(!budget.try_withdraw(at_ms(900)));
        // Slot 0 leaves the window when slot 10 (1000 ms) begins.
        assert_eq!(budget.snapshot(at_ms(999)).deposits, 1);
        assert_eq!(budget.snapshot(at_ms(1000)).deposits, 0);
        budget.deposit(at_ms(1000));
        assert!(budget.try_withdraw(at_ms(1000)));
    }

    #[test]
    fn late_timestamps_count_in_the_newest_slot() {
        let budget = RetryBudget::new(config(1.0, 0, 1), Timestamp::ZERO);
        budget.deposit(at_ms(500));
        budget.deposit(at_ms(100));
        assert_eq!(budget.snapshot(at_ms(1450)).deposits, 2);
        assert_eq!(budget.snapshot(at_ms(1500)).deposits, 0);
    }

    #[test]
    fn validation_names_the_field_and_the_fix() {
        assert!(config(0.2, 10, 10).validate().is_ok());
        assert!(config(-1.0, 10, 10)
            .validate()
            .unwrap_err()
            .contains("budget.ratio"));
        assert!(config(f64::NAN, 10, 10).validate().is_err());
        assert!(config(0.2, 10, 0)
            .validate()
            .unwrap_err()
            .contains("budget.ttl"));
        assert!(config(0.2, 10, 61)
            .validate()
            .unwrap_err()
            .contains("budget.ttl"));
        assert!(config(0.0, 0, 10)
            .validate()
            .unwrap_err()
            .contains("no retries"));
    }

    #[test]
    fn ratio_ppm_rounds_half_away_from_zero() {
        assert_eq!(config(0.2, 0, 10).ratio_ppm(), 200_000);
        assert_eq!(config(0.0000005, 0, 10).ratio_ppm(), 1);
        assert_eq!(config(1000.0, 0, 10).ratio_ppm(), 1_000_000_000);
    }
}
