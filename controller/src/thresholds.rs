//! Pass/fail thresholds for CI: a run whose results break one exits non-zero
//! and names it, like k6 thresholds.
//!
//! # The threshold language
//!
//! In a spec, `[thresholds]` maps a metric to a condition:
//!
//! ```toml
//! [thresholds]
//! "ttft.p99" = "< 2s"          # quoted dotted key...
//! e2e.p95 = "<= 8.5s"          # ...or a bare dotted key (a nested table), same thing
//! itl.p99 = ["< 150ms", "> 1ms"]   # several conditions on one metric
//! error_rate = "< 1%"          # rates take a fraction (0.01) or a percentage
//! rps = ">= 5"
//! cost_per_1k_requests = "< $2.50"
//! ```
//!
//! A condition is a comparator (`<`, `<=`, `>`, `>=`) and a bound. The
//! condition says what must hold; a run breaks the threshold when it does not,
//! or when the metric has no data (for example no request produced a first
//! token), because CI must not pass on an empty run.
//!
//! Latency metrics are `METRIC.STAT` and take a duration bound with a unit
//! (`ns`, `us`, `ms`, `s`, `m`, `h`, decimals allowed: `"1.5s"`, `"150ms"`):
//! - METRIC: `ttft`, `ttft_from_schedule`, `e2e`, `e2e_from_schedule`, `itl`,
//!   `tpot`, `schedule_lag` (DESIGN.md "Request timeline and metric definitions");
//! - STAT: `min`, `mean`, `p50`, `p90`, `p95`, `p99`, `p999`, `max`.
//!
//! Scalar metrics take a plain number: `error_rate` and `throttle_rate`
//! (fractions of requests, `"1%"` allowed), `rps` (completed requests per
//! second), `output_tokens_per_s` (aggregate), `cost_per_1k_requests` (USD,
//! `"$"` allowed). Thresholds apply to the measured stages of the whole run
//! (warmup and cooldown excluded), all series together.

use std::fmt;
use std::time::Duration;

use crate::duration::parse_duration;

/// A latency histogram a threshold can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LatencyMetric {
    /// First content token minus send time.
    Ttft,
    /// First content token minus intended (scheduled) time.
    TtftFromSchedule,
    /// Last token minus send time.
    E2e,
    /// Last token minus intended time.
    E2eFromSchedule,
    /// Gaps between content events.
    Itl,
    /// Time per output token after the first.
    Tpot,
    /// Send time minus intended time (the load generator's own health).
    ScheduleLag,
}

/// A statistic of a latency histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LatencyStat {
    /// Smallest value.
    Min,
    /// Arithmetic mean.
    Mean,
    /// 50th percentile.
    P50,
    /// 90th percentile.
    P90,
    /// 95th percentile.
    P95,
    /// 99th percentile.
    P99,
    /// 99.9th percentile.
    P999,
    /// Largest value.
    Max,
}

impl LatencyStat {
    /// The percentile (0–100) this statistic reads from a histogram, or
    /// `None` for `mean` (min and max are the 0th and 100th).
    pub fn percentile(self) -> Option<f64> {
        match self {
            LatencyStat::Min => Some(0.0),
            LatencyStat::Mean => None,
            LatencyStat::P50 => Some(50.0),
            LatencyStat::P90 => Some(90.0),
            LatencyStat::P95 => Some(95.0),
            LatencyStat::P99 => Some(99.0),
            LatencyStat::P999 => Some(99.9),
            LatencyStat::Max => Some(100.0),
        }
    }
}

/// A number a threshold can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScalarMetric {
    /// Failed requests / all requests (any non-ok outcome).
    ErrorRate,
    /// Throttled requests / all requests.
    ThrottleRate,
    /// Completed requests per second.
    Rps,
    /// Aggregate output tokens per second.
    OutputTokensPerS,
    /// USD per 1,000 successful requests (the ok requests' cost over
    /// their number; throttled and failed requests are left out of both).
    CostPer1kRequests,
}

const LATENCY_METRICS: [(&str, LatencyMetric); 7] = [
    ("ttft", LatencyMetric::Ttft),
    ("ttft_from_schedule", LatencyMetric::TtftFromSchedule),
    ("e2e", LatencyMetric::E2e),
    ("e2e_from_schedule", LatencyMetric::E2eFromSchedule),
    ("itl", LatencyMetric::Itl),
    ("tpot", LatencyMetric::Tpot),
    ("schedule_lag", LatencyMetric::ScheduleLag),
];

