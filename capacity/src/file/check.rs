//! Findings about a plan file, located as `FILE:LINE: field: message`, and
//! the small checks every field goes through. The checker also records where
//! each accepted value was written, so the plan can cite its line.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use toml::Spanned;

use crate::input::Origin;

/// One thing wrong with a plan file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanDiagnostic {
    /// The file, as the caller named it.
    pub file: String,
    /// 1-based line, when the finding has a place in the file.
    pub line: Option<usize>,
    /// Dotted field path (`class[1].cache.hit_ratio`); empty for the whole file.
    pub field: String,
    /// What is wrong and, where it helps, what would be right.
    pub message: String,
}

impl fmt::Display for PlanDiagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// A plan file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanFileError {
    /// Every problem found, in file order, one per line.
    #[error("{}", render(diagnostics))]
    Invalid {
        /// The findings.
        diagnostics: Vec<PlanDiagnostic>,
    },
}

impl PlanFileError {
    /// The findings.
    pub fn diagnostics(&self) -> &[PlanDiagnostic] {
        match self {
            PlanFileError::Invalid { diagnostics } => diagnostics,
        }
    }
}

fn render(diagnostics: &[PlanDiagnostic]) -> String {
    let lines: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
    lines.join("\n")
}

/// The largest number a plan file may hold: a trillion requests a minute or
/// tokens a request is past any real workload, and it keeps every product the
/// planner forms far from `f64`'s range.
const MAX_INPUT: f64 = 1e12;

/// Collects findings and origins while a file is validated.
pub(super) struct Checker {
    file: String,
    line_starts: Vec<usize>,
    diagnostics: Vec<PlanDiagnostic>,
    pub(super) origins: BTreeMap<String, Origin>,
}

impl Checker {
    pub(super) fn new(file: String, text: &str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Checker {
            file,
            line_starts,
            diagnostics: Vec::new(),
            origins: BTreeMap::new(),
        }
    }

    /// The 1-based line of a byte offset.
    fn line(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&s| s <= offset).max(1)
    }

    /// An error at a byte span (`None`: no place in the file).
    pub(super) fn error_at(
        &mut self,
        span: Option<Range<usize>>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        let line = span.map(|s| self.line(s.start));
        self.diagnostics.push(PlanDiagnostic {
            file: self.file.clone(),
            line,
            field: field.into(),
            message: message.into(),
        });
    }

    /// An error at a spanned value.
    pub(super) fn error<T>(
        &mut self,
        at: &Spanned<T>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.error_at(Some(at.span()), field, message);
    }

    /// Remembers that the value at `path` was written at `span`.
    pub(super) fn record(&mut self, path: &str, span: Range<usize>) {
        let line = self.line(span.start);
        self.origins.insert(
            path.to_owned(),
            Origin {
                file: self.file.clone(),
                line,
            },
        );
    }

    /// A required field: an error at the enclosing table when it is absent.
    pub(super) fn required<'a, T>(
        &mut self,
        value: Option<&'a Spanned<T>>,
        table: Range<usize>,
        path: &str,
    ) -> Option<&'a Spanned<T>> {
        if value.is_none() {
            self.error_at(Some(table), path, "missing: this field is required");
        }
        value
    }

    /// A finite number that keeps `check`, and no larger than [`MAX_INPUT`].
    pub(super) fn number(
        &mut self,
        v: &Spanned<f64>,
        path: &str,
        check: NumberRule,
    ) -> Option<f64> {
        let x = *v.get_ref();
        if x.abs() > MAX_INPUT {
            self.error(v, path, format!("must be at most {MAX_INPUT:e}, got {x:e}"));
            return None;
        }
        let ok = x.is_finite()
            && match check {
                NumberRule::Positive => x > 0.0,
                NumberRule::NonNegative => x >= 0.0,
                NumberRule::Fraction => (0.0..=1.0).contains(&x),
                NumberRule::FractionBelowOne => (0.0..1.0).contains(&x),
                NumberRule::AboveMinusOne => x > -1.0,
            };
        if !ok {
            self.error(v, path, format!("must be {}, got {x}", check.describe()));
            return None;
        }
        self.record(path, v.span());
        Some(x)
    }

    /// An optional number.
    pub(super) fn opt_number(
        &mut self,
        v: Option<&Spanned<f64>>,
        path: &str,
        check: NumberRule,
    ) -> Option<f64> {
        v.and_then(|v| self.number(v, path, check))
    }

    /// A whole number of at least `min`.
    pub(super) fn count(&mut self, v: &Spanned<i64>, path: &str, min: i64) -> Option<u64> {
        let x = *v.get_ref();
        if x as f64 > MAX_INPUT {
            self.error(
                v,
                path,
                format!("must be at most {MAX_INPUT:e}, got {:e}", x as f64),
            );
            return None;
        }
        if x < min {
            self.error(v, path, format!("must be at least {min}, got {x}"));
            return None;
        }
        self.record(path, v.span());
        u64::try_from(x).ok()
    }

    /// A non-empty string.
    pub(super) fn text(&mut self, v: &Spanned<String>, path: &str) -> Option<String> {
        let s = v.get_ref().trim();
        if s.is_empty() {
            self.error(v, path, "must not be empty");
            return None;
        }
        self.record(path, v.span());
        Some(s.to_owned())
    }

    pub(super) fn has_errors(&self) -> bool {
        !self.diagnostics.is_empty()
    }

    /// The findings in file order (those without a line last).
    pub(super) fn into_error(mut self) -> PlanFileError {
        self.diagnostics
            .sort_by_key(|d| d.line.unwrap_or(usize::MAX));
        PlanFileError::Invalid {
            diagnostics: self.diagnostics,
        }
    }
}

