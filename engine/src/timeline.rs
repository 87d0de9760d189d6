//! One request's life on the run clock, and what an executor hands back.
//!
//! The executor (the HTTP client) stamps the [`Timeline`] at socket read,
//! before any parsing, with [`RunClock::now_ns`](crate::RunClock::now_ns);
//! the recorder derives every latency metric from these stamps, so the
//! definitions live in one place (DESIGN.md "Request timeline and metric
//! definitions").

use std::sync::Arc;

use http::HeaderValue;
use quarry_bedrock::{
    ErrorCode, Operation, Outcome, QuotaWall, ServiceTierType, TokenUsage, UsageSource,
};

/// A request the scheduler has decided to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestTicket {
    /// Dense per run share, from 0, in dispatch order.
    pub seq: u64,
    /// When the schedule wanted it sent (open loop only): the origin of the
    /// coordinated-omission-free "from schedule" latencies.
    pub intended_at: Option<u64>,
    /// Index of the stage it belongs to.
    pub stage: usize,
    /// The closed-loop virtual user sending it.
    pub slot: Option<u32>,
    /// The index of the replayed trace request it sends (replay only).
    pub replay: Option<u64>,
    /// The session turn it is (multi-turn sessions only).
    pub turn: Option<TurnRef>,
}

/// Which turn of which session a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TurnRef {
    /// The session's number in its share, from 0, in start order: with the
    /// share's seed it draws the session's mix entry and questions.
    pub session: u64,
    /// The turn, from 1.
    pub index: u32,
}

/// A request the workload picked for a ticket: which model and operation it
/// targets (these key its series) and the opaque item the executor sends.
#[derive(Debug, Clone)]
pub struct PlannedRequest<I> {
    /// The model id as sent; part of the series key.
    pub model: Arc<str>,
    /// The operation; part of the series key.
    pub operation: Operation,
    /// The service tier asked for; part of the series key.
    pub service_tier: Option<ServiceTierType>,
    /// Whatever the executor needs to build the request (body, max_tokens...).
    pub item: I,
}

/// One content (text) event of a streamed response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentEvent {
    /// When its bytes were read off the socket.
    pub at: u64,
    /// Tokens it carried, as the client estimates them (servers report no
    /// per-event counts); 0 when unknown, which excludes the event from the
    /// token-normalised inter-token latency.
    pub tokens: u32,
}

/// A request's timestamps, ns since the run's origin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timeline {
    /// The scheduled send time (open loop only).
    pub intended_at: Option<u64>,
    /// When the request's first byte was written.
    pub sent_at: u64,
    /// Time spent waiting for a pooled connection before `sent_at` (0 when
    /// one was free); feeds the agent's pool-wait health figure.
    pub pool_wait_ns: u64,
    /// TCP + TLS + HTTP handshake before `sent_at`, when this request opened
    /// its connection. Kept apart so set-up cost never counts as the model's.
    pub connect_ns: Option<u64>,
    /// When the response status and headers were read.
    pub response_headers_at: Option<u64>,
    /// When the first stream event of any kind was read.
    pub first_event_at: Option<u64>,
    /// When the first content (text) delta was read: TTFT ends here.
    pub first_token_at: Option<u64>,
    /// When the first reasoning delta was read (kept apart from content).
    pub first_reasoning_at: Option<u64>,
    /// Reasoning deltas received.
    pub reasoning_events: u32,
    /// Every content event, in arrival order: ITL is the gaps between them.
    pub content_events: Vec<ContentEvent>,
    /// When the last content delta was read: E2E ends here.
    pub last_token_at: Option<u64>,
    /// When the response was fully read or the request failed.
    pub closed_at: u64,
    /// For each event-stream frame the server stamped with its write time
    /// (`quarry-sim` with `stamp_frames`), in read order: the read stamp of
    /// the chunk that completed the frame minus that write time mapped onto
    /// the run clock, ns. Signed: a negative value cannot happen on one
    /// clock and says the mapping is wrong. Empty (no allocation) when the
    /// server stamped nothing, as Bedrock never does.
    pub frame_read_delays: Vec<i64>,
    /// The same for the frame that carried the first content token (the
    /// client's own part of TTFT), when the server stamped it.
    pub first_token_read_delay: Option<i64>,
}

