//! Parsing the `Authorization` header the way AWS's front door does: the SigV4
//! form `AWS4-HMAC-SHA256 Credential=.., SignedHeaders=.., Signature=..` and
//! the bearer form `Bearer <api-key>` (PROTOCOL.md §1.4, §1.5, §4.4).

use super::canonical::ALGORITHM;
use super::failure::AuthFailure;

/// The parts of a SigV4 `Authorization` header, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SigV4Authorization<'a> {
    pub(crate) access_key_id: &'a str,
    pub(crate) scope_date: &'a str,
    pub(crate) region: &'a str,
    pub(crate) service: &'a str,
    pub(crate) signed_headers: &'a str,
    pub(crate) signature: &'a str,
}

/// Which scheme a request authenticates with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme<'a> {
    SigV4(SigV4Authorization<'a>),
    Bearer(&'a str),
}

const NEEDS_CREDENTIAL: &str = "Authorization header requires 'Credential' parameter.";
const NEEDS_SIGNATURE: &str = "Authorization header requires 'Signature' parameter.";
const NEEDS_SIGNED_HEADERS: &str = "Authorization header requires 'SignedHeaders' parameter.";
const NEEDS_DATE: &str =
    "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.";

/// Parses `value`; `has_date` says whether the request carries `X-Amz-Date`.
pub(crate) fn parse(value: &str, has_date: bool) -> Result<Scheme<'_>, AuthFailure> {
    if let Some(token) = value
        .get(..7)
        .filter(|p| p.eq_ignore_ascii_case("bearer "))
        .map(|_| value[7..].trim())
    {
        return Ok(Scheme::Bearer(token));
    }
    let (algorithm, params) = value.split_once(' ').unwrap_or((value, ""));
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for element in params.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((key, val)) = element.split_once('=') else {
            return Err(AuthFailure::not_key_value(element, value));
        };
        let key = key.trim();
        // A second header joined onto the first (`..., AWS4-HMAC-SHA256
        // Credential=...`): AWS names the word before the key as the element
        // without an equal sign (PROTOCOL.md §4.4).
        if let Some((word, _)) = key.split_once(char::is_whitespace) {
            return Err(AuthFailure::not_key_value(word, value));
        }
        match key {
            "Credential" => credential = Some(val.trim()),
            "SignedHeaders" => signed_headers = Some(val.trim()),
            "Signature" => signature = Some(val.trim()),
            _ => {}
        }
    }
    let mut missing = Vec::new();
    if credential.is_none() {
        missing.push(NEEDS_CREDENTIAL);
    }
    if signature.is_none() {
        missing.push(NEEDS_SIGNATURE);
    }
    if signed_headers.is_none() {
        missing.push(NEEDS_SIGNED_HEADERS);
    }
    if !has_date {
        missing.push(NEEDS_DATE);
    }
    let (Some(credential), Some(signed_headers), Some(signature), true) =
        (credential, signed_headers, signature, missing.is_empty())
    else {
        return Err(AuthFailure::incomplete(&missing, value));
    };
    if algorithm != ALGORITHM {
        return Err(AuthFailure::unsupported_algorithm(algorithm));
    }
    let mut parts = credential.splitn(5, '/');
    let mut next = || parts.next().unwrap_or("");
    let (access_key_id, scope_date, region, service, terminator) =
        (next(), next(), next(), next(), next());
    if terminator != "aws4_request" {
        return Err(AuthFailure::bad_terminator(terminator));
    }
    if region.is_empty() {
        return Err(AuthFailure::bad_region(region));
    }
    Ok(Scheme::SigV4(SigV4Authorization {
        access_key_id,
        scope_date,
        region,
        service,
        signed_headers,
        signature,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    const GOLDEN: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250101/us-east-1/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=1f8bbc801f925151aa85b19ce139cf2cc94fe60e59c07eaf939ec8d1c4120dae";

    #[test]
    fn parses_sigv4() {
        let Scheme::SigV4(a) = parse(GOLDEN, true).unwrap() else {
            panic!("not sigv4")
        };
        assert_eq!(a.access_key_id, "AKIDEXAMPLE");
        assert_eq!(a.scope_date, "20250101");
        assert_eq!(a.region, "us-east-1");
        assert_eq!(a.service, "bedrock");
        assert_eq!(a.signed_headers, "content-type;host;x-amz-date");
        assert_eq!(a.signature.len(), 64);
        // No space after commas is accepted too.
        assert!(parse(&GOLDEN.replace(", ", ","), true).is_ok());
    }

    #[test]
    fn parses_bearer() {
        assert_eq!(
            parse("Bearer ABSKabc", false).unwrap(),
            Scheme::Bearer("ABSKabc")
        );
    }

    #[test]
    fn lists_every_missing_part_like_coral() {
        let f = parse("eyJ0eXAiOiJKV1Qi", false).unwrap_err();
        assert_eq!(f.code(), ErrorCode::IncompleteSignatureException);
        assert_eq!(
            f.message(),
            "Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization=eyJ0eXAiOiJKV1Qi"
        );
        let f = parse("AWS4-HMAC-SHA256 Credential=ABCDEF", true).unwrap_err();
        assert_eq!(
            f.message(),
            "Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. Authorization=AWS4-HMAC-SHA256 Credential=ABCDEF"
        );
    }

    #[test]
    fn element_without_equals() {
        let f = parse(
            "AWS4-HMAC-SHA256 Credential=a/b/c/d/aws4_request, host, Signature=ab",
            true,
        )
        .unwrap_err();
        assert_eq!(f.code(), ErrorCode::IncompleteSignatureException);
        assert!(f.message().starts_with(
            "'host' not a valid key=value pair (missing equal-sign) in Authorization header: 'AWS4-HMAC-SHA256 Credential="
        ));
    }

    #[test]
    fn a_second_header_joined_on_is_not_a_key_value_pair() {
        let joined = format!("{GOLDEN}, {GOLDEN}");
        let f = parse(&joined, true).unwrap_err();
        assert_eq!(f.code(), ErrorCode::IncompleteSignatureException);
        assert!(
            f.message().starts_with(
                "'AWS4-HMAC-SHA256' not a valid key=value pair (missing equal-sign) in Authorization header: 'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"
            ),
            "{}",
            f.message()
        );
    }

    #[test]
    fn bad_scope_terminator() {
        let f = parse(
            "AWS4-HMAC-SHA256 Credential=AKID/20250101/us-east-1/bedrock/aws5, SignedHeaders=host, Signature=ab",
            true,
        )
        .unwrap_err();
        assert_eq!(f.code(), ErrorCode::InvalidSignatureException);
        assert_eq!(
            f.message(),
            "Credential should be scoped with a valid terminator: 'aws4_request', not 'aws5'. "
        );
    }
}
