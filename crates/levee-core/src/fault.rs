//! Fault injection: which fault, if any, one attempt gets.
//!
//! A [`FaultSpec`] is a route's `fault` block (and the body of the admin API's
//! `PUT /api/faults/{route}`); [`decide`] turns it and draws from a [`RandomSource`] into a
//! [`FaultDecision`] for one attempt. The proxy applies the decision *in place of the upstream
//! call*, so every policy (outlier detection, breaker, retries, budget, fallbacks, metrics)
//! sees an injected failure exactly as it would see a real one.
//!
//! # Draws
//!
//! - `delay` is independent of the rest (as in Envoy, where delay and abort are evaluated
//!   separately): one draw, `draw × 100 < delay.percent`. A delayed attempt then goes on to
//!   the real call, or to one of the other faults.
//! - `abort`, `reset` and `hang` exclude each other, because an attempt can end in only one
//!   way. One draw `x = draw × 100` is compared with the cumulative percentages, in the order
//!   abort, reset, hang: `x < abort` aborts, `x < abort + reset` resets, `x < abort + reset +
//!   hang` hangs. Their sum must therefore be at most 100 ([`FaultSpec::problems`] says so).
//! - A draw is taken only for a part that is configured, so a spec with only `abort` uses one
//!   draw per attempt and conformance-style tests can script every draw.
//!
//! `percent: 0` never fires and `percent: 100` always does (a draw is in `[0, 1)`).
//!
//! # The `levee-fault` header
//!
//! [`parse_header`] reads the header form, `delay=200ms,abort=503`, `reset` or `hang`, into a
//! spec where every listed fault has `percent: 100`.

use crate::duration::{self, serde_str};
use crate::random::RandomSource;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// A route's faults. Every part is optional; an empty spec injects nothing.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// Latency added before the attempt (it counts against the per-try timeout and deadline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<DelayFault>,
    /// The attempt answers `status` instead of calling the upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<AbortFault>,
    /// The attempt fails as a connection reset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset: Option<ChanceFault>,
    /// The attempt never answers: the per-try timeout, the deadline or the client ends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hang: Option<ChanceFault>,
}

/// `delay: {percent, duration}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DelayFault {
    /// Share of attempts delayed, 0 to 100 (decimals allowed).
    pub percent: f64,
    /// How long.
    #[serde(with = "serde_str")]
    pub duration: Duration,
}

/// `abort: {percent, status}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AbortFault {
    /// Share of attempts aborted, 0 to 100.
    pub percent: f64,
    /// The status the attempt answers with, 200 to 599.
    pub status: u16,
}

/// `reset: {percent}` and `hang: {percent}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChanceFault {
    /// Share of attempts affected, 0 to 100.
    pub percent: f64,
}

/// The kinds of fault, as the `kind` label of `levee_faults_injected_total` spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// Latency added.
    Delay,
    /// A synthesized status.
    Abort,
    /// A connection reset.
    Reset,
    /// No answer.
    Hang,
}

impl FaultKind {
    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            FaultKind::Delay => "delay",
            FaultKind::Abort => "abort",
            FaultKind::Reset => "reset",
            FaultKind::Hang => "hang",
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the attempt ends instead of calling the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAction {
    /// Answer this status.
    Abort(u16),
    /// Fail as a connection reset.
    Reset,
    /// Never answer.
    Hang,
}

impl FaultAction {
    /// The kind, for metrics and logs.
    pub const fn kind(self) -> FaultKind {
        match self {
            FaultAction::Abort(_) => FaultKind::Abort,
            FaultAction::Reset => FaultKind::Reset,
            FaultAction::Hang => FaultKind::Hang,
        }
    }
}

/// What one attempt gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FaultDecision {
    /// Wait this long first.
    pub delay: Option<Duration>,
    /// Then end this way instead of calling the upstream (`None`: call it).
    pub action: Option<FaultAction>,
}

impl FaultDecision {
    /// True when nothing is injected.
    pub fn is_none(&self) -> bool {
        self.delay.is_none() && self.action.is_none()
    }
}

/// Lowest status an abort may answer: 1xx are interim answers, which cannot end an attempt.
pub const MIN_ABORT_STATUS: u16 = 200;

/// Highest status an abort may answer.
pub const MAX_ABORT_STATUS: u16 = 599;

impl FaultSpec {
    /// True when no fault is configured.
    pub fn is_empty(&self) -> bool {
        self.delay.is_none() && self.abort.is_none() && self.reset.is_none() && self.hang.is_none()
    }

