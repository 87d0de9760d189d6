//! The cost wall: monthly spend against the budget, cost per user against its
//! limit, and how cost grows against users. Without a budget the figures are
//! still shown, and the plan says what would place the wall.

use super::binding::place;
use crate::context::Ctx;
use crate::figure::{Figure, Unit};
use crate::load::{CostModel, Load};
use crate::num::{num, usd};
use crate::plan::{Binding, NamedFigure, Wall, WallKind};
use crate::resolve::ResolvedClass;

/// Monthly cost at today's demand, with the arithmetic and sources.
pub(crate) fn monthly_cost_figure(cost: &CostModel, factor: f64, when: &str) -> Figure {
    let mut how = format!(
        "{when}: average requests per minute × 43,830 minutes a month × USD per request (tier and batch prices applied)"
    );
    if !cost.steps.is_empty() {
        how.push_str(", plus units bought (model units, servers) for the peak");
    }
    if !cost.reserved.is_empty() {
        how.push_str(", plus reserved-tier commitments less the on-demand spend they replace");
    }
    if !cost.complete() {
        how.push_str(&format!(
            "; unpriced traffic left out ({})",
            cost.unpriced.join(", ")
        ));
    }
    let mut f = Figure::computed(cost.at(factor), Unit::UsdPerMonth, how, []);
    f.from = cost.from.clone();
    f.from.sort();
    f
}

/// The first whole day (up to three horizons out) on which `value` passes `limit`.
fn first_day_over(ctx: &Ctx<'_>, limit: f64, value: impl Fn(&Ctx<'_>, f64) -> f64) -> Option<f64> {
    let last = (3.0 * ctx.timeline.horizon_days()).ceil() as u32;
    (0..=last).map(f64::from).find(|&d| value(ctx, d) > limit)
}

/// When a wall first passed on `day` binds (`limited`: a limit was entered).
fn day_binding(ctx: &Ctx<'_>, limited: bool, day: Option<f64>) -> Binding {
    match (limited, day) {
        (false, _) => Binding::Unplaced,
        (true, None) => Binding::NotAtEnteredGrowth,
        (true, Some(0.0)) => Binding::Already,
        (true, Some(d)) if d <= ctx.timeline.horizon_days() => Binding::Within {
            day: d,
            date: ctx.timeline.date_of(d),
        },
        (true, Some(d)) => Binding::AfterHorizon {
            day: d,
            date: ctx.timeline.date_of(d),
        },
    }
}

