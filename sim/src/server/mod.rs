//! The simulator's HTTP server: Bedrock Runtime's five operations over
//! HTTP/1.1 and HTTP/2 (h2c, or h2 over the optional TLS) on one port, plus
//! the simulator's own `/_quarry/{stats,metrics,health}` endpoints.
//!
//! One task per connection, at most [`ServerOptions::max_connections`] at
//! once (default [`DEFAULT_MAX_CONNECTIONS`]; past it, new connections wait
//! in the kernel's accept backlog). [`SimServer::shutdown`] stops
//! accepting, asks every connection to finish its in-flight requests and
//! waits up to the grace period for them.

mod admin;
mod auth;
mod body;
mod errors;
mod handler;
mod prompt;
mod router;
mod stream;
mod tls;
mod unary;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use quarry_bedrock::auth::WallClock;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

pub use errors_pub::MAX_REQUEST_BODY_BYTES;
pub use router_pub::ADMIN_PATH_PREFIX;
pub use tls::TlsSettings;

use crate::config::{ConfigError, SimConfig};
use crate::runtime::Simulator;
use handler::Shared;

mod errors_pub {
    /// Largest request body accepted; larger ones get a ValidationException
    /// naming this limit (PROTOCOL.md §1.2).
    pub const MAX_REQUEST_BODY_BYTES: usize = super::errors::MAX_BODY_BYTES;
}

mod router_pub {
    /// Prefix of the simulator's own endpoints (`/_quarry/stats`,
    /// `/_quarry/metrics`, `/_quarry/health`), which no Bedrock route uses.
    pub const ADMIN_PATH_PREFIX: &str = super::router::ADMIN_PREFIX;
}

/// Default cap on open connections: room for tens of thousands of
/// streams' worth of clients while bounding file descriptors.
pub const DEFAULT_MAX_CONNECTIONS: usize = 16_384;

/// Default time in-flight requests get to finish at shutdown.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// The simulator configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The TLS certificate or configuration could not be built.
    #[error("TLS setup failed: {0}")]
    Tls(String),
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
    /// Most connections served at once.
    pub max_connections: usize,
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
            max_connections: DEFAULT_MAX_CONNECTIONS,
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
    connections: Arc<Semaphore>,
    max_connections: u32,
    grace: Duration,
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
        let listener =
            TcpListener::bind(options.listen)
                .await
                .map_err(|source| ServerError::Bind {
                    addr: options.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: options.listen,
            source,
        })?;
        let max_connections =
            u32::try_from(options.max_connections.clamp(1, Semaphore::MAX_PERMITS))
                .unwrap_or(u32::MAX);
        let connections = Arc::new(Semaphore::new(max_connections as usize));
        let stop = CancellationToken::new();
        let acceptor = Acceptor {
            listener,
            shared: Arc::new(Shared::new(Arc::clone(&sim), options.clock)),
            builder: Arc::new(auto::Builder::new(TokioExecutor::new())),
            tls: options.tls.as_ref().map(TlsSettings::acceptor),
            connections: Arc::clone(&connections),
            stop: stop.clone(),
        };
        tokio::spawn(acceptor.run());
        Ok(SimServer {
            addr,
            tls: options.tls.is_some(),
            sim,
            stop,
            connections,
            max_connections,
            grace: options.shutdown_grace,
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

    /// Stops accepting, lets in-flight requests finish within the grace
    /// period; true when every connection closed in time.
    pub async fn shutdown(self) -> bool {
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
    /// skew checks.
    pub fn new(sim: Arc<Simulator>, clock: WallClock) -> Self {
        SimService {
            shared: Arc::new(Shared::new(sim, clock)),
        }
    }

    /// Answers one request (the path as on the wire, still percent-encoded)
    /// with its whole body (every frame of a stream); `None` when the answer
    /// is a connection reset (an injected fault).
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

/// The accept loop's state.
struct Acceptor {
    listener: TcpListener,
    shared: Arc<Shared>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    connections: Arc<Semaphore>,
    stop: CancellationToken,
}

impl Acceptor {
    async fn run(self) {
        loop {
            let permit = tokio::select! {
                p = Arc::clone(&self.connections).acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return,
                },
                () = self.stop.cancelled() => return,
            };
            let stream = tokio::select! {
                r = self.listener.accept() => match r {
                    Ok((s, _)) => s,
                    Err(e) => {
                        // Out of file descriptors and the like: back off
                        // briefly rather than spin.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                },
                () = self.stop.cancelled() => return,
            };
            let _ = stream.set_nodelay(true);
            let (shared, builder, stop) = (
                Arc::clone(&self.shared),
                Arc::clone(&self.builder),
                self.stop.clone(),
            );
            let tls = self.tls.clone();
            tokio::spawn(async move {
                serve(stream, tls, shared, builder, stop).await;
                drop(permit);
            });
        }
    }
}

async fn serve(
    stream: TcpStream,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    stop: CancellationToken,
) {
    match tls {
        None => serve_io(stream, shared, &builder, stop).await,
        Some(acceptor) => match acceptor.accept(stream).await {
            Ok(s) => serve_io(s, shared, &builder, stop).await,
            Err(e) => tracing::debug!(error = %e, "TLS handshake failed"),
        },
    }
}

async fn serve_io<I>(
    io: I,
    shared: Arc<Shared>,
    builder: &auto::Builder<TokioExecutor>,
    stop: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| handler::handle(Arc::clone(&shared), req));
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        () = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
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
