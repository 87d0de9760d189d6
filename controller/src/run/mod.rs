//! Every run takes one road, from the split to the results directory:
//! [`execute`].
//!
//! ```text
//! RunJob + Placement
//!   -> the embedded simulator (target "sim"), the results directory opened
//!   -> shares started: in-process (one share, `local`) or on agents
//!      (`fleet::start`), or attached to (`fleet::attach`)   -> Shares
//!   -> the coordinator merges their events exactly          -> snapshots
//!   -> every snapshot to every sink (results file, live view, metrics)
//!   -> how the run ended, from how its shares ended (one mapping)
//!   -> results.json, its figures once, .hgrm, report, fleet.json, trace
//! ```
//!
//! `quarry run`, `quarry run --agents` and `quarry results --attach` differ
//! only in their [`Placement`]; a sweep is many jobs down the same road.

mod finish;
mod id;
mod local;
mod overload;
mod placement;
mod sim;
mod sinks;
pub mod space;
mod stop;
mod trace;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use quarry_engine::{RunClock, RunPlan, Target, duration_ns};

pub use id::{rfc3339, run_id};
pub use local::LOCAL_GROUP;
pub use overload::{OverloadEvidence, OverloadPolicy};
pub use placement::{AgentRun, AgentRunError, Placement, find_run_agents, placement};
#[cfg(feature = "sim")]
pub use sim::sim_config;
pub use sim::{EmbeddedSim, SIM_PROFILES};
pub use stop::{StopHandle, StopLevel, StopSignal, listen_for_stop_signals, stop_signal};

use crate::clock::ControllerClock;
use crate::coordinator::Shares;
use crate::coordinator::split::SplitError;
use crate::fleet::{self, FleetPlan, FleetTrace, ReattachPolicy, group_records};
use crate::live::LiveView;
use crate::results::{
    Ended, GroupRecord, ResultsDocument, ResultsError, ResultsWriter, RunMeta, SCHEMA_VERSION,
    StageRecord, ThresholdRule,
};
use crate::spec::ValidatedSpec;
use crate::telemetry::{ShareInfo, TelemetryConfig, TelemetryError};
use finish::{Finish, run_end, write_results};
use local::LocalShare;
use sinks::{IntervalSink, LiveSink, MetricsSink, Totals, consume};
use trace::RunTrace;

