//! Random bits for trace, span and request ids.
//!
//! One process-wide [`SplitMix64`] seeded from the OS-provided hash keys and the time: lock-free,
//! allocation-free, and unique enough for ids. It is not a cryptographic generator, and these
//! ids are not secrets: they are printed in logs and sent to every upstream.

use levee_core::random::SplitMix64;
use std::sync::OnceLock;

/// The next 64 random bits from the process-wide generator.
pub(crate) fn next_u64() -> u64 {
    static GENERATOR: OnceLock<SplitMix64> = OnceLock::new();
    GENERATOR.get_or_init(SplitMix64::from_entropy).next_u64()
}
