//! Connections: the accept loop, the connection cap, and one task per
//! connection that serves it with hyper and closes it when a limit runs out.
//!
//! - Past [`Limits::max_connections`] a new connection is still accepted,
//!   answered at once with a 503 and closed, so a client is told rather
//!   than left in the kernel's backlog (over TLS it is closed: a plain
//!   answer would be garbage to it). At most [`MAX_REFUSALS`] refusals are
//!   written at once; past that, connections are closed unanswered.
//! - A [`Watchdog`] per connection closes it when no request has been in
//!   flight for the idle timeout, or when an HTTP/1.1 request head has been
//!   arriving for longer than the header timeout (from its first byte).
//!   It learns both from the socket (a [`Watched`] reader notes the first
//!   byte after each idle start) and from the service (a guard per request,
//!   dropped when its response body ends). HTTP/2 connections keep only the
//!   idle rule: their frames (pings, settings) say nothing about heads.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body::{Body, Frame, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use quarry_bedrock::header_names::APPLICATION_JSON;
use quarry_bedrock::{ERROR_TYPE_HEADER, ERROR_TYPE_NAMESPACE};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::body::{ConnectionReset, SimBody};
use super::context::Shared;
use super::errors::WireError;
use super::handler;
use super::limits::Limits;
use crate::server_stats::ClosedBecause;

/// Most refusals (503 past the connection cap) written at once.
pub(crate) const MAX_REFUSALS: usize = 64;

/// How long a refused client gets to take its 503 before the socket closes.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// How long a connection asked to close (GOAWAY, or a timeout) gets to do
/// so before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The accept loop's state.
pub(crate) struct Acceptor {
    pub(crate) listener: TcpListener,
    pub(crate) shared: Arc<Shared>,
    pub(crate) limits: Limits,
    pub(crate) tls: Option<tokio_rustls::TlsAcceptor>,
    /// One permit per connection in service.
    pub(crate) connections: Arc<Semaphore>,
    pub(crate) stop: CancellationToken,
}

impl Acceptor {
    pub(crate) async fn run(self) {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder.http1().max_buf_size(self.limits.max_head_bytes);
        builder
            .http2()
            .max_header_list_size(u32::try_from(self.limits.max_head_bytes).unwrap_or(u32::MAX));
        let builder = Arc::new(builder);
        let refusals = Arc::new(Semaphore::new(MAX_REFUSALS));
        loop {
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
            let counters = self.shared.sim.stats().server();
            let Ok(permit) = Arc::clone(&self.connections).try_acquire_owned() else {
                counters.record_refused_at_capacity();
                if let Ok(slot) = Arc::clone(&refusals).try_acquire_owned() {
                    let answer =
                        (self.tls.is_none()).then(|| at_capacity(self.limits.max_connections));
                    tokio::spawn(refuse(stream, answer, slot));
                }
                continue;
            };
            counters.record_accepted();
            let _ = stream.set_nodelay(true);
            let connection = Connection {
                shared: Arc::clone(&self.shared),
                builder: Arc::clone(&builder),
                limits: self.limits,
                stop: self.stop.clone(),
            };
            let tls = self.tls.clone();
            tokio::spawn(async move {
                connection.serve(stream, tls).await;
                connection.shared.sim.stats().server().record_closed();
                drop(permit);
            });
        }
    }
}

