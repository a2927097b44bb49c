//! The circuit breaker (SPEC §2).
//!
//! One breaker per *endpoint key*. While `closed`, outcomes go into a count or time window;
//! after recording, if the window holds at least `minimum_calls` counted calls and the failure
//! rate (`failure`+`timeout` over counted) or the slow-call rate reaches its threshold, or
//! `consecutive_failures` failures came in a row, the breaker opens. `open` rejects calls until
//! the open wait elapses; the first `acquire` after that moves it to `half_open` (lazily: there
//! is no timer). `half_open` admits `permitted_calls` probes; once their failure or slow rate
//! over `permitted_calls` is certain to reach its threshold it re-opens with a multiplied wait,
//! and once all have reported below the thresholds it closes with a clean window.
//!
//! Operators can force the breaker open, disable it (permit all, still record), or put it in
//! `observe` mode (evaluate everything, reject nothing).
//!
//! # Decisions where SPEC §2 is silent (pinned by vectors)
//! - `consecutive_failures` trips regardless of `minimum_calls`.
//! - When several rules trip on the same call the reason is the first of `failure_rate`,
//!   `slow_call_rate`, `consecutive_failures`.
//! - For a count window the effective `minimum_calls` is `min(minimum_calls, window.size)`.
//! - Open wait: `capped = min(max_wait, wait × multiplier^reopens)`, computed by multiplying the
//!   previous capped wait in `f64` nanoseconds and truncating; the jitter factor
//!   `(1 − j) + (2 × j) × u` then scales the capped wait, truncated to whole nanoseconds. One
//!   random draw is consumed per opening, and none when `jitter` is 0. The cap bounds the
//!   un-jittered wait so instances stay spread even at the cap.
//! - A probe that ends `cancelled`, `rejected` or `ignored` frees its probe slot; another call
//!   may probe in its place.
//! - Slow probes re-open the breaker with reason `probes_failed`, like failed ones.
//! - `half_open.max_wait` is checked lazily on `acquire` and `record`.
//! - Results carrying a permit from an earlier state (another generation) are ignored.
//! - Clearing an override returns to `closed` with a clean window and the base wait.
//!
//! # Concurrency
//! The closed path (`acquire` + `record` of a success) takes no lock: state is one atomic word
//! and the windows are atomic counters (see `window`). Opening, probing and overrides take a
//! small mutex; transitions are returned to the caller, never published under the lock.
//!
//! ```
//! use levee_core::breaker::{BreakerConfig, CircuitBreaker, State};
//! use levee_core::random::SplitMix64;
//! use levee_core::{Outcome, Timestamp};
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! let mut config = BreakerConfig::default();
//! config.minimum_calls = 2;
//! let breaker = CircuitBreaker::new("inventory", config, Arc::new(SplitMix64::new(7))).unwrap();
//! let now = Timestamp::from_nanos(1_000_000_000);
//! for _ in 0..2 {
//!     let permit = breaker.acquire(now).result.expect("closed breakers permit");
//!     breaker.record(permit, Outcome::Failure, Duration::from_millis(3), now);
//! }
//! assert_eq!(breaker.state(), State::Open);
//! assert!(breaker.acquire(now).result.is_err());
//! ```

mod config;
mod state;
mod window;

pub use config::{
    BreakerConfig, HalfOpenConfig, Mode, OpenConfig, WindowConfig, WindowKind, MAX_WINDOW_SIZE,
};
pub use state::{Reason, State, Transition};
pub use window::Totals;

use crate::outcome::Outcome;
use crate::random::RandomSource;
use crate::time::{duration_nanos, Timestamp};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use window::{CountWindow, TimeWindow, Window};

/// Permission to make one call; hand it back to [`CircuitBreaker::record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "record the call's outcome with CircuitBreaker::record"]
pub struct Permit {
    generation: u64,
    probe: bool,
    shadow_rejected: bool,
}

impl Permit {
    /// True when this call is a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    /// In `observe` mode: true when an enforcing breaker would have rejected this call.
    pub fn shadow_rejected(&self) -> bool {
        self.shadow_rejected
    }
}

/// Why a call was not permitted (maps to `circuit_open`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    /// The state that rejected the call.
    pub state: State,
    /// How long until the breaker will probe, when known.
    pub retry_after: Option<Duration>,
}

