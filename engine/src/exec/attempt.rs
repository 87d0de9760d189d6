//! One attempt at one request: build the body, sign, send, and read the
//! response, stamping the timeline at every socket read.
//!
//! Timestamps are taken right after the transport hands over a chunk and
//! before any JSON is parsed, so parsing cost never leaks into TTFT or ITL.

use std::pin::{Pin, pin};
use std::task::Poll;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, HOST};
use http::{HeaderMap, HeaderValue, Method, Request};
use http_body_util::Full;
use quarry_bedrock::header_names::{APPLICATION_JSON, BEDROCK_ACCEPT, REQUEST_ID, SERVICE_TIER};
use quarry_bedrock::{
    BlockDelta, ConverseResponse, ConverseStreamDecoder, ConverseStreamEvent, CountTokensResponse,
    ERROR_TYPE_HEADER, EventOrigin, InvokeStreamDecoder, InvokeStreamEvent, ModelFamily,
    NativeResponse, Operation, Outcome, ResponseHeaders, Retry, ServiceError, ServiceTierType,
    StreamDecoder, TokenUsage, UsageSource,
};
use tokio::time::{Instant, Sleep};

use super::retry::RETRY_AFTER_HEADER;
use crate::clock::{RunClock, duration_ns};
use crate::http::{ResponseBody, Transport};
use crate::timeline::{ReportedUsage, ResponseInfo, Timeline};

/// A request ready to sign and send.
pub(crate) struct PreparedRequest {
    pub(crate) uri: http::Uri,
    pub(crate) host: HeaderValue,
    pub(crate) operation: Operation,
    pub(crate) family: ModelFamily,
    /// Sent as the `X-Amzn-Bedrock-Service-Tier` header on InvokeModel (and
    /// its stream); Converse carries it in the body.
    pub(crate) service_tier: Option<ServiceTierType>,
    pub(crate) body: Bytes,
    /// Keep the answer's text (a session turn: the next turn sends it back).
    pub(crate) keep_answer: bool,
}

/// Deadlines for one attempt, on tokio's clock.
#[derive(Clone, Copy)]
pub(crate) struct Deadlines {
    pub(crate) request: Instant,
    pub(crate) first_token: Option<Instant>,
}

/// How one attempt ended.
pub(crate) struct AttemptResult {
    pub(crate) timeline: Timeline,
    pub(crate) outcome: Outcome,
    pub(crate) usage: Option<ReportedUsage>,
    /// Whether (and how) the standard policy would retry this failure.
    pub(crate) retry: Retry,
    /// The server's `x-amz-retry-after`, milliseconds.
    pub(crate) retry_after_ms: Option<u64>,
    /// Request id, stop reason and error code, for request spans.
    pub(crate) response: ResponseInfo,
    /// The answer's text, when the request asked to keep it.
    pub(crate) answer: Option<String>,
}

impl AttemptResult {
    fn failed(timeline: Timeline, outcome: Outcome) -> Self {
        AttemptResult {
            timeline,
            outcome,
            usage: None,
            retry: Retry::No,
            retry_after_ms: None,
            response: ResponseInfo::default(),
            answer: None,
        }
    }
}

/// What a response reports as it is read: usage, the tracing details and,
/// when kept, the answer's text.
#[derive(Default)]
struct Reading {
    usage: Option<ReportedUsage>,
    response: ResponseInfo,
    answer: Option<String>,
}

impl Reading {
    /// Appends streamed answer text, when the answer is kept.
    fn answer_text(&mut self, text: &str) {
        if let Some(answer) = &mut self.answer {
            answer.push_str(text);
        }
    }
}

/// The headers every attempt of `request` carries before signing.
pub(crate) fn base_headers(request: &PreparedRequest) -> HeaderMap {
    let json = HeaderValue::from_static(APPLICATION_JSON);
    let mut headers = HeaderMap::with_capacity(8);
    headers.insert(HOST, request.host.clone());
    headers.insert(CONTENT_TYPE, json.clone());
    match request.operation {
        Operation::InvokeModel => {
            headers.insert(ACCEPT, json);
        }
        Operation::InvokeModelWithResponseStream => {
            headers.insert(BEDROCK_ACCEPT, json);
        }
        _ => {}
    }
    if request.operation.is_native()
        && let Some(tier) = request.service_tier
    {
        headers.insert(SERVICE_TIER, HeaderValue::from_static(tier.as_str()));
    }
    headers
}

