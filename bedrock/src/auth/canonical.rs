//! The SigV4 canonical request and string to sign, rebuilt from a request as it
//! arrived on the wire (PROTOCOL.md §1.4, AWS "Create a canonical request").
//!
//! Shared by the verifier and its error messages. The rules follow aws-sigv4
//! 1.6.4 (`canonical_request.rs`) with its default settings, so a request the
//! signer produced canonicalises here to the same bytes:
//! * path: dot segments and empty segments removed (RFC 3986 §5.2.4 as
//!   aws-sigv4 does it), then percent-encoded once more, keeping `/` and the
//!   unreserved set — `%3A` becomes `%253A` (double encoding);
//! * query: pairs split on `&`, decoded (`+` is a space, as `form_urlencoded`
//!   decodes it), re-encoded with the unreserved set, sorted by encoded key then
//!   value; a key with no `=` gets an empty value;
//! * headers: the names the client listed in `SignedHeaders`, in its order; each
//!   value trimmed of spaces with inner runs of spaces collapsed to one, several
//!   values of one name joined by `,` in arrival order.

use std::fmt::Write as _;

use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode};
use sha2::{Digest, Sha256};

use super::amz_date::AmzDate;

/// SigV4 `UriEncode`: everything but `A-Za-z0-9-._~` is escaped.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The path flavour of [`UNRESERVED`]: `/` separates segments and stays.
const PATH: &AsciiSet = &UNRESERVED.remove(b'/');

/// The only algorithm Bedrock (and this crate) speaks.
pub(crate) const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Lowercase hex of a SHA-256 digest or HMAC-SHA256 tag (32 bytes), without
/// allocating.
pub(crate) fn hex_digest(digest: &[u8]) -> [u8; 64] {
    let mut out = [0u8; 64];
    // unwrap is safe because every caller passes a 32-byte SHA-256 output,
    // which always encodes to exactly 64 hex digits.
    hex::encode_to_slice(digest, &mut out).unwrap();
    out
}

/// Lowercase hex SHA-256 of `bytes`, without allocating.
pub(crate) fn sha256_hex(bytes: &[u8]) -> [u8; 64] {
    hex_digest(&Sha256::digest(bytes))
}

/// The SigV4 signature, lowercase hex HMAC-SHA256 of `string_to_sign` under
/// `signing_key`, without allocating (`aws_sigv4`'s `calculate_signature`
/// builds a `String` a character at a time: 0.5% of a signed request's CPU).
pub(crate) fn signature_hex(signing_key: &[u8; 32], string_to_sign: &[u8]) -> [u8; 64] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(signing_key)
        // unwrap is safe because HMAC takes a key of any length.
        .unwrap();
    mac.update(string_to_sign);
    hex_digest(&mac.finalize().into_bytes())
}

/// Views hex digits produced by [`sha256_hex`] or [`signature_hex`] as a `str`.
pub(crate) fn hex_str(hex: &[u8; 64]) -> &str {
    // Hex digits are ASCII; an empty string can only appear if that broke.
    std::str::from_utf8(hex).unwrap_or_default()
}

/// Appends the canonical URI for a raw wire path (no query).
pub(crate) fn write_canonical_uri(out: &mut String, raw_path: &str) {
    let start = out.len();
    out.push('/');
    let mut segments = 0usize;
    // Normalise in place: push segments, pop on "..", skip "" and ".".
    for segment in raw_path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                if segments > 0 {
                    segments -= 1;
                    // Remove the last "/segment" (keep the leading "/").
                    let cut = out[start + 1..]
                        .rfind('/')
                        .map_or(start + 1, |i| start + 1 + i);
                    out.truncate(cut);
                }
            }
            segment => {
                if segments > 0 {
                    out.push('/');
                }
                segments += 1;
                out.extend(percent_encoding::utf8_percent_encode(segment, PATH));
            }
        }
    }
    let ends_with_slash = ["/", "/.", "/./", "/..", "/../"]
        .iter()
        .any(|s| raw_path.ends_with(s));
    if ends_with_slash && !out.ends_with('/') {
        out.push('/');
    }
}

/// Appends the canonical query string for the raw text after `?` (may be empty).
pub(crate) fn write_canonical_query(out: &mut String, raw_query: &str) {
    if raw_query.is_empty() {
        return;
    }
    let mut pairs: Vec<(String, String)> = raw_query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (reencode_query_part(k), reencode_query_part(v))
        })
        .collect();
    pairs.sort();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
}

fn reencode_query_part(raw: &str) -> String {
    let plus_as_space = raw.replace('+', " ");
    let decoded: Vec<u8> = percent_decode(plus_as_space.as_bytes()).collect();
    percent_encoding::percent_encode(&decoded, UNRESERVED).to_string()
}

/// Appends one header value trimmed of spaces, inner space runs collapsed.
fn write_trimmed(out: &mut String, value: &str) {
    let mut prev_space = false;
    for c in value.trim_matches(' ').chars() {
        if c == ' ' {
            if !prev_space {
                out.push(' ');
            }
            prev_space = true;
        } else {
            out.push(c);
            prev_space = false;
        }
    }
}

/// A request as it arrived, borrowed for canonicalisation.
#[derive(Clone, Copy)]
pub(crate) struct WireRequest<'a> {
    pub(crate) method: &'a str,
    /// Path and query exactly as on the request line.
    pub(crate) raw_path_and_query: &'a str,
    pub(crate) headers: &'a HeaderMap,
}