const STATS: [(&str, LatencyStat); 8] = [
    ("min", LatencyStat::Min),
    ("mean", LatencyStat::Mean),
    ("p50", LatencyStat::P50),
    ("p90", LatencyStat::P90),
    ("p95", LatencyStat::P95),
    ("p99", LatencyStat::P99),
    ("p999", LatencyStat::P999),
    ("max", LatencyStat::Max),
];

const SCALARS: [(&str, ScalarMetric); 5] = [
    ("error_rate", ScalarMetric::ErrorRate),
    ("throttle_rate", ScalarMetric::ThrottleRate),
    ("rps", ScalarMetric::Rps),
    ("output_tokens_per_s", ScalarMetric::OutputTokensPerS),
    ("cost_per_1k_requests", ScalarMetric::CostPer1kRequests),
];

/// What a threshold measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricPath {
    /// A statistic of a latency histogram.
    Latency(LatencyMetric, LatencyStat),
    /// A scalar.
    Scalar(ScalarMetric),
}

impl MetricPath {
    /// Parses `ttft.p99`, `error_rate` ...
    pub fn parse(key: &str) -> Result<Self, ThresholdError> {
        if let Some((_, m)) = SCALARS.iter().find(|(name, _)| *name == key) {
            return Ok(MetricPath::Scalar(*m));
        }
        let unknown = || ThresholdError::UnknownMetric {
            key: key.to_owned(),
        };
        let (metric, stat) = key.split_once('.').ok_or_else(|| {
            match LATENCY_METRICS.iter().any(|(n, _)| *n == key) {
                true => ThresholdError::MissingStat {
                    key: key.to_owned(),
                },
                false => unknown(),
            }
        })?;
        let (_, metric) = LATENCY_METRICS
            .iter()
            .find(|(n, _)| *n == metric)
            .ok_or_else(unknown)?;
        let (_, stat) =
            STATS
                .iter()
                .find(|(n, _)| *n == stat)
                .ok_or_else(|| ThresholdError::UnknownStat {
                    key: key.to_owned(),
                })?;
        Ok(MetricPath::Latency(*metric, *stat))
    }
}

/// A comparison that must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Comparator {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl Comparator {
    fn holds(self, actual: f64, bound: f64) -> bool {
        match self {
            Comparator::Lt => actual < bound,
            Comparator::Le => actual <= bound,
            Comparator::Gt => actual > bound,
            Comparator::Ge => actual >= bound,
        }
    }
}

/// The right-hand side of a condition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    /// For latency metrics.
    Duration(Duration),
    /// For scalar metrics (rates as fractions).
    Number(f64),
}

/// One parsed threshold condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// The metric path as written (`ttft.p99`).
    pub key: String,
    /// The condition as written (`< 2s`).
    pub condition: String,
    /// What is measured.
    pub metric: MetricPath,
    /// How it is compared.
    pub comparator: Comparator,
    /// What it is compared with.
    pub bound: Bound,
}

impl Threshold {
    /// Parses `key = "condition"`; errors name the key.
    pub fn parse(key: &str, condition: &str) -> Result<Self, ThresholdError> {
        let metric = MetricPath::parse(key)?;
        let bad = |reason: &str| ThresholdError::BadCondition {
            key: key.to_owned(),
            condition: condition.to_owned(),
            reason: reason.to_owned(),
        };
        let text = condition.trim();
        let (comparator, rest) = if let Some(r) = text.strip_prefix("<=") {
            (Comparator::Le, r)
        } else if let Some(r) = text.strip_prefix(">=") {
            (Comparator::Ge, r)
        } else if let Some(r) = text.strip_prefix('<') {
            (Comparator::Lt, r)
        } else if let Some(r) = text.strip_prefix('>') {
            (Comparator::Gt, r)
        } else {
            return Err(bad("must start with <, <=, > or >="));
        };
        let rest = rest.trim();
        let bound = match metric {
            MetricPath::Latency(..) => {
                if rest.parse::<f64>().is_ok() {
                    return Err(bad(
                        "a latency bound needs a unit, e.g. \"< 2s\" or \"< 150ms\"",
                    ));
                }
                Bound::Duration(parse_duration(rest).map_err(|e| bad(&e))?)
            }
            MetricPath::Scalar(m) => Bound::Number(parse_number(m, rest).map_err(bad)?),
        };
        Ok(Threshold {
            key: key.to_owned(),
            condition: condition.to_owned(),
            metric,
            comparator,
            bound,
        })
    }

