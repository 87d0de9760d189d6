//! Series: what one (group, model, operation, stage) measured — its HDR
//! histograms and counters — and how series merge and travel.
//!
//! Every histogram of every agent has one configuration
//! ([`HISTOGRAM_LOWEST`], [`HISTOGRAM_HIGHEST`], [`HISTOGRAM_SIGFIG`]), so
//! merging with HDR `add` is exact and never fails; percentiles are never
//! averaged. Histograms are allocated once at their full size and record with
//! saturation, counting every clamped value, so recording never allocates.
//! On the wire a histogram is HdrHistogram V2+DEFLATE bytes.

use std::fmt;
use std::sync::Arc;

use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use quarry_bedrock::{Operation, Outcome, UsageSource};

/// Lowest discernible value: 1 (nanoseconds, or milli-tokens per second).
pub const HISTOGRAM_LOWEST: u64 = 1;
/// Highest trackable value: one hour in nanoseconds. Larger values are
/// recorded as this and counted in `saturated_values`.
pub const HISTOGRAM_HIGHEST: u64 = 3_600_000_000_000;
/// Significant decimal digits: 0.1 % value precision.
pub const HISTOGRAM_SIGFIG: u8 = 3;

/// A histogram with the one configuration every series uses.
pub fn new_histogram() -> Histogram<u64> {
    // unwrap is safe because the bounds are constants HDR accepts
    // (1 <= lowest, highest >= 2 * lowest, sigfig <= 5), checked by a test.
    Histogram::new_with_bounds(HISTOGRAM_LOWEST, HISTOGRAM_HIGHEST, HISTOGRAM_SIGFIG).unwrap()
}

/// What every series is keyed by.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    /// The agent group (region / account) the plan assigned.
    pub group: Arc<str>,
    /// The model id as sent; empty for a stage's schedule series.
    pub model: Arc<str>,
    /// The operation; `None` for a stage's schedule series, which holds the
    /// open-loop arrivals dropped before a request was picked for them.
    pub operation: Option<Operation>,
    /// The stage name.
    pub stage: Arc<str>,
}

impl SeriesKey {
    /// The schedule series of `stage` (model empty, no operation).
    pub fn schedule(group: Arc<str>, stage: Arc<str>) -> Self {
        SeriesKey {
            group,
            model: Arc::from(""),
            operation: None,
            stage,
        }
    }
}

impl fmt::Display for SeriesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = self.operation.map_or("-", Operation::name);
        write!(f, "{}/{}/{}/{}", self.group, self.model, op, self.stage)
    }
}

/// Each histogram a series keeps. Latencies are ns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    /// TTFT from send, successful requests.
    TtftFromSend,
    /// TTFT from schedule (open loop), successful requests.
    TtftFromSchedule,
    /// E2E from send, successful requests.
    E2eFromSend,
    /// E2E from schedule (open loop), successful requests.
    E2eFromSchedule,
    /// Gaps between content events.
    Itl,
    /// Gaps between content events divided by the tokens of the later event.
    ItlPerToken,
    /// (last_token − first_token) / (output_tokens − 1).
    Tpot,
    /// sent_at − intended_at, every open-loop request.
    ScheduleLag,
    /// Output milli-tokens per second per successful request.
    OutputMilliTokensPerS,
    /// sent → closed for every attempt, whatever its outcome.
    AttemptE2e,
    /// sent → closed for every throttled attempt.
    ThrottledLatency,
    /// Waiting for a pooled connection (or a slot under the connection cap),
    /// every request that got a response.
    PoolWait,
    /// TCP + TLS + HTTP handshake, for requests that opened a connection.
    Connect,
}

impl Metric {
    /// Number of metrics.
    pub const COUNT: usize = 13;

    /// Every metric, in wire order.
    pub const ALL: [Metric; Metric::COUNT] = [
        Metric::TtftFromSend,
        Metric::TtftFromSchedule,
        Metric::E2eFromSend,
        Metric::E2eFromSchedule,
        Metric::Itl,
        Metric::ItlPerToken,
        Metric::Tpot,
        Metric::ScheduleLag,
        Metric::OutputMilliTokensPerS,
        Metric::AttemptE2e,
        Metric::ThrottledLatency,
        Metric::PoolWait,
        Metric::Connect,
    ];

