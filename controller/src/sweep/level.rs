//! One level's row: read from the run's own figures ([`RunFigures`], computed
//! once by `report::evaluate`) and judged against the `[slo]`.
//!
//! Every ratio names its denominator: throttle % is over attempts (retries
//! included), error % and goodput over measured requests (every outcome),
//! cost over successful requests. Nothing is divided by failed requests.

use quarry_bedrock::Outcome;
use quarry_engine::{Count, Metric, TokenKind};
use serde::{Deserialize, Serialize};

use super::search::Feasibility;
use crate::report::{Figures, RunFigures, stat};
use crate::results::{ResultsDocument, SimulatorView};
use crate::spec::SloSpec;
use crate::thresholds::{LatencyMetric, LatencyStat, MetricSource, Observed, ScalarMetric};

/// p50, p95 and p99 of a latency, ns (`None`: no successful request had it).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Median, ns.
    pub p50_ns: Option<u64>,
    /// 95th percentile, ns.
    pub p95_ns: Option<u64>,
    /// 99th percentile, ns.
    pub p99_ns: Option<u64>,
}

/// Use of one quota pool over the level (warmup included: the simulator's
/// own counters), as % of its limit over the level's wall time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuotaUse {
    /// The pool: `account/model/scope`.
    pub pool: String,
    /// Tokens reserved at admission / (TPM × minutes), %.
    pub tpm_admission_percent: f64,
    /// Tokens settled / (TPM × minutes), %.
    pub tpm_settled_percent: f64,
    /// Tokens settled / TPD, %.
    pub tpd_percent: f64,
    /// Admitted requests / (RPM × minutes), %; `None` when the pool has
    /// no RPM or more than one pool shares the lanes.
    pub rpm_percent: Option<f64>,
}

/// Goodput (DistServe): measured requests that succeeded and met every
/// `[slo.request]` bound. The engine records TTFT, TPOT and E2E as
/// separate histograms, not jointly per request, so the count is bounded
/// from the marginals (Fréchet bounds): `lower` counts a request out when
/// it misses any bound, `upper` is the smallest per-bound count.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Goodput {
    /// Requests surely within every bound (lower bound).
    pub lower: u64,
    /// Requests possibly within every bound (upper bound).
    pub upper: u64,
    /// The denominator: measured requests, every outcome.
    pub measured_requests: u64,
    /// `lower` / measured requests.
    pub lower_fraction: f64,
    /// `upper` / measured requests.
    pub upper_fraction: f64,
}

/// A failed SLO criterion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedCriterion {
    /// `ttft.p99`, `throttle_rate`, or `attainment`.
    pub key: String,
    /// The condition as written (`<= 2s`).
    pub condition: String,
    /// What was measured (`None`: no data).
    pub actual: Option<String>,
}

/// A level's verdict against the SLO.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every criterion held.
    Pass,
    /// A criterion failed.
    Fail,
    /// Attainment could be neither shown nor refuted from the bounds:
    /// not passed.
    Inconclusive,
    /// The level measured no capacity (see `invalid_reason`).
    Invalid,
    /// The spec has no `[slo]`.
    NoSlo,
}

impl Verdict {
    /// The search's reading of it.
    pub fn feasibility(self) -> Feasibility {
        match self {
            Verdict::Pass | Verdict::NoSlo => Feasibility::Feasible,
            Verdict::Fail | Verdict::Inconclusive => Feasibility::Infeasible,
            Verdict::Invalid => Feasibility::Invalid,
        }
    }

    /// As printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Inconclusive => "inconclusive",
            Verdict::Invalid => "invalid",
            Verdict::NoSlo => "no slo",
        }
    }
}

