//! Strategies that change how or where traffic is served: service tiers
//! (Flex for non-interactive classes, Priority for interactive ones), batch
//! inference and queueing for non-interactive classes, and serving a class
//! outside Bedrock.

use quarry_bedrock::quota::{Confidence, FactSource};

use super::assess::{Assessment, Draft, finish};
use crate::context::Ctx;
use crate::figure::{Figure, Unit};
use crate::load::{Scenario, SelfHosting};
use crate::plan::{MissingInput, StrategyKind};
use crate::resolve::ResolvedClass;

const FLEX: FactSource = FactSource {
    cite: "CAPACITY.md §3: Flex about 50% below Standard (secondary sources; AWS publishes no multiplier)",
    confidence: Confidence::Secondary,
};
const BATCH: FactSource = FactSource {
    cite: "AWS Bedrock pricing overview: batch inference at 50% of on-demand (CAPACITY.md §4, PROTOCOL.md §6)",
    confidence: Confidence::Documented,
};

/// A price factor: entered at `path`, else the built-in figure.
fn factor(
    ctx: &mut Ctx<'_>,
    path: &str,
    entered: Option<f64>,
    builtin: Option<(&str, FactSource, f64)>,
) -> Option<Figure> {
    match (entered, builtin) {
        (Some(v), _) => Some(ctx.entered(path, v, Unit::Ratio)),
        (None, Some((id, src, v))) => Some(ctx.builtin(id, path, src, v, Unit::Ratio)),
        (None, None) => None,
    }
}

