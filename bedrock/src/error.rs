//! The Bedrock error taxonomy: every modelled error and the SigV4/auth failures,
//! how they look on the wire, how a load test classifies them and whether the
//! SDKs' standard retry policy retries them (PROTOCOL.md §4).

use std::fmt;

use serde::{Deserialize, Serialize};

/// The namespace Bedrock appends to `x-amzn-ErrorType` (PROTOCOL.md §4.1).
pub const ERROR_TYPE_NAMESPACE: &str = "http://internal.amazon.com/coral/com.amazon.bedrock/";

/// The response header that names the error on non-streaming failures.
pub const ERROR_TYPE_HEADER: &str = "x-amzn-errortype";

/// Most characters of a client's own value a message repeats. AWS echoes
/// header values whole; a bound keeps a hostile 400 KB header from being
/// sent back (and logged) whole, while every header an SDK sends (a SigV4
/// `Authorization` is about 250 characters, two joined about 500) still
/// shows in full.
pub const MAX_ECHO_CHARS: usize = 512;

/// A client's value as a message repeats it: control characters escaped
/// (`\u{0}`, `\t`, `\u{7f}`), cut after [`MAX_ECHO_CHARS`] characters with a
/// note of how many bytes were left out.
pub fn bounded_echo(value: &str) -> String {
    let mut out = String::with_capacity(value.len().min(MAX_ECHO_CHARS + 32));
    for (shown, (at, c)) in value.char_indices().enumerate() {
        if shown == MAX_ECHO_CHARS {
            out.push_str(&format!("...({} more bytes)", value.len() - at));
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Every error code Quarry can receive from, or send as, Bedrock Runtime.
// The variants are spelled exactly as the service's error codes, every one of
// which ends in "Exception"; renaming them would break that one-to-one reading.
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ErrorCode {
    /// 400: the request is malformed or out of range.
    ValidationException,
    /// 400 (InvokeModel family): a service quota is exceeded.
    ServiceQuotaExceededException,
    /// 403: the caller may not use the model.
    AccessDeniedException,
    /// 404: the model or profile does not exist.
    ResourceNotFoundException,
    /// 408: the model took too long. Not retried by the SDKs.
    ModelTimeoutException,
    /// 429: token or request quota exhausted.
    ThrottlingException,
    /// 429: the model is not ready; retried by the SDKs.
    ModelNotReadyException,
    /// 424: the model returned an error.
    ModelErrorException,
    /// 424 (in-stream): the model's stream failed.
    ModelStreamErrorException,
    /// 500: an internal failure; transient.
    InternalServerException,
    /// 503: the service cannot take the request now; transient.
    ServiceUnavailableException,
    /// 403: unknown access key id or bad session token.
    UnrecognizedClientException,
    /// 403: signature mismatch or a date outside the allowed skew.
    InvalidSignatureException,
    /// 403: the session token has expired.
    ExpiredTokenException,
    /// 403: no `Authorization` header at all.
    MissingAuthenticationTokenException,
    /// 403: an `Authorization` header that lacks required parts.
    IncompleteSignatureException,
}

/// How a load test counts a request's outcome (DESIGN.md "Load models").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The request completed and its response was read to the end.
    Ok,
    /// Rejected by a per-minute quota (tokens or requests): the quota wall.
    Throttled,
    /// Rejected by a per-day token cap; waiting seconds will not help.
    DailyQuota,
    /// A 4xx the caller caused (validation, auth, not found, model errors).
    ClientError,
    /// A 5xx: the service failed.
    ServerError,
    /// The model or the client's own deadline timed out.
    Timeout,
    /// The response stream failed after it had started.
    StreamError,
    /// The connection failed or was reset before a response was read.
    Transport,
}

impl Outcome {
    /// Every outcome, in report order.
    pub const ALL: [Outcome; 8] = [
        Outcome::Ok,
        Outcome::Throttled,
        Outcome::DailyQuota,
        Outcome::ClientError,
        Outcome::ServerError,
        Outcome::Timeout,
        Outcome::StreamError,
        Outcome::Transport,
    ];

    /// The snake_case name used in reports and results files.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Throttled => "throttled",
            Outcome::DailyQuota => "daily_quota",
            Outcome::ClientError => "client_error",
            Outcome::ServerError => "server_error",
            Outcome::Timeout => "timeout",
            Outcome::StreamError => "stream_error",
            Outcome::Transport => "transport",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the SDKs' standard retry policy does with an error (PROTOCOL.md §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Retry {
    /// Never retried.
    No,
    /// Retried as throttling: long backoff (1 s base).
    Throttling,
    /// Retried as transient: short backoff.
    Transient,
}

/// Server or client fault, as the service model marks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The caller's fault (4xx).
    Client,
    /// The service's fault (5xx).
    Server,
}

impl ErrorCode {
    /// Every code, in a stable order.
    pub const ALL: [ErrorCode; 16] = [
        ErrorCode::ValidationException,
        ErrorCode::ServiceQuotaExceededException,
        ErrorCode::AccessDeniedException,
        ErrorCode::ResourceNotFoundException,
        ErrorCode::ModelTimeoutException,
        ErrorCode::ThrottlingException,
        ErrorCode::ModelNotReadyException,
        ErrorCode::ModelErrorException,
        ErrorCode::ModelStreamErrorException,
        ErrorCode::InternalServerException,
        ErrorCode::ServiceUnavailableException,
        ErrorCode::UnrecognizedClientException,
        ErrorCode::InvalidSignatureException,
        ErrorCode::ExpiredTokenException,
        ErrorCode::MissingAuthenticationTokenException,
        ErrorCode::IncompleteSignatureException,
    ];

    /// The code as it appears in `x-amzn-ErrorType` and SDK error metadata.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::ValidationException => "ValidationException",
            ErrorCode::ServiceQuotaExceededException => "ServiceQuotaExceededException",
            ErrorCode::AccessDeniedException => "AccessDeniedException",
            ErrorCode::ResourceNotFoundException => "ResourceNotFoundException",
            ErrorCode::ModelTimeoutException => "ModelTimeoutException",
            ErrorCode::ThrottlingException => "ThrottlingException",
            ErrorCode::ModelNotReadyException => "ModelNotReadyException",
            ErrorCode::ModelErrorException => "ModelErrorException",
            ErrorCode::ModelStreamErrorException => "ModelStreamErrorException",
            ErrorCode::InternalServerException => "InternalServerException",
            ErrorCode::ServiceUnavailableException => "ServiceUnavailableException",
            ErrorCode::UnrecognizedClientException => "UnrecognizedClientException",
            ErrorCode::InvalidSignatureException => "InvalidSignatureException",
            ErrorCode::ExpiredTokenException => "ExpiredTokenException",
            ErrorCode::MissingAuthenticationTokenException => "MissingAuthenticationTokenException",
            ErrorCode::IncompleteSignatureException => "IncompleteSignatureException",
        }
    }

    /// The code named `name`, exactly as the service spells it.
    pub fn from_name(name: &str) -> Option<Self> {
        ErrorCode::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The lower-camel union member name used as `:exception-type` inside
    /// event streams (`throttlingException`), PROTOCOL.md §3.5.
    pub fn exception_type(self) -> String {
        let name = self.name();
        let mut out = String::with_capacity(name.len());
        let mut chars = name.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_lowercase());
        }
        out.extend(chars);
        out
    }

    /// The code for an in-stream `:exception-type` value.
    pub fn from_exception_type(exception_type: &str) -> Option<Self> {
        ErrorCode::ALL
            .into_iter()
            .find(|c| c.exception_type() == exception_type)
    }

    /// The HTTP status Bedrock answers with (PROTOCOL.md §4.2, §4.4).
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::ValidationException | ErrorCode::ServiceQuotaExceededException => 400,
            ErrorCode::AccessDeniedException
            | ErrorCode::UnrecognizedClientException
            | ErrorCode::InvalidSignatureException
            | ErrorCode::ExpiredTokenException
            | ErrorCode::MissingAuthenticationTokenException
            | ErrorCode::IncompleteSignatureException => 403,
            ErrorCode::ResourceNotFoundException => 404,
            ErrorCode::ModelTimeoutException => 408,
            ErrorCode::ThrottlingException | ErrorCode::ModelNotReadyException => 429,
            ErrorCode::ModelErrorException | ErrorCode::ModelStreamErrorException => 424,
            ErrorCode::InternalServerException => 500,
            ErrorCode::ServiceUnavailableException => 503,
        }
    }

    /// Client or server fault, per the service model.
    pub fn fault(self) -> Fault {
        match self {
            ErrorCode::InternalServerException | ErrorCode::ServiceUnavailableException => {
                Fault::Server
            }
            _ => Fault::Client,
        }
    }

    /// The SDKs' standard retry classification (PROTOCOL.md §4.2).
    pub fn retry(self) -> Retry {
        match self {
            ErrorCode::ThrottlingException | ErrorCode::ModelNotReadyException => Retry::Throttling,
            ErrorCode::InternalServerException | ErrorCode::ServiceUnavailableException => {
                Retry::Transient
            }
            _ => Retry::No,
        }
    }

    /// How a load test counts a request that failed with this code.
    ///
    /// A `ThrottlingException` is a daily-cap rejection only when its message
    /// says so; pass the message so the two quota walls stay apart.
    pub fn outcome(self, message: &str) -> Outcome {
        match self {
            ErrorCode::ThrottlingException if is_daily_quota_message(message) => {
                Outcome::DailyQuota
            }
            ErrorCode::ThrottlingException => Outcome::Throttled,
            ErrorCode::ServiceQuotaExceededException => Outcome::DailyQuota,
            ErrorCode::ModelTimeoutException => Outcome::Timeout,
            ErrorCode::InternalServerException | ErrorCode::ServiceUnavailableException => {
                Outcome::ServerError
            }
            ErrorCode::ModelStreamErrorException => Outcome::StreamError,
            _ => Outcome::ClientError,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// True for the tokens-per-day throttling message (PROTOCOL.md §4.3).
pub fn is_daily_quota_message(message: &str) -> bool {
    message.contains("per day")
}

/// The quota a throttle names, read from its message (PROTOCOL.md §4.3):
/// Bedrock says which wall a request hit only in the message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuotaWall {
    /// Tokens per minute ("Too many tokens, ...").
    TokensPerMinute,
    /// Requests per minute ("Too many requests, ...").
    RequestsPerMinute,
    /// Tokens per day ("Too many tokens per day, ...").
    TokensPerDay,
}

impl QuotaWall {
    /// Every wall, in counter order.
    pub const ALL: [QuotaWall; 3] = [
        QuotaWall::TokensPerMinute,
        QuotaWall::RequestsPerMinute,
        QuotaWall::TokensPerDay,
    ];

    /// The wall a throttling message names; `None` when it names none
    /// (a proxy's 429, a reworded message).
    pub fn from_message(message: &str) -> Option<QuotaWall> {
        let m = message.to_ascii_lowercase();
        if is_daily_quota_message(&m) {
            Some(QuotaWall::TokensPerDay)
        } else if m.contains("too many tokens") {
            Some(QuotaWall::TokensPerMinute)
        } else if m.contains("too many requests") {
            Some(QuotaWall::RequestsPerMinute)
        } else {
            None
        }
    }

    /// The snake_case name (the simulator's throttle reasons use the same).
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaWall::TokensPerMinute => "tokens_per_minute",
            QuotaWall::RequestsPerMinute => "requests_per_minute",
            QuotaWall::TokensPerDay => "tokens_per_day",
        }
    }

    /// The quota's usual abbreviation: TPM, RPM, TPD.
    pub fn abbreviation(self) -> &'static str {
        match self {
            QuotaWall::TokensPerMinute => "TPM",
            QuotaWall::RequestsPerMinute => "RPM",
            QuotaWall::TokensPerDay => "TPD",
        }
    }
}

