//! `quarry compare A B [...]`: runs or sweeps side by side, each compared
//! to the first (the baseline).
//!
//! The comparison is a plain serde document ([`Comparison`], schema
//! [`COMPARE_SCHEMA`], documented in `docs/compare-schema.md`); the text
//! is rendered from it ([`render_text`]), so another view (HTML) can be
//! rendered from the same value. Every figure of a run comes from the
//! run's own `report::evaluate` over its `results.json` read back: the
//! measured stages (ramp, hold), every series merged, the streaming
//! figures (TTFT, ITL, TPOT) over streaming requests only, as the report.
//! Latency percentiles are judged against run-to-run noise by the seeded
//! bootstrap of [`bootstrap`].

pub mod bootstrap;
mod html;
mod render;

use std::path::{Path, PathBuf};

use quarry_bedrock::Outcome;
use quarry_engine::{LoadModel, Metric, TokenKind};
use serde::{Deserialize, Serialize};

pub use bootstrap::{Cumulative, Judged, Method, Significance, judge};
pub use html::compare_page;
pub use render::render_text;

use crate::report::{Figures, evaluate};
use crate::results::{RESULTS_FILE, RUN_FILE, read_results};
use crate::sweep::{SWEEP_FILE, SweepDocument, read_sweep};
use crate::thresholds::{MetricSource, ScalarMetric};

/// The `schema` of a comparison document.
pub const COMPARE_SCHEMA: &str = "quarry.compare/1";

/// `quarry compare`'s exit codes.
pub const COMPARE_EXIT_CODES: &str = "\
Exit codes:
  0  compared (whether or not differences were found)
  1  with --fail-on-regression: a latency percentile of some input is significantly
     higher than the baseline's (a run, or a sweep level of the same value), or a
     sweep's feasible maximum is lower than the baseline's
  2  usage error: fewer than two inputs, a path that is neither a results directory
     (results.json) nor a sweep directory (sweep.json), runs mixed with sweeps, or
     sweeps of different variables (the path is named)
  3  an input could not be read (the file is named, with its line or field)";

/// A comparison could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// The arguments are wrong (exit 2).
    #[error("{0}")]
    Usage(String),
    /// An input could not be read (exit 3); the message names the file.
    #[error("{0}")]
    Unreadable(String),
}

impl CompareError {
    /// The exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            CompareError::Usage(_) => 2,
            CompareError::Unreadable(_) => 3,
        }
    }
}

/// What an input directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputKind {
    /// A run's results directory (`results.json`, or `run.json` and
    /// `intervals.jsonl` to recover it from).
    Run,
    /// A sweep directory (`sweep.json`).
    Sweep,
}

impl InputKind {
    fn noun(self) -> &'static str {
        match self {
            InputKind::Run => "a run's results directory",
            InputKind::Sweep => "a sweep directory",
        }
    }
}

/// Says what `dir` holds: a sweep (`sweep.json`) or a run (`results.json`,
/// or the `run.json` a crashed run left); anything else is a usage error.
pub fn detect(dir: &Path) -> Result<InputKind, CompareError> {
    if !dir.is_dir() {
        return Err(CompareError::Usage(format!(
            "{}: not a directory (expected a run's results directory or a sweep directory)",
            dir.display()
        )));
    }
    if dir.join(SWEEP_FILE).exists() {
        Ok(InputKind::Sweep)
    } else if dir.join(RESULTS_FILE).exists() || dir.join(RUN_FILE).exists() {
        Ok(InputKind::Run)
    } else {
        Err(CompareError::Usage(format!(
            "{}: neither a run's results directory ({RESULTS_FILE}) nor a sweep directory ({SWEEP_FILE})",
            dir.display()
        )))
    }
}

/// The whole comparison: what `--format json` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// [`COMPARE_SCHEMA`].
    pub schema: String,
    /// The `quarry` version that compared.
    pub quarry_version: String,
    /// Runs or sweeps (never mixed).
    pub kind: InputKind,
    /// How latency percentiles were judged.
    pub method: Method,
    /// The inputs as given, the baseline first.
    pub inputs: Vec<String>,
    /// Each input after the first against the first, in argument order.
    pub comparisons: Vec<Versus>,
}

/// One input against the baseline: exactly one of `run` and `sweep`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Versus {
    /// The baseline's path.
    pub baseline: String,
    /// The compared input's path.
    pub candidate: String,
    /// Two runs.
    pub run: Option<RunComparison>,
    /// Two sweeps.
    pub sweep: Option<SweepComparison>,
}

