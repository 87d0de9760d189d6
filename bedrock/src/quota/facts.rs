//! Built-in Bedrock quota facts: the default per-model quotas Quarry was built
//! from, and model output limits (what a request without `max_tokens`
//! reserves). The names and codes they are filed under are in `names`.
//!
//! Every entry names its source and how sure it is, as CAPACITY.md marks them.
//! These are defaults, not an account's values: real quotas vary by account,
//! account age and Region (PROTOCOL.md §5.3), so the planner shows them as
//! built-in figures and asks for the account's own. A figure AWS does not
//! publish is not here at all.

use serde::{Deserialize, Serialize};

use crate::family::{base_model_id, geo_prefix};

/// How sure a built-in fact is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    /// A figure from the field reports Quarry was built from, not (yet)
    /// checked against an AWS page: use it to rehearse, confirm before relying on it.
    FieldReport,
    /// Secondary sources only (public code or posts quoting AWS).
    Secondary,
    /// An AWS documentation page says so.
    Documented,
}

impl Confidence {
    /// A short label for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Confidence::FieldReport => "field report",
            Confidence::Secondary => "secondary source",
            Confidence::Documented => "AWS documentation",
        }
    }
}

/// Where a built-in fact comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct FactSource {
    /// The citation: document, page or record.
    pub cite: &'static str,
    /// How sure it is.
    pub confidence: Confidence,
}

/// Tokens per day per token-per-minute of quota: AWS's default daily quota is
/// TPM × 1440 (PROTOCOL.md §5.1).
pub const TOKENS_PER_DAY_PER_TPM: u64 = 1_440;

/// The default tokens-per-day quota of a pool with `tpm` tokens per minute.
pub fn default_tokens_per_day(tpm: u64) -> u64 {
    tpm.saturating_mul(TOKENS_PER_DAY_PER_TPM)
}

/// The quota pool a model id draws on (CAPACITY.md §1: three pools per model).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuotaPool {
    /// In-Region on-demand invocation (a base id or foundation-model ARN).
    OnDemand,
    /// A geographic cross-Region inference profile (`us.`, `eu.`, `apac.` ...).
    CrossRegion,
    /// A global cross-Region inference profile (`global.`).
    Global,
}

impl QuotaPool {
    /// The pool `model_id` draws on; `None` for ids outside the on-demand
    /// pools (provisioned models, application inference profiles, custom models).
    pub fn of_model_id(model_id: &str) -> Option<QuotaPool> {
        match geo_prefix(model_id) {
            Some("global") => Some(QuotaPool::Global),
            Some(_) => Some(QuotaPool::CrossRegion),
            None if !model_id.starts_with("arn:") => Some(QuotaPool::OnDemand),
            None if model_id.contains(":foundation-model/") => Some(QuotaPool::OnDemand),
            None => None,
        }
    }

    /// A label for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaPool::OnDemand => "on-demand",
            QuotaPool::CrossRegion => "cross-Region",
            QuotaPool::Global => "global cross-Region",
        }
    }
}

/// What a quota counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuotaMetric {
    /// Requests per minute.
    RequestsPerMinute,
    /// Tokens per minute (input and output together, burndown applied).
    TokensPerMinute,
    /// Tokens per day.
    TokensPerDay,
}

impl QuotaMetric {
    /// The short name reports use: RPM, TPM, TPD.
    pub fn abbreviation(self) -> &'static str {
        match self {
            QuotaMetric::RequestsPerMinute => "RPM",
            QuotaMetric::TokensPerMinute => "TPM",
            QuotaMetric::TokensPerDay => "TPD",
        }
    }
}

/// One built-in default quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct QuotaFact {
    /// The base model id.
    pub model: &'static str,
    /// The pool.
    pub pool: QuotaPool,
    /// What it counts.
    pub metric: QuotaMetric,
    /// The default value.
    pub value: u64,
    /// Whether AWS will raise it on request: `Some(false)` for a fixed cap no
    /// increase lifts, `None` when no source says.
    pub adjustable: Option<bool>,
    /// Where it comes from.
    pub source: FactSource,
}

