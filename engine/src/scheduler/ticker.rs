//! The interval ticker: once per interval it swaps the recorder's series
//! out, adds the agent's health, sends the snapshot and folds it into the
//! cumulative totals.
//!
//! That work is up to milliseconds of CPU (walking and zeroing the filled
//! histograms, merging every histogram into the totals) and runs on a
//! blocking-pool thread, not on a runtime worker: a worker runs a task's
//! poll to its end, so on a worker it held up the dispatcher and every
//! request behind it for ~5 ms once a second (the open loop's p99.9 send
//! lag, BENCHMARKS.md), while the kernel preempts a plain thread the moment
//! the worker has something to do.

use std::sync::Arc;

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
        let work = Tick {
            recorder: Arc::clone(&parts.recorder),
            policy: parts.policy,
            gauge: parts.gauge.clone(),
            cumulative,
            cpu,
        };
        let ticked = tokio::task::spawn_blocking(move || work.run(index, start, end)).await;
        let (snapshot, work) = match ticked {
            Ok(done) => done,
            // A panic there is a bug: raise it here. The only other error
            // is a runtime shutting down, which drops this task anyway.
            Err(e) => std::panic::resume_unwind(
                e.try_into_panic()
                    .unwrap_or_else(|e| Box::new(format!("interval work: {e}"))),
            ),
        };
        (cumulative, cpu) = (work.cumulative, work.cpu);
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

/// What one interval's bulk work needs, moved to the blocking thread and back.
struct Tick {
    recorder: Arc<Recorder>,
    policy: HealthPolicy,
    gauge: InFlightGauge,
    cumulative: Cumulative,
    cpu: ProcessCpu,
}

impl Tick {
    /// Takes interval `index` (`start`..`end`) from the recorder, judges the
    /// agent's health and folds the interval into the totals.
    fn run(mut self, index: u64, start: u64, end: u64) -> (IntervalSnapshot, Self) {
        let take = self.recorder.take_interval();
        let cpu_percent = self.cpu.sample(end);
        let mut health = HealthSample {
            cpu_percent,
            in_flight: self.gauge.get(),
            schedule_lag_p99_ns: take.schedule_lag_p99_ns,
            pool_wait_p99_ns: take.pool_wait_p99_ns,
            runtime_delay_p95_ns: take.runtime_delay_p95_ns,
            ..HealthSample::default()
        };
        // The CPU sign judges the work, not the dispatcher's idle polling
        // (`HealthPolicy`); the interval reports the whole process's CPU.
        let working = HealthSample {
            cpu_percent: cpu_percent.map(|c| (c - self.cpu.idle_poll_percent()).max(0.0)),
            ..health
        };
        health.saturation = self.policy.judge(&working);
        health.saturated = health.saturation.any();
        let snapshot = IntervalSnapshot {
            index,
            start,
            end,
            series: take.series,
            health,
        };
        self.cumulative.add(&snapshot);
        (snapshot, self)
    }
}
