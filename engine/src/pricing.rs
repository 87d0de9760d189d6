//! On-demand prices per model and the cost of a request.
//!
//! The built-in table is PROTOCOL.md §6 (USD per 1M tokens, from the LiteLLM
//! price map, verified only against third-party articles: verify before
//! relying on it). Prices are held as integers in pico-USD per token, which is
//! the same number as micro-USD per 1M tokens, so every table price and the
//! +10% regional uplift are exact and costs add up without float drift.
//!
//! A model the table does not know has no price: [`PriceTable::lookup`]
//! returns `None` and the report says "no price" rather than guessing.

use std::collections::BTreeMap;

use quarry_bedrock::{TokenUsage, base_model_id, claude_version, geo_prefix};
use serde::{Deserialize, Serialize};

use quarry_bedrock::{CacheTtl, ServiceTierType};

/// Prices for one model, in pico-USD per token (= micro-USD per 1M tokens).
///
/// `None` means the model has no such price (no prompt caching, no 1-hour
/// TTL); a request that used tokens of that kind cannot be priced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ModelPrices {
    /// Input tokens (cache reads and writes excluded).
    pub input: u64,
    /// Output tokens.
    pub output: u64,
    /// Cache writes with the 5-minute TTL.
    pub cache_write_5m: Option<u64>,
    /// Cache writes with the 1-hour TTL.
    pub cache_write_1h: Option<u64>,
    /// Cache reads.
    pub cache_read: Option<u64>,
}

impl ModelPrices {
    /// Converts USD-per-1M-token prices (how AWS publishes them) to the table's
    /// unit. Returns `None` if any price is negative or not finite.
    pub fn from_usd_per_million(
        input: f64,
        output: f64,
        cache_write_5m: Option<f64>,
        cache_write_1h: Option<f64>,
        cache_read: Option<f64>,
    ) -> Option<Self> {
        fn conv(usd: f64) -> Option<u64> {
            // Rounds to whole pico-USD; float-to-int `as` saturates, and the
            // range check keeps absurd values out.
            (usd.is_finite() && (0.0..=1e9).contains(&usd)).then(|| (usd * 1e6).round() as u64)
        }
        let opt = |p: Option<f64>| match p {
            None => Some(None),
            Some(usd) => conv(usd).map(Some),
        };
        Some(ModelPrices {
            input: conv(input)?,
            output: conv(output)?,
            cache_write_5m: opt(cache_write_5m)?,
            cache_write_1h: opt(cache_write_1h)?,
            cache_read: opt(cache_read)?,
        })
    }

    /// These prices raised by 10%, the regional-profile rule for Claude 4.5+ (§6).
    fn regional(self) -> Self {
        let up = |p: u64| p * 11 / 10;
        ModelPrices {
            input: up(self.input),
            output: up(self.output),
            cache_write_5m: self.cache_write_5m.map(up),
            cache_write_1h: self.cache_write_1h.map(up),
            cache_read: self.cache_read.map(up),
        }
    }

    /// Cost of `usage` in pico-USD, or `None` when the usage includes a kind of
    /// token these prices do not cover (for example 1-hour cache writes on a
    /// model without a 1-hour price).
    pub fn cost_pico_usd(&self, usage: &TokenUsage, ttl: CacheTtl) -> Option<u64> {
        let write_price = match ttl {
            CacheTtl::FiveMinutes => self.cache_write_5m,
            CacheTtl::OneHour => self.cache_write_1h,
        };
        let priced = |tokens: u64, price: Option<u64>| match (tokens, price) {
            (0, _) => Some(0),
            (n, Some(p)) => n.checked_mul(p),
            (_, None) => None,
        };
        let mut total = usage.input_tokens.checked_mul(self.input)?;
        total = total.checked_add(usage.output_tokens.checked_mul(self.output)?)?;
        total = total.checked_add(priced(usage.cache_write_input_tokens, write_price)?)?;
        total.checked_add(priced(usage.cache_read_input_tokens, self.cache_read)?)
    }
}

/// The prices Quarry charges runs at: the built-in table plus overrides.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceTable {
    /// Overrides by exact model id or base id, from the spec's `[pricing]`.
    overrides: BTreeMap<String, ModelPrices>,
}

impl Default for PriceTable {
    fn default() -> Self {
        PriceTable::with_overrides(BTreeMap::new())
    }
}

impl PriceTable {
    /// The built-in table with `overrides` (model id → prices) taking precedence.
    ///
    /// An override key may be an exact id (`us.anthropic.claude-...`, an ARN)
    /// or a base id, which then covers every profile of that model as given
    /// (no regional uplift is applied to overrides).
    pub fn with_overrides(overrides: BTreeMap<String, ModelPrices>) -> Self {
        PriceTable { overrides }
    }

