//! `application/vnd.amazon.eventstream` framing (PROTOCOL.md §3.1–3.2): an
//! incremental frame decoder that accepts bytes split at any boundary, checks
//! both CRCs, and a frame encoder that writes straight into a `BytesMut`.
//!
//! Why not `aws-smithy-eventstream`'s `MessageFrameDecoder`: its error kind is
//! crate-private (only a Display string escapes), so a caller cannot tell a
//! prelude CRC from a bad header nor learn which header or byte failed; and it
//! copies every header name, value and the payload into fresh allocations.
//! Here a frame is one zero-copy `Bytes` slice of the receive buffer whose
//! headers were validated once and are re-read on demand. The smithy crate
//! stays the oracle: tests check both decoders agree on every vector and that
//! both encoders produce identical bytes.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

/// The HTTP `Content-Type` of an event-stream response body.
pub const EVENT_STREAM_CONTENT_TYPE: &str = "application/vnd.amazon.eventstream";

/// Prelude: total length, headers length, prelude CRC.
const PRELUDE_LEN: usize = 12;
/// The trailing message CRC.
const CRC_LEN: usize = 4;
/// Smallest frame: prelude and message CRC, no headers, no payload.
const MIN_FRAME_LEN: usize = PRELUDE_LEN + CRC_LEN;
/// Largest frame accepted (aws-c-event-stream's 24 MiB message limit); a
/// larger length prefix means the stream is corrupt, not that a huge frame is
/// coming, so the decoder fails instead of buffering it.
pub const MAX_FRAME_LEN: usize = 24 * 1024 * 1024 + MIN_FRAME_LEN;
/// Header names are one length byte.
const MAX_HEADER_NAME_LEN: usize = 255;
/// String and byte-array values carry a u16 length, bounded at `i16::MAX`
/// as every SDK bounds it.
const MAX_HEADER_VALUE_LEN: usize = i16::MAX as usize;

/// A header value; Bedrock itself only sends strings (type 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderValue<'a> {
    /// Types 0 and 1.
    Bool(bool),
    /// Type 2.
    Byte(i8),
    /// Type 3.
    Int16(i16),
    /// Type 4.
    Int32(i32),
    /// Type 5.
    Int64(i64),
    /// Type 6.
    ByteArray(&'a [u8]),
    /// Type 7.
    String(&'a str),
    /// Type 8: milliseconds since the Unix epoch.
    Timestamp(i64),
    /// Type 9.
    Uuid(u128),
}

impl<'a> HeaderValue<'a> {
    /// The string, when this is a string header.
    pub fn as_str(&self) -> Option<&'a str> {
        match self {
            HeaderValue::String(s) => Some(s),
            _ => None,
        }
    }
}

/// One complete, CRC-checked frame: a zero-copy view of its wire bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    bytes: Bytes,
    headers_end: usize,
}

impl Frame {
    /// The headers, in wire order.
    pub fn headers(&self) -> Headers<'_> {
        Headers {
            rest: &self.bytes[PRELUDE_LEN..self.headers_end],
        }
    }

    /// The headers, in wire order, as bytes: for a caller that matches
    /// names byte for byte and reads one or two values, so the UTF-8 the
    /// decoder already checked is not checked again for every header.
    pub(crate) fn raw_headers(&self) -> RawHeaders<'_> {
        RawHeaders {
            rest: &self.bytes[PRELUDE_LEN..self.headers_end],
        }
    }

    /// The first header called `name`.
    pub fn header(&self, name: &str) -> Option<HeaderValue<'_>> {
        self.headers().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The first header called `name`, when it is a string.
    pub fn str_header(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(|v| v.as_str())
    }

    /// The payload bytes.
    pub fn payload(&self) -> &[u8] {
        &self.bytes[self.headers_end..self.bytes.len() - CRC_LEN]
    }

    /// The payload as a zero-copy slice of the frame.
    pub fn payload_bytes(&self) -> Bytes {
        self.bytes
            .slice(self.headers_end..self.bytes.len() - CRC_LEN)
    }

    /// The whole frame as it was on the wire.
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frame")
            .field("headers", &self.headers().collect::<Vec<_>>())
            .field("payload", &String::from_utf8_lossy(self.payload()))
            .finish()
    }
}

/// Iterator over a validated header block.
#[derive(Debug, Clone)]
pub struct Headers<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Headers<'a> {
    type Item = (&'a str, HeaderValue<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        // The block was validated when the frame was decoded, so a parse
        // failure here cannot happen; ending the iteration is the safe answer.
        let (name, value, used) = parse_header(self.rest).ok()?;
        self.rest = &self.rest[used..];
        Some((name, value))
    }
}

