//! The results directory of a run, written incrementally and read back.
//!
//! ```text
//! results/<run-id>/
//!   spec.toml         the spec as given
//!   plan.json         the resolved plan
//!   run.json          what was run and when (written first)
//!   intervals.jsonl   one line per interval, appended and flushed as it ends
//!   results.json      the merged results (written at the end)
//!   <metric>.hgrm     percentile distribution per metric, measured stages
//!   report.txt        the report as printed
//!   fleet.json        a distributed run's shares: how each ended, start skew
//! ```
//!
//! A crash loses at most the interval in progress: [`read_results`] rebuilds
//! the document from `run.json`, `plan.json` and `intervals.jsonl` when
//! `results.json` is missing. The schema is documented in
//! `docs/results-schema.md`.

mod document;
mod hgrm;
mod reader;
mod sim_view;
mod writer;

use std::path::PathBuf;

pub use document::{
    Ended, GroupRecord, HISTOGRAM_ENCODING, HealthRecord, HealthSummary, HistogramConfig,
    IntervalRecord, IntervalSummary, PartialShare, PlannedLoad, ResultsDocument, RunEnd, RunMeta,
    SCHEMA_VERSION, SaturationCounts, SaturationRecord, SeriesRecord, SimLane, SimQuotaPool,
    SimulatorView, StageRecord, ThresholdResult, ThresholdRule, WallMet,
};
pub use hgrm::{TICKS_PER_HALF_DISTANCE, render_hgrm};
pub use reader::{
    Assembly, MAX_RESULTS_FILE_BYTES, assemble, parse_results, read_fleet, read_results,
    recover_from_texts, recover_results,
};
pub use writer::{
    FLEET_FILE, INTERVALS_FILE, PLAN_FILE, REPORT_FILE, RESULTS_FILE, RUN_FILE, ResultsWriter,
    SPEC_FILE, write_document, write_hgrm_files, write_report,
};

/// A results directory could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    /// A file could not be created, written or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The output directory already holds files.
    #[error("{0}: the results directory exists and is not empty")]
    NotEmpty(PathBuf),
    /// A file is not valid JSON of the expected shape.
    #[error("{path}{}: {detail}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Json {
        /// The file.
        path: PathBuf,
        /// The 1-based line, for JSONL files.
        line: Option<usize>,
        /// The parser's complaint.
        detail: String,
    },
    /// Written by a newer (or unknown) schema.
    #[error("{path}: schema_version {found} is not supported (this build reads {SCHEMA_VERSION})")]
    Schema {
        /// The file.
        path: PathBuf,
        /// The version found.
        found: u32,
    },
    /// A file larger than [`MAX_RESULTS_FILE_BYTES`] (not read).
    #[error("{path}: {size} bytes; at most {limit} are read (not a results file this build wrote)")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size in bytes (at least: reading stopped past the limit).
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A document no run could have written.
    #[error("{path}: {field}: {detail}")]
    Impossible {
        /// The file.
        path: PathBuf,
        /// The offending field (`run.stages[1].end_ns`).
        field: String,
        /// What is impossible about it.
        detail: String,
    },
    /// Neither `results.json` nor the files to recover it from exist.
    #[error("{0}: not a results directory (no results.json, run.json or intervals.jsonl)")]
    NotResults(PathBuf),
    /// A histogram's base64 text is malformed.
    #[error("histogram {metric}: bad base64: {detail}")]
    Base64 {
        /// The metric name.
        metric: String,
        /// The decoder's complaint.
        detail: String,
    },
    /// A histogram or counter could not be decoded.
    #[error(transparent)]
    Codec(#[from] quarry_engine::CodecError),
    /// An operation name this build does not know.
    #[error("unknown operation {0:?}")]
    UnknownOperation(String),
    /// A service tier name this build does not know.
    #[error("unknown service tier {0:?}")]
    UnknownTier(String),
}
