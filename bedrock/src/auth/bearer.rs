//! Bedrock API keys: `Authorization: Bearer <key>` (PROTOCOL.md §1.5).
//!
//! Long-term keys (IAM service-specific credentials) start with `ABSK`;
//! short-term keys (a presigned SigV4 URL, base64-encoded) start with
//! `bedrock-api-key-`. Bedrock rejects any other shape with 403
//! `Invalid API Key format: Must start with pre-defined prefix`.

use std::fmt;

use super::secret::Secret;

/// The prefixes a well-formed Bedrock API key starts with.
pub const API_KEY_PREFIXES: [&str; 2] = ["ABSK", "bedrock-api-key-"];

/// A Bedrock API key. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(Secret);

impl ApiKey {
    /// Wraps `key` (not checked: the agent sends what it was given, so that
    /// a malformed key meets the service's own error).
    pub fn new(key: impl Into<String>) -> Self {
        ApiKey(Secret::new(key))
    }

    /// The key, for the `Authorization` header.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// True when the key starts with a prefix Bedrock recognises.
    pub fn has_known_prefix(key: &str) -> bool {
        API_KEY_PREFIXES.iter().any(|p| key.starts_with(p))
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(** redacted **)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert!(ApiKey::has_known_prefix("ABSKQmVkcm9ja0FQSUtleS1"));
        assert!(ApiKey::has_known_prefix(
            "bedrock-api-key-YmVkcm9jay5hbWF6b25hd3MuY29t"
        ));
        assert!(!ApiKey::has_known_prefix("sk-ant-123"));
        assert!(!ApiKey::has_known_prefix(""));
    }

    #[test]
    fn debug_redacts() {
        assert!(!format!("{:?}", ApiKey::new("ABSKsecret")).contains("ABSKsecret"));
    }
}
