//! `[sweep]` and `[slo]`: the sections `quarry sweep` reads.
//!
//! ```toml
//! [sweep]
//! variable = "concurrency"       # "concurrency" (closed loop) or "rate" (open loop)
//! levels = [1, 5, 10, 25, 50]    # default for concurrency; required for rate
//! # [sweep.search]               # instead of levels: find the most load the SLO allows
//! # start = 1                    # first probe (default 1)
//! # max = 256                    # highest level probed (required)
//! # tolerance = 0.05             # bisect until (infeasible - feasible) / infeasible <= this
//! # max_levels = 12              # never run more levels than this (default 12)
//! max_duration = "20m"           # a level too short to judge is run again this long at most
//!                                # (default 4 x load.duration)
//!
//! [slo]
//! attainment = "99%"             # share of measured requests that must meet [slo.request]
//! target_concurrency = 25        # (or target_rate) exit 1 unless a level at or above it passed
//! [slo.request]                  # per-request bounds (goodput: ok and all of them met)
//! ttft = "2s"
//! tpot = "100ms"
//! e2e = "30s"
//! [slo.criteria]                 # the thresholds language, judged per level
//! "ttft.p99" = "<= 2s"
//! throttle_rate = "<= 1%"
//! error_rate = "<= 1%"
//! ```
//!
//! `[load]` of a sweep spec gives the rest of each level (warmup, duration,
//! cooldown, arrival ...); its `concurrency` or `rate` may be left out (the
//! sweep sets it) and `[[load.stages]]` is refused (a level is one hold).

use std::collections::BTreeMap;
use std::time::Duration;

use quarry_engine::MAX_CONCURRENCY;
use serde::Deserialize;
use toml::Spanned;

use super::raw::{RawLoad, RawThreshold};
use super::validate::{Checker, flatten};
use crate::thresholds::Threshold;

/// The concurrency ladder a sweep without `levels` or a search runs.
pub const DEFAULT_LADDER: [f64; 5] = [1.0, 5.0, 10.0, 25.0, 50.0];

/// Default bisection tolerance of a search (relative).
pub const DEFAULT_TOLERANCE: f64 = 0.05;

/// Default cap on the levels a search runs.
pub const DEFAULT_MAX_LEVELS: u32 = 12;

/// `[sweep]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSweep {
    variable: Option<Spanned<String>>,
    levels: Option<Spanned<Vec<Spanned<f64>>>>,
    search: Option<Spanned<RawSearch>>,
    max_duration: Option<Spanned<String>>,
}

impl RawSweep {
    /// The span of `[sweep.search]`, when given.
    pub(crate) fn search_span(&self) -> Option<std::ops::Range<usize>> {
        self.search.as_ref().map(Spanned::span)
    }
}

/// `[sweep.search]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSearch {
    start: Option<Spanned<f64>>,
    max: Option<Spanned<f64>>,
    tolerance: Option<Spanned<f64>>,
    max_levels: Option<Spanned<i64>>,
}

/// `[slo]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSlo {
    attainment: Option<Spanned<toml::Value>>,
    target_concurrency: Option<Spanned<f64>>,
    target_rate: Option<Spanned<f64>>,
    request: Option<Spanned<RawRequestSlo>>,
    criteria: Option<BTreeMap<String, Spanned<RawThreshold>>>,
}

/// `[slo.request]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequestSlo {
    ttft: Option<Spanned<String>>,
    tpot: Option<Spanned<String>>,
    e2e: Option<Spanned<String>>,
}

/// What a sweep varies from level to level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SweepVariable {
    /// Closed loop: virtual users.
    Concurrency,
    /// Open loop: arrivals per second.
    Rate,
}

impl SweepVariable {
    /// The name in specs, directories and `sweep.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            SweepVariable::Concurrency => "concurrency",
            SweepVariable::Rate => "rate",
        }
    }

    /// The unit a level's value is in.
    pub fn unit(self) -> &'static str {
        match self {
            SweepVariable::Concurrency => "virtual users",
            SweepVariable::Rate => "requests/s offered",
        }
    }
}

/// How the levels are chosen.
#[derive(Debug, Clone, PartialEq)]
pub enum SweepMode {
    /// These levels, in order.
    Levels(Vec<f64>),
    /// Exponential probe, then bisection.
    Search(SearchSpec),
}

/// `[sweep.search]`, validated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchSpec {
    /// First probe.
    pub start: f64,
    /// Highest level probed.
    pub max: f64,
    /// Relative tolerance: stop when `(infeasible - feasible) / infeasible`
    /// is at most this.
    pub tolerance: f64,
    /// Cap on levels run.
    pub max_levels: u32,
}

