//! The recorder: folds completed requests into the current interval's series.
//!
//! Design choice: one `Mutex` around the interval's series map, locked for
//! the few histogram records of one request (about a microsecond), rather
//! than a recorder task behind a channel. At 10k requests/s that holds the
//! lock ~1 % of the time, so contention is negligible on the agent's few
//! cores, and it has properties a channel lacks: no queue that can fill and
//! push back on request tasks (or grow without bound), and a request is in
//! the histograms the moment its task finishes, so a closed-loop slot moves
//! to its next request without an await in between (the in-flight gauge
//! never dips). Memory is bounded by the number of series, not by run
//! length: every histogram has a fixed size, and the interval swap moves the
//! filled histograms out and the previous interval's, emptied, in, so
//! recording itself never allocates except for the first request of a
//! series nobody registered, and a steady run allocates no full histogram
//! after its first interval. What leaves the recorder is the recorded
//! buckets only ([`SeriesDelta::take_recorded`]): a 270 KB histogram is
//! zeroed and reused rather than freed, allocated again and faulted in page
//! by page, and what the snapshot carries costs what was recorded.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use hdrhistogram::Histogram;
use quarry_bedrock::{
    ErrorCode, Operation, Outcome, ServiceTierType, output_burndown, reservation, settlement,
};

use crate::plan::RequestSlo;
use crate::series::{Count, Metric, SeriesDelta, SeriesKey, TokenKind, new_histogram};
use crate::session::{SessionEnd, SessionTotals};
use crate::timeline::{Completion, Timeline};

/// Folds completions into per-series histograms and counters.
#[derive(Debug)]
pub struct Recorder {
    state: Mutex<RecorderState>,
    /// The histograms the next interval records into: the last interval's,
    /// emptied by [`Recorder::take_interval`]. Only the taker locks it.
    spare: Mutex<Option<RecorderState>>,
    /// Sends later than this (sent_at − intended_at, ns) count as late.
    late_after_ns: u64,
    /// Successful requests meeting these count in [`Count::SloMet`].
    slo: Option<RequestSlo>,
}

#[derive(Debug)]
struct RecorderState {
    series: BTreeMap<SeriesKey, SeriesDelta>,
    /// Agent-wide schedule lag this interval, for the health p99.
    schedule_lag: Histogram<u64>,
    /// Agent-wide connection-pool waits this interval.
    pool_wait: Histogram<u64>,
    /// The runtime probe's delays this interval ([`crate::health::probe_runtime`]).
    runtime_delay: Histogram<u64>,
}

/// What one interval recorded: the series touched and the agent-wide
/// figures behind the health sample.
#[derive(Debug)]
pub struct IntervalTake {
    /// Series with anything recorded or counted in the interval, their
    /// histograms held as the recorded buckets.
    pub series: BTreeMap<SeriesKey, SeriesDelta>,
    /// p99 schedule lag of the open-loop sends in the interval (ns, the
    /// highest value of its bucket; 0 with none).
    pub schedule_lag_p99_ns: u64,
    /// p99 connection-pool wait of the requests in the interval (ns, as
    /// above).
    pub pool_wait_p99_ns: u64,
    /// p95 of the runtime probe's delays in the interval (ns, as above:
    /// ~100 samples, so a p95 rests on five of them).
    pub runtime_delay_p95_ns: u64,
}

impl RecorderState {
    fn new() -> Self {
        RecorderState {
            series: BTreeMap::new(),
            schedule_lag: new_histogram(),
            pool_wait: new_histogram(),
            runtime_delay: new_histogram(),
        }
    }

