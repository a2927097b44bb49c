//! Fleet-wide state: the registry's pure logic (SPEC §9, §10).
//!
//! The registry aggregates batched outcome counts from every instance and applies SPEC §2 to
//! the fleet totals. It does not re-implement §2: a [`FleetBreaker`] is plain, serializable
//! data (so a shared store such as Redis can hold it) that, for each operation, rebuilds a
//! [`CircuitBreaker`] with [`CircuitBreaker::restore`], calls the breaker's own `acquire`,
//! `record` and [`CircuitBreaker::ingest`], and saves [`CircuitBreaker::export`]. What the fleet
//! adds is only what a single process never needs:
//!
//! - **A window of batched counts** ([`FleetWindow`]): per-second buckets summed across
//!   instances. `window.kind: time` sums the buckets of the last `window.size` seconds exactly
//!   like the breaker's own time window. `window.kind: count` has no call order across a fleet,
//!   so it takes the newest buckets until they hold `window.size` counted calls, the oldest of
//!   them scaled down pro rata (integer floor).
//! - **Rates only**: `consecutive_failures` cannot be computed from counts (a streak needs the
//!   order of calls), so the fleet evaluates `failure_rate_threshold` and
//!   `slow_call_rate_threshold` only. Each instance's local breaker still applies
//!   `consecutive_failures`, and an instance's effective state is the more severe of its local
//!   and the fleet state ([`more_severe`]).
//! - **Probe leases** ([`Lease`]): a half-open probe granted to one instance, for a limited
//!   time. The fleet grants at most `half_open.permitted_calls` probes at once because each lease
//!   is one breaker probe permit. A lease that expires before its holder reports is recorded as
//!   `cancelled`, which frees the probe slot exactly as a cancelled probe does locally
//!   (`breaker/cancelled_probe_frees_its_slot`). Expiry is checked lazily, at every operation on
//!   the key, so no timer is needed: the slot matters only when someone asks for it.
//! - **Overrides**: `forced_open` and `disabled` are the breaker's operator states; `observe`
//!   is its mode.
//!
//! Buckets are aligned to whole seconds of the caller's clock; in the registry that is Unix
//! time, so instance and registry clocks must roughly agree. A bucket from the future (clock
//! skew) is counted in the current second; one older than the window is dropped as late; one
//! from before the window was last cleared (the breaker closed after probing, or an override
//! changed) is dropped too, so probe-era reports cannot re-trip a freshly closed breaker.
//!
//! Toggles ([`Toggle`]) and degradation levels ([`Degradation`]) are here too: both decide
//! per request in Go and Rust, so their arithmetic must be one documented function.

use crate::breaker::{
    BreakerConfig, BreakerRecord, CircuitBreaker, Mode, Override, PermitRecord, Reason, State,
    Totals, Transition, WindowKind,
};
use crate::outcome::Outcome;
use crate::random::RandomSource;
use crate::time::{duration_nanos, Timestamp};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// How far back a `window.kind: count` fleet window looks for calls: a count window over a
/// quiet endpoint must not judge it on calls from long ago.
pub const COUNT_WINDOW_HORIZON_SECONDS: u64 = 300;

/// The more severe of two breaker states (SPEC §9: an instance's effective state is the more
/// severe of its local and the fleet state). Severity: `disabled < closed < half_open < open <
/// forced_open`.
pub fn more_severe(a: State, b: State) -> State {
    if b.severity() > a.severity() {
        b
    } else {
        a
    }
}

/// The outcome counts of one endpoint key in one second, from one instance's batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct BucketCounts {
    /// `success` outcomes.
    pub success: u64,
    /// `failure` outcomes.
    pub failure: u64,
    /// `timeout` outcomes (count as failures).
    pub timeout: u64,
    /// Counted calls (success, failure, timeout) that were slow.
    pub slow: u64,
    /// Sum of the counted calls' durations, in milliseconds (for views; not a breaker input).
    pub latency_sum_ms: u64,
}

impl BucketCounts {
    /// Calls that count toward rates.
    pub fn counted(&self) -> u64 {
        self.success
            .saturating_add(self.failure)
            .saturating_add(self.timeout)
    }

    /// Failures and timeouts.
    pub fn failures(&self) -> u64 {
        self.failure.saturating_add(self.timeout)
    }

    /// Why these counts are impossible, if they are.
    pub fn validate(&self) -> Result<(), String> {
        if self.slow > self.counted() {
            return Err(format!(
                "slow is {} but only {} calls were counted (success + failure + timeout): \
                 slow counts a subset of the counted calls",
                self.slow,
                self.counted()
            ));
        }
        Ok(())
    }
}

/// One second of fleet totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetBucket {
    /// The whole second (clock seconds) the bucket counts.
    pub second: u64,
    /// Counted calls.
    pub counted: u64,
    /// Failures and timeouts.
    pub failures: u64,
    /// Slow calls.
    pub slow: u64,
    /// Sum of durations in milliseconds.
    pub latency_sum_ms: u64,
}

/// Per-second buckets of fleet-wide counts.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FleetWindow {
    /// Buckets, oldest first, at most one per second.
    pub buckets: Vec<FleetBucket>,
    /// Buckets of earlier seconds are ignored: the window was cleared then.
    pub floor_second: u64,
}

/// What happened to the buckets of one report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Ingested {
    /// Buckets that went into the window.
    pub accepted: u64,
    /// Buckets too old for the window, or from before it was last cleared.
    pub late: u64,
    /// Buckets that arrived while the breaker was not `closed`/`disabled` (not counted, as a
    /// local breaker does not count calls while open).
    pub not_counted: u64,
}

impl FleetWindow {
    fn horizon(config: &BreakerConfig) -> u64 {
        match config.window.kind {
            WindowKind::Time => u64::from(config.window.size),
            WindowKind::Count => COUNT_WINDOW_HORIZON_SECONDS,
        }
    }

