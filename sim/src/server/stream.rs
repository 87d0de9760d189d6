//! Streaming answers (PROTOCOL.md §3): HTTP 200 and headers at once, then
//! one body chunk per event, produced when its token is due, so clients
//! measure the modelled TTFT and inter-token gaps. ConverseStream sends
//! `messageStart`, `contentBlockDelta`…, `contentBlockStop`, `messageStop`,
//! `metadata`; InvokeModelWithResponseStream sends the family's native
//! chunks with `amazon-bedrock-invocationMetrics` on the last. Every event
//! carries a `p` padding field of seeded random length. Injected faults end
//! the stream with an exception frame, or cut the connection (reset).
//!
//! With `stamp_frames` on, every frame also carries
//! [`WRITTEN_NS_HEADER`]: `CLOCK_MONOTONIC` read just before the chunk is
//! handed to hyper (after the token came due and was encoded), so a client
//! on the same host measures its own read delay from it.

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Response};
use quarry_bedrock::header_names::{APPLICATION_JSON, BEDROCK_CONTENT_TYPE, SERVICE_TIER};
use quarry_bedrock::{
    ConverseStreamEvent, EVENT_STREAM_CONTENT_TYPE, EncodeError, Fault, InvocationMetrics,
    InvokeStreamEncoder, ModelFamily, Operation, PendingStamp, ServiceTierType, StreamMetadata,
    StreamStart, WRITTEN_NS_HEADER, encode_service_exception,
};
use serde_json::json;
use tokio::time::Instant;

use super::body::{ConnectionReset, SimBody};
use super::context::{Admitted, response};
use super::prompt::native_stop_reason;
use super::unary::{anthropic_message_id, anthropic_model_name};
use crate::cloudwatch::CloudWatchEvent;
use crate::runtime::{Completion, Simulator, Step, Ticket};
use quarry_bedrock::auth::WallClock;
use std::sync::Arc;

/// Seeded lengths for the `p` padding field (SplitMix64 over the request id).
struct Padding(u64);

impl Padding {
    fn new(request_id: uuid::Uuid) -> Self {
        let x = request_id.as_u128();
        Padding((x as u64) ^ ((x >> 64) as u64))
    }

    /// 1..=62 characters, like the live captures.
    fn next_len(&mut self) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        1 + (z % 62) as usize
    }
}

/// How events are encoded.
enum Encoding {
    /// ConverseStream; Anthropic models add Claude's `stop_sequence` field
    /// to `messageStop`, as the live capture shows.
    Converse {
        anthropic: bool,
        /// The tier serving the request, reported in `metadata`.
        service_tier: Option<ServiceTierType>,
    },
    /// InvokeModelWithResponseStream in the family's chunk format.
    Invoke {
        encoder: Box<InvokeStreamEncoder>,
        family: ModelFamily,
        model_name: String,
        message_id: String,
    },
}

/// The state of one streaming answer, driven as the body is polled.
struct EventStream {
    /// `None` once the stream has ended.
    ticket: Option<Ticket>,
    encoding: Encoding,
    padding: Padding,
    input_tokens: u64,
    arrived: Instant,
    first_byte: Option<Instant>,
    /// Where and under which id the stream's end is counted for CloudWatch.
    cloudwatch: StreamCloudWatch,
    /// Stamp every frame with its write time (`stamp_frames`).
    stamp: bool,
}

/// What a stream needs to record its end in the CloudWatch view.
struct StreamCloudWatch {
    sim: Arc<Simulator>,
    clock: WallClock,
    model_id: String,
    burndown: u64,
}

impl StreamCloudWatch {
    fn record(&self, event: CloudWatchEvent) {
        self.sim
            .cloudwatch()
            .record((self.clock)(), &self.model_id, event);
    }

    fn failed(&self, done: &Completion, server: bool) {
        self.record(CloudWatchEvent::Failed {
            usage: done.usage,
            burndown: self.burndown,
            server,
        });
    }
}

