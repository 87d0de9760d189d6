//! Typed Bedrock response streams on top of the frame codec: ConverseStream
//! events (PROTOCOL.md §3.3), InvokeModelWithResponseStream chunks per model
//! family (§3.4) and in-stream exceptions (§3.5), decoded for the load agent
//! and encoded, byte-faithfully, for the simulator.
//!
//! Exceptions are *events*, not errors: an exception frame is a well-formed
//! frame that ends the stream, so decoders return it as
//! `…Event::Exception(ServiceError)` (classify it with
//! [`ServiceError::outcome`]). `Err(StreamError)` is reserved for bytes that are
//! not a valid stream; it always counts as [`Outcome::StreamError`].

mod converse;
mod invoke;
mod text_delta;

pub use converse::{
    BlockDelta, BlockStart, ConverseStreamDecoder, ConverseStreamEvent, StreamMetadata,
};
pub use invoke::{
    InvocationMetrics, InvokeStreamDecoder, InvokeStreamEncoder, InvokeStreamEvent, StreamStart,
};

use bytes::{BufMut, BytesMut};

use crate::error::{ErrorCode, Outcome, ServiceError};
use crate::eventstream::{EncodeError, Frame, FrameDecoder, FrameError, HeaderValue, RawHeader};

/// A response event-stream decoder: body chunks in as they arrive, typed
/// events out as soon as their frame is complete. Both stream kinds
/// (ConverseStream and InvokeModelWithResponseStream) implement it, so a
/// client reads either with one loop.
pub trait StreamDecoder {
    /// The events this stream carries.
    type Event;

    /// Appends a chunk of the response body.
    fn push(&mut self, chunk: &[u8]);

    /// The next complete event; `Ok(None)` when more bytes are needed. After
    /// an error every later call returns the same error.
    fn next_event(&mut self) -> Result<Option<Self::Event>, StreamError>;

    /// The frame the event last returned by [`StreamDecoder::next_event`]
    /// came from (one frame can yield several events).
    fn origin(&self) -> EventOrigin;
}

/// The frame an event came from: its place in the stream and, when the
/// server stamped it, when it was written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventOrigin {
    /// Frames decoded so far, this one included: 1 for the stream's first
    /// frame (0 before any). Events of one frame share it.
    pub frames: u64,
    /// The frame's [`crate::WRITTEN_NS_HEADER`] (`CLOCK_MONOTONIC`
    /// nanoseconds at which the simulator handed it to its connection);
    /// `None` when absent (always, from Bedrock) or not an int64.
    pub written_ns: Option<i64>,
}

impl StreamDecoder for ConverseStreamDecoder {
    type Event = ConverseStreamEvent;

    fn push(&mut self, chunk: &[u8]) {
        ConverseStreamDecoder::push(self, chunk);
    }

    fn next_event(&mut self) -> Result<Option<ConverseStreamEvent>, StreamError> {
        ConverseStreamDecoder::next_event(self)
    }

    fn origin(&self) -> EventOrigin {
        ConverseStreamDecoder::origin(self)
    }
}

impl StreamDecoder for InvokeStreamDecoder {
    type Event = InvokeStreamEvent;

    fn push(&mut self, chunk: &[u8]) {
        InvokeStreamDecoder::push(self, chunk);
    }

    fn next_event(&mut self) -> Result<Option<InvokeStreamEvent>, StreamError> {
        InvokeStreamDecoder::next_event(self)
    }

    fn origin(&self) -> EventOrigin {
        InvokeStreamDecoder::origin(self)
    }
}

/// The characters Bedrock's `p` padding field is a prefix of (PROTOCOL.md §3.6).
pub const PADDING_ALPHABET: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// The `p` padding value of `len` characters, capped at the alphabet's 62.
/// The caller picks `len` (from its seeded RNG) so output stays deterministic.
pub fn padding(len: usize) -> &'static str {
    &PADDING_ALPHABET[..len.min(PADDING_ALPHABET.len())]
}

