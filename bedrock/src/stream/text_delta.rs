//! The text delta's payload, read without serde when it has exactly the shape
//! Bedrock writes.
//!
//! Nearly every frame of a ConverseStream response is a text delta, and
//! Bedrock writes each one the same way (keys sorted, no whitespace, the `p`
//! padding last; PROTOCOL.md §3.3, §3.6):
//!
//! ```text
//! {"contentBlockIndex":0,"delta":{"text":"Hello"},"p":"abcdefgh"}
//! ```
//!
//! [`read`] recognises that shape byte for byte: the index as a canonical
//! JSON integer, text with no escape and no control character, padding from
//! [`super::PADDING_ALPHABET`] or no padding field at all. It returns `None`
//! for anything else, and the caller then hands the payload to serde, so an
//! input it declines is decoded (or rejected, with serde's message) exactly
//! as before. On every input it accepts it agrees with serde: the tests hold
//! it to that, over generated payloads of both kinds.
//!
//! Why by hand: serde's derived visitor for this payload (key matching, six
//! optional delta kinds, the padding skipped as a string) was the largest
//! piece of the agent's own CPU per streamed request; see ARCHITECTURE.md.

use std::ops::Range;

/// Up to the index's first digit.
const HEAD: &[u8] = br#"{"contentBlockIndex":"#;
/// From after the index to the text's first byte.
const TO_TEXT: &[u8] = br#","delta":{"text":""#;
/// From after the text's closing quote to the padding's first byte.
const TO_PADDING: &[u8] = br#"},"p":""#;
/// The end of a payload with padding: its closing quote and brace.
const PADDING_END: &[u8] = br#""}"#;
/// The end of a payload without padding: the delta's and the payload's braces.
const NO_PADDING_END: &[u8] = b"}}";

