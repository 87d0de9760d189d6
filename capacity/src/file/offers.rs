//! Validation of the account's figures: `[[quota]]`, `[models."id"]`,
//! `[pricing."id"]`, and the offers to weigh (`[[reserved]]`,
//! `[[provisioned]]`, `[[self_hosted]]`).

use std::collections::BTreeMap;

use toml::Spanned;

use super::check::{Checker, NumberRule};
use super::raw::{RawModel, RawPrices, RawProvisioned, RawQuota, RawReserved, RawSelfHosted};
use crate::input::{
    ModelEntry, PriceBook, ProvisionedOffer, QuotaEntry, ReservedOffer, SelfHostOffer, TokenPrices,
};
use crate::pool::PoolKey;

pub(super) fn quotas(c: &mut Checker, quotas: &[Spanned<RawQuota>]) -> Vec<QuotaEntry> {
    let mut out: Vec<QuotaEntry> = Vec::new();
    for (i, q) in quotas.iter().enumerate() {
        let path = |f: &str| format!("quota[{i}].{f}");
        let raw = q.get_ref();
        let model = c
            .required(raw.model.as_ref(), q.span(), &path("model"))
            .and_then(|m| c.text(m, &path("model")));
        let mut count =
            |v: &Option<Spanned<i64>>, f: &str| v.as_ref().and_then(|v| c.count(v, &path(f), 1));
        let (rpm, tpm, tpd) = (
            count(&raw.rpm, "rpm"),
            count(&raw.tpm, "tpm"),
            count(&raw.tpd, "tpd"),
        );
        let mut flag = |v: &Option<Spanned<bool>>, f: &str| {
            v.as_ref().map(|v| {
                c.record(&path(f), v.span());
                *v.get_ref()
            })
        };
        let (rpm_adjustable, tpm_adjustable, tpd_adjustable) = (
            flag(&raw.rpm_adjustable, "rpm_adjustable"),
            flag(&raw.tpm_adjustable, "tpm_adjustable"),
            flag(&raw.tpd_adjustable, "tpd_adjustable"),
        );
        let Some(model) = model else { continue };
        let Some(key) = PoolKey::of(&model) else {
            c.error_at(raw.model.as_ref().map(Spanned::span), path("model"), format!("{model:?} draws on no on-demand quota pool (a base id, a us./eu./apac. profile, or a global. profile)"));
            continue;
        };
        if raw.rpm.is_none() && raw.tpm.is_none() && raw.tpd.is_none() {
            c.error(
                q,
                format!("quota[{i}]"),
                "give at least one of rpm, tpm, tpd",
            );
            continue;
        }
        if let Some(k) = out
            .iter()
            .position(|e| PoolKey::of(&e.model).as_ref() == Some(&key))
        {
            c.error_at(
                raw.model.as_ref().map(Spanned::span),
                path("model"),
                format!(
                    "quota[{k}] is for the same pool ({}): give each pool's quotas once",
                    key.label()
                ),
            );
            continue;
        }
        out.push(QuotaEntry {
            model,
            rpm,
            tpm,
            tpd,
            rpm_adjustable,
            tpm_adjustable,
            tpd_adjustable,
        });
    }
    out
}

pub(super) fn models(
    c: &mut Checker,
    models: Option<&BTreeMap<String, Spanned<RawModel>>>,
) -> BTreeMap<String, ModelEntry> {
    let mut out = BTreeMap::new();
    for (id, m) in models.into_iter().flatten() {
        let path = |f: &str| format!("models.{id:?}.{f}");
        let raw = m.get_ref();
        let entry = ModelEntry {
            burndown: raw
                .burndown
                .as_ref()
                .and_then(|b| c.count(b, &path("burndown"), 1)),
            max_output_tokens: raw
                .max_output_tokens
                .as_ref()
                .and_then(|v| c.count(v, &path("max_output_tokens"), 1)),
        };
        out.insert(id.clone(), entry);
    }
    out
}

/// `[pricing."id"]` in USD per 1M tokens, held as pico-USD per token (the
/// same number as micro-USD per 1M tokens, the agent's unit).
pub(super) fn prices(
    c: &mut Checker,
    pricing: Option<&BTreeMap<String, Spanned<RawPrices>>>,
) -> PriceBook {
    let mut book = PriceBook::default();
    for (id, p) in pricing.into_iter().flatten() {
        let path = |f: &str| format!("pricing.{id:?}.{f}");
        let raw = p.get_ref();
        let mut usd = |v: Option<&Spanned<f64>>, f: &str| {
            c.opt_number(v, &path(f), NumberRule::NonNegative)
                .map(|usd| (usd * 1e6).round() as u64)
        };
        let input = usd(raw.input.as_ref(), "input");
        let output = usd(raw.output.as_ref(), "output");
        let prices = TokenPrices {
            input: input.unwrap_or_default(),
            output: output.unwrap_or_default(),
            cache_write_5m: usd(raw.cache_write_5m.as_ref(), "cache_write_5m"),
            cache_write_1h: usd(raw.cache_write_1h.as_ref(), "cache_write_1h"),
            cache_read: usd(raw.cache_read.as_ref(), "cache_read"),
        };
        if raw.input.is_none() || raw.output.is_none() {
            c.error(
                p,
                format!("pricing.{id:?}"),
                "input and output prices are required (USD per 1M tokens)",
            );
            continue;
        }
        c.record(&format!("pricing.{id:?}"), p.span());
        book.entered.insert(id.clone(), prices);
    }
    book
}

