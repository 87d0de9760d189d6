//! The `--from` loader: results directories of `quarry run` and sweep
//! directories, read into the capacity planner's measured inputs
//! ([`quarry_capacity::Measured`]).
//!
//! - A **results directory** (it holds `results.json`) gives a demand
//!   profile ([`MeasuredDemand`]: the run's rate, mean tokens per request,
//!   cache use, `max_tokens`, mean end-to-end time) and, when the run offered
//!   one model a single load level, a one-level curve ([`MeasuredCurve`]:
//!   latency and throughput at that load).
//! - A **sweep directory** (no `results.json` of its own; `levels/*/` are
//!   results directories) gives a curve, a level per level directory. Only
//!   the layout is read: the offered load of each level comes from its own
//!   `results.json` (the plan it ran), never from `sweep.json`. A level
//!   `quarry sweep` ran again longer (`NN-...-extended`) replaces its short
//!   first run.
//!
//! - A **trace file** (a file, not a directory: JSON lines,
//!   docs/trace-schema.md) gives a demand profile per model it sends to
//!   (module [`super::trace`]).
//!
//! Every profile, curve and level cites where it was measured: the
//! directory, the run id, and the requests counted (all outcomes, and how
//! many succeeded) in which measured stages over how many seconds; or the
//! trace file, its requests, span and busiest window.
//!
//! A run that did not complete (stopped, aborted, recovered, degraded) is
//! refused; a sweep level stopped as over-saturated (`overloaded`) is kept
//! in its sweep, where it is the finding, and refused as a lone run. A run whose measured stages ended no request is refused; one in
//! which every request failed is refused as a demand profile (it measured no
//! tokens) but kept as a sweep level, where "everything throttled" is the
//! finding; a level whose load generator was saturated is kept and marked
//! (the planner skips it). Each is said in the loader's notes.

use std::path::{Path, PathBuf};

use quarry_bedrock::{Outcome, base_model_id};
use quarry_capacity::{
    CurveLevel, LatencyPercentiles, LoadVariable, Measured, MeasuredCurve, MeasuredDemand,
    RequestShape, TokenStat,
};
use quarry_engine::{LoadModel, Metric, StageKind, TokenKind};

use super::trace::{TraceDemand, read_trace_demand};
use crate::report::{Figures, evaluate, stat, trim};
use crate::results::{Ended, RESULTS_FILE, ResultsDocument, ResultsError, read_results};
use crate::thresholds::LatencyStat;

/// The subdirectory of a sweep directory holding one results directory per level.
pub const LEVELS_DIR: &str = "levels";

/// The suffix of a level's directory when `quarry sweep` ran it again longer.
pub const EXTENDED_SUFFIX: &str = "-extended";

/// A `--from` input that cannot be used. Each names the directory or file
/// and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum FromError {
    /// The path is neither a directory nor a file.
    #[error("--from {0}: no such directory or trace file")]
    NotADirectory(PathBuf),
    /// A trace file cannot be read as demand: each line a finding
    /// (`FILE:LINE: field: message`, or the file and why).
    #[error("{}", .0.join("\n"))]
    Trace(Vec<String>),
    /// Neither a results directory nor a sweep directory.
    #[error(
        "--from {0}: neither a results directory (no {RESULTS_FILE}) nor a sweep directory (no {LEVELS_DIR}/*/{RESULTS_FILE})"
    )]
    NotMeasurement(PathBuf),
    /// A directory or file could not be read.
    #[error("--from {path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `results.json` could not be read (the error names the file).
    #[error("--from: {0}")]
    Results(#[from] ResultsError),
    /// The measurement cannot be used.
    #[error("--from {file}: {why}")]
    Unusable {
        /// The file at fault.
        file: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// Two inputs would be known by the same label.
    #[error(
        "--from {second}: its label {label:?} is already taken by {first} (labels are directory and file names: rename one)"
    )]
    DuplicateLabel {
        /// The label.
        label: String,
        /// The input that took it first.
        first: PathBuf,
        /// The input that clashes.
        second: PathBuf,
    },
}

/// What the `--from` inputs supplied, and what the loader noticed on the way.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// Curves (sweeps first, then the one-level curves of single runs, so a
    /// class that names no curve reads a sweep of its model before a run)
    /// and demand profiles.
    pub measured: Measured,
    /// One line per thing worth knowing: what each input supplied, levels
    /// that are skipped or failed entirely, curves a run could not give.
    pub notes: Vec<String>,
    /// The traces read, in order (their profiles are also in
    /// `measured.demand`): [`super::trace::cover_classes`] gives each
    /// profile its class.
    pub traces: Vec<TraceDemand>,
}