/// Message texts Bedrock is known to send (PROTOCOL.md §4.3, §4.4).
pub mod messages {
    /// ThrottlingException for a tokens-per-minute quota.
    pub const TOO_MANY_TOKENS: &str = "Too many tokens, please wait before trying again.";
    /// ThrottlingException for a requests-per-minute quota.
    pub const TOO_MANY_REQUESTS: &str = "Too many requests, please wait before trying again.";
    /// ThrottlingException for a tokens-per-day cap.
    pub const TOO_MANY_TOKENS_PER_DAY: &str =
        "Too many tokens per day, please wait before trying again.";
    /// ServiceUnavailableException.
    pub const SERVICE_UNAVAILABLE: &str = "Bedrock is unable to process your request.";
    /// ValidationException for an unknown model id.
    pub const INVALID_MODEL_ID: &str = "The provided model identifier is invalid.";
    /// UnrecognizedClientException.
    pub const INVALID_SECURITY_TOKEN: &str =
        "The security token included in the request is invalid.";
    /// ExpiredTokenException.
    pub const EXPIRED_TOKEN: &str = "The security token included in the request is expired";
    /// InvalidSignatureException, before the canonical-request details.
    pub const SIGNATURE_MISMATCH: &str = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";
    /// MissingAuthenticationTokenException.
    pub const MISSING_AUTHENTICATION_TOKEN: &str = "Missing Authentication Token";
    /// AccessDeniedException for a model the account may not use.
    pub const NO_MODEL_ACCESS: &str =
        "You don't have access to the model with the specified model ID.";
    /// A conversation that does not start with a user message.
    pub const MUST_START_WITH_USER: &str = "A conversation must start with a user message. Try again with a conversation that starts with a user message.";
    /// A conversation whose roles do not alternate.
    pub const MUST_ALTERNATE: &str = "A conversation must alternate between user and assistant roles. Make sure the conversation alternates between user and assistant roles and try again.";
    /// An input longer than the model's context window.
    pub const INPUT_TOO_LONG: &str = "Input is too long for requested model.";
    /// An in-stream model failure.
    pub const MODEL_STREAM_ERROR: &str = "Model Stream Error";
}

