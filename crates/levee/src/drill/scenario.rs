//! The drill file: what traffic to send, what to break and when, and what must hold.
//!
//! ```yaml
//! name: inventory outage
//! duration: 40s
//! target: http://127.0.0.1:8080          # base of every traffic `path`
//! admin: {url: http://127.0.0.1:9901}    # breakers are watched, faults set, here
//! traffic:
//!   - name: item
//!     path: /inventory/items/42
//!     rate: 50/s
//!     criticality: {critical: 80, sheddable: 20}
//! timeline:
//!   - {at: 10s, fault: {route: inventory, abort: {status: 503}}}
//!   - {at: 25s, heal: inventory}
//! slos:
//!   - {name: critical traffic served, success_rate: {criticality: critical, min: 99%}}
//!   - {breaker_open: {endpoint: inventory, after: 10s, within: 2s}}
//!   - {fallback_served: {traffic: item}}
//!   - {recovered: {endpoint: inventory, after: 25s, within: 10s}}
//! ```
//!
//! `${NAME}` anywhere in the file is replaced by the environment variable `NAME` before the
//! file is read, `${NAME:-default}` by `default` when `NAME` is unset (`levee demo` passes
//! the addresses of the fleet it started this way).

use levee_config::{parse_document, ConfigError, Problem};
use levee_core::duration::serde_str;
use levee_core::rate_limit::Rate;
use levee_core::Criticality;
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::time::Duration;

/// A whole drill file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Shown in the report.
    pub name: String,
    /// How long traffic runs.
    #[serde(with = "serde_str")]
    pub duration: Duration,
    /// Base URL of traffic `path`s.
    #[serde(default)]
    pub target: Option<String>,
    /// The admin API of the levee that faults are set on and breakers read from.
    #[serde(default)]
    pub admin: Option<AdminTarget>,
    /// How often breaker states are read from the admin API.
    #[serde(default = "default_poll", with = "serde_str")]
    pub poll: Duration,
    /// Request streams.
    pub traffic: Vec<Traffic>,
    /// What happens when.
    #[serde(default)]
    pub timeline: Vec<Event>,
    /// What must hold for the drill to pass.
    #[serde(default)]
    pub slos: Vec<Slo>,
}

fn default_poll() -> Duration {
    Duration::from_millis(100)
}

/// Where the admin API is and the variable holding its bearer token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminTarget {
    /// `http://127.0.0.1:9901`.
    pub url: String,
    /// The environment variable with the admin token (mutations need it).
    #[serde(default = "default_token_env")]
    pub token_env: String,
}

fn default_token_env() -> String {
    "LEVEE_ADMIN_TOKEN".to_string()
}

/// One open-loop request stream.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Traffic {
    /// Names the stream in the report and in SLOs.
    pub name: String,
    /// `GET` unless given.
    #[serde(default = "default_method")]
    pub method: String,
    /// Appended to the scenario's `target`.
    #[serde(default)]
    pub path: Option<String>,
    /// A whole URL instead of `target` + `path`.
    #[serde(default)]
    pub url: Option<String>,
    /// Requests started per period, whatever the answers' speed (open loop).
    pub rate: Rate,
    /// Percent of requests per class, sent as `levee-criticality`; all `standard` if empty.
    #[serde(default)]
    pub criticality: BTreeMap<Criticality, u32>,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A request body.
    #[serde(default)]
    pub body: Option<String>,
    /// The client gives up after this long (counted as failed).
    #[serde(default = "default_timeout", with = "serde_str")]
    pub timeout: Duration,
}

fn default_method() -> String {
    "GET".to_string()
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

/// One timeline entry: `at` and exactly one action.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// Time from the drill's start.
    #[serde(with = "serde_str")]
    pub at: Duration,
    /// Sets a fault on a route of the admin target (`PUT /api/faults/{route}`).
    #[serde(default)]
    pub fault: Option<FaultAction>,
    /// Clears a route's runtime fault (`DELETE /api/faults/{route}`).
    #[serde(default)]
    pub heal: Option<String>,
    /// Sets the fleet degradation level (`PUT /api/degradation`).
    #[serde(default)]
    pub level: Option<u8>,
    /// An operator override of a breaker (`PUT /api/breakers/{endpoint}/override`).
    #[serde(default, rename = "override")]
    pub override_: Option<OverrideAction>,
    /// Any HTTP call, such as a test service's `/control/fail`.
    #[serde(default)]
    pub request: Option<RequestAction>,
}