/// Reads every `--from` directory and trace file, in order.
pub fn load_from(dirs: &[PathBuf]) -> Result<Loaded, FromError> {
    let mut loaded = Loaded::default();
    let mut sweeps = Vec::new();
    let mut run_curves = Vec::new();
    let mut labels: Vec<(String, PathBuf)> = Vec::new();
    for dir in dirs {
        let label = label_of(dir);
        if let Some((_, first)) = labels.iter().find(|(l, _)| *l == label) {
            return Err(FromError::DuplicateLabel {
                label,
                first: first.clone(),
                second: dir.clone(),
            });
        }
        labels.push((label.clone(), dir.clone()));
        match kind_of(dir)? {
            Input::Trace => {
                let trace = read_trace_demand(dir, &label).map_err(FromError::Trace)?;
                loaded.notes.push(format!(
                    "{}: trace {label:?}, {} requests over {} s: a demand profile per model",
                    dir.display(),
                    trace.requests,
                    trim(trace.span_s)
                ));
                for (profile, summary) in &trace.summaries {
                    loaded
                        .notes
                        .push(format!("{}: {profile}: {summary}", dir.display()));
                }
                loaded
                    .measured
                    .demand
                    .extend(trace.profiles.iter().cloned());
                loaded.traces.push(trace);
            }
            Input::Run => {
                let run = MeasuredRun::read(dir, false)?;
                let demand = run.demand(&label)?;
                loaded.notes.push(format!(
                    "{}: demand profile {label:?} ({})",
                    dir.display(),
                    run.provenance()
                ));
                loaded.measured.demand.push(demand);
                match run.single_level_curve(&label) {
                    Ok(curve) => {
                        loaded.notes.push(format!(
                            "{}: a one-level curve {label:?} of {} at {} {}",
                            dir.display(),
                            curve.model,
                            curve.levels[0].offered,
                            variable_name(curve.variable)
                        ));
                        run_curves.push(curve);
                    }
                    Err(why) => loaded
                        .notes
                        .push(format!("{}: no curve: {why}", dir.display())),
                }
            }
            Input::Sweep(levels) => {
                let curve = sweep_curve(dir, &label, &levels, &mut loaded.notes)?;
                loaded.notes.push(format!(
                    "{}: curve {label:?} of {}, {} levels of {}",
                    dir.display(),
                    curve.model,
                    curve.levels.len(),
                    variable_name(curve.variable)
                ));
                sweeps.push(curve);
            }
        }
    }
    loaded.measured.curves = sweeps;
    loaded.measured.curves.extend(run_curves);
    Ok(loaded)
}

fn variable_name(v: LoadVariable) -> &'static str {
    match v {
        LoadVariable::Concurrency => "concurrency",
        LoadVariable::Rate => "requests/s offered",
    }
}

/// The name classes use for an input: its directory's (or trace file's) name.
fn label_of(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string())
}

/// What a `--from` input is.
enum Input {
    /// A trace file.
    Trace,
    /// A results directory.
    Run,
    /// A sweep directory: its level directories, in name order.
    Sweep(Vec<PathBuf>),
}

fn kind_of(dir: &Path) -> Result<Input, FromError> {
    if dir.is_file() {
        return Ok(Input::Trace);
    }
    if !dir.is_dir() {
        return Err(FromError::NotADirectory(dir.to_owned()));
    }
    if dir.join(RESULTS_FILE).is_file() {
        return Ok(Input::Run);
    }
    let levels_dir = dir.join(LEVELS_DIR);
    if !levels_dir.is_dir() {
        return Err(FromError::NotMeasurement(dir.to_owned()));
    }
    let io = |source| FromError::Io {
        path: levels_dir.clone(),
        source,
    };
    let mut levels = Vec::new();
    for entry in std::fs::read_dir(&levels_dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.is_dir() {
            levels.push(path);
        }
    }
    levels.sort();
    // A level `quarry sweep` ran again longer (too short to judge) is its
    // `-extended` directory; the short first run is not a level of its own.
    let extended: Vec<PathBuf> = levels
        .iter()
        .filter_map(|l| {
            let name = l.file_name()?.to_str()?;
            Some(l.with_file_name(name.strip_suffix(EXTENDED_SUFFIX)?))
        })
        .collect();
    levels.retain(|l| !extended.contains(l));
    if !levels.iter().any(|l| l.join(RESULTS_FILE).is_file()) {
        return Err(FromError::NotMeasurement(dir.to_owned()));
    }
    // A level without results.json did not finish: using the others would
    // hide where the sweep stopped.
    if let Some(unfinished) = levels.iter().find(|l| !l.join(RESULTS_FILE).is_file()) {
        return Err(FromError::Unusable {
            file: unfinished.join(RESULTS_FILE),
            why: "missing: this level did not finish (a level without results cannot be placed on the curve; remove it or re-run the sweep)".to_owned(),
        });
    }
    Ok(Input::Sweep(levels))
}

