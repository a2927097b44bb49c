//! Real processes for end-to-end tests: `levee registry` and `levee run` are children of the
//! test (the binary cargo built), killed by id when dropped; upstreams are in-process
//! `inventory` servers. Every time-dependent condition is polled with a deadline
//! ([`eventually`]), never slept on.

#![allow(dead_code)]

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use levee_registry_client::Api;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long any polled condition may take before the test fails (processes on a busy
/// two-core machine start slowly; nothing here is a timing assertion).
pub const PATIENCE: Duration = Duration::from_secs(30);

/// The registry's reporter token (the proxies' `LEVEE_REGISTRY_TOKEN`).
pub const REPORTER: &str = "reporter-token-for-tests";
/// The registry's operator token.
pub const OPERATOR: &str = "operator-token-for-tests";
/// The proxies' admin token (`LEVEE_ADMIN_TOKEN`): also the embedded registry's operator token.
pub const ADMIN: &str = "admin-token-for-tests";

/// A child process killed (by its own id) and reaped when dropped.
pub struct Child {
    child: std::process::Child,
    name: String,
}

impl Child {
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.kill();
    }
}

fn levee() -> Command {
    Command::new(env!("CARGO_BIN_EXE_levee"))
}

/// Reads a child's stream line by line on a thread: every line is kept, and lines are also
/// sent to `tx` for whoever waits for a particular one.
fn collect(
    stream: impl std::io::Read + Send + 'static,
    lines: Arc<Mutex<Vec<String>>>,
    tx: mpsc::Sender<String>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            lines
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(line.clone());
            let _ = tx.send(line);
        }
    });
}

/// A `levee registry` process (memory backend).
pub struct RegistryProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its address.
    pub addr: SocketAddr,
}

impl RegistryProcess {
    /// Starts `levee registry --listen <listen>` and waits until it listens.
    pub fn start(listen: &str) -> RegistryProcess {
        let mut child = levee()
            .args(["registry", "--listen", listen, "--heartbeat", "1s"])
            .env("LEVEE_REGISTRY_REPORTER_TOKEN", REPORTER)
            .env("LEVEE_REGISTRY_OPERATOR_TOKEN", OPERATOR)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start levee registry");
        let (tx, rx) = mpsc::channel();
        let lines = Arc::new(Mutex::new(Vec::new()));
        if let Some(out) = child.stdout.take() {
            collect(out, Arc::clone(&lines), tx.clone());
        }
        if let Some(err) = child.stderr.take() {
            collect(err, Arc::clone(&lines), tx);
        }
        let child = Child {
            child,
            name: "levee registry".into(),
        };
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix("levee registry listening on ") {
                        let url = rest.split_whitespace().next().expect("url").to_string();
                        let addr = url.trim_start_matches("http://").parse().expect("address");
                        return RegistryProcess { child, url, addr };
                    }
                }
                Err(_) => panic!(
                    "levee registry did not start: {:?}",
                    lines.lock().unwrap_or_else(|p| p.into_inner())
                ),
            }
        }
    }

    /// A typed client with the operator token.
    pub fn operator(&self) -> Api {
        Api::new(&self.url, Some(OPERATOR)).expect("api")
    }

    /// Kills the process (SIGKILL: no goodbye to the watchers).
    pub fn kill(mut self) {
        self.child.kill();
    }
}

static CONFIGS: AtomicU64 = AtomicU64::new(0);

fn scratch(name: &str, text: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("levee-fleet-tests");
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let n = CONFIGS.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!("{name}-{}-{n}.yaml", std::process::id()));
    std::fs::write(&path, text).expect("write config");
    path
}

/// A `levee run` process.
pub struct LeveeProcess {
    child: Child,
    /// The first traffic listener.
    pub addr: SocketAddr,
    /// The admin listener.
    pub admin: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
    /// Every standard-error line after startup; disconnected once the stream ends.
    lines: mpsc::Receiver<String>,
}

fn field(line: &serde_json::Value, name: &str) -> Option<String> {
    line.get(name)?.as_str().map(str::to_string)
}

impl LeveeProcess {
    /// Runs `yaml` (listeners and admin on port 0) with the test tokens in the environment,
    /// and waits until it serves.
    pub fn start(name: &str, yaml: &str) -> LeveeProcess {
        LeveeProcess::start_with_threads(name, yaml, 2)
    }