/// What [`CircuitBreaker::acquire`] decided, and the transition it caused, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Acquired {
    /// The permit, or why there is none.
    pub result: Result<Permit, Rejection>,
    /// `open → half_open` (or a half-open timeout) happens lazily here.
    pub transition: Option<Transition>,
}

/// A point-in-time view for `/health` and dashboards.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The current state.
    pub state: State,
    /// Totals in the window.
    pub window: Totals,
    /// Failures in a row.
    pub consecutive_failures: u32,
    /// Time left in `open`, if open.
    pub open_remaining: Option<Duration>,
    /// Probes admitted and reported in `half_open`.
    pub probes_admitted: u32,
    /// Probes that reported.
    pub probes_reported: u32,
    /// True in `observe` mode.
    pub observe: bool,
}

/// Operator overrides (SPEC §2, §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Override {
    /// Reject everything.
    ForcedOpen,
    /// Permit everything, still record.
    Disabled,
}

/// The state word packs the state code (3 bits) with a generation that bumps on every
/// transition, so a permit from an earlier round cannot act on a later one (STYLE point 5).
const STATE_BITS: u32 = 3;

fn pack(state: State, generation: u64) -> u64 {
    (generation << STATE_BITS) | state.code()
}

fn unpack(word: u64) -> (State, u64) {
    (
        State::from_code(word & ((1 << STATE_BITS) - 1)),
        word >> STATE_BITS,
    )
}

/// Everything that changes only on the slow path, under one small lock.
#[derive(Debug)]
struct Control {
    /// When `open` ends.
    open_until: Timestamp,
    /// The current capped (un-jittered) open wait, in nanoseconds.
    capped_wait_nanos: u64,
    /// Half-open bookkeeping.
    half_open_since: Timestamp,
    probes_admitted: u32,
    probes_reported: u32,
    probe_failures: u32,
    probe_slow: u32,
}

/// A circuit breaker for one endpoint key.
pub struct CircuitBreaker {
    key: Arc<str>,
    config: BreakerConfig,
    minimum_calls: u64,
    slow_nanos: u64,
    state: AtomicU64,
    window: Window,
    consecutive: AtomicU32,
    observe: AtomicBool,
    control: Mutex<Control>,
    random: Arc<dyn RandomSource>,
}

impl std::fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("key", &self.key)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl CircuitBreaker {
    /// A closed breaker for `key`. Fails with the validation message for an impossible config.
    pub fn new(
        key: impl Into<Arc<str>>,
        config: BreakerConfig,
        random: Arc<dyn RandomSource>,
    ) -> Result<Self, String> {
        config.validate()?;
        let window = match config.window.kind {
            WindowKind::Count => Window::Count(CountWindow::new(config.window.size)),
            WindowKind::Time => Window::Time(TimeWindow::new(config.window.size)),
        };
        Ok(CircuitBreaker {
            key: key.into(),
            minimum_calls: u64::from(config.effective_minimum_calls()),
            slow_nanos: duration_nanos(config.slow_call_duration),
            state: AtomicU64::new(pack(State::Closed, 0)),
            window,
            consecutive: AtomicU32::new(0),
            observe: AtomicBool::new(config.mode == Mode::Observe),
            control: Mutex::new(Control {
                open_until: Timestamp::ZERO,
                capped_wait_nanos: duration_nanos(config.open.wait),
                half_open_since: Timestamp::ZERO,
                probes_admitted: 0,
                probes_reported: 0,
                probe_failures: 0,
                probe_slow: 0,
            }),
            config,
            random,
        })
    }

    /// The endpoint key.
    pub fn key(&self) -> &Arc<str> {
        &self.key
    }

    /// The config this breaker runs.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// The current state (no lazy transition happens here).
    pub fn state(&self) -> State {
        unpack(self.state.load(Ordering::Acquire)).0
    }

    /// Asks to make a call at `now`.
    #[inline]
    pub fn acquire(&self, now: Timestamp) -> Acquired {
        let (state, generation) = unpack(self.state.load(Ordering::Acquire));
        match state {
            State::Closed | State::Disabled => Acquired {
                result: Ok(Permit {
                    generation,
                    probe: false,
                    shadow_rejected: false,
                }),
                transition: None,
            },
            _ => self.acquire_slow(now),
        }
    }