/// A route and the faults to inject on it; `percent` defaults to 100.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultAction {
    /// The route name, as in the proxy config.
    pub route: String,
    /// Added latency before the real call.
    #[serde(default)]
    pub delay: Option<DelayFault>,
    /// Answer `status` instead of calling the upstream.
    #[serde(default)]
    pub abort: Option<AbortFault>,
    /// Fail as a connection reset.
    #[serde(default)]
    pub reset: Option<PercentOnly>,
    /// Never answer.
    #[serde(default)]
    pub hang: Option<PercentOnly>,
}

/// `delay: {duration: 200ms, percent: 50}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DelayFault {
    /// The added latency.
    #[serde(with = "serde_str")]
    pub duration: Duration,
    /// Share of attempts, 0–100.
    #[serde(default = "hundred", deserialize_with = "percent")]
    pub percent: f64,
}

/// `abort: {status: 503, percent: 100}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AbortFault {
    /// The status answered.
    pub status: u16,
    /// Share of attempts, 0–100.
    #[serde(default = "hundred", deserialize_with = "percent")]
    pub percent: f64,
}

/// `reset: {percent: 10}` (or `reset: {}` for every attempt).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PercentOnly {
    /// Share of attempts, 0–100.
    #[serde(default = "hundred", deserialize_with = "percent")]
    pub percent: f64,
}

fn hundred() -> f64 {
    100.0
}

/// `override: {endpoint: inventory, state: forced_open}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideAction {
    /// The breaker's endpoint key.
    pub endpoint: String,
    /// `forced_open`, `disabled`, `observe` or `none`.
    pub state: String,
}

/// `request: {method: POST, url: http://127.0.0.1:7001/control/fail?status=503}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestAction {
    /// `POST` unless given.
    #[serde(default = "default_post")]
    pub method: String,
    /// The whole URL.
    pub url: String,
    /// A request body.
    #[serde(default)]
    pub body: Option<String>,
}

fn default_post() -> String {
    "POST".to_string()
}

/// One SLO: an optional name and exactly one assertion.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slo {
    /// Shown in the report; a description of the assertion when absent.
    #[serde(default)]
    pub name: Option<String>,
    /// Share of answered requests (2xx–4xx, degraded ones included) at least `min`.
    #[serde(default)]
    pub success_rate: Option<SuccessRate>,
    /// The breaker is seen open within `within` of `after`.
    #[serde(default)]
    pub breaker_open: Option<BreakerWithin>,
    /// The breaker is seen closed again within `within` of `after`, and a request of the
    /// optional traffic stream succeeds without degradation after that.
    #[serde(default)]
    pub recovered: Option<Recovered>,
    /// At least `min` degraded answers (`levee-degraded`) were served.
    #[serde(default)]
    pub fallback_served: Option<FallbackServed>,
}

/// `success_rate: {min: 99%, criticality: critical, traffic: item, from: 10s, to: 30s}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuccessRate {
    /// Least share, in percent.
    #[serde(deserialize_with = "percent")]
    pub min: f64,
    /// Only requests of this class.
    #[serde(default)]
    pub criticality: Option<Criticality>,
    /// Only this stream.
    #[serde(default)]
    pub traffic: Option<String>,
    /// Only requests sent at or after this time.
    #[serde(default, with = "serde_str::option")]
    pub from: Option<Duration>,
    /// Only requests sent before this time.
    #[serde(default, with = "serde_str::option")]
    pub to: Option<Duration>,
}

/// `breaker_open: {endpoint: inventory, after: 10s, within: 2s}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerWithin {
    /// The breaker's endpoint key.
    pub endpoint: String,
    /// Start of the window (usually a fault's `at`).
    #[serde(with = "serde_str")]
    pub after: Duration,
    /// Length of the window.
    #[serde(with = "serde_str")]
    pub within: Duration,
}

