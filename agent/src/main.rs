//! `quarry-agent`: the long-lived agent daemon the controller drives over
//! gRPC (`quarry.v1.Agent`). Flags configure where it listens, how
//! controllers authenticate, the guard rails every plan must respect, and
//! where results of recent runs are kept.
//!
//! `quarry-agent health` is the container health probe (Docker
//! `HEALTHCHECK`, ECS `healthCheck`): it exits 0 when the agent accepts TCP
//! connections on its address, whatever authentication it uses.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use quarry_agent::{self, BearerToken, DaemonConfig, GuardRails, MutualTls, is_loopback};

/// Exit code for a configuration the agent refuses to start with.
const EXIT_CONFIG: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "quarry-agent",
    version,
    about = "Quarry's load agent daemon (gRPC, quarry.v1.Agent)",
    args_conflicts_with_subcommands = true
)]
struct Args {
    #[command(subcommand)]
    command: Option<AgentCommand>,
    /// Address to listen on, e.g. 0.0.0.0:7400 or 127.0.0.1:7400.
    #[arg(long, default_value = "127.0.0.1:7400")]
    listen: String,
    /// File holding the bearer token controllers must present.
    #[arg(long, conflicts_with = "token_env")]
    token_file: Option<PathBuf>,
    /// Environment variable holding the bearer token (ECS task secrets,
    /// Kubernetes `secretKeyRef`): the token itself never appears on the
    /// command line.
    #[arg(long, value_name = "VAR")]
    token_env: Option<String>,
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
    #[arg(long, conflicts_with_all = ["token_file", "token_env", "tls_cert"])]
    insecure: bool,
    /// This agent's id in Describe (default: `<host name>:<listening port>`,
    /// unique per running agent).
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
    /// Seconds a new connection has to send its first bytes (the HTTP/2
    /// preface or a TLS ClientHello) before it is closed, 1-3600.
    #[arg(long, default_value_t = 10, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(FIRST_BYTES_TIMEOUT_S))]
    first_bytes_timeout_s: u64,
    /// At most one log line per this many seconds about rejected bearer
    /// tokens (with the count since the last line; never a token), 1-86400.
    #[arg(long, default_value_t = 60, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(REJECTED_TOKEN_LOG_EVERY_S))]
    rejected_token_log_every_s: u64,
}

/// `--first-bytes-timeout-s` bounds: below 1 s a client on a slow link (or a
/// TLS handshake behind a busy proxy) would be cut before it could speak;
/// above an hour a silent connection holds its socket for no reason.
const FIRST_BYTES_TIMEOUT_S: std::ops::RangeInclusive<u64> = 1..=3600;

/// `--rejected-token-log-every-s` bounds: at least a second (a scan of bad
/// tokens must not flood the log), at most a day (a misconfigured
/// controller must be seen the same day).
const REJECTED_TOKEN_LOG_EVERY_S: std::ops::RangeInclusive<u64> = 1..=86_400;

#[derive(Debug, Subcommand)]
enum AgentCommand {
    /// Container health probe: exit 0 when an agent accepts TCP connections
    /// at ADDR, 1 otherwise. A TCP accept is what every authentication mode
    /// (token, mutual TLS) allows without credentials; the agent's listener
    /// is open exactly while it serves.
    Health {
        /// The agent's address, as seen from inside its container.
        #[arg(long, default_value = "127.0.0.1:7400")]
        addr: String,
        /// Seconds to wait for the connection.
        #[arg(long, default_value_t = 2.0)]
        timeout_secs: f64,
    },
}

