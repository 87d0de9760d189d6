//! The controller's gRPC client of one agent: the connection (plain on
//! loopback, TLS or mTLS otherwise, with an optional bearer token), and the
//! share's event stream followed to its end across broken connections.
//!
//! A broken `Run` stream is re-attached with `Results(run_id,
//! after_sequence = last seen)`; one [`EventDecoder`] per share survives
//! every re-attach, so a resent event is dropped (and counted) and a skipped
//! one is an error: the merged data has no gap and no double count. An
//! agent that cannot be reached again within the re-attach window is lost,
//! and its share ends partial at its last interval.

use std::path::{Path, PathBuf};
use std::time::Duration;

use quarry_engine::ShareEvent;
use quarry_proto::v1::agent_client::AgentClient;
use quarry_proto::v1::{ResultsRequest, RunEvent, RunRequest, StopRequest, SyncClockRequest};

use crate::clock::{ClockEstimate, ClockProbe, ControllerClock};
use crate::coordinator::{ShareEnd, ShareUpdate};
use quarry_proto::wire::EventDecoder;
use tokio::sync::mpsc;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Status, Streaming};

/// The client of one agent, with its credentials attached to every call.
pub type AgentRpc = AgentClient<InterceptedService<Channel, BearerToken>>;

/// A call to an agent failed.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// The agent answered with an error status.
    #[error("{call}: {code:?}: {message}")]
    Status {
        /// The RPC, e.g. `Describe`.
        call: &'static str,
        /// The status code.
        code: Code,
        /// The agent's message.
        message: String,
    },
    /// The agent's answer does not follow the protocol.
    #[error("protocol: {0}")]
    Protocol(String),
}

impl RpcError {
    /// Wraps a failed call's status.
    pub fn status(call: &'static str, status: Status) -> Self {
        RpcError::Status {
            call,
            code: status.code(),
            message: status.message().to_owned(),
        }
    }
}

/// The connection settings could not be loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// A credential file could not be read.
    #[error("{flag} {path}: {source}")]
    File {
        /// The CLI flag that named it.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The token file holds no token, or one that is not a valid header.
    #[error("--agent-token-file {0}: the file must hold one printable ASCII token")]
    Token(PathBuf),
    /// `--client-cert` and `--client-key` come together.
    #[error("--client-cert and --client-key must be given together")]
    HalfIdentity,
    /// Client certificates need TLS.
    #[error("--client-cert needs --agent-ca (mTLS runs over TLS)")]
    IdentityWithoutTls,
    /// The endpoint or its TLS settings were refused.
    #[error("agent {address}: {detail}")]
    Endpoint {
        /// The agent's address.
        address: String,
        /// What tonic said.
        detail: String,
    },
}

/// The bearer token sent as `authorization: Bearer …` on every call. Its
/// Debug form never shows the token.
#[derive(Clone, Default)]
pub struct BearerToken(Option<MetadataValue<Ascii>>);

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = if self.0.is_some() {
            "<redacted>"
        } else {
            "none"
        };
        f.debug_tuple("BearerToken").field(&shown).finish()
    }
}

impl BearerToken {
    /// No token.
    pub fn none() -> Self {
        BearerToken(None)
    }

    /// `token` (surrounding whitespace trimmed); `None` when it is empty or
    /// not a valid header value.
    pub fn new(token: &str) -> Option<Self> {
        let token = token.trim();
        if token.is_empty() {
            return None;
        }
        let mut value: MetadataValue<Ascii> = format!("Bearer {token}").parse().ok()?;
        value.set_sensitive(true);
        Some(BearerToken(Some(value)))
    }
}

impl Interceptor for BearerToken {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// How the controller connects to agents.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// TLS: the CA that signed the agents' certificates (PEM), and the
    /// client certificate and key for mTLS. `None` is plaintext, which
    /// agents accept only on loopback.
    pub tls: Option<TlsSettings>,
    /// Bearer token for every call.
    pub token: BearerToken,
}

/// TLS material, PEM.
#[derive(Clone)]
pub struct TlsSettings {
    /// The CA certificate(s) agents' certificates chain to.
    pub ca_pem: Vec<u8>,
    /// Client certificate and private key, for mTLS.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings")
            .field("ca_pem_bytes", &self.ca_pem.len())
            .field("client_identity", &self.identity.is_some())
            .finish()
    }
}

