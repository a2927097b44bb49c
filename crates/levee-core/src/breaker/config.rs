//! Breaker configuration (SPEC §2), in the shape of the YAML config, with the SPEC defaults.

use crate::duration::serde_str;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How outcomes are windowed for rate evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WindowKind {
    /// The last `size` counted calls.
    Count,
    /// The last `size` seconds, in 1 s buckets aligned to whole seconds of the clock.
    #[default]
    Time,
}

/// `window: {kind, size}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WindowConfig {
    /// `count` or `time` (default `time`).
    pub kind: WindowKind,
    /// N calls or N seconds (default 10).
    pub size: u32,
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig {
            kind: WindowKind::Time,
            size: 10,
        }
    }
}

/// `open: {wait, backoff_multiplier, max_wait, jitter}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpenConfig {
    /// Time in `open` before probing (default 5s).
    #[serde(with = "serde_str")]
    pub wait: Duration,
    /// Each re-open from `half_open` multiplies the wait (default 2).
    pub backoff_multiplier: f64,
    /// Cap of the un-jittered wait (default 60s).
    #[serde(with = "serde_str")]
    pub max_wait: Duration,
    /// The wait is scaled by a factor uniform in `[1-j, 1+j]` (default 0.1).
    pub jitter: f64,
}

impl Default for OpenConfig {
    fn default() -> Self {
        OpenConfig {
            wait: Duration::from_secs(5),
            backoff_multiplier: 2.0,
            max_wait: Duration::from_secs(60),
            jitter: 0.1,
        }
    }
}

/// `half_open: {permitted_calls, max_wait}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HalfOpenConfig {
    /// Probes allowed (default 5).
    pub permitted_calls: u32,
    /// 0 = wait for every probe; otherwise re-open when it expires (default 0s).
    #[serde(with = "serde_str")]
    pub max_wait: Duration,
}

impl Default for HalfOpenConfig {
    fn default() -> Self {
        HalfOpenConfig {
            permitted_calls: 5,
            max_wait: Duration::ZERO,
        }
    }
}

/// `enforce` (default) or `observe`: evaluate and emit everything, never reject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Reject calls while open.
    #[default]
    Enforce,
    /// Shadow mode: transitions and metrics as usual, but every call is permitted.
    Observe,
}

/// The whole breaker block of an upstream or route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// The rate window.
    pub window: WindowConfig,
    /// No rate is evaluated below this many counted calls (default 20).
    pub minimum_calls: u32,
    /// Percent; trips when `(failure+timeout)/counted >= threshold` (default 50).
    pub failure_rate_threshold: f64,
    /// Percent; trips when `slow/counted >= threshold` (default 100).
    pub slow_call_rate_threshold: f64,
    /// A counted call at least this long is slow (default 5s).
    #[serde(with = "serde_str")]
    pub slow_call_duration: Duration,
    /// Trips after this many failures in a row; 0 = off (default 0).
    pub consecutive_failures: u32,
    /// Open-state timing.
    pub open: OpenConfig,
    /// Half-open probing.
    pub half_open: HalfOpenConfig,
    /// `enforce` or `observe`.
    pub mode: Mode,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            window: WindowConfig::default(),
            minimum_calls: 20,
            failure_rate_threshold: 50.0,
            slow_call_rate_threshold: 100.0,
            slow_call_duration: Duration::from_secs(5),
            consecutive_failures: 0,
            open: OpenConfig::default(),
            half_open: HalfOpenConfig::default(),
            mode: Mode::Enforce,
        }
    }
}

/// Largest window a breaker accepts: a count window holds one byte per call, a time window
/// one bucket per second; past an hour of buckets, use a registry-level view instead.
pub const MAX_WINDOW_SIZE: u32 = 100_000;

impl BreakerConfig {
    /// Checks for impossible values; the message names the key and the fix.
    pub fn validate(&self) -> Result<(), String> {
        let pct = |name: &str, v: f64| {
            if v > 0.0 && v <= 100.0 {
                Ok(())
            } else {
                Err(format!(
                    "{name} is {v}: it is a percentage, use a value above 0 and at most 100"
                ))
            }
        };
        pct("failure_rate_threshold", self.failure_rate_threshold)?;
        pct("slow_call_rate_threshold", self.slow_call_rate_threshold)?;
        if self.window.size == 0 || self.window.size > MAX_WINDOW_SIZE {
            return Err(format!(
                "window.size is {}: use 1 to {MAX_WINDOW_SIZE} ({})",
                self.window.size,
                match self.window.kind {
                    WindowKind::Count => "calls",
                    WindowKind::Time => "seconds",
                }
            ));
        }
        if self.minimum_calls == 0 {
            return Err(
                "minimum_calls is 0: use at least 1 (a rate over zero calls means nothing)".into(),
            );
        }
        if self.slow_call_duration.is_zero() {
            return Err("slow_call_duration is 0s: every call would be slow; use e.g. 5s".into());
        }
        if self.open.wait.is_zero() {
            return Err("open.wait is 0s: the breaker would probe at once; use e.g. 5s".into());
        }
        if self.open.max_wait < self.open.wait {
            return Err(format!(
                "open.max_wait ({}) is shorter than open.wait ({}): raise max_wait or lower wait",
                crate::duration::format(self.open.max_wait),
                crate::duration::format(self.open.wait)
            ));
        }
        if !(self.open.backoff_multiplier >= 1.0 && self.open.backoff_multiplier <= 100.0) {
            return Err(format!(
                "open.backoff_multiplier is {}: use a value from 1 (no growth) to 100",
                self.open.backoff_multiplier
            ));
        }
        if !(self.open.jitter >= 0.0 && self.open.jitter < 1.0) {
            return Err(format!(
                "open.jitter is {}: use a fraction from 0 (none) to below 1, e.g. 0.1",
                self.open.jitter
            ));
        }
        if self.half_open.permitted_calls == 0 {
            return Err(
                "half_open.permitted_calls is 0: the breaker could never close; use at least 1"
                    .into(),
            );
        }
        Ok(())
    }

    /// The minimum number of counted calls before a rate is evaluated. For a count window it
    /// is capped at the window size (as resilience4j does), so `window: {kind: count}` with the
    /// default `minimum_calls: 20` can still trip.
    pub fn effective_minimum_calls(&self) -> u32 {
        match self.window.kind {
            WindowKind::Count => self.minimum_calls.min(self.window.size),
            WindowKind::Time => self.minimum_calls,
        }
    }
}
