//! The simulator's HTTP server: Bedrock Runtime's five operations over
//! HTTP/1.1 and HTTP/2 (h2c, or h2 over the optional TLS) on one port, plus
//! the simulator's own `/_quarry/{stats,metrics,health}` endpoints.
//!
//! Layers, top down: this module (start, stop, the in-process service);
//! `connection` (accept, the connection cap, per-connection timeouts);
//! `handler`, the dispatcher of one request; the answers (`admin`,
//! `unary`, `stream`); below them `context` (shared state, response
//! headers, an admitted request), `intake` (request bodies under their
//! limits), `auth`, `prompt`, `router`, `errors`, `body`, `limits`.
//!
//! What a client may cost the server is bounded by [`Limits`] (see its
//! module): a request whose head fails authentication is answered before
//! any of its body is read, slow heads, slow bodies and idle connections
//! are closed, and a connection past the cap gets a prompt 503.
//! [`SimServer::shutdown`] stops accepting, asks every connection to finish
//! its in-flight requests and waits up to the grace period for them.

mod admin;
mod auth;
mod body;
mod connection;
mod context;
mod errors;
mod handler;
mod intake;
mod limits;
mod prompt;
mod quotas;
mod router;
mod stream;
mod tls;
mod unary;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use quarry_bedrock::auth::WallClock;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

pub use limits::{
    DEFAULT_BODY_TIMEOUT, DEFAULT_HEADER_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_HEAD_BYTES, DEFAULT_MAX_UNVERIFIED_BODY_BYTES, Limits, MAX_REQUEST_BODY_BYTES,
};
pub use router_pub::ADMIN_PATH_PREFIX;
pub use tls::{TlsError, TlsSettings};

use crate::config::{ConfigError, SimConfig};
use crate::runtime::Simulator;
use connection::Acceptor;
use context::Shared;

mod router_pub {
    /// Prefix of the simulator's own endpoints (`/_quarry/stats`,
    /// `/_quarry/metrics`, `/_quarry/health`), which no Bedrock route uses.
    pub const ADMIN_PATH_PREFIX: &str = super::router::ADMIN_PREFIX;
}

/// Default time in-flight requests get to finish at shutdown.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why (in the message, not the chain, so it is printed once).
        error: io::Error,
    },
    /// The simulator configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// The wall clock the server reads for `Date` headers and SigV4 skew
/// checks: the one place the simulator reads real time.
#[allow(clippy::disallowed_methods)]
pub fn system_clock() -> SystemTime {
    // A server must compare request dates with the real time of day.
    SystemTime::now()
}

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Where to listen (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// What one client may cost: connections, timeouts, head and body bytes.
    pub limits: Limits,
    /// Time in-flight requests get to finish at shutdown.
    pub shutdown_grace: Duration,
    /// Serve HTTPS with this certificate instead of plain HTTP.
    pub tls: Option<TlsSettings>,
    /// The wall clock (tests shift it to provoke skew errors).
    pub clock: WallClock,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            limits: Limits::default(),
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            tls: None,
            clock: system_clock,
        }
    }
}

/// A running simulator server. Dropping it stops accepting connections;
/// [`SimServer::shutdown`] also waits for in-flight requests.
#[derive(Debug)]
pub struct SimServer {
    addr: SocketAddr,
    tls: bool,
    sim: Arc<Simulator>,
    stop: CancellationToken,
    /// One permit per connection in service; shutdown waits for them all.
    connections: Arc<Semaphore>,
    max_connections: u32,
    grace: Duration,
    /// The accept loop; it owns the listener, so when it has ended no
    /// connection is accepted any more.
    acceptor: Option<tokio::task::JoinHandle<()>>,
}

impl SimServer {
    /// Starts a simulator for `config` on a free loopback port, plain HTTP
    /// (tests, and the controller's embedded default).
    pub async fn start(config: &SimConfig) -> Result<SimServer, ServerError> {
        SimServer::bind(Simulator::new(config)?, ServerOptions::default()).await
    }

