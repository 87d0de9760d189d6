//! `quarry`: the controller CLI.
//!
//! Exit codes (also in `--help` and the README):
//! 0 ok; 1 thresholds broken (each named on stderr); 2 usage or spec error;
//! 3 the run failed: did not complete (stopped, aborted, recovered),
//! was degraded (an agent was lost and its share is partial), or measured
//! nothing (every measured request failed).

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use quarry::clock::ControllerClock;
use quarry::coordinator::SharesOutcome;
use quarry::fleet::{AgentFlags, AgentStatus, agents_table};
use quarry::report::{RunFigures, evaluate, measured_nothing, render_fleet_section, render_report};
use quarry::results::{
    Ended, ResultsDocument, SPEC_FILE, read_fleet, read_results, recover_results,
};
use quarry::run::{
    Placement, RunError, RunJob, RunOptions, execute, find_run_agents, listen_for_stop_signals,
    stop_signal,
};
use quarry::spec::{ValidatedSpec, load_spec};
use quarry::telemetry::TelemetryConfig;
use quarry_engine::{LoadModel, Target};

const EXIT_CODES: &str = "\
Exit codes:
  0  the run completed, measured successful requests, and every threshold held
  1  the run completed but one or more thresholds broke (each is named on stderr)
  2  usage or spec error, or too little free space for the results (nothing was run)
  3  the run failed: it was stopped or aborted before it completed, recovered after a
     crash, degraded (an agent was lost mid-run and its share is partial), or it
     measured nothing (no measured request, or every one failed); thresholds are
     still evaluated and named, and results are still written when possible

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
        #[command(flatten)]
        timing: TimingFlags,
        /// Export the run's trace and metrics over OTLP to this base URL
        /// (overrides OTEL_EXPORTER_OTLP_ENDPOINT and the spec's
        /// [telemetry] endpoint; the protocol comes from
        /// OTEL_EXPORTER_OTLP_PROTOCOL or the spec, default grpc).
        #[arg(long, value_name = "URL")]
        otlp_endpoint: Option<String>,
        #[command(flatten)]
        fleet: AgentFlags,
    },
    /// List agents: version, region, account alias, cores, clock offset ±
    /// uncertainty, round trip and health; exit 3 if any is unusable.
    Agents {
        #[command(flatten)]
        fleet: AgentFlags,
    },
    /// Fetch a distributed run's results from its agents (after the
    /// controller that started it died) into a new results directory.
    #[command(after_help = EXIT_CODES)]
    Results {
        /// The run id (the directory name under results/, and `run_id` in
        /// its run.json).
        #[arg(long, value_name = "RUN_ID")]
        attach: String,
        /// The directory the original controller wrote (for the spec,
        /// plan and run metadata); default: results/<RUN_ID>.
        #[arg(long)]
        from: Option<PathBuf>,
        /// The new results directory; default: results/<RUN_ID>-attached.
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        fleet: AgentFlags,
    },
    /// Reprint the report of a run's results directory, a sweep directory
    /// or a plan directory from its files alone (text, or --format json),
    /// or rewrite its report.html (--html).
    #[command(after_help = EXIT_CODES)]
    Report {
        /// The results, sweep or plan directory (told apart by results.json
        /// / run.json / intervals.jsonl, sweep.json, plan.json).
        dir: PathBuf,
        /// Print instead the per-minute, per-model figures named as Bedrock's
        /// CloudWatch metrics (AWS/Bedrock), computed from what Quarry
        /// measured (a run's directory).
        #[arg(long)]
        cloudwatch: bool,
        /// Rewrite DIR/report.html (self-contained: charts and their data
        /// tables, no network fetch) instead of printing the report.
        #[arg(long, conflicts_with_all = ["cloudwatch", "format"])]
        html: bool,
        /// text, or json: a run's evaluated report (schema quarry.report/1),
        /// sweep.json or plan.json as read back; with --cloudwatch, its table
        /// as JSON.
        #[arg(long, value_enum)]
        format: Option<QuotasFormat>,
    },
    /// Compute a capacity plan from a plan file, measured runs and sweeps,
    /// and traces: write plan.json and plan.txt, and print plan.txt.
    #[command(after_help = quarry::capacity_plan::PLAN_EXIT_CODES)]
    Plan {
        /// The plan file (TOML; see examples/plan.toml).
        plan: PathBuf,
        /// A results directory of `quarry run` or a sweep directory to take
        /// measurements from, or a trace file (JSON lines, as `[load]
        /// replay` reads) to take demand from (repeatable).
        #[arg(long, value_name = "DIR|TRACE")]
        from: Vec<PathBuf>,
        /// Output directory (default: plans/<plan>-<id>/); must be empty.
        #[arg(long)]
        out: Option<PathBuf>,
        /// The account's quotas as `quarry quotas --format json` wrote them:
        /// each pool's entry is used where the plan file enters none.
        #[arg(long, value_name = "FILE")]
        quotas: Option<PathBuf>,
    },
    /// Print the account's Bedrock quotas from Service Quotas (service code
    /// bedrock) for the models a spec uses or --models names, mapped to
    /// model, pool and metric; --format json is what `quarry plan --quotas` reads.
    #[command(after_help = quarry::quotas::QUOTAS_EXIT_CODES)]
    Quotas {
        /// AWS Region (default: the spec's target Region, else AWS_REGION /
        /// the profile's, else us-east-1).
        #[arg(long)]
        region: Option<String>,
        /// Model ids (any form; comma-separated or repeated) whose quotas to show.
        #[arg(long, value_delimiter = ',', value_name = "ID")]
        models: Vec<String>,
        /// A run spec: show the quotas of the models it uses.
        #[arg(long, value_name = "SPEC")]
        spec: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = QuotasFormat::Text)]
        format: QuotasFormat,
        /// Service Quotas endpoint URL (e.g. the simulator's).
        #[arg(long, value_name = "URL")]
        endpoint_url: Option<String>,
        /// Print the table mapping quota names to model ids, and exit.
        #[arg(long)]
        show_mapping: bool,
    },
    /// Compare runs or sweeps with the first (the baseline): the same
    /// figures side by side with their differences, and whether each latency
    /// percentile moved by more than run-to-run noise (a seeded bootstrap
    /// over the HDR histograms; the method is printed).
    #[command(after_help = quarry::compare::COMPARE_EXIT_CODES)]
    Compare {
        /// Results directories of runs, or sweep directories (not mixed):
        /// the baseline first, then each one to compare with it.
        #[arg(required = true, num_args = 2.., value_name = "DIR")]
        dirs: Vec<PathBuf>,
        /// Output format: text, or json (docs/compare-schema.md).
        #[arg(long, value_enum, default_value_t = QuotasFormat::Text)]
        format: QuotasFormat,
        /// Exit 1 when a latency percentile is significantly higher than the
        /// baseline's (or a sweep's feasible maximum is lower).
        #[arg(long)]
        fail_on_regression: bool,
        /// The smallest change of a percentile, in % of the baseline's,
        /// called significant (0 to 1000).
        #[arg(long, default_value_t = 10.0, value_parser = min_change_percent, value_name = "PERCENT")]
        min_change_percent: f64,
        /// Also write the comparison as a self-contained page to this file
        /// (opens offline, like every report.html).
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
    },
    /// Trace files for `[load] replay` (docs/trace-schema.md).
    Trace {
        #[command(subcommand)]
        command: TraceCommand,
    },
    /// Run a spec's [sweep]: one measured run per level, then sweep.json
    /// and report.txt (the knee, and what binds, against its [slo]).
    #[command(after_help = SWEEP_EXIT_CODES)]
    Sweep {
        /// The spec file (TOML) with a [sweep] section.
        spec: PathBuf,
        /// Sweep directory (default: results/sweep-<time>/); new or empty.
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        timing: TimingFlags,
        #[command(flatten)]
        fleet: AgentFlags,
    },
}

