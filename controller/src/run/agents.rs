//! A run on `quarry-agent` daemons: the same run as [`super::run`] — the
//! same embedded simulator, results writer, live view, snapshot consumer,
//! document and report — with the snapshots coming from the agents'
//! merged streams ([`crate::fleet`]) instead of an in-process engine.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use quarry_sim::SimServer;
use tokio::sync::mpsc;

use super::{
    Prepared, RunError, RunOptions, RunOutcome, StopLevel, StopSignal, consume, finish_directory,
    finish_telemetry, prepare, sim,
};
use crate::fleet::{
    self, ConnectedAgent, ControllerClock, FleetOutcome, FleetPlan, FleetTrace, ShareSignal,
    annotate, append_fleet_lines, group_records, run_end, write_fleet_file,
};
use crate::live::LiveView;
use crate::results::{Assembly, Ended, RunEnd, assemble, write_report};
use crate::spec::ValidatedSpec;
use crate::telemetry::{RunTelemetry, ShareInfo};

/// The run's telemetry, shared by the snapshot consumer (metrics) and the
/// task that turns share signals into spans.
type SharedTelemetry = Arc<Mutex<RunTelemetry>>;

fn lock(t: &SharedTelemetry) -> MutexGuard<'_, RunTelemetry> {
    // A panic mid-update leaves at worst one span half-made.
    t.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Starts the run's trace over `agents`: one share span each.
fn start_telemetry(
    opts: &RunOptions,
    run_id: &str,
    plan: &quarry_engine::RunPlan,
    agents: &[ConnectedAgent],
    clock: ControllerClock,
) -> Result<
    Option<(
        SharedTelemetry,
        FleetTrace,
        mpsc::UnboundedReceiver<ShareSignal>,
    )>,
    RunError,
> {
    let Some(config) = &opts.telemetry else {
        return Ok(None);
    };
    let shares: Vec<ShareInfo> = agents
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
    let n = shares.len();
    let telemetry = RunTelemetry::start(config.clone(), run_id, plan, clock.now_unix_ns(), shares)?;
    let (signals, rx) = mpsc::unbounded_channel();
    let trace = FleetTrace {
        contexts: (0..n).map(|k| telemetry.share_context(k)).collect(),
        sampling: config.share_sampling(n),
        signals,
    };
    Ok(Some((Arc::new(Mutex::new(telemetry)), trace, rx)))
}

/// Turns share signals into the trace until the fleet's coordinator ends.
async fn apply_signals(
    telemetry: SharedTelemetry,
    mut signals: mpsc::UnboundedReceiver<ShareSignal>,
    clock: ControllerClock,
) {
    while let Some(signal) = signals.recv().await {
        let mut t = lock(&telemetry);
        match signal {
            ShareSignal::Started {
                share,
                agent_unix_ns,
            } => t.share_started(share, agent_unix_ns),
            ShareSignal::Spans {
                share,
                otlp_resource_spans,
                dropped,
            } => t.agent_spans(share, &otlp_resource_spans, dropped),
            ShareSignal::Ended {
                share,
                agent_unix_ns,
                problem,
            } => t.share_ended(
                share,
                agent_unix_ns,
                clock.now_unix_ns(),
                problem.as_deref(),
            ),
        }
    }
}

/// How long ahead of now the common start is set: time for every agent to
/// receive its share and set up its engine.
const START_LEAD: Duration = Duration::from_millis(500);

/// How long the end of a run waits for the last share signals.
const SIGNAL_WAIT: Duration = Duration::from_secs(5);

/// The agents of a distributed run and how to drive them.
#[derive(Debug)]
pub struct AgentRun {
    /// The agents, described and clock-probed.
    pub agents: Vec<ConnectedAgent>,
    /// How long an agent keeps firing without the controller.
    pub lease_ttl: Duration,
    /// The controller's clock the agents were probed against.
    pub clock: ControllerClock,
}