/// `recovered: {endpoint: inventory, after: 25s, within: 10s, traffic: item}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recovered {
    /// The breaker's endpoint key.
    pub endpoint: String,
    /// Start of the window (usually the heal's `at`).
    #[serde(with = "serde_str")]
    pub after: Duration,
    /// Length of the window.
    #[serde(with = "serde_str")]
    pub within: Duration,
    /// The stream that must be served normally again.
    #[serde(default)]
    pub traffic: Option<String>,
}

/// `fallback_served: {traffic: item, min: 1}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FallbackServed {
    /// Only this stream.
    #[serde(default)]
    pub traffic: Option<String>,
    /// Least number of degraded answers.
    #[serde(default = "one")]
    pub min: u64,
}

fn one() -> u64 {
    1
}

/// `99%`, `99.5%` or a plain number, as a percentage in 0–100.
fn percent<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    struct Visitor;
    impl serde::de::Visitor<'_> for Visitor {
        type Value = f64;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a percentage such as `99%` or `99.5`")
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<f64, E> {
            check_percent(v).map_err(E::custom)
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<f64, E> {
            self.visit_f64(v as f64)
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<f64, E> {
            self.visit_f64(v as f64)
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<f64, E> {
            let number = v.trim().trim_end_matches('%').trim();
            let value: f64 = number.parse().map_err(|_| {
                E::custom(format!(
                    "`{v}` is not a percentage: write a number from 0 to 100, such as `99%`"
                ))
            })?;
            self.visit_f64(value)
        }
    }
    deserializer.deserialize_any(Visitor)
}

fn check_percent(value: f64) -> Result<f64, String> {
    if (0.0..=100.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!(
            "{value} is not a percentage: write a number from 0 to 100"
        ))
    }
}

