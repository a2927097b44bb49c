//! `levee demo`: the demo fleet, its sidecar, the registry and the dashboard, then the
//! bundled drill — one command, nothing installed by hand.
//!
//! ```text
//!   drill / browser ──▶ storefront (Go, SDK) ──▶ levee sidecar ──▶ inventory a, b (Rust)
//!                           │   └──────────────▶ pricing (Rust, levee tower layers)
//!                           └──────────────────▶ recommendations (Go, sheddable)
//!   levee sidecar: embedded registry (the storefront reports to it), admin API, /dashboard
//! ```
//!
//! The fleet's programs are found next to the `levee` binary (`make demo` builds them there);
//! each is started on a port the OS picks and says where it listens on its first line. The
//! sidecar runs in this process on examples/fleet/levee.yaml (embedded in the binary), with
//! the picked addresses in place of the file's defaults. Logs of the children go to files in
//! a temporary directory shown at start, removed when the demo ends normally (kept when it
//! could not start, for the error message that points at them).

use crate::drill;
use levee_proxy::daemon;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const FLEET_CONFIG: &str = include_str!("../../../examples/fleet/levee.yaml");
const FLEET_DRILL: &str = include_str!("../../../examples/fleet/drill.yaml");

/// Options of `levee demo`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The sidecar's traffic listener.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// The admin listener: API, /metrics and /dashboard.
    #[arg(long, default_value = "127.0.0.1:9901")]
    pub admin: String,
    /// The storefront's address.
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub storefront: String,
    /// Don't run the bundled drill; just start the fleet.
    #[arg(long)]
    pub no_drill: bool,
    /// Run this drill file instead of the bundled one.
    #[arg(long)]
    pub drill: Option<PathBuf>,
    /// Stop after the drill, exiting 1 if an SLO failed (for CI).
    #[arg(long)]
    pub exit_after_drill: bool,
    /// Also write the drill report as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the fleet's addresses as `NAME=value` lines here (for scripts).
    #[arg(long)]
    pub env_file: Option<PathBuf>,
    /// Where the fleet's programs are (default: beside this `levee`).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
}

const PROGRAMS: [&str; 4] = ["inventory", "pricing", "recommendations", "storefront"];

/// Runs the demo; `Ok(false)` when `--exit-after-drill` and an SLO failed.
pub fn run(args: Args) -> Result<bool, String> {
    let bin_dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => std::env::current_exe()
            .map_err(|e| format!("cannot find the levee binary's directory: {e}"))?
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
    };
    let missing: Vec<&str> = PROGRAMS
        .iter()
        .copied()
        .filter(|p| !bin_dir.join(p).is_file())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "the demo fleet's programs are missing from {}: {}. Build them with `make demo` \
             (cargo build --release -p levee -p inventory -p pricing, and go build of \
             examples/fleet/storefront and examples/fleet/recommendations into the same \
             directory), or point --bin-dir at them",
            bin_dir.display(),
            missing.join(", ")
        ));
    }
    let drill_text = match &args.drill {
        Some(path) => (
            path.display().to_string(),
            std::fs::read_to_string(path)
                .map_err(|e| format!("{}: cannot read the drill file: {e}", path.display()))?,
        ),
        None => (
            "examples/fleet/drill.yaml".to_string(),
            FLEET_DRILL.to_string(),
        ),
    };

    // Tokens before any thread starts: the sidecar reads them from its environment.
    let admin_token = env_or_random("LEVEE_ADMIN_TOKEN")?;
    let reporter_token = env_or_random("LEVEE_REGISTRY_TOKEN")?;
    std::env::set_var("LEVEE_ADMIN_TOKEN", &admin_token);
    std::env::set_var("LEVEE_REGISTRY_TOKEN", &reporter_token);
    if std::env::var_os("LEVEE_LOG").is_none() {
        std::env::set_var("LEVEE_LOG", "error");
    }
    levee_telemetry::init_logging(false).map_err(|e| e.to_string())?;

    let work = std::env::temp_dir().join(format!("levee-demo-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(demo(
        args,
        bin_dir,
        work,
        drill_text,
        admin_token,
        reporter_token,
    ))
}