    /// Every impossible value, as `(key path within the block, message)`; the message starts
    /// with the key (`abort.status 42 is …`) and says how to fix it.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut percent = |key: &str, value: f64| {
            if !(0.0..=100.0).contains(&value) {
                out.push((
                    format!("{key}.percent"),
                    format!(
                        "{key}.percent is {value}: it is a percentage of attempts, use 0 to 100 \
                         (decimals allowed, such as 0.5)"
                    ),
                ));
            }
        };
        if let Some(d) = &self.delay {
            percent("delay", d.percent);
        }
        if let Some(a) = &self.abort {
            percent("abort", a.percent);
        }
        if let Some(r) = &self.reset {
            percent("reset", r.percent);
        }
        if let Some(h) = &self.hang {
            percent("hang", h.percent);
        }
        if let Some(d) = &self.delay {
            if d.duration.is_zero() {
                out.push((
                    "delay.duration".into(),
                    "delay.duration is 0s: the delay would add nothing; use e.g. 200ms".into(),
                ));
            }
        }
        if let Some(a) = &self.abort {
            if !(MIN_ABORT_STATUS..=MAX_ABORT_STATUS).contains(&a.status) {
                out.push((
                    "abort.status".into(),
                    format!(
                        "abort.status {} is not a final HTTP status: use {MIN_ABORT_STATUS} to \
                         {MAX_ABORT_STATUS}, such as 503",
                        a.status
                    ),
                ));
            }
        }
        let exclusive = self.exclusive_percents();
        let sum: f64 = exclusive.iter().map(|(_, p)| p).sum();
        if exclusive.len() > 1
            && sum > 100.0
            && exclusive.iter().all(|(_, p)| (0.0..=100.0).contains(p))
        {
            let names: Vec<&str> = exclusive.iter().map(|(k, _)| *k).collect();
            out.push((
                names[0].to_string(),
                format!(
                    "{} exclude each other (an attempt ends one way) and their percents add up \
                     to {sum}: lower them so that they total at most 100",
                    names.join(", ")
                ),
            ));
        }
        out
    }

    /// The first problem as one message (see [`problems`](Self::problems)).
    pub fn validate(&self) -> Result<(), String> {
        match self.problems().into_iter().next() {
            Some((_, message)) => Err(message),
            None => Ok(()),
        }
    }

    fn exclusive_percents(&self) -> Vec<(&'static str, f64)> {
        let mut out = Vec::with_capacity(3);
        if let Some(a) = &self.abort {
            out.push(("abort", a.percent));
        }
        if let Some(r) = &self.reset {
            out.push(("reset", r.percent));
        }
        if let Some(h) = &self.hang {
            out.push(("hang", h.percent));
        }
        out
    }
}

/// Decides the fault of one attempt (see the module docs for the draws).
pub fn decide(spec: &FaultSpec, random: &dyn RandomSource) -> FaultDecision {
    let delay = spec
        .delay
        .as_ref()
        .filter(|d| random.next_unit() * 100.0 < d.percent)
        .map(|d| d.duration);
    let mut action = None;
    if spec.abort.is_some() || spec.reset.is_some() || spec.hang.is_some() {
        let x = random.next_unit() * 100.0;
        let mut threshold = 0.0;
        let candidates = [
            spec.abort
                .as_ref()
                .map(|a| (a.percent, FaultAction::Abort(a.status))),
            spec.reset.as_ref().map(|r| (r.percent, FaultAction::Reset)),
            spec.hang.as_ref().map(|h| (h.percent, FaultAction::Hang)),
        ];
        for (percent, candidate) in candidates.into_iter().flatten() {
            threshold += percent.max(0.0);
            if x < threshold {
                action = Some(candidate);
                break;
            }
        }
    }
    FaultDecision { delay, action }
}

