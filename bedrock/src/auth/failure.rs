//! Why a request failed authentication, as AWS words it (PROTOCOL.md §4.4).
//!
//! Each constructor produces the exact error code and message text the real
//! front door sends, so the simulator can put them on the wire unchanged.

use std::fmt;

use crate::{ErrorCode, bounded_echo as echo, messages};

use super::amz_date::AmzDate;

/// Allowed clock skew between a request's `X-Amz-Date` and the server's clock.
pub(crate) const MAX_SKEW_SECS: i64 = 5 * 60;

/// A rejected request: the code and message to answer with (HTTP 403).
///
/// Never carries a secret. Messages that echo the client's own
/// `Authorization` header (as AWS's do) keep that echo out of `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthFailure {
    code: ErrorCode,
    message: String,
    /// Byte offset where an echoed `Authorization` value starts, if any.
    echo_from: Option<usize>,
    /// The JSON member the message goes in (`message`, or `Message`).
    message_key: &'static str,
}

impl AuthFailure {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        AuthFailure {
            code,
            message: message.into(),
            echo_from: None,
            message_key: "message",
        }
    }

    /// The error code (`x-amzn-ErrorType`).
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The exact message text.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The HTTP status: 403 for every authentication failure.
    pub fn status(&self) -> u16 {
        self.code.status()
    }

    /// The JSON member name of the message in the response body. Bedrock's
    /// API-key front end answers with a capitalised `Message` (§1.5); all
    /// other failures use `message` like every Bedrock error.
    pub fn message_key(&self) -> &'static str {
        self.message_key
    }

    pub(crate) fn missing_token() -> Self {
        AuthFailure::new(
            ErrorCode::MissingAuthenticationTokenException,
            messages::MISSING_AUTHENTICATION_TOKEN,
        )
    }

    /// Coral's generic "incomplete" message: one sentence per missing part,
    /// then the raw header, e.g. `Authorization header requires 'Signature'
    /// parameter. Authorization=AWS4-HMAC-SHA256 Credential=...`.
    pub(crate) fn incomplete(missing: &[&str], authorization: &str) -> Self {
        let mut message = String::new();
        for part in missing {
            message.push_str(part);
            message.push(' ');
        }
        message.push_str("Authorization=");
        let echo_from = message.len();
        message.push_str(&echo(authorization));
        AuthFailure {
            echo_from: Some(echo_from),
            ..AuthFailure::new(ErrorCode::IncompleteSignatureException, message)
        }
    }

    /// A comma-separated element without `=`.
    pub(crate) fn not_key_value(element: &str, authorization: &str) -> Self {
        let prefix = format!(
            "'{}' not a valid key=value pair (missing equal-sign) in Authorization header: '",
            echo(element)
        );
        let echo_from = prefix.len();
        AuthFailure {
            echo_from: Some(echo_from),
            ..AuthFailure::new(
                ErrorCode::IncompleteSignatureException,
                format!("{prefix}{}'.", echo(authorization)),
            )
        }
    }

    /// An algorithm other than `AWS4-HMAC-SHA256` (wording not verified
    /// against AWS; the code is what Coral uses for header-shape problems).
    pub(crate) fn unsupported_algorithm(algorithm: &str) -> Self {
        AuthFailure::new(
            ErrorCode::IncompleteSignatureException,
            format!("Unsupported AWS 'algorithm': '{}'", echo(algorithm)),
        )
    }

    pub(crate) fn bad_date_format(got: &str) -> Self {
        AuthFailure::new(
            ErrorCode::IncompleteSignatureException,
            format!(
                "Date must be in ISO-8601 'basic format'. Got '{}'. See http://en.wikipedia.org/wiki/ISO_8601",
                echo(got)
            ),
        )
    }

    pub(crate) fn signed_header_absent(name: &str) -> Self {
        AuthFailure::new(
            ErrorCode::IncompleteSignatureException,
            format!(
                "'{}' is named as a SignedHeader, but it does not exist in the HTTP request.",
                echo(name)
            ),
        )
    }

    pub(crate) fn host_not_signed() -> Self {
        AuthFailure::new(
            ErrorCode::IncompleteSignatureException,
            "'Host' must be a 'SignedHeader' in the AWS Authorization.",
        )
    }

    pub(crate) fn bad_terminator(got: &str) -> Self {
        AuthFailure::new(
            ErrorCode::InvalidSignatureException,
            format!(
                "Credential should be scoped with a valid terminator: 'aws4_request', not '{}'. ",
                echo(got)
            ),
        )
    }

    pub(crate) fn bad_region(got: &str) -> Self {
        AuthFailure::new(
            ErrorCode::InvalidSignatureException,
            format!(
                "Credential should be scoped to a valid region, not '{}'. ",
                echo(got)
            ),
        )
    }

    pub(crate) fn scope_date_mismatch(scope_date: &str, request_date: &str) -> Self {
        AuthFailure::new(
            ErrorCode::InvalidSignatureException,
            format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{request_date}', from 'X-Amz-Date'.",
                echo(scope_date)
            ),
        )
    }

    /// The two skew messages, or `None` when `request` is within ±5 minutes.
    pub(crate) fn skew(request: AmzDate, now: AmzDate) -> Option<Self> {
        let earliest = now.offset(-MAX_SKEW_SECS);
        let latest = now.offset(MAX_SKEW_SECS);
        let message = if request < earliest {
            format!("Signature expired: {request} is now earlier than {earliest} ({now} - 5 min.)")
        } else if request > latest {
            format!(
                "Signature not yet current: {request} is still later than {latest} ({now} + 5 min.)"
            )
        } else {
            return None;
        };
        Some(AuthFailure::new(
            ErrorCode::InvalidSignatureException,
            message,
        ))
    }

    pub(crate) fn unrecognized_client() -> Self {
        AuthFailure::new(
            ErrorCode::UnrecognizedClientException,
            messages::INVALID_SECURITY_TOKEN,
        )
    }

    pub(crate) fn expired_token() -> Self {
        AuthFailure::new(ErrorCode::ExpiredTokenException, messages::EXPIRED_TOKEN)
    }

    /// The mismatch message with the canonical request and string to sign the
    /// server computed appended, exactly as Bedrock shows them.
    pub(crate) fn signature_mismatch(canonical_request: &str, string_to_sign: &str) -> Self {
        AuthFailure::new(
            ErrorCode::InvalidSignatureException,
            format!(
                "{}\n\nThe Canonical String for this request should have been\n'{canonical_request}'\n\nThe String-to-Sign should have been\n'{string_to_sign}'\n",
                messages::SIGNATURE_MISMATCH
            ),
        )
    }

    /// A bearer key without a known prefix (PROTOCOL.md §1.5). AWS sends no
    /// documented error type with it; `AccessDeniedException` is the 403 the
    /// SDKs classify the same way (not retried, client fault).
    pub(crate) fn bad_api_key_format() -> Self {
        AuthFailure {
            message_key: "Message",
            ..AuthFailure::new(
                ErrorCode::AccessDeniedException,
                "Invalid API Key format: Must start with pre-defined prefix",
            )
        }
    }
}

