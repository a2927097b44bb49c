//! `levee simulate`: one upstream, one scripted outage, the real policy engine.
//!
//! Requests arrive at a fixed rate on a virtual clock. Each goes through the bulkhead, the
//! breaker and (on a retryable failure) the retry decision with its budget, exactly as the
//! proxy will wire them. The upstream is a model with four phases — healthy, failing with 503,
//! slow, healthy again — so the output shows the breaker opening, probing and closing, the
//! budget capping retry storms and the bulkhead shedding sheddable traffic first when the
//! upstream slows down. Deterministic for a given `--seed`.

use levee_core::breaker::{BreakerConfig, CircuitBreaker, State, Transition};
use levee_core::budget::RetryBudget;
use levee_core::bulkhead::{Acquire, Bulkhead, BulkheadConfig, BulkheadPermit};
use levee_core::outcome::{classify, AttemptResult, StatusSet};
use levee_core::random::{RandomSource, SplitMix64};
use levee_core::retry::{decide, RetryConfig, RetryDecision, RetryInput};
use levee_core::time::Timestamp;
use levee_core::{Criticality, Outcome};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

/// Options of `levee simulate`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Requests per second sent to the upstream.
    #[arg(long, default_value_t = 200)]
    rps: u32,
    /// Seed of the random source (jitter and the model's noise).
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Print one JSON object per second instead of a table.
    #[arg(long)]
    json: bool,
}

/// The upstream's behaviour over time.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Healthy,
    Failing,
    Slow,
}

fn phase_at(second: u64) -> Phase {
    match second {
        10..=24 => Phase::Failing,
        35..=44 => Phase::Slow,
        _ => Phase::Healthy,
    }
}

const SECONDS: u64 = 60;

#[derive(Default, Clone)]
struct Tally {
    ok: u64,
    failed: u64,
    breaker_rejected: u64,
    bulkhead_rejected: BTreeMap<Criticality, u64>,
    retries: u64,
    retries_denied: u64,
    upstream_calls: u64,
}

/// A call in flight: its bulkhead slot is held until the upstream answers.
struct InFlight {
    done_at: Timestamp,
    _slot: BulkheadPermit,
}