impl EventStream {
    /// The next body chunk (one or more frames), or `None` at the end.
    async fn next_chunk(&mut self) -> Option<Result<Bytes, ConnectionReset>> {
        let ticket = self.ticket.as_mut()?;
        let step = ticket.next().await;
        let mut out = BytesMut::with_capacity(256);
        let encoded = match step {
            Step::Token(piece) => self
                .begin(&mut out)
                .and_then(|()| self.token(&mut out, piece)),
            Step::Done(_) => {
                let done = self.ticket.take().map(Ticket::finish);
                if let Some(d) = &done {
                    let ttft = self
                        .first_byte
                        .unwrap_or_else(Instant::now)
                        .saturating_duration_since(self.arrived);
                    self.cloudwatch.record(CloudWatchEvent::Success {
                        usage: d.usage,
                        burndown: self.cloudwatch.burndown,
                        latency_ms: millis(d.latency),
                        ttft_ms: Some(millis(ttft)),
                    });
                }
                self.begin(&mut out)
                    .and_then(|()| done.map_or(Ok(()), |d| self.end(&mut out, &d)))
            }
            Step::Exception(e) => {
                if let Some(t) = self.ticket.take() {
                    let done = t.finish();
                    self.cloudwatch
                        .failed(&done, e.code.fault() == Fault::Server);
                }
                encode_service_exception(&mut out, e.code, e.message)
            }
            Step::Reset => {
                if let Some(t) = self.ticket.take() {
                    let done = t.finish();
                    self.cloudwatch.failed(&done, true);
                }
                return Some(Err(ConnectionReset));
            }
        };
        match encoded.and_then(|()| self.hand_over(out)) {
            Ok(chunk) => Some(Ok(chunk)),
            Err(e) => {
                // Only oversized payloads fail to encode; none are built here.
                tracing::error!(error = %e, "event-stream encoding failed; cutting the stream");
                self.ticket = None;
                Some(Err(ConnectionReset))
            }
        }
    }

    /// The encoded frames as the chunk to send: as they are, or stamped
    /// with the monotonic time read as the last thing before they go.
    fn hand_over(&self, out: BytesMut) -> Result<Bytes, EncodeError> {
        if !self.stamp {
            return Ok(out.freeze());
        }
        let pending = PendingStamp::new(&out, WRITTEN_NS_HEADER)?;
        let frames = pending.frames();
        let chunk = pending.stamp(monotonic_ns());
        // The stream's handle on the simulator lives with its CloudWatch view.
        self.cloudwatch
            .sim
            .stats()
            .server()
            .record_frames_stamped(frames);
        Ok(chunk)
    }

    /// The stream's opening event(s), before the first token.
    fn begin(&mut self, out: &mut BytesMut) -> Result<(), EncodeError> {
        if self.first_byte.is_some() {
            return Ok(());
        }
        self.first_byte = Some(Instant::now());
        let pad = self.padding.next_len();
        match &mut self.encoding {
            Encoding::Converse { .. } => ConverseStreamEvent::MessageStart {
                role: "assistant".to_owned(),
            }
            .encode(out, pad),
            Encoding::Invoke {
                encoder,
                model_name,
                message_id,
                ..
            } => encoder.start(
                out,
                &StreamStart {
                    model: model_name,
                    message_id,
                    input_tokens: self.input_tokens,
                },
                pad,
            ),
        }
    }

    fn token(&mut self, out: &mut BytesMut, piece: &str) -> Result<(), EncodeError> {
        let pad = self.padding.next_len();
        match &mut self.encoding {
            Encoding::Converse { .. } => ConverseStreamEvent::encode_text_delta(out, 0, piece, pad),
            Encoding::Invoke { encoder, .. } => encoder.text(out, piece, pad),
        }
    }

