//! Validation of the raw spec into a [`RunPlan`]: the checker that collects
//! located findings, and the small sections (seed, target, retry, timeouts,
//! pricing, thresholds). Load and workload have their own modules.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use quarry_engine::{ModelPrices, RetryPolicy, RunPlan, Target, ThrottlePacing, Timeouts};
use toml::Spanned;

use super::error::{Diagnostic, Severity, SpecError};
use super::raw::{RawPrices, RawRetry, RawSpec, RawThreshold, RawTimeouts};
use super::{LineMap, check_model_id, parse_duration};
use crate::thresholds::{Threshold, Thresholds};

/// Collects findings with their lines.
pub(crate) struct Checker {
    file: PathBuf,
    lines: LineMap,
    diagnostics: Vec<Diagnostic>,
}

impl Checker {
    pub(crate) fn new(file: PathBuf, lines: LineMap) -> Self {
        Checker {
            file,
            lines,
            diagnostics: Vec::new(),
        }
    }

    fn push(
        &mut self,
        severity: Severity,
        span: Option<Range<usize>>,
        field: String,
        message: String,
    ) {
        let line = span.map(|s| self.lines.line(s.start));
        self.diagnostics.push(Diagnostic {
            severity,
            file: self.file.clone(),
            line,
            field,
            message,
        });
    }

    /// An error at a byte span (`None`: no place in the file).
    pub(crate) fn error_at(
        &mut self,
        span: Option<Range<usize>>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.push(Severity::Error, span, field.into(), message.into());
    }

    /// An error at a spanned value.
    pub(crate) fn error<T>(
        &mut self,
        at: &Spanned<T>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.error_at(Some(at.span()), field, message);
    }

    /// A warning at a spanned value.
    pub(crate) fn warn<T>(
        &mut self,
        at: &Spanned<T>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.push(
            Severity::Warning,
            Some(at.span()),
            field.into(),
            message.into(),
        );
    }

    pub(crate) fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }

    /// Everything found, in file order (errors without a line last).
    pub(crate) fn into_error(mut self) -> SpecError {
        self.diagnostics
            .sort_by_key(|d| d.line.unwrap_or(usize::MAX));
        SpecError::Invalid {
            diagnostics: self.diagnostics,
        }
    }

    pub(crate) fn into_warnings(mut self) -> Vec<Diagnostic> {
        self.diagnostics
            .sort_by_key(|d| d.line.unwrap_or(usize::MAX));
        self.diagnostics
    }

    /// A duration field; `None` (and an error) when it does not parse or is zero.
    pub(crate) fn duration(&mut self, v: &Spanned<String>, field: &str) -> Option<Duration> {
        match parse_duration(v.get_ref()) {
            Ok(d) if d.is_zero() => {
                self.error(v, field, "must be longer than 0");
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                self.error(v, field, e);
                None
            }
        }
    }

    /// An integer in `min..=max`.
    pub(crate) fn int_in(
        &mut self,
        v: &Spanned<i64>,
        field: &str,
        min: i64,
        max: i64,
    ) -> Option<u64> {
        let n = *v.get_ref();
        if n < min {
            self.error(v, field, format!("must be >= {min}, got {n}"));
            None
        } else if n > max {
            self.error(v, field, format!("must be <= {max}, got {n}"));
            None
        } else {
            u64::try_from(n).ok()
        }
    }

    /// The 1-based line a spanned value starts on.
    pub(crate) fn line_of<T>(&self, at: &Spanned<T>) -> usize {
        self.lines.line(at.span().start)
    }

    /// The spec file's directory (files a spec names are relative to it).
    pub(crate) fn spec_dir(&self) -> &std::path::Path {
        self.file.parent().unwrap_or(std::path::Path::new(""))
    }

    /// A finding in another file the spec names (a trace), already
    /// rendered `FILE:LINE: field: message`.
    pub(crate) fn error_elsewhere(&mut self, rendered: String) {
        self.push(Severity::Error, None, String::new(), rendered);
    }

    /// A required field is missing from the table spanning `table`.
    pub(crate) fn missing<T>(&mut self, table: &Spanned<T>, field: &str, why: &str) {
        self.error(table, field, format!("is required{why}"));
    }
}