/// Facts about a model that are not quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ModelFact {
    /// The base model id.
    pub model: &'static str,
    /// The model's name as Service Quotas spells it in quota names.
    pub quota_display_name: &'static str,
    /// The model's output limit: what a request without `max_tokens`
    /// reserves, and where the figure comes from.
    pub max_output_tokens: Option<(u64, FactSource)>,
}

const SEED: FactSource = FactSource {
    cite: "CAPACITY.md §1 seed figures (the field reports Quarry was built from)",
    confidence: Confidence::FieldReport,
};

pub(super) const OPUS_4_6: &str = "anthropic.claude-opus-4-6-v1";
pub(super) const SONNET_4_5: &str = "anthropic.claude-sonnet-4-5-20250929-v1:0";
pub(super) const HAIKU_4_5: &str = "anthropic.claude-haiku-4-5-20251001-v1:0";
pub(super) const LLAMA_3_3_70B: &str = "meta.llama3-3-70b-instruct-v1:0";

/// The default quotas Quarry was built from.
const QUOTAS: &[QuotaFact] = &[
    QuotaFact {
        model: OPUS_4_6,
        pool: QuotaPool::CrossRegion,
        metric: QuotaMetric::RequestsPerMinute,
        value: 25,
        adjustable: None,
        source: SEED,
    },
    QuotaFact {
        model: OPUS_4_6,
        pool: QuotaPool::CrossRegion,
        metric: QuotaMetric::TokensPerMinute,
        value: 2_000_000,
        adjustable: None,
        source: SEED,
    },
    QuotaFact {
        model: OPUS_4_6,
        pool: QuotaPool::CrossRegion,
        metric: QuotaMetric::TokensPerDay,
        value: 2_592_000,
        adjustable: Some(false),
        source: FactSource {
            cite: "CAPACITY.md §1 seed figures: Claude Opus 4.6 on-demand cross-Region, 2,592,000 tokens/day, not adjustable",
            confidence: Confidence::FieldReport,
        },
    },
    QuotaFact {
        model: SONNET_4_5,
        pool: QuotaPool::CrossRegion,
        metric: QuotaMetric::TokensPerDay,
        value: 3_600_000_000,
        adjustable: None,
        source: FactSource {
            cite: "CAPACITY.md §1 seed figures: Sonnet's daily cap, 3.6 billion tokens",
            confidence: Confidence::FieldReport,
        },
    },
    QuotaFact {
        model: LLAMA_3_3_70B,
        pool: QuotaPool::OnDemand,
        metric: QuotaMetric::RequestsPerMinute,
        value: 800,
        adjustable: None,
        source: FactSource {
            cite: "CAPACITY.md §1 seed figures: Llama 3.3 70B Instruct about 800 RPM on-demand (6,000 only by special grant)",
            confidence: Confidence::FieldReport,
        },
    },
    QuotaFact {
        model: LLAMA_3_3_70B,
        pool: QuotaPool::OnDemand,
        metric: QuotaMetric::TokensPerMinute,
        value: 600_000,
        adjustable: None,
        source: FactSource {
            cite: "CAPACITY.md §1 seed figures: Llama 3.3 70B Instruct about 600,000 TPM on-demand (36,000,000 only by special grant)",
            confidence: Confidence::FieldReport,
        },
    },
];

/// Models the built-in facts know by name.
const MODELS: &[ModelFact] = &[
    ModelFact {
        model: OPUS_4_6,
        quota_display_name: "Anthropic Claude Opus 4.6 V1",
        max_output_tokens: Some((
            128_000,
            FactSource {
                cite: "AWS Bedrock user guide, model card for Claude Opus 4.6 (max output tokens 128K)",
                confidence: Confidence::Documented,
            },
        )),
    },
    ModelFact {
        model: SONNET_4_5,
        quota_display_name: "Anthropic Claude Sonnet 4.5 V1",
        max_output_tokens: Some((
            64_000,
            FactSource {
                cite: "PROTOCOL.md §5.2 (64K for recent Claude Sonnet, AWS toolkit); Anthropic's model overview for Sonnet 4.5 (max output 64K)",
                confidence: Confidence::Documented,
            },
        )),
    },
    ModelFact {
        model: HAIKU_4_5,
        quota_display_name: "Anthropic Claude Haiku 4.5",
        max_output_tokens: None,
    },
    ModelFact {
        model: LLAMA_3_3_70B,
        quota_display_name: "Meta Llama 3.3 70B Instruct",
        max_output_tokens: None,
    },
];

