//! `quarry-sim`: the Bedrock Runtime simulator as a standalone server.
//!
//! ```text
//! quarry-sim --listen 127.0.0.1:0 [--config sim.toml] [--seed N] [--threads N]
//!            [--max-connections N] [--grace-secs S] [--tls [--tls-cert-out cert.pem]]
//! ```
//!
//! The first line on standard output is `listening on http://ADDR` (or
//! `https://`). SIGTERM or Ctrl-C stops accepting, lets in-flight requests
//! finish within the grace period, and exits 0.
//!
//! `quarry-sim health [--addr 127.0.0.1:8080]` is the container health probe
//! (Docker `HEALTHCHECK`): it exits 0 when `GET /_quarry/health` answers 200
//! over plain HTTP.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use quarry_sim::{
    DEFAULT_MAX_CONNECTIONS, ServerOptions, SimConfig, SimServer, Simulator, TlsSettings,
};

/// A wire-faithful Amazon Bedrock Runtime simulator.
#[derive(Debug, Parser)]
#[command(name = "quarry-sim", version, args_conflicts_with_subcommands = true)]
struct Args {
    #[command(subcommand)]
    command: Option<SimCommand>,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Simulator configuration (accounts, models, quotas, faults).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Seed for every per-request decision (overrides the config's).
    #[arg(long)]
    seed: Option<u64>,
    /// Tokio worker threads (default: one per CPU).
    #[arg(long)]
    threads: Option<usize>,
    /// Most connections served at once.
    #[arg(long, default_value_t = DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Seconds in-flight requests get to finish at shutdown.
    #[arg(long, default_value_t = 10.0)]
    grace_secs: f64,
    /// Serve HTTPS with a freshly generated self-signed certificate.
    #[arg(long)]
    tls: bool,
    /// Write the generated certificate (PEM) here, for clients to trust.
    #[arg(long, requires = "tls")]
    tls_cert_out: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum SimCommand {
    /// Container health probe: exit 0 when `GET /_quarry/health` at ADDR
    /// answers 200 (plain HTTP), 1 otherwise.
    Health {
        /// The simulator's address, as seen from inside its container.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: String,
        /// Seconds to wait for the connection and for the answer.
        #[arg(long, default_value_t = 2.0)]
        timeout_secs: f64,
    },
}

/// `quarry-sim health`: one `GET /_quarry/health`.
fn health(addr: &str, timeout: Duration) -> anyhow::Result<()> {
    let socket = addr
        .to_socket_addrs()
        .with_context(|| format!("{addr}: not an address"))?
        .next()
        .with_context(|| format!("{addr} resolves to no address"))?;
    let mut stream = TcpStream::connect_timeout(&socket, timeout)
        .with_context(|| format!("connecting to {socket}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET /_quarry/health HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 12];
    stream
        .read_exact(&mut head)
        .with_context(|| format!("reading the answer from {socket}"))?;
    let status = String::from_utf8_lossy(&head);
    if !status.starts_with("HTTP/1.1 200") && !status.starts_with("HTTP/1.0 200") {
        anyhow::bail!("GET /_quarry/health at {socket}: {}", status.trim());
    }
    Ok(())
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if let Some(SimCommand::Health { addr, timeout_secs }) = &args.command {
        let timeout = Duration::from_secs_f64(timeout_secs.clamp(0.001, 60.0));
        return match health(addr, timeout) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("quarry-sim health: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quarry-sim: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => SimConfig::load(path)?,
        None => SimConfig::default(),
    };
    if let Some(seed) = args.seed {
        config.seed = seed;
    }
    let tls = if args.tls {
        let host = args.listen.ip().to_string();
        let settings = TlsSettings::self_signed(&["localhost", &host])?;
        if let Some(path) = &args.tls_cert_out {
            std::fs::write(path, settings.cert_pem())
                .with_context(|| format!("writing the certificate to {}", path.display()))?;
        }
        Some(settings)
    } else {
        None
    };
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(n) = args.threads {
        runtime.worker_threads(n.max(1));
    }
    let runtime = runtime.build().context("starting the tokio runtime")?;
    runtime.block_on(async {
        let sim = Simulator::new(&config)?;
        let options = ServerOptions {
            listen: args.listen,
            max_connections: args.max_connections,
            shutdown_grace: Duration::from_secs_f64(args.grace_secs.max(0.0)),
            tls,
            ..ServerOptions::default()
        };
        let server = SimServer::bind(sim, options).await?;
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "listening on {}", server.url())?;
            out.flush()?;
        }
        stop_signal().await?;
        if !server.shutdown().await {
            eprintln!("quarry-sim: grace period over; cutting the remaining requests");
        }
        Ok(())
    })
}

/// Resolves on SIGTERM or Ctrl-C.
async fn stop_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        tokio::select! {
            _ = term.recv() => Ok(()),
            r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")
    }
}