/// One results directory, read and evaluated.
struct MeasuredRun {
    dir: PathBuf,
    doc: ResultsDocument,
    /// The measured stages (ramp, hold), every series merged.
    overall: Figures,
    measured_stages: Vec<String>,
}

impl MeasuredRun {
    /// Reads `dir/results.json`; refuses a run that did not complete or
    /// whose measured stages ended no request. A sweep level stopped as
    /// over-saturated (`overloaded`) is kept when `overloaded_ok`: where
    /// the service stopped keeping up is the finding.
    fn read(dir: &Path, overloaded_ok: bool) -> Result<Self, FromError> {
        let mut doc = read_results(dir)?;
        let figures = evaluate(&mut doc)?;
        let file = dir.join(RESULTS_FILE);
        let overloaded = overloaded_ok && doc.end.ended == Ended::Overloaded;
        if !overloaded && (doc.end.ended == Ended::Degraded || !doc.end.ended.is_complete()) {
            return Err(FromError::Unusable {
                file,
                why: format!(
                    "the run did not complete (ended: {}): its figures cover only part of what was planned",
                    doc.end.ended.as_str()
                ),
            });
        }
        if figures.overall.requests() == 0 {
            return Err(FromError::Unusable {
                file,
                why: "no request ended in the measured stages: the run measured nothing".to_owned(),
            });
        }
        if figures.overall.window_s().is_none() {
            return Err(FromError::Unusable {
                file,
                why: "the measured stages took no time: no rate can be read".to_owned(),
            });
        }
        Ok(MeasuredRun {
            dir: dir.to_owned(),
            doc,
            overall: figures.overall,
            measured_stages: figures.measured_stages,
        })
    }

    fn file(&self) -> PathBuf {
        self.dir.join(RESULTS_FILE)
    }

    fn requests(&self) -> u64 {
        self.overall.requests()
    }

    fn ok(&self) -> u64 {
        self.overall.outcome(Outcome::Ok)
    }

    fn throttled(&self) -> u64 {
        self.overall.outcome(Outcome::Throttled) + self.overall.outcome(Outcome::DailyQuota)
    }

    fn window_s(&self) -> f64 {
        self.overall.window_s().unwrap_or(0.0)
    }

    /// Which run, over which requests: cited by every figure taken from it.
    fn provenance(&self) -> String {
        format!(
            "{}: run {}, {} requests ended ({} ok) in measured stages {} over {} s",
            self.dir.display(),
            self.doc.run.run_id,
            self.requests(),
            self.ok(),
            self.measured_stages.join(", "),
            trim(self.window_s())
        )
    }

    /// The one model every request went to, if one.
    fn model(&self) -> Option<String> {
        let entries = self.doc.plan.mix.entries();
        let first = entries.first()?;
        entries
            .iter()
            .all(|e| e.model_id == first.model_id)
            .then(|| first.model_id.clone())
    }

    /// The one `max_tokens` every request sent, if one.
    fn max_tokens(&self) -> Option<u64> {
        let entries = self.doc.plan.mix.entries();
        let first = entries.first()?;
        entries
            .iter()
            .all(|e| e.max_tokens == first.max_tokens)
            .then(|| u64::from(first.max_tokens.get()))
    }

    /// Tokens of `kind` over the measured stages.
    fn tokens(&self, kind: TokenKind) -> u64 {
        self.overall.tokens(kind)
    }

    /// Input tokens, cached ones included.
    fn all_input_tokens(&self) -> u64 {
        self.tokens(TokenKind::Input)
            + self.tokens(TokenKind::CacheRead)
            + self.tokens(TokenKind::CacheWrite)
    }

    fn latency_ms(&self, metric: Metric, s: LatencyStat) -> Option<f64> {
        stat(self.overall.histogram(metric), s).map(|ns| ns as f64 / 1e6)
    }

    fn percentiles(&self, metric: Metric) -> LatencyPercentiles {
        LatencyPercentiles {
            p50: self.latency_ms(metric, LatencyStat::P50),
            p95: self.latency_ms(metric, LatencyStat::P95),
            p99: self.latency_ms(metric, LatencyStat::P99),
        }
    }

