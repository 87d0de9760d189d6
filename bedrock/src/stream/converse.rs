//! ConverseStream events (PROTOCOL.md §3.3): decode each frame's JSON once
//! into a typed event; encode events the way Bedrock does (keys sorted,
//! `p` padding, header order `:event-type`, `:content-type`, `:message-type`).

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    EventOrigin, FrameMessage, FramePos, StreamError, classify, encode_event_json, header_text,
    next_message,
};
use crate::converse::{ServiceTier, ServiceTierType};
use crate::error::ServiceError;
use crate::eventstream::{EncodeError, Frame, FrameDecoder, HeaderValue, encode_frame};
use crate::usage::TokenUsage;

/// One ConverseStream event.
#[derive(Debug, Clone, PartialEq)]
pub enum ConverseStreamEvent {
    /// `messageStart`: the first event.
    MessageStart {
        /// Always `assistant` in practice.
        role: String,
    },
    /// `contentBlockStart`: sent only for non-text blocks (tool use, ...).
    ContentBlockStart {
        /// The block's index.
        content_block_index: u32,
        /// What the block starts.
        start: BlockStart,
    },
    /// `contentBlockDelta`: a piece of content.
    ContentBlockDelta {
        /// The block's index.
        content_block_index: u32,
        /// The piece.
        delta: BlockDelta,
    },
    /// `contentBlockStop`.
    ContentBlockStop {
        /// The block's index.
        content_block_index: u32,
    },
    /// `messageStop`: why generation ended.
    MessageStop {
        /// `end_turn`, `max_tokens`, `tool_use`, ...
        stop_reason: String,
        /// Provider-specific extras, kept verbatim.
        additional_model_response_fields: Option<Value>,
    },
    /// `metadata`: the last event; usage and latency.
    Metadata(StreamMetadata),
    /// An in-stream exception frame; the stream ends here.
    Exception(ServiceError),
    /// An `:event-type` this version does not model; its payload is kept.
    Unknown {
        /// The `:event-type` value.
        event_type: String,
        /// The raw payload.
        payload: Bytes,
    },
}

/// The start of a non-text content block.
#[derive(Debug, Clone, PartialEq)]
pub enum BlockStart {
    /// `{"toolUse":{"toolUseId","name","type"?}}`.
    ToolUse {
        /// The tool-use id.
        tool_use_id: String,
        /// The tool's name.
        name: String,
        /// `server_tool_use` for server-side tools.
        kind: Option<String>,
    },
    /// Any other start (`toolResult`, `image`, ...), as the JSON object.
    Other(Value),
}

/// A piece of a content block.
#[derive(Debug, Clone, PartialEq)]
pub enum BlockDelta {
    /// `{"text":…}`: answer text. Decoded, it shares the frame's buffer
    /// when the text had no escapes (nearly always): no copy per event.
    Text(ByteString),
    /// `{"toolUse":{"input":…}}`: partial tool-input JSON.
    ToolUseInput(String),
    /// `{"reasoningContent":{"text":…}}`.
    ReasoningText(String),
    /// `{"reasoningContent":{"signature":…}}`.
    ReasoningSignature(String),
    /// `{"reasoningContent":{"redactedContent":…}}` (base64).
    RedactedReasoning(String),
    /// Any other delta (`citation`, `toolResult`, `image`), as the JSON
    /// object; unknown delta kinds give an empty object.
    Other(Value),
}

/// The `metadata` event.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamMetadata {
    /// `usage` (source: [`crate::UsageSource::ConverseUsage`]).
    pub usage: TokenUsage,
    /// `metrics.latencyMs`.
    pub latency_ms: u64,
    /// `usage.serverToolUsage`: not in the API model but sent by live
    /// Bedrock (§3.3 capture); kept only so the simulator can reproduce it.
    pub server_tool_usage: Option<Value>,
    /// `serviceTier.type`: the tier that served the request, when the
    /// request named one (PROTOCOL.md §5.7).
    pub service_tier: Option<ServiceTierType>,
}

// ---- wire shapes for decoding ----

