//! The daemon lifecycle with real signals: SIGHUP with a broken file keeps serving, a good
//! file is applied, SIGTERM drains without losing a request in flight.
//!
//! The daemon runs in a child process — this same test binary re-run with
//! `LEVEE_PROXY_TEST_CHILD` set, executing only [`child_daemon`] — so signals reach it and not
//! the test runner. The child prints `READY <proxy> <admin>` once it serves.

mod support;

use http::StatusCode;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::*;

const CHILD_ENV: &str = "LEVEE_PROXY_TEST_CHILD";

/// Not a test of its own: the body of the child process (returns at once otherwise).
#[test]
fn child_daemon() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    // The parent holds our stdin open; if it dies, stdin closes and we go too, so a failed
    // test never leaves a daemon behind.
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        std::process::exit(3);
    });
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let mut options = levee_proxy::daemon::Options::new(path);
    options.poll = Duration::from_millis(100);
    options.on_ready = Some(Box::new(|ready| {
        println!("READY {} {}", ready.listeners[0].1, ready.admin);
    }));
    let code = match runtime.block_on(levee_proxy::daemon::run(options)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("daemon failed: {e}");
            1
        }
    };
    // Exit here, so the parent reads the daemon's own exit status.
    std::process::exit(code);
}

struct Daemon {
    child: Child,
    proxy: SocketAddr,
    admin: SocketAddr,
}

impl Daemon {
    fn start(config: &Path) -> Daemon {
        let exe = std::env::current_exe().expect("test binary");
        let mut child = Command::new(exe)
            .args(["child_daemon", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the daemon");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                // libtest may print `test child_daemon ... ` before it on the same line.
                if let Some((_, rest)) = line.split_once("READY ") {
                    let _ = tx.send(rest.to_string());
                }
            }
        });
        let ready = rx.recv_timeout(PATIENCE).expect("the daemon reports READY");
        let mut parts = ready.split_whitespace();
        let proxy = parts
            .next()
            .and_then(|p| p.parse().ok())
            .expect("proxy address");
        let admin = parts
            .next()
            .and_then(|p| p.parse().ok())
            .expect("admin address");
        Daemon {
            child,
            proxy,
            admin,
        }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    async fn health(&self) -> serde_json::Value {
        send(get(&format!("http://{}/health", self.admin)))
            .await
            .json()
    }

    /// Waits for the process to exit; its exit code.
    async fn exit_code(&mut self) -> Option<i32> {
        eventually("the daemon exits", || {
            let status = self.child.try_wait().ok().flatten();
            async move { status }
        })
        .await
        .code()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config_file(name: &str, text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("levee-proxy-{}-{name}.yaml", std::process::id()));
    std::fs::write(&path, text).expect("write config");
    path
}

fn daemon_config(upstream: SocketAddr, routes: &str, drain: &str) -> String {
    format!(
        "service: lifecycle\nlisteners:\n  - address: 127.0.0.1:0\nadmin: {{address: 127.0.0.1:0}}\n{drain}upstreams:\n  inventory: {{endpoints: [{upstream}]}}\nroutes:\n{routes}"
    )
}

const ITEMS: &str = "  - {match: {path_prefix: /items}, upstream: inventory}\n";

#[tokio::test]
async fn sighup_with_a_broken_file_keeps_serving_and_a_good_one_is_applied() {
    let a = inventory("inventory").await;
    let path = config_file("reload", &daemon_config(a.addr, ITEMS, ""));
    let mut daemon = Daemon::start(&path);
    let url = format!("http://{}/items/1", daemon.proxy);
    assert_eq!(send(get(&url)).await.status, StatusCode::OK);

    std::fs::write(&path, "service: lifecycle\nroutes: [\n").expect("break the file");
    daemon.signal("HUP");
    let error = eventually("the failed reload shows in /health", || async {
        let h = daemon.health().await;
        let last = &h["config"]["last_reload"];
        (last["ok"] == false).then(|| last["error"].as_str().unwrap_or_default().to_string())
    })
    .await;
    assert!(
        error.contains(".yaml:"),
        "names the file, line and column: {error}"
    );
    assert_eq!(daemon.health().await["config"]["generation"], 1);
    let r = send(get(&url)).await;
    assert_eq!(r.status, StatusCode::OK, "the running config keeps serving");

    let routes = format!("{ITEMS}  - {{match: {{path: /echo}}, upstream: inventory}}\n");
    std::fs::write(&path, daemon_config(a.addr, &routes, "")).expect("fix the file");
    daemon.signal("HUP");
    eventually("the good file is applied", || async {
        let h = daemon.health().await;
        (h["config"]["generation"] == 2 && h["config"]["last_reload"]["ok"] == true).then_some(())
    })
    .await;
    let echo = send(request(
        http::Method::POST,
        &format!("http://{}/echo", daemon.proxy),
        "new route",
    ))
    .await;
    assert_eq!(echo.text(), "new route");

    daemon.signal("TERM");
    assert_eq!(daemon.exit_code().await, Some(0));
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn sigterm_drains_without_failing_a_request_in_flight() {
    let a = inventory("inventory").await;
    let path = config_file(
        "drain",
        &daemon_config(a.addr, ITEMS, "drain: {delay: 1s, timeout: 20s}\n"),
    );
    let mut daemon = Daemon::start(&path);
    let url = format!("http://{}/items/1", daemon.proxy);
    let mut in_flight = Vec::new();
    for _ in 0..4 {
        let mut slow = get(&url);
        slow.headers_mut()
            .insert("x-inventory-delay-ms", "1500".parse().expect("value"));
        in_flight.push(tokio::spawn(send(slow)));
    }
    eventually("four requests in flight", || async {
        (a.state.stats.in_flight() == 4).then_some(())
    })
    .await;

    daemon.signal("TERM");
    let readyz = format!("http://{}/readyz", daemon.admin);
    eventually("/readyz says 503 at once", || async {
        (send(get(&readyz)).await.status == StatusCode::SERVICE_UNAVAILABLE).then_some(())
    })
    .await;
    // During drain.delay new connections are still served.
    assert_eq!(send(get(&url)).await.status, StatusCode::OK);

    for request in in_flight {
        let answer = request.await.expect("request task");
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    }
    assert_eq!(daemon.exit_code().await, Some(0));
    assert_eq!(a.state.stats.cancelled(), 0);
    assert!(
        tokio::net::TcpStream::connect(daemon.proxy).await.is_err(),
        "listener closed"
    );
    let _ = std::fs::remove_file(&path);
}
