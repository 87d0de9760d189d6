//! The open-loop dispatcher's timer: how it waits for each arrival's
//! deadline.
//!
//! tokio's timer wheel ticks every millisecond and rounds every deadline up
//! to the next tick, so a plain `sleep_until` lands up to 1 ms late, far
//! from the sub-100 µs schedule an open loop promises. Three ways to do
//! better are built, so that they can be measured side by side
//! (`loadbench --scenario lag --dispatch-timer …`; figures and the reason
//! the default won are in BENCHMARKS.md and ARCHITECTURE.md):
//!
//! - [`DispatchTimer::Poll`]: the timer wheel until a window before the
//!   deadline, then yield-polling the clock on the runtime. Precise, but
//!   the dispatcher keeps its worker busy through every window (at 5,000
//!   arrivals/s with a 1 ms window: always), each yield a trip through the
//!   reactor.
//! - [`DispatchTimer::Thread`]: a dedicated sleeper thread, its timer slack
//!   cut to 1 ns, parks until `spin` before the deadline, spins the rest
//!   and wakes the dispatcher across threads.
//! - [`DispatchTimer::TimerFd`] (Linux, the default): a `timerfd` on the
//!   runtime's own reactor. The worker sleeps in `epoll_wait` and the
//!   kernel's high-resolution timer (no slack on timerfd expiry) wakes it:
//!   no second thread, no cross-thread hand-off. It is armed a busy-poll
//!   budget before the deadline and polls the rest, because a wake can
//!   still be late (in a virtual machine, by as long as the host takes to
//!   run a halted vCPU again). The default budget adapts: it covers the
//!   99.5th percentile of recent wake lateness, up to
//!   [`MAX_ADAPTIVE_POLL`], so a machine whose wakes are prompt barely
//!   polls, and a rare wake milliseconds late does not make every gap a
//!   poll.
//!
//! Every precise wait also keeps a timer-wheel sleep to the same deadline.
//! In real time it never wins (it rounds up); under tokio's paused test
//! clock it is what fires, advanced to exactly the deadline, so the engine's
//! paused-time tests drive the same dispatcher code. A precise wake that the
//! run clock says is early (possible only when that clock is paused) is
//! ignored.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

#[cfg(target_os = "linux")]
use crate::clock::duration_ns;
use crate::clock::{RunClock, SPIN_WINDOW};

/// How the open-loop dispatcher waits for each arrival's deadline.
///
/// The designs and the measurements that chose the default are in
/// ARCHITECTURE.md ("The open-loop dispatcher") and BENCHMARKS.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DispatchTimer {
    /// tokio's timer until `window` before the deadline, then yield-polling.
    Poll {
        /// How long before the deadline polling starts.
        window: Duration,
    },
    /// A dedicated sleeper thread that parks until `spin` before the
    /// deadline and busy-waits the rest.
    Thread {
        /// The busy-wait budget before each deadline.
        spin: Duration,
    },
    /// A Linux `timerfd` on the runtime's reactor, armed a busy-poll budget
    /// before the deadline, then yield-polling the clock for the rest;
    /// elsewhere, or where one cannot be created, the sleeper thread
    /// spinning that budget.
    TimerFd {
        /// The budget: fixed, or `None` for an adaptive one that covers how
        /// late this machine's timer wakes have recently been, from 20 µs up
        /// to [`MAX_ADAPTIVE_POLL`] (see the module documentation).
        poll: Option<Duration>,
    },
}

impl Default for DispatchTimer {
    fn default() -> Self {
        DispatchTimer::TimerFd { poll: None }
    }
}

impl DispatchTimer {
    /// The polling design with its original 1 ms window ([`SPIN_WINDOW`]).
    pub const POLL: DispatchTimer = DispatchTimer::Poll {
        window: SPIN_WINDOW,
    };

