//! Writes a results directory as the run goes: the spec, plan and run
//! metadata first, one flushed line per interval, then the merged document,
//! the `.hgrm` distributions and the report at the end.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use quarry_engine::{
    IntervalSnapshot, Metric, PriceTable, RunPlan, SeriesDelta, SeriesKey, TierPrices,
};
use serde::Serialize;

use super::ResultsError;
use super::document::{IntervalRecord, IntervalSummary, ResultsDocument, RunMeta};
use super::hgrm::render_hgrm;

/// The spec as given.
pub const SPEC_FILE: &str = "spec.toml";
/// The resolved plan.
pub const PLAN_FILE: &str = "plan.json";
/// Run metadata, written first.
pub const RUN_FILE: &str = "run.json";
/// The interval time series.
pub const INTERVALS_FILE: &str = "intervals.jsonl";
/// The merged results.
pub const RESULTS_FILE: &str = "results.json";
/// The report as printed.
pub const REPORT_FILE: &str = "report.txt";
/// How each share of a distributed run ended, and their start skew.
pub const FLEET_FILE: &str = "fleet.json";

/// An open results directory.
#[derive(Debug)]
pub struct ResultsWriter {
    /// The directory.
    dir: PathBuf,
    /// `intervals.jsonl`, unbuffered: each interval is one `write_all` of
    /// a whole line, so a crash leaves at most a torn last line, which the
    /// reader skips; a failed write (ENOSPC) is cut back to the last whole
    /// line ([`append_line`]).
    intervals: File,
    /// Bytes of whole lines in `intervals.jsonl`.
    intervals_len: u64,
    /// A torn line could not be cut back: nothing more is appended (a line
    /// after it would read as garbage).
    intervals_torn: bool,
    /// Intervals that could not be appended, and the first reason.
    unwritten_intervals: Option<(u64, String)>,
    /// Decides each series' `priced` flag.
    prices: PriceTable,
    /// Decides it with the series' tier.
    tier_prices: TierPrices,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ResultsError + '_ {
    move |source| ResultsError::Io {
        path: path.to_owned(),
        source,
    }
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<(), ResultsError> {
    let mut text = serde_json::to_string_pretty(value).map_err(|e| ResultsError::Json {
        path: path.to_owned(),
        line: None,
        detail: e.to_string(),
    })?;
    text.push('\n');
    write_atomically(path, text.as_bytes())
}

/// Writes via a temporary file and a rename, so a reader never sees half a
/// file. When that fails (a full disk) the temporary file is removed and the
/// error names `path`, the file that was not written.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ResultsError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io_error(path)(e)
        })
}

/// A file lines are appended to, which can be cut back to a length.
pub(crate) trait LineFile: std::io::Write {
    /// Truncates to `len` bytes.
    fn cut_to(&mut self, len: u64) -> std::io::Result<()>;
}

impl LineFile for File {
    fn cut_to(&mut self, len: u64) -> std::io::Result<()> {
        self.set_len(len)
    }
}

/// Why a line was not appended.
#[derive(Debug)]
pub(crate) enum LineError {
    /// Not written; the file still ends with a whole line.
    Unwritten(std::io::Error),
    /// Not written, and part of it could not be cut back.
    Torn(std::io::Error),
}

/// Appends `line` whole or not at all: a write that fails part-way (a full
/// disk) is cut back to `len`, the bytes of whole lines so far, which it
/// advances on success.
pub(crate) fn append_line(
    file: &mut impl LineFile,
    len: &mut u64,
    line: &[u8],
) -> Result<(), LineError> {
    match file.write_all(line).and_then(|()| file.flush()) {
        Ok(()) => {
            *len += line.len() as u64;
            Ok(())
        }
        Err(e) => match file.cut_to(*len) {
            Ok(()) => Err(LineError::Unwritten(e)),
            Err(_) => Err(LineError::Torn(e)),
        },
    }
}

