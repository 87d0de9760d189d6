//! Over-saturation of an open loop: the offered rate outruns what the
//! target serves, so requests queue — the number in flight and the time to
//! first token both climb for as long as the run lasts, and every figure
//! after that point describes the queue, not the service. GuideLLM's
//! over-saturation detector is the anchor.
//!
//! The rule: over the last [`OverloadPolicy::window`] intervals of the
//! measured stages, fit a least-squares line to the in-flight count and to
//! the interval's TTFT p50 against time (E2E p50 for intervals without
//! streaming requests: a non-streaming response's first token is all of it). The run is over-saturated when
//! both slopes are above zero at 99% one-sided confidence (Student's t with
//! n − 2 degrees of freedom) **and** each line rises by at least
//! [`OverloadPolicy::min_rise`] of its mean across the window: a rise too
//! small to matter is not a queue, however steady. A run found so is
//! stopped like a first Ctrl-C and ends `overloaded`, with the evidence.

use quarry_engine::{IntervalSnapshot, StageKind};
use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

use super::RunError;
use super::sinks::IntervalSink;
use crate::coordinator::Stopper;
use crate::results::{IntervalSummary, StageRecord};

/// When to call an open loop over-saturated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OverloadPolicy {
    /// Intervals the slopes are fitted over (the latest ones).
    pub window: usize,
    /// Least rise of each fitted line over the window, as a fraction of
    /// its mean.
    pub min_rise: f64,
}

impl Default for OverloadPolicy {
    /// Ten intervals; a 10% rise.
    fn default() -> Self {
        OverloadPolicy {
            window: 10,
            min_rise: 0.10,
        }
    }
}

/// The confidence of each slope's test.
const CONFIDENCE: f64 = 0.99;

/// Why a run was called over-saturated (kept in `results.json`'s `end`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OverloadEvidence {
    /// End of the interval that decided it, ns since the run's origin.
    pub at_ns: u64,
    /// Intervals fitted.
    pub intervals: usize,
    /// In-flight requests gained per second (fitted).
    pub in_flight_per_s: f64,
    /// TTFT p50 gained per second, ms per s (fitted).
    pub ttft_p50_ms_per_s: f64,
    /// Mean in-flight count over the window.
    pub in_flight_mean: f64,
    /// Mean TTFT p50 over the window, ms.
    pub ttft_p50_mean_ms: f64,
}

/// A least-squares line through points and whether it rises significantly.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Fit {
    slope: f64,
    mean: f64,
    /// The slope is above zero at [`CONFIDENCE`].
    significant: bool,
    /// Fitted rise across the x range.
    rise: f64,
}

fn fit(points: &[(f64, f64)]) -> Option<Fit> {
    let n = points.len();
    if n < 3 {
        return None;
    }
    let nf = n as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / nf;
    let my = points.iter().map(|p| p.1).sum::<f64>() / nf;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    let sse: f64 = points
        .iter()
        .map(|p| (p.1 - intercept - slope * p.0).powi(2))
        .sum();
    let se = (sse / (nf - 2.0) / sxx).sqrt();
    let significant = if slope <= 0.0 {
        false
    } else if se == 0.0 {
        true
    } else {
        match StudentsT::new(0.0, 1.0, nf - 2.0) {
            Ok(t) => slope / se > t.inverse_cdf(CONFIDENCE),
            Err(_) => false,
        }
    };
    let (lo, hi) = points.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| {
        (lo.min(p.0), hi.max(p.0))
    });
    Some(Fit {
        slope,
        mean: my,
        significant,
        rise: slope * (hi - lo),
    })
}

/// Watches merged intervals; stops the run when it is over-saturated.
pub(super) struct OverloadSink {
    policy: OverloadPolicy,
    /// Measured stages, ns since the origin.
    measured: Vec<(u64, u64)>,
    /// `(interval end s, in flight, TTFT p50 ms)` of measured intervals
    /// with a successful request.
    points: Vec<(f64, f64, f64)>,
    stopper: Stopper,
    /// Set once the run was called over-saturated.
    pub(super) found: Option<OverloadEvidence>,
}