impl fmt::Debug for AuthFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = match self.echo_from {
            Some(at) => format!("{}<redacted>", &self.message[..at]),
            None => self.message.clone(),
        };
        f.debug_struct("AuthFailure")
            .field("code", &self.code)
            .field("message", &shown)
            .finish()
    }
}

impl fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.code)?;
        match self.echo_from {
            Some(at) => write!(f, "{}<redacted>", &self.message[..at]),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for AuthFailure {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skew_messages_match_aws() {
        let now = AmzDate::parse("20160610T181112Z").unwrap();
        let req = AmzDate::parse("20160610T180547Z").unwrap();
        let f = AuthFailure::skew(req, now).unwrap();
        assert_eq!(f.code(), ErrorCode::InvalidSignatureException);
        assert_eq!(
            f.message(),
            "Signature expired: 20160610T180547Z is now earlier than 20160610T180612Z (20160610T181112Z - 5 min.)"
        );
        let now = AmzDate::parse("20131120T104038Z").unwrap();
        let req = AmzDate::parse("20131120T113529Z").unwrap();
        assert_eq!(
            AuthFailure::skew(req, now).unwrap().message(),
            "Signature not yet current: 20131120T113529Z is still later than 20131120T104538Z (20131120T104038Z + 5 min.)"
        );
        // Exactly five minutes either way is accepted.
        assert!(AuthFailure::skew(now.offset(300), now).is_none());
        assert!(AuthFailure::skew(now.offset(-300), now).is_none());
        assert!(AuthFailure::skew(now.offset(301), now).is_some());
    }

    #[test]
    fn echoes_are_bounded_and_escape_control_characters() {
        assert_eq!(crate::bounded_echo("AWS4 x\u{0}y\tz"), "AWS4 x\\u{0}y\\tz");
        let huge = "A".repeat(400_000);
        let f = AuthFailure::incomplete(
            &["Authorization header requires 'Signature' parameter."],
            &huge,
        );
        assert!(f.message().len() < 1_000, "{}", f.message().len());
        assert!(
            f.message().ends_with(&format!(
                "...({} more bytes)",
                400_000 - crate::MAX_ECHO_CHARS
            )),
            "{}",
            &f.message()[f.message().len() - 40..]
        );
        // Multi-byte characters are cut on a character boundary.
        assert_eq!(
            crate::bounded_echo(&"é".repeat(600))
                .chars()
                .filter(|c| *c == 'é')
                .count(),
            512
        );
    }

    #[test]
    fn echoed_authorization_stays_out_of_debug_and_display() {
        let f = AuthFailure::incomplete(
            &["Authorization header requires 'Signature' parameter."],
            "Basic dXNlcjpwYXNzd29yZA==",
        );
        assert_eq!(
            f.message(),
            "Authorization header requires 'Signature' parameter. Authorization=Basic dXNlcjpwYXNzd29yZA=="
        );
        assert!(!format!("{f:?}").contains("dXNlcjpw"));
        assert!(!f.to_string().contains("dXNlcjpw"));
    }
}