/// `[sweep]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepSpec {
    /// What varies.
    pub variable: SweepVariable,
    /// Which levels.
    pub mode: SweepMode,
    /// How long a level may run when it is extended because too few
    /// requests were measured to judge it (`None`: 4 × `load.duration`).
    pub max_duration: Option<Duration>,
}

/// `[slo.request]`: the bounds a request must meet to count as goodput.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RequestSlo {
    /// TTFT (from send) at most this.
    pub ttft: Option<Duration>,
    /// TPOT at most this.
    pub tpot: Option<Duration>,
    /// E2E (from send) at most this.
    pub e2e: Option<Duration>,
}

impl RequestSlo {
    /// True when no bound is set.
    pub fn is_empty(&self) -> bool {
        self.ttft.is_none() && self.tpot.is_none() && self.e2e.is_none()
    }

    /// The bounds as the engine judges each request by (`None` when no
    /// bound is set).
    pub fn to_plan(self) -> Option<quarry_engine::RequestSlo> {
        let ns = |d: Option<Duration>| d.map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        (!self.is_empty()).then(|| quarry_engine::RequestSlo {
            ttft_ns: ns(self.ttft),
            tpot_ns: ns(self.tpot),
            e2e_ns: ns(self.e2e),
        })
    }
}

/// `[slo]`, validated.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SloSpec {
    /// Per-request bounds (goodput).
    pub request: RequestSlo,
    /// Fraction of measured requests that must be goodput, when set.
    pub attainment: Option<f64>,
    /// Percentile and rate criteria, in the thresholds language.
    pub criteria: Vec<Threshold>,
    /// The load the SLO must hold at (`target_concurrency` or
    /// `target_rate`, matching the sweep's variable): `quarry sweep` exits
    /// 1 unless a level at or above it passed.
    pub target: Option<f64>,
}

/// Fills `[load]`'s concurrency or rate from the first level when the
/// sweep spec leaves it out, so the rest of `[load]` validates as usual.
pub(crate) fn fill_load(sweep: &Spanned<RawSweep>, load: &mut Spanned<RawLoad>) {
    let raw = sweep.get_ref();
    let variable = raw.variable.as_ref().map(|v| v.get_ref().as_str());
    let load = load.get_mut();
    if load.concurrency.is_some() || load.rate.is_some() {
        return;
    }
    let first = raw
        .levels
        .as_ref()
        .and_then(|l| l.get_ref().first().map(|v| *v.get_ref()))
        .or_else(|| {
            raw.search
                .as_ref()
                .map(|s| s.get_ref().start.as_ref().map_or(1.0, |v| *v.get_ref()))
        })
        .unwrap_or(1.0);
    match variable {
        Some("rate") => load.rate = Some(Spanned::new(sweep.span(), first.max(f64::MIN_POSITIVE))),
        _ => load.concurrency = Some(Spanned::new(sweep.span(), (first.max(1.0)) as i64)),
    }
}

