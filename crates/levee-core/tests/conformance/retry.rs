//! Runner subjects for `policy: "retry"` (conformance/policies/retry.md) and
//! `policy: "retry_budget"` (conformance/policies/retry_budget.md).

use crate::support::{self, Env, Expect, Subject};
use levee_core::budget::{RetryBudget, RetryBudgetConfig};
use levee_core::outcome::AttemptResult;
use levee_core::retry::{self, RetryConfig, RetryDecision, RetryInput};
use serde_json::Value;
use std::time::Duration;

pub fn subject(config: &Value, env: &Env) -> Result<Box<dyn Subject>, String> {
    let config: RetryConfig = support::config(config)?;
    config.validate().map_err(|e| format!("config: {e}"))?;
    let budget = RetryBudget::new(config.budget.clone(), env.now());
    Ok(Box::new(RetrySubject { config, budget }))
}

pub fn budget_subject(config: &Value, env: &Env) -> Result<Box<dyn Subject>, String> {
    let config: RetryBudgetConfig = support::config(config)?;
    config.validate().map_err(|e| format!("config: {e}"))?;
    Ok(Box::new(BudgetSubject {
        budget: RetryBudget::new(config, env.now()),
    }))
}

/// Fails on argument keys the step does not know, so a typo cannot pass silently.
pub fn known_args(args: &Value, known: &[&str]) -> Result<(), String> {
    match args {
        Value::Object(map) => match map.keys().find(|k| !known.contains(&k.as_str())) {
            Some(k) => Err(format!(
                "unknown argument `{k}` (this step takes {known:?})"
            )),
            None => Ok(()),
        },
        Value::Null if known.is_empty() => Ok(()),
        other => Err(format!("arguments must be an object, got {other}")),
    }
}

/// An optional duration argument; `null` counts as absent.
pub fn opt_duration(args: &Value, key: &str) -> Result<Option<Duration>, String> {
    match support::field(args, key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => support::duration_value(v)
            .map(Some)
            .map_err(|e| format!("`{key}`: {e}")),
    }
}

/// An optional boolean argument with a default.
pub fn opt_bool(args: &Value, key: &str, default: bool) -> Result<bool, String> {
    match support::field(args, key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_bool()
            .ok_or_else(|| format!("`{key}` must be true or false, got {v}")),
    }
}

/// An optional non-negative integer argument with a default.
pub fn opt_count(args: &Value, key: &str, default: u64) -> Result<u64, String> {
    match support::field(args, key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_u64()
            .ok_or_else(|| format!("`{key}` must be a whole number, got {v}")),
    }
}

/// The step's `result`: a string (`"503"`, `"reset"`) or an integer status (`503`).
fn attempt_result(args: &Value) -> Result<AttemptResult, String> {
    match support::field(args, "result") {
        Some(Value::String(s)) => s.parse(),
        Some(Value::Number(n)) => n.to_string().parse(),
        _ => Err("step needs a `result`: a status or connect_failure, reset, refused_stream, timeout, cancelled".into()),
    }
}

/// Checks the budget expectations `deposits`, `retries` and `available`.
fn check_budget(budget: &RetryBudget, env: &Env, expect: &mut Expect) -> Result<(), String> {
    let s = budget.snapshot(env.now());
    expect.eq("deposits", s.deposits)?;
    expect.eq("retries", s.retries)?;
    expect.eq("available", s.available)
}

fn deposit(budget: &RetryBudget, env: &Env, args: &Value) -> Result<(), String> {
    known_args(args, &["count"])?;
    for _ in 0..opt_count(args, "count", 1)? {
        budget.deposit(env.now());
    }
    Ok(())
}

struct RetrySubject {
    config: RetryConfig,
    budget: RetryBudget,
}

