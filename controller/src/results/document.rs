//! The `results.json` document and the interval records of
//! `intervals.jsonl`, as serde types. The schema is documented in
//! `docs/results-schema.md`; bump [`SCHEMA_VERSION`] on any change a reader
//! of an older version would misread.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use quarry_bedrock::{Operation, ServiceTierType};
use quarry_engine::{
    HISTOGRAM_HIGHEST, HISTOGRAM_LOWEST, HISTOGRAM_SIGFIG, HealthSample, IntervalSnapshot, RunPlan,
    Saturation, SeriesDelta, SeriesKey, StageKind,
};
use serde::{Deserialize, Serialize};

use super::ResultsError;
pub use super::sim_view::{SimLane, SimQuotaPool, SimulatorView};

/// The version of the `results.json` / `intervals.jsonl` schema this build
/// writes; it reads this one and every earlier one. Version 2 added
/// `end.ended = "degraded"` (a distributed run with a partial share, which
/// version 1 wrote as `stopped`), `groups` and `partial_shares`. Version 3
/// keeps non-streaming requests out of the streaming histograms (TTFT, ITL,
/// TPOT; before, a unary response counted with TTFT = E2E and TPOT = 0),
/// judges saturation by CPU and pool waits too (`health.saturated_by`), and
/// adds `cost_failed_pico_usd`.
pub const SCHEMA_VERSION: u32 = 3;

/// How every embedded histogram is encoded.
pub const HISTOGRAM_ENCODING: &str = "hdr-v2-deflate-base64";

/// The whole `results.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultsDocument {
    /// [`SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    /// The `quarry` version that wrote it.
    pub quarry_version: String,
    /// What was run and when.
    pub run: RunMeta,
    /// The resolved plan (also in `plan.json`).
    pub plan: RunPlan,
    /// How the run ended.
    pub end: RunEnd,
    /// Every series' totals over the whole run, warmup included (reports
    /// filter by stage kind).
    pub series: Vec<SeriesRecord>,
    /// The load generator's own health.
    pub health: HealthSummary,
    /// The embedded simulator's own counters, when the target was `sim`.
    pub simulator: Option<SimulatorView>,
    /// Each threshold and whether it held, in spec order.
    pub thresholds: Vec<ThresholdResult>,
    /// The agent groups of a distributed run, in share order (empty for an
    /// in-process run).
    #[serde(default)]
    pub groups: Vec<GroupRecord>,
    /// The shares of a distributed run that ended before their plan did
    /// (lost, or stopped early); the run is `degraded` unless the user
    /// stopped it.
    #[serde(default)]
    pub partial_shares: Vec<PartialShare>,
    /// Each quota wall the run met, in the order it met them: the first
    /// interval whose throttles named it (from the throttle messages), and
    /// what the run had consumed before that interval. Absent in documents
    /// written before it was kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub walls_met: Vec<WallMet>,
}

/// When a run first met a quota wall.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WallMet {
    /// `tokens_per_minute`, `requests_per_minute` or `tokens_per_day`.
    pub wall: String,
    /// The interval's index.
    pub interval: u64,
    /// The interval's start, ns since the run's origin.
    pub interval_start_ns: u64,
    /// The interval's end, ns since the run's origin.
    pub interval_end_ns: u64,
    /// Throttled attempts that named the wall in that interval.
    pub throttles_in_interval: u64,
    /// Quota tokens settled (input + cache write + output × burndown) by
    /// every request recorded before that interval.
    pub quota_settled_before: u64,
    /// The same through the end of that interval: the wall was met with
    /// between `quota_settled_before` and this many settled.
    #[serde(default)]
    pub quota_settled_through: u64,
    /// Tokens reported (input, cache read, cache write, output) by every
    /// request recorded before that interval.
    pub tokens_before: u64,
}

/// An agent group of a distributed run: its part of the plan and its totals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupRecord {
    /// `SeriesKey.group` of its series.
    pub name: String,
    /// Its weight: its part of the load is its weight over the sum of all.
    pub weight: f64,
    /// The Region its shares fired at, when the group set one.
    pub region: Option<String>,
    /// Its account alias (the spec's, else what its agents reported).
    pub account_alias: Option<String>,
    /// The AWS profile its agents took credentials from, when set.
    pub credential_profile: Option<String>,
    /// Its agents' ids, in share order.
    pub agents: Vec<String>,
    /// Its part of the plan's load.
    pub planned: PlannedLoad,
    /// Its series' counters summed, every stage (warmup included, like
    /// `series`); non-zero only.
    pub counters: BTreeMap<String, u64>,
}

