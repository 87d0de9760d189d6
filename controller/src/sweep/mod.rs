//! `quarry sweep`: many runs of one spec, each level a full measured run
//! down the one run path ([`crate::run::execute`]) into its own ordinary
//! results directory, then `sweep.json` and `report.txt` over them.
//!
//! ```text
//! DIR/levels/00-concurrency-1/     an ordinary results directory per level
//! DIR/levels/01-concurrency-5/
//! DIR/sweep.json                   schema "quarry.sweep/1" (docs/sweep-schema.md)
//! DIR/report.txt                   one row per level
//! DIR/report.html                  the same with charts (latency, throughput, throttling and cost against load)
//! ```
//!
//! Each level's spec is the sweep spec with `[load]`'s concurrency or rate
//! set and `[sweep]`/`[slo]` removed, validated again and run as any spec
//! is; its figures come from the run's own `RunFigures`.

pub mod confidence;
mod level;
mod report;
mod search;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

pub use level::{
    ExtendedFrom, FailedCriterion, Goodput, LevelRecord, Percentiles, QuotaUse, Verdict,
    level_record, quota_use, wall,
};
pub use report::{level_line, progress_table, render_sweep};
pub use search::{Feasibility, Search, SearchEnd};

use crate::run::{
    OverloadPolicy, Placement, RunError, RunJob, RunOptions, StopLevel, StopSignal, execute,
    rfc3339,
};
use crate::spec::{SweepMode, SweepVariable, ValidatedSpec, level_spec_text, parse_spec};

/// The `schema` of `sweep.json`.
pub const SWEEP_SCHEMA: &str = "quarry.sweep/1";

/// The sweep file's name in the sweep directory.
pub const SWEEP_FILE: &str = "sweep.json";

/// A sweep could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// The spec has no `[sweep]`.
    #[error("the spec has no [sweep] section: use `quarry run` for a single run")]
    NotASweep,
    /// The sweep directory exists and is not empty.
    #[error("{}: the sweep directory must be new or empty", .0.display())]
    NotEmpty(PathBuf),
    /// A level's spec could not be made or did not validate.
    #[error("level {value}: {message}")]
    LevelSpec {
        /// The level.
        value: f64,
        /// Why.
        message: String,
    },
    /// A level's placement could not be found.
    #[error("level {value}: placing the run: {message}")]
    Placement {
        /// The level.
        value: f64,
        /// Why.
        message: String,
    },
    /// A level's run failed.
    #[error("level {value}: {source}")]
    Run {
        /// The level.
        value: f64,
        /// Why.
        source: RunError,
    },
    /// A level ran but some of its results could not be written (a full
    /// disk): the sweep stops rather than judge a level it cannot keep.
    #[error("level {value}: could not write {}", files.join(", "))]
    Unwritten {
        /// The level.
        value: f64,
        /// Each file and why.
        files: Vec<String>,
    },
    /// A file could not be written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl SweepError {
    /// True when the user's input is at fault (exit 2).
    pub fn is_usage(&self) -> bool {
        match self {
            SweepError::NotASweep | SweepError::NotEmpty(_) | SweepError::LevelSpec { .. } => true,
            SweepError::Run { source, .. } => source.is_usage(),
            _ => false,
        }
    }
}

/// The binding constraint of a sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Binding {
    /// The level it was read from (the lowest failed or invalid level).
    pub level: f64,
    /// The first SLO criterion that failed there, as `key condition`
    /// (`None` when the level was invalid).
    pub criterion: Option<String>,
    /// The wall behind it: a named quota, service capacity, or the load
    /// generator (then the level is invalid, not a capacity finding);
    /// `None` when no wall is visible (latency grew by itself).
    pub wall: Option<String>,
}

/// What the sweep found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepResult {
    /// Highest level that passed (`None`: none did).
    pub feasible_max: Option<f64>,
    /// Lowest level that failed or was inconclusive (`None`: none did).
    pub infeasible_min: Option<f64>,
    /// What stopped the load from going higher.
    pub binding: Option<Binding>,
    /// Why a search ended (`None` for a list of levels).
    pub search_end: Option<String>,
    /// `[slo]`'s stated target and whether a level at or above it passed
    /// (`None`: no target stated).
    #[serde(default)]
    pub target: Option<TargetResult>,
}

/// `slo.target_concurrency` / `slo.target_rate` against the levels run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TargetResult {
    /// The target load.
    pub value: f64,
    /// A level at or above it passed.
    pub met: bool,
}