impl Subject for RetrySubject {
    fn step(
        &mut self,
        env: &Env,
        action: &str,
        args: &Value,
        expect: &mut Expect,
    ) -> Result<(), String> {
        match action {
            "decide" => {
                known_args(
                    args,
                    &[
                        "attempts_made",
                        "result",
                        "idempotent",
                        "remaining",
                        "breaker_open",
                        "retry_after",
                        "previous_backoff",
                    ],
                )?;
                let attempts = support::field(args, "attempts_made")
                    .and_then(Value::as_u64)
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or("step needs a whole number `attempts_made`")?;
                let result = attempt_result(args)?;
                let input = RetryInput {
                    attempts_made: attempts,
                    result,
                    idempotent: opt_bool(args, "idempotent", true)?,
                    remaining: opt_duration(args, "remaining")?,
                    breaker_open: opt_bool(args, "breaker_open", false)?,
                    retry_after: opt_duration(args, "retry_after")?,
                    previous_backoff: opt_duration(args, "previous_backoff")?,
                };
                let decision =
                    retry::decide(&self.config, &input, &self.budget, env.now(), &*env.random);
                match decision {
                    RetryDecision::Retry { after, backoff } => {
                        expect.eq("decision", "retry")?;
                        expect.duration("after", Some(after))?;
                        expect.duration("backoff", Some(backoff))?;
                        expect.eq("reason", Value::Null)?;
                    }
                    RetryDecision::GiveUp { reason } => {
                        expect.eq("decision", "give_up")?;
                        expect.duration("after", None)?;
                        expect.duration("backoff", None)?;
                        expect.eq("reason", reason.as_str())?;
                    }
                }
                check_budget(&self.budget, env, expect)
            }
            "backoff" => {
                known_args(args, &["attempts_made", "previous_backoff"])?;
                let attempts = support::field(args, "attempts_made")
                    .and_then(Value::as_u64)
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or("step needs a whole number `attempts_made`")?;
                let previous = opt_duration(args, "previous_backoff")?;
                let backoff =
                    retry::backoff(&self.config.backoff, attempts, previous, &*env.random);
                expect.duration("backoff", Some(backoff))
            }
            "deposit" => {
                deposit(&self.budget, env, args)?;
                check_budget(&self.budget, env, expect)
            }
            "budget" => {
                known_args(args, &[])?;
                check_budget(&self.budget, env, expect)
            }
            "parse_retry_after" => {
                known_args(args, &["value", "now_unix"])?;
                let value = support::str_field(args, "value")?;
                let now_unix = opt_count(args, "now_unix", 0)?;
                expect.duration("retry_after", retry::parse_retry_after(value, now_unix))
            }
            "idempotent" => {
                known_args(args, &["method", "idempotency_key"])?;
                let method = support::str_field(args, "method")?;
                let has_key = opt_bool(args, "idempotency_key", false)?;
                expect.eq("idempotent", retry::is_idempotent(method, has_key))
            }
            other => Err(format!("unknown retry step `{other}`")),
        }
    }
}

struct BudgetSubject {
    budget: RetryBudget,
}

impl Subject for BudgetSubject {
    fn step(
        &mut self,
        env: &Env,
        action: &str,
        args: &Value,
        expect: &mut Expect,
    ) -> Result<(), String> {
        match action {
            "deposit" => deposit(&self.budget, env, args)?,
            "withdraw" => {
                known_args(args, &["count"])?;
                let count = opt_count(args, "count", 1)?;
                if count != 1 && expect.has("allowed") {
                    return Err(
                        "`allowed` needs a single withdrawal: use `allowed_count` with `count`"
                            .into(),
                    );
                }
                let allowed = (0..count)
                    .filter(|_| self.budget.try_withdraw(env.now()))
                    .count();
                expect.eq("allowed", allowed == 1)?;
                expect.eq("allowed_count", allowed)?;
            }
            "snapshot" => known_args(args, &[])?,
            other => return Err(format!("unknown retry_budget step `{other}`")),
        }
        check_budget(&self.budget, env, expect)
    }
}
