//! The run clock: the one source of time for scheduling and recording.
//!
//! Every timestamp the engine keeps is nanoseconds since a per-run origin on
//! the monotonic clock (`u64`), read through [`RunClock`]. It is backed by
//! `tokio::time::Instant`, so `#[tokio::test(start_paused = true)]` controls
//! it, and it maps to wall-clock time once, at run start, from a `SystemTime`
//! the caller passes in (wall-clock reads are injected, never taken here).
//!
//! On Linux it also maps to raw `CLOCK_MONOTONIC` readings, the clock
//! `Instant` reads there, so a time another process on the same host stamped
//! (the simulator's frame stamps) converts into run nanoseconds
//! ([`RunClock::monotonic_to_run_ns`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// How long before a deadline [`RunClock::sleep_until`] stops trusting tokio's
/// timer and finishes by yield-polling.
///
/// tokio's timer wheel has 1 ms ticks and rounds every deadline *up* to the
/// next tick, so a timer sleep alone lands up to 1 ms late. Sleeping on the
/// timer until 1 ms before the deadline and then polling the clock between
/// `yield_now()`s lands within tens of microseconds of it. The price is that
/// the dispatcher keeps its worker busy for up to this window before every
/// arrival: at rate λ it polls for at most `min(1, λ × window)` of one worker's
/// time. It yields on every poll, so request tasks on the same worker still
/// run; at rates above 1/window the dispatcher is always inside the window
/// and the spin costs one worker, which is the price of sub-millisecond
/// arrival precision.
pub const SPIN_WINDOW: Duration = Duration::from_millis(1);

/// A poll of the clock that came back within this long found nothing else
/// to run: a `yield_now` round trip through an idle worker takes about
/// 0.5 µs here (p99.9 2 µs), a request task's poll several µs.
const IDLE_YIELD_NS: u64 = 2_000;

/// Time spent polling the clock with nothing else to run, in this process,
/// ns (see [`idle_poll_ns`]).
static IDLE_POLL_NS: AtomicU64 = AtomicU64::new(0);

/// How long this process's deadline polling has spent with nothing else to
/// run, ns, since it started: CPU the process used that any request would
/// have had at once. The health verdict's CPU sign leaves it out
/// ([`crate::HealthPolicy`]).
pub(crate) fn idle_poll_ns() -> u64 {
    IDLE_POLL_NS.load(Ordering::Relaxed)
}

/// Monotonic nanoseconds since a run's origin, and its mapping to wall time.
#[derive(Debug, Clone, Copy)]
pub struct RunClock {
    /// The run's t = 0 on the monotonic clock.
    origin: Instant,
    /// Wall-clock time at `origin`, taken once: monotonic readings never jump,
    /// wall-clock readings can (NTP steps), so only this one mapping is used.
    wall_origin: SystemTime,
    /// `CLOCK_MONOTONIC` nanoseconds read right after `origin` (Linux only:
    /// elsewhere `Instant` is another clock, and there is no mapping).
    monotonic_origin_ns: Option<i64>,
}

impl RunClock {
    /// A clock whose origin is now, and whose origin corresponds to the
    /// wall-clock time `wall_at_origin` (the caller's one wall-clock read).
    pub fn start(wall_at_origin: SystemTime) -> Self {
        let origin = Instant::now();
        RunClock {
            origin,
            wall_origin: wall_at_origin,
            monotonic_origin_ns: monotonic_ns(),
        }
    }

    /// The `CLOCK_MONOTONIC` reading `monotonic_ns` (from this process or
    /// another on the same host) as signed nanoseconds since the run's
    /// origin; `None` where there is no mapping (not Linux).
    ///
    /// The origin's reading is taken just after the origin, so a mapped
    /// time is early by at most the few tens of nanoseconds between the two
    /// reads, never late: a delay measured up to a mapped time is never
    /// understated. Under tokio's paused test clock `Instant` is not
    /// `CLOCK_MONOTONIC` and the mapping means nothing (no stamps come from
    /// a paused test).
    pub fn monotonic_to_run_ns(&self, monotonic_ns: i64) -> Option<i64> {
        Some(monotonic_ns.saturating_sub(self.monotonic_origin_ns?))
    }

