//! Series: what one (group, model, operation, stage) measured — its HDR
//! histograms and counters — and how series merge and travel.
//!
//! Every histogram of every agent has one configuration
//! ([`HISTOGRAM_LOWEST`], [`HISTOGRAM_HIGHEST`], [`HISTOGRAM_SIGFIG`]), so
//! merging is exact and never fails; percentiles are never averaged.
//!
//! A series holds each metric's histogram as cheaply as its content allows:
//! not at all while nothing was recorded, as its recorded buckets only when
//! it came off the wire (a 50-request interval is a few hundred bytes, not
//! 270 KB), and as a full HDR histogram for recording and for merges that
//! gathered many buckets. [`SeriesDelta::new`] allocates every histogram at
//! full size, so recording into it never allocates; it records with
//! saturation, counting every clamped value. Merging adds bucket by bucket
//! whatever the representation, so the result is the same as recording
//! everything in one place. A histogram travels as HdrHistogram V2 bytes
//! (plain on the wire, DEFLATE-wrapped in files) and decodes straight into
//! its recorded buckets.

use std::fmt;
use std::sync::{Arc, OnceLock};

use hdrhistogram::Histogram;
use quarry_bedrock::{Operation, Outcome, QuotaWall, ServiceTierType, UsageSource};

mod sparse;

use sparse::{DecodeError, Sparse};

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
    /// The service tier the requests asked for (`None`: the request named
    /// none, which Bedrock serves at Standard).
    pub tier: Option<ServiceTierType>,
    /// The turn of a multi-turn session the requests were (1-based);
    /// `None` for requests outside sessions. A session's own figures
    /// (duration, tokens, cost, how it ended) are recorded once, in the
    /// series of its first turn.
    pub turn: Option<u32>,
}

impl SeriesKey {
    /// The schedule series of `stage` (model empty, no operation).
    pub fn schedule(group: Arc<str>, stage: Arc<str>) -> Self {
        SeriesKey {
            group,
            model: Arc::from(""),
            operation: None,
            stage,
            tier: None,
            turn: None,
        }
    }
}

impl fmt::Display for SeriesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = self.operation.map_or("-", Operation::name);
        write!(f, "{}/{}/{}/{}", self.group, self.model, op, self.stage)?;
        if let Some(tier) = self.tier {
            write!(f, "/{tier}")?;
        }
        match self.turn {
            Some(turn) => write!(f, "/turn {turn}"),
            None => Ok(()),
        }
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
    /// A completed session, from its first turn's send to its last turn's
    /// answer, think time included (in the series of its first turn).
    SessionDuration,
    /// A completed session's tokens as the service reported them: input,
    /// cache read, cache write and output over every turn.
    SessionTokens,
    /// A completed session's cost over every turn, nano-dollars.
    SessionCostNanoUsd,
    /// Client read − server write of every event-stream frame the server
    /// stamped with its write time (`quarry-sim` with `stamp_frames`; never
    /// Bedrock), on one host's monotonic clock: the client's own delay in
    /// receiving a frame, from the simulator's hand-off to hyper to the
    /// engine's read stamp. Negative differences are not recorded but
    /// counted ([`Count::FramesReadBeforeWritten`]).
    FrameReadDelay,
    /// The same for the frame carrying each request's first content token:
    /// the client's own part of TTFT.
    FirstTokenReadDelay,
}

impl Metric {
    /// Number of metrics.
    pub const COUNT: usize = 18;

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
        Metric::SessionDuration,
        Metric::SessionTokens,
        Metric::SessionCostNanoUsd,
        Metric::FrameReadDelay,
        Metric::FirstTokenReadDelay,
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
            Metric::SessionDuration => "session_duration_ns",
            Metric::SessionTokens => "session_tokens",
            Metric::SessionCostNanoUsd => "session_cost_nano_usd",
            Metric::FrameReadDelay => "frame_read_delay_ns",
            Metric::FirstTokenReadDelay => "first_token_read_delay_ns",
        }
    }

    /// True for the figures of a whole session rather than of a request;
    /// a series allocates them only when a session is recorded.
    pub fn is_per_session(self) -> bool {
        matches!(
            self,
            Metric::SessionDuration | Metric::SessionTokens | Metric::SessionCostNanoUsd
        )
    }

    /// True for the figures only a stamping simulator gives (the frame read
    /// delays).
    pub fn is_stamped(self) -> bool {
        matches!(self, Metric::FrameReadDelay | Metric::FirstTokenReadDelay)
    }

    /// True for the histograms a series allocates on their first record
    /// rather than up front: a session's figures (recorded once per
    /// session) and the stamped ones (recorded only against a stamping
    /// simulator), so a series costs nothing for them where they never come.
    pub fn is_allocated_lazily(self) -> bool {
        self.is_per_session() || self.is_stamped()
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

impl TokenKind {
    /// Every kind, in counter order.
    pub const ALL: [TokenKind; 4] = [
        TokenKind::Input,
        TokenKind::Output,
        TokenKind::CacheRead,
        TokenKind::CacheWrite,
    ];

    /// The name inside counter names (`tokens_<kind>_<source>`).
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Input => "input",
            TokenKind::Output => "output",
            TokenKind::CacheRead => "cache_read",
            TokenKind::CacheWrite => "cache_write",
        }
    }
}

