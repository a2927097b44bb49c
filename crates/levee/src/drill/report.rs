//! The drill's report: a table for people, JSON for machines.

use super::observe::History;
use super::scenario::Scenario;
use super::slo::{path, Verdict};
use super::timeline::Done;
use super::traffic::Sample;
use levee_core::Criticality;
use serde::Serialize;
use std::fmt::Write as _;
use std::time::Duration;

/// Everything a drill found.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The scenario's name.
    pub name: String,
    /// Seconds of traffic.
    pub duration_s: f64,
    /// Per stream, then per class within it.
    pub traffic: Vec<StreamStats>,
    /// What the timeline did.
    pub timeline: Vec<EventReport>,
    /// Breaker state changes per endpoint key: `[[seconds, state], ...]`.
    pub breakers: std::collections::BTreeMap<String, Vec<(f64, String)>>,
    /// Every SLO's verdict.
    pub slos: Vec<Verdict>,
    /// Every SLO held and every event succeeded.
    pub passed: bool,
}

/// Counts and latencies of one stream (or one class of it).
#[derive(Debug, Serialize)]
pub struct StreamStats {
    /// The stream's name.
    pub name: String,
    /// The class, for per-class rows.
    pub criticality: Option<Criticality>,
    /// Requests sent.
    pub requests: u64,
    /// Answered normally.
    pub ok: u64,
    /// Answered with `levee-degraded`.
    pub degraded: u64,
    /// 5xx, timeouts, connection errors.
    pub failed: u64,
    /// `(ok + degraded) / requests`, in percent.
    pub success_percent: f64,
    /// Median latency, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile latency, milliseconds.
    pub p99_ms: f64,
    /// The most frequent failure, when any failed.
    pub top_failure: Option<String>,
}

/// One timeline event as it ran.
#[derive(Debug, Serialize)]
pub struct EventReport {
    /// Seconds from the start.
    pub at_s: f64,
    /// What it did.
    pub what: String,
    /// `null`, or why it failed.
    pub error: Option<String>,
}

/// Builds the report.
pub fn build(
    scenario: &Scenario,
    samples: &[Sample],
    done: &[Done],
    breakers: &History,
    slos: Vec<Verdict>,
) -> Report {
    let mut traffic = Vec::new();
    for (index, stream) in scenario.traffic.iter().enumerate() {
        let of_stream: Vec<&Sample> = samples.iter().filter(|s| s.stream == index).collect();
        traffic.push(stats(&stream.name, None, &of_stream));
        if stream.criticality.len() > 1 {
            for class in Criticality::ALL.iter().rev() {
                let of_class: Vec<&Sample> = of_stream
                    .iter()
                    .copied()
                    .filter(|s| s.criticality == *class)
                    .collect();
                if !of_class.is_empty() {
                    traffic.push(stats(&stream.name, Some(*class), &of_class));
                }
            }
        }
    }
    let timeline: Vec<EventReport> = done
        .iter()
        .map(|d| EventReport {
            at_s: d.at.as_secs_f64(),
            what: d.what.clone(),
            error: d.result.clone().err(),
        })
        .collect();
    let events_ok =
        timeline.iter().all(|e| e.error.is_none()) && done.len() == scenario.timeline.len();
    let passed = events_ok && slos.iter().all(|v| v.passed);
    Report {
        name: scenario.name.clone(),
        duration_s: scenario.duration.as_secs_f64(),
        traffic,
        timeline,
        breakers: breakers
            .iter()
            .map(|(k, changes)| {
                (
                    k.clone(),
                    changes
                        .iter()
                        .map(|(t, s)| (t.as_secs_f64(), s.clone()))
                        .collect(),
                )
            })
            .collect(),
        slos,
        passed,
    }
}

fn stats(name: &str, criticality: Option<Criticality>, samples: &[&Sample]) -> StreamStats {
    let requests = samples.len() as u64;
    let ok = samples.iter().filter(|s| s.normal()).count() as u64;
    let degraded = samples
        .iter()
        .filter(|s| s.succeeded() && s.degraded)
        .count() as u64;
    let failed = requests - ok - degraded;
    let mut latencies: Vec<Duration> = samples.iter().map(|s| s.latency).collect();
    latencies.sort();
    let quantile = |q: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let rank = ((q * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len());
        latencies[rank - 1].as_secs_f64() * 1000.0
    };
    let mut failures: std::collections::BTreeMap<String, u64> = Default::default();
    for s in samples.iter().filter(|s| !s.succeeded()) {
        let kind = match (&s.status, &s.error) {
            (Some(status), _) => status.to_string(),
            (None, Some(e)) => e.clone(),
            (None, None) => "unknown".into(),
        };
        *failures.entry(kind).or_default() += 1;
    }
    let top_failure = failures
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .map(|(kind, n)| format!("{kind} ×{n}"));
    StreamStats {
        name: name.to_string(),
        criticality,
        requests,
        ok,
        degraded,
        failed,
        success_percent: if requests == 0 {
            0.0
        } else {
            (ok + degraded) as f64 * 100.0 / requests as f64
        },
        p50_ms: quantile(0.50),
        p99_ms: quantile(0.99),
        top_failure,
    }
}

