//! Measured inputs: what runs, sweeps and traces (`quarry plan --from DIR`)
//! contribute, as plain values. The controller's loader (`quarry::capacity_plan`)
//! fills them from results and sweep directories; the planner never reads files.
//!
//! - [`MeasuredCurve`]: one sweep of one model, a row per load level (offered
//!   and achieved load, throughput, latency percentiles, throttling, and the
//!   criterion the sweep said failed). The planner reads the concurrency and
//!   latency walls from it, and holds its throttling against the quota
//!   arithmetic.
//! - [`MeasuredDemand`]: the request profile of a run or trace (rates, token
//!   distributions, cache use). A class that names it takes what it does not
//!   enter from it.
//!
//! Every figure taken from these is shown as measured, citing `source`.

use serde::{Deserialize, Serialize};

/// Everything measured the plan may use.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    /// Sweeps.
    #[serde(default)]
    pub curves: Vec<MeasuredCurve>,
    /// Demand profiles of runs and traces.
    #[serde(default)]
    pub demand: Vec<MeasuredDemand>,
}

/// What a sweep varied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadVariable {
    /// Closed loop: requests in flight.
    Concurrency,
    /// Open loop: arrivals per second.
    Rate,
}

/// One sweep of one model: the measured load-latency curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeasuredCurve {
    /// A short name classes can refer to (the sweep directory's name).
    pub label: String,
    /// Where it came from (the sweep directory), for the sources list.
    pub source: String,
    /// The model id swept.
    pub model: String,
    /// What the sweep varied.
    pub variable: LoadVariable,
    /// The request shape swept, when known: lets the planner say how far it
    /// is from a class's and hold the sweep's throttling against the quota
    /// arithmetic.
    #[serde(default)]
    pub request: Option<RequestShape>,
    /// The quotas in force during the sweep (the simulator's or the
    /// account's), when known.
    #[serde(default)]
    pub quota_tpm: Option<u64>,
    /// Requests-per-minute quota in force during the sweep, when known.
    #[serde(default)]
    pub quota_rpm: Option<u64>,
    /// The levels, in the order swept (the planner sorts them by load).
    pub levels: Vec<CurveLevel>,
}

/// The mean request of a sweep or run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RequestShape {
    /// Mean input tokens per request.
    pub input_tokens: f64,
    /// Mean output tokens per request.
    pub output_tokens: f64,
    /// `max_tokens` sent, if any.
    #[serde(default)]
    pub max_tokens: Option<u64>,
}

/// Latency percentiles of one level, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyPercentiles {
    /// Median.
    #[serde(default)]
    pub p50: Option<f64>,
    /// 95th percentile.
    #[serde(default)]
    pub p95: Option<f64>,
    /// 99th percentile.
    #[serde(default)]
    pub p99: Option<f64>,
}

/// One measured level of a sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurveLevel {
    /// The load offered: concurrency, or requests per second.
    pub offered: f64,
    /// Successful requests per second achieved.
    pub achieved_rps: f64,
    /// Requests measured at this level (all outcomes).
    pub requests: u64,
    /// Median output tokens per second of one stream.
    #[serde(default)]
    pub output_tokens_per_s_per_stream: Option<f64>,
    /// Output tokens per second, all streams together.
    #[serde(default)]
    pub output_tokens_per_s: Option<f64>,
    /// Time to first token.
    #[serde(default)]
    pub ttft_ms: LatencyPercentiles,
    /// End to end.
    #[serde(default)]
    pub e2e_ms: LatencyPercentiles,
    /// Fraction of requests throttled (429).
    #[serde(default)]
    pub throttle_rate: f64,
    /// Fraction of requests that failed otherwise (5xx, timeouts ...).
    #[serde(default)]
    pub error_rate: f64,
    /// The criterion the sweep said failed at this level (`ttft.p99`,
    /// `throttle_rate`, `tokens_per_minute`, `service_capacity` ...); `None`
    /// when the level passed or had no verdict.
    #[serde(default)]
    pub failed: Option<String>,
    /// True when the load generator itself was saturated: the level is not a
    /// capacity finding and the planner skips it.
    #[serde(default)]
    pub saturated: bool,
    /// Where this level was measured, when it has its own record (a sweep
    /// level's results directory, its run id and the requests counted):
    /// figures read from the level cite it instead of the curve's `source`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl CurveLevel {
    /// Where figures read from this level were measured: its own record,
    /// else the curve's.
    pub fn location<'a>(&'a self, curve: &'a MeasuredCurve) -> &'a str {
        self.source.as_deref().unwrap_or(&curve.source)
    }
}

/// The demand profile of a run or a trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeasuredDemand {
    /// A short name classes refer to (`class.measured`).
    pub label: String,
    /// Where it came from (results directory, trace file), for the sources list.
    pub source: String,
    /// The model the requests went to, if one.
    #[serde(default)]
    pub model: Option<String>,
    /// Seconds measured.
    pub duration_s: f64,
    /// Requests measured.
    pub requests: u64,
    /// Busiest minute's requests.
    #[serde(default)]
    pub peak_rpm: Option<f64>,
    /// Requests per minute over the measured time (a whole day's average
    /// only if the measurement spans a day: the plan says which).
    #[serde(default)]
    pub average_rpm: Option<f64>,
    /// Input tokens per request, cached ones included.
    pub input_tokens: TokenStat,
    /// Output tokens per request.
    pub output_tokens: TokenStat,
    /// Mean cache-read tokens per request.
    #[serde(default)]
    pub cache_read_tokens: Option<f64>,
    /// Mean cache-write tokens per request.
    #[serde(default)]
    pub cache_write_tokens: Option<f64>,
    /// `max_tokens` the requests sent, when one value.
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// When set, the requests' `max_tokens` was not recorded (a trace holds
    /// what was produced, not what was asked) and [`Self::max_tokens`] is
    /// this assumption: the plan shows the figure as assumed, not measured,
    /// and lists the text among its assumptions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens_assumed: Option<String>,
    /// Mean end-to-end seconds per request.
    #[serde(default)]
    pub mean_e2e_seconds: Option<f64>,
    /// Sessions, when the requests carry session ids (a trace's `session`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<MeasuredSessions>,
}

/// The sessions of a demand profile: the requests that carry a session id,
/// grouped by it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeasuredSessions {
    /// Distinct session ids.
    pub sessions: u64,
    /// Requests that carry a session id.
    pub requests: u64,
    /// Sessions per day: distinct sessions over the measured time, scaled
    /// to 24 hours.
    pub per_day: f64,
    /// Requests per session (mean).
    pub requests_per_session: f64,
}

impl MeasuredDemand {
    /// The fraction of cacheable prefix tokens read from the cache, when the
    /// profile saw caching.
    pub fn cache_hit_ratio(&self) -> Option<f64> {
        let read = self.cache_read_tokens?;
        let write = self.cache_write_tokens.unwrap_or(0.0);
        (read + write > 0.0).then(|| read / (read + write))
    }
}

/// A per-request token count: its mean, and percentiles where known.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct TokenStat {
    /// Mean tokens per request (what TPM, daily totals and cost use).
    pub mean: f64,
    /// Median.
    pub p50: Option<f64>,
    /// 95th percentile.
    pub p95: Option<f64>,
    /// Largest.
    pub max: Option<f64>,
}

impl TokenStat {
    /// A count known only by its mean.
    pub fn mean(mean: f64) -> Self {
        TokenStat {
            mean,
            ..TokenStat::default()
        }
    }
}