/// Every usage provenance, in counter order.
pub const USAGE_SOURCES: [UsageSource; 5] = UsageSource::ALL;

/// Each counter a series keeps.
///
/// A counter's slot and wire name both derive from this enum and the enums
/// it holds ([`Count::all`] lists them in slot order), so adding a variant
/// cannot leave a hand-kept table out of step.
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
    /// Cost in pico-dollars (10^-12 USD), as the executor priced it, of
    /// every request (priced from its reported usage; a request without
    /// usage, such as a throttled one, costs 0).
    CostPicoUsd,
    /// Successful requests that met every bound of the plan's
    /// [`crate::RequestSlo`] (goodput, judged request by request); 0 when
    /// the plan has none.
    SloMet,
    /// The part of [`Count::CostPicoUsd`] from requests that did not end ok
    /// (priced from whatever usage they reported; 0 for most: a throttled
    /// request was refused at admission and reported none).
    CostFailedPicoUsd,
    /// Throttled attempts (final and retried) whose message named the
    /// tokens-per-minute quota.
    ThrottlesTpm,
    /// Throttled attempts whose message named the requests-per-minute quota.
    ThrottlesRpm,
    /// Throttled attempts whose message named the tokens-per-day quota.
    ThrottlesTpd,
    /// Throttled attempts whose message named no quota.
    ThrottlesUnnamed,
    /// Requests whose final answer was 503 `ServiceUnavailableException`
    /// (the service had no capacity; Flex is refused first).
    Unavailable,
    /// Successful requests served at another tier than the one they asked
    /// for (a Reserved request that overflowed to Standard).
    TierFallback,
    /// Sessions whose every turn succeeded.
    SessionsCompleted,
    /// Sessions ended by a turn that failed (its final outcome not ok,
    /// after any retries): the user got an error and left.
    SessionsFailed,
    /// Sessions the run's end (or a stop, or the request limit) cut off
    /// before their last turn.
    SessionsUnfinished,
    /// Stamped frames read *before* the server wrote them by the two
    /// clocks' reckoning: impossible on one clock, so each says the mapping
    /// between them is wrong (a simulator on another host, a clock other
    /// than `CLOCK_MONOTONIC`). Counted, not clamped into
    /// [`Metric::FrameReadDelay`], where a 0 would pass for a perfect read.
    FramesReadBeforeWritten,
}

impl Count {
    /// The counter of throttled attempts that named `wall` (or none).
    pub fn throttles(wall: Option<QuotaWall>) -> Count {
        match wall {
            Some(QuotaWall::TokensPerMinute) => Count::ThrottlesTpm,
            Some(QuotaWall::RequestsPerMinute) => Count::ThrottlesRpm,
            Some(QuotaWall::TokensPerDay) => Count::ThrottlesTpd,
            None => Count::ThrottlesUnnamed,
        }
    }
}

/// The counters that hold no other enum, in slot order after the outcomes.
const SCALARS: [Count; 8] = [
    Count::Attempts,
    Count::Retries,
    Count::RetriedThrottles,
    Count::LateSends,
    Count::DroppedSends,
    Count::Abandoned,
    Count::SaturatedValues,
    Count::UsageMissing,
];

/// The counters after the token counts, in slot order.
const TAIL: [Count; 15] = [
    Count::QuotaReserved,
    Count::QuotaSettled,
    Count::CostPicoUsd,
    Count::SloMet,
    Count::CostFailedPicoUsd,
    Count::ThrottlesTpm,
    Count::ThrottlesRpm,
    Count::ThrottlesTpd,
    Count::ThrottlesUnnamed,
    Count::Unavailable,
    Count::TierFallback,
    Count::SessionsCompleted,
    Count::SessionsFailed,
    Count::SessionsUnfinished,
    Count::FramesReadBeforeWritten,
];