/// Why a frame was rejected; see [`FrameError`] for where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameErrorKind {
    /// `total_length` is below 16 bytes or above [`MAX_FRAME_LEN`].
    #[error("total_length {total_length} is outside 16..={MAX_FRAME_LEN}")]
    MessageLength {
        /// The length prefix read.
        total_length: u32,
    },
    /// The prelude CRC does not match bytes 0..8.
    #[error("prelude CRC is {actual:#010x}, bytes 0..8 hash to {expected:#010x}")]
    PreludeChecksum {
        /// CRC computed over the prelude.
        expected: u32,
        /// CRC carried in the frame.
        actual: u32,
    },
    /// `headers_length` is 1 or does not fit in the frame.
    #[error("headers_length {headers_length} does not fit a frame of total_length {total_length}")]
    HeadersLength {
        /// The headers length read.
        headers_length: u32,
        /// The frame's total length.
        total_length: u32,
    },
    /// A header name is empty or runs past the end of the header block.
    #[error(
        "header #{index} at frame byte {at}: name length {name_len} runs past the header block"
    )]
    HeaderNameLength {
        /// Zero-based header position.
        index: usize,
        /// Offset of the header inside the frame.
        at: usize,
        /// The name length byte.
        name_len: u8,
    },
    /// A header name or string value is not UTF-8.
    #[error("header #{index} at frame byte {at}: name or string value is not UTF-8")]
    HeaderUtf8 {
        /// Zero-based header position.
        index: usize,
        /// Offset of the header inside the frame.
        at: usize,
    },
    /// A header's value type byte is not 0..=9.
    #[error("header {name:?} at frame byte {at}: unknown value type {value_type}")]
    HeaderValueType {
        /// The header name.
        name: String,
        /// Offset of the header inside the frame.
        at: usize,
        /// The type byte.
        value_type: u8,
    },
    /// A header value runs past the end of the header block.
    #[error("header {name:?} at frame byte {at}: value runs past the header block")]
    HeaderValueLength {
        /// The header name.
        name: String,
        /// Offset of the header inside the frame.
        at: usize,
    },
    /// The message CRC does not match the frame's bytes.
    #[error("message CRC is {actual:#010x}, the frame hashes to {expected:#010x}")]
    MessageChecksum {
        /// CRC computed over the frame.
        expected: u32,
        /// CRC carried in the frame.
        actual: u32,
    },
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame: {buffered} bytes of an incomplete frame left over")]
    Truncated {
        /// Bytes buffered when the stream ended.
        buffered: usize,
    },
}

/// A malformed frame, and where in the stream it starts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event-stream frame #{frame_index} at stream byte {offset}: {kind}")]
pub struct FrameError {
    /// What is wrong.
    pub kind: FrameErrorKind,
    /// Byte offset of the frame's first byte in the stream.
    pub offset: u64,
    /// Zero-based index of the frame in the stream.
    pub frame_index: u64,
}

/// Incremental decoder: push body chunks as they arrive, pull frames as soon
/// as they are complete.
///
/// Bytes live in one growable buffer; a completed frame is split off it
/// without copying. Consumed bytes are never copied again: `BytesMut` only
/// moves the unconsumed tail (less than one frame) when it reclaims space.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: BytesMut,
    offset: u64,
    frames: u64,
}