    /// Parses the names loadbench and the documentation use: `poll`,
    /// `poll:<µs>` (the window), `thread`, `thread:<µs>` (the spin budget),
    /// `timerfd` (the adaptive budget) and `timerfd:<µs>` (a fixed one).
    pub fn parse(text: &str) -> Result<Self, String> {
        let (name, micros) = match text.split_once(':') {
            Some((name, us)) => {
                let us: u64 = us
                    .parse()
                    .map_err(|_| format!("`{us}` in `{text}` is not a whole number of µs"))?;
                (name, Some(Duration::from_micros(us)))
            }
            None => (text, None),
        };
        match (name, micros) {
            ("poll", window) => Ok(DispatchTimer::Poll {
                window: window.unwrap_or(SPIN_WINDOW),
            }),
            ("thread", spin) => Ok(DispatchTimer::Thread {
                spin: spin.unwrap_or(Duration::ZERO),
            }),
            ("timerfd", poll) => Ok(DispatchTimer::TimerFd { poll }),
            _ => Err(format!(
                "unknown dispatch timer `{text}`: expected poll[:µs], thread[:µs] or timerfd"
            )),
        }
    }
}

/// One dispatcher's timer, created when its run starts.
pub(crate) struct DeadlineTimer {
    kind: Kind,
}

// One per dispatcher, held across its whole run: the budget's lateness
// histogram inline costs nothing that boxing it would save.
#[allow(clippy::large_enum_variant)]
enum Kind {
    Poll(Duration),
    Thread(Sleeper),
    #[cfg(target_os = "linux")]
    TimerFd(timerfd::TimerFd, Budget),
}

impl DeadlineTimer {
    /// The timer `choice` asks for, or the closest one this process can
    /// have (the reason is logged once).
    pub(crate) fn new(choice: DispatchTimer) -> Self {
        let kind = match choice {
            DispatchTimer::Poll { window } => Kind::Poll(window),
            DispatchTimer::Thread { spin } => Kind::Thread(Sleeper::start(spin)),
            DispatchTimer::TimerFd { poll } => timer_fd_or_thread(poll),
        };
        DeadlineTimer { kind }
    }

    /// Waits until the run timestamp `deadline_ns` and returns the time it
    /// woke (never before the deadline).
    pub(crate) async fn wait(&mut self, clock: &RunClock, deadline_ns: u64) -> u64 {
        let now = clock.now_ns();
        if now >= deadline_ns {
            return now;
        }
        match &mut self.kind {
            Kind::Poll(window) => return clock.sleep_until_with(deadline_ns, *window).await,
            Kind::Thread(sleeper) => {
                let at = Instant::now() + Duration::from_nanos(deadline_ns - now);
                precise_or_wheel(clock, deadline_ns, sleeper.wake_at(at)).await;
            }
            #[cfg(target_os = "linux")]
            Kind::TimerFd(fd, budget) => {
                let poll_ns = budget.get();
                if deadline_ns - now > poll_ns {
                    let wake_ns = deadline_ns - poll_ns;
                    let precise = fd.wake_after(Duration::from_nanos(wake_ns - now));
                    precise_or_wheel(clock, wake_ns, precise).await;
                    budget.woke(clock.now_ns().saturating_sub(wake_ns));
                } else {
                    budget.polled_through();
                }
                if poll_ns > 0 {
                    let window = Duration::from_nanos(poll_ns);
                    return clock.sleep_until_with(deadline_ns, window).await;
                }
            }
        }
        clock.now_ns()
    }
}

