//! The evaluated report as data: what `quarry report DIR --format json`
//! prints for a run, and what the run's `report.html` tables show. Every
//! figure is computed from [`RunFigures`] (merged HDR histograms and
//! counters over the measured stages), as the text report's are.

use std::collections::BTreeMap;

use quarry_bedrock::Outcome;
use quarry_engine::{Count, Metric, TokenKind};
use serde::Serialize;

use super::figures::{Figures, RunFigures, SeriesFigures};
use crate::results::{HealthSummary, ResultsDocument, ThresholdResult};
use crate::thresholds::{MetricSource, ScalarMetric};

/// The `schema` of the JSON report.
pub const REPORT_JSON_SCHEMA: &str = "quarry.report/1";

/// The latency metrics a report shows, with their names in the JSON and
/// their titles on the page.
pub const REPORT_METRICS: [(Metric, &str, &str); 7] = [
    (Metric::TtftFromSend, "ttft", "TTFT from send"),
    (
        Metric::TtftFromSchedule,
        "ttft_from_schedule",
        "TTFT from schedule",
    ),
    (Metric::E2eFromSend, "e2e", "E2E from send"),
    (
        Metric::E2eFromSchedule,
        "e2e_from_schedule",
        "E2E from schedule",
    ),
    (Metric::Itl, "itl", "ITL"),
    (Metric::Tpot, "tpot", "TPOT"),
    (Metric::ScheduleLag, "schedule_lag", "schedule lag"),
];

/// A latency histogram's summary, ns.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Values recorded.
    pub count: u64,
    /// Smallest, ns.
    pub min_ns: u64,
    /// Mean, ns (rounded).
    pub mean_ns: u64,
    /// Median, ns.
    pub p50_ns: u64,
    /// 90th percentile, ns.
    pub p90_ns: u64,
    /// 95th percentile, ns.
    pub p95_ns: u64,
    /// 99th percentile, ns.
    pub p99_ns: u64,
    /// 99.9th percentile, ns.
    pub p999_ns: u64,
    /// Largest, ns.
    pub max_ns: u64,
}

impl LatencySummary {
    /// `None` when the histogram is empty.
    pub fn of(h: &hdrhistogram::Histogram<u64>) -> Option<Self> {
        if h.is_empty() {
            return None;
        }
        let q = |p: f64| h.value_at_quantile(p);
        Some(LatencySummary {
            count: h.len(),
            min_ns: h.min(),
            mean_ns: h.mean().round() as u64,
            p50_ns: q(0.50),
            p90_ns: q(0.90),
            p95_ns: q(0.95),
            p99_ns: q(0.99),
            p999_ns: q(0.999),
            max_ns: h.max(),
        })
    }
}

/// The sessions of a run (measured stages, by the stage of their first turn).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionsSummary {
    /// Sessions whose every turn succeeded.
    pub completed: u64,
    /// Sessions a failed turn ended.
    pub failed: u64,
    /// Sessions the run's end cut off.
    pub unfinished: u64,
    /// Completed sessions' duration, first send to last answer, ns.
    pub duration: Option<LatencySummary>,
    /// Completed sessions' tokens as reported (the `_ns` fields hold tokens).
    pub tokens: Option<LatencySummary>,
    /// Completed sessions' cost (the `_ns` fields hold nano-dollars); absent
    /// when a model has no price.
    pub cost_nano_usd: Option<LatencySummary>,
}

impl SessionsSummary {
    fn of(f: &Figures) -> Self {
        SessionsSummary {
            completed: f.count(Count::SessionsCompleted),
            failed: f.count(Count::SessionsFailed),
            unfinished: f.count(Count::SessionsUnfinished),
            duration: LatencySummary::of(f.histogram(Metric::SessionDuration)),
            tokens: LatencySummary::of(f.histogram(Metric::SessionTokens)),
            cost_nano_usd: if f.priced {
                LatencySummary::of(f.histogram(Metric::SessionCostNanoUsd))
            } else {
                None
            },
        }
    }
}

/// One section's figures (the measured stages, a series, a group).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SectionSummary {
    /// `measured`, a series' `group/model/operation/stage`, or a group's name.
    pub label: String,
    /// The time it covers, s.
    pub window_s: Option<f64>,
    /// Requests that ended, every outcome.
    pub requests: u64,
    /// Outcome → requests (non-zero only, `ok` always).
    pub outcomes: BTreeMap<String, u64>,
    /// Requests per second over the window.
    pub requests_per_s: Option<f64>,
    /// Output tokens per second over the window.
    pub output_tokens_per_s: Option<f64>,
    /// Token kind → tokens (every provenance together).
    pub tokens: BTreeMap<String, u64>,
    /// Failed / requests.
    pub error_rate: Option<f64>,
    /// (Throttled + daily quota) / requests.
    pub throttle_rate: Option<f64>,
    /// USD, `None` when a model has no price.
    pub cost_usd: Option<f64>,
    /// USD per 1,000 successful requests.
    pub cost_per_1k_ok_usd: Option<f64>,
    /// Metric name → summary (non-empty histograms only).
    pub latency: BTreeMap<String, LatencySummary>,
}