    /// Moves what was recorded out and leaves every histogram empty, still
    /// allocated.
    fn take_recorded(&mut self) -> IntervalTake {
        let series = self
            .series
            .iter_mut()
            .map(|(k, s)| (k, s.take_recorded()))
            .filter(|(_, s)| !s.is_empty())
            .map(|(k, s)| (k.clone(), s))
            .collect();
        let take = IntervalTake {
            series,
            schedule_lag_p99_ns: quantile(&self.schedule_lag, 0.99),
            pool_wait_p99_ns: quantile(&self.pool_wait, 0.99),
            runtime_delay_p95_ns: quantile(&self.runtime_delay, 0.95),
        };
        for h in [
            &mut self.schedule_lag,
            &mut self.pool_wait,
            &mut self.runtime_delay,
        ] {
            if !h.is_empty() {
                h.reset();
            }
        }
        take
    }
}

fn quantile(h: &Histogram<u64>, q: f64) -> u64 {
    if h.is_empty() {
        0
    } else {
        h.highest_equivalent(h.value_at_quantile(q))
    }
}

impl Recorder {
    /// An empty recorder; sends later than `late_after_ns` count as late,
    /// and successful requests meeting `slo` count in [`Count::SloMet`].
    pub fn new(late_after_ns: u64, slo: Option<RequestSlo>) -> Self {
        Recorder {
            state: Mutex::new(RecorderState::new()),
            spare: Mutex::new(None),
            late_after_ns,
            slo,
        }
    }

    fn lock(&self) -> MutexGuard<'_, RecorderState> {
        // A panic while holding the lock leaves at worst one half-recorded
        // request; losing every later one would be worse.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Pre-allocates a series so its first request does not allocate.
    pub fn register(&self, key: SeriesKey) {
        let fresh = SeriesDelta::new();
        self.lock().series.entry(key).or_insert(fresh);
    }

    /// Adds `n` to one counter of a series.
    pub fn count(&self, key: &SeriesKey, count: Count, n: u64) {
        let mut state = self.lock();
        series_mut(&mut state.series, key)
            .counters_mut()
            .add(count, n);
    }

    /// Records one delay of the runtime probe: how long a task that was
    /// ready waited before the runtime polled it.
    pub fn record_runtime_delay(&self, delay_ns: u64) {
        self.lock().runtime_delay.saturating_record(delay_ns);
    }

    /// Records one completed request into its series.
    pub fn record(&self, key: &SeriesKey, completion: &Completion) {
        let burndown = output_burndown(&key.model);
        let mut guard = self.lock();
        let state = &mut *guard;
        let t = &completion.timeline;
        if let Some(lag) = t.schedule_lag() {
            state.schedule_lag.saturating_record(lag);
        }
        state.pool_wait.saturating_record(t.pool_wait_ns);
        let s = series_mut(&mut state.series, key);
        record_attempts(s, completion);
        record_read_delays(s, t);
        if t.response_headers_at.is_some() {
            s.record(Metric::PoolWait, t.pool_wait_ns);
        }
        if let Some(connect) = t.connect_ns {
            s.record(Metric::Connect, connect);
        }
        if let Some(lag) = t.schedule_lag() {
            s.record(Metric::ScheduleLag, lag);
            if lag > self.late_after_ns {
                s.counters_mut().add(Count::LateSends, 1);
            }
        }
        let output_tokens = completion.usage.map(|u| u.tokens.output_tokens);
        if completion.outcome == Outcome::Ok {
            let streamed = key.operation.is_some_and(Operation::is_streaming);
            record_latencies(s, completion, output_tokens, streamed, self.slo.as_ref());
        }
        let counters = s.counters_mut();
        match completion.usage {
            Some(u) => {
                let tokens = &u.tokens;
                counters.add(
                    Count::Tokens(u.source, TokenKind::Input),
                    tokens.input_tokens,
                );
                counters.add(
                    Count::Tokens(u.source, TokenKind::Output),
                    tokens.output_tokens,
                );
                let read = tokens.cache_read_input_tokens;
                counters.add(Count::Tokens(u.source, TokenKind::CacheRead), read);
                let write = tokens.cache_write_input_tokens;
                counters.add(Count::Tokens(u.source, TokenKind::CacheWrite), write);
                // Quota figures need the reported input, so only requests
                // with usage contribute; a throttled request reserved nothing.
                let reserved = reservation(tokens, completion.max_tokens);
                counters.add(Count::QuotaReserved, reserved);
                counters.add(Count::QuotaSettled, settlement(tokens, burndown));
            }
            None if completion.outcome == Outcome::Ok => counters.add(Count::UsageMissing, 1),
            None => {}
        }
        if completion.response.error_code == Some(ErrorCode::ServiceUnavailableException) {
            counters.add(Count::Unavailable, 1);
        }
        if completion.outcome == Outcome::Ok
            && let Some(served) = completion.response.service_tier
            && served != key.tier.unwrap_or(ServiceTierType::Default)
        {
            counters.add(Count::TierFallback, 1);
        }
        counters.add(Count::CostPicoUsd, completion.cost_pico_usd);
        if completion.outcome != Outcome::Ok {
            counters.add(Count::CostFailedPicoUsd, completion.cost_pico_usd);
        }
    }