const SCALARS_AT: usize = Outcome::ALL.len();
const TOKENS_AT: usize = SCALARS_AT + SCALARS.len();
const TAIL_AT: usize = TOKENS_AT + UsageSource::ALL.len() * TokenKind::ALL.len();

impl Count {
    /// Number of counters.
    pub const COUNT: usize = TAIL_AT + TAIL.len();

    /// Every counter, in slot (wire) order.
    pub fn all() -> impl Iterator<Item = Count> {
        let tokens = UsageSource::ALL
            .into_iter()
            .flat_map(|s| TokenKind::ALL.into_iter().map(move |k| Count::Tokens(s, k)));
        Outcome::ALL
            .into_iter()
            .map(Count::Outcome)
            .chain(SCALARS)
            .chain(tokens)
            .chain(TAIL)
    }

    /// The counter's wire and results-file name.
    pub fn name(self) -> &'static str {
        counter_name(self.index())
    }

    /// The counter's slot. Arithmetic on the enums' declaration order (the
    /// order of their `ALL` lists, which a test holds to [`Count::all`]):
    /// this runs for every recorded request.
    fn index(self) -> usize {
        match self {
            Count::Outcome(o) => o as usize,
            Count::Attempts => SCALARS_AT,
            Count::Retries => SCALARS_AT + 1,
            Count::RetriedThrottles => SCALARS_AT + 2,
            Count::LateSends => SCALARS_AT + 3,
            Count::DroppedSends => SCALARS_AT + 4,
            Count::Abandoned => SCALARS_AT + 5,
            Count::SaturatedValues => SCALARS_AT + 6,
            Count::UsageMissing => SCALARS_AT + 7,
            Count::Tokens(source, kind) => {
                TOKENS_AT + source as usize * TokenKind::ALL.len() + kind as usize
            }
            Count::QuotaReserved => TAIL_AT,
            Count::QuotaSettled => TAIL_AT + 1,
            Count::CostPicoUsd => TAIL_AT + 2,
            Count::SloMet => TAIL_AT + 3,
            Count::CostFailedPicoUsd => TAIL_AT + 4,
            Count::ThrottlesTpm => TAIL_AT + 5,
            Count::ThrottlesRpm => TAIL_AT + 6,
            Count::ThrottlesTpd => TAIL_AT + 7,
            Count::ThrottlesUnnamed => TAIL_AT + 8,
            Count::Unavailable => TAIL_AT + 9,
            Count::TierFallback => TAIL_AT + 10,
            Count::SessionsCompleted => TAIL_AT + 11,
            Count::SessionsFailed => TAIL_AT + 12,
            Count::SessionsUnfinished => TAIL_AT + 13,
            Count::FramesReadBeforeWritten => TAIL_AT + 14,
        }
    }

    /// The name, composed from the enums: `outcome_<outcome>`,
    /// `tokens_<kind>_<source>`, or the counter's own.
    fn compose_name(self) -> String {
        match self {
            Count::Outcome(o) => format!("outcome_{}", o.as_str()),
            Count::Tokens(source, kind) => {
                format!("tokens_{}_{}", kind.as_str(), source.as_str())
            }
            Count::Attempts => "attempts".to_owned(),
            Count::Retries => "retries".to_owned(),
            Count::RetriedThrottles => "retried_throttles".to_owned(),
            Count::LateSends => "late_sends".to_owned(),
            Count::DroppedSends => "dropped_sends".to_owned(),
            Count::Abandoned => "abandoned".to_owned(),
            Count::SaturatedValues => "saturated_values".to_owned(),
            Count::UsageMissing => "usage_missing".to_owned(),
            Count::QuotaReserved => "quota_reserved".to_owned(),
            Count::QuotaSettled => "quota_settled".to_owned(),
            Count::CostPicoUsd => "cost_pico_usd".to_owned(),
            Count::SloMet => "slo_met".to_owned(),
            Count::CostFailedPicoUsd => "cost_failed_pico_usd".to_owned(),
            Count::ThrottlesTpm => "throttles_tokens_per_minute".to_owned(),
            Count::ThrottlesRpm => "throttles_requests_per_minute".to_owned(),
            Count::ThrottlesTpd => "throttles_tokens_per_day".to_owned(),
            Count::ThrottlesUnnamed => "throttles_unnamed".to_owned(),
            Count::Unavailable => "unavailable".to_owned(),
            Count::TierFallback => "tier_fallback".to_owned(),
            Count::SessionsCompleted => "sessions_completed".to_owned(),
            Count::SessionsFailed => "sessions_failed".to_owned(),
            Count::SessionsUnfinished => "sessions_unfinished".to_owned(),
            Count::FramesReadBeforeWritten => "frames_read_before_written".to_owned(),
        }
    }
}

