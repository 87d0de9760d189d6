//! InvokeModelWithResponseStream (PROTOCOL.md §3.4): `chunk` events whose
//! payload is `{"bytes":"<base64 native JSON>","p":…}`. The decoder turns each
//! family's native chunks into one normalised vocabulary so the load agent
//! times every family the same way; the encoder writes each family's native
//! chunk sequence for the simulator.

use std::borrow::Cow;
use std::collections::VecDeque;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::BytesMut;
use serde::{Deserialize, Serialize};

use super::{
    EventOrigin, FrameMessage, FramePos, StreamError, classify, header_text, next_message,
};
use crate::error::ServiceError;
use crate::eventstream::{EncodeError, Frame, FrameDecoder, HeaderValue, encode_frame_with};
use crate::family::ModelFamily;
use crate::usage::{TokenUsage, UsageSource};

/// `amazon-bedrock-invocationMetrics`, attached to the last chunk of every family.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvocationMetrics {
    /// Billed input tokens.
    pub input_token_count: u64,
    /// Output tokens.
    pub output_token_count: u64,
    /// Server-side latency of the whole invocation, ms.
    pub invocation_latency: u64,
    /// Server-side time to first byte, ms.
    pub first_byte_latency: u64,
    /// Prompt-cache read tokens, when caching was used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_read_input_token_count: Option<u64>,
    /// Prompt-cache write tokens, when caching was used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_write_input_token_count: Option<u64>,
}

impl InvocationMetrics {
    /// Where these counts come from, for reports.
    pub const SOURCE: UsageSource = UsageSource::InvocationMetrics;

    /// The counts in the Converse vocabulary.
    pub fn usage(&self) -> TokenUsage {
        TokenUsage {
            input_tokens: self.input_token_count,
            output_tokens: self.output_token_count,
            cache_read_input_tokens: self.cache_read_input_token_count.unwrap_or(0),
            cache_write_input_tokens: self.cache_write_input_token_count.unwrap_or(0),
        }
    }
}

/// A family-normalised InvokeModelWithResponseStream event. One chunk can
/// yield several (a Llama last chunk carries text, stop reason and metrics);
/// they come out in that order, and a chunk with none of them yields `Other`
/// so every frame is visible to the caller's clock.
#[derive(Debug, Clone, PartialEq)]
pub enum InvokeStreamEvent {
    /// Answer text (empty pieces are dropped).
    TextDelta(String),
    /// Reasoning text (Anthropic `thinking_delta`, Nova `reasoningContent`).
    ReasoningDelta(String),
    /// The family-native stop reason (`end_turn`, `stop`, `FINISH`, ...).
    StopReason(String),
    /// Final usage; see [`InvocationMetrics::usage`] and [`InvocationMetrics::SOURCE`].
    Metrics(InvocationMetrics),
    /// A chunk with none of the above (message start, block start/stop, ...).
    Other,
    /// An in-stream exception frame; the stream ends here.
    Exception(ServiceError),
    /// An `:event-type` other than `chunk`, skipped.
    Unknown {
        /// The `:event-type` value.
        event_type: String,
    },
}

#[derive(Deserialize)]
struct ChunkIn<'a> {
    #[serde(borrow)]
    bytes: Cow<'a, str>,
}

#[derive(Deserialize)]
struct AnthropicIn<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    delta: Option<AnthropicDeltaIn>,
    #[serde(rename = "amazon-bedrock-invocationMetrics")]
    metrics: Option<InvocationMetrics>,
}