    fn acquire_slow(&self, now: Timestamp) -> Acquired {
        let mut control = self.lock();
        let (state, generation) = unpack(self.state.load(Ordering::Acquire));
        let observe = self.observe.load(Ordering::Relaxed);
        let shadow =
            |rejection: Rejection, generation: u64, transition: Option<Transition>| Acquired {
                result: if observe {
                    Ok(Permit {
                        generation,
                        probe: false,
                        shadow_rejected: true,
                    })
                } else {
                    Err(rejection)
                },
                transition,
            };
        match state {
            State::Closed | State::Disabled => Acquired {
                result: Ok(Permit {
                    generation,
                    probe: false,
                    shadow_rejected: false,
                }),
                transition: None,
            },
            State::ForcedOpen => shadow(
                Rejection {
                    state,
                    retry_after: None,
                },
                generation,
                None,
            ),
            State::Open if now < control.open_until => shadow(
                Rejection {
                    state,
                    retry_after: Some(control.open_until - now),
                },
                generation,
                None,
            ),
            State::Open => {
                let transition = self.enter_half_open(&mut control, generation, now);
                control.probes_admitted = 1;
                Acquired {
                    result: Ok(Permit {
                        generation: generation + 1,
                        probe: true,
                        shadow_rejected: false,
                    }),
                    transition: Some(transition),
                }
            }
            State::HalfOpen => {
                if let Some(t) = self.half_open_expired(&mut control, generation, now) {
                    let retry_after = Some(control.open_until - now);
                    return shadow(
                        Rejection {
                            state: State::Open,
                            retry_after,
                        },
                        generation + 1,
                        Some(t),
                    );
                }
                if control.probes_admitted < self.config.half_open.permitted_calls {
                    control.probes_admitted += 1;
                    Acquired {
                        result: Ok(Permit {
                            generation,
                            probe: true,
                            shadow_rejected: false,
                        }),
                        transition: None,
                    }
                } else {
                    shadow(
                        Rejection {
                            state,
                            retry_after: None,
                        },
                        generation,
                        None,
                    )
                }
            }
        }
    }

    /// Records how a permitted call ended, `duration` after it started, at `now`.
    /// Returns the transition it caused, if any.
    #[inline]
    pub fn record(
        &self,
        permit: Permit,
        outcome: Outcome,
        duration: Duration,
        now: Timestamp,
    ) -> Option<Transition> {
        let (state, generation) = unpack(self.state.load(Ordering::Acquire));
        if generation != permit.generation {
            return None;
        }
        if permit.probe {
            return self.record_probe(permit, outcome, duration, now);
        }
        if !outcome.is_counted() || !matches!(state, State::Closed | State::Disabled) {
            return None;
        }
        let failed = outcome.is_failure();
        let slow = duration_nanos(duration) >= self.slow_nanos;
        let totals = self.window.record(now, failed, slow);
        let consecutive = if failed {
            self.consecutive
                .fetch_add(1, Ordering::AcqRel)
                .saturating_add(1)
        } else {
            if self.consecutive.load(Ordering::Relaxed) != 0 {
                self.consecutive.store(0, Ordering::Release);
            }
            0
        };
        if state == State::Disabled {
            return None;
        }
        let reason = self.trip_reason(totals, consecutive)?;
        self.open_from_closed(generation, reason, now)
    }

    /// Which rule, if any, trips a closed breaker with these totals.
    #[inline]
    fn trip_reason(&self, t: Totals, consecutive: u32) -> Option<Reason> {
        if t.failures == 0 && t.slow == 0 {
            return None;
        }
        if t.counted >= self.minimum_calls {
            if reaches(t.failures, t.counted, self.config.failure_rate_threshold) {
                return Some(Reason::FailureRate);
            }
            if reaches(t.slow, t.counted, self.config.slow_call_rate_threshold) {
                return Some(Reason::SlowCallRate);
            }
        }
        let limit = self.config.consecutive_failures;
        if limit > 0 && consecutive >= limit {
            return Some(Reason::ConsecutiveFailures);
        }
        None
    }

    fn open_from_closed(
        &self,
        generation: u64,
        reason: Reason,
        now: Timestamp,
    ) -> Option<Transition> {
        let mut control = self.lock();
        let (state, current) = unpack(self.state.load(Ordering::Acquire));
        if state != State::Closed || current != generation {
            return None; // another thread opened it first
        }
        Some(self.enter_open(&mut control, State::Closed, generation, reason, now))
    }