    /// Adds one bucket; returns false when it is late.
    pub fn add(
        &mut self,
        config: &BreakerConfig,
        second: u64,
        counts: &BucketCounts,
        now: Timestamp,
    ) -> bool {
        let now_s = now.as_nanos() / NANOS_PER_SECOND;
        let second = second.min(now_s);
        if second < self.floor_second || second + Self::horizon(config) <= now_s {
            return false;
        }
        let bucket = match self.buckets.binary_search_by_key(&second, |b| b.second) {
            Ok(i) => &mut self.buckets[i],
            Err(i) => {
                self.buckets.insert(
                    i,
                    FleetBucket {
                        second,
                        counted: 0,
                        failures: 0,
                        slow: 0,
                        latency_sum_ms: 0,
                    },
                );
                &mut self.buckets[i]
            }
        };
        bucket.counted = bucket.counted.saturating_add(counts.counted());
        bucket.failures = bucket.failures.saturating_add(counts.failures());
        bucket.slow = bucket
            .slow
            .saturating_add(counts.slow.min(counts.counted()));
        bucket.latency_sum_ms = bucket.latency_sum_ms.saturating_add(counts.latency_sum_ms);
        true
    }

    /// Drops buckets that can no longer count.
    pub fn prune(&mut self, config: &BreakerConfig, now: Timestamp) {
        let now_s = now.as_nanos() / NANOS_PER_SECOND;
        let horizon = Self::horizon(config);
        let floor = self.floor_second;
        self.buckets
            .retain(|b| b.second >= floor && b.second + horizon > now_s);
        if config.window.kind == WindowKind::Count {
            // Keep only the newest buckets needed to hold `size` calls.
            let size = u64::from(config.window.size);
            let mut sum = 0u64;
            let mut keep_from = 0;
            for (i, b) in self.buckets.iter().enumerate().rev() {
                if sum >= size {
                    keep_from = i + 1;
                    break;
                }
                sum = sum.saturating_add(b.counted);
            }
            self.buckets.drain(..keep_from);
        }
    }

    /// The totals the breaker rules see at `now`.
    pub fn totals(&self, config: &BreakerConfig, now: Timestamp) -> Totals {
        let now_s = now.as_nanos() / NANOS_PER_SECOND;
        let mut sum = Totals::default();
        match config.window.kind {
            WindowKind::Time => {
                let size = u64::from(config.window.size);
                for b in &self.buckets {
                    if b.second >= self.floor_second && b.second <= now_s && b.second + size > now_s
                    {
                        sum.counted = sum.counted.saturating_add(b.counted);
                        sum.failures = sum.failures.saturating_add(b.failures);
                        sum.slow = sum.slow.saturating_add(b.slow);
                    }
                }
            }
            WindowKind::Count => {
                let size = u64::from(config.window.size);
                for b in self.buckets.iter().rev() {
                    if b.second < self.floor_second
                        || b.second + COUNT_WINDOW_HORIZON_SECONDS <= now_s
                    {
                        break;
                    }
                    let room = size - sum.counted;
                    if b.counted <= room {
                        sum.counted += b.counted;
                        sum.failures = sum.failures.saturating_add(b.failures);
                        sum.slow = sum.slow.saturating_add(b.slow);
                    } else {
                        // Pro rata share of the oldest bucket, rounded down.
                        let share = |part: u64| {
                            u64::try_from(
                                u128::from(part) * u128::from(room) / u128::from(b.counted),
                            )
                            .unwrap_or(u64::MAX)
                        };
                        sum.counted += room;
                        sum.failures += share(b.failures);
                        sum.slow += share(b.slow);
                    }
                    if sum.counted >= size {
                        break;
                    }
                }
            }
        }
        sum
    }

    /// Forgets every bucket up to and including the second of `now`.
    pub fn clear(&mut self, now: Timestamp) {
        self.buckets.clear();
        self.floor_second = now.as_nanos() / NANOS_PER_SECOND + 1;
    }
}

/// Operator overrides of a fleet breaker (SPEC §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FleetOverride {
    /// Reject everything, fleet-wide.
    ForcedOpen,
    /// Permit everything, still record.
    Disabled,
    /// Evaluate and emit transitions, never reject.
    Observe,
}

impl FleetOverride {
    /// The wire spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            FleetOverride::ForcedOpen => "forced_open",
            FleetOverride::Disabled => "disabled",
            FleetOverride::Observe => "observe",
        }
    }
}

impl fmt::Display for FleetOverride {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A half-open probe granted to one instance until `expires_at_nanos`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Opaque id the holder completes the lease with.
    pub id: String,
    /// The instance holding it.
    pub holder: String,
    /// When the lease lapses and the probe counts as `cancelled`.
    pub expires_at_nanos: u64,
    /// The breaker probe permit behind the lease.
    pub permit: PermitRecord,
}

/// A transition as plain data, for the last-transition field of views.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransitionRecord {
    /// The state left.
    pub from: State,
    /// The state entered.
    pub to: State,
    /// Why.
    pub reason: Reason,
    /// When, in clock nanoseconds.
    pub at_nanos: u64,
}

impl From<&Transition> for TransitionRecord {
    fn from(t: &Transition) -> Self {
        TransitionRecord {
            from: t.from,
            to: t.to,
            reason: t.reason,
            at_nanos: t.at.as_nanos(),
        }
    }
}

/// Why a fleet operation could not be done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FleetError {
    /// The breaker config is impossible (the validation message).
    InvalidConfig(String),
    /// No lease with this id is held (never granted, already completed, or dropped because
    /// the breaker left that half-open round).
    LeaseNotFound,
    /// The lease lapsed before it was completed; the probe was counted as `cancelled`.
    LeaseExpired,
}

impl fmt::Display for FleetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FleetError::InvalidConfig(m) => write!(f, "invalid breaker config: {m}"),
            FleetError::LeaseNotFound => f.write_str(
                "no such probe lease: it was never granted, was already completed, or the \
                 breaker has left that half-open round",
            ),
            FleetError::LeaseExpired => f.write_str(
                "the probe lease expired before it was completed; the probe counted as \
                 cancelled — complete leases within their ttl",
            ),
        }
    }
}

