//! Model routing: a class's requests spread over models by a mix (entered as
//! `class.route`), or moved whole to another candidate model. For each model
//! in the mix: its share of the class, its pool's load against its quotas at
//! the horizon, its monthly cost; and which cap binds first.

use super::assess::{Assessment, Draft, assess, first_wall};
use crate::context::Ctx;
use crate::figure::{Figure, Unit};
use crate::load::Scenario;
use crate::models::pool_quotas;
use crate::num::pct;
use crate::plan::StrategyKind;
use crate::pool::PoolKey;
use crate::profile::request_profile;
use crate::resolve::ResolvedClass;
use crate::timeline::MINUTES_PER_MONTH;

pub(super) fn routing(ctx: &mut Ctx<'_>, classes: &[ResolvedClass], base: &Scenario) -> Vec<Draft> {
    let mut drafts = Vec::new();
    for (i, class) in classes.iter().enumerate() {
        let mut mixes: Vec<(String, Vec<(String, f64)>)> = class
            .routes
            .iter()
            .map(|r| (r.name.clone(), r.shares.clone()))
            .collect();
        for model in class.models.iter().skip(1) {
            let whole = vec![(model.clone(), 1.0)];
            if !mixes.iter().any(|(_, m)| m == &whole) {
                mixes.push((format!("all to {model}"), whole));
            }
        }
        for (name, mix) in mixes {
            drafts.push(route(ctx, classes, base, i, class, &name, mix));
        }
    }
    drafts
}

fn route(
    ctx: &mut Ctx<'_>,
    classes: &[ResolvedClass],
    base: &Scenario,
    i: usize,
    class: &ResolvedClass,
    name: &str,
    mix: Vec<(String, f64)>,
) -> Draft {
    let shares: Vec<String> = mix
        .iter()
        .map(|(m, s)| format!("{} to {m}", pct(*s)))
        .collect();
    let mut d = Draft::new(
        format!("Route class {}: {name}", class.name),
        StrategyKind::ModelRouting,
        format!(
            "send {} of class {}'s requests",
            shares.join(", "),
            class.name
        ),
    );
    let mut scenario = base.clone();
    scenario.serving[i].mix = mix.clone();
    let (assessment, missing) = ctx.scoped(|ctx| assess(ctx, classes, &scenario));
    for (model, share) in &mix {
        model_figures(
            ctx,
            &mut d,
            class,
            &scenario,
            &assessment,
            model,
            *share,
            scenario.serving[i].caching,
        );
    }
    if let Some(first) = first_wall(&assessment.walls) {
        d.summary.push_str(&format!("; {first}"));
    }
    d.risks.push("quality differs between models: route only the requests the cheaper model serves well (measure it)".to_owned());
    d.risks.push("token counts differ between model families' tokenizers; the plan uses the class's counts for every model".to_owned());
    d.missing.extend(missing);
    d.assessment = Some(assessment);
    d
}

/// One model of a mix: the monthly cost of its share, and its pool's load
/// against its quotas at the horizon (with the accounts a fixed cap needs).
#[allow(clippy::too_many_arguments)] // one model's view of one scenario
fn model_figures(
    ctx: &mut Ctx<'_>,
    d: &mut Draft,
    class: &ResolvedClass,
    scenario: &Scenario,
    assessment: &Assessment,
    model: &str,
    share: f64,
    caching: bool,
) {
    let horizon = ctx.timeline.horizon_factor();
    let profile = request_profile(ctx, class, model, caching);
    if let Some(cost) = &profile.cost {
        let monthly = share * class.average_rpm.value * horizon * MINUTES_PER_MONTH * cost.value;
        d.figure(
            format!("{model}: monthly cost of its share at the horizon"),
            Figure::computed(
                monthly,
                Unit::UsdPerMonth,
                format!("{} of average RPM × 43,830 × USD per request", pct(share)),
                [&class.average_rpm, cost],
            ),
        );
    }
    let Some(key) = PoolKey::of(model) else {
        return;
    };
    let Some(pool) = assessment.load.pools.get(&key) else {
        return;
    };
    let quotas = pool_quotas(ctx, &key);
    let uses = [
        (
            "TPM (settled, at the peak)",
            pool.tpm_settled_peak,
            quotas.tpm.as_ref(),
        ),
        ("tokens per day", pool.tpd, quotas.tpd.as_ref()),
    ];
    let n = f64::from(scenario.accounts);
    for (what, load, limit) in uses {
        let Some(limit) = limit else { continue };
        let share = Figure::computed(
            load * horizon / (n * limit.value.value),
            Unit::Ratio,
            "pool load at the horizon ÷ (accounts × quota)",
            [&limit.value],
        );
        // A fixed cap is met with accounts, each keeping room for one more
        // reservation, as the admission check asks.
        let room = limit.value.value - pool.max_reservation;
        if limit.adjustable == Some(false) && room > 0.0 && load * horizon > n * room {
            let accounts = share.derive(
                (load * horizon / room).ceil(),
                Unit::Accounts,
                "ceil(load at the horizon ÷ (the fixed cap − the largest reservation))",
            );
            d.figure(
                format!(
                    "{}: accounts its fixed {what} cap needs at the horizon",
                    key.label()
                ),
                accounts,
            );
        }
        d.figure(
            format!("{}: {what} at the horizon, share of its quota", key.label()),
            share,
        );
    }
}
