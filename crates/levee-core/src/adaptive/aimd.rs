//! AIMD: additive increase, multiplicative decrease (Netflix `AIMDLimit`, as SPEC §3 words it).
//!
//! On a drop (a `failure` or `timeout` outcome) the limit becomes `floor(limit *
//! backoff_ratio)`; otherwise, when the call's in-flight count at admission had reached the
//! limit, the limit grows by one; otherwise it stays. The result is clamped to `[min, max]`.
//!
//! Two deliberate differences from Netflix's class, both to follow SPEC's wording: the increase
//! needs `in_flight >= limit` (Netflix: `in_flight * 2 >= limit`), and a slow success is not a
//! drop (Netflix also drops when the round trip exceeds a 5 s `timeout`; Levee's per-try
//! timeouts and deadlines already turn such calls into `timeout` outcomes).

use super::config::AdaptiveLimitConfig;

/// The AIMD state: the current limit and the constants it needs.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Aimd {
    limit: u32,
    min: u32,
    max: u32,
    backoff_ratio: f64,
}

impl Aimd {
    /// Starts at `initial`, clamped to `[min, max]`.
    pub(super) fn new(config: &AdaptiveLimitConfig) -> Self {
        let mut aimd = Aimd {
            limit: config.initial,
            min: config.min,
            max: config.max,
            backoff_ratio: config.backoff_ratio,
        };
        aimd.limit = aimd.clamp(config.initial);
        aimd
    }

    pub(super) fn limit(&self) -> u32 {
        self.limit
    }

    /// Applies one sample and returns the new limit.
    pub(super) fn on_sample(&mut self, in_flight: u32, dropped: bool) -> u32 {
        let next = if dropped {
            // The u32 -> f64 conversion is exact; the product is one rounded IEEE multiply.
            let cut = (f64::from(self.limit) * self.backoff_ratio).floor();
            // `as` saturates (and maps NaN to 0); the clamp below restores min.
            cut as u32
        } else if in_flight >= self.limit {
            self.limit.saturating_add(1)
        } else {
            self.limit
        };
        self.limit = self.clamp(next);
        self.limit
    }

    /// `min(max, max(min, value))`: with `min <= max` (validated) the usual clamp, and never a
    /// panic when a caller skipped validation.
    fn clamp(&self, value: u32) -> u32 {
        value.max(self.min).min(self.max)
    }
}
