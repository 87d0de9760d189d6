//! `loadbench`: the whole-run load harness behind the "Load engine" section
//! of BENCHMARKS.md.
//!
//! It starts `quarry-sim` as a separate process (pinned to one CPU with
//! `taskset`, one tokio worker), runs the agent's real [`Share`] on a tokio
//! runtime of `--workers` threads (1 by default) in this process, and reports
//! what the issue asks the load engine to prove: requests/s and client CPU per
//! request against the zero-latency profile, TTFT error against a fixed
//! profile (with the simulator stamping its frames, the client's own read
//! delay measured on the simulator's clock beside it), memory per in-flight
//! stream, and schedule lag in open loop. Run
//! the whole process under `taskset -c 0` so "one agent core" is literal:
//!
//! ```text
//! cargo build --release -p quarry-sim -p quarry-benches --bin loadbench
//! taskset -c 0 target/release/loadbench --scenario max-rps --concurrency 64
//! taskset -c 0 target/release/loadbench --scenario ttft-error --concurrency 1000
//! taskset -c 0 target/release/loadbench --scenario memory --concurrency 5000
//! taskset -c 0 target/release/loadbench --scenario lag --rate 2000 --dispatch-timer timerfd
//! target/release/loadbench --scenario request --out-dir /tmp/req   # for an external client
//! ```
//!
//! The last line on standard output is one JSON object with every figure;
//! the human summary goes to standard error.
//!
//! [`Share`]: quarry_engine::Share

mod probe;
mod run;
mod scenario;
mod simproc;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Parser;
use serde_json::json;

use crate::probe::Proc;
use crate::run::Auth;
use crate::scenario::{Latency, Offered};
use crate::simproc::SimProcess;

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Scenario {
    /// Closed loop against the zero-latency profile: requests/s and CPU per
    /// request.
    MaxRps,
    /// Closed loop against the fixed-latency profile: TTFT and ITL error,
    /// and the client's own read delay of the simulator's stamped frames.
    TtftError,
    /// Closed loop against a slow fixed profile: resident memory per stream.
    Memory,
    /// Open loop (Poisson unless `--arrival constant`) against the
    /// zero-latency profile: schedule lag.
    Lag,
    /// Write the scenario's request (URL, headers, body) for an external
    /// client, without running anything.
    Request,
}

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(name = "loadbench", about = "Quarry's whole-run load harness")]
pub(crate) struct Args {
    /// The scenario.
    #[arg(long, value_enum)]
    scenario: Scenario,
    /// Closed-loop users (streams in flight).
    #[arg(long, default_value_t = 64)]
    pub(crate) concurrency: u32,
    /// Open-loop arrival rate, req/s (lag scenario).
    #[arg(long, default_value_t = 2000.0)]
    pub(crate) rate: f64,
    /// How open-loop arrivals are spaced (lag scenario): `constant` for a
    /// CPU comparison at one offered rate with a client that paces evenly.
    #[arg(long, default_value = "poisson", value_parser = parse_arrival)]
    pub(crate) arrival: quarry_engine::Arrival,
    /// Seconds of warmup, excluded from every figure.
    #[arg(long, default_value_t = 2)]
    pub(crate) warmup: u64,
    /// Seconds measured after the warmup.
    #[arg(long, default_value_t = 10)]
    pub(crate) duration: u64,
    /// Send exactly this many requests instead (no warmup; figures over the
    /// whole run): for whole-process comparisons with an external client.
    #[arg(long)]
    pub(crate) requests: Option<u64>,
    /// The model every request goes to.
    #[arg(long, default_value = "meta.llama3-3-70b-instruct-v1:0")]
    pub(crate) model: String,
    /// Input tokens of the (fixed) prompt.
    #[arg(long, default_value_t = 100)]
    pub(crate) input_tokens: u32,
    /// `maxTokens`; the simulator answers exactly this many tokens.
    #[arg(long, default_value_t = 8)]
    pub(crate) max_tokens: u32,
    /// Fixed profile: time to first token, ms.
    #[arg(long, default_value_t = 200.0)]
    pub(crate) ttft_ms: f64,
    /// Fixed profile: gap between output tokens, ms.
    #[arg(long, default_value_t = 20.0)]
    pub(crate) gap_ms: f64,
    /// How requests are authenticated.
    #[arg(long, value_enum, default_value_t = Auth::Sigv4)]
    pub(crate) auth: Auth,
    /// Snapshot interval in ms (figures are taken over whole intervals).
    #[arg(long, default_value_t = 1000)]
    pub(crate) interval_ms: u64,
    /// How the open-loop dispatcher waits for each deadline: `timerfd`,
    /// `thread[:spin µs]` or `poll[:window µs]` (the engine's options).
    #[arg(long, default_value = "timerfd", value_parser = quarry_engine::DispatchTimer::parse)]
    pub(crate) dispatch_timer: quarry_engine::DispatchTimer,
    /// Tokio worker threads on the agent side.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// The simulator binary (default: `quarry-sim` beside this binary).
    #[arg(long)]
    sim_bin: Option<PathBuf>,
    /// CPU list to pin the simulator to with `taskset` ("none": unpinned).
    #[arg(long, default_value = "1")]
    sim_cpu: String,
    /// Use the simulator already listening at this URL (started from the
    /// request scenario's `sim.toml`) instead of starting one.
    #[arg(long)]
    sim_url: Option<String>,
    /// The process id of the `--sim-url` simulator, for its CPU figures.
    #[arg(long, requires = "sim_url")]
    sim_pid: Option<u32>,
    /// Where the request scenario writes its files.
    #[arg(long, default_value = "loadbench-request")]
    out_dir: PathBuf,
}

