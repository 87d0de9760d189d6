//! `quarry plan PLAN.toml [--from DIR|TRACE ...] [--out DIR]`: a capacity
//! plan from a plan file, the built-in prices and measurements.
//!
//! The chain: the plan file is validated ([`quarry_capacity::parse_plan_file`]:
//! every mistake as `FILE:LINE: field: message`); each `--from` directory
//! or trace file adds its measurements (module [`from`]), and each trace's
//! demand profiles get their classes (module [`trace`]); the built-in price
//! table ([`quarry_engine::PriceTable`]) fills the prices of every model the
//! plan may use; the planner computes the plan; `plan.json` is written, read back, and
//! `plan.txt` rendered from what was read, so the text always reproduces
//! from the JSON alone. The planner itself is pure; all file access is here.
//!
//! ```text
//! plans/<id>/
//!   plan.json   the plan, versioned (docs/plan-schema.md)
//!   plan.txt    the plan as printed
//!   report.html the plan with charts: demand against the walls, the strategies compared
//! ```

pub mod from;
pub mod trace;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use quarry_capacity::{
    Origin, PlanFileContext, PlanFileError, PlanInput, PlanJsonError, PoolKey, QuotaEntry,
    TokenPrices,
};
use quarry_engine::PriceTable;

pub use from::{FromError, Loaded, load_from};

/// The plan as JSON, in the output directory.
pub const PLAN_JSON: &str = "plan.json";
/// The plan as text, in the output directory.
pub const PLAN_TXT: &str = "plan.txt";

/// Where the built-in prices come from, as the plan's sources list says.
pub const BUILTIN_PRICES_SOURCE: &str = "Quarry's built-in on-demand price table (PROTOCOL.md §6: USD per 1M tokens from the LiteLLM price map, checked only against third-party articles; regional profiles of Claude 4.5+ at +10%)";

/// `quarry plan`'s exit codes (its `--help` and the README).
pub const PLAN_EXIT_CODES: &str = "\
Exit codes:
  0  the plan was written (plan.json, plan.txt) and printed
  2  usage or plan-file error (each finding as FILE:LINE: field: message),
     a model's demand defined twice (by a class and a --from trace, or two
     traces), or --out is not empty; nothing was planned
  3  a --from input is unusable (not a results or sweep directory or a trace
     file, unreadable, a bad trace line, a run that did not complete or
     measured nothing), or the plan could not be written; nothing was
     planned, or the error names the file not written";

/// What `quarry plan` is asked to do.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// The plan file.
    pub plan_path: PathBuf,
    /// Results and sweep directories and trace files to take measurements
    /// from, in order.
    pub from: Vec<PathBuf>,
    /// The output directory; `None`: `plans/<id>/`.
    pub out: Option<PathBuf>,
    /// The wall-clock time the command started: names the default output
    /// directory (the planner never reads a clock).
    pub started_at: SystemTime,
    /// `--quotas`: a `quotas.json` of `quarry quotas`, whose entries fill
    /// the pools the plan file enters no quota for.
    pub quotas: Option<PathBuf>,
}

/// A plan written.
#[derive(Debug, Clone)]
pub struct PlanOutcome {
    /// The output directory.
    pub dir: PathBuf,
    /// `plan.txt`, as written.
    pub text: String,
    /// What the `--from` loader noticed (one line each).
    pub notes: Vec<String>,
}