    /// Binds `options.listen` and serves `sim` on the current tokio runtime.
    pub async fn bind(
        sim: Arc<Simulator>,
        options: ServerOptions,
    ) -> Result<SimServer, ServerError> {
        let bind_error = |error| ServerError::Bind {
            addr: options.listen,
            error,
        };
        let listener = TcpListener::bind(options.listen)
            .await
            .map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        let limits = options.limits.effective();
        let max_connections =
            u32::try_from(limits.max_connections.min(Semaphore::MAX_PERMITS)).unwrap_or(u32::MAX);
        let limits = Limits {
            max_connections: max_connections as usize,
            ..limits
        };
        let connections = Arc::new(Semaphore::new(max_connections as usize));
        let stop = CancellationToken::new();
        let acceptor = Acceptor {
            listener,
            shared: Arc::new(Shared::new(Arc::clone(&sim), options.clock, &limits)),
            limits,
            tls: options.tls.as_ref().map(TlsSettings::acceptor),
            connections: Arc::clone(&connections),
            stop: stop.clone(),
        };
        let acceptor = tokio::spawn(acceptor.run());
        Ok(SimServer {
            addr,
            tls: options.tls.is_some(),
            sim,
            stop,
            connections,
            max_connections,
            grace: options.shutdown_grace,
            acceptor: Some(acceptor),
        })
    }

    /// The bound address (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR` or `https://ADDR`.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The simulator behind the server (stats, accounts).
    pub fn simulator(&self) -> &Arc<Simulator> {
        &self.sim
    }

    /// Connections in service now.
    pub fn open_connections(&self) -> usize {
        self.max_connections as usize - self.connections.available_permits()
    }

    /// Stops accepting, lets in-flight requests finish within the grace
    /// period; true when every connection closed in time.
    pub async fn shutdown(mut self) -> bool {
        self.stop_accepting().await;
        self.drain().await
    }

    /// Closes the listener (a new connection is refused by the kernel from
    /// when this returns) and asks every connection to finish what is in
    /// flight and close.
    pub async fn stop_accepting(&mut self) {
        self.stop.cancel();
        if let Some(acceptor) = self.acceptor.take() {
            // The loop returns at the cancellation; a panic in it has
            // already closed the listener too.
            let _ = acceptor.await;
        }
    }

    /// Waits up to the grace period for every connection to close; true
    /// when they all did. Dropping the future (a second stop signal) leaves
    /// the rest to be cut when the runtime ends.
    pub async fn drain(self) -> bool {
        self.stop.cancel();
        let all = Arc::clone(&self.connections).acquire_many_owned(self.max_connections);
        tokio::time::timeout(self.grace, all).await.is_ok()
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The simulator answering requests in process, without a socket: the same
/// routing, authentication, admission and answers as [`SimServer`], for
/// benchmarks of the request path and for embedding.
pub struct SimService {
    shared: Arc<Shared>,
}

impl SimService {
    /// A service for `sim`, reading `clock` for `Date` headers and SigV4
    /// skew checks, with the default [`Limits`].
    pub fn new(sim: Arc<Simulator>, clock: WallClock) -> Self {
        SimService {
            shared: Arc::new(Shared::new(sim, clock, &Limits::default())),
        }
    }

    /// Answers one request (the path as on the wire, still percent-encoded)
    /// with its whole body (every frame of a stream); `None` when the answer
    /// is a cut connection (an injected reset).
    pub async fn answer(&self, request: http::Request<Bytes>) -> Option<http::Response<Bytes>> {
        let request = request.map(http_body_util::Full::new);
        let response = handler::handle(Arc::clone(&self.shared), request)
            .await
            .ok()?;
        let (parts, body) = response.into_parts();
        let body = http_body_util::BodyExt::collect(body).await.ok()?;
        Some(http::Response::from_parts(parts, body.to_bytes()))
    }
}

impl std::fmt::Debug for SimService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimService").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(path: &str) -> http::Request<Bytes> {
        http::Request::post(path)
            .header("content-type", "application/json")
            .body(Bytes::from_static(
                br#"{"messages":[{"role":"user","content":[{"text":"Hi"}]}]}"#,
            ))
            .unwrap()
    }

    #[tokio::test]
    async fn in_process_service_routes_and_authenticates() {
        let config = SimConfig::from_toml("latency = { kind = \"zero\" }\n", "sim.toml").unwrap();
        let service = SimService::new(Simulator::new(&config).unwrap(), system_clock);
        let unknown = service.answer(post("/model/m/chat")).await.unwrap();
        assert_eq!(unknown.status(), 200);
        assert_eq!(unknown.body(), router::UNKNOWN_OPERATION_BODY.as_bytes());
        let unsigned = service
            .answer(post("/model/meta.llama3-3-70b-instruct-v1%3A0/converse"))
            .await
            .unwrap();
        assert_eq!(unsigned.status(), 403);
        assert!(
            String::from_utf8_lossy(unsigned.body()).contains("Missing Authentication Token"),
            "{:?}",
            unsigned.body()
        );
    }
}
