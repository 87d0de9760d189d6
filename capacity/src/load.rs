//! A scenario (how each class is served: which models, caching, tier, batch,
//! queueing, Provisioned Throughput, self-hosting) evaluated into loads: per
//! quota pool, per model (for measured curves), and monthly cost. Every load
//! is linear in demand, so it is kept as its value at today's demand and a
//! wall binds where `limit / load` says; costs bought in units (model units,
//! servers) are kept as steps.

use std::collections::BTreeMap;

use quarry_bedrock::quota::minute_window_tokens;

use crate::context::Ctx;
use crate::figure::Figure;
use crate::pool::PoolKey;
use crate::profile::request_profile;
use crate::resolve::ResolvedClass;
use crate::timeline::{MINUTES_PER_DAY, MINUTES_PER_MONTH};

/// How one class is served.
#[derive(Debug, Clone)]
pub(crate) struct Serving {
    /// `(model id, share of the class's requests)`.
    pub(crate) mix: Vec<(String, f64)>,
    /// Prompt caching on (when the class has a cache profile).
    pub(crate) caching: bool,
    /// Price multiplier of the service tier and its reason.
    pub(crate) tier: Option<(f64, Figure)>,
    /// Served by batch inference at this price multiplier: off the per-minute pools.
    pub(crate) batch: Option<(f64, Figure)>,
    /// Queued: per-minute loads follow the average rate, not the peak.
    pub(crate) smoothed: bool,
    /// Served outside Bedrock.
    pub(crate) self_hosted: Option<SelfHosting>,
}

/// A class served outside Bedrock.
#[derive(Debug, Clone)]
pub(crate) struct SelfHosting {
    pub(crate) usd_per_unit_month: Figure,
    pub(crate) rpm_per_unit: Figure,
}

/// Provisioned Throughput for a base model.
#[derive(Debug, Clone)]
pub(crate) struct Provisioning {
    pub(crate) base_model: String,
    pub(crate) usd_per_unit_hour: Figure,
    pub(crate) tokens_per_minute_per_unit: Figure,
}

/// Reserved-tier capacity on a pool.
#[derive(Debug, Clone)]
pub(crate) struct Reservation {
    pub(crate) pool: PoolKey,
    pub(crate) input_tpm: f64,
    pub(crate) output_tpm: f64,
    pub(crate) monthly_usd: Figure,
}

/// How every class is served, and on how many accounts.
#[derive(Debug, Clone)]
pub(crate) struct Scenario {
    /// One per resolved class, in order.
    pub(crate) serving: Vec<Serving>,
    pub(crate) accounts: u32,
    pub(crate) provisioned: Vec<Provisioning>,
    pub(crate) reserved: Vec<Reservation>,
}

/// One class's part of a pool's load.
#[derive(Debug, Clone)]
pub(crate) struct Term {
    pub(crate) class: String,
    pub(crate) rate_peak: f64,
    pub(crate) rate_avg: f64,
    pub(crate) reservation: Option<f64>,
    pub(crate) settlement: f64,
    /// Seconds a reservation is held before settlement.
    pub(crate) held_seconds: f64,
    pub(crate) trap: bool,
    /// Today's sessions per day of this part, for session demand.
    pub(crate) sessions_per_day: Option<f64>,
}

/// A quota pool's load at today's demand.
#[derive(Debug, Clone, Default)]
pub(crate) struct PoolLoad {
    pub(crate) rpm_peak: f64,
    pub(crate) rpm_avg: f64,
    /// Quota tokens a minute window holds at the peak (reservations in
    /// flight, settlements after); `None` when a reservation is unknown.
    pub(crate) tpm_admission: Option<f64>,
    pub(crate) tpm_settled_peak: f64,
    pub(crate) tpm_settled_avg: f64,
    pub(crate) tpd: f64,
    /// The largest single reservation: it must fit in what the window has left.
    pub(crate) max_reservation: f64,
    /// Prompt and output tokens per minute, averaged and at the peak.
    pub(crate) input_avg: f64,
    pub(crate) output_avg: f64,
    pub(crate) input_peak: f64,
    pub(crate) output_peak: f64,
    pub(crate) terms: Vec<Term>,
    /// Sources of the figures the load rests on.
    pub(crate) from: Vec<String>,
}

/// The load one model id's service capacity sees (for measured curves).
#[derive(Debug, Clone, Default)]
pub(crate) struct ModelLoad {
    pub(crate) rpm_peak: f64,
    pub(crate) classes: Vec<usize>,
}

