//! The one place a refusal becomes a Bedrock wire error (PROTOCOL.md §4.1,
//! §4.4): status from the code, `x-amzn-ErrorType: Name:<namespace>`, a
//! `{"message":…}` body (`Message` for the API-key front end), plus the
//! request id, `Date` and `Content-Type` every response carries.

use std::borrow::Cow;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, DATE};
use http::{HeaderValue, Response, StatusCode};
use quarry_bedrock::auth::AuthFailure;
use quarry_bedrock::header_names::{APPLICATION_JSON, REQUEST_ID};
use quarry_bedrock::{
    ERROR_TYPE_HEADER, ERROR_TYPE_NAMESPACE, ErrorCode, MalformedInput, messages,
};

use super::body::SimBody;
use super::limits::MAX_REQUEST_BODY_BYTES;
use crate::catalog::ResolveError;
use crate::faults::InjectedError;
use crate::quota::Throttle;

/// Longest message sent, in bytes. Messages repeat pieces of the request
/// (ids, field names, the canonical request of a signature mismatch, each
/// piece bounded where it is made); this bounds the whole, so no request
/// can make the server write back more than this. A signature mismatch from
/// an SDK is under 1 KB.
const MAX_MESSAGE_BYTES: usize = 8 * 1024;

/// An error answer, before it is put on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WireError {
    pub(crate) code: ErrorCode,
    pub(crate) message: Cow<'static, str>,
    /// `message`, or `Message` for the API-key front end.
    pub(crate) message_key: &'static str,
}

impl WireError {
    pub(crate) fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        WireError {
            code,
            message: message.into(),
            message_key: "message",
        }
    }

    pub(crate) fn validation(message: impl Into<Cow<'static, str>>) -> Self {
        WireError::new(ErrorCode::ValidationException, message)
    }

    /// The model id in the path is not one Bedrock would accept.
    pub(crate) fn invalid_model_id() -> Self {
        WireError::validation(messages::INVALID_MODEL_ID)
    }

    /// A body over [`MAX_REQUEST_BODY_BYTES`].
    pub(crate) fn body_too_large() -> Self {
        WireError::validation(format!(
            "1 validation error detected: Value at 'body' failed to satisfy constraint: Member must have length less than or equal to {MAX_REQUEST_BODY_BYTES}"
        ))
    }

    /// A connection past the connection cap (the simulator's own limit, so
    /// the message says so; 503 is what SDKs retry).
    pub(crate) fn at_capacity(max_connections: usize) -> Self {
        WireError::new(
            ErrorCode::ServiceUnavailableException,
            format!(
                "The simulator is serving its maximum of {max_connections} connections (--max-connections); retry later."
            ),
        )
    }

    /// A Coral-style constraint failure on one member (`inferenceConfig.maxTokens`).
    pub(crate) fn constraint(member: &str, value: impl std::fmt::Display, rule: &str) -> Self {
        WireError::validation(format!(
            "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: Member must {rule}"
        ))
    }

    /// A JSON body that does not match the operation's shape.
    pub(crate) fn malformed(detail: impl std::fmt::Display) -> Self {
        WireError::validation(format!(
            "Malformed input request: {detail}, please reformat your input and try again."
        ))
    }

    /// The HTTP status.
    pub(crate) fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::BAD_REQUEST)
    }

    /// The `{"message":…}` body: the message with control characters
    /// other than line breaks and tabs escaped, cut at [`MAX_MESSAGE_BYTES`].
    pub(crate) fn body(&self) -> Vec<u8> {
        let mut map = serde_json::Map::with_capacity(1);
        map.insert(
            self.message_key.to_owned(),
            serde_json::Value::String(bounded_message(&self.message)),
        );
        // unwrap is safe because a map of strings always serializes.
        serde_json::to_vec(&map).unwrap()
    }

    /// The full response.
    pub(crate) fn into_response(self, request_id: &str, date: HeaderValue) -> Response<SimBody> {
        let mut response = Response::new(SimBody::full(Bytes::from(self.body())));
        *response.status_mut() = self.status();
        let h = response.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static(APPLICATION_JSON));
        if let Ok(v) = HeaderValue::from_str(&format!("{}:{ERROR_TYPE_NAMESPACE}", self.code)) {
            h.insert(ERROR_TYPE_HEADER, v);
        }
        if let Ok(v) = HeaderValue::from_str(request_id) {
            h.insert(REQUEST_ID, v);
        }
        h.insert(DATE, date);
        response
    }
}

/// `message` as sent (see [`WireError::body`]).
fn bounded_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(MAX_MESSAGE_BYTES + 32));
    for (at, c) in message.char_indices() {
        if out.len() >= MAX_MESSAGE_BYTES {
            out.push_str(&format!("...({} more bytes)", message.len() - at));
            break;
        }
        if c.is_control() && c != '\n' && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

impl From<AuthFailure> for WireError {
    fn from(f: AuthFailure) -> Self {
        WireError {
            code: f.code(),
            message: Cow::Owned(f.message().to_owned()),
            message_key: f.message_key(),
        }
    }
}

impl From<ResolveError> for WireError {
    fn from(e: ResolveError) -> Self {
        WireError::new(e.code(), e.to_string())
    }
}

impl From<MalformedInput> for WireError {
    fn from(e: MalformedInput) -> Self {
        WireError::validation(e.to_string())
    }
}

impl From<InjectedError> for WireError {
    fn from(e: InjectedError) -> Self {
        WireError::new(e.code, e.message)
    }
}

impl From<Throttle> for WireError {
    fn from(t: Throttle) -> Self {
        WireError::new(ErrorCode::ThrottlingException, t.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_matches_the_real_capture() {
        let r = WireError::new(ErrorCode::ThrottlingException, messages::TOO_MANY_TOKENS)
            .into_response(
                "ca47a5ce-e260-4824-aa0e-2e62669d5d6e",
                HeaderValue::from_static("x"),
            );
        assert_eq!(r.status(), 429);
        assert_eq!(
            r.headers()[ERROR_TYPE_HEADER],
            "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"
        );
        assert_eq!(
            r.headers()["x-amzn-requestid"],
            "ca47a5ce-e260-4824-aa0e-2e62669d5d6e"
        );
        let SimBody::Full(Some(body)) = r.into_body() else {
            panic!("not a full body")
        };
        // PROTOCOL.md §4.1: Content-Length 63 for exactly this body.
        assert_eq!(body.len(), 63);
        assert_eq!(
            &body[..],
            br#"{"message":"Too many tokens, please wait before trying again."}"#
        );
    }

    #[test]
    fn messages_are_bounded_and_carry_no_control_bytes() {
        let e = WireError::validation(format!("id \u{0}\u{1b}[31m {}", "x".repeat(100_000)));
        let body = e.body();
        assert!(body.len() < MAX_MESSAGE_BYTES + 64, "{}", body.len());
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let m = v["message"].as_str().unwrap();
        assert!(m.starts_with("id \\u{0}\\u{1b}[31m x"), "{m}");
        assert!(!m.chars().any(|c| c.is_control()), "{m}");
        assert!(m.ends_with("more bytes)"), "{m}");
        // The line breaks of a signature mismatch stay as AWS sends them.
        assert_eq!(bounded_message("a\n\nb\tc"), "a\n\nb\tc");
    }

    #[test]
    fn messages_are_json_escaped() {
        let e = WireError::validation("a \"quoted\"\nline");
        let v: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(v["message"], "a \"quoted\"\nline");
    }
}
