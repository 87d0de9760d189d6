//! Capacity bought ahead: the Reserved tier (a fixed price per 1,000 TPM a
//! month, overflow at Standard) and Provisioned Throughput (model units by
//! the hour). AWS prices both through the account team and does not publish
//! what a model unit buys, so every figure here rests on entered offers; the
//! plan never supplies one. Each is judged by its break-even utilisation: the
//! share of its capacity the traffic must use for it to cost no more than
//! on-demand.

use super::assess::{Assessment, Draft, finish};
use crate::context::Ctx;
use crate::figure::{Figure, Unit};
use crate::input::ReservedOffer;
use crate::load::{Provisioning, Reservation, Scenario};
use crate::models::model_info;
use crate::num::num;
use crate::plan::StrategyKind;
use crate::pool::PoolKey;
use crate::profile::request_profile;
use crate::resolve::ResolvedClass;
use crate::timeline::{HOURS_PER_MONTH, MINUTES_PER_MONTH};

/// Pico-USD to USD.
const USD_PER_PICO: f64 = 1e-12;
/// The Reserved tier's documented minimums (CAPACITY.md §3).
const RESERVED_MIN_INPUT_TPM: f64 = 100_000.0;
const RESERVED_MIN_OUTPUT_TPM: f64 = 10_000.0;

pub(super) fn reserved(
    ctx: &mut Ctx<'_>,
    classes: &[ResolvedClass],
    base: &Scenario,
) -> Vec<Draft> {
    let offers = ctx.input.reserved.clone();
    if offers.is_empty() {
        ctx.missing(
            "strategies: Reserved tier",
            "enter [[reserved]] (model, input_tpm, output_tpm, usd_per_1k_input_tpm_month, usd_per_1k_output_tpm_month) as quoted by your AWS account team",
        );
    }
    let mut drafts = Vec::new();
    for (k, offer) in offers.iter().enumerate() {
        let Some(pool) = PoolKey::of(&offer.model) else {
            ctx.missing(
                format!("Reserved tier offer {k}"),
                format!("reserved[{k}].model is not an on-demand model id"),
            );
            continue;
        };
        let (d, monthly) = reserved_offer(ctx, k, offer, &pool);
        let mut scenario = base.clone();
        scenario.reserved.push(Reservation {
            pool,
            input_tpm: offer.input_tpm,
            output_tpm: offer.output_tpm,
            monthly_usd: monthly,
        });
        drafts.push(finish(ctx, classes, &scenario, d));
    }
    drafts
}

/// A Reserved-tier offer's draft and monthly price: its break-even
/// utilisation against on-demand prices, and the documented minimums.
fn reserved_offer(
    ctx: &mut Ctx<'_>,
    k: usize,
    offer: &ReservedOffer,
    pool: &PoolKey,
) -> (Draft, Figure) {
    let path = |f: &str| format!("reserved[{k}].{f}");
    let input_tpm = ctx.entered(&path("input_tpm"), offer.input_tpm, Unit::TokensPerMinute);
    let output_tpm = ctx.entered(&path("output_tpm"), offer.output_tpm, Unit::TokensPerMinute);
    let in_price = ctx.entered(
        &path("usd_per_1k_input_tpm_month"),
        offer.usd_per_1k_input_tpm_month,
        Unit::UsdPerMonth,
    );
    let out_price = ctx.entered(
        &path("usd_per_1k_output_tpm_month"),
        offer.usd_per_1k_output_tpm_month,
        Unit::UsdPerMonth,
    );
    let monthly = Figure::computed(
        input_tpm.value / 1_000.0 * in_price.value + output_tpm.value / 1_000.0 * out_price.value,
        Unit::UsdPerMonth,
        "input TPM ÷ 1,000 × its price + output TPM ÷ 1,000 × its price",
        [&input_tpm, &output_tpm, &in_price, &out_price],
    );
    let mut d = Draft::new(
        format!("Reserved tier on {}", pool.label()),
        StrategyKind::Reserved,
        format!(
            "reserve {} input and {} output TPM; traffic above it overflows to Standard",
            num(input_tpm.value),
            num(output_tpm.value)
        ),
    );
    if let Some((p, source)) = model_info(ctx, &offer.model).prices {
        let full = (input_tpm.value * p.input as f64 + output_tpm.value * p.output as f64)
            * USD_PER_PICO
            * MINUTES_PER_MONTH;
        let mut be = Figure::computed(
            monthly.value / full,
            Unit::Ratio,
            "reserved monthly price ÷ on-demand price of the reserved TPM used all month",
            [&monthly, &input_tpm, &output_tpm],
        );
        be.from.push(source);
        d.figure("break-even utilisation", be);
    }
    d.figure("reserved monthly price", monthly.clone());
    if offer.input_tpm < RESERVED_MIN_INPUT_TPM || offer.output_tpm < RESERVED_MIN_OUTPUT_TPM {
        d.risks.push(
            "below the documented minimums of 100,000 input TPM and 10,000 output TPM".to_owned(),
        );
    }
    d.risks
        .push("a 1- or 3-month commitment, arranged through the account team".to_owned());
    (d, monthly)
}