/// Runs `valid` split over `fleet`'s agents and writes its results
/// directory (plus `fleet.json`). The outcome says how each share ended;
/// `None` when the user aborted.
pub async fn run_on_agents(
    valid: &ValidatedSpec,
    spec_text: &str,
    opts: &RunOptions,
    stop: StopSignal,
    fleet: AgentRun,
) -> Result<(RunOutcome, Option<FleetOutcome>), RunError> {
    let plan = &valid.plan;
    let Prepared {
        run_id,
        dir,
        server,
        meta,
        mut writer,
        ..
    } = prepare(valid, spec_text, opts).await?;
    let clock = fleet.clock;
    let traced = start_telemetry(opts, &run_id, plan, &fleet.agents, clock)?;
    let (telemetry, trace, signals) = match traced {
        Some((t, trace, rx)) => (Some(t), Some(trace), Some(rx)),
        None => (None, None, None),
    };
    let fleet_plan = FleetPlan {
        run_id: run_id.clone(),
        plan: plan.clone(),
        interval: opts.interval,
        sim_url: server.as_ref().map(SimServer::url),
        lease_ttl: fleet.lease_ttl,
        start_lead: START_LEAD,
        trace,
    };
    let groups = group_records(plan, &fleet.agents).map_err(fleet::FleetError::Split)?;
    let running = fleet::start(fleet.agents, &fleet_plan, fleet.clock).await?;
    // The plan's signal sender must go, so the signal task ends with the
    // coordinator.
    drop(fleet_plan);
    let signal_task = telemetry
        .clone()
        .zip(signals)
        .map(|(t, rx)| tokio::spawn(apply_signals(t, rx, clock)));
    let stopper = running.stopper.clone();
    let on_stop = {
        let (stop, stopper) = (stop.clone(), stopper.clone());
        tokio::spawn(async move {
            stop.reached(StopLevel::Stop).await;
            stopper.stop().await;
        })
    };
    let mut live = LiveView::new(
        opts.live_in_place,
        quarry_engine::duration_ns(opts.interval),
    );
    let user_stop = stop.clone();
    let consumed = consume(
        running.snapshots,
        &mut writer,
        &mut live,
        server.as_ref(),
        None,
        stop,
        &mut |snapshot| {
            if let Some(t) = &telemetry {
                lock(t).interval(snapshot);
            }
        },
    )
    .await;
    live.finish();
    on_stop.abort();
    let consumed = match consumed {
        Ok(c) => c,
        Err(e) => {
            stopper.stop().await;
            return Err(e);
        }
    };
    let (end, outcome) = if consumed.aborted {
        stopper.stop().await;
        let end = RunEnd {
            ended: Ended::Aborted,
            finished_at_ns: consumed.last_end,
            sent: None,
        };
        (end, None)
    } else {
        let outcome = running
            .outcome
            .await
            .map_err(|_| fleet::FleetError::NoOutcome)?;
        let stopped = user_stop.level() >= StopLevel::Stop;
        (run_end(&outcome, consumed.last_end, stopped), Some(outcome))
    };
    let simulator = server.as_ref().map(sim::view);
    drop(server);
    let mut doc = assemble(Assembly {
        meta,
        plan: plan.clone(),
        end,
        series: &consumed.series,
        health: &consumed.health,
        simulator,
        priced: &|m| writer.is_priced(m),
    })?;
    annotate(&mut doc, groups, outcome.as_ref());
    writer.write_document(&doc)?;
    let mut finished = finish_directory(&dir)?;
    if let Some(outcome) = &outcome {
        append_fleet_lines(&mut finished.report, outcome);
        write_report(&dir, &finished.report)?;
        write_fleet_file(&dir, outcome)?;
    }
    if let Some(telemetry) = telemetry {
        // Every share has ended by now (or the run was aborted): the
        // coordinator is done, so the signal task ends with it.
        // An aborted run's agents may still be winding down: wait a little,
        // then end the trace with what arrived.
        if let Some(mut task) = signal_task
            && tokio::time::timeout(SIGNAL_WAIT, &mut task).await.is_err()
        {
            task.abort();
            let _ = task.await;
        }
        if let Ok(telemetry) = Arc::try_unwrap(telemetry) {
            let telemetry = telemetry
                .into_inner()
                .unwrap_or_else(PoisonError::into_inner);
            let ended = finished.document.end.ended;
            finish_telemetry(
                telemetry,
                clock.now_unix_ns(),
                ended.as_str(),
                &mut finished,
            )
            .await?;
        }
    }
    Ok((finished, outcome))
}
