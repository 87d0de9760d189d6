//! Whether a percentile moved by more than run-to-run noise: a seeded
//! percentile bootstrap over two HDR histograms.
//!
//! Each run is taken as a sample of `n` values from its latency
//! distribution. One bootstrap replicate resamples `n` values with
//! replacement from each run's histogram and reads the percentile of each
//! resample; the difference of the two, over `replicates` replicates,
//! gives the interval. The resamples are never built: the `k`-th smallest
//! of `n` values drawn from a distribution `F` is `F⁻¹(U₍ₖ₎)`, where
//! `U₍ₖ₎ ~ Beta(k, n + 1 − k)` is the `k`-th smallest of `n` uniforms, so a
//! replicate's percentile is one Beta draw and one binary search over the
//! histogram's cumulative bucket counts: the same distribution as the
//! resample-and-sort bootstrap, at `O(log buckets)` a replicate whatever
//! `n` is.
//!
//! A difference is significant when the interval excludes 0 **and** the
//! difference is at least a floor relative to the baseline (default 10%):
//! the bootstrap sees the sampling noise within a run, not what differs
//! between two runs of one spec (the machine's load, the network), and a
//! tiny shift that resampling calls real is not one worth a reader's time.

use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Beta, Distribution};
use serde::{Deserialize, Serialize};

/// How percentiles are judged: stated in every comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Method {
    /// Always `percentile-bootstrap-hdr`.
    pub name: String,
    /// Bootstrap replicates per percentile.
    pub replicates: u32,
    /// Two-sided confidence of the interval (0.99: the 0.5th to 99.5th
    /// percentile of the replicated differences).
    pub confidence: f64,
    /// The smallest |difference| / baseline called significant, a fraction.
    pub min_relative_change: f64,
    /// A percentile `p` is judged only when each run has at least this
    /// many values above it (`n × (1 − p/100)`): a bootstrap of the
    /// extreme tail says nothing.
    pub min_tail_values: u64,
    /// The seed of the replicates (the same inputs give the same intervals).
    pub seed: u64,
    /// The method in a sentence, as printed.
    pub description: String,
}

/// Bootstrap replicates per percentile.
pub const REPLICATES: u32 = 1_000;
/// Two-sided confidence of the interval.
pub const CONFIDENCE: f64 = 0.99;
/// The default relative floor.
pub const MIN_RELATIVE_CHANGE: f64 = 0.10;
/// Values each run needs above a percentile for it to be judged.
pub const MIN_TAIL_VALUES: u64 = 5;
/// The default seed.
pub const SEED: u64 = 0x5155_4152_5259; // "QUARRY"

impl Method {
    /// The method with a relative floor (a fraction) and the defaults.
    pub fn new(min_relative_change: f64) -> Self {
        Method {
            name: "percentile-bootstrap-hdr".to_owned(),
            replicates: REPLICATES,
            confidence: CONFIDENCE,
            min_relative_change,
            min_tail_values: MIN_TAIL_VALUES,
            seed: SEED,
            description: format!(
                "percentile bootstrap over each run's merged HDR histogram: {REPLICATES} seeded \
                 replicates, each resampling every run's n values (drawn as the percentile's \
                 order statistic from the histogram's cumulative counts); significant when the \
                 {:.0}% interval of the difference excludes 0 and the difference is at least \
                 {:.0}% of the baseline; a percentile p is judged only with at least \
                 {MIN_TAIL_VALUES} values above it in each run (n × (1 − p) ≥ {MIN_TAIL_VALUES})",
                CONFIDENCE * 100.0,
                min_relative_change * 100.0
            ),
        }
    }
}

impl Default for Method {
    fn default() -> Self {
        Method::new(MIN_RELATIVE_CHANGE)
    }
}

/// What the bootstrap says about one percentile's difference.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Significance {
    /// The candidate's percentile is significantly higher (slower).
    Higher,
    /// The candidate's percentile is significantly lower (faster).
    Lower,
    /// Within noise, or under the relative floor.
    NoSignificantDifference,
    /// Not judged: a run has no values, or too few above the percentile.
    NotJudged,
}