    /// Prices for `model_id`, looking through cross-region profile prefixes and
    /// ARNs; `None` when the model is unknown.
    pub fn lookup(&self, model_id: &str) -> Option<ModelPrices> {
        let base = base_model_id(model_id);
        if let Some(p) = self
            .overrides
            .get(model_id)
            .or_else(|| self.overrides.get(base))
        {
            return Some(*p);
        }
        let prices = default_prices(base)?;
        let regional = geo_prefix(model_id).is_some_and(|geo| geo != "global");
        let uplifted = claude_version(model_id).is_some_and(|v| v >= (4, 5));
        Some(if regional && uplifted {
            prices.regional()
        } else {
            prices
        })
    }

    /// Cost of one request in pico-USD; `None` means "no price".
    pub fn cost_pico_usd(&self, model_id: &str, usage: &TokenUsage, ttl: CacheTtl) -> Option<u64> {
        self.lookup(model_id)?.cost_pico_usd(usage, ttl)
    }

    /// Cost of one request in micro-USD, rounded to nearest; `None` means "no
    /// price". Sum [`PriceTable::cost_pico_usd`] instead when adding up many
    /// cheap requests, so rounding does not accumulate.
    pub fn cost_micro_usd(&self, model_id: &str, usage: &TokenUsage, ttl: CacheTtl) -> Option<u64> {
        self.cost_pico_usd(model_id, usage, ttl)
            .map(|p| p.saturating_add(500_000) / 1_000_000)
    }
}

/// What a request costs at each service tier, as a ratio to the Standard
/// (`default`) price, in basis points (10,000 = the Standard price), so a
/// tier's price stays an exact integer of the model's.
///
/// Built in (CAPACITY.md §3, PROTOCOL.md §5.7): Standard 1× (the on-demand
/// table is the Standard price); Flex 0.5× (about 50% below Standard:
/// secondary sources only, so overridable); Priority has no built-in ratio
/// (AWS names "a premium" but the figure was not found published) and
/// Reserved none (it is billed per 1K TPM per month, not per token). A tier
/// without a ratio has no price: its requests cost "no price" unless the
/// spec's `[tier_pricing]` sets one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierPrices {
    /// Priority, basis points of Standard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    /// Standard (`default`), basis points of Standard.
    #[serde(default = "TierPrices::standard")]
    pub default: Option<u32>,
    /// Flex, basis points of Standard.
    #[serde(default = "TierPrices::flex")]
    pub flex: Option<u32>,
    /// Reserved, basis points of Standard (per-token equivalent of the
    /// commitment, when the user enters one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved: Option<u32>,
}

/// Basis points of the Standard price that mean "the Standard price".
pub const TIER_PRICE_UNIT: u32 = 10_000;

impl Default for TierPrices {
    fn default() -> Self {
        TierPrices {
            priority: None,
            default: TierPrices::standard(),
            flex: TierPrices::flex(),
            reserved: None,
        }
    }
}

impl TierPrices {
    fn standard() -> Option<u32> {
        Some(TIER_PRICE_UNIT)
    }

    fn flex() -> Option<u32> {
        Some(TIER_PRICE_UNIT / 2)
    }

    /// True when these are the built-in ratios.
    pub fn is_default(&self) -> bool {
        *self == TierPrices::default()
    }

    /// The ratio of `tier` in basis points; `None` (no tier named) is
    /// Standard.
    pub fn ratio(&self, tier: Option<ServiceTierType>) -> Option<u32> {
        match tier {
            None | Some(ServiceTierType::Default) => self.default,
            Some(ServiceTierType::Priority) => self.priority,
            Some(ServiceTierType::Flex) => self.flex,
            Some(ServiceTierType::Reserved) => self.reserved,
        }
    }

    /// Sets one tier's ratio.
    pub fn set(&mut self, tier: ServiceTierType, basis_points: u32) {
        let slot = match tier {
            ServiceTierType::Default => &mut self.default,
            ServiceTierType::Priority => &mut self.priority,
            ServiceTierType::Flex => &mut self.flex,
            ServiceTierType::Reserved => &mut self.reserved,
        };
        *slot = Some(basis_points);
    }

    /// A Standard cost in pico-USD at `tier`; `None` when the tier has no
    /// price.
    pub fn apply(&self, tier: Option<ServiceTierType>, standard_pico_usd: u64) -> Option<u64> {
        let ratio = u128::from(self.ratio(tier)?);
        let cost = u128::from(standard_pico_usd) * ratio / u128::from(TIER_PRICE_UNIT);
        u64::try_from(cost).ok()
    }
}

