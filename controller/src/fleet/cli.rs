//! The command-line face of distributed runs: the flags that name agents
//! and the credentials to reach them (shared by `quarry run`, `quarry
//! agents` and `quarry results --attach`), and the `quarry agents` and
//! `quarry results --attach` commands.

use std::path::{Path, PathBuf};
use std::time::Duration;

use quarry_agent::{IntervalSnapshot, SeriesDelta, SeriesKey, merge_series};

use super::client::{ConnectError, ConnectOptions, ReattachPolicy};
use super::clock::ControllerClock;
use super::discovery::{AgentStatus, DiscoveryError, agents_table};
use super::{FleetError, FleetOutcome, FleetRun, attach, find_agents, list_agents};
use crate::report::interval_summary;
use crate::results::{
    Assembly, Ended, ResultsError, ResultsWriter, RunEnd, SPEC_FILE, assemble, read_results,
    recover_results, write_hgrm_files, write_report,
};

/// Where the agents are and how to reach them.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AgentFlags {
    /// Agents to run on, comma-separated: `host:port`, or `dns:name:port`
    /// for every address a DNS name resolves to (a Kubernetes headless
    /// service). Without it, `quarry run` runs in-process.
    #[arg(long, value_name = "LIST")]
    pub agents: Option<String>,
    /// CA certificate (PEM) the agents' TLS certificates chain to; without
    /// it the control plane is plaintext, which agents accept only on
    /// loopback.
    #[arg(long, value_name = "PEM")]
    pub agent_ca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS.
    #[arg(long, value_name = "PEM", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// Client private key (PEM) for mutual TLS.
    #[arg(long, value_name = "PEM", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// File holding the bearer token the agents expect.
    #[arg(long, value_name = "FILE")]
    pub agent_token_file: Option<PathBuf>,
    /// Seconds an agent keeps firing after it lost the controller; also
    /// how long a broken stream is re-attached before its agent counts as
    /// lost (plus 2 s).
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    pub lease_ttl_secs: f64,
}

impl AgentFlags {
    /// The connection settings, credential files read.
    pub fn connect_options(&self) -> Result<ConnectOptions, ConnectError> {
        ConnectOptions::from_files(
            self.agent_ca.as_deref(),
            self.client_cert.as_deref(),
            self.client_key.as_deref(),
            self.agent_token_file.as_deref(),
        )
    }

    /// The lease TTL, clamped to 1 s .. 1 h.
    pub fn lease_ttl(&self) -> Duration {
        Duration::from_secs_f64(self.lease_ttl_secs.clamp(1.0, 3600.0))
    }
}

/// `quarry agents` failed before it could list anything.
#[derive(Debug, thiserror::Error)]
pub enum AgentsCommandError {
    /// `--agents` is missing.
    #[error("--agents is required")]
    NoAgents,
    /// The credential files could not be used.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The list could not be parsed or resolved.
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
}

/// `quarry agents`: the table, and whether every agent is usable.
pub async fn agents_command(
    flags: &AgentFlags,
    clock: &ControllerClock,
) -> Result<(String, bool), AgentsCommandError> {
    let list = flags
        .agents
        .as_deref()
        .ok_or(AgentsCommandError::NoAgents)?;
    let options = flags.connect_options()?;
    let statuses = list_agents(list, &options, clock).await?;
    let all_up = statuses.iter().all(|s| matches!(s, AgentStatus::Up(_)));
    Ok((agents_table(&statuses), all_up))
}