#[derive(Deserialize)]
struct MessageStartIn {
    role: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IndexIn {
    content_block_index: u32,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockStartIn {
    content_block_index: u32,
    start: StartIn,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartIn {
    tool_use: Option<ToolUseStartIn>,
    tool_result: Option<Value>,
    image: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolUseStartIn {
    tool_use_id: String,
    name: String,
    #[serde(rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockDeltaIn {
    content_block_index: u32,
    delta: DeltaIn,
}

/// Every kind but text is boxed: a text delta is nearly every frame of a
/// stream, and serde moves this struct through each level of its visitor,
/// so its size is copied several times a frame (216 bytes unboxed, 56 boxed:
/// the `memcpy` of this struct was about 2% of a signed request's CPU).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeltaIn {
    text: Option<String>,
    tool_use: Option<Box<ToolUseDeltaIn>>,
    reasoning_content: Option<Box<ReasoningIn>>,
    citation: Option<Box<Value>>,
    tool_result: Option<Box<Value>>,
    image: Option<Box<Value>>,
}

#[derive(Deserialize)]
struct ToolUseDeltaIn {
    input: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReasoningIn {
    text: Option<String>,
    signature: Option<String>,
    redacted_content: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageStopIn {
    stop_reason: String,
    additional_model_response_fields: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetadataIn {
    usage: UsageIn,
    metrics: Option<MetricsIn>,
    service_tier: Option<ServiceTier>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UsageIn {
    input_tokens: u64,
    output_tokens: u64,
    #[serde(default)]
    cache_read_input_tokens: u64,
    #[serde(default)]
    cache_write_input_tokens: u64,
    server_tool_usage: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetricsIn {
    latency_ms: u64,
}

fn tagged(key: &str, v: Value) -> Value {
    let mut map = serde_json::Map::new();
    map.insert(key.to_owned(), v);
    Value::Object(map)
}

impl From<StartIn> for BlockStart {
    fn from(s: StartIn) -> Self {
        if let Some(t) = s.tool_use {
            return BlockStart::ToolUse {
                tool_use_id: t.tool_use_id,
                name: t.name,
                kind: t.kind,
            };
        }
        match (s.tool_result, s.image) {
            (Some(v), _) => BlockStart::Other(tagged("toolResult", v)),
            (None, Some(v)) => BlockStart::Other(tagged("image", v)),
            (None, None) => BlockStart::Other(Value::Object(serde_json::Map::new())),
        }
    }
}

impl From<DeltaIn> for BlockDelta {
    fn from(d: DeltaIn) -> Self {
        if let Some(t) = d.text {
            return BlockDelta::Text(t.into());
        }
        if let Some(t) = d.tool_use {
            return BlockDelta::ToolUseInput(t.input);
        }
        if let Some(r) = d.reasoning_content {
            let r = *r;
            if let Some(t) = r.text {
                return BlockDelta::ReasoningText(t);
            }
            if let Some(s) = r.signature {
                return BlockDelta::ReasoningSignature(s);
            }
            if let Some(c) = r.redacted_content {
                return BlockDelta::RedactedReasoning(c);
            }
        }
        match (d.citation, d.tool_result, d.image) {
            (Some(v), _, _) => BlockDelta::Other(tagged("citation", *v)),
            (None, Some(v), _) => BlockDelta::Other(tagged("toolResult", *v)),
            (None, None, Some(v)) => BlockDelta::Other(tagged("image", *v)),
            _ => BlockDelta::Other(Value::Object(serde_json::Map::new())),
        }
    }
}

impl ConverseStreamEvent {
    /// Decodes one event payload of type `event_type`.
    fn from_payload(event_type: &[u8], frame: &Frame, pos: FramePos) -> Result<Self, StreamError> {
        let payload = frame.payload();
        let err = |e: serde_json::Error| pos.payload_error(&header_text(event_type), e);
        Ok(match event_type {
            b"messageStart" => {
                let m: MessageStartIn = serde_json::from_slice(payload).map_err(err)?;
                ConverseStreamEvent::MessageStart { role: m.role }
            }
            b"contentBlockStart" => {
                let m: BlockStartIn = serde_json::from_slice(payload).map_err(err)?;
                ConverseStreamEvent::ContentBlockStart {
                    content_block_index: m.content_block_index,
                    start: m.start.into(),
                }
            }
            b"contentBlockDelta" => {
                if let Some(event) = text_delta_in_bedrocks_shape(frame) {
                    return Ok(event);
                }
                let m: BlockDeltaIn = serde_json::from_slice(payload).map_err(err)?;
                ConverseStreamEvent::ContentBlockDelta {
                    content_block_index: m.content_block_index,
                    delta: m.delta.into(),
                }
            }
            b"contentBlockStop" => {
                let m: IndexIn = serde_json::from_slice(payload).map_err(err)?;
                ConverseStreamEvent::ContentBlockStop {
                    content_block_index: m.content_block_index,
                }
            }
            b"messageStop" => {
                let m: MessageStopIn = serde_json::from_slice(payload).map_err(err)?;
                ConverseStreamEvent::MessageStop {
                    stop_reason: m.stop_reason,
                    additional_model_response_fields: m.additional_model_response_fields,
                }
            }
            b"metadata" => {
                let m: MetadataIn = serde_json::from_slice(payload).map_err(err)?;
                ConverseStreamEvent::Metadata(StreamMetadata {
                    usage: TokenUsage {
                        input_tokens: m.usage.input_tokens,
                        output_tokens: m.usage.output_tokens,
                        cache_read_input_tokens: m.usage.cache_read_input_tokens,
                        cache_write_input_tokens: m.usage.cache_write_input_tokens,
                    },
                    latency_ms: m.metrics.map_or(0, |x| x.latency_ms),
                    server_tool_usage: m.usage.server_tool_usage,
                    service_tier: m.service_tier.map(|t| t.kind),
                })
            }
            other => ConverseStreamEvent::Unknown {
                event_type: header_text(other),
                payload: frame.payload_bytes(),
            },
        })
    }
}

/// A text delta read without serde ([`super::text_delta`]), its text a
/// slice of the frame's own bytes; `None` when the payload is not in
/// Bedrock's shape or its text is not UTF-8 (serde then decodes it, or says
/// where it is wrong).
fn text_delta_in_bedrocks_shape(frame: &Frame) -> Option<ConverseStreamEvent> {
    let (content_block_index, range) = super::text_delta::read(frame.payload())?;
    let text = ByteString::try_from(frame.payload_bytes().slice(range)).ok()?;
    Some(ConverseStreamEvent::ContentBlockDelta {
        content_block_index,
        delta: BlockDelta::Text(text),
    })
}

// ---- wire shapes for encoding: fields in alphabetical order, as Bedrock sorts keys ----

fn no_pad(p: &&str) -> bool {
    p.is_empty()
}

#[derive(Serialize)]
struct MessageStartOut<'a> {
    #[serde(skip_serializing_if = "no_pad")]
    p: &'a str,
    role: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BlockStartOut<'a> {
    content_block_index: u32,
    #[serde(skip_serializing_if = "no_pad")]
    p: &'a str,
    start: &'a BlockStart,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BlockDeltaOut<'a> {
    content_block_index: u32,
    delta: &'a BlockDelta,
    #[serde(skip_serializing_if = "no_pad")]
    p: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BlockStopOut<'a> {
    content_block_index: u32,
    #[serde(skip_serializing_if = "no_pad")]
    p: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MessageStopOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    additional_model_response_fields: Option<&'a Value>,
    #[serde(skip_serializing_if = "no_pad")]
    p: &'a str,
    stop_reason: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MetadataOut<'a> {
    metrics: MetricsOut,
    #[serde(skip_serializing_if = "no_pad")]
    p: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    service_tier: Option<ServiceTier>,
    usage: UsageOut<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MetricsOut {
    latency_ms: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UsageOut<'a> {
    #[serde(skip_serializing_if = "is_zero")]
    cache_read_input_tokens: u64,
    #[serde(skip_serializing_if = "is_zero")]
    cache_write_input_tokens: u64,
    input_tokens: u64,
    output_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_tool_usage: Option<&'a Value>,
    total_tokens: u64,
}

impl Serialize for BlockStart {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct ToolUse<'a> {
            name: &'a str,
            tool_use_id: &'a str,
            #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
            kind: Option<&'a str>,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Wrap<'a> {
            tool_use: ToolUse<'a>,
        }
        match self {
            BlockStart::ToolUse {
                tool_use_id,
                name,
                kind,
            } => Wrap {
                tool_use: ToolUse {
                    name,
                    tool_use_id,
                    kind: kind.as_deref(),
                },
            }
            .serialize(s),
            BlockStart::Other(v) => v.serialize(s),
        }
    }
}

impl Serialize for BlockDelta {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        enum Reasoning<'a> {
            RedactedContent(&'a str),
            Signature(&'a str),
            Text(&'a str),
        }
        #[derive(Serialize)]
        struct Input<'a> {
            input: &'a str,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        enum Out<'a> {
            ReasoningContent(Reasoning<'a>),
            Text(&'a str),
            ToolUse(Input<'a>),
        }
        let out = match self {
            BlockDelta::Text(t) => Out::Text(t),
            BlockDelta::ToolUseInput(input) => Out::ToolUse(Input { input }),
            BlockDelta::ReasoningText(t) => Out::ReasoningContent(Reasoning::Text(t)),
            BlockDelta::ReasoningSignature(t) => Out::ReasoningContent(Reasoning::Signature(t)),
            BlockDelta::RedactedReasoning(t) => {
                Out::ReasoningContent(Reasoning::RedactedContent(t))
            }
            BlockDelta::Other(v) => return v.serialize(s),
        };
        out.serialize(s)
    }
}

impl ConverseStreamEvent {
    /// The `:event-type` this event is sent as (`None` for exceptions).
    pub fn event_type(&self) -> Option<&str> {
        Some(match self {
            ConverseStreamEvent::MessageStart { .. } => "messageStart",
            ConverseStreamEvent::ContentBlockStart { .. } => "contentBlockStart",
            ConverseStreamEvent::ContentBlockDelta { .. } => "contentBlockDelta",
            ConverseStreamEvent::ContentBlockStop { .. } => "contentBlockStop",
            ConverseStreamEvent::MessageStop { .. } => "messageStop",
            ConverseStreamEvent::Metadata(_) => "metadata",
            ConverseStreamEvent::Unknown { event_type, .. } => event_type,
            ConverseStreamEvent::Exception(_) => return None,
        })
    }

    /// Appends the frame of a text delta of `text`, byte for byte what
    /// [`ConverseStreamEvent::encode`] writes for a
    /// [`BlockDelta::Text`] of it, without building the event (the
    /// simulator's per-token path: no copy of the text).
    pub fn encode_text_delta(
        out: &mut BytesMut,
        content_block_index: u32,
        text: &str,
        pad: usize,
    ) -> Result<(), EncodeError> {
        #[derive(Serialize)]
        struct TextOut<'a> {
            text: &'a str,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct TextDeltaOut<'a> {
            content_block_index: u32,
            delta: TextOut<'a>,
            #[serde(skip_serializing_if = "no_pad")]
            p: &'a str,
        }
        let out_json = TextDeltaOut {
            content_block_index,
            delta: TextOut { text },
            p: super::padding(pad),
        };
        encode_event_json(out, "contentBlockDelta", &out_json)
    }

    /// Appends this event as one frame, with a `p` padding field of `pad`
    /// characters (0: no `p` field). Exceptions become exception frames with
    /// payload `{"message":…}` and no padding; `Unknown` payloads are sent
    /// verbatim.
    pub fn encode(&self, out: &mut BytesMut, pad: usize) -> Result<(), EncodeError> {
        let p = super::padding(pad);
        match self {
            ConverseStreamEvent::MessageStart { role } => {
                encode_event_json(out, "messageStart", &MessageStartOut { p, role })
            }
            ConverseStreamEvent::ContentBlockStart {
                content_block_index,
                start,
            } => encode_event_json(
                out,
                "contentBlockStart",
                &BlockStartOut {
                    content_block_index: *content_block_index,
                    p,
                    start,
                },
            ),
            ConverseStreamEvent::ContentBlockDelta {
                content_block_index,
                delta,
            } => encode_event_json(
                out,
                "contentBlockDelta",
                &BlockDeltaOut {
                    content_block_index: *content_block_index,
                    delta,
                    p,
                },
            ),
            ConverseStreamEvent::ContentBlockStop {
                content_block_index,
            } => encode_event_json(
                out,
                "contentBlockStop",
                &BlockStopOut {
                    content_block_index: *content_block_index,
                    p,
                },
            ),
            ConverseStreamEvent::MessageStop {
                stop_reason,
                additional_model_response_fields,
            } => encode_event_json(
                out,
                "messageStop",
                &MessageStopOut {
                    additional_model_response_fields: additional_model_response_fields.as_ref(),
                    p,
                    stop_reason,
                },
            ),
            ConverseStreamEvent::Metadata(m) => encode_event_json(
                out,
                "metadata",
                &MetadataOut {
                    metrics: MetricsOut {
                        latency_ms: m.latency_ms,
                    },
                    p,
                    service_tier: m.service_tier.map(|kind| ServiceTier { kind }),
                    usage: UsageOut {
                        cache_read_input_tokens: m.usage.cache_read_input_tokens,
                        cache_write_input_tokens: m.usage.cache_write_input_tokens,
                        input_tokens: m.usage.input_tokens,
                        output_tokens: m.usage.output_tokens,
                        server_tool_usage: m.server_tool_usage.as_ref(),
                        total_tokens: m.usage.total_tokens(),
                    },
                },
            ),
            ConverseStreamEvent::Exception(err) => super::encode_service_error(out, err),
            ConverseStreamEvent::Unknown {
                event_type,
                payload,
            } => encode_frame(
                out,
                &[
                    (":event-type", HeaderValue::String(event_type)),
                    (":content-type", HeaderValue::String("application/json")),
                    (":message-type", HeaderValue::String("event")),
                ],
                payload,
            ),
        }
    }
}

/// Incremental ConverseStream decoder for the load agent's hot path: push
/// each body chunk, then drain `next_event` until it returns `Ok(None)`.
/// Each event is available as soon as its frame's last byte was pushed.
#[derive(Debug, Default)]
pub struct ConverseStreamDecoder {
    frames: FrameDecoder,
    failed: Option<StreamError>,
    /// The frame of the event last returned.
    origin: EventOrigin,
}

impl ConverseStreamDecoder {
    /// A decoder at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a chunk of the response body.
    pub fn push(&mut self, chunk: &[u8]) {
        self.frames.push(chunk);
    }

    /// The next complete event; `Ok(None)` when more bytes are needed. After
    /// an error every later call returns the same error.
    pub fn next_event(&mut self) -> Result<Option<ConverseStreamEvent>, StreamError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let result = self.decode_next();
        if let Err(err) = &result {
            self.failed = Some(err.clone());
        }
        result
    }

    fn decode_next(&mut self) -> Result<Option<ConverseStreamEvent>, StreamError> {
        let Some((frame, pos)) = next_message(&mut self.frames)? else {
            return Ok(None);
        };
        let (message, written_ns) = classify(&frame, pos)?;
        let event = match message {
            FrameMessage::Exception(err) => ConverseStreamEvent::Exception(err),
            FrameMessage::Event(event_type) => {
                ConverseStreamEvent::from_payload(event_type, &frame, pos)?
            }
        };
        self.origin = EventOrigin {
            frames: self.frames.frames_decoded(),
            written_ns,
        };
        Ok(Some(event))
    }

    /// The frame the event last returned came from (each ConverseStream
    /// frame is one event).
    pub fn origin(&self) -> EventOrigin {
        self.origin
    }

    /// Call at end of body: fails if the stream stopped inside a frame.
    pub fn finish(&self) -> Result<(), StreamError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        Ok(self.frames.finish()?)
    }

    /// Decodes a whole body at once (tests, tools).
    pub fn decode_all(body: &[u8]) -> Result<Vec<ConverseStreamEvent>, StreamError> {
        let mut dec = Self::new();
        dec.push(body);
        let mut events = Vec::new();
        while let Some(e) = dec.next_event()? {
            events.push(e);
        }
        dec.finish()?;
        Ok(events)
    }
}
