//! `plan`: the one entry point of the arithmetic. Resolves the input, assesses
//! today's set-up (walls, cost), writes the quota request, quantifies and
//! ranks the strategies, holds measurements against the arithmetic, and
//! gathers every source, assumption and missing input.

use crate::context::{Ctx, DEFAULT_HORIZON_MONTHS, DEFAULT_LEAD_TIME_DAYS};
use crate::figure::{Figure, Unit, round_sig};
use crate::input::{GrowthCurve, PlanInput};
use crate::plan::{ClassSummary, DEMAND_SAMPLES, PLAN_SCHEMA_VERSION, Plan, TimelineSummary};
use crate::profile::request_profile;
use crate::quota_request::quota_requests;
use crate::resolve::{ResolvedClass, resolve_classes};
use crate::strategy::{assess, base_scenario, strategies};
use crate::walls::{cost_walls, quota_checks, sort_walls};

/// Computes the capacity plan for `input`. Pure: the same input gives the
/// same plan, and nothing is read from files, clocks or the network. A plan
/// missing an input for some section still computes the rest and lists what
/// would enable the missing part in [`Plan::missing`].
pub fn plan(input: &PlanInput) -> Plan {
    let mut ctx = Ctx::new(input);
    for text in &input.assumptions {
        ctx.assume(text.as_str());
    }
    let classes = resolve_classes(&mut ctx);
    let (months, horizon) = horizon_factor(&mut ctx);
    let base = base_scenario(&mut ctx, &classes);
    let baseline = assess(&mut ctx, &classes, &base);
    let mut walls = baseline.walls.clone();
    walls.extend(cost_walls(&mut ctx, &classes, &baseline.load));
    sort_walls(&mut walls);
    let (quota_requests, fixed_caps) =
        quota_requests(&mut ctx, &baseline.load, &walls, base.accounts, &horizon);
    let strategies = strategies(&mut ctx, &classes, &base, &baseline);
    let checks = quota_checks(&mut ctx);
    let class_summaries = classes
        .iter()
        .zip(&base.serving)
        .map(|(c, s)| summary(&mut ctx, c, &s.mix[0].0, s.caching))
        .collect();
    let timeline = timeline_summary(&mut ctx, &months, horizon, base.accounts);
    standing_assumptions(&mut ctx);
    let (sources, assumptions, missing) = ctx.finish();
    Plan {
        schema_version: PLAN_SCHEMA_VERSION,
        title: input.title.clone(),
        timeline,
        classes: class_summaries,
        walls,
        quota_requests,
        fixed_caps,
        strategies,
        checks,
        assumptions,
        missing,
        sources,
    }
}

/// The horizon in months, and demand there as a multiple of today's.
fn horizon_factor(ctx: &mut Ctx<'_>) -> (Figure, Figure) {
    let months = match ctx.input.horizon_months {
        Some(m) => ctx.entered("horizon_months", m, Unit::Months),
        None => ctx.assumed(
            "horizon_12_months",
            "the plan looks 12 months ahead (enter horizon_months to change it)",
            DEFAULT_HORIZON_MONTHS,
            Unit::Months,
        ),
    };
    let growth = match &ctx.input.growth.demand {
        GrowthCurve::Monthly { rate } => ctx.entered("growth.monthly_rate", *rate, Unit::Ratio),
        GrowthCurve::Levels(_) => ctx.entered("growth.levels", 1.0, Unit::DemandFactor),
        GrowthCurve::Flat => ctx.assumed("no_growth", "no growth entered: demand stays at today's level (enter growth.monthly_rate or growth.levels)", 0.0, Unit::Ratio),
    };
    let factor = Figure::computed(
        ctx.timeline.horizon_factor(),
        Unit::DemandFactor,
        "the growth entered, compounded over the horizon",
        [&months, &growth],
    );
    (months, factor)
}

fn timeline_summary(
    ctx: &mut Ctx<'_>,
    months: &Figure,
    horizon_factor: Figure,
    accounts: u32,
) -> TimelineSummary {
    let days = ctx.timeline.horizon_days();
    let lead_time = match ctx.input.lead_time_days {
        Some(d) => ctx.entered("lead_time_days", f64::from(d), Unit::Days),
        None => ctx.assumed("lead_time_six_weeks", "quota requests are filed 42 days (six weeks) before they are needed (enter lead_time_days)", f64::from(DEFAULT_LEAD_TIME_DAYS), Unit::Days),
    };
    let accounts = match ctx.input.accounts {
        Some(n) => ctx.entered("accounts", f64::from(n), Unit::Accounts),
        None => ctx.assumed(
            "one_account",
            "traffic runs in one AWS account (enter accounts to change it)",
            f64::from(accounts),
            Unit::Accounts,
        ),
    };
    TimelineSummary {
        start: ctx.timeline.start(),
        horizon: months.derive(days, Unit::Days, "horizon months × 30.4375 days"),
        horizon_end: ctx.timeline.date_of(days.floor()),
        growth: ctx.timeline.describe(),
        horizon_factor,
        lead_time,
        accounts,
        region: ctx.input.region.clone(),
        demand: (0..=DEMAND_SAMPLES)
            .map(|i| {
                let day = days * f64::from(i) / f64::from(DEMAND_SAMPLES);
                [round_sig(day), round_sig(ctx.timeline.factor_at(day))]
            })
            .collect(),
    }
}

fn summary(ctx: &mut Ctx<'_>, class: &ResolvedClass, model: &str, caching: bool) -> ClassSummary {
    let profile = request_profile(ctx, class, model, caching);
    ClassSummary {
        name: class.name.clone(),
        interactive: class.interactive,
        model: model.to_owned(),
        peak_rpm: class.peak_rpm.clone(),
        average_rpm: class.average_rpm.clone(),
        input_tokens: class.input_tokens.clone(),
        output_tokens: class.output_tokens.clone(),
        reservation: profile.reservation,
        max_tokens_unset: class.max_tokens.is_none(),
        settlement: profile.settlement,
        cost_per_request: profile.cost,
    }
}

fn standing_assumptions(ctx: &mut Ctx<'_>) {
    if ctx.input.start.is_none() {
        ctx.missing(
            "dates",
            "enter start (YYYY-MM-DD) to turn days from now into calendar dates",
        );
    }
    for text in [
        "a month is 30.4375 days (365.25 / 12); monthly growth compounds continuously",
        "demand entered is today's; loads grow in proportion to it, and traffic is spread evenly over accounts",
        "a class's token counts are the same on every model it may be routed to (tokenizers differ between model families)",
        "TPM at admission follows the simulator's window: a reservation is held until the request ends; Bedrock adjusts it during generation, so the real wall may bind later",
    ] {
        ctx.assume(text);
    }
}
