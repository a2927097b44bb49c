//! The registry benchmark's two loads.
//!
//! - **ingest**: closed loop over N keep-alive connections posting `POST /v1/reports`. Every
//!   report is one instance's batch for the current second: `keys` endpoint keys (shared by
//!   every instance, as a fleet's dependencies are) with one bucket each holding `outcomes`
//!   counted calls (98% success, 1.5% failure, 0.5% timeout; 1% slow) — far below any
//!   breaker threshold, so the breakers stay closed and every bucket is counted. Outcomes
//!   ingested = the counts of the buckets the registry `accepted`; the registry's cost is per
//!   (key, bucket), so key-buckets per second are reported beside it.
//! - **watch**: `watchers` SSE streams on `GET /v1/watch`; then, `rounds` times, an operator
//!   override on one key (alternately `PUT forced_open` and `DELETE`, each a breaker
//!   transition) and the time from sending that request until each watcher has read the
//!   breaker event with the new state.

use crate::conn::{Conn, Target};
use crate::hist::Histogram;
use crate::procfs;
use bytes::Bytes;
use http::Method;
use http_body_util::BodyExt;
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// The shape of one report.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Endpoint keys per report.
    pub keys: usize,
    /// Counted outcomes per bucket.
    pub outcomes: u64,
    /// Distinct instance names the reports rotate through.
    pub instances: usize,
}

fn report_body(shape: Shape, instance: usize) -> (String, u64) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let n = shape.outcomes;
    let failure = n * 15 / 1000;
    let timeout = n * 5 / 1000;
    let success = n - failure - timeout;
    let slow = n / 100;
    let mut body = format!(
        "{{\"service\":\"bench\",\"language\":\"rust\",\"instance\":\"bench-{instance}\",\"endpoints\":["
    );
    for k in 0..shape.keys {
        if k > 0 {
            body.push(',');
        }
        body.push_str(&format!(
            "{{\"key\":\"bench-dep-{k}\",\"buckets\":[{{\"start_s\":{now},\"success\":{success},\
             \"failure\":{failure},\"timeout\":{timeout},\"slow\":{slow},\"latency_sum_ms\":{}}}]}}",
            n * 4
        ));
    }
    body.push_str("]}");
    (body, success + failure + timeout)
}

#[derive(Default)]
struct IngestTally {
    hist: Histogram,
    reports: u64,
    accepted: u64,
    late: u64,
    not_counted: u64,
    outcomes: u64,
    failed: u64,
    first_error: Option<String>,
}