/// Units bought as load grows.
#[derive(Debug, Clone)]
pub(crate) struct StepCost {
    pub(crate) usd_per_unit_month: f64,
    /// Load per unit of demand factor, in the unit's capacity measure.
    pub(crate) load: f64,
    pub(crate) capacity_per_unit: f64,
}

impl StepCost {
    pub(crate) fn units_at(&self, factor: f64) -> f64 {
        (self.load * factor / self.capacity_per_unit)
            .ceil()
            .max(1.0)
    }
}

/// Reserved capacity's monthly price and the on-demand spend it replaces.
#[derive(Debug, Clone)]
pub(crate) struct ReservedCost {
    pub(crate) monthly_usd: f64,
    /// Average input and output tokens per minute on the pool at today's demand.
    pub(crate) input_avg: f64,
    pub(crate) output_avg: f64,
    pub(crate) input_cap: f64,
    pub(crate) output_cap: f64,
    /// USD per input and output token on demand.
    pub(crate) input_usd: f64,
    pub(crate) output_usd: f64,
}

/// Monthly cost as demand grows.
#[derive(Debug, Clone, Default)]
pub(crate) struct CostModel {
    /// Monthly on-demand spend at today's demand; scales with demand.
    pub(crate) variable_usd: f64,
    pub(crate) steps: Vec<StepCost>,
    pub(crate) reserved: Vec<ReservedCost>,
    /// Models (or classes) some traffic of which has no price.
    pub(crate) unpriced: Vec<String>,
    pub(crate) from: Vec<String>,
}

impl CostModel {
    /// Monthly USD at `factor` × today's demand.
    pub(crate) fn at(&self, factor: f64) -> f64 {
        let steps: f64 = self
            .steps
            .iter()
            .map(|s| s.units_at(factor) * s.usd_per_unit_month)
            .sum();
        let reserved: f64 = self
            .reserved
            .iter()
            .map(|r| {
                let carried = (r.input_avg * factor).min(r.input_cap) * r.input_usd
                    + (r.output_avg * factor).min(r.output_cap) * r.output_usd;
                r.monthly_usd - carried * MINUTES_PER_MONTH
            })
            .sum();
        self.variable_usd * factor + steps + reserved
    }

    /// True when every request is priced.
    pub(crate) fn complete(&self) -> bool {
        self.unpriced.is_empty()
    }
}

/// A scenario's loads.
#[derive(Debug, Clone, Default)]
pub(crate) struct Load {
    pub(crate) pools: BTreeMap<PoolKey, PoolLoad>,
    pub(crate) models: BTreeMap<String, ModelLoad>,
    pub(crate) cost: CostModel,
}

/// Evaluates `scenario` over `classes` at today's demand.
pub(crate) fn evaluate(ctx: &mut Ctx<'_>, classes: &[ResolvedClass], scenario: &Scenario) -> Load {
    let mut load = Load::default();
    for (class, serving) in classes.iter().zip(&scenario.serving) {
        if let Some(host) = &serving.self_hosted {
            let rate = if serving.smoothed {
                &class.average_rpm
            } else {
                &class.peak_rpm
            };
            load.cost.steps.push(StepCost {
                usd_per_unit_month: host.usd_per_unit_month.value,
                load: rate.value,
                capacity_per_unit: host.rpm_per_unit.value,
            });
            extend_from(
                &mut load.cost.from,
                [&host.usd_per_unit_month, &host.rpm_per_unit, rate],
            );
            continue;
        }
        for (model, share) in &serving.mix {
            add_allocation(ctx, &mut load, scenario, class, serving, model, *share);
        }
    }
    for r in &scenario.reserved {
        let pool = load.pools.get(&r.pool).cloned().unwrap_or_default();
        let prices = crate::models::model_info(ctx, &r.pool.model_id()).prices;
        let (input_usd, output_usd) = prices.map_or((0.0, 0.0), |(p, _)| {
            (p.input as f64 * 1e-12, p.output as f64 * 1e-12)
        });
        load.cost.reserved.push(ReservedCost {
            monthly_usd: r.monthly_usd.value,
            input_avg: pool.input_avg,
            output_avg: pool.output_avg,
            input_cap: r.input_tpm,
            output_cap: r.output_tpm,
            input_usd,
            output_usd,
        });
        load.cost.from.extend(r.monthly_usd.from.iter().cloned());
    }
    load
}