fn names(classes: &[&ResolvedClass]) -> String {
    classes
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn tiers(ctx: &mut Ctx<'_>, classes: &[ResolvedClass], base: &Scenario) -> Vec<Draft> {
    let mut drafts = Vec::new();
    let background: Vec<&ResolvedClass> = classes.iter().filter(|c| !c.interactive).collect();
    if !background.is_empty() {
        let tiers = ctx.input.tiers;
        let discount = factor(
            ctx,
            "tiers.flex_discount",
            tiers.flex_discount,
            Some(("tier:flex_discount", FLEX, 0.5)),
        );
        if let Some(discount) = discount {
            let mut scenario = base.clone();
            for (i, c) in classes.iter().enumerate() {
                if !c.interactive {
                    scenario.serving[i].tier = Some((1.0 - discount.value, discount.clone()));
                }
            }
            let mut d = Draft::new(
                "Flex tier for non-interactive classes",
                StrategyKind::ServiceTier,
                format!("send {} at the Flex tier", names(&background)),
            );
            d.figure("Flex discount off Standard", discount);
            d.risks.push(
                "Flex is served last under load: queued longer and refused (503) first".to_owned(),
            );
            d.risks
                .push("on-demand quota is shared across tiers: Flex relieves no quota".to_owned());
            drafts.push(finish(ctx, classes, &scenario, d));
        }
    }
    let interactive: Vec<&ResolvedClass> = classes.iter().filter(|c| c.interactive).collect();
    if interactive.is_empty() {
        return drafts;
    }
    let mut d = Draft::new(
        "Priority tier for interactive classes",
        StrategyKind::ServiceTier,
        format!("send {} at the Priority tier", names(&interactive)),
    );
    d.risks.push("Priority buys up to 25% more output tokens per second than Standard (AWS service tiers page); it relieves no quota".to_owned());
    let premium = ctx.input.tiers.priority_premium;
    let Some(premium) = factor(ctx, "tiers.priority_premium", premium, None) else {
        d.missing.push(MissingInput {
            section: "Priority tier".to_owned(),
            needs: "enter tiers.priority_premium (AWS publishes no multiplier: take it from your pricing page or account team)".to_owned(),
        });
        drafts.push(d);
        return drafts;
    };
    let mut scenario = base.clone();
    for (i, c) in classes.iter().enumerate() {
        if c.interactive {
            scenario.serving[i].tier = Some((1.0 + premium.value, premium.clone()));
        }
    }
    d.figure("Priority premium over Standard", premium);
    drafts.push(finish(ctx, classes, &scenario, d));
    drafts
}

pub(super) fn batch_and_queue(
    ctx: &mut Ctx<'_>,
    classes: &[ResolvedClass],
    base: &Scenario,
    _baseline: &Assessment,
) -> Vec<Draft> {
    let background: Vec<&ResolvedClass> = classes.iter().filter(|c| !c.interactive).collect();
    if background.is_empty() {
        ctx.missing(
            "strategies: batch and queueing",
            "mark a class interactive = false to consider batch inference and queueing for it",
        );
        return Vec::new();
    }
    let mut drafts: Vec<Draft> = batch(ctx, classes, base, &background).into_iter().collect();
    drafts.push(queue(ctx, classes, base, &background));
    drafts
}

fn batch(
    ctx: &mut Ctx<'_>,
    classes: &[ResolvedClass],
    base: &Scenario,
    background: &[&ResolvedClass],
) -> Option<Draft> {
    let entered = ctx.input.tiers.batch_discount;
    let discount = factor(
        ctx,
        "tiers.batch_discount",
        entered,
        Some(("batch_discount", BATCH, 0.5)),
    )?;
    let mut scenario = base.clone();
    for (i, c) in classes.iter().enumerate() {
        if !c.interactive {
            scenario.serving[i].batch = Some((1.0 - discount.value, discount.clone()));
        }
    }
    let mut d = Draft::new(
        "Batch inference for non-interactive classes",
        StrategyKind::Batch,
        format!(
            "submit {} as batch jobs, off the per-minute quotas",
            names(background)
        ),
    );
    d.figure("batch discount off on-demand", discount);
    d.risks
        .push("results arrive within the batch window (up to 24 hours), not on demand".to_owned());
    d.risks.push(
        "batch jobs have their own quotas (records per job, jobs in progress), not modelled here"
            .to_owned(),
    );
    Some(finish(ctx, classes, &scenario, d))
}

fn queue(
    ctx: &mut Ctx<'_>,
    classes: &[ResolvedClass],
    base: &Scenario,
    background: &[&ResolvedClass],
) -> Draft {
    let mut scenario = base.clone();
    let mut d = Draft::new(
        "Queue non-interactive work",
        StrategyKind::Queueing,
        format!(
            "queue {} and send at their average rate, not their peak",
            names(background)
        ),
    );
    let horizon = ctx.timeline.horizon_factor();
    for (i, c) in classes.iter().enumerate() {
        if c.interactive {
            continue;
        }
        scenario.serving[i].smoothed = true;
        d.figure(
            format!(
                "class {}: peak requests per minute queueing takes off the quotas at the horizon",
                c.name
            ),
            Figure::computed(
                (c.peak_rpm.value - c.average_rpm.value) * horizon,
                Unit::RequestsPerMinute,
                "(peak − average RPM) × horizon factor: the per-minute demand queueing removes",
                [&c.peak_rpm, &c.average_rpm],
            ),
        );
    }
    d.risks.push("queued requests wait while the peak drains: the queue must hold the peak's backlog, and the work must tolerate the delay".to_owned());
    finish(ctx, classes, &scenario, d)
}

pub(super) fn self_hosting(
    ctx: &mut Ctx<'_>,
    classes: &[ResolvedClass],
    base: &Scenario,
) -> Vec<Draft> {
    let offers = ctx.input.self_hosted.clone();
    if offers.is_empty() {
        ctx.missing(
            "strategies: self-hosting",
            "enter [[self_hosted]] (class, usd_per_unit_month, rpm_per_unit) to weigh serving a class elsewhere",
        );
    }
    let mut drafts = Vec::new();
    for (k, offer) in offers.iter().enumerate() {
        let Some(i) = classes.iter().position(|c| c.name == offer.class) else {
            ctx.missing(
                format!("self-hosting offer {}", offer.name),
                format!(
                    "self_hosted[{k}].class names no planned class {:?}",
                    offer.class
                ),
            );
            continue;
        };
        let class = &classes[i];
        let host = SelfHosting {
            usd_per_unit_month: ctx.entered(
                &format!("self_hosted[{k}].usd_per_unit_month"),
                offer.usd_per_unit_month,
                Unit::UsdPerMonth,
            ),
            rpm_per_unit: ctx.entered(
                &format!("self_hosted[{k}].rpm_per_unit"),
                offer.rpm_per_unit,
                Unit::RequestsPerMinute,
            ),
        };
        let horizon = ctx.timeline.horizon_factor();
        let units = (class.peak_rpm.value * horizon / host.rpm_per_unit.value)
            .ceil()
            .max(1.0);
        let mut d = Draft::new(
            format!("Self-host class {}: {}", class.name, offer.name),
            StrategyKind::SelfHosting,
            format!(
                "serve class {} on {} outside Bedrock",
                class.name, offer.name
            ),
        );
        d.figure(
            "units at the horizon's peak",
            Figure::computed(
                units,
                Unit::Units,
                "ceil(peak RPM at the horizon ÷ RPM per unit)",
                [&class.peak_rpm, &host.rpm_per_unit],
            ),
        );
        d.risks.push("capacity, latency and quality are yours to measure and operate; the entered RPM per unit must hold at the class's SLO".to_owned());
        let mut scenario = base.clone();
        scenario.serving[i].self_hosted = Some(host);
        drafts.push(finish(ctx, classes, &scenario, d));
    }
    drafts
}