async fn demo(
    args: Args,
    bin: PathBuf,
    work: PathBuf,
    (drill_file, drill_text): (String, String),
    admin_token: String,
    reporter_token: String,
) -> Result<bool, String> {
    println!(
        "levee demo: starting the fleet (logs in {})",
        work.display()
    );
    let mut fleet = Fleet::default();
    let inventory_a = fleet
        .start(
            &bin,
            &work,
            "inventory",
            &["--port", "0", "--name", "a"],
            &[],
        )
        .await?;
    let inventory_b = fleet
        .start(
            &bin,
            &work,
            "inventory",
            &["--port", "0", "--name", "b"],
            &[],
        )
        .await?;
    let pricing = fleet
        .start(&bin, &work, "pricing", &["--addr", "127.0.0.1:0"], &[])
        .await?;
    let recommendations = fleet
        .start(
            &bin,
            &work,
            "recommendations",
            &["-addr", "127.0.0.1:0"],
            &[],
        )
        .await?;

    let config = FLEET_CONFIG
        .replace("127.0.0.1:8080", &args.listen)
        .replace("127.0.0.1:9901", &args.admin)
        .replace("127.0.0.1:7001", &inventory_a)
        .replace("127.0.0.1:7002", &inventory_b);
    let config_path = work.join("levee.yaml");
    std::fs::write(&config_path, config)
        .map_err(|e| format!("cannot write {}: {e}", config_path.display()))?;
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let mut options = daemon::Options::new(&config_path);
    options.on_ready = Some(Box::new(move |ready: &daemon::Ready| {
        let _ = ready_tx.send(ready.clone());
    }));
    let sidecar = tokio::spawn(daemon::run(options));
    let ready = tokio::select! {
        ready = ready_rx => ready.map_err(|_| "the sidecar stopped before serving".to_string()),
        ended = tokio::time::sleep(Duration::from_secs(30)) => {
            let () = ended;
            Err("the sidecar did not start within 30s".to_string())
        }
    };
    let ready = match ready {
        Ok(ready) => ready,
        Err(e) => {
            if sidecar.is_finished() {
                if let Ok(Err(cause)) = sidecar.await {
                    return Err(format!("the sidecar could not start: {cause}"));
                }
            }
            return Err(e);
        }
    };
    let proxy = format!(
        "http://{}",
        ready
            .listeners
            .first()
            .map(|(_, addr)| addr.to_string())
            .unwrap_or_default()
    );
    let admin = format!("http://{}", ready.admin);
    let registry = registry_url(&admin).await?;
    let storefront = fleet
        .start(
            &bin,
            &work,
            "storefront",
            &[
                "-addr",
                &args.storefront,
                "-inventory",
                &proxy,
                "-pricing",
                &format!("http://{pricing}"),
                "-recommendations",
                &format!("http://{recommendations}"),
                "-registry",
                &registry,
            ],
            &[("LEVEE_REGISTRY_TOKEN", &reporter_token)],
        )
        .await?;

    let vars = [
        ("LEVEE_DEMO_PROXY", proxy.clone()),
        ("LEVEE_DEMO_ADMIN", admin.clone()),
        ("LEVEE_DEMO_STOREFRONT", format!("http://{storefront}")),
        ("LEVEE_DEMO_PRICING", format!("http://{pricing}")),
        (
            "LEVEE_DEMO_RECOMMENDATIONS",
            format!("http://{recommendations}"),
        ),
        ("LEVEE_DEMO_INVENTORY_A", format!("http://{inventory_a}")),
        ("LEVEE_DEMO_INVENTORY_B", format!("http://{inventory_b}")),
        ("LEVEE_DEMO_REGISTRY", registry.clone()),
        ("LEVEE_ADMIN_TOKEN", admin_token.clone()),
    ];
    println!("dashboard: {admin}/dashboard");
    println!("proxy: {proxy}");
    println!("storefront: http://{storefront}/product/42");
    println!("registry: {registry}");
    println!("admin token: {admin_token}");
    if let Some(path) = &args.env_file {
        let lines: String = vars.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        std::fs::write(path, lines).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }

    let mut passed = true;
    if !args.no_drill {
        let lookup = |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
                .or_else(|| std::env::var(name).ok())
        };
        let scenario = drill::scenario::load(&drill_text, &drill_file, &lookup)?;
        println!(
            "\nrunning the drill `{}` ({}): watch it on the dashboard",
            scenario.name,
            levee_core::duration::format(scenario.duration)
        );
        let report = drill::execute(scenario, Some(admin_token.clone()), true).await;
        print!("{}", drill::render(&report));
        if let Some(path) = &args.json {
            drill::write_json(&report, path)?;
        }
        passed = report.passed;
    }
    if args.exit_after_drill {
        fleet.stop().await;
        let _ = std::fs::remove_dir_all(&work);
        return Ok(passed);
    }
    println!(
        "\nthe fleet keeps running: open {admin}/dashboard (token above); run the drill again \
         with `levee drill examples/fleet/drill.yaml`; Ctrl-C stops everything"
    );
    let ended = sidecar.await;
    fleet.stop().await;
    let _ = std::fs::remove_dir_all(&work);
    match ended {
        Ok(Ok(())) => Ok(passed),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(format!("the sidecar stopped: {e}")),
    }
}

