//! Endpoint selection (SPEC §8): which endpoint of an upstream gets the next request.
//!
//! The caller passes only the endpoints that may take traffic now (healthy, not ejected), each
//! as a [`Candidate`] with its load and weight; [`pick`] answers an index into that slice.
//!
//! - **`p2c_ewma`** (default): draw two distinct candidates at random and take the one with the
//!   lower `cost × (in_flight + 1) / weight`, where `cost` is the endpoint's peak-EWMA latency
//!   ([`PeakEwma`]). Peak EWMA jumps up at once on a slow answer and decays back slowly, so a
//!   slowing endpoint loses traffic before it times out; the in-flight factor spreads bursts.
//! - **`least_request`**: the same two draws, compared on `(in_flight + 1) / weight`.
//! - **`round_robin`**: the candidates in turn (`turn` is a counter the caller increments per
//!   request). A candidate whose weight is below 1 (slow start) takes its turn with probability
//!   `weight`, otherwise the turn passes on; after one lap without a taker the first candidate
//!   tried is used, so a request is never refused for weights alone.
//!
//! **Weight** is the product of health (1 for an endpoint that may take traffic) and the
//! slow-start ramp ([`slow_start_weight`]): an endpoint that becomes healthy again, or returns
//! from an ejection, starts at 10 % and ramps linearly to 100 % over `slow_start`.
//!
//! **Failures** feed the latency estimate too ([`PeakEwma::observe_failure`]): a connect error
//! is fast, and without a penalty the fastest endpoint would be a dead one.
//!
//! Nothing here reads a clock or a random generator of its own: `now` and a
//! [`RandomSource`] come in, so every choice is replayable.

use crate::random::RandomSource;
use crate::time::{duration_nanos, Timestamp};
use std::time::Duration;

/// The balancing algorithm (SPEC §8 `balancer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    /// Power of two choices over peak-EWMA latency × in-flight, weighted.
    #[default]
    P2cEwma,
    /// In turn, weighted by slow start.
    RoundRobin,
    /// Power of two choices over in-flight, weighted.
    LeastRequest,
}

impl Algorithm {
    /// The config spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Algorithm::P2cEwma => "p2c_ewma",
            Algorithm::RoundRobin => "round_robin",
            Algorithm::LeastRequest => "least_request",
        }
    }
}

/// The weight of an endpoint at its slowest in slow start.
pub const SLOW_START_FLOOR: f64 = 0.1;

/// One endpoint that may take traffic, as the balancer sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// Requests in flight to it now.
    pub in_flight: u32,
    /// Its peak-EWMA latency in nanoseconds ([`PeakEwma::cost`]).
    pub cost_nanos: f64,
    /// Health × slow start, in `(0, 1]`.
    pub weight: f64,
}

impl Candidate {
    fn weight(&self) -> f64 {
        if self.weight.is_finite() && self.weight > 0.0 {
            self.weight.min(1.0)
        } else {
            SLOW_START_FLOOR
        }
    }

    /// The p2c_ewma score: lower is better.
    pub fn ewma_score(&self) -> f64 {
        self.cost_nanos.max(1.0) * f64::from(self.in_flight.saturating_add(1)) / self.weight()
    }

    /// The least_request score: lower is better.
    pub fn request_score(&self) -> f64 {
        f64::from(self.in_flight.saturating_add(1)) / self.weight()
    }
}

/// Picks one of `candidates` (see the module doc); `None` only when the slice is empty.
/// Draws two uniform values for the power-of-two algorithms (one when there are exactly two
/// candidates, none for one), and one per weighted turn for round robin.
pub fn pick(
    algorithm: Algorithm,
    candidates: &[Candidate],
    turn: u64,
    rng: &dyn RandomSource,
) -> Option<usize> {
    match candidates.len() {
        0 => None,
        1 => Some(0),
        n => Some(match algorithm {
            Algorithm::P2cEwma => two_choices(n, rng, |i| candidates[i].ewma_score()),
            Algorithm::LeastRequest => two_choices(n, rng, |i| candidates[i].request_score()),
            Algorithm::RoundRobin => round_robin(candidates, turn, rng),
        }),
    }
}

