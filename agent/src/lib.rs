//! `quarry-agent`: the agent daemon. It serves Quarry's load engine
//! (`quarry-engine`) to a remote controller: the `quarry.v1.Agent` gRPC
//! service, its run registry and lease, the results store, authentication
//! and guard rails.
//!
//! [`serve`] runs the whole daemon on a bound listener until a shutdown
//! future resolves, then stops every live run (its stream ends with a partial
//! `Finished`), waits for the streams to drain, and returns.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use quarry_proto::v1::agent_server::AgentServer;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use quarry_engine::PriceTable;

mod auth;
mod error;
mod first_bytes;
mod log;
mod rails;
mod registry;
mod service;
mod store;

pub use auth::{BearerToken, is_loopback};
pub use error::DaemonError;
pub use rails::{GuardRails, SpendEstimate, estimate_spend, glob_match};
pub use registry::admit_request;
pub use service::CAPABILITIES;

/// PEM material for mutual TLS: the agent's certificate chain and key, and
/// the CA that signs controllers' client certificates.
#[derive(Clone)]
pub struct MutualTls {
    /// Server certificate chain, PEM.
    pub cert_pem: Vec<u8>,
    /// Server private key, PEM.
    pub key_pem: Vec<u8>,
    /// CA certificate(s) client certificates must chain to, PEM.
    pub client_ca_pem: Vec<u8>,
}

impl std::fmt::Debug for MutualTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MutualTls { key: <redacted> }")
    }
}

/// Everything the daemon is configured with.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// The bearer token controllers must present, if token auth is on.
    pub token: Option<BearerToken>,
    /// Mutual TLS, if on.
    pub tls: Option<MutualTls>,
    /// This agent's id (`Describe`); empty: [`default_agent_id`] of the
    /// host name and the listening port, set by [`serve`].
    pub agent_id: String,
    /// The region it runs in (`Describe`).
    pub region: String,
    /// The account alias it holds credentials for (`Describe`).
    pub account_alias: String,
    /// The guard rails every plan must stay within.
    pub rails: GuardRails,
    /// Prices for the spend rail's estimate.
    pub prices: PriceTable,
    /// Where run event logs are kept.
    pub results_dir: PathBuf,
    /// How many runs the results directory keeps (oldest pruned first).
    pub keep_runs: usize,
    /// Lease TTL when a `RunRequest` sets none.
    pub default_lease_ttl: Duration,
    /// The longest lease TTL a `RunRequest` may ask for.
    pub max_lease_ttl: Duration,
    /// How long in-flight requests may finish after a run stops or ends.
    pub stop_grace: Duration,
    /// How long shutdown waits for runs to finish and streams to drain.
    pub shutdown_grace: Duration,
    /// How long a new connection may stay silent before its first bytes
    /// (the HTTP/2 preface or a TLS ClientHello): then it is closed.
    pub first_bytes_timeout: Duration,
    /// At most one log line per this long about rejected bearer tokens
    /// (with the count since the last line; never a token).
    pub rejection_log_every: Duration,
}

impl DaemonConfig {
    /// A configuration with the defaults (10 s lease, 60 s max lease, 5 s
    /// stop grace, 30 s shutdown grace, 100 runs kept, no rails, no auth,
    /// 10 s first-bytes timeout, a rejected-token line at most every 60 s).
    pub fn new(results_dir: PathBuf) -> Self {
        DaemonConfig {
            token: None,
            tls: None,
            agent_id: String::new(),
            region: String::new(),
            account_alias: String::new(),
            rails: GuardRails::default(),
            prices: PriceTable::default(),
            results_dir,
            keep_runs: 100,
            default_lease_ttl: Duration::from_secs(10),
            max_lease_ttl: Duration::from_secs(60),
            stop_grace: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(30),
            first_bytes_timeout: Duration::from_secs(10),
            rejection_log_every: Duration::from_secs(60),
        }
    }
}