impl std::error::Error for FleetError {}

/// What a lease request got.
#[derive(Debug, Clone, PartialEq)]
pub enum LeaseDecision {
    /// A half-open probe: send one call and complete the lease with its outcome.
    Probe(Lease),
    /// The fleet breaker does not restrict calls (closed, disabled or observe): no lease needed.
    NotNeeded,
    /// No probe slot: the breaker is open, forced open, or every probe is out.
    Denied {
        /// The state that denied it.
        state: State,
        /// When asking again may succeed, when known.
        retry_after: Option<Duration>,
    },
}

/// The view of a fleet breaker that watchers and readers get (the registry maps it to its
/// wire type).
#[derive(Debug, Clone, PartialEq)]
pub struct FleetBreakerView {
    /// The state.
    pub state: State,
    /// `observe`: never rejects.
    pub observe: bool,
    /// The operator override, if any.
    pub override_: Option<FleetOverride>,
    /// When `open` ends (clock nanoseconds), if open.
    pub open_until_nanos: Option<u64>,
    /// Probes the fleet may send at once.
    pub permitted_probes: u32,
    /// Leases currently held.
    pub leased_probes: u32,
    /// Probes that reported in this half-open round.
    pub reported_probes: u32,
    /// Window totals at the time of the view.
    pub totals: Totals,
    /// The last transition.
    pub last_transition: Option<TransitionRecord>,
    /// Breaker generation (bumps on every transition).
    pub generation: u64,
}

/// Everything an operation needs besides the breaker: its config, randomness and the time.
#[derive(Clone)]
pub struct FleetContext<'a> {
    /// The breaker policy for this key.
    pub config: &'a BreakerConfig,
    /// Jitter source for open waits.
    pub random: Arc<dyn RandomSource>,
    /// The registry's clock reading.
    pub now: Timestamp,
}

/// One endpoint key's fleet breaker, as serializable data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetBreaker {
    /// The endpoint key.
    pub key: String,
    /// The breaker state machine.
    pub record: BreakerRecord,
    /// Fleet totals.
    pub window: FleetWindow,
    /// Outstanding probe leases.
    pub leases: Vec<Lease>,
    /// The operator override, if any.
    #[serde(rename = "override")]
    pub override_: Option<FleetOverride>,
    /// The last transition, for views.
    pub last_transition: Option<TransitionRecord>,
}

/// A breaker rebuilt for one operation; saved back by [`FleetBreaker::finish`].
struct Live {
    breaker: CircuitBreaker,
    transitions: Vec<Transition>,
}

impl FleetBreaker {
    /// A closed fleet breaker for `key`.
    pub fn new(key: &str, config: &BreakerConfig) -> Result<Self, FleetError> {
        struct NoDraws;
        impl RandomSource for NoDraws {
            fn next_unit(&self) -> f64 {
                0.5
            }
        }
        let breaker = CircuitBreaker::new(key, config.clone(), Arc::new(NoDraws))
            .map_err(FleetError::InvalidConfig)?;
        Ok(FleetBreaker {
            key: key.to_string(),
            record: breaker.export(),
            window: FleetWindow::default(),
            leases: Vec::new(),
            override_: None,
            last_transition: None,
        })
    }

    fn mode(&self, config: &BreakerConfig) -> Mode {
        if self.override_ == Some(FleetOverride::Observe) || config.mode == Mode::Observe {
            Mode::Observe
        } else {
            Mode::Enforce
        }
    }

    /// Rebuilds the breaker, then lets lapsed and stale leases go.
    fn start(&mut self, ctx: &FleetContext<'_>) -> Result<Live, FleetError> {
        let breaker = CircuitBreaker::restore(
            self.key.as_str(),
            ctx.config.clone(),
            ctx.random.clone(),
            &self.record,
        )
        .map_err(FleetError::InvalidConfig)?;
        breaker.set_mode(self.mode(ctx.config));
        let mut live = Live {
            breaker,
            transitions: Vec::new(),
        };
        self.expire_leases(&mut live, ctx.now);
        Ok(live)
    }

    /// Records every lapsed lease as a cancelled probe (freeing its slot) and drops leases of
    /// an earlier breaker generation, whose results the breaker would ignore anyway.
    fn expire_leases(&mut self, live: &mut Live, now: Timestamp) {
        let mut i = 0;
        while i < self.leases.len() {
            if self.leases[i].expires_at_nanos <= now.as_nanos() {
                let lease = self.leases.remove(i);
                let permit = crate::breaker::Permit::from_record(lease.permit);
                if let Some(t) =
                    live.breaker
                        .record(permit, Outcome::Cancelled, Duration::ZERO, now)
                {
                    live.transitions.push(t);
                }
            } else {
                i += 1;
            }
        }
        let generation = live.breaker.export().generation;
        self.leases.retain(|l| l.permit.generation == generation);
    }

    /// Saves the breaker and the window bookkeeping its transitions imply.
    fn finish(&mut self, ctx: &FleetContext<'_>, live: Live) -> Vec<Transition> {
        self.record = live.breaker.export();
        for t in &live.transitions {
            // The breaker clears its own window on entering `closed` or `disabled`; the fleet
            // window follows, so counts describe only the new period.
            if matches!(t.to, State::Closed | State::Disabled) {
                self.window.clear(ctx.now);
            }
            self.last_transition = Some(TransitionRecord::from(t));
        }
        let generation = self.record.generation;
        self.leases.retain(|l| l.permit.generation == generation);
        self.window.prune(ctx.config, ctx.now);
        live.transitions
    }

