//! The load generator's own health: its CPU use, how late it sends, how long
//! requests wait for connections, how long a ready task waits for the
//! runtime, and how many are in flight. A run whose schedule lag, CPU,
//! connection-pool waits or runtime delay pass their bounds
//! ([`HealthPolicy`]) is flagged as a saturated load generator: its
//! latencies then describe the agent, not the service.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::clock::duration_ns;

/// Requests in flight right now, readable from anywhere at any time.
#[derive(Debug, Clone, Default)]
pub struct InFlightGauge(Arc<AtomicU64>);

impl InFlightGauge {
    /// A gauge at zero.
    pub fn new() -> Self {
        InFlightGauge::default()
    }

    /// Requests in flight now.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    /// Counts one request in flight until the returned unit is dropped.
    pub(crate) fn hold(&self) -> InFlightUnit {
        self.0.fetch_add(1, Ordering::AcqRel);
        InFlightUnit(Arc::clone(&self.0))
    }
}

/// One request counted in an [`InFlightGauge`]; uncounted on drop, so an
/// aborted request task can never leave the gauge high.
#[derive(Debug)]
pub(crate) struct InFlightUnit(Arc<AtomicU64>);

impl Drop for InFlightUnit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// When a run counts as limited by its own load generator. Each interval is
/// judged on four signs, in both load models (a closed loop has no
/// schedule lag, so lag alone would never flag it):
///
/// - schedule lag: the open loop sent late (p99 over the bound);
/// - CPU: the process used more than `max_cpu_share` of the cores it may
///   run on (a busy generator delays its own socket reads, which inflates
///   every latency it stamps; with the embedded simulator the process is
///   the simulator too, and then the machine is what is measured), not
///   counting the time the open-loop dispatcher polled the clock with
///   nothing else to run ([`ProcessCpu::idle_poll_percent`]): that time
///   was the requests' for the taking. The figure the interval reports,
///   [`HealthSample::cpu_percent`], is the process's whole CPU;
/// - pool waits: requests waited for a pooled connection (p99 over the
///   bound), so the generator, not the service, held them back;
/// - runtime delay: a task that became ready waited for the runtime to poll
///   it (the runtime probe's p95 over the bound: the probe samples 100
///   times a second, and a p95 rests on five samples where a p99 rests on
///   one or two). A response's bytes wait the same way between the socket
///   and the read that stamps them, so this is the generator's own error in
///   every latency it measures; and it shows a core shared with a busy
///   neighbour, where the process's own CPU share stays low.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthPolicy {
    /// An interval whose schedule-lag p99 exceeds this is saturated.
    pub max_schedule_lag_p99: Duration,
    /// An interval whose connection-pool-wait p99 exceeds this is saturated.
    pub max_pool_wait_p99: Duration,
    /// An interval whose runtime-delay p95 exceeds this is saturated.
    pub max_runtime_delay_p95: Duration,
    /// An interval whose process CPU exceeds this share of `cores` (0.9 of
    /// 2 cores: 180% of one core) is saturated.
    pub max_cpu_share: f64,
    /// The cores this process may run on (`available_parallelism`, which
    /// honours affinity and cgroup quotas).
    pub cores: u32,
}

impl Default for HealthPolicy {
    /// Lag, pool wait and runtime delay 10 ms (ten timer ticks, far beyond
    /// what a healthy dispatcher, an unexhausted pool or an unhurried
    /// runtime shows); CPU 90% of the cores.
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        HealthPolicy {
            max_schedule_lag_p99: Duration::from_millis(10),
            max_pool_wait_p99: Duration::from_millis(10),
            max_runtime_delay_p95: DEFAULT_MAX_RUNTIME_DELAY_P95,
            max_cpu_share: DEFAULT_MAX_CPU_SHARE,
            cores: u32::try_from(cores).unwrap_or(u32::MAX),
        }
    }
}

/// The default [`HealthPolicy::max_cpu_share`].
pub const DEFAULT_MAX_CPU_SHARE: f64 = 0.9;

/// The default [`HealthPolicy::max_runtime_delay_p95`]: 10 ms, the lag and
/// pool-wait bound. An agent with its core to itself measured p95s of 0.3 to
/// 4.0 ms an interval, one sharing it with a busy loop 15.9 ms at the median
/// (BENCHMARKS.md "Scale of one agent").
pub const DEFAULT_MAX_RUNTIME_DELAY_P95: Duration = Duration::from_millis(10);

impl HealthPolicy {
    /// The CPU bound in percent of one core (the unit of
    /// [`HealthSample::cpu_percent`]).
    pub fn max_cpu_percent(&self) -> f64 {
        self.max_cpu_share * f64::from(self.cores.max(1)) * 100.0
    }