    fn record_probe(
        &self,
        permit: Permit,
        outcome: Outcome,
        duration: Duration,
        now: Timestamp,
    ) -> Option<Transition> {
        let mut control = self.lock();
        let (state, generation) = unpack(self.state.load(Ordering::Acquire));
        if state != State::HalfOpen || generation != permit.generation {
            return None;
        }
        if let Some(t) = self.half_open_expired(&mut control, generation, now) {
            return Some(t);
        }
        if !outcome.is_counted() {
            control.probes_admitted = control.probes_admitted.saturating_sub(1);
            return None;
        }
        control.probes_reported += 1;
        control.probe_failures += u32::from(outcome.is_failure());
        control.probe_slow += u32::from(duration_nanos(duration) >= self.slow_nanos);
        let permitted = u64::from(self.config.half_open.permitted_calls);
        let failed = reaches(
            u64::from(control.probe_failures),
            permitted,
            self.config.failure_rate_threshold,
        );
        let slow = reaches(
            u64::from(control.probe_slow),
            permitted,
            self.config.slow_call_rate_threshold,
        );
        if failed || slow {
            control.capped_wait_nanos = self.next_capped_wait(control.capped_wait_nanos);
            return Some(self.enter_open(
                &mut control,
                State::HalfOpen,
                generation,
                Reason::ProbesFailed,
                now,
            ));
        }
        if u64::from(control.probes_reported) >= permitted {
            self.window.clear();
            self.consecutive.store(0, Ordering::Release);
            control.capped_wait_nanos = duration_nanos(self.config.open.wait);
            self.publish(State::Closed, generation + 1);
            return Some(self.transition(
                State::HalfOpen,
                State::Closed,
                Reason::ProbesSucceeded,
                now,
            ));
        }
        None
    }

    /// Re-opens a half-open breaker whose `max_wait` has expired.
    fn half_open_expired(
        &self,
        control: &mut Control,
        generation: u64,
        now: Timestamp,
    ) -> Option<Transition> {
        let max_wait = self.config.half_open.max_wait;
        if max_wait.is_zero() || now < control.half_open_since + max_wait {
            return None;
        }
        control.capped_wait_nanos = self.next_capped_wait(control.capped_wait_nanos);
        Some(self.enter_open(
            control,
            State::HalfOpen,
            generation,
            Reason::HalfOpenTimeout,
            now,
        ))
    }

    fn enter_half_open(
        &self,
        control: &mut Control,
        generation: u64,
        now: Timestamp,
    ) -> Transition {
        control.half_open_since = now;
        control.probes_admitted = 0;
        control.probes_reported = 0;
        control.probe_failures = 0;
        control.probe_slow = 0;
        self.publish(State::HalfOpen, generation + 1);
        self.transition(State::Open, State::HalfOpen, Reason::WaitElapsed, now)
    }

    fn enter_open(
        &self,
        control: &mut Control,
        from: State,
        generation: u64,
        reason: Reason,
        now: Timestamp,
    ) -> Transition {
        control.open_until = now + Duration::from_nanos(self.jittered(control.capped_wait_nanos));
        self.publish(State::Open, generation + 1);
        self.transition(from, State::Open, reason, now)
    }

    /// `min(max_wait, previous × multiplier)`, in truncated f64 nanoseconds.
    fn next_capped_wait(&self, previous: u64) -> u64 {
        let grown = previous as f64 * self.config.open.backoff_multiplier;
        let max = duration_nanos(self.config.open.max_wait);
        if grown >= max as f64 {
            max
        } else {
            grown as u64
        }
    }

    /// Scales the capped wait by `(1 − j) + (2 × j) × u`; draws only when `j > 0`.
    fn jittered(&self, capped: u64) -> u64 {
        let j = self.config.open.jitter;
        if j == 0.0 {
            return capped;
        }
        let u = self.random.next_unit();
        let factor = (1.0 - j) + (2.0 * j) * u;
        (capped as f64 * factor) as u64
    }