impl FrameDecoder {
    /// A decoder with an empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a chunk of the response body.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete frame, `Ok(None)` when more bytes are needed.
    ///
    /// After an error the stream position is lost; callers stop decoding.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if self.buf.len() < PRELUDE_LEN {
            return Ok(None);
        }
        let total = be_u32(&self.buf[0..4]);
        if (total as usize) < MIN_FRAME_LEN || total as usize > MAX_FRAME_LEN {
            return Err(self.error(FrameErrorKind::MessageLength {
                total_length: total,
            }));
        }
        let prelude_crc = be_u32(&self.buf[8..12]);
        let expected = crc32fast::hash(&self.buf[0..8]);
        if expected != prelude_crc {
            return Err(self.error(FrameErrorKind::PreludeChecksum {
                expected,
                actual: prelude_crc,
            }));
        }
        let headers_len = be_u32(&self.buf[4..8]);
        if headers_len == 1 || headers_len as usize > total as usize - MIN_FRAME_LEN {
            return Err(self.error(FrameErrorKind::HeadersLength {
                headers_length: headers_len,
                total_length: total,
            }));
        }
        let total = total as usize;
        if self.buf.len() < total {
            // Grow once to the whole frame so later pushes do not reallocate
            // repeatedly while a large frame trickles in.
            self.buf.reserve(total - self.buf.len());
            return Ok(None);
        }
        let headers_end = PRELUDE_LEN + headers_len as usize;
        if let Err(kind) = validate_headers(&self.buf[..headers_end]) {
            return Err(self.error(kind));
        }
        let body_end = total - CRC_LEN;
        let expected = crc32fast::hash(&self.buf[..body_end]);
        let actual = be_u32(&self.buf[body_end..total]);
        if expected != actual {
            return Err(self.error(FrameErrorKind::MessageChecksum { expected, actual }));
        }
        let bytes = self.buf.split_to(total).freeze();
        self.offset += total as u64;
        self.frames += 1;
        Ok(Some(Frame { bytes, headers_end }))
    }

    /// Checks that the stream ended on a frame boundary.
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(self.error(FrameErrorKind::Truncated {
                buffered: self.buf.len(),
            }))
        }
    }

    /// Bytes buffered but not yet returned as a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Stream offset of the next frame's first byte.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Frames returned so far; the index of the next frame.
    pub fn frames_decoded(&self) -> u64 {
        self.frames
    }

    fn error(&self, kind: FrameErrorKind) -> FrameError {
        FrameError {
            kind,
            offset: self.offset,
            frame_index: self.frames,
        }
    }
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Validates every header in `frame[12..]` (the slice ends at the block end).
fn validate_headers(frame: &[u8]) -> Result<(), FrameErrorKind> {
    let mut at = PRELUDE_LEN;
    let mut index = 0;
    while at < frame.len() {
        let (_, used) = check_header(&frame[at..]).map_err(|e| e.into_kind(index, at))?;
        at += used;
        index += 1;
    }
    Ok(())
}

/// Whether `bytes` are UTF-8. Header names and values are short and nearly
/// always ASCII, which `is_ascii` checks a word at a time; `from_utf8`'s
/// general validation took 4–5% of an agent's CPU at 64 connections when it
/// ran on every header (BENCHMARKS.md), so it runs only on the rest.
fn is_utf8(bytes: &[u8]) -> bool {
    bytes.is_ascii() || std::str::from_utf8(bytes).is_ok()
}

/// A header parse failure before it is placed in the frame.
enum HeaderFault {
    NameLength(u8),
    Utf8,
    ValueType(String, u8),
    ValueLength(String),
}

impl HeaderFault {
    fn into_kind(self, index: usize, at: usize) -> FrameErrorKind {
        match self {
            HeaderFault::NameLength(name_len) => FrameErrorKind::HeaderNameLength {
                index,
                at,
                name_len,
            },
            HeaderFault::Utf8 => FrameErrorKind::HeaderUtf8 { index, at },
            HeaderFault::ValueType(name, value_type) => FrameErrorKind::HeaderValueType {
                name,
                at,
                value_type,
            },
            HeaderFault::ValueLength(name) => FrameErrorKind::HeaderValueLength { name, at },
        }
    }
}

/// One header as its wire bytes, bounds checked but not yet typed: the
/// name and value unread for UTF-8 (see [`Frame::raw_headers`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawHeader<'a> {
    /// The name's bytes.
    pub(crate) name: &'a [u8],
    value_type: u8,
    /// The value's bytes (without a string's length prefix).
    value: &'a [u8],
}

impl<'a> RawHeader<'a> {
    /// The value, when it is a string (type 7) of UTF-8.
    pub(crate) fn as_str(&self) -> Option<&'a str> {
        (self.value_type == 7)
            .then(|| std::str::from_utf8(self.value).ok())
            .flatten()
    }

    /// The value's bytes, when it is a string (type 7): for a caller that
    /// compares it with known names, as the frame's decoder already checked
    /// its UTF-8.
    pub(crate) fn string_bytes(&self) -> Option<&'a [u8]> {
        (self.value_type == 7).then_some(self.value)
    }

    /// The value, when it is an `Int64` (type 5).
    pub(crate) fn as_i64(&self) -> Option<i64> {
        let raw: [u8; 8] = self.value.try_into().ok()?;
        (self.value_type == 5).then(|| i64::from_be_bytes(raw))
    }
}

/// Iterator over a validated header block's headers as bytes.
#[derive(Debug, Clone)]
pub(crate) struct RawHeaders<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for RawHeaders<'a> {
    type Item = RawHeader<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        // Validated when the frame was decoded, as for [`Headers`].
        let (header, used) = split_header(self.rest).ok()?;
        self.rest = &self.rest[used..];
        Some(header)
    }
}

