//! The strategies, each quantified on the same demand and ranked by monthly
//! cost at the horizon among those that carry the demand.
//!
//! A strategy is a scenario (module `load`) changed from today's set-up,
//! evaluated with the same walls as the plan: whether it carries the
//! horizon's demand (as is, with quota increases, or not: a wall no request
//! lifts binds first), what it costs a month at the horizon, what it needs and
//! risks. Each is evaluated alone; combining them is the reader's call.

mod assess;
mod caching;
mod commitments;
mod offload;
mod routing;
mod scale;

pub(crate) use assess::{Assessment, assess, base_scenario};

use assess::{Draft, first_wall};

use crate::context::Ctx;
use crate::figure::{Figure, Unit};
use crate::load::Scenario;
use crate::plan::{Carries, StrategyKind, StrategyResult};
use crate::resolve::ResolvedClass;

/// Every strategy, quantified and ranked.
pub(crate) fn strategies(
    ctx: &mut Ctx<'_>,
    classes: &[ResolvedClass],
    base: &Scenario,
    baseline: &Assessment,
) -> Vec<StrategyResult> {
    let mut drafts = vec![quota_increase(baseline)];
    drafts.extend(caching::caching(ctx, classes, base, baseline));
    drafts.extend(routing::routing(ctx, classes, base));
    drafts.extend(scale::multi_account(ctx, classes, base, baseline));
    drafts.extend(scale::profiles(ctx, classes, base));
    drafts.extend(offload::tiers(ctx, classes, base));
    drafts.extend(commitments::reserved(ctx, classes, base));
    drafts.extend(commitments::provisioned(ctx, classes, base, baseline));
    drafts.extend(offload::batch_and_queue(ctx, classes, base, baseline));
    drafts.extend(offload::self_hosting(ctx, classes, base));
    rank(drafts, &baseline.cost)
}

fn quota_increase(baseline: &Assessment) -> Draft {
    let first = first_wall(&baseline.walls)
        .unwrap_or_else(|| "no wall binds within the horizon".to_owned());
    let mut d = Draft::new(
        "Today's set-up, quotas raised",
        StrategyKind::QuotaIncrease,
        format!(
            "keep every class on its current model and tier and ask AWS for the quota increases in the request section; {first}"
        ),
    );
    d.risks.push("increases are not automatic: AWS favours accounts already using their allocation, and a quota marked not adjustable cannot be raised".to_owned());
    d.assessment = Some(Assessment {
        load: baseline.load.clone(),
        walls: baseline.walls.clone(),
        cost: baseline.cost.clone(),
        carries: baseline.carries.clone(),
        needs: baseline.needs.clone(),
    });
    d
}

fn carries_order(c: &Carries) -> u8 {
    match c {
        Carries::Yes | Carries::WithQuotaIncreases => 0,
        Carries::Unknown => 1,
        Carries::No { .. } => 2,
    }
}

/// Ranks by monthly cost at the horizon among the strategies that carry the
/// demand; the rest follow, unranked.
fn rank(drafts: Vec<Draft>, baseline_cost: &Figure) -> Vec<StrategyResult> {
    let mut results: Vec<StrategyResult> = drafts
        .into_iter()
        .map(|d| {
            let (cost, carries, mut needs) = match d.assessment {
                Some(a) => (Some(a.cost), a.carries, a.needs),
                None => (None, Carries::Unknown, Vec::new()),
            };
            needs.extend(d.extra_needs);
            let versus = cost.as_ref().map(|c| {
                Figure::computed(
                    c.value - baseline_cost.value,
                    Unit::UsdPerMonth,
                    "this strategy's monthly cost − today's set-up's, at the horizon",
                    [c, baseline_cost],
                )
            });
            StrategyResult {
                rank: None,
                name: d.name,
                kind: d.kind,
                summary: d.summary,
                monthly_cost: cost,
                versus_baseline: versus,
                carries,
                needs,
                risks: d.risks,
                figures: d.figures,
                missing: d.missing,
            }
        })
        .collect();
    results.sort_by(|a, b| {
        let cost = |r: &StrategyResult| r.monthly_cost.as_ref().map_or(f64::INFINITY, |c| c.value);
        carries_order(&a.carries)
            .cmp(&carries_order(&b.carries))
            .then(cost(a).total_cmp(&cost(b)))
    });
    let mut rank = 0;
    for r in &mut results {
        if carries_order(&r.carries) == 0 && r.monthly_cost.is_some() {
            rank += 1;
            r.rank = Some(rank);
        }
    }
    results
}