/// Why `quarry plan` wrote no plan.
#[derive(Debug, thiserror::Error)]
pub enum PlanCommandError {
    /// The plan file could not be read.
    #[error("{path}: {source}")]
    ReadPlan {
        /// The plan file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The plan file is invalid: every finding, one per line.
    #[error("{0}\nnothing was planned")]
    PlanFile(PlanFileError),
    /// The output directory already holds files.
    #[error("{0}: the output directory exists and is not empty")]
    OutNotEmpty(PathBuf),
    /// The `--quotas` file cannot be read.
    #[error("{path}: {message}\nnothing was planned")]
    Quotas {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A `--from` input cannot be used.
    #[error("{0}\nnothing was planned")]
    From(#[from] FromError),
    /// A model's demand is defined twice (a class and a trace, two
    /// traces, two classes taking one trace profile): each finding names
    /// both.
    #[error("{}\nnothing was planned", .0.join("\n"))]
    Demand(Vec<String>),
    /// A file of the plan could not be written or read back.
    #[error("{path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `plan.json` as written did not read back.
    #[error("{path}: {source}")]
    ReadBack {
        /// The file.
        path: PathBuf,
        /// Why.
        source: PlanJsonError,
    },
}

impl PlanCommandError {
    /// The process exit code (see [`PLAN_EXIT_CODES`]).
    pub fn exit_code(&self) -> u8 {
        match self {
            PlanCommandError::ReadPlan { .. }
            | PlanCommandError::PlanFile(_)
            | PlanCommandError::OutNotEmpty(_)
            | PlanCommandError::Quotas { .. }
            | PlanCommandError::Demand(_) => 2,
            PlanCommandError::From(_)
            | PlanCommandError::Write { .. }
            | PlanCommandError::ReadBack { .. } => 3,
        }
    }
}

/// Runs `quarry plan`: validates, measures, plans, writes, and returns
/// `plan.txt` as written.
pub fn run_plan(opts: &PlanOptions) -> Result<PlanOutcome, PlanCommandError> {
    let text =
        std::fs::read_to_string(&opts.plan_path).map_err(|source| PlanCommandError::ReadPlan {
            path: opts.plan_path.clone(),
            source,
        })?;
    // A trace supplies classes for the models no class takes, so a plan
    // file with a trace may have none of its own.
    let context = PlanFileContext {
        demand_from_trace: opts.from.iter().any(|p| p.is_file()),
    };
    let mut input = quarry_capacity::parse_plan_file_with(&opts.plan_path, &text, context)
        .map_err(PlanCommandError::PlanFile)?;
    let dir = opts
        .out
        .clone()
        .unwrap_or_else(|| default_out_dir(&opts.plan_path, opts.started_at));
    ensure_empty(&dir)?;
    let mut notes = Vec::new();
    if let Some(path) = &opts.quotas {
        notes.extend(add_account_quotas(&mut input, path)?);
    }
    let mut loaded = load_from(&opts.from)?;
    notes.append(&mut loaded.notes);
    input.measured = loaded.measured;
    // Before the prices: a trace may add classes, and so models to price.
    notes.extend(
        trace::cover_classes(&mut input, &loaded.traces, &opts.plan_path)
            .map_err(PlanCommandError::Demand)?,
    );
    add_builtin_prices(&mut input, &PriceTable::default());
    let plan = quarry_capacity::plan(&input);
    let write_err = |path: &Path| {
        let path = path.to_owned();
        move |source| PlanCommandError::Write { path, source }
    };
    std::fs::create_dir_all(&dir).map_err(write_err(&dir))?;
    let json_path = dir.join(PLAN_JSON);
    std::fs::write(&json_path, quarry_capacity::to_json(&plan)).map_err(write_err(&json_path))?;
    // plan.txt is rendered from the file, not from memory: whatever plan.json
    // says is what the text shows.
    let written = std::fs::read_to_string(&json_path).map_err(write_err(&json_path))?;
    let read_back =
        quarry_capacity::from_json(&written).map_err(|source| PlanCommandError::ReadBack {
            path: json_path.clone(),
            source,
        })?;
    let rendered = quarry_capacity::render_text(&read_back);
    let txt_path = dir.join(PLAN_TXT);
    std::fs::write(&txt_path, &rendered).map_err(write_err(&txt_path))?;
    let html_path = dir.join(crate::report::html::REPORT_HTML);
    let page = crate::report::html::plan_page(&read_back, &rendered);
    std::fs::write(&html_path, page.render()).map_err(write_err(&html_path))?;
    Ok(PlanOutcome {
        dir,
        text: rendered,
        notes,
    })
}

/// Adds the pools of `quotas.json` at `path` that the plan file enters no
/// quota for, each value cited as entered at the file's line of its entry
/// (`quota[N].tpm` at `quotas.json:LINE`); the plan file wins where both
/// enter a pool. Returns one note per pool the plan file kept.
pub fn add_account_quotas(
    input: &mut PlanInput,
    path: &Path,
) -> Result<Vec<String>, PlanCommandError> {
    let quotas_error = |message: String| PlanCommandError::Quotas {
        path: path.to_owned(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| quotas_error(e.to_string()))?;
    let doc = crate::quotas::QuotasDocument::from_json(&text).map_err(|e| {
        quotas_error(format!(
            "{e} (expected the JSON of `quarry quotas --format json`)"
        ))
    })?;
    let mut notes = Vec::new();
    for entry in doc.quota {
        let pool = PoolKey::of_model_id(&entry.model);
        if pool.is_none() {
            return Err(quotas_error(format!(
                "quota: {:?} names no on-demand, cross-Region or global pool",
                entry.model
            )));
        }
        if input
            .quotas
            .iter()
            .any(|q| PoolKey::of_model_id(&q.model) == pool)
        {
            notes.push(format!(
                "{}: the plan file's quota for {} is used, not this file's",
                path.display(),
                entry.model
            ));
            continue;
        }
        let index = input.quotas.len();
        let needle = format!(
            "{{\"model\":{}",
            serde_json::to_string(&entry.model).unwrap_or_default()
        );
        let line = text
            .lines()
            .position(|l| l.trim_start().starts_with(&needle))
            .map_or(1, |i| i + 1);
        for (field, value) in [("rpm", entry.rpm), ("tpm", entry.tpm), ("tpd", entry.tpd)] {
            if value.is_some() {
                input.origins.insert(
                    format!("quota[{index}].{field}"),
                    Origin {
                        file: path.display().to_string(),
                        line,
                    },
                );
            }
        }
        input.quotas.push(QuotaEntry {
            model: entry.model,
            rpm: entry.rpm,
            tpm: entry.tpm,
            tpd: entry.tpd,
            rpm_adjustable: entry.rpm_adjustable,
            tpm_adjustable: entry.tpm_adjustable,
            tpd_adjustable: entry.tpd_adjustable,
        });
    }
    Ok(notes)
}

/// `plans/<plan file stem>-<run-id-style timestamp>/`.
pub fn default_out_dir(plan_path: &Path, started_at: SystemTime) -> PathBuf {
    let stem = plan_path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plan".to_owned());
    Path::new("plans").join(format!("{stem}-{}", crate::run::run_id(started_at)))
}

/// Refuses an output directory that already holds files (a new or empty one is fine).
fn ensure_empty(dir: &Path) -> Result<(), PlanCommandError> {
    match std::fs::read_dir(dir).map(|mut entries| entries.next().is_some()) {
        Ok(true) => Err(PlanCommandError::OutNotEmpty(dir.to_owned())),
        Ok(false) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(PlanCommandError::Write {
            path: dir.to_owned(),
            source,
        }),
    }
}

/// Fills `input.prices.builtin` from `table` for every model the plan may
/// price (candidates, routes, offers and their inference-profile
/// alternatives); models the table does not know stay unpriced, and the
/// plan says so.
pub fn add_builtin_prices(input: &mut PlanInput, table: &PriceTable) {
    for id in input.priced_model_ids() {
        if let Some(p) = table.lookup(&id) {
            input.prices.builtin.insert(
                id,
                TokenPrices {
                    input: p.input,
                    output: p.output,
                    cache_write_5m: p.cache_write_5m,
                    cache_write_1h: p.cache_write_1h,
                    cache_read: p.cache_read,
                },
            );
        }
    }
    input.prices.builtin_source = Some(BUILTIN_PRICES_SOURCE.to_owned());
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAN: &str = r#"
start = "2026-12-01"
[[class]]
name = "chat"
peak_rpm = 60
average_rpm = 20
input_tokens = 1000
output_tokens = 200
max_tokens = 256
models = ["us.anthropic.claude-sonnet-4-5-20250929-v1:0"]
"#;

    #[test]
    fn builtin_prices_are_the_engines_table_for_every_priced_model() {
        let mut input = quarry_capacity::parse_plan_file("PLAN.toml", PLAN).unwrap();
        let table = PriceTable::default();
        add_builtin_prices(&mut input, &table);
        let id = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
        let got = input.prices.builtin[id];
        let want = table.lookup(id).unwrap();
        // Sonnet 4.5 in a regional profile: $3.30 / $16.50 per 1M (+10%).
        assert_eq!((got.input, got.output), (3_300_000, 16_500_000));
        assert_eq!(got.cache_read, want.cache_read);
        assert!(input.prices.builtin_source.is_some());
        // Every id the plan may price is looked up; unknown ones stay out.
        for id in input.priced_model_ids() {
            assert_eq!(
                input.prices.builtin.contains_key(&id),
                table.lookup(&id).is_some(),
                "{id}"
            );
        }
    }

    #[test]
    fn bad_plan_file_is_exit_2_with_file_line_and_field() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("bad.toml");
        std::fs::write(&path, PLAN.replace("peak_rpm = 60", "peak_rpm = -5")).unwrap();
        let err = run_plan(&PlanOptions {
            plan_path: path.clone(),
            from: Vec::new(),
            out: Some(tmp.path().join("out")),
            started_at: SystemTime::UNIX_EPOCH,
            quotas: None,
        })
        .unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let text = err.to_string();
        assert!(
            text.contains(&format!("{}:5: class[0].peak_rpm", path.display())),
            "{text}"
        );
        assert!(!tmp.path().join("out").exists());
    }

    #[test]
    fn writes_json_and_text_rendered_from_the_json_into_an_empty_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("plan.toml");
        std::fs::write(&path, PLAN).unwrap();
        let out = tmp.path().join("out");
        let opts = PlanOptions {
            plan_path: path,
            from: Vec::new(),
            out: Some(out.clone()),
            started_at: SystemTime::UNIX_EPOCH,
            quotas: None,
        };
        let outcome = run_plan(&opts).unwrap();
        let json = std::fs::read_to_string(out.join(PLAN_JSON)).unwrap();
        let plan = quarry_capacity::from_json(&json).unwrap();
        assert_eq!(quarry_capacity::render_text(&plan), outcome.text);
        assert_eq!(
            std::fs::read_to_string(out.join(PLAN_TXT)).unwrap(),
            outcome.text
        );
        // The prices came from the built-in table and are cited.
        assert!(
            plan.sources
                .iter()
                .any(|s| s.id.starts_with("builtin:price:")),
            "{:?}",
            plan.sources
        );
        // A second plan into the same directory is refused.
        let again = run_plan(&opts).unwrap_err();
        assert!(matches!(again, PlanCommandError::OutNotEmpty(_)), "{again}");
        assert_eq!(again.exit_code(), 2);
    }

    #[test]
    fn default_out_dir_is_under_plans_named_by_the_file_and_time() {
        let dir = default_out_dir(Path::new("examples/plan.toml"), SystemTime::UNIX_EPOCH);
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(dir.parent(), Some(Path::new("plans")));
        assert!(name.starts_with("plan-19700101T000000Z-"), "{name}");
    }
}
