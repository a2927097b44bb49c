//! Runner subject for `policy: "breaker"` (conformance/policies/breaker.md).

use crate::support::{self, Env, Expect, Subject};
use levee_core::breaker::{BreakerConfig, CircuitBreaker, Mode, Override, Permit, Transition};
use levee_core::Outcome;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

pub fn subject(config: &Value, env: &Env) -> Result<Box<dyn Subject>, String> {
    let config: BreakerConfig = support::config(config)?;
    let breaker = CircuitBreaker::new("vector", config, env.random.clone())?;
    Ok(Box::new(BreakerSubject {
        breaker,
        permits: HashMap::new(),
    }))
}

struct BreakerSubject {
    breaker: CircuitBreaker,
    permits: HashMap<String, Permit>,
}

fn outcome(args: &Value) -> Result<Outcome, String> {
    let text = support::str_field(args, "outcome")?;
    serde_json::from_value(json!(text)).map_err(|_| format!("unknown outcome `{text}`"))
}

fn events_json(env: &Env, events: &[Transition], with_at: bool) -> Value {
    Value::Array(
        events
            .iter()
            .map(|t| {
                let mut e = json!({"from": t.from.as_str(), "to": t.to.as_str(), "reason": t.reason.as_str()});
                if with_at {
                    e["at"] = json!(env.elapsed_text(t.at));
                }
                e
            })
            .collect(),
    )
}

impl BreakerSubject {
    /// Checks the expectations every breaker step shares.
    fn check_common(
        &self,
        env: &Env,
        expect: &mut Expect,
        events: &[Transition],
    ) -> Result<(), String> {
        if let Some(expected) = expect.get("events") {
            let with_at = expected
                .as_array()
                .is_some_and(|a| a.iter().any(|e| e.get("at").is_some()));
            let actual = events_json(env, events, with_at);
            if expected != actual {
                return Err(format!("expected events {expected}, got {actual}"));
            }
        }
        expect.eq("state", self.breaker.state().as_str())?;
        if expect.has("counted")
            || expect.has("failures")
            || expect.has("slow")
            || expect.has("consecutive_failures")
        {
            let s = self.breaker.snapshot(env.now());
            expect.eq("counted", s.window.counted)?;
            expect.eq("failures", s.window.failures)?;
            expect.eq("slow", s.window.slow)?;
            expect.eq("consecutive_failures", s.consecutive_failures)?;
        }
        Ok(())
    }

    fn acquire(
        &mut self,
        env: &Env,
        expect: &mut Expect,
        events: &mut Vec<Transition>,
    ) -> Result<Option<Permit>, String> {
        let acquired = self.breaker.acquire(env.now());
        events.extend(acquired.transition);
        expect.eq("permitted", acquired.result.is_ok())?;
        match acquired.result {
            Ok(permit) => {
                expect.eq("probe", permit.is_probe())?;
                expect.eq("shadow_rejected", permit.shadow_rejected())?;
                expect.duration("retry_after", None)?;
                Ok(Some(permit))
            }
            Err(rejection) => {
                expect.eq("probe", false)?;
                expect.eq("shadow_rejected", false)?;
                expect.duration("retry_after", rejection.retry_after)?;
                Ok(None)
            }
        }
    }
}

impl Subject for BreakerSubject {
    fn step(
        &mut self,
        env: &Env,
        action: &str,
        args: &Value,
        expect: &mut Expect,
    ) -> Result<(), String> {
        let mut events = Vec::new();
        match action {
            "acquire" => {
                let permit = self.acquire(env, expect, &mut events)?;
                if let (Some(permit), Some(id)) =
                    (permit, support::field(args, "id").and_then(Value::as_str))
                {
                    self.permits.insert(id.to_string(), permit);
                }
            }
            "record" => {
                let id = support::str_field(args, "id")?;
                let permit = self
                    .permits
                    .remove(id)
                    .ok_or_else(|| format!("no permit with id `{id}`"))?;
                let duration = support::duration_field(args, "duration")?.unwrap_or(Duration::ZERO);
                events.extend(
                    self.breaker
                        .record(permit, outcome(args)?, duration, env.now()),
                );
            }
            "call" | "calls" => {
                let count = if action == "calls" {
                    support::field(args, "count")
                        .and_then(Value::as_u64)
                        .ok_or("`calls` needs a `count`")?
                } else {
                    1
                };
                let outcome = outcome(args)?;
                let duration = support::duration_field(args, "duration")?.unwrap_or(Duration::ZERO);
                let mut rejected = 0u64;
                let mut last_permitted = true;
                for _ in 0..count {
                    let acquired = self.breaker.acquire(env.now());
                    events.extend(acquired.transition);
                    match acquired.result {
                        Ok(permit) => {
                            last_permitted = true;
                            events.extend(self.breaker.record(
                                permit,
                                outcome,
                                duration,
                                env.now(),
                            ));
                        }
                        Err(_) => {
                            last_permitted = false;
                            rejected += 1;
                        }
                    }
                }
                if action == "call" {
                    expect.eq("permitted", last_permitted)?;
                } else {
                    expect.eq("rejected", rejected)?;
                }
            }
            "override" => {
                let value = match support::str_field(args, "state")? {
                    "forced_open" => Some(Override::ForcedOpen),
                    "disabled" => Some(Override::Disabled),
                    "none" => None,
                    other => {
                        return Err(format!(
                            "unknown override `{other}`: forced_open, disabled or none"
                        ))
                    }
                };
                events.extend(self.breaker.set_override(value, env.now()));
            }
            "mode" => {
                let mode = match support::str_field(args, "mode")? {
                    "observe" => Mode::Observe,
                    "enforce" => Mode::Enforce,
                    other => return Err(format!("unknown mode `{other}`")),
                };
                self.breaker.set_mode(mode);
            }
            "reconfigure" => {
                let config =
                    support::field(args, "config").ok_or("`reconfigure` needs a `config`")?;
                let config: BreakerConfig = support::config(config)?;
                self.breaker = self.breaker.reconfigured(config)?;
            }
            "check" => {}
            other => return Err(format!("unknown breaker action `{other}`")),
        }
        self.check_common(env, expect, &events)
    }
}
