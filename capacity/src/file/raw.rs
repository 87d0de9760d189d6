//! `PLAN.toml` as written: every field optional and spanned, so validation
//! can say what is missing or wrong with its line, and say all of it.
//! Integers are read as `i64` and checked in validation, so a message can say
//! "must be at least 1, got 0" rather than serde's "invalid value".

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};
use toml::Spanned;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPlan {
    pub(super) title: Option<Spanned<String>>,
    pub(super) start: Option<Spanned<String>>,
    pub(super) horizon_months: Option<Spanned<f64>>,
    pub(super) region: Option<Spanned<String>>,
    pub(super) accounts: Option<Spanned<i64>>,
    pub(super) lead_time_days: Option<Spanned<i64>>,
    pub(super) growth: Option<Spanned<RawGrowth>>,
    pub(super) budget: Option<Spanned<RawBudget>>,
    pub(super) class: Option<Vec<Spanned<RawClass>>>,
    pub(super) quota: Option<Vec<Spanned<RawQuota>>>,
    pub(super) models: Option<BTreeMap<String, Spanned<RawModel>>>,
    pub(super) pricing: Option<BTreeMap<String, Spanned<RawPrices>>>,
    pub(super) tiers: Option<Spanned<RawTiers>>,
    pub(super) reserved: Option<Vec<Spanned<RawReserved>>>,
    pub(super) provisioned: Option<Vec<Spanned<RawProvisioned>>>,
    pub(super) self_hosted: Option<Vec<Spanned<RawSelfHosted>>>,
}

/// `[growth]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGrowth {
    pub(super) monthly_rate: Option<Spanned<f64>>,
    pub(super) levels: Option<Spanned<Vec<Spanned<RawLevel>>>>,
    pub(super) users_monthly_rate: Option<Spanned<f64>>,
}

/// One `growth.levels` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLevel {
    pub(super) date: Option<Spanned<String>>,
    pub(super) month: Option<Spanned<f64>>,
    pub(super) factor: Option<Spanned<f64>>,
}

/// `[budget]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBudget {
    pub(super) monthly_usd: Option<Spanned<f64>>,
    pub(super) cost_per_user_usd: Option<Spanned<f64>>,
}

/// `[[class]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClass {
    pub(super) name: Option<Spanned<String>>,
    pub(super) interactive: Option<Spanned<bool>>,
    pub(super) peak_rpm: Option<Spanned<f64>>,
    pub(super) average_rpm: Option<Spanned<f64>>,
    pub(super) concurrent_users: Option<Spanned<f64>>,
    pub(super) requests_per_user_per_minute: Option<Spanned<f64>>,
    pub(super) average_concurrent_users: Option<Spanned<f64>>,
    pub(super) sessions_per_day: Option<Spanned<f64>>,
    pub(super) requests_per_session: Option<Spanned<f64>>,
    pub(super) session_minutes: Option<Spanned<f64>>,
    pub(super) peak_concurrent_sessions: Option<Spanned<f64>>,
    pub(super) input_tokens: Option<Spanned<RawTokens>>,
    pub(super) output_tokens: Option<Spanned<RawTokens>>,
    pub(super) max_tokens: Option<Spanned<i64>>,
    pub(super) mean_e2e_seconds: Option<Spanned<f64>>,
    pub(super) users: Option<Spanned<f64>>,
    pub(super) models: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) measured: Option<Spanned<String>>,
    pub(super) curve: Option<Spanned<String>>,
    pub(super) cache: Option<Spanned<RawCache>>,
    pub(super) slo: Option<Spanned<RawSlo>>,
    pub(super) route: Option<Vec<Spanned<RawRoute>>>,
}

/// `input_tokens = 800` or `input_tokens = { mean = 800, p95 = 2400 }`.
#[derive(Debug)]
pub(super) enum RawTokens {
    Mean(f64),
    Table(RawTokenTable),
}

