//! The AWS SDK "standard" retry policy (PROTOCOL.md §4.2, §8): which failures
//! are retried and how long to back off. Mid-stream failures are never
//! retried: the response has already started, as the SDKs also do.

use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The SDK's retry-after header: milliseconds to wait before retrying.
pub(crate) const RETRY_AFTER_HEADER: &str = "x-amz-retry-after";

/// The back-off before retry number `retry` (1 for the first retry), as
/// aws-sdk-rust's `RetryConfig::standard()` computes it for throttling and
/// transient errors alike: full jitter, `rand(0,1) × min(initial ×
/// 2^(retry-1), max)`, seeded from the request so a run is reproducible. A
/// server's `x-amz-retry-after` wins, capped as the SDKs cap it (at the
/// computed back-off plus 5 s).
pub(crate) fn backoff(
    retry: u32,
    initial: Duration,
    max: Duration,
    retry_after_ms: Option<u64>,
    seed: u64,
) -> Duration {
    let exponent = retry.saturating_sub(1).min(30);
    let ceiling = initial.saturating_mul(1u32 << exponent).min(max);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ u64::from(retry).rotate_left(32));
    let jittered = ceiling.mul_f64(rng.random::<f64>());
    match retry_after_ms {
        Some(ms) => Duration::from_millis(ms).min(jittered + Duration::from_secs(5)),
        None => jittered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn throttle_backoff_is_full_jitter_under_the_exponential_ceiling() {
        for retry in 1..=6 {
            let ceiling = S.saturating_mul(1 << (retry - 1)).min(20 * S);
            for seed in 0..50 {
                let wait = backoff(retry, S, 20 * S, None, seed);
                assert!(wait <= ceiling, "retry {retry}: {wait:?} > {ceiling:?}");
            }
        }
    }

    #[test]
    fn jitter_is_seeded() {
        let a = backoff(2, S, 20 * S, None, 7);
        assert_eq!(a, backoff(2, S, 20 * S, None, 7));
        let spread: std::collections::BTreeSet<_> = (0..20)
            .map(|seed| backoff(2, S, 20 * S, None, seed))
            .collect();
        assert!(spread.len() > 10, "jitter must vary with the seed");
    }

    #[test]
    fn retry_after_header_wins_within_its_cap() {
        let wait = backoff(1, S, 20 * S, Some(1500), 3);
        assert_eq!(wait, Duration::from_millis(1500));
        let capped = backoff(1, S, 20 * S, Some(60_000), 3);
        assert!(capped <= Duration::from_secs(6), "{capped:?}");
    }
}