/// Reads a drill file: `${VAR}` replaced from `vars`, then parsed and checked; every problem
/// is `file:line:column: key.path: message`.
pub fn load(
    text: &str,
    file: &str,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<Scenario, String> {
    let text = substitute(text, file, vars)?;
    let located =
        parse_document::<Scenario>(&text, file).map_err(|e: ConfigError| e.to_string())?;
    let problems = check(&located.value, &|path, message| {
        located.problem(path, message)
    });
    if problems.is_empty() {
        Ok(located.value)
    } else {
        Err(problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n"))
    }
}

/// Replaces every `${NAME}`; an unknown name is an error at its line and column.
fn substitute(
    text: &str,
    file: &str,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let offset = text.len() - rest.len() + start;
        let (line, column) = position(text, offset);
        let Some(end) = after.find('}') else {
            return Err(format!(
                "{file}:{line}:{column}: `${{` is not closed: write `${{NAME}}`"
            ));
        };
        let (name, default) = match after[..end].split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (&after[..end], None),
        };
        match vars(name).or(default.map(str::to_string)) {
            Some(value) => out.push_str(&value),
            None => {
                return Err(format!(
                    "{file}:{line}:{column}: ${{{name}}} is not set: export {name}, or write \
                     the value in the file"
                ))
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The checks types cannot make: one action per event, times inside the drill, names that
/// exist, a target for every path.
fn check(s: &Scenario, at: &dyn Fn(&str, String) -> Problem) -> Vec<Problem> {
    let mut problems = Vec::new();
    if s.duration.is_zero() {
        problems.push(at(
            "duration",
            "a drill needs a duration such as `30s`".into(),
        ));
    }
    if s.traffic.is_empty() {
        problems.push(at(
            "traffic",
            "a drill needs at least one traffic stream (name, path, rate)".into(),
        ));
    }
    if s.poll.is_zero() {
        problems.push(at(
            "poll",
            "the poll interval must be positive, such as `100ms`".into(),
        ));
    }
    let mut names = std::collections::BTreeSet::new();
    for (i, t) in s.traffic.iter().enumerate() {
        if !names.insert(t.name.as_str()) {
            problems.push(at(
                &format!("traffic[{i}].name"),
                format!(
                    "a second stream is named `{}`: give each its own name",
                    t.name
                ),
            ));
        }
        match (&t.path, &t.url) {
            (None, None) => problems.push(at(
                &format!("traffic[{i}]"),
                "give `path` (with the scenario's `target`) or a whole `url`".into(),
            )),
            (Some(_), Some(_)) => problems.push(at(
                &format!("traffic[{i}].url"),
                "give `path` or `url`, not both".into(),
            )),
            (Some(_), None) if s.target.is_none() => problems.push(at(
                &format!("traffic[{i}].path"),
                "a `path` needs the scenario's `target` (such as http://127.0.0.1:8080)".into(),
            )),
            _ => {}
        }
        if http::Method::from_bytes(t.method.as_bytes()).is_err() {
            problems.push(at(
                &format!("traffic[{i}].method"),
                format!("`{}` is not an HTTP method", t.method),
            ));
        }
        let total: u32 = t.criticality.values().sum();
        if !t.criticality.is_empty() && total != 100 {
            problems.push(at(
                &format!("traffic[{i}].criticality"),
                format!("the shares add up to {total}: make them add up to 100"),
            ));
        }
    }
    let stream = |name: &Option<String>, path: String, problems: &mut Vec<Problem>| {
        if let Some(name) = name {
            if !names.contains(name.as_str()) {
                problems.push(at(
                    &path,
                    format!(
                        "no traffic stream is named `{name}` (streams: {})",
                        names.iter().copied().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
    };
    let needs_admin = |problems: &mut Vec<Problem>, path: String| {
        if s.admin.is_none() {
            problems.push(at(
                &path,
                "this needs the scenario's `admin: {url: http://127.0.0.1:9901}`".into(),
            ));
        }
    };
    for (i, e) in s.timeline.iter().enumerate() {
        let actions = [
            e.fault.is_some(),
            e.heal.is_some(),
            e.level.is_some(),
            e.override_.is_some(),
            e.request.is_some(),
        ]
        .iter()
        .filter(|set| **set)
        .count();
        if actions != 1 {
            problems.push(at(
                &format!("timeline[{i}]"),
                format!(
                    "an event needs exactly one of fault, heal, level, override, request \
                     (it has {actions})"
                ),
            ));
        }
        if e.at > s.duration {
            problems.push(at(
                &format!("timeline[{i}].at"),
                format!(
                    "{} is after the drill ends ({}): lengthen `duration` or move the event",
                    levee_core::duration::format(e.at),
                    levee_core::duration::format(s.duration)
                ),
            ));
        }
        if e.request.is_none() && actions == 1 {
            needs_admin(&mut problems, format!("timeline[{i}]"));
        }
        if let Some(level) = e.level {
            if level > 3 {
                problems.push(at(
                    &format!("timeline[{i}].level"),
                    format!("level {level} does not exist: levels are 0 to 3"),
                ));
            }
        }
        if let Some(fault) = &e.fault {
            if fault.delay.is_none()
                && fault.abort.is_none()
                && fault.reset.is_none()
                && fault.hang.is_none()
            {
                problems.push(at(
                    &format!("timeline[{i}].fault"),
                    "name a fault: delay, abort, reset or hang".into(),
                ));
            }
        }
    }
    for (i, slo) in s.slos.iter().enumerate() {
        let kinds = [
            slo.success_rate.is_some(),
            slo.breaker_open.is_some(),
            slo.recovered.is_some(),
            slo.fallback_served.is_some(),
        ]
        .iter()
        .filter(|set| **set)
        .count();
        if kinds != 1 {
            problems.push(at(
                &format!("slos[{i}]"),
                format!(
                    "an SLO needs exactly one of success_rate, breaker_open, recovered, \
                     fallback_served (it has {kinds})"
                ),
            ));
        }
        if let Some(r) = &slo.success_rate {
            stream(
                &r.traffic,
                format!("slos[{i}].success_rate.traffic"),
                &mut problems,
            );
        }
        if let Some(r) = &slo.recovered {
            stream(
                &r.traffic,
                format!("slos[{i}].recovered.traffic"),
                &mut problems,
            );
        }
        if let Some(f) = &slo.fallback_served {
            stream(
                &f.traffic,
                format!("slos[{i}].fallback_served.traffic"),
                &mut problems,
            );
        }
        let window = slo
            .breaker_open
            .as_ref()
            .map(|b| b.after + b.within)
            .or(slo.recovered.as_ref().map(|r| r.after + r.within));
        if let Some(end) = window {
            needs_admin(&mut problems, format!("slos[{i}]"));
            if end > s.duration {
                problems.push(at(
                    &format!("slos[{i}]"),
                    format!(
                        "the window ends at {}, after the drill ({}): lengthen `duration` or \
                         shorten `within`",
                        levee_core::duration::format(end),
                        levee_core::duration::format(s.duration)
                    ),
                ));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(name: &str) -> Option<String> {
        (name == "PROXY").then(|| "http://127.0.0.1:8080".to_string())
    }

    const GOOD: &str = "name: outage
duration: 30s
target: ${PROXY}
admin: {url: http://127.0.0.1:9901}
traffic:
  - {name: item, path: /inventory/items/1, rate: 20/s, criticality: {critical: 80, sheddable: 20}}
timeline:
  - {at: 5s, fault: {route: inventory, abort: {status: 503}}}
  - {at: 20s, heal: inventory}
slos:
  - {success_rate: {min: 99%, criticality: critical}}
  - {breaker_open: {endpoint: inventory, after: 5s, within: 2s}}
";

    #[test]
    fn reads_a_scenario_with_variables() {
        let s = load(GOOD, "d.yaml", &vars).unwrap();
        assert_eq!(s.target.as_deref(), Some("http://127.0.0.1:8080"));
        assert_eq!(s.traffic[0].criticality[&Criticality::Critical], 80);
        let abort = s.timeline[0]
            .fault
            .as_ref()
            .unwrap()
            .abort
            .as_ref()
            .unwrap();
        assert_eq!((abort.status, abort.percent), (503, 100.0));
        assert_eq!(s.slos[0].success_rate.as_ref().unwrap().min, 99.0);
    }

    #[test]
    fn variables_may_have_defaults() {
        let text = "name: x\ntarget: ${PROXY:-http://a}/${NOPE:-b}\n";
        assert_eq!(
            substitute(text, "d.yaml", &vars).unwrap(),
            "name: x\ntarget: http://127.0.0.1:8080/b\n"
        );
    }

    #[test]
    fn unknown_variable_is_positioned() {
        let err = load("name: x\ntarget: ${NOPE}\n", "d.yaml", &vars).unwrap_err();
        assert_eq!(
            err,
            "d.yaml:2:9: ${NOPE} is not set: export NOPE, or write the value in the file"
        );
    }

    #[test]
    fn semantic_problems_name_line_and_fix() {
        let bad = GOOD
            .replace(
                "{at: 20s, heal: inventory}",
                "{at: 40s, heal: inventory, level: 2}",
            )
            .replace("critical: 80", "critical: 70")
            .replace("min: 99%", "min: 99%, traffic: nope");
        let err = load(&bad, "d.yaml", &vars).unwrap_err();
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 4, "{err}");
        assert!(lines[0].starts_with("d.yaml:6:"), "{err}");
        assert!(lines[0].contains("add up to 90"), "{err}");
        assert!(
            err.contains("d.yaml:9:5: timeline[1]: an event needs exactly one"),
            "{err}"
        );
        assert!(
            err.contains("timeline[1].at: 40s is after the drill ends (30s)"),
            "{err}"
        );
        assert!(
            err.contains("no traffic stream is named `nope` (streams: item)"),
            "{err}"
        );
    }

    #[test]
    fn type_problems_come_from_the_config_reader() {
        let err = load(&GOOD.replace("min: 99%", "min: 120%"), "d.yaml", &vars).unwrap_err();
        assert!(err.starts_with("d.yaml:11:"), "{err}");
        assert!(err.contains("120 is not a percentage"), "{err}");
        let err = load(&GOOD.replace("rate: 20/s", "rat: 20/s"), "d.yaml", &vars).unwrap_err();
        assert!(err.contains("traffic[0]"), "{err}");
    }
}
