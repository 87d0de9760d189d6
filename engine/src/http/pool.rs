//! The connection pool: idle HTTP/1.1 connections reused last-in first-out (the
//! warmest first), a fixed set of multiplexed HTTP/2 connections, and the
//! per-request record of how long getting a connection took.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::TransportError;
use super::connect::{Connection, Connector, HttpVersion, TransportConfig};

/// How the request got its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConnectionTiming {
    /// Waiting for a pooled connection or for a free slot under the
    /// connection cap (zero when one was idle).
    pub pool_wait: Duration,
    /// TCP + TLS + HTTP handshake, when this request opened the connection.
    pub connect: Option<Duration>,
}

/// A response whose head has arrived; its body is read chunk by chunk.
pub struct Exchange {
    /// Status and headers.
    pub head: http::response::Parts,
    /// The body, read as it arrives.
    pub body: ResponseBody,
    /// How the connection was obtained.
    pub timing: ConnectionTiming,
}

/// A response body that hands its HTTP/1.1 connection back to the pool once it
/// has been read to the end (a connection with unread body bytes is dropped:
/// reusing it would hand the next request someone else's bytes).
pub struct ResponseBody {
    incoming: Incoming,
    give_back: Option<(http1::SendRequest<Full<Bytes>>, Arc<Http1Pool>)>,
    /// The slot under the connection cap; released with the connection.
    permit: Option<OwnedSemaphorePermit>,
}

impl ResponseBody {
    /// The next data chunk, `None` at the end. Callers stamp arrival times
    /// right after this returns: it returns as soon as hyper has read and
    /// de-framed the bytes from the socket.
    pub async fn next_chunk(&mut self) -> Option<Result<Bytes, TransportError>> {
        loop {
            match self.incoming.frame().await {
                None => {
                    if let Some((send, pool)) = self.give_back.take() {
                        pool.put(send);
                    }
                    // After the connection is back, so the waiter finds it idle.
                    self.permit = None;
                    return None;
                }
                Some(Err(err)) => {
                    self.give_back = None;
                    self.permit = None;
                    return Some(Err(TransportError::Body(err)));
                }
                Some(Ok(frame)) => {
                    // Trailers carry nothing Bedrock uses; skip them.
                    if let Ok(data) = frame.into_data() {
                        return Some(Ok(data));
                    }
                }
            }
        }
    }

    /// Reads the rest of the body into one buffer.
    pub async fn collect(&mut self) -> Result<Bytes, TransportError> {
        let mut first: Option<Bytes> = None;
        let mut rest: Vec<u8> = Vec::new();
        while let Some(chunk) = self.next_chunk().await {
            let chunk = chunk?;
            match &first {
                None => first = Some(chunk),
                Some(head) => {
                    if rest.is_empty() {
                        rest.extend_from_slice(head);
                    }
                    rest.extend_from_slice(&chunk);
                }
            }
        }
        Ok(if rest.is_empty() {
            first.unwrap_or_default()
        } else {
            Bytes::from(rest)
        })
    }
}

/// Idle HTTP/1.1 connections.
pub(super) struct Http1Pool {
    idle: Mutex<Vec<http1::SendRequest<Full<Bytes>>>>,
}

impl Http1Pool {
    fn take(&self) -> Option<http1::SendRequest<Full<Bytes>>> {
        // A poisoned lock only means another task panicked mid-push/pop; the
        // Vec itself is still valid.
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(send) = idle.pop() {
            if send.is_ready() {
                return Some(send);
            }
        }
        None
    }

    fn put(&self, send: http1::SendRequest<Full<Bytes>>) {
        if !send.is_closed() {
            self.idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(send);
        }
    }
}

/// One HTTP/2 connection slot, (re)connected lazily under its lock so a burst
/// of requests opens it once.
type Http2Slot = tokio::sync::Mutex<Option<http2::SendRequest<Full<Bytes>>>>;

/// Sends requests to one origin over pooled connections.
#[derive(Clone)]
pub struct Transport {
    inner: Arc<Inner>,
}

struct Inner {
    connector: Connector,
    /// Whether requests go over HTTP/2. Starts from the configuration; under
    /// `Auto` over TLS it drops to HTTP/1.1 for good if ALPN picks it.
    http2: AtomicBool,
    /// Whether HTTP/1.1 is an acceptable outcome of ALPN.
    allow_h1_fallback: bool,
    h1: Arc<Http1Pool>,
    h1_cap: Option<Arc<Semaphore>>,
    h2: Vec<Http2Slot>,
    next_h2: AtomicUsize,
}

impl Transport {
    /// A transport to the origin of `uri` (scheme, host and port are used).
    pub fn new(uri: &http::Uri, config: &TransportConfig) -> Result<Self, TransportError> {
        let (connector, http2) = Connector::new(uri, config)?;
        let slots = config.http2_connections.max(1);
        Ok(Transport {
            inner: Arc::new(Inner {
                connector,
                http2: AtomicBool::new(http2),
                allow_h1_fallback: config.version == HttpVersion::Auto,
                h1: Arc::new(Http1Pool {
                    idle: Mutex::new(Vec::new()),
                }),
                h1_cap: config
                    .max_http1_connections
                    .map(|n| Arc::new(Semaphore::new(n.max(1)))),
                h2: (0..slots).map(|_| tokio::sync::Mutex::new(None)).collect(),
                next_h2: AtomicUsize::new(0),
            }),
        })
    }

