//! What the plan knows about each model and quota pool, entered or built in,
//! each with its source: burndown, output limit, prices, and the RPM, TPM and
//! TPD quotas of a pool with their Service Quotas names and codes.

use quarry_bedrock::base_model_id;
use quarry_bedrock::quota::{
    BurndownMatch, BurndownOrigin, BurndownTable, Confidence, FactSource, QuotaMetric, QuotaPool,
    default_tokens_per_day, model_fact, quota_code, quota_fact, service_quota_name,
};

use crate::context::Ctx;
use crate::figure::{Figure, Unit};
use crate::input::{ModelEntry, TokenPrices};
use crate::pool::PoolKey;

/// A quota in force for a pool.
#[derive(Debug, Clone)]
pub(crate) struct Limit {
    /// Per account.
    pub(crate) value: Figure,
    /// Whether AWS raises it; `Some(false)`: a fixed cap.
    pub(crate) adjustable: Option<bool>,
    pub(crate) name: Option<String>,
    pub(crate) code: Option<String>,
}

/// The quotas of one pool.
#[derive(Debug, Clone, Default)]
pub(crate) struct PoolQuotas {
    pub(crate) rpm: Option<Limit>,
    pub(crate) tpm: Option<Limit>,
    pub(crate) tpd: Option<Limit>,
}

impl PoolQuotas {
    pub(crate) fn get(&self, metric: QuotaMetric) -> Option<&Limit> {
        match metric {
            QuotaMetric::RequestsPerMinute => self.rpm.as_ref(),
            QuotaMetric::TokensPerMinute => self.tpm.as_ref(),
            QuotaMetric::TokensPerDay => self.tpd.as_ref(),
        }
    }
}

/// The quotas of `key`: entered, else built in; tokens per day default to
/// TPM × 1440 where neither gives one.
pub(crate) fn pool_quotas(ctx: &mut Ctx<'_>, key: &PoolKey) -> PoolQuotas {
    let entry = ctx
        .input
        .quotas
        .iter()
        .enumerate()
        .find(|(_, q)| PoolKey::of(&q.model).as_ref() == Some(key));
    let mut quotas = PoolQuotas::default();
    for metric in [
        QuotaMetric::RequestsPerMinute,
        QuotaMetric::TokensPerMinute,
        QuotaMetric::TokensPerDay,
    ] {
        let entered = entry.and_then(|(i, q)| {
            let (value, adjustable, field) = match metric {
                QuotaMetric::RequestsPerMinute => (q.rpm, q.rpm_adjustable, "rpm"),
                QuotaMetric::TokensPerMinute => (q.tpm, q.tpm_adjustable, "tpm"),
                QuotaMetric::TokensPerDay => (q.tpd, q.tpd_adjustable, "tpd"),
            };
            value.map(|v| (v, adjustable, format!("quota[{i}].{field}")))
        });
        let unit = metric_unit(metric);
        let limit = match entered {
            Some((v, adjustable, path)) => {
                let builtin_adjustable =
                    quota_fact(&key.base, key.pool, metric).and_then(|f| f.adjustable);
                Some((
                    ctx.entered(&path, v as f64, unit),
                    adjustable.or(builtin_adjustable),
                ))
            }
            None => quota_fact(&key.base, key.pool, metric).map(|f| {
                let label = format!(
                    "built-in default {} of {}",
                    metric.abbreviation(),
                    key.label()
                );
                let id = format!(
                    "quota:{}:{}:{}",
                    key.base,
                    pool_id(key.pool),
                    metric.abbreviation()
                );
                (
                    ctx.builtin(&id, &label, f.source, f.value as f64, unit),
                    f.adjustable,
                )
            }),
        };
        let limit = limit.map(|(value, adjustable)| Limit {
            value,
            adjustable,
            name: service_quota_name(&key.base, key.pool, metric),
            code: quota_code(&key.base, key.pool, metric).map(|c| c.code.to_owned()),
        });
        match metric {
            QuotaMetric::RequestsPerMinute => quotas.rpm = limit,
            QuotaMetric::TokensPerMinute => quotas.tpm = limit,
            QuotaMetric::TokensPerDay => quotas.tpd = limit,
        }
    }
    if quotas.tpd.is_none() {
        quotas.tpd = quotas.tpm.as_ref().map(|tpm| default_daily(ctx, key, tpm));
    }
    quotas
}

/// TPD = TPM × 1440, AWS's default rule.
fn default_daily(ctx: &mut Ctx<'_>, key: &PoolKey, tpm: &Limit) -> Limit {
    let rule = ctx.builtin(
        "rule:tpd_default",
        "tokens per day default to TPM × 1440",
        FactSource {
            cite: "AWS Bedrock user guide, quotas-runtime.html (PROTOCOL.md §5.1)",
            confidence: Confidence::Documented,
        },
        1_440.0,
        Unit::DemandFactor,
    );
    let tpm_value = tpm.value.value as u64;
    Limit {
        value: Figure::computed(
            default_tokens_per_day(tpm_value) as f64,
            Unit::TokensPerDay,
            "TPM × 1440 (AWS's default daily quota)",
            [&tpm.value, &rule],
        ),
        adjustable: None,
        name: service_quota_name(&key.base, key.pool, QuotaMetric::TokensPerDay),
        code: quota_code(&key.base, key.pool, QuotaMetric::TokensPerDay).map(|c| c.code.to_owned()),
    }
}

