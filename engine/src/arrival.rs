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
//! constant rate λ equally each run λ/K with phases 0, 1/K, ... so their
//! arrivals interleave evenly. Agents with unequal shares cannot do that
//! with phases (a 2:1 split would need share A at grid points 0, 1, 3, 4,
//! ...), so each walks the whole run's grid and fires only its own slots
//! ([`Interleave`]): the merged arrivals are exactly the one-generator grid.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::Exp1;

use crate::load::{Arrival, LoadProfile};
use crate::stages::{StagePlan, StageSpan};

/// 2⁶⁴ divided by the golden ratio, odd: the step of the Weyl sequence that
/// deals the run's constant-rate grid out to weighted shares.
const GOLDEN_STEP: u64 = 0x9E37_79B9_7F4A_7C15;

/// One share's slots on the whole run's constant-arrival grid, for shares of
/// unequal weight.
///
/// Arrival `n` of the run's grid (the single-generator schedule) belongs to
/// the share whose range `[start, start + width)` holds `n · GOLDEN_STEP mod
/// 2⁶⁴`. The shares' ranges tile the 2⁶⁴ circle, so every arrival is fired by
/// exactly one share and the merged arrivals are the one-generator grid to
/// the nanosecond. A share's long-run part is `width / 2⁶⁴` (its weight
/// fraction); the golden-ratio Weyl sequence has the lowest discrepancy of
/// any rotation, so a share's count stays within O(log n) of its part, and
/// the gaps between its own grid slots take at most three values (Slater's
/// gap theorem): no share fires in bursts.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Interleave {
    /// Start of this share's range on the 2⁶⁴ circle.
    pub start: u64,
    /// Width of the range (≈ the share's fraction × 2⁶⁴).
    pub width: u64,
    /// The whole run's load, whose grid the shares deal out (every share
    /// gets the same, so every share computes the same grid).
    pub run_load: LoadProfile,
}

impl Interleave {
    /// Ranges for shares of `fractions` (each > 0; normalised here), in
    /// order, tiling the circle exactly.
    pub fn tile(fractions: &[f64], run_load: &LoadProfile) -> Vec<Interleave> {
        let total: f64 = fractions.iter().sum();
        let circle = 1u128 << 64;
        let mut bounds = Vec::with_capacity(fractions.len() + 1);
        let mut cumulative = 0.0;
        bounds.push(0u128);
        for f in &fractions[..fractions.len().saturating_sub(1)] {
            cumulative += f / total;
            let b = ((cumulative * circle as f64) as u128).min(circle);
            bounds.push(b.max(*bounds.last().unwrap_or(&0)));
        }
        bounds.push(circle);
        bounds
            .windows(2)
            .map(|w| Interleave {
                start: w[0] as u64,
                // A range of the whole circle (one share) cannot be written
                // in u64; it loses one point in 2⁶⁴.
                width: u64::try_from(w[1] - w[0]).unwrap_or(u64::MAX),
                run_load: run_load.clone(),
            })
            .collect()
    }

    /// Whether arrival `n` of the run's grid is this share's.
    pub fn owns(&self, n: u64) -> bool {
        in_range(n, self.start, self.width)
    }
}

