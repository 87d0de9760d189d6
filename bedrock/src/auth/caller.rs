//! What verification yields, in two steps: a request whose head passed
//! ([`HeadVerified`]), and once its body is in, the [`VerifiedCaller`].
//!
//! A server must not spend memory on a body before it knows who sent it.
//! Everything SigV4 checks except the signature is in the head (header
//! shape, dates, skew, the key, the session token), and so is a bearer API
//! key. The signature covers the payload's SHA-256, so it can be checked
//! before the body only when the client declares that hash in
//! `x-amz-content-sha256`: then the head is verified against the declared
//! hash, and the body must hash to it. Without the header (the SDKs send
//! none to Bedrock, PROTOCOL.md §1.4) the signature is checked after the
//! body, from a [`PayloadHasher`] fed while the body streams in; the
//! server decides how much unverified body it will hold.
//!
//! Either way the verdict is the one a one-step check of the whole request
//! gives: a body whose hash differs from the declared one fails as a
//! signature mismatch showing the canonical request with the real hash.

use std::fmt;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::amz_date::AmzDate;
use super::canonical;
use super::failure::AuthFailure;

/// How a verified caller authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerScheme {
    /// SigV4 with this access key id, signed for this region.
    SigV4 {
        /// The access key id from the credential scope.
        access_key_id: String,
        /// The region from the credential scope (any region is accepted).
        region: String,
    },
    /// A Bedrock API key.
    ApiKey,
}

/// A caller whose request passed verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCaller {
    /// The account the key belongs to.
    pub account: Arc<str>,
    /// How it authenticated.
    pub scheme: CallerScheme,
}

/// The SHA-256 of a request body, as lowercase hex (SigV4's payload hash).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PayloadHash([u8; 64]);

impl PayloadHash {
    /// The hash of a whole body.
    pub fn of(body: &[u8]) -> Self {
        PayloadHash(canonical::sha256_hex(body))
    }

    /// Parses 64 hex digits (an `x-amz-content-sha256` value), any case.
    pub(crate) fn parse_hex(value: &[u8]) -> Option<Self> {
        let value = value.trim_ascii();
        if value.len() != 64 || !value.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        let mut hex = [0u8; 64];
        for (out, b) in hex.iter_mut().zip(value) {
            *out = b.to_ascii_lowercase();
        }
        Some(PayloadHash(hex))
    }

    /// The hex digits.
    pub fn as_str(&self) -> &str {
        canonical::hex_str(&self.0)
    }
}

impl fmt::Debug for PayloadHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PayloadHash({})", self.as_str())
    }
}

/// SHA-256 of a body fed piece by piece as it arrives.
#[derive(Default, Clone)]
pub struct PayloadHasher(Sha256);

impl PayloadHasher {
    /// A hasher with nothing fed.
    pub fn new() -> Self {
        PayloadHasher::default()
    }

    /// Feeds the next piece of the body.
    pub fn update(&mut self, piece: &[u8]) {
        self.0.update(piece);
    }

    /// The hash of everything fed.
    pub fn finish(self) -> PayloadHash {
        PayloadHash(canonical::hex_digest(&self.0.finalize()))
    }
}

impl fmt::Debug for PayloadHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PayloadHasher")
    }
}

/// A SigV4 signature still to be checked against a payload hash: the
/// canonical request up to its last line, and what the string to sign and
/// the signature need.
pub(crate) struct LateSignature {
    /// The canonical request without the payload hash (ends with the signed
    /// headers line and its newline).
    pub(crate) canonical_head: String,
    pub(crate) date: AmzDate,
    pub(crate) region: String,
    pub(crate) service: Arc<str>,
    pub(crate) signing_key: [u8; 32],
    /// The client's signature (hex).
    pub(crate) signature: String,
}

impl LateSignature {
    /// Checks the signature with `payload` as the canonical request's last line.
    pub(crate) fn check(&self, payload: &PayloadHash) -> Result<(), AuthFailure> {
        let mut canonical_request = String::with_capacity(self.canonical_head.len() + 64);
        canonical_request.push_str(&self.canonical_head);
        canonical_request.push_str(payload.as_str());
        let mut string_to_sign = String::with_capacity(160);
        canonical::write_string_to_sign(
            &mut string_to_sign,
            self.date,
            &self.region,
            &self.service,
            &canonical_request,
        );
        let expected = canonical::signature_hex(&self.signing_key, string_to_sign.as_bytes());
        if constant_time_eq(&expected, self.signature.as_bytes()) {
            Ok(())
        } else {
            Err(AuthFailure::signature_mismatch(
                &canonical_request,
                &string_to_sign,
            ))
        }
    }
}

