//! Prompt caching: each class with a cacheable prefix and a hit ratio
//! (entered or measured) reads its prefix from the cache. Cache reads do not
//! count at settlement, so settled TPM and daily tokens fall; they do count
//! at admission, so TPM at admission does not. Reads cost a tenth of input,
//! writes a quarter more (five-minute TTL), so a low hit ratio can cost more.

use super::assess::{Assessment, Draft, finish};
use crate::context::Ctx;
use crate::figure::{Figure, Unit};
use crate::load::Scenario;
use crate::plan::StrategyKind;
use crate::profile::request_profile;
use crate::resolve::ResolvedClass;
use crate::timeline::{MINUTES_PER_DAY, MINUTES_PER_MONTH};

pub(super) fn caching(
    ctx: &mut Ctx<'_>,
    classes: &[ResolvedClass],
    base: &Scenario,
    _baseline: &Assessment,
) -> Vec<Draft> {
    let candidates: Vec<&ResolvedClass> = classes
        .iter()
        .filter(|c| c.cache.as_ref().is_some_and(|k| !k.in_use))
        .collect();
    if candidates.is_empty() {
        if classes.iter().all(|c| c.cache.is_none()) {
            ctx.missing(
                "strategies: prompt caching",
                "enter a class's cache (prefix_tokens, hit_ratio), or pass a run that used caching with --from, to quantify prompt caching",
            );
        }
        return Vec::new();
    }
    let mut d = Draft::new(
        "Prompt caching",
        StrategyKind::PromptCaching,
        format!(
            "put a cache point after the shared prefix of {}",
            candidates
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    let mut scenario = base.clone();
    for c in &candidates {
        let Some(cache) = &c.cache else { continue };
        if cache.hit_ratio.is_none() {
            d.missing.push(crate::plan::MissingInput {
                section: format!("prompt caching of class {}", c.name),
                needs: format!(
                    "enter {} or pass a run that used caching with --from",
                    c.path("cache.hit_ratio")
                ),
            });
            continue;
        }
        let i = classes.iter().position(|k| k.index == c.index).unwrap_or(0);
        scenario.serving[i].caching = true;
        class_figures(ctx, &mut d, c, &base.serving[i].mix[0].0);
    }
    d.risks.extend([
        "cache reads still count at admission: TPM at admission does not fall".to_owned(),
        "hits need the same prefix again within the TTL (5 minutes, refreshed on each hit), and a prefix below the model's minimum (1,024 to 4,096 tokens) is silently not cached".to_owned(),
    ]);
    vec![finish(ctx, classes, &scenario, d)]
}

/// Before and after, for one class at the horizon's demand.
fn class_figures(ctx: &mut Ctx<'_>, d: &mut Draft, class: &ResolvedClass, model: &str) {
    let without = request_profile(ctx, class, model, false);
    let with = request_profile(ctx, class, model, true);
    let horizon = ctx.timeline.horizon_factor();
    let peak = class.peak_rpm.value * horizon;
    let avg = class.average_rpm.value * horizon;
    let name = &class.name;
    if let Some(hit) = class.cache.as_ref().and_then(|c| c.hit_ratio.clone()) {
        d.figure(format!("class {name}: cache hit ratio"), hit);
    }
    let saved_tpm = peak * (without.settlement.value - with.settlement.value);
    d.figure(
        format!("class {name}: settled TPM saved at the horizon's peak"),
        Figure::computed(
            saved_tpm,
            Unit::TokensPerMinute,
            "peak RPM × (settled tokens per request without − with caching)",
            [&class.peak_rpm, &without.settlement, &with.settlement],
        ),
    );
    let saved_tpd = avg * MINUTES_PER_DAY * (without.settlement.value - with.settlement.value);
    d.figure(
        format!("class {name}: tokens per day saved at the horizon"),
        Figure::computed(
            saved_tpd,
            Unit::TokensPerDay,
            "average RPM × 1,440 × (settled tokens per request without − with caching)",
            [&class.average_rpm, &without.settlement, &with.settlement],
        ),
    );
    if let (Some(a), Some(b)) = (&without.cost, &with.cost) {
        d.figure(
            format!("class {name}: monthly cost saved at the horizon"),
            Figure::computed(
                avg * MINUTES_PER_MONTH * (a.value - b.value),
                Unit::UsdPerMonth,
                "average RPM × 43,830 × (USD per request without − with caching)",
                [&class.average_rpm, a, b],
            ),
        );
    }
}
