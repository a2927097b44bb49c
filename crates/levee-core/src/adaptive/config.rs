//! The adaptive limit's configuration: the `limit:` object of a bulkhead (SPEC §3).

use serde::{Deserialize, Serialize};

/// Which published Netflix concurrency-limits algorithm drives the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// Additive increase, multiplicative decrease on drops (the default).
    #[default]
    Aimd,
    /// Latency gradient: shrinks when the current round trip grows past the long-term average.
    Gradient2,
}

impl Algorithm {
    /// The config spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Algorithm::Aimd => "aimd",
            Algorithm::Gradient2 => "gradient2",
        }
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `limit: {algorithm, initial, min, max, ...}`. Every key has a default; unknown keys are
/// rejected. Keys that belong to the other algorithm are accepted and ignored
/// (`backoff_ratio` is AIMD's; `smoothing`, `tolerance`, `long_window` and `queue_size` are
/// Gradient2's), but they are validated either way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdaptiveLimitConfig {
    /// `aimd` (default) or `gradient2`.
    pub algorithm: Algorithm,
    /// The limit before any sample arrived. Default 20.
    pub initial: u32,
    /// The limit never goes below this. Default 1.
    pub min: u32,
    /// The limit never goes above this. Default 1000.
    pub max: u32,
    /// AIMD: on a drop the limit becomes `floor(limit * backoff_ratio)`. Default 0.9.
    pub backoff_ratio: f64,
    /// Gradient2: weight of the new estimate against the old one. Default 0.2.
    pub smoothing: f64,
    /// Gradient2: how much slower than the long-term average a call may be before the limit
    /// shrinks (1.5 = 50% slower). Default 1.5.
    pub tolerance: f64,
    /// Gradient2: samples in the long-term round-trip average. Default 600.
    pub long_window: u32,
    /// Gradient2: how far the limit may grow per sample while latency holds. Default 4.
    pub queue_size: u32,
}

impl Default for AdaptiveLimitConfig {
    fn default() -> Self {
        AdaptiveLimitConfig {
            algorithm: Algorithm::Aimd,
            initial: 20,
            min: 1,
            max: 1000,
            backoff_ratio: 0.9,
            smoothing: 0.2,
            tolerance: 1.5,
            long_window: 600,
            queue_size: 4,
        }
    }
}

impl AdaptiveLimitConfig {
    /// Checks every value; the message names the key, what is wrong and how to fix it.
    pub fn validate(&self) -> Result<(), String> {
        if self.min == 0 {
            return Err(
                "min is 0: the limit must always let at least one call through; \
                        set min to 1 or more"
                    .to_string(),
            );
        }
        if self.max < self.min {
            return Err(format!(
                "max ({}) is below min ({}): set max to at least {}",
                self.max, self.min, self.min
            ));
        }
        if self.initial < self.min || self.initial > self.max {
            return Err(format!(
                "initial ({}) is outside min..max ({}..{}): set initial between them",
                self.initial, self.min, self.max
            ));
        }
        if !(self.backoff_ratio > 0.0 && self.backoff_ratio < 1.0) {
            return Err(format!(
                "backoff_ratio is {}: it must be above 0 and below 1 \
                 (0.9 cuts the limit by 10% on each failure or timeout)",
                self.backoff_ratio
            ));
        }
        if !(self.smoothing > 0.0 && self.smoothing <= 1.0) {
            return Err(format!(
                "smoothing is {}: it must be above 0 and at most 1 (default 0.2)",
                self.smoothing
            ));
        }
        if !(self.tolerance >= 1.0 && self.tolerance.is_finite()) {
            return Err(format!(
                "tolerance is {}: it must be at least 1 \
                 (1.5 lets calls get 50% slower than usual before the limit shrinks)",
                self.tolerance
            ));
        }
        if self.long_window == 0 {
            return Err(
                "long_window is 0: the long-term average needs at least 1 sample \
                        (default 600)"
                    .to_string(),
            );
        }
        if self.queue_size == 0 {
            return Err("queue_size is 0: a gradient2 limit could then never grow; \
                        set it to 1 or more (default 4)"
                .to_string());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_spec_and_every_check_names_its_key() {
        let d = AdaptiveLimitConfig::default();
        assert_eq!(
            (d.algorithm, d.initial, d.min, d.max),
            (Algorithm::Aimd, 20, 1, 1000)
        );
        assert_eq!(d.validate(), Ok(()));
        let cases: [(AdaptiveLimitConfig, &str); 8] = [
            (
                AdaptiveLimitConfig {
                    min: 0,
                    initial: 1,
                    ..d.clone()
                },
                "min is 0",
            ),
            (
                AdaptiveLimitConfig {
                    min: 10,
                    max: 5,
                    initial: 5,
                    ..d.clone()
                },
                "max (5) is below min (10)",
            ),
            (
                AdaptiveLimitConfig {
                    initial: 2000,
                    ..d.clone()
                },
                "initial (2000)",
            ),
            (
                AdaptiveLimitConfig {
                    backoff_ratio: 1.0,
                    ..d.clone()
                },
                "backoff_ratio is 1",
            ),
            (
                AdaptiveLimitConfig {
                    smoothing: 0.0,
                    ..d.clone()
                },
                "smoothing is 0",
            ),
            (
                AdaptiveLimitConfig {
                    tolerance: 0.5,
                    ..d.clone()
                },
                "tolerance is 0.5",
            ),
            (
                AdaptiveLimitConfig {
                    long_window: 0,
                    ..d.clone()
                },
                "long_window is 0",
            ),
            (
                AdaptiveLimitConfig {
                    queue_size: 0,
                    ..d.clone()
                },
                "queue_size is 0",
            ),
        ];
        for (config, needle) in cases {
            let err = config.validate().expect_err(needle);
            assert!(err.contains(needle), "{err}");
        }
    }
}