    /// Which signs of an interval's figures say the agent could not keep
    /// up (its `saturated` and `saturation` are not read).
    pub fn judge(&self, h: &HealthSample) -> Saturation {
        Saturation {
            schedule_lag: h.schedule_lag_p99_ns > duration_ns(self.max_schedule_lag_p99),
            cpu: h.cpu_percent.is_some_and(|c| c > self.max_cpu_percent()),
            pool_wait: h.pool_wait_p99_ns > duration_ns(self.max_pool_wait_p99),
            runtime_delay: h.runtime_delay_p95_ns > duration_ns(self.max_runtime_delay_p95),
        }
    }
}

/// Why an interval counts as saturated: each sign that passed its bound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Saturation {
    /// The schedule-lag p99 passed its bound (open loop).
    pub schedule_lag: bool,
    /// The process CPU passed its share of the cores.
    pub cpu: bool,
    /// The connection-pool-wait p99 passed its bound.
    pub pool_wait: bool,
    /// The runtime-delay p95 passed its bound.
    pub runtime_delay: bool,
}

impl Saturation {
    /// Any sign passed.
    pub fn any(self) -> bool {
        self.schedule_lag || self.cpu || self.pool_wait || self.runtime_delay
    }

    /// Either's signs.
    pub fn union(self, other: Saturation) -> Saturation {
        Saturation {
            schedule_lag: self.schedule_lag || other.schedule_lag,
            cpu: self.cpu || other.cpu,
            pool_wait: self.pool_wait || other.pool_wait,
            runtime_delay: self.runtime_delay || other.runtime_delay,
        }
    }

    /// As wire bits: 1 schedule lag, 2 CPU, 4 pool wait, 8 runtime delay.
    pub fn bits(self) -> u32 {
        u32::from(self.schedule_lag)
            | (u32::from(self.cpu) << 1)
            | (u32::from(self.pool_wait) << 2)
            | (u32::from(self.runtime_delay) << 3)
    }

    /// From wire bits (unknown bits ignored).
    pub fn from_bits(bits: u32) -> Saturation {
        Saturation {
            schedule_lag: bits & 1 != 0,
            cpu: bits & 2 != 0,
            pool_wait: bits & 4 != 0,
            runtime_delay: bits & 8 != 0,
        }
    }
}

/// The agent's health over one interval.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HealthSample {
    /// Process CPU over the interval, percent of one core (200 = two cores
    /// busy); `None` where `/proc/self/stat` is unavailable.
    pub cpu_percent: Option<f64>,
    /// Requests in flight at the interval's end.
    pub in_flight: u64,
    /// p99 of sent_at − intended_at over the interval (0 in closed loop).
    pub schedule_lag_p99_ns: u64,
    /// p99 of the time requests waited for a pooled connection.
    pub pool_wait_p99_ns: u64,
    /// p95 of the runtime probe's delays: how long a task that became ready
    /// waited before the runtime polled it (0 from an agent without the
    /// probe).
    pub runtime_delay_p95_ns: u64,
    /// Some sign passed the policy's bound (`saturation.any()`).
    pub saturated: bool,
    /// Which signs passed (an older agent says only `saturated`, which was
    /// its schedule lag).
    pub saturation: Saturation,
}

impl HealthSample {
    /// Combines two agents' samples for the same interval. CPU and lag are
    /// per-agent figures, so the worst one is kept (a bound, not an average
    /// of percentiles); in-flight counts add up.
    pub fn merge(&mut self, other: &HealthSample) {
        self.cpu_percent = match (self.cpu_percent, other.cpu_percent) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.in_flight += other.in_flight;
        self.schedule_lag_p99_ns = self.schedule_lag_p99_ns.max(other.schedule_lag_p99_ns);
        self.pool_wait_p99_ns = self.pool_wait_p99_ns.max(other.pool_wait_p99_ns);
        self.runtime_delay_p95_ns = self.runtime_delay_p95_ns.max(other.runtime_delay_p95_ns);
        self.saturated |= other.saturated;
        self.saturation = self.saturation.union(other.saturation);
    }
}

/// Linux reports `/proc` CPU times in USER_HZ ticks, which the kernel ABI
/// fixes at 100 on every architecture Quarry ships for (reading
/// `sysconf(_SC_CLK_TCK)` would need `unsafe` libc).
const USER_HZ: u64 = 100;

/// The shortest window a CPU figure is given over. CPU time comes in whole
/// ticks (10 ms), so over a shorter window one tick more or less is already
/// 10% of a core or more: a 3 ms drain interval at a run's end read as
/// "199%" and flagged a healthy generator as saturated.
pub(crate) const MIN_CPU_WINDOW: Duration = Duration::from_millis(100);

