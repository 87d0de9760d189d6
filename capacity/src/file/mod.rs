//! `PLAN.toml`: parsed with spans (module `raw`), then validated into a
//! [`PlanInput`]. Every mistake found is reported, each as
//! `FILE:LINE: field: message`; nothing invalid reaches the planner. The
//! format is documented in `examples/plan.toml` and `docs/plan-schema.md`.

mod check;
mod class;
mod offers;
mod raw;

use std::path::Path;

use toml::Spanned;

pub use check::{PlanDiagnostic, PlanFileError};

use crate::date::CivilDate;
use crate::input::{Budget, Growth, GrowthAt, GrowthCurve, GrowthLevel, PlanInput, TierPricing};
use check::{Checker, NumberRule, field_at};
use raw::{RawBudget, RawGrowth, RawPlan, RawTiers};

/// Validates plan `text`; `path` only labels the findings. Pure: reads nothing.
pub fn parse_plan_file(path: impl AsRef<Path>, text: &str) -> Result<PlanInput, PlanFileError> {
    parse_plan_file_with(path, text, PlanFileContext::default())
}

/// What the caller supplies beside the plan file, which changes what the
/// file itself must hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanFileContext {
    /// A trace supplies demand (`quarry plan --from trace.jsonl`): the file
    /// may have no `[[class]]`, since each model of the trace that no class
    /// takes gets a class of its own.
    pub demand_from_trace: bool,
}

/// [`parse_plan_file`], with what the caller supplies beside the file.
pub fn parse_plan_file_with(
    path: impl AsRef<Path>,
    text: &str,
    context: PlanFileContext,
) -> Result<PlanInput, PlanFileError> {
    let mut c = Checker::new(path.as_ref().display().to_string(), text);
    let raw = match toml::from_str::<RawPlan>(text) {
        Ok(raw) => raw,
        Err(e) => {
            let span = e.span();
            let field = span
                .as_ref()
                .map(|s| field_at(text, s.start))
                .unwrap_or_default();
            c.error_at(span, field, e.message().trim().to_owned());
            return Err(c.into_error());
        }
    };
    let input = validate(&mut c, raw, context);
    if c.has_errors() {
        return Err(c.into_error());
    }
    Ok(PlanInput {
        origins: std::mem::take(&mut c.origins),
        ..input
    })
}

fn validate(c: &mut Checker, raw: RawPlan, context: PlanFileContext) -> PlanInput {
    let start = raw.start.as_ref().and_then(|s| date(c, s, "start"));
    let classes = class::validate_classes(c, raw.class.as_deref().unwrap_or_default());
    if raw.class.as_ref().is_none_or(Vec::is_empty) && !context.demand_from_trace {
        c.error_at(
            None,
            "class",
            "no [[class]]: a plan needs at least one workload class (or a --from trace, whose models get classes of their own)",
        );
    }
    let class_names: Vec<String> = classes.iter().map(|k| k.name.clone()).collect();
    PlanInput {
        title: raw.title.as_ref().and_then(|t| c.text(t, "title")),
        start,
        horizon_months: raw.horizon_months.as_ref().and_then(|h| months(c, h)),
        region: raw.region.as_ref().and_then(|r| c.text(r, "region")),
        accounts: raw
            .accounts
            .as_ref()
            .and_then(|a| c.count(a, "accounts", 1))
            .and_then(|n| u32::try_from(n).ok()),
        lead_time_days: raw
            .lead_time_days
            .as_ref()
            .and_then(|d| c.count(d, "lead_time_days", 0))
            .and_then(|n| u32::try_from(n).ok()),
        growth: raw
            .growth
            .as_ref()
            .map(|g| growth(c, g, start))
            .unwrap_or_default(),
        budget: raw
            .budget
            .as_ref()
            .map(|b| budget(c, b))
            .unwrap_or_default(),
        classes,
        quotas: offers::quotas(c, raw.quota.as_deref().unwrap_or_default()),
        models: offers::models(c, raw.models.as_ref()),
        prices: offers::prices(c, raw.pricing.as_ref()),
        tiers: raw.tiers.as_ref().map(|t| tiers(c, t)).unwrap_or_default(),
        reserved: offers::reserved(c, raw.reserved.as_deref().unwrap_or_default()),
        provisioned: offers::provisioned(c, raw.provisioned.as_deref().unwrap_or_default()),
        self_hosted: offers::self_hosted(
            c,
            raw.self_hosted.as_deref().unwrap_or_default(),
            &class_names,
        ),
        measured: Default::default(),
        assumptions: Vec::new(),
        origins: Default::default(),
    }
}