    /// This clock with `CLOCK_MONOTONIC` reading `ns` at its origin, for
    /// tests that stamp frames with known times.
    #[cfg(test)]
    pub(crate) fn with_monotonic_origin(self, ns: Option<i64>) -> Self {
        RunClock {
            monotonic_origin_ns: ns,
            ..self
        }
    }

    /// Nanoseconds since the run's origin.
    pub fn now_ns(&self) -> u64 {
        duration_ns(self.origin.elapsed())
    }

    /// The monotonic instant `ns` nanoseconds after the origin.
    pub fn instant_at(&self, ns: u64) -> Instant {
        self.origin + Duration::from_nanos(ns)
    }

    /// The wall-clock time of the run timestamp `ns`.
    pub fn wall_at(&self, ns: u64) -> SystemTime {
        self.wall_origin + Duration::from_nanos(ns)
    }

    /// The run timestamp `ns` as nanoseconds since the Unix epoch (the gRPC
    /// wire form); negative before 1970, saturating far outside ±292 years.
    pub fn unix_ns_at(&self, ns: u64) -> i64 {
        match self.wall_at(ns).duration_since(UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_nanos()).unwrap_or(i64::MAX),
            Err(before) => i64::try_from(before.duration().as_nanos()).map_or(i64::MIN, |n| -n),
        }
    }

    /// Sleeps until the run timestamp `deadline_ns` with sub-millisecond
    /// precision (see [`SPIN_WINDOW`]) and returns the time it woke.
    pub async fn sleep_until(&self, deadline_ns: u64) -> u64 {
        self.sleep_until_with(deadline_ns, SPIN_WINDOW).await
    }

    /// [`RunClock::sleep_until`] with an explicit spin window. A zero window
    /// is a plain timer sleep (up to 1 ms late, no polling).
    pub async fn sleep_until_with(&self, deadline_ns: u64, spin_window: Duration) -> u64 {
        let window = duration_ns(spin_window);
        let now = self.now_ns();
        if now >= deadline_ns {
            return now;
        }
        if deadline_ns - now > window {
            tokio::time::sleep_until(self.instant_at(deadline_ns - window)).await;
        }
        loop {
            let before = self.now_ns();
            if before >= deadline_ns {
                return before;
            }
            tokio::task::yield_now().await;
            let after = self.now_ns();
            let took = after.saturating_sub(before);
            if took <= IDLE_YIELD_NS {
                IDLE_POLL_NS.fetch_add(took, Ordering::Relaxed);
            }
            if after >= deadline_ns {
                return after;
            }
            if after == before {
                // A nanosecond clock that did not move across a yield is
                // paused (tokio's test clock only advances when every task
                // is idle), so polling would never end: hand the rest to the
                // timer, which the paused clock advances to exactly.
                tokio::time::sleep_until(self.instant_at(deadline_ns)).await;
                return self.now_ns();
            }
        }
    }

    /// Sleeps on tokio's timer alone (up to 1 ms late): for interval ticks and
    /// slot activations, where a millisecond does not matter and polling would
    /// only burn CPU.
    pub async fn sleep_coarse_until(&self, deadline_ns: u64) {
        tokio::time::sleep_until(self.instant_at(deadline_ns)).await;
    }
}

/// `CLOCK_MONOTONIC` now, in nanoseconds: what std's (and unpaused
/// tokio's) `Instant` reads on Linux.
#[cfg(target_os = "linux")]
fn monotonic_ns() -> Option<i64> {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    Some(
        t.tv_sec
            .saturating_mul(1_000_000_000)
            .saturating_add(t.tv_nsec),
    )
}

/// Elsewhere `Instant` reads another clock (macOS: `mach_absolute_time`),
/// so no `CLOCK_MONOTONIC` reading maps onto the run clock.
#[cfg(not(target_os = "linux"))]
fn monotonic_ns() -> Option<i64> {
    None
}

