//! One level's row: read from the run's own figures ([`RunFigures`], computed
//! once by `report::evaluate`) and judged against the `[slo]`.
//!
//! Every ratio names its denominator: throttle % is over attempts (retries
//! included), error % and goodput over measured requests (every outcome),
//! cost over successful requests. Nothing is divided by failed requests.

use quarry_bedrock::Outcome;
use quarry_engine::{Count, Metric, TokenKind};
use serde::{Deserialize, Serialize};

use std::fmt::Write as _;

use super::confidence::{CONFIDENCE, Claim, judge as judge_claim, min_requests};
use super::search::Feasibility;
use crate::report::{Figures, RunFigures, duration_ns, latency_histogram, stat};
use crate::results::{Ended, ResultsDocument, SimulatorView};
use crate::spec::SloSpec;
use crate::thresholds::{
    Bound, Comparator, LatencyMetric, LatencyStat, MetricPath, MetricSource, Observed,
    ScalarMetric, Threshold,
};

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
/// `[slo.request]` bound, judged request by request by the load generator
/// (the engine's `slo_met` counter: TTFT, TPOT and E2E of the same request).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Goodput {
    /// Requests that succeeded within every bound.
    pub met: u64,
    /// The denominator: measured requests, every outcome.
    pub measured_requests: u64,
    /// `met` / measured requests.
    pub fraction: f64,
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
    /// Requests the confidence rule judged (percentile and attainment
    /// criteria).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judged_requests: Option<u64>,
    /// The fewest requests that could show the claim (with none over the
    /// bound), when more than were judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needed_requests: Option<u64>,
}

impl FailedCriterion {
    fn new(key: &str, condition: &str, actual: Option<String>) -> Self {
        FailedCriterion {
            key: key.to_owned(),
            condition: condition.to_owned(),
            actual,
            judged_requests: None,
            needed_requests: None,
        }
    }

    /// With the confidence rule's counts: `n` judged, `allowed` over.
    fn judged(mut self, n: u64, allowed: f64) -> Self {
        let need = min_requests(allowed);
        self.judged_requests = Some(n);
        self.needed_requests = (n < need).then_some(need);
        self
    }
}

/// The first run of a level, when it was too short to judge and was run
/// again for longer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExtendedFrom {
    /// Its results directory, relative to the sweep directory.
    pub dir: String,
    /// Its measured requests.
    pub requests: u64,
    /// Its measured window, s.
    pub measured_s: f64,
}

/// A level's verdict against the SLO.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every criterion held.
    Pass,
    /// A criterion failed.
    Fail,
    /// No criterion was refuted, but one could not be shown at 99%
    /// confidence (too few requests, or too close to the bound): not
    /// passed.
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
    /// Median decode rate of one stream: output tokens per second after
    /// the first, `1 / TPOT` (successful requests with two or more output
    /// tokens; the median of `1 / TPOT` is `1 /` the median TPOT).
    pub decode_tokens_per_s_per_stream_p50: Option<f64>,
    /// Median whole-request output rate: output tokens / E2E, TTFT
    /// included (successful requests).
    pub output_tokens_per_s_per_request_p50: Option<f64>,
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
    /// Failed criteria, in spec order (attainment last): refuted at 99%
    /// confidence where the confidence rule applies (see `confidence`).
    pub failed: Vec<FailedCriterion>,
    /// Criteria the level's requests could neither show nor refute at 99%
    /// confidence (too few requests, or too close to the bound).
    #[serde(default)]
    pub inconclusive: Vec<FailedCriterion>,
    /// The level's first, shorter run, when this record is its extension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extended_from: Option<ExtendedFrom>,
}

