//! The proxy benchmark's two loads against one URL over keep-alive connections (HTTP/1.1, or
//! HTTP/2 with one stream in flight per connection), each request a GET or, with a body, a POST.
//!
//! - **max**: closed loop. Each of N connections sends its next request as soon as the last
//!   answer is read, for a warm-up and then a measured period; the figure is the requests
//!   completed in the measured period per second.
//! - **rate**: open loop at a fixed rate, coordinated-omission corrected (as wrk2 does).
//!   Request `i` is due at `start + i / rate`, whatever happened before; a pacer thread hands
//!   each due request to the first idle connection, and its latency is measured from when it
//!   was *due*, so time spent waiting for a free connection behind a slow answer is counted
//!   rather than silently omitted. The pacer's own lateness (a thread woken by the kernel) is
//!   reported as `pacer_lag_*` and is part of every latency, the direct baseline's included.
//!
//! CPU time of the `--pid` processes (utime + stime from `/proc/<pid>/stat`, 10 ms ticks) is
//! sampled at the start and end of the measured period and divided by the requests completed
//! in it.

use crate::conn::{Conn, Protocol, Target};
use crate::hist::Histogram;
use crate::procfs;
use bytes::Bytes;
use http::Method;
use serde_json::{json, Map, Value};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Mutex};

/// Counters of one load, shared by the workers of a single-threaded runtime.
#[derive(Default)]
struct Tally {
    hist: Histogram,
    ok: u64,
    non_2xx: u64,
    errors: u64,
    /// Completions inside the measured period (the divisor of CPU per request).
    done_in_window: u64,
    first_error: Option<String>,
}

impl Tally {
    fn outcome(&mut self, result: &Result<(u16, Bytes), String>) {
        match result {
            Ok((s, _)) if (200..300).contains(s) => self.ok += 1,
            Ok((s, _)) => {
                self.non_2xx += 1;
                if self.first_error.is_none() {
                    self.first_error = Some(format!("status {s}"));
                }
            }
            Err(e) => {
                self.errors += 1;
                if self.first_error.is_none() {
                    self.first_error = Some(e.clone());
                }
            }
        }
    }
}

/// What every request of a load is, and how it travels.
#[derive(Clone, Debug, Default)]
pub struct Shape {
    /// The protocol of every connection.
    pub protocol: Protocol,
    /// The request body: empty for a GET, otherwise sent as a POST.
    pub body: Bytes,
}

impl Shape {
    fn method(&self) -> Method {
        if self.body.is_empty() {
            Method::GET
        } else {
            Method::POST
        }
    }

    async fn open(&self, target: &Target) -> Result<Conn, String> {
        Conn::open_with(&target.addr, self.protocol).await
    }

    async fn send(&self, conn: &mut Conn, target: &Target) -> Result<(u16, Bytes), String> {
        conn.send(self.method(), target, &[], self.body.clone())
            .await
    }
}

async fn open_all(target: &Target, shape: &Shape, n: usize) -> Result<Vec<Conn>, String> {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(shape.open(target).await?);
    }
    Ok(conns)
}

/// Samples CPU time of `pids` at `from` and `to`; the difference.
async fn cpu_between(pids: Vec<u32>, from: Instant, to: Instant) -> Duration {
    tokio::time::sleep_until(from.into()).await;
    let a = procfs::total_cpu(&pids);
    tokio::time::sleep_until(to.into()).await;
    let b = procfs::total_cpu(&pids);
    b.saturating_sub(a)
}

fn finish(
    mut out: Map<String, Value>,
    tally: &Tally,
    duration: Duration,
    cpu: Duration,
    pids: &[u32],
) -> Value {
    let secs = duration.as_secs_f64();
    out.insert("ok".into(), tally.ok.into());
    out.insert("non_2xx".into(), tally.non_2xx.into());
    out.insert("errors".into(), tally.errors.into());
    out.insert(
        "rps".into(),
        ((tally.done_in_window as f64 / secs).round()).into(),
    );
    out.extend(tally.hist.summary_us(""));
    if !pids.is_empty() {
        let per = if tally.done_in_window > 0 {
            cpu.as_secs_f64() * 1e6 / tally.done_in_window as f64
        } else {
            0.0
        };
        out.insert(
            "cpu_us_per_req".into(),
            ((per * 100.0).round() / 100.0).into(),
        );
        out.insert(
            "cpu_util".into(),
            ((cpu.as_secs_f64() / secs * 1000.0).round() / 1000.0).into(),
        );
    }
    if let Some(e) = &tally.first_error {
        out.insert("first_error".into(), e.clone().into());
    }
    Value::Object(out)
}