pub fn run(args: &Args, out: &mut dyn Write) -> Result<(), String> {
    if args.rps == 0 || args.rps > 100_000 {
        return Err(format!(
            "--rps {} is out of range: use 1 to 100000",
            args.rps
        ));
    }
    let random: Arc<dyn RandomSource> = Arc::new(SplitMix64::new(args.seed));
    let breaker = CircuitBreaker::new("inventory", BreakerConfig::default(), random.clone())?;
    let bulkhead = Bulkhead::new(BulkheadConfig {
        max_concurrent: 64,
        ..BulkheadConfig::default()
    })?;
    let retry = RetryConfig {
        max_attempts: 3,
        ..RetryConfig::default()
    };
    retry.validate()?;
    let start = Timestamp::from_nanos(1_000_000_000_000);
    let budget = RetryBudget::new(retry.budget.clone(), start);
    let failures = StatusSet::default();
    let io = |e: std::io::Error| e.to_string();

    if !args.json {
        writeln!(
            out,
            "levee simulate: upstream `inventory` at {} req/s for {SECONDS}s (seed {})",
            args.rps, args.seed
        )
        .map_err(io)?;
        writeln!(out, "phases: 0-9s healthy, 10-24s every call 503, 25-34s healthy, 35-44s 2 s latency, 45-59s healthy\n").map_err(io)?;
        writeln!(
            out,
            "{:>4} {:<8} {:<10} {:>6} {:>6} {:>8} {:>8} {:>7} {:>7} {:>10}",
            "t",
            "upstream",
            "breaker",
            "ok",
            "failed",
            "br_rej",
            "bh_rej",
            "retries",
            "denied",
            "in_flight"
        )
        .map_err(io)?;
    }
    let step = Duration::from_nanos(1_000_000_000 / u64::from(args.rps));
    let mut in_flight: Vec<InFlight> = Vec::new();
    let mut transitions: Vec<Transition> = Vec::new();
    let mut total = Tally::default();
    let mut n: u64 = 0;
    for second in 0..SECONDS {
        let mut tally = Tally::default();
        let phase = phase_at(second);
        for _ in 0..args.rps {
            let now = start + step * u32::try_from(n).unwrap_or(u32::MAX);
            n += 1;
            in_flight.retain(|c| c.done_at > now);
            // One request in five is sheddable, one in five critical.
            let class = match n % 5 {
                0 => Criticality::Sheddable,
                1 => Criticality::Critical,
                _ => Criticality::Standard,
            };
            let slot = match bulkhead.try_acquire(class, now) {
                Acquire::Permitted(permit) => permit,
                _ => {
                    *tally.bulkhead_rejected.entry(class).or_default() += 1;
                    continue;
                }
            };
            budget.deposit(now);
            let mut attempts = 0;
            let mut previous_backoff = None;
            let mut at = now;
            loop {
                let acquired = breaker.acquire(at);
                transitions.extend(acquired.transition);
                let Ok(permit) = acquired.result else {
                    tally.breaker_rejected += 1;
                    break;
                };
                attempts += 1;
                tally.upstream_calls += 1;
                let (result, latency) = match phase {
                    Phase::Healthy => (
                        AttemptResult::Status(200),
                        Duration::from_millis(20 + (random.next_unit() * 10.0) as u64),
                    ),
                    Phase::Failing => (AttemptResult::Status(503), Duration::from_millis(5)),
                    Phase::Slow => (AttemptResult::Status(200), Duration::from_secs(2)),
                };
                let outcome = classify(result, &failures);
                transitions.extend(breaker.record(permit, outcome, latency, at + latency));
                if outcome == Outcome::Success {
                    tally.ok += 1;
                    in_flight.push(InFlight {
                        done_at: at + latency,
                        _slot: slot,
                    });
                    break;
                }
                let mut input = RetryInput::new(attempts, result, true);
                input.breaker_open = breaker.state() != State::Closed;
                input.previous_backoff = previous_backoff;
                match decide(&retry, &input, &budget, at + latency, random.as_ref()) {
                    RetryDecision::Retry { after, backoff } => {
                        tally.retries += 1;
                        previous_backoff = Some(backoff);
                        at = at + latency + after;
                    }
                    RetryDecision::GiveUp { reason } => {
                        if reason.as_str() == "retry_budget_exhausted" {
                            tally.retries_denied += 1;
                        }
                        tally.failed += 1;
                        break;
                    }
                }
            }
        }
        let shed: u64 = tally.bulkhead_rejected.values().sum();
        if args.json {
            let line = serde_json::json!({
                "t": second, "upstream": format!("{phase:?}").to_lowercase(), "breaker": breaker.state().as_str(),
                "ok": tally.ok, "failed": tally.failed, "breaker_rejected": tally.breaker_rejected,
                "bulkhead_rejected": tally.bulkhead_rejected.iter().map(|(c, n)| (c.as_str(), *n)).collect::<BTreeMap<_, _>>(),
                "retries": tally.retries, "retries_denied": tally.retries_denied, "upstream_calls": tally.upstream_calls,
                "in_flight": bulkhead.in_flight(),
            });
            writeln!(out, "{line}").map_err(io)?;
        } else {
            writeln!(
                out,
                "{:>3}s {:<8} {:<10} {:>6} {:>6} {:>8} {:>8} {:>7} {:>7} {:>10}",
                second,
                format!("{phase:?}").to_lowercase(),
                breaker.state().as_str(),
                tally.ok,
                tally.failed,
                tally.breaker_rejected,
                shed,
                tally.retries,
                tally.retries_denied,
                bulkhead.in_flight()
            )
            .map_err(io)?;
        }
        total.ok += tally.ok;
        total.failed += tally.failed;
        total.breaker_rejected += tally.breaker_rejected;
        total.retries += tally.retries;
        total.retries_denied += tally.retries_denied;
        total.upstream_calls += tally.upstream_calls;
        for (c, k) in tally.bulkhead_rejected {
            *total.bulkhead_rejected.entry(c).or_default() += k;
        }
    }
    if !args.json {
        writeln!(out, "\nbreaker transitions:").map_err(io)?;
        for t in &transitions {
            writeln!(
                out,
                "  {:>8.3}s  {} -> {}  ({})",
                (t.at - start).as_secs_f64(),
                t.from,
                t.to,
                t.reason
            )
            .map_err(io)?;
        }
        let shed = |c| total.bulkhead_rejected.get(&c).copied().unwrap_or(0);
        writeln!(out, "\ntotals: {} ok, {} failed, {} rejected by the open breaker, {} upstream calls, {} retries ({} denied by the budget)",
            total.ok, total.failed, total.breaker_rejected, total.upstream_calls, total.retries, total.retries_denied).map_err(io)?;
        writeln!(
            out,
            "bulkhead shed while the upstream was slow: {} sheddable, {} standard, {} critical",
            shed(Criticality::Sheddable),
            shed(Criticality::Standard),
            shed(Criticality::Critical)
        )
        .map_err(io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn simulate(rps: u32) -> String {
        let mut out = Vec::new();
        run(
            &Args {
                rps,
                seed: 7,
                json: false,
            },
            &mut out,
        )
        .expect("simulation runs");
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn the_outage_opens_the_breaker_and_recovery_closes_it() {
        let text = simulate(200);
        assert!(text.contains("closed -> open  (failure_rate)"), "{text}");
        assert!(
            text.contains("half_open -> closed  (probes_succeeded)"),
            "{text}"
        );
    }

    #[test]
    fn the_slow_phase_sheds_sheddable_before_critical() {
        let text = simulate(200);
        let line = text
            .lines()
            .find(|l| l.starts_with("bulkhead shed"))
            .expect("summary line");
        let numbers: Vec<u64> = line
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|w| w.parse().ok())
            .collect();
        let (sheddable, critical) = (numbers[0], numbers[2]);
        assert!(sheddable > critical, "{line}");
    }

    #[test]
    fn rejects_an_impossible_rate() {
        let err = run(
            &Args {
                rps: 0,
                seed: 1,
                json: false,
            },
            &mut Vec::new(),
        )
        .unwrap_err();
        assert!(err.contains("--rps"), "{err}");
    }
}
