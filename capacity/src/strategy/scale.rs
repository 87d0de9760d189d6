//! Strategies that add quota pools rather than change the traffic: more AWS
//! accounts (each with its own quotas, daily caps included), and
//! cross-Region or global inference profiles (each with its own pool and
//! price).

use quarry_bedrock::quota::QuotaPool;

use super::assess::{Assessment, Draft, assess, finish, first_wall};
use crate::context::Ctx;
use crate::figure::{Figure, Unit};
use crate::inference_profiles::profile_alternatives;
use crate::load::Scenario;
use crate::num::num;
use crate::plan::{Binding, MissingInput, StrategyKind};
use crate::pool::PoolKey;
use crate::resolve::ResolvedClass;

pub(super) fn multi_account(
    ctx: &mut Ctx<'_>,
    classes: &[ResolvedClass],
    base: &Scenario,
    baseline: &Assessment,
) -> Vec<Draft> {
    let mut d = Draft::new(
        "Spread over more AWS accounts",
        StrategyKind::MultiAccount,
        "",
    );
    let needed = accounts_needed(ctx, &mut d, base.accounts, baseline);
    d.summary = format!(
        "spread traffic evenly over {needed} account(s), each with its own quotas and daily caps"
    );
    if needed > base.accounts {
        d.extra_needs
            .push(format!("{} new AWS account(s)", needed - base.accounts));
    }
    d.risks.push("new accounts start with reduced quotas, and increases favour accounts already using theirs (AWS quotas.html)".to_owned());
    d.risks.push("traffic must be split across accounts by the application or a gateway; service capacity (latency) is shared, not multiplied".to_owned());
    let mut scenario = base.clone();
    scenario.accounts = needed;
    vec![finish(ctx, classes, &scenario, d)]
}

/// Accounts each quota wall needs, today and at the horizon (a wall binds at
/// demand `f` with `n` accounts, so demand `h` needs `ceil(n × h ÷ f)`), and
/// the most of them; each wall's figures go into `d`.
fn accounts_needed(ctx: &Ctx<'_>, d: &mut Draft, accounts: u32, baseline: &Assessment) -> u32 {
    let horizon = ctx.timeline.horizon_factor();
    let n = f64::from(accounts);
    let mut needed = accounts;
    let mut basis: Vec<&Figure> = Vec::new();
    for wall in baseline
        .walls
        .iter()
        .filter(|w| w.kind.quota_metric().is_some())
    {
        let label = format!("{} of {}", wall.kind.label(), wall.scope);
        let Some(at) = &wall.binds_at else {
            if wall.binds == Binding::Unplaced {
                d.missing.push(MissingInput {
                    section: format!("accounts for {label}"),
                    needs: "the pool's quota (see the plan's missing inputs)".to_owned(),
                });
            }
            continue;
        };
        if at.value <= 0.0 {
            d.risks.push(format!(
                "{label}: one request does not fit the quota; no number of accounts helps"
            ));
            continue;
        }
        let at_horizon = (n * horizon / at.value).ceil();
        if at_horizon <= n {
            continue;
        }
        d.figure(
            format!("accounts for {label}, today"),
            at.derive(
                (n / at.value).ceil(),
                Unit::Accounts,
                "ceil(accounts × today's demand ÷ binding demand)",
            ),
        );
        d.figure(
            format!("accounts for {label}, at the horizon"),
            at.derive(
                at_horizon,
                Unit::Accounts,
                "ceil(accounts × horizon demand ÷ binding demand)",
            ),
        );
        needed = needed.max(at_horizon as u32);
        basis.push(at);
    }
    let total = Figure::computed(
        f64::from(needed),
        Unit::Accounts,
        "the most any quota wall needs at the horizon, and at least today's accounts",
        basis,
    );
    d.figure("accounts needed at the horizon", total);
    needed
}

pub(super) fn profiles(
    ctx: &mut Ctx<'_>,
    classes: &[ResolvedClass],
    base: &Scenario,
) -> Vec<Draft> {
    let mut current: Vec<String> = base.serving.iter().map(|s| s.mix[0].0.clone()).collect();
    current.sort();
    current.dedup();
    let region = ctx.input.region.clone();
    if region.is_none()
        && current
            .iter()
            .any(|m| QuotaPool::of_model_id(m) == Some(QuotaPool::OnDemand))
    {
        ctx.missing(
            "strategies: cross-Region profiles",
            "enter region to consider the Region's geographic inference profile",
        );
    }
    let mut drafts = Vec::new();
    for model in &current {
        for alt in profile_alternatives(model, region.as_deref()) {
            drafts.push(profile(ctx, classes, base, model, &alt));
        }
    }
    drafts
}

fn profile(
    ctx: &mut Ctx<'_>,
    classes: &[ResolvedClass],
    base: &Scenario,
    model: &str,
    alt: &str,
) -> Draft {
    let key = PoolKey::of(alt);
    let pool_label = key.as_ref().map_or_else(|| alt.to_owned(), PoolKey::label);
    let mut d = Draft::new(
        format!("Serve {model} through {alt}"),
        StrategyKind::InferenceProfile,
        format!(
            "move every class on {model} to {alt}, which draws on its own quota pool ({pool_label})"
        ),
    );
    let mut scenario = base.clone();
    for serving in &mut scenario.serving {
        for (m, _) in &mut serving.mix {
            if m == model {
                *m = alt.to_owned();
            }
        }
    }
    let (assessment, missing) = ctx.scoped(|ctx| assess(ctx, classes, &scenario));
    if let Some(first) = first_wall(&assessment.walls) {
        d.summary.push_str(&format!("; {first}"));
    }
    if let Some(pool) = key.as_ref().and_then(|k| assessment.load.pools.get(k)) {
        let horizon = ctx.timeline.horizon_factor();
        let mut figure = Figure::computed(
            pool.tpm_settled_peak * horizon,
            Unit::TokensPerMinute,
            format!("today's settled TPM × horizon factor {}", num(horizon)),
            [],
        );
        figure.from = pool.from.clone();
        d.figure(
            format!("{pool_label}: settled TPM at the horizon's peak"),
            figure,
        );
    }
    d.risks.push(if alt.starts_with("global.") {
        "global profiles route requests to any commercial Region: check data-residency rules".to_owned()
    } else {
        "geographic profiles route requests to other Regions of the geography: check data-residency rules".to_owned()
    });
    d.risks.push("the pool's quotas are the account's own: enter them ([[quota]]) when the built-in defaults do not cover the pool".to_owned());
    d.missing.extend(missing);
    d.assessment = Some(assessment);
    d
}
