//! Service Quotas names and codes of Bedrock's quotas: the name families
//! CAPACITY.md §1 lists, the model names Service Quotas spells in them, and
//! the few codes public sources quote. Names are for the quota request a
//! user files; check them in the Service Quotas console.

use serde::Serialize;

use super::facts::{
    Confidence, FactSource, HAIKU_4_5, LLAMA_3_3_70B, OPUS_4_6, QuotaMetric, QuotaPool, SONNET_4_5,
    model_fact,
};
use crate::family::base_model_id;

/// The Service Quotas service code of Bedrock's quotas.
pub const SERVICE_QUOTAS_SERVICE_CODE: &str = "bedrock";

/// A Service Quotas quota code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct QuotaCode {
    /// The base model id.
    pub model: &'static str,
    /// The pool.
    pub pool: QuotaPool,
    /// What it counts.
    pub metric: QuotaMetric,
    /// The code (`L-...`).
    pub code: &'static str,
    /// Where it comes from.
    pub source: FactSource,
}

const QUOTA_NAME_SOURCE: FactSource = FactSource {
    cite: "public code quoting Service Quotas (CAPACITY.md §1 name families)",
    confidence: Confidence::Secondary,
};

/// Quota codes CAPACITY.md §1 lists (from secondary sources).
const CODES: &[QuotaCode] = &[
    code(
        SONNET_4_5,
        QuotaPool::Global,
        QuotaMetric::TokensPerMinute,
        "L-27C57EE8",
    ),
    code(
        SONNET_4_5,
        QuotaPool::CrossRegion,
        QuotaMetric::TokensPerMinute,
        "L-F4DDD3EB",
    ),
    code(
        SONNET_4_5,
        QuotaPool::CrossRegion,
        QuotaMetric::RequestsPerMinute,
        "L-4A6BFAB1",
    ),
    code(
        HAIKU_4_5,
        QuotaPool::CrossRegion,
        QuotaMetric::TokensPerMinute,
        "L-58BE175A",
    ),
    code(
        SONNET_4_5,
        QuotaPool::CrossRegion,
        QuotaMetric::TokensPerDay,
        "L-381AD9EE",
    ),
];

const fn code(
    model: &'static str,
    pool: QuotaPool,
    metric: QuotaMetric,
    code: &'static str,
) -> QuotaCode {
    QuotaCode {
        model,
        pool,
        metric,
        code,
        source: FactSource {
            cite: "CAPACITY.md §1 example codes (secondary: public repositories quoting Service Quotas)",
            confidence: Confidence::Secondary,
        },
    }
}

/// The daily quota is one quota for in-Region and geographic cross-Region
/// calls ("... (doubled for cross-region calls)"); global has its own.
fn daily_pool(pool: QuotaPool) -> QuotaPool {
    match pool {
        QuotaPool::OnDemand | QuotaPool::CrossRegion => QuotaPool::CrossRegion,
        QuotaPool::Global => QuotaPool::Global,
    }
}

/// The Service Quotas code of a quota, where a source lists it.
pub fn quota_code(
    model_id: &str,
    pool: QuotaPool,
    metric: QuotaMetric,
) -> Option<&'static QuotaCode> {
    let base = base_model_id(model_id);
    let key = |p: QuotaPool| match metric {
        QuotaMetric::TokensPerDay => daily_pool(p),
        _ => p,
    };
    CODES
        .iter()
        .find(|c| c.model == base && c.metric == metric && key(c.pool) == key(pool))
}

/// How Service Quotas spells a model in Bedrock's quota names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct QuotaModelName {
    /// The base model id.
    pub model: &'static str,
    /// The model's name in quota names ("Anthropic Claude Sonnet 4.5 V1").
    pub name: &'static str,
    /// True when a public source quotes this spelling (CAPACITY.md §1);
    /// false for Quarry's own spelling, which the simulator uses and which
    /// may differ from the console's: a real quota whose name matches no
    /// row is reported as unmapped, never guessed.
    pub quoted: bool,
}

const fn named(model: &'static str, name: &'static str, quoted: bool) -> QuotaModelName {
    QuotaModelName {
        model,
        name,
        quoted,
    }
}

