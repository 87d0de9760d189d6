//! What a spec got wrong, located by file, line and field.

use std::fmt;
use std::path::PathBuf;

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Severity {
    /// The spec is rejected.
    Error,
    /// The spec runs, but probably not as intended.
    Warning,
}

/// One finding about a spec: `spec.toml:7: load.concurrency: must be >= 1, got 0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The spec file, as the user named it.
    pub file: PathBuf,
    /// 1-based line, when the finding has a place in the file.
    pub line: Option<usize>,
    /// Dotted field path (`workload[1].input_tokens.max`); empty for the whole file.
    pub field: String,
    /// What is wrong and, where it helps, what would be right.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if self.severity == Severity::Warning {
            f.write_str(": warning")?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// A spec could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The file could not be read.
    /// (The cause is in the message and not a `source`: printed as an
    /// error chain it appears once.)
    #[error("{}: cannot read the spec: {error}", path.display())]
    Read {
        /// The spec path.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The file is larger than any spec needs to be.
    #[error("{}: the spec is {size} bytes; at most {limit} are read (a spec that large is not a run description)", path.display())]
    TooLarge {
        /// The spec path.
        path: PathBuf,
        /// Its size in bytes (at least; reading stopped past the limit).
        size: u64,
        /// [`MAX_SPEC_BYTES`](super::MAX_SPEC_BYTES).
        limit: u64,
    },
    /// The spec has errors; every one found is listed, one per line.
    #[error("{}", render(diagnostics))]
    Invalid {
        /// Errors (and any warnings) in file order.
        diagnostics: Vec<Diagnostic>,
    },
}

impl SpecError {
    /// The findings, empty for a read error.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            SpecError::Read { .. } | SpecError::TooLarge { .. } => &[],
            SpecError::Invalid { diagnostics } => diagnostics,
        }
    }
}

fn render(diagnostics: &[Diagnostic]) -> String {
    let lines: Vec<String> = diagnostics.iter().map(Diagnostic::to_string).collect();
    lines.join("\n")
}
