//! Judging the SLOs over what the drill recorded. Pure: samples and breaker histories in,
//! verdicts out.

use super::observe::{first_in, History};
use super::scenario::{Scenario, Slo};
use super::traffic::Sample;
use serde::Serialize;
use std::time::Duration;

/// One SLO's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// The SLO's name, or its description.
    pub name: String,
    /// `success_rate`, `breaker_open`, `recovered` or `fallback_served`.
    pub kind: &'static str,
    /// Whether it held.
    pub passed: bool,
    /// What was observed, in words.
    pub observed: String,
}

/// `12.4s` with one decimal.
pub fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// Every SLO of the scenario, in order.
pub fn judge(scenario: &Scenario, samples: &[Sample], breakers: &History) -> Vec<Verdict> {
    scenario
        .slos
        .iter()
        .map(|slo| one(scenario, slo, samples, breakers))
        .collect()
}

fn stream_index(scenario: &Scenario, name: &Option<String>) -> Option<usize> {
    name.as_ref()
        .and_then(|n| scenario.traffic.iter().position(|t| &t.name == n))
}

fn one(scenario: &Scenario, slo: &Slo, samples: &[Sample], breakers: &History) -> Verdict {
    let named = |description: String| slo.name.clone().unwrap_or(description);
    if let Some(r) = &slo.success_rate {
        let stream = stream_index(scenario, &r.traffic);
        let chosen: Vec<&Sample> = samples
            .iter()
            .filter(|s| stream.is_none_or(|i| s.stream == i))
            .filter(|s| r.criticality.is_none_or(|c| s.criticality == c))
            .filter(|s| r.from.is_none_or(|from| s.sent >= from))
            .filter(|s| r.to.is_none_or(|to| s.sent < to))
            .collect();
        let ok = chosen.iter().filter(|s| s.succeeded()).count();
        let mut scope = Vec::new();
        if let Some(c) = r.criticality {
            scope.push(c.as_str().to_string());
        }
        if let Some(t) = &r.traffic {
            scope.push(t.clone());
        }
        let scope = if scope.is_empty() {
            "all".to_string()
        } else {
            scope.join(" ")
        };
        let description = format!("{scope} success ≥ {}%", r.min);
        if chosen.is_empty() {
            return Verdict {
                name: named(description),
                kind: "success_rate",
                passed: false,
                observed: "no request matched".into(),
            };
        }
        let rate = ok as f64 * 100.0 / chosen.len() as f64;
        return Verdict {
            name: named(description),
            kind: "success_rate",
            passed: rate >= r.min,
            observed: format!("{rate:.2}% ({ok} of {})", chosen.len()),
        };
    }
    if let Some(b) = &slo.breaker_open {
        let description = format!(
            "{} opens within {} of {}",
            b.endpoint,
            levee_core::duration::format(b.within),
            secs(b.after)
        );
        let changes = breakers.get(&b.endpoint).map(Vec::as_slice).unwrap_or(&[]);
        let opened = first_in(changes, b.after, b.after + b.within, |s| {
            s == "open" || s == "forced_open"
        });
        return Verdict {
            name: named(description),
            kind: "breaker_open",
            passed: opened.is_some(),
            observed: match opened {
                Some(at) => format!("open at {} (+{})", secs(at), secs(at - b.after)),
                None if changes.is_empty() => format!("no breaker `{}` was seen", b.endpoint),
                None => format!("not open in the window; {}", path(changes)),
            },
        };
    }
    if let Some(r) = &slo.recovered {
        let description = format!(
            "{} recovers within {} of {}",
            r.endpoint,
            levee_core::duration::format(r.within),
            secs(r.after)
        );
        let end = r.after + r.within;
        let changes = breakers.get(&r.endpoint).map(Vec::as_slice).unwrap_or(&[]);
        let closed = first_in(changes, r.after, end, |s| s == "closed");
        let stream = stream_index(scenario, &r.traffic);
        let served = closed.and_then(|closed| {
            samples
                .iter()
                .filter(|s| stream.is_none_or(|i| s.stream == i))
                .filter(|s| s.sent >= closed && s.sent <= end && s.normal())
                .map(|s| s.sent)
                .min()
        });
        let passed = closed.is_some() && (stream.is_none() || served.is_some());
        let observed = match (closed, served) {
            (None, _) if changes.is_empty() => format!("no breaker `{}` was seen", r.endpoint),
            (None, _) => format!("not closed in the window; {}", path(changes)),
            (Some(at), Some(first)) => format!(
                "closed at {} (+{}), normal answers from {}",
                secs(at),
                secs(at - r.after),
                secs(first)
            ),
            (Some(at), None) if stream.is_some() => format!(
                "closed at {} but no normal answer of {} before {}",
                secs(at),
                r.traffic.as_deref().unwrap_or(""),
                secs(end)
            ),
            (Some(at), None) => format!("closed at {} (+{})", secs(at), secs(at - r.after)),
        };
        return Verdict {
            name: named(description),
            kind: "recovered",
            passed,
            observed,
        };
    }
    if let Some(f) = &slo.fallback_served {
        let stream = stream_index(scenario, &f.traffic);
        let degraded = samples
            .iter()
            .filter(|s| stream.is_none_or(|i| s.stream == i) && s.degraded && s.succeeded())
            .count() as u64;
        let scope = f.traffic.clone().unwrap_or_else(|| "any stream".into());
        return Verdict {
            name: named(format!("fallback served on {scope} (≥ {})", f.min)),
            kind: "fallback_served",
            passed: degraded >= f.min,
            observed: format!("{degraded} degraded answers"),
        };
    }
    Verdict {
        name: named("empty SLO".into()),
        kind: "none",
        passed: false,
        observed: "the SLO asserts nothing".into(),
    }
}