/// Process CPU use from successive `/proc/self/stat` readings, and the
/// share of it the deadline polling spent with nothing else to run.
#[derive(Debug, Default)]
pub struct ProcessCpu {
    /// The (cpu ticks, idle polling ns, run-clock ns) reading the next
    /// figure counts from.
    last: Option<(u64, u64, u64)>,
    /// The idle polling over the last figure's window, percent of one core.
    idle_poll_percent: f64,
}

impl ProcessCpu {
    /// A sampler with no reading yet.
    pub fn new() -> Self {
        ProcessCpu::default()
    }

    /// CPU percent since the previous figure (`None` on the first call,
    /// where `/proc` is missing, or when less than 100 ms has passed, too
    /// short to resolve in 10 ms ticks: that time then counts into the next
    /// figure). `now_ns` is the
    /// run clock's time.
    pub fn sample(&mut self, now_ns: u64) -> Option<f64> {
        // A /proc read is served from kernel memory in microseconds; doing it
        // once per interval on the ticker is cheaper than a blocking-pool hop.
        let text = std::fs::read_to_string("/proc/self/stat").ok()?;
        let ticks = cpu_ticks(&text)?;
        self.observe(ticks, crate::clock::idle_poll_ns(), now_ns)
    }

    /// The open-loop deadline polling's idle time over the window of the
    /// last figure [`ProcessCpu::sample`] gave, percent of one core: CPU the
    /// process used that any request would have had at once (0 before the
    /// first figure).
    pub fn idle_poll_percent(&self) -> f64 {
        self.idle_poll_percent
    }

    fn observe(&mut self, ticks: u64, idle_ns: u64, now_ns: u64) -> Option<f64> {
        let Some((last_ticks, last_idle_ns, last_ns)) = self.last else {
            self.last = Some((ticks, idle_ns, now_ns));
            return None;
        };
        let wall_ns = now_ns.saturating_sub(last_ns);
        if wall_ns < duration_ns(MIN_CPU_WINDOW) {
            // Too short to resolve in ticks: keep the older reading.
            return None;
        }
        self.last = Some((ticks, idle_ns, now_ns));
        let cpu_ns = ticks.saturating_sub(last_ticks) as f64 * (1e9 / USER_HZ as f64);
        let idle_ns = idle_ns.saturating_sub(last_idle_ns) as f64;
        self.idle_poll_percent = 100.0 * idle_ns / wall_ns as f64;
        Some(100.0 * cpu_ns / wall_ns as f64)
    }
}

