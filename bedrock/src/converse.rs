//! Converse, ConverseStream and CountTokens bodies, in the service model's
//! camelCase JSON (PROTOCOL.md §2.1–2.3). Field order follows the botocore
//! model so a request built field by field serializes as the SDKs send it.

mod content;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

pub use content::{
    Blob, CachePointBlock, CachePointType, CacheTtl, ContentBlock, DocumentBlock, DocumentSource,
    ImageBlock, MediaSource, Message, Role, S3Location, SystemContentBlock, ToolResultBlock,
    ToolUseBlock,
};

use crate::TokenUsage;

/// `InferenceConfiguration`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InferenceConfiguration {
    /// At least 1; absent means the model's maximum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// 0..=1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// 0..=1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// Up to 2500 (model limits are lower).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop_sequences: Vec<String>,
}

/// `PerformanceConfigLatency` (§5.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PerformanceLatency {
    /// The default.
    Standard,
    /// Latency-optimized inference.
    Optimized,
}

/// `PerformanceConfiguration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PerformanceConfiguration {
    /// Requested (or, in a response, used) latency mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<PerformanceLatency>,
}

/// `ServiceTierType` (§5.7). Ordered as declared (used in series keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceTierType {
    /// Ahead of standard and flex.
    Priority,
    /// Standard.
    Default,
    /// Discounted, may queue.
    Flex,
    /// Reserved capacity.
    Reserved,
}

impl ServiceTierType {
    /// Every tier, in the service model's order.
    pub const ALL: [ServiceTierType; 4] = [
        ServiceTierType::Priority,
        ServiceTierType::Default,
        ServiceTierType::Flex,
        ServiceTierType::Reserved,
    ];

    /// The wire value (`priority`, `default`, `flex`, `reserved`): the
    /// `serviceTier.type` member and the `X-Amzn-Bedrock-Service-Tier` header.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceTierType::Priority => "priority",
            ServiceTierType::Default => "default",
            ServiceTierType::Flex => "flex",
            ServiceTierType::Reserved => "reserved",
        }
    }

    /// The tier a wire value names; `None` for anything else (values are
    /// case-sensitive, as the service model's enum is).
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == value)
    }
}

impl fmt::Display for ServiceTierType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `ServiceTier`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ServiceTier {
    /// The tier.
    #[serde(rename = "type")]
    pub kind: ServiceTierType,
}

/// The body of `Converse` and `ConverseStream` (the model id is in the URI).
///
/// Members Quarry does not generate (tools, guardrails, prompt variables,
/// output config) are kept as raw JSON so the simulator accepts them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseRequest {
    /// The conversation; required unless the model id is a prompt ARN.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<Message>,
    /// System prompt blocks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub system: Vec<SystemContentBlock>,
    /// Max tokens, temperature, top-p, stop sequences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inference_config: Option<InferenceConfiguration>,
    /// `ToolConfiguration`, raw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_config: Option<Value>,
    /// `GuardrailConfiguration` (or the stream variant), raw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guardrail_config: Option<Value>,
    /// Model-specific fields passed through (`{"top_k": 200}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_model_request_fields: Option<Value>,
    /// Only with a prompt ARN, raw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_variables: Option<Value>,
    /// JSON pointers into the model's native response to return.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_model_response_field_paths: Vec<String>,
    /// Key-value pairs for invocation logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_metadata: Option<BTreeMap<String, String>>,
    /// Latency-optimized inference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub performance_config: Option<PerformanceConfiguration>,
    /// Priority / flex / reserved tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<ServiceTier>,
    /// `OutputConfig` (structured output, effort), raw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_config: Option<Value>,
}

impl ConverseRequest {
    /// The compact JSON body.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        self.write_json(&mut out);
        out
    }

    /// Appends the compact JSON body to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        // unwrap is safe because writing to a Vec cannot fail and every member
        // serializes to JSON infallibly: map keys are strings and serde_json
        // writes non-finite floats as null.
        serde_json::to_writer(out, self).unwrap();
    }
}