/// Every counter's name, by slot, composed once.
fn counter_names() -> &'static [String] {
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    NAMES.get_or_init(|| Count::all().map(Count::compose_name).collect())
}

/// The wire name of counter slot `index`.
fn counter_name(index: usize) -> &'static str {
    &counter_names()[index]
}

/// The counter slot of a wire name.
fn counter_index(name: &str) -> Option<usize> {
    static BY_NAME: OnceLock<Vec<(&'static str, usize)>> = OnceLock::new();
    let table = BY_NAME.get_or_init(|| {
        let mut table: Vec<_> = counter_names()
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        table.sort_unstable();
        table
    });
    table
        .binary_search_by(|(n, _)| (*n).cmp(name))
        .ok()
        .map(|at| table[at].1)
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

    /// Adds every counter of `other` (saturating).
    pub fn merge(&mut self, other: &SeriesCounters) {
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

/// One metric's histogram in a series, held as cheaply as its content
/// allows.
enum Slot {
    /// Nothing recorded, nothing allocated.
    Empty,
    /// The recorded buckets only (never empty): what decoding gives, and
    /// what merging such slots gives until it gathers many buckets. The full
    /// histogram is built on the first [`SeriesDelta::histogram`] read and
    /// kept until the slot changes.
    Sparse(Sparse, OnceLock<Box<Histogram<u64>>>),
    /// A full-size HDR histogram: recording, and merges with many buckets.
    Dense(Box<Histogram<u64>>),
}

/// A sparse slot that gathers more buckets than this in merges becomes a
/// full histogram, so merging into it costs one record per incoming bucket
/// rather than a pass over both bucket lists: a merge never walks more than
/// a few hundred buckets. (The controller's merged histograms then take the
/// memory an agent's recording ones do.)
const DENSE_FROM: usize = 256;

/// The empty histogram every empty slot reads as.
fn empty_histogram() -> &'static Histogram<u64> {
    static EMPTY: OnceLock<Histogram<u64>> = OnceLock::new();
    EMPTY.get_or_init(new_histogram)
}

impl Slot {
    fn len(&self) -> u64 {
        match self {
            Slot::Empty => 0,
            Slot::Sparse(s, _) => s.len(),
            Slot::Dense(h) => h.len(),
        }
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The content as a full histogram.
    fn view(&self) -> &Histogram<u64> {
        match self {
            Slot::Empty => empty_histogram(),
            Slot::Sparse(s, full) => full.get_or_init(|| Box::new(s.to_histogram())),
            Slot::Dense(h) => h,
        }
    }

    /// The content as a full histogram to record or add into, converting
    /// the slot first if it is not one.
    fn dense_mut(&mut self) -> &mut Histogram<u64> {
        if !matches!(self, Slot::Dense(_)) {
            let full = match std::mem::replace(self, Slot::Empty) {
                Slot::Sparse(s, mut full) => {
                    full.take().unwrap_or_else(|| Box::new(s.to_histogram()))
                }
                _ => Box::new(new_histogram()),
            };
            *self = Slot::Dense(full);
        }
        match self {
            Slot::Dense(h) => h,
            // Made dense just above.
            Slot::Empty | Slot::Sparse(..) => unreachable!("slot converted to a full histogram"),
        }
    }

    /// Adds `other`; returns the values that could not be added (none, as
    /// every histogram has one configuration; counted by the caller rather
    /// than hidden if it ever happened).
    fn merge(&mut self, other: &Slot) -> u64 {
        if other.is_empty() {
            return 0;
        }
        if self.is_empty() {
            *self = other.clone();
            return 0;
        }
        match (&mut *self, other) {
            (Slot::Sparse(mine, full), Slot::Sparse(theirs, _)) => {
                full.take();
                mine.merge(theirs);
                if mine.distinct() > DENSE_FROM {
                    *self = Slot::Dense(Box::new(mine.to_histogram()));
                }
                0
            }
            (Slot::Dense(mine), Slot::Sparse(theirs, _)) => {
                theirs.add_to(mine);
                0
            }
            (_, Slot::Dense(theirs)) => match self.dense_mut().add(&**theirs) {
                Ok(()) => 0,
                Err(_) => theirs.len(),
            },
            // `other` is not empty.
            (_, Slot::Empty) => 0,
            // `self` is not empty.
            (Slot::Empty, _) => 0,
        }
    }

    /// Same content, whatever the representations.
    fn same(&self, other: &Slot) -> bool {
        match (self, other) {
            (Slot::Sparse(a, _), Slot::Sparse(b, _)) => a == b,
            _ if self.is_empty() && other.is_empty() => true,
            _ => self.view() == other.view(),
        }
    }
}

impl Clone for Slot {
    /// Clones the content: an empty full histogram clones as nothing, a
    /// sparse one without its expanded copy.
    fn clone(&self) -> Self {
        match self {
            Slot::Sparse(s, _) => Slot::Sparse(s.clone(), OnceLock::new()),
            Slot::Dense(h) if !h.is_empty() => Slot::Dense(h.clone()),
            Slot::Empty | Slot::Dense(_) => Slot::Empty,
        }
    }
}

/// One series' histograms and counters over some span of time: an interval's
/// delta, or the cumulative total.
#[derive(Clone)]
pub struct SeriesDelta {
    histograms: [Slot; Metric::COUNT],
    counters: SeriesCounters,
}

impl Default for SeriesDelta {
    fn default() -> Self {
        SeriesDelta::new()
    }
}

impl PartialEq for SeriesDelta {
    /// Same counters and the same histograms (HDR equality: counts, total,
    /// min, max), however each side holds them.
    fn eq(&self, other: &Self) -> bool {
        self.counters == other.counters
            && self
                .histograms
                .iter()
                .zip(other.histograms.iter())
                .all(|(a, b)| a.same(b))
    }
}

impl fmt::Debug for SeriesDelta {
    /// Non-empty histograms as (values, buckets, min, max) and non-zero
    /// counters: the 33,792 counts of a full histogram say less than that.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Summary<'a>(&'a Slot);
        impl fmt::Debug for Summary<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let (kind, buckets) = match self.0 {
                    Slot::Empty => ("empty", 0),
                    Slot::Sparse(s, _) => ("sparse", s.distinct()),
                    Slot::Dense(h) => ("full", h.iter_recorded().count()),
                };
                let h = self.0.view();
                write!(
                    f,
                    "{kind} {{ values: {}, buckets: {buckets}, min: {}, max: {} }}",
                    h.len(),
                    h.min(),
                    h.max()
                )
            }
        }
        let histograms: Vec<_> = Metric::ALL
            .iter()
            .zip(self.histograms.iter())
            .filter(|(_, s)| !s.is_empty())
            .map(|(m, s)| (m.name(), Summary(s)))
            .collect();
        let counters: Vec<_> = self.counters.named().filter(|(_, v)| *v != 0).collect();
        f.debug_struct("SeriesDelta")
            .field("histograms", &histograms)
            .field("counters", &counters)
            .finish()
    }
}