/// The block index and the byte range of the text, when `payload` is a text
/// delta in Bedrock's own shape; `None` otherwise (serde then decides). The
/// range's bytes are the text exactly, since it has no escapes; they are not
/// yet checked as UTF-8.
pub(super) fn read(payload: &[u8]) -> Option<(u32, Range<usize>)> {
    let rest = payload.strip_prefix(HEAD)?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    // JSON has no leading zeros; serde says so with a position.
    if digits == 0 || (digits > 1 && rest[0] == b'0') || digits > 10 {
        return None;
    }
    let index = rest[..digits]
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    let index = u32::try_from(index).ok()?;
    let rest = rest[digits..].strip_prefix(TO_TEXT)?;
    let start = payload.len() - rest.len();
    // The text ends at its closing quote; an escape or a raw control
    // character (which JSON forbids) is left to serde.
    let len = rest
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
    if rest[len] != b'"' {
        return None;
    }
    let tail = &rest[len + 1..];
    if tail != NO_PADDING_END {
        let padding = tail.strip_prefix(TO_PADDING)?.strip_suffix(PADDING_END)?;
        if !padding.iter().all(u8::is_ascii_alphanumeric) {
            return None;
        }
    }
    Some((index, start..start + len))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde::Deserialize;

    use super::*;

    /// What serde makes of a payload, in the same terms: the index and the
    /// text when it is a text delta that decodes. The oracle is the same
    /// wire struct the decoder falls back to.
    fn by_serde(payload: &[u8]) -> Option<(u32, String)> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Delta {
            content_block_index: u32,
            delta: Inner,
        }
        #[derive(Deserialize)]
        struct Inner {
            text: Option<String>,
        }
        let d: Delta = serde_json::from_slice(payload).ok()?;
        Some((d.content_block_index, d.delta.text?))
    }

    fn by_hand(payload: &[u8]) -> Option<(u32, String)> {
        let (index, range) = read(payload)?;
        let text = std::str::from_utf8(&payload[range]).ok()?;
        Some((index, text.to_owned()))
    }

    fn bedrock_shaped(index: u32, text: &str, pad: &str) -> Vec<u8> {
        let text = serde_json::to_string(text).expect("a string serializes");
        let padding = if pad.is_empty() {
            String::new()
        } else {
            format!(r#","p":"{pad}""#)
        };
        format!(r#"{{"contentBlockIndex":{index},"delta":{{"text":{text}}}{padding}}}"#)
            .into_bytes()
    }

    #[test]
    fn bedrocks_own_payloads_are_read_by_hand() {
        let cases: [(&[u8], u32, &str); 4] = [
            (
                br#"{"contentBlockIndex":0,"delta":{"text":"Hello"},"p":"abcdefgh"}"#,
                0,
                "Hello",
            ),
            (
                r#"{"contentBlockIndex":12,"delta":{"text":" wörld"}}"#.as_bytes(),
                12,
                " wörld",
            ),
            (
                br#"{"contentBlockIndex":4294967295,"delta":{"text":""},"p":""}"#,
                u32::MAX,
                "",
            ),
            (
                br#"{"contentBlockIndex":3,"delta":{"text":"a'b/c"},"p":"Z9"}"#,
                3,
                "a'b/c",
            ),
        ];
        for (payload, index, text) in cases {
            assert_eq!(
                by_hand(payload),
                Some((index, text.to_owned())),
                "{payload:?}"
            );
            assert_eq!(by_hand(payload), by_serde(payload), "{payload:?}");
        }
    }

    #[test]
    fn anything_else_is_left_to_serde() {
        let declined: [&[u8]; 14] = [
            br#"{"contentBlockIndex":0,"delta":{"text":"a\"b"},"p":"x"}"#, // an escape
            br#"{"contentBlockIndex":0,"delta":{"text":"a\nb"}}"#,         // an escape
            b"{\"contentBlockIndex\":0,\"delta\":{\"text\":\"a\nb\"}}",    // a raw newline: invalid
            br#"{"contentBlockIndex":01,"delta":{"text":"a"}}"#, // a leading zero: invalid
            br#"{"contentBlockIndex":4294967296,"delta":{"text":"a"}}"#, // over u32
            br#"{"contentBlockIndex":-1,"delta":{"text":"a"}}"#,
            br#"{"contentBlockIndex":1.0,"delta":{"text":"a"}}"#,
            br#"{"contentBlockIndex": 0,"delta":{"text":"a"}}"#, // whitespace
            br#"{"delta":{"text":"a"},"contentBlockIndex":0}"#,  // another key order
            br#"{"contentBlockIndex":0,"delta":{"toolUse":{"input":"{}"}}}"#,
            br#"{"contentBlockIndex":0,"delta":{"text":"a"},"p":"a-b"}"#, // not padding
            br#"{"contentBlockIndex":0,"delta":{"text":"a"},"p":"ab"} "#, // trailing space
            br#"{"contentBlockIndex":0,"delta":{"text":"a"},"q":"ab"}"#,
            br#"{"contentBlockIndex":0,"delta":{"text":"a"}"#, // truncated
        ];
        for payload in declined {
            assert_eq!(read(payload), None, "{}", String::from_utf8_lossy(payload));
        }
    }

    proptest! {
        /// Bedrock-shaped payloads with any text: read by hand whenever the
        /// text needs no escape, and then exactly as serde reads them.
        #[test]
        fn agrees_with_serde_on_bedrock_shaped_payloads(
            index in any::<u32>(),
            text in any::<String>(),
            pad in "[a-zA-Z0-9]{0,62}",
        ) {
            let payload = bedrock_shaped(index, &text, &pad);
            let hand = by_hand(&payload);
            prop_assert_eq!(by_serde(&payload), Some((index, text.clone())));
            let plain = !text.chars().any(|c| c == '"' || c == '\\' || c < ' ');
            if plain {
                prop_assert_eq!(hand, Some((index, text)));
            } else {
                prop_assert_eq!(hand, None);
            }
        }

        /// Any bytes after the fixed head: whatever is read by hand is what
        /// serde reads.
        #[test]
        fn never_disagrees_with_serde(tail in proptest::collection::vec(any::<u8>(), 0..64)) {
            for head in [HEAD, br#"{"contentBlockIndex":7,"delta":{"text":""#] {
                let payload = [head, &tail].concat();
                if let Some(hand) = by_hand(&payload) {
                    prop_assert_eq!(Some(hand), by_serde(&payload));
                }
            }
        }

        /// Payloads one byte-edit away from Bedrock's shape.
        #[test]
        fn never_disagrees_with_serde_near_the_shape(
            text in "[ -~é]{0,12}",
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            delete in any::<bool>(),
        ) {
            let mut payload = bedrock_shaped(5, &text, "abc");
            let i = at.index(payload.len());
            if delete {
                payload.remove(i);
            } else {
                payload[i] = byte;
            }
            if let Some(hand) = by_hand(&payload) {
                prop_assert_eq!(Some(hand), by_serde(&payload));
            }
        }
    }
}