    /// Adds one instance's batched buckets `(second, counts)` and applies the rate rules to
    /// the fleet totals. Returns what was counted and the transitions caused.
    pub fn report(
        &mut self,
        ctx: &FleetContext<'_>,
        buckets: &[(u64, BucketCounts)],
    ) -> Result<(Ingested, Vec<Transition>), FleetError> {
        let mut live = self.start(ctx)?;
        let mut ingested = Ingested::default();
        let counting = matches!(live.breaker.state(), State::Closed | State::Disabled);
        for (second, counts) in buckets {
            if !counting {
                ingested.not_counted += 1;
            } else if self.window.add(ctx.config, *second, counts, ctx.now) {
                ingested.accepted += 1;
            } else {
                ingested.late += 1;
            }
        }
        let totals = self.window.totals(ctx.config, ctx.now);
        if let Some(t) = live.breaker.ingest(totals, ctx.now) {
            live.transitions.push(t);
        }
        Ok((ingested, self.finish(ctx, live)))
    }

    /// Applies lazy transitions (lapsed leases, `half_open.max_wait`) without asking for
    /// anything; used before reading a view.
    pub fn refresh(&mut self, ctx: &FleetContext<'_>) -> Result<Vec<Transition>, FleetError> {
        let live = self.start(ctx)?;
        Ok(self.finish(ctx, live))
    }

    /// Asks for a probe lease for `holder`, valid for `ttl`. `lease_id` is the id to hand out
    /// (the caller generates it, so this stays deterministic).
    pub fn acquire_lease(
        &mut self,
        ctx: &FleetContext<'_>,
        lease_id: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<(LeaseDecision, Vec<Transition>), FleetError> {
        let mut live = self.start(ctx)?;
        let acquired = live.breaker.acquire(ctx.now);
        if let Some(t) = acquired.transition {
            live.transitions.push(t);
        }
        let decision = match acquired.result {
            Ok(permit) if permit.is_probe() => {
                let lease = Lease {
                    id: lease_id.to_string(),
                    holder: holder.to_string(),
                    expires_at_nanos: (ctx.now + ttl).as_nanos(),
                    permit: permit.to_record(),
                };
                self.leases.push(lease.clone());
                LeaseDecision::Probe(lease)
            }
            Ok(_) => LeaseDecision::NotNeeded,
            Err(rejection) => {
                // With every probe out, the earliest lapse is when a slot may free up.
                let retry_after = rejection.retry_after.or_else(|| {
                    self.leases
                        .iter()
                        .map(|l| Timestamp::from_nanos(l.expires_at_nanos) - ctx.now)
                        .min()
                });
                LeaseDecision::Denied {
                    state: rejection.state,
                    retry_after,
                }
            }
        };
        Ok((decision, self.finish(ctx, live)))
    }

    /// Completes a probe lease with the probe's outcome and duration.
    pub fn complete_lease(
        &mut self,
        ctx: &FleetContext<'_>,
        lease_id: &str,
        outcome: Outcome,
        duration: Duration,
    ) -> Result<Vec<Transition>, FleetError> {
        // A lapsed lease must be reported as lapsed, so look before `start` expires it.
        let lapsed = self
            .leases
            .iter()
            .any(|l| l.id == lease_id && l.expires_at_nanos <= ctx.now.as_nanos());
        let mut live = self.start(ctx)?;
        if lapsed {
            let transitions = self.finish(ctx, live);
            return if transitions.is_empty() {
                Err(FleetError::LeaseExpired)
            } else {
                // The expiry caused a transition that the caller must still publish; the
                // holder learns of the lapse through it.
                Ok(transitions)
            };
        }
        let Some(index) = self.leases.iter().position(|l| l.id == lease_id) else {
            let _ = self.finish(ctx, live);
            return Err(FleetError::LeaseNotFound);
        };
        let lease = self.leases.remove(index);
        let permit = crate::breaker::Permit::from_record(lease.permit);
        if let Some(t) = live.breaker.record(permit, outcome, duration, ctx.now) {
            live.transitions.push(t);
        }
        Ok(self.finish(ctx, live))
    }

    /// Sets or clears the operator override. Returns the transitions and whether anything
    /// changed (an `observe` override changes the mode, not the state).
    pub fn set_override(
        &mut self,
        ctx: &FleetContext<'_>,
        value: Option<FleetOverride>,
    ) -> Result<(bool, Vec<Transition>), FleetError> {
        let mut live = self.start(ctx)?;
        let changed = self.override_ != value;
        let breaker_override = match value {
            Some(FleetOverride::ForcedOpen) => Some(Override::ForcedOpen),
            Some(FleetOverride::Disabled) => Some(Override::Disabled),
            Some(FleetOverride::Observe) | None => None,
        };
        if let Some(t) = live.breaker.set_override(breaker_override, ctx.now) {
            live.transitions.push(t);
        }
        self.override_ = value;
        live.breaker.set_mode(self.mode(ctx.config));
        Ok((changed, self.finish(ctx, live)))
    }

    /// The view for readers and watchers, as of `now` (no lazy transition is applied; call
    /// [`FleetBreaker::refresh`] first for that).
    pub fn view(&self, config: &BreakerConfig, now: Timestamp) -> FleetBreakerView {
        FleetBreakerView {
            state: self.record.state,
            observe: self.mode(config) == Mode::Observe,
            override_: self.override_,
            open_until_nanos: (self.record.state == State::Open)
                .then_some(self.record.open_until_nanos),
            permitted_probes: config.half_open.permitted_calls,
            leased_probes: u32::try_from(self.leases.len()).unwrap_or(u32::MAX),
            reported_probes: self.record.probes_reported,
            totals: self.window.totals(config, now),
            last_transition: self.last_transition.clone(),
            generation: self.record.generation,
        }
    }
}

/// FNV-1a, 64 bit, over `bytes`: offset basis `0xcbf29ce484222325`, prime `0x100000001b3`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The percentage bucket (0–99) of `key` for toggle `name`: FNV-1a 64 of the UTF-8 bytes of
/// `name + ":" + key`, modulo 100. Every language computes exactly this, so a caller-supplied
/// key (a user id, a tenant) lands on the same side of a percentage toggle in Go and Rust.
/// The toggle name is part of the hash so that the same keys are not first in line for every
/// toggle; raising a percentage only ever adds keys.
pub fn toggle_bucket(name: &str, key: &str) -> u8 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes().chain(std::iter::once(b':')).chain(key.bytes()) {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (hash % 100) as u8
}

/// A named toggle (SPEC §10): on, off, or on for a percentage of keys.
///
/// Wire form: `{"state": "on"}`, `{"state": "off"}`, `{"state": "percent", "percent": 25}`.
/// Anything else — an unknown field, a `percent` beside `on` — is rejected rather than
/// ignored, so a typo never silently turns a feature on for everyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case", try_from = "ToggleWire")]
pub enum Toggle {
    /// On for everyone.
    On,
    /// Off for everyone.
    Off,
    /// On for keys whose [`toggle_bucket`] is below `percent`.
    Percent {
        /// 0 to 100.
        percent: u8,
    },
}

/// The strict wire shape a [`Toggle`] is read from.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ToggleWire {
    state: ToggleState,
    percent: Option<u8>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum ToggleState {
    On,
    Off,
    Percent,
}

impl TryFrom<ToggleWire> for Toggle {
    type Error = String;
    fn try_from(wire: ToggleWire) -> Result<Toggle, String> {
        match (wire.state, wire.percent) {
            (ToggleState::On, None) => Ok(Toggle::On),
            (ToggleState::Off, None) => Ok(Toggle::Off),
            (ToggleState::Percent, Some(percent)) => Ok(Toggle::Percent { percent }),
            (ToggleState::Percent, None) => {
                Err("a percent toggle needs `percent` (0 to 100)".to_string())
            }
            (_, Some(_)) => Err("`percent` goes only with `\"state\": \"percent\"`".to_string()),
        }
    }
}

impl Toggle {
    /// Whether the toggle `name` is on for `key`.
    pub fn enabled(&self, name: &str, key: &str) -> bool {
        match *self {
            Toggle::On => true,
            Toggle::Off => false,
            Toggle::Percent { percent } => toggle_bucket(name, key) < percent,
        }
    }

