//! The latency model of a model profile: time to first token, the gap between
//! output tokens as contention changes, and the decode capacity past which
//! requests queue. Pure functions of the lane's state; the runtime owns the
//! clock and the state.
//!
//! # The contended model
//!
//! * TTFT = `base_ttft` + queueing (waiting for a decode slot, done by the
//!   runtime) + `uncached input tokens / prefill_tokens_per_s`.
//! * The gap before each output token is
//!   `g = g0 + k_s·(active − 1) + k_c·C`, where `active` is the number of
//!   streams holding a decode slot and `C` the sum of their prompt (context)
//!   tokens. Output tokens are left out of `C`: they are a small share at the
//!   field's prompt sizes, and counting them would make a stream slow down as
//!   it runs, which the field figures do not show.
//! * `capacity` streams decode at once; later ones wait (FIFO) for a slot, so
//!   TTFT is flat below the knee and climbs by whole request durations past it.
//!
//! # Calibration of `meta.llama3-3-70b-instruct-v1:0`
//!
//! Field figures (Bedrock, output tokens/s per stream): 135 at concurrency 1
//! and 119 at concurrency 50 with ~500-token prompts; half the latter (59.5)
//! at concurrency 50 with ~8,000-token prompts. With `g = 1/rate`:
//!
//! ```text
//! (1) g0             + k_c·500     = 1/135  = 7.4074 ms
//! (2) g0 + 49·k_s    + k_c·25,000  = 1/119  = 8.4034 ms
//! (3) g0 + 49·k_s    + k_c·400,000 = 1/59.5 = 16.8067 ms
//! (3)−(2): k_c = 8.4034 ms / 375,000           = 22.41 ns per context token
//! (1):     g0  = 7.4074 − 0.0112               = 7.3962 ms
//! (2):     k_s = (8.4034 − 7.3962 − 0.5602)/49 = 9.12 µs per extra stream
//! ```
//!
//! [`ContendedLatency::llama3_3_70b`] solves these equations in code, so the
//! constants cannot drift from the figures, and the tests check the figures
//! back to within 5%.

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// How a model profile spends time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LatencyModel {
    /// Contention-dependent latency calibrated to a real service.
    Contended(ContendedLatency),
    /// Exact TTFT and inter-token gap: no jitter, no contention, no queueing.
    /// For tests that check a client's timing against the truth.
    Fixed {
        /// Time to first token, in milliseconds.
        ttft_ms: f64,
        /// Gap between consecutive output tokens, in milliseconds.
        gap_ms: f64,
        /// Streams that may decode at once (later ones queue for a slot,
        /// by service tier); absent: unbounded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        capacity: Option<u32>,
    },
    /// No waiting at all, not even a timer: for load-generator benchmarks.
    Zero,
}

/// The parameters of the contended model (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContendedLatency {
    /// Fixed part of TTFT (network, routing, scheduling), ms.
    pub base_ttft_ms: f64,
    /// Prompt tokens processed per second before the first output token.
    pub prefill_tokens_per_s: f64,
    /// Per-token gap of a lone stream with an empty prompt, ms (`g0`).
    pub gap_ms: f64,
    /// Extra gap per additional active stream, ms (`k_s`).
    pub gap_per_stream_ms: f64,
    /// Extra gap per context token held by active streams, ms (`k_c`).
    pub gap_per_context_token_ms: f64,
    /// Streams that decode at once; later requests queue for a slot.
    pub capacity: u32,
    /// Relative jitter: each TTFT and gap is scaled by a seeded factor
    /// uniform in `[1 − jitter, 1 + jitter]` (mean preserved). 0 disables it.
    #[serde(default)]
    pub jitter: f64,
}

/// Output tokens/s per stream in the Llama 3.3 70B field figures.
const LLAMA_70B_FIELD: [(u32, u64, f64); 3] =
    [(1, 500, 135.0), (50, 500, 119.0), (50, 8_000, 59.5)];

impl ContendedLatency {
    /// The `meta.llama3-3-70b-instruct-v1:0` profile, solved from the field
    /// figures as the module docs derive.
    pub fn llama3_3_70b() -> Self {
        let gap = |(_, _, rate): (u32, u64, f64)| 1000.0 / rate;
        let [one, small, large] = LLAMA_70B_FIELD;
        let ctx = |(active, prompt, _): (u32, u64, f64)| f64::from(active) * prompt as f64;
        let k_c = (gap(large) - gap(small)) / (ctx(large) - ctx(small));
        let g0 = gap(one) - k_c * ctx(one);
        let k_s = (gap(small) - g0 - k_c * ctx(small)) / f64::from(small.0 - 1);
        ContendedLatency {
            base_ttft_ms: 280.0,
            prefill_tokens_per_s: 16_000.0,
            gap_ms: g0,
            gap_per_stream_ms: k_s,
            gap_per_context_token_ms: k_c,
            capacity: 64,
            jitter: 0.05,
        }
    }

