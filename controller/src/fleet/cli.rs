//! The command-line face of distributed runs: the flags that name agents
//! and the credentials to reach them (shared by `quarry run`, `quarry
//! agents` and `quarry results --attach`), and the `quarry agents` and
//! `quarry results --attach` commands.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use quarry_engine::{IntervalSnapshot, SeriesDelta, SeriesKey, merge_series};

use super::client::{ConnectError, ConnectOptions, ReattachPolicy};
use super::clock::ControllerClock;
use super::discovery::{
    AgentStatus, ConnectedAgent, DiscoveryError, agents_table, discover_groups,
};
use super::groups::{add_group_totals, group_records, partial_shares};
use super::{FleetError, FleetOutcome, FleetRun, attach, find_agents, list_agents};
use crate::report::interval_summary;
use crate::results::{
    Assembly, Ended, GroupRecord, ResultsDocument, ResultsError, ResultsWriter, RunEnd, SPEC_FILE,
    assemble, read_results, recover_results, write_hgrm_files, write_report,
};
use crate::run::AgentRun;
use crate::spec::AgentsSpec;

/// The lease TTL when neither `--lease-ttl-secs` nor `agents.lease_ttl` sets one.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);

/// Where the agents are and how to reach them.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AgentFlags {
    /// Agents to run on, comma-separated: `host:port`, or `dns:name:port`
    /// for every address a DNS name resolves to (a Kubernetes headless
    /// service); each agent gets an equal share in the group its region and
    /// account alias name. It replaces the spec's `[[agents.group]]`.
    /// Without it and without groups in the spec, `quarry run` runs
    /// in-process.
    #[arg(long, value_name = "LIST")]
    pub agents: Option<String>,
    /// CA certificate (PEM) the agents' TLS certificates chain to; without
    /// it the control plane is plaintext, which agents accept only on
    /// loopback. Overrides the spec's `agents.ca`.
    #[arg(long, value_name = "PEM")]
    pub agent_ca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS (overrides `agents.client_cert`).
    #[arg(long, value_name = "PEM", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// Client private key (PEM) for mutual TLS (overrides `agents.client_key`).
    #[arg(long, value_name = "PEM", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// File holding the bearer token the agents expect (overrides
    /// `agents.token_file`).
    #[arg(long, value_name = "FILE")]
    pub agent_token_file: Option<PathBuf>,
    /// Seconds an agent keeps firing after it lost the controller; also
    /// how long a broken stream is re-attached before its agent counts as
    /// lost (plus 2 s). Default: the spec's `agents.lease_ttl`, else 10.
    #[arg(long, value_name = "SECS")]
    pub lease_ttl_secs: Option<f64>,
}

impl AgentFlags {
    /// The connection settings, credential files read.
    pub fn connect_options(&self) -> Result<ConnectOptions, ConnectError> {
        self.connect_options_with(None)
    }

    /// The connection settings: the flags' TLS material and token where
    /// given, else the spec's `[agents]` settings. The TLS material is
    /// taken whole from one side (flags if any TLS flag is given), so a
    /// flag never pairs with half of the spec's certificates.
    pub fn connect_options_with(
        &self,
        spec: Option<&AgentsSpec>,
    ) -> Result<ConnectOptions, ConnectError> {
        let flags_tls =
            self.agent_ca.is_some() || self.client_cert.is_some() || self.client_key.is_some();
        let (ca, cert, key) = match spec {
            Some(s) if !flags_tls => (
                s.ca.as_deref(),
                s.client_cert.as_deref(),
                s.client_key.as_deref(),
            ),
            _ => (
                self.agent_ca.as_deref(),
                self.client_cert.as_deref(),
                self.client_key.as_deref(),
            ),
        };
        let token = self
            .agent_token_file
            .as_deref()
            .or_else(|| spec.and_then(|s| s.token_file.as_deref()));
        ConnectOptions::from_files(ca, cert, key, token)
    }