/// `StopReason`. Open-ended: values newer than this build are kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StopReason {
    /// `end_turn`.
    EndTurn,
    /// `tool_use`.
    ToolUse,
    /// `max_tokens`.
    MaxTokens,
    /// `stop_sequence`.
    StopSequence,
    /// `guardrail_intervened`.
    GuardrailIntervened,
    /// `content_filtered`.
    ContentFiltered,
    /// `malformed_model_output`.
    MalformedModelOutput,
    /// `malformed_tool_use`.
    MalformedToolUse,
    /// `model_context_window_exceeded`.
    ModelContextWindowExceeded,
    /// A value this build does not know.
    Other(String),
}

impl StopReason {
    const KNOWN: [(StopReason, &'static str); 9] = [
        (StopReason::EndTurn, "end_turn"),
        (StopReason::ToolUse, "tool_use"),
        (StopReason::MaxTokens, "max_tokens"),
        (StopReason::StopSequence, "stop_sequence"),
        (StopReason::GuardrailIntervened, "guardrail_intervened"),
        (StopReason::ContentFiltered, "content_filtered"),
        (StopReason::MalformedModelOutput, "malformed_model_output"),
        (StopReason::MalformedToolUse, "malformed_tool_use"),
        (
            StopReason::ModelContextWindowExceeded,
            "model_context_window_exceeded",
        ),
    ];

    /// The wire value.
    pub fn as_str(&self) -> &str {
        match self {
            StopReason::Other(s) => s,
            known => StopReason::KNOWN
                .iter()
                .find(|(r, _)| r == known)
                .map_or("", |(_, s)| s),
        }
    }

    /// The reason for a wire value (unknown values become [`StopReason::Other`]).
    pub fn from_wire(s: &str) -> Self {
        StopReason::KNOWN
            .iter()
            .find(|(_, w)| *w == s)
            .map_or_else(|| StopReason::Other(s.to_owned()), |(r, _)| r.clone())
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for StopReason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for StopReason {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(StopReason::from_wire(&String::deserialize(d)?))
    }
}

/// `CacheDetail`: cache writes per TTL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheDetail {
    /// The TTL these tokens were written with.
    pub ttl: CacheTtl,
    /// Tokens written with that TTL.
    pub input_tokens: u64,
}

/// `TokenUsage` as Converse sends it (camelCase, with `totalTokens`). Convert
/// with [`ConverseUsage::to_usage`] / [`ConverseUsage::from_usage`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseUsage {
    /// Billed input tokens (cache reads and writes excluded).
    pub input_tokens: u64,
    /// Generated tokens.
    pub output_tokens: u64,
    /// `inputTokens + outputTokens`.
    pub total_tokens: u64,
    /// Tokens read from the prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
    /// Tokens written to the prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_input_tokens: Option<u64>,
    /// Cache writes by TTL, 1h before 5m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_details: Option<Vec<CacheDetail>>,
}

impl ConverseUsage {
    /// The crate's usage vocabulary (absent cache counts are zero).
    pub fn to_usage(&self) -> TokenUsage {
        TokenUsage {
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cache_read_input_tokens: self.cache_read_input_tokens.unwrap_or(0),
            cache_write_input_tokens: self.cache_write_input_tokens.unwrap_or(0),
        }
    }

    /// The wire form Bedrock sends: cache counts always present, no details.
    pub fn from_usage(usage: &TokenUsage) -> Self {
        ConverseUsage {
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            total_tokens: usage.total_tokens(),
            cache_read_input_tokens: Some(usage.cache_read_input_tokens),
            cache_write_input_tokens: Some(usage.cache_write_input_tokens),
            cache_details: None,
        }
    }
}

/// `ConverseMetrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseMetrics {
    /// Server-side latency in milliseconds.
    pub latency_ms: u64,
}

/// `ConverseOutput`: a union whose only member is `message`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConverseOutput {
    /// The assistant's reply.
    pub message: Message,
}

/// The body of a `Converse` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseResponse {
    /// The generated message.
    pub output: ConverseOutput,
    /// Why generation stopped.
    pub stop_reason: StopReason,
    /// Token counts.
    pub usage: ConverseUsage,
    /// Server latency.
    pub metrics: ConverseMetrics,
    /// Native response fields requested by path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_model_response_fields: Option<Value>,
    /// Guardrail and prompt-router traces, raw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<Value>,
    /// The latency mode actually used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub performance_config: Option<PerformanceConfiguration>,
    /// The tier actually used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<ServiceTier>,
}

impl ConverseResponse {
    /// The reply's text (text blocks joined).
    pub fn text(&self) -> String {
        self.output.message.text()
    }
}

