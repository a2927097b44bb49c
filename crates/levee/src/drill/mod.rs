//! `levee drill FILE`: a scripted partial outage against a running system, judged by SLOs.
//!
//! Traffic streams run open loop at their rates ([`traffic`]); the timeline sets and heals
//! faults through the admin API of the levee in front of the dependency ([`timeline`]);
//! breaker states are read from the same API every `poll` ([`observe`]); at the end every
//! SLO is judged over what was recorded ([`slo`]) and the report is printed ([`report`]).
//! The exit status is 0 when every SLO held and every event succeeded, 1 when not, 2 when
//! the file is wrong.

mod client;
mod observe;
mod progress;
mod report;
pub mod scenario;
mod slo;
mod timeline;
mod traffic;

pub use report::Report;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

/// Options of `levee drill`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The drill scenario (YAML).
    pub file: PathBuf,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// No live status line.
    #[arg(long)]
    pub quiet: bool,
}

/// How `levee drill` ended.
pub enum Outcome {
    /// Every SLO held.
    Passed,
    /// An SLO failed or an event could not be carried out.
    Failed,
}

/// Runs the drill of `args.file`; `Err` when the file is wrong or unreadable.
pub fn run(args: &Args) -> Result<Outcome, String> {
    let file = args.file.display().to_string();
    let text = std::fs::read_to_string(&args.file)
        .map_err(|e| format!("{file}: cannot read the drill file: {e}"))?;
    let scenario = scenario::load(&text, &file, &|name| std::env::var(name).ok())?;
    let token = scenario
        .admin
        .as_ref()
        .and_then(|a| std::env::var(&a.token_env).ok())
        .filter(|t| !t.is_empty());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let report = runtime.block_on(execute(scenario, token, !args.quiet));
    print!("{}", report::render(&report));
    if let Some(path) = &args.json {
        write_json(&report, path)?;
    }
    Ok(if report.passed {
        Outcome::Passed
    } else {
        Outcome::Failed
    })
}

/// Writes the report as pretty JSON.
pub fn write_json(report: &Report, path: &std::path::Path) -> Result<(), String> {
    let json = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
    std::fs::write(path, json + "\n")
        .map_err(|e| format!("cannot write the JSON report to {}: {e}", path.display()))
}

/// Runs a checked scenario to its end and returns the report. `token` authorises the admin
/// API calls of the timeline.
pub async fn execute(
    scenario: scenario::Scenario,
    token: Option<String>,
    show_progress: bool,
) -> Report {
    let client = client::new();
    let start = Instant::now();
    let observed = Arc::new(Mutex::new(observe::Observed::default()));
    let watcher = scenario.admin.as_ref().map(|admin| {
        tokio::spawn(observe::watch(
            client.clone(),
            admin.url.clone(),
            scenario.poll,
            start,
            scenario.duration,
            observed.clone(),
        ))
    });
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    let events = tokio::spawn(timeline::run(
        scenario.clone(),
        client.clone(),
        token,
        start,
        done_tx,
    ));
    let tally = Arc::new(progress::Tally::default());
    let finished = Arc::new(AtomicBool::new(false));
    let status = show_progress.then(|| {
        tokio::spawn(progress::show(
            scenario.duration,
            start,
            tally.clone(),
            observed.clone(),
            finished.clone(),
        ))
    });

    let mut samples = Vec::new();
    let mut incoming = traffic::start(&scenario, client, start);
    while let Some(sample) = incoming.recv().await {
        tally.requests.fetch_add(1, Ordering::Relaxed);
        if sample.succeeded() {
            tally.succeeded.fetch_add(1, Ordering::Relaxed);
            if sample.degraded {
                tally.degraded.fetch_add(1, Ordering::Relaxed);
            }
        }
        samples.push(sample);
    }
    let _ = events.await;
    if let Some(watcher) = watcher {
        let _ = watcher.await;
    }
    finished.store(true, Ordering::Relaxed);
    if let Some(status) = status {
        let _ = status.await;
    }
    let mut done = Vec::new();
    while let Ok(event) = done_rx.try_recv() {
        done.push(event);
    }
    let history = observed
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .history
        .clone();
    let verdicts = slo::judge(&scenario, &samples, &history);
    report::build(&scenario, &samples, &done, &history, verdicts)
}

/// The report as text (for `levee demo`).
pub fn render(report: &Report) -> String {
    report::render(report)
}
