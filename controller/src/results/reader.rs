//! Reads a results directory back, rebuilding `results.json` from the
//! interval file when the run died before writing it, and assembles the
//! document from merged series (both at the end of a run and on recovery,
//! so the two cannot differ in how they compute). Thresholds are evaluated
//! against the document's figures by the report layer, never here.

use std::collections::BTreeMap;
use std::path::Path;

use quarry_engine::{HealthSample, RunPlan, SeriesDelta, SeriesKey, merge_series};
use serde::de::DeserializeOwned;

use super::ResultsError;
use super::document::{
    Ended, HealthSummary, IntervalRecord, ResultsDocument, RunEnd, RunMeta, SCHEMA_VERSION,
    SeriesRecord, SimulatorView,
};
use super::writer::{FLEET_FILE, INTERVALS_FILE, PLAN_FILE, RESULTS_FILE, RUN_FILE};

/// The largest results file read: 256 MiB. A day-long run at a 1 s
/// interval writes a few tens of MiB; the bound keeps `quarry report
/// /dev/zero` (or a corrupted file) from taking the machine's memory.
pub const MAX_RESULTS_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// Reads a results file whole, refusing one over
/// [`MAX_RESULTS_FILE_BYTES`] (checked as it reads: a pipe or a device has
/// no size to ask).
fn read_bounded(path: &Path) -> Result<String, ResultsError> {
    use std::io::Read as _;
    let io = |source| ResultsError::Io {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let too_large = |size| ResultsError::TooLarge {
        path: path.to_owned(),
        size,
        limit: MAX_RESULTS_FILE_BYTES,
    };
    if let Ok(meta) = file.metadata()
        && meta.is_file()
        && meta.len() > MAX_RESULTS_FILE_BYTES
    {
        return Err(too_large(meta.len()));
    }
    let mut bytes = Vec::new();
    file.take(MAX_RESULTS_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_RESULTS_FILE_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    String::from_utf8(bytes).map_err(|e| ResultsError::Json {
        path: path.to_owned(),
        line: None,
        detail: format!("not UTF-8 (byte {})", e.utf8_error().valid_up_to()),
    })
}

/// Refuses a document no run could have written, naming the field: a
/// stage or the run ending before it started, or counters whose sum over
/// the series does not fit in 64 bits (the report adds them up).
fn check_document(path: &Path, doc: &ResultsDocument) -> Result<(), ResultsError> {
    let impossible = |field: String, detail: String| ResultsError::Impossible {
        path: path.to_owned(),
        field,
        detail,
    };
    for (i, stage) in doc.run.stages.iter().enumerate() {
        if stage.end_ns < stage.start_ns {
            return Err(impossible(
                format!("run.stages[{i}].end_ns"),
                format!(
                    "stage {:?} ends ({} ns) before it starts ({} ns)",
                    stage.name, stage.end_ns, stage.start_ns
                ),
            ));
        }
    }
    let mut totals: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut requests: u64 = 0;
    for (i, record) in doc.series.iter().enumerate() {
        let (_, delta) = record.decode()?;
        let counters = delta.counters();
        for (name, value) in counters.named() {
            let total = totals.entry(name).or_insert(0);
            *total = total.checked_add(value).ok_or_else(|| {
                impossible(
                    format!("series[{i}].counters.{name}"),
                    format!("the sum of {name} over the series exceeds 2^64 - 1"),
                )
            })?;
        }
        let outcomes = quarry_bedrock::Outcome::ALL
            .iter()
            .try_fold(0u64, |sum, o| {
                sum.checked_add(counters.get(quarry_engine::Count::Outcome(*o)))
            })
            .and_then(|n| requests.checked_add(n));
        requests = outcomes.ok_or_else(|| {
            impossible(
                format!("series[{i}].counters"),
                "the number of requests (the sum of the outcome counters over the series) exceeds 2^64 - 1"
                    .to_owned(),
            )
        })?;
    }
    Ok(())
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, ResultsError> {
    let text = read_bounded(path)?;
    parse_json(path, &text)
}

fn parse_json<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, ResultsError> {
    serde_json::from_str(text).map_err(|e| ResultsError::Json {
        path: path.to_owned(),
        line: None,
        detail: e.to_string(),
    })
}

fn check_version(path: &Path, found: u32) -> Result<(), ResultsError> {
    if found == 0 || found > SCHEMA_VERSION {
        return Err(ResultsError::Schema {
            path: path.to_owned(),
            found,
        });
    }
    Ok(())
}

/// Reads `dir/fleet.json` when the run was distributed; `None` otherwise.
pub fn read_fleet<T: DeserializeOwned>(dir: &Path) -> Result<Option<T>, ResultsError> {
    let path = dir.join(FLEET_FILE);
    if !path.exists() {
        return Ok(None);
    }
    read_json(&path).map(Some)
}

/// Reads `dir/results.json`, or recovers it from the interval file when the
/// run did not get to write it.
pub fn read_results(dir: &Path) -> Result<ResultsDocument, ResultsError> {
    let path = dir.join(RESULTS_FILE);
    if path.exists() {
        return parse_results(&path, &read_bounded(&path)?);
    }
    if dir.join(RUN_FILE).exists() {
        return recover_results(dir);
    }
    Err(ResultsError::NotResults(dir.to_owned()))
}

/// Parses and checks the text of a `results.json` (`path` only labels
/// errors): what [`read_results`] does with the file once read, public so
/// the fuzz targets and their corpus replay call the code that ships.
pub fn parse_results(path: &Path, text: &str) -> Result<ResultsDocument, ResultsError> {
    let doc: ResultsDocument = parse_json(path, text)?;
    check_version(path, doc.schema_version)?;
    check_document(path, &doc)?;
    Ok(doc)
}

/// Rebuilds the document from `run.json`, `plan.json` and
/// `intervals.jsonl`. A torn last line (the interval being written when
/// the process died) is skipped; a bad line elsewhere is an error.
pub fn recover_results(dir: &Path) -> Result<ResultsDocument, ResultsError> {
    let run_path = dir.join(RUN_FILE);
    let plan_path = dir.join(PLAN_FILE);
    let path = dir.join(INTERVALS_FILE);
    let run = read_bounded(&run_path)?;
    let plan = read_bounded(&plan_path)?;
    let intervals = read_bounded(&path)?;
    recover_from_texts([
        (run_path.as_path(), run.as_str()),
        (plan_path.as_path(), plan.as_str()),
        (path.as_path(), intervals.as_str()),
    ])
}

/// What [`recover_results`] does with the texts of `run.json`, `plan.json`
/// and `intervals.jsonl` (in that order, each with the path that labels
/// its errors) once read; public so the fuzz targets and their corpus
/// replay call the code that ships.
pub fn recover_from_texts(
    [(run_path, run), (plan_path, plan), (path, text)]: [(&Path, &str); 3],
) -> Result<ResultsDocument, ResultsError> {
    let meta: RunMeta = parse_json(run_path, run)?;
    check_version(run_path, meta.schema_version)?;
    let plan: RunPlan = parse_json(plan_path, plan)?;
    let path = path.to_owned();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut series = BTreeMap::new();
    let mut priced = BTreeMap::new();
    let mut health = Vec::new();
    let mut finished_at_ns = 0;
    for (i, line) in lines.iter().enumerate() {
        let record: IntervalRecord = match serde_json::from_str(line) {
            Ok(r) => r,
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => break,
            Err(e) => {
                return Err(ResultsError::Json {
                    path: path.clone(),
                    line: Some(i + 1),
                    detail: e.to_string(),
                });
            }
        };
        for s in &record.series {
            priced.insert((s.model.clone(), s.tier.clone()), s.priced);
        }
        let snapshot = record.decode()?;
        merge_series(&mut series, &snapshot.series);
        health.push(snapshot.health);
        finished_at_ns = finished_at_ns.max(record.end_ns);
    }
    let end = RunEnd {
        ended: Ended::Recovered,
        finished_at_ns,
        sent: None,
        overload: None,
    };
    assemble(Assembly {
        meta,
        plan,
        end,
        series: &series,
        health: &health,
        simulator: None,
        priced: &|k: &SeriesKey| {
            let tier = k.tier.map(|t| t.as_str().to_owned());
            priced
                .get(&(k.model.to_string(), tier))
                .copied()
                .unwrap_or(false)
        },
    })
}

/// Everything a results document is built from.
pub struct Assembly<'a> {
    /// What was run.
    pub meta: RunMeta,
    /// The resolved plan.
    pub plan: RunPlan,
    /// How it ended.
    pub end: RunEnd,
    /// Every series' totals over the whole run.
    pub series: &'a BTreeMap<SeriesKey, SeriesDelta>,
    /// Every interval's health, in order.
    pub health: &'a [HealthSample],
    /// The simulator's view, when the target was the simulator.
    pub simulator: Option<SimulatorView>,
    /// Whether a model has a price.
    pub priced: &'a dyn Fn(&SeriesKey) -> bool,
}

/// Builds the document; its `thresholds` are left for the report layer to
/// evaluate against the document's figures (`report::evaluate`).
pub fn assemble(a: Assembly<'_>) -> Result<ResultsDocument, ResultsError> {
    let series = a
        .series
        .iter()
        .map(|(k, d)| SeriesRecord::encode(k, d, (a.priced)(k)))
        .collect::<Result<_, _>>()?;
    Ok(ResultsDocument {
        schema_version: SCHEMA_VERSION,
        quarry_version: env!("CARGO_PKG_VERSION").to_owned(),
        run: a.meta,
        plan: a.plan,
        end: a.end,
        series,
        health: HealthSummary::from_samples(a.health),
        simulator: a.simulator,
        thresholds: Vec::new(),
        groups: Vec::new(),
        partial_shares: Vec::new(),
        walls_met: Vec::new(),
    })
}