    /// Sets or clears an operator override at `now`.
    pub fn set_override(&self, value: Option<Override>, now: Timestamp) -> Option<Transition> {
        let mut control = self.lock();
        let (from, generation) = unpack(self.state.load(Ordering::Acquire));
        let to = match value {
            Some(Override::ForcedOpen) => State::ForcedOpen,
            Some(Override::Disabled) => State::Disabled,
            None if matches!(from, State::ForcedOpen | State::Disabled) => State::Closed,
            None => return None,
        };
        if to == from {
            return None;
        }
        if to != State::ForcedOpen || from == State::Disabled {
            self.window.clear();
            self.consecutive.store(0, Ordering::Release);
        }
        if to == State::Closed {
            control.capped_wait_nanos = duration_nanos(self.config.open.wait);
        }
        self.publish(to, generation + 1);
        Some(self.transition(from, to, Reason::Operator, now))
    }

    /// A breaker for the same key running `config` that takes over this one's state: how a
    /// breaker policy distributed by the registry (SPEC §9) replaces the local config without
    /// resetting what the breaker has learnt. Fails with the validation message for an
    /// impossible config (this breaker is then left as it is).
    ///
    /// A new breaker rather than a change in place: the closed path reads the config and the
    /// window without a lock, and a window of another kind or size cannot be swapped under
    /// it. The caller swaps the new breaker in; calls in flight report to the one they started
    /// on. The rules (the same as the Go SDK's `Group.Reconfigure`, pinned by the
    /// `breaker/reconfigure_*` conformance vectors):
    /// - `closed` stays closed with an empty window and no failures in a row: those counts
    ///   were judged by other thresholds and window sizes;
    /// - `open` stays open until the same moment; the grown open wait (re-opens multiply it)
    ///   carries over as `min(max(grown, new wait), new max_wait)`;
    /// - `half_open` stays half-open since the same moment (the new `half_open.max_wait`
    ///   counts from it), with a fresh set of probes and the grown wait as for `open`;
    /// - `forced_open` and `disabled` stay: they are an operator's;
    /// - `observe` follows the new config's `mode`.
    ///
    /// The generation bumps, so permits granted before the change are ignored. No transition
    /// happens (the state does not change) and nothing depends on the time.
    pub fn reconfigured(&self, config: BreakerConfig) -> Result<CircuitBreaker, String> {
        let next = CircuitBreaker::new(Arc::clone(&self.key), config, Arc::clone(&self.random))?;
        let (state, generation, open_until, capped, half_open_since) = {
            let control = self.lock();
            let (state, generation) = unpack(self.state.load(Ordering::Acquire));
            (
                state,
                generation,
                control.open_until,
                control.capped_wait_nanos,
                control.half_open_since,
            )
        };
        {
            let mut control = next.lock();
            let grown = capped
                .max(control.capped_wait_nanos)
                .min(duration_nanos(next.config.open.max_wait));
            match state {
                State::Open => {
                    control.open_until = open_until;
                    control.capped_wait_nanos = grown;
                }
                State::HalfOpen => {
                    control.half_open_since = half_open_since;
                    control.capped_wait_nanos = grown;
                }
                State::Closed | State::ForcedOpen | State::Disabled => {}
            }
        }
        next.publish(state, generation + 1);
        Ok(next)
    }

    /// Switches between `enforce` and `observe` (no transition; the state machine is the same).
    pub fn set_mode(&self, mode: Mode) {
        self.observe.store(mode == Mode::Observe, Ordering::Release);
    }

    /// A view for `/health`.
    pub fn snapshot(&self, now: Timestamp) -> Snapshot {
        let control = self.lock();
        let state = self.state();
        Snapshot {
            state,
            window: self.window.totals(now),
            consecutive_failures: self.consecutive.load(Ordering::Acquire),
            open_remaining: (state == State::Open).then(|| control.open_until - now),
            probes_admitted: control.probes_admitted,
            probes_reported: control.probes_reported,
            observe: self.observe.load(Ordering::Acquire),
        }
    }

    fn publish(&self, state: State, generation: u64) {
        self.state.store(pack(state, generation), Ordering::Release);
    }

