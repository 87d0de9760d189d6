//! Seeded open-loop arrival schedules: an iterator of absolute deadlines (ns
//! since the run's origin) following the stage plan's rate.
//!
//! Time-varying rates use time rescaling: with rate r(t) and its integral
//! Λ(t) = ∫₀ᵗ r, arrival k happens when Λ(t) reaches a target Λₖ. Poisson
//! targets are sums of Exp(1) draws (so at constant rate the gaps are
//! exponential with mean 1/λ, and during a ramp the process is an exact
//! inhomogeneous Poisson process); constant targets are `k + phase`. Each
//! stage's rate is linear in time, so Λ is quadratic within a stage and is
//! inverted in closed form — no thinning, no rejected draws, the same
//! sequence for the same seed on every machine. Several agents sharing a
//! constant rate λ each run λ/K with phases 0, 1/K, ... so their arrivals
//! interleave evenly.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::Exp1;

use crate::load::Arrival;
use crate::scheduler::{StagePlan, StageSpan};

/// One scheduled arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArrivalAt {
    /// The deadline, ns since the run's origin.
    pub at_ns: u64,
    /// Index of the stage it falls in.
    pub stage: usize,
}

/// The arrival deadlines of one open-loop run share, in order.
#[derive(Debug, Clone)]
pub struct ArrivalSchedule {
    spans: Vec<StageSpan>,
    kind: Arrival,
    rng: ChaCha8Rng,
    /// The Λ target of the next arrival.
    target: f64,
    /// The stage being walked, and Λ at its start.
    span: usize,
    mass_before_span: f64,
}

impl ArrivalSchedule {
    /// A schedule over `plan`'s rates. `seed` fixes the Poisson draws;
    /// `phase` in [0, 1) offsets constant arrivals by that fraction of a gap
    /// (and is ignored for Poisson).
    pub fn new(plan: &StagePlan, kind: Arrival, seed: u64, phase: f64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let target = match kind {
            Arrival::Constant => phase.clamp(0.0, 1.0 - f64::EPSILON),
            Arrival::Poisson => rng.sample(Exp1),
        };
        ArrivalSchedule {
            spans: plan.spans().to_vec(),
            kind,
            rng,
            target,
            span: 0,
            mass_before_span: 0.0,
        }
    }
}

/// ∫ of the span's rate from its start over `secs` seconds.
fn mass_within(span: &StageSpan, secs: f64) -> f64 {
    let len = span_secs(span);
    let slope = (span.to - span.from) / len;
    span.from * secs + 0.5 * slope * secs * secs
}

fn span_secs(span: &StageSpan) -> f64 {
    (span.end_ns - span.start_ns) as f64 / 1e9
}

/// The time into `span` (seconds) at which its integrated rate reaches
/// `mass`, which must not exceed the span's total.
fn invert_within(span: &StageSpan, mass: f64) -> f64 {
    let slope = (span.to - span.from) / span_secs(span);
    // Solve from·x + slope/2·x² = mass. The form 2m / (r0 + √(r0² + 2·k·m))
    // avoids cancellation when the slope is tiny and is exact when it is 0.
    let disc = (span.from * span.from + 2.0 * slope * mass).max(0.0);
    let denom = span.from + disc.sqrt();
    if denom > 0.0 { 2.0 * mass / denom } else { 0.0 }
}

impl Iterator for ArrivalSchedule {
    type Item = ArrivalAt;

