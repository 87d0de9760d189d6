//! Request spans: which requests are traced, and the OTLP spans they become.
//!
//! The controller owns the structure of a run's trace (the run span, one span
//! per agent share, one per stage); an agent only adds the sampled request
//! spans, as children of its stage spans. The share span's context reaches
//! the agent as a W3C `traceparent` (gRPC metadata on `Run`), and the stage
//! span ids are derived from it with [`stage_span_id`] on both sides, so no
//! span id list has to travel.
//!
//! Sampling is decided when a request completes, so errors and throttles can
//! always be kept: a request is kept if it failed (and errors are kept) or if
//! its seeded hash falls under the ratio, and then only while the current
//! second's cap has room. Everything else costs one hash and no allocation.
//! Kept spans wait in a bounded buffer that the share drains once per
//! interval; a span that finds the buffer full is dropped and counted.

use std::sync::{Mutex, MutexGuard, PoisonError};

use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, any_value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use prost::Message;
use quarry_bedrock::{Operation, Outcome, UsageSource, output_burndown, reservation, settlement};
use sha2::{Digest, Sha256};

use crate::clock::RunClock;
use crate::series::SeriesKey;
use crate::timeline::{Completion, RequestTicket};

/// The gRPC metadata key (and HTTP header) of the W3C trace context.
pub const TRACEPARENT: &str = "traceparent";

/// The instrumentation scope of every span Quarry makes.
pub const SCOPE_NAME: &str = "quarry";

/// The name of the span event stamped when the first token arrived.
pub const FIRST_TOKEN_EVENT: &str = "gen_ai.first_token";

/// How a share samples its requests (part of [`ShareSpec`](crate::ShareSpec)).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TraceSampling {
    /// Fraction of requests traced, 0 to 1. The default is every request
    /// (1.0): a small run then shows each of its requests, and a large one
    /// is held back by `max_per_second`, not by the ratio.
    pub ratio: f64,
    /// Keep every failed or throttled request, whatever the ratio.
    pub keep_errors: bool,
    /// At most this many request spans per second from this share (0: no cap).
    pub max_per_second: u32,
}

impl Default for TraceSampling {
    fn default() -> Self {
        TraceSampling {
            ratio: 1.0,
            keep_errors: true,
            max_per_second: 100,
        }
    }
}

/// A W3C trace context: the trace and the span new spans hang under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    /// The trace id (never all zero).
    pub trace_id: [u8; 16],
    /// The parent span id (never all zero).
    pub span_id: [u8; 8],
}

/// A `traceparent` that is not version 00 in the W3C format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("traceparent {value:?}: {problem}")]
pub struct TraceparentError {
    value: String,
    problem: &'static str,
}

impl TraceContext {
    /// The `traceparent` header value (version 00, sampled).
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-01",
            hex::encode(self.trace_id),
            hex::encode(self.span_id)
        )
    }

    /// Parses a `traceparent` header value.
    pub fn parse(value: &str) -> Result<Self, TraceparentError> {
        let fail = |problem| TraceparentError {
            value: value.chars().take(80).collect(),
            problem,
        };
        let mut parts = value.trim().split('-');
        let (Some(version), Some(trace), Some(span), Some(flags)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(fail("expected version-traceid-spanid-flags"));
        };
        if version != "00" || parts.next().is_some() {
            return Err(fail("only version 00 is understood"));
        }
        if flags.len() != 2 || !flags.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(fail("flags must be two hex digits"));
        }
        let mut trace_id = [0u8; 16];
        let mut span_id = [0u8; 8];
        hex::decode_to_slice(trace, &mut trace_id)
            .map_err(|_| fail("trace id must be 32 hex digits"))?;
        hex::decode_to_slice(span, &mut span_id)
            .map_err(|_| fail("span id must be 16 hex digits"))?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return Err(fail("all-zero ids are invalid"));
        }
        Ok(TraceContext { trace_id, span_id })
    }
}