impl Timeline {
    /// A timeline for a request sent at `sent_at`, scheduled for `intended_at`.
    pub fn started(intended_at: Option<u64>, sent_at: u64) -> Self {
        Timeline {
            intended_at,
            sent_at,
            closed_at: sent_at,
            ..Timeline::default()
        }
    }

    /// The status line and headers were read at `at`.
    pub fn on_headers(&mut self, at: u64) {
        self.response_headers_at.get_or_insert(at);
    }

    /// A stream event of any kind was read at `at`.
    pub fn on_event(&mut self, at: u64) {
        self.first_event_at.get_or_insert(at);
    }

    /// A content delta carrying about `tokens` tokens was read at `at`.
    /// Also counts as an event. For a non-streaming response, call it once
    /// when the body is read so TTFT and E2E are both defined.
    pub fn on_content(&mut self, at: u64, tokens: u32) {
        self.on_event(at);
        self.first_token_at.get_or_insert(at);
        self.last_token_at = Some(at);
        self.content_events.push(ContentEvent { at, tokens });
    }

    /// A reasoning delta was read at `at`.
    pub fn on_reasoning(&mut self, at: u64) {
        self.on_event(at);
        self.first_reasoning_at.get_or_insert(at);
        self.reasoning_events = self.reasoning_events.saturating_add(1);
    }

    /// The request ended (response read, or failed) at `at`.
    pub fn close(&mut self, at: u64) {
        self.closed_at = at;
    }

    /// sent_at − intended_at: the load generator's own lateness.
    pub fn schedule_lag(&self) -> Option<u64> {
        self.intended_at.map(|i| self.sent_at.saturating_sub(i))
    }

    /// TTFT, service view: first_token_at − sent_at.
    pub fn ttft_from_send(&self) -> Option<u64> {
        self.first_token_at.map(|t| t.saturating_sub(self.sent_at))
    }

    /// TTFT, user view: first_token_at − intended_at.
    pub fn ttft_from_schedule(&self) -> Option<u64> {
        Some(self.first_token_at?.saturating_sub(self.intended_at?))
    }

    /// When the response was complete: the last token, or the close for a
    /// response without content.
    pub fn completed_at(&self) -> u64 {
        self.last_token_at.unwrap_or(self.closed_at)
    }

    /// E2E, service view: completion − sent_at.
    pub fn e2e_from_send(&self) -> u64 {
        self.completed_at().saturating_sub(self.sent_at)
    }

    /// E2E, user view: completion − intended_at.
    pub fn e2e_from_schedule(&self) -> Option<u64> {
        self.intended_at
            .map(|i| self.completed_at().saturating_sub(i))
    }

    /// TPOT: (last_token_at − first_token_at) / (output_tokens − 1), for
    /// responses with at least two output tokens.
    pub fn tpot(&self, output_tokens: u64) -> Option<u64> {
        if output_tokens < 2 {
            return None;
        }
        let span = self.last_token_at?.saturating_sub(self.first_token_at?);
        Some(span / (output_tokens - 1))
    }

    /// Output tokens per second over the whole request (sent → complete), in
    /// milli-tokens per second so slow streams keep their precision.
    pub fn output_milli_tokens_per_s(&self, output_tokens: u64) -> Option<u64> {
        let e2e = self.e2e_from_send();
        if output_tokens == 0 || e2e == 0 {
            return None;
        }
        let milli = u128::from(output_tokens) * 1_000 * 1_000_000_000 / u128::from(e2e);
        Some(u64::try_from(milli).unwrap_or(u64::MAX))
    }

    /// Gaps between consecutive content events, each with the tokens of the
    /// event that ends it.
    pub fn inter_token_gaps(&self) -> impl Iterator<Item = (u64, u32)> + '_ {
        self.content_events
            .windows(2)
            .map(|w| (w[1].at.saturating_sub(w[0].at), w[1].tokens))
    }
}

/// Token counts for a request with where they came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportedUsage {
    /// The counts.
    pub tokens: TokenUsage,
    /// Their provenance.
    pub source: UsageSource,
}

