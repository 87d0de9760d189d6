//! `quarry-sim`: the Bedrock Runtime simulator as a standalone server.
//!
//! ```text
//! quarry-sim --listen 127.0.0.1:0 [--config sim.toml] [--seed N] [--threads N]
//!            [--max-connections N] [--grace-secs S] [--tls [--tls-cert-out cert.pem]]
//!            [--header-timeout-secs S] [--idle-timeout-secs S] [--body-timeout-secs S]
//!            [--max-head-bytes N] [--max-unverified-body-bytes N] [--stamp-frames]
//! ```
//!
//! The first line on standard output is `listening on http://ADDR` (or
//! `https://`). SIGTERM or Ctrl-C (SIGINT) stops accepting and lets
//! in-flight requests finish within the grace period, then exits 0 (also
//! when the grace ran out and the rest were cut, which stderr says). A
//! second signal during the grace cuts what is left at once and exits 1.
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
    DEFAULT_BODY_TIMEOUT, DEFAULT_HEADER_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_HEAD_BYTES, DEFAULT_MAX_UNVERIFIED_BODY_BYTES, Limits, ServerOptions, SimConfig,
    SimServer, Simulator, TlsSettings,
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
    /// Most connections served at once; past it a new connection gets a
    /// 503 at once and is closed.
    #[arg(long, default_value_t = DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Seconds a client has to send a request head, from its first byte.
    #[arg(long, default_value_t = DEFAULT_HEADER_TIMEOUT.as_secs_f64())]
    header_timeout_secs: f64,
    /// Seconds a connection may have no request in flight before it is closed.
    #[arg(long, default_value_t = DEFAULT_IDLE_TIMEOUT.as_secs_f64())]
    idle_timeout_secs: f64,
    /// Seconds a client has to send a request body, from the end of its head.
    #[arg(long, default_value_t = DEFAULT_BODY_TIMEOUT.as_secs_f64())]
    body_timeout_secs: f64,
    /// Largest request head (request line and headers) in bytes, at least 8192.
    #[arg(long, default_value_t = DEFAULT_MAX_HEAD_BYTES)]
    max_head_bytes: usize,
    /// Bytes of request bodies held at once before their SigV4 signature
    /// can be checked (at least the 25 MB largest body); past it they wait.
    #[arg(long, default_value_t = DEFAULT_MAX_UNVERIFIED_BODY_BYTES)]
    max_unverified_body_bytes: usize,
    /// Seconds in-flight requests get to finish at shutdown.
    #[arg(long, default_value_t = 10.0)]
    grace_secs: f64,
    /// Serve HTTPS with a freshly generated self-signed certificate.
    #[arg(long)]
    tls: bool,
    /// Write the generated certificate (PEM) here, for clients to trust.
    #[arg(long, requires = "tls")]
    tls_cert_out: Option<PathBuf>,
    /// Stamp every event-stream frame with the CLOCK_MONOTONIC time it was
    /// handed to the connection (header `x-quarry-written-ns`, not a
    /// Bedrock header), so a Quarry client on this host measures its own
    /// read delay; the config's `stamp_frames = true` does the same.
    #[arg(long)]
    stamp_frames: bool,
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
        Ok(Stopped::Orderly) => ExitCode::SUCCESS,
        Ok(Stopped::Forced) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("quarry-sim: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// How the server stopped.
enum Stopped {
    /// On a signal, after the in-flight requests finished or the grace ran out.
    Orderly,
    /// A second signal cut the in-flight requests.
    Forced,
}

/// A duration from a command-line number of seconds (negative is zero).
fn secs(name: &str, value: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value.max(0.0))
        .map_err(|_| anyhow::anyhow!("--{name}: {value} is not a number of seconds"))
}

fn limits(args: &Args) -> anyhow::Result<Limits> {
    Ok(Limits {
        max_connections: args.max_connections,
        header_timeout: secs("header-timeout-secs", args.header_timeout_secs)?,
        idle_timeout: secs("idle-timeout-secs", args.idle_timeout_secs)?,
        body_timeout: secs("body-timeout-secs", args.body_timeout_secs)?,
        max_head_bytes: args.max_head_bytes,
        max_unverified_body_bytes: args.max_unverified_body_bytes,
    })
}

fn run(args: Args) -> anyhow::Result<Stopped> {
    let mut config = match &args.config {
        Some(path) => SimConfig::load(path)?,
        None => SimConfig::default(),
    };
    if let Some(seed) = args.seed {
        config.seed = seed;
    }
    config.stamp_frames |= args.stamp_frames;
    let limits = limits(&args)?;
    let grace = secs("grace-secs", args.grace_secs)?;
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
        // Installed before the address is printed, so a signal sent as soon
        // as a supervisor sees the line is never the default (fatal) one.
        let mut signals = StopSignals::install()?;
        let sim = Simulator::new(&config)?;
        let options = ServerOptions {
            listen: args.listen,
            limits,
            shutdown_grace: grace,
            tls,
            ..ServerOptions::default()
        };
        let server = SimServer::bind(sim, options).await?;
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "listening on {}", server.url())?;
            out.flush()?;
        }
        signals.next().await?;
        stop(server, &mut signals, grace).await
    })
}

/// After the first signal: stop accepting, let what is in flight finish
/// within `grace`, or cut it at a second signal.
async fn stop(
    mut server: SimServer,
    signals: &mut StopSignals,
    grace: Duration,
) -> anyhow::Result<Stopped> {
    server.stop_accepting().await;
    let open = server.open_connections();
    eprintln!(
        "quarry-sim: stopping: no new connections; {open} open connection(s) get up to {:.1} s to finish (a second signal cuts them at once)",
        grace.as_secs_f64()
    );
    let sim = std::sync::Arc::clone(server.simulator());
    tokio::select! {
        clean = server.drain() => {
            if !clean {
                eprintln!("quarry-sim: grace period over; cutting the remaining requests");
            }
            Ok(Stopped::Orderly)
        }
        r = signals.next() => {
            r?;
            let left = sim.stats().server().snapshot().connections_open;
            eprintln!("quarry-sim: second signal: cutting {left} open connection(s)");
            Ok(Stopped::Forced)
        }
    }
}

/// SIGTERM and Ctrl-C (SIGINT), installed once so every later signal is
/// caught rather than fatal.
struct StopSignals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> anyhow::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(StopSignals {
                term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
                int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(StopSignals {})
        }
    }

    /// Resolves on the next SIGTERM or Ctrl-C.
    async fn next(&mut self) -> anyhow::Result<()> {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => Ok(()),
                _ = self.int.recv() => Ok(()),
            }
        }
        #[cfg(not(unix))]
        {
            tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")
        }
    }
}
