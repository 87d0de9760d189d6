//! `quarry-agent`: the long-lived agent daemon the controller drives over
//! gRPC (`quarry.v1.Agent`). Flags configure where it listens, how
//! controllers authenticate, the guard rails every plan must respect, and
//! where results of recent runs are kept.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use quarry_agent::daemon::{self, BearerToken, DaemonConfig, GuardRails, MutualTls, is_loopback};

/// Exit code for a configuration the agent refuses to start with.
const EXIT_CONFIG: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "quarry-agent",
    version,
    about = "Quarry's load agent daemon (gRPC, quarry.v1.Agent)"
)]
struct Args {
    /// Address to listen on, e.g. 0.0.0.0:7400 or 127.0.0.1:7400.
    #[arg(long, default_value = "127.0.0.1:7400")]
    listen: String,
    /// File holding the bearer token controllers must present.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Server certificate chain (PEM) for mutual TLS.
    #[arg(long, requires_all = ["tls_key", "client_ca"])]
    tls_cert: Option<PathBuf>,
    /// Server private key (PEM) for mutual TLS.
    #[arg(long, requires_all = ["tls_cert", "client_ca"])]
    tls_key: Option<PathBuf>,
    /// CA (PEM) that client certificates must chain to.
    #[arg(long, requires_all = ["tls_cert", "tls_key"])]
    client_ca: Option<PathBuf>,
    /// Serve without authentication; only allowed on loopback addresses.
    #[arg(long, conflicts_with_all = ["token_file", "tls_cert"])]
    insecure: bool,
    /// This agent's id in Describe (default: the host name).
    #[arg(long)]
    agent_id: Option<String>,
    /// The region this agent runs in (Describe).
    #[arg(long, default_value = "")]
    region: String,
    /// The account alias this agent's credentials belong to (Describe).
    #[arg(long, default_value = "")]
    account_alias: String,
    /// Guard rail: most concurrent requests per run.
    #[arg(long)]
    max_concurrency: Option<u32>,
    /// Guard rail: most open-loop arrivals per second.
    #[arg(long)]
    max_rate: Option<f64>,
    /// Guard rail: longest run, seconds.
    #[arg(long)]
    max_duration_s: Option<u64>,
    /// Guard rail: model-id pattern a plan may use (`*`, `?`); repeatable.
    #[arg(long = "allow-model")]
    allow_model: Vec<String>,
    /// Guard rail: most estimated spend per run, USD (worst case: request
    /// bound × max attempts × dearest request at max input and max_tokens).
    #[arg(long)]
    max_spend_usd: Option<f64>,
    /// Directory where results of recent runs are kept.
    #[arg(long, default_value = "quarry-agent-results")]
    results_dir: PathBuf,
    /// How many runs the results directory keeps.
    #[arg(long, default_value_t = 100)]
    keep_runs: usize,
    /// Longest lease TTL a controller may ask for, seconds.
    #[arg(long, default_value_t = 60)]
    max_lease_ttl_s: u64,
    /// How long in-flight requests may finish after a run stops, seconds.
    #[arg(long, default_value_t = 5)]
    stop_grace_s: u64,
    /// How long shutdown waits for runs and streams to end, seconds.
    #[arg(long, default_value_t = 30)]
    shutdown_grace_s: u64,
}

fn read(path: &PathBuf) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// The host name, from the kernel or the environment.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "quarry-agent".to_owned())
}

/// Resolves `--listen`; every address it names must be loopback for
/// `--insecure`.
async fn resolve(listen: &str) -> anyhow::Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(listen)
        .await
        .with_context(|| format!("--listen {listen:?}: not an address"))?
        .collect();
    if addrs.is_empty() {
        bail!("--listen {listen:?} resolves to no address");
    }
    Ok(addrs)
}

fn config(args: &Args) -> anyhow::Result<DaemonConfig> {
    let token = match &args.token_file {
        None => None,
        Some(path) => {
            let text = String::from_utf8(read(path)?)
                .with_context(|| format!("{} is not UTF-8", path.display()))?;
            Some(
                BearerToken::from_file_contents(&text)
                    .with_context(|| format!("--token-file {} is empty", path.display()))?,
            )
        }
    };
    let tls = match (&args.tls_cert, &args.tls_key, &args.client_ca) {
        (Some(cert), Some(key), Some(ca)) => Some(MutualTls {
            cert_pem: read(cert)?,
            key_pem: read(key)?,
            client_ca_pem: read(ca)?,
        }),
        _ => None,
    };
    if token.is_none() && tls.is_none() && !args.insecure {
        bail!(
            "no authentication configured: give --token-file, or --tls-cert/--tls-key/--client-ca, or --insecure on a loopback address"
        );
    }
    let mut config = DaemonConfig::new(args.results_dir.clone());
    config.token = token;
    config.tls = tls;
    config.agent_id = args.agent_id.clone().unwrap_or_else(host_name);
    config.region = args.region.clone();
    config.account_alias = args.account_alias.clone();
    config.rails = GuardRails {
        max_concurrency: args.max_concurrency,
        max_rate_per_second: args.max_rate,
        max_duration: args.max_duration_s.map(Duration::from_secs),
        allowed_model_patterns: args.allow_model.clone(),
        max_spend_usd: args.max_spend_usd,
    };
    config.keep_runs = args.keep_runs.max(1);
    config.max_lease_ttl = Duration::from_secs(args.max_lease_ttl_s.max(1));
    config.default_lease_ttl = config.default_lease_ttl.min(config.max_lease_ttl);
    config.stop_grace = Duration::from_secs(args.stop_grace_s);
    config.shutdown_grace = Duration::from_secs(args.shutdown_grace_s);
    Ok(config)
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch SIGTERM; Ctrl-C only");
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = match config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("quarry-agent: {e:#}");
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    let addrs = resolve(&args.listen).await?;
    if args.insecure && !addrs.iter().all(is_loopback) {
        eprintln!(
            "quarry-agent: --insecure is only allowed on loopback addresses (127.0.0.0/8, ::1, localhost); {} is not loopback",
            args.listen
        );
        return Ok(ExitCode::from(EXIT_CONFIG));
    }
    let listener = tokio::net::TcpListener::bind(addrs.as_slice())
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    eprintln!("quarry-agent: listening on {}", listener.local_addr()?);
    daemon::serve(listener, config, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("quarry-agent: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("quarry-agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}