impl ConnectOptions {
    /// Reads the CLI's credential files: `--agent-ca`, `--client-cert`,
    /// `--client-key`, `--agent-token-file`.
    pub fn from_files(
        ca: Option<&Path>,
        client_cert: Option<&Path>,
        client_key: Option<&Path>,
        token_file: Option<&Path>,
    ) -> Result<Self, ConnectError> {
        let read = |flag: &'static str, path: &Path| {
            std::fs::read(path).map_err(|source| ConnectError::File {
                flag,
                path: path.to_owned(),
                source,
            })
        };
        let identity = match (client_cert, client_key) {
            (Some(c), Some(k)) => Some((read("--client-cert", c)?, read("--client-key", k)?)),
            (None, None) => None,
            _ => return Err(ConnectError::HalfIdentity),
        };
        let tls = match ca {
            Some(ca) => Some(TlsSettings {
                ca_pem: read("--agent-ca", ca)?,
                identity,
            }),
            None if identity.is_some() => return Err(ConnectError::IdentityWithoutTls),
            None => None,
        };
        let token = match token_file {
            Some(path) => {
                let bytes = read("--agent-token-file", path)?;
                let text =
                    String::from_utf8(bytes).map_err(|_| ConnectError::Token(path.into()))?;
                BearerToken::new(&text).ok_or_else(|| ConnectError::Token(path.into()))?
            }
            None => BearerToken::none(),
        };
        Ok(ConnectOptions { tls, token })
    }

    /// Connects to the agent at `socket` ("ip:port"); `tls_name` is the name
    /// its certificate must carry.
    pub async fn connect(&self, socket: &str, tls_name: &str) -> Result<AgentRpc, ConnectError> {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let endpoint_error = |e: tonic::transport::Error| ConnectError::Endpoint {
            address: socket.to_owned(),
            detail: error_chain(&e),
        };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{socket}"))
            .map_err(endpoint_error)?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(5))
            .keep_alive_timeout(Duration::from_secs(10));
        if let Some(tls) = &self.tls {
            let mut config = ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(&tls.ca_pem))
                .domain_name(tls_name);
            if let Some((cert, key)) = &tls.identity {
                config = config.identity(Identity::from_pem(cert, key));
            }
            endpoint = endpoint.tls_config(config).map_err(endpoint_error)?;
        }
        let channel = endpoint.connect().await.map_err(endpoint_error)?;
        Ok(AgentClient::with_interceptor(channel, self.token.clone()))
    }
}

/// An error and its sources on one line (tonic's transport errors say
/// little at the top level).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Starts a share on an agent; the stream's first response means the agent
/// accepted it.
pub async fn start_share(
    agent: &mut AgentRpc,
    request: RunRequest,
    traceparent: Option<String>,
) -> Result<Streaming<RunEvent>, RpcError> {
    let mut request = tonic::Request::new(request);
    if let Some(tp) = traceparent {
        let value = tp
            .parse::<MetadataValue<Ascii>>()
            .map_err(|_| RpcError::Protocol(format!("traceparent {tp:?} is not ASCII")))?;
        request
            .metadata_mut()
            .insert(quarry_engine::trace::TRACEPARENT, value);
    }
    Ok(agent
        .run(request)
        .await
        .map_err(|s| RpcError::status("Run", s))?
        .into_inner())
}

/// Re-attaches to a share's events after `after_sequence`.
pub async fn attach(
    agent: &mut AgentRpc,
    run_id: &str,
    after_sequence: u64,
) -> Result<Streaming<RunEvent>, RpcError> {
    Ok(agent
        .results(ResultsRequest {
            run_id: run_id.to_owned(),
            after_sequence,
        })
        .await
        .map_err(|s| RpcError::status("Results", s))?
        .into_inner())
}

/// Asks an agent to stop a share early; true when it was running.
pub async fn stop_share(agent: &mut AgentRpc, run_id: &str) -> Result<bool, RpcError> {
    Ok(agent
        .stop(StopRequest {
            run_id: run_id.to_owned(),
        })
        .await
        .map_err(|s| RpcError::status("Stop", s))?
        .into_inner()
        .was_running)
}

/// How long and how often a broken stream is re-attached.
#[derive(Debug, Clone, Copy)]
pub struct ReattachPolicy {
    /// Give up (the agent is lost) when no re-attach succeeded for this
    /// long since the stream broke.
    pub window: Duration,
    /// The first wait between attempts; it doubles up to `max_backoff`.
    pub first_backoff: Duration,
    /// The longest wait between attempts.
    pub max_backoff: Duration,
}

impl ReattachPolicy {
    /// Attempts within `lease_ttl` plus a margin: past the lease the agent
    /// has stopped firing anyway, but its results can still be fetched.
    pub fn for_lease(lease_ttl: Duration) -> Self {
        ReattachPolicy {
            window: lease_ttl + Duration::from_secs(2),
            first_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
        }
    }
}