/// `closed 0.1s → open 10.4s → closed 30.2s`.
pub fn path(changes: &[(Duration, String)]) -> String {
    changes
        .iter()
        .map(|(at, state)| format!("{state} {}", secs(*at)))
        .collect::<Vec<_>>()
        .join(" → ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drill::scenario::load;
    use levee_core::Criticality;

    fn scenario() -> Scenario {
        load(
            "name: t
duration: 40s
target: http://x
admin: {url: http://a}
traffic:
  - {name: item, path: /i, rate: 10/s}
slos:
  - {success_rate: {min: 99%, criticality: critical}}
  - {breaker_open: {endpoint: inventory, after: 10s, within: 2s}}
  - {recovered: {endpoint: inventory, after: 25s, within: 10s, traffic: item}}
  - {fallback_served: {traffic: item, min: 2}}
",
            "t.yaml",
            &|_| None,
        )
        .unwrap()
    }

    fn sample(sent: f64, class: Criticality, status: Option<u16>, degraded: bool) -> Sample {
        Sample {
            stream: 0,
            criticality: class,
            sent: Duration::from_secs_f64(sent),
            latency: Duration::from_millis(1),
            status,
            degraded,
            error: None,
        }
    }

    fn history(changes: &[(f64, &str)]) -> History {
        let mut h = History::new();
        h.insert(
            "inventory".into(),
            changes
                .iter()
                .map(|(t, s)| (Duration::from_secs_f64(*t), s.to_string()))
                .collect(),
        );
        h
    }

    #[test]
    fn a_good_outage_passes_every_slo() {
        let mut samples: Vec<Sample> = (0..100)
            .map(|i| sample(i as f64 * 0.4, Criticality::Critical, Some(200), false))
            .collect();
        samples.push(sample(12.0, Criticality::Critical, Some(200), true));
        samples.push(sample(13.0, Criticality::Critical, Some(200), true));
        samples.push(sample(14.0, Criticality::Sheddable, Some(503), false));
        let h = history(&[
            (0.1, "closed"),
            (10.6, "open"),
            (26.0, "half_open"),
            (26.5, "closed"),
        ]);
        let verdicts = judge(&scenario(), &samples, &h);
        assert!(verdicts.iter().all(|v| v.passed), "{verdicts:#?}");
        assert_eq!(verdicts[0].observed, "100.00% (102 of 102)");
        assert_eq!(verdicts[1].observed, "open at 10.6s (+0.6s)");
        assert_eq!(
            verdicts[2].observed,
            "closed at 26.5s (+1.5s), normal answers from 26.8s"
        );
    }

    #[test]
    fn each_slo_can_fail() {
        let samples = vec![
            sample(1.0, Criticality::Critical, Some(200), false),
            sample(11.0, Criticality::Critical, Some(503), false),
            sample(12.0, Criticality::Critical, None, false),
        ];
        let h = history(&[(0.1, "closed"), (13.0, "open")]);
        let verdicts = judge(&scenario(), &samples, &h);
        assert!(verdicts.iter().all(|v| !v.passed), "{verdicts:#?}");
        assert_eq!(verdicts[0].observed, "33.33% (1 of 3)");
        assert_eq!(
            verdicts[1].observed,
            "not open in the window; closed 0.1s → open 13.0s"
        );
        assert_eq!(verdicts[3].observed, "0 degraded answers");
        let none = judge(&scenario(), &[], &History::new());
        assert_eq!(none[0].observed, "no request matched");
        assert_eq!(none[1].observed, "no breaker `inventory` was seen");
    }
}