/// A run could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// `target.sim_profile` names no profile, or its config file is invalid.
    #[error("{0}")]
    SimProfile(String),
    /// The embedded simulator could not be started.
    #[error("embedded simulator: {0}")]
    Simulator(String),
    /// The target or the plan could not be set up.
    #[error(transparent)]
    Share(#[from] quarry_engine::ShareError),
    /// The plan cannot be split into shares.
    #[error("splitting the plan into shares: {0}")]
    Split(#[from] SplitError),
    /// The results directory could not be written or read.
    #[error("results: {0}")]
    Results(#[from] ResultsError),
    /// The shares ended without the coordinator reporting how (it panicked).
    #[error("the coordinator of the run's shares ended without an outcome")]
    NoOutcome,
    /// A distributed run could not be started on its agents.
    #[error(transparent)]
    Fleet(#[from] fleet::FleetError),
    /// Telemetry is misconfigured.
    #[error("telemetry: {0}")]
    Telemetry(#[from] TelemetryError),
    /// The results directory's filesystem has less room than the run is
    /// estimated to write (checked before anything is sent).
    #[error(transparent)]
    NoSpace(#[from] space::NoSpace),
}

impl RunError {
    /// True when the user's input is at fault (spec, options, output
    /// directory) rather than the run: the binary exits 2 for these.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            RunError::SimProfile(_)
                | RunError::Share(quarry_engine::ShareError::Endpoint(_))
                | RunError::Results(ResultsError::NotEmpty(_))
                | RunError::Telemetry(_)
                | RunError::NoSpace(_)
        )
    }
}

/// How to run (process behaviour; the workload is in the spec).
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The spec file, as given (recorded, and the base for relative paths).
    pub spec_path: PathBuf,
    /// The results directory; `None` is `results/<run-id>/`.
    pub out_dir: Option<PathBuf>,
    /// The wall-clock time at start: the binary's one wall-clock read.
    pub started_at: SystemTime,
    /// Snapshot interval.
    pub interval: Duration,
    /// Time in-flight requests get after the end or a stop.
    pub grace: Duration,
    /// Refresh the live line in place (stderr is a terminal).
    pub live_in_place: bool,
    /// Where the run's trace and metrics go; `None`: not exported.
    pub telemetry: Option<TelemetryConfig>,
}

/// A finished run.
#[derive(Debug)]
pub struct RunOutcome {
    /// The results directory.
    pub dir: PathBuf,
    /// `results.json` as written.
    pub document: ResultsDocument,
    /// Its figures, computed once.
    pub figures: crate::report::RunFigures,
    /// The report, rendered from the document (plus the trace's lines).
    pub report: String,
    /// Files (or intervals) that could not be written, each with its path
    /// and why (a full disk); the run fails when any is listed.
    pub unwritten: Vec<String>,
}

/// Everything that defines one run, whatever its placement: what
/// `run.json` records, the plan, the spec as given, and how to run it.
#[derive(Debug, Clone)]
pub struct RunJob {
    /// `run.json`: id, start, spec path, stage timeline, interval,
    /// thresholds.
    pub meta: RunMeta,
    /// The whole plan.
    pub plan: RunPlan,
    /// The spec file's text, as read once and validated.
    pub spec_text: String,
    /// The spec's directory (relative simulator-profile paths).
    pub spec_dir: PathBuf,
    /// The results directory (created; must be empty).
    pub dir: PathBuf,
    /// The wall-clock start: the run clock's origin for in-process shares.
    pub started_at: SystemTime,
    /// Snapshot interval.
    pub interval: Duration,
    /// Time in-flight requests get after the end or a stop.
    pub grace: Duration,
    /// Refresh the live line in place.
    pub live_in_place: bool,
    /// Printed before each live line (a sweep names its level).
    pub live_label: Option<String>,
    /// Stop the run, `overloaded`, when its open loop over-saturates the
    /// target (a sweep's rate levels); `None` never checks.
    pub overload: Option<OverloadPolicy>,
    /// Where the run's trace and metrics go.
    pub telemetry: Option<TelemetryConfig>,
}

impl RunJob {
    /// A new run of a validated spec: its id from the start time, its
    /// directory `opts.out_dir` or `results/<run-id>/`.
    pub fn new(spec: &ValidatedSpec, opts: &RunOptions) -> Self {
        let run_id = run_id(opts.started_at);
        let dir = opts
            .out_dir
            .clone()
            .unwrap_or_else(|| Path::new("results").join(&run_id));
        RunJob {
            meta: run_meta(spec, &run_id, opts),
            plan: spec.plan.clone(),
            spec_text: spec.text.clone(),
            spec_dir: spec_dir(&opts.spec_path),
            dir,
            started_at: opts.started_at,
            interval: opts.interval,
            grace: opts.grace,
            live_in_place: opts.live_in_place,
            live_label: None,
            overload: None,
            telemetry: opts.telemetry.clone(),
        }
    }

    /// The job of a run whose shares already ran on agents, as the
    /// directory its controller started (`original`, with the spec text
    /// it kept) records it, re-assembled into `out`.
    pub fn attached(
        original: &ResultsDocument,
        spec_text: String,
        run_id: &str,
        out: &Path,
    ) -> Self {
        let mut meta = original.run.clone();
        meta.run_id = run_id.to_owned();
        RunJob {
            plan: original.plan.clone(),
            spec_text,
            spec_dir: PathBuf::new(),
            dir: out.to_owned(),
            // Attached shares run on their agents' clocks; nothing here
            // starts a clock.
            started_at: SystemTime::UNIX_EPOCH,
            interval: Duration::from_nanos(meta.interval_ns.max(1)),
            grace: Duration::ZERO,
            live_in_place: false,
            live_label: None,
            overload: None,
            telemetry: None,
            meta,
        }
    }
}

/// The directory relative paths in a spec are resolved against.
fn spec_dir(spec_path: &Path) -> PathBuf {
    spec_path.parent().unwrap_or(Path::new(".")).to_owned()
}

/// Runs `job` with its shares placed as `placement` says, until they end,
/// `stop` asks it to stop early, or stops it a second time (abort); writes
/// the results directory whatever happened.
pub async fn execute(
    job: RunJob,
    placement: Placement,
    stop: StopSignal,
) -> Result<RunOutcome, RunError> {
    // Room for what the run will write, before anything is started or sent.
    let groups = match &placement {
        Placement::Local => 1,
        Placement::Agents(run) | Placement::Attach(run) => run.agents.len(),
    };
    let shape = space::RunShape::of(
        &job.plan,
        groups,
        job.interval,
        job.grace,
        job.spec_text.len(),
    );
    space::check_dir_space(&job.dir, shape.estimate_bytes(), space::free_bytes)?;
    let sim = match (&placement, &job.plan.target) {
        (Placement::Attach(_), _) | (_, Target::Aws { .. }) => None,
        (_, Target::Sim { sim_profile }) => {
            Some(EmbeddedSim::start(sim_profile.as_deref(), &job.spec_dir, job.plan.seed).await?)
        }
    };
    let mut writer = ResultsWriter::create(&job.dir, &job.spec_text, &job.plan, &job.meta)?;
    let remote = placement.is_remote();
    let started = start_shares(&job, placement, sim.as_ref()).await?;
    let coordinated = started
        .shares
        .coordinate(started.trace.as_ref().map(RunTrace::signals));
    let stopper = coordinated.stopper.clone();
    let on_stop = {
        let (stop, stopper) = (stop.clone(), stopper.clone());
        tokio::spawn(async move {
            stop.reached(StopLevel::Stop).await;
            stopper.stop().await;
        })
    };
    let mut totals = Totals::default();
    let mut live = LiveSink {
        view: LiveView::new(job.live_in_place, duration_ns(job.interval))
            .labelled(job.live_label.as_deref()),
        sim: sim.as_ref(),
    };
    let mut metrics = started
        .trace
        .as_ref()
        .map(|t| MetricsSink(std::sync::Arc::clone(&t.telemetry)));
    let mut overload = job
        .overload
        .map(|p| overload::OverloadSink::new(p, &job.meta.stages, stopper.clone()));
    let consumed = {
        let mut sinks: Vec<&mut dyn IntervalSink> = vec![&mut writer, &mut live];
        if let Some(m) = &mut metrics {
            sinks.push(m);
        }
        if let Some(o) = &mut overload {
            sinks.push(o);
        }
        consume(coordinated.snapshots, &mut totals, &mut sinks, stop.clone()).await
    };
    live.view.finish();
    drop(metrics);
    on_stop.abort();
    if let Err(e) = consumed {
        stopper.stop().await;
        return Err(e);
    }
    let outcome = if totals.aborted {
        // Stop firing, and do not wait for the shares to wind down.
        stopper.stop().await;
        None
    } else {
        Some(coordinated.outcome.await.map_err(|_| RunError::NoOutcome)?)
    };
    let mut end = run_end(outcome.as_ref(), &totals, stop.level() >= StopLevel::Stop);
    if let Some(evidence) = overload.and_then(|o| o.found)
        && matches!(
            end.ended,
            Ended::Stopped | Ended::Completed | Ended::Degraded
        )
    {
        end.ended = Ended::Overloaded;
        end.overload = Some(evidence);
    }
    let simulator = sim.as_ref().map(EmbeddedSim::view);
    drop(sim);
    let fleet = match (&outcome, remote) {
        (Some(outcome), true) => Some((started.groups, outcome)),
        _ => None,
    };
    let mut finished = write_results(
        &writer,
        Finish {
            meta: job.meta,
            plan: job.plan,
            end,
            totals: &totals,
            simulator,
            fleet,
        },
    )?;
    if let Some(trace) = started.trace {
        trace
            .finish(started.clock.now_unix_ns(), &mut finished)
            .await?;
    }
    Ok(finished)
}

/// A run's shares, started, with what the end of the run needs of them.
struct Started {
    shares: Shares,
    /// The agent groups of a distributed run.
    groups: Vec<GroupRecord>,
    /// The run's trace, when it is traced.
    trace: Option<RunTrace>,
    /// The controller's clock.
    clock: ControllerClock,
}

/// Sets up and starts the shares of `job` where `placement` says, each
/// traced under the run's trace when there is one.
async fn start_shares(
    job: &RunJob,
    placement: Placement,
    sim: Option<&EmbeddedSim>,
) -> Result<Started, RunError> {
    let run_id = &job.meta.run_id;
    let sim_url = sim.map(EmbeddedSim::url);
    match placement {
        Placement::Local => {
            let local =
                LocalShare::prepare(run_id, &job.plan, job.interval, sim_url.as_deref()).await?;
            let clock = ControllerClock::new(job.started_at);
            let info = ShareInfo {
                agent_id: "in-process".to_owned(),
                region: local.region().to_owned(),
                account_alias: String::new(),
                address: "local".to_owned(),
                group: LOCAL_GROUP.to_owned(),
                clock_offset_ns: 0,
            };
            let trace = start_trace(job, clock, vec![info])?;
            let share_trace = trace.as_ref().map(|t| (t.contexts[0], t.sampling));
            let shares = local.start(RunClock::start(job.started_at), job.grace, share_trace);
            Ok(Started {
                shares,
                groups: Vec::new(),
                trace,
                clock,
            })
        }
        Placement::Agents(run) => {
            let groups = group_records(&job.plan, &run.agents)?;
            let infos = run
                .agents
                .iter()
                .map(|a| ShareInfo {
                    agent_id: a.info.agent_id.clone(),
                    region: a.info.region.clone(),
                    account_alias: a.info.account_alias.clone(),
                    address: a.info.address.socket.clone(),
                    group: a.info.group(),
                    clock_offset_ns: a.info.clock.offset_ns,
                })
                .collect();
            let trace = start_trace(job, run.clock, infos)?;
            let fleet_plan = FleetPlan {
                run_id: run_id.clone(),
                plan: job.plan.clone(),
                interval: job.interval,
                sim_url,
                lease_ttl: run.lease_ttl,
                start_lead: START_LEAD,
                trace: trace.as_ref().map(|t| FleetTrace {
                    contexts: t.contexts.clone(),
                    sampling: t.sampling,
                }),
            };
            let shares = fleet::start(run.agents, &fleet_plan, run.clock).await?;
            Ok(Started {
                shares,
                groups,
                trace,
                clock: run.clock,
            })
        }
        Placement::Attach(run) => {
            // The run's own split names each agent's group part; an agent
            // list that no longer splits it leaves the groups unrecorded.
            let groups = group_records(&job.plan, &run.agents).unwrap_or_default();
            let policy = ReattachPolicy::for_lease(run.lease_ttl);
            let shares = fleet::attach(run.agents, run_id, policy).await?;
            Ok(Started {
                shares,
                groups,
                trace: None,
                clock: run.clock,
            })
        }
    }
}

/// How long ahead of now a distributed run's common start is set: time for
/// every agent to receive its share and set up its engine.
const START_LEAD: Duration = Duration::from_millis(500);

fn start_trace(
    job: &RunJob,
    clock: ControllerClock,
    shares: Vec<ShareInfo>,
) -> Result<Option<RunTrace>, RunError> {
    job.telemetry
        .as_ref()
        .map(|config| RunTrace::start(config, &job.meta.run_id, &job.plan, clock, shares))
        .transpose()
}

/// What `run.json` records before the first request.
fn run_meta(spec: &ValidatedSpec, run_id: &str, opts: &RunOptions) -> RunMeta {
    let load = &spec.plan.load;
    let health = quarry_engine::HealthPolicy::default();
    let stage_plan = load.plan();
    let stages = load
        .stages()
        .iter()
        .zip(stage_plan.spans())
        .map(|(s, span)| StageRecord {
            name: s.name.clone(),
            kind: s.kind,
            start_ns: span.start_ns,
            end_ns: span.end_ns,
        })
        .collect();
    RunMeta {
        schema_version: SCHEMA_VERSION,
        run_id: run_id.to_owned(),
        started_at: rfc3339(opts.started_at),
        spec: opts.spec_path.display().to_string(),
        stages,
        interval_ns: duration_ns(opts.interval),
        histogram: Default::default(),
        saturation_lag_p99_ns: duration_ns(health.max_schedule_lag_p99),
        saturation_pool_wait_p99_ns: duration_ns(health.max_pool_wait_p99),
        saturation_cpu_share: health.max_cpu_share,
        saturation_runtime_delay_p95_ns: duration_ns(health.max_runtime_delay_p95),
        thresholds: spec
            .thresholds
            .rules()
            .iter()
            .map(|t| ThresholdRule {
                key: t.key.clone(),
                condition: t.condition.clone(),
            })
            .collect(),
    }
}
