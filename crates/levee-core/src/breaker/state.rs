//! Breaker states, transition reasons and transition events (SPEC §2).

use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// A breaker state. `forced_open` and `disabled` are set only by an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Calls flow; outcomes are windowed.
    Closed,
    /// Calls are rejected until the open wait elapses.
    Open,
    /// A limited number of probes test the upstream.
    HalfOpen,
    /// Operator override: reject everything.
    ForcedOpen,
    /// Operator override: permit everything, still record.
    Disabled,
}

impl State {
    /// Every state, in SPEC order (the `state` label values of `levee_breaker_state`).
    pub const ALL: [State; 5] = [
        State::Closed,
        State::Open,
        State::HalfOpen,
        State::ForcedOpen,
        State::Disabled,
    ];

    /// The label and wire spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
            State::ForcedOpen => "forced_open",
            State::Disabled => "disabled",
        }
    }

    /// How severe the state is for callers: used to combine local and fleet state, where the
    /// more severe wins (SPEC §9). `disabled` is the least severe (it never rejects),
    /// `forced_open` the most.
    pub const fn severity(self) -> u8 {
        match self {
            State::Disabled => 0,
            State::Closed => 1,
            State::HalfOpen => 2,
            State::Open => 3,
            State::ForcedOpen => 4,
        }
    }

    pub(crate) const fn code(self) -> u64 {
        match self {
            State::Closed => 0,
            State::Open => 1,
            State::HalfOpen => 2,
            State::ForcedOpen => 3,
            State::Disabled => 4,
        }
    }

    pub(crate) const fn from_code(code: u64) -> State {
        match code {
            0 => State::Closed,
            1 => State::Open,
            2 => State::HalfOpen,
            3 => State::ForcedOpen,
            _ => State::Disabled,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a transition happened: the fixed words of SPEC §2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The window's failure rate reached its threshold.
    FailureRate,
    /// The window's slow-call rate reached its threshold.
    SlowCallRate,
    /// Failures in a row reached `consecutive_failures`.
    ConsecutiveFailures,
    /// The open wait elapsed; probing starts.
    WaitElapsed,
    /// Every probe reported and the rates stayed below thresholds.
    ProbesSucceeded,
    /// The probes' failure or slow rate reached its threshold.
    ProbesFailed,
    /// `half_open.max_wait` expired before the probes decided.
    HalfOpenTimeout,
    /// An operator override was set or cleared.
    Operator,
    /// The fleet state from the registry.
    Fleet,
}

impl Reason {
    /// The label and wire spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::FailureRate => "failure_rate",
            Reason::SlowCallRate => "slow_call_rate",
            Reason::ConsecutiveFailures => "consecutive_failures",
            Reason::WaitElapsed => "wait_elapsed",
            Reason::ProbesSucceeded => "probes_succeeded",
            Reason::ProbesFailed => "probes_failed",
            Reason::HalfOpenTimeout => "half_open_timeout",
            Reason::Operator => "operator",
            Reason::Fleet => "fleet",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A transition event `{key, from, to, reason, at}`. Breakers return these; callers publish
/// them (metrics, logs, registry) after the breaker's lock is released.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// The endpoint key.
    pub key: Arc<str>,
    /// The state left.
    pub from: State,
    /// The state entered.
    pub to: State,
    /// Why.
    pub reason: Reason,
    /// When, on the caller's clock.
    pub at: Timestamp,
}