/// `sweep.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepDocument {
    /// [`SWEEP_SCHEMA`].
    pub schema: String,
    /// The `quarry` version that wrote it.
    pub quarry_version: String,
    /// The spec as given.
    pub spec: String,
    /// RFC 3339 start.
    pub started_at: String,
    /// `concurrency` or `rate`.
    pub variable: String,
    /// The unit of a level's value.
    pub unit: String,
    /// `levels` or `search`.
    pub mode: String,
    /// The search parameters (search only).
    pub search: Option<SearchParams>,
    /// The SLO each level was judged against (`None`: no `[slo]`).
    pub slo: Option<SloRecord>,
    /// `completed`, `stopped` (a stop request; finished levels kept) or
    /// `failed` (a level could not run).
    pub ended: String,
    /// The levels run, in order.
    pub levels: Vec<LevelRecord>,
    /// Levels of the list that were not run (stopped or failed first).
    pub not_run: Vec<f64>,
    /// The finding.
    pub result: SweepResult,
}

/// `[sweep.search]` as run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SearchParams {
    /// First probe.
    pub start: f64,
    /// Highest probe.
    pub max: f64,
    /// Relative tolerance.
    pub tolerance: f64,
    /// Level cap.
    pub max_levels: u32,
}

/// `[slo]` as judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloRecord {
    /// Per-request TTFT bound, ns.
    pub ttft_ns: Option<u64>,
    /// Per-request TPOT bound, ns.
    pub tpot_ns: Option<u64>,
    /// Per-request E2E bound, ns.
    pub e2e_ns: Option<u64>,
    /// Attainment target, a fraction of measured requests.
    pub attainment: Option<f64>,
    /// Criteria as `(key, condition)`.
    pub criteria: Vec<(String, String)>,
}

/// How to run a sweep (process behaviour; the levels are in the spec).
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// The spec file as given.
    pub spec_path: PathBuf,
    /// The sweep directory (new or empty).
    pub out_dir: PathBuf,
    /// Wall-clock start (the binary's one read; each level's start is
    /// this plus the monotonic time since).
    pub started_at: SystemTime,
    /// Snapshot interval of each level.
    pub interval: Duration,
    /// Grace of each level.
    pub grace: Duration,
    /// Refresh the live line in place.
    pub live_in_place: bool,
}

/// A finished (or stopped) sweep.
#[derive(Debug)]
pub struct SweepOutcome {
    /// `sweep.json` as written.
    pub document: SweepDocument,
    /// `report.txt` as written.
    pub report: String,
}