/// A run as compared: what identifies it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSide {
    /// The results directory.
    pub path: String,
    /// Its run id.
    pub run_id: String,
    /// The spec as given to `quarry run`.
    pub spec: String,
    /// The spec's seed.
    pub seed: u64,
    /// RFC 3339 start.
    pub started_at: String,
    /// How it ended (`completed`, `stopped` ...).
    pub ended: String,
    /// The load: `closed, 4 virtual users` or `open, 20/s`.
    pub load: String,
    /// The measured window (ramp and hold stages), seconds.
    pub measured_s: f64,
}

/// A number of both runs and their difference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FigureRow {
    /// A stable key (`requests`, `throttled`, `output_tokens_per_s` ...).
    pub key: String,
    /// What it counts, over which requests.
    pub what: String,
    /// `requests`, `requests/s`, `fraction`, `tokens/s`, `USD`.
    pub unit: String,
    /// The baseline's value (`None`: not defined, e.g. no price).
    pub baseline: Option<f64>,
    /// The candidate's value.
    pub candidate: Option<f64>,
    /// candidate − baseline.
    pub difference: Option<f64>,
    /// (candidate − baseline) / baseline; `None` when the baseline is 0.
    pub relative: Option<f64>,
}

impl FigureRow {
    fn new(key: &str, what: &str, unit: &str, a: Option<f64>, b: Option<f64>) -> Self {
        let difference = a.zip(b).map(|(a, b)| b - a);
        let relative = a
            .zip(difference)
            .filter(|(a, _)| *a != 0.0)
            .map(|(a, d)| d / a);
        FigureRow {
            key: key.to_owned(),
            what: what.to_owned(),
            unit: unit.to_owned(),
            baseline: a,
            candidate: b,
            difference,
            relative,
        }
    }
}

/// One latency percentile of both runs, judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PercentileRow {
    /// `ttft`, `e2e`, `itl` or `tpot`.
    pub metric: String,
    /// 50, 90, 95 or 99.
    pub percentile: f64,
    /// What the histogram holds.
    pub over: String,
    /// Values in the baseline's histogram.
    pub baseline_n: u64,
    /// Values in the candidate's histogram.
    pub candidate_n: u64,
    /// The baseline's percentile, ns.
    pub baseline_ns: Option<u64>,
    /// The candidate's percentile, ns.
    pub candidate_ns: Option<u64>,
    /// candidate − baseline, ns.
    pub difference_ns: Option<i64>,
    /// (candidate − baseline) / baseline.
    pub relative: Option<f64>,
    /// The bootstrap interval of candidate − baseline, ns, at the method's
    /// confidence (`None`: not judged).
    pub interval_ns: Option<[i64; 2]>,
    /// The verdict: `higher` (slower), `lower` (faster),
    /// `no_significant_difference`, `not_judged`.
    pub significance: Significance,
    /// Why it was not judged.
    pub not_judged_reason: Option<String>,
}

/// Two runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunComparison {
    /// The baseline.
    pub baseline: RunSide,
    /// The compared run.
    pub candidate: RunSide,
    /// Requests, rates, tokens and cost (no significance test: counts).
    pub figures: Vec<FigureRow>,
    /// TTFT, E2E, ITL and TPOT at p50, p90, p95 and p99.
    pub percentiles: Vec<PercentileRow>,
    /// The percentiles significantly higher (`ttft p50` ...).
    pub slower: Vec<String>,
    /// The percentiles significantly lower.
    pub faster: Vec<String>,
}

impl RunComparison {
    /// Whether any latency percentile is significantly higher.
    pub fn regressed(&self) -> bool {
        !self.slower.is_empty()
    }
}

/// A sweep as compared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepSide {
    /// The sweep directory.
    pub path: String,
    /// Its spec as given.
    pub spec: String,
    /// RFC 3339 start.
    pub started_at: String,
    /// `concurrency` or `rate`.
    pub variable: String,
    /// The unit of a level's value.
    pub unit: String,
    /// `completed`, `stopped` or `failed`.
    pub ended: String,
    /// Levels run.
    pub levels: usize,
    /// Highest level that passed.
    pub feasible_max: Option<f64>,
    /// Lowest level that failed or was inconclusive.
    pub infeasible_min: Option<f64>,
    /// The binding constraint, as `level L: criterion; wall`.
    pub binding: Option<String>,
}

/// One level value both sweeps ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevelComparison {
    /// The level's value (virtual users or requests/s).
    pub value: f64,
    /// The baseline level's verdict (`pass`, `fail` ...).
    pub baseline_verdict: String,
    /// The candidate level's verdict.
    pub candidate_verdict: String,
    /// The two levels' runs compared.
    pub run: RunComparison,
}