impl SeriesDelta {
    /// An empty series, every per-request histogram allocated at full size
    /// so that recording a request never allocates (a session's figures,
    /// recorded once per session, and the frame read delays, recorded only
    /// against a stamping simulator, allocate on their first record:
    /// [`Metric::is_allocated_lazily`]).
    pub fn new() -> Self {
        SeriesDelta {
            histograms: std::array::from_fn(|i| {
                if Metric::ALL[i].is_allocated_lazily() {
                    Slot::Empty
                } else {
                    Slot::Dense(Box::new(new_histogram()))
                }
            }),
            counters: SeriesCounters::default(),
        }
    }

    /// An empty series that allocates nothing until something is recorded
    /// or merged in: for totals and decoding.
    pub(crate) fn unallocated() -> Self {
        SeriesDelta {
            histograms: std::array::from_fn(|_| Slot::Empty),
            counters: SeriesCounters::default(),
        }
    }

    /// One histogram. A histogram decoded from the wire is held as its
    /// recorded buckets; the full histogram is built on the first read and
    /// kept.
    pub fn histogram(&self, metric: Metric) -> &Histogram<u64> {
        self.histograms[metric.index()].view()
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
    /// Never allocates in a series made by [`SeriesDelta::new`], but for the
    /// first record of a [lazily allocated](Metric::is_allocated_lazily)
    /// metric.
    pub fn record(&mut self, metric: Metric, value: u64) {
        if value > HISTOGRAM_HIGHEST {
            self.counters.add(Count::SaturatedValues, 1);
        }
        self.histograms[metric.index()]
            .dense_mut()
            .saturating_record(value);
    }

    /// Moves everything recorded out, as a series of sparse histograms
    /// (the recorded buckets only) and the counters, and leaves this series
    /// empty but with its full histograms kept, zeroed, to record the next
    /// interval into: an interval swap that allocates nothing but the
    /// recorded buckets, and touches no fresh page.
    pub(crate) fn take_recorded(&mut self) -> SeriesDelta {
        let histograms = std::array::from_fn(|i| match &mut self.histograms[i] {
            Slot::Dense(h) if h.is_empty() => Slot::Empty,
            Slot::Dense(h) => {
                let recorded = Sparse::of(h);
                h.reset();
                Slot::Sparse(recorded, OnceLock::new())
            }
            other => std::mem::replace(other, Slot::Empty),
        });
        SeriesDelta {
            histograms,
            counters: std::mem::take(&mut self.counters),
        }
    }

    /// True when nothing was recorded or counted.
    pub fn is_empty(&self) -> bool {
        self.histograms.iter().all(Slot::is_empty) && self.counters.0.iter().all(|c| *c == 0)
    }

    /// Adds `other` into this series: histograms bucket by bucket (exact,
    /// one step per recorded bucket of `other` once this side is a full
    /// histogram) and counter sums.
    pub fn merge(&mut self, other: &SeriesDelta) {
        for (mine, theirs) in self.histograms.iter_mut().zip(other.histograms.iter()) {
            // Both sides have the one configuration (decoding rejects any
            // other), so adding cannot run out of range; if it ever did, the
            // loss is counted rather than hidden.
            let lost = mine.merge(theirs);
            if lost > 0 {
                self.counters.add(Count::SaturatedValues, lost);
            }
        }
        self.counters.merge(&other.counters);
    }

    /// Every non-empty histogram as (metric name, V2+DEFLATE bytes): the
    /// compact form, for files.
    pub fn encode_histograms(&self) -> Result<Vec<(&'static str, Vec<u8>)>, CodecError> {
        self.encode_each(Sparse::encode_v2_deflate)
    }

    /// Every non-empty histogram as (metric name, plain V2 bytes): the form
    /// for the wire. An interval's histograms are small, DEFLATE saves
    /// little on them, and inflating would cost the controller several
    /// times its whole decode and merge (BENCHMARKS.md);
    /// [`SeriesDelta::decode`] reads either form.
    pub fn encode_histograms_v2(&self) -> Result<Vec<(&'static str, Vec<u8>)>, CodecError> {
        self.encode_each(Sparse::encode_v2)
    }

    fn encode_each(
        &self,
        encode: fn(&Sparse) -> Result<Vec<u8>, String>,
    ) -> Result<Vec<(&'static str, Vec<u8>)>, CodecError> {
        let mut out = Vec::new();
        for metric in Metric::ALL {
            let encoded = match &self.histograms[metric.index()] {
                Slot::Empty => continue,
                Slot::Dense(h) if h.is_empty() => continue,
                Slot::Dense(h) => encode(&Sparse::of(h)),
                Slot::Sparse(s, _) => encode(s),
            };
            let bytes = encoded.map_err(|detail| CodecError::Encode {
                metric: metric.name(),
                detail,
            })?;
            out.push((metric.name(), bytes));
        }
        Ok(out)
    }

    /// Rebuilds a series from its wire or file form: histograms by metric
    /// name (V2 or V2+DEFLATE; missing ones are empty) and counters by name
    /// (missing ones are 0). Histograms decode straight into their recorded
    /// buckets; nothing is allocated for a metric the bytes do not hold.
    pub fn decode<'a>(
        histograms: impl IntoIterator<Item = (&'a str, &'a [u8])>,
        counters: impl IntoIterator<Item = (&'a str, u64)>,
    ) -> Result<Self, CodecError> {
        let mut series = SeriesDelta::unallocated();
        for (name, bytes) in histograms {
            let metric = Metric::ALL
                .into_iter()
                .find(|m| m.name() == name)
                .ok_or_else(|| CodecError::UnknownName(name.to_owned()))?;
            let sparse = Sparse::decode(bytes).map_err(|e| match e {
                DecodeError::Invalid(detail) => CodecError::Decode {
                    metric: name.to_owned(),
                    detail,
                },
                DecodeError::Configuration {
                    lowest,
                    highest,
                    sigfig,
                } => CodecError::Configuration {
                    metric: name.to_owned(),
                    lowest,
                    highest,
                    sigfig,
                },
            })?;
            series.histograms[metric.index()] = if sparse.is_empty() {
                Slot::Empty
            } else {
                Slot::Sparse(sparse, OnceLock::new())
            };
        }
        for (name, value) in counters {
            let index =
                counter_index(name).ok_or_else(|| CodecError::UnknownName(name.to_owned()))?;
            series.counters.0[index] = value;
        }
        Ok(series)
    }
}

#[cfg(test)]
mod tests {
    use hdrhistogram::serialization::{Serializer, V2DeflateSerializer};