/// Runs every level of `spec`'s sweep, each placed by `place` (called
/// once per level: in-process, or agents found again), until the levels
/// are done, the search ends, or `stop` asks to stop (the level running
/// then stops and is kept). Writes `sweep.json` and `report.txt` whatever
/// happened after the first level started.
pub async fn run_sweep<F, Fut>(
    spec: &ValidatedSpec,
    opts: &SweepOptions,
    mut place: F,
    stop: StopSignal,
) -> Result<SweepOutcome, SweepError>
where
    F: FnMut(SystemTime) -> Fut,
    Fut: Future<Output = Result<Placement, String>>,
{
    let sweep = spec.sweep.as_ref().ok_or(SweepError::NotASweep)?;
    prepare_dir(&opts.out_dir)?;
    let clock = std::time::Instant::now();
    let mut doc = SweepDocument {
        schema: SWEEP_SCHEMA.to_owned(),
        quarry_version: env!("CARGO_PKG_VERSION").to_owned(),
        spec: opts.spec_path.display().to_string(),
        started_at: rfc3339(opts.started_at),
        variable: sweep.variable.as_str().to_owned(),
        unit: sweep.variable.unit().to_owned(),
        mode: match sweep.mode {
            SweepMode::Levels(_) => "levels",
            SweepMode::Search(_) => "search",
        }
        .to_owned(),
        search: match &sweep.mode {
            SweepMode::Search(s) => Some(SearchParams {
                start: s.start,
                max: s.max,
                tolerance: s.tolerance,
                max_levels: s.max_levels,
            }),
            SweepMode::Levels(_) => None,
        },
        slo: spec.slo.as_ref().map(|s| {
            let ns =
                |d: Option<Duration>| d.map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
            SloRecord {
                ttft_ns: ns(s.request.ttft),
                tpot_ns: ns(s.request.tpot),
                e2e_ns: ns(s.request.e2e),
                attainment: s.attainment,
                criteria: s
                    .criteria
                    .iter()
                    .map(|t| (t.key.clone(), t.condition.clone()))
                    .collect(),
            }
        }),
        ended: "completed".to_owned(),
        levels: Vec::new(),
        not_run: Vec::new(),
        result: SweepResult {
            feasible_max: None,
            infeasible_min: None,
            binding: None,
            search_end: None,
            target: None,
        },
    };
    let mut search = match &sweep.mode {
        SweepMode::Search(s) => Some(Search::new(*s, sweep.variable)),
        SweepMode::Levels(_) => None,
    };
    let mut queue: Vec<f64> = match &sweep.mode {
        SweepMode::Levels(l) => l.iter().rev().copied().collect(),
        SweepMode::Search(_) => Vec::new(),
    };
    let mut failure = None;
    loop {
        let value = match &search {
            Some(s) => s.next_level(),
            None => queue.pop(),
        };
        let Some(value) = value else { break };
        if stop.level() >= StopLevel::Stop {
            doc.ended = "stopped".to_owned();
            doc.not_run.push(value);
            doc.not_run.extend(queue.drain(..).rev());
            break;
        }
        let index = doc.levels.len();
        eprintln!(
            "quarry: sweep level {} ({} = {}): running",
            index + 1,
            sweep.variable.as_str(),
            value_text(value)
        );
        let level = Level {
            variable: sweep.variable,
            index,
            value,
            duration: None,
        };
        let started_at = opts.started_at + clock.elapsed();
        let mut ran = run_level(spec, opts, &level, started_at, &mut place, stop.clone()).await;
        if let Ok(first) = &ran
            && let Some(longer) = extension(first, sweep.max_duration)
            && stop.level() == StopLevel::Running
        {
            eprintln!(
                "quarry: sweep level {} ({} = {}): {} measured requests are too few to judge at {:.0}% confidence; running it again for {:.0} s",
                index + 1,
                sweep.variable.as_str(),
                value_text(value),
                first.requests,
                100.0 * confidence::CONFIDENCE,
                longer.as_secs_f64()
            );
            let from = ExtendedFrom {
                dir: first.dir.clone(),
                requests: first.requests,
                measured_s: first.measured_s,
            };
            let level = Level {
                duration: Some(longer),
                ..level
            };
            let started_at = opts.started_at + clock.elapsed();
            ran = run_level(spec, opts, &level, started_at, &mut place, stop.clone())
                .await
                .map(|mut r| {
                    r.extended_from = Some(from);
                    r
                });
        }
        match ran {
            Ok(record) => {
                eprintln!("{}", level_line(&record, sweep.variable));
                if let Some(s) = &mut search {
                    s.record(value, record.verdict.feasibility());
                }
                if stop.level() >= StopLevel::Stop {
                    doc.ended = "stopped".to_owned();
                }
                doc.levels.push(record);
                eprint!(
                    "quarry: sweep levels finished so far\n{}",
                    progress_table(&doc.levels, sweep.variable)
                );
            }
            Err(e) => {
                doc.ended = "failed".to_owned();
                doc.not_run.push(value);
                failure = Some(e);
                break;
            }
        }
    }
    if failure.is_some() {
        doc.not_run.extend(queue.iter().rev());
    }
    doc.result = finding(&doc.levels, search.as_ref());
    doc.result.target = spec
        .slo
        .as_ref()
        .and_then(|s| s.target)
        .map(|value| TargetResult {
            value,
            met: doc
                .levels
                .iter()
                .any(|r| r.verdict == Verdict::Pass && r.value >= value),
        });
    let report = render_sweep(&doc);
    write(&opts.out_dir.join(SWEEP_FILE), &to_json(&doc))?;
    write(&opts.out_dir.join("report.txt"), &report)?;
    let page = crate::report::html::sweep_page(&doc, &report);
    crate::report::html::write_page(&opts.out_dir, &page).map_err(|e| SweepError::Io {
        path: opts.out_dir.join(crate::report::html::REPORT_HTML),
        source: std::io::Error::other(e.to_string()),
    })?;
    match failure {
        Some(e) => Err(e),
        None => Ok(SweepOutcome {
            document: doc,
            report,
        }),
    }
}