/// One level of a sweep, as `sweep.json` keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevelRecord {
    /// 0-based, in the order run.
    pub index: usize,
    /// The offered load: virtual users, or arrivals per second.
    pub value: f64,
    /// Its results directory, relative to the sweep directory.
    pub dir: String,
    /// Its run id.
    pub run_id: String,
    /// How its run ended (`completed`, `stopped` ...).
    pub ended: String,
    /// Measured window, seconds (ramp and hold stages).
    pub measured_s: f64,
    /// Measured requests (every outcome).
    pub requests: u64,
    /// Of which succeeded.
    pub ok: u64,
    /// Attempts, retries included.
    pub attempts: u64,
    /// Achieved load: measured requests ended per second.
    pub requests_per_s: Option<f64>,
    /// Successful requests per second.
    pub ok_per_s: Option<f64>,
    /// Output tokens per second, every request together.
    pub output_tokens_per_s: Option<f64>,
    /// Median per-request output rate (tokens/s of one stream, successful
    /// requests).
    pub output_tokens_per_s_per_stream_p50: Option<f64>,
    /// TTFT from send.
    pub ttft: Percentiles,
    /// E2E from send.
    pub e2e: Percentiles,
    /// Inter-token latency.
    pub itl: Percentiles,
    /// Time per output token.
    pub tpot: Percentiles,
    /// Throttled attempts (final and retried) / attempts, %.
    pub throttle_percent: Option<f64>,
    /// Failed measured requests / measured requests, %.
    pub error_percent: Option<f64>,
    /// Quota pool use; `None` when not known (a real service: its limits
    /// are not visible to the client).
    pub quota: Option<Vec<QuotaUse>>,
    /// Throttles by the service's reason (simulator only: `tokens_per_minute`,
    /// `requests_per_minute`, `tokens_per_day` ...), whole level.
    pub throttle_reasons: Vec<(String, u64)>,
    /// Server errors (5xx) among measured requests.
    pub server_errors: u64,
    /// USD per 1,000 successful requests; `None` when unpriced or none
    /// succeeded.
    pub cost_per_1k_ok_usd: Option<f64>,
    /// Goodput bounds, when `[slo.request]` is set.
    pub goodput: Option<Goodput>,
    /// The load generator was saturated in some interval.
    pub generator_saturated: bool,
    /// The verdict.
    pub verdict: Verdict,
    /// Why the level is invalid.
    pub invalid_reason: Option<String>,
    /// Failed criteria, in spec order (attainment last).
    pub failed: Vec<FailedCriterion>,
}

fn percentiles(f: &Figures, m: LatencyMetric) -> Percentiles {
    let ns = |s| {
        f.latency(m, s)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    };
    Percentiles {
        p50_ns: ns(LatencyStat::P50),
        p95_ns: ns(LatencyStat::P95),
        p99_ns: ns(LatencyStat::P99),
    }
}

/// Quota use from the simulator's own view of the level; `elapsed_ns` is
/// the level's whole run time (the view counts every stage).
pub fn quota_use(view: &SimulatorView, elapsed_ns: u64) -> Vec<QuotaUse> {
    let minutes = elapsed_ns as f64 / 60e9;
    let admitted: u64 = view
        .lanes
        .iter()
        .flat_map(|l| l.requests.iter())
        .filter(|(outcome, _)| !outcome.contains("throttl") && !outcome.contains("quota"))
        .map(|(_, n)| n)
        .sum();
    let single = view.quota.len() == 1;
    let pct = |n: f64, d: f64| if d > 0.0 { 100.0 * n / d } else { 0.0 };
    view.quota
        .iter()
        .map(|q| QuotaUse {
            pool: format!("{}/{}/{}", q.account_id, q.model, q.scope),
            tpm_admission_percent: pct(q.reserved_total as f64, q.tpm as f64 * minutes),
            tpm_settled_percent: pct(q.settled_total as f64, q.tpm as f64 * minutes),
            tpd_percent: pct(q.settled_total as f64, q.tpd as f64),
            rpm_percent: q
                .rpm
                .filter(|_| single)
                .map(|rpm| pct(admitted as f64, rpm as f64 * minutes)),
        })
        .collect()
}