    /// Why the toggle is impossible, if it is.
    pub fn validate(&self) -> Result<(), String> {
        match *self {
            Toggle::Percent { percent } if percent > 100 => Err(format!(
                "percent is {percent}: use 0 to 100 (the share of keys the toggle is on for)"
            )),
            _ => Ok(()),
        }
    }
}

/// The highest degradation level: critical traffic only (SPEC §10).
pub const MAX_LEVEL: u8 = 3;

/// The condition of a degradation rule: `open_breakers >= 30%` or `open_breakers >= 3`.
/// A breaker counts as open in `open`, `half_open` or `forced_open` — every state that holds
/// traffic back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Condition {
    /// `>=` (true) or `>` (false).
    pub inclusive: bool,
    /// The threshold.
    pub threshold: f64,
    /// True when the threshold is a percentage of the known breakers.
    pub percent: bool,
}

impl Condition {
    /// Parses `open_breakers >= 30%`, `open_breakers > 2` and the like.
    pub fn parse(text: &str) -> Result<Condition, String> {
        let bad = || {
            format!(
                "rule condition `{text}` is not understood: write `open_breakers >= 30%` \
                 (a percentage of the fleet's breakers) or `open_breakers >= 3` (a count)"
            )
        };
        let rest = text
            .trim()
            .strip_prefix("open_breakers")
            .ok_or_else(bad)?
            .trim_start();
        let (inclusive, rest) = if let Some(r) = rest.strip_prefix(">=") {
            (true, r)
        } else if let Some(r) = rest.strip_prefix('>') {
            (false, r)
        } else {
            return Err(bad());
        };
        let rest = rest.trim();
        let (number, percent) = match rest.strip_suffix('%') {
            Some(n) => (n.trim(), true),
            None => (rest, false),
        };
        let threshold: f64 = number.parse().map_err(|_| bad())?;
        if !threshold.is_finite() || threshold < 0.0 || (percent && threshold > 100.0) {
            return Err(format!(
                "rule condition `{text}`: the threshold must be a number from 0{}",
                if percent { " to 100%" } else { " up" }
            ));
        }
        Ok(Condition {
            inclusive,
            threshold,
            percent,
        })
    }

    /// Whether the condition holds with `open` of `total` breakers open. With no breakers
    /// known, a percentage condition never holds.
    pub fn holds(&self, open: usize, total: usize) -> bool {
        let value = if self.percent {
            if total == 0 {
                return false;
            }
            open as f64 * 100.0 / total as f64
        } else {
            open as f64
        };
        if self.inclusive {
            value >= self.threshold
        } else {
            value > self.threshold
        }
    }
}

/// `{when: "open_breakers >= 30%", level: 2}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LevelRule {
    /// The condition, as written.
    pub when: String,
    /// The level while it holds.
    pub level: u8,
}

/// Who decided the effective level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LevelSource {
    /// The operator's level.
    Operator,
    /// A rule raised it above the operator's level.
    Rule,
}

/// The fleet degradation level (SPEC §10): an operator level plus rules that raise it while
/// their condition holds. The effective level is the highest of the operator level and every
/// holding rule's level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Degradation {
    /// The operator's level, 0–3.
    pub operator_level: u8,
    /// Rules that raise the level.
    pub rules: Vec<LevelRule>,
    /// The effective level.
    pub level: u8,
    /// Who set it.
    pub source: LevelSource,
    /// The rule that set it, when a rule did.
    pub rule: Option<String>,
}

impl Default for Degradation {
    fn default() -> Self {
        Degradation {
            operator_level: 0,
            rules: Vec::new(),
            level: 0,
            source: LevelSource::Operator,
            rule: None,
        }
    }
}

