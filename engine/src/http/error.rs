//! Why a request did not get a response: the transport's one error type,
//! below both the connector and the pool.

use std::time::Duration;

/// Why a request did not get a response.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The target URI cannot be connected to as given.
    #[error("invalid target: {0}")]
    InvalidTarget(String),
    /// TCP connect failed.
    #[error("connecting to {target}: {source}")]
    Connect {
        /// `host:port`.
        target: String,
        /// The socket error.
        source: std::io::Error,
    },
    /// TCP + TLS set-up took longer than the connect timeout.
    #[error("connecting to {target}: no connection after {after:?}")]
    ConnectTimeout {
        /// `host:port`.
        target: String,
        /// The timeout that passed.
        after: Duration,
    },
    /// The TLS handshake failed.
    #[error("TLS handshake with {target}: {source}")]
    Tls {
        /// `host:port`.
        target: String,
        /// The TLS error.
        source: std::io::Error,
    },
    /// The HTTP handshake failed.
    #[error("HTTP handshake: {0}")]
    Handshake(hyper::Error),
    /// Sending the request or reading the response head failed.
    #[error("request failed: {0}")]
    Request(hyper::Error),
    /// Reading the response body failed part-way.
    #[error("response body: {0}")]
    Body(hyper::Error),
}
