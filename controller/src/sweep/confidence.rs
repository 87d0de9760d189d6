//! The confidence rule behind every percentile and attainment verdict:
//! a level passes a claim such as `ttft.p99 <= 2s` only when the requests
//! measured show it at 99% confidence, fails only when they refute it at
//! 99% confidence, and is inconclusive in between — never passed on luck.
//!
//! The rule is MLPerf Inference's early-stopping criterion for percentile
//! claims. A claim "the p-th percentile is within the bound" says that at
//! most a fraction `allowed = 1 − p/100` of requests is over the bound.
//! With `over` requests over the bound out of `n`:
//!
//! * **holds** when, were the true fraction exactly `allowed`, seeing
//!   `over` or fewer would have a probability of at most 1%:
//!   `P(X ≤ over) ≤ 0.01` for `X ~ Binomial(n, allowed)`;
//! * **fails** when seeing `over` or more would have a probability of at
//!   most 1%: `P(X ≥ over) ≤ 0.01`;
//! * is **inconclusive** otherwise (too few requests to tell).
//!
//! An attainment target ("≥ 99% of requests meet `[slo.request]`") is the
//! same claim with `over` = measured requests that did not meet the bounds.
//! With no request over the bound a p99 claim needs 459 requests to hold
//! ([`min_requests`]); a p50 claim needs 7.

use statrs::distribution::{Binomial, DiscreteCDF};

/// The confidence of every verdict.
pub const CONFIDENCE: f64 = 0.99;

/// What the requests show about a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Shown at [`CONFIDENCE`].
    Holds,
    /// Refuted at [`CONFIDENCE`].
    Fails,
    /// Neither: too few requests, or too close to the bound.
    Inconclusive,
}

/// The claim "at most a fraction `allowed` of the `n` requests' population
/// is over the bound", judged from `over` of `n` being over it.
///
/// `allowed = 0` (a `max` claim) is a claim about the requests measured,
/// not a population: it holds when none is over. `allowed ≥ 1` always
/// holds.
pub fn judge(over: u64, n: u64, allowed: f64) -> Claim {
    let over = over.min(n);
    if allowed >= 1.0 {
        return Claim::Holds;
    }
    if allowed <= 0.0 {
        return if over == 0 {
            Claim::Holds
        } else {
            Claim::Fails
        };
    }
    if n == 0 {
        return Claim::Inconclusive;
    }
    let Ok(b) = Binomial::new(allowed, n) else {
        return Claim::Inconclusive;
    };
    let risk = 1.0 - CONFIDENCE;
    if b.cdf(over) <= risk {
        Claim::Holds
    } else if over > 0 && b.sf(over - 1) <= risk {
        Claim::Fails
    } else {
        Claim::Inconclusive
    }
}

/// The fewest requests that can show the claim when none is over the
/// bound: the smallest `n` with `(1 − allowed)^n ≤ 1 − CONFIDENCE`.
pub fn min_requests(allowed: f64) -> u64 {
    if allowed <= 0.0 || allowed >= 1.0 {
        return 1;
    }
    let n = ((1.0 - CONFIDENCE).ln() / (1.0 - allowed).ln()).ceil();
    // The quotient is a float: step past any rounding on either side.
    let mut n = n.max(1.0) as u64;
    while n > 1 && (1.0 - allowed).powf((n - 1) as f64) <= 1.0 - CONFIDENCE {
        n -= 1;
    }
    while (1.0 - allowed).powf(n as f64) > 1.0 - CONFIDENCE {
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_p99_claim_needs_459_clean_requests() {
        assert_eq!(min_requests(0.01), 459);
        assert_eq!(judge(0, 458, 0.01), Claim::Inconclusive);
        assert_eq!(judge(0, 459, 0.01), Claim::Holds);
        assert_eq!(min_requests(0.05), 90);
        assert_eq!(min_requests(0.5), 7);
        assert_eq!(judge(0, 7, 0.5), Claim::Holds);
        assert_eq!(judge(0, 6, 0.5), Claim::Inconclusive);
    }

    #[test]
    fn the_rule_matches_the_binomial_tails_computed_by_hand() {
        // n = 1000, allowed 1%: mean 10. P(X <= 3) = 0.0101 (just over 1%),
        // P(X <= 2) = 0.0027: two over holds, three is inconclusive.
        assert_eq!(judge(2, 1000, 0.01), Claim::Holds);
        assert_eq!(judge(3, 1000, 0.01), Claim::Inconclusive);
        // P(X >= 19) = 0.0069, P(X >= 18) = 0.0138.
        assert_eq!(judge(19, 1000, 0.01), Claim::Fails);
        assert_eq!(judge(18, 1000, 0.01), Claim::Inconclusive);
        // At the bound exactly: never decided either way.
        assert_eq!(judge(10, 1000, 0.01), Claim::Inconclusive);
    }

    #[test]
    fn a_lucky_small_sample_is_never_passed() {
        // 100 requests, none over: the point estimate says p99 holds, the
        // rule does not (0.99^100 = 0.366).
        assert_eq!(judge(0, 100, 0.01), Claim::Inconclusive);
        // One over out of 10 refutes nothing at 99% either.
        assert_eq!(judge(1, 10, 0.01), Claim::Inconclusive);
        // Five over out of 10 does.
        assert_eq!(judge(5, 10, 0.01), Claim::Fails);
    }

    #[test]
    fn max_claims_are_about_the_sample_and_edges_are_defined() {
        assert_eq!(judge(0, 3, 0.0), Claim::Holds);
        assert_eq!(judge(1, 3, 0.0), Claim::Fails);
        assert_eq!(judge(3, 3, 1.0), Claim::Holds);
        assert_eq!(judge(0, 0, 0.01), Claim::Inconclusive);
        assert_eq!(judge(5, 3, 0.01), Claim::Fails);
    }
}
