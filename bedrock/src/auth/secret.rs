//! Secrets that never print, and the wall-clock hook of signature checks.
//!
//! Secret keys, session tokens and API keys travel as [`Secret`], which
//! redacts itself in `Debug`, so no log line or error can leak one.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

/// A secret string (secret key, session token, API key) that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(Arc::from(value.into()))
    }

    /// The secret itself, for signing or comparing; do not print it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("** redacted **")
    }
}

/// The wall clock used to turn an absolute expiry into a deadline.
pub type WallClock = fn() -> SystemTime;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_redacts_the_secret() {
        let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        let shown = format!("{:?}", Secret::new(secret));
        assert!(!shown.contains(secret), "{shown}");
        assert_eq!(Secret::new(secret).expose(), secret);
    }
}