/// `quarry trace ...`.
#[derive(Debug, Subcommand)]
enum TraceCommand {
    /// Convert Bedrock model invocation logs (JSON records from CloudWatch
    /// Logs or S3, `.gz` read through) or a CSV into a trace file.
    Import {
        /// What the files hold: `invocation-logs` or `csv`.
        #[arg(long = "from", value_name = "SOURCE")]
        source: quarry::replay::import::Source,
        /// The files to read, in any order (the trace is sorted by time).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Where to write the trace (default: standard output).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Skip bad records (each counted, the first few named) instead of
        /// failing on the first file that has one.
        #[arg(long)]
        skip_bad: bool,
    },
}

/// `--format` of `quarry quotas`, `quarry report` and `quarry compare`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum QuotasFormat {
    /// Text: a table, or the report as printed.
    Text,
    /// JSON (quotas.json of `quarry quotas`: docs/quotas-schema.md).
    Json,
}

/// The timing flags of every command that runs load (`run`, `sweep`).
#[derive(Debug, clap::Args)]
struct TimingFlags {
    /// Seconds in-flight requests get to finish after the end (of the run,
    /// or of each sweep level) or a first Ctrl-C or SIGTERM (0 to 86400).
    #[arg(long, default_value_t = 30.0, value_parser = grace_secs)]
    grace_secs: f64,
    /// Seconds per interval (live view, interval files): 0.1 to 3600.
    #[arg(long, default_value_t = 1.0, value_parser = interval_secs)]
    interval_secs: f64,
}