/// `quarry results --attach` failed.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// `--agents` is missing.
    #[error("--agents is required with --attach")]
    NoAgents,
    /// The credential files could not be used.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The agents could not be found.
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    /// The agents could not be attached to.
    #[error(transparent)]
    Fleet(#[from] FleetError),
    /// The run's original results directory or the new one failed.
    #[error(transparent)]
    Results(#[from] ResultsError),
    /// The original directory's spec could not be read.
    #[error("{path}: {source}")]
    Spec {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// What `quarry results --attach` produced.
#[derive(Debug)]
pub struct Attached {
    /// The new results directory.
    pub dir: PathBuf,
    /// Its report (with the distributed-run lines appended).
    pub report: String,
    /// How each share ended.
    pub outcome: FleetOutcome,
    /// `results.json` as read back.
    pub document: crate::results::ResultsDocument,
}

/// `quarry results --attach RUN_ID`: fetches every share of the run from
/// the agents (from its first event), merges them and writes a complete
/// results directory at `out`, taking the plan and run metadata from the
/// directory the original controller started (`from`).
pub async fn attach_command(
    run_id: &str,
    flags: &AgentFlags,
    from: &Path,
    out: &Path,
    clock: &ControllerClock,
) -> Result<Attached, AttachError> {
    let list = flags.agents.as_deref().ok_or(AttachError::NoAgents)?;
    let options = flags.connect_options()?;
    let original = match read_results(from) {
        Ok(doc) => doc,
        Err(_) => recover_results(from)?,
    };
    let spec_path = from.join(SPEC_FILE);
    let spec_text = std::fs::read_to_string(&spec_path).map_err(|source| AttachError::Spec {
        path: spec_path.clone(),
        source,
    })?;
    let agents = find_agents(list, &options, clock).await?;
    let run = attach(agents, run_id, ReattachPolicy::for_lease(flags.lease_ttl())).await?;
    let mut meta = original.run.clone();
    meta.run_id = run_id.to_owned();
    let mut writer = ResultsWriter::create(out, &spec_text, &original.plan, &meta)?;
    let (totals, outcome) = write_merged(run, &mut writer).await?;
    let doc = assemble(Assembly {
        meta,
        plan: original.plan.clone(),
        end: run_end(&outcome, totals.last_end),
        series: &totals.series,
        health: &totals.health,
        simulator: None,
        priced: &|m| writer.is_priced(m),
    })?;
    writer.write_document(&doc)?;
    let document = read_results(out)?;
    let mut report = crate::report::render_report(&document)?;
    let figures = crate::report::RunFigures::from_document(&document)?;
    write_hgrm_files(out, &figures.overall.delta)?;
    append_fleet_lines(&mut report, &outcome);
    write_report(out, &report)?;
    write_fleet_file(out, &outcome)?;
    Ok(Attached {
        dir: out.to_owned(),
        report,
        outcome,
        document,
    })
}

/// Totals gathered while writing merged intervals.
#[derive(Debug, Default)]
struct Totals {
    series: std::collections::BTreeMap<SeriesKey, SeriesDelta>,
    health: Vec<quarry_agent::HealthSample>,
    last_end: u64,
}

async fn write_merged(
    mut run: FleetRun,
    writer: &mut ResultsWriter,
) -> Result<(Totals, FleetOutcome), AttachError> {
    let mut totals = Totals::default();
    while let Some(snapshot) = run.snapshots.recv().await {
        add(&mut totals, writer, &snapshot)?;
    }
    let outcome = run.outcome.await.map_err(|_| FleetError::NoOutcome)?;
    Ok((totals, outcome))
}

fn add(
    totals: &mut Totals,
    writer: &mut ResultsWriter,
    snapshot: &IntervalSnapshot,
) -> Result<(), ResultsError> {
    writer.append(snapshot, interval_summary(snapshot))?;
    merge_series(&mut totals.series, &snapshot.series);
    totals.health.push(snapshot.health);
    totals.last_end = totals.last_end.max(snapshot.end);
    Ok(())
}

/// How a distributed run ended, in the results document's terms: complete
/// only when every share completed; a partial or lost share makes the run
/// incomplete (the exit code is then 3).
pub fn run_end(outcome: &FleetOutcome, last_end: u64) -> RunEnd {
    let ended = if outcome.degraded() {
        Ended::Stopped
    } else if outcome
        .shares
        .iter()
        .any(|s| s.reason.starts_with("request limit"))
    {
        Ended::RequestLimit
    } else {
        Ended::Completed
    };
    RunEnd {
        ended,
        finished_at_ns: last_end,
        sent: outcome.requests_sent(),
    }
}

/// Appends the distributed-run section (skew, partial shares) to a report.
pub fn append_fleet_lines(report: &mut String, outcome: &FleetOutcome) {
    let lines = outcome.summary_lines();
    if lines.is_empty() {
        return;
    }
    if !report.ends_with('\n') {
        report.push('\n');
    }
    report.push_str("\nDistributed run\n");
    for line in lines {
        report.push_str("  ");
        report.push_str(&line);
        report.push('\n');
    }
    if outcome.degraded() {
        report.push_str(
            "  DEGRADED: the run is incomplete; partial shares end at their last interval\n",
        );
    }
}

/// The file each distributed run's shares are recorded in.
pub const FLEET_FILE: &str = "fleet.json";

/// Writes `fleet.json`: how each share ended, and the start skew.
pub fn write_fleet_file(dir: &Path, outcome: &FleetOutcome) -> Result<(), ResultsError> {
    let path = dir.join(FLEET_FILE);
    let text = serde_json::to_string_pretty(outcome).map_err(|e| ResultsError::Json {
        path: path.clone(),
        line: None,
        detail: e.to_string(),
    })?;
    std::fs::write(&path, text).map_err(|source| ResultsError::Io { path, source })
}