/// The id of stage `stage`'s span under the share span `share`: the same on
/// the controller (which emits the stage spans) and the agent (whose request
/// spans are their children).
pub fn stage_span_id(share: [u8; 8], stage: usize) -> [u8; 8] {
    derive_id(&share, b"stage", stage as u64)
}

fn derive_id(base: &[u8], label: &[u8], n: u64) -> [u8; 8] {
    let digest = Sha256::new()
        .chain_update(base)
        .chain_update(label)
        .chain_update(n.to_be_bytes())
        .finalize();
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest[..8]);
    if id == [0; 8] {
        id[7] = 1;
    }
    id
}

/// SplitMix64: a fast, well-mixed hash of one word.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Where the traced requests went, for `server.address` / `server.port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAddress {
    /// Host name or address.
    pub address: String,
    /// Port.
    pub port: u16,
}

/// Decides which completed requests become spans and buffers their spans.
#[derive(Debug)]
pub struct SpanRecorder {
    sampling: TraceSampling,
    context: TraceContext,
    server: ServerAddress,
    clock: RunClock,
    /// Ratio as a threshold on a 64-bit hash.
    threshold: u64,
    /// Seeds span ids and the ratio hash: distinct per share.
    salt: u64,
    capacity: usize,
    state: Mutex<Buffer>,
}

#[derive(Debug, Default)]
struct Buffer {
    spans: Vec<Span>,
    /// The second (since the run's origin) `in_second` counts.
    second: u64,
    in_second: u32,
    dropped: u64,
}

/// What [`SpanRecorder::take`] hands over.
#[derive(Debug, Default)]
pub struct SpanTake {
    /// Spans kept since the last take.
    pub spans: Vec<Span>,
    /// Spans dropped since the last take (cap reached or buffer full).
    pub dropped: u64,
}