/// Validates every section; `None` when any error was recorded.
pub(crate) fn validate(raw: RawSpec, c: &mut Checker) -> Option<(RunPlan, Thresholds)> {
    let seed = match &raw.seed {
        None => Some(0),
        Some(s) => c.int_in(s, "seed", 0, i64::MAX),
    };
    let target = match &raw.target {
        None => Some(Target::Sim { sim_profile: None }),
        Some(t) => super::target::validate_target(c, t),
    };
    let replay = raw.load.as_ref().and_then(|l| {
        l.get_ref()
            .replay
            .as_ref()
            .map(|path| super::replay::validate_replay(c, l, path, seed.unwrap_or(0)))
    });
    let load = match &raw.load {
        Some(_) if replay.is_some() => replay
            .as_ref()
            .and_then(|r| r.as_ref())
            .map(|r| r.load.clone()),
        None => {
            c.error_at(
                None,
                "load",
                "the [load] section is required (concurrency or rate, and duration or requests)",
            );
            None
        }
        Some(l) => super::load::validate_load(c, l),
    };
    let mix = match &raw.workload {
        Some(w) if replay.is_some() => {
            c.error(
                w,
                "workload",
                "conflicts with load.replay: the trace gives each request's model and token counts",
            );
            None
        }
        None if replay.is_some() => replay
            .as_ref()
            .and_then(|r| r.as_ref())
            .map(|r| r.mix.clone()),
        None => {
            c.error_at(
                None,
                "workload",
                "at least one [[workload]] entry is required",
            );
            None
        }
        Some(w) => super::workload::validate_mix(c, w),
    };
    let on_throttle = raw.load.as_ref().map_or(Some(ThrottlePacing::None), |l| {
        super::load::validate_on_throttle(c, l)
    });
    let retry = raw
        .retry
        .as_ref()
        .map_or(Some(RetryPolicy::Off), |r| retry(c, r));
    let timeouts = raw
        .timeouts
        .as_ref()
        .map_or(Some(Timeouts::default()), |t| timeouts(c, t));
    let pricing = pricing(c, raw.pricing.as_ref());
    let tier_prices = tier_pricing(c, raw.tier_pricing.as_ref());
    let thresholds = thresholds(c, raw.thresholds.as_ref());
    let sessions = match &raw.sessions {
        None => Some(None),
        Some(s) => super::sessions::validate_sessions(c, s, replay.is_some()).map(Some),
    };
    if let (Some(mix), Some(pricing)) = (&mix, &pricing) {
        super::workload::warn_unpriced(c, raw.workload.as_ref(), mix, pricing);
    }
    let plan = RunPlan {
        target: target?,
        load: load?,
        mix: mix?,
        retry: retry?,
        timeouts: timeouts?,
        seed: seed?,
        pricing: pricing?,
        request_slo: None,
        on_throttle: on_throttle?,
        tier_prices: tier_prices?,
        replay: match replay {
            Some(r) => Some(r?.replay),
            None => None,
        },
        sessions: sessions?,
    };
    Some((plan, thresholds?))
}

fn retry(c: &mut Checker, r: &Spanned<RawRetry>) -> Option<RetryPolicy> {
    let raw = r.get_ref();
    match raw.mode.as_ref().map_or("off", |m| m.get_ref().as_str()) {
        "off" => {
            let spans = [
                (
                    raw.max_attempts.as_ref().map(Spanned::span),
                    "retry.max_attempts",
                ),
                (
                    raw.initial_backoff.as_ref().map(Spanned::span),
                    "retry.initial_backoff",
                ),
                (
                    raw.max_backoff.as_ref().map(Spanned::span),
                    "retry.max_backoff",
                ),
            ];
            for (span, field) in spans {
                if span.is_some() {
                    c.error_at(span, field, "only applies to mode = \"standard\"");
                }
            }
            Some(RetryPolicy::Off)
        }
        "standard" => standard_retry(c, raw),
        other => {
            let at = raw.mode.as_ref().map_or(r.span(), Spanned::span);
            let msg = format!("unknown retry mode {other:?}: expected \"off\" or \"standard\"");
            c.error_at(Some(at), "retry.mode", msg);
            None
        }
    }
}

/// The SDK standard policy, with any of its three knobs overridden.
fn standard_retry(c: &mut Checker, raw: &RawRetry) -> Option<RetryPolicy> {
    let RetryPolicy::Standard {
        max_attempts,
        initial_backoff,
        max_backoff,
    } = RetryPolicy::sdk_standard()
    else {
        return None;
    };
    let attempts = match &raw.max_attempts {
        None => Some(max_attempts),
        Some(m) => c
            .int_in(m, "retry.max_attempts", 1, 20)
            .and_then(|n| std::num::NonZeroU32::new(n as u32)),
    };
    let initial = match &raw.initial_backoff {
        None => Some(initial_backoff),
        Some(d) => c.duration(d, "retry.initial_backoff"),
    };
    let cap = match &raw.max_backoff {
        None => Some(max_backoff),
        Some(d) => c.duration(d, "retry.max_backoff"),
    };
    if let (Some(i), Some(m), Some(at)) = (initial, cap, &raw.max_backoff)
        && m < i
    {
        let msg = format!("must be >= retry.initial_backoff ({i:?}), got {m:?}");
        c.error(at, "retry.max_backoff", msg);
        return None;
    }
    Some(RetryPolicy::Standard {
        max_attempts: attempts?,
        initial_backoff: initial?,
        max_backoff: cap?,
    })
}