/// `--arrival`, by the engine's own names for it (`constant`, `poisson`).
fn parse_arrival(text: &str) -> Result<quarry_engine::Arrival, String> {
    serde_json::from_value(json!(text))
        .map_err(|_| format!("unknown arrival `{text}`: expected constant or poisson"))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.workers.max(1))
        .enable_all()
        .build();
    let result = match runtime {
        Ok(runtime) => runtime.block_on(measure(&args)),
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadbench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn measure(args: &Args) -> anyhow::Result<()> {
    if args.scenario == Scenario::Request {
        return write_request(args);
    }
    check_open_files(args)?;
    let (latency, offered, sample) = match args.scenario {
        Scenario::MaxRps => (Latency::Zero, Offered::Closed(args.concurrency), None),
        Scenario::Lag => (Latency::Zero, Offered::Open(args.rate), None),
        Scenario::TtftError => (fixed(args), Offered::Closed(args.concurrency), None),
        Scenario::Memory => (
            fixed(args),
            Offered::Closed(args.concurrency),
            Some(Duration::from_millis(100)),
        ),
        Scenario::Request => unreachable!("handled above"),
    };
    let sim = match &args.sim_url {
        Some(url) => SimProcess::external(url, args.sim_pid),
        None => SimProcess::spawn(
            &sim_bin(args)?,
            &scenario::sim_config(args, latency, args.scenario == Scenario::TtftError),
            (args.sim_cpu != "none").then_some(args.sim_cpu.as_str()),
        )?,
    };
    let sim_ok_before = sim.ok_requests().await.context("simulator stats")?;
    let spec = scenario::spec(args, &offered);
    let out = run::run(&sim, &scenario::setup(args, &spec, sample)).await?;
    let (figures, human) = match args.scenario {
        Scenario::MaxRps => scenario::throughput(args, &out),
        Scenario::TtftError => scenario::ttft_error(args, &out),
        Scenario::Memory => scenario::memory(args, &out),
        Scenario::Lag => scenario::lag(args, &out),
        Scenario::Request => unreachable!("handled above"),
    };
    let client_ok = out
        .report
        .cumulative
        .total_where(|_| true)
        .counters()
        .get(quarry_engine::Count::Outcome(quarry_bedrock::Outcome::Ok));
    let sim_ok = sim.ok_requests().await.context("simulator stats")? - sim_ok_before;
    eprintln!("{human}");
    eprintln!(
        "agent CPUs {}, simulator CPUs {}; ok requests: agent {client_ok}, simulator {sim_ok}",
        Proc::Me.cpus_allowed().unwrap_or_default(),
        sim.proc().and_then(Proc::cpus_allowed).unwrap_or_default(),
    );
    let line = json!({
        "scenario": format!("{:?}", args.scenario),
        "auth": scenario::auth_name(args.auth),
        "model": args.model,
        "input_tokens": args.input_tokens,
        "max_tokens": args.max_tokens,
        "workers": args.workers,
        "agent_cpus": Proc::Me.cpus_allowed(),
        "sim_cpus": sim.proc().and_then(Proc::cpus_allowed),
        "client_ok_whole_run": client_ok,
        "sim_ok_whole_run": sim_ok,
        "figures": figures,
    });
    println!("{line}");
    if client_ok != sim_ok {
        bail!("the agent counted {client_ok} ok requests, the simulator {sim_ok}");
    }
    Ok(())
}

fn fixed(args: &Args) -> Latency {
    Latency::Fixed {
        ttft_ms: args.ttft_ms,
        gap_ms: args.gap_ms,
    }
}

fn sim_bin(args: &Args) -> anyhow::Result<PathBuf> {
    if let Some(bin) = &args.sim_bin {
        return Ok(bin.clone());
    }
    let me = std::env::current_exe()?;
    let bin = me.with_file_name("quarry-sim");
    if !bin.exists() {
        bail!(
            "{} not found: build it (cargo build --release -p quarry-sim) or pass --sim-bin",
            bin.display()
        );
    }
    Ok(bin)
}

/// Each stream holds a socket here and one in the simulator; fail early with
/// the fix rather than with connection errors mid-run.
fn check_open_files(args: &Args) -> anyhow::Result<()> {
    let needed = u64::from(args.concurrency) + 256;
    match probe::open_files_limit() {
        Some(limit) if limit < needed => bail!(
            "open-file limit {limit} is below the {needed} this run needs: raise it (ulimit -n 20000)"
        ),
        _ => Ok(()),
    }
}

/// Writes the scenario's request as an external client sends it: `path`
/// (the URL path, percent-encoded as on the wire), `body.json` (byte for
/// byte what the engine sends for this spec), `content-type`, and the
/// zero-latency simulator configuration `sim.toml` to serve it.
fn write_request(args: &Args) -> anyhow::Result<()> {
    use quarry_bedrock::{ModelId, Prompt};
    let spec = scenario::spec(args, &Offered::Closed(args.concurrency));
    let plan = quarry::spec::parse_spec(std::path::Path::new("loadbench.toml"), &spec)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .plan;
    let sampler = quarry_engine::WorkloadSampler::new(&plan.mix, plan.seed, 0);
    let draw = sampler.draw(0);
    let mut user_text = String::new();
    draw.write_user_text(&mut user_text);
    let prompt = Prompt {
        system: draw.system_prompt.map(str::to_owned),
        cached_prefix: draw.cache_prefix.map(str::to_owned),
        user_text,
        max_tokens: draw.entry.max_tokens.get(),
        temperature: draw.entry.temperature,
        cache_ttl: None,
        service_tier: None,
        history: Vec::new(),
        conversation_cache: false,
    };
    let model = ModelId::parse(&args.model).map_err(|e| anyhow::anyhow!("{e}"))?;
    let family = model
        .family()
        .unwrap_or(quarry_bedrock::ModelFamily::Anthropic);
    let operation = draw.entry.operation;
    let endpoint =
        quarry_bedrock::Endpoint::custom("http://127.0.0.1:1", quarry_engine::SIM_REGION)?;
    let uri = endpoint.uri(&model, operation);
    std::fs::create_dir_all(&args.out_dir)?;
    std::fs::write(
        args.out_dir.join("body.json"),
        prompt.body(operation, family),
    )?;
    std::fs::write(args.out_dir.join("path"), uri.path())?;
    std::fs::write(args.out_dir.join("content-type"), "application/json")?;
    std::fs::write(
        args.out_dir.join("sim.toml"),
        scenario::sim_config(args, Latency::Zero, false),
    )?;
    // The same account and model answering after `--ttft-ms`, a token every
    // `--gap-ms`: for comparing TTFT against what the simulator was told.
    std::fs::write(
        args.out_dir.join("sim-fixed.toml"),
        scenario::sim_config(args, fixed(args), false),
    )?;
    println!("{}", json!({ "path": uri.path(), "dir": args.out_dir }));
    Ok(())
}
