//! Amazon Nova's native InvokeModel bodies: the `messages-v1` schema, close to
//! Converse but with its own `inferenceConfig` and `…TokenCount` cache fields
//! (PROTOCOL.md §2.4, §5.8).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::fields::{Fields, MalformedInput};
use crate::TokenUsage;
use crate::converse::{ConverseOutput, Message, StopReason, SystemContentBlock};

/// The `schemaVersion` Nova documents.
pub const NOVA_SCHEMA_VERSION: &str = "messages-v1";

/// Nova's `inferenceConfig` (native names; `topK`/`reasoningConfig` live
/// here rather than in `additionalModelRequestFields`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NovaInferenceConfig {
    /// Output cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Output cap, Nova 1's older spelling.
    #[serde(
        default,
        rename = "max_new_tokens",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_new_tokens: Option<u32>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// Top-k sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    /// Stop sequences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<String>>,
    /// Nova 2 reasoning settings, raw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_config: Option<Value>,
}

/// The InvokeModel request body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NovaRequest {
    /// `messages-v1`; optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_version: Option<String>,
    /// System prompt blocks (`text`, `cachePoint`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub system: Vec<SystemContentBlock>,
    /// The conversation, Converse-shaped (binary data base64).
    pub messages: Vec<Message>,
    /// Generation parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inference_config: Option<NovaInferenceConfig>,
    /// Tool configuration, raw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_config: Option<Value>,
}

pub(crate) const REQUEST_KEYS: [&str; 5] = [
    "schemaVersion",
    "system",
    "messages",
    "inferenceConfig",
    "toolConfig",
];

impl NovaRequest {
    /// Validates and decodes a body: `messages` required, no unknown key.
    pub fn parse(body: &[u8]) -> Result<Self, MalformedInput> {
        let mut f = Fields::parse(body, &["messages"], &REQUEST_KEYS)?;
        Ok(NovaRequest {
            schema_version: f.optional("schemaVersion")?,
            system: f.list("system")?,
            messages: f.required("messages")?,
            inference_config: f.optional("inferenceConfig")?,
            tool_config: f.optional("toolConfig")?,
        })
    }

    /// The output cap under either spelling.
    pub fn max_tokens(&self) -> Option<u32> {
        let c = self.inference_config.as_ref()?;
        c.max_tokens.or(c.max_new_tokens)
    }
}

/// Nova's `usage`: Converse names, except the cache counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NovaUsage {
    /// Input tokens excluding cache reads and writes.
    pub input_tokens: u64,
    /// Generated tokens.
    pub output_tokens: u64,
    /// `inputTokens + outputTokens`.
    pub total_tokens: u64,
    /// Tokens read from the prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_token_count: Option<u64>,
    /// Tokens written to the prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_input_token_count: Option<u64>,
}

impl NovaUsage {
    /// In the crate's vocabulary.
    pub fn to_usage(self) -> TokenUsage {
        TokenUsage {
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cache_read_input_tokens: self.cache_read_input_token_count.unwrap_or(0),
            cache_write_input_tokens: self.cache_write_input_token_count.unwrap_or(0),
        }
    }

    /// The wire form, cache counts always present.
    pub fn from_usage(u: &TokenUsage) -> Self {
        NovaUsage {
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            total_tokens: u.total_tokens(),
            cache_read_input_token_count: Some(u.cache_read_input_tokens),
            cache_write_input_token_count: Some(u.cache_write_input_tokens),
        }
    }
}

/// The InvokeModel response body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NovaResponse {
    /// The generated message.
    pub output: ConverseOutput,
    /// Why generation stopped (Converse values).
    pub stop_reason: StopReason,
    /// Token counts.
    pub usage: NovaUsage,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_from_protocol_2_4() {
        let body = r#"{"output":{"message":{"role":"assistant","content":[{"text":"Hi"}]}},"stopReason":"end_turn","usage":{"inputTokens":42,"outputTokens":128,"totalTokens":170,"cacheReadInputTokenCount":0,"cacheWriteInputTokenCount":0}}"#;
        let r: NovaResponse = serde_json::from_str(body).unwrap();
        assert_eq!(r.stop_reason, StopReason::EndTurn);
        assert_eq!(r.output.message.text(), "Hi");
        assert_eq!(r.usage.to_usage().input_tokens, 42);
        assert_eq!(r.usage.to_usage().output_tokens, 128);
        assert_eq!(serde_json::to_string(&r).unwrap(), body);
        let cached: NovaUsage = serde_json::from_str(
            r#"{"inputTokens":1,"outputTokens":2,"totalTokens":3,"cacheReadInputTokenCount":1536}"#,
        )
        .unwrap();
        assert_eq!(cached.to_usage().cache_read_input_tokens, 1536);
    }

    #[test]
    fn request() {
        let body = br#"{"schemaVersion":"messages-v1","system":[{"text":"sys"}],"messages":[{"role":"user","content":[{"text":"a"},{"cachePoint":{"type":"default"}},{"image":{"format":"png","source":{"bytes":"AAE="}}}]}],"inferenceConfig":{"maxTokens":512,"temperature":0.7,"topP":0.9,"topK":20}}"#;
        let r = NovaRequest::parse(body).unwrap();
        assert_eq!(r.max_tokens(), Some(512));
        assert_eq!(serde_json::to_vec(&r).unwrap(), body);
        let old = NovaRequest::parse(br#"{"messages":[],"inferenceConfig":{"max_new_tokens":9}}"#)
            .unwrap();
        assert_eq!(old.max_tokens(), Some(9));
        let err =
            NovaRequest::parse(br#"{"messages":[{"role":"user","content":[{"cachePoint":{}}]}]}"#)
                .unwrap_err();
        assert!(
            err.detail
                .starts_with("#/messages: ContentBlock.cachePoint: "),
            "{}",
            err.detail
        );
    }
}