/// An error response from Bedrock, parsed from the wire as the SDKs parse it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceError {
    /// The code, when it is one Quarry knows.
    pub code: Option<ErrorCode>,
    /// The code exactly as received (kept for unknown codes).
    pub raw_code: String,
    /// The message text (`message`, `Message` or `errorMessage`).
    pub message: String,
    /// The HTTP status, or 200 for an in-stream exception.
    pub status: u16,
}

impl ServiceError {
    /// Parses a non-streaming error response the way aws-sdk-rust's
    /// `json_errors` and botocore's `RestJSONParser` do (PROTOCOL.md §4.1):
    /// the `x-amzn-ErrorType` header wins, then body `code`/`Code`, then
    /// `__type`; the code is cut at the first `:` and after the last `#`.
    pub fn from_response(status: u16, error_type_header: Option<&str>, body: &[u8]) -> Self {
        let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        let field = |names: &[&str]| -> Option<String> {
            let obj = json.as_ref()?.as_object()?;
            names
                .iter()
                .find_map(|n| obj.get(*n).and_then(|v| v.as_str()).map(str::to_owned))
        };
        let raw = error_type_header
            .map(str::to_owned)
            .or_else(|| field(&["code", "Code"]))
            .or_else(|| field(&["__type"]))
            .unwrap_or_default();
        let raw_code = sanitize_error_code(&raw).to_owned();
        let message = field(&["message", "Message", "errorMessage"]).unwrap_or_default();
        let code = ErrorCode::from_name(&raw_code).or_else(|| fallback_code(status));
        ServiceError {
            code,
            raw_code,
            message,
            status,
        }
    }

