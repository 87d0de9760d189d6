//! The HTTP transport the load engine sends Bedrock requests through: hyper on
//! tokio, rustls for TLS, and Quarry's own small connection pool.
//!
//! Why not hyper-util's pooled `Client`: a load generator must report where
//! time goes before the request reaches the wire. The pool here measures the
//! wait for a connection and the time to set one up (TCP + TLS) separately for
//! every request, so a slow handshake or an exhausted pool is never mistaken for
//! a slow service.

mod connect;
mod error;
mod pool;

pub use connect::{HttpVersion, TlsRoots, TransportConfig};
pub use error::TransportError;
pub use pool::{ConnectionTiming, Exchange, ResponseBody, Transport};
