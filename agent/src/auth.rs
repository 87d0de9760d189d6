//! Who may drive this agent: a bearer token, mutual TLS, or (on loopback
//! only) nobody checks. Agents hold cloud credentials, so an agent reachable
//! from a network always authenticates its controller.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tonic::Request;
use tonic::Status;

use super::DaemonError;

/// The shared secret a controller presents as `authorization: Bearer <token>`.
/// Its Debug form is redacted; it is never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken(String);

impl BearerToken {
    /// A token from a token file's contents (surrounding whitespace trimmed);
    /// `None` when it is empty.
    pub fn from_file_contents(contents: &str) -> Option<Self> {
        let token = contents.trim();
        (!token.is_empty()).then(|| BearerToken(token.to_owned()))
    }

    /// The `authorization` metadata value a client sends.
    pub fn header_value(&self) -> String {
        format!("Bearer {}", self.0)
    }

    /// Compares `presented` with the token in time that depends only on the
    /// presented value's length, never on where it first differs.
    fn matches(&self, presented: &[u8]) -> bool {
        let secret = self.0.as_bytes();
        let mut diff = secret.len() ^ presented.len();
        for (i, byte) in presented.iter().enumerate() {
            diff |= usize::from(secret.get(i).copied().unwrap_or(0) ^ byte);
        }
        diff == 0
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

/// Checks a request's bearer token (the interceptor of the Agent service).
pub(crate) fn check_token(token: &BearerToken, request: &Request<()>) -> Result<(), Status> {
    let presented = request
        .metadata()
        .get("authorization")
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
    match presented {
        Some(p) if token.matches(p) => Ok(()),
        _ => Err(crate::error::status(&DaemonError::Unauthenticated)),
    }
}

/// Logs rejected bearer tokens, at most one line per period, with the
/// number rejected since the last line and the last one's peer address;
/// never a token.
pub(crate) struct RejectionLog {
    every: Duration,
    /// When the last line was logged, and rejections since.
    state: Mutex<(Option<Instant>, u64)>,
}

impl RejectionLog {
    /// At most one line per `every`.
    pub(crate) fn new(every: Duration) -> Self {
        RejectionLog {
            every,
            state: Mutex::new((None, 0)),
        }
    }

    /// Counts one rejection of `request`, and logs when a line is due.
    pub(crate) fn rejected(&self, request: &Request<()>) {
        if let Some(n) = self.count(Instant::now()) {
            tracing::warn!(
                peer = ?request.remote_addr(),
                rejected = n,
                "rejected {n} request(s) with a missing or wrong bearer token since the last such line"
            );
        }
    }

    /// Counts one rejection at `now`; `Some(rejections since the last
    /// line, this one included)` when a line is due.
    fn count(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (last, n) = &mut *state;
        *n += 1;
        let due = last.is_none_or(|l| now.saturating_duration_since(l) >= self.every);
        due.then(|| {
            *last = Some(now);
            std::mem::take(n)
        })
    }
}

/// True for 127.0.0.0/8 and ::1 (and IPv4-mapped loopback).
pub fn is_loopback(addr: &SocketAddr) -> bool {
    match addr.ip() {
        std::net::IpAddr::V4(ip) => ip.is_loopback(),
        std::net::IpAddr::V6(ip) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison_and_redaction() {
        let token = BearerToken::from_file_contents("  s3cret\n").unwrap();
        assert!(token.matches(b"s3cret"));
        assert!(!token.matches(b"s3cre"));
        assert!(!token.matches(b"s3cret!"));
        assert!(!token.matches(b"S3cret"));
        assert!(!token.matches(b""));
        assert_eq!(format!("{token:?}"), "BearerToken(<redacted>)");
        assert_eq!(BearerToken::from_file_contents(" \n"), None);
    }

    #[test]
    fn interceptor_wants_the_bearer_scheme() {
        let token = BearerToken::from_file_contents("t").unwrap();
        let mut ok = Request::new(());
        ok.metadata_mut()
            .insert("authorization", "Bearer t".parse().unwrap());
        assert!(check_token(&token, &ok).is_ok());
        let mut bare = Request::new(());
        bare.metadata_mut()
            .insert("authorization", "t".parse().unwrap());
        let err = check_token(&token, &bare).unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
        assert!(check_token(&token, &Request::new(())).is_err());
    }

    #[test]
    fn rejections_are_logged_at_most_once_per_period_with_a_count() {
        let log = RejectionLog::new(Duration::from_secs(60));
        let t0 = Instant::now();
        assert_eq!(log.count(t0), Some(1));
        assert_eq!(log.count(t0 + Duration::from_secs(1)), None);
        assert_eq!(log.count(t0 + Duration::from_secs(59)), None);
        // The line after the period counts every rejection since the last.
        assert_eq!(log.count(t0 + Duration::from_secs(60)), Some(3));
        assert_eq!(log.count(t0 + Duration::from_secs(61)), None);
        assert_eq!(log.count(t0 + Duration::from_secs(200)), Some(2));
    }

    #[test]
    fn loopback_addresses() {
        for a in [
            "127.0.0.1:1",
            "127.9.9.9:1",
            "[::1]:1",
            "[::ffff:127.0.0.1]:1",
        ] {
            assert!(is_loopback(&a.parse().unwrap()), "{a}");
        }
        for a in ["0.0.0.0:1", "10.0.0.1:1", "[::]:1"] {
            assert!(!is_loopback(&a.parse().unwrap()), "{a}");
        }
    }
}