/// A part of a plan's load (the fields its load model has).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PlannedLoad {
    /// Virtual users (closed model).
    pub concurrency: Option<u64>,
    /// Arrivals per second at the base rate (open model).
    pub rate_per_s: Option<f64>,
    /// In-flight cap (open model).
    pub max_in_flight: Option<u64>,
    /// Requests before the run ends (request-count end).
    pub requests: Option<u64>,
}

/// A share of a distributed run that ended before its plan did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartialShare {
    /// The agent that ran it.
    pub agent_id: String,
    /// Where the controller reached it.
    pub address: String,
    /// Its group.
    pub group: String,
    /// The last interval it delivered (0-based); `None` when none. Its data
    /// in every figure ends there.
    pub last_interval: Option<u64>,
    /// The controller lost the agent (rather than the agent ending the
    /// share early and saying so).
    pub lost: bool,
    /// Why it ended.
    pub reason: String,
}

/// What was run and when: written to `run.json` at the start, so a run that
/// dies can still be recovered from its interval file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunMeta {
    /// [`SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    /// `YYYYMMDDTHHMMSSZ-xxxxxx`.
    pub run_id: String,
    /// Wall-clock start, RFC 3339 UTC (second precision).
    pub started_at: String,
    /// The spec file as given on the command line.
    pub spec: String,
    /// The stage timeline, ns since the run's origin.
    pub stages: Vec<StageRecord>,
    /// Snapshot interval, ns.
    pub interval_ns: u64,
    /// Configuration every histogram shares.
    pub histogram: HistogramConfig,
    /// An interval whose schedule-lag p99 exceeds this flags the run as a
    /// saturated load generator.
    pub saturation_lag_p99_ns: u64,
    /// An interval whose connection-pool-wait p99 exceeds this flags it too
    /// (0 in documents before schema version 3, which did not judge it).
    #[serde(default)]
    pub saturation_pool_wait_p99_ns: u64,
    /// An interval whose process CPU exceeds this share of the cores the
    /// generator may use flags it too (0 before schema version 3).
    #[serde(default)]
    pub saturation_cpu_share: f64,
    /// An interval whose runtime-delay p95 (how long a ready task waited
    /// for the generator's runtime) exceeds this flags it too (0 in
    /// documents written before the runtime probe).
    #[serde(default)]
    pub saturation_runtime_delay_p95_ns: u64,
    /// The spec's thresholds as written.
    pub thresholds: Vec<ThresholdRule>,
}

/// One stage's place in the timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageRecord {
    /// Series are keyed by it.
    pub name: String,
    /// Warmup, ramp, hold or cooldown.
    pub kind: StageKind,
    /// Planned start, ns since the origin.
    pub start_ns: u64,
    /// Planned end, ns since the origin (a request-count run's last stage
    /// ends far in the future: clip it to [`RunEnd::finished_at_ns`]).
    pub end_ns: u64,
}

/// The histogram configuration (identical for every histogram, so any two
/// merge exactly).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistogramConfig {
    /// Always [`HISTOGRAM_ENCODING`].
    pub encoding: String,
    /// Lowest discernible value.
    pub lowest: u64,
    /// Highest trackable value.
    pub highest: u64,
    /// Significant decimal digits.
    pub significant_digits: u8,
}

impl Default for HistogramConfig {
    fn default() -> Self {
        HistogramConfig {
            encoding: HISTOGRAM_ENCODING.to_owned(),
            lowest: HISTOGRAM_LOWEST,
            highest: HISTOGRAM_HIGHEST,
            significant_digits: HISTOGRAM_SIGFIG,
        }
    }
}

/// A threshold as the spec wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThresholdRule {
    /// `ttft.p99`.
    pub key: String,
    /// `< 2s`.
    pub condition: String,
}

/// Why the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ended {
    /// The last stage ended.
    Completed,
    /// The request count was reached.
    RequestLimit,
    /// Stopped by Ctrl-C; in-flight requests finished within the grace.
    Stopped,
    /// Aborted by a second Ctrl-C; in-flight requests were cut.
    Aborted,
    /// `results.json` was rebuilt from `intervals.jsonl` after the run died.
    Recovered,
    /// A distributed run ended, but at least one share is partial (its
    /// agent was lost or stopped early): `partial_shares` lists them.
    Degraded,
    /// Stopped early (a sweep level): the open loop outran the target —
    /// in-flight requests and TTFT rose together — and `end.overload`
    /// holds the evidence.
    Overloaded,
}