/// Two sweeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepComparison {
    /// The baseline.
    pub baseline: SweepSide,
    /// The compared sweep.
    pub candidate: SweepSide,
    /// candidate − baseline feasible maximum, when both have one.
    pub feasible_max_difference: Option<f64>,
    /// Levels both ran, by value, ascending.
    pub levels: Vec<LevelComparison>,
    /// Level values only the baseline ran.
    pub baseline_only: Vec<f64>,
    /// Level values only the candidate ran.
    pub candidate_only: Vec<f64>,
}

impl SweepComparison {
    /// A matched level significantly slower, or a lower (or lost)
    /// feasible maximum.
    pub fn regressed(&self) -> bool {
        let lower_max = match (self.baseline.feasible_max, self.candidate.feasible_max) {
            (Some(a), Some(b)) => b < a,
            (Some(_), None) => true,
            _ => false,
        };
        lower_max || self.levels.iter().any(|l| l.run.regressed())
    }
}

impl Comparison {
    /// Whether any input regressed against the baseline (what
    /// `--fail-on-regression` exits 1 on).
    pub fn regressed(&self) -> bool {
        self.comparisons.iter().any(|v| {
            v.run.as_ref().is_some_and(RunComparison::regressed)
                || v.sweep.as_ref().is_some_and(SweepComparison::regressed)
        })
    }