#[cfg(target_os = "linux")]
fn timer_fd_or_thread(poll: Option<Duration>) -> Kind {
    match timerfd::TimerFd::new() {
        Ok(fd) => Kind::TimerFd(fd, Budget::new(poll)),
        Err(err) => {
            tracing::warn!(error = %err, "no timerfd for the dispatcher; using a sleeper thread");
            Kind::Thread(Sleeper::start(poll.unwrap_or(Duration::ZERO)))
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn timer_fd_or_thread(poll: Option<Duration>) -> Kind {
    Kind::Thread(Sleeper::start(poll.unwrap_or(Duration::ZERO)))
}

/// The busy-poll budget before each deadline: fixed, or adaptive.
///
/// The adaptive budget tracks how late this machine's timer wakes are and
/// polls through that much before each deadline, so the wake's lateness
/// lands inside the poll and not in the send. On bare metal a wake is
/// microseconds late and the dispatcher almost never polls; in a virtual
/// machine, a vCPU that halted between arrivals waits for the host to run
/// it again (tens of µs, and milliseconds when the host is busy), and the
/// budget grows to cover it, up to [`MAX_ADAPTIVE_POLL`].
///
/// It covers a high quantile of the recent lateness ([`COVERED`]), not its
/// maximum. A rare wake milliseconds late (the host's doing) lands in the
/// sends' p99.9 whatever the budget; covering it would mean polling through
/// every gap, the whole core at a few thousand arrivals a second (the first
/// adaptive design did, BENCHMARKS.md has both). The lateness goes into a
/// small histogram whose counts halve every [`DECAY_EVERY`] arrivals, so the
/// budget follows the host as it quietens or gets busy; a wake later than
/// the budget recomputes it at once.
#[cfg(target_os = "linux")]
#[derive(Debug)]
pub(crate) struct Budget {
    /// The fixed budget, ns; `None` when adaptive.
    fixed: Option<u64>,
    /// The recent wake lateness.
    lateness: Lateness,
    /// The adaptive budget, ns, recomputed from `lateness`.
    adaptive_ns: u64,
}

/// The adaptive budget's ceiling: beyond a millisecond of polling per
/// arrival, polling costs more than the precision it buys.
pub const MAX_ADAPTIVE_POLL: Duration = Duration::from_millis(1);

/// The adaptive budget's floor: the dispatcher's own work between waking
/// and the send, which a wake exactly on time still needs.
#[cfg(target_os = "linux")]
const MIN_ADAPTIVE_POLL_NS: u64 = 20_000;

/// The share of recent wakes whose lateness the adaptive budget covers, in
/// parts per thousand: 995 leaves 0.5% of sends to land late, so that the
/// sends' p99 falls among the covered ones.
#[cfg(target_os = "linux")]
const COVERED: u32 = 995;

/// Arrivals between halvings of the lateness counts (about the last
/// 1,000 wakes weigh).
#[cfg(target_os = "linux")]
const DECAY_EVERY: u32 = 512;

/// Arrivals between recomputations of the budget when no wake overran it.
#[cfg(target_os = "linux")]
const RECOMPUTE_EVERY: u32 = 64;

#[cfg(target_os = "linux")]
impl Budget {
    fn new(fixed: Option<Duration>) -> Self {
        Budget {
            fixed: fixed.map(duration_ns),
            lateness: Lateness::default(),
            adaptive_ns: MIN_ADAPTIVE_POLL_NS,
        }
    }

    /// The budget for the next deadline, ns.
    fn get(&self) -> u64 {
        self.fixed.unwrap_or(self.adaptive_ns)
    }

    /// A timer wake that came `late_ns` after it was asked for.
    fn woke(&mut self, late_ns: u64) {
        self.lateness.record(late_ns);
        let overran = late_ns + MIN_ADAPTIVE_POLL_NS > self.adaptive_ns;
        self.arrival(overran);
    }

    /// An arrival that needed no timer (its deadline was within the
    /// budget): it still ages the counts, so a budget that grew past the
    /// gaps between arrivals (and so stopped being measured) shrinks back
    /// and is measured again.
    fn polled_through(&mut self) {
        self.arrival(false);
    }

    fn arrival(&mut self, recompute: bool) {
        let aged = self.lateness.age();
        if recompute || aged || self.lateness.arrivals.is_multiple_of(RECOMPUTE_EVERY) {
            let covered = self.lateness.quantile_ns(COVERED);
            self.adaptive_ns = (covered + MIN_ADAPTIVE_POLL_NS).min(duration_ns(MAX_ADAPTIVE_POLL));
        }
    }
}

/// Wake lateness in buckets four to an octave (each bound 19% above the
/// last) from 1 µs to the ceiling, with decaying counts.
#[cfg(target_os = "linux")]
#[derive(Debug)]
struct Lateness {
    counts: [u32; LATENESS_BUCKETS],
    total: u32,
    /// Arrivals since the last halving.
    arrivals: u32,
}

/// Bucket 0 is under 1 µs; bucket `b` ≥ 1 holds lateness from
/// [`lateness_bound_ns`]`(b - 1)` to `lateness_bound_ns(b)`; the last
/// holds everything from the ceiling up.
#[cfg(target_os = "linux")]
const LATENESS_BUCKETS: usize = 42;

/// The upper bound of bucket `b`, ns: 1 µs × 2^(b/4), rounded.
#[cfg(target_os = "linux")]
fn lateness_bound_ns(bucket: usize) -> u64 {
    // 1 µs × 2^(k/4) for k = 0..3, in ns.
    const STEPS: [u64; 4] = [1000, 1189, 1414, 1682];
    STEPS[bucket % 4] << (bucket / 4)
}

#[cfg(target_os = "linux")]
impl Default for Lateness {
    fn default() -> Self {
        Lateness {
            counts: [0; LATENESS_BUCKETS],
            total: 0,
            arrivals: 0,
        }
    }
}

#[cfg(target_os = "linux")]
impl Lateness {
    fn bucket(late_ns: u64) -> usize {
        (0..LATENESS_BUCKETS - 1)
            .find(|&b| late_ns < lateness_bound_ns(b))
            .unwrap_or(LATENESS_BUCKETS - 1)
    }

    fn record(&mut self, late_ns: u64) {
        self.counts[Self::bucket(late_ns)] += 1;
        self.total += 1;
    }

    /// Counts one arrival; halves the counts every [`DECAY_EVERY`]
    /// arrivals, and says whether it did.
    fn age(&mut self) -> bool {
        self.arrivals += 1;
        if self.arrivals < DECAY_EVERY {
            return false;
        }
        self.arrivals = 0;
        self.total = 0;
        for count in &mut self.counts {
            *count /= 2;
            self.total += *count;
        }
        true
    }

    /// The upper bound of the bucket holding the `per_mille` quantile, ns;
    /// 0 with no counts (or when that quantile is under 1 µs).
    fn quantile_ns(&self, per_mille: u32) -> u64 {
        // The smallest bucket with at least per_mille/1000 of the counts at
        // or below it: more than (1000 - per_mille)/1000 above it would not do.
        let allowed_above = u64::from(self.total) * u64::from(1000 - per_mille) / 1000;
        let mut above = 0u64;
        for bucket in (0..LATENESS_BUCKETS).rev() {
            above += u64::from(self.counts[bucket]);
            if above > allowed_above {
                return match bucket {
                    0 => 0,
                    b => lateness_bound_ns(b),
                };
            }
        }
        0
    }
}

/// Waits for the precise wake or the timer wheel, whichever comes first
/// with the run clock at or past the deadline (see the module docs).
async fn precise_or_wheel(clock: &RunClock, deadline_ns: u64, precise: impl Future<Output = ()>) {
    let wheel = clock.sleep_coarse_until(deadline_ns);
    tokio::pin!(wheel, precise);
    let mut precise_pending = true;
    loop {
        tokio::select! {
            biased;
            () = &mut precise, if precise_pending => {
                if clock.now_ns() >= deadline_ns {
                    return;
                }
                // Early by the run clock: it is paused, and the wheel decides.
                precise_pending = false;
            }
            () = &mut wheel => return,
        }
    }
}

/// The sleeper thread's handle: each wait sends the thread its deadline and
/// a one-shot to fire; dropping the handle ends the thread.
struct Sleeper {
    requests: mpsc::Sender<(Instant, oneshot::Sender<()>)>,
}

impl Sleeper {
    fn start(spin: Duration) -> Self {
        let (requests, inbox) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("quarry-dispatch-timer".into())
            .spawn(move || sleeper_thread(&inbox, spin));
        if let Err(err) = spawned {
            // Without its thread every wait falls through to the wheel:
            // late by up to a millisecond, but never early or stuck.
            tracing::warn!(error = %err, "no dispatcher timer thread; using tokio's timer");
        }
        Sleeper { requests }
    }

    /// Fires when the thread has seen `at` pass (or never, if the thread
    /// is gone: the wheel then decides).
    fn wake_at(&self, at: Instant) -> impl Future<Output = ()> + use<> {
        let (fire, fired) = oneshot::channel();
        let sent = self.requests.send((at, fire)).is_ok();
        async move {
            if sent && fired.await.is_ok() {
                return;
            }
            std::future::pending::<()>().await;
        }
    }
}

/// The sleeper thread: one deadline at a time (the dispatcher waits on one
/// arrival at a time, so a newer request supersedes an older one).
fn sleeper_thread(inbox: &mpsc::Receiver<(Instant, oneshot::Sender<()>)>, spin: Duration) {
    #[cfg(target_os = "linux")]
    {
        // futex timeouts are padded by the thread's timer slack (50 µs by
        // default); 1 ns makes a park end when asked.
        let _ = rustix::thread::set_current_timer_slack(std::num::NonZeroU64::new(1));
    }
    let mut pending = None;
    loop {
        let (at, fire): (Instant, oneshot::Sender<()>) = match pending.take() {
            Some(request) => request,
            None => match inbox.recv() {
                Ok(request) => request,
                Err(_) => return,
            },
        };
        if fire.is_closed() {
            continue;
        }
        let now = Instant::now();
        if let Some(park) = at
            .checked_sub(spin)
            .and_then(|p| p.checked_duration_since(now))
            && !park.is_zero()
        {
            match inbox.recv_timeout(park) {
                Ok(newer) => pending = Some(newer),
                Err(mpsc::RecvTimeoutError::Timeout) => pending = Some((at, fire)),
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
            continue;
        }
        while Instant::now() < at {
            std::hint::spin_loop();
        }
        let _ = fire.send(());
    }
}

#[cfg(target_os = "linux")]
mod timerfd {
    //! A `timerfd` registered with the runtime's reactor.

    use std::io;
    use std::os::fd::OwnedFd;
    use std::time::Duration;

    use rustix::time::{
        Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec, timerfd_create,
        timerfd_settime,
    };
    use tokio::io::unix::AsyncFd;

    /// A monotonic, non-blocking timerfd on the current runtime's reactor.
    pub(super) struct TimerFd {
        fd: AsyncFd<OwnedFd>,
    }

    impl TimerFd {
        /// Creates the timer; fails outside a runtime with I/O enabled.
        pub(super) fn new() -> io::Result<Self> {
            let fd = timerfd_create(
                TimerfdClockId::Monotonic,
                TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
            )?;
            // `AsyncFd::new` is deprecated because an arbitrary `AsRawFd`
            // may hand back a different or closed descriptor later; an
            // `OwnedFd` owns its one descriptor until dropped, which is the
            // contract the (unsafe, and this workspace forbids `unsafe`)
            // `AsyncFd::register` asks the caller to uphold.
            #[allow(deprecated)]
            let fd = AsyncFd::new(fd)?;
            Ok(TimerFd { fd })
        }

        /// Arms the timer `after` from now (re-arming clears any earlier
        /// expiry) and waits for it to expire. Never completes if the
        /// kernel refuses (the wheel then decides).
        pub(super) async fn wake_after(&mut self, after: Duration) {
            let spec = Itimerspec {
                it_interval: Timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                },
                it_value: timespec(after.max(Duration::from_nanos(1))),
            };
            if let Err(err) = timerfd_settime(self.fd.get_ref(), TimerfdTimerFlags::empty(), &spec)
            {
                tracing::warn!(error = %err, "arming the dispatcher's timerfd failed");
                return std::future::pending().await;
            }
            let mut expirations = [0u8; 8];
            loop {
                let Ok(mut ready) = self.fd.readable().await else {
                    return std::future::pending().await;
                };
                match ready.try_io(|fd| Ok(rustix::io::read(fd.get_ref(), &mut expirations[..])?)) {
                    Ok(Ok(_)) => return,
                    Ok(Err(err)) => {
                        tracing::warn!(error = %err, "reading the dispatcher's timerfd failed");
                        return std::future::pending().await;
                    }
                    // Not expired yet (readiness was stale): wait again.
                    Err(_would_block) => {}
                }
            }
        }
    }

    fn timespec(d: Duration) -> Timespec {
        Timespec {
            tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(d.subsec_nanos()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    #[test]
    fn names_parse_and_bad_ones_say_what_is_expected() {
        assert_eq!(
            DispatchTimer::parse("timerfd"),
            Ok(DispatchTimer::default())
        );
        assert_eq!(
            DispatchTimer::parse("timerfd:0"),
            Ok(DispatchTimer::TimerFd {
                poll: Some(Duration::ZERO)
            })
        );
        assert_eq!(DispatchTimer::parse("poll"), Ok(DispatchTimer::POLL));
        assert_eq!(
            DispatchTimer::parse("poll:250"),
            Ok(DispatchTimer::Poll {
                window: Duration::from_micros(250)
            })
        );
        assert_eq!(
            DispatchTimer::parse("thread:20"),
            Ok(DispatchTimer::Thread {
                spin: Duration::from_micros(20)
            })
        );
        let err = DispatchTimer::parse("thread:x").unwrap_err();
        assert!(err.contains("`x`"), "{err}");
        let err = DispatchTimer::parse("hrtimer").unwrap_err();
        assert!(err.contains("poll[:µs], thread[:µs] or timerfd"), "{err}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn lateness_buckets_are_four_to_an_octave_and_cover_their_values() {
        assert_eq!(lateness_bound_ns(0), 1_000);
        assert_eq!(lateness_bound_ns(4), 2_000);
        assert_eq!(lateness_bound_ns(40), 1_024_000);
        for late in [
            0,
            999,
            1_000,
            1_188,
            1_189,
            65_000,
            1_023_999,
            1_024_000,
            u64::MAX,
        ] {
            let b = Lateness::bucket(late);
            if b < LATENESS_BUCKETS - 1 {
                assert!(late < lateness_bound_ns(b), "{late} in {b}");
            }
            if b > 0 {
                assert!(late >= lateness_bound_ns(b - 1), "{late} in {b}");
            }
        }
        assert_eq!(Lateness::bucket(u64::MAX), LATENESS_BUCKETS - 1);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_adaptive_budget_covers_the_lateness_quantile_not_the_outliers() {
        let mut budget = Budget::new(None);
        assert_eq!(budget.get(), MIN_ADAPTIVE_POLL_NS);
        // One late wake, with nothing else known, is covered at once.
        budget.woke(300_000);
        let covered = lateness_bound_ns(Lateness::bucket(300_000));
        assert_eq!(budget.get(), covered + MIN_ADAPTIVE_POLL_NS);
        // 2,000 wakes 30 µs late with one in 400 at 5 ms: the outliers
        // (0.25%) are past the covered 99.5% and the budget covers the 30 µs.
        let mut budget = Budget::new(None);
        for i in 0..2_000 {
            budget.woke(if i % 400 == 399 { 5_000_000 } else { 30_000 });
        }
        let covered = lateness_bound_ns(Lateness::bucket(30_000));
        assert!((30_000..36_000).contains(&covered), "{covered}");
        assert_eq!(budget.get(), covered + MIN_ADAPTIVE_POLL_NS);
        // 2% of wakes that late are not outliers: covered, up to the ceiling.
        for i in 0..2_000 {
            budget.woke(if i % 50 == 49 { 5_000_000 } else { 30_000 });
        }
        assert_eq!(budget.get(), duration_ns(MAX_ADAPTIVE_POLL));
        // Arrivals that needed no timer age the counts: the budget shrinks
        // back to the floor and the timer is measured again.
        for _ in 0..DECAY_EVERY * 16 {
            budget.polled_through();
        }
        assert_eq!(budget.get(), MIN_ADAPTIVE_POLL_NS);
        let fixed = Budget::new(Some(Duration::from_micros(50)));
        assert_eq!(fixed.get(), 50_000);
    }

    /// Every timer lands on sub-millisecond deadlines exactly under the
    /// paused clock: the wheel decides, and a precise wake in real time
    /// (which the paused clock calls early) is ignored.
    #[tokio::test(start_paused = true)]
    async fn every_timer_lands_exactly_on_paused_deadlines() {
        for choice in [
            DispatchTimer::POLL,
            DispatchTimer::Thread {
                spin: Duration::from_micros(5),
            },
            DispatchTimer::default(),
            DispatchTimer::TimerFd {
                poll: Some(Duration::ZERO),
            },
        ] {
            let clock = RunClock::start(UNIX_EPOCH);
            let mut timer = DeadlineTimer::new(choice);
            for deadline in [2_000_000, 2_000_000, 7_000_000, 1_500_000_000] {
                let woke = timer.wait(&clock, deadline).await;
                assert_eq!(woke, deadline, "{choice:?}");
            }
        }
    }

    /// In real time no timer wakes early, and a deadline already passed
    /// returns at once.
    #[test]
    fn real_time_deadlines_are_never_early() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            for choice in [
                DispatchTimer::POLL,
                DispatchTimer::Thread {
                    spin: Duration::from_micros(20),
                },
                DispatchTimer::Thread {
                    spin: Duration::ZERO,
                },
                DispatchTimer::default(),
                DispatchTimer::TimerFd {
                    poll: Some(Duration::ZERO),
                },
            ] {
                let clock = RunClock::start(UNIX_EPOCH);
                let mut timer = DeadlineTimer::new(choice);
                for step in 1..=5 {
                    let deadline = clock.now_ns() + step * 300_000;
                    let woke = timer.wait(&clock, deadline).await;
                    // Only "not early" is asserted: how late depends on the machine.
                    assert!(woke >= deadline, "{choice:?}: woke {woke} < {deadline}");
                }
                let passed = clock.now_ns();
                assert!(timer.wait(&clock, passed).await >= passed);
            }
        });
    }
}
