//! Model families: which native body format, stream chunk format and quota
//! rules a model id implies.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The provider family of a model, which fixes its InvokeModel body format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelFamily {
    /// Anthropic Claude (Messages API body with `anthropic_version`).
    Anthropic,
    /// Meta Llama (`prompt` / `generation` bodies).
    Llama,
    /// Amazon Nova (`messages-v1` schema, Converse-like).
    Nova,
    /// Amazon Titan Text (`inputText` / `results`).
    Titan,
}

impl ModelFamily {
    /// Every family, in a stable order.
    pub const ALL: [ModelFamily; 4] = [
        ModelFamily::Anthropic,
        ModelFamily::Llama,
        ModelFamily::Nova,
        ModelFamily::Titan,
    ];

    /// The family a model id names, looking through cross-region prefixes
    /// (`us.`, `global.` ...) and foundation-model or inference-profile ARNs.
    ///
    /// Returns `None` for ids that do not carry the base model (provisioned
    /// throughput and application inference profile ARNs): the caller must
    /// know the family from configuration.
    pub fn from_model_id(model_id: &str) -> Option<Self> {
        let base = base_model_id(model_id);
        if base.starts_with("anthropic.") {
            Some(ModelFamily::Anthropic)
        } else if base.starts_with("meta.llama") {
            Some(ModelFamily::Llama)
        } else if base.starts_with("amazon.nova") {
            Some(ModelFamily::Nova)
        } else if base.starts_with("amazon.titan-text") || base.starts_with("amazon.titan-tg1") {
            Some(ModelFamily::Titan)
        } else {
            None
        }
    }

    /// The lower-case name used in configuration and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelFamily::Anthropic => "anthropic",
            ModelFamily::Llama => "llama",
            ModelFamily::Nova => "nova",
            ModelFamily::Titan => "titan",
        }
    }
}

impl fmt::Display for ModelFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Cross-region inference profile prefixes (PROTOCOL.md §1.3, §5.4).
pub const GEO_PREFIXES: [&str; 7] = ["us-gov", "us", "eu", "apac", "jp", "au", "global"];

/// The base foundation-model id inside a model id: strips a geo prefix and the
/// ARN wrapper of `foundation-model/` and `inference-profile/` ARNs.
/// Other ids are returned unchanged.
pub fn base_model_id(model_id: &str) -> &str {
    let id = if model_id.starts_with("arn:") {
        match model_id.split_once(":foundation-model/") {
            Some((_, rest)) => rest,
            None => match model_id.split_once(":inference-profile/") {
                Some((_, rest)) => rest,
                None => return model_id,
            },
        }
    } else {
        model_id
    };
    for geo in GEO_PREFIXES {
        if let Some(rest) = id.strip_prefix(geo).and_then(|r| r.strip_prefix('.')) {
            return rest;
        }
    }
    id
}

/// The cross-region geography (`us`, `eu`, `global` ...) of a system-defined
/// inference profile id or inference-profile ARN; `None` for anything else.
pub fn geo_prefix(model_id: &str) -> Option<&'static str> {
    let id = match model_id.split_once(":inference-profile/") {
        Some((_, rest)) => rest,
        None if model_id.starts_with("arn:") => return None,
        None => model_id,
    };
    GEO_PREFIXES
        .into_iter()
        .find(|geo| id.strip_prefix(geo).is_some_and(|r| r.starts_with('.')))
}

/// The geography of a Region's geographic cross-Region profiles
/// (`us-east-1` → `us`, `eu-west-1` → `eu`, `ap-northeast-1` → `apac`);
/// `None` for a Region outside them.
pub fn geo_of_region(region: &str) -> Option<&'static str> {
    [
        ("us-gov-", "us-gov"),
        ("us-", "us"),
        ("eu-", "eu"),
        ("ap-", "apac"),
    ]
    .into_iter()
    .find(|(prefix, _)| region.starts_with(prefix))
    .map(|(_, geo)| geo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_from_ids() {
        let cases = [
            (
                "anthropic.claude-3-5-haiku-20241022-v1:0",
                Some(ModelFamily::Anthropic),
            ),
            (
                "us.anthropic.claude-3-5-sonnet-20241022-v2:0",
                Some(ModelFamily::Anthropic),
            ),
            (
                "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
                Some(ModelFamily::Anthropic),
            ),
            (
                "us-gov.anthropic.claude-3-haiku-20240307-v1:0",
                Some(ModelFamily::Anthropic),
            ),
            ("meta.llama3-3-70b-instruct-v1:0", Some(ModelFamily::Llama)),
            ("amazon.nova-pro-v1:0", Some(ModelFamily::Nova)),
            ("amazon.titan-text-express-v1", Some(ModelFamily::Titan)),
            (
                "arn:aws:bedrock:us-east-1::foundation-model/meta.llama3-3-70b-instruct-v1:0",
                Some(ModelFamily::Llama),
            ),
            (
                "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-lite-v1:0",
                Some(ModelFamily::Nova),
            ),
            (
                "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abcdefghijkl",
                None,
            ),
            ("cohere.command-r-v1:0", None),
        ];
        for (id, family) in cases {
            assert_eq!(ModelFamily::from_model_id(id), family, "{id}");
        }
    }

    #[test]
    fn geo_prefixes() {
        assert_eq!(
            geo_prefix("us.anthropic.claude-3-5-sonnet-20241022-v2:0"),
            Some("us")
        );
        assert_eq!(
            geo_prefix("us-gov.anthropic.claude-3-haiku-20240307-v1:0"),
            Some("us-gov")
        );
        assert_eq!(
            geo_prefix("global.anthropic.claude-sonnet-4-5-20250929-v1:0"),
            Some("global")
        );
        assert_eq!(
            geo_prefix("arn:aws:bedrock:us-east-1:1:inference-profile/eu.amazon.nova-lite-v1:0"),
            Some("eu")
        );
        assert_eq!(
            geo_prefix("arn:aws:bedrock:us-east-1::foundation-model/us.x"),
            None
        );
        assert_eq!(geo_prefix("meta.llama3-3-70b-instruct-v1:0"), None);
        assert_eq!(geo_prefix("usual.model"), None);
    }

    #[test]
    fn base_ids() {
        assert_eq!(
            base_model_id("us.anthropic.claude-3-5-sonnet-20241022-v2:0"),
            "anthropic.claude-3-5-sonnet-20241022-v2:0"
        );
        assert_eq!(
            base_model_id("meta.llama3-3-70b-instruct-v1:0"),
            "meta.llama3-3-70b-instruct-v1:0"
        );
    }
}