/// The smallest demand factor at which monthly cost reaches `budget`.
fn factor_at_cost(cost: &CostModel, budget: f64) -> Option<f64> {
    let (mut lo, mut hi) = (0.0_f64, 1e7_f64);
    if cost.at(hi) < budget {
        return None;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if cost.at(mid) >= budget {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Some(hi)
}

/// The cost walls of `load`.
pub(crate) fn cost_walls(ctx: &mut Ctx<'_>, classes: &[ResolvedClass], load: &Load) -> Vec<Wall> {
    let cost = &load.cost;
    if !cost.complete() {
        ctx.missing(
            "walls: cost",
            format!("cost leaves out unpriced traffic on {}: enter their [pricing] or pass the built-in table", cost.unpriced.join(", ")),
        );
    }
    let horizon = ctx.timeline.horizon_factor();
    let today = monthly_cost_figure(cost, 1.0, "today");
    let at_horizon = monthly_cost_figure(cost, horizon, "at the horizon");
    let mut walls = vec![monthly_wall(ctx, cost, &today, &at_horizon)];
    let users: Vec<&Figure> = classes.iter().filter_map(|c| c.users.as_ref()).collect();
    if users.is_empty() {
        ctx.missing(
            "walls: cost per user",
            "enter class users (users served by each class) to place the cost-per-user wall",
        );
    } else {
        walls.push(per_user_wall(ctx, cost, &users, &today));
    }
    walls
}

fn monthly_wall(ctx: &mut Ctx<'_>, cost: &CostModel, today: &Figure, at_horizon: &Figure) -> Wall {
    let limit = ctx
        .input
        .budget
        .monthly_usd
        .map(|b| ctx.entered("budget.monthly_usd", b, Unit::UsdPerMonth));
    if limit.is_none() {
        ctx.missing(
            "walls: monthly cost",
            "enter budget.monthly_usd to place the cost wall",
        );
    }
    let factor = limit.as_ref().and_then(|l| factor_at_cost(cost, l.value));
    let binds_at = match (&limit, factor) {
        (Some(l), Some(f)) => Some(Figure::computed(
            f,
            Unit::DemandFactor,
            "demand at which monthly cost reaches the budget",
            [l, today],
        )),
        _ => None,
    };
    let growth = at_horizon.value / today.value.max(f64::MIN_POSITIVE);
    Wall {
        kind: WallKind::MonthlyCost,
        scope: "all classes".to_owned(),
        pool: None,
        limit,
        accounts: 1,
        load_today: Some(today.clone()),
        binds_at,
        binds: if ctx.input.budget.monthly_usd.is_some() && factor.is_none() {
            Binding::NotAtEnteredGrowth
        } else {
            place(ctx, factor)
        },
        at_binding: vec![NamedFigure {
            label: "monthly cost at the horizon".to_owned(),
            figure: at_horizon.clone(),
        }],
        fixed: false,
        adjustable: None,
        quota_name: None,
        quota_code: None,
        notes: vec![format!(
            "monthly cost grows ×{} by the horizon ({} → {})",
            num(growth),
            usd(today.value),
            usd(at_horizon.value)
        )],
    }
}

fn per_user_wall(ctx: &mut Ctx<'_>, cost: &CostModel, users: &[&Figure], today: &Figure) -> Wall {
    let users_today: f64 = users.iter().map(|u| u.value).sum();
    let per_user_today = Figure::computed(
        today.value / users_today,
        Unit::UsdPerUserPerMonth,
        "monthly cost ÷ users",
        users.iter().copied().chain([today]),
    );
    let limit = ctx
        .input
        .budget
        .cost_per_user_usd
        .map(|b| ctx.entered("budget.cost_per_user_usd", b, Unit::UsdPerUserPerMonth));
    if limit.is_none() {
        ctx.missing(
            "walls: cost per user",
            "enter budget.cost_per_user_usd to place the cost-per-user wall",
        );
    }
    let horizon = ctx.timeline.horizon_days();
    let per_user = |ctx: &Ctx<'_>, day: f64| {
        cost.at(ctx.timeline.factor_at(day)) / (users_today * ctx.timeline.users_factor_at(day))
    };
    let day = limit
        .as_ref()
        .and_then(|l| first_day_over(ctx, l.value, per_user));
    let binds = day_binding(ctx, limit.is_some(), day);
    let binds_at = day.map(|d| {
        per_user_today.derive(
            ctx.timeline.factor_at(d),
            Unit::DemandFactor,
            "demand on the first day cost per user passes the limit",
        )
    });
    let users_growth = ctx.timeline.users_factor_at(horizon);
    let cost_growth = cost.at(ctx.timeline.horizon_factor()) / today.value.max(f64::MIN_POSITIVE);
    let at_horizon = per_user_today.derive(
        per_user(ctx, horizon),
        Unit::UsdPerUserPerMonth,
        "monthly cost at the horizon ÷ users at the horizon",
    );
    Wall {
        kind: WallKind::CostPerUser,
        scope: "all classes with users".to_owned(),
        pool: None,
        limit,
        accounts: 1,
        load_today: Some(per_user_today),
        binds_at,
        binds,
        at_binding: vec![NamedFigure {
            label: "cost per user at the horizon".to_owned(),
            figure: at_horizon,
        }],
        fixed: false,
        adjustable: None,
        quota_name: None,
        quota_code: None,
        notes: vec![format!(
            "by the horizon cost grows ×{} while users grow ×{}",
            num(cost_growth),
            num(users_growth)
        )],
    }
}