/// The table form of a token count.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTokenTable {
    pub(super) mean: Option<Spanned<f64>>,
    pub(super) p50: Option<Spanned<f64>>,
    pub(super) p95: Option<Spanned<f64>>,
    pub(super) max: Option<Spanned<f64>>,
}

impl<'de> Deserialize<'de> for RawTokens {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawTokens;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mean token count or a table like { mean = 800, p95 = 2400 }")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawTokens, E> {
                Ok(RawTokens::Mean(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawTokens, E> {
                Ok(RawTokens::Mean(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawTokens, E> {
                Ok(RawTokens::Mean(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawTokens, A::Error> {
                RawTokenTable::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawTokens::Table)
            }
        }
        d.deserialize_any(V)
    }
}

/// `cache = { ... }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCache {
    pub(super) prefix_tokens: Option<Spanned<f64>>,
    pub(super) hit_ratio: Option<Spanned<f64>>,
    pub(super) ttl: Option<Spanned<String>>,
    pub(super) in_use: Option<Spanned<bool>>,
}

/// `[class.slo]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSlo {
    pub(super) ttft_p50_ms: Option<Spanned<f64>>,
    pub(super) ttft_p95_ms: Option<Spanned<f64>>,
    pub(super) ttft_p99_ms: Option<Spanned<f64>>,
    pub(super) e2e_p50_ms: Option<Spanned<f64>>,
    pub(super) e2e_p95_ms: Option<Spanned<f64>>,
    pub(super) e2e_p99_ms: Option<Spanned<f64>>,
    pub(super) min_output_tokens_per_s: Option<Spanned<f64>>,
}

/// `[[class.route]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    pub(super) name: Option<Spanned<String>>,
    pub(super) mix: Option<Spanned<BTreeMap<String, Spanned<f64>>>>,
}

/// `[[quota]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawQuota {
    pub(super) model: Option<Spanned<String>>,
    pub(super) rpm: Option<Spanned<i64>>,
    pub(super) tpm: Option<Spanned<i64>>,
    pub(super) tpd: Option<Spanned<i64>>,
    pub(super) rpm_adjustable: Option<Spanned<bool>>,
    pub(super) tpm_adjustable: Option<Spanned<bool>>,
    pub(super) tpd_adjustable: Option<Spanned<bool>>,
}

/// `[models."id"]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawModel {
    pub(super) burndown: Option<Spanned<i64>>,
    pub(super) max_output_tokens: Option<Spanned<i64>>,
}

/// `[pricing."id"]`, USD per 1M tokens.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPrices {
    pub(super) input: Option<Spanned<f64>>,
    pub(super) output: Option<Spanned<f64>>,
    pub(super) cache_write_5m: Option<Spanned<f64>>,
    pub(super) cache_write_1h: Option<Spanned<f64>>,
    pub(super) cache_read: Option<Spanned<f64>>,
}

/// `[tiers]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTiers {
    pub(super) flex_discount: Option<Spanned<f64>>,
    pub(super) priority_premium: Option<Spanned<f64>>,
    pub(super) batch_discount: Option<Spanned<f64>>,
}

/// `[[reserved]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReserved {
    pub(super) model: Option<Spanned<String>>,
    pub(super) input_tpm: Option<Spanned<f64>>,
    pub(super) output_tpm: Option<Spanned<f64>>,
    pub(super) usd_per_1k_input_tpm_month: Option<Spanned<f64>>,
    pub(super) usd_per_1k_output_tpm_month: Option<Spanned<f64>>,
}

/// `[[provisioned]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProvisioned {
    pub(super) model: Option<Spanned<String>>,
    pub(super) usd_per_unit_hour: Option<Spanned<f64>>,
    pub(super) tokens_per_minute_per_unit: Option<Spanned<f64>>,
    pub(super) term: Option<Spanned<String>>,
}

/// `[[self_hosted]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSelfHosted {
    pub(super) class: Option<Spanned<String>>,
    pub(super) name: Option<Spanned<String>>,
    pub(super) usd_per_unit_month: Option<Spanned<f64>>,
    pub(super) rpm_per_unit: Option<Spanned<f64>>,
}
