//! Anthropic Claude's native InvokeModel bodies: the Messages API with
//! `anthropic_version`, no `model` and no `stream` (PROTOCOL.md §2.4, §5.8).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::fields::{Fields, MalformedInput};
use crate::TokenUsage;
use crate::converse::Role;

/// The only `anthropic_version` Bedrock accepts.
pub const ANTHROPIC_VERSION: &str = "bedrock-2023-05-31";

/// `cache_control` on a content block: `{"type":"ephemeral"[,"ttl":"1h"]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheControl {
    /// Always `ephemeral`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `5m` (default) or `1h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
}

impl CacheControl {
    /// `{"type":"ephemeral"}` with an optional TTL.
    pub fn ephemeral(ttl: Option<&str>) -> Self {
        CacheControl {
            kind: "ephemeral".to_owned(),
            ttl: ttl.map(str::to_owned),
        }
    }
}

/// A content block (`text`, `image`, `tool_use`, `thinking`, ...). The fields
/// Quarry reads are typed; the rest of each kind is kept verbatim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnthropicBlock {
    /// The block kind.
    #[serde(rename = "type")]
    pub kind: String,
    /// The text of a `text` block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Prompt-cache breakpoint after this block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<CacheControl>,
    /// Every other member of the block (`source`, `id`, `input`, ...).
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

impl AnthropicBlock {
    /// A `text` block.
    pub fn text(text: impl Into<String>) -> Self {
        AnthropicBlock {
            kind: "text".to_owned(),
            text: Some(text.into()),
            cache_control: None,
            rest: Map::new(),
        }
    }
}

/// A message's (or the system prompt's) content: a string or blocks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AnthropicContent {
    /// Shorthand for one text block.
    Text(String),
    /// Content blocks.
    Blocks(Vec<AnthropicBlock>),
}

impl AnthropicContent {
    /// Every text, joined.
    pub fn text(&self) -> String {
        match self {
            AnthropicContent::Text(t) => t.clone(),
            AnthropicContent::Blocks(b) => b.iter().filter_map(|b| b.text.as_deref()).collect(),
        }
    }
}

/// One turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnthropicMessage {
    /// `user` or `assistant`.
    pub role: Role,
    /// The turn's content.
    pub content: AnthropicContent,
}

/// The InvokeModel request body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnthropicRequest {
    /// Must be [`ANTHROPIC_VERSION`].
    pub anthropic_version: String,
    /// Beta flags (in the body on Bedrock, not a header).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub anthropic_beta: Vec<String>,
    /// Required.
    pub max_tokens: u32,
    /// System prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<AnthropicContent>,
    /// The conversation.
    pub messages: Vec<AnthropicMessage>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// Top-k sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    /// Custom stop sequences.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop_sequences: Vec<String>,
    /// Tool definitions, raw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Value>,
    /// Tool choice, raw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    /// Extended thinking, raw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<Value>,
    /// Request metadata, raw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// Output configuration (effort, format), raw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_config: Option<Value>,
}

/// Top-level keys the body may carry; anything else is "extraneous".
pub(crate) const REQUEST_KEYS: [&str; 14] = [
    "anthropic_version",
    "anthropic_beta",
    "max_tokens",
    "system",
    "messages",
    "temperature",
    "top_p",
    "top_k",
    "stop_sequences",
    "tools",
    "tool_choice",
    "thinking",
    "metadata",
    "output_config",
];

impl AnthropicRequest {
    /// Validates and decodes a body as Bedrock does: `anthropic_version`
    /// (exactly `bedrock-2023-05-31`), `max_tokens` and `messages` required,
    /// no unknown top-level key (`model`, `stream` are rejected).
    pub fn parse(body: &[u8]) -> Result<Self, MalformedInput> {
        let mut f = Fields::parse(
            body,
            &["anthropic_version", "max_tokens", "messages"],
            &REQUEST_KEYS,
        )?;
        let anthropic_version: String = f.required("anthropic_version")?;
        if anthropic_version != ANTHROPIC_VERSION {
            return Err(MalformedInput::at(
                "anthropic_version",
                format_args!("{anthropic_version} is not a valid enum value"),
            ));
        }
        let max_tokens: u32 = f.required("max_tokens")?;
        if max_tokens == 0 {
            return Err(MalformedInput::at(
                "max_tokens",
                "0 is not greater or equal to 1",
            ));
        }
        Ok(AnthropicRequest {
            anthropic_version,
            anthropic_beta: f.list("anthropic_beta")?,
            max_tokens,
            system: f.optional("system")?,
            messages: f.required("messages")?,
            temperature: f.optional("temperature")?,
            top_p: f.optional("top_p")?,
            top_k: f.optional("top_k")?,
            stop_sequences: f.list("stop_sequences")?,
            tools: f.optional("tools")?,
            tool_choice: f.optional("tool_choice")?,
            thinking: f.optional("thinking")?,
            metadata: f.optional("metadata")?,
            output_config: f.optional("output_config")?,
        })
    }
}

/// `usage.cache_creation`: cache writes by TTL.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnthropicCacheCreation {
    /// Written with the 5-minute TTL.
    #[serde(default)]
    pub ephemeral_5m_input_tokens: u64,
    /// Written with the 1-hour TTL.
    #[serde(default)]
    pub ephemeral_1h_input_tokens: u64,
}

/// The response's `usage`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnthropicUsage {
    /// Input tokens excluding cache reads and writes.
    pub input_tokens: u64,
    /// Tokens written to the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u64>,
    /// Tokens read from the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
    /// Cache writes by TTL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation: Option<AnthropicCacheCreation>,
    /// Generated tokens.
    pub output_tokens: u64,
}