/// utime + stime (fields 14 and 15) from a `/proc/<pid>/stat` line. The
/// command name (field 2) is parenthesised and may hold spaces or `)`, so
/// fields are counted after its last `)`.
pub fn cpu_ticks(stat: &str) -> Option<u64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    // After the name: field 3 (state) is index 0, so 14 and 15 are 11 and 12.
    let mut fields = after_comm.split_ascii_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An interval's figures, to be judged.
    fn figures(lag: u64, pool: u64, delay: u64, cpu: Option<f64>) -> HealthSample {
        HealthSample {
            cpu_percent: cpu,
            schedule_lag_p99_ns: lag,
            pool_wait_p99_ns: pool,
            runtime_delay_p95_ns: delay,
            ..HealthSample::default()
        }
    }

    #[test]
    fn parses_stat_with_awkward_command_names() {
        let line = "4242 (quarry agent) x) S 1 4242 4242 0 -1 4194560 1200 0 0 0 731 269 0 0 20 0 9 0 1234 0 0";
        assert_eq!(cpu_ticks(line), Some(1000));
        assert_eq!(cpu_ticks("no parens here"), None);
        assert_eq!(cpu_ticks("1 (x) S 1 2"), None);
    }

    #[test]
    fn cpu_percent_from_tick_deltas() {
        let mut cpu = ProcessCpu::new();
        assert_eq!(cpu.observe(1_000, 0, 0), None);
        // 150 ticks = 1.5 s of CPU over 1 s of wall time: 150 %, of which
        // 0.6 s polled the clock idle: 60 %.
        assert_eq!(cpu.observe(1_150, 600_000_000, 1_000_000_000), Some(150.0));
        assert_eq!(cpu.idle_poll_percent(), 60.0);
        assert_eq!(cpu.observe(1_150, 600_000_000, 1_000_000_000), None);
        assert_eq!(cpu.observe(1_250, 600_000_000, 2_000_000_000), Some(100.0));
        assert_eq!(cpu.idle_poll_percent(), 0.0);
    }

    /// A window too short to resolve in 10 ms ticks gets no figure (one tick
    /// over 5 ms would read 200%), and its time counts into the next one.
    #[test]
    fn a_window_shorter_than_ticks_resolve_is_not_judged() {
        let mut cpu = ProcessCpu::new();
        assert_eq!(cpu.observe(1_000, 0, 0), None);
        assert_eq!(cpu.observe(1_010, 0, 500_000_000), Some(20.0));
        assert_eq!(cpu.observe(1_011, 0, 505_000_000), None, "5 ms, 1 tick");
        // The next figure spans both: 2 ticks (20 ms) over 500 ms.
        assert_eq!(cpu.observe(1_012, 0, 1_000_000_000), Some(4.0));
        let policy = HealthPolicy {
            cores: 2,
            ..HealthPolicy::default()
        };
        assert!(!policy.judge(&figures(0, 0, 0, None)).any());
    }

    #[test]
    fn reads_own_process_where_proc_exists() {
        let mut cpu = ProcessCpu::new();
        if std::path::Path::new("/proc/self/stat").exists() {
            assert_eq!(cpu.sample(0), None);
            let pct = cpu.sample(1_000_000_000).unwrap();
            assert!(pct >= 0.0);
        }
    }

    #[test]
    fn gauge_units_release_on_drop() {
        let gauge = InFlightGauge::new();
        let a = gauge.hold();
        let b = gauge.hold();
        assert_eq!(gauge.get(), 2);
        drop(a);
        assert_eq!(gauge.get(), 1);
        drop(b);
        assert_eq!(gauge.get(), 0);
    }

    /// The closed loop that used 191% of a core on two cores: no schedule
    /// lag at all, and still saturated, by its CPU; pool waits likewise.
    #[test]
    fn cpu_and_pool_waits_saturate_without_schedule_lag() {
        let policy = HealthPolicy {
            cores: 2,
            ..HealthPolicy::default()
        };
        assert_eq!(policy.max_cpu_percent(), 180.0);
        let cpu = policy.judge(&figures(0, 0, 0, Some(191.0)));
        assert_eq!(
            cpu,
            Saturation {
                cpu: true,
                ..Saturation::default()
            }
        );
        assert!(!policy.judge(&figures(0, 0, 0, Some(103.0))).any());
        assert!(
            !policy.judge(&figures(0, 0, 0, None)).any(),
            "no /proc: no CPU verdict"
        );
        let pool = policy.judge(&figures(0, 10_000_001, 0, Some(50.0)));
        assert!(pool.pool_wait && !pool.cpu && !pool.schedule_lag);
        assert!(!policy.judge(&figures(0, 10_000_000, 0, Some(180.0))).any());
        assert_eq!(Saturation::from_bits(cpu.bits()), cpu);
        assert_eq!(Saturation::from_bits(pool.bits()), pool);
        assert_eq!(Saturation::from_bits(15).bits(), 15);
        assert_eq!(Saturation::from_bits(16), Saturation::default());
    }

    /// The agent that fell behind its sockets on a core shared with a busy
    /// loop, its own process at 49% of the core: below the CPU bound, no
    /// lag, no pool waits, and saturated by its runtime delay.
    #[test]
    fn runtime_delay_saturates_below_the_cpu_bound() {
        let policy = HealthPolicy {
            cores: 1,
            ..HealthPolicy::default()
        };
        let bound = duration_ns(policy.max_runtime_delay_p95);
        let behind = policy.judge(&figures(0, 0, bound + 1, Some(49.0)));
        assert_eq!(
            behind,
            Saturation {
                runtime_delay: true,
                ..Saturation::default()
            }
        );
        assert_eq!(behind.bits(), 8);
        assert_eq!(Saturation::from_bits(8), behind);
        assert!(!policy.judge(&figures(0, 0, bound, Some(49.0))).any());
        let mut merged = figures(0, 0, 1_000, None);
        merged.merge(&figures(0, 0, bound + 1, None));
        assert_eq!(merged.runtime_delay_p95_ns, bound + 1, "the worst agent's");
    }

    #[test]
    fn saturation_threshold_and_merge() {
        let policy = HealthPolicy::default();
        assert!(!policy.judge(&figures(10_000_000, 0, 0, None)).any());
        assert!(policy.judge(&figures(10_000_001, 0, 0, None)).schedule_lag);
        let mut a = HealthSample {
            cpu_percent: Some(40.0),
            in_flight: 3,
            schedule_lag_p99_ns: 5,
            ..Default::default()
        };
        let b = HealthSample {
            cpu_percent: None,
            in_flight: 4,
            schedule_lag_p99_ns: 9,
            pool_wait_p99_ns: 0,
            runtime_delay_p95_ns: 0,
            saturated: true,
            saturation: Saturation {
                cpu: true,
                ..Saturation::default()
            },
        };
        a.merge(&b);
        assert!(a.saturation.cpu && !a.saturation.schedule_lag);
        assert_eq!(a.cpu_percent, Some(40.0));
        assert_eq!(
            (a.in_flight, a.schedule_lag_p99_ns, a.saturated),
            (7, 9, true)
        );
    }
}
