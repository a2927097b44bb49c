//! The live status while a drill runs: a redrawn line on a terminal, a line every five
//! seconds otherwise (CI logs).

use super::observe::Observed;
use super::slo::secs;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Counters the traffic collector updates for the status line.
#[derive(Debug, Default)]
pub struct Tally {
    /// Answers recorded.
    pub requests: AtomicU64,
    /// Of which succeeded (degraded included).
    pub succeeded: AtomicU64,
    /// Of which degraded.
    pub degraded: AtomicU64,
}

/// Draws the status until `done` is set.
pub async fn show(
    duration: Duration,
    start: Instant,
    tally: Arc<Tally>,
    observed: Arc<Mutex<Observed>>,
    done: Arc<std::sync::atomic::AtomicBool>,
) {
    let terminal = std::io::stderr().is_terminal();
    let every = if terminal {
        Duration::from_millis(250)
    } else {
        Duration::from_secs(5)
    };
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    while !done.load(Ordering::Relaxed) {
        tick.tick().await;
        let line = status(duration, start.elapsed(), &tally, &observed);
        let mut err = std::io::stderr().lock();
        if terminal {
            let _ = write!(err, "\r\x1b[2K{line}");
        } else {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
    }
    if terminal {
        let _ = write!(std::io::stderr(), "\r\x1b[2K");
    }
}

fn status(
    duration: Duration,
    elapsed: Duration,
    tally: &Tally,
    observed: &Mutex<Observed>,
) -> String {
    const WIDTH: usize = 24;
    let fraction = (elapsed.as_secs_f64() / duration.as_secs_f64()).clamp(0.0, 1.0);
    let filled = (fraction * WIDTH as f64).round() as usize;
    let bar = format!("{}{}", "#".repeat(filled), ".".repeat(WIDTH - filled));
    let requests = tally.requests.load(Ordering::Relaxed);
    let succeeded = tally.succeeded.load(Ordering::Relaxed);
    let degraded = tally.degraded.load(Ordering::Relaxed);
    let rate = if requests == 0 {
        100.0
    } else {
        succeeded as f64 * 100.0 / requests as f64
    };
    let observed = observed.lock().unwrap_or_else(|e| e.into_inner());
    let breakers: Vec<String> = observed
        .history
        .iter()
        .filter_map(|(key, changes)| changes.last().map(|(_, s)| format!("{key} {s}")))
        .collect();
    let admin = match &observed.last_error {
        Some(e) => format!(" | admin: {e}"),
        None => String::new(),
    };
    format!(
        "[{bar}] {}/{} | {requests} answers, {rate:.1}% ok, {degraded} degraded | {}{admin}",
        secs(elapsed.min(duration)),
        secs(duration),
        breakers.join(", ")
    )
}