/// Appends the canonical request. `signed_headers` is the client's
/// `SignedHeaders` value (lowercase names joined by `;`). Returns the first
/// signed header the request does not carry, if any.
pub(crate) fn write_canonical_request<'s>(
    out: &mut String,
    req: WireRequest<'_>,
    signed_headers: &'s str,
    payload_hash: &str,
) -> Result<(), &'s str> {
    let (path, query) = req
        .raw_path_and_query
        .split_once('?')
        .unwrap_or((req.raw_path_and_query, ""));
    out.push_str(req.method);
    out.push('\n');
    write_canonical_uri(out, path);
    out.push('\n');
    write_canonical_query(out, query);
    out.push('\n');
    for name in signed_headers.split(';') {
        let mut values = req.headers.get_all(name).iter().peekable();
        if values.peek().is_none() {
            return Err(name);
        }
        out.push_str(name);
        out.push(':');
        for (i, value) in values.enumerate() {
            if i > 0 {
                out.push(',');
            }
            match std::str::from_utf8(value.as_bytes()) {
                Ok(text) => write_trimmed(out, text),
                Err(_) => write_trimmed(out, &String::from_utf8_lossy(value.as_bytes())),
            }
        }
        out.push('\n');
    }
    out.push('\n');
    out.push_str(signed_headers);
    out.push('\n');
    out.push_str(payload_hash);
    Ok(())
}

/// Appends the credential scope `YYYYMMDD/region/service/aws4_request`.
pub(crate) fn write_scope(out: &mut String, date: AmzDate, region: &str, service: &str) {
    let stamp = date.date_stamp();
    out.push_str(std::str::from_utf8(&stamp).unwrap_or_default());
    // Writing to a String cannot fail.
    let _ = write!(out, "/{region}/{service}/aws4_request");
}

/// Appends the string to sign for a canonical request.
pub(crate) fn write_string_to_sign(
    out: &mut String,
    date: AmzDate,
    region: &str,
    service: &str,
    canonical_request: &str,
) {
    out.push_str(ALGORITHM);
    out.push('\n');
    let _ = write!(out, "{date}");
    out.push('\n');
    write_scope(out, date, region, service);
    out.push('\n');
    out.push_str(hex_str(&sha256_hex(canonical_request.as_bytes())));
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn uri(raw: &str) -> String {
        let mut out = String::new();
        write_canonical_uri(&mut out, raw);
        out
    }

    fn query(raw: &str) -> String {
        let mut out = String::new();
        write_canonical_query(&mut out, raw);
        out
    }

    #[test]
    fn path_is_normalised_then_encoded_once_more() {
        assert_eq!(
            uri("/model/us.anthropic.claude-3-5-sonnet-20241022-v2%3A0/converse"),
            "/model/us.anthropic.claude-3-5-sonnet-20241022-v2%253A0/converse"
        );
        // The Anthropic SDK sends a raw ':'; it is encoded once.
        assert_eq!(uri("/model/a:0/converse"), "/model/a%3A0/converse");
        assert_eq!(uri(""), "/");
        assert_eq!(uri("/"), "/");
        assert_eq!(uri("//example//"), "/example/");
        assert_eq!(uri("/example/.."), "/");
        assert_eq!(uri("/example1/example2/../.."), "/");
        assert_eq!(uri("/../foo"), "/foo");
        assert_eq!(uri("/foo/bar/."), "/foo/bar/");
        assert_eq!(uri("/./example"), "/example");
        assert_eq!(uri("/a/b/../c"), "/a/c");
        assert_eq!(uri("/example space/"), "/example%20space/");
        assert_eq!(
            uri("/test/@connections/x%3D"),
            "/test/%40connections/x%253D"
        );
        assert_eq!(uri("/~a-b_c.d"), "/~a-b_c.d");
    }

    #[test]
    fn query_is_decoded_reencoded_and_sorted() {
        assert_eq!(query(""), "");
        assert_eq!(query("Param1=value1"), "Param1=value1");
        assert_eq!(query("b=2&a=1&a=0"), "a=0&a=1&b=2");
        assert_eq!(query("Param1"), "Param1=");
        assert_eq!(query("k=a%2Fb c"), "k=a%2Fb%20c");
        assert_eq!(query("k=a+b"), "k=a%20b");
        assert_eq!(query("%e1%88%b4=x"), "%E1%88%B4=x");
    }

    #[test]
    fn header_values_are_trimmed_and_collapsed() {
        let mut out = String::new();
        write_trimmed(&mut out, "  \"a   b   c\"  ");
        assert_eq!(out, "\"a b c\"");
    }

    proptest! {
        #[test]
        fn canonical_uri_is_idempotent_on_its_own_alphabet(raw in "(/[a-zA-Z0-9._~-]{0,6}){0,6}") {
            let once = uri(&raw);
            prop_assert_eq!(uri(&once), once.clone());
            prop_assert!(once.starts_with('/'));
            prop_assert!(!once.contains("//"));
        }

        #[test]
        fn canonical_query_output_is_sorted_and_unreserved(raw in "[a-zA-Z0-9=&%+ ._~-]{0,40}") {
            let q = query(&raw);
            let keys: Vec<&str> = q.split('&').filter(|p| !p.is_empty())
                .map(|p| p.split_once('=').map_or(p, |(k, _)| k)).collect();
            prop_assert!(keys.windows(2).all(|w| w[0] <= w[1]), "{q}");
            prop_assert!(q.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~%=&".contains(&b)));
        }
    }
}