/// Sends `request` (already signed into `headers`) and reads the response.
///
/// While a stream is read, this future and the ones it awaits are what a
/// request holds, 10,000 of them at once in a big test. An async fn keeps
/// each by-value argument for its whole life, and its caller's copy stays
/// too, so the reading phase takes references. The sending phase's future
/// (about 2.5 KB: the pool, hyper's send, the request) is boxed, so that
/// it is freed when the response head arrives instead of sizing the whole
/// future for as long as the stream lasts.
pub(crate) async fn run(
    transport: &Transport,
    request: &PreparedRequest,
    headers: HeaderMap,
    intended_at: Option<u64>,
    clock: &RunClock,
    deadlines: &Deadlines,
) -> AttemptResult {
    let Sent {
        head,
        mut body,
        mut timeline,
    } = match Box::pin(exchange(
        transport,
        request,
        headers,
        intended_at,
        clock,
        deadlines.request,
    ))
    .await
    {
        Ok(sent) => sent,
        Err(failed) => return *failed,
    };
    let request_id = head.headers.get(REQUEST_ID).cloned();
    let header_tier = head
        .headers
        .get(SERVICE_TIER)
        .and_then(|v| v.to_str().ok())
        .and_then(ServiceTierType::parse);
    let ended = if !head.status.is_success() {
        read_error(&head, &mut body, &mut timeline, clock, deadlines).await
    } else {
        read_success(request, &head, &mut body, &mut timeline, clock, deadlines).await
    };
    let mut response = ended.reading.response;
    response.request_id = request_id;
    if response.service_tier.is_none() {
        response.service_tier = header_tier;
    }
    AttemptResult {
        timeline,
        outcome: ended.outcome,
        usage: ended.reading.usage,
        retry: ended.retry,
        retry_after_ms: ended.retry_after_ms,
        response,
        answer: ended.reading.answer,
    }
}

/// A request whose response head has arrived.
struct Sent {
    head: http::response::Parts,
    body: ResponseBody,
    timeline: Timeline,
}

/// Sends the request and waits for the response head; the finished
/// attempt when none came.
async fn exchange(
    transport: &Transport,
    request: &PreparedRequest,
    headers: HeaderMap,
    intended_at: Option<u64>,
    clock: &RunClock,
    deadline: Instant,
) -> Result<Sent, Box<AttemptResult>> {
    let mut builder = Request::builder()
        .method(Method::POST)
        .uri(request.uri.clone());
    if let Some(h) = builder.headers_mut() {
        *h = headers;
    }
    let Ok(http_request) = builder.body(Full::new(request.body.clone())) else {
        let now = clock.now_ns();
        return Err(Box::new(AttemptResult::failed(
            Timeline::started(intended_at, now),
            Outcome::ClientError,
        )));
    };
    let sent_at = clock.now_ns();
    let mut timeline = Timeline::started(intended_at, sent_at);
    let exchange = match tokio::time::timeout_at(deadline, transport.send(http_request)).await {
        Ok(Ok(exchange)) => exchange,
        Ok(Err(err)) => {
            tracing::debug!(error = %err, "request failed before a response");
            timeline.close(clock.now_ns());
            return Err(Box::new(AttemptResult {
                retry: Retry::Transient,
                ..AttemptResult::failed(timeline, Outcome::Transport)
            }));
        }
        Err(_) => {
            timeline.close(clock.now_ns());
            return Err(Box::new(AttemptResult::failed(timeline, Outcome::Timeout)));
        }
    };
    timeline.on_headers(clock.now_ns());
    // The request left when its connection was ready: waiting for the pool
    // and opening a connection are the client's and the network's time, not
    // the model's, so they are recorded apart and kept out of TTFT.
    let pool_wait = duration_ns(exchange.timing.pool_wait);
    let connect = exchange.timing.connect.map(duration_ns);
    timeline.pool_wait_ns = pool_wait;
    timeline.connect_ns = connect;
    timeline.sent_at = (sent_at + pool_wait + connect.unwrap_or(0))
        .min(timeline.response_headers_at.unwrap_or(u64::MAX));
    Ok(Sent {
        head: exchange.head,
        body: exchange.body,
        timeline,
    })
}

