//! Model identifiers: every form Bedrock Runtime accepts in the `{modelId}`
//! path label, how the SDKs percent-encode it on the way out and how the
//! simulator decodes it on the way in (PROTOCOL.md §1.3, §5.4, §5.5).

use std::fmt;
use std::str::FromStr;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{GEO_PREFIXES, ModelFamily};

mod arn;

use arn::{ArnFields, arn_kind, plain_kind};

/// The longest model id the service model accepts (`ConversationalModelId`).
pub const MAX_MODEL_ID_LEN: usize = 2048;

/// What botocore (`percent_encode`, safe `-._~`) and aws-sdk-rust
/// (`label::fmt_string`, `EncodingStrategy::Default`) leave unescaped in a URI
/// label: the RFC 3986 unreserved set. Both SDKs agree byte for byte, so one
/// set serves the agent and the simulator's expectations.
const LABEL_ENCODE_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Which of the accepted identifier forms a model id takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelIdKind {
    /// A base foundation-model id: `anthropic.claude-3-5-haiku-20241022-v1:0`.
    FoundationModel,
    /// A system-defined cross-Region profile id: `us.anthropic...`, `global.…`.
    CrossRegionProfile,
    /// `arn:aws:bedrock:{region}::foundation-model/{id}`.
    FoundationModelArn,
    /// `arn:aws:bedrock:{region}:{acct}:inference-profile/{id}`.
    InferenceProfileArn,
    /// `…:application-inference-profile/{id}`: a user-made wrapper whose id
    /// does not name the model.
    ApplicationInferenceProfileArn,
    /// `…:provisioned-model/{12 chars}`: Provisioned Throughput.
    ProvisionedModelArn,
    /// `…:custom-model/{base}/{12 chars}`.
    CustomModelArn,
    /// `…:custom-model-deployment/{12 chars}`.
    CustomModelDeploymentArn,
    /// `…:imported-model/{12 chars}`.
    ImportedModelArn,
    /// `…:prompt/{10 chars}[:version]` (Prompt management).
    PromptArn,
    /// `…:prompt-router/…` or `…:default-prompt-router/…`.
    PromptRouterArn,
    /// `arn:aws:sagemaker:{region}:{acct}:endpoint/{name}`.
    SageMakerEndpointArn,
    /// Any other string the service model's pattern admits (no vendor prefix).
    Other,
}

/// Why a string is not a model id Bedrock would accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelIdError {
    /// Empty, or longer than [`MAX_MODEL_ID_LEN`].
    #[error("model id must be 1..={MAX_MODEL_ID_LEN} bytes long, got {0}")]
    Length(usize),
    /// A character outside the service model's pattern.
    #[error("model id {id:?}: character {ch:?} at byte {offset} is not allowed")]
    InvalidCharacter {
        /// The whole id, for the message.
        id: String,
        /// The offending character.
        ch: char,
        /// Its byte offset.
        offset: usize,
    },
    /// An `arn:` whose structure is not one of the accepted ARN forms.
    #[error("model id {id:?} is not an accepted ARN: {reason}")]
    MalformedArn {
        /// The whole id.
        id: String,
        /// Which part is wrong.
        reason: &'static str,
    },
    /// A `%` not followed by two hex digits in the raw path segment.
    #[error("model id path segment {raw:?}: bad percent escape at byte {offset}")]
    BadEscape {
        /// The segment as received.
        raw: String,
        /// Byte offset of the `%`.
        offset: usize,
    },
    /// A raw `/` in the path segment: the router should have split there.
    #[error("model id path segment {0:?} contains a raw '/'")]
    RawSlash(String),
    /// The percent-decoded bytes are not UTF-8.
    #[error("model id path segment {0:?} does not decode to UTF-8")]
    InvalidUtf8(String),
}

/// A validated model identifier in any accepted form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModelId {
    /// The id exactly as the caller wrote it; this is what gets encoded.
    raw: String,
    /// Parsed once so the hot path never re-inspects the string.
    kind: ModelIdKind,
}

impl ModelId {
    /// Parses and validates `id` (length 1..=2048, the service model's
    /// `InvokeModelIdentifier`/`ConversationalModelId` pattern).
    pub fn parse(id: &str) -> Result<Self, ModelIdError> {
        if id.is_empty() || id.len() > MAX_MODEL_ID_LEN {
            return Err(ModelIdError::Length(id.len()));
        }
        let kind = if id.starts_with("arn:") {
            arn_kind(id)?
        } else {
            plain_kind(id)?
        };
        Ok(ModelId {
            raw: id.to_owned(),
            kind,
        })
    }

