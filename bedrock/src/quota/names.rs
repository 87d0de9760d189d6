//! Service Quotas names and codes of Bedrock's quotas: the name families
//! CAPACITY.md §1 lists, the model names Service Quotas spells in them, and
//! the few codes public sources quote. Names are for the quota request a
//! user files; check them in the Service Quotas console.

use serde::Serialize;

use super::facts::{
    Confidence, FactSource, HAIKU_4_5, QuotaMetric, QuotaPool, SONNET_4_5, model_fact,
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

/// The Service Quotas name of a quota (CAPACITY.md §1 name families), for a
/// model the built-in facts know by name; `None` for other models and for
/// combinations no family covers. Names come from secondary sources
/// ([`service_quota_name_source`]): check them in the Service Quotas console.
pub fn service_quota_name(model_id: &str, pool: QuotaPool, metric: QuotaMetric) -> Option<String> {
    let name = model_fact(model_id)?.quota_display_name;
    let family = match (pool, metric) {
        (QuotaPool::OnDemand, QuotaMetric::RequestsPerMinute) => {
            "On-demand model inference requests per minute for"
        }
        (QuotaPool::OnDemand, QuotaMetric::TokensPerMinute) => {
            "On-demand model inference tokens per minute for"
        }
        (QuotaPool::CrossRegion, QuotaMetric::RequestsPerMinute) => {
            "Cross-region model inference requests per minute for"
        }
        (QuotaPool::CrossRegion, QuotaMetric::TokensPerMinute) => {
            "Cross-region model inference tokens per minute for"
        }
        (QuotaPool::Global, QuotaMetric::TokensPerMinute) => {
            "Global cross-region model inference tokens per minute for"
        }
        (QuotaPool::Global, QuotaMetric::TokensPerDay) => {
            "Global cross-region model inference tokens per day for"
        }
        (QuotaPool::OnDemand | QuotaPool::CrossRegion, QuotaMetric::TokensPerDay) => {
            return Some(format!(
                "Model invocation max tokens per day for {name} (doubled for cross-region calls)"
            ));
        }
        (QuotaPool::Global, QuotaMetric::RequestsPerMinute) => return None,
    };
    Some(format!("{family} {name}"))
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
                "amazon.nova-pro-v1:0",
                QuotaPool::OnDemand,
                QuotaMetric::TokensPerMinute
            ),
            None
        );
    }

    #[test]
    fn codes_are_service_quotas_codes() {
        for c in CODES {
            assert!(c.code.starts_with("L-") && c.code.len() == 10, "{c:?}");
        }
    }
}
