//! The report's figures, computed from merged HDR histograms and counters
//! (percentiles are read from merged histograms, never averaged) over the
//! stage windows the run actually spent.

use std::time::Duration;

use hdrhistogram::Histogram;
use quarry_bedrock::{Outcome, ServiceTierType};
use quarry_engine::{Count, Metric, SeriesDelta, SeriesKey, StageKind, TokenKind, USAGE_SOURCES};

use crate::results::{ResultsDocument, ResultsError};
use crate::thresholds::{LatencyMetric, LatencyStat, MetricSource, ScalarMetric};

/// One section's data: merged series over a time window.
#[derive(Debug, Clone)]
pub struct Figures {
    /// Histograms and counters, merged.
    pub delta: SeriesDelta,
    /// The time the section covers, ns (0: rates are unknown).
    pub window_ns: u64,
    /// Every model in the section has a price.
    pub priced: bool,
}

impl Figures {
    /// Figures over `delta` and a window.
    pub fn new(delta: SeriesDelta, window_ns: u64, priced: bool) -> Self {
        Figures {
            delta,
            window_ns,
            priced,
        }
    }

    /// One counter.
    pub fn count(&self, c: Count) -> u64 {
        self.delta.counters().get(c)
    }

    /// Requests that ended, any outcome.
    pub fn requests(&self) -> u64 {
        self.delta.counters().requests()
    }

    /// Requests with `outcome`.
    pub fn outcome(&self, outcome: Outcome) -> u64 {
        self.count(Count::Outcome(outcome))
    }

    /// Window in seconds, `None` when empty.
    pub fn window_s(&self) -> Option<f64> {
        (self.window_ns > 0).then(|| self.window_ns as f64 / 1e9)
    }

    /// `n` per second over the window.
    pub fn per_s(&self, n: u64) -> Option<f64> {
        self.window_s().map(|s| n as f64 / s)
    }

    /// Tokens of `kind`, every provenance together.
    pub fn tokens(&self, kind: TokenKind) -> u64 {
        USAGE_SOURCES
            .iter()
            .map(|s| self.count(Count::Tokens(*s, kind)))
            .sum()
    }

    /// Total cost in USD, `None` when some model has no price.
    pub fn cost_usd(&self) -> Option<f64> {
        self.priced
            .then(|| self.count(Count::CostPicoUsd) as f64 / 1e12)
    }

    /// USD of the requests that did not end ok, `None` when some model
    /// has no price: what their reported usage prices at (a throttled
    /// request was refused at admission and reported none, so it is 0).
    pub fn cost_failed_usd(&self) -> Option<f64> {
        self.priced
            .then(|| self.count(Count::CostFailedPicoUsd) as f64 / 1e12)
    }

    /// USD per successful request: the cost of the ok requests over their
    /// number. Throttled and failed requests are neither in the numerator
    /// nor the denominator ([`Figures::cost_failed_usd`] says what they
    /// cost); `None` without a price or without an ok request.
    pub fn cost_per_ok_request(&self) -> Option<f64> {
        let ok = self.outcome(Outcome::Ok);
        let failed = self.count(Count::CostFailedPicoUsd);
        let ok_pico = self.count(Count::CostPicoUsd).saturating_sub(failed);
        (self.priced && ok > 0).then(|| ok_pico as f64 / 1e12 / ok as f64)
    }

    /// A histogram.
    pub fn histogram(&self, metric: Metric) -> &Histogram<u64> {
        self.delta.histogram(metric)
    }
}

/// The histogram a threshold's latency metric reads.
pub fn latency_histogram(metric: LatencyMetric) -> Metric {
    match metric {
        LatencyMetric::Ttft => Metric::TtftFromSend,
        LatencyMetric::TtftFromSchedule => Metric::TtftFromSchedule,
        LatencyMetric::E2e => Metric::E2eFromSend,
        LatencyMetric::E2eFromSchedule => Metric::E2eFromSchedule,
        LatencyMetric::Itl => Metric::Itl,
        LatencyMetric::Tpot => Metric::Tpot,
        LatencyMetric::ScheduleLag => Metric::ScheduleLag,
    }
}