/// How reading a response ended: an [`AttemptResult`] but for the
/// timeline, which [`run`] keeps.
struct ReadEnd {
    outcome: Outcome,
    reading: Reading,
    retry: Retry,
    retry_after_ms: Option<u64>,
}

impl ReadEnd {
    /// Ended with `outcome` and nothing read.
    fn with(outcome: Outcome) -> Self {
        ReadEnd {
            outcome,
            reading: Reading::default(),
            retry: Retry::No,
            retry_after_ms: None,
        }
    }
}

/// Reads a successful response, streamed or not.
async fn read_success(
    request: &PreparedRequest,
    head: &http::response::Parts,
    body: &mut ResponseBody,
    timeline: &mut Timeline,
    clock: &RunClock,
    deadlines: &Deadlines,
) -> ReadEnd {
    let keep = request.keep_answer;
    match request.operation {
        Operation::ConverseStream => {
            let mut decoder = ConverseStreamDecoder::new();
            read_stream(body, timeline, clock, deadlines, &mut decoder, keep).await
        }
        Operation::InvokeModelWithResponseStream => {
            let mut decoder = InvokeStreamDecoder::new(request.family);
            read_stream(body, timeline, clock, deadlines, &mut decoder, keep).await
        }
        _ => read_unary(request, head, body, timeline, clock, deadlines).await,
    }
}

/// Reads an event stream to its end, whichever kind `decoder` decodes:
/// each chunk's completed events are recorded as they arrive, and an
/// in-band exception or undecodable bytes end the stream.
async fn read_stream<D>(
    body: &mut ResponseBody,
    timeline: &mut Timeline,
    clock: &RunClock,
    deadlines: &Deadlines,
    decoder: &mut D,
    keep_answer: bool,
) -> ReadEnd
where
    D: StreamDecoder,
    D::Event: RecordEvent,
{
    let mut reading = Reading {
        answer: keep_answer.then(String::new),
        ..Reading::default()
    };
    let mut stamps = FrameStamps::new(*clock);
    let deadline_now = |timeline: &Timeline| match deadlines.first_token {
        Some(first) if timeline.first_token_at.is_none() => first.min(deadlines.request),
        _ => deadlines.request,
    };
    // One timer for the whole stream, moved only when the deadline does (at
    // the first token): a timer per chunk would register and clear a timer
    // entry for every chunk that is not already waiting.
    let mut armed = deadline_now(timeline);
    let mut timer = pin!(tokio::time::sleep_until(armed));
    let outcome = loop {
        let deadline = deadline_now(timeline);
        if deadline != armed {
            armed = deadline;
            timer.as_mut().reset(deadline);
        }
        let chunk = match within(timer.as_mut(), body.next_chunk()).await {
            None => break Outcome::Timeout,
            Some(None) => break Outcome::Ok,
            Some(Some(Err(err))) => {
                tracing::debug!(error = %err, "stream broke");
                break Outcome::StreamError;
            }
            Some(Some(Ok(chunk))) => chunk,
        };
        let at = clock.now_ns();
        let read = ChunkRead {
            timeline,
            reading: &mut reading,
            stamps: &mut stamps,
        };
        if let Some(ended) = read.chunk(decoder, &chunk, at) {
            break ended;
        }
    };
    timeline.close(clock.now_ns());
    ReadEnd {
        reading,
        ..ReadEnd::with(outcome)
    }
}

/// `work`'s output, or `None` once `timer` fires first. Like
/// [`tokio::time::timeout_at`], `work` is polled first, so a result that is
/// ready wins over a deadline that has passed; unlike it, the timer outlives
/// the call and is registered only when `work` has to wait.
async fn within<F: Future>(mut timer: Pin<&mut Sleep>, work: F) -> Option<F::Output> {
    let mut work = pin!(work);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = work.as_mut().poll(cx) {
            return Poll::Ready(Some(out));
        }
        timer.as_mut().poll(cx).map(|()| None)
    })
    .await
}

/// What one body chunk of a stream updates.
struct ChunkRead<'a> {
    timeline: &'a mut Timeline,
    reading: &'a mut Reading,
    stamps: &'a mut FrameStamps,
}