    /// Records a session once, in the series of its first turn: how it
    /// ended and, for a completed one, its duration, tokens and cost.
    pub fn record_session(&self, key: &SeriesKey, end: SessionEnd, totals: &SessionTotals) {
        let mut state = self.lock();
        let s = series_mut(&mut state.series, key);
        let count = match end {
            SessionEnd::Completed => Count::SessionsCompleted,
            SessionEnd::Failed => Count::SessionsFailed,
            SessionEnd::Unfinished => Count::SessionsUnfinished,
        };
        s.counters_mut().add(count, 1);
        if end == SessionEnd::Completed {
            s.record(
                Metric::SessionDuration,
                totals.ended_at.saturating_sub(totals.started_at),
            );
            s.record(Metric::SessionTokens, totals.tokens);
            s.record(Metric::SessionCostNanoUsd, totals.cost_pico_usd / 1_000);
        }
    }

    /// Moves the interval's series out and starts the next interval on the
    /// same series, recording into the histograms the previous call
    /// emptied. Empty series are left out of the result.
    ///
    /// The work (walking and zeroing the filled histograms, allocating any
    /// series first seen this interval) happens outside the recording lock,
    /// which is held only for the swap.
    pub fn take_interval(&self) -> IntervalTake {
        let mut next = self
            .spare
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .unwrap_or_else(RecorderState::new);
        let new_keys: Vec<SeriesKey> = {
            let state = self.lock();
            let known = |k: &&SeriesKey| next.series.contains_key(*k);
            state.series.keys().filter(|k| !known(k)).cloned().collect()
        };
        for key in new_keys {
            next.series.insert(key, SeriesDelta::new());
        }
        std::mem::swap(&mut *self.lock(), &mut next);
        // `next` now holds the interval just ended.
        let take = next.take_recorded();
        *self.spare.lock().unwrap_or_else(PoisonError::into_inner) = Some(next);
        take
    }
}

fn series_mut<'a>(
    map: &'a mut BTreeMap<SeriesKey, SeriesDelta>,
    key: &SeriesKey,
) -> &'a mut SeriesDelta {
    // Look up first: `entry` would clone the key on every record.
    if !map.contains_key(key) {
        map.insert(key.clone(), SeriesDelta::new());
    }
    // unwrap is safe because the key was inserted just above if missing.
    map.get_mut(key).unwrap()
}