impl Significance {
    /// As the text prints it for a latency.
    pub fn latency_text(self) -> &'static str {
        match self {
            Significance::Higher => "SLOWER",
            Significance::Lower => "FASTER",
            Significance::NoSignificantDifference => "no significant difference",
            Significance::NotJudged => "not judged",
        }
    }
}

/// One percentile of two histograms, judged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Judged {
    /// The baseline's percentile (`None`: no values).
    pub baseline: Option<u64>,
    /// The candidate's percentile.
    pub candidate: Option<u64>,
    /// The interval of candidate − baseline (`None`: not judged).
    pub interval: Option<(i64, i64)>,
    /// The verdict.
    pub significance: Significance,
    /// Why it was not judged.
    pub not_judged: Option<&'static str>,
}

/// A histogram's recorded buckets as (value, cumulative count): cheap to
/// search by rank.
#[derive(Debug, Clone)]
pub struct Cumulative {
    values: Vec<u64>,
    cumulative: Vec<u64>,
}

impl Cumulative {
    /// The recorded buckets of `h`, each at its highest equivalent value
    /// (what `value_at_quantile` reports).
    pub fn new(h: &Histogram<u64>) -> Self {
        let mut values = Vec::new();
        let mut cumulative = Vec::new();
        let mut total = 0u64;
        for v in h.iter_recorded() {
            total += v.count_at_value();
            values.push(h.highest_equivalent(v.value_iterated_to()));
            cumulative.push(total);
        }
        Cumulative { values, cumulative }
    }

    /// Values recorded.
    pub fn n(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(0)
    }

    /// The `rank`-th smallest value (1-based, clamped to `1..=n`).
    pub fn at_rank(&self, rank: u64) -> u64 {
        let rank = rank.clamp(1, self.n().max(1));
        let i = self.cumulative.partition_point(|c| *c < rank);
        self.values[i.min(self.values.len() - 1)]
    }

    /// The rank `value_at_quantile(q)` reads: `ceil(q × n)`, at least 1.
    pub fn rank_of(&self, quantile: f64) -> u64 {
        ((quantile * self.n() as f64).ceil() as u64).max(1)
    }

    /// The percentile `quantile` (0–1), as `Histogram::value_at_quantile`.
    pub fn quantile(&self, quantile: f64) -> Option<u64> {
        (self.n() > 0).then(|| self.at_rank(self.rank_of(quantile)))
    }

    /// One bootstrap replicate of the percentile: the `k`-th smallest of
    /// `n` values resampled, drawn as `F⁻¹(U)` with `U ~ Beta(k, n+1−k)`.
    fn replicate(&self, beta: &Beta<f64>, rng: &mut impl Rng) -> u64 {
        let u = beta.sample(rng);
        let rank = (u * self.n() as f64).ceil() as u64;
        self.at_rank(rank)
    }

    /// The Beta law of the `ceil(q n)`-th order statistic of `n` uniforms.
    fn order_law(&self, quantile: f64) -> Option<Beta<f64>> {
        let n = self.n();
        let k = self.rank_of(quantile).min(n);
        Beta::new(k as f64, (n + 1 - k) as f64).ok()
    }
}