impl ChunkRead<'_> {
    /// Decodes `chunk`, read off the socket at `at`, and records every
    /// event it completes; `Some(outcome)` when the stream ends here (an
    /// in-band exception, or bytes that are not a valid stream).
    fn chunk<D>(self, decoder: &mut D, chunk: &[u8], at: u64) -> Option<Outcome>
    where
        D: StreamDecoder,
        D::Event: RecordEvent,
    {
        decoder.push(chunk);
        loop {
            match decoder.next_event() {
                Ok(Some(event)) => {
                    let had_first_token = self.timeline.first_token_at.is_some();
                    let ended = event.record(at, self.timeline, self.reading);
                    let first_token = !had_first_token && self.timeline.first_token_at.is_some();
                    self.stamps
                        .on_event(decoder.origin(), at, first_token, self.timeline);
                    if ended.is_some() {
                        return ended;
                    }
                }
                Ok(None) => return None,
                Err(err) => {
                    tracing::debug!(error = %err, "malformed event stream");
                    return Some(Outcome::StreamError);
                }
            }
        }
    }
}

/// Pairs each frame the server stamped with its write time
/// ([`quarry_bedrock::WRITTEN_NS_HEADER`]) with the read stamp of the chunk
/// that completed it, once per frame however many events it yields, and
/// keeps the difference on the timeline. Costs a comparison per event when
/// nothing is stamped.
struct FrameStamps {
    clock: RunClock,
    /// [`EventOrigin::frames`] of the last frame paired or passed over.
    last_frame: u64,
}

impl FrameStamps {
    fn new(clock: RunClock) -> Self {
        FrameStamps {
            clock,
            last_frame: 0,
        }
    }

    /// An event of the frame `origin` was recorded, read at `at`;
    /// `first_token` when it was the response's first content token.
    fn on_event(
        &mut self,
        origin: EventOrigin,
        at: u64,
        first_token: bool,
        timeline: &mut Timeline,
    ) {
        let Some(written) = origin.written_ns else {
            return;
        };
        let Some(written_at) = self.clock.monotonic_to_run_ns(written) else {
            return;
        };
        // Run time fits i64 for 292 years.
        let delay = i64::try_from(at)
            .unwrap_or(i64::MAX)
            .saturating_sub(written_at);
        if origin.frames != self.last_frame {
            self.last_frame = origin.frames;
            timeline.frame_read_delays.push(delay);
        }
        if first_token {
            timeline.first_token_read_delay = Some(delay);
        }
    }
}

/// A stream event the attempt records: its time on the timeline, and what
/// it says about usage, the stop reason or an in-band failure.
trait RecordEvent {
    /// Records the event, arrived at `at`; `Some(outcome)` ends the stream.
    fn record(self, at: u64, timeline: &mut Timeline, reading: &mut Reading) -> Option<Outcome>;
}

impl RecordEvent for ConverseStreamEvent {
    fn record(self, at: u64, timeline: &mut Timeline, reading: &mut Reading) -> Option<Outcome> {
        on_converse_event(self, at, timeline, reading)
    }
}

impl RecordEvent for InvokeStreamEvent {
    fn record(self, at: u64, timeline: &mut Timeline, reading: &mut Reading) -> Option<Outcome> {
        on_invoke_event(self, at, timeline, reading)
    }
}

/// Records one ConverseStream event; `Some(outcome)` ends the stream.
fn on_converse_event(
    event: ConverseStreamEvent,
    at: u64,
    timeline: &mut Timeline,
    reading: &mut Reading,
) -> Option<Outcome> {
    match event {
        ConverseStreamEvent::ContentBlockDelta { delta, .. } => match delta {
            BlockDelta::Text(text) => {
                timeline.on_content(at, estimate_tokens(&text));
                reading.answer_text(&text);
            }
            BlockDelta::ToolUseInput(text) => timeline.on_content(at, estimate_tokens(&text)),
            BlockDelta::ReasoningText(_)
            | BlockDelta::ReasoningSignature(_)
            | BlockDelta::RedactedReasoning(_) => timeline.on_reasoning(at),
            BlockDelta::Other(_) => timeline.on_event(at),
        },
        ConverseStreamEvent::MessageStop { stop_reason, .. } => {
            timeline.on_event(at);
            reading.response.stop_reason = Some(stop_reason.into_boxed_str());
        }
        ConverseStreamEvent::Metadata(metadata) => {
            timeline.on_event(at);
            reading.response.service_tier = metadata.service_tier;
            reading.usage = Some(ReportedUsage {
                tokens: metadata.usage,
                source: UsageSource::ConverseUsage,
            });
        }
        ConverseStreamEvent::Exception(error) => {
            timeline.on_event(at);
            tracing::debug!(error = %error, "in-stream exception");
            reading.response.error_code = error.code;
            reading.response.quota_wall = error.quota_wall();
            return Some(error.outcome());
        }
        _ => timeline.on_event(at),
    }
    None
}