/// Closed-loop maximum throughput.
pub async fn max(
    target: Target,
    shape: Shape,
    connections: usize,
    warmup: Duration,
    duration: Duration,
    pids: Vec<u32>,
) -> Result<Value, String> {
    let conns = open_all(&target, &shape, connections).await?;
    let shape = Rc::new(shape);
    let from = Instant::now() + warmup;
    let to = from + duration;
    let cpu = tokio::task::spawn_local(cpu_between(pids.clone(), from, to));
    let tally = Rc::new(RefCell::new(Tally::default()));
    let target = Rc::new(target);
    let mut workers = Vec::new();
    for mut conn in conns {
        let tally = Rc::clone(&tally);
        let target = Rc::clone(&target);
        let shape = Rc::clone(&shape);
        workers.push(tokio::task::spawn_local(async move {
            loop {
                let sent = Instant::now();
                if sent >= to {
                    break;
                }
                let result = shape.send(&mut conn, &target).await;
                let done = Instant::now();
                if sent >= from && done <= to {
                    let mut t = tally.borrow_mut();
                    t.outcome(&result);
                    t.hist.record(nanos(done - sent));
                    t.done_in_window += 1;
                }
                if result.is_err() {
                    // A broken connection is replaced; a refused reconnect ends the worker.
                    match shape.open(&target).await {
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
    let mut out = Map::new();
    out.insert("mode".into(), "max".into());
    out.insert("connections".into(), connections.into());
    out.insert("seconds".into(), duration.as_secs_f64().into());
    let tally = tally.borrow();
    Ok(finish(out, &tally, duration, cpu, &pids))
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Open-loop fixed rate, latency measured from each request's due time.
pub async fn rate(
    target: Target,
    shape: Shape,
    connections: usize,
    per_second: f64,
    warmup: Duration,
    duration: Duration,
    pids: Vec<u32>,
) -> Result<Value, String> {
    if per_second <= 0.0 {
        return Err("--rate must be above 0".into());
    }
    let conns = open_all(&target, &shape, connections).await?;
    let shape = Rc::new(shape);
    let start = Instant::now() + Duration::from_millis(50);
    let from = start + warmup;
    let to = from + duration;
    // Every request is due within [start, to): the loop is bounded in count...
    let total = (per_second * (warmup + duration).as_secs_f64()) as u64;
    let warm = (per_second * warmup.as_secs_f64()) as u64;
    // ...and in time: whatever is not answered by then is counted as an error.
    let hard_stop = to + Duration::from_secs(10);
    let interval = 1e9 / per_second;

    let (tx, rx) = mpsc::unbounded_channel::<(u64, Instant)>();
    let pacer = std::thread::spawn(move || {
        let mut lag = Histogram::default();
        for i in 0..total {
            let due = start + Duration::from_nanos((i as f64 * interval) as u64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            lag.record(nanos(Instant::now().saturating_duration_since(due)));
            if tx.send((i, due)).is_err() {
                break;
            }
        }
        lag
    });

    let cpu = tokio::task::spawn_local(cpu_between(pids.clone(), from, to));
    let rx = Arc::new(Mutex::new(rx));
    let tally = Rc::new(RefCell::new(Tally::default()));
    let target = Rc::new(target);
    let mut workers = Vec::new();
    for mut conn in conns {
        let rx = Arc::clone(&rx);
        let tally = Rc::clone(&tally);
        let target = Rc::clone(&target);
        let shape = Rc::clone(&shape);
        workers.push(tokio::task::spawn_local(async move {
            loop {
                let next = tokio::time::timeout_at(hard_stop.into(), async {
                    rx.lock().await.recv().await
                })
                .await;
                let Ok(Some((i, due))) = next else { break };
                let result = shape.send(&mut conn, &target).await;
                let done = Instant::now();
                {
                    let mut t = tally.borrow_mut();
                    if i >= warm {
                        t.outcome(&result);
                        t.hist.record(nanos(done.saturating_duration_since(due)));
                    }
                    if done >= from && done <= to {
                        t.done_in_window += 1;
                    }
                }
                if result.is_err() {
                    match shape.open(&target).await {
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
    let lag = pacer.join().map_err(|_| "the pacer thread panicked")?;
    let cpu = cpu.await.map_err(|e| e.to_string())?;
    let mut out = Map::new();
    out.insert("mode".into(), "rate".into());
    out.insert("connections".into(), connections.into());
    out.insert("target_rps".into(), per_second.into());
    out.insert("seconds".into(), duration.as_secs_f64().into());
    {
        let mut t = tally.borrow_mut();
        let measured = total - warm;
        let answered = t.ok + t.non_2xx + t.errors;
        // Requests never answered before the hard stop are errors too.
        t.errors += measured.saturating_sub(answered);
        out.insert("sent".into(), json!(measured));
    }
    out.extend(lag.summary_us("pacer_lag_"));
    let tally = tally.borrow();
    Ok(finish(out, &tally, duration, cpu, &pids))
}