    /// Decodes the raw `{modelId}` path segment exactly once, as Bedrock does
    /// before routing: `%3A`→`:`, `%2F`→`/` (kept inside the id), a raw `:`
    /// (the Anthropic SDK's form) accepted as is. Then validates the result.
    pub fn decode_path_segment(raw: &str) -> Result<Self, ModelIdError> {
        let bytes = raw.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'%' => {
                    let hex = bytes.get(i + 1..i + 3).and_then(|h| {
                        let h = std::str::from_utf8(h).ok()?;
                        u8::from_str_radix(h, 16).ok()
                    });
                    // from_str_radix accepts a leading '+', which is no hex digit.
                    let Some(byte) = hex.filter(|_| bytes[i + 1] != b'+') else {
                        return Err(ModelIdError::BadEscape {
                            raw: raw.to_owned(),
                            offset: i,
                        });
                    };
                    out.push(byte);
                    i += 3;
                }
                b'/' => return Err(ModelIdError::RawSlash(raw.to_owned())),
                b => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        let decoded =
            String::from_utf8(out).map_err(|_| ModelIdError::InvalidUtf8(raw.to_owned()))?;
        ModelId::parse(&decoded)
    }

    /// The id as a URI label, encoded exactly as botocore and aws-sdk-rust do:
    /// everything but `A-Za-z0-9-._~` is percent-encoded (`:`→`%3A`, `/`→`%2F`).
    pub fn encode_path_segment(&self) -> String {
        utf8_percent_encode(&self.raw, LABEL_ENCODE_SET).to_string()
    }

    /// The id as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// Which accepted form this id takes.
    pub fn kind(&self) -> ModelIdKind {
        self.kind
    }

    /// The model family, when the id names its base model (see
    /// [`ModelFamily::from_model_id`]); `None` for provisioned, application
    /// profile and other opaque ARNs, whose family comes from configuration.
    pub fn family(&self) -> Option<ModelFamily> {
        match self.kind {
            ModelIdKind::FoundationModel
            | ModelIdKind::CrossRegionProfile
            | ModelIdKind::FoundationModelArn
            | ModelIdKind::InferenceProfileArn => ModelFamily::from_model_id(&self.raw),
            _ => None,
        }
    }

    /// The base foundation-model id inside this id, when it carries one.
    pub fn base_model_id(&self) -> Option<&str> {
        match self.kind {
            ModelIdKind::FoundationModel
            | ModelIdKind::CrossRegionProfile
            | ModelIdKind::FoundationModelArn => Some(crate::base_model_id(&self.raw)),
            ModelIdKind::InferenceProfileArn => {
                let base = crate::base_model_id(&self.raw);
                (base != self.raw).then_some(base)
            }
            _ => None,
        }
    }

    /// The cross-Region geography (`us`, `eu`, `apac`, `jp`, `au`, `us-gov`,
    /// `global`) of a system-defined inference profile, by id or by ARN.
    pub fn geo(&self) -> Option<&'static str> {
        let profile = match self.kind {
            ModelIdKind::CrossRegionProfile => self.raw.as_str(),
            ModelIdKind::InferenceProfileArn => self.arn_resource_id()?,
            _ => return None,
        };
        let (prefix, rest) = profile.split_once('.')?;
        GEO_PREFIXES
            .into_iter()
            .find(|geo| *geo == prefix && rest.contains('.'))
    }

    /// True for system-defined cross-Region inference profiles (which draw on
    /// the separate "Cross-Region … tokens per minute" quota, §5.1).
    pub fn is_cross_region_profile(&self) -> bool {
        self.geo().is_some()
    }

    /// True for Provisioned Throughput ARNs (§5.5).
    pub fn is_provisioned(&self) -> bool {
        self.kind == ModelIdKind::ProvisionedModelArn
    }

    /// The region field of an ARN id.
    pub fn arn_region(&self) -> Option<&str> {
        self.arn_fields().map(|f| f.region)
    }

    /// The account field of an ARN id (empty for foundation-model ARNs).
    pub fn arn_account(&self) -> Option<&str> {
        self.arn_fields().map(|f| f.account)
    }

    /// The part of an ARN's resource after `{type}/`.
    pub fn arn_resource_id(&self) -> Option<&str> {
        self.arn_fields()
            .and_then(|f| f.resource.split_once('/'))
            .map(|(_, id)| id)
    }

    fn arn_fields(&self) -> Option<ArnFields<'_>> {
        if self.raw.starts_with("arn:") {
            ArnFields::split(&self.raw)
        } else {
            None
        }
    }
}