fn add_allocation(
    ctx: &mut Ctx<'_>,
    load: &mut Load,
    scenario: &Scenario,
    class: &ResolvedClass,
    serving: &Serving,
    model: &str,
    share: f64,
) {
    let profile = request_profile(ctx, class, model, serving.caching);
    let rate = if serving.smoothed {
        &class.average_rpm
    } else {
        &class.peak_rpm
    };
    let rate_peak = share * rate.value;
    let rate_avg = share * class.average_rpm.value;
    let base = quarry_bedrock::base_model_id(model);
    if let Some(pt) = scenario.provisioned.iter().find(|p| p.base_model == base) {
        load.cost.steps.push(StepCost {
            usd_per_unit_month: pt.usd_per_unit_hour.value * crate::timeline::HOURS_PER_MONTH,
            load: rate_peak * profile.raw_tokens.value,
            capacity_per_unit: pt.tokens_per_minute_per_unit.value,
        });
        extend_from(
            &mut load.cost.from,
            [
                &pt.usd_per_unit_hour,
                &pt.tokens_per_minute_per_unit,
                &profile.raw_tokens,
            ],
        );
        return;
    }
    let multiplier =
        serving.tier.as_ref().map_or(1.0, |t| t.0) * serving.batch.as_ref().map_or(1.0, |b| b.0);
    match &profile.cost {
        Some(cost) => {
            load.cost.variable_usd += rate_avg * MINUTES_PER_MONTH * cost.value * multiplier;
            extend_from(&mut load.cost.from, [cost, &class.average_rpm]);
            for (_, why) in serving.tier.iter().chain(&serving.batch) {
                extend_from(&mut load.cost.from, [why]);
            }
        }
        None => load.cost.unpriced.push(model.to_owned()),
    }
    if serving.batch.is_some() {
        // Batch jobs have their own job quotas, not the per-minute pools.
        return;
    }
    let Some(key) = PoolKey::of(model) else {
        ctx.missing(
            "walls",
            format!("{model} is not an on-demand model id: its quota pool is unknown"),
        );
        return;
    };
    let model_load = load.models.entry(model.to_owned()).or_default();
    model_load.rpm_peak += rate_peak;
    model_load.classes.push(class.index);
    let pool = load.pools.entry(key).or_default();
    add_to_pool(pool, class, &profile, share, rate_peak, rate_avg);
}

fn add_to_pool(
    pool: &mut PoolLoad,
    class: &ResolvedClass,
    profile: &crate::profile::RequestProfile,
    share: f64,
    rate_peak: f64,
    rate_avg: f64,
) {
    let settled = profile.settlement.value;
    let reserved = profile.reservation.as_ref().map(|r| r.value);
    pool.rpm_peak += rate_peak;
    pool.rpm_avg += rate_avg;
    pool.tpm_settled_peak += rate_peak * settled;
    pool.tpm_settled_avg += rate_avg * settled;
    pool.tpd += rate_avg * MINUTES_PER_DAY * settled;
    let window =
        reserved.map(|r| minute_window_tokens(rate_peak, r, settled, class.held_seconds.value));
    pool.tpm_admission = match (pool.terms.is_empty(), pool.tpm_admission, window) {
        (true, _, w) => w,
        (false, Some(a), Some(w)) => Some(a + w),
        _ => None,
    };
    pool.max_reservation = pool.max_reservation.max(reserved.unwrap_or(0.0));
    let total_input = profile.usage.total_input_tokens();
    pool.input_avg += rate_avg * total_input;
    pool.output_avg += rate_avg * profile.usage.output_tokens;
    pool.input_peak += rate_peak * total_input;
    pool.output_peak += rate_peak * profile.usage.output_tokens;
    pool.terms.push(Term {
        class: class.name.clone(),
        rate_peak,
        rate_avg,
        reservation: reserved,
        settlement: settled,
        held_seconds: class.held_seconds.value,
        trap: profile.trap,
        sessions_per_day: class.sessions.as_ref().map(|(s, _)| share * s.value),
    });
    let mut from = vec![
        &class.peak_rpm,
        &class.average_rpm,
        &class.held_seconds,
        &profile.settlement,
    ];
    from.extend(profile.reservation.as_ref());
    extend_from(&mut pool.from, from);
}

fn extend_from<'a>(into: &mut Vec<String>, figures: impl IntoIterator<Item = &'a Figure>) {
    for f in figures {
        for id in &f.from {
            if !into.contains(id) {
                into.push(id.clone());
            }
        }
    }
}
