//! Decoding a 200-event ConverseStream body to typed events: the load agent's
//! per-response hot path. The body is built once, outside the timed closure,
//! with the crate's own encoder (Bedrock-shaped: padding, sorted keys).

// criterion_group!/criterion_main! generate undocumented items.
#![allow(missing_docs)]

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use quarry_bedrock::{
    BlockDelta, ConverseStreamDecoder, ConverseStreamEvent, StreamMetadata, TokenUsage,
};

const EVENTS: usize = 200;

/// messageStart, 196 text deltas, contentBlockStop, messageStop, metadata.
fn body() -> BytesMut {
    let mut out = BytesMut::new();
    let mut events = vec![ConverseStreamEvent::MessageStart {
        role: "assistant".into(),
    }];
    for i in 0..EVENTS - 4 {
        events.push(ConverseStreamEvent::ContentBlockDelta {
            content_block_index: 0,
            delta: BlockDelta::Text(format!(" token{i}").into()),
        });
    }
    events.push(ConverseStreamEvent::ContentBlockStop {
        content_block_index: 0,
    });
    events.push(ConverseStreamEvent::MessageStop {
        stop_reason: "end_turn".into(),
        additional_model_response_fields: None,
    });
    events.push(ConverseStreamEvent::Metadata(StreamMetadata {
        usage: TokenUsage {
            input_tokens: 120,
            output_tokens: 196,
            ..Default::default()
        },
        latency_ms: 4321,
        server_tool_usage: None,
        service_tier: None,
    }));
    for (i, e) in events.iter().enumerate() {
        // Deterministic padding lengths spread over the real range.
        e.encode(&mut out, (i * 7) % 50 + 2)
            .expect("bench events encode");
    }
    out
}

fn decode(c: &mut Criterion) {
    let body = body();
    let mut group = c.benchmark_group("converse_stream_decode_200_events");
    // Criterion reports elements/s here; a second group gives bytes/s.
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.bench_function("events", |b| {
        b.iter(|| {
            let mut dec = ConverseStreamDecoder::new();
            // 1 KiB pieces, as a socket would hand them over.
            let mut n = 0;
            for piece in body.chunks(1024) {
                dec.push(piece);
                while let Some(e) = dec.next_event().expect("valid body") {
                    std::hint::black_box(&e);
                    n += 1;
                }
            }
            assert_eq!(n, EVENTS);
        })
    });
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("bytes", |b| {
        b.iter(|| {
            let events = ConverseStreamDecoder::decode_all(&body).expect("valid body");
            std::hint::black_box(events)
        })
    });
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
