//! The load generator's own health: its CPU use, how late it sends, how long
//! requests wait for connections, and how many are in flight. A run whose own
//! schedule lag passes a threshold is flagged as a saturated load generator:
//! its latencies then describe the agent, not the service.

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

/// When a run counts as limited by its own load generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthPolicy {
    /// An interval whose schedule-lag p99 exceeds this flags the run.
    pub max_schedule_lag_p99: Duration,
}

impl Default for HealthPolicy {
    /// 10 ms: ten timer ticks, far beyond what a healthy dispatcher shows.
    fn default() -> Self {
        HealthPolicy {
            max_schedule_lag_p99: Duration::from_millis(10),
        }
    }
}

impl HealthPolicy {
    /// True when an interval's lag p99 says the agent could not keep up.
    pub fn is_saturated(&self, schedule_lag_p99_ns: u64) -> bool {
        schedule_lag_p99_ns > duration_ns(self.max_schedule_lag_p99)
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
    /// The lag p99 passed the policy's threshold.
    pub saturated: bool,
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
        self.saturated |= other.saturated;
    }
}

/// Linux reports `/proc` CPU times in USER_HZ ticks, which the kernel ABI
/// fixes at 100 on every architecture Quarry ships for (reading
/// `sysconf(_SC_CLK_TCK)` would need `unsafe` libc).
const USER_HZ: u64 = 100;

/// Process CPU use from successive `/proc/self/stat` readings.
#[derive(Debug, Default)]
pub struct ProcessCpu {
    /// The previous (cpu ticks, run-clock ns) reading.
    last: Option<(u64, u64)>,
}

impl ProcessCpu {
    /// A sampler with no reading yet.
    pub fn new() -> Self {
        ProcessCpu::default()
    }

    /// CPU percent since the previous call (`None` on the first call or
    /// where `/proc` is missing). `now_ns` is the run clock's time.
    pub fn sample(&mut self, now_ns: u64) -> Option<f64> {
        // A /proc read is served from kernel memory in microseconds; doing it
        // once per interval on the ticker is cheaper than a blocking-pool hop.
        let text = std::fs::read_to_string("/proc/self/stat").ok()?;
        let ticks = cpu_ticks(&text)?;
        self.observe(ticks, now_ns)
    }

    fn observe(&mut self, ticks: u64, now_ns: u64) -> Option<f64> {
        let previous = self.last.replace((ticks, now_ns));
        let (last_ticks, last_ns) = previous?;
        let wall_ns = now_ns.checked_sub(last_ns).filter(|d| *d > 0)?;
        let cpu_ns = ticks.saturating_sub(last_ticks) as f64 * (1e9 / USER_HZ as f64);
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
        assert_eq!(cpu.observe(1_000, 0), None);
        // 150 ticks = 1.5 s of CPU over 1 s of wall time: 150 %.
        assert_eq!(cpu.observe(1_150, 1_000_000_000), Some(150.0));
        assert_eq!(cpu.observe(1_150, 1_000_000_000), None);
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

    #[test]
    fn saturation_threshold_and_merge() {
        let policy = HealthPolicy::default();
        assert!(!policy.is_saturated(10_000_000));
        assert!(policy.is_saturated(10_000_001));
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
            saturated: true,
            ..Default::default()
        };
        a.merge(&b);
        assert_eq!(a.cpu_percent, Some(40.0));
        assert_eq!(
            (a.in_flight, a.schedule_lag_p99_ns, a.saturated),
            (7, 9, true)
        );
    }
}
