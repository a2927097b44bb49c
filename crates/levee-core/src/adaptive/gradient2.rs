//! Gradient2 (Netflix `Gradient2Limit`): the limit follows the ratio between the long-term
//! average round trip and the latest one.
//!
//! Every value is an IEEE-754 double and every step below is one rounded operation, in exactly
//! this order, so that other implementations (the Go SDK) reproduce the estimate bit for bit.
//! `rtt` is the sample's round trip in whole nanoseconds, at least 1.
//!
//! ```text
//! short = f64(max(rtt_ns, 1))
//! long  = long_avg.add(short)            // see below; returns the new average
//! if long / short > 2.0:  long_avg.value = long_avg.value * 0.95     // decay after overload
//! if f64(in_flight) < estimate / 2.0:  return floor(estimate)         // app-limited: unchanged
//! gradient = max(0.5, min(1.0, (tolerance * long) / short))          // `long` before the decay
//! next = (estimate * gradient) + f64(queue_size)
//! next = (estimate * (1.0 - smoothing)) + (next * smoothing)
//! next = max(f64(min), min(f64(max), next))
//! estimate = next;  return floor(estimate)
//! ```
//!
//! `long_avg` (Netflix `ExpAvgMeasurement` with a warm-up of 10): while fewer than 10 samples
//! were added, `count += 1; sum = sum + short; value = sum / f64(count)` (a plain mean; a decay
//! applied during warm-up is overwritten by the next mean, as in Netflix). From the 11th sample:
//! `factor = 2.0 / (f64(long_window) + 1.0)` and `value = (value * (1.0 - factor)) + (short *
//! factor)`. Drops are ignored, as in Netflix: Gradient2 reacts to latency only.

use super::config::AdaptiveLimitConfig;

/// Samples averaged plainly before the exponential average takes over.
const WARMUP_SAMPLES: u32 = 10;

/// The Gradient2 state.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Gradient2 {
    estimate: f64,
    min: f64,
    max: f64,
    smoothing: f64,
    tolerance: f64,
    queue_size: f64,
    long: LongAverage,
}

/// The long-term round-trip average, in nanoseconds.
#[derive(Debug, Clone, PartialEq)]
struct LongAverage {
    value: f64,
    sum: f64,
    count: u32,
    factor: f64,
}

impl LongAverage {
    fn add(&mut self, sample: f64) -> f64 {
        if self.count < WARMUP_SAMPLES {
            self.count += 1;
            self.sum += sample;
            self.value = self.sum / f64::from(self.count);
        } else {
            self.value = self.value * (1.0 - self.factor) + sample * self.factor;
        }
        self.value
    }
}

impl Gradient2 {
    /// Starts with the estimate at `initial`, clamped to `[min, max]`.
    pub(super) fn new(config: &AdaptiveLimitConfig) -> Self {
        let min = f64::from(config.min);
        let max = f64::from(config.max);
        Gradient2 {
            estimate: min.max(max.min(f64::from(config.initial))),
            min,
            max,
            smoothing: config.smoothing,
            tolerance: config.tolerance,
            queue_size: f64::from(config.queue_size),
            long: LongAverage {
                value: 0.0,
                sum: 0.0,
                count: 0,
                factor: 2.0 / (f64::from(config.long_window) + 1.0),
            },
        }
    }

    /// `floor(estimate)`.
    pub(super) fn limit(&self) -> u32 {
        // `as` saturates; the estimate is within [min, max], both u32 values.
        self.estimate.floor() as u32
    }

    pub(super) fn estimate(&self) -> f64 {
        self.estimate
    }

    pub(super) fn long_rtt_nanos(&self) -> f64 {
        self.long.value
    }

    /// Applies one sample (see the module doc for the exact arithmetic) and returns the limit.
    pub(super) fn on_sample(&mut self, rtt_nanos: u64, in_flight: u32) -> u32 {
        // Exact below 2^53 ns (104 days); above, rounded to nearest like Go's float64(uint64).
        let short = rtt_nanos.max(1) as f64;
        let long = self.long.add(short);
        if long / short > 2.0 {
            self.long.value *= 0.95;
        }
        if f64::from(in_flight) < self.estimate / 2.0 {
            return self.limit();
        }
        let gradient = 0.5_f64.max(1.0_f64.min(self.tolerance * long / short));
        let mut next = self.estimate * gradient + self.queue_size;
        next = self.estimate * (1.0 - self.smoothing) + next * self.smoothing;
        next = self.min.max(self.max.min(next));
        self.estimate = next;
        self.limit()
    }
}