impl SpanRecorder {
    /// A recorder whose spans hang under `context` (the share span) and whose
    /// timestamps are `clock`'s wall time. `salt` tells shares apart.
    pub fn new(
        sampling: TraceSampling,
        context: TraceContext,
        server: ServerAddress,
        clock: RunClock,
        salt: u64,
    ) -> Self {
        let ratio = if sampling.ratio.is_finite() {
            sampling.ratio.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let threshold = if ratio >= 1.0 {
            u64::MAX
        } else {
            (ratio * u64::MAX as f64) as u64
        };
        // A few seconds' worth at the cap, so one slow drain loses nothing.
        let capacity = match sampling.max_per_second {
            0 => 65_536,
            cap => (cap as usize).saturating_mul(4).clamp(64, 65_536),
        };
        SpanRecorder {
            sampling,
            context,
            server,
            clock,
            threshold,
            salt: mix(salt ^ u64::from_be_bytes(context.span_id)),
            capacity,
            state: Mutex::new(Buffer::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Buffer> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the ratio alone selects request `seq` (deterministic).
    fn ratio_selects(&self, seq: u64) -> bool {
        self.threshold == u64::MAX || mix(self.salt ^ seq) < self.threshold
    }

    /// Offers one completed request; keeps its span if sampling says so.
    pub fn offer(&self, ticket: &RequestTicket, key: &SeriesKey, completion: &Completion) {
        let failed = completion.outcome != Outcome::Ok;
        if !(self.ratio_selects(ticket.seq) || (failed && self.sampling.keep_errors)) {
            return;
        }
        let second = completion.timeline.closed_at / 1_000_000_000;
        {
            let mut buffer = self.lock();
            if buffer.second != second {
                buffer.second = second;
                buffer.in_second = 0;
            }
            let capped = self.sampling.max_per_second != 0
                && buffer.in_second >= self.sampling.max_per_second;
            if capped || buffer.spans.len() >= self.capacity {
                buffer.dropped += 1;
                return;
            }
            buffer.in_second += 1;
        }
        // Built outside the lock; pushed after.
        let span = self.request_span(ticket, key, completion);
        self.lock().spans.push(span);
    }

    /// Takes the spans kept and the count dropped since the last take.
    pub fn take(&self) -> SpanTake {
        let mut buffer = self.lock();
        SpanTake {
            spans: std::mem::take(&mut buffer.spans),
            dropped: std::mem::take(&mut buffer.dropped),
        }
    }

    fn unix_ns(&self, at: u64) -> u64 {
        u64::try_from(self.clock.unix_ns_at(at)).unwrap_or(0)
    }

    /// The span of one request, per the GenAI semantic conventions.
    fn request_span(&self, ticket: &RequestTicket, key: &SeriesKey, c: &Completion) -> Span {
        let t = &c.timeline;
        let operation = key.operation.unwrap_or(Operation::Converse);
        let model = &*key.model;
        // The span covers every attempt, retries included.
        let start = c
            .earlier_attempts
            .first()
            .map_or(t.sent_at, |a| a.sent_at.min(t.sent_at));
        let mut attrs = Vec::with_capacity(24);
        attrs.push(kv_str("gen_ai.operation.name", "chat"));
        attrs.push(kv_str("gen_ai.provider.name", "aws.bedrock"));
        // The pre-1.37 name, still what several backends read.
        attrs.push(kv_str("gen_ai.system", "aws.bedrock"));
        attrs.push(kv_str("gen_ai.request.model", model));
        attrs.push(kv_int("gen_ai.request.max_tokens", c.max_tokens));
        if let Some(temperature) = c.temperature {
            attrs.push(kv_f64("gen_ai.request.temperature", f64::from(temperature)));
        }
        let streaming = matches!(
            operation,
            Operation::ConverseStream | Operation::InvokeModelWithResponseStream
        );
        attrs.push(kv_bool("gen_ai.request.stream", streaming));
        attrs.push(kv_str("server.address", &self.server.address));
        attrs.push(kv_int("server.port", u64::from(self.server.port)));
        if let Some(id) = c.response.request_id.as_ref().and_then(|v| v.to_str().ok()) {
            attrs.push(kv_str("gen_ai.response.id", id));
        }
        if let Some(reason) = &c.response.stop_reason {
            attrs.push(kv(
                "gen_ai.response.finish_reasons",
                any_value::Value::ArrayValue(ArrayValue {
                    values: vec![str_value(reason)],
                }),
            ));
        }
        let burndown = output_burndown(model);
        if let Some(usage) = &c.usage {
            let u = &usage.tokens;
            attrs.push(kv_int("gen_ai.usage.input_tokens", u.input_tokens));
            attrs.push(kv_int("gen_ai.usage.output_tokens", u.output_tokens));
            attrs.push(kv_int(
                "gen_ai.usage.cache_read.input_tokens",
                u.cache_read_input_tokens,
            ));
            attrs.push(kv_int(
                "gen_ai.usage.cache_creation.input_tokens",
                u.cache_write_input_tokens,
            ));
            attrs.push(kv_str(
                "quarry.usage.source",
                usage_source_name(usage.source),
            ));
            attrs.push(kv_int(
                "quarry.quota.tokens_reserved",
                reservation(u, c.max_tokens),
            ));
            attrs.push(kv_int(
                "quarry.quota.tokens_settled",
                settlement(u, burndown),
            ));
        }
        if let Some(ttft) = t.ttft_from_send() {
            let seconds = ttft as f64 / 1e9;
            if streaming {
                attrs.push(kv_f64("gen_ai.response.time_to_first_chunk", seconds));
            }
            attrs.push(kv_f64("quarry.ttft_ms", ttft as f64 / 1e6));
        }
        if let Some(lag) = t.schedule_lag() {
            attrs.push(kv_f64("quarry.schedule_lag_ms", lag as f64 / 1e6));
        }
        attrs.push(kv_str("quarry.outcome", c.outcome.as_str()));
        attrs.push(kv_str("quarry.operation", operation.name()));
        attrs.push(kv_str("quarry.stage", &key.stage));
        attrs.push(kv_str("quarry.group", &key.group));
        attrs.push(kv_int("quarry.request.seq", ticket.seq));
        attrs.push(kv_int(
            "quarry.attempts",
            c.earlier_attempts.len() as u64 + 1,
        ));
        let status = if c.outcome == Outcome::Ok {
            Status::default()
        } else {
            let error_type = error_type(c);
            attrs.push(kv_str("error.type", &error_type));
            Status {
                message: error_type,
                code: opentelemetry_proto::tonic::trace::v1::status::StatusCode::Error as i32,
            }
        };
        let mut events = Vec::new();
        if let Some(first) = t.first_token_at {
            events.push(span::Event {
                time_unix_nano: self.unix_ns(first),
                name: FIRST_TOKEN_EVENT.to_owned(),
                attributes: t
                    .ttft_from_send()
                    .map(|ttft| vec![kv_f64("quarry.ttft_ms", ttft as f64 / 1e6)])
                    .unwrap_or_default(),
                dropped_attributes_count: 0,
            });
        }
        let span_id = derive_id(&self.context.span_id, b"request", self.salt ^ ticket.seq);
        Span {
            trace_id: self.context.trace_id.to_vec(),
            span_id: span_id.to_vec(),
            trace_state: String::new(),
            parent_span_id: stage_span_id(self.context.span_id, ticket.stage).to_vec(),
            flags: 0x100 | 0x01,
            name: format!("chat {model}"),
            kind: span::SpanKind::Client as i32,
            start_time_unix_nano: self.unix_ns(start),
            end_time_unix_nano: self.unix_ns(t.closed_at),
            attributes: attrs,
            dropped_attributes_count: 0,
            events,
            dropped_events_count: 0,
            links: Vec::new(),
            dropped_links_count: 0,
            status: Some(status),
        }
    }
}

fn usage_source_name(source: UsageSource) -> &'static str {
    match source {
        UsageSource::ConverseUsage => "converse_usage",
        UsageSource::ResponseHeaders => "response_headers",
        UsageSource::InvocationMetrics => "invocation_metrics",
        UsageSource::NativeBody => "native_body",
        UsageSource::ClientEstimate => "client_estimate",
    }
}

/// `error.type` of a failed request: the service's exception name when it
/// sent one, else the outcome (`timeout`, `transport`, ...).
fn error_type(c: &Completion) -> String {
    match c.response.error_code {
        Some(code) => code.name().to_owned(),
        None => c.outcome.as_str().to_owned(),
    }
}

fn str_value(s: &str) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::StringValue(s.to_owned())),
    }
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

/// A string attribute.
pub fn kv_str(key: &str, value: &str) -> KeyValue {
    kv(key, any_value::Value::StringValue(value.to_owned()))
}

/// An integer attribute (saturating at `i64::MAX`).
pub fn kv_int(key: &str, value: u64) -> KeyValue {
    kv(
        key,
        any_value::Value::IntValue(i64::try_from(value).unwrap_or(i64::MAX)),
    )
}

/// A floating-point attribute.
pub fn kv_f64(key: &str, value: f64) -> KeyValue {
    kv(key, any_value::Value::DoubleValue(value))
}

/// A boolean attribute.
pub fn kv_bool(key: &str, value: bool) -> KeyValue {
    kv(key, any_value::Value::BoolValue(value))
}

/// `spans` as one protobuf-encoded OTLP `ResourceSpans` whose resource
/// carries `resource` (the agent's identity).
pub fn encode_resource_spans(resource: Vec<KeyValue>, spans: Vec<Span>) -> Vec<u8> {
    ResourceSpans {
        resource: Some(Resource {
            attributes: resource,
            dropped_attributes_count: 0,
            entity_refs: Vec::new(),
        }),
        scope_spans: vec![ScopeSpans {
            scope: Some(InstrumentationScope {
                name: SCOPE_NAME.to_owned(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                attributes: Vec::new(),
                dropped_attributes_count: 0,
            }),
            spans,
            schema_url: String::new(),
        }],
        schema_url: String::new(),
    }
    .encode_to_vec()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, UNIX_EPOCH};

    use http::HeaderValue;
    use quarry_bedrock::{ErrorCode, TokenUsage};

    use super::*;
    use crate::timeline::{ReportedUsage, Timeline};

    fn context() -> TraceContext {
        TraceContext {
            trace_id: [7; 16],
            span_id: [9; 8],
        }
    }

    fn recorder(sampling: TraceSampling) -> SpanRecorder {
        SpanRecorder::new(
            sampling,
            context(),
            ServerAddress {
                address: "bedrock-runtime.us-east-1.amazonaws.com".into(),
                port: 443,
            },
            RunClock::start(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            3,
        )
    }

    fn key() -> SeriesKey {
        SeriesKey {
            group: Arc::from("default"),
            model: Arc::from("anthropic.claude-3-haiku-20240307-v1:0"),
            operation: Some(Operation::ConverseStream),
            stage: Arc::from("hold"),
            tier: None,
            turn: None,
        }
    }

    fn ticket(seq: u64) -> RequestTicket {
        RequestTicket {
            seq,
            intended_at: Some(1_000),
            stage: 1,
            slot: None,
            replay: None,
            turn: None,
        }
    }

    fn completion(outcome: Outcome, at: u64) -> Completion {
        let mut t = Timeline::started(Some(at), at + 500);
        if outcome == Outcome::Ok {
            t.on_headers(at + 1_000);
            t.on_content(at + 200_000_000, 3);
        }
        t.close(at + 900_000_000);
        let mut c = Completion::new(t, outcome);
        c.max_tokens = 100;
        c.temperature = Some(0.5);
        c.response.request_id = Some(HeaderValue::from_static("req-1"));
        if outcome == Outcome::Ok {
            c.response.stop_reason = Some(Box::from("end_turn"));
            c.usage = Some(ReportedUsage {
                tokens: TokenUsage {
                    input_tokens: 40,
                    output_tokens: 12,
                    ..TokenUsage::default()
                },
                source: UsageSource::ConverseUsage,
            });
        } else {
            c.response.error_code = Some(ErrorCode::ThrottlingException);
        }
        c
    }

    fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a any_value::Value> {
        span.attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
    }

    #[test]
    fn traceparent_round_trips_and_rejects_garbage() {
        let c = context();
        assert_eq!(TraceContext::parse(&c.traceparent()), Ok(c));
        for bad in [
            "",
            "01-07070707070707070707070707070707-0909090909090909-01",
            "00-0707-0909090909090909-01",
            "00-00000000000000000000000000000000-0909090909090909-01",
            "00-07070707070707070707070707070707-0909090909090909-zz",
            "00-07070707070707070707070707070707-0909090909090909-01-extra",
        ] {
            assert!(TraceContext::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn stage_ids_are_stable_distinct_and_nonzero() {
        let a = stage_span_id([1; 8], 0);
        assert_eq!(a, stage_span_id([1; 8], 0));
        assert_ne!(a, stage_span_id([1; 8], 1));
        assert_ne!(a, stage_span_id([2; 8], 0));
        assert_ne!(a, [0; 8]);
    }

    #[test]
    fn request_span_speaks_genai_conventions() {
        let r = recorder(TraceSampling {
            ratio: 1.0,
            keep_errors: true,
            max_per_second: 0,
        });
        r.offer(&ticket(5), &key(), &completion(Outcome::Ok, 0));
        let take = r.take();
        assert_eq!(take.dropped, 0);
        let span = &take.spans[0];
        assert_eq!(span.name, "chat anthropic.claude-3-haiku-20240307-v1:0");
        assert_eq!(span.kind, span::SpanKind::Client as i32);
        assert_eq!(span.trace_id, vec![7; 16]);
        assert_eq!(span.parent_span_id, stage_span_id([9; 8], 1).to_vec());
        let s = |v: &str| Some(any_value::Value::StringValue(v.to_owned()));
        assert_eq!(attr(span, "gen_ai.operation.name").cloned(), s("chat"));
        assert_eq!(
            attr(span, "gen_ai.provider.name").cloned(),
            s("aws.bedrock")
        );
        assert_eq!(attr(span, "gen_ai.response.id").cloned(), s("req-1"));
        assert_eq!(
            attr(span, "gen_ai.usage.input_tokens"),
            Some(&any_value::Value::IntValue(40))
        );
        assert_eq!(
            attr(span, "gen_ai.usage.output_tokens"),
            Some(&any_value::Value::IntValue(12))
        );
        assert_eq!(
            attr(span, "quarry.quota.tokens_reserved"),
            Some(&any_value::Value::IntValue(140))
        );
        assert!(attr(span, "error.type").is_none());
        let event = &span.events[0];
        assert_eq!(event.name, FIRST_TOKEN_EVENT);
        // The first token came 200 ms - 500 ns after the send.
        assert_eq!(
            event.time_unix_nano - span.start_time_unix_nano,
            199_999_500
        );
        assert_eq!(
            span.start_time_unix_nano,
            1_700_000_000_000_000_000 + 500,
            "span times are the agent's wall clock"
        );
    }

    #[test]
    fn errors_are_kept_at_ratio_zero_and_carry_error_type() {
        let r = recorder(TraceSampling {
            ratio: 0.0,
            keep_errors: true,
            max_per_second: 0,
        });
        r.offer(&ticket(1), &key(), &completion(Outcome::Ok, 0));
        r.offer(&ticket(2), &key(), &completion(Outcome::Throttled, 0));
        let spans = r.take().spans;
        assert_eq!(spans.len(), 1);
        assert_eq!(
            attr(&spans[0], "error.type"),
            Some(&any_value::Value::StringValue("ThrottlingException".into()))
        );
        assert_eq!(spans[0].status.as_ref().map(|s| s.code), Some(2));
    }

    /// The quickstart's case: 24 successful requests over a few seconds
    /// under the default sampling are all traced (it once kept none of them).
    #[test]
    fn default_sampling_traces_every_request_of_a_small_run() {
        let r = recorder(TraceSampling::default());
        assert_eq!(TraceSampling::default().ratio, 1.0);
        for seq in 0..24 {
            let second = seq / 2 * 1_000_000_000;
            r.offer(&ticket(seq), &key(), &completion(Outcome::Ok, second));
        }
        let take = r.take();
        assert_eq!((take.spans.len(), take.dropped), (24, 0));
    }

    #[test]
    fn ratio_is_close_and_cap_counts_drops() {
        let r = recorder(TraceSampling {
            ratio: 0.1,
            keep_errors: false,
            max_per_second: 0,
        });
        for seq in 0..20_000 {
            r.offer(&ticket(seq), &key(), &completion(Outcome::Throttled, 0));
        }
        let kept = r.take().spans.len();
        assert!(
            (1_700..2_300).contains(&kept),
            "kept {kept} of 20,000 at 10%"
        );

        let capped = recorder(TraceSampling {
            ratio: 1.0,
            keep_errors: true,
            max_per_second: 10,
        });
        for seq in 0..25 {
            // 25 requests ending in the same second, then 5 in the next.
            capped.offer(&ticket(seq), &key(), &completion(Outcome::Ok, 0));
        }
        for seq in 25..30 {
            capped.offer(
                &ticket(seq),
                &key(),
                &completion(Outcome::Ok, 2_000_000_000),
            );
        }
        let take = capped.take();
        assert_eq!((take.spans.len(), take.dropped), (15, 15));
        assert_eq!(capped.take().dropped, 0, "a take resets the count");
    }

    #[test]
    fn encoded_batches_decode_as_otlp() {
        let r = recorder(TraceSampling {
            ratio: 1.0,
            keep_errors: true,
            max_per_second: 0,
        });
        r.offer(&ticket(1), &key(), &completion(Outcome::Ok, 0));
        let bytes = encode_resource_spans(vec![kv_str("quarry.agent.id", "a1")], r.take().spans);
        let decoded = ResourceSpans::decode(bytes.as_slice()).unwrap();
        assert_eq!(decoded.scope_spans[0].spans.len(), 1);
        assert_eq!(
            decoded.scope_spans[0].scope.as_ref().unwrap().name,
            SCOPE_NAME
        );
    }
}