    /// The document as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// Compares `inputs[1..]` each to `inputs[0]`.
pub fn compare(inputs: &[PathBuf], method: &Method) -> Result<Comparison, CompareError> {
    if inputs.len() < 2 {
        return Err(CompareError::Usage(
            "compare needs at least two inputs: the baseline, then one or more to compare with it"
                .to_owned(),
        ));
    }
    let kinds = inputs
        .iter()
        .map(|p| detect(p))
        .collect::<Result<Vec<_>, _>>()?;
    let kind = kinds[0];
    if let Some((p, k)) = inputs.iter().zip(&kinds).find(|(_, k)| **k != kind) {
        return Err(CompareError::Usage(format!(
            "{}: {} cannot be compared with {} ({} is {})",
            p.display(),
            k.noun(),
            kind.noun(),
            inputs[0].display(),
            kind.noun()
        )));
    }
    let comparisons = match kind {
        InputKind::Run => {
            let runs = inputs
                .iter()
                .map(|p| LoadedRun::read(p))
                .collect::<Result<Vec<_>, _>>()?;
            runs[1..]
                .iter()
                .map(|b| Versus {
                    baseline: runs[0].side.path.clone(),
                    candidate: b.side.path.clone(),
                    run: Some(compare_runs(&runs[0], b, method)),
                    sweep: None,
                })
                .collect()
        }
        InputKind::Sweep => {
            let sweeps = inputs
                .iter()
                .map(|p| read_sweep_input(p))
                .collect::<Result<Vec<_>, _>>()?;
            for (p, s) in inputs.iter().zip(&sweeps).skip(1) {
                if s.1.variable != sweeps[0].1.variable {
                    return Err(CompareError::Usage(format!(
                        "{}: a sweep of {} cannot be compared level by level with {}'s sweep of {}",
                        p.display(),
                        s.1.variable,
                        inputs[0].display(),
                        sweeps[0].1.variable
                    )));
                }
            }
            let mut out = Vec::new();
            for b in &sweeps[1..] {
                out.push(Versus {
                    baseline: display(&sweeps[0].0),
                    candidate: display(&b.0),
                    run: None,
                    sweep: Some(compare_sweeps(&sweeps[0], b, method)?),
                });
            }
            out
        }
    };
    Ok(Comparison {
        schema: COMPARE_SCHEMA.to_owned(),
        quarry_version: env!("CARGO_PKG_VERSION").to_owned(),
        kind,
        method: method.clone(),
        inputs: inputs.iter().map(|p| display(p)).collect(),
        comparisons,
    })
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

/// A run read back and evaluated once.
struct LoadedRun {
    side: RunSide,
    overall: Figures,
}

impl LoadedRun {
    fn read(dir: &Path) -> Result<Self, CompareError> {
        // Most errors name their file; the rest get the directory.
        let unreadable = |e: crate::results::ResultsError| {
            let text = e.to_string();
            CompareError::Unreadable(match text.contains(&display(dir)) {
                true => text,
                false => format!("{}: {text}", dir.display()),
            })
        };
        let mut doc = read_results(dir).map_err(unreadable)?;
        let figures = evaluate(&mut doc).map_err(unreadable)?;
        let load = match doc.plan.load.model() {
            LoadModel::Closed { concurrency } => format!("closed, {concurrency} virtual users"),
            LoadModel::Open { rate_per_s, .. } => {
                format!("open, {}/s", crate::report::rate(*rate_per_s))
            }
        };
        Ok(LoadedRun {
            side: RunSide {
                path: display(dir),
                run_id: doc.run.run_id.clone(),
                spec: doc.run.spec.clone(),
                seed: doc.plan.seed,
                started_at: doc.run.started_at.clone(),
                ended: doc.end.ended.as_str().to_owned(),
                load,
                measured_s: figures.overall.window_ns as f64 / 1e9,
            },
            overall: figures.overall,
        })
    }
}

/// The latency histograms compared, with what each holds.
const LATENCIES: [(&str, Metric, &str); 4] = [
    (
        "ttft",
        Metric::TtftFromSend,
        "TTFT from send, successful streaming requests",
    ),
    (
        "e2e",
        Metric::E2eFromSend,
        "E2E from send, every successful request",
    ),
    (
        "itl",
        Metric::Itl,
        "gaps between content events of successful streaming requests",
    ),
    (
        "tpot",
        Metric::Tpot,
        "time per output token after the first, successful streaming requests",
    ),
];

/// The percentiles compared.
pub const PERCENTILES: [f64; 4] = [50.0, 90.0, 95.0, 99.0];

fn throttled(f: &Figures) -> u64 {
    f.outcome(Outcome::Throttled) + f.outcome(Outcome::DailyQuota)
}

/// The counted figures of one run, in display order.
fn figure_values(f: &Figures) -> Vec<(&'static str, &'static str, &'static str, Option<f64>)> {
    let requests = f.requests();
    let ok = f.outcome(Outcome::Ok);
    let thr = throttled(f);
    let n = |v: u64| Some(v as f64);
    vec![
        (
            "requests",
            "measured requests ended, every outcome",
            "requests",
            n(requests),
        ),
        ("ok", "measured requests that succeeded", "requests", n(ok)),
        (
            "throttled",
            "measured requests throttled (per-minute quota or daily cap)",
            "requests",
            n(thr),
        ),
        (
            "failed",
            "measured requests failed otherwise (client, server, timeout, stream, transport)",
            "requests",
            n(requests.saturating_sub(ok + thr)),
        ),
        (
            "requests_per_s",
            "measured requests ended per second of the measured window",
            "requests/s",
            f.per_s(requests),
        ),
        (
            "ok_per_s",
            "successful requests per second of the measured window",
            "requests/s",
            f.per_s(ok),
        ),
        (
            "throttle_rate",
            "throttled / measured requests",
            "fraction",
            f.scalar(ScalarMetric::ThrottleRate),
        ),
        (
            "error_rate",
            "not successful (throttled included) / measured requests",
            "fraction",
            f.scalar(ScalarMetric::ErrorRate),
        ),
        (
            "input_tokens_per_s",
            "billed input tokens per second, every measured request",
            "tokens/s",
            f.per_s(f.tokens(TokenKind::Input)),
        ),
        (
            "output_tokens_per_s",
            "output tokens per second, every measured request",
            "tokens/s",
            f.per_s(f.tokens(TokenKind::Output)),
        ),
        (
            "cost_per_ok_request_usd",
            "USD of the successful requests / successful requests (at the run's prices)",
            "USD",
            f.cost_per_ok_request(),
        ),
        (
            "cost_usd",
            "USD of every measured request (at the run's prices)",
            "USD",
            f.cost_usd(),
        ),
    ]
}

fn compare_runs(a: &LoadedRun, b: &LoadedRun, method: &Method) -> RunComparison {
    let (fa, fb) = (figure_values(&a.overall), figure_values(&b.overall));
    let figures = fa
        .iter()
        .zip(&fb)
        .map(|((key, what, unit, va), (_, _, _, vb))| FigureRow::new(key, what, unit, *va, *vb))
        .collect();
    let mut percentiles = Vec::new();
    let (mut slower, mut faster) = (Vec::new(), Vec::new());
    for (mi, (name, metric, over)) in LATENCIES.iter().enumerate() {
        let ca = Cumulative::new(a.overall.histogram(*metric));
        let cb = Cumulative::new(b.overall.histogram(*metric));
        for (pi, p) in PERCENTILES.iter().enumerate() {
            let j = judge(method, &ca, &cb, p / 100.0, (mi * 16 + pi) as u64);
            let label = format!("{name} p{p}");
            match j.significance {
                Significance::Higher => slower.push(label),
                Significance::Lower => faster.push(label),
                _ => {}
            }
            percentiles.push(percentile_row(name, *p, over, &ca, &cb, &j));
        }
    }
    RunComparison {
        baseline: a.side.clone(),
        candidate: b.side.clone(),
        figures,
        percentiles,
        slower,
        faster,
    }
}

fn percentile_row(
    name: &str,
    p: f64,
    over: &str,
    a: &Cumulative,
    b: &Cumulative,
    j: &Judged,
) -> PercentileRow {
    let difference_ns = j
        .baseline
        .zip(j.candidate)
        .map(|(x, y)| y as i64 - x as i64);
    PercentileRow {
        metric: name.to_owned(),
        percentile: p,
        over: over.to_owned(),
        baseline_n: a.n(),
        candidate_n: b.n(),
        baseline_ns: j.baseline,
        candidate_ns: j.candidate,
        difference_ns,
        relative: j
            .baseline
            .zip(difference_ns)
            .filter(|(x, _)| *x > 0)
            .map(|(x, d)| d as f64 / x as f64),
        interval_ns: j.interval.map(|(lo, hi)| [lo, hi]),
        significance: j.significance,
        not_judged_reason: j.not_judged.map(str::to_owned),
    }
}

fn read_sweep_input(dir: &Path) -> Result<(PathBuf, SweepDocument), CompareError> {
    let doc = read_sweep(dir).map_err(|e| CompareError::Unreadable(e.to_string()))?;
    Ok((dir.to_owned(), doc))
}

fn sweep_side(dir: &Path, d: &SweepDocument) -> SweepSide {
    SweepSide {
        path: display(dir),
        spec: d.spec.clone(),
        started_at: d.started_at.clone(),
        variable: d.variable.clone(),
        unit: d.unit.clone(),
        ended: d.ended.clone(),
        levels: d.levels.len(),
        feasible_max: d.result.feasible_max,
        infeasible_min: d.result.infeasible_min,
        binding: d.result.binding.as_ref().map(|b| {
            let mut text = format!("level {}", crate::sweep::value_text(b.level));
            if let Some(c) = &b.criterion {
                text.push_str(&format!(": {c}"));
            }
            match &b.wall {
                Some(w) => text.push_str(&format!("; wall: {w}")),
                None => text.push_str("; no wall visible"),
            }
            text
        }),
    }
}

/// The last record of each level value (an extended level's record is
/// the one judged), ascending by value.
fn levels_by_value(d: &SweepDocument) -> Vec<&crate::sweep::LevelRecord> {
    let mut levels: Vec<&crate::sweep::LevelRecord> = Vec::new();
    for l in &d.levels {
        match levels.iter_mut().find(|x| x.value == l.value) {
            Some(x) => *x = l,
            None => levels.push(l),
        }
    }
    levels.sort_by(|x, y| x.value.total_cmp(&y.value));
    levels
}

fn compare_sweeps(
    (adir, a): &(PathBuf, SweepDocument),
    (bdir, b): &(PathBuf, SweepDocument),
    method: &Method,
) -> Result<SweepComparison, CompareError> {
    let (la, lb) = (levels_by_value(a), levels_by_value(b));
    let mut levels = Vec::new();
    for x in &la {
        let Some(y) = lb.iter().find(|y| y.value == x.value) else {
            continue;
        };
        let ra = LoadedRun::read(&adir.join(&x.dir))?;
        let rb = LoadedRun::read(&bdir.join(&y.dir))?;
        levels.push(LevelComparison {
            value: x.value,
            baseline_verdict: x.verdict.as_str().to_owned(),
            candidate_verdict: y.verdict.as_str().to_owned(),
            run: compare_runs(&ra, &rb, method),
        });
    }
    let only = |from: &[&crate::sweep::LevelRecord], other: &[&crate::sweep::LevelRecord]| {
        from.iter()
            .filter(|x| !other.iter().any(|y| y.value == x.value))
            .map(|x| x.value)
            .collect()
    };
    let (sa, sb) = (sweep_side(adir, a), sweep_side(bdir, b));
    Ok(SweepComparison {
        feasible_max_difference: sa.feasible_max.zip(sb.feasible_max).map(|(x, y)| y - x),
        baseline_only: only(&la, &lb),
        candidate_only: only(&lb, &la),
        baseline: sa,
        candidate: sb,
        levels,
    })
}

#[cfg(test)]
mod tests;
