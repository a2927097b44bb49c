//! Subject `adaptive_limit` (SPEC §3, the bulkhead's `limit:`). Steps, expectations and rules:
//! `conformance/policies/adaptive_limit.md`.
//!
//! Exact floating-point expectations (`estimate`, `long_rtt_ns`) are decimal strings parsed
//! with a correctly rounded parser and compared bit for bit: JSON number parsers do not all
//! round correctly, strings make both runners read the same double.

use crate::support::{self, Env, Expect, Subject};
use levee_core::adaptive::{AdaptiveLimit, AdaptiveLimitConfig};
use levee_core::Outcome;
use serde_json::{json, Value};

/// Builds the subject, or returns the configuration error.
pub fn subject(config: &Value, _env: &Env) -> Result<Box<dyn Subject>, String> {
    let config: AdaptiveLimitConfig = support::config(config)?;
    config.validate()?;
    Ok(Box::new(AdaptiveLimitSubject {
        limit: AdaptiveLimit::new(&config),
    }))
}

struct AdaptiveLimitSubject {
    limit: AdaptiveLimit,
}

/// Compares an exact float expectation (a decimal string, or `null`) with `actual`.
fn exact_float(expect: &mut Expect, key: &str, actual: Option<f64>) -> Result<(), String> {
    let Some(expected) = expect.get(key) else {
        return Ok(());
    };
    let expected = match &expected {
        Value::Null => None,
        Value::String(text) => Some(
            text.parse::<f64>()
                .map_err(|e| format!("`{key}` must be a decimal string: {e}"))?,
        ),
        other => {
            return Err(format!(
                "`{key}` must be a decimal string such as \"20.8\", got {other}"
            ))
        }
    };
    match (expected, actual) {
        (Some(e), Some(a)) if e.to_bits() == a.to_bits() => Ok(()),
        (None, None) => Ok(()),
        _ => Err(format!("expected {key} = {expected:?}, got {actual:?}")),
    }
}

impl Subject for AdaptiveLimitSubject {
    fn step(
        &mut self,
        _env: &Env,
        action: &str,
        args: &Value,
        expect: &mut Expect,
    ) -> Result<(), String> {
        match action {
            "sample" => {
                let map = args.as_object().ok_or("`sample` takes an object")?;
                if let Some(key) = map
                    .keys()
                    .find(|k| !matches!(k.as_str(), "rtt" | "in_flight" | "outcome"))
                {
                    return Err(format!(
                        "unknown argument `{key}` (sample takes rtt, in_flight, outcome)"
                    ));
                }
                let rtt = support::duration_field(args, "rtt")?.ok_or("`sample` needs `rtt`")?;
                let in_flight = support::field(args, "in_flight")
                    .and_then(Value::as_u64)
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or("`sample` needs `in_flight`, a whole number")?;
                let outcome: Outcome =
                    serde_json::from_value(json!(support::str_field(args, "outcome")?))
                        .map_err(|e| format!("`outcome`: {e}"))?;
                if !outcome.is_counted() {
                    return Err(format!(
                        "outcome `{outcome}` is never a sample (only success, failure and timeout are)"
                    ));
                }
                let returned = self.limit.on_sample(rtt, in_flight, outcome.is_failure());
                if returned != self.limit.limit() {
                    return Err(format!(
                        "on_sample returned {returned}, limit() says {}",
                        self.limit.limit()
                    ));
                }
            }
            "state" => {
                if !matches!(args.as_object(), Some(m) if m.is_empty()) {
                    return Err("`state` takes an empty object".into());
                }
            }
            other => {
                return Err(format!(
                    "unknown adaptive_limit action `{other}` (use sample, state)"
                ))
            }
        }
        expect.eq("limit", self.limit.limit())?;
        exact_float(expect, "estimate", Some(self.limit.estimate()))?;
        exact_float(expect, "long_rtt_ns", self.limit.long_rtt_nanos())
    }
}