    fn transition(&self, from: State, to: State, reason: Reason, at: Timestamp) -> Transition {
        Transition {
            key: self.key.clone(),
            from,
            to,
            reason,
            at,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Control> {
        self.control.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A breaker's state machine as plain data: everything but the outcome window.
///
/// Why it exists: the registry (SPEC §9) keeps one fleet breaker per endpoint key in a shared
/// store (memory, or Redis shared by several registry replicas) and must load, advance and
/// save it atomically around each operation. Rather than re-implementing §2's rules for the
/// fleet, it rebuilds a [`CircuitBreaker`] from this record with [`CircuitBreaker::restore`],
/// runs the usual `acquire`/`record`/[`CircuitBreaker::ingest`] calls and saves
/// [`CircuitBreaker::export`]. The window is not part of the record: the fleet windows its
/// batched counts itself and hands the totals to [`CircuitBreaker::ingest`].
///
/// Timestamps are nanoseconds on the caller's clock, as everywhere in levee-core.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerRecord {
    /// The state.
    pub state: State,
    /// Bumps on every transition; permits from another generation are ignored.
    pub generation: u64,
    /// Failures in a row (always 0 for a fleet breaker, which sees counts, not sequences).
    pub consecutive_failures: u32,
    /// `observe` mode.
    pub observe: bool,
    /// When `open` ends, in clock nanoseconds.
    pub open_until_nanos: u64,
    /// The current capped, un-jittered open wait.
    pub capped_wait_nanos: u64,
    /// When `half_open` began, in clock nanoseconds.
    pub half_open_since_nanos: u64,
    /// Probes admitted in `half_open`.
    pub probes_admitted: u32,
    /// Probes that reported.
    pub probes_reported: u32,
    /// Probes that failed (failure or timeout).
    pub probe_failures: u32,
    /// Probes that were slow.
    pub probe_slow: u32,
}

/// A [`Permit`] as plain data, so that a probe permit can be held across processes (the
/// registry's probe leases) and handed back to a restored breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermitRecord {
    /// The breaker generation the permit was granted in.
    pub generation: u64,
    /// True for a half-open probe.
    pub probe: bool,
}

impl Permit {
    /// The permit as plain data.
    pub fn to_record(&self) -> PermitRecord {
        PermitRecord {
            generation: self.generation,
            probe: self.probe,
        }
    }

    /// A permit rebuilt from [`Permit::to_record`]. A record from another generation than the
    /// breaker's current one is ignored by `record`, like any stale permit.
    pub fn from_record(record: PermitRecord) -> Permit {
        Permit {
            generation: record.generation,
            probe: record.probe,
            shadow_rejected: false,
        }
    }
}

impl CircuitBreaker {
    /// The state machine as plain data (the window is not included; see [`BreakerRecord`]).
    pub fn export(&self) -> BreakerRecord {
        let control = self.lock();
        let (state, generation) = unpack(self.state.load(Ordering::Acquire));
        BreakerRecord {
            state,
            generation,
            consecutive_failures: self.consecutive.load(Ordering::Acquire),
            observe: self.observe.load(Ordering::Acquire),
            open_until_nanos: control.open_until.as_nanos(),
            capped_wait_nanos: control.capped_wait_nanos,
            half_open_since_nanos: control.half_open_since.as_nanos(),
            probes_admitted: control.probes_admitted,
            probes_reported: control.probes_reported,
            probe_failures: control.probe_failures,
            probe_slow: control.probe_slow,
        }
    }

    /// A breaker in the state `record` describes, with an empty window. Fails with the
    /// validation message for an impossible config.
    pub fn restore(
        key: impl Into<Arc<str>>,
        config: BreakerConfig,
        random: Arc<dyn RandomSource>,
        record: &BreakerRecord,
    ) -> Result<Self, String> {
        let breaker = CircuitBreaker::new(key, config, random)?;
        {
            let mut control = breaker.lock();
            control.open_until = Timestamp::from_nanos(record.open_until_nanos);
            control.capped_wait_nanos = record.capped_wait_nanos;
            control.half_open_since = Timestamp::from_nanos(record.half_open_since_nanos);
            control.probes_admitted = record.probes_admitted;
            control.probes_reported = record.probes_reported;
            control.probe_failures = record.probe_failures;
            control.probe_slow = record.probe_slow;
        }
        breaker
            .consecutive
            .store(record.consecutive_failures, Ordering::Release);
        breaker.observe.store(record.observe, Ordering::Release);
        breaker.publish(record.state, record.generation);
        Ok(breaker)
    }

    /// Evaluates the rate rules of SPEC §2 against totals the caller windowed itself — the
    /// registry's fleet totals, aggregated from many instances' batched reports — and opens a
    /// closed breaker when a rate reaches its threshold (at least `minimum_calls` counted).
    ///
    /// `consecutive_failures` is never evaluated here: batched counts carry no order, so a
    /// streak cannot be known. Does nothing unless the breaker is `closed`; the breaker's own
    /// window is left untouched.
    pub fn ingest(&self, totals: Totals, now: Timestamp) -> Option<Transition> {
        let (state, generation) = unpack(self.state.load(Ordering::Acquire));
        if state != State::Closed {
            return None;
        }
        let reason = self.trip_reason(totals, 0)?;
        self.open_from_closed(generation, reason, now)
    }
}

/// `part / whole >= threshold%`, compared as `part × 100 >= threshold × whole` in f64 so
/// every implementation rounds the same way.
#[inline]
fn reaches(part: u64, whole: u64, threshold: f64) -> bool {
    whole > 0 && (part as f64) * 100.0 >= threshold * (whole as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::ScriptedRandom;

    const T0: Timestamp = Timestamp::from_nanos(1_000_000_000_000);

    fn breaker(config: BreakerConfig) -> CircuitBreaker {
        CircuitBreaker::new("k", config, Arc::new(ScriptedRandom::new([0.5; 16])))
            .expect("valid config")
    }

    fn call(b: &CircuitBreaker, outcome: Outcome, now: Timestamp) -> Option<Transition> {
        let permit = b.acquire(now).result.expect("permitted");
        b.record(permit, outcome, Duration::from_millis(1), now)
    }

    #[test]
    fn a_late_result_from_an_earlier_round_is_ignored() {
        let b = breaker(BreakerConfig {
            minimum_calls: 1,
            open: OpenConfig {
                jitter: 0.0,
                ..OpenConfig::default()
            },
            ..BreakerConfig::default()
        });
        let stale = b.acquire(T0).result.expect("closed");
        call(&b, Outcome::Failure, T0);
        assert_eq!(b.state(), State::Open);
        let later = T0 + Duration::from_secs(5);
        let probe = b.acquire(later).result.expect("probe");
        assert!(probe.is_probe());
        assert_eq!(
            b.record(stale, Outcome::Success, Duration::ZERO, later),
            None
        );
        assert_eq!(b.state(), State::HalfOpen);
    }

    fn no_jitter(minimum_calls: u32) -> BreakerConfig {
        BreakerConfig {
            minimum_calls,
            open: OpenConfig {
                jitter: 0.0,
                ..OpenConfig::default()
            },
            ..BreakerConfig::default()
        }
    }

    #[test]
    fn reconfigured_closed_keeps_closed_with_an_empty_window_and_the_new_thresholds() {
        let b = breaker(no_jitter(10));
        for _ in 0..4 {
            call(&b, Outcome::Failure, T0);
        }
        let stale = b.acquire(T0).result.expect("closed");
        let mut config = no_jitter(10);
        config.consecutive_failures = 2;
        let n = b.reconfigured(config.clone()).expect("valid");
        assert_eq!(n.state(), State::Closed);
        assert_eq!(*n.config(), config);
        assert_eq!(n.key().as_ref(), "k");
        let snap = n.snapshot(T0);
        assert_eq!(
            snap.window,
            Totals::default(),
            "counts judged by old rules go"
        );
        assert_eq!(snap.consecutive_failures, 0);
        // A permit from before the change is ignored.
        assert_eq!(n.record(stale, Outcome::Failure, Duration::ZERO, T0), None);
        assert_eq!(call(&n, Outcome::Failure, T0), None);
        let t = call(&n, Outcome::Failure, T0).expect("trips on 2 in a row");
        assert_eq!((t.from, t.to), (State::Closed, State::Open));
        assert_eq!(t.reason, Reason::ConsecutiveFailures);
        // The old breaker is untouched.
        assert_eq!(b.state(), State::Closed);
        assert_eq!(b.snapshot(T0).window.failures, 4);
    }

    #[test]
    fn reconfigured_open_stays_open_until_the_same_moment_with_its_grown_wait() {
        let mut one_probe = no_jitter(1);
        one_probe.half_open.permitted_calls = 1;
        let b = breaker(one_probe.clone());
        call(&b, Outcome::Failure, T0);
        // Probe fails: re-open with a doubled wait (5s → 10s), open until T0+15s.
        let t1 = T0 + Duration::from_secs(5);
        call(&b, Outcome::Failure, t1);
        assert_eq!(b.state(), State::Open);
        let until = b.snapshot(t1).open_remaining.expect("open");
        assert_eq!(until, Duration::from_secs(10));
        let mut config = one_probe;
        config.open.wait = Duration::from_secs(1);
        config.open.max_wait = Duration::from_secs(8);
        let n = b.reconfigured(config).expect("valid");
        assert_eq!(n.state(), State::Open);
        assert_eq!(n.snapshot(t1).open_remaining, Some(until));
        let rejected = n.acquire(t1 + Duration::from_secs(9));
        assert_eq!(
            rejected.result.expect_err("still open").retry_after,
            Some(Duration::from_secs(1))
        );
        // Probing at the same moment; a failed probe re-opens for the grown wait (10s capped
        // by the new max_wait 8s, × 2, capped again: 8s).
        let t2 = t1 + Duration::from_secs(10);
        let probe = n.acquire(t2);
        assert_eq!(probe.transition.expect("probing").to, State::HalfOpen);
        let p = probe.result.expect("probe");
        n.record(p, Outcome::Failure, Duration::ZERO, t2)
            .expect("re-opens");
        assert_eq!(n.snapshot(t2).open_remaining, Some(Duration::from_secs(8)));
    }

    #[test]
    fn reconfigured_half_open_gets_fresh_probes_and_keeps_its_start() {
        let b = breaker(no_jitter(1));
        call(&b, Outcome::Failure, T0);
        let t1 = T0 + Duration::from_secs(5);
        let old_probe = b.acquire(t1).result.expect("probe");
        assert_eq!(b.state(), State::HalfOpen);
        let mut config = no_jitter(1);
        config.half_open.permitted_calls = 2;
        config.half_open.max_wait = Duration::from_secs(3);
        let n = b.reconfigured(config).expect("valid");
        assert_eq!(n.state(), State::HalfOpen);
        assert_eq!(n.snapshot(t1).probes_admitted, 0);
        assert_eq!(
            n.record(old_probe, Outcome::Failure, Duration::ZERO, t1),
            None
        );
        let a = n.acquire(t1).result.expect("probe 1");
        let c = n.acquire(t1).result.expect("probe 2");
        assert!(n.acquire(t1).result.is_err(), "only permitted_calls probes");
        assert!(a.is_probe() && c.is_probe());
        // max_wait counts from when half-open began, before the change.
        let late = n.acquire(t1 + Duration::from_secs(3));
        let t = late.transition.expect("timed out");
        assert_eq!(t.reason, Reason::HalfOpenTimeout);
    }

    #[test]
    fn reconfigured_keeps_operator_overrides_and_takes_the_new_mode() {
        let b = breaker(no_jitter(1));
        b.set_override(Some(Override::ForcedOpen), T0);
        let mut config = no_jitter(1);
        config.mode = Mode::Observe;
        let n = b.reconfigured(config).expect("valid");
        assert_eq!(n.state(), State::ForcedOpen);
        assert!(n.snapshot(T0).observe);
        let b = breaker(no_jitter(1));
        b.set_override(Some(Override::Disabled), T0);
        let n = b.reconfigured(no_jitter(1)).expect("valid");
        assert_eq!(n.state(), State::Disabled);
        assert_eq!(call(&n, Outcome::Failure, T0), None, "disabled never trips");
    }

    #[test]
    fn an_impossible_config_is_refused() {
        let b = breaker(no_jitter(1));
        let mut config = no_jitter(1);
        config.open.max_wait = Duration::from_millis(1);
        assert!(b.reconfigured(config).is_err());
    }

    #[test]
    fn concurrent_closed_path_never_loses_a_trip() {
        let b = Arc::new(breaker(BreakerConfig {
            window: WindowConfig {
                kind: WindowKind::Count,
                size: 100,
            },
            minimum_calls: 100,
            ..BreakerConfig::default()
        }));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        if let Ok(p) = b.acquire(T0).result {
                            b.record(p, Outcome::Failure, Duration::ZERO, T0);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        assert_eq!(b.state(), State::Open);
    }
}