    /// The wire and report name.
    pub fn name(self) -> &'static str {
        match self {
            Metric::TtftFromSend => "ttft_from_send_ns",
            Metric::TtftFromSchedule => "ttft_from_schedule_ns",
            Metric::E2eFromSend => "e2e_from_send_ns",
            Metric::E2eFromSchedule => "e2e_from_schedule_ns",
            Metric::Itl => "itl_ns",
            Metric::ItlPerToken => "itl_per_token_ns",
            Metric::Tpot => "tpot_ns",
            Metric::ScheduleLag => "schedule_lag_ns",
            Metric::OutputMilliTokensPerS => "output_milli_tokens_per_s",
            Metric::AttemptE2e => "attempt_e2e_ns",
            Metric::ThrottledLatency => "throttled_latency_ns",
            Metric::PoolWait => "pool_wait_ns",
            Metric::Connect => "connect_ns",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The kinds of token a usage report counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// Billed input.
    Input,
    /// Output.
    Output,
    /// Input read from the prompt cache.
    CacheRead,
    /// Input written to the prompt cache.
    CacheWrite,
}

/// Every usage provenance, in counter order.
pub const USAGE_SOURCES: [UsageSource; 5] = [
    UsageSource::ConverseUsage,
    UsageSource::ResponseHeaders,
    UsageSource::InvocationMetrics,
    UsageSource::NativeBody,
    UsageSource::ClientEstimate,
];

/// Each counter a series keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Count {
    /// Requests by final outcome.
    Outcome(Outcome),
    /// Every attempt, retries included.
    Attempts,
    /// Attempts beyond the first.
    Retries,
    /// Retried attempts that were throttled (the quota wall, even when the
    /// retry then succeeded).
    RetriedThrottles,
    /// Open-loop sends whose schedule lag passed the late threshold.
    LateSends,
    /// Open-loop arrivals dropped by the catch-up policy.
    DroppedSends,
    /// Requests still in flight when the grace period ended.
    Abandoned,
    /// Histogram values clamped to the highest trackable value.
    SaturatedValues,
    /// Completed requests that reported no usage.
    UsageMissing,
    /// Tokens by kind and provenance.
    Tokens(UsageSource, TokenKind),
    /// Quota tokens reserved at admission (input + cache + max_tokens).
    QuotaReserved,
    /// Quota tokens settled (input + cache write + output × burndown).
    QuotaSettled,
    /// Cost in pico-dollars (10^-12 USD), as the executor priced it.
    CostPicoUsd,
}

const OUTCOME_NAMES: [&str; 8] = [
    "outcome_ok",
    "outcome_throttled",
    "outcome_daily_quota",
    "outcome_client_error",
    "outcome_server_error",
    "outcome_timeout",
    "outcome_stream_error",
    "outcome_transport",
];

const SCALAR_NAMES: [&str; 8] = [
    "attempts",
    "retries",
    "retried_throttles",
    "late_sends",
    "dropped_sends",
    "abandoned",
    "saturated_values",
    "usage_missing",
];

const TOKEN_NAMES: [[&str; 4]; 5] = [
    [
        "tokens_input_converse_usage",
        "tokens_output_converse_usage",
        "tokens_cache_read_converse_usage",
        "tokens_cache_write_converse_usage",
    ],
    [
        "tokens_input_response_headers",
        "tokens_output_response_headers",
        "tokens_cache_read_response_headers",
        "tokens_cache_write_response_headers",
    ],
    [
        "tokens_input_invocation_metrics",
        "tokens_output_invocation_metrics",
        "tokens_cache_read_invocation_metrics",
        "tokens_cache_write_invocation_metrics",
    ],
    [
        "tokens_input_native_body",
        "tokens_output_native_body",
        "tokens_cache_read_native_body",
        "tokens_cache_write_native_body",
    ],
    [
        "tokens_input_client_estimate",
        "tokens_output_client_estimate",
        "tokens_cache_read_client_estimate",
        "tokens_cache_write_client_estimate",
    ],
];

const TAIL_NAMES: [&str; 3] = ["quota_reserved", "quota_settled", "cost_pico_usd"];

const TOKENS_AT: usize = OUTCOME_NAMES.len() + SCALAR_NAMES.len();
const TAIL_AT: usize = TOKENS_AT + 20;

impl Count {
    /// Number of counters.
    pub const COUNT: usize = TAIL_AT + TAIL_NAMES.len();

    fn index(self) -> usize {
        match self {
            Count::Outcome(o) => Outcome::ALL.iter().position(|x| *x == o).unwrap_or(0),
            Count::Attempts => 8,
            Count::Retries => 9,
            Count::RetriedThrottles => 10,
            Count::LateSends => 11,
            Count::DroppedSends => 12,
            Count::Abandoned => 13,
            Count::SaturatedValues => 14,
            Count::UsageMissing => 15,
            Count::Tokens(source, kind) => {
                let s = USAGE_SOURCES.iter().position(|x| *x == source).unwrap_or(0);
                TOKENS_AT + s * 4 + kind as usize
            }
            Count::QuotaReserved => TAIL_AT,
            Count::QuotaSettled => TAIL_AT + 1,
            Count::CostPicoUsd => TAIL_AT + 2,
        }
    }
}

