//! `quarry`: the controller CLI.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use quarry::spec::{ValidatedSpec, load_spec};
use quarry_agent::{LoadModel, Target};

/// Load tests and capacity plans for Amazon Bedrock.
#[derive(Debug, Parser)]
#[command(name = "quarry", version, about)]
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
    /// Run a spec (not built yet).
    Run {
        /// The spec file (TOML).
        spec: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { spec } => match load_spec(&spec) {
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
        },
        Command::Run { spec } => {
            eprintln!(
                "quarry: `quarry run {}` is not built yet (see the load-engine issue); `quarry validate` checks a spec",
                spec.display()
            );
            ExitCode::from(2)
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