/// The fleet's child processes; killed when dropped (a panic or an early return included).
#[derive(Default)]
struct Fleet {
    children: Vec<(String, Child)>,
}

impl Fleet {
    /// Starts `bin/program args`, its stderr and later stdout to `work/program-N.log`, and
    /// returns the address from its first line (`... listening on ADDR`).
    async fn start(
        &mut self,
        bin: &Path,
        work: &Path,
        program: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<String, String> {
        let log_path = work.join(format!("{program}-{}.log", self.children.len()));
        let log = std::fs::File::create(&log_path)
            .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
        let mut command = Command::new(bin.join(program));
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true);
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start {program}: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await;
        let line = match first {
            Ok(Ok(Some(line))) => line,
            _ => {
                let _ = child.start_kill();
                return Err(format!(
                    "{program} did not say where it listens within 20s; see {}",
                    log_path.display()
                ));
            }
        };
        let Some(addr) = line
            .rsplit(' ')
            .next()
            .filter(|_| line.contains("listening on"))
        else {
            let _ = child.start_kill();
            return Err(format!(
                "{program} printed `{line}` instead of `... listening on ADDR`"
            ));
        };
        let addr = addr.to_string();
        // Keep reading its stdout so a chatty child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        println!("  {program:<16} {addr}");
        self.children.push((program.to_string(), child));
        Ok(addr)
    }

    async fn stop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.start_kill();
        }
        for (_, child) in &mut self.children {
            let _ = child.wait().await;
        }
    }
}

/// `registry.url` from the sidecar's `/health`.
async fn registry_url(admin: &str) -> Result<String, String> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let uri: http::Uri = format!("{admin}/health")
        .parse()
        .map_err(|e| format!("{admin}/health: {e}"))?;
    let response = client
        .get(uri)
        .await
        .map_err(|e| format!("GET {admin}/health: {e}"))?;
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .map_err(|e| format!("GET {admin}/health: {e}"))?
        .to_bytes();
    let health: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| format!("GET {admin}/health: {e}"))?;
    health
        .pointer("/registry/url")
        .and_then(|u| u.as_str())
        .map(str::to_string)
        .ok_or_else(|| "the sidecar's /health shows no registry.url".to_string())
}

/// The variable's value, or 128 random bits from the OS as 32 hex digits.
fn env_or_random(name: &str) -> Result<String, String> {
    if let Some(value) = std::env::var(name).ok().filter(|v| !v.trim().is_empty()) {
        return Ok(value);
    }
    let mut bytes = [0u8; 16];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").map_err(|e| e.to_string())?,
        &mut bytes,
    )
    .map_err(|e| format!("cannot read /dev/urandom for a token: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_files_are_valid() {
        let config = levee_config::parse(FLEET_CONFIG, "examples/fleet/levee.yaml").unwrap();
        assert_eq!(config.routes.len(), 2);
        assert!(config.upstreams.contains_key("inventory"));
        let drill =
            drill::scenario::load(FLEET_DRILL, "examples/fleet/drill.yaml", &|_| None).unwrap();
        assert_eq!(drill.slos.len(), 5);
        // The defaults are the demo's default addresses.
        assert_eq!(drill.target.as_deref(), Some("http://127.0.0.1:8080"));
        assert_eq!(drill.admin.unwrap().url, "http://127.0.0.1:9901");
        // The failing drill of `make drills` is valid too (it fails on its SLO, not its file).
        let failing = include_str!("../../../tests/drills/slo-fail.yaml");
        assert!(drill::scenario::load(failing, "slo-fail.yaml", &|_| None).is_ok());
    }

    #[test]
    fn the_demo_addresses_are_the_ones_the_config_file_shows() {
        for address in [
            "127.0.0.1:8080",
            "127.0.0.1:9901",
            "127.0.0.1:7001",
            "127.0.0.1:7002",
        ] {
            assert!(
                FLEET_CONFIG.contains(address),
                "{address} is replaced by the demo"
            );
        }
    }
}