/// The wire name of counter slot `index`.
fn counter_name(index: usize) -> &'static str {
    if index < 8 {
        OUTCOME_NAMES[index]
    } else if index < TOKENS_AT {
        SCALAR_NAMES[index - 8]
    } else if index < TAIL_AT {
        let i = index - TOKENS_AT;
        TOKEN_NAMES[i / 4][i % 4]
    } else {
        TAIL_NAMES[index - TAIL_AT]
    }
}

/// A series' counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesCounters([u64; Count::COUNT]);

impl Default for SeriesCounters {
    fn default() -> Self {
        SeriesCounters([0; Count::COUNT])
    }
}

impl SeriesCounters {
    /// The value of one counter.
    pub fn get(&self, count: Count) -> u64 {
        self.0[count.index()]
    }

    /// Adds `n` to one counter (saturating).
    pub fn add(&mut self, count: Count, n: u64) {
        let slot = &mut self.0[count.index()];
        *slot = slot.saturating_add(n);
    }

    /// Every counter with its wire name, zeros included.
    pub fn named(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.0
            .iter()
            .enumerate()
            .map(|(i, v)| (counter_name(i), *v))
    }

    /// Requests that ended, whatever the outcome.
    pub fn requests(&self) -> u64 {
        Outcome::ALL
            .iter()
            .map(|o| self.get(Count::Outcome(*o)))
            .sum()
    }

    fn merge(&mut self, other: &SeriesCounters) {
        for (mine, theirs) in self.0.iter_mut().zip(other.0.iter()) {
            *mine = mine.saturating_add(*theirs);
        }
    }
}

/// A histogram could not be decoded or does not belong in a series.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The bytes are not a V2 (+DEFLATE) histogram.
    #[error("histogram {metric}: not a valid HdrHistogram V2 encoding: {detail}")]
    Decode {
        /// The metric name it was sent under.
        metric: String,
        /// The decoder's complaint.
        detail: String,
    },
    /// Decoded, but with other bounds than every Quarry histogram has, so a
    /// merge would not be exact.
    #[error(
        "histogram {metric}: configuration (lowest {lowest}, highest {highest}, sigfig {sigfig}) differs from Quarry's (1, 3600000000000, 3)"
    )]
    Configuration {
        /// The metric name.
        metric: String,
        /// Its lowest discernible value.
        lowest: u64,
        /// Its highest trackable value.
        highest: u64,
        /// Its significant digits.
        sigfig: u8,
    },
    /// A histogram or counter name this build does not know.
    #[error("unknown series field {0:?}")]
    UnknownName(String),
    /// Encoding failed (cannot happen for in-range histograms).
    #[error("histogram {metric}: encoding failed: {detail}")]
    Encode {
        /// The metric name.
        metric: &'static str,
        /// The serializer's complaint.
        detail: String,
    },
}

/// One series' histograms and counters over some span of time: an interval's
/// delta, or the cumulative total.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesDelta {
    histograms: [Histogram<u64>; Metric::COUNT],
    counters: SeriesCounters,
}

impl Default for SeriesDelta {
    fn default() -> Self {
        SeriesDelta::new()
    }
}

impl SeriesDelta {
    /// An empty series, every histogram allocated at full size.
    pub fn new() -> Self {
        SeriesDelta {
            histograms: std::array::from_fn(|_| new_histogram()),
            counters: SeriesCounters::default(),
        }
    }

    /// One histogram.
    pub fn histogram(&self, metric: Metric) -> &Histogram<u64> {
        &self.histograms[metric.index()]
    }

    /// The counters.
    pub fn counters(&self) -> &SeriesCounters {
        &self.counters
    }

    /// Mutable counters (for callers that count outside the recorder).
    pub fn counters_mut(&mut self) -> &mut SeriesCounters {
        &mut self.counters
    }

    /// Records `value`, clamping to the trackable range and counting clamps.
    /// Never allocates.
    pub fn record(&mut self, metric: Metric, value: u64) {
        if value > HISTOGRAM_HIGHEST {
            self.counters.add(Count::SaturatedValues, 1);
        }
        self.histograms[metric.index()].saturating_record(value);
    }

    /// True when nothing was recorded or counted.
    pub fn is_empty(&self) -> bool {
        self.histograms.iter().all(Histogram::is_empty) && self.counters.0.iter().all(|c| *c == 0)
    }

    /// Adds `other` into this series: HDR `add` per histogram (exact) and
    /// counter sums.
    pub fn merge(&mut self, other: &SeriesDelta) {
        for (mine, theirs) in self.histograms.iter_mut().zip(other.histograms.iter()) {
            // Both sides have the one configuration (decoding rejects any
            // other), so `add` cannot run out of range; if it ever did, the
            // loss is counted rather than hidden.
            if mine.add(theirs).is_err() {
                self.counters.add(Count::SaturatedValues, theirs.len());
            }
        }
        self.counters.merge(&other.counters);
    }

