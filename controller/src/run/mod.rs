//! An in-process run: start the embedded simulator when the target is
//! `sim`, build the agent's [`Share`], consume its interval snapshots (the
//! results writer and the live view), then assemble `results.json`, read it
//! back and render the report from what was read, so `quarry report`
//! reproduces it byte for byte.

mod agents;
mod id;
mod sim;
mod stop;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use quarry_engine::http::TransportConfig;
use quarry_engine::trace::{SpanRecorder, encode_resource_spans};
use quarry_engine::{
    Connection, EndReason, EngineConfig, HealthSample, IntervalSnapshot, RunClock, SeriesDelta,
    SeriesKey, Share, ShareError, Target, duration_ns, merge_series,
};
use quarry_sim::SimServer;
use tokio::sync::mpsc;

pub use agents::{AgentRun, run_on_agents};
pub use id::{rfc3339, run_id};
pub use sim::{SIM_PROFILES, sim_config};
pub use stop::{StopHandle, StopLevel, StopSignal, listen_for_ctrl_c, stop_signal};

use crate::live::{LiveContext, LiveView};
use crate::report::{RunFigures, interval_summary, render_report};
use crate::results::{
    Assembly, Ended, ResultsDocument, ResultsError, ResultsWriter, RunEnd, RunMeta, SCHEMA_VERSION,
    StageRecord, ThresholdRule, assemble, read_results, write_hgrm_files, write_report,
};
use crate::spec::ValidatedSpec;
use crate::telemetry::{RunTelemetry, ShareInfo, TelemetryConfig, TelemetryError, TraceReport};

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
    Share(#[from] ShareError),
    /// The results directory could not be written or read back.
    #[error("results: {0}")]
    Results(#[from] ResultsError),
    /// The load engine's task failed.
    #[error("load engine failed: {0}")]
    Engine(String),
    /// A distributed run could not be started on its agents.
    #[error(transparent)]
    Fleet(#[from] crate::fleet::FleetError),
    /// Telemetry is misconfigured.
    #[error("telemetry: {0}")]
    Telemetry(#[from] TelemetryError),
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

impl RunError {
    /// True when the user's input is at fault (spec, options, output
    /// directory) rather than the run: the binary exits 2 for these.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            RunError::SimProfile(_)
                | RunError::Share(ShareError::Endpoint(_))
                | RunError::Results(ResultsError::NotEmpty(_))
                | RunError::Telemetry(_)
        )
    }
}

/// A finished run.
#[derive(Debug)]
pub struct RunOutcome {
    /// The results directory.
    pub dir: PathBuf,
    /// `results.json` as read back.
    pub document: ResultsDocument,
    /// The report, rendered from the document.
    pub report: String,
}

/// What the snapshot consumer gathered.
#[derive(Debug, Default)]
struct Consumed {
    series: BTreeMap<SeriesKey, SeriesDelta>,
    health: Vec<HealthSample>,
    last_end: u64,
    aborted: bool,
}

/// What every run starts from, in-process or on agents: its id, its results
/// directory (created, with the spec and plan written), the embedded
/// simulator when the target is `sim`, and the engine configuration.
struct Prepared {
    run_id: String,
    dir: PathBuf,
    server: Option<SimServer>,
    engine_config: EngineConfig,
    meta: RunMeta,
    writer: ResultsWriter,
}

async fn prepare(
    valid: &ValidatedSpec,
    spec_text: &str,
    opts: &RunOptions,
) -> Result<Prepared, RunError> {
    let plan = &valid.plan;
    let run_id = run_id(opts.started_at);
    let dir = match &opts.out_dir {
        Some(d) => d.clone(),
        None => Path::new("results").join(&run_id),
    };
    let server = match &plan.target {
        Target::Sim { sim_profile } => {
            let spec_dir = opts.spec_path.parent().unwrap_or(Path::new("."));
            let config = sim_config(sim_profile.as_deref(), spec_dir, plan.seed)?;
            Some(sim::start(&config).await?)
        }
        Target::Aws { .. } => None,
    };
    let engine_config = EngineConfig {
        seed: plan.seed,
        interval: opts.interval,
        grace: opts.grace,
        ..EngineConfig::default()
    };
    let meta = run_meta(valid, &run_id, opts, &engine_config);
    let writer = ResultsWriter::create(&dir, spec_text, plan, &meta)?;
    Ok(Prepared {
        run_id,
        dir,
        server,
        engine_config,
        meta,
        writer,
    })
}

/// Runs `valid` in-process and writes its results directory.
pub async fn run(
    valid: &ValidatedSpec,
    spec_text: &str,
    opts: &RunOptions,
    stop: StopSignal,
) -> Result<RunOutcome, RunError> {
    let plan = &valid.plan;
    let Prepared {
        run_id,
        dir,
        server,
        mut engine_config,
        meta,
        mut writer,
    } = prepare(valid, spec_text, opts).await?;
    let url = server.as_ref().map(SimServer::url);
    let connection = Connection::for_target(&plan.target, url.as_deref()).await?;
    let clock = RunClock::start(opts.started_at);
    let mut telemetry = match &opts.telemetry {
        Some(config) => {
            let share = ShareInfo {
                agent_id: "in-process".to_owned(),
                region: connection.endpoint.region().to_owned(),
                account_alias: String::new(),
                address: "local".to_owned(),
                group: engine_config.group.to_string(),
                clock_offset_ns: 0,
            };
            let mut t = RunTelemetry::start(
                config.clone(),
                &run_id,
                plan,
                clock.unix_ns_at(0),
                vec![share],
            )?;
            t.share_started(0, clock.unix_ns_at(0));
            engine_config.spans = Some(Arc::new(SpanRecorder::new(
                config.share_sampling(1),
                t.share_context(0),
                connection.server_address(),
                clock,
                0,
            )));
            Some(t)
        }
        None => None,
    };
    let spans = engine_config.spans.clone();
    let share = Share::new(
        plan,
        connection,
        &TransportConfig::default(),
        engine_config,
        0,
        clock,
    )?;
    let gauge = share.in_flight();
    let (tx, rx) = mpsc::channel(256);
    let engine = tokio::spawn(share.run(tx, stop.clone().reached(StopLevel::Stop)));
    let mut live = LiveView::new(opts.live_in_place, duration_ns(opts.interval));
    let forward_spans = |t: &RunTelemetry| {
        if let Some(recorder) = &spans {
            let take = recorder.take();
            if !take.spans.is_empty() || take.dropped > 0 {
                let bytes = encode_resource_spans(Vec::new(), take.spans);
                t.agent_spans(0, &bytes, take.dropped);
            }
        }
    };
    let consumed = consume(
        rx,
        &mut writer,
        &mut live,
        server.as_ref(),
        Some(&gauge),
        stop,
        &mut |snapshot| {
            if let Some(t) = &telemetry {
                t.interval(snapshot);
                forward_spans(t);
            }
        },
    )
    .await;
    live.finish();
    let consumed = match consumed {
        Ok(c) => c,
        Err(e) => {
            engine.abort();
            return Err(e);
        }
    };
    let end = if consumed.aborted {
        engine.abort();
        // The task is cancelled; its outcome no longer matters.
        let _ = engine.await;
        RunEnd {
            ended: Ended::Aborted,
            finished_at_ns: consumed.last_end,
            sent: None,
        }
    } else {
        let report = engine.await.map_err(|e| RunError::Engine(e.to_string()))?;
        RunEnd {
            ended: match report.ended {
                EndReason::Completed => Ended::Completed,
                EndReason::RequestLimit => Ended::RequestLimit,
                EndReason::Stopped => Ended::Stopped,
            },
            finished_at_ns: report.finished_at,
            sent: Some(report.sent),
        }
    };
    let simulator = server.as_ref().map(sim::view);
    drop(server);
    let doc = assemble(Assembly {
        meta,
        plan: plan.clone(),
        end,
        series: &consumed.series,
        health: &consumed.health,
        simulator,
        priced: &|m| writer.is_priced(m),
    })?;
    writer.write_document(&doc)?;
    let mut finished = finish_directory(&dir)?;
    if let Some(mut t) = telemetry.take() {
        forward_spans(&t);
        let ended = finished.document.end.ended;
        let end = clock.unix_ns_at(finished.document.end.finished_at_ns);
        let problem = (!ended.is_complete()).then(|| ended.as_str().to_owned());
        t.share_ended(0, Some(end), end, problem.as_deref());
        finish_telemetry(t, end, ended.as_str(), &mut finished).await?;
    }
    Ok(finished)
}

/// Ends the run's trace, and adds what was (not) exported to the report.
async fn finish_telemetry(
    telemetry: RunTelemetry,
    ended_unix_ns: i64,
    outcome: &str,
    finished: &mut RunOutcome,
) -> Result<TraceReport, RunError> {
    let endpoint = telemetry.config().endpoint.clone();
    let trace_id = telemetry.trace_id_hex();
    let report = telemetry
        .finish(
            ended_unix_ns,
            outcome,
            vec![opentelemetry::KeyValue::new(
                "quarry.spec",
                finished.document.run.spec.clone(),
            )],
        )
        .await;
    finished.report.push_str(&format!("\ntrace {trace_id}\n"));
    for line in report.lines(&endpoint) {
        finished.report.push_str(&line);
        finished.report.push('\n');
    }
    write_report(&finished.dir, &finished.report)?;
    Ok(report)
}

/// Reads the document back from disk and writes the report and `.hgrm`
/// files from what was read.
fn finish_directory(dir: &Path) -> Result<RunOutcome, RunError> {
    let document = read_results(dir)?;
    let report = render_report(&document)?;
    let figures = RunFigures::from_document(&document)?;
    write_hgrm_files(dir, &figures.overall.delta)?;
    write_report(dir, &report)?;
    Ok(RunOutcome {
        dir: dir.to_owned(),
        document,
        report,
    })
}

/// Writes each snapshot to the interval file and the live view until the
/// engine (or the merge of the agents' streams) closes the channel, or the
/// user aborts. Without a gauge (a distributed run) the in-flight count is
/// the snapshot's own, summed over agents.
async fn consume(
    mut rx: mpsc::Receiver<IntervalSnapshot>,
    writer: &mut ResultsWriter,
    live: &mut LiveView,
    server: Option<&SimServer>,
    gauge: Option<&quarry_engine::InFlightGauge>,
    stop: StopSignal,
    on_interval: &mut dyn FnMut(&IntervalSnapshot),
) -> Result<Consumed, RunError> {
    let mut c = Consumed::default();
    let abort = stop.reached(StopLevel::Abort);
    tokio::pin!(abort);
    loop {
        let snapshot = tokio::select! {
            s = rx.recv() => match s {
                Some(s) => s,
                None => break,
            },
            () = &mut abort => {
                c.aborted = true;
                break;
            }
        };
        let summary = interval_summary(&snapshot);
        writer.append(&snapshot, summary)?;
        let ctx = LiveContext {
            in_flight: gauge.map_or(snapshot.health.in_flight, |g| g.get()),
            quota_tpm: server.and_then(sim::quota_tpm),
        };
        live.show(&snapshot, &summary, ctx);
        on_interval(&snapshot);
        merge_series(&mut c.series, &snapshot.series);
        c.health.push(snapshot.health);
        c.last_end = c.last_end.max(snapshot.end);
    }
    Ok(c)
}

/// What `run.json` records before the first request.
fn run_meta(
    valid: &ValidatedSpec,
    run_id: &str,
    opts: &RunOptions,
    config: &EngineConfig,
) -> RunMeta {
    let load = &valid.plan.load;
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
        interval_ns: duration_ns(config.interval),
        histogram: Default::default(),
        saturation_lag_p99_ns: duration_ns(config.health.max_schedule_lag_p99),
        thresholds: valid
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
