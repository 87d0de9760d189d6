//! Bedrock's token-quota arithmetic (PROTOCOL.md §5), written once and shared by
//! the simulator (which enforces it), the agent (which reports what a run
//! consumed) and the capacity planner (which projects it onto a forecast), so
//! none of them can disagree about what a request costs against a quota.
//!
//! - this module: admission (reservation), settlement, their per-request-mean
//!   forms for forecasts, and the steady-state load of a sliding minute window;
//! - `burndown`: quota tokens per output token, a per-model table with overrides;
//! - `facts`: built-in per-model quota figures and model output limits, each
//!   with its source and confidence;
//! - `names`: the Service Quotas names and codes quotas are filed under.

mod burndown;
mod facts;
mod names;

pub use burndown::{
    Burndown, BurndownMatch, BurndownOrigin, BurndownRule, BurndownTable, output_burndown,
};
pub use facts::{
    Confidence, FactSource, ModelFact, QuotaFact, QuotaMetric, QuotaPool, TOKENS_PER_DAY_PER_TPM,
    default_tokens_per_day, model_fact, quota_fact, quota_facts,
};
pub use names::{
    ParsedQuotaName, QuotaCode, QuotaModelName, SERVICE_QUOTAS_SERVICE_CODE,
    model_for_quota_model_name, parse_service_quota_name, quota_code, quota_model_name,
    quota_model_names, service_quota_name, service_quota_name_for, service_quota_name_source,
};

use crate::family::{ModelFamily, base_model_id};
use crate::usage::TokenUsage;

/// Quota tokens reserved when a request is admitted: every input token
/// (billed, cache read, cache write) plus `max_tokens` (the model's output
/// limit when the request sets none: the "max_tokens trap").
pub fn reservation(input: &TokenUsage, max_tokens: u64) -> u64 {
    input.input_tokens + input.cache_read_input_tokens + input.cache_write_input_tokens + max_tokens
}

/// Quota tokens a finished request settles at: input + cache writes + output
/// times the burndown. Cache reads are released at settlement.
pub fn settlement(usage: &TokenUsage, burndown: u64) -> u64 {
    usage.input_tokens + usage.cache_write_input_tokens + usage.output_tokens * burndown
}

/// Per-request token means for a forecast: fractional, because a mean over
/// many requests (a cache hit ratio times a prefix, say) rarely is whole.
/// Same vocabulary as [`TokenUsage`]: `input_tokens` excludes cached tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MeanUsage {
    /// Input tokens billed at the input price (cache reads and writes excluded).
    pub input_tokens: f64,
    /// Output tokens generated.
    pub output_tokens: f64,
    /// Input tokens served from the prompt cache.
    pub cache_read_input_tokens: f64,
    /// Input tokens written to the prompt cache.
    pub cache_write_input_tokens: f64,
}

impl MeanUsage {
    /// Every input token the model read: billed, cache-read and cache-written.
    pub fn total_input_tokens(&self) -> f64 {
        self.input_tokens + self.cache_read_input_tokens + self.cache_write_input_tokens
    }
}

/// [`reservation`] over per-request means: the mean reservation of a
/// population of requests whose usage averages `input`.
pub fn mean_reservation(input: &MeanUsage, max_tokens: f64) -> f64 {
    input.total_input_tokens() + max_tokens
}

/// [`settlement`] over per-request means.
pub fn mean_settlement(usage: &MeanUsage, burndown: f64) -> f64 {
    usage.input_tokens + usage.cache_write_input_tokens + usage.output_tokens * burndown
}

/// Quota tokens a sliding one-minute window holds in steady state, for
/// `requests_per_minute` admitted requests that each reserve `reserved`, hold
/// it for `held_seconds` and then settle at `settled`.
///
/// This is the simulator's window (`quarry-sim`'s `QuotaBook`): a reservation
/// enters the window at admission and is replaced by the settlement if the
/// request ends while its bucket is still in the window. So at any moment the
/// window holds the reservations of the requests admitted in the last
/// `held_seconds` (those in flight) and the settlements of the others:
/// `rpm × (settled + min(held, 60 s)/60 s × (reserved − settled))`. A request
/// that outlives the window (held ≥ 60 s) keeps its full reservation there.
/// Bedrock itself adjusts reservations during generation (PROTOCOL.md §5.2
/// step 2), so on the real service this is an upper bound.
pub fn minute_window_tokens(
    requests_per_minute: f64,
    reserved: f64,
    settled: f64,
    held_seconds: f64,
) -> f64 {
    let held = (held_seconds / 60.0).clamp(0.0, 1.0);
    requests_per_minute * (settled + held * (reserved - settled))
}

/// The `(major, minor)` Claude version a model id names, if it is a Claude
/// model: `anthropic.claude-3-7-sonnet-...` is (3, 7),
/// `anthropic.claude-sonnet-4-5-...` is (4, 5), `anthropic.claude-opus-4-6-v1`
/// is (4, 6), `anthropic.claude-3-haiku-...` is (3, 0).
pub fn claude_version(model_id: &str) -> Option<(u32, u32)> {
    if ModelFamily::from_model_id(model_id) != Some(ModelFamily::Anthropic) {
        return None;
    }
    let name = base_model_id(model_id).strip_prefix("anthropic.claude-")?;
    // Two layouts: "3-7-sonnet-2025..." (version first) and "sonnet-4-5-2025..."
    // (tier first). Tier words are skipped; the version ends at the first part
    // that is not a one- or two-digit number (a date stamp, "v1:0", a tier word
    // after the version).
    let mut parts = name
        .split('-')
        .skip_while(|p| p.chars().all(char::is_alphabetic));
    let major = parts.next().and_then(short_number)?;
    let minor = parts.next().and_then(short_number).unwrap_or(0);
    Some((major, minor))
}