/// Records one InvokeModelWithResponseStream event; `Some(outcome)` ends it.
fn on_invoke_event(
    event: InvokeStreamEvent,
    at: u64,
    timeline: &mut Timeline,
    reading: &mut Reading,
) -> Option<Outcome> {
    match event {
        InvokeStreamEvent::TextDelta(text) => {
            timeline.on_content(at, estimate_tokens(&text));
            reading.answer_text(&text);
        }
        InvokeStreamEvent::ReasoningDelta(_) => timeline.on_reasoning(at),
        InvokeStreamEvent::Metrics(metrics) => {
            timeline.on_event(at);
            reading.usage = Some(ReportedUsage {
                tokens: metrics.usage(),
                source: UsageSource::InvocationMetrics,
            });
        }
        InvokeStreamEvent::Exception(error) => {
            timeline.on_event(at);
            tracing::debug!(error = %error, "in-stream exception");
            reading.response.error_code = error.code;
            reading.response.quota_wall = error.quota_wall();
            return Some(error.outcome());
        }
        _ => timeline.on_event(at),
    }
    None
}

/// Reads a non-streaming response: the whole body is the first (and last)
/// token, so TTFT and E2E coincide for these operations.
async fn read_unary(
    request: &PreparedRequest,
    head: &http::response::Parts,
    body: &mut ResponseBody,
    timeline: &mut Timeline,
    clock: &RunClock,
    deadlines: &Deadlines,
) -> ReadEnd {
    let bytes = match tokio::time::timeout_at(deadlines.request, body.collect()).await {
        Err(_) => return closed(timeline, clock, Outcome::Timeout),
        Ok(Err(err)) => {
            tracing::debug!(error = %err, "response body broke");
            return closed(timeline, clock, Outcome::Transport);
        }
        Ok(Ok(bytes)) => bytes,
    };
    let at = clock.now_ns();
    let (operation, family) = (request.operation, request.family);
    let mut stop_reason = None;
    let mut service_tier = None;
    let mut answer = None;
    let parsed = match operation {
        Operation::Converse => serde_json::from_slice::<ConverseResponse>(&bytes)
            .map(|r| {
                stop_reason = Some(Box::from(r.stop_reason.as_str()));
                service_tier = r.service_tier.map(|t| t.kind);
                answer = request.keep_answer.then(|| r.text());
                Some((r.usage.to_usage(), UsageSource::ConverseUsage))
            })
            .map_err(|e| e.to_string()),
        Operation::CountTokens => serde_json::from_slice::<CountTokensResponse>(&bytes)
            .map(|r| {
                let tokens = TokenUsage {
                    input_tokens: r.input_tokens,
                    ..TokenUsage::default()
                };
                Some((tokens, UsageSource::ConverseUsage))
            })
            .map_err(|e| e.to_string()),
        _ => match (
            NativeResponse::parse(family, &bytes),
            ResponseHeaders::parse(&head.headers),
        ) {
            (Ok(native), Ok(headers)) => {
                let output = native.summarize(&headers);
                stop_reason = output.stop_reason.map(String::into_boxed_str);
                answer = request.keep_answer.then_some(output.text);
                Ok(output.usage.zip(output.usage_source))
            }
            (Err(e), _) => Err(e.to_string()),
            (_, Err(e)) => Err(e.to_string()),
        },
    };
    match parsed {
        Ok(usage) => {
            let output_tokens = usage.map_or(0, |(tokens, _)| tokens.output_tokens);
            timeline.on_content(at, u32::try_from(output_tokens).unwrap_or(u32::MAX).max(1));
            timeline.close(at);
            ReadEnd {
                reading: Reading {
                    usage: usage.map(|(tokens, source)| ReportedUsage { tokens, source }),
                    response: ResponseInfo {
                        stop_reason,
                        service_tier,
                        ..ResponseInfo::default()
                    },
                    answer,
                },
                ..ReadEnd::with(Outcome::Ok)
            }
        }
        Err(err) => {
            tracing::debug!(error = %err, "unreadable {operation} response");
            timeline.close(at);
            ReadEnd::with(Outcome::StreamError)
        }
    }
}