fn timeouts(c: &mut Checker, t: &Spanned<RawTimeouts>) -> Option<Timeouts> {
    let raw = t.get_ref();
    let d = Timeouts::default();
    let connect = raw
        .connect
        .as_ref()
        .map_or(Some(d.connect), |v| c.duration(v, "timeouts.connect"));
    let request = raw
        .request
        .as_ref()
        .map_or(Some(d.request), |v| c.duration(v, "timeouts.request"));
    let first_token = match &raw.first_token {
        None => Some(None),
        Some(v) => c.duration(v, "timeouts.first_token").map(Some),
    };
    if let (Some(Some(ft)), Some(req), Some(at)) = (first_token, request, &raw.first_token)
        && ft > req
    {
        c.error(
            at,
            "timeouts.first_token",
            format!("must not exceed timeouts.request ({req:?}), got {ft:?}"),
        );
        return None;
    }
    Some(Timeouts {
        connect: connect?,
        request: request?,
        first_token: first_token?,
    })
}

/// `[tier_pricing]`: multiples of the Standard price, into basis points.
fn tier_pricing(
    c: &mut Checker,
    raw: Option<&Spanned<super::raw::RawTierPricing>>,
) -> Option<quarry_engine::TierPrices> {
    use quarry_bedrock::ServiceTierType;
    let mut out = quarry_engine::TierPrices::default();
    let Some(raw) = raw else {
        return Some(out);
    };
    let t = raw.get_ref();
    let mut ok = true;
    for (tier, v) in [
        (ServiceTierType::Priority, &t.priority),
        (ServiceTierType::Default, &t.default),
        (ServiceTierType::Flex, &t.flex),
        (ServiceTierType::Reserved, &t.reserved),
    ] {
        let Some(v) = v else { continue };
        let x = *v.get_ref();
        if !(x.is_finite() && (0.0..=100.0).contains(&x)) {
            c.error(
                v,
                format!("tier_pricing.{tier}"),
                format!("must be a multiple of the Standard price between 0 and 100, got {x}"),
            );
            ok = false;
            continue;
        }
        // Whole basis points: 1.75 → 17,500.
        out.set(
            tier,
            (x * f64::from(quarry_engine::TIER_PRICE_UNIT)).round() as u32,
        );
    }
    ok.then_some(out)
}

fn pricing(
    c: &mut Checker,
    raw: Option<&BTreeMap<String, Spanned<RawPrices>>>,
) -> Option<BTreeMap<String, ModelPrices>> {
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (model, p) in raw.into_iter().flatten() {
        let field = format!("pricing.{model:?}");
        if let Err(e) = check_model_id(model) {
            c.error(p, &field, e);
            ok = false;
            continue;
        }
        let raw = p.get_ref();
        let mut price =
            |v: &Option<Spanned<f64>>, name: &str, required: bool| -> Option<Option<f64>> {
                match v {
                    None if required => {
                        c.missing(p, &format!("{field}.{name}"), " (USD per 1M tokens)");
                        None
                    }
                    None => Some(None),
                    Some(x) if !(x.get_ref().is_finite() && *x.get_ref() >= 0.0) => {
                        c.error(
                            x,
                            format!("{field}.{name}"),
                            format!(
                                "must be a price >= 0 in USD per 1M tokens, got {}",
                                x.get_ref()
                            ),
                        );
                        None
                    }
                    Some(x) => Some(Some(*x.get_ref())),
                }
            };
        let parts = (
            price(&raw.input, "input", true),
            price(&raw.output, "output", true),
            price(&raw.cache_write_5m, "cache_write_5m", false),
            price(&raw.cache_write_1h, "cache_write_1h", false),
            price(&raw.cache_read, "cache_read", false),
        );
        let (Some(Some(i)), Some(Some(o)), Some(w5), Some(w1), Some(r)) = parts else {
            ok = false;
            continue;
        };
        match ModelPrices::from_usd_per_million(i, o, w5, w1, r) {
            Some(prices) => {
                out.insert(model.clone(), prices);
            }
            None => {
                c.error(
                    p,
                    &field,
                    "prices must be between 0 and 1e9 USD per 1M tokens",
                );
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

fn thresholds(
    c: &mut Checker,
    raw: Option<&BTreeMap<String, Spanned<RawThreshold>>>,
) -> Option<Thresholds> {
    let mut flat = Vec::new();
    for (key, value) in raw.into_iter().flatten() {
        flatten(key.clone(), value, &mut flat);
    }
    let mut rules = Vec::new();
    let mut ok = true;
    for (key, condition) in flat {
        match Threshold::parse(&key, condition.get_ref()) {
            Ok(t) => rules.push(t),
            Err(e) => {
                c.error(&condition, format!("thresholds.{key}"), e.to_string());
                ok = false;
            }
        }
    }
    ok.then(|| Thresholds::new(rules))
}

/// Flattens nested threshold tables into (dotted key, condition) pairs.
pub(crate) fn flatten(
    key: String,
    value: &Spanned<RawThreshold>,
    out: &mut Vec<(String, Spanned<String>)>,
) {
    match value.get_ref() {
        RawThreshold::One(s) => out.push((key, Spanned::new(value.span(), s.clone()))),
        RawThreshold::Many(items) => out.extend(items.iter().map(|i| (key.clone(), i.clone()))),
        RawThreshold::Nested(map) => {
            for (k, v) in map {
                flatten(format!("{key}.{k}"), v, out);
            }
        }
    }
}
