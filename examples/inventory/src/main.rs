//! `inventory --port 7001 --name a [--fail-status 503 --fail-ratio 0.5] [--delay-ms 200] [--hang]`
//!
//! Serves until interrupted; prints `inventory <name> listening on <addr>` once bound.

use inventory::{Behaviour, Server};
use std::time::Duration;

fn usage() -> String {
    "usage: inventory [--port N] [--name NAME] [--fail-status N] [--fail-ratio F] \
     [--delay-ms N] [--hang]"
        .to_string()
}

fn parse(args: &[String]) -> Result<(u16, String, Behaviour), String> {
    let mut port = 7001u16;
    let mut name = "inventory".to_string();
    let mut behaviour = Behaviour::default();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = |what: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs {what}; {}", usage()))
        };
        match flag.as_str() {
            "--port" => {
                port = value("a port")?
                    .parse()
                    .map_err(|e| format!("--port: {e}"))?
            }
            "--name" => name = value("a name")?,
            "--fail-status" => {
                behaviour.fail_status = value("a status")?
                    .parse()
                    .map_err(|e| format!("--fail-status: {e}"))?;
                if behaviour.fail_ratio == 0.0 {
                    behaviour.fail_ratio = 1.0;
                }
            }
            "--fail-ratio" => {
                behaviour.fail_ratio = value("a fraction")?
                    .parse()
                    .map_err(|e| format!("--fail-ratio: {e}"))?
            }
            "--delay-ms" => {
                behaviour.delay = Duration::from_millis(
                    value("milliseconds")?
                        .parse()
                        .map_err(|e| format!("--delay-ms: {e}"))?,
                )
            }
            "--hang" => behaviour.hang = true,
            "--help" | "-h" => return Err(usage()),
            other => return Err(format!("unknown flag {other}; {}", usage())),
        }
    }
    Ok((port, name, behaviour))
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (port, name, behaviour) = match parse(&args) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("{message}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("inventory: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match Server::start(&format!("127.0.0.1:{port}"), &name, behaviour).await {
            Ok(server) => {
                println!("inventory {name} listening on {}", server.addr);
                let _ = tokio::signal::ctrl_c().await;
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("inventory: cannot listen on port {port}: {e}");
                std::process::ExitCode::FAILURE
            }
        }
    })
}
