//! The interval ticker: once per interval it swaps the recorder's series
//! out, adds the agent's health, sends the snapshot and folds it into the
//! cumulative totals. It runs as its own task so the merge work never
//! delays the dispatcher.

use std::sync::Arc;

use hdrhistogram::Histogram;
use tokio::sync::{mpsc, watch};

use crate::clock::RunClock;
use crate::health::{HealthPolicy, HealthSample, InFlightGauge, ProcessCpu};
use crate::recorder::Recorder;
use crate::snapshot::{Cumulative, IntervalSnapshot};

/// What the ticker task owns.
pub(super) struct TickerParts {
    pub(super) recorder: Arc<Recorder>,
    pub(super) clock: RunClock,
    pub(super) interval_ns: u64,
    pub(super) policy: HealthPolicy,
    pub(super) gauge: InFlightGauge,
    pub(super) snapshots: mpsc::Sender<IntervalSnapshot>,
}

/// Ticks on interval boundaries of the run clock until `stop`, then sends a
/// last (partial) interval and returns the totals.
pub(super) async fn run(parts: TickerParts, mut stop: watch::Receiver<bool>) -> Cumulative {
    let mut cumulative = Cumulative::new();
    let mut cpu = ProcessCpu::new();
    cpu.sample(parts.clock.now_ns());
    let mut start = 0;
    for index in 0u64.. {
        let boundary = index.saturating_add(1).saturating_mul(parts.interval_ns);
        let last = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => true,
            () = parts.clock.sleep_coarse_until(boundary) => false,
        };
        let end = parts.clock.now_ns();
        let take = parts.recorder.take_interval();
        let schedule_lag_p99_ns = p99(&take.schedule_lag);
        let pool_wait_p99_ns = p99(&take.pool_wait);
        let cpu_percent = cpu.sample(end);
        let saturation = parts
            .policy
            .judge(schedule_lag_p99_ns, pool_wait_p99_ns, cpu_percent);
        let health = HealthSample {
            cpu_percent,
            in_flight: parts.gauge.get(),
            schedule_lag_p99_ns,
            pool_wait_p99_ns,
            saturated: saturation.any(),
            saturation,
        };
        let snapshot = IntervalSnapshot {
            index,
            start,
            end,
            series: take.series,
            health,
        };
        cumulative.add(&snapshot);
        // A consumer that went away is not the run's failure: the totals
        // still come back from `Engine::run`.
        let _ = parts.snapshots.send(snapshot).await;
        if last {
            break;
        }
        start = end;
    }
    cumulative
}

fn p99(h: &Histogram<u64>) -> u64 {
    if h.is_empty() {
        0
    } else {
        h.highest_equivalent(h.value_at_quantile(0.99))
    }
}
