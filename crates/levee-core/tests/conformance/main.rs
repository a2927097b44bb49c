//! The conformance runner: executes every JSON vector under `conformance/vectors/` against
//! levee-core. A new vector file needs no code change; a failure names the file and the step.
//! The format is described in `conformance/README.md` and `conformance/schema.json`.

mod adaptive_limit;
mod breaker;
mod bulkhead;
mod deadline;
mod rate_limit;
mod retry;
mod support;
mod vocabulary;

use serde_json::Value;
use std::path::{Path, PathBuf};
use support::{Env, Expect, Subject};

/// Builds the subject for a vector's `policy`, or returns the configuration error.
fn subject(policy: &str, config: &Value, env: &Env) -> Result<Box<dyn Subject>, String> {
    match policy {
        "breaker" => breaker::subject(config, env),
        "outcome" => vocabulary::outcome(config, env),
        "duration" => vocabulary::duration(config, env),
        "error" => vocabulary::error(config, env),
        "names" => vocabulary::names(config, env),
        "retry" => retry::subject(config, env),
        "retry_budget" => retry::budget_subject(config, env),
        "deadline" => deadline::subject(config, env),
        "rate_limit" => rate_limit::subject(config, env),
        "bulkhead" => bulkhead::subject(config, env),
        "adaptive_limit" => adaptive_limit::subject(config, env),
        other => Err(format!(
            "unknown policy `{other}` (config {config}, env {:?})",
            env.now()
        )),
    }
}

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../conformance/vectors")
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|x| x == "json") {
            out.push(path);
        }
    }
}

/// Runs one vector; `Err` carries "step N (action): what went wrong".
fn run_vector(vector: &Value) -> Result<usize, String> {
    let policy = vector["policy"]
        .as_str()
        .ok_or("vector has no string `policy`")?;
    let config = vector
        .get("config")
        .cloned()
        .unwrap_or(Value::Object(Default::default()));
    let env = Env::new();
    let built = subject(policy, &config, &env);
    if let Some(expected) = vector.get("config_error") {
        let needle = expected.as_str().ok_or("`config_error` must be a string")?;
        return match built {
            Ok(_) => Err(format!(
                "config was accepted, expected an error containing `{needle}`"
            )),
            Err(msg) if msg.contains(needle) => Ok(0),
            Err(msg) => Err(format!("config error `{msg}` does not contain `{needle}`")),
        };
    }
    let mut subject = built?;
    let steps = vector["steps"]
        .as_array()
        .ok_or("vector has no `steps` array")?;
    for (i, step) in steps.iter().enumerate() {
        let n = i + 1;
        let obj = step.as_object().ok_or(format!("step {n}: not an object"))?;
        let actions: Vec<&String> = obj
            .keys()
            .filter(|k| !matches!(k.as_str(), "expect" | "comment"))
            .collect();
        let [action] = actions.as_slice() else {
            return Err(format!(
                "step {n}: needs exactly one action key, found {actions:?}"
            ));
        };
        let args = &obj[action.as_str()];
        let mut expect = Expect::new(obj.get("expect")).map_err(|e| format!("step {n}: {e}"))?;
        let result = match action.as_str() {
            "advance" => support::duration_value(args).map(|d| env.clock.advance(d)),
            "random" => args
                .as_array()
                .and_then(|a| a.iter().map(Value::as_f64).collect::<Option<Vec<f64>>>())
                .map(|draws| env.random.push(draws))
                .ok_or_else(|| "`random` must be an array of numbers in [0, 1)".to_string()),
            _ => subject.step(&env, action, args, &mut expect),
        };
        result
            .and_then(|()| expect.finish())
            .and_then(|()| {
                if env.random.take_ran_dry() {
                    Err(
                        "needed a random draw the vector did not supply (add a `random` step)"
                            .into(),
                    )
                } else {
                    Ok(())
                }
            })
            .map_err(|e| format!("step {n} ({action}): {e}"))?;
    }
    if env.random.remaining() > 0 {
        return Err(format!(
            "{} random draw(s) were supplied but never used",
            env.random.remaining()
        ));
    }
    Ok(steps.len())
}

#[test]
fn every_vector_passes() {
    let mut files = Vec::new();
    collect(&vectors_dir(), &mut files);
    let mut failures = Vec::new();
    let mut steps = 0;
    for file in &files {
        let name = file
            .strip_prefix(vectors_dir())
            .unwrap_or(file)
            .display()
            .to_string();
        let outcome = std::fs::read_to_string(file)
            .map_err(|e| e.to_string())
            .and_then(|text| {
                serde_json::from_str::<Value>(&text).map_err(|e| format!("invalid JSON: {e}"))
            })
            .and_then(|v| run_vector(&v));
        match outcome {
            Ok(n) => steps += n,
            Err(e) => failures.push(format!("conformance/vectors/{name}: {e}")),
        }
    }
    let passed = files.len() - failures.len();
    println!(
        "conformance: {passed} of {} vectors passed ({steps} steps)",
        files.len()
    );
    assert!(
        failures.is_empty(),
        "{} vector(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        !files.is_empty(),
        "no vectors found under {}",
        vectors_dir().display()
    );
}