    /// Checks this threshold against `metrics`; `Some` when it is broken.
    pub fn check(&self, metrics: &impl MetricSource) -> Option<Breach> {
        let (actual, bound) = match (self.metric, self.bound) {
            (MetricPath::Latency(m, s), Bound::Duration(b)) => {
                let a = metrics.latency(m, s).map(Observed::Duration);
                (a, b.as_secs_f64())
            }
            (MetricPath::Scalar(m), Bound::Number(b)) => {
                (metrics.scalar(m).map(Observed::Number), b)
            }
            // Parsing pairs latency metrics with durations and scalars with numbers.
            _ => (None, f64::NAN),
        };
        let holds = actual.is_some_and(|a| self.comparator.holds(a.as_f64(), bound));
        (!holds).then(|| Breach {
            key: self.key.clone(),
            condition: self.condition.clone(),
            actual,
        })
    }
}

fn parse_number(metric: ScalarMetric, text: &str) -> Result<f64, &'static str> {
    let rate = matches!(metric, ScalarMetric::ErrorRate | ScalarMetric::ThrottleRate);
    let (text, scale) = match text.strip_suffix('%') {
        Some(t) if rate => (t.trim(), 0.01),
        Some(_) => return Err("a percentage only applies to error_rate and throttle_rate"),
        None => (text, 1.0),
    };
    let text = match text.strip_prefix('$') {
        Some(t) if metric == ScalarMetric::CostPer1kRequests => t,
        Some(_) => return Err("a $ amount only applies to cost_per_1k_requests"),
        None => text,
    };
    let value: f64 = text.parse().map_err(|_| "the bound must be a number")?;
    if !value.is_finite() || value < 0.0 {
        return Err("the bound must be a finite number >= 0");
    }
    Ok(value * scale)
}

/// The run's measured values, as the report side computes them.
pub trait MetricSource {
    /// A latency statistic over the measured stages; `None` without data.
    fn latency(&self, metric: LatencyMetric, stat: LatencyStat) -> Option<Duration>;
    /// A scalar over the measured stages; `None` without data.
    fn scalar(&self, metric: ScalarMetric) -> Option<f64>;
}

/// A measured value, for breach messages.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Observed {
    /// A latency.
    Duration(Duration),
    /// A scalar.
    Number(f64),
}

impl Observed {
    fn as_f64(self) -> f64 {
        match self {
            Observed::Duration(d) => d.as_secs_f64(),
            Observed::Number(n) => n,
        }
    }
}

/// A threshold the run broke.
#[derive(Debug, Clone, PartialEq)]
pub struct Breach {
    /// The metric path (`ttft.p99`).
    pub key: String,
    /// The condition that failed (`< 2s`).
    pub condition: String,
    /// What was measured; `None` when the metric had no data.
    pub actual: Option<Observed>,
}

impl fmt::Display for Breach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: ", self.key, self.condition.trim())?;
        match self.actual {
            Some(Observed::Duration(d)) => write!(f, "got {d:?}"),
            Some(Observed::Number(n)) => write!(f, "got {n}"),
            None => f.write_str("no data"),
        }
    }
}

/// Every threshold of a spec.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Thresholds {
    /// In spec order.
    rules: Vec<Threshold>,
}

impl Thresholds {
    /// Wraps parsed thresholds.
    pub fn new(rules: Vec<Threshold>) -> Self {
        Thresholds { rules }
    }

    /// The thresholds, in spec order.
    pub fn rules(&self) -> &[Threshold] {
        &self.rules
    }

    /// True when the spec set none.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Every broken threshold; empty means the run passes.
    pub fn evaluate(&self, metrics: &impl MetricSource) -> Vec<Breach> {
        self.rules.iter().filter_map(|t| t.check(metrics)).collect()
    }
}