/// The model names of quota names, one row per base model: the table
/// `quarry quotas` maps Service Quotas names through (and prints with
/// `--show-mapping`), and the simulator names its quotas from.
const QUOTA_MODEL_NAMES: &[QuotaModelName] = &[
    named(
        "anthropic.claude-3-haiku-20240307-v1:0",
        "Anthropic Claude 3 Haiku",
        false,
    ),
    named(
        "anthropic.claude-3-5-haiku-20241022-v1:0",
        "Anthropic Claude 3.5 Haiku",
        false,
    ),
    named(
        "anthropic.claude-3-5-sonnet-20240620-v1:0",
        "Anthropic Claude 3.5 Sonnet",
        false,
    ),
    named(
        "anthropic.claude-3-5-sonnet-20241022-v2:0",
        "Anthropic Claude 3.5 Sonnet V2",
        false,
    ),
    named(
        "anthropic.claude-3-7-sonnet-20250219-v1:0",
        "Anthropic Claude 3.7 Sonnet V1",
        false,
    ),
    named(
        "anthropic.claude-sonnet-4-20250514-v1:0",
        "Anthropic Claude Sonnet 4 V1",
        false,
    ),
    named(SONNET_4_5, "Anthropic Claude Sonnet 4.5 V1", true),
    named(
        "anthropic.claude-sonnet-4-6",
        "Anthropic Claude Sonnet 4.6",
        false,
    ),
    named(HAIKU_4_5, "Anthropic Claude Haiku 4.5", true),
    named(
        "anthropic.claude-opus-4-20250514-v1:0",
        "Anthropic Claude Opus 4 V1",
        false,
    ),
    named(
        "anthropic.claude-opus-4-1-20250805-v1:0",
        "Anthropic Claude Opus 4.1 V1",
        false,
    ),
    named(
        "anthropic.claude-opus-4-5-20251101-v1:0",
        "Anthropic Claude Opus 4.5 V1",
        false,
    ),
    named(OPUS_4_6, "Anthropic Claude Opus 4.6 V1", true),
    named(LLAMA_3_3_70B, "Meta Llama 3.3 70B Instruct", true),
    named(
        "meta.llama3-1-8b-instruct-v1:0",
        "Meta Llama 3.1 8B Instruct",
        false,
    ),
    named("amazon.nova-pro-v1:0", "Amazon Nova Pro", false),
    named("amazon.nova-lite-v1:0", "Amazon Nova Lite", false),
    named("amazon.nova-micro-v1:0", "Amazon Nova Micro", false),
    named("amazon.nova-premier-v1:0", "Amazon Nova Premier", false),
    named(
        "amazon.titan-text-express-v1",
        "Titan Text G1 - Express",
        false,
    ),
    named("amazon.titan-text-lite-v1", "Titan Text G1 - Lite", false),
    named(
        "amazon.titan-text-premier-v1:0",
        "Titan Text G1 - Premier",
        false,
    ),
];

/// Every row of the model-name table.
pub fn quota_model_names() -> &'static [QuotaModelName] {
    QUOTA_MODEL_NAMES
}

/// The name Service Quotas gives `model_id`'s (any id form) model in quota
/// names: the table's row, else the built-in model fact's.
pub fn quota_model_name(model_id: &str) -> Option<&'static str> {
    let base = base_model_id(model_id);
    QUOTA_MODEL_NAMES
        .iter()
        .find(|m| m.model == base)
        .map(|m| m.name)
        .or_else(|| model_fact(base).map(|m| m.quota_display_name))
}

/// The base model id whose quota-name spelling is `name` (compared without
/// regard to case or repeated spaces); `None` when no row spells it so.
pub fn model_for_quota_model_name(name: &str) -> Option<&'static str> {
    let wanted = normalized(name);
    QUOTA_MODEL_NAMES
        .iter()
        .find(|m| normalized(m.name) == wanted)
        .map(|m| m.model)
}

fn normalized(name: &str) -> String {
    name.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_lowercase()
}

