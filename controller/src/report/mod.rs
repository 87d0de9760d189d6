//! The run report: figures computed from a results document (module
//! `figures`), rendered as text (module `render`), as a self-contained
//! HTML page with charts ([`html`], which also renders sweeps and plans)
//! and as JSON ([`json`], `quarry report DIR --format json`).
//!
//! The report is a pure function of the document, and `quarry run` renders
//! it from the `results.json` it just wrote and read back, so `quarry report
//! DIR` prints the same bytes.

pub mod cloudwatch;
mod figures;
mod format;
pub mod html;
pub mod json;
mod render;

use quarry_bedrock::Outcome;
use quarry_engine::{Count, IntervalSnapshot, Metric, SeriesDelta, TokenKind};

pub use figures::{Figures, RunFigures, SeriesFigures, latency_histogram, stat};
pub use format::{count, duration_ns, percent, rate, trim, usd};
pub use render::{dist_text, render_fleet_section, render_report, saturation_signs};

use crate::results::{
    IntervalSummary, ResultsDocument, ResultsError, ThresholdResult, ThresholdRule,
};
use crate::thresholds::{Bound, LatencyStat, MetricPath, MetricSource, Threshold};

/// Computes `doc`'s figures — each histogram decoded once — and evaluates
/// its thresholds against them into `doc.thresholds`. Everything a report
/// shows (text, `.hgrm`, thresholds) comes from these figures.
pub fn evaluate(doc: &mut ResultsDocument) -> Result<RunFigures, ResultsError> {
    let figures = RunFigures::from_document(doc)?;
    doc.thresholds = evaluate_thresholds(&doc.run.thresholds, &figures.overall);
    Ok(figures)
}

/// Why a run that completed still failed to measure anything: no request
/// ended in its measured stages, or every one of them failed (an
/// all-failed run is a failed run, thresholds or not). `None` when at
/// least one measured request succeeded.
pub fn measured_nothing(figures: &RunFigures) -> Option<String> {
    let overall = &figures.overall;
    let requests = overall.requests();
    if requests == 0 {
        return Some("no request ended in the measured stages".to_owned());
    }
    if overall.outcome(Outcome::Ok) > 0 {
        return None;
    }
    let failed: Vec<String> = Outcome::ALL
        .into_iter()
        .filter(|o| *o != Outcome::Ok)
        .filter_map(|o| {
            let n = overall.outcome(o);
            (n > 0).then(|| format!("{n} {}", o.as_str()))
        })
        .collect();
    Some(format!(
        "every one of its {requests} measured requests failed ({})",
        failed.join(", ")
    ))
}

/// Evaluates each rule against `figures`, in order. A rule that no longer
/// parses (a results file from another version) fails with its reason.
pub fn evaluate_thresholds(rules: &[ThresholdRule], figures: &Figures) -> Vec<ThresholdResult> {
    rules
        .iter()
        .map(|rule| match Threshold::parse(&rule.key, &rule.condition) {
            Ok(t) => ThresholdResult {
                key: rule.key.clone(),
                condition: rule.condition.clone(),
                passed: t.check(figures).is_none(),
                actual: observed(&t, figures),
            },
            Err(e) => ThresholdResult {
                key: rule.key.clone(),
                condition: rule.condition.clone(),
                passed: false,
                actual: Some(format!("invalid threshold: {e}")),
            },
        })
        .collect()
}

/// The measured value a threshold compares, as the report prints it.
fn observed(t: &Threshold, figures: &Figures) -> Option<String> {
    match (t.metric, t.bound) {
        (MetricPath::Latency(m, s), Bound::Duration(_)) => {
            let d = figures.latency(m, s)?;
            Some(duration_ns(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)))
        }
        (MetricPath::Scalar(m), _) => figures.scalar(m).map(|v| format!("{v:.6}")),
        _ => None,
    }
}

/// An interval's headline figures, every series together.
pub fn interval_summary(snapshot: &IntervalSnapshot) -> IntervalSummary {
    let mut total = Figures::new(SeriesDelta::new(), 0, true);
    for delta in snapshot.series.values() {
        total.delta.merge(delta);
    }
    let output = total.tokens(TokenKind::Output);
    let c = total.delta.counters();
    let ttft = total.histogram(Metric::TtftFromSend);
    let e2e = total.histogram(Metric::E2eFromSend);
    IntervalSummary {
        requests: c.requests(),
        ok: c.get(Count::Outcome(Outcome::Ok)),
        throttled: c.get(Count::Outcome(Outcome::Throttled)),
        output_tokens: output,
        quota_settled: c.get(Count::QuotaSettled),
        ttft_p50_ns: stat(ttft, LatencyStat::P50).unwrap_or(0),
        ttft_p99_ns: stat(ttft, LatencyStat::P99).unwrap_or(0),
        e2e_p50_ns: stat(e2e, LatencyStat::P50).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests;
