//! Backoff between attempts (SPEC §4), computed in whole nanoseconds so that Rust and Go
//! produce the same value from the same draw.
//!
//! For the retry that follows attempt number `attempts_made` (so `n = attempts_made - 1`, and
//! the first retry uses `base × 2^0`):
//!
//! - `cap = min(max, base × 2^n)`, in `u64` nanoseconds, saturating instead of overflowing.
//! - `none`: `cap`. No draw.
//! - `full`: `draw(u, cap)`, uniform in `[0, cap]`. One draw.
//! - `equal`: `cap / 2 + draw(u, cap - cap / 2)` (integer halving). One draw.
//! - `decorrelated`: `prev = previous backoff or base`; `hi = prev × 3` (saturating);
//!   `min(max, base + draw(u, hi - base))`, or `base` when `hi <= base`. One draw, always.
//!
//! `draw(u, span)` scales one uniform draw `u` to `0..=span` nanoseconds:
//! `x = floor(u × (span as f64))` with one IEEE-754 double multiplication rounded to nearest;
//! `0` when `x` is not above 0 (negative draws and NaN included), `span` when
//! `x >= span as f64`, else `x as u64`. Every addition is done afterwards, in integers.

use crate::time::duration_nanos;
use crate::RandomSource;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How the backoff is spread (SPEC §4 `backoff.jitter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Jitter {
    /// Exactly `min(max, base × 2^n)`.
    None,
    /// Uniform in `[0, min(max, base × 2^n)]`.
    #[default]
    Full,
    /// Half fixed, half uniform.
    Equal,
    /// `min(max, uniform(base, previous × 3))`.
    Decorrelated,
}

impl Jitter {
    /// The config spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Jitter::None => "none",
            Jitter::Full => "full",
            Jitter::Equal => "equal",
            Jitter::Decorrelated => "decorrelated",
        }
    }

    /// True when computing a backoff consumes one random draw.
    pub const fn draws(self) -> bool {
        !matches!(self, Jitter::None)
    }
}

/// `backoff:` in a retry config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackoffConfig {
    /// The first retry's backoff before jitter.
    #[serde(with = "crate::duration::serde_str")]
    pub base: Duration,
    /// The largest backoff.
    #[serde(with = "crate::duration::serde_str")]
    pub max: Duration,
    /// How the backoff is spread.
    pub jitter: Jitter,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            base: Duration::from_millis(25),
            max: Duration::from_secs(1),
            jitter: Jitter::Full,
        }
    }
}

impl BackoffConfig {
    /// Checks the values; the message says what is wrong, where, and how to fix it.
    pub fn validate(&self) -> Result<(), String> {
        if self.base.is_zero() {
            return Err(
                "backoff.base is 0s: it must be more than zero (the default is 25ms); \
                        use jitter: full for retries that may start at once"
                    .to_string(),
            );
        }
        if self.base > self.max {
            return Err(format!(
                "backoff.base ({}) is longer than backoff.max ({}): raise backoff.max or lower \
                 backoff.base",
                crate::duration::format(self.base),
                crate::duration::format(self.max)
            ));
        }
        Ok(())
    }
}

/// `min(max, base × 2^n)` in nanoseconds, saturating.
pub fn exponential_cap(config: &BackoffConfig, n: u32) -> u64 {
    let base = duration_nanos(config.base);
    let max = duration_nanos(config.max);
    let grown = if n >= 64 || base > (u64::MAX >> n) {
        u64::MAX
    } else {
        base << n
    };
    grown.min(max)
}

/// Scales the draw `u` to `0..=span` nanoseconds (see the module doc).
pub fn draw(u: f64, span: u64) -> u64 {
    let span_f = span as f64;
    let x = (u * span_f).floor();
    if x.is_nan() || x <= 0.0 {
        0
    } else if x >= span_f {
        span
    } else {
        (x as u64).min(span)
    }
}

/// The backoff before the retry that follows attempt `attempts_made` (1 = after the first
/// try). `previous` is the backoff computed for the previous retry (only `decorrelated` uses
/// it). Consumes one draw from `rng` unless the jitter is `none`.
pub fn backoff(
    config: &BackoffConfig,
    attempts_made: u32,
    previous: Option<Duration>,
    rng: &dyn RandomSource,
) -> Duration {
    let n = attempts_made.saturating_sub(1);
    let nanos = match config.jitter {
        Jitter::None => exponential_cap(config, n),
        Jitter::Full => {
            let cap = exponential_cap(config, n);
            draw(rng.next_unit(), cap)
        }
        Jitter::Equal => {
            let cap = exponential_cap(config, n);
            let half = cap / 2;
            half + draw(rng.next_unit(), cap - half)
        }
        Jitter::Decorrelated => {
            let base = duration_nanos(config.base);
            let max = duration_nanos(config.max);
            let prev = previous.map_or(base, duration_nanos);
            let hi = prev.saturating_mul(3);
            let u = rng.next_unit();
            let value = if hi <= base {
                base
            } else {
                base.saturating_add(draw(u, hi - base))
            };
            value.min(max)
        }
    };
    Duration::from_nanos(nanos)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::random::ScriptedRandom;

    fn config(base_ms: u64, max_ms: u64, jitter: Jitter) -> BackoffConfig {
        BackoffConfig {
            base: Duration::from_millis(base_ms),
            max: Duration::from_millis(max_ms),
            jitter,
        }
    }

    #[test]
    fn none_doubles_up_to_the_cap() {
        let c = config(25, 1000, Jitter::None);
        let rng = ScriptedRandom::default();
        let got: Vec<u128> = (1..=8)
            .map(|a| backoff(&c, a, None, &rng).as_millis())
            .collect();
        assert_eq!(got, [25, 50, 100, 200, 400, 800, 1000, 1000]);
        assert_eq!(backoff(&c, u32::MAX, None, &rng), Duration::from_secs(1));
        assert_eq!(rng.remaining(), 0);
        assert!(!rng.take_ran_dry());
    }

    #[test]
    fn full_equal_and_decorrelated_use_one_draw() {
        let rng = ScriptedRandom::new([0.5, 0.5, 0.5, 0.999_999_999_999]);
        let full = config(100, 1000, Jitter::Full);
        assert_eq!(backoff(&full, 2, None, &rng), Duration::from_millis(100));
        let equal = config(100, 1000, Jitter::Equal);
        assert_eq!(backoff(&equal, 2, None, &rng), Duration::from_millis(150));
        let dec = config(100, 1000, Jitter::Decorrelated);
        // prev 200ms: hi 600ms, 100 + 0.5 × 500 = 350ms.
        assert_eq!(
            backoff(&dec, 5, Some(Duration::from_millis(200)), &rng),
            Duration::from_millis(350)
        );
        // prev 1s: hi 3s, capped at max.
        assert_eq!(
            backoff(&dec, 5, Some(Duration::from_secs(1)), &rng),
            Duration::from_secs(1)
        );
        assert!(!rng.take_ran_dry());
    }

    #[test]
    fn draw_clamps_out_of_range_values() {
        assert_eq!(draw(-0.5, 100), 0);
        assert_eq!(draw(f64::NAN, 100), 0);
        assert_eq!(draw(1.0, 100), 100);
        assert_eq!(draw(7.0, 100), 100);
        assert_eq!(draw(0.999, u64::MAX), (0.999 * u64::MAX as f64) as u64);
        assert_eq!(draw(0.5, 0), 0);
    }

    #[test]
    fn validation_rejects_zero_base_and_base_above_max() {
        assert!(config(25, 1000, Jitter::Full).validate().is_ok());
        assert!(config(0, 1000, Jitter::Full)
            .validate()
            .unwrap_err()
            .contains("backoff.base"));
        assert!(config(2000, 1000, Jitter::Full)
            .validate()
            .unwrap_err()
            .contains("backoff.max"));
    }
}