pub(crate) fn metric_unit(metric: QuotaMetric) -> Unit {
    match metric {
        QuotaMetric::RequestsPerMinute => Unit::RequestsPerMinute,
        QuotaMetric::TokensPerMinute => Unit::TokensPerMinute,
        QuotaMetric::TokensPerDay => Unit::TokensPerDay,
    }
}

fn pool_id(pool: QuotaPool) -> &'static str {
    match pool {
        QuotaPool::OnDemand => "on_demand",
        QuotaPool::CrossRegion => "cross_region",
        QuotaPool::Global => "global",
    }
}

/// Model facts the arithmetic needs.
#[derive(Debug, Clone)]
pub(crate) struct ModelInfo {
    /// Quota tokens per output token.
    pub(crate) burndown: Figure,
    /// The model's output limit, reserved when `max_tokens` is unset.
    pub(crate) max_output: Option<Figure>,
    /// Prices and the source id they came from.
    pub(crate) prices: Option<(TokenPrices, String)>,
}

/// An entered per-model override, by exact id or base id, with its key.
fn model_entry<'a>(ctx: &Ctx<'a>, model_id: &str) -> Option<(&'a String, &'a ModelEntry)> {
    let models = &ctx.input.models;
    models
        .get_key_value(model_id)
        .or_else(|| models.get_key_value(base_model_id(model_id)))
}

/// What the plan knows about `model_id`.
pub(crate) fn model_info(ctx: &mut Ctx<'_>, model_id: &str) -> ModelInfo {
    let entry = model_entry(ctx, model_id);
    let burndown = match entry.and_then(|(k, e)| e.burndown.map(|b| (k, b))) {
        Some((key, b)) => ctx.entered(
            &format!("models.{key:?}.burndown"),
            b as f64,
            Unit::DemandFactor,
        ),
        None => builtin_burndown(ctx, model_id),
    };
    let max_output = match entry.and_then(|(k, e)| e.max_output_tokens.map(|m| (k, m))) {
        Some((key, m)) => Some(ctx.entered(
            &format!("models.{key:?}.max_output_tokens"),
            m as f64,
            Unit::TokensPerRequest,
        )),
        None => model_fact(model_id)
            .and_then(|f| f.max_output_tokens)
            .map(|(m, src)| {
                let base = base_model_id(model_id);
                ctx.builtin(
                    &format!("max_output:{base}"),
                    &format!("output limit of {base}"),
                    src,
                    m as f64,
                    Unit::TokensPerRequest,
                )
            }),
    };
    let prices = prices(ctx, model_id);
    ModelInfo {
        burndown,
        max_output,
        prices,
    }
}

fn builtin_burndown(ctx: &mut Ctx<'_>, model_id: &str) -> Figure {
    let found = BurndownTable::builtin().lookup(model_id);
    match found.origin {
        BurndownOrigin::Rule(rule) => ctx.builtin(
            &match rule.covers {
                BurndownMatch::ClaudeFrom(major, minor) => format!("burndown:claude_{major}_{minor}_and_newer"),
                BurndownMatch::BaseModel(id) => format!("burndown:{id}"),
            },
            "output burndown rule",
            rule.source,
            found.factor as f64,
            Unit::DemandFactor,
        ),
        BurndownOrigin::Default | BurndownOrigin::Override => ctx.builtin(
            "burndown:other_models",
            "output burndown of models no rule covers",
            FactSource {
                cite: "AWS Bedrock user guide, quotas-token-burndown.html: all other models burn output 1x (PROTOCOL.md §5.2)",
                confidence: Confidence::Documented,
            },
            found.factor as f64,
            Unit::DemandFactor,
        ),
    }
}

/// Prices of `model_id`: entered (exact id, then base id), else built in.
fn prices(ctx: &mut Ctx<'_>, model_id: &str) -> Option<(TokenPrices, String)> {
    let book = &ctx.input.prices;
    let entered = book
        .entered
        .get_key_value(model_id)
        .or_else(|| book.entered.get_key_value(base_model_id(model_id)))
        .map(|(k, p)| (k.clone(), *p));
    if let Some((key, p)) = entered {
        return Some((p, ctx.entered_source(&format!("pricing.{key:?}"))));
    }
    if let Some(p) = book.builtin.get(model_id).copied() {
        return Some((p, ctx.builtin_price_source(model_id)));
    }
    ctx.missing(
        "cost",
        format!("no price for {model_id}: enter [pricing.{model_id:?}] (USD per 1M tokens) or pass the built-in table"),
    );
    None
}