impl TimingFlags {
    /// The grace period.
    fn grace(&self) -> Duration {
        Duration::from_secs_f64(self.grace_secs)
    }

    /// The snapshot interval.
    fn interval(&self) -> Duration {
        Duration::from_secs_f64(self.interval_secs)
    }
}

const SWEEP_EXIT_CODES: &str = "\
Exit codes:
  0  every level ran (a knee found is a finding, not a failure) and, when [slo] states
     target_concurrency or target_rate, a level at or above it passed
  1  every level ran but the stated target was not met
  2  usage or spec error (nothing was run), or too little free space for a level's
     results (that level was not run)
  3  the sweep failed or was stopped (finished levels and sweep.json are kept)";

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
            timing,
            otlp_endpoint,
            fleet,
        } => {
            // The one wall-clock read: it names the run and maps the run
            // clock to the time of day; everything else is monotonic.
            #[allow(clippy::disallowed_methods)]
            let started_at = SystemTime::now();
            let opts = RunOptions {
                spec_path: spec,
                out_dir: out,
                started_at,
                interval: timing.interval(),
                grace: timing.grace(),
                live_in_place: std::io::stderr().is_terminal(),
                telemetry: None,
            };
            finish(run(&opts, otlp_endpoint.as_deref(), &fleet))
        }
        Command::Agents { fleet } => finish(agents(&fleet)),
        Command::Results {
            attach,
            from,
            out,
            fleet,
        } => finish(attach_results(&attach, from, out, &fleet)),
        Command::Report {
            dir,
            cloudwatch: true,
            format,
            ..
        } => finish(cloudwatch_report(
            &dir,
            format.unwrap_or(QuotasFormat::Text),
        )),
        Command::Report {
            dir, html, format, ..
        } => finish(report(&dir, html, format.unwrap_or(QuotasFormat::Text))),
        Command::Plan {
            plan,
            from,
            out,
            quotas,
        } => capacity_plan(plan, from, out, quotas),
        Command::Quotas {
            region,
            models,
            spec,
            format,
            endpoint_url,
            show_mapping,
        } => {
            if show_mapping {
                print!("{}", quarry::quotas::mapping_text());
                return ExitCode::SUCCESS;
            }
            let opts = quarry::quotas::QuotasOptions {
                region,
                models,
                spec,
                endpoint_url,
            };
            quotas(&opts, format)
        }
        Command::Sweep {
            spec,
            out,
            timing,
            fleet,
        } => finish(sweep(&spec, out, &timing, &fleet)),
        Command::Compare {
            dirs,
            format,
            fail_on_regression,
            min_change_percent,
            html,
        } => compare(
            &dirs,
            format,
            fail_on_regression,
            min_change_percent,
            html.as_deref(),
        ),
        Command::Trace {
            command:
                TraceCommand::Import {
                    source,
                    files,
                    out,
                    skip_bad,
                },
        } => finish(trace_import(source, &files, out.as_deref(), skip_bad)),
    }
}

/// `quarry compare`: exit codes in `quarry::compare::COMPARE_EXIT_CODES`.
fn compare(
    dirs: &[PathBuf],
    format: QuotasFormat,
    fail_on_regression: bool,
    min_change_percent: f64,
    html: Option<&Path>,
) -> ExitCode {
    let method = quarry::compare::Method::new(min_change_percent / 100.0);
    match quarry::compare::compare(dirs, &method) {
        Ok(c) => {
            if let Some(path) = html {
                let page = quarry::compare::compare_page(&c).render();
                if let Err(e) = std::fs::write(path, page) {
                    eprintln!("quarry: cannot write {}: {e}", path.display());
                    return ExitCode::from(3);
                }
                eprintln!("quarry: wrote {}", path.display());
            }
            match format {
                QuotasFormat::Text => print!("{}", quarry::compare::render_text(&c)),
                QuotasFormat::Json => println!("{}", c.to_json()),
            }
            if fail_on_regression && c.regressed() {
                eprintln!("quarry: a significant regression against the baseline (see above)");
                return ExitCode::from(1);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("quarry: {}", printable(&e.to_string()));
            ExitCode::from(e.exit_code())
        }
    }
}

/// `--min-change-percent`: a percentage in [0, 1000].
fn min_change_percent(text: &str) -> Result<f64, String> {
    let v: f64 = text
        .trim()
        .trim_end_matches('%')
        .parse()
        .map_err(|_| "expected a percentage from 0 to 1000".to_owned())?;
    if v.is_finite() && (0.0..=1000.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("must be from 0 to 1000, got {v}"))
    }
}