/// A duration in nanoseconds, saturating at `u64::MAX` (584 years).
pub fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn paused_time_lands_exactly_on_millisecond_deadlines() {
        let clock = RunClock::start(UNIX_EPOCH);
        for deadline in [5_000_000, 5_000_000, 17_000_000, 250_000_000] {
            let woke = clock.sleep_until(deadline).await;
            assert_eq!(woke, deadline);
            assert_eq!(clock.now_ns(), deadline);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn paused_time_sub_millisecond_deadline_wakes_within_a_tick() {
        let clock = RunClock::start(UNIX_EPOCH);
        let woke = clock.sleep_until(3_400_000).await;
        assert!((3_400_000..4_000_001).contains(&woke), "{woke}");
    }

    #[tokio::test(start_paused = true)]
    async fn past_deadline_returns_at_once() {
        let clock = RunClock::start(UNIX_EPOCH);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(clock.sleep_until(1_000).await, 10_000_000);
    }

    #[test]
    fn wall_mapping_is_fixed_at_start() {
        let wall = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let clock = RunClock {
            origin: Instant::now(),
            wall_origin: wall,
            monotonic_origin_ns: None,
        };
        assert_eq!(clock.unix_ns_at(0), 1_700_000_000_000_000_000);
        assert_eq!(clock.unix_ns_at(1_500), 1_700_000_000_000_001_500);
        assert_eq!(clock.wall_at(2_000_000_000), wall + Duration::from_secs(2));
        let before_epoch = RunClock {
            origin: Instant::now(),
            wall_origin: UNIX_EPOCH - Duration::from_nanos(10),
            monotonic_origin_ns: None,
        };
        assert_eq!(before_epoch.unix_ns_at(4), -6);
    }

    /// Causality on one clock: a `CLOCK_MONOTONIC` reading taken before a
    /// run-clock reading maps to no later a run time, and one taken after
    /// maps to no earlier a run time than the origin's few nanoseconds of
    /// slack allow (the mapped time is early by at most the time between
    /// the origin's two reads, which the test bounds by a second reading).
    #[cfg(target_os = "linux")]
    #[test]
    fn monotonic_readings_map_onto_the_run_clock() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let clock = RunClock::start(UNIX_EPOCH);
            for _ in 0..1_000 {
                let before = monotonic_ns().unwrap();
                let now = clock.now_ns() as i64;
                let after = monotonic_ns().unwrap();
                let early = clock.monotonic_to_run_ns(before).unwrap();
                let late = clock.monotonic_to_run_ns(after).unwrap();
                assert!(early <= now, "{early} > {now}");
                assert!(late >= 0);
                assert!(early <= late);
            }
        });
    }

    #[test]
    fn real_time_deadline_is_never_early() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let clock = RunClock::start(UNIX_EPOCH);
            let deadline = clock.now_ns() + 2_500_000;
            let woke = clock.sleep_until(deadline).await;
            // Only "not early" is asserted: how late depends on the machine.
            assert!(woke >= deadline);
        });
    }

    /// Polling with nothing else to run is counted as idle, never more than
    /// the time it took; polling beside a task that always has work is not.
    /// (Bounds only: how much of a window counts depends on the machine.)
    #[test]
    fn idle_polling_is_counted_and_busy_polling_is_not() {
        // One worker, as an agent's dispatcher shares one with its requests.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_time()
            .build()
            .unwrap();
        // A window wider than the wait: it is all polling, no timer sleep.
        let window = Duration::from_millis(10);
        let test = rt.spawn(async move {
            let clock = RunClock::start(UNIX_EPOCH);
            let before = idle_poll_ns();
            let from = clock.now_ns();
            let woke = clock.sleep_until_with(from + 2_000_000, window).await;
            let idle = idle_poll_ns() - before;
            assert!(idle > 0, "2 ms of polling alone counted no idle time");
            assert!(idle <= woke - from, "{idle} ns idle in {} ns", woke - from);

            // A neighbour whose every poll takes 50 µs: the clock's polls
            // wait for it, all but perhaps one or two (the neighbour's turn
            // is not strictly every other one).
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let busy = tokio::spawn({
                let stop = std::sync::Arc::clone(&stop);
                async move {
                    while !stop.load(Ordering::Relaxed) {
                        let until = std::time::Instant::now() + Duration::from_micros(50);
                        while std::time::Instant::now() < until {
                            std::hint::spin_loop();
                        }
                        tokio::task::yield_now().await;
                    }
                }
            });
            tokio::task::yield_now().await;
            let before = idle_poll_ns();
            let from = clock.now_ns();
            clock.sleep_until_with(from + 2_000_000, window).await;
            let idle = idle_poll_ns() - before;
            stop.store(true, Ordering::Relaxed);
            busy.await.unwrap();
            assert!(idle < 20_000, "{idle} ns idle beside a busy task");
        });
        rt.block_on(test).unwrap();
    }
}