pub(super) fn provisioned(
    ctx: &mut Ctx<'_>,
    classes: &[ResolvedClass],
    base: &Scenario,
    _baseline: &Assessment,
) -> Vec<Draft> {
    let offers = ctx.input.provisioned.clone();
    if offers.is_empty() {
        ctx.missing(
            "strategies: Provisioned Throughput",
            "enter [[provisioned]] (model, usd_per_unit_hour, tokens_per_minute_per_unit): AWS does not publish what one model unit buys, ask your account team",
        );
    }
    let mut drafts = Vec::new();
    for (k, offer) in offers.iter().enumerate() {
        let base_model = quarry_bedrock::base_model_id(&offer.model).to_owned();
        let hourly = ctx.entered(
            &format!("provisioned[{k}].usd_per_unit_hour"),
            offer.usd_per_unit_hour,
            Unit::UsdPerHour,
        );
        let per_unit = ctx.entered(
            &format!("provisioned[{k}].tokens_per_minute_per_unit"),
            offer.tokens_per_minute_per_unit,
            Unit::TokensPerMinute,
        );
        let mut d = Draft::new(
            format!("Provisioned Throughput for {base_model}"),
            StrategyKind::ProvisionedThroughput,
            format!(
                "buy model units of {base_model} for the horizon's peak; its traffic leaves the on-demand quotas"
            ),
        );
        unit_figures(ctx, &mut d, classes, base, &base_model, &hourly, &per_unit);
        d.risks.push("Provisioned Throughput cannot be used through inference profiles: traffic moves to an in-Region provisioned model".to_owned());
        d.risks.push("units are bought for the peak and billed by the hour; commitment terms (none, 1 or 6 months) change the price".to_owned());
        let mut scenario = base.clone();
        scenario.provisioned.push(Provisioning {
            base_model,
            usd_per_unit_hour: hourly,
            tokens_per_minute_per_unit: per_unit,
        });
        drafts.push(finish(ctx, classes, &scenario, d));
    }
    drafts
}

/// Model units at the horizon's peak, their expected utilisation, and the
/// break-even utilisation against on-demand prices.
fn unit_figures(
    ctx: &mut Ctx<'_>,
    d: &mut Draft,
    classes: &[ResolvedClass],
    base: &Scenario,
    base_model: &str,
    hourly: &Figure,
    per_unit: &Figure,
) {
    let horizon = ctx.timeline.horizon_factor();
    let (avg_tokens, peak_tokens, usd) = traffic_on(ctx, classes, base, base_model);
    if peak_tokens <= 0.0 {
        return;
    }
    let units = (peak_tokens * horizon / per_unit.value).ceil().max(1.0);
    d.figure(
        "model units at the horizon's peak",
        Figure::computed(
            units,
            Unit::Units,
            "ceil(peak tokens per minute at the horizon ÷ tokens per minute per unit)",
            [per_unit],
        ),
    );
    d.figure(
        "expected utilisation at the horizon",
        Figure::computed(
            avg_tokens * horizon / (units * per_unit.value),
            Unit::Ratio,
            "average tokens per minute at the horizon ÷ units × tokens per minute per unit",
            [per_unit],
        ),
    );
    if usd > 0.0 {
        let blended = usd / avg_tokens;
        let be = hourly.value * HOURS_PER_MONTH / (per_unit.value * MINUTES_PER_MONTH * blended);
        d.figure(
            "break-even utilisation",
            Figure::computed(
                be,
                Unit::Ratio,
                "a unit's monthly price ÷ on-demand price of its tokens per minute used all month",
                [hourly, per_unit],
            ),
        );
    }
}

/// Today's average and peak tokens per minute (input + output) on a base
/// model, and its on-demand USD per minute at the average.
fn traffic_on(
    ctx: &mut Ctx<'_>,
    classes: &[ResolvedClass],
    base: &Scenario,
    base_model: &str,
) -> (f64, f64, f64) {
    let (mut avg, mut peak, mut usd) = (0.0, 0.0, 0.0);
    for (class, serving) in classes.iter().zip(&base.serving) {
        for (model, share) in &serving.mix {
            if quarry_bedrock::base_model_id(model) != base_model {
                continue;
            }
            let p = request_profile(ctx, class, model, serving.caching);
            avg += share * class.average_rpm.value * p.raw_tokens.value;
            peak += share * class.peak_rpm.value * p.raw_tokens.value;
            usd += share * class.average_rpm.value * p.cost.map_or(0.0, |c| c.value);
        }
    }
    (avg, peak, usd)
}