/// Follows share `share`'s events from `stream` to `Finished`, re-attaching
/// when it breaks; sends each update to `updates` tagged with `share`, the
/// last one being [`ShareUpdate::Ended`] (also returned). Ends early (as
/// lost) if the receiver is gone.
pub async fn follow_share(
    agent: AgentRpc,
    stream: Streaming<RunEvent>,
    run_id: String,
    policy: ReattachPolicy,
    share: usize,
    updates: mpsc::Sender<(usize, ShareUpdate)>,
) -> ShareEnd {
    let end = follow(agent, stream, run_id, policy, share, &updates).await;
    // A receiver that is gone has nothing left to learn.
    let _ = updates.send((share, ShareUpdate::Ended(end.clone()))).await;
    end
}

async fn follow(
    mut agent: AgentRpc,
    mut stream: Streaming<RunEvent>,
    run_id: String,
    policy: ReattachPolicy,
    share: usize,
    updates: &mpsc::Sender<(usize, ShareUpdate)>,
) -> ShareEnd {
    let mut decoder = EventDecoder::new();
    let mut end = ShareEnd::default();
    loop {
        let broke = match stream.message().await {
            Ok(Some(event)) => match decoder.decode(&event) {
                Ok(None) => {
                    end.duplicates += 1;
                    continue;
                }
                Ok(Some(decoded)) => {
                    end.last_sequence = decoded.sequence;
                    let last = matches!(decoded.event, ShareEvent::Finished(_));
                    if updates
                        .send((share, ShareUpdate::Event(decoded.event)))
                        .await
                        .is_err()
                    {
                        end.lost = Some("the controller stopped listening".to_owned());
                        return end;
                    }
                    if last {
                        return end;
                    }
                    continue;
                }
                Err(e) => {
                    end.lost = Some(e.to_string());
                    return end;
                }
            },
            Ok(None) => "the stream ended before Finished".to_owned(),
            Err(status) => format!("{:?}: {}", status.code(), status.message()),
        };
        match reattach(&mut agent, &run_id, decoder.last_sequence(), policy).await {
            Ok(s) => {
                stream = s;
                end.reattaches += 1;
                let note = ShareUpdate::Reattached {
                    after_sequence: decoder.last_sequence(),
                };
                if updates.send((share, note)).await.is_err() {
                    end.lost = Some("the controller stopped listening".to_owned());
                    return end;
                }
            }
            Err(e) => {
                end.lost = Some(format!("stream broke ({broke}); re-attach failed: {e}"));
                return end;
            }
        }
    }
}

/// Re-attaches with backoff until it works, the agent says the run is
/// unknown, or the window passes.
async fn reattach(
    agent: &mut AgentRpc,
    run_id: &str,
    after: u64,
    policy: ReattachPolicy,
) -> Result<Streaming<RunEvent>, RpcError> {
    let deadline = tokio::time::Instant::now() + policy.window;
    let mut backoff = policy.first_backoff;
    loop {
        match attach(agent, run_id, after).await {
            Ok(s) => return Ok(s),
            Err(
                e @ RpcError::Status {
                    code:
                        Code::NotFound
                        | Code::InvalidArgument
                        | Code::PermissionDenied
                        | Code::Unauthenticated,
                    ..
                },
            ) => return Err(e),
            Err(e) if tokio::time::Instant::now() + backoff >= deadline => return Err(e),
            Err(_) => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(policy.max_backoff);
            }
        }
    }
}

/// Probes `agent`'s clock `count` times (at least once) and keeps the
/// min-RTT sample.
pub async fn sync_clock(
    agent: &mut AgentRpc,
    clock: &ControllerClock,
    count: usize,
) -> Result<ClockEstimate, RpcError> {
    let mut probes = Vec::with_capacity(count.max(1));
    for _ in 0..count.max(1) {
        let t0 = clock.now_unix_ns();
        let reply = agent
            .sync_clock(SyncClockRequest {
                controller_send_ns: t0,
            })
            .await
            .map_err(|s| RpcError::status("SyncClock", s))?
            .into_inner();
        let t3 = clock.now_unix_ns();
        if reply.controller_send_ns != t0 {
            return Err(RpcError::Protocol(format!(
                "SyncClock echoed controller_send_ns {} for a probe sent at {t0}",
                reply.controller_send_ns
            )));
        }
        probes.push(ClockProbe {
            t0,
            t1: reply.agent_receive_ns,
            t2: reply.agent_send_ns,
            t3,
        });
    }
    // unwrap-free: at least one probe was pushed above.
    ClockEstimate::from_probes(&probes)
        .ok_or_else(|| RpcError::Protocol("no clock probe".to_owned()))
}