/// Two distinct indices at random; the one with the lower score (the first on a tie).
fn two_choices(n: usize, rng: &dyn RandomSource, score: impl Fn(usize) -> f64) -> usize {
    let (a, b) = if n == 2 {
        // Only the order is random; it decides ties.
        if rng.next_unit() < 0.5 {
            (0, 1)
        } else {
            (1, 0)
        }
    } else {
        let a = index(rng.next_unit(), n);
        // A second draw over the n - 1 others keeps the pair distinct without looping.
        let mut b = index(rng.next_unit(), n - 1);
        if b >= a {
            b += 1;
        }
        (a, b)
    };
    if score(b) < score(a) {
        b
    } else {
        a
    }
}

fn round_robin(candidates: &[Candidate], turn: u64, rng: &dyn RandomSource) -> usize {
    let n = candidates.len();
    let start = (turn % n as u64) as usize;
    for step in 0..n {
        let i = (start + step) % n;
        let weight = candidates[i].weight();
        if weight >= 1.0 || rng.next_unit() < weight {
            return i;
        }
    }
    start
}

/// A uniform draw `u` in `[0, 1)` as an index below `n`.
fn index(u: f64, n: usize) -> usize {
    ((u * n as f64) as usize).min(n - 1)
}

/// The slow-start weight at `now` of an endpoint that became available at `since`: 10 % at
/// first, growing linearly to 100 % at `since + window`. A zero window (slow start off) or an
/// endpoint that has always been available (`since` is `None`) weighs 1.
pub fn slow_start_weight(since: Option<Timestamp>, now: Timestamp, window: Duration) -> f64 {
    let Some(since) = since else { return 1.0 };
    if window.is_zero() {
        return 1.0;
    }
    let elapsed = now.saturating_since(since).as_secs_f64();
    let fraction = (elapsed / window.as_secs_f64()).min(1.0);
    SLOW_START_FLOOR + (1.0 - SLOW_START_FLOOR) * fraction
}

/// The latency assumed for an endpoint with no answer yet.
pub const DEFAULT_COST: Duration = Duration::from_millis(10);

/// How fast old latencies are forgotten: an observation's influence falls to 1/e after this.
pub const DEFAULT_DECAY: Duration = Duration::from_secs(10);

/// The latency charged for a failed attempt at least (see [`PeakEwma::observe_failure`]).
pub const FAILURE_PENALTY: Duration = Duration::from_millis(500);

/// A peak-sensitive exponentially weighted moving average of latency (Finagle's and Linkerd's
/// "peak EWMA"): a sample above the estimate replaces it at once; a lower one is blended in
/// with weight `1 - exp(-elapsed / decay)`, so the estimate falls back over about `decay`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PeakEwma {
    cost_nanos: f64,
    stamp: Timestamp,
    decay_nanos: f64,
}

impl PeakEwma {
    /// An estimate starting at `initial` at `now`, forgetting over `decay`.
    pub fn new(initial: Duration, decay: Duration, now: Timestamp) -> Self {
        PeakEwma {
            cost_nanos: duration_nanos(initial) as f64,
            stamp: now,
            decay_nanos: (duration_nanos(decay) as f64).max(1.0),
        }
    }

    /// Folds in an answer that took `rtt`, observed at `now`.
    pub fn observe(&mut self, rtt: Duration, now: Timestamp) {
        let rtt = duration_nanos(rtt) as f64;
        if rtt > self.cost_nanos {
            self.cost_nanos = rtt;
        } else {
            let elapsed = now.saturating_since(self.stamp).as_nanos() as f64;
            let w = (-elapsed / self.decay_nanos).exp();
            self.cost_nanos = self.cost_nanos * w + rtt * (1.0 - w);
        }
        if now > self.stamp {
            self.stamp = now;
        }
    }

    /// Folds in a failed attempt: it counts as at least [`FAILURE_PENALTY`] and at least twice
    /// the current estimate, so failing endpoints look slow and lose traffic.
    pub fn observe_failure(&mut self, rtt: Duration, now: Timestamp) {
        let doubled = Duration::from_nanos((self.cost_nanos * 2.0).min(1e18) as u64);
        self.observe(rtt.max(FAILURE_PENALTY).max(doubled), now);
    }