impl fmt::Display for ModelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl FromStr for ModelId {
    type Err = ModelIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ModelId::parse(s)
    }
}

impl AsRef<str> for ModelId {
    fn as_ref(&self) -> &str {
        &self.raw
    }
}

impl Serialize for ModelId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.raw)
    }
}

impl<'de> Deserialize<'de> for ModelId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        ModelId::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> ModelId {
        ModelId::parse(s).unwrap()
    }

    #[test]
    fn encoding_table_from_protocol_1_3() {
        assert_eq!(
            id("us.anthropic.claude-3-5-sonnet-20241022-v2:0").encode_path_segment(),
            "us.anthropic.claude-3-5-sonnet-20241022-v2%3A0"
        );
        assert_eq!(
            id("arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123")
                .encode_path_segment(),
            "arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Aapplication-inference-profile%2Fabc123"
        );
    }

    #[test]
    fn encoding_keeps_only_unreserved() {
        // A string outside the model-id alphabet, to exercise the set itself.
        let encoded = utf8_percent_encode("a-b._~ :/,+é", LABEL_ENCODE_SET).to_string();
        assert_eq!(encoded, "a-b._~%20%3A%2F%2C%2B%C3%A9");
    }

    #[test]
    fn decoding_is_exactly_once() {
        let sdk =
            ModelId::decode_path_segment("us.anthropic.claude-3-5-sonnet-20241022-v2%3A0").unwrap();
        let raw_colon =
            ModelId::decode_path_segment("us.anthropic.claude-3-5-sonnet-20241022-v2:0").unwrap();
        assert_eq!(sdk, raw_colon);
        assert_eq!(sdk.as_str(), "us.anthropic.claude-3-5-sonnet-20241022-v2:0");
        // Double-encoded input decodes once, leaving a '%' that is not a valid id char.
        assert!(matches!(
            ModelId::decode_path_segment("anthropic.claude-v2%253A1"),
            Err(ModelIdError::InvalidCharacter { ch: '%', .. })
        ));
        let arn = ModelId::decode_path_segment(
            "arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Aapplication-inference-profile%2Fabc123",
        )
        .unwrap();
        assert_eq!(arn.kind(), ModelIdKind::ApplicationInferenceProfileArn);
        assert_eq!(arn.arn_resource_id(), Some("abc123"));
        assert_eq!(
            arn.encode_path_segment(),
            "arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Aapplication-inference-profile%2Fabc123"
        );
    }

    #[test]
    fn decoding_errors() {
        for (raw, offset) in [("abc%2", 3), ("abc%zz", 3), ("a%+1b", 1), ("%", 0)] {
            assert_eq!(
                ModelId::decode_path_segment(raw),
                Err(ModelIdError::BadEscape {
                    raw: raw.to_owned(),
                    offset
                }),
                "{raw}"
            );
        }
        assert!(matches!(
            ModelId::decode_path_segment("abc%FFdef"),
            Err(ModelIdError::InvalidUtf8(_))
        ));
        assert!(matches!(
            ModelId::decode_path_segment("arn:aws:bedrock:us-east-1::foundation-model/x.y"),
            Err(ModelIdError::RawSlash(_))
        ));
    }

    #[test]
    fn kinds_geos_and_families() {
        let cases: [(&str, ModelIdKind, Option<&str>, Option<ModelFamily>); 14] = [
            (
                "anthropic.claude-3-5-haiku-20241022-v1:0",
                ModelIdKind::FoundationModel,
                None,
                Some(ModelFamily::Anthropic),
            ),
            (
                "us.anthropic.claude-3-5-sonnet-20241022-v2:0",
                ModelIdKind::CrossRegionProfile,
                Some("us"),
                Some(ModelFamily::Anthropic),
            ),
            (
                "us-gov.anthropic.claude-3-haiku-20240307-v1:0",
                ModelIdKind::CrossRegionProfile,
                Some("us-gov"),
                Some(ModelFamily::Anthropic),
            ),
            (
                "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
                ModelIdKind::CrossRegionProfile,
                Some("global"),
                Some(ModelFamily::Anthropic),
            ),
            (
                "apac.amazon.nova-pro-v1:0",
                ModelIdKind::CrossRegionProfile,
                Some("apac"),
                Some(ModelFamily::Nova),
            ),
            (
                "jp.amazon.nova-lite-v1:0",
                ModelIdKind::CrossRegionProfile,
                Some("jp"),
                Some(ModelFamily::Nova),
            ),
            (
                "amazon.titan-text-express-v1",
                ModelIdKind::FoundationModel,
                None,
                Some(ModelFamily::Titan),
            ),
            (
                "arn:aws:bedrock:us-west-2::foundation-model/meta.llama3-3-70b-instruct-v1:0",
                ModelIdKind::FoundationModelArn,
                None,
                Some(ModelFamily::Llama),
            ),
            (
                "arn:aws:bedrock:us-east-1:123456789012:inference-profile/eu.amazon.nova-micro-v1:0",
                ModelIdKind::InferenceProfileArn,
                Some("eu"),
                Some(ModelFamily::Nova),
            ),
            (
                "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abcdefghijkl",
                ModelIdKind::ProvisionedModelArn,
                None,
                None,
            ),
            (
                "arn:aws-us-gov:bedrock:us-gov-west-1:123456789012:imported-model/abcdefghijk1",
                ModelIdKind::ImportedModelArn,
                None,
                None,
            ),
            (
                "arn:aws:bedrock:us-east-1:123456789012:prompt/ABCDEFGHIJ:12",
                ModelIdKind::PromptArn,
                None,
                None,
            ),
            (
                "arn:aws:sagemaker:us-east-1:123456789012:endpoint/my-endpoint",
                ModelIdKind::SageMakerEndpointArn,
                None,
                None,
            ),
            ("my_imported-model", ModelIdKind::Other, None, None),
        ];
        for (raw, kind, geo, family) in cases {
            let m = id(raw);
            assert_eq!(m.kind(), kind, "{raw}");
            assert_eq!(m.geo(), geo, "{raw}");
            assert_eq!(m.is_cross_region_profile(), geo.is_some(), "{raw}");
            assert_eq!(m.family(), family, "{raw}");
            assert_eq!(m.is_provisioned(), kind == ModelIdKind::ProvisionedModelArn);
        }
        let arn = id("arn:aws:bedrock:eu-west-1::foundation-model/amazon.nova-pro-v1:0");
        assert_eq!(arn.arn_region(), Some("eu-west-1"));
        assert_eq!(arn.arn_account(), Some(""));
        assert_eq!(arn.base_model_id(), Some("amazon.nova-pro-v1:0"));
    }

    #[test]
    fn rejects_what_the_pattern_rejects() {
        assert_eq!(ModelId::parse(""), Err(ModelIdError::Length(0)));
        assert_eq!(
            ModelId::parse(&"a".repeat(2049)),
            Err(ModelIdError::Length(2049))
        );
        assert!(ModelId::parse(&"a".repeat(2048)).is_ok());
        for bad in [
            "anthropic claude",
            "a__b",
            "us.anthropic.x_y",
            "arn:aws:bedrock:us-east-1:123:provisioned-model/abcdefghijkl",
            "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/ABCDEFGHIJKL",
            "arn:aws:bedrock:us-east-1:123456789012::foundation-model/x.y",
            "arn:aws:bedrock:us-east-1:123456789012:knowledge-base/abc",
            "arn:aws:s3:::bucket/key",
            "arn:gcp:bedrock:us-east-1::foundation-model/x.y",
        ] {
            assert!(ModelId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn serde_and_from_str() {
        let m: ModelId = serde_json::from_str("\"amazon.nova-pro-v1:0\"").unwrap();
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            "\"amazon.nova-pro-v1:0\""
        );
        assert!(serde_json::from_str::<ModelId>("\"a b\"").is_err());
        assert_eq!("amazon.nova-pro-v1:0".parse::<ModelId>().unwrap(), m);
    }

    proptest::proptest! {
        #[test]
        fn encode_then_decode_is_identity(raw in "[a-zA-Z0-9.:-]{1,80}") {
            let m = ModelId::parse(&raw).unwrap();
            let back = ModelId::decode_path_segment(&m.encode_path_segment()).unwrap();
            proptest::prop_assert_eq!(back, m);
        }
    }
}
