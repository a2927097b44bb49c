//! The `fault` route key and the `faults` block: what parses, and every mistake reported at
//! its `line:column` with the fix.

use levee_config::{parse, Problem};
use std::time::Duration;

const GOOD: &str = "\
listeners:
  - address: 127.0.0.1:8080
upstreams:
  inventory:
    endpoints: [127.0.0.1:7001]
routes:
  - name: inventory
    upstream: inventory
";

fn problems(text: &str) -> Vec<Problem> {
    match parse(text, "levee.yaml") {
        Ok(config) => panic!("expected problems, got a config: {config:?}"),
        Err(err) => err.into_problems(),
    }
}

/// Exactly one problem, at `line:column`, about `path`, whose message holds every fragment.
#[track_caller]
fn one(text: &str, line: usize, column: usize, path: &str, fragments: &[&str]) {
    let all = problems(text);
    assert_eq!(all.len(), 1, "expected one problem, got {all:#?}");
    let p = &all[0];
    assert_eq!(
        (p.line, p.column, p.path.as_str()),
        (line, column, path),
        "{p}"
    );
    for fragment in fragments {
        assert!(p.message.contains(fragment), "{fragment:?} not in: {p}");
    }
}

#[test]
fn every_fault_parses_and_faults_are_off_by_default() {
    let config = parse(GOOD, "levee.yaml").expect("valid");
    assert!(!config.faults.allow_headers);
    assert_eq!(config.routes[0].fault, None);

    let text = format!(
        "{GOOD}    fault:\n      delay: {{percent: 10, duration: 200ms}}\n      abort: {{percent: 5, \
         status: 503}}\n      reset: {{percent: 0.5}}\n      hang:  {{percent: 1}}\nfaults:\n  \
         allow_headers: true\n"
    );
    let config = parse(&text, "levee.yaml").expect("valid");
    assert!(config.faults.allow_headers);
    let fault = config.routes[0].fault.as_ref().expect("fault");
    let delay = fault.delay.as_ref().expect("delay");
    assert_eq!(
        (delay.percent, delay.duration),
        (10.0, Duration::from_millis(200))
    );
    let abort = fault.abort.as_ref().expect("abort");
    assert_eq!((abort.percent, abort.status), (5.0, 503));
    assert_eq!(fault.reset.as_ref().map(|r| r.percent), Some(0.5));
    assert_eq!(fault.hang.as_ref().map(|h| h.percent), Some(1.0));
}

#[test]
fn a_percent_above_100_is_reported_at_its_value() {
    one(
        &format!("{GOOD}    fault:\n      abort: {{percent: 150, status: 503}}\n"),
        10,
        24,
        "routes[0].fault.abort.percent",
        &["abort.percent is 150", "use 0 to 100"],
    );
    one(
        &format!("{GOOD}    fault:\n      reset:\n        percent: -1\n"),
        11,
        18,
        "routes[0].fault.reset.percent",
        &["use 0 to 100"],
    );
}

#[test]
fn a_status_outside_200_to_599_is_reported_with_the_fix() {
    one(
        &format!("{GOOD}    fault:\n      abort: {{percent: 1, status: 42}}\n"),
        10,
        35,
        "routes[0].fault.abort.status",
        &["abort.status 42", "use 200 to 599", "503"],
    );
    one(
        &format!("{GOOD}    fault:\n      abort: {{percent: 1, status: 700}}\n"),
        10,
        35,
        "routes[0].fault.abort.status",
        &["abort.status 700"],
    );
}

#[test]
fn unknown_keys_are_rejected_with_a_suggestion() {
    one(
        &format!("{GOOD}    fault:\n      abrt: {{percent: 1, status: 503}}\n"),
        10,
        7,
        "routes[0].fault.abrt",
        &[
            "unknown key \"abrt\"",
            "did you mean \"abort\"",
            "delay, abort, reset, hang",
        ],
    );
    one(
        &format!("{GOOD}    fault:\n      delay: {{percent: 1, duration: 1s, jitter: 1}}\n"),
        10,
        41,
        "routes[0].fault.delay.jitter",
        &["unknown key \"jitter\"", "percent, duration"],
    );
    one(
        &format!("{GOOD}faults:\n  allow_header: true\n"),
        10,
        3,
        "faults.allow_header",
        &["did you mean \"allow_headers\""],
    );
}

#[test]
fn missing_and_mistyped_values_say_what_to_write() {
    one(
        &format!("{GOOD}    fault:\n      abort: {{percent: 1}}\n"),
        10,
        14,
        "routes[0].fault.abort",
        &["missing required key \"status\"", "status: 503"],
    );
    one(
        &format!("{GOOD}    fault:\n      delay: {{percent: 1, duration: 200}}\n"),
        10,
        37,
        "routes[0].fault.delay.duration",
        &["200ms"],
    );
    one(
        &format!("{GOOD}    fault:\n      hang: {{percent: 10%}}\n"),
        10,
        23,
        "routes[0].fault.hang.percent",
        &["expected a number"],
    );
    one(
        &format!("{GOOD}faults:\n  allow_headers: yes\n"),
        10,
        18,
        "faults.allow_headers",
        &["write true or false"],
    );
}

#[test]
fn exclusive_faults_may_not_add_up_to_more_than_100() {
    one(
        &format!(
            "{GOOD}    fault:\n      abort: {{percent: 80, status: 503}}\n      reset: {{percent: \
             30}}\n"
        ),
        10,
        14,
        "routes[0].fault.abort",
        &[
            "abort, reset exclude each other",
            "add up to 110",
            "at most 100",
        ],
    );
}