    /// The run's request profile. Rates are the load the run offered (what
    /// it achieved, all outcomes): a load test at one level has no busier
    /// minute, so its peak is its average; tokens are means per successful
    /// request (failed requests bill none).
    fn demand(&self, label: &str) -> Result<MeasuredDemand, FromError> {
        let ok = self.ok();
        if ok == 0 {
            return Err(FromError::Unusable {
                file: self.file(),
                why: format!(
                    "every one of its {} measured requests failed: it measured no tokens per request",
                    self.requests()
                ),
            });
        }
        let per_ok = |n: u64| n as f64 / ok as f64;
        let rpm = self.requests() as f64 / self.window_s() * 60.0;
        let cache_read = self.tokens(TokenKind::CacheRead);
        let cache_write = self.tokens(TokenKind::CacheWrite);
        let caching = cache_read + cache_write > 0;
        Ok(MeasuredDemand {
            label: label.to_owned(),
            source: format!(
                "{}; rates are the load the run offered, not production demand (peak = average at one level); tokens are means per successful request",
                self.provenance()
            ),
            model: self.model(),
            duration_s: self.window_s(),
            requests: self.requests(),
            peak_rpm: Some(rpm),
            average_rpm: Some(rpm),
            input_tokens: TokenStat::mean(per_ok(self.all_input_tokens())),
            output_tokens: TokenStat::mean(per_ok(self.tokens(TokenKind::Output))),
            cache_read_tokens: caching.then(|| per_ok(cache_read)),
            cache_write_tokens: caching.then(|| per_ok(cache_write)),
            max_tokens: self.max_tokens(),
            max_tokens_assumed: None,
            sessions: None,
            mean_e2e_seconds: self
                .latency_ms(Metric::E2eFromSend, LatencyStat::Mean)
                .map(|ms| ms / 1e3),
        })
    }

    /// What the run's measured stages offered: the load variable and its
    /// level, when it was one level throughout.
    fn offered(&self) -> Result<(LoadVariable, f64), String> {
        let load = &self.doc.plan.load;
        let (variable, base) = match load.model() {
            LoadModel::Closed { concurrency } => {
                (LoadVariable::Concurrency, f64::from(*concurrency))
            }
            LoadModel::Open { rate_per_s, .. } => (LoadVariable::Rate, *rate_per_s),
        };
        let measured: Vec<_> = load
            .stages()
            .iter()
            .filter(|s| matches!(s.kind, StageKind::Ramp | StageKind::Hold))
            .collect();
        if let Some(ramp) = measured.iter().find(|s| s.kind == StageKind::Ramp) {
            return Err(format!(
                "its measured stage {:?} ramps the load, so no single offered level can be read",
                ramp.name
            ));
        }
        let mut levels = measured.iter().map(|s| s.target.unwrap_or(base));
        let first = levels
            .next()
            .ok_or_else(|| "its plan has no measured stage".to_owned())?;
        if levels.any(|l| l != first) {
            return Err("its measured stages hold different load levels".to_owned());
        }
        Ok((variable, first))
    }

    /// This run as one level of a curve.
    fn level(&self, offered: f64) -> CurveLevel {
        let requests = self.requests();
        let ok = self.ok();
        let throttled = self.throttled();
        let fraction = |n: u64| n as f64 / requests as f64;
        CurveLevel {
            offered,
            achieved_rps: ok as f64 / self.window_s(),
            requests,
            output_tokens_per_s_per_stream: stat(
                self.overall.histogram(Metric::OutputMilliTokensPerS),
                LatencyStat::P50,
            )
            .map(|milli| milli as f64 / 1e3),
            output_tokens_per_s: self.overall.per_s(self.tokens(TokenKind::Output)),
            ttft_ms: self.percentiles(Metric::TtftFromSend),
            e2e_ms: self.percentiles(Metric::E2eFromSend),
            throttle_rate: fraction(throttled),
            error_rate: fraction(requests.saturating_sub(ok + throttled)),
            // The run's own verdict: the first threshold it broke.
            failed: self
                .doc
                .thresholds
                .iter()
                .find(|t| !t.passed)
                .map(|t| t.key.clone()),
            saturated: self.doc.health.saturated,
            source: Some(self.provenance()),
        }
    }

    /// The (TPM, RPM) quotas the embedded simulator applied to `model`, when
    /// it ran against one pool of it.
    fn sim_quota(&self, model: &str) -> (Option<u64>, Option<u64>) {
        let Some(sim) = &self.doc.simulator else {
            return (None, None);
        };
        let base = base_model_id(model);
        let pools: Vec<_> = sim
            .quota
            .iter()
            .filter(|p| base_model_id(&p.model) == base)
            .collect();
        match pools.as_slice() {
            [pool] => (Some(pool.tpm), pool.rpm),
            _ => (None, None),
        }
    }