impl AnthropicUsage {
    /// In the crate's vocabulary.
    pub fn to_usage(self) -> TokenUsage {
        TokenUsage {
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cache_read_input_tokens: self.cache_read_input_tokens.unwrap_or(0),
            cache_write_input_tokens: self.cache_creation_input_tokens.unwrap_or(0),
        }
    }
}

/// The InvokeModel response body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnthropicResponse {
    /// `msg_bdrk_…`.
    pub id: String,
    /// Always `message`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Always `assistant`.
    pub role: Role,
    /// The model's own name (`claude-sonnet-4-5-20250929`).
    pub model: String,
    /// Generated blocks.
    pub content: Vec<AnthropicBlock>,
    /// `end_turn | max_tokens | stop_sequence | tool_use | …`; sent as `null`
    /// when absent, as Bedrock does.
    #[serde(default)]
    pub stop_reason: Option<String>,
    /// The stop sequence hit, or `null`.
    #[serde(default)]
    pub stop_sequence: Option<String>,
    /// Token counts.
    pub usage: AnthropicUsage,
}

impl AnthropicResponse {
    /// The text blocks joined.
    pub fn text(&self) -> String {
        self.content
            .iter()
            .filter_map(|b| b.text.as_deref())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_response_from_protocol_2_4() {
        let body = r#"{"id":"msg_bdrk_012GBPzpcoMCLP1b2pcJsSHk","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[{"type":"text","text":"Hi! 👋 How are you doing today?"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":10,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0},"output_tokens":15}}"#;
        let r: AnthropicResponse = serde_json::from_str(body).unwrap();
        assert_eq!(r.stop_reason.as_deref(), Some("end_turn"));
        assert_eq!(r.text(), "Hi! 👋 How are you doing today?");
        assert_eq!(r.usage.to_usage().input_tokens, 10);
        assert_eq!(r.usage.to_usage().output_tokens, 15);
        // Field order and nulls are Bedrock's, so the bytes survive a round trip.
        assert_eq!(serde_json::to_string(&r).unwrap(), body);
    }

    #[test]
    fn parses_a_full_request() {
        let body = br#"{"anthropic_version":"bedrock-2023-05-31","max_tokens":1024,"system":[{"type":"text","text":"Be brief.","cache_control":{"type":"ephemeral","ttl":"1h"}}],"messages":[{"role":"user","content":[{"type":"text","text":"Hello"},{"type":"image","source":{"type":"base64","media_type":"image/jpeg","data":"AA=="}}]},{"role":"assistant","content":"Hi"}],"temperature":1.0,"top_k":250,"thinking":{"type":"enabled","budget_tokens":2048}}"#;
        let r = AnthropicRequest::parse(body).unwrap();
        assert_eq!(r.max_tokens, 1024);
        let Some(AnthropicContent::Blocks(system)) = &r.system else {
            panic!("system blocks")
        };
        assert_eq!(
            system[0].cache_control,
            Some(CacheControl::ephemeral(Some("1h")))
        );
        let AnthropicContent::Blocks(blocks) = &r.messages[0].content else {
            panic!("blocks")
        };
        assert_eq!(blocks[1].kind, "image");
        assert!(blocks[1].rest.contains_key("source"));
        assert_eq!(r.messages[1].content.text(), "Hi");
        let again: AnthropicRequest =
            serde_json::from_slice(&serde_json::to_vec(&r).unwrap()).unwrap();
        assert_eq!(again, r);
    }

    #[test]
    fn precise_rejections() {
        let msgs = r#""messages":[{"role":"user","content":"x"}]"#;
        let cases = [
            (
                format!(r#"{{"max_tokens":5,{msgs}}}"#),
                "#: required key [anthropic_version] not found",
            ),
            (
                format!(r#"{{"anthropic_version":"bedrock-2023-05-31",{msgs}}}"#),
                "#: required key [max_tokens] not found",
            ),
            (
                format!(
                    r#"{{"anthropic_version":"bedrock-2023-05-31","max_tokens":5,"model":"claude",{msgs}}}"#
                ),
                "#: extraneous key [model] is not permitted",
            ),
            (
                format!(r#"{{"anthropic_version":"2023-06-01","max_tokens":5,{msgs}}}"#),
                "#/anthropic_version: 2023-06-01 is not a valid enum value",
            ),
            (
                format!(r#"{{"anthropic_version":"bedrock-2023-05-31","max_tokens":0,{msgs}}}"#),
                "#/max_tokens: 0 is not greater or equal to 1",
            ),
            (
                r#"{"anthropic_version":"bedrock-2023-05-31","max_tokens":5}"#.to_owned(),
                "#: required key [messages] not found",
            ),
            (
                r#"{"max_tokens":5}"#.to_owned(),
                "2 schema violations found",
            ),
        ];
        for (body, detail) in cases {
            let err = AnthropicRequest::parse(body.as_bytes()).unwrap_err();
            assert_eq!(err.detail, detail, "{body}");
        }
        let err = AnthropicRequest::parse(
            format!(r#"{{"anthropic_version":"bedrock-2023-05-31","max_tokens":"many",{msgs}}}"#)
                .as_bytes(),
        )
        .unwrap_err();
        assert!(err.detail.starts_with("#/max_tokens: "), "{}", err.detail);
        assert_eq!(err.field.as_deref(), Some("max_tokens"));
    }
}
