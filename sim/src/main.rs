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

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use quarry_sim::{
    DEFAULT_MAX_CONNECTIONS, ServerOptions, SimConfig, SimServer, Simulator, TlsSettings,
};

/// A wire-faithful Amazon Bedrock Runtime simulator.
#[derive(Debug, Parser)]
#[command(name = "quarry-sim", version)]
struct Args {
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

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Args::parse()) {
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
