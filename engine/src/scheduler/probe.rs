//! The runtime probe: how long a task that became ready waits before the
//! runtime polls it.
//!
//! Every [`PROBE_PERIOD`] the probe wakes, reads the clock, yields, and
//! records the time until the runtime polls it again. A yielded task goes
//! to the back of the line, behind everything already ready and whatever
//! the runtime's next look at its sockets and timers wakes, which is the
//! wait a response's bytes have between arriving on a socket and the read
//! that stamps them. A generator that falls behind its sockets shows it
//! here even when its CPU share does not: in BENCHMARKS.md's run of 500
//! streams on a core shared with a busy loop, the agent's process used 49%
//! of the core while its frames waited 43 ms at p99, and the probe's p95
//! passed 10 ms in 16 of 20 intervals.
//!
//! Why a probe and not a stamp on every task poll (what `tokio-metrics`'
//! task monitor measures): a stamp per poll is two clock reads on the
//! hottest path for every request, against two a probe, 100 times a second.
//! The interval's figure is the p95 of ~100 samples, a sample of the
//! runtime's delays, not all of them.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::clock::{RunClock, duration_ns};
use crate::recorder::Recorder;

/// How often the probe measures: often enough for a p99 over a one-second
/// interval, and a wake cheap enough not to weigh on an idle agent.
pub(super) const PROBE_PERIOD: Duration = Duration::from_millis(10);

/// Probes until `stop` turns true, recording each delay into `recorder`.
pub(super) async fn run(recorder: Arc<Recorder>, clock: RunClock, mut stop: watch::Receiver<bool>) {
    let period = duration_ns(PROBE_PERIOD);
    loop {
        let next = clock.now_ns().saturating_add(period);
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return,
            () = clock.sleep_coarse_until(next) => {}
        }
        let ready = clock.now_ns();
        tokio::task::yield_now().await;
        recorder.record_runtime_delay(clock.now_ns().saturating_sub(ready));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A runtime kept busy by a task that holds it for 20 ms at a time: the
    /// probe, ready behind it, waits for it. (Real time: the delay is what
    /// is measured. Only its lower bound is asserted, which a thread sleep
    /// guarantees; a probe that stamped after its wait instead of before
    /// would record nothing.)
    #[test]
    fn the_probe_waits_behind_a_busy_task() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let p99 = rt.block_on(async {
            let recorder = Arc::new(Recorder::new(0, None));
            let clock = RunClock::start(std::time::SystemTime::UNIX_EPOCH);
            let (stop_tx, stop_rx) = watch::channel(false);
            let probe = tokio::spawn(run(Arc::clone(&recorder), clock, stop_rx));
            let hog = tokio::spawn(async move {
                loop {
                    // Holding the worker is what this task is for.
                    #[allow(clippy::disallowed_methods)]
                    std::thread::sleep(Duration::from_millis(20));
                    tokio::task::yield_now().await;
                }
            });
            tokio::time::sleep(Duration::from_millis(200)).await;
            stop_tx.send(true).unwrap();
            probe.await.unwrap();
            hog.abort();
            recorder.take_interval().runtime_delay_p95_ns
        });
        assert!(p99 >= 20_000_000, "behind a 20 ms task: {p99} ns");
    }
}
