//! Event-stream conformance: the smithy-rs vectors, the real ConverseStream
//! capture (PROTOCOL.md §3.3), the §3.5 exception vector, split-point
//! invariance, IMWRS per-family round trips, and differential checks against
//! `aws-smithy-eventstream` as an independent oracle.

use std::path::PathBuf;

use aws_smithy_eventstream::frame::{read_message_from, write_message_to};
use aws_smithy_types::event_stream::{Header, HeaderValue as SmithyValue, Message};
use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use quarry_bedrock::{
    BlockDelta, BlockStart, ConverseStreamDecoder, ConverseStreamEvent, ErrorCode, EventOrigin,
    FrameDecoder, FrameErrorKind, HeaderValue, InvocationMetrics, InvokeStreamDecoder,
    InvokeStreamEncoder, InvokeStreamEvent, ModelFamily, Outcome, PendingStamp, ServiceError,
    ServiceTierType, StreamError, StreamMetadata, StreamStart, TokenUsage, WRITTEN_NS_HEADER,
    encode_exception, encode_frame, messages,
};
use serde_json::json;

fn testdata(rel: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn capture() -> Vec<u8> {
    testdata("captures/converse-stream-claude-sonnet-4-6.eventstream")
}

fn decode_one(bytes: &[u8]) -> Result<quarry_bedrock::Frame, quarry_bedrock::FrameError> {
    let mut dec = FrameDecoder::new();
    dec.push(bytes);
    let frame = dec.next_frame()?.expect("a whole frame was pushed");
    dec.finish()?;
    Ok(frame)
}

fn smithy_value(v: HeaderValue<'_>) -> SmithyValue {
    match v {
        HeaderValue::Bool(b) => SmithyValue::Bool(b),
        HeaderValue::Byte(b) => SmithyValue::Byte(b),
        HeaderValue::Int16(n) => SmithyValue::Int16(n),
        HeaderValue::Int32(n) => SmithyValue::Int32(n),
        HeaderValue::Int64(n) => SmithyValue::Int64(n),
        HeaderValue::ByteArray(b) => SmithyValue::ByteArray(Bytes::copy_from_slice(b)),
        HeaderValue::String(s) => SmithyValue::String(s.to_owned().into()),
        HeaderValue::Timestamp(ms) => {
            SmithyValue::Timestamp(aws_smithy_types::DateTime::from_millis(ms))
        }
        HeaderValue::Uuid(u) => SmithyValue::Uuid(u),
    }
}

/// Our frame, as smithy's `Message`, to compare with its decoder.
fn as_smithy(frame: &quarry_bedrock::Frame) -> Message {
    let headers = frame
        .headers()
        .map(|(n, v)| Header::new(n.to_owned(), smithy_value(v)))
        .collect();
    Message::new_from_parts(headers, Bytes::copy_from_slice(frame.payload()))
}

#[test]
fn valid_vectors_decode_like_smithy_with_expected_headers() {
    for name in [
        "valid_empty_payload",
        "valid_no_headers",
        "valid_with_all_headers_and_payload",
    ] {
        let bytes = testdata(&format!("eventstream/{name}"));
        let ours = decode_one(&bytes).unwrap();
        let theirs = read_message_from(&mut Bytes::from(bytes.clone())).unwrap();
        assert_eq!(as_smithy(&ours), theirs, "{name}");
        assert_eq!(ours.as_bytes().as_ref(), &bytes[..]);
    }
    let f = decode_one(&testdata("eventstream/valid_empty_payload")).unwrap();
    assert_eq!(f.header("some-header"), Some(HeaderValue::Int16(500)));
    assert!(f.payload().is_empty());
    let f = decode_one(&testdata("eventstream/valid_no_headers")).unwrap();
    assert_eq!(f.headers().count(), 0);
    assert_eq!(f.payload(), b"another test payload");
    let f = decode_one(&testdata("eventstream/valid_with_all_headers_and_payload")).unwrap();
    let headers: Vec<_> = f.headers().collect();
    assert_eq!(
        headers,
        [
            ("true", HeaderValue::Bool(true)),
            ("false", HeaderValue::Bool(false)),
            ("byte", HeaderValue::Byte(50)),
            ("short", HeaderValue::Int16(20_000)),
            ("int", HeaderValue::Int32(500_000)),
            ("long", HeaderValue::Int64(50_000_000_000)),
            ("bytes", HeaderValue::ByteArray(b"some bytes")),
            ("str", HeaderValue::String("some str")),
            ("time", HeaderValue::Timestamp(5_000_000_000)),
            (
                "uuid",
                HeaderValue::Uuid(0xb79bc914_de21_4e13_b8b2_bc47e85b7f0b)
            ),
        ]
    );
    assert_eq!(f.payload(), b"some payload");
}

#[test]
fn valid_vectors_re_encode_byte_for_byte() {
    for name in [
        "valid_empty_payload",
        "valid_no_headers",
        "valid_with_all_headers_and_payload",
    ] {
        let bytes = testdata(&format!("eventstream/{name}"));
        let f = decode_one(&bytes).unwrap();
        let headers: Vec<_> = f.headers().collect();
        let mut out = BytesMut::new();
        encode_frame(&mut out, &headers, f.payload()).unwrap();
        assert_eq!(&out[..], &bytes[..], "{name}");
    }
}

#[test]
fn invalid_vectors_are_rejected_with_the_right_kind() {
    let kind = |name: &str| {
        let err = decode_one(&testdata(&format!("eventstream/{name}"))).unwrap_err();
        assert_eq!((err.offset, err.frame_index), (0, 0), "{name}");
        err.kind
    };
    assert_eq!(
        kind("invalid_prelude_checksum"),
        FrameErrorKind::PreludeChecksum {
            expected: 0x8BB4_95FB,
            actual: 0xDEAD_BEEF
        }
    );
    assert_eq!(
        kind("invalid_message_checksum"),
        FrameErrorKind::MessageChecksum {
            expected: 0x01a0_5860,
            actual: 0xDEAD_BEEF
        }
    );
    assert_eq!(
        kind("invalid_headers_length"),
        FrameErrorKind::HeadersLength {
            headers_length: 77,
            total_length: 89
        }
    );
    assert_eq!(
        kind("invalid_header_value_type"),
        FrameErrorKind::HeaderValueType {
            name: "byte".into(),
            at: 25,
            value_type: 0x60
        }
    );
    // The third header's name length byte is 0xff: it runs past the 122-byte block.
    assert_eq!(
        kind("invalid_header_name_length"),
        FrameErrorKind::HeaderNameLength {
            index: 2,
            at: 25,
            name_len: 0xff
        }
    );
    // Name length 0x66 (102) in a 77-byte block. smithy reports this file as
    // bad UTF-8 because it bounds the name by the buffer, not the block.
    assert_eq!(
        kind("invalid_header_name_length_too_long"),
        FrameErrorKind::HeaderNameLength {
            index: 1,
            at: 18,
            name_len: 0x66
        }
    );
    assert_eq!(
        kind("invalid_header_string_value_length"),
        FrameErrorKind::HeaderValueLength {
            name: "str".into(),
            at: 83
        }
    );
    assert_eq!(
        kind("invalid_header_string_length_cut_off"),
        FrameErrorKind::HeaderValueLength {
            name: "str".into(),
            at: 83
        }
    );
}

#[test]
fn invalid_vectors_are_rejected_by_smithy_too() {
    for entry in
        std::fs::read_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/eventstream"))
            .unwrap()
    {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let ours = decode_one(&bytes).is_ok();
        let theirs = read_message_from(&mut Bytes::from(bytes)).is_ok();
        assert_eq!(ours, theirs, "{name}");
        assert_eq!(ours, name.starts_with("valid_"), "{name}");
    }
}

fn golden_events() -> Vec<ConverseStreamEvent> {
    let delta = |t: &str| ConverseStreamEvent::ContentBlockDelta {
        content_block_index: 0,
        delta: BlockDelta::Text(t.into()),
    };
    vec![
        ConverseStreamEvent::MessageStart {
            role: "assistant".into(),
        },
        delta("OK"),
        delta("."),
        ConverseStreamEvent::ContentBlockStop {
            content_block_index: 0,
        },
        ConverseStreamEvent::MessageStop {
            stop_reason: "end_turn".into(),
            additional_model_response_fields: Some(json!({"delta":{"stop_sequence":null}})),
        },
        ConverseStreamEvent::Metadata(StreamMetadata {
            usage: TokenUsage {
                input_tokens: 12,
                output_tokens: 5,
                ..Default::default()
            },
            latency_ms: 802,
            server_tool_usage: Some(json!({})),
            service_tier: None,
        }),
    ]
}

/// The `p` lengths in the capture, frame by frame.
const GOLDEN_PADS: [usize; 6] = [55, 24, 36, 2, 23, 45];

/// `metadata` carries the tier used as `"serviceTier":{"type":…}`, the
/// `ConverseStreamMetadataEvent` member of the API model, in sorted key order.
#[test]
fn metadata_carries_the_service_tier() {
    let event = ConverseStreamEvent::Metadata(StreamMetadata {
        usage: TokenUsage {
            input_tokens: 3,
            output_tokens: 2,
            ..Default::default()
        },
        latency_ms: 9,
        server_tool_usage: None,
        service_tier: Some(ServiceTierType::Flex),
    });
    let mut body = BytesMut::new();
    event.encode(&mut body, 0).unwrap();
    let frame = decode_one(&body).unwrap();
    assert_eq!(
        std::str::from_utf8(frame.payload()).unwrap(),
        r#"{"metrics":{"latencyMs":9},"serviceTier":{"type":"flex"},"usage":{"inputTokens":3,"outputTokens":2,"totalTokens":5}}"#
    );
    assert_eq!(ConverseStreamDecoder::decode_all(&body).unwrap(), [event]);
}

#[test]
fn golden_capture_decodes_to_the_six_events() {
    let events = ConverseStreamDecoder::decode_all(&capture()).unwrap();
    assert_eq!(events, golden_events());
    let ConverseStreamEvent::Metadata(m) = &events[5] else {
        panic!("last is metadata")
    };
    assert_eq!(
        (m.usage.input_tokens, m.usage.output_tokens, m.latency_ms),
        (12, 5, 802)
    );
    assert_eq!(m.usage.total_tokens(), 17);
}

#[test]
fn golden_capture_is_reproduced_byte_for_byte() {
    let mut out = BytesMut::new();
    for (event, pad) in golden_events().iter().zip(GOLDEN_PADS) {
        event.encode(&mut out, pad).unwrap();
    }
    assert_eq!(out.len(), 1157);
    assert_eq!(&out[..], &capture()[..]);
}

fn decode_in_pieces(body: &[u8], cuts: &[usize]) -> Result<Vec<ConverseStreamEvent>, StreamError> {
    let mut dec = ConverseStreamDecoder::new();
    let mut events = Vec::new();
    let mut last = 0;
    for &cut in cuts.iter().chain(std::iter::once(&body.len())) {
        dec.push(&body[last..cut]);
        last = cut;
        while let Some(e) = dec.next_event()? {
            events.push(e);
        }
    }
    dec.finish()?;
    Ok(events)
}

#[test]
fn every_two_piece_split_and_one_byte_pieces_give_identical_events() {
    let body = capture();
    let whole = ConverseStreamDecoder::decode_all(&body).unwrap();
    for cut in 0..=body.len() {
        assert_eq!(
            decode_in_pieces(&body, &[cut]).unwrap(),
            whole,
            "split at {cut}"
        );
    }
    let bytewise: Vec<usize> = (1..body.len()).collect();
    assert_eq!(decode_in_pieces(&body, &bytewise).unwrap(), whole);
}

#[test]
fn events_arrive_as_soon_as_their_frame_completes() {
    let body = capture();
    let mut dec = ConverseStreamDecoder::new();
    dec.push(&body[..179]);
    assert_eq!(dec.next_event().unwrap(), None);
    dec.push(&body[179..180]);
    assert!(matches!(
        dec.next_event().unwrap(),
        Some(ConverseStreamEvent::MessageStart { .. })
    ));
    assert_eq!(dec.next_event().unwrap(), None);
}

#[test]
fn a_corrupted_capture_names_the_frame_and_offset() {
    let mut body = capture();
    body[180 + 100] ^= 0x20; // inside the second frame's payload
    let err = ConverseStreamDecoder::decode_all(&body).unwrap_err();
    let StreamError::Frame(f) = &err else {
        panic!("{err}")
    };
    assert_eq!((f.frame_index, f.offset), (1, 180));
    assert!(matches!(f.kind, FrameErrorKind::MessageChecksum { .. }));
    assert_eq!(err.outcome(), Outcome::StreamError);
    let truncated = &capture()[..1000];
    let err = ConverseStreamDecoder::decode_all(truncated).unwrap_err();
    assert!(
        err.to_string().contains("stream ended inside a frame"),
        "{err}"
    );
}

const THROTTLING_HEX: &str = "000000b2000000613590d5d30f3a657863657074696f6e2d747970650700137468726f74746c696e67457863657074696f6e0d3a636f6e74656e742d747970650700106170706c69636174696f6e2f6a736f6e0d3a6d6573736167652d74797065070009657863657074696f6e7b226d657373616765223a22546f6f206d616e792072657175657374732c20706c656173652077616974206265666f726520747279696e6720616761696e2e227de8ffb26a";

#[test]
fn exception_frame_decodes_to_a_throttling_service_error() {
    let mut body = capture()[..180].to_vec();
    body.extend(hex::decode(THROTTLING_HEX).unwrap());
    let events = ConverseStreamDecoder::decode_all(&body).unwrap();
    let ConverseStreamEvent::Exception(err) = &events[1] else {
        panic!("{events:?}")
    };
    assert_eq!(err.code, Some(ErrorCode::ThrottlingException));
    assert_eq!(err.message, messages::TOO_MANY_REQUESTS);
    assert_eq!(err.status, 200);
    assert_eq!(err.outcome(), Outcome::Throttled);
    // Same frame through the IMWRS decoder.
    let events =
        InvokeStreamDecoder::decode_all(ModelFamily::Llama, &hex::decode(THROTTLING_HEX).unwrap())
            .unwrap();
    assert!(
        matches!(&events[..], [InvokeStreamEvent::Exception(e)] if e.outcome() == Outcome::Throttled)
    );
}

#[test]
fn exception_event_encodes_to_the_protocol_vector() {
    let err = ServiceError::from_stream_exception(
        "throttlingException",
        format!(r#"{{"message":"{}"}}"#, messages::TOO_MANY_REQUESTS).as_bytes(),
    );
    let mut out = BytesMut::new();
    ConverseStreamEvent::Exception(err)
        .encode(&mut out, 30)
        .unwrap();
    assert_eq!(hex::encode(&out), THROTTLING_HEX);
}

#[test]
fn model_stream_error_keeps_its_fields() {
    let mut out = BytesMut::new();
    encode_exception(
        &mut out,
        "modelStreamErrorException",
        br#"{"message":"Model Stream Error","originalStatusCode":500,"originalMessage":"The model stream failed."}"#,
    )
    .unwrap();
    assert_eq!(out.len(), 221); // PROTOCOL.md §3.5 recorded frame length
    let events = ConverseStreamDecoder::decode_all(&out).unwrap();
    let ConverseStreamEvent::Exception(err) = &events[0] else {
        panic!()
    };
    assert_eq!(err.code, Some(ErrorCode::ModelStreamErrorException));
    assert_eq!(err.outcome(), Outcome::StreamError);
}

#[test]
fn unknown_event_types_pass_through_without_failing() {
    let mut out = BytesMut::new();
    let unknown = ConverseStreamEvent::Unknown {
        event_type: "futureEvent".into(),
        payload: Bytes::from_static(br#"{"x":1}"#),
    };
    unknown.encode(&mut out, 0).unwrap();
    golden_events()[0].encode(&mut out, 3).unwrap();
    let events = ConverseStreamDecoder::decode_all(&out).unwrap();
    assert_eq!(events, [unknown, golden_events()[0].clone()]);
    let events = InvokeStreamDecoder::decode_all(ModelFamily::Anthropic, &out).unwrap();
    assert_eq!(
        events[0],
        InvokeStreamEvent::Unknown {
            event_type: "futureEvent".into()
        }
    );
}

#[test]
fn malformed_payload_is_a_stream_error_naming_the_event() {
    let mut out = BytesMut::new();
    let headers = [
        (":event-type", HeaderValue::String("contentBlockDelta")),
        (":content-type", HeaderValue::String("application/json")),
        (":message-type", HeaderValue::String("event")),
    ];
    encode_frame(&mut out, &headers, br#"{"delta":{"text":"x"}}"#).unwrap();
    let err = ConverseStreamDecoder::decode_all(&out).unwrap_err();
    assert!(
        matches!(&err, StreamError::Payload { event_type, frame_index: 0, .. } if event_type == "contentBlockDelta"),
        "{err}"
    );
    assert!(err.to_string().contains("contentBlockIndex"), "{err}");
}

// ---- property tests ----

fn text() -> impl Strategy<Value = String> {
    prop_oneof![".{0,40}", "[a-z \"\\\\\n]{0,20}"]
}

fn event() -> impl Strategy<Value = ConverseStreamEvent> {
    let delta = prop_oneof![
        text().prop_map(|t| BlockDelta::Text(t.into())),
        text().prop_map(BlockDelta::ToolUseInput),
        text().prop_map(BlockDelta::ReasoningText),
        text().prop_map(BlockDelta::ReasoningSignature),
        text().prop_map(BlockDelta::RedactedReasoning),
        text().prop_map(|t| BlockDelta::Other(json!({"citation": {"title": t}}))),
    ];
    prop_oneof![
        Just(ConverseStreamEvent::MessageStart {
            role: "assistant".into()
        }),
        (
            0u32..5,
            text(),
            text(),
            proptest::option::of(Just("server_tool_use".to_owned()))
        )
            .prop_map(
                |(i, id, name, kind)| ConverseStreamEvent::ContentBlockStart {
                    content_block_index: i,
                    start: BlockStart::ToolUse {
                        tool_use_id: id,
                        name,
                        kind
                    },
                }
            ),
        (0u32..5, delta).prop_map(|(i, delta)| ConverseStreamEvent::ContentBlockDelta {
            content_block_index: i,
            delta
        }),
        (0u32..5).prop_map(|i| ConverseStreamEvent::ContentBlockStop {
            content_block_index: i
        }),
        (text(), any::<bool>()).prop_map(|(r, extra)| ConverseStreamEvent::MessageStop {
            stop_reason: r,
            additional_model_response_fields: extra
                .then(|| json!({"delta": {"stop_sequence": null}})),
        }),
        (
            any::<[u32; 4]>(),
            any::<u32>(),
            any::<bool>(),
            prop::option::of(prop::sample::select(ServiceTierType::ALL.to_vec())),
        )
            .prop_map(|(u, l, s, tier)| {
                ConverseStreamEvent::Metadata(StreamMetadata {
                    usage: TokenUsage {
                        input_tokens: u[0].into(),
                        output_tokens: u[1].into(),
                        cache_read_input_tokens: u[2].into(),
                        cache_write_input_tokens: u[3].into(),
                    },
                    latency_ms: l.into(),
                    server_tool_usage: s.then(|| json!({})),
                    service_tier: tier,
                })
            }),
        (prop::sample::select(ErrorCode::ALL.to_vec()), text()).prop_map(|(c, m)| {
            ConverseStreamEvent::Exception(ServiceError {
                code: Some(c),
                raw_code: c.exception_type(),
                message: m,
                status: 200,
            })
        }),
    ]
}

proptest! {
    /// The simulator's per-token encoder writes what the event's encoder
    /// writes, and the decoder gives the text back (by hand or by serde).
    #[test]
    fn a_text_delta_encodes_the_same_without_the_event(
        index in 0u32..5,
        t in text(),
        pad in 0usize..70,
    ) {
        let event = ConverseStreamEvent::ContentBlockDelta {
            content_block_index: index,
            delta: BlockDelta::Text(t.as_str().into()),
        };
        let mut by_event = BytesMut::new();
        event.encode(&mut by_event, pad).unwrap();
        let mut direct = BytesMut::new();
        ConverseStreamEvent::encode_text_delta(&mut direct, index, &t, pad).unwrap();
        prop_assert_eq!(&direct, &by_event);
        prop_assert_eq!(ConverseStreamDecoder::decode_all(&direct).unwrap(), vec![event]);
    }

    #[test]
    fn converse_events_round_trip_at_any_split_points(
        events in prop::collection::vec((event(), 0usize..70), 1..12),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let mut body = BytesMut::new();
        for (e, pad) in &events {
            e.encode(&mut body, *pad).unwrap();
        }
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(body.len() + 1)).collect();
        cuts.sort_unstable();
        let decoded = decode_in_pieces(&body, &cuts).unwrap();
        let expected: Vec<_> = events.into_iter().map(|(e, _)| e).collect();
        prop_assert_eq!(decoded, expected);
    }

    #[test]
    fn our_frames_equal_smithy_frames(
        headers in prop::collection::vec(("[a-z:-]{1,20}", ".{0,30}"), 0..5),
        payload in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let ours_headers: Vec<_> =
            headers.iter().map(|(n, v)| (n.as_str(), HeaderValue::String(v))).collect();
        let mut ours = BytesMut::new();
        encode_frame(&mut ours, &ours_headers, &payload).unwrap();
        let mut msg = Message::new(payload.clone());
        for (n, v) in &headers {
            msg = msg.add_header(Header::new(n.clone(), SmithyValue::String(v.clone().into())));
        }
        let mut theirs = Vec::new();
        write_message_to(&msg, &mut theirs).unwrap();
        prop_assert_eq!(&ours[..], &theirs[..]);
        prop_assert_eq!(as_smithy(&decode_one(&ours).unwrap()), msg);
    }
}

// ---- InvokeModelWithResponseStream ----

fn metrics() -> InvocationMetrics {
    InvocationMetrics {
        input_token_count: 10,
        output_token_count: 15,
        invocation_latency: 1798,
        first_byte_latency: 1507,
        cache_read_input_token_count: None,
        cache_write_input_token_count: Some(4),
    }
}

fn encode_script(family: ModelFamily, reasoning: bool, stop: &str) -> BytesMut {
    let mut enc = InvokeStreamEncoder::new(family);
    let mut out = BytesMut::new();
    let start = StreamStart {
        model: "claude-sonnet-4-5-20250929",
        message_id: "msg_bdrk_01",
        input_tokens: 10,
    };
    enc.start(&mut out, &start, 7).unwrap();
    if reasoning {
        enc.reasoning(&mut out, "hmm", 3).unwrap();
    }
    enc.text(&mut out, "Hi", 11).unwrap();
    enc.text(&mut out, " there \"friend\"\n", 0).unwrap();
    enc.finish(&mut out, stop, &metrics(), 40).unwrap();
    out
}

fn content(events: &[InvokeStreamEvent]) -> Vec<InvokeStreamEvent> {
    events
        .iter()
        .filter(|e| **e != InvokeStreamEvent::Other)
        .cloned()
        .collect()
}

#[test]
fn invoke_streams_round_trip_per_family() {
    let cases = [
        (ModelFamily::Anthropic, true, "end_turn"),
        (ModelFamily::Nova, true, "end_turn"),
        (ModelFamily::Llama, false, "stop"),
        (ModelFamily::Titan, false, "FINISH"),
    ];
    for (family, reasoning, stop) in cases {
        let body = encode_script(family, reasoning, stop);
        let events = InvokeStreamDecoder::decode_all(family, &body).unwrap();
        let mut expected = Vec::new();
        if reasoning {
            expected.push(InvokeStreamEvent::ReasoningDelta("hmm".into()));
        }
        expected.extend([
            InvokeStreamEvent::TextDelta("Hi".into()),
            InvokeStreamEvent::TextDelta(" there \"friend\"\n".into()),
            InvokeStreamEvent::StopReason(stop.into()),
            InvokeStreamEvent::Metrics(metrics()),
        ]);
        assert_eq!(content(&events), expected, "{family}");
        let InvokeStreamEvent::Metrics(m) = events.last().unwrap() else {
            panic!("{family}")
        };
        assert_eq!(
            m.usage(),
            TokenUsage {
                input_tokens: 10,
                output_tokens: 15,
                cache_read_input_tokens: 0,
                cache_write_input_tokens: 4
            }
        );
        // Split anywhere: same events.
        for cut in (0..=body.len()).step_by(7) {
            let mut dec = InvokeStreamDecoder::new(family);
            let mut got = Vec::new();
            for piece in [&body[..cut], &body[cut..]] {
                dec.push(piece);
                while let Some(e) = dec.next_event().unwrap() {
                    got.push(e);
                }
            }
            dec.finish().unwrap();
            assert_eq!(got, events, "{family} split at {cut}");
        }
    }
}

#[test]
fn anthropic_chunks_have_the_bedrock_shape() {
    let body = encode_script(ModelFamily::Anthropic, false, "end_turn");
    let mut dec = FrameDecoder::new();
    dec.push(&body);
    let mut inner = Vec::new();
    while let Some(f) = dec.next_frame().unwrap() {
        let headers: Vec<_> = f.headers().map(|(n, _)| n).collect();
        assert_eq!(headers, [":event-type", ":content-type", ":message-type"]);
        assert_eq!(f.str_header(":event-type"), Some("chunk"));
        let wrapper: serde_json::Value = serde_json::from_slice(f.payload()).unwrap();
        use base64::Engine as _;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(wrapper["bytes"].as_str().unwrap())
            .unwrap();
        inner.push(String::from_utf8(raw).unwrap());
    }
    assert_eq!(
        inner[0],
        r#"{"type":"message_start","message":{"model":"claude-sonnet-4-5-20250929","id":"msg_bdrk_01","type":"message","role":"assistant","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":10,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}}"#
    );
    assert_eq!(
        inner[1],
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#
    );
    assert_eq!(
        inner[2],
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#
    );
    assert_eq!(inner[4], r#"{"type":"content_block_stop","index":0}"#);
    assert_eq!(
        inner[5],
        r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}"#
    );
    assert_eq!(
        inner[6],
        r#"{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":10,"outputTokenCount":15,"invocationLatency":1798,"firstByteLatency":1507,"cacheWriteInputTokenCount":4}}"#
    );
}

#[test]
fn real_ai21_chunk_frame_decodes() {
    // PROTOCOL.md §3.4: a real IMWRS frame; its native body is AI21's, so only
    // the wrapper is checked here (decoded as a family whose fields it lacks).
    let mut out = BytesMut::new();
    let payload = br#"{"bytes":"eyJjaG9pY2VzIjpbeyJpbmRleCI6MCwibWVzc2FnZSI6eyJyb2xlIjoiYXNzaXN0YW50IiwiY29udGVudCI6IkkifSwic3RvcF9yZWFzb24iOm51bGx9XX0=","p":"abcdefghijklmnopqrstuvwxyzABCDEFGHIJK"}"#;
    let headers = [
        (":event-type", HeaderValue::String("chunk")),
        (":content-type", HeaderValue::String("application/json")),
        (":message-type", HeaderValue::String("event")),
    ];
    encode_frame(&mut out, &headers, payload).unwrap();
    assert_eq!(out.len(), 267);
    assert_eq!(hex::encode(&out[..12]), "0000010b0000004b38a0a5c5");
    assert_eq!(hex::encode(&out[263..]), "1106313f");
    let events = InvokeStreamDecoder::decode_all(ModelFamily::Llama, &out).unwrap();
    assert_eq!(events, [InvokeStreamEvent::Other]);
}

/// Each frame of `body`, stamped `first + index` (as the simulator stamps
/// every frame it hands over).
fn stamp_each_frame(body: &[u8], first: i64) -> Vec<u8> {
    let mut frames = FrameDecoder::new();
    frames.push(body);
    let mut out = Vec::new();
    let mut stamp = first;
    while let Some(frame) = frames.next_frame().unwrap() {
        let pending = PendingStamp::new(frame.as_bytes(), WRITTEN_NS_HEADER).unwrap();
        out.extend_from_slice(&pending.stamp(stamp));
        stamp += 1;
    }
    frames.finish().unwrap();
    out
}

#[test]
fn stamped_frames_decode_like_smithy_and_to_the_same_events() {
    let body = stamp_each_frame(&capture(), 1_000);
    let mut rest = Bytes::from(body.clone());
    let mut frames = FrameDecoder::new();
    frames.push(&body);
    while let Some(ours) = frames.next_frame().unwrap() {
        let theirs = read_message_from(&mut rest).unwrap();
        assert_eq!(as_smithy(&ours), theirs);
    }
    assert_eq!(
        ConverseStreamDecoder::decode_all(&body).unwrap(),
        golden_events()
    );
}

#[test]
fn converse_events_carry_their_frames_stamp() {
    let body = stamp_each_frame(&capture(), 1_000);
    let mut dec = ConverseStreamDecoder::new();
    assert_eq!(dec.origin(), EventOrigin::default());
    dec.push(&body);
    let mut origins = Vec::new();
    while dec.next_event().unwrap().is_some() {
        origins.push(dec.origin());
    }
    let expected: Vec<_> = (0..6)
        .map(|i| EventOrigin {
            frames: i + 1,
            written_ns: Some(1_000 + i as i64),
        })
        .collect();
    assert_eq!(origins, expected);
    // Unstamped, as Bedrock sends it: no stamp.
    let mut dec = ConverseStreamDecoder::new();
    dec.push(&capture());
    dec.next_event().unwrap().unwrap();
    assert_eq!(
        dec.origin(),
        EventOrigin {
            frames: 1,
            written_ns: None
        }
    );
}

#[test]
fn every_event_of_an_invoke_frame_shares_its_stamp() {
    // Llama's last chunk carries the stop reason and the metrics: two
    // events, one frame, one stamp.
    let body = stamp_each_frame(&encode_script(ModelFamily::Llama, false, "stop"), 50);
    let mut dec = InvokeStreamDecoder::new(ModelFamily::Llama);
    dec.push(&body);
    let mut seen = Vec::new();
    while let Some(event) = dec.next_event().unwrap() {
        seen.push((event, dec.origin()));
    }
    let origin = |frames: u64| EventOrigin {
        frames,
        written_ns: Some(50 + frames as i64 - 1),
    };
    assert_eq!(
        seen,
        [
            (InvokeStreamEvent::TextDelta("Hi".into()), origin(1)),
            (
                InvokeStreamEvent::TextDelta(" there \"friend\"\n".into()),
                origin(2)
            ),
            (InvokeStreamEvent::StopReason("stop".into()), origin(3)),
            (InvokeStreamEvent::Metrics(metrics()), origin(3)),
        ]
    );
}

#[test]
fn a_stamp_of_another_type_is_no_stamp() {
    let mut body = BytesMut::new();
    encode_frame(
        &mut body,
        &[
            (":event-type", HeaderValue::String("messageStart")),
            (":message-type", HeaderValue::String("event")),
            (WRITTEN_NS_HEADER, HeaderValue::String("12")),
        ],
        br#"{"role":"assistant"}"#,
    )
    .unwrap();
    let mut dec = ConverseStreamDecoder::new();
    dec.push(&body);
    dec.next_event().unwrap().unwrap();
    assert_eq!(dec.origin().written_ns, None);
}