impl OverloadSink {
    /// A detector over the measured stages of `stages`.
    pub(super) fn new(policy: OverloadPolicy, stages: &[StageRecord], stopper: Stopper) -> Self {
        OverloadSink {
            policy,
            measured: stages
                .iter()
                .filter(|s| matches!(s.kind, StageKind::Ramp | StageKind::Hold))
                .map(|s| (s.start_ns, s.end_ns))
                .collect(),
            points: Vec::new(),
            stopper,
            found: None,
        }
    }

    /// Adds one interval; the evidence when the window now shows a queue.
    fn observe(
        &mut self,
        end_ns: u64,
        in_flight: u64,
        summary: &IntervalSummary,
    ) -> Option<OverloadEvidence> {
        let measured = self
            .measured
            .iter()
            .any(|(from, to)| end_ns > *from && end_ns <= *to);
        if !measured || summary.ok == 0 {
            return None;
        }
        self.points.push((
            end_ns as f64 / 1e9,
            in_flight as f64,
            first_response_p50_ns(summary) as f64 / 1e6,
        ));
        let window = self.policy.window.max(3);
        if self.points.len() < window {
            return None;
        }
        let recent = &self.points[self.points.len() - window..];
        let flight: Vec<(f64, f64)> = recent.iter().map(|p| (p.0, p.1)).collect();
        let ttft: Vec<(f64, f64)> = recent.iter().map(|p| (p.0, p.2)).collect();
        let (f, t) = (fit(&flight)?, fit(&ttft)?);
        let rises = |fit: &Fit| fit.significant && fit.rise >= self.policy.min_rise * fit.mean;
        (rises(&f) && rises(&t)).then_some(OverloadEvidence {
            at_ns: end_ns,
            intervals: window,
            in_flight_per_s: f.slope,
            ttft_p50_ms_per_s: t.slope,
            in_flight_mean: f.mean,
            ttft_p50_mean_ms: t.mean,
        })
    }
}

impl IntervalSink for OverloadSink {
    fn interval(
        &mut self,
        snapshot: &IntervalSnapshot,
        summary: &IntervalSummary,
    ) -> Result<(), RunError> {
        if self.found.is_some() {
            return Ok(());
        }
        if let Some(evidence) = self.observe(snapshot.end, snapshot.health.in_flight, summary) {
            eprintln!(
                "\nquarry: over-saturated: in flight +{:.1}/s and TTFT p50 +{:.1} ms/s over the last {} intervals; stopping the level",
                evidence.in_flight_per_s, evidence.ttft_p50_ms_per_s, evidence.intervals
            );
            self.found = Some(evidence);
            let stopper = self.stopper.clone();
            tokio::spawn(async move { stopper.stop().await });
        }
        Ok(())
    }
}

