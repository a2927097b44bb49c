//! `loadgen`: the load generator of Levee's proxy and registry benchmarks (`bench/proxy.sh`,
//! `bench/registry.sh`). Each command prints one JSON object on stdout; `--label` fields are
//! copied into it so a script can collect runs in a JSON-lines file.
//!
//! ```text
//! loadgen max    --url http://127.0.0.1:8080/items/1 --connections 64 --duration 10s [--pid P]...
//! loadgen rate   --url http://127.0.0.1:8080/items/1 --rate 5000 --duration 10s [--pid P]...
//! loadgen max    --url ... --http2 --body-bytes 1024   # h2c, POSTs of 1 KiB (rate takes both too)
//! loadgen ingest --url http://127.0.0.1:9911 --connections 16 --keys 20 --outcomes 100
//! loadgen watch  --url http://127.0.0.1:9911 --watchers 100 --rounds 50
//! ```
//!
//! The registry commands read `LEVEE_REGISTRY_REPORTER_TOKEN` and
//! `LEVEE_REGISTRY_OPERATOR_TOKEN`. Everything runs on one thread (pin it with `taskset`); the
//! fixed-rate pacer is a second thread.

mod conn;
mod hist;
mod http_load;
mod procfs;
mod registry_load;

use clap::{Parser, Subcommand};
use conn::Target;
use std::process::ExitCode;
use std::time::Duration;

fn duration(s: &str) -> Result<Duration, String> {
    let (number, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => s.split_at(i),
        None => return Err(format!("`{s}`: write a unit, e.g. 10s or 500ms")),
    };
    let n: f64 = number.parse().map_err(|_| format!("`{s}`: not a number"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("`{s}`: units are ms, s, m")),
    };
    if !(0.0..=3600.0).contains(&secs) {
        return Err(format!("`{s}`: between 0 and 1h"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn label(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("`{s}`: write key=value"))
}

/// Load generator for Levee's benchmarks.
#[derive(Parser)]
#[command(name = "loadgen")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// key=value copied into the JSON output (repeatable).
    #[arg(long, value_parser = label, global = true)]
    label: Vec<(String, String)>,
}

#[derive(clap::Args)]
struct Common {
    /// `http://host:port/path` (loopback only in this project's runs).
    #[arg(long)]
    url: String,
    /// Unmeasured time first.
    #[arg(long, default_value = "2s", value_parser = duration)]
    warmup: Duration,
    /// Measured time.
    #[arg(long, default_value = "10s", value_parser = duration)]
    duration: Duration,
    /// Processes whose CPU time is measured (repeatable).
    #[arg(long)]
    pid: Vec<u32>,
}

/// What each request of `max` and `rate` is.
#[derive(clap::Args)]
struct ShapeArgs {
    /// HTTP/2 with prior knowledge (h2c) instead of HTTP/1.1; one stream in flight per
    /// connection.
    #[arg(long)]
    http2: bool,
    /// POST a body of this many bytes instead of a GET.
    #[arg(long, default_value_t = 0)]
    body_bytes: usize,
}

impl ShapeArgs {
    fn shape(&self) -> http_load::Shape {
        http_load::Shape {
            protocol: if self.http2 {
                conn::Protocol::Http2
            } else {
                conn::Protocol::Http1
            },
            body: bytes::Bytes::from(vec![b'x'; self.body_bytes]),
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Closed-loop maximum throughput.
    Max {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        shape: ShapeArgs,
        /// Keep-alive connections, one request in flight on each.
        #[arg(long, default_value_t = 64)]
        connections: usize,
    },
    /// Open-loop fixed rate, coordinated-omission corrected.
    Rate {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        shape: ShapeArgs,
        /// Requests per second.
        #[arg(long)]
        rate: f64,
        /// Connections available to send on.
        #[arg(long, default_value_t = 64)]
        connections: usize,
    },
    /// Batched registry reports as fast as the connections allow.
    Ingest {
        #[command(flatten)]
        common: Common,
        /// Keep-alive connections.
        #[arg(long, default_value_t = 16)]
        connections: usize,
        /// Endpoint keys per report (one bucket each).
        #[arg(long, default_value_t = 20)]
        keys: usize,
        /// Counted outcomes per bucket.
        #[arg(long, default_value_t = 100)]
        outcomes: u64,
        /// Instance names the reports rotate through.
        #[arg(long, default_value_t = 50)]
        instances: usize,
    },
    /// Propagation of operator overrides to SSE watchers.
    Watch {
        /// The registry's base URL.
        #[arg(long)]
        url: String,
        /// SSE streams.
        #[arg(long, default_value_t = 100)]
        watchers: usize,
        /// Transitions measured.
        #[arg(long, default_value_t = 50)]
        rounds: usize,
        /// The endpoint key overridden.
        #[arg(long, default_value = "bench-propagation")]
        key: String,
        /// Pause between transitions.
        #[arg(long, default_value = "50ms", value_parser = duration)]
        pause: Duration,
        /// Processes whose CPU time is measured (repeatable).
        #[arg(long)]
        pid: Vec<u32>,
    },
}

fn token(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} is not set"))
}

async fn run(command: Command) -> Result<serde_json::Value, String> {
    match command {
        Command::Max {
            common,
            shape,
            connections,
        } => {
            http_load::max(
                Target::parse(&common.url)?,
                shape.shape(),
                connections.max(1),
                common.warmup,
                common.duration,
                common.pid,
            )
            .await
        }
        Command::Rate {
            common,
            shape,
            rate,
            connections,
        } => {
            http_load::rate(
                Target::parse(&common.url)?,
                shape.shape(),
                connections.max(1),
                rate,
                common.warmup,
                common.duration,
                common.pid,
            )
            .await
        }
        Command::Ingest {
            common,
            connections,
            keys,
            outcomes,
            instances,
        } => {
            registry_load::ingest(
                Target::parse(&common.url)?,
                token("LEVEE_REGISTRY_REPORTER_TOKEN")?,
                connections.max(1),
                registry_load::Shape {
                    keys: keys.clamp(1, 1000),
                    outcomes: outcomes.max(1),
                    instances,
                },
                common.warmup,
                common.duration,
                common.pid,
            )
            .await
        }
        Command::Watch {
            url,
            watchers,
            rounds,
            key,
            pause,
            pid,
        } => {
            registry_load::watch(
                Target::parse(&url)?,
                token("LEVEE_REGISTRY_REPORTER_TOKEN")?,
                token("LEVEE_REGISTRY_OPERATOR_TOKEN")?,
                watchers.max(1),
                rounds,
                key,
                pause,
                pid,
            )
            .await
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("loadgen: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let local = tokio::task::LocalSet::new();
    match local.block_on(&runtime, run(cli.command)) {
        Ok(mut value) => {
            if let Some(object) = value.as_object_mut() {
                for (k, v) in cli.label {
                    object.insert(k, v.into());
                }
            }
            println!("{value}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}