#[derive(Deserialize)]
struct AnthropicDeltaIn {
    text: Option<String>,
    thinking: Option<String>,
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
struct LlamaIn {
    generation: Option<String>,
    stop_reason: Option<String>,
    #[serde(rename = "amazon-bedrock-invocationMetrics")]
    metrics: Option<InvocationMetrics>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TitanIn {
    output_text: Option<String>,
    completion_reason: Option<String>,
    #[serde(rename = "amazon-bedrock-invocationMetrics")]
    metrics: Option<InvocationMetrics>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NovaIn {
    content_block_delta: Option<NovaDeltaIn>,
    message_stop: Option<NovaStopIn>,
    #[serde(rename = "amazon-bedrock-invocationMetrics")]
    metrics: Option<InvocationMetrics>,
}

#[derive(Deserialize)]
struct NovaDeltaIn {
    delta: NovaDeltaBody,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NovaDeltaBody {
    text: Option<String>,
    reasoning_content: Option<NovaReasoning>,
}

#[derive(Deserialize)]
struct NovaReasoning {
    text: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NovaStopIn {
    stop_reason: String,
}

/// Pushes the normalised events of one native chunk onto `q`.
fn normalise(
    family: ModelFamily,
    json: &[u8],
    q: &mut VecDeque<InvokeStreamEvent>,
) -> Result<(), serde_json::Error> {
    let before = q.len();
    let text = |q: &mut VecDeque<_>, t: Option<String>| {
        if let Some(t) = t.filter(|t| !t.is_empty()) {
            q.push_back(InvokeStreamEvent::TextDelta(t));
        }
    };
    let reasoning = |q: &mut VecDeque<_>, t: Option<String>| {
        if let Some(t) = t.filter(|t| !t.is_empty()) {
            q.push_back(InvokeStreamEvent::ReasoningDelta(t));
        }
    };
    let metrics = match family {
        ModelFamily::Anthropic => {
            let c: AnthropicIn<'_> = serde_json::from_slice(json)?;
            if let Some(d) = c.delta {
                match c.kind.as_ref() {
                    "content_block_delta" => {
                        text(q, d.text);
                        reasoning(q, d.thinking);
                    }
                    "message_delta" => {
                        if let Some(r) = d.stop_reason {
                            q.push_back(InvokeStreamEvent::StopReason(r));
                        }
                    }
                    _ => {}
                }
            }
            c.metrics
        }
        ModelFamily::Llama => {
            let c: LlamaIn = serde_json::from_slice(json)?;
            text(q, c.generation);
            if let Some(r) = c.stop_reason {
                q.push_back(InvokeStreamEvent::StopReason(r));
            }
            c.metrics
        }
        ModelFamily::Titan => {
            let c: TitanIn = serde_json::from_slice(json)?;
            text(q, c.output_text);
            if let Some(r) = c.completion_reason {
                q.push_back(InvokeStreamEvent::StopReason(r));
            }
            c.metrics
        }
        ModelFamily::Nova => {
            let c: NovaIn = serde_json::from_slice(json)?;
            if let Some(d) = c.content_block_delta {
                text(q, d.delta.text);
                reasoning(q, d.delta.reasoning_content.and_then(|r| r.text));
            }
            if let Some(s) = c.message_stop {
                q.push_back(InvokeStreamEvent::StopReason(s.stop_reason));
            }
            c.metrics
        }
    };
    if let Some(m) = metrics {
        q.push_back(InvokeStreamEvent::Metrics(m));
    }
    if q.len() == before {
        q.push_back(InvokeStreamEvent::Other);
    }
    Ok(())
}

/// Incremental InvokeModelWithResponseStream decoder for one model family.
#[derive(Debug)]
pub struct InvokeStreamDecoder {
    family: ModelFamily,
    frames: FrameDecoder,
    /// Reused base64 output, so a chunk costs no allocation beyond its strings.
    scratch: Vec<u8>,
    queue: VecDeque<InvokeStreamEvent>,
    failed: Option<StreamError>,
    /// The frame the queued events came from.
    origin: EventOrigin,
}

impl InvokeStreamDecoder {
    /// A decoder for a stream from a model of `family`.
    pub fn new(family: ModelFamily) -> Self {
        InvokeStreamDecoder {
            family,
            frames: FrameDecoder::new(),
            scratch: Vec::new(),
            queue: VecDeque::with_capacity(4),
            failed: None,
            origin: EventOrigin::default(),
        }
    }

    /// Appends a chunk of the response body.
    pub fn push(&mut self, chunk: &[u8]) {
        self.frames.push(chunk);
    }

    /// The next normalised event; `Ok(None)` when more bytes are needed.
    /// After an error every later call returns the same error.
    pub fn next_event(&mut self) -> Result<Option<InvokeStreamEvent>, StreamError> {
        loop {
            if let Some(e) = self.queue.pop_front() {
                return Ok(Some(e));
            }
            if let Some(err) = &self.failed {
                return Err(err.clone());
            }
            let Some((frame, pos)) = next_message(&mut self.frames).inspect_err(|e| {
                self.failed = Some(e.clone());
            })?
            else {
                return Ok(None);
            };
            if let Err(e) = self.decode_frame(&frame, pos) {
                self.failed = Some(e.clone());
                return Err(e);
            }
        }
    }

    /// The frame the event last returned came from: events are only
    /// queued from one frame at a time, so it is the last frame decoded.
    pub fn origin(&self) -> EventOrigin {
        self.origin
    }

    fn decode_frame(&mut self, frame: &Frame, pos: FramePos) -> Result<(), StreamError> {
        let (message, written_ns) = classify(frame, pos)?;
        self.origin = EventOrigin {
            frames: self.frames.frames_decoded(),
            written_ns,
        };
        match message {
            FrameMessage::Exception(err) => self.queue.push_back(InvokeStreamEvent::Exception(err)),
            FrameMessage::Event(b"chunk") => {
                let chunk: ChunkIn<'_> = serde_json::from_slice(frame.payload())
                    .map_err(|e| pos.payload_error("chunk", e))?;
                self.scratch.clear();
                STANDARD
                    .decode_vec(chunk.bytes.as_bytes(), &mut self.scratch)
                    .map_err(|e| {
                        pos.payload_error("chunk", format!("`bytes` is not base64: {e}"))
                    })?;
                normalise(self.family, &self.scratch, &mut self.queue).map_err(|e| {
                    pos.payload_error("chunk", format!("{} chunk JSON: {e}", self.family))
                })?;
            }
            FrameMessage::Event(other) => self.queue.push_back(InvokeStreamEvent::Unknown {
                event_type: header_text(other),
            }),
        }
        Ok(())
    }

    /// Call at end of body: fails if the stream stopped inside a frame.
    pub fn finish(&self) -> Result<(), StreamError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        Ok(self.frames.finish()?)
    }

    /// Decodes a whole body at once (tests, tools).
    pub fn decode_all(
        family: ModelFamily,
        body: &[u8],
    ) -> Result<Vec<InvokeStreamEvent>, StreamError> {
        let mut dec = Self::new(family);
        dec.push(body);
        let mut events = Vec::new();
        while let Some(e) = dec.next_event()? {
            events.push(e);
        }
        dec.finish()?;
        Ok(events)
    }
}

// ---- encoding: provider-native key order, as the providers emit it ----

/// What the first chunk of a stream announces.
#[derive(Debug, Clone, Copy)]
pub struct StreamStart<'a> {
    /// Provider model name in Anthropic's `message_start` (`claude-sonnet-4-5-20250929`).
    pub model: &'a str,
    /// Anthropic message id (`msg_bdrk_…`).
    pub message_id: &'a str,
    /// Input tokens, reported in the first chunk by Anthropic, Llama and Titan.
    pub input_tokens: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    None,
    Reasoning,
    Text,
}

/// Writes one model family's native IMWRS chunk sequence: call `start`, then
/// `text`/`reasoning` per piece, then `finish` (which attaches
/// `amazon-bedrock-invocationMetrics` to the last chunk).
#[derive(Debug)]
pub struct InvokeStreamEncoder {
    family: ModelFamily,
    scratch: Vec<u8>,
    block: Block,
    index: u32,
    input_tokens: u64,
    pieces: u64,
}

impl InvokeStreamEncoder {
    /// An encoder for `family`.
    pub fn new(family: ModelFamily) -> Self {
        InvokeStreamEncoder {
            family,
            scratch: Vec::with_capacity(256),
            block: Block::None,
            index: 0,
            input_tokens: 0,
            pieces: 0,
        }
    }

    /// Starts the stream (Anthropic `message_start`, Nova `messageStart`;
    /// Llama and Titan send nothing until the first text).
    pub fn start(
        &mut self,
        out: &mut BytesMut,
        start: &StreamStart<'_>,
        pad: usize,
    ) -> Result<(), EncodeError> {
        self.input_tokens = start.input_tokens;
        match self.family {
            ModelFamily::Anthropic => self.chunk(out, &native::message_start(start), pad),
            ModelFamily::Nova => self.chunk(out, &native::NovaStart::default(), pad),
            ModelFamily::Llama | ModelFamily::Titan => Ok(()),
        }
    }

    /// One piece of answer text.
    pub fn text(&mut self, out: &mut BytesMut, text: &str, pad: usize) -> Result<(), EncodeError> {
        let first = self.pieces == 0;
        self.pieces += 1;
        match self.family {
            ModelFamily::Anthropic => {
                self.open(out, Block::Text, pad)?;
                let c = native::anthropic_delta(self.index, "text_delta", "text", text);
                self.chunk(out, &c, pad)
            }
            ModelFamily::Nova => {
                self.open(out, Block::Text, pad)?;
                let c = native::nova_delta(self.index, Some(text), None);
                self.chunk(out, &c, pad)
            }
            ModelFamily::Llama => {
                let c = native::Llama {
                    generation: text,
                    prompt_token_count: first.then_some(self.input_tokens),
                    generation_token_count: self.pieces,
                    stop_reason: None,
                    metrics: None,
                };
                self.chunk(out, &c, pad)
            }
            ModelFamily::Titan => {
                let c = native::Titan {
                    output_text: text,
                    index: 0,
                    total_output_text_token_count: None,
                    completion_reason: None,
                    input_text_token_count: first.then_some(self.input_tokens),
                    metrics: None,
                };
                self.chunk(out, &c, pad)
            }
        }
    }

    /// One piece of reasoning text; only Anthropic and Nova stream reasoning.
    pub fn reasoning(
        &mut self,
        out: &mut BytesMut,
        text: &str,
        pad: usize,
    ) -> Result<(), EncodeError> {
        match self.family {
            ModelFamily::Anthropic => {
                self.open(out, Block::Reasoning, pad)?;
                let c = native::anthropic_delta(self.index, "thinking_delta", "thinking", text);
                self.chunk(out, &c, pad)
            }
            ModelFamily::Nova => {
                self.open(out, Block::Reasoning, pad)?;
                let c = native::nova_delta(self.index, None, Some(text));
                self.chunk(out, &c, pad)
            }
            ModelFamily::Llama | ModelFamily::Titan => Err(EncodeError::Payload(format!(
                "{} streams have no reasoning content",
                self.family
            ))),
        }
    }

    /// Ends the stream with `stop_reason` (family-native spelling) and the
    /// invocation metrics on the last chunk.
    pub fn finish(
        &mut self,
        out: &mut BytesMut,
        stop_reason: &str,
        metrics: &InvocationMetrics,
        pad: usize,
    ) -> Result<(), EncodeError> {
        match self.family {
            ModelFamily::Anthropic => {
                self.close(out, pad)?;
                let d = native::anthropic_message_delta(stop_reason, metrics.output_token_count);
                self.chunk(out, &d, pad)?;
                let stop = native::AnthropicStop {
                    kind: "message_stop",
                    metrics,
                };
                self.chunk(out, &stop, pad)
            }
            ModelFamily::Nova => {
                self.close(out, pad)?;
                self.chunk(out, &native::nova_stop(stop_reason), pad)?;
                self.chunk(out, &native::nova_metadata(metrics), pad)
            }
            ModelFamily::Llama => {
                let c = native::Llama {
                    generation: "",
                    prompt_token_count: None,
                    generation_token_count: metrics.output_token_count,
                    stop_reason: Some(stop_reason),
                    metrics: Some(metrics),
                };
                self.chunk(out, &c, pad)
            }
            ModelFamily::Titan => {
                let c = native::Titan {
                    output_text: "",
                    index: 0,
                    total_output_text_token_count: Some(metrics.output_token_count),
                    completion_reason: Some(stop_reason),
                    input_text_token_count: None,
                    metrics: Some(metrics),
                };
                self.chunk(out, &c, pad)
            }
        }
    }

    /// Opens a content block of `kind`, closing a different open one.
    fn open(&mut self, out: &mut BytesMut, kind: Block, pad: usize) -> Result<(), EncodeError> {
        if self.block == kind {
            return Ok(());
        }
        if self.block != Block::None {
            self.close(out, pad)?;
            self.index += 1;
        }
        self.block = kind;
        if self.family == ModelFamily::Anthropic {
            let (ty, field) = match kind {
                Block::Reasoning => ("thinking", "thinking"),
                _ => ("text", "text"),
            };
            let c = native::anthropic_block_start(self.index, ty, field);
            self.chunk(out, &c, pad)?;
        }
        Ok(())
    }

    fn close(&mut self, out: &mut BytesMut, pad: usize) -> Result<(), EncodeError> {
        if self.block == Block::None {
            return Ok(());
        }
        self.block = Block::None;
        match self.family {
            ModelFamily::Anthropic => {
                self.chunk(out, &native::anthropic_block_stop(self.index), pad)
            }
            _ => self.chunk(out, &native::nova_block_stop(self.index), pad),
        }
    }

    /// Appends one `chunk` frame wrapping `inner` as base64, with padding.
    fn chunk<T: Serialize>(
        &mut self,
        out: &mut BytesMut,
        inner: &T,
        pad: usize,
    ) -> Result<(), EncodeError> {
        self.scratch.clear();
        serde_json::to_writer(&mut self.scratch, inner)
            .map_err(|e| EncodeError::Payload(e.to_string()))?;
        let json = &self.scratch;
        let p = super::padding(pad);
        encode_frame_with(
            out,
            &[
                (":event-type", HeaderValue::String("chunk")),
                (":content-type", HeaderValue::String("application/json")),
                (":message-type", HeaderValue::String("event")),
            ],
            |o| {
                // Base64 and the padding alphabet never need JSON escaping.
                o.extend_from_slice(b"{\"bytes\":\"");
                let at = o.len();
                let n = base64::encoded_len(json.len(), true)
                    .ok_or_else(|| EncodeError::Payload("chunk too large".into()))?;
                o.resize(at + n, 0);
                STANDARD
                    .encode_slice(json, &mut o[at..])
                    .map_err(|e| EncodeError::Payload(e.to_string()))?;
                o.extend_from_slice(b"\"");
                if !p.is_empty() {
                    o.extend_from_slice(b",\"p\":\"");
                    o.extend_from_slice(p.as_bytes());
                    o.extend_from_slice(b"\"");
                }
                o.extend_from_slice(b"}");
                Ok(())
            },
        )
    }
}

mod native;