/// The interval's time to first response: the TTFT p50 of its streaming
/// requests, or, in an interval without any (a run of non-streaming calls,
/// whose first token is their whole response), the E2E p50.
fn first_response_p50_ns(summary: &IntervalSummary) -> u64 {
    if summary.ttft_p50_ns > 0 {
        summary.ttft_p50_ns
    } else {
        summary.e2e_p50_ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(ttft_ms: f64) -> IntervalSummary {
        IntervalSummary {
            requests: 10,
            ok: 10,
            throttled: 0,
            output_tokens: 0,
            quota_settled: 0,
            ttft_p50_ns: (ttft_ms * 1e6) as u64,
            ttft_p99_ns: (ttft_ms * 1e6) as u64,
            e2e_p50_ns: (ttft_ms * 2e6) as u64,
        }
    }

    fn sink() -> OverloadSink {
        let stages = [StageRecord {
            name: "hold".to_owned(),
            kind: StageKind::Hold,
            start_ns: 0,
            end_ns: 100_000_000_000,
        }];
        OverloadSink::new(OverloadPolicy::default(), &stages, Stopper::new(Vec::new()))
    }

    /// A deterministic wobble, so fits have residuals.
    fn wobble(i: u64) -> f64 {
        [0.0, 1.5, -1.0, 0.5, -1.5, 1.0, -0.5][(i % 7) as usize]
    }

    #[test]
    fn a_queue_that_grows_is_found_once_the_window_is_full() {
        let mut s = sink();
        let mut found = None;
        for i in 1..=20u64 {
            let flight = (50 + 5 * i) as f64 + wobble(i);
            let ttft = 300.0 + 40.0 * i as f64 + 10.0 * wobble(i + 3);
            if let Some(e) = s.observe(i * 1_000_000_000, flight as u64, &summary(ttft)) {
                found = Some((i, e));
                break;
            }
        }
        let (i, e) = found.expect("a growing queue is found");
        assert_eq!(i, 10, "found as soon as ten intervals are in");
        assert!((e.in_flight_per_s - 5.0).abs() < 0.5, "{e:?}");
        assert!((e.ttft_p50_ms_per_s - 40.0).abs() < 4.0, "{e:?}");
    }

    /// Non-streaming calls have no TTFT (schema 3): their growing E2E is
    /// what shows the queue.
    #[test]
    fn a_queue_of_non_streaming_calls_is_found_from_e2e() {
        let mut s = sink();
        let mut found = None;
        for i in 1..=20u64 {
            let flight = (50 + 5 * i) as f64 + wobble(i);
            let e2e_ms = 300.0 + 40.0 * i as f64 + 10.0 * wobble(i + 3);
            let unary = IntervalSummary {
                ttft_p50_ns: 0,
                ttft_p99_ns: 0,
                e2e_p50_ns: (e2e_ms * 1e6) as u64,
                ..summary(0.0)
            };
            if let Some(e) = s.observe(i * 1_000_000_000, flight as u64, &unary) {
                found = Some((i, e));
                break;
            }
        }
        let (i, e) = found.expect("a growing queue of unary calls is found");
        assert_eq!(i, 10);
        assert!((e.ttft_p50_ms_per_s - 40.0).abs() < 4.0, "{e:?}");
    }

    #[test]
    fn a_steady_level_with_noise_is_not_called_saturated() {
        let mut s = sink();
        for i in 1..=60u64 {
            let flight = 80.0 + 3.0 * wobble(i);
            let ttft = 300.0 + 20.0 * wobble(i + 2);
            assert_eq!(
                s.observe(i * 1_000_000_000, flight as u64, &summary(ttft)),
                None
            );
        }
    }

    #[test]
    fn both_must_rise_and_by_enough() {
        // In flight rises, TTFT does not (throttled requests fail fast):
        // not a queue at the service.
        let mut s = sink();
        for i in 1..=30u64 {
            let r = s.observe(i * 1_000_000_000, 50 + 5 * i, &summary(300.0 + wobble(i)));
            assert_eq!(r, None);
        }
        // Both rise, significantly, but by 1% of their means: not material.
        let mut s = sink();
        for i in 1..=30u64 {
            let flight = 1000 + i;
            let ttft = 1000.0 + 0.1 * i as f64;
            assert_eq!(s.observe(i * 1_000_000_000, flight, &summary(ttft)), None);
        }
    }

    #[test]
    fn only_measured_intervals_count() {
        let stages = [
            StageRecord {
                name: "warmup".to_owned(),
                kind: StageKind::Warmup,
                start_ns: 0,
                end_ns: 20_000_000_000,
            },
            StageRecord {
                name: "hold".to_owned(),
                kind: StageKind::Hold,
                start_ns: 20_000_000_000,
                end_ns: 40_000_000_000,
            },
        ];
        let mut s = OverloadSink::new(OverloadPolicy::default(), &stages, Stopper::new(Vec::new()));
        for i in 1..=20u64 {
            let r = s.observe(i * 1_000_000_000, 10 * i, &summary(100.0 * i as f64));
            assert_eq!(r, None, "warmup interval {i}");
        }
        assert!(s.points.is_empty());
    }
}