/// The name family of a quota name: which pool and metric it sets.
const FAMILIES: &[(&str, QuotaPool, QuotaMetric)] = &[
    (
        "On-demand model inference requests per minute for ",
        QuotaPool::OnDemand,
        QuotaMetric::RequestsPerMinute,
    ),
    (
        "On-demand model inference tokens per minute for ",
        QuotaPool::OnDemand,
        QuotaMetric::TokensPerMinute,
    ),
    (
        "Cross-region model inference requests per minute for ",
        QuotaPool::CrossRegion,
        QuotaMetric::RequestsPerMinute,
    ),
    (
        "Cross-region model inference tokens per minute for ",
        QuotaPool::CrossRegion,
        QuotaMetric::TokensPerMinute,
    ),
    (
        "Global cross-region model inference tokens per minute for ",
        QuotaPool::Global,
        QuotaMetric::TokensPerMinute,
    ),
    (
        "Global cross-region model inference tokens per day for ",
        QuotaPool::Global,
        QuotaMetric::TokensPerDay,
    ),
    (
        "Model invocation max tokens per day for ",
        QuotaPool::CrossRegion,
        QuotaMetric::TokensPerDay,
    ),
];

/// The daily quota's name ends so: one quota for in-Region and geographic
/// cross-Region calls.
const DAILY_SUFFIX: &str = " (doubled for cross-region calls)";

/// A Service Quotas name read back into what it sets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParsedQuotaName {
    /// The pool. The daily quota ("Model invocation max tokens per day")
    /// is one quota for in-Region and geographic calls; it reads as
    /// [`QuotaPool::CrossRegion`].
    pub pool: QuotaPool,
    /// What it counts.
    pub metric: QuotaMetric,
    /// The model as the name spells it.
    pub model_name: String,
}

/// Reads a Bedrock Service Quotas name (CAPACITY.md §1 name families);
/// `None` for names of other families (provisioned model units, batch,
/// agents, knowledge bases ...). Family prefixes compare without regard to
/// case ("Cross-Region" and "Cross-region" both occur).
pub fn parse_service_quota_name(name: &str) -> Option<ParsedQuotaName> {
    let name = name.trim();
    FAMILIES.iter().find_map(|&(prefix, pool, metric)| {
        let head = name.get(..prefix.len())?;
        if !head.eq_ignore_ascii_case(prefix) {
            return None;
        }
        let rest = &name[prefix.len()..];
        let model_name = if metric == QuotaMetric::TokensPerDay && pool != QuotaPool::Global {
            strip_suffix_ignore_case(rest, DAILY_SUFFIX).unwrap_or(rest)
        } else {
            rest
        };
        let model_name = model_name.trim();
        (!model_name.is_empty()).then(|| ParsedQuotaName {
            pool,
            metric,
            model_name: model_name.to_owned(),
        })
    })
}

fn strip_suffix_ignore_case<'a>(s: &'a str, suffix: &str) -> Option<&'a str> {
    let at = s.len().checked_sub(suffix.len())?;
    let tail = s.get(at..)?;
    tail.eq_ignore_ascii_case(suffix).then(|| &s[..at])
}

/// The Service Quotas name of a quota (CAPACITY.md §1 name families), for a
/// model the name table knows; `None` for other models and for
/// combinations no family covers. Names come from secondary sources
/// ([`service_quota_name_source`]): check them in the Service Quotas console.
pub fn service_quota_name(model_id: &str, pool: QuotaPool, metric: QuotaMetric) -> Option<String> {
    let name = quota_model_name(model_id)?;
    service_quota_name_for(name, pool, metric)
}

/// [`service_quota_name`] for a model spelled `name`.
pub fn service_quota_name_for(name: &str, pool: QuotaPool, metric: QuotaMetric) -> Option<String> {
    if metric == QuotaMetric::TokensPerDay && pool != QuotaPool::Global {
        return Some(format!(
            "Model invocation max tokens per day for {name}{DAILY_SUFFIX}"
        ));
    }
    FAMILIES
        .iter()
        .find(|(_, p, m)| *p == pool && *m == metric)
        .map(|(prefix, ..)| format!("{prefix}{name}"))
}