/// A statistic of a histogram in its own unit; `None` when empty.
pub fn stat(h: &Histogram<u64>, stat: LatencyStat) -> Option<u64> {
    if h.is_empty() {
        return None;
    }
    Some(match stat {
        LatencyStat::Min => h.min(),
        LatencyStat::Max => h.max(),
        LatencyStat::Mean => h.mean().round() as u64,
        other => h.value_at_quantile(other.percentile().unwrap_or(100.0) / 100.0),
    })
}

impl MetricSource for Figures {
    fn latency(&self, metric: LatencyMetric, s: LatencyStat) -> Option<Duration> {
        stat(self.histogram(latency_histogram(metric)), s).map(Duration::from_nanos)
    }

    fn scalar(&self, metric: ScalarMetric) -> Option<f64> {
        let requests = self.requests();
        let fraction = |n: u64| (requests > 0).then(|| n as f64 / requests as f64);
        match metric {
            ScalarMetric::ErrorRate => fraction(requests - self.outcome(Outcome::Ok)),
            ScalarMetric::ThrottleRate => {
                fraction(self.outcome(Outcome::Throttled) + self.outcome(Outcome::DailyQuota))
            }
            ScalarMetric::Rps => self.per_s(requests).filter(|_| requests > 0),
            ScalarMetric::OutputTokensPerS => self.per_s(self.tokens(TokenKind::Output)),
            ScalarMetric::CostPer1kRequests => self.cost_per_ok_request().map(|c| c * 1000.0),
        }
    }
}

/// A labelled section of the report.
#[derive(Debug, Clone)]
pub struct SeriesFigures {
    /// `group/model/operation/stage`.
    pub label: String,
    /// Its figures.
    pub figures: Figures,
}

/// Everything the report shows, computed from a results document.
#[derive(Debug, Clone)]
pub struct RunFigures {
    /// Measured stages (ramp, hold), every series merged.
    pub overall: Figures,
    /// Each measured request series (schedule series left out).
    pub series: Vec<SeriesFigures>,
    /// Measured stages per agent group of a distributed run, in the order
    /// of `doc.groups` (empty for an in-process run).
    pub groups: Vec<SeriesFigures>,
    /// Measured stages per service tier the requests asked for, labelled by
    /// the tier (`standard (none named)` for requests that named none), in
    /// tier order; empty when no request named a tier.
    pub tiers: Vec<SeriesFigures>,
    /// Measured stages per turn of a multi-turn session, by turn index
    /// (1-based), in order; empty outside sessions. The sessions' own
    /// figures are in turn 1 (and in `overall`).
    pub turns: Vec<(u32, Figures)>,
    /// Cooldown stages merged, when the plan has any.
    pub cooldown: Option<Figures>,
    /// Every stage, warmup included: what the simulator saw.
    pub all_stages: Figures,
    /// Names of the measured stages.
    pub measured_stages: Vec<String>,
}

/// The time each stage actually ran: its planned span clipped to when the
/// run finished.
fn stage_window(doc: &ResultsDocument, name: &str) -> u64 {
    let end = doc.end.finished_at_ns;
    doc.run
        .stages
        .iter()
        .filter(|s| s.name == name)
        .map(|s| s.end_ns.min(end).saturating_sub(s.start_ns.min(end)))
        .sum()
}