/// USD per 1M tokens, written as in PROTOCOL.md §6: (input, output, cache
/// write 5m, cache write 1h, cache read).
type Row = (
    &'static [&'static str],
    f64,
    f64,
    Option<f64>,
    Option<f64>,
    Option<f64>,
);

/// PROTOCOL.md §6, global (non-regional) prices by base model id. Nova has no
/// cache-write surcharge ("automatic caching"), so its writes cost the input price.
const TABLE: &[Row] = &[
    (
        &["anthropic.claude-3-haiku-20240307-v1:0"],
        0.25,
        1.25,
        None,
        None,
        None,
    ),
    (
        &["anthropic.claude-3-5-haiku-20241022-v1:0"],
        0.80,
        4.00,
        Some(1.00),
        None,
        Some(0.08),
    ),
    (
        &[
            "anthropic.claude-3-5-sonnet-20240620-v1:0",
            "anthropic.claude-3-5-sonnet-20241022-v2:0",
            "anthropic.claude-3-7-sonnet-20250219-v1:0",
            "anthropic.claude-sonnet-4-20250514-v1:0",
        ],
        3.00,
        15.00,
        Some(3.75),
        None,
        Some(0.30),
    ),
    (
        &[
            "anthropic.claude-sonnet-4-5-20250929-v1:0",
            "anthropic.claude-sonnet-4-6",
        ],
        3.00,
        15.00,
        Some(3.75),
        Some(6.00),
        Some(0.30),
    ),
    (
        &["anthropic.claude-haiku-4-5-20251001-v1:0"],
        1.00,
        5.00,
        Some(1.25),
        Some(2.00),
        Some(0.10),
    ),
    (
        &[
            "anthropic.claude-opus-4-20250514-v1:0",
            "anthropic.claude-opus-4-1-20250805-v1:0",
        ],
        15.00,
        75.00,
        Some(18.75),
        None,
        Some(1.50),
    ),
    (
        &[
            "anthropic.claude-opus-4-5-20251101-v1:0",
            "anthropic.claude-opus-4-6-v1",
            "anthropic.claude-opus-4-7",
        ],
        5.00,
        25.00,
        Some(6.25),
        Some(10.00),
        Some(0.50),
    ),
    (
        &["meta.llama3-3-70b-instruct-v1:0"],
        0.72,
        0.72,
        None,
        None,
        None,
    ),
    (
        &["meta.llama3-1-8b-instruct-v1:0"],
        0.22,
        0.22,
        None,
        None,
        None,
    ),
    (
        &["meta.llama4-maverick-17b-instruct-v1:0"],
        0.24,
        0.97,
        None,
        None,
        None,
    ),
    (
        &["meta.llama4-scout-17b-instruct-v1:0"],
        0.17,
        0.66,
        None,
        None,
        None,
    ),
    (
        &["amazon.nova-pro-v1:0"],
        0.80,
        3.20,
        Some(0.80),
        None,
        Some(0.20),
    ),
    (
        &["amazon.nova-lite-v1:0"],
        0.06,
        0.24,
        Some(0.06),
        None,
        Some(0.015),
    ),
    (
        &["amazon.nova-micro-v1:0"],
        0.035,
        0.14,
        Some(0.035),
        None,
        Some(0.00875),
    ),
    (
        &["amazon.nova-premier-v1:0"],
        2.50,
        12.50,
        Some(2.50),
        None,
        Some(0.625),
    ),
];