impl Ended {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Ended::Completed => "completed",
            Ended::RequestLimit => "request_limit",
            Ended::Stopped => "stopped",
            Ended::Aborted => "aborted",
            Ended::Recovered => "recovered",
            Ended::Degraded => "degraded",
            Ended::Overloaded => "overloaded",
        }
    }

    /// True when the run did all it was asked to.
    pub fn is_complete(self) -> bool {
        matches!(self, Ended::Completed | Ended::RequestLimit)
    }
}

/// How the run ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunEnd {
    /// Why.
    pub ended: Ended,
    /// When the last request was recorded, ns since the origin.
    pub finished_at_ns: u64,
    /// Requests sent; `None` when recovered.
    pub sent: Option<u64>,
    /// Why the run was called over-saturated (`ended` = `overloaded`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overload: Option<crate::run::OverloadEvidence>,
}

/// One series' totals: its key, non-zero counters and non-empty histograms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesRecord {
    /// Agent group.
    pub group: String,
    /// Model id as sent (empty for a stage's schedule series).
    pub model: String,
    /// Operation name; `None` for a stage's schedule series.
    pub operation: Option<String>,
    /// Stage name.
    pub stage: String,
    /// The service tier the requests asked for (`priority`, `default`,
    /// `flex`, `reserved`); absent when they named none, and in documents
    /// written before tiers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// The turn of a multi-turn session (1-based); absent outside
    /// sessions. A session's own figures (`sessions_*` counters,
    /// `session_*` histograms) are in the series of its first turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn: Option<u32>,
    /// Whether the price table knows the model and its tier (costs are 0
    /// otherwise).
    pub priced: bool,
    /// Counter name → value; absent counters are 0.
    pub counters: BTreeMap<String, u64>,
    /// Metric name → base64 of the HdrHistogram V2+DEFLATE bytes.
    pub histograms: BTreeMap<String, String>,
}

impl SeriesRecord {
    /// Encodes one series.
    pub fn encode(
        key: &SeriesKey,
        delta: &SeriesDelta,
        priced: bool,
    ) -> Result<Self, ResultsError> {
        let histograms = delta
            .encode_histograms()?
            .into_iter()
            .map(|(name, bytes)| (name.to_owned(), BASE64.encode(bytes)))
            .collect();
        let counters = delta
            .counters()
            .named()
            .filter(|(_, v)| *v != 0)
            .map(|(n, v)| (n.to_owned(), v))
            .collect();
        Ok(SeriesRecord {
            group: key.group.to_string(),
            model: key.model.to_string(),
            operation: key.operation.map(|o| o.name().to_owned()),
            stage: key.stage.to_string(),
            tier: key.tier.map(|t| t.as_str().to_owned()),
            turn: key.turn,
            priced,
            counters,
            histograms,
        })
    }

    /// Decodes it back into the agent's types.
    pub fn decode(&self) -> Result<(SeriesKey, SeriesDelta), ResultsError> {
        let operation = match &self.operation {
            None => None,
            Some(name) => Some(
                Operation::ALL
                    .into_iter()
                    .find(|o| o.name() == name)
                    .ok_or_else(|| ResultsError::UnknownOperation(name.clone()))?,
            ),
        };
        let mut bytes = Vec::with_capacity(self.histograms.len());
        for (name, text) in &self.histograms {
            let raw = BASE64.decode(text).map_err(|e| ResultsError::Base64 {
                metric: name.clone(),
                detail: e.to_string(),
            })?;
            bytes.push((name.as_str(), raw));
        }
        let delta = SeriesDelta::decode(
            bytes.iter().map(|(n, b)| (*n, b.as_slice())),
            self.counters.iter().map(|(n, v)| (n.as_str(), *v)),
        )?;
        let tier = match &self.tier {
            None => None,
            Some(name) => Some(
                ServiceTierType::parse(name)
                    .ok_or_else(|| ResultsError::UnknownTier(name.clone()))?,
            ),
        };
        let key = SeriesKey {
            group: Arc::from(self.group.as_str()),
            model: Arc::from(self.model.as_str()),
            operation,
            stage: Arc::from(self.stage.as_str()),
            tier,
            turn: self.turn,
        };
        Ok((key, delta))
    }
}