    /// Scales the decode speed by `speed` (2.0 = twice the tokens/s), keeping
    /// the contention shape: how the other catalog profiles are derived.
    pub fn scaled(
        self,
        speed: f64,
        base_ttft_ms: f64,
        prefill_tokens_per_s: f64,
        capacity: u32,
    ) -> Self {
        ContendedLatency {
            base_ttft_ms,
            prefill_tokens_per_s,
            gap_ms: self.gap_ms / speed,
            gap_per_stream_ms: self.gap_per_stream_ms / speed,
            gap_per_context_token_ms: self.gap_per_context_token_ms / speed,
            capacity,
            jitter: self.jitter,
        }
    }

    /// The mean gap before the next token, in ms, with `active` streams
    /// decoding (this one included) holding `context_tokens` prompt tokens.
    pub fn gap_ms_at(&self, active: u32, context_tokens: u64) -> f64 {
        self.gap_ms
            + self.gap_per_stream_ms * f64::from(active.saturating_sub(1))
            + self.gap_per_context_token_ms * context_tokens as f64
    }

    /// Output tokens/s of one stream at steady state: `active` streams each
    /// holding `prompt_tokens`.
    pub fn tokens_per_s(&self, active: u32, prompt_tokens: u64) -> f64 {
        1000.0 / self.gap_ms_at(active, u64::from(active) * prompt_tokens)
    }

    /// Mean TTFT once a slot is held, in ms.
    pub fn ttft_ms(&self, uncached_input_tokens: u64) -> f64 {
        self.base_ttft_ms + 1000.0 * uncached_input_tokens as f64 / self.prefill_tokens_per_s
    }
}

impl LatencyModel {
    /// Streams that may decode at once; `None` means unbounded (no queue).
    pub fn capacity(&self) -> Option<u32> {
        match self {
            LatencyModel::Contended(c) => Some(c.capacity),
            LatencyModel::Fixed { capacity, .. } => *capacity,
            LatencyModel::Zero => None,
        }
    }

    /// True for the zero-latency profile, where the runtime skips timers.
    pub fn is_zero(&self) -> bool {
        matches!(self, LatencyModel::Zero)
    }

    /// TTFT after a slot is held, drawing jitter from `rng`.
    pub fn ttft(&self, uncached_input_tokens: u64, rng: &mut impl Rng) -> Duration {
        match self {
            LatencyModel::Contended(c) => {
                ms(c.ttft_ms(uncached_input_tokens) * jitter(c.jitter, rng))
            }
            LatencyModel::Fixed { ttft_ms, .. } => ms(*ttft_ms),
            LatencyModel::Zero => Duration::ZERO,
        }
    }

    /// The gap before the next output token given the lane's current state.
    pub fn gap(&self, active: u32, context_tokens: u64, rng: &mut impl Rng) -> Duration {
        match self {
            LatencyModel::Contended(c) => {
                ms(c.gap_ms_at(active, context_tokens) * jitter(c.jitter, rng))
            }
            LatencyModel::Fixed { gap_ms, .. } => ms(*gap_ms),
            LatencyModel::Zero => Duration::ZERO,
        }
    }

    /// Checks the parameters, naming the first bad one.
    pub fn validate(&self) -> Result<(), String> {
        let positive = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(format!("{name} must be > 0, got {v}"))
            }
        };
        let non_negative = |name: &str, v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(format!("{name} must be >= 0, got {v}"))
            }
        };
        match self {
            LatencyModel::Contended(c) => {
                non_negative("base_ttft_ms", c.base_ttft_ms)?;
                positive("prefill_tokens_per_s", c.prefill_tokens_per_s)?;
                positive("gap_ms", c.gap_ms)?;
                non_negative("gap_per_stream_ms", c.gap_per_stream_ms)?;
                non_negative("gap_per_context_token_ms", c.gap_per_context_token_ms)?;
                if c.capacity == 0 {
                    return Err("capacity must be >= 1, got 0".to_owned());
                }
                if !(0.0..1.0).contains(&c.jitter) {
                    return Err(format!("jitter must be in [0, 1), got {}", c.jitter));
                }
                Ok(())
            }
            LatencyModel::Fixed {
                ttft_ms,
                gap_ms,
                capacity,
            } => {
                non_negative("ttft_ms", *ttft_ms)?;
                if *capacity == Some(0) {
                    return Err("capacity must be >= 1, got 0".to_owned());
                }
                non_negative("gap_ms", *gap_ms)
            }
            LatencyModel::Zero => Ok(()),
        }
    }
}