/// The raw 503 a connection past the cap gets (HTTP/1.1, `connection: close`).
fn at_capacity(max_connections: usize) -> Vec<u8> {
    let error = WireError::at_capacity(max_connections);
    let body = error.body();
    let mut out = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: {APPLICATION_JSON}\r\n{ERROR_TYPE_HEADER}: {}:{ERROR_TYPE_NAMESPACE}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        error.code,
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

/// Writes `answer` (if any), closes the write side, and reads what the
/// client still sends for a moment, so its request does not turn the close
/// into a reset that would destroy the answer before the client reads it.
async fn refuse(mut stream: TcpStream, answer: Option<Vec<u8>>, _slot: OwnedSemaphorePermit) {
    let Some(answer) = answer else { return };
    let linger = async {
        stream.write_all(&answer).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut left = 64 * 1024usize;
        while left > 0 {
            match stream.read(&mut sink).await? {
                0 => break,
                n => left = left.saturating_sub(n),
            }
        }
        io::Result::Ok(())
    };
    let _ = tokio::time::timeout(REFUSAL_LINGER, linger).await;
}

/// One connection's service.
struct Connection {
    shared: Arc<Shared>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    limits: Limits,
    stop: CancellationToken,
}

impl Connection {
    async fn serve(&self, stream: TcpStream, tls: Option<tokio_rustls::TlsAcceptor>) {
        let counters = self.shared.sim.stats().server();
        let Some(acceptor) = tls else {
            return self.serve_io(stream).await;
        };
        // The handshake is part of getting a request's head across.
        match tokio::time::timeout(self.limits.header_timeout, acceptor.accept(stream)).await {
            Ok(Ok(s)) => self.serve_io(s).await,
            Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
            Err(_) => counters.record_timed_out(ClosedBecause::SlowHead),
        }
    }

    async fn serve_io<I>(&self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let watch = Arc::new(Activity::new());
        let io = Watched {
            io,
            activity: Arc::clone(&watch),
        };
        let shared = Arc::clone(&self.shared);
        let activity = Arc::clone(&watch);
        let service = service_fn(move |req| {
            let guard = activity.begin();
            let shared = Arc::clone(&shared);
            async move {
                let response = handler::handle(shared, req).await?;
                Ok::<_, ConnectionReset>(response.map(|body| Tracked {
                    body,
                    _guard: guard,
                }))
            }
        });
        let conn = self.builder.serve_connection(TokioIo::new(io), service);
        tokio::pin!(conn);
        let watchdog = Watchdog {
            activity: &watch,
            limits: &self.limits,
        };
        let why = tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            why = watchdog.expired() => Some(why),
            () = self.stop.cancelled() => None,
        };
        conn.as_mut().graceful_shutdown();
        match why {
            // Shutting down: in-flight requests finish within the server's
            // grace, which SimServer::shutdown bounds.
            None => {
                let _ = conn.await;
            }
            Some(why) => {
                self.shared.sim.stats().server().record_timed_out(why);
                let _ = tokio::time::timeout(CLOSE_GRACE, conn).await;
            }
        }
    }
}

/// What the watchdog knows of a connection, updated by its reader and its
/// requests. Times are nanoseconds since `base`.
struct Activity {
    base: Instant,
    /// Requests whose response has not ended.
    in_flight: AtomicUsize,
    /// When the connection last had nothing in flight from.
    idle_since: AtomicU64,
    /// The first byte after `idle_since`, or [`NOT_YET`].
    head_started: AtomicU64,
    /// The reader should note the time of the next byte it reads.
    armed: AtomicBool,
    /// The client spoke HTTP/2 (its first bytes were the preface).
    h2: AtomicBool,
    /// Whether any byte was read yet (the first read decides `h2`).
    read_any: AtomicBool,
    changed: Notify,
}

/// `head_started` before the first byte of a head.
const NOT_YET: u64 = u64::MAX;

impl Activity {
    fn new() -> Self {
        Activity {
            base: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            head_started: AtomicU64::new(NOT_YET),
            armed: AtomicBool::new(true),
            h2: AtomicBool::new(false),
            read_any: AtomicBool::new(false),
            changed: Notify::new(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(NOT_YET - 1)
    }

    /// A request is in flight until the guard drops.
    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_one();
        InFlight(Arc::clone(self))
    }

    /// The reader saw `bytes` (the first read of the connection included).
    fn on_read(&self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if !self.read_any.swap(true, Ordering::AcqRel) && bytes.starts_with(b"PRI") {
            self.h2.store(true, Ordering::Release);
        }
        if self.armed.swap(false, Ordering::AcqRel) {
            self.head_started.store(self.now(), Ordering::Release);
            self.changed.notify_one();
        }
    }

    /// When the connection is to be closed, and why; `None` while a request
    /// is in flight.
    fn deadline(&self, limits: &Limits) -> Option<(Instant, ClosedBecause)> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let at = |ns: u64| self.base + Duration::from_nanos(ns);
        let head = self.head_started.load(Ordering::Acquire);
        if head != NOT_YET && !self.h2.load(Ordering::Acquire) {
            return Some((at(head) + limits.header_timeout, ClosedBecause::SlowHead));
        }
        let idle = self.idle_since.load(Ordering::Acquire);
        Some((at(idle) + limits.idle_timeout, ClosedBecause::Idle))
    }
}