/// The level's value as written in names and tables.
pub fn value_text(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// One level to run.
#[derive(Debug, Clone, Copy)]
struct Level {
    variable: SweepVariable,
    index: usize,
    value: f64,
    /// `load.duration` when the level is run longer than the spec says.
    duration: Option<Duration>,
}

/// How long to run a level again whose claims were inconclusive for want
/// of requests: long enough (plus 10%) for every claim to have the
/// requests it needs, when that fits in `max_duration` (default 4 × the
/// level's measured window). `None`: no longer run would settle it.
fn extension(first: &LevelRecord, max_duration: Option<Duration>) -> Option<Duration> {
    if first.measured_s <= 0.0 || first.extended_from.is_some() {
        return None;
    }
    let factor = first.extension_factor()?;
    let needed = Duration::from_secs_f64(first.measured_s * factor * 1.1);
    let limit = max_duration.unwrap_or(Duration::from_secs_f64(first.measured_s * 4.0));
    (needed <= limit).then_some(needed)
}

async fn run_level<F, Fut>(
    spec: &ValidatedSpec,
    opts: &SweepOptions,
    level: &Level,
    started_at: SystemTime,
    place: &mut F,
    stop: StopSignal,
) -> Result<LevelRecord, SweepError>
where
    F: FnMut(SystemTime) -> Fut,
    Fut: Future<Output = Result<Placement, String>>,
{
    let Level {
        variable,
        index,
        value,
        duration,
    } = *level;
    let level_err = |message: String| SweepError::LevelSpec { value, message };
    let text = level_spec_text(&spec.text, variable, value, duration).map_err(level_err)?;
    let valid = parse_spec(&opts.spec_path, &text).map_err(|e| level_err(e.to_string()))?;
    let mut name = format!("{index:02}-{}-{}", variable.as_str(), value_text(value));
    if duration.is_some() {
        name.push_str("-extended");
    }
    let rel = format!("levels/{name}");
    let run_opts = RunOptions {
        spec_path: opts.spec_path.clone(),
        out_dir: Some(opts.out_dir.join(&rel)),
        started_at,
        interval: opts.interval,
        grace: opts.grace,
        live_in_place: opts.live_in_place,
        telemetry: None,
    };
    let mut job = RunJob::new(&valid, &run_opts);
    // Goodput is judged request by request where each request ends.
    job.plan.request_slo = spec.slo.as_ref().and_then(|s| s.request.to_plan());
    // Level run ids share the sweep's start second: name them apart.
    job.meta.run_id = format!("{}-{name}", job.meta.run_id);
    if variable == SweepVariable::Rate {
        job.overload = Some(OverloadPolicy::default());
    }
    job.live_label = Some(format!(
        "level {} ({} {})",
        index + 1,
        variable.as_str(),
        value_text(value)
    ));
    let placement = place(started_at)
        .await
        .map_err(|message| SweepError::Placement { value, message })?;
    let outcome = execute(job, placement, stop)
        .await
        .map_err(|source| SweepError::Run { value, source })?;
    if !outcome.unwritten.is_empty() {
        return Err(SweepError::Unwritten {
            value,
            files: outcome.unwritten,
        });
    }
    Ok(level_record(
        index,
        value,
        rel,
        &outcome.document,
        &outcome.figures,
        spec.slo.as_ref(),
    ))
}

/// `feasible_max`, `infeasible_min` and the binding constraint.
pub fn finding(levels: &[LevelRecord], search: Option<&Search>) -> SweepResult {
    let passed = |r: &&LevelRecord| matches!(r.verdict, Verdict::Pass | Verdict::NoSlo);
    let failed = |r: &&LevelRecord| matches!(r.verdict, Verdict::Fail | Verdict::Inconclusive);
    let feasible_max = levels
        .iter()
        .filter(passed)
        .map(|r| r.value)
        .reduce(f64::max);
    let infeasible_min = levels
        .iter()
        .filter(failed)
        .map(|r| r.value)
        .reduce(f64::min);
    let lowest_bad = levels
        .iter()
        .filter(|r| failed(r) || r.verdict == Verdict::Invalid)
        .min_by(|a, b| a.value.total_cmp(&b.value));
    let binding = lowest_bad.map(|r| Binding {
        level: r.value,
        criterion: match (r.failed.first(), r.inconclusive.first()) {
            (Some(f), _) => Some(format!("{} {}", f.key, f.condition.trim())),
            (None, Some(i)) => Some(format!(
                "{} {} inconclusive at {:.0}% confidence",
                i.key,
                i.condition.trim(),
                100.0 * confidence::CONFIDENCE
            )),
            _ => None,
        },
        wall: match r.verdict {
            Verdict::Invalid => Some(format!(
                "level invalid, not a capacity finding: {}",
                r.invalid_reason.as_deref().unwrap_or("unknown")
            )),
            _ => wall(r),
        },
    });
    SweepResult {
        feasible_max,
        infeasible_min,
        binding,
        search_end: search
            .and_then(Search::ended)
            .map(|e| e.as_str().to_owned()),
        target: None,
    }
}

fn prepare_dir(dir: &Path) -> Result<(), SweepError> {
    let io = |source| SweepError::Io {
        path: dir.to_owned(),
        source,
    };
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir).map_err(io)?;
        if entries.next().is_some() {
            return Err(SweepError::NotEmpty(dir.to_owned()));
        }
    }
    std::fs::create_dir_all(dir.join("levels")).map_err(io)
}

fn to_json(doc: &SweepDocument) -> String {
    let mut s = serde_json::to_string_pretty(doc).unwrap_or_default();
    s.push('\n');
    s
}

fn write(path: &Path, text: &str) -> Result<(), SweepError> {
    std::fs::write(path, text).map_err(|source| SweepError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Reads a `sweep.json`.
pub fn read_sweep(dir: &Path) -> Result<SweepDocument, SweepError> {
    let path = dir.join(SWEEP_FILE);
    let text = std::fs::read_to_string(&path).map_err(|source| SweepError::Io {
        path: path.clone(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| SweepError::Io {
        path,
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })
}