/// A seeded multiplicative jitter factor in `[1 − j, 1 + j]`.
fn jitter(j: f64, rng: &mut impl Rng) -> f64 {
    if j > 0.0 {
        1.0 + j * (2.0 * rng.random::<f64>() - 1.0)
    } else {
        1.0
    }
}

/// Milliseconds (non-negative, finite) as a `Duration`.
fn ms(v: f64) -> Duration {
    Duration::from_secs_f64((v.max(0.0) / 1000.0).min(86_400.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::{RequestSeed, RngStream};

    fn within(actual: f64, expected: f64, tolerance: f64) -> bool {
        (actual - expected).abs() <= expected * tolerance
    }

    #[test]
    fn llama_70b_reproduces_the_field_figures_within_5_percent() {
        let m = ContendedLatency::llama3_3_70b();
        let c1 = m.tokens_per_s(1, 500);
        let c50 = m.tokens_per_s(50, 500);
        let c50_large = m.tokens_per_s(50, 8_000);
        assert!(within(c1, 135.0, 0.05), "concurrency 1: {c1}");
        assert!(within(c50, 119.0, 0.05), "concurrency 50: {c50}");
        assert!(
            within(c50_large / c50, 0.5, 0.05),
            "large/small at 50: {c50_large} / {c50}"
        );
        // Round numbers a reader can check against the doc comment.
        assert!(within(m.gap_per_context_token_ms, 22.41e-6, 0.01));
        assert!(within(m.gap_per_stream_ms, 9.12e-3, 0.01));
    }

    #[test]
    fn llama_70b_ttft_is_flat_then_rises_past_the_knee() {
        // Below capacity TTFT does not depend on concurrency at all; past it
        // a request waits for a slot, i.e. for a whole request to finish.
        let m = ContendedLatency::llama3_3_70b();
        let ttft = m.ttft_ms(500);
        let request_ms = ttft + 300.0 * m.gap_ms_at(m.capacity, u64::from(m.capacity) * 500);
        let queued_ttft = ttft + request_ms;
        assert!(queued_ttft > 3.0 * ttft, "{queued_ttft} vs {ttft}");
        assert!(m.ttft_ms(8_000) > m.ttft_ms(500));
    }

    #[test]
    fn fixed_is_exact_and_zero_is_zero() {
        let mut rng = RequestSeed {
            seed: 1,
            sequence: 1,
        }
        .rng(RngStream::Jitter);
        let fixed = LatencyModel::Fixed {
            ttft_ms: 250.0,
            gap_ms: 20.0,
            capacity: None,
        };
        assert_eq!(fixed.ttft(10_000, &mut rng), Duration::from_millis(250));
        assert_eq!(
            fixed.gap(500, 1_000_000, &mut rng),
            Duration::from_millis(20)
        );
        assert_eq!(fixed.capacity(), None);
        assert_eq!(LatencyModel::Zero.gap(9, 9, &mut rng), Duration::ZERO);
        assert!(LatencyModel::Zero.is_zero());
    }

    #[test]
    fn jitter_stays_in_band() {
        let model = LatencyModel::Contended(ContendedLatency::llama3_3_70b());
        let mean = ContendedLatency::llama3_3_70b().gap_ms_at(1, 500);
        let mut rng = RequestSeed {
            seed: 9,
            sequence: 0,
        }
        .rng(RngStream::Jitter);
        for _ in 0..1000 {
            let g = model.gap(1, 500, &mut rng).as_secs_f64() * 1000.0;
            assert!(within(g, mean, 0.051), "{g} vs {mean}");
        }
    }

    #[test]
    fn validation_names_the_parameter() {
        let mut c = ContendedLatency::llama3_3_70b();
        c.capacity = 0;
        assert!(
            LatencyModel::Contended(c)
                .validate()
                .unwrap_err()
                .contains("capacity")
        );
        let bad = LatencyModel::Fixed {
            ttft_ms: -1.0,
            gap_ms: 1.0,
            capacity: None,
        };
        assert!(bad.validate().unwrap_err().contains("ttft_ms"));
    }
}