impl ResultsWriter {
    /// Creates `dir` (which must not hold files yet) and writes the spec,
    /// the plan and the run metadata.
    pub fn create(
        dir: &Path,
        spec_text: &str,
        plan: &RunPlan,
        meta: &RunMeta,
    ) -> Result<Self, ResultsError> {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let mut entries = std::fs::read_dir(dir).map_err(io_error(dir))?;
        if entries.next().is_some() {
            return Err(ResultsError::NotEmpty(dir.to_owned()));
        }
        let spec = dir.join(SPEC_FILE);
        std::fs::write(&spec, spec_text).map_err(io_error(&spec))?;
        write_json(&dir.join(PLAN_FILE), plan)?;
        write_json(&dir.join(RUN_FILE), meta)?;
        let path = dir.join(INTERVALS_FILE);
        let intervals = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(io_error(&path))?;
        Ok(ResultsWriter {
            dir: dir.to_owned(),
            intervals,
            intervals_len: 0,
            intervals_torn: false,
            unwritten_intervals: None,
            prices: PriceTable::with_overrides(plan.pricing.clone()),
            tier_prices: plan.tier_prices,
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the price table knows the series' model, and its tier a
    /// price ratio.
    pub fn is_priced(&self, key: &SeriesKey) -> bool {
        !key.model.is_empty()
            && self.prices.lookup(&key.model).is_some()
            && self.tier_prices.ratio(key.tier).is_some()
    }

    /// Appends one interval (and its summary) as a line and hands it to
    /// the OS. Once a line could not be written, no later one is: the file
    /// holds whole lines of the first intervals, in order, and
    /// [`ResultsWriter::unwritten_intervals`] counts the rest.
    pub fn append(
        &mut self,
        snapshot: &IntervalSnapshot,
        summary: IntervalSummary,
    ) -> Result<(), ResultsError> {
        let path = self.dir.join(INTERVALS_FILE);
        let record = IntervalRecord::encode(snapshot, summary, &|k| self.is_priced(k))?;
        let mut line = serde_json::to_string(&record).map_err(|e| ResultsError::Json {
            path: path.clone(),
            line: None,
            detail: e.to_string(),
        })?;
        line.push('\n');
        let written = if self.intervals_torn {
            Err(std::io::Error::other(
                "an earlier line could not be cut back after a failed write; nothing more is appended",
            ))
        } else if self.unwritten_intervals.is_some() {
            // A later, shorter line may fit where a longer one did not (the
            // last page of a full disk): appending it would leave a gap, and
            // the file must hold the first intervals in order.
            Err(std::io::Error::other(
                "an earlier interval could not be written; later ones are not appended",
            ))
        } else {
            match append_line(
                &mut self.intervals,
                &mut self.intervals_len,
                line.as_bytes(),
            ) {
                Err(LineError::Torn(e)) => {
                    self.intervals_torn = true;
                    Err(e)
                }
                Err(LineError::Unwritten(e)) => Err(e),
                Ok(()) => Ok(()),
            }
        };
        written.map_err(|e| {
            let (n, _) = self
                .unwritten_intervals
                .get_or_insert_with(|| (0, e.to_string()));
            *n += 1;
            io_error(&path)(e)
        })
    }

    /// Intervals `append` could not write, and why the first one failed.
    pub fn unwritten_intervals(&self) -> Option<(u64, &str)> {
        self.unwritten_intervals
            .as_ref()
            .map(|(n, why)| (*n, why.as_str()))
    }

    /// Writes `results.json`.
    pub fn write_document(&self, doc: &ResultsDocument) -> Result<(), ResultsError> {
        write_document(&self.dir, doc)
    }

    /// Writes `fleet.json` (a distributed run's shares, as the coordinator
    /// recorded them).
    pub fn write_fleet(&self, shares: &impl Serialize) -> Result<(), ResultsError> {
        write_json(&self.dir.join(FLEET_FILE), shares)
    }
}

/// Writes `results.json` into `dir`.
pub fn write_document(dir: &Path, doc: &ResultsDocument) -> Result<(), ResultsError> {
    write_json(&dir.join(RESULTS_FILE), doc)
}

/// Writes one `.hgrm` per non-empty histogram of `measured`: latencies in
/// milliseconds, output tokens per second in tokens. Returns the file names.
pub fn write_hgrm_files(dir: &Path, measured: &SeriesDelta) -> Result<Vec<String>, ResultsError> {
    let mut written = Vec::new();
    for metric in Metric::ALL {
        let h = measured.histogram(metric);
        if h.is_empty() {
            continue;
        }
        let (name, scale) = hgrm_name(metric);
        let file = format!("{name}.hgrm");
        let path = dir.join(&file);
        write_atomically(&path, render_hgrm(h, scale).as_bytes())?;
        written.push(file);
    }
    Ok(written)
}

/// The file stem and value scale of a metric's `.hgrm`.
fn hgrm_name(metric: Metric) -> (String, f64) {
    let name = metric.name();
    match name.strip_suffix("_ns") {
        Some(stem) => (format!("{stem}_ms"), 1e6),
        // Milli-tokens per second, printed as tokens per second.
        None => (name.replace("_milli", ""), 1e3),
    }
}

/// Writes `report.txt`.
pub fn write_report(dir: &Path, text: &str) -> Result<(), ResultsError> {
    write_atomically(&dir.join(REPORT_FILE), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_leaves_whole_lines_only() {
        /// Takes `room` bytes, then fails with ENOSPC; `cut_to` truncates.
        struct FullDisk {
            bytes: Vec<u8>,
            room: usize,
        }
        impl std::io::Write for FullDisk {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                let free = self.room.saturating_sub(self.bytes.len());
                if free == 0 {
                    return Err(std::io::Error::from_raw_os_error(28));
                }
                let n = free.min(buf.len());
                self.bytes.extend_from_slice(&buf[..n]);
                Ok(n)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        impl LineFile for FullDisk {
            fn cut_to(&mut self, len: u64) -> std::io::Result<()> {
                self.bytes.truncate(len as usize);
                Ok(())
            }
        }
        let mut disk = FullDisk {
            bytes: Vec::new(),
            room: 30,
        };
        let mut len = 0;
        append_line(&mut disk, &mut len, b"{\"interval\":0}\n").unwrap();
        // Half of this line fits: it is cut back, not left torn.
        let e = append_line(&mut disk, &mut len, b"{\"interval\":1,\"more\":true}\n").unwrap_err();
        assert!(matches!(&e, LineError::Unwritten(e) if e.raw_os_error() == Some(28)));
        assert_eq!(disk.bytes, b"{\"interval\":0}\n");
        assert_eq!(len, 15);
        // Space freed: the next line is whole again.
        disk.room = 1000;
        append_line(&mut disk, &mut len, b"{\"interval\":2}\n").unwrap();
        assert_eq!(disk.bytes, b"{\"interval\":0}\n{\"interval\":2}\n");
    }

    #[test]
    fn hgrm_names_carry_their_unit() {
        assert_eq!(
            hgrm_name(Metric::TtftFromSend),
            ("ttft_from_send_ms".to_owned(), 1e6)
        );
        assert_eq!(
            hgrm_name(Metric::OutputMilliTokensPerS),
            ("output_tokens_per_s".to_owned(), 1e3)
        );
    }
}