/// Requests (successful) within `bound` of histogram `metric`, and how
/// many successful requests have no value in it (they meet the bound).
fn within(f: &Figures, metric: Metric, bound_ns: u64, ok: u64) -> (u64, u64) {
    let h = f.histogram(metric);
    let recorded = h.len();
    let inside = if recorded == 0 {
        0
    } else {
        h.count_between(0, bound_ns.min(h.max()))
    };
    (inside.min(recorded), ok.saturating_sub(recorded))
}

fn goodput(f: &Figures, slo: &SloSpec) -> Option<Goodput> {
    let r = &slo.request;
    if r.is_empty() {
        return None;
    }
    let requests = f.requests();
    let ok = f.outcome(Outcome::Ok);
    let ns = |d: std::time::Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    let bounds = [
        (Metric::TtftFromSend, r.ttft),
        (Metric::Tpot, r.tpot),
        (Metric::E2eFromSend, r.e2e),
    ];
    let mut upper = ok;
    let mut missing_any = 0u64;
    for (metric, bound) in bounds {
        let Some(bound) = bound else { continue };
        let (inside, unrecorded) = within(f, metric, ns(bound), ok);
        let meets = (inside + unrecorded).min(ok);
        upper = upper.min(meets);
        missing_any += ok - meets;
    }
    let lower = ok.saturating_sub(missing_any);
    let frac = |n: u64| match requests {
        0 => 0.0,
        d => n as f64 / d as f64,
    };
    Some(Goodput {
        lower,
        upper,
        measured_requests: requests,
        lower_fraction: frac(lower),
        upper_fraction: frac(upper),
    })
}

fn observed(o: Option<Observed>) -> Option<String> {
    o.map(|o| match o {
        Observed::Duration(d) => format!("{d:?}"),
        Observed::Number(n) => format!("{n:.6}"),
    })
}

/// A level's row from its results document and figures.
pub fn level_record(
    index: usize,
    value: f64,
    dir: String,
    doc: &ResultsDocument,
    figures: &RunFigures,
    slo: Option<&SloSpec>,
) -> LevelRecord {
    let f = &figures.overall;
    let requests = f.requests();
    let ok = f.outcome(Outcome::Ok);
    let attempts = f.count(Count::Attempts);
    let throttled_attempts = f.outcome(Outcome::Throttled)
        + f.outcome(Outcome::DailyQuota)
        + f.count(Count::RetriedThrottles);
    let percent = |n: u64, d: u64| (d > 0).then(|| 100.0 * n as f64 / d as f64);
    let per_stream = stat(f.histogram(Metric::OutputMilliTokensPerS), LatencyStat::P50)
        .map(|m| m as f64 / 1000.0);
    let elapsed_ns = doc.end.finished_at_ns;
    let quota = doc.simulator.as_ref().map(|v| quota_use(v, elapsed_ns));
    let mut throttle_reasons: Vec<(String, u64)> = Vec::new();
    for lane in doc.simulator.iter().flat_map(|v| v.lanes.iter()) {
        for (reason, n) in &lane.throttles {
            match throttle_reasons.iter_mut().find(|(r, _)| r == reason) {
                Some((_, total)) => *total += n,
                None => throttle_reasons.push((reason.clone(), *n)),
            }
        }
    }
    let goodput = slo.and_then(|s| goodput(f, s));
    let mut record = LevelRecord {
        index,
        value,
        dir,
        run_id: doc.run.run_id.clone(),
        ended: doc.end.ended.as_str().to_owned(),
        measured_s: f.window_ns as f64 / 1e9,
        requests,
        ok,
        attempts,
        requests_per_s: f.scalar(ScalarMetric::Rps),
        ok_per_s: f.per_s(ok).filter(|_| requests > 0),
        output_tokens_per_s: f
            .per_s(f.tokens(TokenKind::Output))
            .filter(|_| requests > 0),
        output_tokens_per_s_per_stream_p50: per_stream,
        ttft: percentiles(f, LatencyMetric::Ttft),
        e2e: percentiles(f, LatencyMetric::E2e),
        itl: percentiles(f, LatencyMetric::Itl),
        tpot: percentiles(f, LatencyMetric::Tpot),
        throttle_percent: percent(throttled_attempts, attempts),
        error_percent: percent(requests - ok, requests),
        quota,
        throttle_reasons,
        server_errors: f.outcome(Outcome::ServerError),
        cost_per_1k_ok_usd: f
            .cost_usd()
            .filter(|_| ok > 0)
            .map(|c| 1000.0 * c / ok as f64),
        goodput,
        generator_saturated: doc.health.saturated,
        verdict: Verdict::NoSlo,
        invalid_reason: None,
        failed: Vec::new(),
    };
    judge(&mut record, doc, f, slo);
    record
}