fn date(c: &mut Checker, v: &Spanned<String>, path: &str) -> Option<CivilDate> {
    match CivilDate::parse(v.get_ref()) {
        Some(d) => {
            c.record(path, v.span());
            Some(d)
        }
        None => {
            c.error(
                v,
                path,
                format!("must be a date written YYYY-MM-DD, got {:?}", v.get_ref()),
            );
            None
        }
    }
}

fn months(c: &mut Checker, v: &Spanned<f64>) -> Option<f64> {
    let m = c.number(v, "horizon_months", NumberRule::Positive)?;
    if m > 120.0 {
        c.error(
            v,
            "horizon_months",
            format!("must be at most 120 (ten years), got {m}"),
        );
        return None;
    }
    Some(m)
}

fn growth(c: &mut Checker, g: &Spanned<RawGrowth>, start: Option<CivilDate>) -> Growth {
    let raw = g.get_ref();
    let users_monthly_rate = c.opt_number(
        raw.users_monthly_rate.as_ref(),
        "growth.users_monthly_rate",
        NumberRule::AboveMinusOne,
    );
    let demand = match (&raw.monthly_rate, &raw.levels) {
        (Some(_), Some(levels)) => {
            c.error(
                levels,
                "growth.levels",
                "give either growth.monthly_rate or growth.levels, not both",
            );
            GrowthCurve::Flat
        }
        (Some(rate), None) => c
            .number(rate, "growth.monthly_rate", NumberRule::AboveMinusOne)
            .map_or(GrowthCurve::Flat, |rate| GrowthCurve::Monthly { rate }),
        (None, Some(levels)) => {
            c.record("growth.levels", levels.span());
            GrowthCurve::Levels(growth_levels(c, levels.get_ref(), start))
        }
        (None, None) => GrowthCurve::Flat,
    };
    Growth {
        demand,
        users_monthly_rate,
    }
}

fn growth_levels(
    c: &mut Checker,
    levels: &[Spanned<raw::RawLevel>],
    start: Option<CivilDate>,
) -> Vec<GrowthLevel> {
    let mut out = Vec::new();
    let mut last_day = 0.0;
    for (i, level) in levels.iter().enumerate() {
        let path = |f: &str| format!("growth.levels[{i}].{f}");
        let raw = level.get_ref();
        let at = match (&raw.date, &raw.month) {
            (Some(d), None) => match (date(c, d, &path("date")), start) {
                (Some(day), Some(s)) => Some((GrowthAt::Date(day), s.days_until(day) as f64)),
                (Some(_), None) => {
                    c.error(
                        d,
                        path("date"),
                        "a dated level needs start (YYYY-MM-DD) at the top of the file",
                    );
                    None
                }
                (None, _) => None,
            },
            (None, Some(m)) => c
                .number(m, &path("month"), NumberRule::Positive)
                .map(|m| (GrowthAt::Month(m), m * crate::timeline::DAYS_PER_MONTH)),
            _ => {
                c.error(
                    level,
                    format!("growth.levels[{i}]"),
                    "give exactly one of date or month",
                );
                None
            }
        };
        let factor = c
            .required(raw.factor.as_ref(), level.span(), &path("factor"))
            .and_then(|f| c.number(f, &path("factor"), NumberRule::Positive));
        let (Some((at, day)), Some(factor)) = (at, factor) else {
            continue;
        };
        if day <= last_day {
            c.error(
                level,
                format!("growth.levels[{i}]"),
                "levels must be after start and in time order",
            );
            continue;
        }
        last_day = day;
        out.push(GrowthLevel { at, factor });
    }
    out
}

fn budget(c: &mut Checker, b: &Spanned<RawBudget>) -> Budget {
    let raw = b.get_ref();
    Budget {
        monthly_usd: c.opt_number(
            raw.monthly_usd.as_ref(),
            "budget.monthly_usd",
            NumberRule::Positive,
        ),
        cost_per_user_usd: c.opt_number(
            raw.cost_per_user_usd.as_ref(),
            "budget.cost_per_user_usd",
            NumberRule::Positive,
        ),
    }
}

fn tiers(c: &mut Checker, t: &Spanned<RawTiers>) -> TierPricing {
    let raw = t.get_ref();
    TierPricing {
        flex_discount: c.opt_number(
            raw.flex_discount.as_ref(),
            "tiers.flex_discount",
            NumberRule::FractionBelowOne,
        ),
        priority_premium: c.opt_number(
            raw.priority_premium.as_ref(),
            "tiers.priority_premium",
            NumberRule::NonNegative,
        ),
        batch_discount: c.opt_number(
            raw.batch_discount.as_ref(),
            "tiers.batch_discount",
            NumberRule::FractionBelowOne,
        ),
    }
}