/// A required positive number of an offer.
fn positive(
    c: &mut Checker,
    v: &Option<Spanned<f64>>,
    table: std::ops::Range<usize>,
    path: &str,
) -> Option<f64> {
    c.required(v.as_ref(), table, path)
        .and_then(|v| c.number(v, path, NumberRule::Positive))
}

fn model_field(
    c: &mut Checker,
    v: &Option<Spanned<String>>,
    table: std::ops::Range<usize>,
    path: &str,
) -> Option<String> {
    c.required(v.as_ref(), table, path)
        .and_then(|m| c.text(m, path))
}

pub(super) fn reserved(c: &mut Checker, offers: &[Spanned<RawReserved>]) -> Vec<ReservedOffer> {
    offers
        .iter()
        .enumerate()
        .filter_map(|(i, o)| {
            let path = |f: &str| format!("reserved[{i}].{f}");
            let (raw, span) = (o.get_ref(), o.span());
            let model = model_field(c, &raw.model, span.clone(), &path("model"));
            let input_tpm = positive(c, &raw.input_tpm, span.clone(), &path("input_tpm"));
            let output_tpm = positive(c, &raw.output_tpm, span.clone(), &path("output_tpm"));
            let in_price = positive(
                c,
                &raw.usd_per_1k_input_tpm_month,
                span.clone(),
                &path("usd_per_1k_input_tpm_month"),
            );
            let out_price = positive(
                c,
                &raw.usd_per_1k_output_tpm_month,
                span,
                &path("usd_per_1k_output_tpm_month"),
            );
            Some(ReservedOffer {
                model: model?,
                input_tpm: input_tpm?,
                output_tpm: output_tpm?,
                usd_per_1k_input_tpm_month: in_price?,
                usd_per_1k_output_tpm_month: out_price?,
            })
        })
        .collect()
}

pub(super) fn provisioned(
    c: &mut Checker,
    offers: &[Spanned<RawProvisioned>],
) -> Vec<ProvisionedOffer> {
    offers
        .iter()
        .enumerate()
        .filter_map(|(i, o)| {
            let path = |f: &str| format!("provisioned[{i}].{f}");
            let (raw, span) = (o.get_ref(), o.span());
            let model = model_field(c, &raw.model, span.clone(), &path("model"));
            let hourly = positive(
                c,
                &raw.usd_per_unit_hour,
                span.clone(),
                &path("usd_per_unit_hour"),
            );
            let per_unit = positive(
                c,
                &raw.tokens_per_minute_per_unit,
                span,
                &path("tokens_per_minute_per_unit"),
            );
            let term = raw.term.as_ref().and_then(|t| c.text(t, &path("term")));
            Some(ProvisionedOffer {
                model: model?,
                usd_per_unit_hour: hourly?,
                tokens_per_minute_per_unit: per_unit?,
                term,
            })
        })
        .collect()
}

pub(super) fn self_hosted(
    c: &mut Checker,
    offers: &[Spanned<RawSelfHosted>],
    classes: &[String],
) -> Vec<SelfHostOffer> {
    offers
        .iter()
        .enumerate()
        .filter_map(|(i, o)| {
            let path = |f: &str| format!("self_hosted[{i}].{f}");
            let (raw, span) = (o.get_ref(), o.span());
            let class = model_field(c, &raw.class, span.clone(), &path("class"));
            if let (Some(name), Some(at)) = (&class, &raw.class)
                && !classes.contains(name)
            {
                c.error(at, path("class"), format!("{name:?} names no [[class]]"));
            }
            let name = raw.name.as_ref().and_then(|n| c.text(n, &path("name")));
            let monthly = positive(
                c,
                &raw.usd_per_unit_month,
                span.clone(),
                &path("usd_per_unit_month"),
            );
            let rpm = positive(c, &raw.rpm_per_unit, span, &path("rpm_per_unit"));
            let class = class?;
            Some(SelfHostOffer {
                name: name.unwrap_or_else(|| format!("self-hosted {class}")),
                class,
                usd_per_unit_month: monthly?,
                rpm_per_unit: rpm?,
            })
        })
        .collect()
}