/// `quarry trace import`: exit 0 with the trace written, 2 on a bad record
/// (each named `FILE:LINE: field`) or an unreadable file, 3 when the trace
/// cannot be written.
fn trace_import(
    source: quarry::replay::import::Source,
    files: &[PathBuf],
    out: Option<&Path>,
    skip_bad: bool,
) -> Result<ExitCode, Failure> {
    let imported = quarry::replay::import::import(source, files, skip_bad).map_err(|errors| {
        for e in &errors {
            eprintln!("{}", printable(e));
        }
        Failure::Usage(anyhow::anyhow!(
            "{} bad record(s); nothing was written (--skip-bad skips them)",
            errors.len()
        ))
    })?;
    if imported.records.is_empty() {
        return Err(Failure::Usage(anyhow::anyhow!(
            "no valid record in {} file(s); nothing was written",
            files.len()
        )));
    }
    let text = imported.to_jsonl();
    match out {
        Some(path) => std::fs::write(path, &text)
            .map_err(|e| Failure::Run(anyhow::anyhow!("cannot write {}: {e}", path.display())))?,
        None => print!("{text}"),
    }
    if let Some((file, first)) = imported.skipped.first() {
        eprintln!(
            "quarry: skipped {} bad record(s); the first: {}",
            imported.skipped.len(),
            printable(&first.render(file))
        );
    }
    eprintln!(
        "quarry: {} request(s) imported from {} file(s){}",
        imported.records.len(),
        files.len(),
        out.map(|p| format!(" into {}", p.display()))
            .unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}

/// `quarry plan`: exit codes in `quarry::capacity_plan::PLAN_EXIT_CODES`.
fn capacity_plan(
    plan_path: PathBuf,
    from: Vec<PathBuf>,
    out: Option<PathBuf>,
    quotas: Option<PathBuf>,
) -> ExitCode {
    // The one wall-clock read: it names the default output directory.
    #[allow(clippy::disallowed_methods)]
    let started_at = SystemTime::now();
    let opts = quarry::capacity_plan::PlanOptions {
        plan_path,
        from,
        out,
        started_at,
        quotas,
    };
    match quarry::capacity_plan::run_plan(&opts) {
        Ok(outcome) => {
            for note in &outcome.notes {
                eprintln!("quarry: {note}");
            }
            print!("{}", outcome.text);
            eprintln!("quarry: plan in {}", outcome.dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("quarry: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// `--interval-secs`: a number of seconds in [0.1, 3600]. Shorter
/// intervals cost the controller more than they show (10 status lines and
/// interval records a second is the most anyone reads).
fn interval_secs(text: &str) -> Result<f64, String> {
    seconds_in(text, 0.1, 3600.0)
}

/// `--grace-secs`: a number of seconds in [0, 86400].
fn grace_secs(text: &str) -> Result<f64, String> {
    seconds_in(text, 0.0, 86_400.0)
}

fn seconds_in(text: &str, min: f64, max: f64) -> Result<f64, String> {
    let v: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("expected a number of seconds from {min} to {max}"))?;
    if v.is_finite() && (min..=max).contains(&v) {
        Ok(v)
    } else {
        Err(format!("must be from {min} to {max} seconds, got {v}"))
    }
}

/// Maps a result to an exit code, printing the error chain.
fn finish(result: Result<ExitCode, Failure>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(Failure::Usage(e)) => {
            eprintln!("quarry: {}", error_text(&e));
            ExitCode::from(2)
        }
        Err(Failure::Run(e)) => {
            eprintln!("quarry: {}", error_text(&e));
            ExitCode::from(3)
        }
    }
}

/// An error chain as one message: each cause once (an error whose message
/// already includes its source's is not followed by it again), control
/// characters (NUL, escapes) shown escaped, never written raw.
fn error_text(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    printable(&out)
}

/// `text` with control characters other than newline and tab escaped.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\n' | '\t' => c.to_string(),
            c if c.is_control() => c.escape_default().to_string(),
            c => c.to_string(),
        })
        .collect()
}

fn run(
    opts: &RunOptions,
    otlp_endpoint: Option<&str>,
    fleet: &AgentFlags,
) -> Result<ExitCode, Failure> {
    let valid = match load_spec(&opts.spec_path) {
        Ok(v) => v,
        Err(e) => return Err(Failure::Usage(anyhow::anyhow!("{e}\nnothing was run"))),
    };
    for w in &valid.warnings {
        eprintln!("{w}");
    }
    if valid.sweep.is_some() {
        return Err(Failure::Usage(anyhow::anyhow!(
            "{}: the spec has a [sweep] section: run it with `quarry sweep`\nnothing was run",
            opts.spec_path.display()
        )));
    }
    let mut opts = opts.clone();
    opts.telemetry = TelemetryConfig::resolve(otlp_endpoint, valid.telemetry.as_ref(), |k| {
        std::env::var(k).ok()
    })
    .map_err(|e| Failure::Usage(anyhow::anyhow!("{e}\nnothing was run")))?;
    let job = RunJob::new(&valid, &opts);
    let outcome = runtime()?.block_on(async {
        let (handle, signal) = stop_signal();
        let listener = tokio::spawn(listen_for_stop_signals(handle, opts.grace.as_secs_f64()));
        // `--agents`, else the spec's [[agents.group]], else in-process.
        let placement = quarry::run::placement(fleet, valid.agents.as_ref(), opts.started_at)
            .await
            .map_err(|e| match e.is_usage() {
                true => Failure::Usage(e.into()),
                false => Failure::Run(e.into()),
            })?;
        let outcome = execute(job, placement, signal).await;
        listener.abort();
        outcome.map_err(run_failure)
    })?;
    print!("{}", outcome.report);
    eprintln!("quarry: results in {}", outcome.dir.display());
    let code = verdict(&outcome.document, &outcome.figures);
    Ok(unwritten(&outcome.unwritten).unwrap_or(code))
}

/// Names each file a run could not write (a full disk); exit 3 if any.
fn unwritten(failures: &[String]) -> Option<ExitCode> {
    for f in failures {
        eprintln!("quarry: could not write {}", printable(f));
    }
    (!failures.is_empty()).then(|| {
        eprintln!("quarry: the run failed: its results are incomplete on disk (see above)");
        ExitCode::from(3)
    })
}

/// A failed run's exit: 2 when the user's input is at fault, else 3.
fn run_failure(e: RunError) -> Failure {
    match e.is_usage() {
        true => Failure::Usage(e.into()),
        false => Failure::Run(e.into()),
    }
}

/// `quarry quotas`: exit codes in `quarry::quotas::QUOTAS_EXIT_CODES`.
fn quotas(opts: &quarry::quotas::QuotasOptions, format: QuotasFormat) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(Failure::Usage(e) | Failure::Run(e)) => {
            eprintln!("quarry: {}", error_text(&e));
            return ExitCode::from(3);
        }
    };
    match rt.block_on(quarry::quotas::read_quotas(opts)) {
        Ok(doc) => {
            match format {
                QuotasFormat::Text => print!("{}", doc.to_text()),
                QuotasFormat::Json => print!("{}", doc.to_json()),
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("quarry: {}", printable(&e.to_string()));
            ExitCode::from(e.exit_code())
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")
        .map_err(Failure::Run)
}

fn agents(fleet: &AgentFlags) -> Result<ExitCode, Failure> {
    // The wall-clock anchor of clock probes (offsets are relative to it).
    #[allow(clippy::disallowed_methods)]
    let clock = ControllerClock::new(SystemTime::now());
    let list = fleet
        .agents
        .as_deref()
        .ok_or_else(|| Failure::Usage(anyhow::anyhow!("--agents is required")))?;
    let options = fleet
        .connect_options()
        .map_err(|e| Failure::Usage(e.into()))?;
    let statuses = runtime()?
        .block_on(quarry::fleet::list_agents(list, &options, &clock))
        .map_err(|e| Failure::Usage(e.into()))?;
    print!("{}", agents_table(&statuses));
    let all_up = statuses.iter().all(|s| matches!(s, AgentStatus::Up(_)));
    Ok(if all_up {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

fn attach_results(
    run_id: &str,
    from: Option<PathBuf>,
    out: Option<PathBuf>,
    fleet: &AgentFlags,
) -> Result<ExitCode, Failure> {
    // The wall-clock anchor of clock probes (offsets are relative to it).
    #[allow(clippy::disallowed_methods)]
    let now = SystemTime::now();
    let from = from.unwrap_or_else(|| Path::new("results").join(run_id));
    let out = out.unwrap_or_else(|| Path::new("results").join(format!("{run_id}-attached")));
    // A results.json the dead controller left torn is rebuilt from the
    // interval file it appended.
    let original = read_results(&from)
        .or_else(|_| recover_results(&from))
        .map_err(|e| Failure::Run(e.into()))?;
    let spec_path = from.join(SPEC_FILE);
    let spec_text = std::fs::read_to_string(&spec_path)
        .with_context(|| format!("reading {}", spec_path.display()))
        .map_err(Failure::Run)?;
    // Without --agents, the run's own spec names its groups (and how to
    // reach them, unless a flag says otherwise).
    let spec_agents = quarry::spec::parse_spec(&spec_path, &spec_text)
        .ok()
        .and_then(|v| v.agents);
    let job = RunJob::attached(&original, spec_text, run_id, &out);
    let outcome = runtime()?.block_on(async {
        let agents = find_run_agents(fleet, spec_agents.as_ref(), now)
            .await
            .map_err(|e| Failure::Run(e.into()))?
            .ok_or_else(|| {
                Failure::Run(anyhow::anyhow!(
                    "--agents is required with --attach (the run's spec has no [[agents.group]] to take them from)"
                ))
            })?;
        let (_handle, signal) = stop_signal();
        execute(job, Placement::Attach(agents), signal)
            .await
            .map_err(|e| Failure::Run(e.into()))
    })?;
    print!("{}", outcome.report);
    eprintln!("quarry: results in {}", outcome.dir.display());
    let code = verdict(&outcome.document, &outcome.figures);
    Ok(unwritten(&outcome.unwritten).unwrap_or(code))
}

/// `quarry report DIR --cloudwatch`: the client's CloudWatch view.
fn cloudwatch_report(dir: &Path, format: QuotasFormat) -> Result<ExitCode, Failure> {
    let view =
        quarry::report::cloudwatch::client_cloudwatch(dir).map_err(|e| Failure::Usage(e.into()))?;
    match format {
        QuotasFormat::Text => print!("{}", view.to_text()),
        QuotasFormat::Json => println!("{}", view.to_json()),
    }
    Ok(ExitCode::SUCCESS)
}

/// What kind of directory `quarry report` was given, by the files in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReportDir {
    /// A run's results directory (`results.json`, or the files recovery
    /// rebuilds it from).
    Run,
    /// A sweep directory (`sweep.json`).
    Sweep,
    /// A plan directory (`plan.json` of `quarry plan`, beside `plan.txt`).
    Plan,
}

impl ReportDir {
    /// The kind of `dir`: `sweep.json` makes a sweep; `results.json`,
    /// `run.json` or `intervals.jsonl` a run (whose directory also holds
    /// the run's resolved `plan.json`); else `plan.json` a plan. `None`:
    /// none of them.
    fn detect(dir: &Path) -> Option<Self> {
        let has = |name: &str| dir.join(name).is_file();
        if has(quarry::sweep::SWEEP_FILE) {
            Some(ReportDir::Sweep)
        } else if has(quarry::results::RESULTS_FILE)
            || has(quarry::results::RUN_FILE)
            || has(quarry::results::INTERVALS_FILE)
        {
            Some(ReportDir::Run)
        } else if has(quarry::capacity_plan::PLAN_JSON) {
            Some(ReportDir::Plan)
        } else {
            None
        }
    }
}

/// `quarry report DIR`: a run's, a sweep's or a plan's report, printed
/// (text or JSON) or written as report.html.
fn report(dir: &Path, html: bool, format: QuotasFormat) -> Result<ExitCode, Failure> {
    use quarry::report::html::{plan_page, run_page, sweep_page, write_page};
    let usage = |e: anyhow::Error| Failure::Usage(e);
    let kind = ReportDir::detect(dir).ok_or_else(|| {
        usage(anyhow::anyhow!(
            "{}: not a results, sweep or plan directory (no results.json, run.json, intervals.jsonl, sweep.json or plan.json)",
            dir.display()
        ))
    })?;
    let wrote = |path: PathBuf| eprintln!("quarry: wrote {}", path.display());
    match kind {
        ReportDir::Run => {
            let mut doc = read_results(dir).map_err(|e| usage(e.into()))?;
            let figures = evaluate(&mut doc).map_err(|e| usage(e.into()))?;
            let mut text = render_report(&doc, &figures);
            let fleet: Option<SharesOutcome> = read_fleet(dir).map_err(|e| usage(e.into()))?;
            if let Some(outcome) = &fleet {
                text.push_str(&render_fleet_section(outcome));
            }
            if html {
                let points =
                    quarry::report::html::read_time_series(dir).map_err(|e| usage(e.into()))?;
                let page = run_page(&doc, &figures, &text, &points);
                wrote(write_page(dir, &page).map_err(|e| Failure::Run(e.into()))?);
            } else {
                match format {
                    QuotasFormat::Text => print!("{text}"),
                    QuotasFormat::Json => {
                        print!(
                            "{}",
                            quarry::report::json::RunReport::of(&doc, &figures).to_json()
                        );
                    }
                }
            }
            Ok(verdict(&doc, &figures))
        }
        ReportDir::Sweep => {
            let doc = quarry::sweep::read_sweep(dir).map_err(|e| usage(e.into()))?;
            let text = quarry::sweep::render_sweep(&doc);
            if html {
                let page = sweep_page(&doc, &text);
                wrote(write_page(dir, &page).map_err(|e| Failure::Run(e.into()))?);
            } else {
                match format {
                    QuotasFormat::Text => print!("{text}"),
                    QuotasFormat::Json => println!(
                        "{}",
                        serde_json::to_string_pretty(&doc).map_err(|e| Failure::Run(e.into()))?
                    ),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ReportDir::Plan => {
            let path = dir.join(quarry::capacity_plan::PLAN_JSON);
            let json = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))
                .map_err(usage)?;
            let plan = quarry_capacity::from_json(&json)
                .with_context(|| path.display().to_string())
                .map_err(usage)?;
            let text = quarry_capacity::render_text(&plan);
            if html {
                let page = plan_page(&plan, &text);
                wrote(write_page(dir, &page).map_err(|e| Failure::Run(e.into()))?);
            } else {
                match format {
                    QuotasFormat::Text => print!("{text}"),
                    QuotasFormat::Json => print!("{}", quarry_capacity::to_json(&plan)),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The exit code of a run (also `quarry report`'s): 3 when it did not
/// complete (stopped, aborted, recovered, degraded) or measured nothing (no
/// measured request, or every one failed); else 1 when a threshold broke;
/// else 0. Every broken threshold is named on stderr either way.
fn verdict(doc: &ResultsDocument, figures: &RunFigures) -> ExitCode {
    for t in doc.thresholds.iter().filter(|t| !t.passed) {
        let actual = t.actual.as_deref().unwrap_or("no data");
        eprintln!(
            "quarry: threshold broken: {} {} (got {actual})",
            t.key,
            t.condition.trim()
        );
    }
    if doc.end.ended == Ended::Degraded {
        eprintln!("quarry: the run was degraded: a share is partial (see the report)");
        return ExitCode::from(3);
    }
    if !doc.end.ended.is_complete() {
        eprintln!(
            "quarry: the run did not complete ({})",
            doc.end.ended.as_str()
        );
        return ExitCode::from(3);
    }
    if let Some(why) = measured_nothing(figures) {
        eprintln!("quarry: the run failed: {why}");
        return ExitCode::from(3);
    }
    if doc.thresholds.iter().any(|t| !t.passed) {
        ExitCode::from(1)
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
            eprintln!("{}", printable(&e.to_string()));
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
    let load = match (plan.load.model(), &plan.replay) {
        (_, Some(replay)) => {
            let n = replay.requests().len();
            let input: u64 = replay
                .requests()
                .iter()
                .map(|r| u64::from(r.input_tokens))
                .sum();
            let output: u64 = replay
                .requests()
                .iter()
                .map(|r| u64::from(r.output_tokens.get()))
                .sum();
            format!(
                "replay of {n} requests over {:.3} s (mean {:.2}/s; {input} input and {output} output tokens in all, from the trace)",
                replay.last_at_ns() as f64 / 1e9,
                plan.load.model().base_level()
            )
        }
        (LoadModel::Closed { concurrency }, None) => {
            format!("closed, {concurrency} virtual users")
        }
        (
            LoadModel::Open {
                rate_per_s,
                arrival,
                ..
            },
            None,
        ) => format!("open, {rate_per_s}/s {arrival:?} arrivals"),
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
    for e in plan.mix.entries().iter().filter(|_| plan.replay.is_none()) {
        lines.push(format!(
            "  workload:   {:>5.1}% {} {} max_tokens {}",
            100.0 * e.weight as f64 / total.max(1) as f64,
            e.model_id,
            e.operation,
            e.max_tokens
        ));
    }
    if let Some(replay) = &plan.replay {
        for (i, e) in plan.mix.entries().iter().enumerate() {
            let n = replay
                .requests()
                .iter()
                .filter(|r| r.entry as usize == i)
                .count();
            lines.push(format!(
                "  workload:   {n} requests {} {} (max_tokens up to {})",
                e.model_id, e.operation, e.max_tokens
            ));
        }
    }
    if let Some(sessions) = &plan.sessions {
        let unit = match plan.load.model() {
            LoadModel::Closed { .. } => "each virtual user holds one session after another",
            LoadModel::Open { .. } => "each arrival starts a session (the rate is sessions/s)",
        };
        lines.push(format!(
            "  sessions:   turns {}; think time {}; conversation cache points {}; {unit}",
            quarry::report::dist_text(sessions.turns()),
            sessions
                .think_time_ms()
                .map_or("none".to_owned(), |d| format!(
                    "{} ms",
                    quarry::report::dist_text(d)
                )),
            if sessions.cache() { "on" } else { "off" },
        ));
    }
    lines.push(format!("  thresholds: {}", valid.thresholds.rules().len()));
    lines.join("\n")
}

/// `quarry sweep`: each level through the one run path, placed like `run`.
fn sweep(
    spec: &Path,
    out: Option<PathBuf>,
    timing: &TimingFlags,
    fleet: &AgentFlags,
) -> Result<ExitCode, Failure> {
    let usage = |e: String| Failure::Usage(anyhow::anyhow!("{e}\nnothing was run"));
    let valid = load_spec(spec).map_err(|e| usage(e.to_string()))?;
    for w in &valid.warnings {
        eprintln!("{w}");
    }
    if valid.sweep.is_none() {
        return Err(usage(format!(
            "{}: the spec has no [sweep] section: use `quarry run`",
            spec.display()
        )));
    }
    // The one wall-clock read; each level's start is this plus monotonic time.
    #[allow(clippy::disallowed_methods)]
    let started_at = SystemTime::now();
    let out = out.unwrap_or_else(|| {
        let id = quarry::run::run_id(started_at);
        Path::new("results").join(format!("sweep-{id}"))
    });
    let grace = timing.grace();
    let opts = quarry::sweep::SweepOptions {
        spec_path: spec.to_owned(),
        out_dir: out.clone(),
        started_at,
        interval: timing.interval(),
        grace,
        live_in_place: std::io::stderr().is_terminal(),
    };
    let outcome = runtime()?.block_on(async {
        let (handle, signal) = stop_signal();
        let listener = tokio::spawn(listen_for_stop_signals(handle, grace.as_secs_f64()));
        let agents = valid.agents.as_ref();
        let place = |now| async move {
            quarry::run::placement(fleet, agents, now)
                .await
                .map_err(|e| e.to_string())
        };
        let outcome = quarry::sweep::run_sweep(&valid, &opts, place, signal).await;
        listener.abort();
        outcome
    });
    let outcome = outcome.map_err(|e| match e.is_usage() {
        true => Failure::Usage(e.into()),
        false => {
            eprintln!(
                "quarry: finished levels and sweep.json in {}",
                out.display()
            );
            Failure::Run(e.into())
        }
    })?;
    print!("{}", outcome.report);
    eprintln!("quarry: sweep in {}", out.display());
    if outcome.document.ended != "completed" {
        eprintln!(
            "quarry: the sweep did not complete ({})",
            outcome.document.ended
        );
        return Ok(ExitCode::from(3));
    }
    if let Some(t) = outcome.document.result.target.filter(|t| !t.met) {
        eprintln!(
            "quarry: the SLO does not hold at the target {} = {}",
            outcome.document.variable,
            quarry::sweep::value_text(t.value)
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("reading {path}: {source}")]
    struct Outer {
        path: &'static str,
        source: std::io::Error,
    }

    #[test]
    fn error_chains_say_each_cause_once_and_escape_control_bytes() {
        let io = std::io::Error::other("disk on fire");
        let e = anyhow::Error::from(Outer {
            path: "a\0b",
            source: io,
        })
        .context("writing the report");
        let text = error_text(&e);
        assert_eq!(text, "writing the report: reading a\\u{0}b: disk on fire");
        assert_eq!(text.matches("disk on fire").count(), 1);
        assert!(!text.contains('\0'));
    }
}