/// The built-in default for `model_id`'s (any id form) quota in `pool`.
pub fn quota_fact(
    model_id: &str,
    pool: QuotaPool,
    metric: QuotaMetric,
) -> Option<&'static QuotaFact> {
    let base = base_model_id(model_id);
    QUOTAS
        .iter()
        .find(|q| q.model == base && q.pool == pool && q.metric == metric)
}

/// Every built-in default quota, for listing.
pub fn quota_facts() -> &'static [QuotaFact] {
    QUOTAS
}

/// What the built-in facts know about `model_id` (any id form).
pub fn model_fact(model_id: &str) -> Option<&'static ModelFact> {
    let base = base_model_id(model_id);
    MODELS.iter().find(|m| m.model == base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_from_ids() {
        let cases = [
            ("meta.llama3-3-70b-instruct-v1:0", Some(QuotaPool::OnDemand)),
            (
                "us.anthropic.claude-opus-4-6-v1",
                Some(QuotaPool::CrossRegion),
            ),
            (
                "eu.anthropic.claude-opus-4-6-v1",
                Some(QuotaPool::CrossRegion),
            ),
            (
                "global.anthropic.claude-opus-4-6-v1",
                Some(QuotaPool::Global),
            ),
            (
                "arn:aws:bedrock:us-east-1::foundation-model/meta.llama3-3-70b-instruct-v1:0",
                Some(QuotaPool::OnDemand),
            ),
            (
                "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-opus-4-6-v1",
                Some(QuotaPool::CrossRegion),
            ),
            (
                "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abcdefghijkl",
                None,
            ),
        ];
        for (id, pool) in cases {
            assert_eq!(QuotaPool::of_model_id(id), pool, "{id}");
        }
    }

    #[test]
    fn the_figures_the_product_was_built_from() {
        let opus = "us.anthropic.claude-opus-4-6-v1";
        let get = |id, pool, metric| quota_fact(id, pool, metric).map(|q| (q.value, q.adjustable));
        assert_eq!(
            get(opus, QuotaPool::CrossRegion, QuotaMetric::RequestsPerMinute),
            Some((25, None))
        );
        assert_eq!(
            get(opus, QuotaPool::CrossRegion, QuotaMetric::TokensPerMinute),
            Some((2_000_000, None))
        );
        assert_eq!(
            get(opus, QuotaPool::CrossRegion, QuotaMetric::TokensPerDay),
            Some((2_592_000, Some(false)))
        );
        let sonnet = "anthropic.claude-sonnet-4-5-20250929-v1:0";
        assert_eq!(
            get(sonnet, QuotaPool::CrossRegion, QuotaMetric::TokensPerDay),
            Some((3_600_000_000, None))
        );
        let llama = "meta.llama3-3-70b-instruct-v1:0";
        assert_eq!(
            get(llama, QuotaPool::OnDemand, QuotaMetric::RequestsPerMinute),
            Some((800, None))
        );
        assert_eq!(
            get(llama, QuotaPool::OnDemand, QuotaMetric::TokensPerMinute),
            Some((600_000, None))
        );
        assert_eq!(
            get(llama, QuotaPool::Global, QuotaMetric::TokensPerMinute),
            None
        );
        assert_eq!(default_tokens_per_day(600_000), 864_000_000);
    }

    #[test]
    fn every_fact_names_its_source() {
        for q in quota_facts() {
            assert!(!q.source.cite.is_empty(), "{q:?}");
            assert!(
                model_fact(q.model).is_some(),
                "{} has no model fact",
                q.model
            );
        }
    }

    #[test]
    fn output_limits() {
        let opus = model_fact("global.anthropic.claude-opus-4-6-v1").unwrap();
        assert_eq!(opus.max_output_tokens.map(|m| m.0), Some(128_000));
        assert_eq!(
            model_fact("meta.llama3-3-70b-instruct-v1:0")
                .unwrap()
                .max_output_tokens,
            None
        );
    }
}
