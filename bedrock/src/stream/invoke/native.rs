//! Provider-native IMWRS chunk bodies, fields in the order each provider
//! emits them (PROTOCOL.md §3.4); only the outer `chunk` wrapper is sorted.

use serde::Serialize;

use super::{InvocationMetrics, StreamStart};

#[derive(Serialize)]
pub(super) struct AnthropicMessageStart<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: AnthropicMessage<'a>,
}

#[derive(Serialize)]
struct AnthropicMessage<'a> {
    model: &'a str,
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    content: [u8; 0],
    stop_reason: Option<&'static str>,
    stop_sequence: Option<&'static str>,
    usage: AnthropicStartUsage,
}

#[derive(Serialize)]
struct AnthropicStartUsage {
    input_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
    output_tokens: u64,
}

pub(super) fn message_start<'a>(start: &StreamStart<'a>) -> AnthropicMessageStart<'a> {
    AnthropicMessageStart {
        kind: "message_start",
        message: AnthropicMessage {
            model: start.model,
            id: start.message_id,
            kind: "message",
            role: "assistant",
            content: [],
            stop_reason: None,
            stop_sequence: None,
            usage: AnthropicStartUsage {
                input_tokens: start.input_tokens,
                cache_creation_input_tokens: 0,
                cache_read_input_tokens: 0,
                output_tokens: 1,
            },
        },
    }
}

/// `{"type":…,"index":N,<field>:{"type":…,<text field>:…}}`, the shape shared
/// by `content_block_start` and `content_block_delta`.
#[derive(Serialize)]
pub(super) struct AnthropicIndexed<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_block: Option<TypedText<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delta: Option<TypedText<'a>>,
}

/// `{"type":ty,field:text}` with a runtime field name.
pub(super) struct TypedText<'a> {
    ty: &'static str,
    field: &'static str,
    text: &'a str,
}

impl Serialize for TypedText<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("type", self.ty)?;
        m.serialize_entry(self.field, self.text)?;
        m.end()
    }
}

pub(super) fn anthropic_block_start(
    index: u32,
    ty: &'static str,
    field: &'static str,
) -> AnthropicIndexed<'static> {
    AnthropicIndexed {
        kind: "content_block_start",
        index,
        content_block: Some(TypedText {
            ty,
            field,
            text: "",
        }),
        delta: None,
    }
}

pub(super) fn anthropic_delta<'a>(
    index: u32,
    ty: &'static str,
    field: &'static str,
    text: &'a str,
) -> AnthropicIndexed<'a> {
    AnthropicIndexed {
        kind: "content_block_delta",
        index,
        content_block: None,
        delta: Some(TypedText { ty, field, text }),
    }
}

pub(super) fn anthropic_block_stop(index: u32) -> AnthropicIndexed<'static> {
    AnthropicIndexed {
        kind: "content_block_stop",
        index,
        content_block: None,
        delta: None,
    }
}

#[derive(Serialize)]
pub(super) struct AnthropicMessageDelta<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    delta: AnthropicStopDelta<'a>,
    usage: AnthropicOutputUsage,
}

#[derive(Serialize)]
struct AnthropicStopDelta<'a> {
    stop_reason: &'a str,
    stop_sequence: Option<&'a str>,
}

#[derive(Serialize)]
struct AnthropicOutputUsage {
    output_tokens: u64,
}

pub(super) fn anthropic_message_delta(
    stop_reason: &str,
    output_tokens: u64,
) -> AnthropicMessageDelta<'_> {
    AnthropicMessageDelta {
        kind: "message_delta",
        delta: AnthropicStopDelta {
            stop_reason,
            stop_sequence: None,
        },
        usage: AnthropicOutputUsage { output_tokens },
    }
}

#[derive(Serialize)]
pub(super) struct AnthropicStop<'a> {
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
    #[serde(rename = "amazon-bedrock-invocationMetrics")]
    pub(super) metrics: &'a InvocationMetrics,
}

#[derive(Serialize)]
pub(super) struct Llama<'a> {
    pub(super) generation: &'a str,
    pub(super) prompt_token_count: Option<u64>,
    pub(super) generation_token_count: u64,
    pub(super) stop_reason: Option<&'a str>,
    #[serde(
        rename = "amazon-bedrock-invocationMetrics",
        skip_serializing_if = "Option::is_none"
    )]
    pub(super) metrics: Option<&'a InvocationMetrics>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Titan<'a> {
    pub(super) output_text: &'a str,
    pub(super) index: u32,
    pub(super) total_output_text_token_count: Option<u64>,
    pub(super) completion_reason: Option<&'a str>,
    pub(super) input_text_token_count: Option<u64>,
    #[serde(
        rename = "amazon-bedrock-invocationMetrics",
        skip_serializing_if = "Option::is_none"
    )]
    pub(super) metrics: Option<&'a InvocationMetrics>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct NovaStart {
    message_start: NovaRole,
}

#[derive(Serialize)]
struct NovaRole {
    role: &'static str,
}

impl Default for NovaStart {
    fn default() -> Self {
        NovaStart {
            message_start: NovaRole { role: "assistant" },
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct NovaDelta<'a> {
    content_block_delta: NovaDeltaBody<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NovaDeltaBody<'a> {
    delta: NovaDeltaContent<'a>,
    content_block_index: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
enum NovaDeltaContent<'a> {
    Text(&'a str),
    ReasoningContent { text: &'a str },
}

pub(super) fn nova_delta<'a>(
    index: u32,
    text: Option<&'a str>,
    reasoning: Option<&'a str>,
) -> NovaDelta<'a> {
    let delta = match (text, reasoning) {
        (Some(t), _) => NovaDeltaContent::Text(t),
        (None, r) => NovaDeltaContent::ReasoningContent {
            text: r.unwrap_or_default(),
        },
    };
    NovaDelta {
        content_block_delta: NovaDeltaBody {
            delta,
            content_block_index: index,
        },
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct NovaBlockStop {
    content_block_stop: NovaIndex,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NovaIndex {
    content_block_index: u32,
}

pub(super) fn nova_block_stop(index: u32) -> NovaBlockStop {
    NovaBlockStop {
        content_block_stop: NovaIndex {
            content_block_index: index,
        },
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct NovaStop<'a> {
    message_stop: NovaStopReason<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NovaStopReason<'a> {
    stop_reason: &'a str,
}

pub(super) fn nova_stop(stop_reason: &str) -> NovaStop<'_> {
    NovaStop {
        message_stop: NovaStopReason { stop_reason },
    }
}

#[derive(Serialize)]
pub(super) struct NovaMetadata<'a> {
    metadata: NovaMetadataBody,
    #[serde(rename = "amazon-bedrock-invocationMetrics")]
    metrics: &'a InvocationMetrics,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NovaMetadataBody {
    usage: NovaUsage,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NovaUsage {
    input_tokens: u64,
    output_tokens: u64,
}

pub(super) fn nova_metadata(metrics: &InvocationMetrics) -> NovaMetadata<'_> {
    NovaMetadata {
        metadata: NovaMetadataBody {
            usage: NovaUsage {
                input_tokens: metrics.input_token_count,
                output_tokens: metrics.output_token_count,
            },
        },
        metrics,
    }
}
