//! Opening one connection: TCP (no Nagle), optional TLS with ALPN, and the
//! HTTP/1.1 or HTTP/2 handshake with buffers sized for streamed responses.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

use super::TransportError;

/// Which HTTP version to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HttpVersion {
    /// HTTP/1.1, one request in flight per connection.
    Http1,
    /// HTTP/2 (over TLS via ALPN, or h2c with prior knowledge on `http://`).
    Http2,
    /// Let ALPN decide over TLS (h2 preferred, as Bedrock offers it); HTTP/1.1
    /// on plain `http://`.
    #[default]
    Auto,
}

/// Which certificate authorities a TLS connection trusts.
#[derive(Clone, Default)]
pub enum TlsRoots {
    /// The Mozilla root set (webpki-roots): what a public AWS endpoint needs.
    #[default]
    WebPki,
    /// The Mozilla root set plus these certificates (a simulator's self-signed
    /// certificate, a corporate proxy's CA).
    WebPkiAnd(Vec<CertificateDer<'static>>),
}

impl std::fmt::Debug for TlsRoots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsRoots::WebPki => f.write_str("WebPki"),
            TlsRoots::WebPkiAnd(extra) => write!(f, "WebPki + {} extra", extra.len()),
        }
    }
}

/// How the transport connects.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// The HTTP version to speak.
    pub version: HttpVersion,
    /// Give up on TCP + TLS set-up after this long.
    pub connect_timeout: Duration,
    /// HTTP/2 connections to spread streams over; streams of one connection
    /// share its flow-control window and its single TCP stream.
    pub http2_connections: usize,
    /// At most this many HTTP/1.1 connections; a request waits (and the wait
    /// is reported as pool wait) when all are busy. `None`: unbounded, the
    /// scheduler's concurrency is the bound.
    pub max_http1_connections: Option<usize>,
    /// Trusted certificate authorities for `https://`.
    pub tls_roots: TlsRoots,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            version: HttpVersion::Auto,
            connect_timeout: Duration::from_millis(3100),
            http2_connections: 4,
            max_http1_connections: None,
            tls_roots: TlsRoots::WebPki,
        }
    }
}

/// HTTP/2 windows large enough that a fast stream is never paused by flow
/// control (the default 64 KiB would throttle long generations at high
/// concurrency).
const H2_STREAM_WINDOW: u32 = 4 * 1024 * 1024;
const H2_CONNECTION_WINDOW: u32 = 32 * 1024 * 1024;
/// HTTP/1.1 read buffer ceiling: large responses are read in big gulps.
const H1_MAX_BUF: usize = 4 * 1024 * 1024;

/// Where and how to connect, resolved once per transport.
pub(super) struct Connector {
    pub(super) host: String,
    pub(super) port: u16,
    tls: Option<tokio_rustls::TlsConnector>,
    server_name: Option<ServerName<'static>>,
    pub(super) timeout: Duration,
}

/// A connection ready to carry requests.
pub(super) enum Connection {
    Http1(http1::SendRequest<Full<Bytes>>),
    Http2(http2::SendRequest<Full<Bytes>>),
}

impl Connector {
    pub(super) fn new(
        uri: &http::Uri,
        config: &TransportConfig,
    ) -> Result<(Self, bool), TransportError> {
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            other => {
                return Err(TransportError::InvalidTarget(format!(
                    "scheme must be http or https, got {other:?} in {uri}"
                )));
            }
        };
        let host = uri
            .host()
            .ok_or_else(|| TransportError::InvalidTarget(format!("no host in {uri}")))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let (tls, server_name, use_h2) = if https {
            let server_name = ServerName::try_from(host.clone()).map_err(|_| {
                TransportError::InvalidTarget(format!("{host:?} is not a valid TLS server name"))
            })?;
            let alpn: Vec<Vec<u8>> = match config.version {
                HttpVersion::Http1 => vec![b"http/1.1".to_vec()],
                HttpVersion::Http2 => vec![b"h2".to_vec()],
                HttpVersion::Auto => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            };
            let connector = tls_connector(&config.tls_roots, alpn)?;
            (
                Some(connector),
                Some(server_name),
                config.version != HttpVersion::Http1,
            )
        } else {
            (None, None, config.version == HttpVersion::Http2)
        };
        let connector = Connector {
            host,
            port,
            tls,
            server_name,
            timeout: config.connect_timeout,
        };
        Ok((connector, use_h2))
    }

    /// Opens one connection. `want_h2` is the configured preference; over TLS
    /// the negotiated ALPN protocol decides.
    ///
    /// The handshake's future (TCP, TLS and HTTP state, about 7.8 KB) is
    /// boxed: inline, it would size every request's future for the rare
    /// request that opens a connection, and a held stream would carry it.
    pub(super) async fn connect(&self, want_h2: bool) -> Result<Connection, TransportError> {
        Box::pin(tokio::time::timeout(
            self.timeout,
            self.connect_inner(want_h2),
        ))
        .await
        .map_err(|_| TransportError::ConnectTimeout {
            target: format!("{}:{}", self.host, self.port),
            after: self.timeout,
        })?
    }

    async fn connect_inner(&self, want_h2: bool) -> Result<Connection, TransportError> {
        let target = format!("{}:{}", self.host, self.port);
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|source| TransportError::Connect {
                target: target.clone(),
                source,
            })?;
        // Requests are written whole; Nagle would only delay them.
        tcp.set_nodelay(true)
            .map_err(|source| TransportError::Connect {
                target: target.clone(),
                source,
            })?;
        match (&self.tls, &self.server_name) {
            (Some(tls), Some(name)) => {
                let stream = tls
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|source| TransportError::Tls { target, source })?;
                let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                handshake(TokioIo::new(stream), h2).await
            }
            _ => handshake(TokioIo::new(tcp), want_h2).await,
        }
    }
}

async fn handshake<T>(io: TokioIo<T>, h2: bool) -> Result<Connection, TransportError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    if h2 {
        let (send, conn) = http2::Builder::new(TokioExecutor::new())
            .initial_stream_window_size(H2_STREAM_WINDOW)
            .initial_connection_window_size(H2_CONNECTION_WINDOW)
            .handshake(io)
            .await
            .map_err(TransportError::Handshake)?;
        // The connection task ends when the server closes or every handle drops.
        tokio::spawn(async move {
            if let Err(err) = conn.await {
                tracing::debug!(error = %err, "http2 connection closed");
            }
        });
        Ok(Connection::Http2(send))
    } else {
        let (send, conn) = http1::Builder::new()
            .max_buf_size(H1_MAX_BUF)
            .handshake(io)
            .await
            .map_err(TransportError::Handshake)?;
        tokio::spawn(async move {
            if let Err(err) = conn.await {
                tracing::debug!(error = %err, "http1 connection closed");
            }
        });
        Ok(Connection::Http1(send))
    }
}

fn tls_connector(
    roots: &TlsRoots,
    alpn: Vec<Vec<u8>>,
) -> Result<tokio_rustls::TlsConnector, TransportError> {
    let mut store = rustls::RootCertStore::empty();
    store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let TlsRoots::WebPkiAnd(extra) = roots {
        for cert in extra {
            store.add(cert.clone()).map_err(|err| {
                TransportError::InvalidTarget(format!("bad CA certificate: {err}"))
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| TransportError::InvalidTarget(format!("TLS set-up: {err}")))?
        .with_root_certificates(store)
        .with_no_client_auth();
    config.alpn_protocols = alpn;
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}