/// Outcome, attempt and retry counters; all-attempt and throttle latencies.
fn record_attempts(s: &mut SeriesDelta, c: &Completion) {
    let t = &c.timeline;
    let counters = s.counters_mut();
    counters.add(Count::Outcome(c.outcome), 1);
    let retries = c.earlier_attempts.len() as u64;
    counters.add(Count::Attempts, 1 + retries);
    counters.add(Count::Retries, retries);
    for a in &c.earlier_attempts {
        let took = a.closed_at.saturating_sub(a.sent_at);
        s.record(Metric::AttemptE2e, took);
        if a.outcome == Outcome::Throttled {
            s.counters_mut().add(Count::RetriedThrottles, 1);
            s.record(Metric::ThrottledLatency, took);
        }
        if matches!(a.outcome, Outcome::Throttled | Outcome::DailyQuota) {
            s.counters_mut().add(Count::throttles(a.quota_wall), 1);
        }
    }
    let took = t.closed_at.saturating_sub(t.sent_at);
    s.record(Metric::AttemptE2e, took);
    if c.outcome == Outcome::Throttled {
        s.record(Metric::ThrottledLatency, took);
    }
    if matches!(c.outcome, Outcome::Throttled | Outcome::DailyQuota) {
        s.counters_mut()
            .add(Count::throttles(c.response.quota_wall), 1);
    }
}

/// The frame read delays of a final attempt whose frames the server
/// stamped, whatever its outcome (a frame's delay is the client's, not the
/// request's): nothing to do for any other. A negative delay is impossible
/// on one clock; it is counted, not recorded, so the histograms keep only
/// causal pairs and the count shows the mapping failed. (The first-token
/// frame is one of the frames, so its negative is counted once, there.)
fn record_read_delays(s: &mut SeriesDelta, t: &Timeline) {
    for &delay in &t.frame_read_delays {
        match u64::try_from(delay) {
            Ok(v) => s.record(Metric::FrameReadDelay, v),
            Err(_) => s.counters_mut().add(Count::FramesReadBeforeWritten, 1),
        }
    }
    if let Some(Ok(v)) = t.first_token_read_delay.map(u64::try_from) {
        s.record(Metric::FirstTokenReadDelay, v);
    }
}

/// The success-only latency histograms.
///
/// The streaming figures (TTFT, ITL, TPOT) count `streamed` requests only:
/// a non-streaming response arrives in one piece, so its "first token" is
/// its E2E and its TPOT 0, and mixing those in would make the streaming
/// figures describe neither kind of request. E2E and output tokens per
/// second count every successful request.
fn record_latencies(
    s: &mut SeriesDelta,
    c: &Completion,
    output_tokens: Option<u64>,
    streamed: bool,
    slo: Option<&RequestSlo>,
) {
    let t = &c.timeline;
    // For the SLO a non-streaming request's first token is its response
    // (`RequestSlo::met` reads a missing TTFT as the E2E).
    let ttft = t.ttft_from_send().filter(|_| streamed);
    let tpot = output_tokens
        .and_then(|out| t.tpot(out))
        .filter(|_| streamed);
    if let Some(slo) = slo
        && slo.met(ttft, tpot, t.e2e_from_send())
    {
        s.counters_mut().add(Count::SloMet, 1);
    }
    s.record(Metric::E2eFromSend, t.e2e_from_send());
    if let Some(v) = t.e2e_from_schedule() {
        s.record(Metric::E2eFromSchedule, v);
    }
    if let Some(v) = output_tokens.and_then(|out| t.output_milli_tokens_per_s(out)) {
        s.record(Metric::OutputMilliTokensPerS, v);
    }
    if !streamed {
        return;
    }
    if let Some(v) = ttft {
        s.record(Metric::TtftFromSend, v);
    }
    if let Some(v) = t.ttft_from_schedule() {
        s.record(Metric::TtftFromSchedule, v);
    }
    for (gap, tokens) in t.inter_token_gaps() {
        s.record(Metric::Itl, gap);
        if tokens > 0 {
            s.record(Metric::ItlPerToken, gap / u64::from(tokens));
        }
    }
    if let Some(v) = tpot {
        s.record(Metric::Tpot, v);
    }
}