/// A request in flight; dropping it (the response body ended or was
/// dropped) may start the connection's idle time.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        if a.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            a.idle_since.store(a.now(), Ordering::Release);
            a.head_started.store(NOT_YET, Ordering::Release);
            a.armed.store(true, Ordering::Release);
        }
        a.changed.notify_one();
    }
}

/// Closes a connection whose time is up (see the module doc).
struct Watchdog<'a> {
    activity: &'a Activity,
    limits: &'a Limits,
}

impl Watchdog<'_> {
    /// Resolves when a limit has run out, with which.
    async fn expired(&self) -> ClosedBecause {
        loop {
            let changed = self.activity.changed.notified();
            tokio::pin!(changed);
            // Registered before the state is read, so no change is missed.
            changed.as_mut().enable();
            match self.activity.deadline(self.limits) {
                None => changed.await,
                Some((at, _)) => {
                    tokio::select! {
                        () = changed => {}
                        () = tokio::time::sleep_until(at) => {
                            // Read again: a request may have begun meanwhile.
                            if let Some((at, why)) = self.activity.deadline(self.limits)
                                && at <= Instant::now()
                            {
                                return why;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The socket, with every read reported to the connection's [`Activity`].
struct Watched<I> {
    io: I,
    activity: Arc<Activity>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            self.activity.on_read(&buf.filled()[before..]);
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// A response body that keeps its request in flight until it ends.
struct Tracked {
    body: SimBody,
    _guard: InFlight,
}

impl Body for Tracked {
    type Data = bytes::Bytes;
    type Error = ConnectionReset;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<bytes::Bytes>, ConnectionReset>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_capacity_answer_is_a_whole_http_response() {
        let raw = at_capacity(100);
        let text = String::from_utf8(raw).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{head}"
        );
        assert!(head.contains("connection: close"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        assert!(head.contains("x-amzn-errortype: ServiceUnavailableException:"));
        assert!(body.contains("maximum of 100 connections"), "{body}");
    }

    #[tokio::test(start_paused = true)]
    async fn idle_then_slow_head_deadlines() {
        let limits = Limits {
            idle_timeout: Duration::from_secs(60),
            header_timeout: Duration::from_secs(5),
            ..Limits::default()
        };
        let a = Arc::new(Activity::new());
        let start = Instant::now();
        assert_eq!(
            a.deadline(&limits),
            Some((start + Duration::from_secs(60), ClosedBecause::Idle))
        );
        tokio::time::advance(Duration::from_secs(2)).await;
        a.on_read(b"POST /model");
        assert_eq!(
            a.deadline(&limits),
            Some((start + Duration::from_secs(7), ClosedBecause::SlowHead))
        );
        let guard = a.begin();
        assert_eq!(a.deadline(&limits), None, "nothing expires in flight");
        tokio::time::advance(Duration::from_secs(100)).await;
        drop(guard);
        assert_eq!(
            a.deadline(&limits),
            Some((start + Duration::from_secs(162), ClosedBecause::Idle))
        );
        let watchdog = Watchdog {
            activity: &a,
            limits: &limits,
        };
        assert_eq!(watchdog.expired().await, ClosedBecause::Idle);
        assert_eq!(Instant::now(), start + Duration::from_secs(162));
    }

    #[tokio::test(start_paused = true)]
    async fn http2_connections_only_idle_out() {
        let limits = Limits {
            idle_timeout: Duration::from_secs(60),
            header_timeout: Duration::from_secs(5),
            ..Limits::default()
        };
        let a = Activity::new();
        let start = Instant::now();
        a.on_read(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        assert_eq!(
            a.deadline(&limits),
            Some((start + Duration::from_secs(60), ClosedBecause::Idle))
        );
    }
}
