//! The bulkhead's configuration (SPEC §3 table) and its validation.

use crate::adaptive::AdaptiveLimitConfig;
use crate::criticality::Criticality;
use crate::duration;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `bulkhead: {max_concurrent, max_queue, max_wait, shares, limit}`. Every key has the SPEC
/// default; unknown keys are rejected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BulkheadConfig {
    /// Calls allowed in flight at once. Default 100. Ignored when `limit` is set.
    pub max_concurrent: u32,
    /// Calls allowed to wait for a slot; 0 (default) rejects at once when full.
    pub max_queue: u32,
    /// Longest time a call may wait in the queue. Default `0s`; must be above 0 when
    /// `max_queue` is, and 0 when it is not.
    #[serde(with = "crate::duration::serde_str")]
    pub max_wait: Duration,
    /// Percent of the limit each class may fill.
    pub shares: Shares,
    /// An adaptive limit that replaces `max_concurrent`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<AdaptiveLimitConfig>,
}

impl Default for BulkheadConfig {
    fn default() -> Self {
        BulkheadConfig {
            max_concurrent: 100,
            max_queue: 0,
            max_wait: Duration::ZERO,
            shares: Shares::default(),
            limit: None,
        }
    }
}

/// `shares: {critical, standard, sheddable}`: percent of the limit each class may fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Shares {
    /// Default 100.
    pub critical: u32,
    /// Default 80.
    pub standard: u32,
    /// Default 50.
    pub sheddable: u32,
}

impl Default for Shares {
    fn default() -> Self {
        Shares {
            critical: 100,
            standard: 80,
            sheddable: 50,
        }
    }
}

impl Shares {
    /// The share of `class`, in percent.
    pub const fn get(&self, class: Criticality) -> u32 {
        match class {
            Criticality::Critical => self.critical,
            Criticality::Standard => self.standard,
            Criticality::Sheddable => self.sheddable,
        }
    }

    /// In-flight calls below which `class` is admitted under `limit`:
    /// `max(1, floor(limit * share / 100))`, computed exactly in integers.
    pub fn class_limit(&self, class: Criticality, limit: u32) -> u32 {
        let cap = u64::from(limit) * u64::from(self.get(class)) / 100;
        u32::try_from(cap).unwrap_or(u32::MAX).max(1)
    }
}

impl BulkheadConfig {
    /// Checks every value; the message names the key, what is wrong and how to fix it.
    pub fn validate(&self) -> Result<(), String> {
        if self.limit.is_none() && self.max_concurrent == 0 {
            return Err(
                "max_concurrent is 0: a bulkhead must let at least one call through; \
                        set max_concurrent to 1 or more (default 100)"
                    .to_string(),
            );
        }
        for class in Criticality::ALL {
            let share = self.shares.get(class);
            if !(1..=100).contains(&share) {
                return Err(format!(
                    "shares.{class} is {share}: a share is a percent of the limit, \
                     from 1 to 100"
                ));
            }
        }
        for pair in Criticality::ALL.windows(2) {
            let [lower, higher] = [pair[0], pair[1]];
            let (low_share, high_share) = (self.shares.get(lower), self.shares.get(higher));
            if low_share > high_share {
                return Err(format!(
                    "shares.{lower} ({low_share}) is larger than shares.{higher} \
                     ({high_share}): a less critical class may not get a larger share; \
                     lower shares.{lower} or raise shares.{higher}"
                ));
            }
        }
        if self.max_queue > 0 && self.max_wait.is_zero() {
            return Err(format!(
                "max_queue is {} but max_wait is 0s: set max_wait (e.g. 50ms) so queued \
                 calls cannot wait forever",
                self.max_queue
            ));
        }
        if self.max_queue == 0 && !self.max_wait.is_zero() {
            return Err(format!(
                "max_wait is {} but max_queue is 0, so no call ever waits: set max_queue \
                 (e.g. 32) to queue calls, or remove max_wait",
                duration::format(self.max_wait)
            ));
        }
        if let Some(limit) = &self.limit {
            limit.validate().map_err(|e| format!("limit: {e}"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_limits_floor_and_never_reach_zero() {
        let shares = Shares::default();
        assert_eq!(shares.class_limit(Criticality::Critical, 10), 10);
        assert_eq!(
            shares.class_limit(Criticality::Standard, 9),
            7,
            "floor(7.2)"
        );
        assert_eq!(
            shares.class_limit(Criticality::Sheddable, 1),
            1,
            "floor(0.5) -> 1"
        );
        assert_eq!(
            shares.class_limit(Criticality::Critical, u32::MAX),
            u32::MAX
        );
    }

    #[test]
    fn validation_names_the_key_and_the_fix() {
        let ok = BulkheadConfig::default();
        assert_eq!(ok.validate(), Ok(()));
        let queue_no_wait = BulkheadConfig {
            max_queue: 32,
            ..ok.clone()
        };
        assert_eq!(
            queue_no_wait.validate(),
            Err(
                "max_queue is 32 but max_wait is 0s: set max_wait (e.g. 50ms) so queued calls \
                 cannot wait forever"
                    .to_string()
            )
        );
        let inverted = BulkheadConfig {
            shares: Shares {
                sheddable: 90,
                ..Shares::default()
            },
            ..ok.clone()
        };
        assert!(inverted
            .validate()
            .expect_err("inverted shares")
            .contains("shares.sheddable (90)"));
        let adaptive_zero = BulkheadConfig {
            max_concurrent: 0,
            limit: Some(AdaptiveLimitConfig::default()),
            ..ok
        };
        assert_eq!(
            adaptive_zero.validate(),
            Ok(()),
            "max_concurrent is unused with a limit"
        );
    }

    #[test]
    fn serde_reads_and_writes_the_yaml_shape() {
        let json = r#"{"max_concurrent": 64, "max_queue": 32, "max_wait": "50ms",
                       "shares": {"sheddable": 40}}"#;
        let config: BulkheadConfig = serde_json::from_str(json).expect("valid config");
        assert_eq!(config.max_wait, Duration::from_millis(50));
        assert_eq!(config.shares.sheddable, 40);
        assert_eq!(config.shares.standard, 80);
        let back = serde_json::to_value(&config).expect("serializes");
        assert_eq!(back["max_wait"], "50ms");
        assert!(back.get("limit").is_none());
        assert!(serde_json::from_str::<BulkheadConfig>(r#"{"max_wiat": "1s"}"#).is_err());
        assert!(serde_json::from_str::<BulkheadConfig>(r#"{"max_wait": 5}"#).is_err());
        let limit: BulkheadConfig =
            serde_json::from_str(r#"{"limit": {"algorithm": "gradient2"}}"#).expect("gradient2");
        assert_eq!(
            limit.limit.map(|l| l.algorithm),
            Some(crate::adaptive::Algorithm::Gradient2)
        );
    }
}