    fn next(&mut self) -> Option<ArrivalAt> {
        while let Some(span) = self.spans.get(self.span) {
            let total = mass_within(span, span_secs(span));
            let wanted = self.target - self.mass_before_span;
            if wanted < total {
                let secs = invert_within(span, wanted.max(0.0));
                let into = ((secs * 1e9).round() as u64).min(span.end_ns - span.start_ns - 1);
                let at_ns = span.start_ns + into;
                let step = match self.kind {
                    Arrival::Constant => 1.0,
                    Arrival::Poisson => self.rng.sample::<f64, _>(Exp1),
                };
                self.target += step;
                return Some(ArrivalAt {
                    at_ns,
                    stage: self.span,
                });
            }
            self.mass_before_span += total;
            self.span += 1;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::load::{CatchUp, EndCondition, LoadModel, LoadProfile, Stage, StageKind};

    fn plan(rate: f64, stages: &[(StageKind, u64, Option<f64>)]) -> StagePlan {
        let model = LoadModel::open(rate, Arrival::Poisson, None, CatchUp::SendLate).unwrap();
        let stages = stages
            .iter()
            .enumerate()
            .map(|(i, (kind, secs, target))| Stage {
                name: format!("s{i}"),
                kind: *kind,
                duration: Duration::from_secs(*secs),
                target: *target,
            })
            .collect();
        LoadProfile::new(model, stages, EndCondition::AfterStages)
            .unwrap()
            .plan()
    }

    #[test]
    fn constant_rate_is_exactly_spaced_with_phase() {
        let p = plan(100.0, &[(StageKind::Hold, 1, None)]);
        let at: Vec<u64> = ArrivalSchedule::new(&p, Arrival::Constant, 0, 0.0)
            .map(|a| a.at_ns)
            .collect();
        assert_eq!(at.len(), 100);
        assert!(
            at.iter()
                .enumerate()
                .all(|(k, t)| *t == k as u64 * 10_000_000)
        );
        // Four agents at 25/s with phases k/4 interleave into one 100/s grid.
        let q = plan(25.0, &[(StageKind::Hold, 1, None)]);
        let mut merged: Vec<u64> = (0..4)
            .flat_map(|k| {
                ArrivalSchedule::new(&q, Arrival::Constant, 0, k as f64 / 4.0).map(|a| a.at_ns)
            })
            .collect();
        merged.sort_unstable();
        assert_eq!(merged, at);
    }

    #[test]
    fn ramp_follows_the_integrated_rate() {
        // 0 -> 100/s over 10 s: Λ(t) = 5 t², so 500 arrivals, half of them in
        // the last 2.93 s (Λ = 250 at t = √50).
        let p = plan(
            100.0,
            &[
                (StageKind::Ramp, 10, None),
                (StageKind::Hold, 1, Some(100.0)),
            ],
        );
        let arrivals: Vec<ArrivalAt> =
            ArrivalSchedule::new(&p, Arrival::Constant, 0, 0.0).collect();
        let ramp: Vec<_> = arrivals.iter().filter(|a| a.stage == 0).collect();
        assert_eq!(ramp.len(), 500);
        let t250 = ramp[250].at_ns as f64 / 1e9;
        assert!((t250 - 50f64.sqrt()).abs() < 1e-6, "{t250}");
        assert_eq!(arrivals.len() - ramp.len(), 100);
        assert!(arrivals.windows(2).all(|w| w[0].at_ns <= w[1].at_ns));
    }

    #[test]
    fn same_seed_same_schedule() {
        let p = plan(50.0, &[(StageKind::Hold, 10, None)]);
        let a: Vec<_> = ArrivalSchedule::new(&p, Arrival::Poisson, 7, 0.0).collect();
        let b: Vec<_> = ArrivalSchedule::new(&p, Arrival::Poisson, 7, 0.0).collect();
        let c: Vec<_> = ArrivalSchedule::new(&p, Arrival::Poisson, 8, 0.0).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    /// Kolmogorov distribution survival P(K > x) = 2 Σ (−1)^(k−1) e^(−2k²x²).
    fn kolmogorov_survival(x: f64) -> f64 {
        let sum: f64 = (1..=100)
            .map(|k| {
                let k = k as f64;
                let sign = if k as u64 % 2 == 1 { 1.0 } else { -1.0 };
                sign * (-2.0 * k * k * x * x).exp()
            })
            .sum();
        (2.0 * sum).clamp(0.0, 1.0)
    }

    /// The KS critical value for `n` samples at significance `alpha`: the
    /// Kolmogorov quantile found by bisection, with Stephens' finite-sample
    /// correction (√n + 0.12 + 0.11/√n).
    fn ks_critical(n: usize, alpha: f64) -> f64 {
        let (mut lo, mut hi) = (0.1, 5.0);
        for _ in 0..200 {
            let mid = 0.5 * (lo + hi);
            if kolmogorov_survival(mid) > alpha {
                lo = mid
            } else {
                hi = mid
            }
        }
        let sqrt_n = (n as f64).sqrt();
        0.5 * (lo + hi) / (sqrt_n + 0.12 + 0.11 / sqrt_n)
    }

    /// The KS statistic of `samples` against Exp(rate).
    fn ks_statistic_exponential(mut samples: Vec<f64>, rate: f64) -> f64 {
        samples.sort_by(f64::total_cmp);
        let n = samples.len() as f64;
        samples
            .iter()
            .enumerate()
            .map(|(i, x)| {
                let cdf = 1.0 - (-rate * x).exp();
                let (below, above) = (i as f64 / n, (i + 1) as f64 / n);
                (cdf - below).abs().max((above - cdf).abs())
            })
            .fold(0.0, f64::max)
    }

    fn gaps(kind: Arrival, seed: u64) -> Vec<f64> {
        let p = plan(500.0, &[(StageKind::Hold, 30, None)]);
        let at: Vec<u64> = ArrivalSchedule::new(&p, kind, seed, 0.0)
            .map(|a| a.at_ns)
            .collect();
        at.windows(2).map(|w| (w[1] - w[0]) as f64 / 1e9).collect()
    }

    #[test]
    fn kolmogorov_critical_value_matches_tables() {
        // Asymptotic tables: 1.358 at α = 0.05, 1.628 at α = 0.01.
        let sqrt_n = 1e8f64.sqrt();
        assert!((ks_critical(100_000_000, 0.05) * sqrt_n - 1.3581).abs() < 1e-3);
        assert!((ks_critical(100_000_000, 0.01) * sqrt_n - 1.6276).abs() < 1e-3);
    }

    #[test]
    fn poisson_gaps_pass_kolmogorov_smirnov_against_exp_lambda() {
        // 30 s at 500/s: ~15,000 gaps, comfortably over 10,000.
        let alpha = 0.01;
        for seed in [1, 2, 3] {
            let g = gaps(Arrival::Poisson, seed);
            assert!(g.len() >= 10_000, "{}", g.len());
            let d = ks_statistic_exponential(g.clone(), 500.0);
            let critical = ks_critical(g.len(), alpha);
            assert!(d < critical, "seed {seed}: D = {d} >= critical {critical}");
        }
    }

    #[test]
    fn constant_gaps_fail_the_same_test() {
        // The test can fail: evenly spaced arrivals are not exponential.
        let g = gaps(Arrival::Constant, 1);
        let d = ks_statistic_exponential(g.clone(), 500.0);
        assert!(d > ks_critical(g.len(), 0.01), "D = {d}");
    }

    #[test]
    fn poisson_count_is_near_the_rate() {
        // Seeded, so deterministic; 500/s for 20 s expects 10,000 ± 100 (1σ).
        let p = plan(500.0, &[(StageKind::Hold, 20, None)]);
        let n = ArrivalSchedule::new(&p, Arrival::Poisson, 42, 0.0).count() as f64;
        assert!((n / 10_000.0 - 1.0).abs() < 0.02, "{n}");
    }
}
