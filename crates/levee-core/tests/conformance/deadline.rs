//! Runner subject for `policy: "deadline"` (conformance/policies/deadline.md).

use crate::retry::{known_args, opt_duration};
use crate::support::{self, Env, Expect, Subject};
use levee_core::deadline::{self, Deadline, DeadlineError};
use serde_json::Value;
use std::time::Duration;

pub fn subject(config: &Value, _env: &Env) -> Result<Box<dyn Subject>, String> {
    match config {
        Value::Object(map) if map.is_empty() => Ok(Box::new(DeadlineSubject { deadline: None })),
        other => Err(format!(
            "config: the deadline policy takes no config, got {other}"
        )),
    }
}

struct DeadlineSubject {
    deadline: Option<Deadline>,
}

fn check_parse(result: Result<Duration, DeadlineError>, expect: &mut Expect) -> Result<(), String> {
    match result {
        Ok(d) => {
            expect.duration("remaining", Some(d))?;
            expect.eq("error", Value::Null)
        }
        Err(e) => {
            expect.duration("remaining", None)?;
            expect.eq("error", e.kind.as_str())
        }
    }
}

/// An optional string argument; `null` counts as absent.
fn opt_str<'a>(args: &'a Value, key: &str) -> Result<Option<&'a str>, String> {
    match support::field(args, key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(format!("`{key}` must be a string or null, got {other}")),
    }
}

fn required_duration(args: &Value, key: &str) -> Result<Duration, String> {
    opt_duration(args, key)?.ok_or_else(|| format!("step needs a duration `{key}`"))
}

impl Subject for DeadlineSubject {
    fn step(
        &mut self,
        env: &Env,
        action: &str,
        args: &Value,
        expect: &mut Expect,
    ) -> Result<(), String> {
        match action {
            "parse_timeout_ms" => {
                known_args(args, &["value"])?;
                check_parse(
                    deadline::parse_timeout_ms(support::str_field(args, "value")?),
                    expect,
                )
            }
            "parse_grpc_timeout" => {
                known_args(args, &["value"])?;
                check_parse(
                    deadline::parse_grpc_timeout(support::str_field(args, "value")?),
                    expect,
                )
            }
            "format_timeout_ms" => {
                known_args(args, &["remaining"])?;
                expect.eq(
                    "value",
                    deadline::format_timeout_ms(required_duration(args, "remaining")?),
                )
            }
            "format_grpc_timeout" => {
                known_args(args, &["remaining"])?;
                expect.eq(
                    "value",
                    deadline::format_grpc_timeout(required_duration(args, "remaining")?),
                )
            }
            "effective" => {
                known_args(args, &["route_timeout", "inbound"])?;
                let d = deadline::effective_deadline(
                    opt_duration(args, "route_timeout")?,
                    opt_duration(args, "inbound")?,
                );
                expect.duration("deadline", d)
            }
            "inbound" => {
                known_args(args, &["timeout_ms", "grpc_timeout", "route_timeout"])?;
                let route = opt_duration(args, "route_timeout")?;
                let parsed = deadline::inbound_remaining(
                    opt_str(args, "timeout_ms")?,
                    opt_str(args, "grpc_timeout")?,
                );
                match parsed {
                    Err(e) => {
                        self.deadline = None;
                        expect.eq("error", e.kind.as_str())?;
                        expect.eq("code", e.code().as_str())?;
                        expect.duration("deadline", None)
                    }
                    Ok(inbound) => {
                        let d = deadline::effective_deadline(route, inbound);
                        self.deadline = d.map(|d| Deadline::after(env.now(), d));
                        let spent = self.deadline.is_some_and(|dl| dl.is_spent(env.now()));
                        expect.eq("error", Value::Null)?;
                        expect.eq(
                            "code",
                            if spent {
                                Value::from("deadline_exceeded")
                            } else {
                                Value::Null
                            },
                        )?;
                        expect.duration("deadline", d)
                    }
                }
            }
            "outbound" => {
                known_args(args, &[])?;
                let now = env.now();
                match self.deadline {
                    None => {
                        expect.duration("remaining", None)?;
                        expect.eq("spent", false)?;
                        expect.eq("timeout_ms", Value::Null)?;
                        expect.eq("grpc_timeout", Value::Null)
                    }
                    Some(dl) => {
                        let remaining = dl.remaining(now);
                        expect.duration("remaining", Some(remaining))?;
                        expect.eq("spent", dl.is_spent(now))?;
                        expect.eq("timeout_ms", deadline::format_timeout_ms(remaining))?;
                        expect.eq("grpc_timeout", deadline::format_grpc_timeout(remaining))
                    }
                }
            }
            other => Err(format!("unknown deadline step `{other}`")),
        }
    }
}