    use super::*;

    #[test]
    fn configuration_is_accepted_by_hdr() {
        let h = new_histogram();
        assert_eq!((h.low(), h.high(), h.sigfig()), (1, HISTOGRAM_HIGHEST, 3));
        assert!(!h.is_auto_resize());
    }

    #[test]
    fn counter_slots_follow_the_enums_and_names_are_unique() {
        assert_eq!(Count::all().count(), Count::COUNT);
        for (slot, count) in Count::all().enumerate() {
            assert_eq!(count.index(), slot, "{count:?}");
            assert_eq!(counter_index(count.name()), Some(slot));
        }
        let mut sorted: Vec<_> = (0..Count::COUNT).map(counter_name).collect();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), Count::COUNT);
        for (i, m) in Metric::ALL.iter().enumerate() {
            assert_eq!(m.index(), i);
        }
    }

    /// The counter names and their order are the wire and results-file
    /// format: composing them from the enums must not change one.
    #[test]
    fn counter_names_are_the_wire_format() {
        let mut wire = vec![
            "outcome_ok",
            "outcome_throttled",
            "outcome_daily_quota",
            "outcome_client_error",
            "outcome_server_error",
            "outcome_timeout",
            "outcome_stream_error",
            "outcome_transport",
            "attempts",
            "retries",
            "retried_throttles",
            "late_sends",
            "dropped_sends",
            "abandoned",
            "saturated_values",
            "usage_missing",
        ];
        let tokens: Vec<String> = [
            "converse_usage",
            "response_headers",
            "invocation_metrics",
            "native_body",
            "client_estimate",
        ]
        .iter()
        .flat_map(|source| {
            ["input", "output", "cache_read", "cache_write"]
                .map(|kind| format!("tokens_{kind}_{source}"))
        })
        .collect();
        wire.extend(tokens.iter().map(String::as_str));
        wire.extend([
            "quota_reserved",
            "quota_settled",
            "cost_pico_usd",
            "slo_met",
            "cost_failed_pico_usd",
            "throttles_tokens_per_minute",
            "throttles_requests_per_minute",
            "throttles_tokens_per_day",
            "throttles_unnamed",
            "unavailable",
            "tier_fallback",
            "sessions_completed",
            "sessions_failed",
            "sessions_unfinished",
            "frames_read_before_written",
        ]);
        let ours: Vec<_> = (0..Count::COUNT).map(counter_name).collect();
        assert_eq!(ours, wire);
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

    /// The series as it arrives on the other side of the wire.
    fn wire(delta: &SeriesDelta) -> SeriesDelta {
        let histograms = delta.encode_histograms_v2().unwrap();
        let counters: Vec<_> = delta.counters().named().filter(|(_, v)| *v != 0).collect();
        SeriesDelta::decode(
            histograms.iter().map(|(n, b)| (*n, b.as_slice())),
            counters.iter().copied(),
        )
        .unwrap()
    }

    fn kinds(delta: &SeriesDelta) -> Vec<&'static str> {
        delta
            .histograms
            .iter()
            .map(|s| match s {
                Slot::Empty => "empty",
                Slot::Sparse(..) => "sparse",
                Slot::Dense(_) => "full",
            })
            .collect()
    }

    #[test]
    fn decoded_series_hold_only_their_recorded_buckets() {
        let mut sent = SeriesDelta::new();
        for v in 1..=50u64 {
            sent.record(Metric::TtftFromSend, v * 1_000_003);
            sent.record(Metric::Itl, 40_000 + v);
        }
        sent.counters_mut().add(Count::Outcome(Outcome::Ok), 50);
        let mut got = wire(&sent);
        let mut expected = vec!["empty"; Metric::COUNT];
        expected[Metric::TtftFromSend.index()] = "sparse";
        expected[Metric::Itl.index()] = "sparse";
        assert_eq!(kinds(&got), expected);
        assert_eq!(got, sent);
        for metric in Metric::ALL {
            assert_eq!(got.histogram(metric), sent.histogram(metric), "{metric:?}");
        }
        // A clone carries the content, not the 13 full-size allocations.
        let copy = sent.clone();
        assert_eq!(kinds(&copy)[Metric::Connect.index()], "empty");
        assert_eq!(copy, sent);
        // Recording into a decoded series turns that histogram full.
        got.record(Metric::Itl, 7);
        sent.record(Metric::Itl, 7);
        assert_eq!(kinds(&got)[Metric::Itl.index()], "full");
        assert_eq!(got, sent);
        assert!(SeriesDelta::unallocated().is_empty());
        assert!(wire(&SeriesDelta::new()).is_empty());
    }

    #[test]
    fn sparse_merges_turn_full_past_the_threshold() {
        // Each part has 100 distinct unit buckets of its own, so the merge
        // passes DENSE_FROM buckets after three parts.
        let mut reference = SeriesDelta::new();
        let mut merged = SeriesDelta::unallocated();
        for part in 0..8u64 {
            let mut delta = SeriesDelta::new();
            for v in 0..100u64 {
                let value = 1 + part * 100 + v;
                delta.record(Metric::E2eFromSend, value);
                reference.record(Metric::E2eFromSend, value);
            }
            merged.merge(&wire(&delta));
            let distinct = (part as usize + 1) * 100;
            let kind = kinds(&merged)[Metric::E2eFromSend.index()];
            assert_eq!(
                kind,
                if distinct > DENSE_FROM {
                    "full"
                } else {
                    "sparse"
                }
            );
            assert_eq!(merged.histogram(Metric::E2eFromSend).len(), distinct as u64);
        }
        assert_eq!(merged, reference);
        assert_eq!(wire(&merged), reference);
    }

    fn value() -> impl Strategy<Value = u64> {
        prop_oneof![
            // Many distinct buckets, to cross DENSE_FROM.
            1u64..3_000,
            // Every magnitude, and beyond the range (clamped, counted).
            (0u32..64).prop_flat_map(|bits| 0..=(u64::MAX >> bits)),
        ]
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Parts recorded apart, some sent over the wire (sparse) and some
        /// not (full), merged in any order into a fresh or a pre-allocated
        /// series: the same as recording everything in one place, read
        /// back, compared and re-encoded.
        #[test]
        fn any_mix_of_representations_merges_exactly(
            parts in prop::collection::vec(
                (any::<bool>(), prop::collection::vec((0usize..3, value()), 0..1_200)),
                1..7,
            ),
            order_seed in any::<u64>(),
            into_full in any::<bool>(),
        ) {
            let mut reference = SeriesDelta::new();
            let mut deltas = Vec::new();
            for (sent, samples) in &parts {
                let mut delta = SeriesDelta::new();
                for (m, v) in samples {
                    delta.record(Metric::ALL[*m], *v);
                    reference.record(Metric::ALL[*m], *v);
                }
                delta.counters_mut().add(Count::Attempts, samples.len() as u64);
                reference.counters_mut().add(Count::Attempts, samples.len() as u64);
                deltas.push(if *sent { wire(&delta) } else { delta });
            }
            let mut x = order_seed | 1;
            for i in (1..deltas.len()).rev() {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                deltas.swap(i, (x % (i as u64 + 1)) as usize);
            }
            let mut merged = if into_full { SeriesDelta::new() } else { SeriesDelta::unallocated() };
            for d in &deltas {
                merged.merge(d);
            }
            prop_assert_eq!(&merged, &reference);
            for metric in Metric::ALL {
                prop_assert_eq!(merged.histogram(metric), reference.histogram(metric));
            }
            prop_assert_eq!(
                merged.encode_histograms().unwrap(),
                reference.encode_histograms().unwrap()
            );
            prop_assert_eq!(
                merged.encode_histograms_v2().unwrap(),
                reference.encode_histograms_v2().unwrap()
            );
            prop_assert_eq!(&wire(&merged), &reference);
            let file = merged.encode_histograms().unwrap();
            let from_file = SeriesDelta::decode(file.iter().map(|(n, b)| (*n, b.as_slice())), []).unwrap();
            for metric in Metric::ALL {
                prop_assert_eq!(from_file.histogram(metric), reference.histogram(metric));
            }
        }
    }
}