/// Sets the verdict, the failed criteria and why a level is invalid.
fn judge(r: &mut LevelRecord, doc: &ResultsDocument, f: &Figures, slo: Option<&SloSpec>) {
    r.invalid_reason = if !doc.end.ended.is_complete() {
        Some(format!("the level's run did not complete ({})", r.ended))
    } else if r.requests == 0 {
        Some("no request ended in the measured stages".to_owned())
    } else if r.generator_saturated {
        Some(format!(
            "the load generator was saturated (schedule-lag p99 passed {} ms in {} of {} intervals): the figures describe the generator, not the service",
            doc.run.saturation_lag_p99_ns / 1_000_000,
            doc.health.saturated_intervals,
            doc.health.intervals
        ))
    } else {
        None
    };
    if r.invalid_reason.is_some() {
        r.verdict = Verdict::Invalid;
        return;
    }
    let Some(slo) = slo else {
        r.verdict = Verdict::NoSlo;
        return;
    };
    for t in &slo.criteria {
        if let Some(b) = t.check(f) {
            r.failed.push(FailedCriterion {
                key: b.key,
                condition: b.condition,
                actual: observed(b.actual),
            });
        }
    }
    let mut inconclusive = false;
    if let (Some(target), Some(g)) = (slo.attainment, &r.goodput) {
        let condition = format!(">= {:.4}% of measured requests", 100.0 * target);
        if g.upper_fraction < target {
            r.failed.push(FailedCriterion {
                key: "attainment".to_owned(),
                condition,
                actual: Some(format!("at most {:.4}%", 100.0 * g.upper_fraction)),
            });
        } else if g.lower_fraction < target {
            inconclusive = true;
        }
    }
    r.verdict = if !r.failed.is_empty() {
        Verdict::Fail
    } else if inconclusive {
        Verdict::Inconclusive
    } else {
        Verdict::Pass
    };
}

/// The wall behind a failed level: the named quota when requests were
/// throttled, service capacity when the service answered 5xx, else `None`
/// (latency grew without a wall the client can see).
pub fn wall(r: &LevelRecord) -> Option<String> {
    let throttled = r.throttle_percent.is_some_and(|p| p > 0.0);
    if throttled {
        let named =
            r.throttle_reasons
                .iter()
                .max_by_key(|(_, n)| *n)
                .map(|(reason, _)| match reason.as_str() {
                    "tokens_per_minute" => "quota: TPM (tokens per minute)".to_owned(),
                    "requests_per_minute" => "quota: RPM (requests per minute)".to_owned(),
                    "tokens_per_day" => "quota: TPD (tokens per day)".to_owned(),
                    "account_tokens_per_day" => "quota: account TPD (tokens per day)".to_owned(),
                    other => format!("quota: {other}"),
                });
        return Some(named.unwrap_or_else(|| {
            "quota: throttled (the pool is not named: only the embedded simulator reports which quota throttled)".to_owned()
        }));
    }
    (r.server_errors > 0).then(|| "service capacity (5xx server errors)".to_owned())
}