/// A response stream that is not a valid Bedrock event stream.
///
/// Every variant names the frame and its stream offset; all count as
/// [`Outcome::StreamError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// The framing itself is broken (lengths, CRCs, headers, truncation).
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A required string header is absent.
    #[error("event-stream frame #{frame_index} at stream byte {offset}: no string header {header}")]
    MissingHeader {
        /// The header that is missing.
        header: &'static str,
        /// Stream offset of the frame.
        offset: u64,
        /// Index of the frame.
        frame_index: u64,
    },
    /// `:message-type` is not `event`, `exception` or `error`.
    #[error(
        "event-stream frame #{frame_index} at stream byte {offset}: unknown :message-type {message_type:?}"
    )]
    MessageType {
        /// The value received.
        message_type: String,
        /// Stream offset of the frame.
        offset: u64,
        /// Index of the frame.
        frame_index: u64,
    },
    /// The payload of a known event does not have the modelled shape.
    #[error(
        "event-stream frame #{frame_index} at stream byte {offset}: {event_type} payload: {reason}"
    )]
    Payload {
        /// The `:event-type` whose payload failed.
        event_type: String,
        /// What is wrong (JSON or base64 error text, with its position).
        reason: String,
        /// Stream offset of the frame.
        offset: u64,
        /// Index of the frame.
        frame_index: u64,
    },
}

impl StreamError {
    /// How a load test counts a request whose stream failed this way.
    pub fn outcome(&self) -> Outcome {
        Outcome::StreamError
    }
}

/// Where a frame sits in the stream, for error messages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FramePos {
    pub(crate) offset: u64,
    pub(crate) frame_index: u64,
}

impl FramePos {
    pub(crate) fn payload_error(self, event_type: &str, reason: impl ToString) -> StreamError {
        StreamError::Payload {
            event_type: event_type.to_owned(),
            reason: reason.to_string(),
            offset: self.offset,
            frame_index: self.frame_index,
        }
    }
}

/// A decoded frame's meaning at the message level (PROTOCOL.md §3.2).
pub(crate) enum FrameMessage<'f> {
    /// `:message-type: event`, with the `:event-type` value's bytes: the
    /// decoders match them against the names they know, and only an unknown
    /// name or an error message needs it as text ([`header_text`]).
    Event(&'f [u8]),
    /// `:message-type: exception` or `error`.
    Exception(ServiceError),
}

/// Pulls the next frame and reads its message-level headers.
pub(crate) fn next_message(
    frames: &mut FrameDecoder,
) -> Result<Option<(Frame, FramePos)>, StreamError> {
    let pos = FramePos {
        offset: frames.offset(),
        frame_index: frames.frames_decoded(),
    };
    Ok(frames.next_frame()?.map(|f| (f, pos)))
}

/// Reads `:message-type` and the event or exception type of `frame`, and
/// its [`crate::WRITTEN_NS_HEADER`] stamp.
///
/// One pass over the headers as bytes, each name's first occurrence
/// counting (as [`Frame::header`] finds it): no allocation, and only the
/// values used are read as strings, since the decoder checked every
/// header's UTF-8 when the frame completed.
pub(crate) fn classify(
    frame: &Frame,
    pos: FramePos,
) -> Result<(FrameMessage<'_>, Option<i64>), StreamError> {
    let mut message_type = None;
    let mut event_type = None;
    let mut exception_type = None;
    let mut error_code = None;
    let mut error_message = None;
    let mut written = None;
    for header in frame.raw_headers() {
        let slot = match header.name {
            b":message-type" => &mut message_type,
            b":event-type" => &mut event_type,
            b":exception-type" => &mut exception_type,
            b":error-code" => &mut error_code,
            b":error-message" => &mut error_message,
            name if name == crate::eventstream::WRITTEN_NS_HEADER.as_bytes() => &mut written,
            _ => continue,
        };
        slot.get_or_insert(header);
    }
    fn string<'f>(h: Option<RawHeader<'f>>) -> Option<&'f str> {
        h.and_then(|h| h.as_str())
    }
    fn bytes<'f>(h: Option<RawHeader<'f>>) -> Option<&'f [u8]> {
        h.and_then(|h| h.string_bytes())
    }
    let written_ns = written.and_then(|h| h.as_i64());
    let missing = |header| StreamError::MissingHeader {
        header,
        offset: pos.offset,
        frame_index: pos.frame_index,
    };
    let message_type = bytes(message_type).ok_or_else(|| missing(":message-type"))?;
    let message = match message_type {
        b"event" => FrameMessage::Event(bytes(event_type).ok_or_else(|| missing(":event-type"))?),
        b"exception" => {
            let kind = string(exception_type).ok_or_else(|| missing(":exception-type"))?;
            FrameMessage::Exception(ServiceError::from_stream_exception(kind, frame.payload()))
        }
        // Bedrock does not send these (it uses `exception`), but botocore
        // understands them, so a stream that does is still a failed request,
        // not a malformed one.
        b"error" => {
            let raw = string(error_code).unwrap_or_default();
            FrameMessage::Exception(ServiceError {
                code: ErrorCode::from_name(raw).or_else(|| ErrorCode::from_exception_type(raw)),
                raw_code: raw.to_owned(),
                message: string(error_message).unwrap_or_default().to_owned(),
                status: 200,
            })
        }
        other => {
            return Err(StreamError::MessageType {
                message_type: header_text(other),
                offset: pos.offset,
                frame_index: pos.frame_index,
            });
        }
    };
    Ok((message, written_ns))
}

