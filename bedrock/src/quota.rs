//! Bedrock's token-quota arithmetic (PROTOCOL.md §5.2), shared by the simulator
//! (which enforces it) and the agent (which reports what a run consumed), so the
//! two can never disagree about what a request costs against a quota.

use crate::family::{ModelFamily, base_model_id};
use crate::usage::TokenUsage;

/// How many quota tokens one output token consumes for `model_id`.
///
/// 5 for Anthropic Claude 3.7 and newer, 1 for every other model. This is quota
/// accounting only; billing counts each output token once.
pub fn output_burndown(model_id: &str) -> u64 {
    match claude_version(model_id) {
        Some(version) if version >= (3, 7) => 5,
        _ => 1,
    }
}

/// Quota tokens reserved when a request is admitted: every input token
/// (billed, cache read, cache write) plus `max_tokens`.
pub fn reservation(input: &TokenUsage, max_tokens: u64) -> u64 {
    input.input_tokens + input.cache_read_input_tokens + input.cache_write_input_tokens + max_tokens
}

/// Quota tokens a finished request settles at: input + cache writes + output
/// times the burndown. Cache reads are released at settlement.
pub fn settlement(usage: &TokenUsage, burndown: u64) -> u64 {
    usage.input_tokens + usage.cache_write_input_tokens + usage.output_tokens * burndown
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
    fn burndown_is_five_for_claude_3_7_and_newer_only() {
        assert_eq!(
            output_burndown("anthropic.claude-3-5-sonnet-20240620-v1:0"),
            1
        );
        assert_eq!(
            output_burndown("us.anthropic.claude-3-7-sonnet-20250219-v1:0"),
            5
        );
        assert_eq!(output_burndown("anthropic.claude-opus-4-20250514-v1:0"), 5);
        assert_eq!(output_burndown("amazon.nova-pro-v1:0"), 1);
        assert_eq!(output_burndown("meta.llama3-3-70b-instruct-v1:0"), 1);
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
}
