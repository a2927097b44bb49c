//! Runner subject for `policy: "rate_limit"` (conformance/policies/rate_limit.md).

use crate::retry::{known_args, opt_count};
use crate::support::{self, Env, Expect, Subject};
use levee_core::rate_limit::{KeyedRateLimiter, RateDecision, RateLimitConfig};
use serde_json::Value;

pub fn subject(config: &Value, _env: &Env) -> Result<Box<dyn Subject>, String> {
    let config: RateLimitConfig = support::config(config)?;
    config.validate().map_err(|e| format!("config: {e}"))?;
    Ok(Box::new(RateLimitSubject {
        limiter: KeyedRateLimiter::new(config),
    }))
}

struct RateLimitSubject {
    limiter: KeyedRateLimiter,
}

/// The step's `key`: absent or `null` means the request lacks the key header.
fn key(args: &Value) -> Result<Option<&str>, String> {
    match support::field(args, "key") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(format!("`key` must be a string or null, got {other}")),
    }
}

impl Subject for RateLimitSubject {
    fn step(
        &mut self,
        env: &Env,
        action: &str,
        args: &Value,
        expect: &mut Expect,
    ) -> Result<(), String> {
        let key = key(args)?;
        let key_bytes = key.map(str::as_bytes);
        match action {
            "request" => {
                known_args(args, &["key"])?;
                match self.limiter.acquire(key_bytes, env.now()) {
                    RateDecision::Allowed => {
                        expect.eq("allowed", true)?;
                        expect.duration("retry_after", None)?;
                    }
                    RateDecision::Limited { retry_after } => {
                        expect.eq("allowed", false)?;
                        expect.duration("retry_after", Some(retry_after))?;
                    }
                }
            }
            "requests" => {
                known_args(args, &["key", "count"])?;
                let count = opt_count(args, "count", 1)?;
                let allowed = (0..count)
                    .filter(|_| self.limiter.acquire(key_bytes, env.now()).is_allowed())
                    .count() as u64;
                expect.eq("allowed_count", allowed)?;
                expect.eq("limited_count", count - allowed)?;
            }
            "inspect" => known_args(args, &["key"])?,
            other => return Err(format!("unknown rate_limit step `{other}`")),
        }
        if expect.has("available") {
            expect.eq("available", self.limiter.available(key_bytes, env.now()))?;
        }
        expect.eq("tracked_keys", self.limiter.tracked_keys())
    }
}