impl Degradation {
    /// An operator setting, validated, evaluated against `open` of `total` breakers.
    pub fn new(
        operator_level: u8,
        rules: Vec<LevelRule>,
        open: usize,
        total: usize,
    ) -> Result<Degradation, String> {
        if operator_level > MAX_LEVEL {
            return Err(format!(
                "level is {operator_level}: use 0 (normal) to {MAX_LEVEL} (critical traffic only)"
            ));
        }
        for rule in &rules {
            Condition::parse(&rule.when)?;
            if rule.level > MAX_LEVEL {
                return Err(format!(
                    "rule `{}` has level {}: use 0 to {MAX_LEVEL}",
                    rule.when, rule.level
                ));
            }
        }
        let mut d = Degradation {
            operator_level,
            rules,
            ..Degradation::default()
        };
        d.evaluate(open, total);
        Ok(d)
    }

    /// Re-evaluates the rules; returns true when the effective level or its source changed.
    pub fn evaluate(&mut self, open: usize, total: usize) -> bool {
        let mut level = self.operator_level;
        let mut source = LevelSource::Operator;
        let mut rule = None;
        for r in &self.rules {
            let holds = Condition::parse(&r.when)
                .map(|c| c.holds(open, total))
                .unwrap_or(false);
            if holds && r.level > level {
                level = r.level;
                source = LevelSource::Rule;
                rule = Some(r.when.clone());
            }
        }
        let changed = level != self.level || source != self.source || rule != self.rule;
        self.level = level;
        self.source = source;
        self.rule = rule;
        changed
    }
}

/// True for the states a degradation rule counts as open.
pub fn counts_as_open(state: State) -> bool {
    matches!(state, State::Open | State::HalfOpen | State::ForcedOpen)
}