/// The report as text tables.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "\ndrill: {} ({}s)\n", report.name, report.duration_s);
    let _ = writeln!(
        out,
        "{:<24} {:>8} {:>8} {:>9} {:>7} {:>9} {:>9} {:>9}  top failure",
        "traffic", "requests", "ok", "degraded", "failed", "success", "p50", "p99"
    );
    for t in &report.traffic {
        let name = match t.criticality {
            Some(c) => format!("  {}", c.as_str()),
            None => t.name.clone(),
        };
        let _ = writeln!(
            out,
            "{:<24} {:>8} {:>8} {:>9} {:>7} {:>8.2}% {:>7.1}ms {:>7.1}ms  {}",
            name,
            t.requests,
            t.ok,
            t.degraded,
            t.failed,
            t.success_percent,
            t.p50_ms,
            t.p99_ms,
            t.top_failure.as_deref().unwrap_or("")
        );
    }
    if !report.timeline.is_empty() {
        let _ = writeln!(out, "\ntimeline");
        for e in &report.timeline {
            let status = match &e.error {
                None => "ok".to_string(),
                Some(error) => format!("FAILED: {error}"),
            };
            let _ = writeln!(out, "  {:>6.1}s  {:<44} {status}", e.at_s, e.what);
        }
    }
    if !report.breakers.is_empty() {
        let _ = writeln!(out, "\nbreakers");
        for (key, changes) in &report.breakers {
            let changes: Vec<(Duration, String)> = changes
                .iter()
                .map(|(t, s)| (Duration::from_secs_f64(*t), s.clone()))
                .collect();
            let _ = writeln!(out, "  {key}: {}", path(&changes));
        }
    }
    if !report.slos.is_empty() {
        let _ = writeln!(out, "\nSLOs");
        for v in &report.slos {
            let mark = if v.passed { "PASS" } else { "FAIL" };
            let _ = writeln!(out, "  {mark}  {:<44} {}", v.name, v.observed);
        }
    }
    let held = report.slos.iter().filter(|v| v.passed).count();
    let _ = writeln!(
        out,
        "\nresult: {} ({held} of {} SLOs held{})",
        if report.passed { "PASS" } else { "FAIL" },
        report.slos.len(),
        if report.timeline.iter().any(|e| e.error.is_some()) {
            "; a timeline event failed"
        } else {
            ""
        }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drill::scenario::load;

    #[test]
    fn counts_latencies_and_verdict() {
        let scenario = load(
            "name: t\nduration: 10s\ntarget: http://x\ntraffic:\n  - {name: item, path: /, rate: 1/s, criticality: {critical: 50, sheddable: 50}}\n",
            "t.yaml",
            &|_| None,
        )
        .unwrap();
        let mk = |ms: u64, class, status: Option<u16>, degraded| Sample {
            stream: 0,
            criticality: class,
            sent: Duration::from_millis(ms * 10),
            latency: Duration::from_millis(ms),
            status,
            degraded,
            error: status.is_none().then(|| "no answer within 5s".to_string()),
        };
        let samples = vec![
            mk(1, Criticality::Critical, Some(200), false),
            mk(2, Criticality::Critical, Some(200), true),
            mk(3, Criticality::Sheddable, Some(503), false),
            mk(4, Criticality::Sheddable, None, false),
        ];
        let report = build(&scenario, &samples, &[], &History::new(), vec![]);
        let all = &report.traffic[0];
        assert_eq!(
            (all.requests, all.ok, all.degraded, all.failed),
            (4, 1, 1, 2)
        );
        assert_eq!(all.success_percent, 50.0);
        assert_eq!((all.p50_ms, all.p99_ms), (2.0, 4.0));
        assert_eq!(report.traffic[1].criticality, Some(Criticality::Critical));
        assert_eq!(report.traffic[1].success_percent, 100.0);
        assert!(report.passed, "no SLO and no event: nothing failed");
        let text = render(&report);
        assert!(text.contains("result: PASS (0 of 0 SLOs held)"), "{text}");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["traffic"][0]["failed"], 2);
    }
}