/// The load generator's health over the run.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct HealthSummary {
    /// Intervals recorded.
    pub intervals: u64,
    /// Intervals that passed a saturation bound (any sign).
    pub saturated_intervals: u64,
    /// Of those, by the sign that passed (an interval may count under
    /// several).
    #[serde(default)]
    pub saturated_by: SaturationCounts,
    /// Any interval was saturated: the figures describe the load
    /// generator, not the service.
    pub saturated: bool,
    /// Mean process CPU over the intervals that measured it, % of one core
    /// (one decimal).
    pub cpu_percent_mean: Option<f64>,
    /// Highest interval CPU, % of one core (one decimal).
    pub cpu_percent_max: Option<f64>,
    /// Highest interval schedule-lag p99, ns.
    pub schedule_lag_p99_max_ns: u64,
    /// Highest interval pool-wait p99, ns.
    pub pool_wait_p99_max_ns: u64,
    /// Highest interval runtime-delay p95, ns (0 before the runtime probe).
    #[serde(default)]
    pub runtime_delay_p95_max_ns: u64,
    /// Most requests in flight at an interval's end.
    pub in_flight_max: u64,
}

/// Saturated intervals by sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SaturationCounts {
    /// The schedule-lag p99 passed `run.saturation_lag_p99_ns`.
    pub schedule_lag: u64,
    /// The process CPU passed `run.saturation_cpu_share` of its cores.
    pub cpu: u64,
    /// The pool-wait p99 passed `run.saturation_pool_wait_p99_ns`.
    pub pool_wait: u64,
    /// The runtime-delay p95 passed `run.saturation_runtime_delay_p95_ns`.
    #[serde(default)]
    pub runtime_delay: u64,
}

/// Rounds to one decimal, so the value survives a JSON round trip exactly.
pub(crate) fn one_decimal(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

impl HealthSummary {
    /// Folds interval healths in.
    pub fn from_samples<'a>(samples: impl IntoIterator<Item = &'a HealthSample>) -> Self {
        let mut s = HealthSummary::default();
        let (mut cpu_sum, mut cpu_n, mut cpu_max) = (0.0, 0u64, None::<f64>);
        for h in samples {
            s.intervals += 1;
            s.saturated_intervals += u64::from(h.saturated);
            s.saturated |= h.saturated;
            s.saturated_by.schedule_lag += u64::from(h.saturation.schedule_lag);
            s.saturated_by.cpu += u64::from(h.saturation.cpu);
            s.saturated_by.pool_wait += u64::from(h.saturation.pool_wait);
            s.saturated_by.runtime_delay += u64::from(h.saturation.runtime_delay);
            if let Some(c) = h.cpu_percent {
                cpu_sum += c;
                cpu_n += 1;
                cpu_max = Some(cpu_max.map_or(c, |m| m.max(c)));
            }
            s.schedule_lag_p99_max_ns = s.schedule_lag_p99_max_ns.max(h.schedule_lag_p99_ns);
            s.pool_wait_p99_max_ns = s.pool_wait_p99_max_ns.max(h.pool_wait_p99_ns);
            s.runtime_delay_p95_max_ns = s.runtime_delay_p95_max_ns.max(h.runtime_delay_p95_ns);
            s.in_flight_max = s.in_flight_max.max(h.in_flight);
        }
        s.cpu_percent_mean = (cpu_n > 0).then(|| one_decimal(cpu_sum / cpu_n as f64));
        s.cpu_percent_max = cpu_max.map(one_decimal);
        s
    }
}

/// One threshold's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdResult {
    /// `ttft.p99`.
    pub key: String,
    /// `< 2s`.
    pub condition: String,
    /// Whether it held.
    pub passed: bool,
    /// The measured value as the report prints it (`"1.23s"`, `"0.004"`);
    /// `None` when the metric had no data.
    pub actual: Option<String>,
}

/// One line of `intervals.jsonl`: one interval's deltas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntervalRecord {
    /// 0-based interval number.
    pub index: u64,
    /// Start, ns since the origin.
    pub start_ns: u64,
    /// End, ns since the origin.
    pub end_ns: u64,
    /// The load generator's health over the interval.
    pub health: HealthRecord,
    /// Headline figures, for plotting without decoding histograms.
    pub summary: IntervalSummary,
    /// The interval's series deltas.
    pub series: Vec<SeriesRecord>,
}

