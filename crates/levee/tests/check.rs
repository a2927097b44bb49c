//! `levee check FILE` end to end: the real binary on a good and a bad file.

use std::path::PathBuf;
use std::process::Command;

fn scratch(name: &str, text: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("levee-check-tests");
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write config");
    path
}

fn check(path: &std::path::Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_levee"))
        .arg("check")
        .arg(path)
        .output()
        .expect("run levee");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn good_file_prints_ok_and_exits_0() {
    let path = scratch(
        "good.yaml",
        "listeners:\n  - address: 127.0.0.1:8080\nupstreams:\n  inventory:\n    endpoints: \
         [127.0.0.1:7001, 127.0.0.1:7002]\nroutes:\n  - match: {path_prefix: /inventory}\n    \
         upstream: inventory\n",
    );
    let (code, stdout, stderr) = check(&path);
    assert_eq!(code, 0, "stderr: {stderr}");
    assert_eq!(
        stdout,
        format!("{}: ok (1 listener, 1 upstream, 1 route)\n", path.display())
    );
    assert!(stderr.is_empty(), "{stderr}");
}

#[test]
fn bad_file_lists_every_problem_with_positions_and_exits_1() {
    let path = scratch(
        "bad.yaml",
        "listeners:\n  - address: 127.0.0.1:8080\nupstreams:\n  inventory:\n    endpoints: \
         [127.0.0.1:7001]\n    breaker: {failure_threshold: 50}\nroutes:\n  - upstream: \
         inventory\n    timeout: 800\n",
    );
    let (code, stdout, stderr) = check(&path);
    assert_eq!(code, 1, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    let file = path.display().to_string();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    assert!(
        lines[0].starts_with(&format!(
            "{file}:6:15: upstreams.inventory.breaker.failure_threshold: unknown key \
             \"failure_threshold\"; did you mean \"failure_rate_threshold\"?"
        )),
        "{stderr}"
    );
    assert!(
        lines[1].starts_with(&format!(
            "{file}:9:14: routes[0].timeout: duration `800` has no unit: write `800ms`"
        )),
        "{stderr}"
    );
    assert_eq!(lines[2], format!("levee: {file}: 2 problems"));
}

#[test]
fn semantic_problems_exit_1_too() {
    let path = scratch(
        "dangling.yaml",
        "listeners:\n  - address: 127.0.0.1:8080\nupstreams:\n  inventory:\n    endpoints: \
         [127.0.0.1:7001]\nroutes:\n  - upstream: recs\n",
    );
    let (code, _, stderr) = check(&path);
    assert_eq!(code, 1);
    assert!(
        stderr.starts_with(&format!(
            "{}:7:15: routes[0].upstream: no upstream named \"recs\"",
            path.display()
        )),
        "{stderr}"
    );
}

#[test]
fn missing_file_exits_1() {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("no-such-levee.yaml");
    let (code, _, stderr) = check(&path);
    assert_eq!(code, 1);
    assert!(stderr.contains("cannot read the config file"), "{stderr}");
}

#[test]
fn shipped_examples_pass() {
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    for name in ["levee.yaml", "minimal.yaml"] {
        let (code, stdout, stderr) = check(&examples.join(name));
        assert_eq!(code, 0, "{name}: {stderr}");
        assert!(stdout.contains(": ok ("), "{stdout}");
    }
}
