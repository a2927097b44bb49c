//! Test harness: real registry processes, real `redis-server` processes on free loopback
//! ports, and polling with deadlines instead of sleeps.

#![allow(dead_code)]

use levee_core::breaker::BreakerConfig;
use levee_registry_client::api::{Event, EventData};
use levee_registry_client::{Api, EventStream, WatchItem};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const REPORTER: &str = "reporter-token-for-tests";
pub const OPERATOR: &str = "operator-token-for-tests";

/// How long any condition may take before a test fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A free loopback port (bound and released; the OS does not hand it out again at once).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Polls `check` every 20 ms until it returns `Some`, failing the test after [`DEADLINE`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A `levee-registry` process, killed on drop.
pub struct RegistryProcess {
    child: Child,
    pub url: String,
    pub port: u16,
}

impl RegistryProcess {
    /// Starts one with `args` (besides `--listen`) on a free port.
    pub fn start(args: &[&str]) -> RegistryProcess {
        Self::start_on(free_port(), args)
    }

    /// Starts one on `port`.
    pub fn start_on(port: u16, args: &[&str]) -> RegistryProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_levee-registry"))
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(args)
            .env("LEVEE_REGISTRY_REPORTER_TOKEN", REPORTER)
            .env("LEVEE_REGISTRY_OPERATOR_TOKEN", OPERATOR)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start levee-registry");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {}
        });
        let line = rx
            .recv_timeout(DEADLINE)
            .expect("levee-registry printed its listening line");
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .expect("a URL in the listening line")
            .to_string();
        RegistryProcess { child, url, port }
    }

    pub fn reporter(&self) -> Api {
        Api::new(&self.url, Some(REPORTER)).expect("api")
    }

    pub fn operator(&self) -> Api {
        Api::new(&self.url, Some(OPERATOR)).expect("api")
    }

    pub fn anonymous(&self) -> Api {
        Api::new(&self.url, None).expect("api")
    }

    /// True while the process runs (it did not panic or exit).
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RegistryProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Where `redis-server` is. Tests that need it fail (never skip) when it is missing.
pub fn redis_server_binary() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("redis-server"))
            .find(|p| p.is_file())
    });
    match found {
        Some(p) => p,
        None => panic!(
            "redis-server is not installed, and the registry's Redis tests need a real one: \
             run scripts/ensure-redis.sh (make rust-test does) and test again"
        ),
    }
}

/// A `redis-server` on a free loopback port without persistence, killed on drop.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    extra: Vec<String>,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        Self::start_with(&[])
    }

    /// With extra `redis-server` arguments (e.g. `--requirepass`).
    pub fn start_with(extra: &[&str]) -> RedisServer {
        let mut r = RedisServer {
            child: None,
            port: free_port(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        r.restart();
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port, empty.
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new(redis_server_binary())
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + DEADLINE;
        loop {
            if self.ping() {
                return;
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        if s.write_all(b"PING\r\n").is_err() {
            return false;
        }
        // `+PONG`, or `-NOAUTH` from a server that wants a password: either way it is up.
        let mut buf = [0u8; 1];
        s.read_exact(&mut buf).is_ok() && (buf[0] == b'+' || buf[0] == b'-')
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let status = Command::new("kill")
                .args([sig, &c.id().to_string()])
                .status()
                .expect("kill(1)");
            assert!(status.success());
        }
    }

    /// SIGSTOP: Redis accepts TCP but never answers (a frozen or blackholed server).
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT.
    pub fn thaw(&self) {
        self.signal("-CONT");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.thaw();
        self.kill();
    }
}

/// A policy that trips fast and probes soon: for tests on real time.
pub fn quick_policy(permitted: u32, wait: Duration) -> BreakerConfig {
    let mut c = BreakerConfig {
        minimum_calls: 10,
        ..BreakerConfig::default()
    };
    c.open.wait = wait;
    c.open.max_wait = wait.max(Duration::from_secs(60));
    c.open.jitter = 0.0;
    c.half_open.permitted_calls = permitted;
    c
}

/// Unix seconds now.
pub fn unix_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Unix milliseconds now.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The next event on a watch stream (heartbeats skipped), within the deadline.
pub async fn next_event(stream: &mut EventStream) -> Event {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.next()).await {
            Ok(Ok(Some(WatchItem::Event(e)))) => return e,
            Ok(Ok(Some(WatchItem::Heartbeat))) => continue,
            other => panic!("watch stream ended or timed out: {other:?}"),
        }
    }
}

/// Reads events until one satisfies `pred`.
pub async fn event_where(stream: &mut EventStream, pred: impl Fn(&EventData) -> bool) -> Event {
    loop {
        let e = next_event(stream).await;
        if pred(&e.data) {
            return e;
        }
    }
}