/// A threshold could not be parsed. Every variant names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThresholdError {
    /// Not a known metric.
    #[error(
        "unknown metric {key:?}: expected METRIC.STAT with METRIC one of ttft, ttft_from_schedule, e2e, e2e_from_schedule, itl, tpot, schedule_lag, or one of error_rate, throttle_rate, rps, output_tokens_per_s, cost_per_1k_requests"
    )]
    UnknownMetric {
        /// The key as written.
        key: String,
    },
    /// A latency metric without a statistic.
    #[error("{key:?} needs a statistic, e.g. \"{key}.p99\"")]
    MissingStat {
        /// The key as written.
        key: String,
    },
    /// Not a known statistic.
    #[error("unknown statistic in {key:?}: expected min, mean, p50, p90, p95, p99, p999 or max")]
    UnknownStat {
        /// The key as written.
        key: String,
    },
    /// The condition is malformed.
    #[error("bad condition {condition:?} for {key}: {reason}")]
    BadCondition {
        /// The key as written.
        key: String,
        /// The condition as written.
        condition: String,
        /// What is wrong.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;
    impl MetricSource for Fixed {
        fn latency(&self, metric: LatencyMetric, stat: LatencyStat) -> Option<Duration> {
            match (metric, stat) {
                (LatencyMetric::Ttft, LatencyStat::P99) => Some(Duration::from_millis(2300)),
                (LatencyMetric::Ttft, LatencyStat::P50) => Some(Duration::from_millis(400)),
                _ => None,
            }
        }
        fn scalar(&self, metric: ScalarMetric) -> Option<f64> {
            match metric {
                ScalarMetric::ErrorRate => Some(0.005),
                ScalarMetric::Rps => Some(10.0),
                _ => None,
            }
        }
    }

    fn t(key: &str, cond: &str) -> Threshold {
        Threshold::parse(key, cond).unwrap()
    }

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(
            t("ttft.p99", "< 2s").bound,
            Bound::Duration(Duration::from_secs(2))
        );
        assert_eq!(t("itl.p999", "<=150ms").comparator, Comparator::Le);
        assert_eq!(
            t("e2e.max", " > 1.5s ").bound,
            Bound::Duration(Duration::from_millis(1500))
        );
        assert_eq!(t("error_rate", "< 1%").bound, Bound::Number(0.01));
        assert_eq!(t("error_rate", "< 0.01").bound, Bound::Number(0.01));
        assert_eq!(
            t("cost_per_1k_requests", "< $2.5").bound,
            Bound::Number(2.5)
        );
        assert_eq!(
            t("schedule_lag.p99", "< 5ms").metric,
            MetricPath::Latency(LatencyMetric::ScheduleLag, LatencyStat::P99)
        );
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("ttft.p98", "< 2s", "unknown statistic in \"ttft.p98\""),
            ("latency.p99", "< 2s", "unknown metric \"latency.p99\""),
            ("ttft", "< 2s", "\"ttft\" needs a statistic"),
            ("ttft.p99", "2s", "for ttft.p99: must start with"),
            (
                "ttft.p99",
                "< 2",
                "for ttft.p99: a latency bound needs a unit",
            ),
            ("ttft.p99", "< 2 parsecs", "for ttft.p99"),
            ("rps", "< 5%", "for rps: a percentage only applies"),
            (
                "error_rate",
                "< lots",
                "for error_rate: the bound must be a number",
            ),
            (
                "rps",
                "> -1",
                "for rps: the bound must be a finite number >= 0",
            ),
        ];
        for (key, cond, want) in cases {
            let err = Threshold::parse(key, cond).unwrap_err().to_string();
            assert!(err.contains(want), "{key} = {cond:?}: {err}");
        }
    }

    #[test]
    fn evaluate_reports_breaches_and_missing_data() {
        let th = Thresholds::new(vec![
            t("ttft.p99", "< 2s"),
            t("ttft.p50", "< 2s"),
            t("error_rate", "< 1%"),
            t("rps", ">= 20"),
            t("tpot.p99", "< 50ms"),
        ]);
        let breaches = th.evaluate(&Fixed);
        let keys: Vec<_> = breaches.iter().map(|b| b.key.as_str()).collect();
        assert_eq!(keys, ["ttft.p99", "rps", "tpot.p99"]);
        assert_eq!(breaches[0].to_string(), "ttft.p99 < 2s: got 2.3s");
        assert_eq!(breaches[1].to_string(), "rps >= 20: got 10");
        assert_eq!(breaches[2].to_string(), "tpot.p99 < 50ms: no data");
    }

    #[test]
    fn boundaries_follow_the_comparator() {
        let at = |cond| t("rps", cond).check(&Fixed).is_none();
        assert!(at("<= 10") && at(">= 10") && !at("< 10") && !at("> 10"));
    }
}
