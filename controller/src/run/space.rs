//! The up-front disk-space check: before a run fires, the filesystem of
//! its results directory must have room for what the run will write.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use quarry_engine::{EndCondition, Metric, RunPlan, duration_ns};

/// Bytes allowed for one series in one `intervals.jsonl` line: its key,
/// counters and up to [`Metric::COUNT`] base64 histograms. About three
/// times the largest series measured against the simulator (5.6 KB); an
/// estimate, not a bound (a histogram spread over many buckets is larger).
pub const SERIES_BYTES: u64 = 16 * 1024;
/// Bytes of an interval line besides its series (index, times, health,
/// summary).
pub const INTERVAL_OVERHEAD_BYTES: u64 = 1024;
/// Bytes allowed for one `.hgrm` file.
pub const HGRM_BYTES: u64 = 16 * 1024;
/// Bytes allowed for each of `plan.json`, `run.json`, `report.txt` and
/// `fleet.json`, and for the fixed part of `results.json`.
pub const FIXED_FILE_BYTES: u64 = 64 * 1024;

/// What the estimate is made of, from the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunShape {
    /// Agent groups the series are split by (1 for an in-process run; the
    /// number of agents for a distributed one, at most one group each).
    pub groups: u64,
    /// Distinct (model, operation) pairs of the mix.
    pub pairs: u64,
    /// Stages of the load profile.
    pub stages: u64,
    /// Interval lines the run writes.
    pub intervals: u64,
    /// Bytes of the spec as given (`spec.toml`).
    pub spec_bytes: u64,
}

impl RunShape {
    /// The shape of `plan` run over `groups` groups, with a snapshot every
    /// `interval` and `grace` for in-flight requests after the end.
    ///
    /// Intervals: `(planned duration + grace) / interval + 2` (a partial
    /// first and last). A run that ends after a request count without a
    /// duration has no planned end: its intervals are taken as
    /// `min(that, requests + 2)`, at least one interval per request, which
    /// underestimates a slow run.
    pub fn of(
        plan: &RunPlan,
        groups: usize,
        interval: Duration,
        grace: Duration,
        spec_bytes: usize,
    ) -> Self {
        let stages = plan.load.stages();
        let planned_ns = stages
            .iter()
            .fold(0u64, |sum, s| sum.saturating_add(duration_ns(s.duration)));
        let interval_ns = duration_ns(interval).max(1);
        let mut intervals = planned_ns
            .saturating_add(duration_ns(grace))
            .div_euclid(interval_ns)
            .saturating_add(2);
        if let EndCondition::Requests(n) = plan.load.end() {
            intervals = intervals.min(n.saturating_add(2));
        }
        let pairs: BTreeSet<(&str, &str)> = plan
            .mix
            .entries()
            .iter()
            .map(|e| (e.model_id.as_str(), e.operation.name()))
            .collect();
        RunShape {
            groups: groups.max(1) as u64,
            pairs: pairs.len() as u64,
            stages: stages.len() as u64,
            intervals,
            spec_bytes: spec_bytes as u64,
        }
    }

    /// The bytes the run is estimated to write:
    ///
    /// ```text
    /// series kinds        = groups × (pairs + 1 schedule series)
    /// series lines        = intervals × series kinds
    ///                       + min(stages - 1, intervals) × series kinds
    ///                       (an interval straddling a stage boundary holds both stages')
    /// intervals.jsonl     = intervals × INTERVAL_OVERHEAD_BYTES + series lines × SERIES_BYTES
    /// results.json        = FIXED_FILE_BYTES + groups × (pairs + 1) × stages × SERIES_BYTES
    /// .hgrm files         = Metric::COUNT × HGRM_BYTES
    /// the rest            = spec bytes + 4 × FIXED_FILE_BYTES
    ///                       (plan.json, run.json, report.txt, fleet.json)
    /// ```
    ///
    /// Saturating: a shape no disk could hold estimates `u64::MAX`.
    pub fn estimate_bytes(&self) -> u64 {
        let series_kinds = self.groups.saturating_mul(self.pairs.saturating_add(1));
        let boundaries = self.stages.saturating_sub(1).min(self.intervals);
        let series_lines = self
            .intervals
            .saturating_add(boundaries)
            .saturating_mul(series_kinds);
        let intervals = self
            .intervals
            .saturating_mul(INTERVAL_OVERHEAD_BYTES)
            .saturating_add(series_lines.saturating_mul(SERIES_BYTES));
        let results = series_kinds
            .saturating_mul(self.stages.max(1))
            .saturating_mul(SERIES_BYTES)
            .saturating_add(FIXED_FILE_BYTES);
        let hgrm = (Metric::COUNT as u64).saturating_mul(HGRM_BYTES);
        intervals
            .saturating_add(results)
            .saturating_add(hgrm)
            .saturating_add(self.spec_bytes)
            .saturating_add(4 * FIXED_FILE_BYTES)
    }
}