/// [`HealthSample`] as stored.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HealthRecord {
    /// Process CPU, % of one core (one decimal).
    pub cpu_percent: Option<f64>,
    /// Requests in flight at the interval's end.
    pub in_flight: u64,
    /// Schedule-lag p99, ns.
    pub schedule_lag_p99_ns: u64,
    /// Pool-wait p99, ns.
    pub pool_wait_p99_ns: u64,
    /// Runtime-delay p95, ns (0 before the runtime probe).
    #[serde(default)]
    pub runtime_delay_p95_ns: u64,
    /// A sign passed its saturation bound.
    pub saturated: bool,
    /// Which signs passed (absent before schema version 3).
    #[serde(default)]
    pub saturated_by: SaturationRecord,
}

/// [`Saturation`] as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SaturationRecord {
    /// Schedule-lag p99 over its bound.
    pub schedule_lag: bool,
    /// Process CPU over its share of the cores.
    pub cpu: bool,
    /// Pool-wait p99 over its bound.
    pub pool_wait: bool,
    /// Runtime-delay p95 over its bound.
    #[serde(default)]
    pub runtime_delay: bool,
}

impl From<&HealthSample> for HealthRecord {
    fn from(h: &HealthSample) -> Self {
        HealthRecord {
            cpu_percent: h.cpu_percent.map(one_decimal),
            in_flight: h.in_flight,
            schedule_lag_p99_ns: h.schedule_lag_p99_ns,
            pool_wait_p99_ns: h.pool_wait_p99_ns,
            runtime_delay_p95_ns: h.runtime_delay_p95_ns,
            saturated: h.saturated,
            saturated_by: SaturationRecord {
                schedule_lag: h.saturation.schedule_lag,
                cpu: h.saturation.cpu,
                pool_wait: h.saturation.pool_wait,
                runtime_delay: h.saturation.runtime_delay,
            },
        }
    }
}

impl From<&HealthRecord> for HealthSample {
    fn from(h: &HealthRecord) -> Self {
        HealthSample {
            cpu_percent: h.cpu_percent,
            in_flight: h.in_flight,
            schedule_lag_p99_ns: h.schedule_lag_p99_ns,
            pool_wait_p99_ns: h.pool_wait_p99_ns,
            runtime_delay_p95_ns: h.runtime_delay_p95_ns,
            saturated: h.saturated,
            saturation: Saturation {
                schedule_lag: h.saturated_by.schedule_lag,
                cpu: h.saturated_by.cpu,
                pool_wait: h.saturated_by.pool_wait,
                runtime_delay: h.saturated_by.runtime_delay,
            },
        }
    }
}

/// An interval's headline figures, all series together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntervalSummary {
    /// Requests that ended.
    pub requests: u64,
    /// Of which ok.
    pub ok: u64,
    /// Of which throttled.
    pub throttled: u64,
    /// Output tokens (every provenance).
    pub output_tokens: u64,
    /// Quota tokens settled.
    pub quota_settled: u64,
    /// TTFT p50 from send, ns, of the interval's ok streaming requests (0
    /// without data).
    pub ttft_p50_ns: u64,
    /// TTFT p99 from send, ns, as above (0 without data).
    pub ttft_p99_ns: u64,
    /// E2E p50 from send, ns, of every ok request (0 without data; absent
    /// before schema version 3).
    #[serde(default)]
    pub e2e_p50_ns: u64,
}

impl IntervalRecord {
    /// Encodes a snapshot and its summary; `priced` says whether a model
    /// has a price.
    pub fn encode(
        snapshot: &IntervalSnapshot,
        summary: IntervalSummary,
        priced: &impl Fn(&SeriesKey) -> bool,
    ) -> Result<Self, ResultsError> {
        let series = snapshot
            .series
            .iter()
            .map(|(k, d)| SeriesRecord::encode(k, d, priced(k)))
            .collect::<Result<_, _>>()?;
        Ok(IntervalRecord {
            index: snapshot.index,
            start_ns: snapshot.start,
            end_ns: snapshot.end,
            health: HealthRecord::from(&snapshot.health),
            summary,
            series,
        })
    }

    /// Decodes the series back into a snapshot.
    pub fn decode(&self) -> Result<IntervalSnapshot, ResultsError> {
        let series = self
            .series
            .iter()
            .map(SeriesRecord::decode)
            .collect::<Result<_, _>>()?;
        Ok(IntervalSnapshot {
            index: self.index,
            start: self.start_ns,
            end: self.end_ns,
            series,
            health: HealthSample::from(&self.health),
        })
    }
}