    /// Every non-empty histogram as (metric name, V2+DEFLATE bytes).
    pub fn encode_histograms(&self) -> Result<Vec<(&'static str, Vec<u8>)>, CodecError> {
        let mut serializer = V2DeflateSerializer::new();
        let mut out = Vec::new();
        for metric in Metric::ALL {
            let h = self.histogram(metric);
            if h.is_empty() {
                continue;
            }
            let mut bytes = Vec::new();
            serializer
                .serialize(h, &mut bytes)
                .map_err(|e| CodecError::Encode {
                    metric: metric.name(),
                    detail: format!("{e:?}"),
                })?;
            out.push((metric.name(), bytes));
        }
        Ok(out)
    }

    /// Rebuilds a series from its wire form: histograms by metric name
    /// (missing ones are empty) and counters by name (missing ones are 0).
    pub fn decode<'a>(
        histograms: impl IntoIterator<Item = (&'a str, &'a [u8])>,
        counters: impl IntoIterator<Item = (&'a str, u64)>,
    ) -> Result<Self, CodecError> {
        let mut series = SeriesDelta::new();
        let mut deserializer = Deserializer::new();
        for (name, bytes) in histograms {
            let metric = Metric::ALL
                .into_iter()
                .find(|m| m.name() == name)
                .ok_or_else(|| CodecError::UnknownName(name.to_owned()))?;
            let mut reader = bytes;
            let h: Histogram<u64> =
                deserializer
                    .deserialize(&mut reader)
                    .map_err(|e| CodecError::Decode {
                        metric: name.to_owned(),
                        detail: format!("{e:?}"),
                    })?;
            let expected = &series.histograms[metric.index()];
            if h.low() != expected.low()
                || h.high() != expected.high()
                || h.sigfig() != expected.sigfig()
            {
                return Err(CodecError::Configuration {
                    metric: name.to_owned(),
                    lowest: h.low(),
                    highest: h.high(),
                    sigfig: h.sigfig(),
                });
            }
            series.histograms[metric.index()] = h;
        }
        for (name, value) in counters {
            let index = (0..Count::COUNT)
                .find(|i| counter_name(*i) == name)
                .ok_or_else(|| CodecError::UnknownName(name.to_owned()))?;
            series.counters.0[index] = value;
        }
        Ok(series)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_is_accepted_by_hdr() {
        let h = new_histogram();
        assert_eq!((h.low(), h.high(), h.sigfig()), (1, HISTOGRAM_HIGHEST, 3));
        assert!(!h.is_auto_resize());
    }

    #[test]
    fn counter_names_are_unique_and_indexed_consistently() {
        let names: Vec<_> = (0..Count::COUNT).map(counter_name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), Count::COUNT);
        assert_eq!(
            counter_name(Count::Outcome(Outcome::Transport).index()),
            "outcome_transport"
        );
        assert_eq!(counter_name(Count::UsageMissing.index()), "usage_missing");
        let c = Count::Tokens(UsageSource::NativeBody, TokenKind::CacheWrite);
        assert_eq!(counter_name(c.index()), "tokens_cache_write_native_body");
        assert_eq!(counter_name(Count::CostPicoUsd.index()), "cost_pico_usd");
        for (i, m) in Metric::ALL.iter().enumerate() {
            assert_eq!(m.index(), i);
        }
    }

    #[test]
    fn saturation_is_counted_not_hidden() {
        let mut s = SeriesDelta::new();
        s.record(Metric::E2eFromSend, HISTOGRAM_HIGHEST * 2);
        s.record(Metric::E2eFromSend, 5);
        assert_eq!(s.counters().get(Count::SaturatedValues), 1);
        assert_eq!(s.histogram(Metric::E2eFromSend).len(), 2);
        assert!(s.histogram(Metric::E2eFromSend).max() >= HISTOGRAM_HIGHEST);
    }

    #[test]
    fn decode_rejects_foreign_configuration_and_names() {
        let mut other = Histogram::<u64>::new_with_bounds(1, 1_000_000, 2).unwrap();
        other.record(10).unwrap();
        let mut bytes = Vec::new();
        V2DeflateSerializer::new()
            .serialize(&other, &mut bytes)
            .unwrap();
        let err = SeriesDelta::decode([("itl_ns", bytes.as_slice())], []).unwrap_err();
        assert!(matches!(err, CodecError::Configuration { .. }), "{err}");
        let err = SeriesDelta::decode([("itl_ns", &b"garbage"[..])], []).unwrap_err();
        assert!(matches!(err, CodecError::Decode { .. }), "{err}");
        let err = SeriesDelta::decode([], [("nope", 1)]).unwrap_err();
        assert!(matches!(err, CodecError::UnknownName(_)));
    }
}