    /// Builds the error for an in-stream `:exception-type` frame.
    pub fn from_stream_exception(exception_type: &str, payload: &[u8]) -> Self {
        let code = ErrorCode::from_exception_type(exception_type);
        let mut err = ServiceError::from_response(200, Some(exception_type), payload);
        err.code = code;
        err.raw_code = exception_type.to_owned();
        err
    }

    /// How a load test counts this error.
    pub fn outcome(&self) -> Outcome {
        match self.code {
            Some(code) => code.outcome(&self.message),
            None if self.status >= 500 => Outcome::ServerError,
            None if self.status == 429 => Outcome::Throttled,
            None => Outcome::ClientError,
        }
    }

    /// The quota a throttle names (`None` for other errors, or a throttle
    /// whose message names none).
    pub fn quota_wall(&self) -> Option<QuotaWall> {
        matches!(self.outcome(), Outcome::Throttled | Outcome::DailyQuota)
            .then(|| QuotaWall::from_message(&self.message))
            .flatten()
    }

    /// The standard retry classification; unknown codes fall back on status.
    pub fn retry(&self) -> Retry {
        match self.code {
            Some(code) => code.retry(),
            None if matches!(self.status, 500 | 502 | 503 | 504) => Retry::Transient,
            None if self.status == 429 => Retry::Throttling,
            None => Retry::No,
        }
    }
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.raw_code, self.status, self.message)
    }
}

