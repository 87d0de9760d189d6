//! What one client may cost the server: connections, time and bytes, with
//! the defaults `quarry-sim` documents (README "The simulator").
//!
//! The simulator is reachable by anything that can open a socket to it, so
//! nothing a client does without valid credentials may hold memory or a
//! connection for long: a request head must arrive within
//! [`Limits::header_timeout`], a body within [`Limits::body_timeout`], a
//! connection with nothing in flight is closed after
//! [`Limits::idle_timeout`], and bodies whose signature can only be checked
//! once they are in share [`Limits::max_unverified_body_bytes`].

use std::time::Duration;

/// Default cap on open connections: room for tens of thousands of
/// streams' worth of clients while bounding file descriptors.
pub const DEFAULT_MAX_CONNECTIONS: usize = 16_384;

/// Default time a client has to send a whole request head. An SDK writes
/// its head (under 4 KiB) in one piece, so ten seconds only matter to a
/// client that trickles it (slowloris).
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Default time a connection may sit with no request in flight. Longer
/// than the 90 s the AWS SDK for Rust keeps an idle connection in its pool,
/// so a pooled client closes first and never sends on a connection the
/// server is closing; longer than any think time a load test has.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// Default time a client has to send a request's body, from the end of its
/// head: the 25 MB largest body at 1 MB/s, with room to spare.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Default cap on a request head (request line and headers, HTTP/1.1; the
/// header list, HTTP/2): Application Load Balancer's 64 KB. An SDK's head
/// is under 4 KiB.
pub const DEFAULT_MAX_HEAD_BYTES: usize = 64 * 1024;

/// Default bytes of request bodies held at once before their SigV4
/// signature can be checked: five of the largest bodies Bedrock takes, or
/// thousands of typical prompts. Past it, such bodies wait (unread, so they
/// cost nothing) until earlier ones are settled or their time runs out.
pub const DEFAULT_MAX_UNVERIFIED_BODY_BYTES: usize = 128 * 1024 * 1024;

/// Largest request body accepted (the service model's `Body` blob limit,
/// PROTOCOL.md §1.2); larger ones get a ValidationException naming it.
pub const MAX_REQUEST_BODY_BYTES: usize = 25_000_000;

/// The server's limits; [`Limits::default`] holds the documented defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once. A connection past it is answered at once
    /// with a 503 ServiceUnavailableException and closed (over TLS: closed).
    pub max_connections: usize,
    /// Time from the first byte of a request head to its end (HTTP/1.1;
    /// HTTP/2 heads are bounded by the idle timeout), and the time a TLS
    /// handshake may take. Past it the connection is closed.
    pub header_timeout: Duration,
    /// Time a connection may have no request in flight before it is closed.
    pub idle_timeout: Duration,
    /// Time from the end of a request head to the end of its body, waiting
    /// for room under `max_unverified_body_bytes` included. Past it the
    /// connection is closed.
    pub body_timeout: Duration,
    /// Largest request head in bytes (at least 8 KiB). Larger HTTP/1.1
    /// heads get 431 and a close; HTTP/2 header lists past it are refused.
    pub max_head_bytes: usize,
    /// Bytes of request bodies held at once whose signature can only be
    /// checked after the body (SigV4 without `x-amz-content-sha256`); at
    /// least [`MAX_REQUEST_BODY_BYTES`], so any one body fits.
    pub max_unverified_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            max_head_bytes: DEFAULT_MAX_HEAD_BYTES,
            max_unverified_body_bytes: DEFAULT_MAX_UNVERIFIED_BODY_BYTES,
        }
    }
}

impl Limits {
    /// The limits with every value raised to what the server can work with
    /// (one connection, an 8 KiB head hyper needs, one largest body).
    pub(crate) fn effective(self) -> Self {
        Limits {
            max_connections: self.max_connections.max(1),
            max_head_bytes: self.max_head_bytes.max(8 * 1024),
            max_unverified_body_bytes: self.max_unverified_body_bytes.max(MAX_REQUEST_BODY_BYTES),
            ..self
        }
    }
}
