//! The runner's shared machinery: the vector environment (manual clock, scripted random
//! source), expectation checking that refuses to ignore an expected key, and value parsing.

use levee_core::random::ScriptedRandom;
use levee_core::time::{ManualClock, Timestamp};
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// Where every vector starts: a non-zero origin so "before the start" is representable.
pub const START: Timestamp = Timestamp::from_nanos(1_000_000_000_000);

/// The environment one vector runs in.
pub struct Env {
    /// The vector's clock; `advance` steps move it.
    pub clock: ManualClock,
    /// The vector's random draws; `random` steps append to it.
    pub random: Arc<ScriptedRandom>,
}

impl Env {
    pub fn new() -> Self {
        Env {
            clock: ManualClock::new(START),
            random: Arc::new(ScriptedRandom::default()),
        }
    }

    /// The current vector time.
    pub fn now(&self) -> Timestamp {
        levee_core::Clock::now(&self.clock)
    }

    /// Time since the vector started, as vectors write it (`"at"` fields).
    pub fn elapsed_text(&self, at: Timestamp) -> String {
        levee_core::duration::format(at - START)
    }
}

/// A policy under test: receives each step that the framework does not handle itself.
pub trait Subject {
    /// Runs one step. `action` is the step's action key, `args` its value, `expect` the
    /// checker for the step's `expect` object (empty when the step has none).
    fn step(
        &mut self,
        env: &Env,
        action: &str,
        args: &Value,
        expect: &mut Expect,
    ) -> Result<(), String>;
}

/// Checks a step's `expect` object key by key. Every key present must be checked by the
/// subject; [`Expect::finish`] fails on any key nobody looked at, so a typo in a vector can
/// never pass silently.
pub struct Expect {
    map: Map<String, Value>,
    checked: BTreeSet<String>,
}

impl Expect {
    pub fn new(expect: Option<&Value>) -> Result<Self, String> {
        match expect {
            None => Ok(Expect {
                map: Map::new(),
                checked: BTreeSet::new(),
            }),
            Some(Value::Object(map)) => Ok(Expect {
                map: map.clone(),
                checked: BTreeSet::new(),
            }),
            Some(other) => Err(format!("`expect` must be an object, got {other}")),
        }
    }

    /// The expected value of `key`, if the vector gives one (marks it checked).
    pub fn get(&mut self, key: &str) -> Option<Value> {
        let v = self.map.get(key).cloned();
        if v.is_some() {
            self.checked.insert(key.to_string());
        }
        v
    }

    /// Compares `key`'s expected value with `actual` when the vector gives one.
    pub fn eq(&mut self, key: &str, actual: impl Into<Value>) -> Result<(), String> {
        if let Some(expected) = self.get(key) {
            let actual = actual.into();
            if expected != actual {
                return Err(format!("expected {key} = {expected}, got {actual}"));
            }
        }
        Ok(())
    }

    /// Compares a duration expectation (a duration string) with `actual`.
    pub fn duration(&mut self, key: &str, actual: Option<Duration>) -> Result<(), String> {
        if let Some(expected) = self.get(key) {
            let expected_d = match &expected {
                Value::Null => None,
                other => Some(duration_value(other)?),
            };
            if expected_d != actual {
                let shown = actual.map(levee_core::duration::format);
                return Err(format!("expected {key} = {expected}, got {shown:?}"));
            }
        }
        Ok(())
    }

    /// True when the vector expects `key`.
    pub fn has(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// Fails if any expected key was not checked.
    pub fn finish(self) -> Result<(), String> {
        let unchecked: Vec<&String> = self
            .map
            .keys()
            .filter(|k| !self.checked.contains(*k))
            .collect();
        if unchecked.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "expect keys {unchecked:?} are not understood by this step"
            ))
        }
    }
}

/// Parses a duration string value.
pub fn duration_value(v: &Value) -> Result<Duration, String> {
    let text = v
        .as_str()
        .ok_or_else(|| format!("expected a duration string, got {v}"))?;
    levee_core::duration::parse(text).map_err(|e| e.to_string())
}

/// Reads a field of a step's arguments.
pub fn field<'a>(args: &'a Value, key: &str) -> Option<&'a Value> {
    args.as_object().and_then(|m| m.get(key))
}

/// Reads a required string field.
pub fn str_field<'a>(args: &'a Value, key: &str) -> Result<&'a str, String> {
    field(args, key)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("step needs a string `{key}`"))
}

/// Reads an optional duration field.
pub fn duration_field(args: &Value, key: &str) -> Result<Option<Duration>, String> {
    field(args, key).map(duration_value).transpose()
}

/// Reads a config object into a typed config, with serde's message on failure.
pub fn config<T: serde::de::DeserializeOwned>(config: &Value) -> Result<T, String> {
    serde_json::from_value(config.clone()).map_err(|e| format!("config: {e}"))
}