/// `quarry-agent health`: connects to `addr` once.
fn health(addr: &str, timeout: Duration) -> ExitCode {
    let addrs: Vec<SocketAddr> = match addr.to_socket_addrs() {
        Ok(a) => a.collect(),
        Err(e) => {
            eprintln!("quarry-agent health: {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut last = format!("{addr} resolves to no address");
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(_) => return ExitCode::SUCCESS,
            Err(e) => last = format!("{a}: {e}"),
        }
    }
    eprintln!("quarry-agent health: {last}");
    ExitCode::FAILURE
}

fn read(path: &PathBuf) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
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
    let token = match (&args.token_file, &args.token_env) {
        (Some(path), _) => {
            let text = String::from_utf8(read(path)?)
                .with_context(|| format!("{} is not UTF-8", path.display()))?;
            Some(
                BearerToken::from_file_contents(&text)
                    .with_context(|| format!("--token-file {} is empty", path.display()))?,
            )
        }
        (None, Some(var)) => {
            // The value is a secret: errors name the variable, never it.
            let text = std::env::var(var).map_err(|e| match e {
                std::env::VarError::NotPresent => anyhow::anyhow!("--token-env {var}: not set"),
                std::env::VarError::NotUnicode(_) => {
                    anyhow::anyhow!("--token-env {var}: not UTF-8")
                }
            })?;
            Some(
                BearerToken::from_file_contents(&text)
                    .with_context(|| format!("--token-env {var} is empty"))?,
            )
        }
        (None, None) => None,
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
            "no authentication configured: give --token-file or --token-env, or --tls-cert/--tls-key/--client-ca, or --insecure on a loopback address"
        );
    }
    let mut config = DaemonConfig::new(args.results_dir.clone());
    config.token = token;
    config.tls = tls;
    // Empty: the daemon uses `<host name>:<port>` once it has bound.
    config.agent_id = args.agent_id.clone().unwrap_or_default();
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
    config.first_bytes_timeout = Duration::from_secs(args.first_bytes_timeout_s);
    config.rejection_log_every = Duration::from_secs(args.rejected_token_log_every_s);
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
    quarry_agent::serve(listener, config, shutdown_signal()).await?;
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
    if let Some(AgentCommand::Health { addr, timeout_secs }) = &args.command {
        return health(
            addr,
            Duration::from_secs_f64(timeout_secs.clamp(0.001, 60.0)),
        );
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &[&str]) -> Result<Args, clap::Error> {
        let mut argv = vec!["quarry-agent", "--insecure", "--results-dir", "r"];
        argv.extend_from_slice(extra);
        Args::try_parse_from(argv)
    }

    #[test]
    fn the_connection_timeouts_default_to_the_daemon_s_and_follow_their_flags() {
        let defaults = config(&parse(&[]).unwrap()).unwrap();
        let library = DaemonConfig::new(PathBuf::from("r"));
        assert_eq!(defaults.first_bytes_timeout, library.first_bytes_timeout);
        assert_eq!(defaults.rejection_log_every, library.rejection_log_every);

        let args = parse(&[
            "--first-bytes-timeout-s",
            "3",
            "--rejected-token-log-every-s",
            "600",
        ])
        .unwrap();
        let c = config(&args).unwrap();
        assert_eq!(c.first_bytes_timeout, Duration::from_secs(3));
        assert_eq!(c.rejection_log_every, Duration::from_secs(600));
    }

    #[test]
    fn the_connection_timeouts_are_bounded() {
        for (flag, value) in [
            ("--first-bytes-timeout-s", "0"),
            ("--first-bytes-timeout-s", "3601"),
            ("--first-bytes-timeout-s", "1.5"),
            ("--rejected-token-log-every-s", "0"),
            ("--rejected-token-log-every-s", "86401"),
        ] {
            let err = parse(&[flag, value]).unwrap_err().to_string();
            assert!(
                err.contains(flag) && err.contains(value),
                "{flag} {value}: {err}"
            );
        }
        for (flag, value) in [
            ("--first-bytes-timeout-s", "1"),
            ("--first-bytes-timeout-s", "3600"),
            ("--rejected-token-log-every-s", "1"),
            ("--rejected-token-log-every-s", "86400"),
        ] {
            assert!(parse(&[flag, value]).is_ok(), "{flag} {value}");
        }
    }
}