/// Reads and classifies an HTTP error response.
async fn read_error(
    head: &http::response::Parts,
    body: &mut ResponseBody,
    timeline: &mut Timeline,
    clock: &RunClock,
    deadlines: &Deadlines,
) -> ReadEnd {
    let bytes = tokio::time::timeout_at(deadlines.request, body.collect())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let error_type = head
        .headers
        .get(ERROR_TYPE_HEADER)
        .and_then(|v| v.to_str().ok());
    let error = ServiceError::from_response(head.status.as_u16(), error_type, &bytes);
    let retry_after_ms = head
        .headers
        .get(RETRY_AFTER_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    tracing::debug!(error = %error, "request rejected");
    let mut ended = closed(timeline, clock, error.outcome());
    ended.retry = error.retry();
    ended.retry_after_ms = retry_after_ms;
    ended.reading.response.error_code = error.code;
    ended.reading.response.quota_wall = error.quota_wall();
    ended
}

/// Closes the timeline now: the attempt ended with `outcome`.
fn closed(timeline: &mut Timeline, clock: &RunClock, outcome: Outcome) -> ReadEnd {
    timeline.close(clock.now_ns());
    ReadEnd::with(outcome)
}

/// About how many tokens a streamed text delta carries, for token-normalised
/// inter-token latency: four characters a token, at least one. Exact counts
/// come from the server's usage at the end; this only weights the gaps.
fn estimate_tokens(text: &str) -> u32 {
    u32::try_from(text.len().div_ceil(4))
        .unwrap_or(u32::MAX)
        .max(1)
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use quarry_bedrock::{
        InvocationMetrics, InvokeStreamEncoder, PendingStamp, StreamMetadata, WRITTEN_NS_HEADER,
    };

    use super::*;

    /// The run's origin on `CLOCK_MONOTONIC`, as the test pretends.
    const ORIGIN: i64 = 7_000_000_000;

    fn clock() -> RunClock {
        RunClock::start(std::time::UNIX_EPOCH).with_monotonic_origin(Some(ORIGIN))
    }

    /// One encoded frame, stamped as written `written` ns after the origin
    /// when given.
    fn frame(event: &ConverseStreamEvent, written: Option<i64>) -> Vec<u8> {
        let mut out = BytesMut::new();
        event.encode(&mut out, 3).unwrap();
        match written {
            Some(w) => PendingStamp::new(&out, WRITTEN_NS_HEADER)
                .unwrap()
                .stamp(ORIGIN + w)
                .to_vec(),
            None => out.to_vec(),
        }
    }

    fn text(t: &str) -> ConverseStreamEvent {
        ConverseStreamEvent::ContentBlockDelta {
            content_block_index: 0,
            delta: BlockDelta::Text(t.into()),
        }
    }

    /// Feeds `chunks` (bytes, read stamp) through the reader's per-chunk
    /// step, as `read_stream` does after each socket read.
    fn read<D>(mut decoder: D, chunks: &[(Vec<u8>, u64)]) -> (Timeline, Option<Outcome>)
    where
        D: StreamDecoder,
        D::Event: RecordEvent,
    {
        let mut timeline = Timeline::started(None, 0);
        let mut reading = Reading::default();
        let mut stamps = FrameStamps::new(clock());
        for (bytes, at) in chunks {
            let read = ChunkRead {
                timeline: &mut timeline,
                reading: &mut reading,
                stamps: &mut stamps,
            };
            if let Some(ended) = read.chunk(&mut decoder, bytes, *at) {
                return (timeline, Some(ended));
            }
        }
        (timeline, None)
    }

    #[test]
    fn each_stamped_frame_pairs_with_the_read_that_completed_it() {
        let start = frame(
            &ConverseStreamEvent::MessageStart {
                role: "assistant".into(),
            },
            Some(900_000),
        );
        let first = frame(&text("Hi"), Some(950_000));
        let second = frame(&text(" there"), Some(990_000));
        let split = frame(&text(" friend"), Some(1_500_000));
        let unstamped = frame(
            &ConverseStreamEvent::ContentBlockStop {
                content_block_index: 0,
            },
            None,
        );
        let last = frame(
            &ConverseStreamEvent::Metadata(StreamMetadata {
                usage: TokenUsage::default(),
                latency_ms: 1,
                server_tool_usage: None,
                service_tier: None,
            }),
            Some(3_999_000),
        );
        let cut = split.len() / 2;
        let chunks = [
            // Three whole frames in one read.
            ([start, first, second].concat(), 1_000_000),
            // One frame across two reads: the second completes it.
            (split[..cut].to_vec(), 2_000_000),
            ([&split[cut..], &unstamped[..]].concat(), 3_000_000),
            (last, 4_000_000),
        ];
        let (timeline, ended) = read(ConverseStreamDecoder::new(), &chunks);
        assert_eq!(ended, None);
        assert_eq!(
            timeline.frame_read_delays,
            [100_000, 50_000, 10_000, 1_500_000, 1_000],
            "in frame order; the unstamped frame records nothing"
        );
        assert_eq!(timeline.first_token_read_delay, Some(50_000));
        assert_eq!(timeline.first_token_at, Some(1_000_000));
    }

    #[test]
    fn an_invoke_frame_of_several_events_pairs_once() {
        // Llama's last chunk is one frame of two events (stop reason and
        // metrics); its first chunk carries the first token.
        let mut encoder = InvokeStreamEncoder::new(ModelFamily::Llama);
        let mut frames = Vec::new();
        let mut out = BytesMut::new();
        encoder.text(&mut out, "Hi", 2).unwrap();
        frames.push(out.split());
        encoder
            .finish(&mut out, "stop", &InvocationMetrics::default(), 2)
            .unwrap();
        frames.push(out.split());
        let chunks: Vec<_> = frames
            .iter()
            .zip([(10, 500), (20, 600)])
            .map(|(f, (written, at))| {
                let stamped = PendingStamp::new(f, WRITTEN_NS_HEADER)
                    .unwrap()
                    .stamp(ORIGIN + written);
                (stamped.to_vec(), at)
            })
            .collect();
        let (timeline, _) = read(InvokeStreamDecoder::new(ModelFamily::Llama), &chunks);
        assert_eq!(timeline.frame_read_delays, [490, 580]);
        assert_eq!(timeline.first_token_read_delay, Some(490));
    }

    #[test]
    fn unstamped_frames_record_nothing() {
        let body = [
            frame(&text("a"), None),
            frame(&text("b"), None),
            frame(
                &ConverseStreamEvent::ContentBlockStop {
                    content_block_index: 0,
                },
                None,
            ),
        ]
        .concat();
        let (timeline, _) = read(ConverseStreamDecoder::new(), &[(body, 10)]);
        assert!(timeline.frame_read_delays.is_empty());
        assert_eq!(timeline.first_token_read_delay, None);
        assert_eq!(timeline.content_events.len(), 2);
    }

    #[test]
    fn without_a_clock_mapping_stamps_are_ignored() {
        let mut timeline = Timeline::started(None, 0);
        let unmapped = RunClock::start(std::time::UNIX_EPOCH).with_monotonic_origin(None);
        let mut stamps = FrameStamps::new(unmapped);
        let origin = EventOrigin {
            frames: 1,
            written_ns: Some(5),
        };
        stamps.on_event(origin, 10, true, &mut timeline);
        assert!(timeline.frame_read_delays.is_empty());
        assert_eq!(timeline.first_token_read_delay, None);
    }

    #[test]
    fn a_read_before_the_write_is_kept_negative() {
        let mut timeline = Timeline::started(None, 0);
        let mut stamps = FrameStamps::new(clock());
        let origin = EventOrigin {
            frames: 1,
            written_ns: Some(ORIGIN + 1_000),
        };
        stamps.on_event(origin, 400, true, &mut timeline);
        assert_eq!(timeline.frame_read_delays, [-600]);
        assert_eq!(timeline.first_token_read_delay, Some(-600));
    }
}