/// What is left to check once the head passed.
enum PayloadCheck {
    /// A bearer API key: the payload is not signed.
    Unsigned,
    /// SigV4, already checked against the declared `x-amz-content-sha256`;
    /// the body must hash to it.
    Declared {
        declared: PayloadHash,
        signature: LateSignature,
    },
    /// SigV4 over the body's hash: checked when the body is in.
    Deferred(LateSignature),
}

/// A request whose head passed verification (see the module doc).
pub struct HeadVerified {
    caller: VerifiedCaller,
    payload: PayloadCheck,
}

impl HeadVerified {
    pub(crate) fn api_key(caller: VerifiedCaller) -> Self {
        HeadVerified {
            caller,
            payload: PayloadCheck::Unsigned,
        }
    }

    /// A SigV4 head: checked now when the payload hash was declared.
    pub(crate) fn sigv4(
        caller: VerifiedCaller,
        signature: LateSignature,
        declared: Option<PayloadHash>,
    ) -> Result<Self, AuthFailure> {
        let payload = match declared {
            Some(declared) => {
                signature.check(&declared)?;
                PayloadCheck::Declared {
                    declared,
                    signature,
                }
            }
            None => PayloadCheck::Deferred(signature),
        };
        Ok(HeadVerified { caller, payload })
    }

    /// True when the caller is proven to hold its key already (bearer keys,
    /// and SigV4 with a declared payload hash): the body is then the
    /// caller's own, and only its integrity is left to check.
    pub fn caller_proven(&self) -> bool {
        !matches!(self.payload, PayloadCheck::Deferred(_))
    }

    /// True when [`HeadVerified::finish`] needs the body's hash.
    pub fn needs_payload_hash(&self) -> bool {
        !matches!(self.payload, PayloadCheck::Unsigned)
    }

    /// The verdict, given the body's hash (`None` only when
    /// [`HeadVerified::needs_payload_hash`] is false; a signed request
    /// finished without one fails as a mismatch over the empty body).
    pub fn finish(self, payload: Option<&PayloadHash>) -> Result<VerifiedCaller, AuthFailure> {
        let empty;
        let payload = match payload {
            Some(p) => p,
            None => {
                empty = PayloadHash::of(&[]);
                &empty
            }
        };
        match &self.payload {
            PayloadCheck::Unsigned => {}
            PayloadCheck::Declared {
                declared,
                signature,
            } => {
                if declared != payload {
                    signature.check(payload)?;
                }
            }
            PayloadCheck::Deferred(signature) => signature.check(payload)?,
        }
        Ok(self.caller)
    }
}

impl fmt::Debug for HeadVerified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeadVerified")
            .field("caller", &self.caller)
            .field("caller_proven", &self.caller_proven())
            .finish_non_exhaustive()
    }
}

/// Compares without an early exit, so timing does not reveal how many leading
/// bytes of a guessed signature are right. Lengths are public (64 hex digits).
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a
        .iter()
        .zip(b)
        .fold(0u8, |acc, (x, y)| acc | std::hint::black_box(x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn hasher_fed_in_pieces_matches_the_whole() {
        let body = b"{\"messages\":[{\"role\":\"user\"}]}";
        let mut h = PayloadHasher::new();
        for piece in body.chunks(7) {
            h.update(piece);
        }
        assert_eq!(h.finish(), PayloadHash::of(body));
        assert_eq!(
            PayloadHash::of(b"").as_str(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn declared_hashes_parse_in_any_case_and_nothing_else() {
        let lower = PayloadHash::of(b"x");
        let upper = lower.as_str().to_ascii_uppercase();
        assert_eq!(PayloadHash::parse_hex(upper.as_bytes()), Some(lower));
        assert_eq!(PayloadHash::parse_hex(b"UNSIGNED-PAYLOAD"), None);
        assert_eq!(PayloadHash::parse_hex(&upper.as_bytes()[1..]), None);
    }
}
