//! A run on `quarry-agent` daemons: the same run as [`super::run`] — the
//! same embedded simulator, results writer, live view, snapshot consumer,
//! document and report — with the snapshots coming from the agents'
//! merged streams ([`crate::fleet`]) instead of an in-process engine.

use std::time::Duration;

use quarry_sim::SimServer;

use super::{
    Prepared, RunError, RunOptions, RunOutcome, StopLevel, StopSignal, consume, finish_directory,
    prepare, sim,
};
use crate::fleet::{
    self, ConnectedAgent, ControllerClock, FleetOutcome, FleetPlan, append_fleet_lines, run_end,
    write_fleet_file,
};
use crate::live::LiveView;
use crate::results::{Assembly, Ended, RunEnd, assemble, write_report};
use crate::spec::ValidatedSpec;

/// How long ahead of now the common start is set: time for every agent to
/// receive its share and set up its engine.
const START_LEAD: Duration = Duration::from_millis(500);

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
    let fleet_plan = FleetPlan {
        run_id: run_id.clone(),
        plan: plan.clone(),
        interval: opts.interval,
        sim_url: server.as_ref().map(SimServer::url),
        lease_ttl: fleet.lease_ttl,
        start_lead: START_LEAD,
    };
    let running = fleet::start(fleet.agents, &fleet_plan, fleet.clock).await?;
    let stopper = running.stopper.clone();
    let on_stop = {
        let (stop, stopper) = (stop.clone(), stopper.clone());
        tokio::spawn(async move {
            stop.reached(StopLevel::Stop).await;
            stopper.stop().await;
        })
    };
    let mut live = LiveView::new(opts.live_in_place, quarry_agent::duration_ns(opts.interval));
    let consumed = consume(
        running.snapshots,
        &mut writer,
        &mut live,
        server.as_ref(),
        None,
        stop,
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
        (run_end(&outcome, consumed.last_end), Some(outcome))
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
    if let Some(outcome) = &outcome {
        append_fleet_lines(&mut finished.report, outcome);
        write_report(&dir, &finished.report)?;
        write_fleet_file(&dir, outcome)?;
    }
    Ok((finished, outcome))
}
