//! Readings of a process from `/proc`: CPU time, resident memory, the CPUs it
//! may run on and its open-file limit. Linux only, like the figures they feed.

use std::path::PathBuf;

/// `/proc` reports CPU times in USER_HZ ticks, which the kernel ABI fixes at
/// 100 (10 ms per tick) on every architecture Quarry ships for.
const NS_PER_TICK: u64 = 10_000_000;

/// Which process to read.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Proc {
    /// This process (the agent side of the harness).
    Me,
    /// Another process by id (the simulator).
    Pid(u32),
}

impl Proc {
    fn file(self, name: &str) -> PathBuf {
        match self {
            Proc::Me => PathBuf::from(format!("/proc/self/{name}")),
            Proc::Pid(pid) => PathBuf::from(format!("/proc/{pid}/{name}")),
        }
    }

    /// User + system CPU time of every thread, in ns (10 ms resolution).
    pub(crate) fn cpu_ns(self) -> Option<u64> {
        let stat = std::fs::read_to_string(self.file("stat")).ok()?;
        quarry_engine::cpu_ticks(&stat).map(|t| t * NS_PER_TICK)
    }

    /// Resident set size in bytes (`VmRSS`).
    pub(crate) fn rss_bytes(self) -> Option<u64> {
        status_field(self, "VmRSS:")?
            .split_ascii_whitespace()
            .next()?
            .parse::<u64>()
            .ok()
            .map(|kib| kib * 1024)
    }

    /// The CPUs the scheduler may run it on (`Cpus_allowed_list`, e.g. `0`).
    pub(crate) fn cpus_allowed(self) -> Option<String> {
        status_field(self, "Cpus_allowed_list:").map(|v| v.trim().to_owned())
    }
}

fn status_field(proc: Proc, name: &str) -> Option<String> {
    let status = std::fs::read_to_string(proc.file("status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(name).map(str::to_owned))
}

/// The soft limit on open files of this process, from `/proc/self/limits`.
pub(crate) fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line["Max open files".len()..]
        .split_ascii_whitespace()
        .next()?;
    // "unlimited" parses as None, which callers treat as no constraint.
    soft.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        if !std::path::Path::new("/proc/self/stat").exists() {
            return;
        }
        assert!(Proc::Me.cpu_ns().is_some());
        assert!(Proc::Me.rss_bytes().unwrap() > 0);
        assert!(!Proc::Me.cpus_allowed().unwrap().is_empty());
    }
}