    /// The lease TTL, clamped to 1 s .. 1 h.
    pub fn lease_ttl(&self) -> Duration {
        self.lease_ttl_with(None)
    }

    /// The lease TTL: the flag, else the spec's `agents.lease_ttl`, else
    /// [`DEFAULT_LEASE_TTL`]; clamped to 1 s .. 1 h.
    pub fn lease_ttl_with(&self, spec: Option<&AgentsSpec>) -> Duration {
        let ttl = match self.lease_ttl_secs {
            Some(secs) if secs.is_finite() => Duration::from_secs_f64(secs.clamp(1.0, 3600.0)),
            _ => spec.and_then(|s| s.lease_ttl).unwrap_or(DEFAULT_LEASE_TTL),
        };
        ttl.clamp(Duration::from_secs(1), Duration::from_secs(3600))
    }
}

/// The agents of a run could not be found.
#[derive(Debug, thiserror::Error)]
pub enum AgentRunError {
    /// The credential files could not be used.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The agents could not be found, reached or used.
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
}

impl AgentRunError {
    /// True when the user's input is at fault (credential files, an entry
    /// that does not parse, an agent that contradicts its spec group):
    /// nothing was run, exit 2.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            AgentRunError::Connect(_)
                | AgentRunError::Discovery(
                    DiscoveryError::Entry { .. }
                        | DiscoveryError::Empty
                        | DiscoveryError::InTwoGroups { .. }
                        | DiscoveryError::GroupMismatch(_)
                )
        )
    }
}

/// Where a run's agents come from: `--agents` when given (each agent an
/// equal share in the group its `Describe` names; the spec's groups, if
/// any, are then not used, which is said on stderr), else the spec's
/// `[[agents.group]]`; `None` (an in-process run) when neither names any.
/// Connection settings and lease TTL: flags first, then the spec's
/// `[agents]`. `now` anchors the clock probes.
pub async fn agent_run(
    flags: &AgentFlags,
    spec: Option<&AgentsSpec>,
    now: SystemTime,
) -> Result<Option<AgentRun>, AgentRunError> {
    let groups = spec.map_or(&[][..], |s| s.groups.as_slice());
    if flags.agents.is_none() && groups.is_empty() {
        return Ok(None);
    }
    let options = flags.connect_options_with(spec)?;
    let clock = ControllerClock::new(now);
    let agents = find_run_agents(flags.agents.as_deref(), groups, &options, &clock).await?;
    Ok(Some(AgentRun {
        agents,
        lease_ttl: flags.lease_ttl_with(spec),
        clock,
    }))
}