/// Whole milliseconds of a duration, saturating.
pub fn duration_millis(d: Duration) -> u64 {
    duration_nanos(d) / 1_000_000
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::{HalfOpenConfig, OpenConfig, WindowConfig};
    use crate::random::ScriptedRandom;

    const T0: u64 = 1_700_000_000 * NANOS_PER_SECOND;

    fn at(secs: f64) -> Timestamp {
        Timestamp::from_nanos(T0 + (secs * 1e9) as u64)
    }

    fn second(secs: u64) -> u64 {
        T0 / NANOS_PER_SECOND + secs
    }

    fn config() -> BreakerConfig {
        BreakerConfig {
            minimum_calls: 10,
            open: OpenConfig {
                wait: Duration::from_secs(5),
                jitter: 0.0,
                ..OpenConfig::default()
            },
            half_open: HalfOpenConfig {
                permitted_calls: 2,
                max_wait: Duration::ZERO,
            },
            ..BreakerConfig::default()
        }
    }

    fn ctx(config: &BreakerConfig, now: Timestamp) -> FleetContext<'_> {
        FleetContext {
            config,
            random: Arc::new(ScriptedRandom::new([0.5; 8])),
            now,
        }
    }

    fn counts(success: u64, failure: u64) -> BucketCounts {
        BucketCounts {
            success,
            failure,
            ..BucketCounts::default()
        }
    }

    #[test]
    fn fleet_totals_from_several_instances_trip_the_breaker() {
        let config = config();
        let mut fleet = FleetBreaker::new("inventory", &config).unwrap();
        // Two instances, each below minimum_calls alone, together at 60% failures.
        let (_, t) = fleet
            .report(&ctx(&config, at(0.5)), &[(second(0), counts(2, 3))])
            .unwrap();
        assert!(t.is_empty());
        let (ingested, t) = fleet
            .report(&ctx(&config, at(0.6)), &[(second(0), counts(2, 3))])
            .unwrap();
        assert_eq!(ingested.accepted, 1);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].to, State::Open);
        assert_eq!(t[0].reason, Reason::FailureRate);
        assert_eq!(fleet.record.state, State::Open);
    }

    /// The fleet applies the breaker's own rules: the same per-second counts fed call by call
    /// into a local breaker and in batches into a fleet breaker trip at the same second.
    #[test]
    fn fleet_and_local_breaker_agree_on_rates() {
        let config = BreakerConfig {
            slow_call_rate_threshold: 60.0,
            ..config()
        };
        let plan: [(u64, u64, u64); 8] = [
            (3, 1, 0),
            (2, 0, 1),
            (4, 2, 1),
            (1, 1, 2),
            (0, 3, 0),
            (5, 0, 5),
            (0, 4, 4),
            (1, 5, 1),
        ];
        let local =
            CircuitBreaker::new("k", config.clone(), Arc::new(ScriptedRandom::new([]))).unwrap();
        let mut fleet = FleetBreaker::new("k", &config).unwrap();
        for (s, &(ok, bad, slow)) in plan.iter().enumerate() {
            let now = at(s as f64 * 2.0 + 0.5);
            let mut local_t = None;
            for i in 0..(ok + bad) {
                let Ok(p) = local.acquire(now).result else {
                    break;
                };
                // Flagged calls come last in each second, so a rate peaks at the second's
                // end, where the fleet evaluates it.
                let outcome = if i >= ok {
                    Outcome::Failure
                } else {
                    Outcome::Success
                };
                let d = if i >= ok + bad - slow {
                    Duration::from_secs(9)
                } else {
                    Duration::ZERO
                };
                local_t = local_t.or(local.record(p, outcome, d, now));
            }
            let bucket = BucketCounts {
                success: ok,
                failure: bad,
                slow,
                ..BucketCounts::default()
            };
            let (_, fleet_t) = fleet
                .report(
                    &ctx(&config, now),
                    &[(now.as_nanos() / NANOS_PER_SECOND, bucket)],
                )
                .unwrap();
            assert_eq!(
                local_t.map(|t| (t.to, t.reason)),
                fleet_t.first().map(|t| (t.to, t.reason)),
                "step {s}"
            );
            assert_eq!(local.state(), fleet.record.state, "step {s}");
        }
        assert_eq!(fleet.record.state, State::Open);
    }

    fn open_fleet(config: &BreakerConfig) -> FleetBreaker {
        let mut fleet = FleetBreaker::new("k", config).unwrap();
        fleet
            .report(&ctx(config, at(0.5)), &[(second(0), counts(0, 10))])
            .unwrap();
        assert_eq!(fleet.record.state, State::Open);
        fleet
    }

    #[test]
    fn leases_cap_fleet_probes_and_close_on_success() {
        let config = config();
        let mut fleet = open_fleet(&config);
        let ttl = Duration::from_secs(10);
        let (early, _) = fleet
            .acquire_lease(&ctx(&config, at(2.0)), "a", "i1", ttl)
            .unwrap();
        assert!(matches!(
            early,
            LeaseDecision::Denied { state: State::Open, retry_after: Some(d) } if d == Duration::from_millis(3500)
        ));
        let now = at(6.0);
        let (first, t) = fleet
            .acquire_lease(&ctx(&config, now), "a", "i1", ttl)
            .unwrap();
        assert!(matches!(first, LeaseDecision::Probe(_)));
        assert_eq!(t[0].to, State::HalfOpen);
        let (second_lease, _) = fleet
            .acquire_lease(&ctx(&config, now), "b", "i2", ttl)
            .unwrap();
        assert!(matches!(second_lease, LeaseDecision::Probe(_)));
        let (third, _) = fleet
            .acquire_lease(&ctx(&config, now), "c", "i3", ttl)
            .unwrap();
        assert!(
            matches!(third, LeaseDecision::Denied { state: State::HalfOpen, retry_after: Some(d) } if d == ttl)
        );
        assert!(fleet
            .complete_lease(&ctx(&config, now), "a", Outcome::Success, Duration::ZERO)
            .unwrap()
            .is_empty());
        assert_eq!(
            fleet.complete_lease(&ctx(&config, now), "a", Outcome::Success, Duration::ZERO),
            Err(FleetError::LeaseNotFound)
        );
        let t = fleet
            .complete_lease(&ctx(&config, now), "b", Outcome::Success, Duration::ZERO)
            .unwrap();
        assert_eq!(t[0].to, State::Closed);
        assert_eq!(t[0].reason, Reason::ProbesSucceeded);
        assert!(fleet.window.buckets.is_empty());
        // Reports from before the close cannot re-trip it.
        let (ingested, t) = fleet
            .report(&ctx(&config, at(6.5)), &[(second(6), counts(0, 50))])
            .unwrap();
        assert_eq!(ingested.late, 1);
        assert!(t.is_empty());
    }

    #[test]
    fn a_lapsed_lease_frees_its_slot_as_a_cancelled_probe() {
        let config = config();
        let mut fleet = open_fleet(&config);
        let ttl = Duration::from_secs(1);
        let now = at(6.0);
        for id in ["a", "b"] {
            let (d, _) = fleet
                .acquire_lease(&ctx(&config, now), id, "dead", ttl)
                .unwrap();
            assert!(matches!(d, LeaseDecision::Probe(_)));
        }
        let (full, _) = fleet
            .acquire_lease(&ctx(&config, at(6.9)), "c", "i", ttl)
            .unwrap();
        assert!(matches!(full, LeaseDecision::Denied { .. }));
        let later = at(7.0);
        let (freed, _) = fleet
            .acquire_lease(&ctx(&config, later), "d", "i", ttl)
            .unwrap();
        assert!(matches!(freed, LeaseDecision::Probe(_)));
        assert_eq!(fleet.record.state, State::HalfOpen);
        assert_eq!(
            fleet.complete_lease(&ctx(&config, later), "a", Outcome::Success, Duration::ZERO),
            Err(FleetError::LeaseNotFound)
        );
        assert_eq!(
            fleet.complete_lease(
                &ctx(&config, at(8.5)),
                "d",
                Outcome::Success,
                Duration::ZERO
            ),
            Err(FleetError::LeaseExpired)
        );
    }

    #[test]
    fn failed_probe_reopens_with_multiplied_wait() {
        let config = config();
        let mut fleet = open_fleet(&config);
        let now = at(6.0);
        fleet
            .acquire_lease(&ctx(&config, now), "a", "i", Duration::from_secs(10))
            .unwrap();
        let t = fleet
            .complete_lease(&ctx(&config, now), "a", Outcome::Failure, Duration::ZERO)
            .unwrap();
        assert_eq!(t[0].to, State::Open);
        assert_eq!(t[0].reason, Reason::ProbesFailed);
        let view = fleet.view(&config, now);
        assert_eq!(view.open_until_nanos, Some(at(16.0).as_nanos()));
    }

    #[test]
    fn overrides_force_disable_and_observe() {
        let config = config();
        let mut fleet = FleetBreaker::new("k", &config).unwrap();
        let now = at(1.0);
        let (changed, t) = fleet
            .set_override(&ctx(&config, now), Some(FleetOverride::ForcedOpen))
            .unwrap();
        assert!(changed);
        assert_eq!(t[0].to, State::ForcedOpen);
        assert_eq!(t[0].reason, Reason::Operator);
        let (d, _) = fleet
            .acquire_lease(&ctx(&config, now), "a", "i", Duration::from_secs(1))
            .unwrap();
        assert!(matches!(
            d,
            LeaseDecision::Denied {
                state: State::ForcedOpen,
                ..
            }
        ));
        let (_, t) = fleet
            .set_override(&ctx(&config, now), Some(FleetOverride::Observe))
            .unwrap();
        assert_eq!(t[0].to, State::Closed);
        assert!(fleet.view(&config, now).observe);
        // Observe still trips, but leases are never denied.
        // (The window was cleared when the override ended at second 1.)
        fleet
            .report(&ctx(&config, at(2.5)), &[(second(2), counts(0, 20))])
            .unwrap();
        assert_eq!(fleet.record.state, State::Open);
        let (d, _) = fleet
            .acquire_lease(&ctx(&config, at(3.0)), "b", "i", Duration::from_secs(1))
            .unwrap();
        assert_eq!(d, LeaseDecision::NotNeeded);
        let (_, t) = fleet.set_override(&ctx(&config, at(3.0)), None).unwrap();
        assert!(t.is_empty(), "clearing observe leaves the state as it is");
        assert!(!fleet.view(&config, at(3.0)).observe);
    }

    #[test]
    fn count_windows_take_the_newest_calls_pro_rata() {
        let config = BreakerConfig {
            window: WindowConfig {
                kind: WindowKind::Count,
                size: 10,
            },
            minimum_calls: 10,
            ..config()
        };
        let mut w = FleetWindow::default();
        w.add(&config, second(0), &counts(0, 20), at(0.5));
        w.add(&config, second(1), &counts(6, 0), at(1.5));
        // Newest 6 successes, then 4 of the 20 failures.
        let t = w.totals(&config, at(1.5));
        assert_eq!((t.counted, t.failures), (10, 4));
        w.prune(&config, at(1.5));
        assert_eq!(w.buckets.len(), 2);
        w.add(&config, second(2), &counts(10, 0), at(2.5));
        w.prune(&config, at(2.5));
        assert_eq!(w.buckets.len(), 1);
    }

    #[test]
    fn time_windows_drop_late_and_clamp_future_buckets() {
        let config = config();
        let mut w = FleetWindow::default();
        assert!(!w.add(&config, second(0), &counts(1, 0), at(10.0)));
        assert!(w.add(&config, second(1), &counts(1, 0), at(10.0)));
        assert!(w.add(&config, second(99), &counts(1, 0), at(10.0)));
        assert_eq!(w.totals(&config, at(10.0)).counted, 2);
        assert_eq!(w.buckets.last().map(|b| b.second), Some(second(10)));
    }

    #[test]
    fn huge_counts_saturate_instead_of_overflowing() {
        let config = config();
        let mut w = FleetWindow::default();
        let huge = BucketCounts {
            failure: u64::MAX / 2 + 7,
            ..BucketCounts::default()
        };
        for s in 0..3 {
            assert!(w.add(&config, second(s), &huge, at(2.5)));
            assert!(w.add(&config, second(s), &huge, at(2.5)));
        }
        let t = w.totals(&config, at(2.5));
        assert_eq!((t.counted, t.failures), (u64::MAX, u64::MAX));
        let mut fleet = FleetBreaker::new("k", &config).unwrap();
        let (_, t) = fleet
            .report(
                &ctx(&config, at(2.5)),
                &[(second(2), huge), (second(1), huge)],
            )
            .unwrap();
        assert_eq!(t[0].to, State::Open);
    }

    #[test]
    fn impossible_counts_are_rejected() {
        let c = BucketCounts {
            success: 1,
            slow: 2,
            ..BucketCounts::default()
        };
        assert!(c.validate().unwrap_err().contains("slow"));
    }

    #[test]
    fn toggle_buckets_are_fnv1a_of_name_colon_key() {
        // Reference values of FNV-1a 64 (the published test vectors).
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
        assert_eq!(
            u64::from(toggle_bucket("new-checkout", "user-42")),
            fnv1a64(b"new-checkout:user-42") % 100
        );
        let on = (0..1000)
            .filter(|i| Toggle::Percent { percent: 25 }.enabled("t", &format!("u{i}")))
            .count();
        assert!((200..300).contains(&on), "{on}");
        assert!(Toggle::On.enabled("t", "x"));
        assert!(!Toggle::Off.enabled("t", "x"));
        assert!(!Toggle::Percent { percent: 0 }.enabled("t", "x"));
        assert!(Toggle::Percent { percent: 100 }.enabled("t", "x"));
        assert!(Toggle::Percent { percent: 101 }.validate().is_err());
        let parse = |j: &str| serde_json::from_str::<Toggle>(j);
        assert_eq!(parse(r#"{"state":"on"}"#).unwrap(), Toggle::On);
        assert_eq!(
            parse(r#"{"state":"percent","percent":5}"#).unwrap(),
            Toggle::Percent { percent: 5 }
        );
        for bad in [
            r#"{"state":"on","extra":1}"#,
            r#"{"state":"on","percent":5}"#,
            r#"{"state":"percent"}"#,
            r#"{"state":"maybe"}"#,
            r#"{"percent":5}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            serde_json::to_string(&Toggle::Percent { percent: 5 }).unwrap(),
            r#"{"state":"percent","percent":5}"#
        );
    }

    #[test]
    fn degradation_rules_raise_the_operator_level() {
        let rules = vec![LevelRule {
            when: "open_breakers >= 30%".into(),
            level: 2,
        }];
        let mut d = Degradation::new(1, rules, 0, 10).unwrap();
        assert_eq!((d.level, d.source), (1, LevelSource::Operator));
        assert!(d.evaluate(3, 10));
        assert_eq!((d.level, d.source), (2, LevelSource::Rule));
        assert!(!d.evaluate(4, 10));
        assert!(d.evaluate(2, 10));
        assert_eq!(d.level, 1);
        assert!(Degradation::new(4, vec![], 0, 0).is_err());
        assert!(Condition::parse("open_breakers >= 3").unwrap().holds(3, 0));
        assert!(!Condition::parse("open_breakers > 3").unwrap().holds(3, 10));
        assert!(Condition::parse("open_breakers = 3").is_err());
        assert!(Condition::parse("closed >= 3").is_err());
        assert!(Condition::parse("open_breakers >= 130%").is_err());
        assert!(!Condition::parse("open_breakers >= 0%").unwrap().holds(0, 0));
    }

    #[test]
    fn fleet_state_round_trips_through_json() {
        let config = config();
        let mut fleet = open_fleet(&config);
        fleet
            .acquire_lease(&ctx(&config, at(6.0)), "a", "i", Duration::from_secs(1))
            .unwrap();
        let json = serde_json::to_string(&fleet).unwrap();
        let back: FleetBreaker = serde_json::from_str(&json).unwrap();
        assert_eq!(back, fleet);
        assert!(json.contains("\"override\":null"));
    }

    #[test]
    fn more_severe_follows_severity() {
        assert_eq!(more_severe(State::Closed, State::Open), State::Open);
        assert_eq!(
            more_severe(State::ForcedOpen, State::Open),
            State::ForcedOpen
        );
        assert_eq!(more_severe(State::Disabled, State::Closed), State::Closed);
    }
}