    fn end(&mut self, out: &mut BytesMut, done: &Completion) -> Result<(), EncodeError> {
        let latency_ms = millis(done.latency);
        match &mut self.encoding {
            Encoding::Converse {
                anthropic,
                service_tier,
            } => {
                let events = [
                    ConverseStreamEvent::ContentBlockStop {
                        content_block_index: 0,
                    },
                    ConverseStreamEvent::MessageStop {
                        stop_reason: done.stop_reason.as_str().to_owned(),
                        additional_model_response_fields: anthropic
                            .then(|| json!({"delta": {"stop_sequence": null}})),
                    },
                    ConverseStreamEvent::Metadata(StreamMetadata {
                        usage: done.usage,
                        latency_ms,
                        server_tool_usage: None,
                        service_tier: *service_tier,
                    }),
                ];
                for e in &events {
                    e.encode(out, self.padding.next_len())?;
                }
                Ok(())
            }
            Encoding::Invoke {
                encoder, family, ..
            } => {
                let u = done.usage;
                let cached = u.cache_read_input_tokens + u.cache_write_input_tokens > 0;
                let metrics = InvocationMetrics {
                    input_token_count: u.input_tokens,
                    output_token_count: u.output_tokens,
                    invocation_latency: latency_ms,
                    first_byte_latency: self
                        .first_byte
                        .map_or(0, |t| millis(t.saturating_duration_since(self.arrived))),
                    cache_read_input_token_count: cached.then_some(u.cache_read_input_tokens),
                    cache_write_input_token_count: cached.then_some(u.cache_write_input_tokens),
                };
                let stop = native_stop_reason(*family, done.stop_reason);
                encoder.finish(out, stop, &metrics, self.padding.next_len())
            }
        }
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds: the clock a client's `Instant` reads
/// on Linux, so a client on the same host can compare the two.
#[cfg(unix)]
fn monotonic_ns() -> i64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec
        .saturating_mul(1_000_000_000)
        .saturating_add(t.tv_nsec)
}

/// Config validation refuses `stamp_frames` where there is no
/// `CLOCK_MONOTONIC`, so this is never called.
#[cfg(not(unix))]
fn monotonic_ns() -> i64 {
    0
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Sends the headers at once and streams the events as they come due.
pub(crate) async fn answer(a: Admitted<'_>) -> Response<SimBody> {
    let Admitted {
        shared,
        operation,
        model_id,
        model,
        prompt,
        mut ticket,
        arrived,
        accept,
    } = a;
    ticket.before_headers().await;
    let request_id = ticket.request_id();
    let served_tier = ticket.served_tier();
    let family = model.profile.family;
    let encoding = if operation == Operation::ConverseStream {
        Encoding::Converse {
            anthropic: family == ModelFamily::Anthropic,
            service_tier: served_tier,
        }
    } else {
        Encoding::Invoke {
            encoder: Box::new(InvokeStreamEncoder::new(family)),
            family,
            model_name: anthropic_model_name(&model.profile.id).to_owned(),
            message_id: anthropic_message_id(&request_id.to_string()),
        }
    };
    let state = EventStream {
        ticket: Some(ticket),
        encoding,
        padding: Padding::new(request_id),
        input_tokens: prompt.input_tokens,
        arrived,
        first_byte: None,
        cloudwatch: StreamCloudWatch {
            sim: Arc::clone(&shared.sim),
            clock: shared.clock,
            burndown: model.profile.burndown,
            model_id,
        },
        stamp: shared.sim.stamps_frames(),
    };
    let chunks = futures_util::stream::unfold(state, |mut s| async move {
        let chunk = s.next_chunk().await?;
        Some((chunk, s))
    });
    let mut r = response(
        shared,
        &request_id.to_string(),
        EVENT_STREAM_CONTENT_TYPE,
        SimBody::Stream(Box::pin(chunks)),
    );
    if operation == Operation::InvokeModelWithResponseStream {
        let inner = accept
            .filter(|v| !v.is_empty() && v != "*/*")
            .unwrap_or(HeaderValue::from_static(APPLICATION_JSON));
        r.headers_mut().insert(BEDROCK_CONTENT_TYPE, inner);
        if let Some(tier) = served_tier {
            r.headers_mut()
                .insert(SERVICE_TIER, HeaderValue::from_static(tier.as_str()));
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_is_seeded_and_in_range() {
        let id = uuid::Uuid::from_u128(42);
        let a: Vec<usize> = {
            let mut p = Padding::new(id);
            (0..100).map(|_| p.next_len()).collect()
        };
        let mut p = Padding::new(id);
        assert!(a.iter().all(|&n| (1..=62).contains(&n)));
        assert!(a.iter().all(|&n| n == p.next_len()));
        assert!(a.iter().any(|&n| n != a[0]));
    }
}