/// A version component: one or two ASCII digits (dates have eight).
fn short_number(part: &str) -> Option<u32> {
    (part.len() <= 2 && part.bytes().all(|b| b.is_ascii_digit()))
        .then(|| part.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn claude_versions() {
        let cases = [
            ("anthropic.claude-3-haiku-20240307-v1:0", Some((3, 0))),
            ("anthropic.claude-3-5-haiku-20241022-v1:0", Some((3, 5))),
            ("us.anthropic.claude-3-5-sonnet-20241022-v2:0", Some((3, 5))),
            ("anthropic.claude-3-7-sonnet-20250219-v1:0", Some((3, 7))),
            ("anthropic.claude-sonnet-4-20250514-v1:0", Some((4, 0))),
            (
                "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
                Some((4, 5)),
            ),
            ("anthropic.claude-sonnet-4-6", Some((4, 6))),
            ("anthropic.claude-opus-4-6-v1", Some((4, 6))),
            ("anthropic.claude-haiku-4-5-20251001-v1:0", Some((4, 5))),
            ("anthropic.claude-v2:1", None),
            ("anthropic.claude-instant-v1", None),
            ("meta.llama3-3-70b-instruct-v1:0", None),
        ];
        for (id, version) in cases {
            assert_eq!(claude_version(id), version, "{id}");
        }
    }

    #[test]
    fn worked_example_from_the_aws_toolkit() {
        // 500 input tokens, max_tokens 1000 reserve 1,500; 100 in + 100 out on
        // a 5x model settle at 600 (PROTOCOL.md §5.2 item 6).
        let input = TokenUsage {
            input_tokens: 500,
            ..TokenUsage::default()
        };
        assert_eq!(reservation(&input, 1000), 1500);
        let done = TokenUsage {
            input_tokens: 100,
            output_tokens: 100,
            ..TokenUsage::default()
        };
        assert_eq!(settlement(&done, 5), 600);
        let cached = TokenUsage {
            input_tokens: 10,
            output_tokens: 1,
            cache_read_input_tokens: 1000,
            cache_write_input_tokens: 20,
        };
        assert_eq!(reservation(&cached, 100), 1130);
        assert_eq!(settlement(&cached, 1), 31);
    }

    #[test]
    fn the_max_tokens_trap_in_numbers() {
        // PROTOCOL.md §5.2 item 6: a 2M TPM quota, 500 input tokens. With
        // max_tokens = 1,000 it admits 2,000,000 / 1,500 = 1,333 requests at
        // once; unset, the 64,000-token maximum is reserved: 2,000,000 /
        // 64,500 = 31.
        let input = TokenUsage {
            input_tokens: 500,
            ..TokenUsage::default()
        };
        assert_eq!(2_000_000 / reservation(&input, 1_000), 1_333);
        assert_eq!(2_000_000 / reservation(&input, 64_000), 31);
    }

    #[test]
    fn window_holds_reservations_in_flight_and_settlements_after() {
        // 60 requests a minute, each reserving 1,500 and settling at 600.
        // Held 15 s: a quarter of them are in flight at any time.
        let w = minute_window_tokens(60.0, 1_500.0, 600.0, 15.0);
        assert!((w - 60.0 * (600.0 + 0.25 * 900.0)).abs() < 1e-9);
        // Held past the window: the whole reservation stays.
        assert_eq!(minute_window_tokens(60.0, 1_500.0, 600.0, 90.0), 90_000.0);
        // Settled instantly: only settlements.
        assert_eq!(minute_window_tokens(60.0, 1_500.0, 600.0, 0.0), 36_000.0);
    }

    fn usage() -> impl Strategy<Value = TokenUsage> {
        (0u64..1 << 20, 0u64..1 << 16, 0u64..1 << 20, 0u64..1 << 16).prop_map(
            |(input, output, read, write)| TokenUsage {
                input_tokens: input,
                output_tokens: output,
                cache_read_input_tokens: read,
                cache_write_input_tokens: write,
            },
        )
    }

    fn mean(u: &TokenUsage) -> MeanUsage {
        MeanUsage {
            input_tokens: u.input_tokens as f64,
            output_tokens: u.output_tokens as f64,
            cache_read_input_tokens: u.cache_read_input_tokens as f64,
            cache_write_input_tokens: u.cache_write_input_tokens as f64,
        }
    }

    proptest! {
        /// The mean forms are the same formulas: on whole numbers they agree
        /// exactly with the per-request ones the simulator enforces.
        #[test]
        fn mean_forms_agree_with_the_per_request_ones(
            u in usage(), max in 0u64..1 << 17, burndown in 1u64..16,
        ) {
            prop_assert_eq!(mean_reservation(&mean(&u), max as f64), reservation(&u, max) as f64);
            prop_assert_eq!(mean_settlement(&mean(&u), burndown as f64), settlement(&u, burndown) as f64);
        }
    }
}