/// Posts batched reports as fast as `connections` connections allow.
pub async fn ingest(
    target: Target,
    token: String,
    connections: usize,
    shape: Shape,
    warmup: Duration,
    duration: Duration,
    pids: Vec<u32>,
) -> Result<Value, String> {
    let reports = target.with_path("/v1/reports");
    let mut conns = Vec::new();
    for _ in 0..connections {
        conns.push(Conn::open(&reports.addr).await?);
    }
    let from = Instant::now() + warmup;
    let to = from + duration;
    let cpu_pids = pids.clone();
    let cpu = tokio::task::spawn_local(async move {
        tokio::time::sleep_until(from.into()).await;
        let a = procfs::total_cpu(&cpu_pids);
        tokio::time::sleep_until(to.into()).await;
        procfs::total_cpu(&cpu_pids).saturating_sub(a)
    });
    let tally = Rc::new(RefCell::new(IngestTally::default()));
    let auth = format!("Bearer {token}");
    let mut workers = Vec::new();
    for (w, mut conn) in conns.into_iter().enumerate() {
        let tally = Rc::clone(&tally);
        let reports = reports.clone();
        let auth = auth.clone();
        workers.push(tokio::task::spawn_local(async move {
            let mut n = w;
            loop {
                let sent = Instant::now();
                if sent >= to {
                    break;
                }
                let (body, per_bucket) = report_body(shape, n % shape.instances.max(1));
                n += connections;
                let result = conn
                    .send(
                        Method::POST,
                        &reports,
                        &[
                            ("authorization", auth.as_str()),
                            ("content-type", "application/json"),
                        ],
                        Bytes::from(body),
                    )
                    .await;
                let done = Instant::now();
                let counted = sent >= from && done <= to;
                let broken = {
                    let mut t = tally.borrow_mut();
                    match result {
                        Ok((200, bytes)) => {
                            if counted {
                                let v: Value =
                                    serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                                let field = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
                                t.reports += 1;
                                t.accepted += field("accepted");
                                t.late += field("late");
                                t.not_counted += field("not_counted");
                                t.outcomes += field("accepted") * per_bucket;
                                t.hist.record(
                                    u64::try_from((done - sent).as_nanos()).unwrap_or(u64::MAX),
                                );
                            }
                            false
                        }
                        Ok((status, bytes)) => {
                            t.failed += 1;
                            if t.first_error.is_none() {
                                t.first_error = Some(format!(
                                    "status {status}: {}",
                                    String::from_utf8_lossy(&bytes)
                                ));
                            }
                            false
                        }
                        Err(e) => {
                            t.failed += 1;
                            if t.first_error.is_none() {
                                t.first_error = Some(e);
                            }
                            true
                        }
                    }
                };
                if broken {
                    match Conn::open(&reports.addr).await {
                        Ok(c) => conn = c,
                        Err(_) => break,
                    }
                }
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    let cpu = cpu.await.map_err(|e| e.to_string())?;
    let t = tally.borrow();
    let secs = duration.as_secs_f64();
    let mut out = Map::new();
    out.insert("mode".into(), "ingest".into());
    out.insert("connections".into(), connections.into());
    out.insert("keys_per_report".into(), shape.keys.into());
    out.insert("outcomes_per_bucket".into(), shape.outcomes.into());
    out.insert("instances".into(), shape.instances.into());
    out.insert("seconds".into(), secs.into());
    out.insert("reports".into(), t.reports.into());
    out.insert("failed".into(), t.failed.into());
    out.insert(
        "reports_per_s".into(),
        (t.reports as f64 / secs).round().into(),
    );
    out.insert(
        "key_buckets_per_s".into(),
        (t.accepted as f64 / secs).round().into(),
    );
    out.insert(
        "outcomes_per_s".into(),
        (t.outcomes as f64 / secs).round().into(),
    );
    out.insert("late".into(), t.late.into());
    out.insert("not_counted".into(), t.not_counted.into());
    out.extend(t.hist.summary_us("report_"));
    if !pids.is_empty() && t.reports > 0 {
        out.insert(
            "cpu_us_per_report".into(),
            ((cpu.as_secs_f64() * 1e6 / t.reports as f64).round()).into(),
        );
        out.insert(
            "cpu_util".into(),
            ((cpu.as_secs_f64() / secs * 1000.0).round() / 1000.0).into(),
        );
    }
    if let Some(e) = &t.first_error {
        out.insert("first_error".into(), e.clone().into());
    }
    Ok(Value::Object(out))
}

/// What a watcher saw: a snapshot (ready), or the key's breaker in some state, at a time.
enum Seen {
    Ready(usize),
    State(usize, String, Instant),
}

/// Reads one SSE stream, reporting the key's breaker states.
async fn watcher(
    id: usize,
    target: Target,
    token: String,
    key: String,
    tx: mpsc::UnboundedSender<Seen>,
) -> Result<(), String> {
    let mut conn = Conn::open(&target.addr).await?;
    let auth = format!("Bearer {token}");
    let response = conn
        .stream(
            &target,
            &[
                ("authorization", auth.as_str()),
                ("accept", "text/event-stream"),
            ],
        )
        .await?;
    if response.status() != 200 {
        return Err(format!("watch: status {}", response.status()));
    }
    let mut body = response.into_body();
    let mut buf: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let at = Instant::now();
        let frame = frame.map_err(|e| e.to_string())?;
        let Some(data) = frame.data_ref() else {
            continue;
        };
        buf.extend(data.iter().filter(|b| **b != b'\r'));
        while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
            let block: Vec<u8> = buf.drain(..end + 2).collect();
            let text = String::from_utf8_lossy(&block);
            let data: String = text
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim_start)
                .collect();
            if data.is_empty() {
                continue;
            }
            let Ok(event) = serde_json::from_str::<Value>(&data) else {
                continue;
            };
            let state = match event.get("type").and_then(Value::as_str) {
                Some("snapshot") => {
                    let _ = tx.send(Seen::Ready(id));
                    event
                        .pointer(&format!("/breakers/{key}/state"))
                        .and_then(Value::as_str)
                        .map(str::to_string)
                }
                Some("breaker")
                    if event.pointer("/breaker/key") == Some(&Value::from(key.as_str())) =>
                {
                    event
                        .pointer("/breaker/state")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                }
                _ => None,
            };
            if let Some(state) = state {
                if tx.send(Seen::State(id, state, at)).is_err() {
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

/// Propagation latency of operator overrides to `watchers` SSE streams.
#[allow(clippy::too_many_arguments)]
pub async fn watch(
    target: Target,
    read_token: String,
    operator_token: String,
    watchers: usize,
    rounds: usize,
    key: String,
    pause: Duration,
    pids: Vec<u32>,
) -> Result<Value, String> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let stream = target.with_path("/v1/watch");
    for id in 0..watchers {
        let tx = tx.clone();
        let (stream, token, key) = (stream.clone(), read_token.clone(), key.clone());
        tokio::task::spawn_local(async move {
            if let Err(e) = watcher(id, stream, token, key, tx).await {
                eprintln!("loadgen: watcher {id}: {e}");
            }
        });
    }
    drop(tx);
    let mut ready = vec![false; watchers];
    let deadline = Instant::now() + Duration::from_secs(20);
    while ready.iter().any(|r| !r) {
        match tokio::time::timeout_at(deadline.into(), rx.recv()).await {
            Ok(Some(Seen::Ready(id))) => ready[id] = true,
            Ok(Some(Seen::State(..))) => {}
            _ => {
                return Err(format!(
                    "only {} of {watchers} watchers got their snapshot",
                    ready.iter().filter(|r| **r).count()
                ))
            }
        }
    }

    let overrides = target.with_path(&format!("/v1/breakers/{key}/override"));
    let mut operator = Conn::open(&overrides.addr).await?;
    let auth = format!("Bearer {operator_token}");
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    // Start from a cleared override, whatever an earlier run left.
    let _ = operator
        .send(Method::DELETE, &overrides, &headers, Bytes::new())
        .await?;
    tokio::time::sleep(pause.max(Duration::from_millis(200))).await;
    while rx.try_recv().is_ok() {}

    let cpu_before = procfs::total_cpu(&pids);
    let started = Instant::now();
    let mut each = Histogram::default();
    let mut last = Histogram::default();
    let mut write = Histogram::default();
    let mut missing = 0u64;
    for round in 0..rounds {
        let (method, body, want) = if round % 2 == 0 {
            (
                Method::PUT,
                Bytes::from_static(b"{\"override\":\"forced_open\"}"),
                "forced_open",
            )
        } else {
            (Method::DELETE, Bytes::new(), "closed")
        };
        let t0 = Instant::now();
        let (status, answer) = operator.send(method, &overrides, &headers, body).await?;
        write.record(u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX));
        if status != 200 {
            return Err(format!(
                "override: status {status}: {}",
                String::from_utf8_lossy(&answer)
            ));
        }
        let mut got = vec![false; watchers];
        let mut slowest = Duration::ZERO;
        let round_deadline = t0 + Duration::from_secs(5);
        while got.iter().any(|g| !g) {
            match tokio::time::timeout_at(round_deadline.into(), rx.recv()).await {
                Ok(Some(Seen::State(id, state, at))) if state == want && !got[id] => {
                    got[id] = true;
                    let d = at.saturating_duration_since(t0);
                    slowest = slowest.max(d);
                    each.record(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
                }
                Ok(Some(_)) => {}
                _ => break,
            }
        }
        let lost = got.iter().filter(|g| !**g).count() as u64;
        missing += lost;
        if lost == 0 {
            last.record(u64::try_from(slowest.as_nanos()).unwrap_or(u64::MAX));
        }
        tokio::time::sleep(pause).await;
    }
    let elapsed = started.elapsed();
    let cpu = procfs::total_cpu(&pids).saturating_sub(cpu_before);
    let mut out = Map::new();
    out.insert("mode".into(), "watch".into());
    out.insert("watchers".into(), watchers.into());
    out.insert("rounds".into(), rounds.into());
    out.insert("deliveries".into(), each.count().into());
    out.insert("missing".into(), missing.into());
    out.extend(each.summary_us("each_"));
    out.extend(last.summary_us("all_"));
    out.extend(write.summary_us("write_"));
    if !pids.is_empty() {
        out.insert(
            "cpu_util".into(),
            ((cpu.as_secs_f64() / elapsed.as_secs_f64() * 1000.0).round() / 1000.0).into(),
        );
    }
    Ok(Value::Object(out))
}