/// Records a request when it completes, or counts it as abandoned if its
/// task is dropped first (aborted after the grace period): a request that
/// was sent is never silently lost.
#[derive(Debug)]
pub(crate) struct RecordGuard {
    recorder: Arc<Recorder>,
    key: Option<SeriesKey>,
}

impl RecordGuard {
    pub(crate) fn new(recorder: Arc<Recorder>, key: SeriesKey) -> Self {
        RecordGuard {
            recorder,
            key: Some(key),
        }
    }

    /// The series the request records into.
    pub(crate) fn key(&self) -> Option<&SeriesKey> {
        self.key.as_ref()
    }

    pub(crate) fn finish(mut self, completion: &Completion) {
        if let Some(key) = self.key.take() {
            self.recorder.record(&key, completion);
        }
    }
}

impl Drop for RecordGuard {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.recorder.count(&key, Count::Abandoned, 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use quarry_bedrock::{Operation, QuotaWall, TokenUsage, UsageSource};

    use super::*;
    use crate::timeline::{EarlierAttempt, ReportedUsage};

    fn key(model: &str) -> SeriesKey {
        SeriesKey {
            group: Arc::from("g"),
            model: Arc::from(model),
            operation: Some(Operation::ConverseStream),
            stage: Arc::from("hold"),
            tier: None,
            turn: None,
        }
    }

    fn streamed(intended: Option<u64>) -> Completion {
        let mut t = Timeline::started(intended, 1_000);
        t.on_content(11_000, 1);
        t.on_content(12_000, 2);
        t.on_content(21_000, 1);
        t.close(21_500);
        let mut c = Completion::new(t, Outcome::Ok);
        c.usage = Some(ReportedUsage {
            tokens: TokenUsage {
                input_tokens: 100,
                output_tokens: 11,
                cache_read_input_tokens: 1000,
                cache_write_input_tokens: 20,
            },
            source: UsageSource::ConverseUsage,
        });
        c.max_tokens = 50;
        c.cost_pico_usd = 7;
        c
    }

    #[test]
    fn stamped_frame_delays_are_recorded_and_negative_ones_counted() {
        let recorder = Recorder::new(1_000_000, None);
        let k = key("meta.llama3-3-70b-instruct-v1:0");
        let mut stamped = streamed(None);
        stamped.timeline.frame_read_delays = vec![40_000, 25_000, -3, 0, 31_000];
        stamped.timeline.first_token_read_delay = Some(25_000);
        recorder.record(&k, &stamped);
        // A failed request's frames were read all the same.
        let mut failed = Completion::new(Timeline::started(None, 0), Outcome::StreamError);
        failed.timeline.frame_read_delays = vec![-9, 7_000];
        failed.timeline.first_token_read_delay = Some(-9);
        recorder.record(&k, &failed);
        let take = recorder.take_interval();
        let s = &take.series[&k];
        let frames = s.histogram(Metric::FrameReadDelay);
        assert_eq!(frames.len(), 5);
        assert_eq!(frames.min(), 0);
        assert!(frames.equivalent(frames.max(), 40_000));
        let first = s.histogram(Metric::FirstTokenReadDelay);
        assert_eq!(first.len(), 1);
        assert!(first.equivalent(first.max(), 25_000));
        assert_eq!(s.counters().get(Count::FramesReadBeforeWritten), 2);
        assert_eq!(s.counters().get(Count::SaturatedValues), 0);
    }

    #[test]
    fn unstamped_requests_leave_the_stamped_figures_empty() {
        let recorder = Recorder::new(1_000_000, None);
        let k = key("meta.llama3-3-70b-instruct-v1:0");
        recorder.record(&k, &streamed(None));
        let take = recorder.take_interval();
        let s = &take.series[&k];
        for metric in Metric::ALL.into_iter().filter(|m| m.is_stamped()) {
            assert!(s.histogram(metric).is_empty(), "{}", metric.name());
        }
        assert_eq!(s.counters().get(Count::FramesReadBeforeWritten), 0);
        // Nothing stamped, nothing to send: the encoded series names none.
        let names: Vec<_> = s
            .encode_histograms()
            .unwrap()
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        assert!(!names.iter().any(|n| n.contains("read_delay")), "{names:?}");
    }

    #[test]
    fn records_latencies_tokens_quota_and_cost() {
        let recorder = Recorder::new(1_000_000, None);
        let k = key("anthropic.claude-3-7-sonnet-20250219-v1:0");
        recorder.record(&k, &streamed(Some(0)));
        let take = recorder.take_interval();
        let s = &take.series[&k];
        let ttft = s.histogram(Metric::TtftFromSend);
        assert!(ttft.equivalent(ttft.max(), 10_000));
        let ttft = s.histogram(Metric::TtftFromSchedule);
        assert!(ttft.equivalent(ttft.max(), 11_000));
        assert_eq!(s.histogram(Metric::Itl).len(), 2);
        assert_eq!(s.histogram(Metric::ItlPerToken).min(), 500);
        assert!(
            s.histogram(Metric::Tpot)
                .equivalent(s.histogram(Metric::Tpot).max(), 1_000)
        );
        assert_eq!(s.histogram(Metric::ScheduleLag).max(), 1_000);
        let c = s.counters();
        assert_eq!(c.get(Count::Outcome(Outcome::Ok)), 1);
        assert_eq!(
            c.get(Count::Tokens(
                UsageSource::ConverseUsage,
                TokenKind::CacheRead
            )),
            1000
        );
        // Reserved: 100 + 1000 + 20 + 50; settled on a 5x model: 100 + 20 + 55.
        assert_eq!(c.get(Count::QuotaReserved), 1170);
        assert_eq!(c.get(Count::QuotaSettled), 175);
        assert_eq!(c.get(Count::CostPicoUsd), 7);
        assert_eq!(c.get(Count::LateSends), 0);
        assert_eq!(take.schedule_lag_p99_ns, 1_000);
        // The next interval starts empty but keeps the series allocated.
        assert!(recorder.take_interval().series.is_empty());
    }

    /// Each interval records into the histograms the last one emptied: what
    /// an interval takes is exactly what a fresh recorder given only that
    /// interval's requests takes, whichever series and metrics (lazily
    /// allocated ones included) came and went in between.
    #[test]
    fn reused_histograms_hold_each_interval_alone() {
        let llama = key("meta.llama3-3-70b-instruct-v1:0");
        let claude = key("anthropic.claude-3-7-sonnet-20250219-v1:0");
        let mut stamped = streamed(Some(0));
        stamped.timeline.frame_read_delays = vec![40_000, 25_000];
        stamped.timeline.first_token_read_delay = Some(25_000);
        let closed = streamed(None);
        let failed = Completion::new(Timeline::started(Some(0), 0), Outcome::StreamError);
        let intervals: [Vec<(&SeriesKey, &Completion)>; 4] = [
            vec![(&llama, &stamped), (&llama, &closed)],
            vec![(&claude, &failed)],
            vec![(&llama, &closed), (&claude, &stamped)],
            vec![],
        ];
        let recorder = Recorder::new(1_000_000, None);
        recorder.register(llama.clone());
        for (i, requests) in intervals.iter().enumerate() {
            let alone = Recorder::new(1_000_000, None);
            for (k, c) in requests {
                recorder.record(k, c);
                alone.record(k, c);
            }
            // The runtime probe: a long delay in the first interval only.
            for delay in [if i == 0 { 9_000_000 } else { 0 }, 5_000] {
                if i != 3 {
                    recorder.record_runtime_delay(delay);
                    alone.record_runtime_delay(delay);
                }
            }
            let (taken, expected) = (recorder.take_interval(), alone.take_interval());
            assert_eq!(taken.series, expected.series, "interval {i}");
            assert_eq!(taken.schedule_lag_p99_ns, expected.schedule_lag_p99_ns);
            assert_eq!(taken.pool_wait_p99_ns, expected.pool_wait_p99_ns);
            assert_eq!(taken.runtime_delay_p95_ns, expected.runtime_delay_p95_ns);
        }
    }

    /// The same request (TTFT 10 µs, TPOT 1 µs) against bounds it meets and
    /// bounds it misses by one TTFT nanosecond: counted request by request.
    #[test]
    fn slo_met_counts_each_request_against_every_bound() {
        let k = key("anthropic.claude-3-7-sonnet-20250219-v1:0");
        let ttft = s_of(&k, 10_000);
        assert_eq!(ttft, 1, "within every bound");
        assert_eq!(s_of(&k, 9_999), 0, "TTFT one nanosecond over");
        let none = Recorder::new(0, None);
        none.record(&k, &streamed(Some(0)));
        assert_eq!(
            none.take_interval().series[&k]
                .counters()
                .get(Count::SloMet),
            0
        );

        fn s_of(k: &SeriesKey, ttft_bound: u64) -> u64 {
            let slo = RequestSlo {
                ttft_ns: Some(ttft_bound),
                tpot_ns: Some(1_000),
                e2e_ns: Some(1_000_000),
            };
            let recorder = Recorder::new(0, Some(slo));
            recorder.record(k, &streamed(Some(0)));
            recorder.take_interval().series[k]
                .counters()
                .get(Count::SloMet)
        }
    }

    /// A Converse (non-streaming) response read in one piece: its first and
    /// last token are the same instant, so TTFT would be its E2E and TPOT 0.
    fn unary(sent: u64, read: u64, output_tokens: u64) -> Completion {
        let mut t = Timeline::started(Some(sent), sent);
        t.on_headers(read);
        t.on_content(read, 1);
        t.close(read);
        let mut c = Completion::new(t, Outcome::Ok);
        c.usage = Some(ReportedUsage {
            tokens: TokenUsage {
                input_tokens: 10,
                output_tokens,
                cache_read_input_tokens: 0,
                cache_write_input_tokens: 0,
            },
            source: UsageSource::ConverseUsage,
        });
        c
    }

    /// The mixed Converse / ConverseStream run: the streaming figures hold
    /// the streaming request alone (no 0 ns TPOT, no E2E-long TTFT), and
    /// E2E holds both.
    #[test]
    fn non_streaming_requests_stay_out_of_the_streaming_figures() {
        let recorder = Recorder::new(1_000_000, None);
        let stream = key("anthropic.claude-3-7-sonnet-20250219-v1:0");
        let converse = SeriesKey {
            operation: Some(Operation::Converse),
            ..stream.clone()
        };
        recorder.record(&stream, &streamed(Some(0)));
        recorder.record(&converse, &unary(0, 900_000, 40));
        let take = recorder.take_interval();
        let s = &take.series[&converse];
        for m in [
            Metric::TtftFromSend,
            Metric::TtftFromSchedule,
            Metric::Itl,
            Metric::ItlPerToken,
            Metric::Tpot,
        ] {
            assert!(s.histogram(m).is_empty(), "{m:?} holds a unary request");
        }
        assert_eq!(s.histogram(Metric::E2eFromSend).len(), 1);
        assert_eq!(s.histogram(Metric::E2eFromSchedule).len(), 1);
        assert_eq!(s.histogram(Metric::OutputMilliTokensPerS).len(), 1);
        let mut all = take.series[&stream].clone();
        all.merge(s);
        assert_eq!(all.histogram(Metric::Tpot).len(), 1);
        assert_eq!(all.histogram(Metric::Tpot).min(), 1_000, "no 0 ns TPOT");
        assert_eq!(all.histogram(Metric::TtftFromSend).len(), 1);
        assert_eq!(all.histogram(Metric::E2eFromSend).len(), 2);
    }

    /// For the SLO, a unary request's first token is its whole response.
    #[test]
    fn a_unary_request_meets_the_slo_on_its_e2e() {
        let k = SeriesKey {
            operation: Some(Operation::Converse),
            ..key("m")
        };
        let met = |ttft_ns: u64| {
            let slo = RequestSlo {
                ttft_ns: Some(ttft_ns),
                tpot_ns: Some(1),
                e2e_ns: None,
            };
            let recorder = Recorder::new(0, Some(slo));
            recorder.record(&k, &unary(0, 900_000, 40));
            recorder.take_interval().series[&k]
                .counters()
                .get(Count::SloMet)
        };
        assert_eq!((met(900_000), met(899_999)), (1, 0));
    }

    #[test]
    fn failed_requests_cost_is_counted_apart() {
        let recorder = Recorder::new(0, None);
        let k = key("m");
        recorder.record(&k, &streamed(Some(0)));
        let mut broken = streamed(Some(0));
        broken.outcome = Outcome::StreamError;
        broken.cost_pico_usd = 5;
        recorder.record(&k, &broken);
        let mut throttled = Completion::new(Timeline::started(Some(0), 0), Outcome::Throttled);
        throttled.cost_pico_usd = 0;
        recorder.record(&k, &throttled);
        let take = recorder.take_interval();
        let c = take.series[&k].counters();
        assert_eq!(c.get(Count::CostPicoUsd), 12);
        assert_eq!(c.get(Count::CostFailedPicoUsd), 5);
    }

    #[test]
    fn failures_count_attempts_and_stay_out_of_success_latency() {
        let recorder = Recorder::new(0, None);
        let k = key("amazon.nova-pro-v1:0");
        let mut t = Timeline::started(Some(0), 5);
        t.close(305);
        let mut c = Completion::new(t, Outcome::Throttled);
        c.earlier_attempts = vec![
            EarlierAttempt {
                outcome: Outcome::Throttled,
                sent_at: 1,
                closed_at: 101,
                quota_wall: Some(QuotaWall::RequestsPerMinute),
            },
            EarlierAttempt {
                outcome: Outcome::ServerError,
                sent_at: 2,
                closed_at: 4,
                quota_wall: None,
            },
        ];
        recorder.record(&k, &c);
        let take = recorder.take_interval();
        let s = &take.series[&k];
        assert!(s.histogram(Metric::E2eFromSend).is_empty());
        assert_eq!(s.histogram(Metric::AttemptE2e).len(), 3);
        assert_eq!(s.histogram(Metric::ThrottledLatency).len(), 2);
        let counters = s.counters();
        assert_eq!(counters.get(Count::Attempts), 3);
        assert_eq!(counters.get(Count::Retries), 2);
        assert_eq!(counters.get(Count::RetriedThrottles), 1);
        assert_eq!(counters.get(Count::Outcome(Outcome::Throttled)), 1);
        assert_eq!(counters.get(Count::LateSends), 1);
        assert_eq!(counters.get(Count::UsageMissing), 0);
        // Each throttled attempt under the wall its message named.
        assert_eq!(counters.get(Count::ThrottlesRpm), 1);
        assert_eq!(counters.get(Count::ThrottlesUnnamed), 1);
        assert_eq!(counters.get(Count::ThrottlesTpm), 0);
    }

    #[test]
    fn dropped_guard_counts_abandoned() {
        let recorder = Arc::new(Recorder::new(0, None));
        let k = key("m");
        drop(RecordGuard::new(Arc::clone(&recorder), k.clone()));
        RecordGuard::new(Arc::clone(&recorder), k.clone()).finish(&streamed(None));
        let take = recorder.take_interval();
        assert_eq!(take.series[&k].counters().get(Count::Abandoned), 1);
        assert_eq!(
            take.series[&k].counters().get(Count::Outcome(Outcome::Ok)),
            1
        );
    }
}
