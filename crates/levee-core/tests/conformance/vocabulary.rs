//! Runner subjects for the shared vocabulary: `outcome` (classification), `duration`
//! (duration strings), `error` (the error catalogue) and `names` (public strings).
//! See conformance/policies/vocabulary.md.

use crate::support::{self, Env, Expect, Subject};
use levee_core::breaker::{Reason, State};
use levee_core::duration::{self, DurationError};
use levee_core::error::{retry_after_seconds, ErrorCode};
use levee_core::names::{header, metric};
use levee_core::outcome::{classify, classify_grpc, AttemptResult, StatusSet};
use levee_core::{Criticality, Outcome};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct OutcomeConfig {
    failure_statuses: Option<StatusSet>,
}

pub fn outcome(config: &Value, _env: &Env) -> Result<Box<dyn Subject>, String> {
    let config: OutcomeConfig = support::config(config)?;
    Ok(Box::new(OutcomeSubject(
        config.failure_statuses.unwrap_or_default(),
    )))
}

struct OutcomeSubject(StatusSet);

impl Subject for OutcomeSubject {
    fn step(
        &mut self,
        _env: &Env,
        action: &str,
        args: &Value,
        expect: &mut Expect,
    ) -> Result<(), String> {
        let outcome = match action {
            "classify" => {
                let result = match support::field(args, "result") {
                    Some(Value::Number(n)) => n.to_string(),
                    Some(Value::String(s)) => s.clone(),
                    _ => return Err("`classify` needs a `result`".into()),
                };
                classify(result.parse::<AttemptResult>()?, &self.0)
            }
            "classify_grpc" => {
                let code = support::field(args, "code")
                    .and_then(Value::as_u64)
                    .ok_or("`classify_grpc` needs a numeric `code`")?;
                classify_grpc(u32::try_from(code).map_err(|e| e.to_string())?)
            }
            "slow" => {
                let duration = support::duration_field(args, "duration")?
                    .ok_or("`slow` needs a `duration`")?;
                let threshold = support::duration_field(args, "slow_call_duration")?
                    .ok_or("`slow` needs `slow_call_duration`")?;
                expect.eq("slow", duration >= threshold)?;
                return Ok(());
            }
            other => return Err(format!("unknown outcome action `{other}`")),
        };
        expect.eq("outcome", outcome.as_str())?;
        expect.eq("counted", outcome.is_counted())?;
        expect.eq("failure", outcome.is_failure())
    }
}

pub fn duration(_config: &Value, _env: &Env) -> Result<Box<dyn Subject>, String> {
    Ok(Box::new(DurationSubject))
}

struct DurationSubject;

fn duration_error_kind(e: &DurationError) -> &'static str {
    match e {
        DurationError::Empty => "empty",
        DurationError::BareNumber(_) => "bare_number",
        DurationError::Negative(_) => "negative",
        DurationError::UnknownUnit { .. } => "unknown_unit",
        DurationError::Malformed(_) => "malformed",
        DurationError::Overflow(_) => "overflow",
    }
}

impl Subject for DurationSubject {
    fn step(
        &mut self,
        _env: &Env,
        action: &str,
        args: &Value,
        expect: &mut Expect,
    ) -> Result<(), String> {
        match action {
            "parse" => {
                let value = support::str_field(args, "value")?;
                match duration::parse(value) {
                    Ok(d) => {
                        expect.eq("nanos", d.as_nanos() as u64)?;
                        expect.eq("error", Value::Null)
                    }
                    Err(e) => {
                        expect.eq("error", duration_error_kind(&e))?;
                        if let Some(needle) = expect.get("message_contains") {
                            let needle = needle.as_str().unwrap_or_default();
                            if !e.to_string().contains(needle) {
                                return Err(format!("message `{e}` does not contain `{needle}`"));
                            }
                        }
                        expect.eq("nanos", Value::Null)
                    }
                }
            }
            "format" => {
                let nanos = support::field(args, "nanos")
                    .and_then(Value::as_u64)
                    .ok_or("`format` needs integer `nanos`")?;
                expect.eq(
                    "value",
                    duration::format(std::time::Duration::from_nanos(nanos)),
                )
            }
            other => Err(format!("unknown duration action `{other}`")),
        }
    }
}

pub fn error(_config: &Value, _env: &Env) -> Result<Box<dyn Subject>, String> {
    Ok(Box::new(ErrorSubject))
}

struct ErrorSubject;

impl Subject for ErrorSubject {
    fn step(
        &mut self,
        _env: &Env,
        action: &str,
        args: &Value,
        expect: &mut Expect,
    ) -> Result<(), String> {
        if action != "describe" {
            return Err(format!("unknown error action `{action}`"));
        }
        let text = support::str_field(args, "code")?;
        let code = ErrorCode::parse(text).ok_or_else(|| format!("unknown error code `{text}`"))?;
        let upstream = support::field(args, "upstream")
            .and_then(Value::as_str)
            .unwrap_or("");
        let retry_after = support::duration_field(args, "retry_after")?;
        expect.eq("status", code.status())?;
        expect.eq("type", code.type_uri())?;
        expect.eq("title", code.title())?;
        expect.eq("degraded", code.degraded())?;
        expect.eq("detail", code.detail(upstream, retry_after))?;
        expect.eq("retry_after_s", retry_after.map(retry_after_seconds))
    }
}

pub fn names(_config: &Value, _env: &Env) -> Result<Box<dyn Subject>, String> {
    Ok(Box::new(NamesSubject))
}

struct NamesSubject;

impl Subject for NamesSubject {
    fn step(
        &mut self,
        _env: &Env,
        action: &str,
        _args: &Value,
        expect: &mut Expect,
    ) -> Result<(), String> {
        if action != "list" {
            return Err(format!("unknown names action `{action}`"));
        }
        expect.eq("metrics", json!(metric::ALL))?;
        expect.eq(
            "headers",
            json!([
                header::TIMEOUT_MS,
                header::GRPC_TIMEOUT,
                header::CRITICALITY,
                header::DEGRADED,
                header::RETRY_AFTER,
                header::IDEMPOTENCY_KEY,
                header::TRACEPARENT,
                header::TRACESTATE,
                header::REQUEST_ID
            ]),
        )?;
        expect.eq("outcomes", json!(Outcome::ALL.map(Outcome::as_str)))?;
        expect.eq("breaker_states", json!(State::ALL.map(State::as_str)))?;
        expect.eq(
            "transition_reasons",
            json!([
                Reason::FailureRate,
                Reason::SlowCallRate,
                Reason::ConsecutiveFailures,
                Reason::WaitElapsed,
                Reason::ProbesSucceeded,
                Reason::ProbesFailed,
                Reason::HalfOpenTimeout,
                Reason::Operator,
                Reason::Fleet
            ]
            .map(Reason::as_str)),
        )?;
        expect.eq("error_codes", json!(ErrorCode::ALL.map(ErrorCode::as_str)))?;
        expect.eq(
            "criticalities",
            json!(Criticality::ALL.map(Criticality::as_str)),
        )?;
        expect.eq("language", levee_core::names::LANGUAGE)
    }
}