/// Where [`service_quota_name`]'s names come from.
pub fn service_quota_name_source() -> FactSource {
    QUOTA_NAME_SOURCE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_quota_names_and_codes() {
        let sonnet = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
        assert_eq!(
            service_quota_name(sonnet, QuotaPool::CrossRegion, QuotaMetric::TokensPerMinute)
                .as_deref(),
            Some(
                "Cross-region model inference tokens per minute for Anthropic Claude Sonnet 4.5 V1"
            )
        );
        assert_eq!(
            quota_code(sonnet, QuotaPool::CrossRegion, QuotaMetric::TokensPerMinute)
                .map(|c| c.code),
            Some("L-F4DDD3EB")
        );
        assert_eq!(
            quota_code(sonnet, QuotaPool::Global, QuotaMetric::TokensPerMinute).map(|c| c.code),
            Some("L-27C57EE8")
        );
        // One daily quota for in-Region and geographic calls.
        assert_eq!(
            quota_code(sonnet, QuotaPool::OnDemand, QuotaMetric::TokensPerDay).map(|c| c.code),
            Some("L-381AD9EE")
        );
        assert_eq!(
            quota_code(sonnet, QuotaPool::Global, QuotaMetric::TokensPerDay),
            None
        );
        assert_eq!(
            service_quota_name(
                "meta.llama3-3-70b-instruct-v1:0",
                QuotaPool::OnDemand,
                QuotaMetric::TokensPerDay
            )
            .as_deref(),
            Some(
                "Model invocation max tokens per day for Meta Llama 3.3 70B Instruct (doubled for cross-region calls)"
            )
        );
        assert_eq!(
            service_quota_name(
                "global.anthropic.claude-opus-4-6-v1",
                QuotaPool::Global,
                QuotaMetric::RequestsPerMinute
            ),
            None
        );
        assert_eq!(
            service_quota_name(
                "cohere.command-r-v1:0",
                QuotaPool::OnDemand,
                QuotaMetric::TokensPerMinute
            ),
            None
        );
    }

    #[test]
    fn names_read_back_into_pool_metric_and_model() {
        for row in quota_model_names() {
            for pool in [
                QuotaPool::OnDemand,
                QuotaPool::CrossRegion,
                QuotaPool::Global,
            ] {
                for metric in [
                    QuotaMetric::RequestsPerMinute,
                    QuotaMetric::TokensPerMinute,
                    QuotaMetric::TokensPerDay,
                ] {
                    let Some(name) = service_quota_name(row.model, pool, metric) else {
                        continue;
                    };
                    let parsed = parse_service_quota_name(&name).unwrap();
                    let want_pool = match (pool, metric) {
                        (QuotaPool::OnDemand, QuotaMetric::TokensPerDay) => QuotaPool::CrossRegion,
                        _ => pool,
                    };
                    assert_eq!((parsed.pool, parsed.metric), (want_pool, metric), "{name}");
                    assert_eq!(
                        model_for_quota_model_name(&parsed.model_name),
                        Some(row.model),
                        "{name}"
                    );
                }
            }
        }
        let p = parse_service_quota_name(
            "Cross-Region model inference tokens per minute for  anthropic claude sonnet 4.5 v1",
        )
        .unwrap();
        assert_eq!(p.pool, QuotaPool::CrossRegion);
        assert_eq!(
            model_for_quota_model_name(&p.model_name),
            Some("anthropic.claude-sonnet-4-5-20250929-v1:0")
        );
        assert_eq!(
            parse_service_quota_name("Model units per provisioned model for Amazon Nova Pro"),
            None
        );
        assert_eq!(
            parse_service_quota_name("On-demand model inference tokens per minute for "),
            None
        );
        assert_eq!(model_for_quota_model_name("Cohere Command R"), None);
    }

    #[test]
    fn the_name_table_agrees_with_the_model_facts() {
        for row in quota_model_names() {
            if let Some(fact) = model_fact(row.model) {
                assert_eq!(fact.quota_display_name, row.name, "{}", row.model);
            }
        }
        let mut names: Vec<_> = quota_model_names()
            .iter()
            .map(|r| normalized(r.name))
            .collect();
        names.sort();
        names.dedup();
        assert_eq!(
            names.len(),
            quota_model_names().len(),
            "two rows spell one name"
        );
    }

    #[test]
    fn codes_are_service_quotas_codes() {
        for c in CODES {
            assert!(c.code.starts_with("L-") && c.code.len() == 10, "{c:?}");
        }
    }
}