    /// `host:port` this transport connects to.
    pub fn target(&self) -> String {
        format!(
            "{}:{}",
            self.inner.connector.host, self.inner.connector.port
        )
    }

    /// Sends `request` and returns once the response head has arrived.
    pub async fn send(
        &self,
        request: http::Request<Full<Bytes>>,
    ) -> Result<Exchange, TransportError> {
        if self.inner.http2.load(Ordering::Relaxed) {
            self.send_h2(request).await
        } else {
            self.send_h1(request).await
        }
    }

    async fn send_h1(
        &self,
        request: http::Request<Full<Bytes>>,
    ) -> Result<Exchange, TransportError> {
        let inner = &self.inner;
        let start = Instant::now();
        let permit = match &inner.h1_cap {
            // unwrap is safe because the semaphore is never closed.
            Some(cap) => Some(cap.clone().acquire_owned().await.expect("never closed")),
            None => None,
        };
        let (send, connect) = match inner.h1.take() {
            Some(send) => (send, None),
            None => {
                let began = Instant::now();
                match inner.connector.connect(false).await? {
                    Connection::Http1(send) => (send, Some(began.elapsed())),
                    Connection::Http2(_) => {
                        return Err(TransportError::InvalidTarget(
                            "server negotiated HTTP/2 on an HTTP/1.1 transport".into(),
                        ));
                    }
                }
            }
        };
        self.finish_h1(request, send, permit, start, connect).await
    }

    async fn finish_h1(
        &self,
        request: http::Request<Full<Bytes>>,
        mut send: http1::SendRequest<Full<Bytes>>,
        permit: Option<OwnedSemaphorePermit>,
        start: Instant,
        connect: Option<Duration>,
    ) -> Result<Exchange, TransportError> {
        let pool_wait = start.elapsed().saturating_sub(connect.unwrap_or_default());
        let response = send
            .send_request(request)
            .await
            .map_err(TransportError::Request)?;
        let (head, incoming) = response.into_parts();
        Ok(Exchange {
            head,
            body: ResponseBody {
                incoming,
                give_back: Some((send, self.inner.h1.clone())),
                permit,
            },
            timing: ConnectionTiming { pool_wait, connect },
        })
    }

    async fn send_h2(
        &self,
        request: http::Request<Full<Bytes>>,
    ) -> Result<Exchange, TransportError> {
        let inner = &self.inner;
        let start = Instant::now();
        let index = inner.next_h2.fetch_add(1, Ordering::Relaxed) % inner.h2.len();
        let (mut send, connect) = {
            let mut slot = inner.h2[index].lock().await;
            match slot.as_ref() {
                Some(send) if !send.is_closed() => (send.clone(), None),
                _ => {
                    let began = Instant::now();
                    match inner.connector.connect(true).await? {
                        Connection::Http2(send) => {
                            *slot = Some(send.clone());
                            (send, Some(began.elapsed()))
                        }
                        Connection::Http1(send) if inner.allow_h1_fallback => {
                            drop(slot);
                            inner.http2.store(false, Ordering::Relaxed);
                            let connect = Some(began.elapsed());
                            return self.finish_h1(request, send, None, start, connect).await;
                        }
                        Connection::Http1(_) => {
                            return Err(TransportError::InvalidTarget(
                                "server refused HTTP/2 (ALPN chose http/1.1); use http version \"http1\" or \"auto\"".into(),
                            ));
                        }
                    }
                }
            }
        };
        let pool_wait = start.elapsed().saturating_sub(connect.unwrap_or_default());
        send.ready().await.map_err(TransportError::Request)?;
        let response = send
            .send_request(request)
            .await
            .map_err(TransportError::Request)?;
        let (head, incoming) = response.into_parts();
        Ok(Exchange {
            head,
            body: ResponseBody {
                incoming,
                give_back: None,
                permit: None,
            },
            timing: ConnectionTiming { pool_wait, connect },
        })
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::net::SocketAddr;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use hyper::body::Frame;
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;

    use super::*;

    /// A response body the test feeds chunk by chunk; it ends when the sender drops.
    struct ChannelBody(mpsc::Receiver<Bytes>);

    impl http_body::Body for ChannelBody {
        type Data = Bytes;
        type Error = Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            self.0
                .poll_recv(cx)
                .map(|chunk| chunk.map(|c| Ok(Frame::data(c))))
        }
    }