/// Validates `[sweep]` against `[load]`; `None` when any error was recorded.
pub(crate) fn validate_sweep(
    c: &mut Checker,
    s: &Spanned<RawSweep>,
    load: Option<&Spanned<RawLoad>>,
    filled: (bool, bool),
) -> Option<SweepSpec> {
    let raw = s.get_ref();
    let variable = match raw.variable.as_ref().map(|v| (v, v.get_ref().as_str())) {
        None => {
            c.missing(s, "sweep.variable", ": \"concurrency\" or \"rate\"");
            None
        }
        Some((_, "concurrency")) => Some(SweepVariable::Concurrency),
        Some((_, "rate")) => Some(SweepVariable::Rate),
        Some((v, other)) => {
            let msg =
                format!("unknown sweep variable {other:?}: expected \"concurrency\" or \"rate\"");
            c.error(v, "sweep.variable", msg);
            None
        }
    };
    let mut ok = true;
    if let (Some(l), Some(var)) = (load, variable) {
        let l = l.get_ref();
        let (had_concurrency, had_rate) = filled;
        if var == SweepVariable::Concurrency
            && had_rate
            && let Some(r) = &l.rate
        {
            let msg = "the sweep varies concurrency (closed loop): [load] must not set rate";
            c.error(r, "load.rate", msg);
            ok = false;
        }
        if var == SweepVariable::Rate
            && had_concurrency
            && let Some(n) = &l.concurrency
        {
            let msg = "the sweep varies rate (open loop): [load] must not set concurrency";
            c.error(n, "load.concurrency", msg);
            ok = false;
        }
        if let Some(stages) = l.stages.as_ref().and_then(|st| st.first()) {
            let msg = "a sweep level is one hold at its level: use load.duration (and warmup, cooldown) instead of [[load.stages]]";
            c.error(stages, "load.stages", msg);
            ok = false;
        }
    }
    let check_value = |c: &mut Checker, v: &Spanned<f64>, field: &str| -> bool {
        let x = *v.get_ref();
        let bad = match variable {
            Some(SweepVariable::Concurrency) => {
                if x.fract() != 0.0 || x < 1.0 || x > f64::from(MAX_CONCURRENCY) {
                    Some(format!(
                        "a concurrency level must be a whole number in 1..={MAX_CONCURRENCY}, got {x}"
                    ))
                } else {
                    None
                }
            }
            _ => (!(x.is_finite() && x > 0.0))
                .then(|| format!("a rate level must be > 0 requests per second, got {x}")),
        };
        match bad {
            Some(msg) => {
                c.error(v, field, msg);
                false
            }
            None => true,
        }
    };
    let mode = match (&raw.levels, &raw.search) {
        (Some(l), Some(_)) => {
            c.error(
                l,
                "sweep.levels",
                "give either levels or [sweep.search], not both",
            );
            None
        }
        (Some(levels), None) => {
            let mut good = !levels.get_ref().is_empty();
            if !good {
                c.error(levels, "sweep.levels", "must list at least one level");
            }
            let mut previous: Option<f64> = None;
            for (i, v) in levels.get_ref().iter().enumerate() {
                let field = format!("sweep.levels[{i}]");
                good &= check_value(c, v, &field);
                let x = *v.get_ref();
                if let Some(p) = previous.filter(|p| x <= *p) {
                    c.error(
                        v,
                        &field,
                        format!("levels must increase, got {x} after {p}"),
                    );
                    good = false;
                }
                previous = Some(x);
            }
            good.then(|| SweepMode::Levels(levels.get_ref().iter().map(|v| *v.get_ref()).collect()))
        }
        (None, Some(search)) => validate_search(c, search, &check_value).map(SweepMode::Search),
        (None, None) => match variable {
            Some(SweepVariable::Rate) => {
                c.missing(s, "sweep.levels", " for a rate sweep (or a [sweep.search])");
                None
            }
            _ => Some(SweepMode::Levels(DEFAULT_LADDER.to_vec())),
        },
    };
    let max_duration = match &raw.max_duration {
        None => Some(None),
        Some(d) => c.duration(d, "sweep.max_duration").map(Some),
    };
    if !ok {
        return None;
    }
    Some(SweepSpec {
        variable: variable?,
        mode: mode?,
        max_duration: max_duration?,
    })
}

fn validate_search(
    c: &mut Checker,
    s: &Spanned<RawSearch>,
    check_value: &dyn Fn(&mut Checker, &Spanned<f64>, &str) -> bool,
) -> Option<SearchSpec> {
    let raw = s.get_ref();
    let mut good = true;
    let start = match &raw.start {
        None => 1.0,
        Some(v) => {
            good &= check_value(c, v, "sweep.search.start");
            *v.get_ref()
        }
    };
    let max = match &raw.max {
        None => {
            c.missing(s, "sweep.search.max", ": the highest level to probe");
            None
        }
        Some(v) => {
            good &= check_value(c, v, "sweep.search.max");
            if *v.get_ref() <= start {
                let msg = format!(
                    "must be above sweep.search.start ({start}), got {}",
                    v.get_ref()
                );
                c.error(v, "sweep.search.max", msg);
                good = false;
            }
            Some(*v.get_ref())
        }
    };
    let tolerance = match &raw.tolerance {
        None => DEFAULT_TOLERANCE,
        Some(t) => {
            let x = *t.get_ref();
            if !(x > 0.0 && x < 1.0) {
                let msg = format!("must be a fraction between 0 and 1 (0.05 is 5%), got {x}");
                c.error(t, "sweep.search.tolerance", msg);
                good = false;
            }
            x
        }
    };
    let max_levels = match &raw.max_levels {
        None => Some(DEFAULT_MAX_LEVELS),
        Some(n) => c
            .int_in(n, "sweep.search.max_levels", 2, 100)
            .map(|n| n as u32),
    };
    if !good {
        return None;
    }
    Some(SearchSpec {
        start,
        max: max?,
        tolerance,
        max_levels: max_levels?,
    })
}

