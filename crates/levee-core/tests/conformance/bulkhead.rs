//! Subject `bulkhead` (SPEC §3). Steps, expectations and rules: `conformance/policies/bulkhead.md`.
//!
//! The runner names calls by the vector's ids. After every step it polls each waiting call
//! with `try_take`, so that `granted`, `evicted` and `timed_out` report what changed during the
//! step, each in queue order (class, highest first, then arrival).

use crate::support::{self, Env, Expect, Subject};
use levee_core::bulkhead::{
    Acquire, Bulkhead, BulkheadConfig, BulkheadPermit, QueuedCall, RejectReason,
};
use levee_core::{Criticality, Outcome};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};

/// Builds the subject, or returns the configuration error.
pub fn subject(config: &Value, _env: &Env) -> Result<Box<dyn Subject>, String> {
    let config: BulkheadConfig = support::config(config)?;
    config.validate()?;
    Ok(Box::new(BulkheadSubject {
        bulkhead: Bulkhead::new(config)?,
        calls: HashMap::new(),
        permits: BTreeMap::new(),
        waiting: BTreeMap::new(),
    }))
}

struct BulkheadSubject {
    bulkhead: Bulkhead,
    /// Every id used so far: its class and arrival number.
    calls: HashMap<String, (Criticality, usize)>,
    permits: BTreeMap<String, BulkheadPermit>,
    waiting: BTreeMap<String, QueuedCall>,
}

/// Fails on argument keys the action does not take, so a typo cannot pass silently.
fn only_keys(args: &Value, allowed: &[&str]) -> Result<(), String> {
    let map = args
        .as_object()
        .ok_or_else(|| format!("arguments must be an object, got {args}"))?;
    match map.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(key) => Err(format!(
            "unknown argument `{key}` (this action takes {allowed:?})"
        )),
        None => Ok(()),
    }
}

impl BulkheadSubject {
    fn acquire(&mut self, env: &Env, args: &Value, expect: &mut Expect) -> Result<(), String> {
        only_keys(args, &["id", "criticality"])?;
        let id = support::str_field(args, "id")?.to_string();
        let class = match support::field(args, "criticality") {
            None => Criticality::Standard,
            Some(v) => v
                .as_str()
                .ok_or_else(|| format!("`criticality` must be a string, got {v}"))?
                .parse::<Criticality>()
                .map_err(|e| e.to_string())?,
        };
        if self.calls.contains_key(&id) {
            return Err(format!("id `{id}` is already used in this vector"));
        }
        self.calls.insert(id.clone(), (class, self.calls.len()));
        let (result, reason, deadline) = match self.bulkhead.try_acquire(class, env.now()) {
            Acquire::Permitted(permit) => {
                self.permits.insert(id, permit);
                ("permitted", Value::Null, None)
            }
            Acquire::Queued(call) => {
                let deadline = call.deadline() - support::START;
                self.waiting.insert(id, call);
                ("queued", Value::Null, Some(deadline))
            }
            Acquire::Rejected(rejection) => {
                if rejection.class != class {
                    return Err(format!(
                        "rejection names class {}, not {class}",
                        rejection.class
                    ));
                }
                ("rejected", json!(rejection.reason.as_str()), None)
            }
        };
        expect.eq("result", result)?;
        expect.eq("reason", reason)?;
        expect.duration("deadline", deadline)
    }

    fn permit(&mut self, args: &Value) -> Result<BulkheadPermit, String> {
        let id = support::str_field(args, "id")?;
        self.permits.remove(id).ok_or_else(|| {
            format!("`{id}` holds no permit (unknown, waiting, rejected or already released)")
        })
    }

    /// Polls every waiting call; reports grants, evictions and timeouts of this step.
    fn poll(&mut self, expect: &mut Expect) -> Result<(), String> {
        let mut granted = Vec::new();
        let mut evicted = Vec::new();
        let mut timed_out = Vec::new();
        let ids: Vec<String> = self.waiting.keys().cloned().collect();
        for id in ids {
            let Some(call) = self.waiting.get_mut(&id) else {
                continue;
            };
            match call.try_take() {
                None => continue,
                Some(Ok(permit)) => {
                    self.permits.insert(id.clone(), permit);
                    granted.push(id.clone());
                }
                Some(Err(rejection)) => match rejection.reason {
                    RejectReason::Evicted => evicted.push(id.clone()),
                    RejectReason::QueueTimeout => timed_out.push(id.clone()),
                    RejectReason::Full => {
                        return Err(format!("waiting call `{id}` was rejected with `full`"))
                    }
                },
            }
            self.waiting.remove(&id);
        }
        for (key, mut list) in [
            ("granted", granted),
            ("evicted", evicted),
            ("timed_out", timed_out),
        ] {
            list.sort_by_key(|id| {
                let (class, arrival) = self.calls.get(id).copied().unwrap_or_default();
                (std::cmp::Reverse(class), arrival)
            });
            expect.eq(key, json!(list))?;
        }
        Ok(())
    }
}

impl Subject for BulkheadSubject {
    fn step(
        &mut self,
        env: &Env,
        action: &str,
        args: &Value,
        expect: &mut Expect,
    ) -> Result<(), String> {
        let now = env.now();
        match action {
            "acquire" => self.acquire(env, args, expect)?,
            "release" => {
                only_keys(args, &["id"])?;
                self.permit(args)?.release(now);
            }
            "complete" => {
                only_keys(args, &["id", "outcome"])?;
                let outcome: Outcome =
                    serde_json::from_value(json!(support::str_field(args, "outcome")?))
                        .map_err(|e| format!("`outcome`: {e}"))?;
                self.permit(args)?.complete(outcome, now);
            }
            "cancel" => {
                only_keys(args, &["id"])?;
                let id = support::str_field(args, "id")?;
                let call = self.waiting.remove(id).ok_or_else(|| {
                    format!("`{id}` is not waiting (unknown, granted or rejected)")
                })?;
                drop(call);
            }
            "expire" => {
                only_keys(args, &[])?;
                let expired = self.bulkhead.expire_waiting(now);
                expect.eq("expired", expired)?;
            }
            "state" => only_keys(args, &[])?,
            other => {
                return Err(format!(
                    "unknown bulkhead action `{other}` (use acquire, release, complete, cancel, \
                     expire, state, advance)"
                ))
            }
        }
        self.poll(expect)?;
        let snapshot = self.bulkhead.snapshot();
        expect.eq("in_flight", snapshot.in_flight)?;
        expect.eq("queue_depth", snapshot.queue_depth)?;
        expect.eq("limit", snapshot.limit)?;
        expect.eq(
            "class_limits",
            serde_json::to_value(snapshot.class_limits).map_err(|e| e.to_string())?,
        )
    }
}