impl LevelRecord {
    /// How many times longer the level must run for every inconclusive
    /// claim to have the requests it needs; `None` when a longer run
    /// cannot settle it (a criterion failed, or an inconclusive one
    /// already had enough requests and sits too close to its bound).
    pub fn extension_factor(&self) -> Option<f64> {
        if self.verdict != Verdict::Inconclusive || !self.failed.is_empty() {
            return None;
        }
        self.inconclusive
            .iter()
            .map(|c| match (c.judged_requests, c.needed_requests) {
                (Some(n), Some(need)) if n > 0 => Some(need as f64 / n as f64),
                _ => None,
            })
            .try_fold(1.0_f64, |acc, f| f.map(|f| acc.max(f)))
    }
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

fn goodput(f: &Figures, slo: &SloSpec) -> Option<Goodput> {
    if slo.request.is_empty() {
        return None;
    }
    let requests = f.requests();
    let met = f.count(Count::SloMet).min(requests);
    Some(Goodput {
        met,
        measured_requests: requests,
        fraction: match requests {
            0 => 0.0,
            d => met as f64 / d as f64,
        },
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
    let per_request = stat(f.histogram(Metric::OutputMilliTokensPerS), LatencyStat::P50)
        .map(|m| m as f64 / 1000.0);
    let tpot = percentiles(f, LatencyMetric::Tpot);
    let decode = tpot.p50_ns.filter(|ns| *ns > 0).map(|ns| 1e9 / ns as f64);
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
        decode_tokens_per_s_per_stream_p50: decode,
        output_tokens_per_s_per_request_p50: per_request,
        ttft: percentiles(f, LatencyMetric::Ttft),
        e2e: percentiles(f, LatencyMetric::E2e),
        itl: percentiles(f, LatencyMetric::Itl),
        tpot,
        throttle_percent: percent(throttled_attempts, attempts),
        error_percent: percent(requests - ok, requests),
        quota,
        throttle_reasons,
        server_errors: f.outcome(Outcome::ServerError),
        cost_per_1k_ok_usd: f.cost_per_ok_request().map(|c| 1000.0 * c),
        goodput,
        generator_saturated: doc.health.saturated,
        verdict: Verdict::NoSlo,
        invalid_reason: None,
        failed: Vec::new(),
        inconclusive: Vec::new(),
        extended_from: None,
    };
    judge(&mut record, doc, f, slo);
    record
}

/// Sets the verdict, the failed criteria and why a level is invalid.
fn judge(r: &mut LevelRecord, doc: &ResultsDocument, f: &Figures, slo: Option<&SloSpec>) {
    let overload = doc
        .end
        .overload
        .as_ref()
        .filter(|_| doc.end.ended == Ended::Overloaded);
    if let Some(e) = overload {
        // A finding, not an invalid level: the target could not keep up.
        // It stands even when the generator also lagged: a late send
        // offers less load, it does not make the service's queue grow.
        r.failed.push(FailedCriterion::new(
            "over-saturation",
            "in flight and TTFT must not rise together (99% confidence, each by 10%+)",
            Some(format!(
                "in flight +{:.2}/s (mean {:.1}) and TTFT p50 +{:.1} ms/s (mean {:.0} ms) over {} intervals; the level was stopped at {:.1} s",
                e.in_flight_per_s,
                e.in_flight_mean,
                e.ttft_p50_ms_per_s,
                e.ttft_p50_mean_ms,
                e.intervals,
                e.at_ns as f64 / 1e9
            )),
        ));
        r.verdict = Verdict::Fail;
        return;
    }
    r.invalid_reason = if !doc.end.ended.is_complete() {
        Some(format!("the level's run did not complete ({})", r.ended))
    } else if r.requests == 0 {
        Some("no request ended in the measured stages".to_owned())
    } else if r.generator_saturated {
        Some(format!(
            "the load generator was saturated in {} of {} intervals ({}): the figures describe the generator, not the service",
            doc.health.saturated_intervals,
            doc.health.intervals,
            crate::report::saturation_signs(doc)
        ))
    } else {
        None
    };
    if r.invalid_reason.is_some() {
        // A saturated generator offered less load than the level names, so
        // its latencies and passes say nothing of the service. A throttle
        // rate over its bound still stands: the service refused that share
        // of what it was sent, and the level's full load would be refused
        // no less.
        if r.generator_saturated
            && doc.end.ended.is_complete()
            && let Some(slo) = slo
        {
            let refused: Vec<FailedCriterion> = slo
                .criteria
                .iter()
                .filter(|t| t.metric == MetricPath::Scalar(ScalarMetric::ThrottleRate))
                .filter_map(|t| match criterion(t, f) {
                    (Claim::Fails, mut entry) => {
                        entry.actual = Some(format!(
                            "{} while the load generator was saturated (it sent less than the level asks: the service refused this share of a lower load)",
                            entry.actual.as_deref().unwrap_or("no value")
                        ));
                        Some(entry)
                    }
                    _ => None,
                })
                .collect();
            if !refused.is_empty() {
                r.failed = refused;
                r.invalid_reason = None;
                r.verdict = Verdict::Fail;
                return;
            }
        }
        r.verdict = Verdict::Invalid;
        return;
    }
    let Some(slo) = slo else {
        r.verdict = Verdict::NoSlo;
        return;
    };
    for t in &slo.criteria {
        let (claim, entry) = criterion(t, f);
        match claim {
            Claim::Holds => {}
            Claim::Fails => r.failed.push(entry),
            Claim::Inconclusive => r.inconclusive.push(entry),
        }
    }
    if let (Some(target), Some(g)) = (slo.attainment, &r.goodput) {
        let allowed = 1.0 - target;
        let missed = g.measured_requests - g.met;
        let entry = FailedCriterion::new(
            "attainment",
            &format!(">= {:.4}% of measured requests", 100.0 * target),
            Some(evidence(
                &format!("{:.4}% met", 100.0 * g.fraction),
                missed,
                g.measured_requests,
                allowed,
                "missed [slo.request]",
            )),
        )
        .judged(g.measured_requests, allowed);
        match judge_claim(missed, g.measured_requests, allowed) {
            Claim::Holds => {}
            Claim::Fails => r.failed.push(entry),
            Claim::Inconclusive => r.inconclusive.push(entry),
        }
    }
    r.verdict = if !r.failed.is_empty() {
        Verdict::Fail
    } else if !r.inconclusive.is_empty() {
        Verdict::Inconclusive
    } else {
        Verdict::Pass
    };
}

/// One criterion's claim and what was measured. A latency percentile
/// bounded from above (`ttft.p99 <= 2s`) is judged by the confidence rule
/// from the requests over the bound; every other criterion (means, rates,
/// lower bounds) by its measured value.
fn criterion(t: &Threshold, f: &Figures) -> (Claim, FailedCriterion) {
    let upper = matches!(t.comparator, Comparator::Le | Comparator::Lt);
    if let (MetricPath::Latency(metric, stat), Bound::Duration(bound), true) =
        (t.metric, t.bound, upper)
        && let Some(p) = stat.percentile().filter(|p| *p > 0.0)
    {
        let h = f.histogram(latency_histogram(metric));
        let n = h.len();
        let bound_ns = u64::try_from(bound.as_nanos()).unwrap_or(u64::MAX);
        let limit = match t.comparator {
            Comparator::Lt => bound_ns.saturating_sub(1),
            _ => bound_ns,
        };
        let over = n - within(h, limit);
        let allowed = 1.0 - p / 100.0;
        let measured = f.latency(metric, stat).map_or_else(
            || "no value".to_owned(),
            |d| duration_ns(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        );
        let actual = evidence(&measured, over, n, allowed, "over the bound");
        return (
            judge_claim(over, n, allowed),
            FailedCriterion::new(&t.key, &t.condition, Some(actual)).judged(n, allowed),
        );
    }
    match t.check(f) {
        None => (
            Claim::Holds,
            FailedCriterion::new(&t.key, &t.condition, None),
        ),
        Some(b) => (
            Claim::Fails,
            FailedCriterion::new(&t.key, &t.condition, observed(b.actual)),
        ),
    }
}

/// Values of `h` surely at most `limit`: a value sharing the histogram
/// bucket of `limit` (within its 3 significant digits) may lie on either
/// side and counts as over, so a verdict never rests on the rounding.
fn within(h: &hdrhistogram::Histogram<u64>, limit: u64) -> u64 {
    let n = h.len();
    if n == 0 {
        return 0;
    }
    if limit >= h.max() {
        return n;
    }
    if h.highest_equivalent(limit) == limit {
        h.count_between(0, limit)
    } else {
        match h.lowest_equivalent(limit) {
            0 => 0,
            low => h.count_between(0, low - 1),
        }
    }
    .min(n)
}

/// What a confidence verdict rests on: the measured figure, how many of
/// how many requests broke the bound, and, while too few requests were
/// measured to show the claim at all, how many it needs.
fn evidence(measured: &str, over: u64, n: u64, allowed: f64, what: &str) -> String {
    let need = min_requests(allowed);
    let mut s = format!("{measured}; {over} of {n} requests {what}");
    if n < need {
        let _ = write!(
            s,
            "; at least {need} requests are needed to show it at {:.0}% confidence",
            100.0 * CONFIDENCE
        );
    }
    s
}

/// The TPM wall, named at admission or as settled use: Bedrock reserves
/// input + `max_tokens` when it admits a request and returns the unused
/// part when the answer settles. When the level settled well under what it
/// reserved (under 90%), the reservations bind (lowering `max_tokens`
/// lifts the wall); otherwise the tokens really used do.
fn tpm_wall(r: &LevelRecord) -> String {
    let busiest = r
        .quota
        .iter()
        .flatten()
        .max_by(|a, b| a.tpm_admission_percent.total_cmp(&b.tpm_admission_percent));
    match busiest.filter(|q| q.tpm_admission_percent > 0.0) {
        None => "quota: TPM (tokens per minute)".to_owned(),
        Some(q) => {
            let settled = 100.0 * q.tpm_settled_percent / q.tpm_admission_percent;
            if settled < 90.0 {
                format!(
                    "quota: TPM (tokens per minute) at admission: requests reserve input + max_tokens and settled only {settled:.0}% of it (a lower max_tokens lifts this wall)"
                )
            } else {
                format!(
                    "quota: TPM (tokens per minute), settled: requests used {settled:.0}% of what they reserved"
                )
            }
        }
    }
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
                    "tokens_per_minute" => tpm_wall(r),
                    "requests_per_minute" => "quota: RPM (requests per minute)".to_owned(),
                    "tokens_per_day" => "quota: TPD (tokens per day)".to_owned(),
                    "account_tokens_per_day" => "quota: account TPD (tokens per day)".to_owned(),
                    other => format!("quota: {other}"),
                });
        return Some(named.unwrap_or_else(|| {
            "quota: throttled (the pool is not named: only the embedded simulator reports which quota throttled)".to_owned()
        }));
    }
    if r.ended == Ended::Overloaded.as_str() {
        return Some(
            "service capacity: requests queue at the target (in flight and TTFT rise together; the offered rate exceeds what it serves)"
                .to_owned(),
        );
    }
    (r.server_errors > 0).then(|| "service capacity (5xx server errors)".to_owned())
}