/// `ConverseTokensRequest`: the Converse variant of CountTokens input.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseTokensRequest {
    /// The conversation to count.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<Message>,
    /// System prompt blocks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub system: Vec<SystemContentBlock>,
    /// `ToolConfiguration`, raw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_config: Option<Value>,
    /// Model-specific fields, raw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_model_request_fields: Option<Value>,
}

impl From<&ConverseRequest> for ConverseTokensRequest {
    fn from(r: &ConverseRequest) -> Self {
        ConverseTokensRequest {
            messages: r.messages.clone(),
            system: r.system.clone(),
            tool_config: r.tool_config.clone(),
            additional_model_request_fields: r.additional_model_request_fields.clone(),
        }
    }
}

/// `InvokeModelTokensRequest`: a native InvokeModel body, base64 on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvokeModelTokensRequest {
    /// The native body bytes.
    pub body: Blob,
}

/// `CountTokensInput`: a union of the two request shapes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CountTokensInput {
    /// Count an InvokeModel native body.
    InvokeModel(InvokeModelTokensRequest),
    /// Count a Converse request.
    Converse(ConverseTokensRequest),
}

/// The body of `CountTokens`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CountTokensRequest {
    /// What to count.
    pub input: CountTokensInput,
}

impl CountTokensRequest {
    /// The compact JSON body.
    pub fn to_vec(&self) -> Vec<u8> {
        // unwrap is safe because every member serializes to JSON infallibly.
        serde_json::to_vec(self).unwrap()
    }
}

/// The body of a `CountTokens` response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CountTokensResponse {
    /// Input tokens the request would use.
    pub input_tokens: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_94_byte_body() {
        let req = ConverseRequest {
            messages: vec![Message::user_text("Hello")],
            inference_config: Some(InferenceConfiguration {
                max_tokens: Some(64),
                ..Default::default()
            }),
            ..Default::default()
        };
        let body = req.to_vec();
        assert_eq!(
            body,
            br#"{"messages":[{"role":"user","content":[{"text":"Hello"}]}],"inferenceConfig":{"maxTokens":64}}"#
        );
        assert_eq!(body.len(), 94);
    }

    #[test]
    fn stop_reasons() {
        for (reason, wire) in StopReason::KNOWN {
            assert_eq!(StopReason::from_wire(wire), reason);
            assert_eq!(reason.as_str(), wire);
        }
        let r: StopReason = serde_json::from_str("\"pause_turn\"").unwrap();
        assert_eq!(r, StopReason::Other("pause_turn".to_owned()));
        assert_eq!(serde_json::to_string(&r).unwrap(), "\"pause_turn\"");
    }

    #[test]
    fn usage_conversions() {
        let u = TokenUsage {
            input_tokens: 3,
            output_tokens: 4,
            cache_read_input_tokens: 5,
            cache_write_input_tokens: 6,
        };
        let wire = ConverseUsage::from_usage(&u);
        assert_eq!(wire.total_tokens, 7);
        assert_eq!(wire.to_usage(), u);
        let bare: ConverseUsage = serde_json::from_str(
            r#"{"inputTokens":1,"outputTokens":2,"totalTokens":3,"serverToolUsage":{}}"#,
        )
        .unwrap();
        assert_eq!(bare.to_usage().cache_read_input_tokens, 0);
        assert!(
            serde_json::from_str::<ConverseUsage>(r#"{"inputTokens":1,"outputTokens":2}"#).is_err()
        );
    }

    #[test]
    fn count_tokens_variants() {
        let b64 = r#"{"input":{"invokeModel":{"body":"eyJhIjoxfQ=="}}}"#;
        let req: CountTokensRequest = serde_json::from_str(b64).unwrap();
        assert_eq!(
            req.input,
            CountTokensInput::InvokeModel(InvokeModelTokensRequest {
                body: Blob(br#"{"a":1}"#.to_vec())
            })
        );
        assert_eq!(req.to_vec(), b64.as_bytes());
        let conv =
            r#"{"input":{"converse":{"messages":[{"role":"user","content":[{"text":"x"}]}]}}}"#;
        let req: CountTokensRequest = serde_json::from_str(conv).unwrap();
        assert_eq!(req.to_vec(), conv.as_bytes());
        assert!(serde_json::from_str::<CountTokensRequest>(r#"{"input":{}}"#).is_err());
    }
}
