//! Statistics the tests of arrival processes share (this crate's and the
//! controller's split tests): a Kolmogorov–Smirnov goodness-of-fit check of
//! inter-arrival gaps against the exponential distribution a Poisson process
//! has. Only built for tests (`cfg(test)` here, the `testing` feature for
//! other crates' dev-dependencies).

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
pub fn ks_critical(n: usize, alpha: f64) -> f64 {
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
pub fn ks_statistic_exponential(mut samples: Vec<f64>, rate: f64) -> f64 {
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