/// What a number must be.
#[derive(Debug, Clone, Copy)]
pub(super) enum NumberRule {
    Positive,
    NonNegative,
    Fraction,
    FractionBelowOne,
    AboveMinusOne,
}

impl NumberRule {
    fn describe(self) -> &'static str {
        match self {
            NumberRule::Positive => "greater than 0",
            NumberRule::NonNegative => "0 or more",
            NumberRule::Fraction => "between 0 and 1",
            NumberRule::FractionBelowOne => "at least 0 and below 1",
            NumberRule::AboveMinusOne => "greater than -1 (a rate: 0.25 is +25%)",
        }
    }
}

/// Best-effort dotted field path at `offset`, for TOML syntax and type errors
/// (which carry a span but no path): the enclosing `[table]`, indexed for
/// `[[array]]` tables, plus the key on the offending line.
pub(super) fn field_at(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line = text[line_start..line_end].trim();
    let header = |l: &str| -> Option<(String, bool)> {
        let l = l.trim();
        let inner = l.trim_start_matches('[').split(']').next()?;
        l.starts_with('[')
            .then(|| (inner.trim().replace(['"', '\''], ""), l.starts_with("[[")))
    };
    if let Some((name, _)) = header(line) {
        return name;
    }
    let key = line
        .split('=')
        .next()
        .unwrap_or("")
        .trim()
        .replace(['"', '\''], "");
    let before = &text[..line_start];
    let table = match before.lines().rev().find_map(header) {
        Some((name, true)) => {
            let count = before
                .lines()
                .filter(|l| header(l).is_some_and(|(n, a)| a && n == name))
                .count();
            format!("{name}[{}]", count.saturating_sub(1))
        }
        Some((name, false)) => name,
        None => String::new(),
    };
    match (table.is_empty(), key.is_empty()) {
        (true, _) => key,
        (false, true) => table,
        (false, false) => format!("{table}.{key}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_paths_from_offsets() {
        let text =
            "start = 1\n[growth]\nmonthly_rate = x\n[[class]]\nname = \"a\"\n[[class]]\nbad = 1\n";
        assert_eq!(
            field_at(text, text.find("monthly_rate").unwrap()),
            "growth.monthly_rate"
        );
        assert_eq!(field_at(text, text.find("bad").unwrap()), "class[1].bad");
        assert_eq!(field_at(text, 0), "start");
    }

    #[test]
    fn diagnostics_print_file_line_field() {
        let d = PlanDiagnostic {
            file: "PLAN.toml".to_owned(),
            line: Some(7),
            field: "class[0].peak_rpm".to_owned(),
            message: "must be greater than 0, got 0".to_owned(),
        };
        assert_eq!(
            d.to_string(),
            "PLAN.toml:7: class[0].peak_rpm: must be greater than 0, got 0"
        );
    }
}
