//! Which inference profiles could serve a model from another quota pool: the
//! Region's geographic profile for an in-Region id, the global profile for
//! recent Claude models. A leaf: the input (to list the ids a plan may price)
//! and the profile strategy both ask it.

use quarry_bedrock::quota::QuotaPool;
use quarry_bedrock::{base_model_id, claude_version, geo_of_region};

/// The inference profiles that could serve `model_id` from another pool: the
/// Region's geographic profile for an in-Region id, and the global profile
/// for Claude 4.5 and newer (CAPACITY.md §1: global profiles and their
/// prices are documented for recent Claude models).
pub(crate) fn profile_alternatives(model_id: &str, region: Option<&str>) -> Vec<String> {
    let base = base_model_id(model_id);
    let global = claude_version(base)
        .is_some_and(|v| v >= (4, 5))
        .then(|| format!("global.{base}"));
    match QuotaPool::of_model_id(model_id) {
        Some(QuotaPool::OnDemand) => region
            .and_then(geo_of_region)
            .map(|geo| format!("{geo}.{base}"))
            .into_iter()
            .chain(global)
            .collect(),
        Some(QuotaPool::CrossRegion) => global.into_iter().collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alternatives_by_pool() {
        assert_eq!(
            profile_alternatives(
                "anthropic.claude-sonnet-4-5-20250929-v1:0",
                Some("eu-west-1")
            ),
            [
                "eu.anthropic.claude-sonnet-4-5-20250929-v1:0",
                "global.anthropic.claude-sonnet-4-5-20250929-v1:0"
            ]
        );
        assert_eq!(
            profile_alternatives("us.anthropic.claude-opus-4-6-v1", None),
            ["global.anthropic.claude-opus-4-6-v1"]
        );
        assert_eq!(
            profile_alternatives("meta.llama3-3-70b-instruct-v1:0", Some("us-east-1")),
            ["us.meta.llama3-3-70b-instruct-v1:0"]
        );
        assert!(
            profile_alternatives("global.anthropic.claude-opus-4-6-v1", Some("us-east-1"))
                .is_empty()
        );
        assert!(profile_alternatives("anthropic.claude-3-5-haiku-20241022-v1:0", None).is_empty());
    }
}