/// Splits the header at the start of `block` into its name, type and value
/// bytes, checking only lengths; returns it and the bytes used.
fn split_header(block: &[u8]) -> Result<(RawHeader<'_>, usize), SplitFault<'_>> {
    let Some(&len_byte) = block.first() else {
        return Err(SplitFault::NameLength(0));
    };
    let name_len = len_byte as usize;
    // The type byte must follow the name inside the block.
    if name_len == 0 || 1 + name_len >= block.len() {
        return Err(SplitFault::NameLength(len_byte));
    }
    let name = &block[1..1 + name_len];
    let value_type = block[1 + name_len];
    let v = &block[2 + name_len..];
    let short = || SplitFault::ValueLength(name);
    let (value, used) = match value_type {
        0 | 1 => (&v[..0], 0),
        2 | 3 | 4 | 5 | 8 | 9 => {
            let n = match value_type {
                2 => 1,
                3 => 2,
                4 => 4,
                5 | 8 => 8,
                _ => 16,
            };
            (v.get(..n).ok_or_else(short)?, n)
        }
        6 | 7 => {
            let b = v.get(..2).ok_or_else(short)?;
            let len = u16::from_be_bytes([b[0], b[1]]) as usize;
            (v.get(2..2 + len).ok_or_else(short)?, 2 + len)
        }
        other => return Err(SplitFault::ValueType(name, other)),
    };
    let header = RawHeader {
        name,
        value_type,
        value,
    };
    Ok((header, 2 + name_len + used))
}

/// A header whose lengths or type are wrong, before its name is checked.
enum SplitFault<'a> {
    NameLength(u8),
    ValueType(&'a [u8], u8),
    ValueLength(&'a [u8]),
}

/// [`split_header`] with its faults as the frame reports them: a name that
/// is not UTF-8 is reported as such before anything wrong with its value,
/// since the name is what those faults would name.
fn split_named(block: &[u8]) -> Result<(RawHeader<'_>, usize), HeaderFault> {
    fn named(name: &[u8], fault: impl FnOnce(String) -> HeaderFault) -> HeaderFault {
        match std::str::from_utf8(name) {
            Ok(name) => fault(name.to_owned()),
            Err(_) => HeaderFault::Utf8,
        }
    }
    split_header(block).map_err(|fault| match fault {
        SplitFault::NameLength(len) => HeaderFault::NameLength(len),
        SplitFault::ValueType(name, t) => named(name, |n| HeaderFault::ValueType(n, t)),
        SplitFault::ValueLength(name) => named(name, HeaderFault::ValueLength),
    })
}

/// Checks one header at the start of `block`: its lengths, its type and
/// the UTF-8 of its name and string value; returns it and the bytes used.
fn check_header(block: &[u8]) -> Result<(RawHeader<'_>, usize), HeaderFault> {
    let (raw, used) = split_named(block)?;
    if !is_utf8(raw.name) || (raw.value_type == 7 && !is_utf8(raw.value)) {
        return Err(HeaderFault::Utf8);
    }
    Ok((raw, used))
}

/// Parses one header at the start of `block`; returns it and the bytes used.
/// Checks what [`check_header`] checks, converting as it goes.
fn parse_header(block: &[u8]) -> Result<(&str, HeaderValue<'_>, usize), HeaderFault> {
    let (raw, used) = split_named(block)?;
    let utf8 = |b| std::str::from_utf8(b).map_err(|_| HeaderFault::Utf8);
    let name = utf8(raw.name)?;
    let v = raw.value;
    let value = match raw.value_type {
        0 => HeaderValue::Bool(true),
        1 => HeaderValue::Bool(false),
        2 => HeaderValue::Byte(v[0] as i8),
        3 => HeaderValue::Int16(i16::from_be_bytes([v[0], v[1]])),
        4 => HeaderValue::Int32(be_u32(v) as i32),
        5 | 8 => {
            let mut raw8 = [0u8; 8];
            raw8.copy_from_slice(v);
            let n = i64::from_be_bytes(raw8);
            if raw.value_type == 5 {
                HeaderValue::Int64(n)
            } else {
                HeaderValue::Timestamp(n)
            }
        }
        6 => HeaderValue::ByteArray(v),
        7 => HeaderValue::String(utf8(v)?),
        _ => {
            let mut raw16 = [0u8; 16];
            raw16.copy_from_slice(v);
            HeaderValue::Uuid(u128::from_be_bytes(raw16))
        }
    };
    Ok((name, value, used))
}

/// A frame that cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// Header names are 1..=255 bytes.
    #[error("header name {name:?} is {len} bytes; names must be 1..=255 bytes")]
    HeaderName {
        /// The (possibly long) name.
        name: String,
        /// Its length in bytes.
        len: usize,
    },
    /// String and byte-array values are at most 32767 bytes.
    #[error("header {name:?} value is {len} bytes; the limit is 32767")]
    HeaderValueTooLong {
        /// The header name.
        name: String,
        /// The value length in bytes.
        len: usize,
    },
    /// The frame would exceed [`MAX_FRAME_LEN`].
    #[error("frame of {len} bytes exceeds the {MAX_FRAME_LEN}-byte limit")]
    FrameTooLong {
        /// The frame length that would have been written.
        len: usize,
    },
    /// The payload writer failed (a JSON serializer error).
    #[error("payload could not be encoded: {0}")]
    Payload(String),
    /// Bytes given as a run of whole frames are not one: a length prefix
    /// runs past the end, or is too short for a frame.
    #[error("not a run of whole frames: the frame at byte {at} is cut or malformed")]
    NotWholeFrames {
        /// Offset of the offending frame in the bytes given.
        at: usize,
    },
}

/// Appends one frame to `out`: `headers` in the given order, then whatever
/// `write_payload` appends. Lengths and CRCs are patched in afterwards, so the
/// payload is serialized once, in place. On error `out` is left as it was.
pub fn encode_frame_with<F>(
    out: &mut BytesMut,
    headers: &[(&str, HeaderValue<'_>)],
    write_payload: F,
) -> Result<(), EncodeError>
where
    F: FnOnce(&mut BytesMut) -> Result<(), EncodeError>,
{
    let start = out.len();
    let result = encode_frame_inner(out, start, headers, write_payload);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// Appends one frame with a ready-made payload.
pub fn encode_frame(
    out: &mut BytesMut,
    headers: &[(&str, HeaderValue<'_>)],
    payload: &[u8],
) -> Result<(), EncodeError> {
    out.reserve(MIN_FRAME_LEN + 128 + payload.len());
    encode_frame_with(out, headers, |o| {
        o.extend_from_slice(payload);
        Ok(())
    })
}

fn encode_frame_inner<F>(
    out: &mut BytesMut,
    start: usize,
    headers: &[(&str, HeaderValue<'_>)],
    write_payload: F,
) -> Result<(), EncodeError>
where
    F: FnOnce(&mut BytesMut) -> Result<(), EncodeError>,
{
    out.put_bytes(0, PRELUDE_LEN);
    for (name, value) in headers {
        put_header(out, name, value)?;
    }
    let headers_len = out.len() - start - PRELUDE_LEN;
    write_payload(out)?;
    close_frame(out, start, headers_len)
}

/// Completes the frame begun at `out[start]` (a zeroed prelude, then
/// `headers_len` bytes of headers, then the payload, up to `out`'s end):
/// writes its lengths and prelude CRC, and appends its message CRC.
fn close_frame(out: &mut BytesMut, start: usize, headers_len: usize) -> Result<(), EncodeError> {
    let total = out.len() - start + CRC_LEN;
    if total > MAX_FRAME_LEN {
        return Err(EncodeError::FrameTooLong { len: total });
    }
    // Both fit in u32: total <= MAX_FRAME_LEN and headers_len < total.
    let frame = &mut out[start..];
    frame[0..4].copy_from_slice(&(total as u32).to_be_bytes());
    frame[4..8].copy_from_slice(&(headers_len as u32).to_be_bytes());
    let prelude_crc = crc32fast::hash(&frame[0..8]);
    frame[8..12].copy_from_slice(&prelude_crc.to_be_bytes());
    let message_crc = crc32fast::hash(frame);
    out.put_u32(message_crc);
    Ok(())
}

/// The header `quarry-sim` adds to every frame of a streaming answer when
/// asked to (`stamp_frames`): an int64 (type 5), the `CLOCK_MONOTONIC`
/// nanoseconds at which the simulator handed the frame to its connection.
/// A client on the same host pairs it with its own read time to measure its
/// own delay. Not a Bedrock header: Bedrock never sends it.
pub const WRITTEN_NS_HEADER: &str = "x-quarry-written-ns";

/// A run of whole frames, each given one more int64 header whose value is
/// set last, by [`PendingStamp::stamp`], just before the bytes are sent:
/// the work left after the clock is read is one 8-byte write and one
/// message CRC per frame.
#[derive(Debug)]
pub struct PendingStamp {
    /// The frames, each ending its header block with the int64 header.
    frames: BytesMut,
    /// How many.
    count: u64,
}

/// Bytes an int64 header takes after its name: the type byte and the value.
const INT64_VALUE_LEN: usize = 1 + 8;

impl PendingStamp {
    /// Copies `frames` (whole frames, as the encoders write them), adding an
    /// int64 header `name` after each frame's other headers. Fails when
    /// `frames` is not a run of whole frames, the name is not 1..=255
    /// bytes, or a frame would exceed [`MAX_FRAME_LEN`].
    pub fn new(frames: &[u8], name: &str) -> Result<Self, EncodeError> {
        let count = frame_bounds(frames).count();
        let added = 1 + name.len() + INT64_VALUE_LEN;
        let mut out = BytesMut::with_capacity(frames.len() + count * added);
        for bounds in frame_bounds(frames) {
            let (at, total, headers_len) = bounds?;
            let frame = &frames[at..at + total];
            let start = out.len();
            out.put_bytes(0, PRELUDE_LEN);
            out.extend_from_slice(&frame[PRELUDE_LEN..PRELUDE_LEN + headers_len]);
            put_header(&mut out, name, &HeaderValue::Int64(0))?;
            let new_headers_len = out.len() - start - PRELUDE_LEN;
            out.extend_from_slice(&frame[PRELUDE_LEN + headers_len..total - CRC_LEN]);
            close_frame(&mut out, start, new_headers_len)?;
        }
        Ok(PendingStamp {
            frames: out,
            count: count as u64,
        })
    }

    /// How many frames there are.
    pub fn frames(&self) -> u64 {
        self.count
    }

    /// Sets every frame's added header to `value`, recomputes each frame's
    /// message CRC (the prelude's does not cover header values), and hands
    /// the frames over.
    pub fn stamp(mut self, value: i64) -> Bytes {
        let mut at = 0;
        while at < self.frames.len() {
            let frame = &mut self.frames[at..];
            let total = be_u32(&frame[0..4]) as usize;
            let headers_end = PRELUDE_LEN + be_u32(&frame[4..8]) as usize;
            // The added header is the block's last: its value ends the block.
            frame[headers_end - 8..headers_end].copy_from_slice(&value.to_be_bytes());
            let body_end = total - CRC_LEN;
            let crc = crc32fast::hash(&frame[..body_end]);
            frame[body_end..total].copy_from_slice(&crc.to_be_bytes());
            at += total;
        }
        self.frames.freeze()
    }
}

/// `(offset, total length, headers length)` of each frame in a run of
/// frames, checking only that each length prefix fits.
fn frame_bounds(frames: &[u8]) -> impl Iterator<Item = Result<(usize, usize, usize), EncodeError>> {
    let mut at = 0;
    std::iter::from_fn(move || {
        if at >= frames.len() {
            return None;
        }
        let rest = &frames[at..];
        let here = at;
        let bad = EncodeError::NotWholeFrames { at: here };
        if rest.len() < MIN_FRAME_LEN {
            at = frames.len();
            return Some(Err(bad));
        }
        let total = be_u32(&rest[0..4]) as usize;
        let headers_len = be_u32(&rest[4..8]) as usize;
        if total < MIN_FRAME_LEN || total > rest.len() || headers_len > total - MIN_FRAME_LEN {
            at = frames.len();
            return Some(Err(bad));
        }
        at += total;
        Some(Ok((here, total, headers_len)))
    })
}

fn put_header(out: &mut BytesMut, name: &str, value: &HeaderValue<'_>) -> Result<(), EncodeError> {
    if name.is_empty() || name.len() > MAX_HEADER_NAME_LEN {
        return Err(EncodeError::HeaderName {
            name: name.to_owned(),
            len: name.len(),
        });
    }
    out.put_u8(name.len() as u8);
    out.put_slice(name.as_bytes());
    let var = |out: &mut BytesMut, ty: u8, bytes: &[u8]| {
        if bytes.len() > MAX_HEADER_VALUE_LEN {
            return Err(EncodeError::HeaderValueTooLong {
                name: name.to_owned(),
                len: bytes.len(),
            });
        }
        out.put_u8(ty);
        out.put_u16(bytes.len() as u16);
        out.put_slice(bytes);
        Ok(())
    };
    match *value {
        HeaderValue::Bool(true) => out.put_u8(0),
        HeaderValue::Bool(false) => out.put_u8(1),
        HeaderValue::Byte(b) => {
            out.put_u8(2);
            out.put_i8(b);
        }
        HeaderValue::Int16(n) => {
            out.put_u8(3);
            out.put_i16(n);
        }
        HeaderValue::Int32(n) => {
            out.put_u8(4);
            out.put_i32(n);
        }
        HeaderValue::Int64(n) => {
            out.put_u8(5);
            out.put_i64(n);
        }
        HeaderValue::ByteArray(b) => var(out, 6, b)?,
        HeaderValue::String(s) => var(out, 7, s.as_bytes())?,
        HeaderValue::Timestamp(ms) => {
            out.put_u8(8);
            out.put_i64(ms);
        }
        HeaderValue::Uuid(u) => {
            out.put_u8(9);
            out.put_u128(u);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(headers: &[(&str, HeaderValue<'_>)], payload: &[u8]) -> BytesMut {
        let mut out = BytesMut::new();
        encode_frame(&mut out, headers, payload).unwrap();
        out
    }

    #[test]
    fn empty_message_matches_the_crt_vector() {
        let out = frame(&[], b"");
        assert_eq!(hex::encode(&out), "000000100000000005c248eb7d98c8ff");
    }

    #[test]
    fn frames_come_out_one_by_one_and_then_none() {
        let mut body = frame(&[("a", HeaderValue::String("x"))], b"one");
        body.extend_from_slice(&frame(&[], b"two"));
        let mut dec = FrameDecoder::new();
        dec.push(&body[..5]);
        assert_eq!(dec.next_frame().unwrap(), None);
        dec.push(&body[5..]);
        let first = dec.next_frame().unwrap().unwrap();
        assert_eq!(first.str_header("a"), Some("x"));
        assert_eq!(first.payload(), b"one");
        assert_eq!(dec.offset(), first.as_bytes().len() as u64);
        assert_eq!(dec.next_frame().unwrap().unwrap().payload(), b"two");
        assert_eq!(dec.next_frame().unwrap(), None);
        dec.finish().unwrap();
    }

    #[test]
    fn errors_name_the_frame_and_offset() {
        let good = frame(&[], b"ok");
        let mut body = good.clone();
        let mut bad = frame(&[], b"no");
        let last = bad.len() - 1;
        bad[last] ^= 1;
        body.extend_from_slice(&bad);
        let mut dec = FrameDecoder::new();
        dec.push(&body);
        dec.next_frame().unwrap().unwrap();
        let err = dec.next_frame().unwrap_err();
        assert_eq!(err.frame_index, 1);
        assert_eq!(err.offset, good.len() as u64);
        assert!(matches!(err.kind, FrameErrorKind::MessageChecksum { .. }));
        assert!(
            err.to_string().contains("frame #1 at stream byte 18"),
            "{err}"
        );
    }

    /// A frame around a raw header block, both CRCs right.
    fn raw_frame(headers: &[u8], payload: &[u8]) -> Vec<u8> {
        let total = PRELUDE_LEN + headers.len() + payload.len() + CRC_LEN;
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&(total as u32).to_be_bytes());
        out.extend_from_slice(&(headers.len() as u32).to_be_bytes());
        out.extend_from_slice(&crc32fast::hash(&out).to_be_bytes());
        out.extend_from_slice(headers);
        out.extend_from_slice(payload);
        out.extend_from_slice(&crc32fast::hash(&out).to_be_bytes());
        out
    }

    /// One header's wire bytes with a one-byte length name and a u16
    /// length value of type `value_type`.
    fn raw_header(name: &[u8], value_type: u8, value: &[u8]) -> Vec<u8> {
        let mut out = vec![name.len() as u8];
        out.extend_from_slice(name);
        out.push(value_type);
        out.extend_from_slice(&(value.len() as u16).to_be_bytes());
        out.extend_from_slice(value);
        out
    }

    fn decode_raw(headers: &[u8]) -> Result<Frame, FrameErrorKind> {
        let mut dec = FrameDecoder::new();
        dec.push(&raw_frame(headers, b"{}"));
        dec.next_frame().map(Option::unwrap).map_err(|e| e.kind)
    }

    /// Header UTF-8 is checked once, when the frame completes: non-ASCII
    /// UTF-8 is accepted (the ASCII fast path is only a fast path), bytes
    /// that are not UTF-8 are refused naming the header, and a name that is
    /// not UTF-8 is reported as such before what is wrong with its value.
    #[test]
    fn header_utf8_is_checked_beyond_ascii() {
        let mut block = raw_header(b":event-type", 7, b"delta");
        block.extend(raw_header(
            "n\u{e4}me".as_bytes(),
            7,
            "\u{fc}n\u{ef}code \u{2713}".as_bytes(),
        ));
        let frame = decode_raw(&block).unwrap();
        assert_eq!(
            frame.str_header("n\u{e4}me"),
            Some("\u{fc}n\u{ef}code \u{2713}")
        );
        let raw: Vec<_> = frame.raw_headers().map(|h| h.as_str()).collect();
        assert_eq!(raw, [Some("delta"), Some("\u{fc}n\u{ef}code \u{2713}")]);

        let second = raw_header(b":event-type", 7, b"delta").len();
        let mut bad_value = raw_header(b":event-type", 7, b"delta");
        bad_value.extend(raw_header(b"name", 7, &[b'o', 0xc3, b'k']));
        assert_eq!(
            decode_raw(&bad_value).unwrap_err(),
            FrameErrorKind::HeaderUtf8 {
                index: 1,
                at: PRELUDE_LEN + second
            }
        );
        // Bytes, not a string: not checked.
        let bytes = raw_header(b"name", 6, &[0xff, 0xfe]);
        assert!(decode_raw(&bytes).is_ok());

        let bad_name_and_type = raw_header(&[0xff, b'x'], 42, b"");
        assert_eq!(
            decode_raw(&bad_name_and_type).unwrap_err(),
            FrameErrorKind::HeaderUtf8 {
                index: 0,
                at: PRELUDE_LEN
            }
        );
        let bad_type = raw_header("x\u{e9}".as_bytes(), 42, b"");
        assert_eq!(
            decode_raw(&bad_type).unwrap_err(),
            FrameErrorKind::HeaderValueType {
                name: "x\u{e9}".to_owned(),
                at: PRELUDE_LEN,
                value_type: 42
            }
        );
    }

    #[test]
    fn absurd_length_fails_before_buffering() {
        let mut dec = FrameDecoder::new();
        dec.push(&[0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let err = dec.next_frame().unwrap_err();
        assert!(matches!(err.kind, FrameErrorKind::MessageLength { .. }));
    }

    #[test]
    fn truncated_stream_is_reported_by_finish() {
        let body = frame(&[], b"payload");
        let mut dec = FrameDecoder::new();
        dec.push(&body[..body.len() - 1]);
        assert_eq!(dec.next_frame().unwrap(), None);
        let err = dec.finish().unwrap_err();
        assert_eq!(
            err.kind,
            FrameErrorKind::Truncated {
                buffered: body.len() - 1
            }
        );
    }

    #[test]
    fn a_pending_stamp_adds_one_int64_header_to_every_frame() {
        let mut body = frame(
            &[
                (":event-type", HeaderValue::String("chunk")),
                (":message-type", HeaderValue::String("event")),
            ],
            b"one",
        );
        body.extend_from_slice(&frame(&[], b"two"));
        let stamped = PendingStamp::new(&body, WRITTEN_NS_HEADER)
            .unwrap()
            .stamp(-1_234_567_890_123);
        let mut dec = FrameDecoder::new();
        dec.push(&stamped);
        let first = dec.next_frame().unwrap().unwrap();
        let headers: Vec<_> = first.headers().collect();
        assert_eq!(
            headers,
            [
                (":event-type", HeaderValue::String("chunk")),
                (":message-type", HeaderValue::String("event")),
                (WRITTEN_NS_HEADER, HeaderValue::Int64(-1_234_567_890_123)),
            ]
        );
        assert_eq!(first.payload(), b"one");
        let second = dec.next_frame().unwrap().unwrap();
        assert_eq!(
            second.header(WRITTEN_NS_HEADER),
            Some(HeaderValue::Int64(-1_234_567_890_123))
        );
        assert_eq!(second.payload(), b"two");
        assert_eq!(dec.next_frame().unwrap(), None);
        dec.finish().unwrap();
        // The same frame encoded with the header from the start.
        let direct = frame(
            &[(WRITTEN_NS_HEADER, HeaderValue::Int64(-1_234_567_890_123))],
            b"two",
        );
        assert_eq!(second.as_bytes()[..], direct[..]);
    }

    #[test]
    fn a_pending_stamp_refuses_cut_frames() {
        let body = frame(&[], b"payload");
        let mut cut = body.clone();
        cut.extend_from_slice(&body[..body.len() - 1]);
        let err = PendingStamp::new(&cut, WRITTEN_NS_HEADER).unwrap_err();
        assert_eq!(err, EncodeError::NotWholeFrames { at: body.len() });
        assert!(PendingStamp::new(&[], WRITTEN_NS_HEADER).is_ok());
    }

    #[test]
    fn encoder_rejects_bad_headers_and_leaves_buffer_untouched() {
        let mut out = BytesMut::from(&b"keep"[..]);
        let long = "n".repeat(256);
        let err = encode_frame(&mut out, &[(&long, HeaderValue::Bool(true))], b"").unwrap_err();
        assert!(matches!(err, EncodeError::HeaderName { len: 256, .. }));
        let value = "v".repeat(32768);
        let err = encode_frame(&mut out, &[("h", HeaderValue::String(&value))], b"").unwrap_err();
        assert!(matches!(
            err,
            EncodeError::HeaderValueTooLong { len: 32768, .. }
        ));
        assert_eq!(&out[..], b"keep");
    }
}
