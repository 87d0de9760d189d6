//! Figures that say where they came from.
//!
//! Every number a plan shows is a [`Figure`]: a value, its unit, its basis
//! (entered, measured, built-in, assumed, or computed from others) and the ids
//! of the [`Source`]s it rests on. The plan lists every source once, so a
//! reader can walk any figure back to the input line, run, sweep level or
//! built-in fact (with its citation and confidence) behind it. A figure is
//! `Measured` only when it was read from a measurement as is; anything derived
//! is `Computed`, whatever it was derived from.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What a figure counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Requests per minute.
    RequestsPerMinute,
    /// Requests per second.
    RequestsPerSecond,
    /// Quota tokens per minute.
    TokensPerMinute,
    /// Quota tokens per day.
    TokensPerDay,
    /// Tokens per request (or per turn).
    TokensPerRequest,
    /// Requests in flight at once.
    Concurrency,
    /// US dollars per month.
    UsdPerMonth,
    /// US dollars per user per month.
    UsdPerUserPerMonth,
    /// US dollars per request.
    UsdPerRequest,
    /// US dollars per hour.
    UsdPerHour,
    /// A fraction (0.25 = 25%).
    Ratio,
    /// A multiple of today's demand.
    DemandFactor,
    /// Users.
    Users,
    /// Sessions per day.
    SessionsPerDay,
    /// Requests per session.
    RequestsPerSession,
    /// AWS accounts.
    Accounts,
    /// Provisioned Throughput model units, or self-hosted units.
    Units,
    /// Days.
    Days,
    /// Months.
    Months,
    /// Seconds.
    Seconds,
    /// Minutes.
    Minutes,
    /// Milliseconds.
    Milliseconds,
    /// Output tokens per second.
    TokensPerSecond,
}

/// How a figure was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// Entered in the plan input.
    Entered,
    /// Read from a run, sweep or trace as is.
    Measured,
    /// A built-in fact (with its citation and confidence in the source).
    BuiltIn,
    /// A default the planner applied because nothing was entered; listed
    /// among the plan's assumptions.
    Assumed,
    /// Derived from other figures by the arithmetic named in `how`.
    Computed,
}

/// A number with its unit and provenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// The value, rounded to 10 significant digits (a plan needs no more,
    /// and short decimals make `plan.json` read back to the same value).
    pub value: f64,
    /// What it counts.
    pub unit: Unit,
    /// How it was obtained.
    pub basis: Basis,
    /// Ids of the sources it rests on (see [`Source`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<String>,
    /// For computed figures: the arithmetic, in words a reviewer can check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub how: Option<String>,
}

impl Figure {
    /// A figure read straight from one source.
    pub fn sourced(value: f64, unit: Unit, basis: Basis, source: &str) -> Self {
        debug_assert!(
            value.is_finite(),
            "a figure must be finite: {value} from {source}"
        );
        Figure {
            value: round_sig(value),
            unit,
            basis,
            from: vec![source.to_owned()],
            how: None,
        }
    }

    /// A figure computed from others: `from` gathers their sources.
    pub fn computed<'a>(
        value: f64,
        unit: Unit,
        how: impl Into<String>,
        from: impl IntoIterator<Item = &'a Figure>,
    ) -> Self {
        let how = how.into();
        debug_assert!(
            value.is_finite(),
            "a figure must be finite: {value} = {how}"
        );
        let mut ids: Vec<String> = from
            .into_iter()
            .flat_map(|f| f.from.iter().cloned())
            .collect();
        ids.sort();
        ids.dedup();
        Figure {
            value: round_sig(value),
            unit,
            basis: Basis::Computed,
            from: ids,
            how: Some(how),
        }
    }

    /// This figure with another value in another unit, derived by `how`
    /// from it alone.
    pub fn derive(&self, value: f64, unit: Unit, how: impl Into<String>) -> Self {
        Figure::computed(value, unit, how, [self])
    }
}

/// Rounds to 10 significant digits. Keeps `plan.json`'s decimals short, which
/// is what makes serde_json read them back to the identical `f64` (its exact
/// fast path covers up to 15 digits), so a report rendered from the file
/// matches the one rendered from memory.
pub fn round_sig(value: f64) -> f64 {
    if value == 0.0 || !value.is_finite() {
        return value;
    }
    let magnitude = value.abs().log10().floor() as i32;
    let scale = 10f64.powi(9 - magnitude);
    if !scale.is_finite() || scale == 0.0 {
        return value;
    }
    let rounded = (value * scale).round() / scale;
    // Re-parse the shortest decimal so the stored bits are exactly what a
    // reader of the printed decimal gets.
    rounded.to_string().parse().unwrap_or(rounded)
}

/// What kind of thing a source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// A value in the plan input (file and line when it came from one).
    Entered,
    /// A measurement: a run, a sweep level, a trace.
    Measured,
    /// A built-in fact.
    BuiltIn,
    /// A default the planner applied.
    Assumed,
}

/// One thing figures rest on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// Stable id figures refer to (`input:class[0].peak_rpm`,
    /// `builtin:quota:anthropic.claude-opus-4-6-v1:cross_region:tpd` ...).
    pub id: String,
    /// What kind of source.
    pub kind: SourceKind,
    /// What it is, for a reader.
    pub label: String,
    /// Where: `PLAN.toml:12`, a results directory, a citation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// For built-in facts: how sure the source is (`AWS documentation`,
    /// `secondary source`, `field report`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<String>,
}

/// The sources a plan cites, registered as figures are made.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sources {
    by_id: BTreeMap<String, Source>,
}

impl Sources {
    /// Registers `source` (the first registration of an id wins) and returns its id.
    pub(crate) fn add(&mut self, source: Source) -> String {
        let id = source.id.clone();
        self.by_id.entry(id.clone()).or_insert(source);
        id
    }

    /// Every source, ordered by id.
    pub(crate) fn into_vec(self) -> Vec<Source> {
        self.by_id.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_keeps_ten_significant_digits() {
        assert_eq!(round_sig(2_592_000.0), 2_592_000.0);
        assert_eq!(round_sig(1.0 / 3.0), 0.3333333333);
        assert_eq!(round_sig(123_456_789_012.0), 123_456_789_000.0);
        assert_eq!(round_sig(-0.000_001_234_567_890_12), -0.000_001_234_567_89);
        assert_eq!(round_sig(0.0), 0.0);
    }

    #[test]
    fn computed_figures_gather_their_sources() {
        let a = Figure::sourced(2.0, Unit::RequestsPerMinute, Basis::Entered, "input:a");
        let b = Figure::sourced(3.0, Unit::TokensPerRequest, Basis::BuiltIn, "builtin:b");
        let c = Figure::computed(6.0, Unit::TokensPerMinute, "a × b", [&a, &b, &a]);
        assert_eq!(c.basis, Basis::Computed);
        assert_eq!(c.from, ["builtin:b", "input:a"]);
    }
}