/// Whether grid arrival `n` falls in the range `[start, start + width)` of
/// the 2⁶⁴ circle.
fn in_range(n: u64, start: u64, width: u64) -> bool {
    n.wrapping_mul(GOLDEN_STEP).wrapping_sub(start) < width
}

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
    /// With unequal weights: this share's slots, and the index of the next
    /// arrival of the run's grid.
    slots: Option<(u64, u64)>,
    grid_index: u64,
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
            slots: None,
            grid_index: 0,
        }
    }

    /// A constant-arrival share of unequal weight: the run's own grid
    /// (`interleave.run_load`, phase 0), of which only this share's slots
    /// are kept.
    pub fn interleaved(interleave: &Interleave) -> Self {
        let mut schedule =
            ArrivalSchedule::new(&interleave.run_load.plan(), Arrival::Constant, 0, 0.0);
        schedule.slots = Some((interleave.start, interleave.width));
        schedule
    }

    /// The next arrival of the grid, whosever it is.
    fn next_on_grid(&mut self) -> Option<ArrivalAt> {
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
        let Some((start, width)) = self.slots else {
            return self.next_on_grid();
        };
        loop {
            let arrival = self.next_on_grid()?;
            let n = self.grid_index;
            self.grid_index += 1;
            if in_range(n, start, width) {
                return Some(arrival);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use super::*;
    use crate::load::{CatchUp, EndCondition, LoadModel, LoadProfile, Stage, StageKind};
    use crate::testing::{ks_critical, ks_statistic_exponential};

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

    fn profile(rate: f64, stages: &[(StageKind, u64, Option<f64>)]) -> LoadProfile {
        let model = LoadModel::open(rate, Arrival::Constant, None, CatchUp::SendLate).unwrap();
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
        LoadProfile::new(model, stages, EndCondition::AfterStages).unwrap()
    }

    #[test]
    fn unequal_shares_deal_out_the_one_generator_grid() {
        // 2:1 at 90/s over a ramp and a hold: no phase can merge a 60/s and
        // a 30/s grid evenly, interleaved slots do, to the nanosecond.
        let load = profile(
            90.0,
            &[(StageKind::Ramp, 4, Some(90.0)), (StageKind::Hold, 6, None)],
        );
        let whole: Vec<ArrivalAt> =
            ArrivalSchedule::new(&load.plan(), Arrival::Constant, 0, 0.0).collect();
        let tiles = Interleave::tile(&[2.0, 1.0], &load);
        let shares: Vec<Vec<ArrivalAt>> = tiles
            .iter()
            .map(|t| ArrivalSchedule::interleaved(t).collect())
            .collect();
        let mut merged: Vec<ArrivalAt> = shares.iter().flatten().copied().collect();
        merged.sort_by_key(|a| a.at_ns);
        assert_eq!(merged, whole);
        // Each share holds its weight's part, within a couple of arrivals.
        let n = whole.len() as f64;
        assert!(
            (shares[0].len() as f64 - n * 2.0 / 3.0).abs() <= 2.0,
            "{}",
            shares[0].len()
        );
        assert!(
            (shares[1].len() as f64 - n / 3.0).abs() <= 2.0,
            "{}",
            shares[1].len()
        );
        // In the hold (90/s, gaps of 11.1 ms on the whole grid) a share's own
        // gaps take at most three values (the three-gap theorem): no bursts.
        let grid_gap = 1e9 / 90.0;
        for share in &shares {
            let mut sizes: Vec<u64> = share
                .windows(2)
                .filter(|w| w[0].stage == 1)
                .map(|w| ((w[1].at_ns - w[0].at_ns) as f64 / grid_gap).round() as u64)
                .collect();
            sizes.sort_unstable();
            sizes.dedup();
            assert!(sizes.len() <= 3, "{sizes:?}");
        }
    }

    #[test]
    fn tiles_cover_the_circle_exactly() {
        let load = profile(10.0, &[(StageKind::Hold, 1, None)]);
        let tiles = Interleave::tile(&[0.5, 3.0, 1.5, 5.0], &load);
        let mut at = 0u128;
        for t in &tiles {
            assert_eq!(u128::from(t.start), at);
            at += u128::from(t.width);
        }
        assert_eq!(at, 1 << 64);
        // Every grid index belongs to exactly one share.
        for n in 0..10_000u64 {
            assert_eq!(tiles.iter().filter(|t| t.owns(n)).count(), 1, "{n}");
        }
        let json = serde_json::to_string(&tiles[1]).unwrap();
        assert_eq!(serde_json::from_str::<Interleave>(&json).unwrap(), tiles[1]);
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