impl SectionSummary {
    /// The summary of `figures` under `label`.
    pub fn of(label: &str, f: &Figures) -> Self {
        let outcomes = Outcome::ALL
            .into_iter()
            .filter_map(|o| {
                let n = f.outcome(o);
                (n > 0 || o == Outcome::Ok).then(|| (o.as_str().to_owned(), n))
            })
            .collect();
        let tokens = [
            TokenKind::Input,
            TokenKind::Output,
            TokenKind::CacheRead,
            TokenKind::CacheWrite,
        ]
        .into_iter()
        .map(|k| (k.as_str().to_owned(), f.tokens(k)))
        .collect();
        let latency = REPORT_METRICS
            .iter()
            .filter_map(|(m, name, _)| {
                LatencySummary::of(f.histogram(*m)).map(|s| ((*name).to_owned(), s))
            })
            .collect();
        SectionSummary {
            label: label.to_owned(),
            window_s: f.window_s(),
            requests: f.requests(),
            outcomes,
            requests_per_s: f.scalar(ScalarMetric::Rps),
            output_tokens_per_s: f.scalar(ScalarMetric::OutputTokensPerS),
            tokens,
            error_rate: f.scalar(ScalarMetric::ErrorRate),
            throttle_rate: f.scalar(ScalarMetric::ThrottleRate),
            cost_usd: f.cost_usd(),
            cost_per_1k_ok_usd: f.scalar(ScalarMetric::CostPer1kRequests),
            latency,
        }
    }

    fn list(sections: &[SeriesFigures]) -> Vec<Self> {
        sections
            .iter()
            .map(|s| SectionSummary::of(&s.label, &s.figures))
            .collect()
    }
}

/// The evaluated run report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunReport {
    /// [`REPORT_JSON_SCHEMA`].
    pub schema: &'static str,
    /// The run id.
    pub run_id: String,
    /// The spec as given.
    pub spec: String,
    /// RFC 3339 start.
    pub started_at: String,
    /// How the run ended (`completed`, `stopped` ...).
    pub ended: String,
    /// The measured stages' names.
    pub measured_stages: Vec<String>,
    /// The measured stages, every series merged.
    pub measured: SectionSummary,
    /// Each measured request series.
    pub series: Vec<SectionSummary>,
    /// Each agent group (a distributed run).
    pub groups: Vec<SectionSummary>,
    /// The cooldown stages, apart.
    pub cooldown: Option<SectionSummary>,
    /// Multi-turn sessions: how they ended and the per-session figures;
    /// absent outside sessions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sessions: Option<SessionsSummary>,
    /// Each turn of the sessions (label `turn k`), measured stages; empty
    /// outside sessions.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub turns: Vec<SectionSummary>,
    /// The thresholds and their verdicts.
    pub thresholds: Vec<ThresholdResult>,
    /// Every threshold held.
    pub thresholds_passed: bool,
    /// The load generator's health.
    pub health: HealthSummary,
}

impl RunReport {
    /// The report of an evaluated document (`doc.thresholds` filled by
    /// [`super::evaluate`]).
    pub fn of(doc: &ResultsDocument, figures: &RunFigures) -> Self {
        RunReport {
            schema: REPORT_JSON_SCHEMA,
            run_id: doc.run.run_id.clone(),
            spec: doc.run.spec.clone(),
            started_at: doc.run.started_at.clone(),
            ended: doc.end.ended.as_str().to_owned(),
            measured_stages: figures.measured_stages.clone(),
            measured: SectionSummary::of("measured", &figures.overall),
            series: SectionSummary::list(&figures.series),
            groups: SectionSummary::list(&figures.groups),
            cooldown: figures
                .cooldown
                .as_ref()
                .map(|f| SectionSummary::of("cooldown", f)),
            sessions: doc
                .plan
                .sessions
                .map(|_| SessionsSummary::of(&figures.overall)),
            turns: figures
                .turns
                .iter()
                .map(|(k, f)| SectionSummary::of(&format!("turn {k}"), f))
                .collect(),
            thresholds: doc.thresholds.clone(),
            thresholds_passed: doc.thresholds.iter().all(|t| t.passed),
            health: doc.health.clone(),
        }
    }

    /// Pretty JSON with a final newline.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }
}
