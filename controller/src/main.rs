//! `quarry`: the controller CLI.
//!
//! Exit codes (also in `--help` and the README):
//! 0 ok; 1 thresholds broken (each named on stderr); 2 usage or spec error;
//! 3 the run failed, or did not complete (stopped with Ctrl-C).

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use quarry::report::render_report;
use quarry::results::{ResultsDocument, read_results};
use quarry::run::{RunError, RunOptions, listen_for_ctrl_c, stop_signal};
use quarry::spec::{ValidatedSpec, load_spec};
use quarry_agent::{LoadModel, Target};

const EXIT_CODES: &str = "\
Exit codes:
  0  the run completed and every threshold held
  1  one or more thresholds broke (each is named on stderr)
  2  usage or spec error (nothing was run)
  3  the run failed, or was stopped before it completed (results are still written when possible)

A saturated load generator is a warning in the report, not an exit code.";

/// Load tests and capacity plans for Amazon Bedrock.
#[derive(Debug, Parser)]
#[command(name = "quarry", version, about, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a run spec and print what it would run; exit 1 if it is invalid.
    Validate {
        /// The spec file (TOML).
        spec: PathBuf,
    },
    /// Run a spec against the embedded simulator or Bedrock, print the
    /// report and write the results directory.
    #[command(after_help = EXIT_CODES)]
    Run {
        /// The spec file (TOML).
        spec: PathBuf,
        /// Results directory (default: results/<run-id>/); must be empty.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Seconds in-flight requests get to finish after the end or a
        /// first Ctrl-C.
        #[arg(long, default_value_t = 30.0)]
        grace_secs: f64,
        /// Seconds per interval (live view, interval file).
        #[arg(long, default_value_t = 1.0)]
        interval_secs: f64,
    },
    /// Reprint the report of a results directory from its files alone.
    #[command(after_help = EXIT_CODES)]
    Report {
        /// The results directory.
        dir: PathBuf,
    },
}

/// Why the binary stopped: which exit code, and the error to print.
enum Failure {
    Usage(anyhow::Error),
    Run(anyhow::Error),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { spec } => validate(&spec),
        Command::Run {
            spec,
            out,
            grace_secs,
            interval_secs,
        } => {
            // The one wall-clock read: it names the run and maps the run
            // clock to the time of day; everything else is monotonic.
            #[allow(clippy::disallowed_methods)]
            let started_at = SystemTime::now();
            let opts = RunOptions {
                spec_path: spec,
                out_dir: out,
                started_at,
                interval: Duration::from_secs_f64(interval_secs.clamp(0.001, 3600.0)),
                grace: Duration::from_secs_f64(grace_secs.clamp(0.0, 86_400.0)),
                live_in_place: std::io::stderr().is_terminal(),
            };
            finish(run(&opts))
        }
        Command::Report { dir } => finish(report(&dir)),
    }
}

/// Maps a result to an exit code, printing the error chain.
fn finish(result: Result<ExitCode, Failure>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(Failure::Usage(e)) => {
            eprintln!("quarry: {e:#}");
            ExitCode::from(2)
        }
        Err(Failure::Run(e)) => {
            eprintln!("quarry: {e:#}");
            ExitCode::from(3)
        }
    }
}

fn run(opts: &RunOptions) -> Result<ExitCode, Failure> {
    let text = std::fs::read_to_string(&opts.spec_path)
        .with_context(|| format!("reading {}", opts.spec_path.display()))
        .map_err(Failure::Usage)?;
    let valid = match load_spec(&opts.spec_path) {
        Ok(v) => v,
        Err(e) => return Err(Failure::Usage(anyhow::anyhow!("{e}\nnothing was run"))),
    };
    for w in &valid.warnings {
        eprintln!("{w}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")
        .map_err(Failure::Run)?;
    let outcome = runtime.block_on(async {
        let (handle, signal) = stop_signal();
        let listener = tokio::spawn(listen_for_ctrl_c(handle, opts.grace.as_secs_f64()));
        let outcome = quarry::run::run(&valid, &text, opts, signal).await;
        listener.abort();
        outcome
    });
    let outcome = outcome.map_err(|e: RunError| match e.is_usage() {
        true => Failure::Usage(e.into()),
        false => Failure::Run(e.into()),
    })?;
    print!("{}", outcome.report);
    eprintln!("quarry: results in {}", outcome.dir.display());
    Ok(verdict(&outcome.document))
}

fn report(dir: &Path) -> Result<ExitCode, Failure> {
    let doc = read_results(dir).map_err(|e| Failure::Usage(e.into()))?;
    let text = render_report(&doc).map_err(|e| Failure::Usage(e.into()))?;
    print!("{text}");
    Ok(verdict(&doc))
}

/// 1 when a threshold broke (each named on stderr), 3 when the run did not
/// complete, 0 otherwise.
fn verdict(doc: &ResultsDocument) -> ExitCode {
    let broken: Vec<_> = doc.thresholds.iter().filter(|t| !t.passed).collect();
    for t in &broken {
        let actual = t.actual.as_deref().unwrap_or("no data");
        eprintln!(
            "quarry: threshold broken: {} {} (got {actual})",
            t.key,
            t.condition.trim()
        );
    }
    if !broken.is_empty() {
        ExitCode::from(1)
    } else if !doc.end.ended.is_complete() {
        eprintln!(
            "quarry: the run did not complete ({})",
            doc.end.ended.as_str()
        );
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    }
}

fn validate(spec: &Path) -> ExitCode {
    match load_spec(spec) {
        Ok(valid) => {
            for w in &valid.warnings {
                eprintln!("{w}");
            }
            println!("{}: ok", spec.display());
            println!("{}", summary(&valid));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            let errors = e
                .diagnostics()
                .iter()
                .filter(|d| d.severity == quarry::spec::Severity::Error)
                .count();
            if errors > 0 {
                eprintln!("{}: {errors} error(s); nothing was run", spec.display());
            }
            ExitCode::FAILURE
        }
    }
}

/// A few lines saying what the plan would do.
fn summary(valid: &ValidatedSpec) -> String {
    let plan = &valid.plan;
    let target = match &plan.target {
        Target::Sim { .. } => "the embedded simulator".to_owned(),
        Target::Aws { region, .. } => format!("Bedrock in {region}"),
    };
    let load = match plan.load.model() {
        LoadModel::Closed { concurrency } => format!("closed, {concurrency} virtual users"),
        LoadModel::Open {
            rate_per_s,
            arrival,
            ..
        } => format!("open, {rate_per_s}/s {arrival:?} arrivals"),
    };
    let stages: Vec<String> = plan
        .load
        .stages()
        .iter()
        .map(|s| {
            if s.duration.as_secs() > 1 << 40 {
                format!("{} (until the request count)", s.name)
            } else {
                format!("{} {:?}", s.name, s.duration)
            }
        })
        .collect();
    let mut lines = vec![
        format!("  target:     {target}"),
        format!("  load:       {load}; stages: {}", stages.join(", ")),
    ];
    let total: u64 = plan.mix.entries().iter().map(|e| u64::from(e.weight)).sum();
    for e in plan.mix.entries() {
        lines.push(format!(
            "  workload:   {:>5.1}% {} {} max_tokens {}",
            100.0 * e.weight as f64 / total.max(1) as f64,
            e.model_id,
            e.operation,
            e.max_tokens
        ));
    }
    lines.push(format!("  thresholds: {}", valid.thresholds.rules().len()));
    lines.join("\n")
}