/// Validates `[slo]`; `None` when any error was recorded.
pub(crate) fn validate_slo(
    c: &mut Checker,
    s: &Spanned<RawSlo>,
    has_sweep: bool,
    variable: Option<SweepVariable>,
) -> Option<SloSpec> {
    let raw = s.get_ref();
    let mut ok = true;
    let mut target = None;
    for (v, field, var) in [
        (
            &raw.target_concurrency,
            "slo.target_concurrency",
            SweepVariable::Concurrency,
        ),
        (&raw.target_rate, "slo.target_rate", SweepVariable::Rate),
    ] {
        let Some(v) = v else { continue };
        let value = *v.get_ref();
        if !(value.is_finite() && value > 0.0) {
            c.error(v, field, format!("must be a positive number, got {value}"));
            ok = false;
        } else if variable.is_some_and(|sv| sv != var) {
            let msg = format!(
                "does not match the sweep's variable: a {} sweep states its target as slo.target_{}",
                variable.map_or("", SweepVariable::as_str),
                variable.map_or("", SweepVariable::as_str)
            );
            c.error(v, field, msg);
            ok = false;
        } else if var == SweepVariable::Concurrency && value.fract() != 0.0 {
            c.error(
                v,
                field,
                format!("must be a whole number of virtual users, got {value}"),
            );
            ok = false;
        } else {
            target = Some(value);
        }
    }
    if !has_sweep {
        let msg = "is judged per sweep level: it needs a [sweep] section (and `quarry sweep`)";
        c.error(s, "slo", msg);
        ok = false;
    }
    let mut request = RequestSlo::default();
    if let Some(r) = &raw.request {
        let rr = r.get_ref();
        for (v, field, slot) in [
            (&rr.ttft, "slo.request.ttft", &mut request.ttft),
            (&rr.tpot, "slo.request.tpot", &mut request.tpot),
            (&rr.e2e, "slo.request.e2e", &mut request.e2e),
        ] {
            if let Some(v) = v {
                match c.duration(v, field) {
                    Some(d) => *slot = Some(d),
                    None => ok = false,
                }
            }
        }
        if request.is_empty() && ok {
            c.error(r, "slo.request", "needs at least one of ttft, tpot, e2e");
            ok = false;
        }
    }
    let attainment = match &raw.attainment {
        None => None,
        Some(a) => {
            let value = match a.get_ref() {
                toml::Value::Float(f) => Some(*f),
                toml::Value::Integer(i) => Some(*i as f64),
                toml::Value::String(t) => t
                    .trim()
                    .strip_suffix('%')
                    .and_then(|p| p.trim().parse::<f64>().ok())
                    .map(|p| p / 100.0),
                _ => None,
            };
            match value {
                Some(v) if v > 0.0 && v <= 1.0 => Some(v),
                _ => {
                    let msg = "must be a fraction in (0, 1] or a percentage like \"99%\"";
                    c.error(a, "slo.attainment", msg);
                    ok = false;
                    None
                }
            }
        }
    };
    if attainment.is_some() && request.is_empty() && raw.request.is_none() {
        let at = raw.attainment.as_ref().map_or(s.span(), Spanned::span);
        let msg = "needs [slo.request] bounds (ttft, tpot, e2e) to count requests against";
        c.error_at(Some(at), "slo.attainment", msg);
        ok = false;
    }
    let mut flat = Vec::new();
    for (key, value) in raw.criteria.iter().flatten() {
        flatten(key.clone(), value, &mut flat);
    }
    let mut criteria = Vec::new();
    for (key, condition) in flat {
        match Threshold::parse(&key, condition.get_ref()) {
            Ok(t) => criteria.push(t),
            Err(e) => {
                c.error(&condition, format!("slo.criteria.{key}"), e.to_string());
                ok = false;
            }
        }
    }
    ok.then_some(SloSpec {
        request,
        attainment,
        criteria,
        target,
    })
}

/// The spec of one sweep level: the sweep spec's text with `[load]`'s
/// concurrency or rate set to `value` and `[sweep]` and `[slo]` removed —
/// an ordinary run spec, kept in the level's results directory.
pub fn level_spec_text(
    text: &str,
    variable: SweepVariable,
    value: f64,
    duration: Option<Duration>,
) -> Result<String, String> {
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e| format!("{e}"))?;
    doc.remove("sweep");
    doc.remove("slo");
    let load = doc
        .get_mut("load")
        .and_then(toml_edit::Item::as_table_like_mut)
        .ok_or_else(|| "the spec has no [load] table".to_owned())?;
    load.remove("concurrency");
    load.remove("rate");
    match variable {
        SweepVariable::Concurrency => {
            load.insert("concurrency", toml_edit::value(value as i64));
        }
        SweepVariable::Rate => {
            load.insert("rate", toml_edit::value(value));
        }
    }
    if let Some(d) = duration {
        if load.get("duration").is_none() {
            return Err("only a level with load.duration can be run longer".to_owned());
        }
        let ms = d.as_millis().max(1);
        load.insert("duration", toml_edit::value(format!("{ms}ms")));
    }
    Ok(doc.to_string())
}