    /// A loopback server on port 0 that answers every request with a body the
    /// test writes through the sender it receives for that request.
    async fn server(h2: bool) -> (SocketAddr, mpsc::Receiver<mpsc::Sender<Bytes>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (bodies_tx, bodies_rx) = mpsc::channel(16);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let bodies_tx = bodies_tx.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |_req| {
                        let bodies_tx = bodies_tx.clone();
                        async move {
                            let (tx, rx) = mpsc::channel(16);
                            let _ = bodies_tx.send(tx).await;
                            Ok::<_, Infallible>(hyper::Response::new(ChannelBody(rx)))
                        }
                    });
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    let builder = if h2 {
                        builder.http2_only()
                    } else {
                        builder.http1_only()
                    };
                    let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                });
            }
        });
        (addr, bodies_rx)
    }

    fn request(addr: SocketAddr) -> http::Request<Full<Bytes>> {
        http::Request::post(format!("http://{addr}/model/m/converse"))
            .header(http::header::HOST, addr.to_string())
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap()
    }

    async fn round_trip(
        transport: &Transport,
        addr: SocketAddr,
        bodies: &mut mpsc::Receiver<mpsc::Sender<Bytes>>,
        chunks: &[&'static [u8]],
    ) -> (ConnectionTiming, Vec<Bytes>) {
        let sending = transport.send(request(addr));
        let respond = async {
            let tx = bodies.recv().await.unwrap();
            for chunk in chunks {
                tx.send(Bytes::from_static(chunk)).await.unwrap();
            }
        };
        let (exchange, ()) = tokio::join!(sending, respond);
        let mut exchange = exchange.unwrap();
        let mut got = Vec::new();
        while let Some(chunk) = exchange.body.next_chunk().await {
            got.push(chunk.unwrap());
        }
        (exchange.timing, got)
    }

    async fn reuses_one_connection(version: HttpVersion) {
        let h2 = version == HttpVersion::Http2;
        let (addr, mut bodies) = server(h2).await;
        let config = TransportConfig {
            version,
            http2_connections: 1,
            ..TransportConfig::default()
        };
        let transport =
            Transport::new(&format!("http://{addr}").parse().unwrap(), &config).unwrap();
        let (first, body) = round_trip(&transport, addr, &mut bodies, &[b"ab", b"cd"]).await;
        assert!(
            first.connect.is_some(),
            "the first request opens the connection"
        );
        assert_eq!(body.concat(), b"abcd");
        for _ in 0..3 {
            let (again, body) = round_trip(&transport, addr, &mut bodies, &[b"x"]).await;
            assert_eq!(again.connect, None, "later requests reuse it");
            assert_eq!(body.concat(), b"x");
        }
    }

    #[tokio::test]
    async fn http1_reuses_a_fully_read_connection() {
        reuses_one_connection(HttpVersion::Http1).await;
    }

    #[tokio::test]
    async fn h2c_multiplexes_on_one_connection() {
        reuses_one_connection(HttpVersion::Http2).await;
    }

    #[tokio::test]
    async fn capped_pool_reports_the_wait_for_a_busy_connection() {
        let (addr, mut bodies) = server(false).await;
        let config = TransportConfig {
            version: HttpVersion::Http1,
            max_http1_connections: Some(1),
            ..TransportConfig::default()
        };
        let transport =
            Transport::new(&format!("http://{addr}").parse().unwrap(), &config).unwrap();
        let mut first = transport.send(request(addr)).await.unwrap();
        let first_body = bodies.recv().await.unwrap();
        // The second request cannot get the only connection until the first
        // body is read to its end.
        let second = tokio::spawn({
            let transport = transport.clone();
            async move { transport.send(request(addr)).await.map(|e| e.timing) }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!second.is_finished());
        first_body.send(Bytes::from_static(b"done")).await.unwrap();
        drop(first_body);
        while first.body.next_chunk().await.is_some() {}
        let second_body = bodies.recv().await.unwrap();
        drop(second_body);
        let timing = second.await.unwrap().unwrap();
        assert_eq!(timing.connect, None);
        assert!(timing.pool_wait >= Duration::from_millis(20), "{timing:?}");
    }

    #[tokio::test]
    async fn an_unread_body_does_not_return_its_connection() {
        let (addr, mut bodies) = server(false).await;
        let config = TransportConfig {
            version: HttpVersion::Http1,
            ..TransportConfig::default()
        };
        let transport =
            Transport::new(&format!("http://{addr}").parse().unwrap(), &config).unwrap();
        let exchange = transport.send(request(addr)).await.unwrap();
        let body = bodies.recv().await.unwrap();
        body.send(Bytes::from_static(b"partial")).await.unwrap();
        drop(exchange);
        drop(body);
        let (timing, _) = round_trip(&transport, addr, &mut bodies, &[b"ok"]).await;
        assert!(
            timing.connect.is_some(),
            "a half-read connection must not be reused"
        );
    }

    #[tokio::test]
    async fn refused_connection_names_the_target() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let transport = Transport::new(
            &format!("http://{addr}").parse().unwrap(),
            &TransportConfig::default(),
        )
        .unwrap();
        let err = transport.send(request(addr)).await.err().unwrap();
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
    }

    #[test]
    fn bad_targets_are_rejected() {
        let config = TransportConfig::default();
        let err = Transport::new(&"ftp://example.com".parse().unwrap(), &config)
            .err()
            .unwrap();
        assert!(err.to_string().contains("scheme"), "{err}");
    }
}