/// The agents of `list` (`--agents`), else of the spec's `groups`.
async fn find_run_agents(
    list: Option<&str>,
    groups: &[crate::spec::AgentGroupSpec],
    options: &ConnectOptions,
    clock: &ControllerClock,
) -> Result<Vec<ConnectedAgent>, DiscoveryError> {
    match list {
        Some(list) => {
            if !groups.is_empty() {
                eprintln!(
                    "quarry: --agents replaces the spec's {} [[agents.group]] entries; each agent gets an equal share",
                    groups.len()
                );
            }
            find_agents(list, options, clock).await
        }
        None => discover_groups(groups, options, clock).await,
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
    /// Neither `--agents` nor the run's spec names agents.
    #[error(
        "--agents is required with --attach (the run's spec has no [[agents.group]] to take them from)"
    )]
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
    pub document: ResultsDocument,
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
    let original = match read_results(from) {
        Ok(doc) => doc,
        Err(_) => recover_results(from)?,
    };
    let spec_path = from.join(SPEC_FILE);
    let spec_text = std::fs::read_to_string(&spec_path).map_err(|source| AttachError::Spec {
        path: spec_path.clone(),
        source,
    })?;
    // Without --agents, the run's own spec names its groups (and how to
    // reach them, unless a flag says otherwise).
    let spec_agents = crate::spec::parse_spec(&spec_path, &spec_text)
        .ok()
        .and_then(|v| v.agents);
    let groups = spec_agents
        .as_ref()
        .map_or(&[][..], |a| a.groups.as_slice());
    if flags.agents.is_none() && groups.is_empty() {
        return Err(AttachError::NoAgents);
    }
    let options = flags.connect_options_with(spec_agents.as_ref())?;
    let agents = find_run_agents(flags.agents.as_deref(), groups, &options, clock).await?;
    let records = group_records(&original.plan, &agents).unwrap_or_default();
    let policy = ReattachPolicy::for_lease(flags.lease_ttl_with(spec_agents.as_ref()));
    let run = attach(agents, run_id, policy).await?;
    let mut meta = original.run.clone();
    meta.run_id = run_id.to_owned();
    let mut writer = ResultsWriter::create(out, &spec_text, &original.plan, &meta)?;
    let (totals, outcome) = write_merged(run, &mut writer).await?;
    let mut doc = assemble(Assembly {
        meta,
        plan: original.plan.clone(),
        end: run_end(&outcome, totals.last_end, false),
        series: &totals.series,
        health: &totals.health,
        simulator: None,
        priced: &|m| writer.is_priced(m),
    })?;
    annotate(&mut doc, records, Some(&outcome));
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
    health: Vec<quarry_engine::HealthSample>,
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

