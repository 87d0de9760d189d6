//! The end of every run: how it ended (from its shares' outcome, in one
//! place), the results document assembled from the totals, its figures
//! computed once (each histogram decoded once) for the thresholds, the
//! `.hgrm` files, the report and its page (`report.html`), and everything
//! written.

use quarry_engine::RunPlan;

use super::sinks::Totals;
use super::{RunError, RunOutcome};
use crate::coordinator::{RunEnding, SharesOutcome};
use crate::fleet::{add_group_totals, partial_shares};
use crate::report::html::write_run_page;
use crate::report::{evaluate, render_fleet_section, render_report};
use crate::results::{
    Assembly, Ended, GroupRecord, INTERVALS_FILE, ResultsError, ResultsWriter, RunEnd, RunMeta,
    SimulatorView, assemble, write_hgrm_files, write_report,
};

/// How the run ended: aborted when the user cut it before the shares
/// reported; otherwise their outcome decides ([`SharesOutcome::run_end`]).
/// The run finished when its last request was recorded: the latest share's
/// own finish, or, when a share never said (lost), the end of the last
/// merged interval.
pub(super) fn run_end(
    outcome: Option<&SharesOutcome>,
    totals: &Totals,
    stopped_by_user: bool,
) -> RunEnd {
    let Some(outcome) = outcome.filter(|_| !totals.aborted) else {
        return RunEnd {
            ended: Ended::Aborted,
            finished_at_ns: totals.last_end,
            sent: None,
            overload: None,
        };
    };
    let ended = match outcome.run_end(stopped_by_user) {
        RunEnding::Completed => Ended::Completed,
        RunEnding::RequestLimit => Ended::RequestLimit,
        RunEnding::Stopped => Ended::Stopped,
        RunEnding::Degraded => Ended::Degraded,
    };
    let finishes: Option<Vec<u64>> = outcome.shares.iter().map(|s| s.finished_after_ns).collect();
    RunEnd {
        ended,
        finished_at_ns: finishes
            .and_then(|f| f.into_iter().max())
            .unwrap_or(totals.last_end),
        sent: outcome.requests_sent(),
        overload: None,
    }
}

/// What the results document is built from besides the totals.
pub(super) struct Finish<'a> {
    pub(super) meta: RunMeta,
    pub(super) plan: RunPlan,
    pub(super) end: RunEnd,
    pub(super) totals: &'a Totals,
    pub(super) simulator: Option<SimulatorView>,
    /// A distributed run's groups and how its shares ended (recorded in
    /// `results.json`, `fleet.json` and the report); `None` in-process.
    pub(super) fleet: Option<(Vec<GroupRecord>, &'a SharesOutcome)>,
}

/// Assembles `results.json`, evaluates it once, and writes it with the
/// `.hgrm` files, `fleet.json` and the report into the writer's directory.
pub(super) fn write_results(
    writer: &ResultsWriter,
    finish: Finish<'_>,
) -> Result<RunOutcome, RunError> {
    let dir = writer.dir();
    let mut document = assemble(Assembly {
        meta: finish.meta,
        plan: finish.plan,
        end: finish.end,
        series: &finish.totals.series,
        health: &finish.totals.health,
        simulator: finish.simulator,
        priced: &|k| writer.is_priced(k),
    })?;
    document.walls_met = finish.totals.walls_met.clone();
    if let Some((mut groups, outcome)) = finish.fleet.clone() {
        add_group_totals(&mut groups, &document.series);
        document.groups = groups;
        document.partial_shares = partial_shares(outcome);
    }
    let figures = evaluate(&mut document)?;
    // Every file is attempted even when one fails (a full disk): what could
    // not be written is named, and the report is still printed.
    let mut unwritten = Vec::new();
    if let Some((n, why)) = writer.unwritten_intervals() {
        unwritten.push(format!(
            "{}: {n} interval(s) not written ({why}); the file holds whole lines only",
            dir.join(INTERVALS_FILE).display()
        ));
    }
    let mut attempt = |r: Result<(), ResultsError>| {
        if let Err(e) = r {
            unwritten.push(e.to_string());
        }
    };
    attempt(writer.write_document(&document));
    attempt(write_hgrm_files(dir, &figures.overall.delta).map(|_| ()));
    let mut report = render_report(&document, &figures);
    if let Some((_, outcome)) = finish.fleet {
        attempt(writer.write_fleet(outcome));
        report.push_str(&render_fleet_section(outcome));
    }
    attempt(write_report(dir, &report));
    // The page is drawn from what was written: the document as evaluated
    // and the interval file on disk.
    attempt(write_run_page(dir, &document, &figures, &report).map(|_| ()));
    Ok(RunOutcome {
        dir: dir.to_owned(),
        document,
        figures,
        report,
        unwritten,
    })
}