/// Reads a `levee-fault` header value: a comma-separated list of `delay=<duration>`,
/// `abort=<status>`, `reset` and `hang`, each at 100 percent. The error names the bad item.
pub fn parse_header(value: &str) -> Result<FaultSpec, String> {
    let mut spec = FaultSpec::default();
    const HELP: &str = "write a comma-separated list of delay=<duration>, abort=<status>, \
                        reset and hang, such as `delay=200ms,abort=503`";
    if value.trim().is_empty() {
        return Err(format!("the levee-fault header is empty: {HELP}"));
    }
    for raw in value.split(',') {
        let item = raw.trim();
        let (name, arg) = match item.split_once('=') {
            Some((n, a)) => (n.trim(), Some(a.trim())),
            None => (item, None),
        };
        let duplicate = || format!("`{name}` is listed twice in levee-fault: keep one");
        match (name, arg) {
            ("delay", Some(arg)) => {
                let duration =
                    duration::parse(arg).map_err(|e| format!("`{item}` in levee-fault: {e}"))?;
                if spec.delay.is_some() {
                    return Err(duplicate());
                }
                spec.delay = Some(DelayFault {
                    percent: 100.0,
                    duration,
                });
            }
            ("abort", Some(arg)) => {
                let status: u16 = arg.parse().map_err(|_| {
                    format!(
                        "`{item}` in levee-fault: the status must be a number from \
                         {MIN_ABORT_STATUS} to {MAX_ABORT_STATUS}, such as abort=503"
                    )
                })?;
                if spec.abort.is_some() {
                    return Err(duplicate());
                }
                spec.abort = Some(AbortFault {
                    percent: 100.0,
                    status,
                });
            }
            ("reset" | "hang", None) => {
                let slot = if name == "reset" {
                    &mut spec.reset
                } else {
                    &mut spec.hang
                };
                if slot.is_some() {
                    return Err(duplicate());
                }
                *slot = Some(ChanceFault { percent: 100.0 });
            }
            ("delay", None) => {
                return Err(format!(
                    "`{item}` in levee-fault needs a duration, such as delay=200ms"
                ))
            }
            ("abort", None) => {
                return Err(format!(
                    "`{item}` in levee-fault needs a status, such as abort=503"
                ))
            }
            ("reset" | "hang", Some(_)) => {
                return Err(format!(
                    "`{item}` in levee-fault takes no value: write `{name}`"
                ))
            }
            _ => return Err(format!("`{item}` in levee-fault is not a fault: {HELP}")),
        }
    }
    if let Some((_, message)) = spec.problems().into_iter().next() {
        let message = if spec.exclusive_percents().len() > 1 {
            "abort, reset and hang exclude each other (an attempt ends one way): ask for one \
             of them"
                .to_string()
        } else {
            format!("in levee-fault: {message}")
        };
        return Err(message);
    }
    Ok(spec)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::random::{ScriptedRandom, SplitMix64};

    fn abort(percent: f64) -> FaultSpec {
        FaultSpec {
            abort: Some(AbortFault {
                percent,
                status: 503,
            }),
            ..FaultSpec::default()
        }
    }

    #[test]
    fn percent_zero_never_fires_and_percent_hundred_always_does() {
        let rng = SplitMix64::new(7);
        for _ in 0..10_000 {
            assert_eq!(decide(&abort(0.0), &rng).action, None);
            assert_eq!(
                decide(&abort(100.0), &rng).action,
                Some(FaultAction::Abort(503))
            );
        }
        // The extreme draws, scripted.
        let rng = ScriptedRandom::new([0.0, 0.999_999_999, 0.0, 0.999_999_999]);
        assert_eq!(decide(&abort(0.0), &rng).action, None);
        assert_eq!(decide(&abort(0.0), &rng).action, None);
        assert!(decide(&abort(100.0), &rng).action.is_some());
        assert!(decide(&abort(100.0), &rng).action.is_some());
        assert!(!rng.take_ran_dry());
    }

    #[test]
    fn the_distribution_follows_the_percentages() {
        let spec = FaultSpec {
            delay: Some(DelayFault {
                percent: 20.0,
                duration: Duration::from_millis(5),
            }),
            abort: Some(AbortFault {
                percent: 10.0,
                status: 503,
            }),
            reset: Some(ChanceFault { percent: 5.0 }),
            hang: Some(ChanceFault { percent: 0.5 }),
        };
        let rng = SplitMix64::new(42);
        let (mut delays, mut aborts, mut resets, mut hangs) = (0, 0, 0, 0);
        let n = 10_000;
        for _ in 0..n {
            let d = decide(&spec, &rng);
            delays += usize::from(d.delay.is_some());
            match d.action {
                Some(FaultAction::Abort(503)) => aborts += 1,
                Some(FaultAction::Reset) => resets += 1,
                Some(FaultAction::Hang) => hangs += 1,
                Some(other) => panic!("{other:?}"),
                None => {}
            }
        }
        // Generous bounds: about ±25 % of the expected count (many standard deviations).
        assert!((1500..=2500).contains(&delays), "delays {delays}");
        assert!((750..=1250).contains(&aborts), "aborts {aborts}");
        assert!((375..=625).contains(&resets), "resets {resets}");
        assert!((20..=90).contains(&hangs), "hangs {hangs}");
    }

    #[test]
    fn one_draw_per_configured_part_in_a_fixed_order() {
        let spec = FaultSpec {
            delay: Some(DelayFault {
                percent: 50.0,
                duration: Duration::from_millis(200),
            }),
            abort: Some(AbortFault {
                percent: 10.0,
                status: 500,
            }),
            reset: Some(ChanceFault { percent: 10.0 }),
            hang: Some(ChanceFault { percent: 10.0 }),
        };
        // delay draw, then the exclusive draw: 0.05 → abort, 0.15 → reset, 0.25 → hang.
        let rng = ScriptedRandom::new([0.4, 0.05, 0.6, 0.15, 0.0, 0.25, 0.99, 0.35]);
        let d = decide(&spec, &rng);
        assert_eq!(d.delay, Some(Duration::from_millis(200)));
        assert_eq!(d.action, Some(FaultAction::Abort(500)));
        let d = decide(&spec, &rng);
        assert_eq!((d.delay, d.action), (None, Some(FaultAction::Reset)));
        assert_eq!(decide(&spec, &rng).action, Some(FaultAction::Hang));
        let d = decide(&spec, &rng);
        assert!(d.is_none());
        assert_eq!(rng.remaining(), 0);
        // Only abort configured: one draw per decision.
        let rng = ScriptedRandom::new([0.5]);
        decide(&abort(50.0), &rng);
        assert_eq!(rng.remaining(), 0);
        assert!(!rng.take_ran_dry());
        assert!(decide(&FaultSpec::default(), &rng).is_none());
        assert!(!rng.take_ran_dry(), "an empty spec takes no draw");
    }

    #[test]
    fn problems_name_the_key_and_the_fix() {
        let mut spec = abort(101.0);
        let problems = spec.problems();
        assert_eq!(problems[0].0, "abort.percent");
        assert!(problems[0].1.contains("use 0 to 100"), "{}", problems[0].1);
        spec = abort(f64::NAN);
        assert_eq!(spec.problems().len(), 1);
        spec = abort(5.0);
        spec.abort.as_mut().unwrap().status = 42;
        let err = spec.validate().unwrap_err();
        assert!(err.starts_with("abort.status 42"), "{err}");
        spec.abort.as_mut().unwrap().status = 600;
        assert!(spec.validate().is_err());
        spec.abort.as_mut().unwrap().status = 503;
        spec.reset = Some(ChanceFault { percent: 60.0 });
        spec.hang = Some(ChanceFault { percent: 40.0 });
        let err = spec.validate().unwrap_err();
        assert!(err.contains("add up to 105"), "{err}");
        spec.hang = Some(ChanceFault { percent: 35.0 });
        assert!(spec.validate().is_ok());
        spec.delay = Some(DelayFault {
            percent: 1.0,
            duration: Duration::ZERO,
        });
        assert_eq!(spec.problems()[0].0, "delay.duration");
        assert!(FaultSpec::default().validate().is_ok());
    }

    #[test]
    fn json_shape_matches_the_config_block() {
        let spec: FaultSpec = serde_json::from_str(
            r#"{"delay": {"percent": 10, "duration": "200ms"}, "abort": {"percent": 0.5, "status": 503}}"#,
        )
        .unwrap();
        assert_eq!(
            spec.delay.as_ref().unwrap().duration,
            Duration::from_millis(200)
        );
        assert_eq!(spec.abort.as_ref().unwrap().percent, 0.5);
        assert_eq!(
            serde_json::to_string(&spec).unwrap(),
            r#"{"delay":{"percent":10.0,"duration":"200ms"},"abort":{"percent":0.5,"status":503}}"#
        );
        let err = serde_json::from_str::<FaultSpec>(r#"{"abrt": {}}"#).unwrap_err();
        assert!(err.to_string().contains("abrt"), "{err}");
        assert!(serde_json::from_str::<FaultSpec>(r#"{"reset": {"percent": 1, "x": 1}}"#).is_err());
        assert!(serde_json::from_str::<FaultSpec>(r#"{"reset": {}}"#).is_err());
    }

    #[test]
    fn header_values() {
        let spec = parse_header("delay=100ms, abort=503").unwrap();
        assert_eq!(
            spec.delay,
            Some(DelayFault {
                percent: 100.0,
                duration: Duration::from_millis(100)
            })
        );
        assert_eq!(spec.abort.as_ref().map(|a| a.status), Some(503));
        assert_eq!(
            parse_header("reset").unwrap().reset.map(|r| r.percent),
            Some(100.0)
        );
        assert!(parse_header("hang").unwrap().hang.is_some());
        for (bad, says) in [
            ("", "empty"),
            ("abort", "needs a status"),
            ("abort=abc", "`abort=abc`"),
            ("abort=42", "abort.status 42"),
            ("delay=100", "`delay=100`"),
            ("delay", "needs a duration"),
            ("reset=1", "takes no value"),
            ("boom", "`boom` in levee-fault is not a fault"),
            ("reset,hang", "exclude each other"),
            ("abort=503,abort=500", "listed twice"),
            ("delay=1ms,,reset", "`` in levee-fault"),
        ] {
            let err = parse_header(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