    /// A single run as a curve of one level, when it offered one model one
    /// load level.
    fn single_level_curve(&self, label: &str) -> Result<MeasuredCurve, String> {
        let model = self
            .model()
            .ok_or_else(|| "its requests went to more than one model".to_owned())?;
        let (variable, offered) = self.offered()?;
        let (quota_tpm, quota_rpm) = self.sim_quota(&model);
        Ok(MeasuredCurve {
            label: label.to_owned(),
            source: self.provenance(),
            request: request_shape(std::slice::from_ref(self), self.max_tokens()),
            model,
            variable,
            quota_tpm,
            quota_rpm,
            levels: vec![self.level(offered)],
        })
    }
}

/// The mean successful request over `runs`, when any succeeded.
fn request_shape(runs: &[MeasuredRun], max_tokens: Option<u64>) -> Option<RequestShape> {
    let ok: u64 = runs.iter().map(MeasuredRun::ok).sum();
    (ok > 0).then(|| {
        let input: u64 = runs.iter().map(MeasuredRun::all_input_tokens).sum();
        let output: u64 = runs.iter().map(|r| r.tokens(TokenKind::Output)).sum();
        RequestShape {
            input_tokens: input as f64 / ok as f64,
            output_tokens: output as f64 / ok as f64,
            max_tokens,
        }
    })
}

/// A sweep directory's curve: one level per level directory.
fn sweep_curve(
    dir: &Path,
    label: &str,
    level_dirs: &[PathBuf],
    notes: &mut Vec<String>,
) -> Result<MeasuredCurve, FromError> {
    let runs = level_dirs
        .iter()
        .map(|d| MeasuredRun::read(d, true))
        .collect::<Result<Vec<_>, _>>()?;
    let mut model: Option<(String, &MeasuredRun)> = None;
    let mut variable: Option<(LoadVariable, &MeasuredRun)> = None;
    let mut levels = Vec::new();
    for run in &runs {
        let unusable = |why: String| FromError::Unusable {
            file: run.file(),
            why,
        };
        let m = run.model().ok_or_else(|| {
            unusable("its requests went to more than one model: a curve is of one model".into())
        })?;
        match &model {
            Some((first, at)) if *first != m => {
                return Err(unusable(format!(
                    "model {m}, but {} swept {first}: a curve is of one model",
                    at.file().display()
                )));
            }
            Some(_) => {}
            None => model = Some((m, run)),
        }
        let (v, offered) = run
            .offered()
            .map_err(|why| unusable(format!("{why}: not a sweep level")))?;
        match &variable {
            Some((first, at)) if *first != v => {
                return Err(unusable(format!(
                    "varies {}, but {} varies {}",
                    variable_name(v),
                    at.file().display(),
                    variable_name(*first)
                )));
            }
            Some(_) => {}
            None => variable = Some((v, run)),
        }
        let level = run.level(offered);
        if run.ok() == 0 {
            notes.push(format!(
                "{}: every one of the level's {} requests failed ({} throttled); kept: the level is where the service stopped answering",
                run.dir.display(),
                level.requests,
                run.throttled()
            ));
        }
        if run.doc.end.ended == Ended::Overloaded {
            notes.push(format!(
                "{}: stopped early as over-saturated (in flight and TTFT rose together); kept: the level is where the service stopped keeping up",
                run.dir.display()
            ));
        }
        if level.saturated {
            notes.push(format!(
                "{}: the load generator was saturated; the planner skips this level",
                run.dir.display()
            ));
        }
        levels.push(level);
    }
    let (Some((model, _)), Some((variable, _))) = (model, variable) else {
        return Err(FromError::NotMeasurement(dir.to_owned()));
    };
    let one_max_tokens = {
        let all: Vec<Option<u64>> = runs.iter().map(MeasuredRun::max_tokens).collect();
        all.first()
            .copied()
            .flatten()
            .filter(|first| all.iter().all(|m| *m == Some(*first)))
    };
    let (quota_tpm, quota_rpm) = runs[0].sim_quota(&model);
    let requests: u64 = runs.iter().map(MeasuredRun::requests).sum();
    Ok(MeasuredCurve {
        label: label.to_owned(),
        source: format!(
            "{}: {} levels ({} requests ended in their measured stages); each level cites its own run",
            dir.display(),
            runs.len(),
            requests
        ),
        request: request_shape(&runs, one_max_tokens),
        model,
        variable,
        quota_tpm,
        quota_rpm,
        levels,
    })
}

#[cfg(test)]
#[path = "from_tests.rs"]
mod tests;