    /// The estimate, in nanoseconds.
    pub fn cost(&self) -> f64 {
        self.cost_nanos
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::ScriptedRandom;

    const T0: Timestamp = Timestamp::from_nanos(1_000_000_000_000);

    fn c(in_flight: u32, cost_ms: u64, weight: f64) -> Candidate {
        Candidate {
            in_flight,
            cost_nanos: (cost_ms * 1_000_000) as f64,
            weight,
        }
    }

    #[test]
    fn p2c_prefers_the_faster_of_the_two_drawn() {
        let all = [c(0, 100, 1.0), c(0, 5, 1.0), c(0, 1, 1.0)];
        // draws 0.0 -> index 0; 0.0 over the others -> index 1: compares 0 and 1.
        let rng = ScriptedRandom::new([0.0, 0.0]);
        assert_eq!(pick(Algorithm::P2cEwma, &all, 0, &rng), Some(1));
    }

    #[test]
    fn p2c_weighs_in_flight_and_slow_start() {
        let busy = [c(9, 10, 1.0), c(0, 50, 1.0)];
        let rng = ScriptedRandom::new([0.1]);
        assert_eq!(pick(Algorithm::P2cEwma, &busy, 0, &rng), Some(1));
        let ramping = [c(0, 10, 0.1), c(0, 50, 1.0)];
        let rng = ScriptedRandom::new([0.1]);
        assert_eq!(pick(Algorithm::P2cEwma, &ramping, 0, &rng), Some(1));
    }

    #[test]
    fn least_request_ignores_latency() {
        let all = [c(3, 1, 1.0), c(1, 500, 1.0)];
        let rng = ScriptedRandom::new([0.9]);
        assert_eq!(pick(Algorithm::LeastRequest, &all, 0, &rng), Some(1));
    }

    #[test]
    fn round_robin_takes_turns_and_skips_ramping_endpoints_by_chance() {
        let all = [c(0, 1, 1.0), c(0, 1, 1.0), c(0, 1, 1.0)];
        let rng = ScriptedRandom::default();
        let picks: Vec<_> = (0..4)
            .map(|t| pick(Algorithm::RoundRobin, &all, t, &rng))
            .collect();
        assert_eq!(picks, [Some(0), Some(1), Some(2), Some(0)]);
        let ramping = [c(0, 1, 0.2), c(0, 1, 1.0)];
        let rng = ScriptedRandom::new([0.5]);
        assert_eq!(pick(Algorithm::RoundRobin, &ramping, 0, &rng), Some(1));
        let rng = ScriptedRandom::new([0.1]);
        assert_eq!(pick(Algorithm::RoundRobin, &ramping, 0, &rng), Some(0));
    }

    #[test]
    fn no_candidates_no_pick() {
        let rng = ScriptedRandom::default();
        assert_eq!(pick(Algorithm::P2cEwma, &[], 0, &rng), None);
        assert_eq!(pick(Algorithm::P2cEwma, &[c(5, 5, 1.0)], 0, &rng), Some(0));
        assert_eq!(rng.remaining(), 0);
        assert!(!rng.take_ran_dry());
    }

    #[test]
    fn slow_start_ramps_linearly_from_ten_percent() {
        let window = Duration::from_secs(30);
        assert_eq!(slow_start_weight(None, T0, window), 1.0);
        assert!((slow_start_weight(Some(T0), T0, window) - 0.1).abs() < 1e-9);
        let half = T0 + Duration::from_secs(15);
        assert!((slow_start_weight(Some(T0), half, window) - 0.55).abs() < 1e-9);
        let later = T0 + Duration::from_secs(60);
        assert_eq!(slow_start_weight(Some(T0), later, window), 1.0);
        assert_eq!(slow_start_weight(Some(T0), T0, Duration::ZERO), 1.0);
    }

    #[test]
    fn peak_ewma_jumps_up_and_decays_down() {
        let decay = Duration::from_secs(10);
        let mut e = PeakEwma::new(Duration::from_millis(10), decay, T0);
        e.observe(Duration::from_millis(200), T0);
        assert_eq!(e.cost(), 200_000_000.0);
        e.observe(Duration::from_millis(10), T0 + Duration::from_secs(10));
        let expected = 200e6 * (-1.0f64).exp() + 10e6 * (1.0 - (-1.0f64).exp());
        assert!((e.cost() - expected).abs() < 1.0, "{}", e.cost());
        let mut f = PeakEwma::new(Duration::from_millis(10), decay, T0);
        f.observe_failure(Duration::from_millis(1), T0);
        assert_eq!(f.cost(), duration_nanos(FAILURE_PENALTY) as f64);
    }
}