impl std::error::Error for ServiceError {}

/// `ThrottlingException:http://...` -> `ThrottlingException`;
/// `com.amazon.coral.service#UnknownOperationException` -> `UnknownOperationException`.
pub fn sanitize_error_code(raw: &str) -> &str {
    let before_colon = raw.split(':').next().unwrap_or(raw);
    before_colon.rsplit('#').next().unwrap_or(before_colon)
}

/// Codes for statuses that arrive without a usable error type.
fn fallback_code(status: u16) -> Option<ErrorCode> {
    match status {
        500 => Some(ErrorCode::InternalServerException),
        503 => Some(ErrorCode::ServiceUnavailableException),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_throttle_message_names_the_quota_wall() {
        use messages::*;
        let wall = |m| QuotaWall::from_message(m);
        assert_eq!(wall(TOO_MANY_TOKENS), Some(QuotaWall::TokensPerMinute));
        assert_eq!(wall(TOO_MANY_REQUESTS), Some(QuotaWall::RequestsPerMinute));
        assert_eq!(wall(TOO_MANY_TOKENS_PER_DAY), Some(QuotaWall::TokensPerDay));
        assert_eq!(wall("Rate exceeded"), None);
        let throttle = ServiceError::from_response(
            429,
            Some("ThrottlingException"),
            br#"{"message":"Too many requests, please wait before trying again."}"#,
        );
        assert_eq!(throttle.quota_wall(), Some(QuotaWall::RequestsPerMinute));
        let other = ServiceError::from_response(
            400,
            Some("ValidationException"),
            br#"{"message":"Too many tokens"}"#,
        );
        assert_eq!(other.quota_wall(), None, "only throttles name a wall");
    }

    #[test]
    fn statuses_match_the_service_model() {
        assert_eq!(ErrorCode::ThrottlingException.status(), 429);
        assert_eq!(ErrorCode::ModelNotReadyException.status(), 429);
        assert_eq!(ErrorCode::ModelTimeoutException.status(), 408);
        assert_eq!(ErrorCode::ServiceQuotaExceededException.status(), 400);
        assert_eq!(ErrorCode::ModelErrorException.status(), 424);
        assert_eq!(ErrorCode::ModelStreamErrorException.status(), 424);
        assert_eq!(ErrorCode::InternalServerException.status(), 500);
        assert_eq!(ErrorCode::ServiceUnavailableException.status(), 503);
        assert_eq!(ErrorCode::InvalidSignatureException.status(), 403);
    }

    #[test]
    fn retry_policy_matches_the_sdks() {
        let retried: Vec<_> = ErrorCode::ALL
            .into_iter()
            .filter(|c| c.retry() != Retry::No)
            .collect();
        assert_eq!(
            retried,
            [
                ErrorCode::ThrottlingException,
                ErrorCode::ModelNotReadyException,
                ErrorCode::InternalServerException,
                ErrorCode::ServiceUnavailableException,
            ]
        );
    }

    #[test]
    fn exception_types_round_trip() {
        assert_eq!(
            ErrorCode::ThrottlingException.exception_type(),
            "throttlingException"
        );
        for code in ErrorCode::ALL {
            assert_eq!(
                ErrorCode::from_exception_type(&code.exception_type()),
                Some(code)
            );
            assert_eq!(ErrorCode::from_name(code.name()), Some(code));
        }
    }

    #[test]
    fn header_wins_over_body() {
        let err = ServiceError::from_response(
            429,
            Some("ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"),
            br#"{"message":"Too many tokens, please wait before trying again."}"#,
        );
        assert_eq!(err.code, Some(ErrorCode::ThrottlingException));
        assert_eq!(err.message, messages::TOO_MANY_TOKENS);
        assert_eq!(err.outcome(), Outcome::Throttled);
    }

    #[test]
    fn body_code_and_capital_message() {
        let err = ServiceError::from_response(
            403,
            None,
            br#"{"__type":"com.amazon.coral#AccessDeniedException","Message":"nope"}"#,
        );
        assert_eq!(err.code, Some(ErrorCode::AccessDeniedException));
        assert_eq!(err.message, "nope");
        assert_eq!(err.outcome(), Outcome::ClientError);
    }

    #[test]
    fn daily_cap_is_its_own_outcome() {
        let err = ServiceError::from_response(
            429,
            Some("ThrottlingException"),
            format!(r#"{{"message":"{}"}}"#, messages::TOO_MANY_TOKENS_PER_DAY).as_bytes(),
        );
        assert_eq!(err.outcome(), Outcome::DailyQuota);
    }

    #[test]
    fn throttles_name_their_quota() {
        let throttle = |message: &str| {
            ServiceError::from_response(
                429,
                Some("ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"),
                format!(r#"{{"message":"{message}"}}"#).as_bytes(),
            )
        };
        for (message, quota, outcome) in [
            (
                messages::TOO_MANY_REQUESTS,
                QuotaWall::RequestsPerMinute,
                Outcome::Throttled,
            ),
            (
                "Too many requests, please wait before trying again. You have sent too many requests.  Wait before trying again.",
                QuotaWall::RequestsPerMinute,
                Outcome::Throttled,
            ),
            (
                messages::TOO_MANY_TOKENS,
                QuotaWall::TokensPerMinute,
                Outcome::Throttled,
            ),
            (
                messages::TOO_MANY_TOKENS_PER_DAY,
                QuotaWall::TokensPerDay,
                Outcome::DailyQuota,
            ),
        ] {
            let err = throttle(message);
            assert_eq!(err.quota_wall(), Some(quota), "{message}");
            assert_eq!(err.outcome(), outcome, "{message}");
        }
        let denied = ServiceError::from_response(403, Some("AccessDeniedException"), b"{}");
        assert_eq!(denied.quota_wall(), None);
    }

    #[test]
    fn unknown_codes_fall_back_on_status() {
        let err = ServiceError::from_response(502, None, b"<html>bad gateway</html>");
        assert_eq!(err.code, None);
        assert_eq!(err.outcome(), Outcome::ServerError);
        assert_eq!(err.retry(), Retry::Transient);
        let err = ServiceError::from_response(500, None, b"");
        assert_eq!(err.code, Some(ErrorCode::InternalServerException));
    }

    #[test]
    fn stream_exception() {
        let err = ServiceError::from_stream_exception(
            "modelStreamErrorException",
            br#"{"message":"Model Stream Error","originalStatusCode":500}"#,
        );
        assert_eq!(err.code, Some(ErrorCode::ModelStreamErrorException));
        assert_eq!(err.outcome(), Outcome::StreamError);
        assert_eq!(err.status, 200);
    }
}