/// The built-in prices for a base model id.
fn default_prices(base_id: &str) -> Option<ModelPrices> {
    let (_, input, output, w5, w1, read) = TABLE.iter().find(|row| row.0.contains(&base_id))?;
    ModelPrices::from_usd_per_million(*input, *output, *w5, *w1, *read)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(input: u64, output: u64, read: u64, write: u64) -> TokenUsage {
        TokenUsage {
            input_tokens: input,
            output_tokens: output,
            cache_read_input_tokens: read,
            cache_write_input_tokens: write,
        }
    }

    #[test]
    fn every_table_row_converts() {
        for row in TABLE {
            for id in row.0 {
                assert!(default_prices(id).is_some(), "{id}");
            }
        }
    }

    #[test]
    fn sonnet_one_million_each_way() {
        let t = PriceTable::default();
        let id = "anthropic.claude-3-7-sonnet-20250219-v1:0";
        let cost = t.cost_micro_usd(
            id,
            &usage(1_000_000, 1_000_000, 0, 0),
            CacheTtl::FiveMinutes,
        );
        assert_eq!(cost, Some(18_000_000)); // $3 + $15
    }

    #[test]
    fn regional_profiles_of_claude_4_5_cost_ten_percent_more() {
        let t = PriceTable::default();
        let global = t
            .lookup("global.anthropic.claude-sonnet-4-5-20250929-v1:0")
            .unwrap();
        let us = t
            .lookup("us.anthropic.claude-sonnet-4-5-20250929-v1:0")
            .unwrap();
        let base = t
            .lookup("anthropic.claude-sonnet-4-5-20250929-v1:0")
            .unwrap();
        assert_eq!(global, base);
        assert_eq!(us.input, 3_300_000);
        assert_eq!(us.cache_write_5m, Some(4_125_000));
        assert_eq!(us.cache_write_1h, Some(6_600_000));
        assert_eq!(us.cache_read, Some(330_000));
        let haiku = t
            .lookup("eu.anthropic.claude-haiku-4-5-20251001-v1:0")
            .unwrap();
        assert_eq!((haiku.input, haiku.output), (1_100_000, 5_500_000));
        let arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-opus-4-6-v1";
        assert_eq!(t.lookup(arn).unwrap().output, 27_500_000);
        // Older Claude models have no uplift on regional profiles.
        let old = t
            .lookup("us.anthropic.claude-3-7-sonnet-20250219-v1:0")
            .unwrap();
        assert_eq!(old.input, 3_000_000);
    }

    #[test]
    fn cache_tokens_priced_by_ttl() {
        let t = PriceTable::default();
        let id = "anthropic.claude-haiku-4-5-20251001-v1:0";
        let u = usage(0, 0, 1_000_000, 1_000_000);
        assert_eq!(
            t.cost_micro_usd(id, &u, CacheTtl::FiveMinutes),
            Some(1_350_000)
        );
        assert_eq!(t.cost_micro_usd(id, &u, CacheTtl::OneHour), Some(2_100_000));
        // Claude 3.5 Haiku has no 1-hour price: such usage cannot be priced.
        let old = "anthropic.claude-3-5-haiku-20241022-v1:0";
        assert_eq!(t.cost_micro_usd(old, &u, CacheTtl::OneHour), None);
        // ...but without cache writes the TTL does not matter.
        assert!(
            t.cost_micro_usd(old, &usage(10, 10, 0, 0), CacheTtl::OneHour)
                .is_some()
        );
    }

    #[test]
    fn unknown_models_have_no_price() {
        let t = PriceTable::default();
        assert_eq!(t.lookup("cohere.command-r-v1:0"), None);
        let arn = "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abcdefghijkl";
        assert_eq!(
            t.cost_micro_usd(arn, &usage(1, 1, 0, 0), CacheTtl::FiveMinutes),
            None
        );
    }

    #[test]
    fn overrides_win_by_exact_or_base_id() {
        let p = ModelPrices::from_usd_per_million(1.0, 2.0, None, None, None).unwrap();
        let mut o = BTreeMap::new();
        o.insert("meta.llama3-3-70b-instruct-v1:0".to_owned(), p);
        let t = PriceTable::with_overrides(o);
        assert_eq!(t.lookup("us.meta.llama3-3-70b-instruct-v1:0"), Some(p));
        assert!(ModelPrices::from_usd_per_million(-1.0, 0.0, None, None, None).is_none());
        assert!(ModelPrices::from_usd_per_million(f64::NAN, 0.0, None, None, None).is_none());
    }

    #[test]
    fn tiers_scale_the_standard_price_and_priority_has_none_built_in() {
        let t = TierPrices::default();
        assert_eq!(t.apply(None, 1_000), Some(1_000));
        assert_eq!(t.apply(Some(ServiceTierType::Default), 1_000), Some(1_000));
        assert_eq!(t.apply(Some(ServiceTierType::Flex), 1_000), Some(500));
        assert_eq!(t.apply(Some(ServiceTierType::Priority), 1_000), None);
        assert_eq!(t.apply(Some(ServiceTierType::Reserved), 1_000), None);
        let mut o = t;
        o.set(ServiceTierType::Priority, 17_500);
        assert_eq!(o.apply(Some(ServiceTierType::Priority), 1_000), Some(1_750));
        assert!(!o.is_default() && t.is_default());
        // Absent fields read back as the built-in ratios.
        let read: TierPrices = serde_json::from_str("{}").unwrap();
        assert_eq!(read, t);
    }

    #[test]
    fn cheap_requests_keep_precision_in_pico() {
        let t = PriceTable::default();
        let c = t.cost_pico_usd(
            "amazon.nova-micro-v1:0",
            &usage(100, 0, 8, 0),
            CacheTtl::FiveMinutes,
        );
        assert_eq!(c, Some(100 * 35_000 + 8 * 8_750));
    }
}