/// How a distributed run ended, in the results document's terms:
/// `degraded` when an agent was lost, the merge saw a broken stream, or a
/// share ended early on its own; `stopped` when the user stopped the run
/// (`stopped_by_user`: every share then ends early, which is not a
/// degradation); else `request_limit` or `completed`. Anything but the last
/// two exits 3.
pub fn run_end(outcome: &FleetOutcome, last_end: u64, stopped_by_user: bool) -> RunEnd {
    let lost = outcome.shares.iter().any(|s| s.lost) || !outcome.merge_errors.is_empty();
    let ended = if lost {
        Ended::Degraded
    } else if stopped_by_user {
        Ended::Stopped
    } else if outcome.degraded() {
        Ended::Degraded
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

/// Appends what only the live run knows (start skew, merge errors) to a
/// report; groups and partial shares are in `results.json` and rendered
/// from it.
pub fn append_fleet_lines(report: &mut String, outcome: &FleetOutcome) {
    let mut lines = Vec::new();
    if let Some(skew) = &outcome.start_skew {
        lines.push(format!(
            "{} agents; start skew {:.3} ms (± {:.3} ms)",
            outcome.shares.len(),
            skew.skew_ns as f64 / 1e6,
            skew.uncertainty_ns as f64 / 1e6
        ));
    }
    lines.extend(outcome.merge_errors.iter().cloned());
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
}

/// Completes a distributed run's document: each group's record with its
/// totals from the document's series, and the partial shares (`outcome`
/// is `None` when the run was aborted before the shares reported).
pub fn annotate(
    doc: &mut ResultsDocument,
    mut groups: Vec<GroupRecord>,
    outcome: Option<&FleetOutcome>,
) {
    add_group_totals(&mut groups, &doc.series);
    doc.groups = groups;
    doc.partial_shares = outcome.map(partial_shares).unwrap_or_default();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::ShareOutcome;

    fn share(partial: bool, lost: bool, reason: &str) -> ShareOutcome {
        ShareOutcome {
            agent_id: "a".into(),
            address: "a:1".into(),
            group: "g".into(),
            started_at_unix_ns: Some(1),
            intervals: 3,
            requests_sent: (!lost).then_some(5),
            partial,
            reason: reason.into(),
            lost,
            reattaches: 0,
            duplicates: 0,
            totals_match: Some(true),
        }
    }

    fn outcome(shares: Vec<ShareOutcome>) -> FleetOutcome {
        FleetOutcome {
            planned_start_unix_ns: 0,
            start_skew: None,
            shares,
            merge_errors: Vec::new(),
        }
    }

    #[test]
    fn a_lost_or_early_share_degrades_the_run_a_user_stop_does_not() {
        let done = share(false, false, "completed");
        let ended = |shares, stopped| run_end(&outcome(shares), 7, stopped).ended;
        assert_eq!(
            ended(vec![done.clone(), done.clone()], false),
            Ended::Completed
        );
        let limit = share(false, false, "request limit reached");
        assert_eq!(ended(vec![done.clone(), limit], false), Ended::RequestLimit);
        let lost = share(true, true, "agent lost");
        assert_eq!(
            ended(vec![done.clone(), lost.clone()], false),
            Ended::Degraded
        );
        // A lost agent degrades the run even when the user stopped it.
        assert_eq!(ended(vec![done.clone(), lost], true), Ended::Degraded);
        let stopped = share(true, false, "stopped by the controller");
        assert_eq!(
            ended(vec![stopped.clone(), stopped.clone()], true),
            Ended::Stopped
        );
        let expired = share(true, false, "lease expired");
        assert_eq!(ended(vec![done.clone(), expired], false), Ended::Degraded);
        let mut broken = outcome(vec![done]);
        broken
            .merge_errors
            .push("agent a: interval 3 out of order".into());
        assert_eq!(run_end(&broken, 7, true).ended, Ended::Degraded);
        assert_eq!(run_end(&broken, 7, true).finished_at_ns, 7);
    }

    fn spec_agents() -> AgentsSpec {
        AgentsSpec {
            groups: Vec::new(),
            token_file: Some("spec-token".into()),
            ca: Some("spec-ca.pem".into()),
            client_cert: None,
            client_key: None,
            lease_ttl: Some(Duration::from_secs(25)),
        }
    }

    #[test]
    fn flags_override_the_spec_and_the_spec_overrides_the_defaults() {
        let none = AgentFlags::default();
        assert_eq!(none.lease_ttl(), DEFAULT_LEASE_TTL);
        assert_eq!(
            none.lease_ttl_with(Some(&spec_agents())),
            Duration::from_secs(25)
        );
        let flag = AgentFlags {
            lease_ttl_secs: Some(3.0),
            ..AgentFlags::default()
        };
        assert_eq!(
            flag.lease_ttl_with(Some(&spec_agents())),
            Duration::from_secs(3)
        );
        let huge = AgentFlags {
            lease_ttl_secs: Some(1e9),
            ..AgentFlags::default()
        };
        assert_eq!(huge.lease_ttl(), Duration::from_secs(3600));
        // The spec's files are used when no flag names one: they are read,
        // so a missing one is an error naming the spec's path.
        let err = none
            .connect_options_with(Some(&spec_agents()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("spec-ca.pem") || err.contains("spec-token"),
            "{err}"
        );
        // A TLS flag takes all TLS material from the flags; a token flag
        // replaces the spec's token.
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "s3cret\n").unwrap();
        let flags = AgentFlags {
            agent_token_file: Some(token),
            ..AgentFlags::default()
        };
        let mut spec = spec_agents();
        spec.ca = None;
        let options = flags.connect_options_with(Some(&spec)).unwrap();
        assert!(options.tls.is_none());
        assert!(format!("{:?}", options.token).contains("redacted"));
    }

    #[tokio::test]
    async fn without_agents_anywhere_the_run_is_in_process() {
        #[allow(clippy::disallowed_methods)] // a clock anchor, unused here
        let now = SystemTime::now();
        let run = agent_run(&AgentFlags::default(), Some(&spec_agents()), now)
            .await
            .unwrap();
        assert!(run.is_none());
        assert!(
            agent_run(&AgentFlags::default(), None, now)
                .await
                .unwrap()
                .is_none()
        );
    }
}