/// A string header's value as text. The frame's decoder checked every
/// header's UTF-8, so nothing is replaced; for the rare paths (an unknown
/// event type, an error message) that need the bytes as a `String`.
pub(crate) fn header_text(value: &[u8]) -> String {
    String::from_utf8_lossy(value).into_owned()
}

/// Appends an event frame with Bedrock's header order and a JSON payload.
pub(crate) fn encode_event_json<T: serde::Serialize>(
    out: &mut BytesMut,
    event_type: &str,
    payload: &T,
) -> Result<(), EncodeError> {
    crate::eventstream::encode_frame_with(
        out,
        &[
            (":event-type", HeaderValue::String(event_type)),
            (":content-type", HeaderValue::String("application/json")),
            (":message-type", HeaderValue::String("event")),
        ],
        |o| write_json(o, payload),
    )
}

/// Serializes `value` straight into `out`.
pub(crate) fn write_json<T: serde::Serialize>(
    out: &mut BytesMut,
    value: &T,
) -> Result<(), EncodeError> {
    serde_json::to_writer(out.writer(), value).map_err(|e| EncodeError::Payload(e.to_string()))
}

/// Appends an in-stream exception frame (PROTOCOL.md §3.5): headers
/// `:exception-type`, `:content-type`, `:message-type`, payload as given.
pub fn encode_exception(
    out: &mut BytesMut,
    exception_type: &str,
    payload: &[u8],
) -> Result<(), EncodeError> {
    crate::eventstream::encode_frame(
        out,
        &[
            (":exception-type", HeaderValue::String(exception_type)),
            (":content-type", HeaderValue::String("application/json")),
            (":message-type", HeaderValue::String("exception")),
        ],
        payload,
    )
}

/// Appends the exception frame Bedrock sends for `code`, payload
/// `{"message":…}` (the §3.5 vector is `ThrottlingException` with
/// [`crate::messages::TOO_MANY_REQUESTS`]).
pub fn encode_service_exception(
    out: &mut BytesMut,
    code: ErrorCode,
    message: &str,
) -> Result<(), EncodeError> {
    encode_error_payload(out, &code.exception_type(), message)
}

fn encode_error_payload(
    out: &mut BytesMut,
    exception_type: &str,
    message: &str,
) -> Result<(), EncodeError> {
    #[derive(serde::Serialize)]
    struct Payload<'a> {
        message: &'a str,
    }
    let mut payload = BytesMut::with_capacity(message.len() + 16);
    write_json(&mut payload, &Payload { message })?;
    encode_exception(out, exception_type, &payload)
}

/// Appends `err` as an exception frame, payload `{"message":…}`.
pub(crate) fn encode_service_error(
    out: &mut BytesMut,
    err: &ServiceError,
) -> Result<(), EncodeError> {
    let exception_type = match err.code {
        Some(code) => code.exception_type(),
        None => err.raw_code.clone(),
    };
    encode_error_payload(out, &exception_type, &err.message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages;

    /// PROTOCOL.md §3.5, built by an independent encoder.
    const THROTTLING_FRAME: &str = "000000b2000000613590d5d30f3a657863657074696f6e2d747970650700137468726f74746c696e67457863657074696f6e0d3a636f6e74656e742d747970650700106170706c69636174696f6e2f6a736f6e0d3a6d6573736167652d74797065070009657863657074696f6e7b226d657373616765223a22546f6f206d616e792072657175657374732c20706c656173652077616974206265666f726520747279696e6720616761696e2e227de8ffb26a";

    #[test]
    fn exception_frame_is_byte_exact() {
        let mut out = BytesMut::new();
        encode_service_exception(
            &mut out,
            ErrorCode::ThrottlingException,
            messages::TOO_MANY_REQUESTS,
        )
        .unwrap();
        assert_eq!(hex::encode(&out), THROTTLING_FRAME);
    }

    #[test]
    fn padding_is_a_capped_prefix() {
        assert_eq!(padding(0), "");
        assert_eq!(padding(2), "ab");
        assert_eq!(padding(1000).len(), 62);
    }
}