    /// [`LeveeProcess::start`] with `--threads threads` (1: the single-threaded runtime).
    pub fn start_with_threads(name: &str, yaml: &str, threads: usize) -> LeveeProcess {
        let path = scratch(name, yaml);
        let mut child = levee()
            .arg("run")
            .arg("--config")
            .arg(&path)
            .args(["--threads", &threads.to_string()])
            .env("LEVEE_REGISTRY_TOKEN", REPORTER)
            .env("LEVEE_ADMIN_TOKEN", ADMIN)
            .env("LEVEE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start levee run");
        let (tx, rx) = mpsc::channel();
        let logs = Arc::new(Mutex::new(Vec::new()));
        if let Some(err) = child.stderr.take() {
            collect(err, Arc::clone(&logs), tx);
        }
        let child = Child {
            child,
            name: format!("levee run ({name})"),
        };
        let deadline = std::time::Instant::now() + PATIENCE;
        let mut listener = None;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let Ok(line) = rx.recv_timeout(left) else {
                panic!(
                    "levee run ({name}) did not start: {:#?}",
                    logs.lock().unwrap_or_else(|p| p.into_inner())
                );
            };
            let Ok(json) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            match json.get("message").and_then(|m| m.as_str()) {
                Some("listening") if listener.is_none() => {
                    listener = field(&json, "address").and_then(|a| a.parse().ok());
                }
                Some("levee is serving") => {
                    let admin = field(&json, "admin")
                        .and_then(|a| a.parse().ok())
                        .expect("admin address in the log");
                    return LeveeProcess {
                        child,
                        addr: listener.expect("a listener was logged"),
                        admin,
                        logs,
                        lines: rx,
                    };
                }
                _ => {}
            }
        }
    }

    /// Sends `SIGTERM`, waits for the process to exit and for its standard error to end, and
    /// returns how it exited; every line it wrote is in [`LeveeProcess::log_text`] then.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
        // Standard error ends when the process does: wait for that (with a deadline), then
        // reap the exit status, which is there by then.
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("levee did not exit within {PATIENCE:?} of SIGTERM")
                }
            }
        }
        self.child.child.wait().expect("wait for levee")
    }

    /// `http://<listener><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// `GET path` on the traffic listener.
    pub async fn get(&self, path: &str) -> Answer {
        send(get(&self.url(path))).await
    }

    /// The admin `/health` document.
    pub async fn health(&self) -> serde_json::Value {
        let r = send(get(&format!("http://{}/health", self.admin))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        r.json()
    }

    /// The admin `/metrics` text.
    pub async fn metrics(&self) -> String {
        send(get(&format!("http://{}/metrics", self.admin)))
            .await
            .text()
    }

    /// True when a log line contains every one of `needles`.
    pub fn logged(&self, needles: &[&str]) -> bool {
        self.logs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|l| needles.iter().all(|n| l.contains(n)))
    }

    /// Every log line so far (for failure messages).
    pub fn log_text(&self) -> String {
        self.logs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .join("\n")
    }
}

/// The value of the first series of `name` whose labels contain every one of `labels`
/// (`key="value"` snippets).
pub fn metric(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|l| labels.iter().all(|s| l.contains(s)))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

/// An inventory upstream on a free port.
pub async fn inventory(name: &str) -> inventory::Server {
    inventory::Server::start("127.0.0.1:0", name, inventory::Behaviour::default())
        .await
        .expect("inventory")
}

/// A response read whole.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The problem+json `code`, when the answer is Levee's envelope.
    pub fn code(&self) -> Option<String> {
        if self.header("content-type") != Some("application/problem+json") {
            return None;
        }
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()?
            .get("code")?
            .as_str()
            .map(str::to_string)
    }
}

pub fn get(url: &str) -> Request<Full<Bytes>> {
    let mut r = Request::new(Full::new(Bytes::new()));
    *r.method_mut() = Method::GET;
    *r.uri_mut() = url.parse().expect("url");
    r
}

/// Sends over HTTP/1.1 (a fresh client each time) and reads the whole answer.
pub async fn send(request: Request<Full<Bytes>>) -> Answer {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let exchange = async {
        let response = client.request(request).await.expect("request failed");
        let (head, body) = response.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        Answer {
            status: head.status,
            headers: head.headers,
            body,
        }
    };
    tokio::time::timeout(PATIENCE, exchange)
        .await
        .expect("no answer in time")
}

/// Polls `check` every 50 ms until it returns `Some`, failing the test after [`PATIENCE`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Unix milliseconds now.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
