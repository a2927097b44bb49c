//! Why a bulkhead refused a call. Every reason is the error code `bulkhead_full` (SPEC §7);
//! the reason is the `reason` label of `levee_bulkhead_rejections_total` (SPEC §11).

use crate::criticality::Criticality;
use crate::error::ErrorCode;
use serde::Serialize;
use std::fmt;

/// The `reason` label of a bulkhead rejection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// No slot for the call's class and no room in the queue (or no queue).
    Full,
    /// The call waited `max_wait` in the queue without getting a slot.
    QueueTimeout,
    /// A more critical call arrived at a full queue and took this call's place.
    Evicted,
}

impl RejectReason {
    /// Every reason, in the order above.
    pub const ALL: [RejectReason; 3] = [
        RejectReason::Full,
        RejectReason::QueueTimeout,
        RejectReason::Evicted,
    ];

    /// The metric label and vector spelling: `full`, `queue_timeout`, `evicted`.
    pub const fn as_str(self) -> &'static str {
        match self {
            RejectReason::Full => "full",
            RejectReason::QueueTimeout => "queue_timeout",
            RejectReason::Evicted => "evicted",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A call the bulkhead refused: the outcome `rejected` with code `bulkhead_full`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Rejection {
    /// Why.
    pub reason: RejectReason,
    /// The refused call's class (the `criticality` metric label).
    pub class: Criticality,
}

impl Rejection {
    /// Always [`ErrorCode::BulkheadFull`].
    pub const fn code(&self) -> ErrorCode {
        ErrorCode::BulkheadFull
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let class = self.class;
        match self.reason {
            RejectReason::Full => write!(
                f,
                "bulkhead_full: no free slot for a {class} call and no room to wait; \
                 retry later or raise max_concurrent or max_queue"
            ),
            RejectReason::QueueTimeout => write!(
                f,
                "bulkhead_full: a {class} call waited max_wait without getting a slot; \
                 retry later or raise max_wait or max_concurrent"
            ),
            RejectReason::Evicted => write!(
                f,
                "bulkhead_full: a waiting {class} call gave its place to a more critical call"
            ),
        }
    }
}

impl std::error::Error for Rejection {}
