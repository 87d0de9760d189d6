//! A scenario assessed at the horizon (loads, walls, cost, whether it
//! carries the demand), and the draft a strategy builder fills in: the shared
//! ground the strategy modules stand on.

use crate::context::Ctx;
use crate::figure::Figure;
use crate::load::{Load, Scenario, Serving, evaluate};
use crate::num::num;
use crate::plan::{Binding, Carries, MissingInput, NamedFigure, StrategyKind, Wall};
use crate::quota_request::{need_at, round_up};
use crate::resolve::ResolvedClass;
use crate::walls::{curve_walls, monthly_cost_figure, quota_walls, sort_walls};

/// Today's set-up: each class on its first model, caching as in use, one
/// Standard tier, the accounts entered.
pub(crate) fn base_scenario(ctx: &mut Ctx<'_>, classes: &[ResolvedClass]) -> Scenario {
    let accounts = match ctx.input.accounts {
        Some(n) => n,
        None => {
            ctx.assume("traffic runs in one AWS account (enter accounts to change it)");
            1
        }
    };
    Scenario {
        serving: classes
            .iter()
            .map(|c| Serving {
                mix: vec![(c.models[0].clone(), 1.0)],
                caching: c.cache.as_ref().is_some_and(|k| k.in_use),
                tier: None,
                batch: None,
                smoothed: false,
                self_hosted: None,
            })
            .collect(),
        accounts,
        provisioned: Vec::new(),
        reserved: Vec::new(),
    }
}

/// A scenario evaluated at the horizon.
pub(crate) struct Assessment {
    pub(crate) load: Load,
    pub(crate) walls: Vec<Wall>,
    pub(crate) cost: Figure,
    pub(crate) carries: Carries,
    pub(crate) needs: Vec<String>,
}

/// Evaluates `scenario`: loads, quota and measured walls, cost at the
/// horizon, and whether it carries the horizon's demand.
pub(crate) fn assess(
    ctx: &mut Ctx<'_>,
    classes: &[ResolvedClass],
    scenario: &Scenario,
) -> Assessment {
    let load = evaluate(ctx, classes, scenario);
    let mut walls = quota_walls(ctx, scenario, &load);
    walls.extend(curve_walls(ctx, classes, &load));
    sort_walls(&mut walls);
    let horizon = ctx.timeline.horizon_factor();
    let cost = monthly_cost_figure(&load.cost, horizon, "at the horizon");
    let (carries, needs) = carries(&load, &walls, scenario.accounts, horizon);
    Assessment {
        load,
        walls,
        cost,
        carries,
        needs,
    }
}

/// Whether the walls let the horizon's demand through, and the quota
/// increases that takes.
fn carries(load: &Load, walls: &[Wall], accounts: u32, horizon: f64) -> (Carries, Vec<String>) {
    let mut needs = Vec::new();
    let mut unknown = false;
    for wall in walls {
        let quota = wall.kind.quota_metric();
        match wall.binds {
            Binding::Unplaced if quota.is_some() => unknown = true,
            b if !b.within_horizon() => {}
            _ if wall.fixed || quota.is_none() => {
                let label = format!("{} of {}", wall.kind.label(), wall.scope);
                return (
                    Carries::No {
                        wall: label,
                        binds: wall.binds,
                    },
                    needs,
                );
            }
            _ => {
                let (Some(metric), Some(pool)) = (quota, &wall.pool) else {
                    continue;
                };
                let Some(p) = load.pools.get(pool) else {
                    continue;
                };
                let need = round_up(metric, need_at(p, metric, horizon, accounts));
                let line = format!(
                    "{} of {}: {} → {} per account",
                    metric.abbreviation(),
                    wall.scope,
                    wall.limit.as_ref().map_or("?".to_owned(), |l| num(l.value)),
                    num(need)
                );
                if !needs.contains(&line) {
                    needs.push(line);
                }
            }
        }
    }
    let state = match (unknown, needs.is_empty()) {
        (true, _) => Carries::Unknown,
        (false, true) => Carries::Yes,
        (false, false) => Carries::WithQuotaIncreases,
    };
    (state, needs)
}

/// The first wall within the horizon, described.
pub(crate) fn first_wall(walls: &[Wall]) -> Option<String> {
    walls.iter().find(|w| w.binds.within_horizon()).map(|w| {
        let when = match w.binds {
            Binding::Within { date: Some(d), .. } => format!("on {d}"),
            Binding::Within { day, .. } => format!("on day {}", day.ceil()),
            _ => "already".to_owned(),
        };
        format!("{} of {} binds first, {when}", w.kind.label(), w.scope)
    })
}

/// Assesses `scenario` into `d`, noting in its summary what binds first.
pub(crate) fn finish(
    ctx: &mut Ctx<'_>,
    classes: &[ResolvedClass],
    scenario: &Scenario,
    mut d: Draft,
) -> Draft {
    let (assessment, missing) = ctx.scoped(|ctx| assess(ctx, classes, scenario));
    if let Some(first) = first_wall(&assessment.walls) {
        d.summary.push_str(&format!("; {first}"));
    }
    d.missing.extend(missing);
    d.assessment = Some(assessment);
    d
}

/// What a strategy builder produces before ranking.
pub(crate) struct Draft {
    pub(crate) name: String,
    pub(crate) kind: StrategyKind,
    pub(crate) summary: String,
    pub(crate) assessment: Option<Assessment>,
    pub(crate) extra_needs: Vec<String>,
    pub(crate) risks: Vec<String>,
    pub(crate) figures: Vec<NamedFigure>,
    pub(crate) missing: Vec<MissingInput>,
}

impl Draft {
    pub(crate) fn new(
        name: impl Into<String>,
        kind: StrategyKind,
        summary: impl Into<String>,
    ) -> Self {
        Draft {
            name: name.into(),
            kind,
            summary: summary.into(),
            assessment: None,
            extra_needs: Vec::new(),
            risks: Vec::new(),
            figures: Vec::new(),
            missing: Vec::new(),
        }
    }

    pub(crate) fn figure(&mut self, label: impl Into<String>, figure: Figure) {
        self.figures.push(NamedFigure {
            label: label.into(),
            figure,
        });
    }
}