/// Judges percentile `quantile` (0–1) of `candidate` against `baseline`.
/// `salt` separates the replicate streams of different figures (the same
/// figure of the same inputs always gets the same interval).
pub fn judge(
    method: &Method,
    baseline: &Cumulative,
    candidate: &Cumulative,
    quantile: f64,
    salt: u64,
) -> Judged {
    let a = baseline.quantile(quantile);
    let b = candidate.quantile(quantile);
    let not_judged = |why| Judged {
        baseline: a,
        candidate: b,
        interval: None,
        significance: Significance::NotJudged,
        not_judged: Some(why),
    };
    let (Some(av), Some(bv)) = (a, b) else {
        return not_judged("a run has no values");
    };
    let tail = |c: &Cumulative| c.n() as f64 * (1.0 - quantile);
    if tail(baseline).min(tail(candidate)) < method.min_tail_values as f64 {
        return not_judged("too few values above the percentile");
    }
    let (Some(law_a), Some(law_b)) = (baseline.order_law(quantile), candidate.order_law(quantile))
    else {
        return not_judged("no order-statistic law");
    };
    let mut rng = ChaCha8Rng::seed_from_u64(method.seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut diffs: Vec<i64> = (0..method.replicates)
        .map(|_| {
            let ra = baseline.replicate(&law_a, &mut rng) as i64;
            let rb = candidate.replicate(&law_b, &mut rng) as i64;
            rb - ra
        })
        .collect();
    diffs.sort_unstable();
    let tail_share = (1.0 - method.confidence) / 2.0;
    let pick = |p: f64| {
        let i = (p * (diffs.len() - 1) as f64).round() as usize;
        diffs[i.min(diffs.len() - 1)]
    };
    let interval = (pick(tail_share), pick(1.0 - tail_share));
    let diff = bv as f64 - av as f64;
    let big_enough = av > 0 && diff.abs() >= method.min_relative_change * av as f64;
    let significance = if interval.0 > 0 && big_enough && diff > 0.0 {
        Significance::Higher
    } else if interval.1 < 0 && big_enough && diff < 0.0 {
        Significance::Lower
    } else {
        Significance::NoSignificantDifference
    };
    Judged {
        baseline: a,
        candidate: b,
        interval: Some(interval),
        significance,
        not_judged: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quarry_engine::{HISTOGRAM_HIGHEST, HISTOGRAM_LOWEST, HISTOGRAM_SIGFIG};
    use rand_distr::LogNormal;

    fn histogram() -> Histogram<u64> {
        Histogram::new_with_bounds(HISTOGRAM_LOWEST, HISTOGRAM_HIGHEST, HISTOGRAM_SIGFIG).unwrap()
    }

    /// `n` latencies, lognormal around `median_ns`, scaled by `factor`.
    fn sample(n: usize, median_ns: f64, factor: f64, seed: u64) -> Histogram<u64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let law = LogNormal::new(median_ns.ln(), 0.4).unwrap();
        let mut h = histogram();
        for _ in 0..n {
            h.record((law.sample(&mut rng) * factor) as u64).unwrap();
        }
        h
    }

    const PERCENTILES: [f64; 4] = [0.50, 0.90, 0.95, 0.99];

    #[test]
    fn the_cumulative_percentile_is_the_histograms() {
        for seed in 0..20 {
            let h = sample(10 + 97 * seed as usize, 40e6, 1.0, seed);
            let c = Cumulative::new(&h);
            assert_eq!(c.n(), h.len());
            for q in [0.0001, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
                assert_eq!(c.quantile(q), Some(h.value_at_quantile(q)), "q {q}");
            }
        }
        assert_eq!(Cumulative::new(&histogram()).quantile(0.5), None);
    }

    /// The shortcut draws the same law as resampling and sorting: the
    /// replicated medians' spread matches a brute-force bootstrap's.
    #[test]
    fn a_replicate_has_the_law_of_a_resampled_percentile() {
        let h = sample(400, 40e6, 1.0, 7);
        let c = Cumulative::new(&h);
        let values: Vec<u64> = h
            .iter_recorded()
            .flat_map(|v| {
                std::iter::repeat_n(
                    h.highest_equivalent(v.value_iterated_to()),
                    v.count_at_value() as usize,
                )
            })
            .collect();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let law = c.order_law(0.9).unwrap();
        let k = c.rank_of(0.9) as usize;
        let (mut fast, mut slow) = (Vec::new(), Vec::new());
        for _ in 0..4000 {
            fast.push(c.replicate(&law, &mut rng) as f64);
            let mut resample: Vec<u64> = (0..values.len())
                .map(|_| values[rng.random_range(0..values.len())])
                .collect();
            resample.sort_unstable();
            slow.push(resample[k - 1] as f64);
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let sd = |v: &[f64]| {
            let m = mean(v);
            (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
        };
        let (mf, ms) = (mean(&fast), mean(&slow));
        assert!((mf - ms).abs() < 0.01 * ms, "means {mf} vs {ms}");
        let (sf, ss) = (sd(&fast), sd(&slow));
        assert!((sf / ss - 1.0).abs() < 0.1, "spreads {sf} vs {ss}");
    }

    /// Two samples of one distribution: across 200 seeds × 4 percentiles,
    /// at most the 99% interval's nominal 1% is called significant.
    #[test]
    fn the_same_distribution_is_not_significant_across_seeds() {
        let method = Method::default();
        let interval_only = Method::new(0.0);
        let (mut flagged, mut flagged_without_floor, mut judged) = (0, 0, 0);
        for seed in 0..200u64 {
            let a = Cumulative::new(&sample(1_000, 40e6, 1.0, 2 * seed));
            let b = Cumulative::new(&sample(1_000, 40e6, 1.0, 2 * seed + 1));
            for (i, q) in PERCENTILES.into_iter().enumerate() {
                let j = judge(&method, &a, &b, q, i as u64);
                judged += usize::from(j.significance != Significance::NotJudged);
                flagged += usize::from(matches!(
                    j.significance,
                    Significance::Higher | Significance::Lower
                ));
                let k = judge(&interval_only, &a, &b, q, i as u64);
                flagged_without_floor += usize::from(matches!(
                    k.significance,
                    Significance::Higher | Significance::Lower
                ));
            }
        }
        assert_eq!(judged, 800);
        // Measured once: 4 of 800. The bound is the interval's nominal 1%.
        assert!(flagged <= 8, "{flagged} of 800 called significant");
        // The interval is a 99% one: about 8 of 800 by chance; far more
        // would mean the interval is too narrow.
        assert!(
            flagged_without_floor <= 24,
            "{flagged_without_floor} of 800 flagged by the interval alone"
        );
    }

    #[test]
    fn a_doubled_latency_is_significant_at_every_percentile() {
        let method = Method::default();
        for seed in 0..50u64 {
            let a = Cumulative::new(&sample(500, 40e6, 1.0, 2 * seed));
            let b = Cumulative::new(&sample(500, 40e6, 2.0, 2 * seed + 1));
            for (i, q) in PERCENTILES.into_iter().enumerate() {
                let j = judge(&method, &a, &b, q, i as u64);
                assert_eq!(
                    j.significance,
                    Significance::Higher,
                    "seed {seed} q {q}: {j:?}"
                );
                let (lo, hi) = j.interval.unwrap();
                let diff = j.candidate.unwrap() as i64 - j.baseline.unwrap() as i64;
                assert!(lo > 0 && lo <= diff && diff <= hi, "{j:?}");
                let back = judge(&method, &b, &a, q, i as u64);
                assert_eq!(back.significance, Significance::Lower, "{back:?}");
            }
        }
    }

    #[test]
    fn a_shift_under_the_floor_is_not_significant_though_outside_the_noise() {
        // 100,000 values each: the median's interval is well under 5%.
        let a = Cumulative::new(&sample(100_000, 40e6, 1.0, 1));
        let b = Cumulative::new(&sample(100_000, 40e6, 1.05, 2));
        let j = judge(&Method::default(), &a, &b, 0.5, 0);
        assert!(j.interval.unwrap().0 > 0, "{j:?}");
        assert_eq!(j.significance, Significance::NoSignificantDifference);
        let strict = judge(&Method::new(0.02), &a, &b, 0.5, 0);
        assert_eq!(strict.significance, Significance::Higher);
    }

    #[test]
    fn too_few_values_in_the_tail_or_none_are_not_judged() {
        let a = Cumulative::new(&sample(300, 40e6, 1.0, 1));
        let b = Cumulative::new(&sample(300, 40e6, 2.0, 2));
        // 300 × 1% = 3 values above p99: fewer than 5.
        let j = judge(&Method::default(), &a, &b, 0.99, 0);
        assert_eq!(j.significance, Significance::NotJudged);
        assert!(j.baseline.is_some() && j.interval.is_none());
        let empty = Cumulative::new(&histogram());
        let j = judge(&Method::default(), &a, &empty, 0.5, 0);
        assert_eq!(j.significance, Significance::NotJudged);
        assert_eq!(j.not_judged, Some("a run has no values"));
    }

    #[test]
    fn the_same_inputs_give_the_same_interval() {
        let a = Cumulative::new(&sample(1_000, 40e6, 1.0, 1));
        let b = Cumulative::new(&sample(1_000, 40e6, 1.1, 2));
        let m = Method::default();
        assert_eq!(judge(&m, &a, &b, 0.9, 3), judge(&m, &a, &b, 0.9, 3));
        assert_ne!(
            judge(&m, &a, &b, 0.9, 3).interval,
            judge(&m, &a, &b, 0.9, 4).interval
        );
    }
}
