//! Where merged interval data goes while a run goes: one sink contract
//! (k6's `output.Output` is the anchor) that the results writer, the live
//! view, the trace's metrics and the run's own totals implement, and the
//! one loop that feeds them.
//!
//! The adapters live here, at the top, so the results, live and telemetry
//! modules know nothing of each other or of the run.

use std::collections::BTreeMap;

use quarry_engine::{
    Count, HealthSample, IntervalSnapshot, SeriesDelta, SeriesKey, TokenKind, USAGE_SOURCES,
    merge_series,
};
use tokio::sync::mpsc;

use super::RunError;
use super::sim::EmbeddedSim;
use super::stop::{StopLevel, StopSignal};
use super::trace::{SharedTelemetry, lock};
use crate::live::{LiveContext, LiveView};
use crate::report::interval_summary;
use crate::results::{IntervalSummary, ResultsWriter, WallMet};

/// Takes each merged interval, in order.
pub(super) trait IntervalSink {
    /// One interval and its headline figures (computed once for every
    /// sink). An error ends the run's consumption.
    fn interval(
        &mut self,
        snapshot: &IntervalSnapshot,
        summary: &IntervalSummary,
    ) -> Result<(), RunError>;
}

/// `intervals.jsonl`: one flushed line per interval. A line that cannot be
/// written (a full disk) does not end the run: it goes on measuring in
/// memory (the totals), says so once, and the end of the run names what
/// was not written and fails the run.
impl IntervalSink for ResultsWriter {
    fn interval(
        &mut self,
        snapshot: &IntervalSnapshot,
        summary: &IntervalSummary,
    ) -> Result<(), RunError> {
        let first = self.unwritten_intervals().is_none();
        if let Err(e) = self.append(snapshot, *summary)
            && first
        {
            eprintln!(
                "\nquarry: cannot write {e}; the run goes on measuring in memory and writes the rest at its end"
            );
        }
        Ok(())
    }
}

/// The live status line, with the embedded simulator's quota when there is
/// one.
pub(super) struct LiveSink<'a> {
    pub(super) view: LiveView,
    pub(super) sim: Option<&'a EmbeddedSim>,
}

impl IntervalSink for LiveSink<'_> {
    fn interval(
        &mut self,
        snapshot: &IntervalSnapshot,
        summary: &IntervalSummary,
    ) -> Result<(), RunError> {
        let ctx = LiveContext {
            in_flight: snapshot.health.in_flight,
            quota_tpm: self.sim.and_then(EmbeddedSim::quota_tpm),
        };
        self.view.show(snapshot, summary, ctx);
        Ok(())
    }
}

/// The trace's metrics: every interval recorded bucket by bucket.
pub(super) struct MetricsSink(pub(super) SharedTelemetry);

impl IntervalSink for MetricsSink {
    fn interval(
        &mut self,
        snapshot: &IntervalSnapshot,
        _summary: &IntervalSummary,
    ) -> Result<(), RunError> {
        lock(&self.0).interval(snapshot);
        Ok(())
    }
}

/// What the results document is assembled from: every series merged over
/// the whole run, each interval's health, and when the last interval ended.
#[derive(Debug, Default)]
pub(super) struct Totals {
    pub(super) series: BTreeMap<SeriesKey, SeriesDelta>,
    pub(super) health: Vec<HealthSample>,
    pub(super) last_end: u64,
    /// The user aborted (a second Ctrl-C) before the shares ended.
    pub(super) aborted: bool,
    /// Each quota wall the run met, at the first interval whose throttles
    /// named it.
    pub(super) walls_met: Vec<WallMet>,
}

/// The throttle counters that name a quota, and the wall each names.
const WALLS: [(Count, &str); 3] = [
    (Count::ThrottlesTpm, "tokens_per_minute"),
    (Count::ThrottlesRpm, "requests_per_minute"),
    (Count::ThrottlesTpd, "tokens_per_day"),
];

impl Totals {
    /// Notes the walls `snapshot` meets for the first time, with what the
    /// run had consumed before it (every stage, every series).
    fn note_walls(&mut self, snapshot: &IntervalSnapshot) {
        for (count, wall) in WALLS {
            if self.walls_met.iter().any(|w| w.wall == wall) {
                continue;
            }
            let throttles: u64 = snapshot
                .series
                .values()
                .map(|d| d.counters().get(count))
                .sum();
            if throttles == 0 {
                continue;
            }
            let sum = |c: Count| -> u64 { self.series.values().map(|d| d.counters().get(c)).sum() };
            let tokens = USAGE_SOURCES
                .iter()
                .flat_map(|s| TokenKind::ALL.map(|k| Count::Tokens(*s, k)))
                .map(sum)
                .sum();
            self.walls_met.push(WallMet {
                wall: wall.to_owned(),
                interval: snapshot.index,
                interval_start_ns: snapshot.start,
                interval_end_ns: snapshot.end,
                throttles_in_interval: throttles,
                quota_settled_before: sum(Count::QuotaSettled),
                quota_settled_through: sum(Count::QuotaSettled)
                    + snapshot
                        .series
                        .values()
                        .map(|d| d.counters().get(Count::QuotaSettled))
                        .sum::<u64>(),
                tokens_before: tokens,
            });
        }
    }
}

impl IntervalSink for Totals {
    fn interval(
        &mut self,
        snapshot: &IntervalSnapshot,
        _summary: &IntervalSummary,
    ) -> Result<(), RunError> {
        self.note_walls(snapshot);
        merge_series(&mut self.series, &snapshot.series);
        self.health.push(snapshot.health);
        self.last_end = self.last_end.max(snapshot.end);
        Ok(())
    }
}

/// Feeds every merged snapshot to every sink, in order, until the
/// coordinator closes the stream or the user aborts (`totals.aborted`).
pub(super) async fn consume(
    mut snapshots: mpsc::Receiver<IntervalSnapshot>,
    totals: &mut Totals,
    sinks: &mut [&mut dyn IntervalSink],
    stop: StopSignal,
) -> Result<(), RunError> {
    let abort = stop.reached(StopLevel::Abort);
    tokio::pin!(abort);
    loop {
        let snapshot = tokio::select! {
            s = snapshots.recv() => match s {
                Some(s) => s,
                None => return Ok(()),
            },
            () = &mut abort => {
                totals.aborted = true;
                return Ok(());
            }
        };
        let summary = interval_summary(&snapshot);
        for sink in sinks.iter_mut() {
            sink.interval(&snapshot, &summary)?;
        }
        totals.interval(&snapshot, &summary)?;
    }
}