/// A failed attempt the executor retried before its final one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EarlierAttempt {
    /// How it ended.
    pub outcome: Outcome,
    /// When it was sent.
    pub sent_at: u64,
    /// When it ended.
    pub closed_at: u64,
    /// The quota a throttled attempt's message named.
    pub quota_wall: Option<QuotaWall>,
}

/// Everything an executor reports for one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The final attempt's timeline.
    pub timeline: Timeline,
    /// The final attempt's outcome.
    pub outcome: Outcome,
    /// Token usage when the response reported (or the client estimated) it.
    pub usage: Option<ReportedUsage>,
    /// The request's `max_tokens`, for the quota reservation.
    pub max_tokens: u64,
    /// The request's cost in pico-dollars (10^-12 USD), from the pricing table
    /// (0 when unpriced). Pico, not micro: a cheap model's request costs a few
    /// micro-dollars, and rounding each one would skew the total by percents.
    pub cost_pico_usd: u64,
    /// Attempts retried before the final one (empty when retries are off).
    pub earlier_attempts: Vec<EarlierAttempt>,
    /// The request's sampling temperature, when it set one.
    pub temperature: Option<f32>,
    /// What the final attempt's response said about itself (for request
    /// spans; cheap to carry: no allocation unless the model stopped with a
    /// reason, which arrives as an owned string anyway).
    pub response: ResponseInfo,
}

/// Identifying details of a response, kept for tracing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResponseInfo {
    /// Bedrock's `x-amzn-RequestId`, the id to find the request in AWS logs.
    pub request_id: Option<HeaderValue>,
    /// Why generation stopped (`end_turn`, `max_tokens`, ...).
    pub stop_reason: Option<Box<str>>,
    /// The service's error code, when the request failed with one.
    pub error_code: Option<ErrorCode>,
    /// The quota a throttle's message named (TPM, RPM, TPD).
    pub quota_wall: Option<QuotaWall>,
    /// The tier that served the request, as the response reported it
    /// (`serviceTier` in the body or stream metadata, or the
    /// `X-Amzn-Bedrock-Service-Tier` header).
    pub service_tier: Option<ServiceTierType>,
}

impl Completion {
    /// A completion with no usage, cost or retries.
    pub fn new(timeline: Timeline, outcome: Outcome) -> Self {
        Completion {
            timeline,
            outcome,
            usage: None,
            max_tokens: 0,
            cost_pico_usd: 0,
            earlier_attempts: Vec::new(),
            temperature: None,
            response: ResponseInfo::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_follow_the_design_definitions() {
        let mut t = Timeline::started(Some(1_000), 1_500);
        t.on_headers(2_000);
        t.on_reasoning(2_500);
        t.on_content(3_000, 2);
        t.on_content(3_400, 3);
        t.on_content(4_000, 0);
        t.close(4_100);
        assert_eq!(t.schedule_lag(), Some(500));
        assert_eq!(t.first_event_at, Some(2_500));
        assert_eq!(t.first_reasoning_at, Some(2_500));
        assert_eq!(t.ttft_from_send(), Some(1_500));
        assert_eq!(t.ttft_from_schedule(), Some(2_000));
        assert_eq!(t.e2e_from_send(), 2_500);
        assert_eq!(t.e2e_from_schedule(), Some(3_000));
        assert_eq!(t.tpot(11), Some(100));
        assert_eq!(t.tpot(1), None);
        assert_eq!(
            t.inter_token_gaps().collect::<Vec<_>>(),
            vec![(400, 3), (600, 0)]
        );
        // 5 tokens in 2,500 ns is 2e6 tokens/s: 2e9 milli-tokens/s.
        assert_eq!(t.output_milli_tokens_per_s(5), Some(2_000_000_000));
    }

    #[test]
    fn closed_loop_has_no_schedule_view() {
        let mut t = Timeline::started(None, 10);
        t.close(50);
        assert_eq!(t.schedule_lag(), None);
        assert_eq!(t.ttft_from_send(), None);
        assert_eq!(t.e2e_from_send(), 40);
        assert_eq!(t.e2e_from_schedule(), None);
    }
}