impl RunFigures {
    /// Decodes the document's series and computes every section.
    pub fn from_document(doc: &ResultsDocument) -> Result<Self, ResultsError> {
        let kind_of = |stage: &str| {
            doc.run
                .stages
                .iter()
                .find(|s| s.name == stage)
                .map(|s| s.kind)
        };
        let measured = |k: Option<StageKind>| matches!(k, Some(StageKind::Ramp | StageKind::Hold));
        let window_of = |pick: &dyn Fn(Option<StageKind>) -> bool| -> u64 {
            doc.run
                .stages
                .iter()
                .filter(|s| pick(Some(s.kind)))
                .map(|s| stage_window(doc, &s.name))
                .sum()
        };
        let mut overall = Figures::new(SeriesDelta::new(), window_of(&measured), true);
        let is_cooldown = |k: Option<StageKind>| k == Some(StageKind::Cooldown);
        let mut cooldown = Figures::new(SeriesDelta::new(), window_of(&is_cooldown), true);
        let mut all = Figures::new(SeriesDelta::new(), doc.end.finished_at_ns, true);
        let mut series: Vec<SeriesFigures> = Vec::new();
        let mut groups: Vec<SeriesFigures> = doc
            .groups
            .iter()
            .map(|g| SeriesFigures {
                label: g.name.clone(),
                figures: Figures::new(SeriesDelta::new(), overall.window_ns, true),
            })
            .collect();
        let mut tiers: Vec<(Option<ServiceTierType>, Figures)> = Vec::new();
        let mut turns: Vec<(u32, Figures)> = Vec::new();
        for record in &doc.series {
            let (key, delta) = record.decode()?;
            let kind = kind_of(&key.stage);
            let requests = key.operation.is_some();
            let priced = record.priced || !requests;
            all.delta.merge(&delta);
            all.priced &= priced;
            if measured(kind) {
                overall.delta.merge(&delta);
                overall.priced &= priced;
                if let Some(g) = groups.iter_mut().find(|g| g.label == record.group) {
                    g.figures.delta.merge(&delta);
                    g.figures.priced &= priced;
                }
                if requests {
                    let at = match tiers.iter().position(|(t, _)| *t == key.tier) {
                        Some(at) => at,
                        None => {
                            let empty = Figures::new(SeriesDelta::new(), overall.window_ns, true);
                            tiers.push((key.tier, empty));
                            tiers.len() - 1
                        }
                    };
                    tiers[at].1.delta.merge(&delta);
                    tiers[at].1.priced &= priced;
                }
                if let (true, Some(turn)) = (requests, key.turn) {
                    let at = match turns.iter().position(|(t, _)| *t == turn) {
                        Some(at) => at,
                        None => {
                            let empty = Figures::new(SeriesDelta::new(), overall.window_ns, true);
                            turns.push((turn, empty));
                            turns.len() - 1
                        }
                    };
                    turns[at].1.delta.merge(&delta);
                    turns[at].1.priced &= priced;
                }
                if requests {
                    // A session's turns are one series here (per turn above).
                    let label = label(&SeriesKey {
                        turn: None,
                        ..key.clone()
                    });
                    match series.iter_mut().find(|s| s.label == label) {
                        Some(s) => {
                            s.figures.delta.merge(&delta);
                            s.figures.priced &= priced;
                        }
                        None => series.push(SeriesFigures {
                            label,
                            figures: Figures::new(delta, stage_window(doc, &key.stage), priced),
                        }),
                    }
                }
            } else if is_cooldown(kind) {
                cooldown.delta.merge(&delta);
                cooldown.priced &= priced;
            }
        }
        let has_cooldown = doc.run.stages.iter().any(|s| s.kind == StageKind::Cooldown);
        // Tier order: none named (Standard) first, then the service model's.
        tiers.sort_by_key(|(t, _)| t.map(|t| t as usize + 1).unwrap_or(0));
        let tiers = if tiers.iter().any(|(t, _)| t.is_some()) {
            tiers
                .into_iter()
                .map(|(t, figures)| SeriesFigures {
                    label: t.map_or_else(|| "standard (none named)".to_owned(), |t| t.to_string()),
                    figures,
                })
                .collect()
        } else {
            Vec::new()
        };
        turns.sort_by_key(|(t, _)| *t);
        Ok(RunFigures {
            overall,
            series,
            groups,
            tiers,
            turns,
            cooldown: has_cooldown.then_some(cooldown),
            all_stages: all,
            measured_stages: doc
                .run
                .stages
                .iter()
                .filter(|s| measured(Some(s.kind)))
                .map(|s| s.name.clone())
                .collect(),
        })
    }
}

fn label(key: &SeriesKey) -> String {
    key.to_string()
}