/// The daemon could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Neither a token nor mutual TLS, on an address other hosts can reach.
    #[error(
        "refusing to serve {0} without authentication: --insecure is only allowed on loopback addresses (127.0.0.0/8, ::1); configure --token-file or --tls-cert/--tls-key/--client-ca"
    )]
    InsecureNonLoopback(std::net::SocketAddr),
    /// The TLS material is unusable.
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// The listener has no local address.
    #[error("listener: {0}")]
    Listener(#[from] std::io::Error),
    /// The results directory is unusable.
    #[error(transparent)]
    Storage(#[from] DaemonError),
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// The id an agent started without `--agent-id` reports: `host:port`, the
/// host name and the port it actually listens on. Agents on one host differ
/// by port and agents on different hosts by name, so no two running agents
/// share an id (the controller tells agents apart by it), and an agent
/// restarted on its address keeps its id.
pub fn default_agent_id(host: &str, local: std::net::SocketAddr) -> String {
    format!("{host}:{}", local.port())
}

/// The host name: the kernel's, else `$HOSTNAME`, else `quarry-agent`.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "quarry-agent".to_owned())
}

/// How long a controller connection may be silent before the agent pings it.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2);

/// How long a ping may go unanswered before the agent drops the connection
/// and its streams (releasing their lease holds): a controller cut off
/// mid-run is noticed within `KEEPALIVE_INTERVAL + KEEPALIVE_TIMEOUT`, and
/// the lease TTL counts from there.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(3);

/// The agent's wall clock: the one place the daemon reads it (clock probes,
/// start times, the share's origin). Wall time is what the controller's
/// clock-offset estimate translates between, so it cannot be monotonic.
#[allow(clippy::disallowed_methods)]
pub(crate) fn wall_clock_now() -> SystemTime {
    SystemTime::now()
}

/// Serves the daemon on `listener` until `shutdown` resolves; then stops
/// every live run, lets streams deliver their final `Finished`, and returns.
pub async fn serve(
    listener: TcpListener,
    mut config: DaemonConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let local = listener.local_addr()?;
    if config.token.is_none() && config.tls.is_none() && !is_loopback(&local) {
        return Err(ServeError::InsecureNonLoopback(local));
    }
    if config.agent_id.is_empty() {
        config.agent_id = default_agent_id(&host_name(), local);
    }
    let config = Arc::new(config);
    let registry = registry::Registry::new(Arc::clone(&config))?;
    let agent = service::AgentService::new(Arc::clone(&config), Arc::clone(&registry));
    let token = config.token.clone();
    let rejections = Arc::new(auth::RejectionLog::new(config.rejection_log_every));
    let agent =
        AgentServer::with_interceptor(agent, move |request: tonic::Request<()>| match &token {
            Some(t) => auth::check_token(t, &request)
                .inspect_err(|_| rejections.rejected(&request))
                .map(|()| request),
            None => Ok(request),
        });
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<AgentServer<service::AgentService>>()
        .await;

    // HTTP/2 pings find a controller that vanished without closing its
    // connection (a network cut, a dead host, a partitioned container):
    // without them its stream, and the lease the stream holds, would live
    // until TCP gave up (about 15 minutes) and the agent would keep firing.
    let mut builder = Server::builder()
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT));
    if let Some(tls) = &config.tls {
        let tls_config = ServerTlsConfig::new()
            .identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem))
            .client_ca_root(Certificate::from_pem(&tls.client_ca_pem));
        builder = builder
            .tls_config(tls_config)
            .map_err(|e| ServeError::Tls(e.to_string()))?;
    }
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let first_bytes_timeout = config.first_bytes_timeout;
    let incoming = futures_util::StreamExt::map(TcpIncoming::from(listener), move |stream| {
        stream.map(|s| first_bytes::FirstBytesDeadline::new(s, first_bytes_timeout))
    });
    let server = builder
        .add_service(health_service)
        .add_service(agent)
        .serve_with_incoming_shutdown(incoming, async {
            let _ = server_stopped.await;
        });
    tracing::info!(%local, tls = config.tls.is_some(), token = config.token.is_some(), "quarry-agent serving");
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => return result.map_err(ServeError::from),
        () = shutdown => {}
    }
    tracing::info!("shutting down: stopping runs");
    health
        .set_not_serving::<AgentServer<service::AgentService>>()
        .await;
    if !registry.shutdown(config.shutdown_grace).await {
        tracing::warn!("runs did not finish within the shutdown grace");
    }
    let _ = stop_server.send(());
    match tokio::time::timeout(config.shutdown_grace, &mut server).await {
        Ok(result) => result.map_err(ServeError::from),
        Err(_) => {
            tracing::warn!("streams did not drain within the shutdown grace");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_ids_are_host_and_listening_port() {
        let at = |port| std::net::SocketAddr::from(([0, 0, 0, 0], port));
        assert_eq!(default_agent_id("node-a", at(7400)), "node-a:7400");
        // Two agents on one host (the case a bare host name collapsed).
        assert_ne!(
            default_agent_id("node-a", at(7400)),
            default_agent_id("node-a", at(7401))
        );
        assert_ne!(
            default_agent_id("node-a", at(7400)),
            default_agent_id("node-b", at(7400))
        );
        assert!(!host_name().is_empty());
    }
}