/// The results directory's filesystem has less room than the run needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{}: {free} bytes free on its filesystem, but the run is estimated to write {estimate} bytes \
     (intervals.jsonl, results.json, .hgrm files, report); free space or choose another --out; \
     nothing was sent",
    dir.display()
)]
pub struct NoSpace {
    /// The results directory.
    pub dir: PathBuf,
    /// Bytes available to this user on its filesystem.
    pub free: u64,
    /// The estimate ([`RunShape::estimate_bytes`]).
    pub estimate: u64,
}

/// Refuses a run whose estimate exceeds the free bytes.
pub fn check_space(dir: &Path, free: u64, estimate: u64) -> Result<(), NoSpace> {
    if free < estimate {
        return Err(NoSpace {
            dir: dir.to_owned(),
            free,
            estimate,
        });
    }
    Ok(())
}

/// Checks `dir` (which may not exist yet: its nearest existing ancestor is
/// asked) against `estimate`, with `free_of` telling a directory's free
/// bytes. A filesystem that cannot be asked is not checked (`Ok`).
pub fn check_dir_space(
    dir: &Path,
    estimate: u64,
    free_of: impl Fn(&Path) -> std::io::Result<u64>,
) -> Result<(), NoSpace> {
    let probe = dir
        .ancestors()
        .map(|a| {
            if a.as_os_str().is_empty() {
                Path::new(".")
            } else {
                a
            }
        })
        .find(|a| a.is_dir())
        .unwrap_or(Path::new("."));
    match free_of(probe) {
        Ok(free) => check_space(dir, free, estimate),
        Err(e) => {
            tracing::warn!(
                "{}: free space could not be read ({e}); not checked",
                probe.display()
            );
            Ok(())
        }
    }
}

/// Bytes available to an unprivileged user on the filesystem of `dir`
/// (`statvfs`: available blocks × fragment size).
#[cfg(unix)]
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let st = rustix::fs::statvfs(dir)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Free space is not read on this platform.
#[cfg(not(unix))]
pub fn free_bytes(_dir: &Path) -> std::io::Result<u64> {
    Err(std::io::Error::other("free space is read on Unix only"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> RunShape {
        RunShape {
            groups: 1,
            pairs: 1,
            stages: 1,
            intervals: 10,
            spec_bytes: 100,
        }
    }

    #[test]
    fn the_estimate_follows_its_formula() {
        let per_interval = 2 * SERIES_BYTES + INTERVAL_OVERHEAD_BYTES;
        let expected = 10 * per_interval
            + (2 * SERIES_BYTES + FIXED_FILE_BYTES)
            + Metric::COUNT as u64 * HGRM_BYTES
            + 100
            + 4 * FIXED_FILE_BYTES;
        assert_eq!(shape().estimate_bytes(), expected);
        // More groups, pairs, stages or intervals: more bytes.
        let base = shape().estimate_bytes();
        for bigger in [
            RunShape {
                groups: 3,
                ..shape()
            },
            RunShape {
                pairs: 2,
                ..shape()
            },
            RunShape {
                stages: 2,
                ..shape()
            },
            RunShape {
                intervals: 11,
                ..shape()
            },
        ] {
            assert!(bigger.estimate_bytes() > base, "{bigger:?}");
        }
        // No overflow.
        let huge = RunShape {
            intervals: u64::MAX,
            ..shape()
        };
        assert_eq!(huge.estimate_bytes(), u64::MAX);
    }

    #[test]
    fn less_free_than_the_estimate_is_refused_naming_both() {
        let dir = Path::new("out/run");
        assert_eq!(check_space(dir, 1000, 1000), Ok(()));
        assert_eq!(check_space(dir, 5000, 1000), Ok(()));
        let e = check_space(dir, 999, 1000).unwrap_err();
        assert_eq!(e.free, 999);
        assert_eq!(e.estimate, 1000);
        let text = e.to_string();
        assert!(text.starts_with("out/run: 999 bytes free"), "{text}");
        assert!(text.contains("estimated to write 1000 bytes"), "{text}");
    }

    #[test]
    fn a_missing_directory_is_checked_on_its_nearest_existing_ancestor() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b/c");
        let asked = std::cell::RefCell::new(None);
        let fake = |p: &Path| {
            *asked.borrow_mut() = Some(p.to_owned());
            Ok(10)
        };
        let e = check_dir_space(&dir, 11, fake).unwrap_err();
        assert_eq!(e.dir, dir);
        assert_eq!(asked.borrow().as_deref(), Some(tmp.path()));
        assert_eq!(check_dir_space(&dir, 10, fake), Ok(()));
        // Nothing was created.
        assert!(!tmp.path().join("a").exists());
    }

    #[test]
    fn the_real_free_space_is_read() {
        let tmp = tempfile::tempdir().unwrap();
        free_bytes(tmp.path()).unwrap();
        // No filesystem holds u64::MAX bytes; every one holds 0.
        let e = check_dir_space(tmp.path(), u64::MAX, free_bytes).unwrap_err();
        assert_eq!(e.estimate, u64::MAX);
        assert_eq!(check_dir_space(tmp.path(), 0, free_bytes), Ok(()));
    }
}
