//! Reading a request body once its head has passed authentication: under
//! the size cap, within the body timeout, hashed as it streams in, and, when
//! the caller is not yet proven, only within the shared budget of
//! unverified bytes.
//!
//! The order is the point: a request whose head fails is answered before a
//! byte of its body is read (hyper then closes an HTTP/1.1 connection whose
//! body is left unread, and sends no `100 Continue`). A SigV4 caller whose
//! signature covers a body not yet seen may make the server hold that body
//! until it can be checked; those bodies share
//! [`Limits::max_unverified_body_bytes`], and past it they wait, unread,
//! rather than cost memory.
//!
//! Where a body lives: up to [`MAPPED_FROM`] bytes on the heap; larger (or
//! of unknown length) in an anonymous memory mapping, which is returned to
//! the OS when the body is dropped. glibc's malloc would keep them: after a
//! large block is freed it raises its mmap threshold to that block's size,
//! so the next bodies of that size come from its arenas, and freed arena
//! memory stays in the process (measured in BENCHMARKS.md: 81 MB of RSS
//! kept after 20 refused 23 MiB bodies through a heap buffer).

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::header::CONTENT_LENGTH;
use http_body::Body;
use http_body_util::BodyExt;
use memmap2::MmapMut;
use quarry_bedrock::auth::{HeadVerified, PayloadHash, PayloadHasher};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::errors::WireError;
use super::limits::{Limits, MAX_REQUEST_BODY_BYTES};
use crate::server_stats::ServerCounters;

/// A request body as the handler reads it: hyper's `Incoming` from a
/// socket, or a whole buffer in process ([`super::SimService`]).
pub(crate) trait RequestBody:
    Body<Data = Bytes, Error: Into<BoxError>> + Send + Unpin
{
}

impl<B: Body<Data = Bytes, Error: Into<BoxError>> + Send + Unpin> RequestBody for B {}

/// The error type request bodies report.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a request body could not be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// Over [`MAX_REQUEST_BODY_BYTES`]: answer with a ValidationException.
    TooLarge(WireError),
    /// The body did not arrive within the body timeout: close.
    TimedOut,
    /// The client went away mid-body: nothing to answer.
    Disconnected,
}

/// Bodies from this size on (or of unknown length) are read into an
/// anonymous mapping; below it, the heap serves them well (glibc's own
/// starting mmap threshold is 128 KiB).
const MAPPED_FROM: u64 = 128 * 1024;

/// Where a body is gathered (see the module doc).
enum BodyBuffer {
    Heap(BytesMut),
    /// Pages of `map` are committed only as they are written.
    Mapped {
        map: MmapMut,
        len: usize,
    },
}

impl BodyBuffer {
    fn for_length(declared: Option<u64>) -> Self {
        let size = match declared {
            Some(n) if n < MAPPED_FROM => {
                return BodyBuffer::Heap(BytesMut::with_capacity(n as usize));
            }
            Some(n) => n as usize,
            None => MAX_REQUEST_BODY_BYTES,
        };
        match MmapMut::map_anon(size) {
            Ok(map) => BodyBuffer::Mapped { map, len: 0 },
            // No address space for a mapping: the heap will do.
            Err(_) => BodyBuffer::Heap(BytesMut::with_capacity(size.min(1 << 20))),
        }
    }

    fn len(&self) -> usize {
        match self {
            BodyBuffer::Heap(b) => b.len(),
            BodyBuffer::Mapped { len, .. } => *len,
        }
    }

    /// Appends `data`; false when it does not fit the declared length.
    fn extend(&mut self, data: &[u8]) -> bool {
        match self {
            BodyBuffer::Heap(b) => {
                b.extend_from_slice(data);
                true
            }
            BodyBuffer::Mapped { map, len } => match map.get_mut(*len..*len + data.len()) {
                Some(room) => {
                    room.copy_from_slice(data);
                    *len += data.len();
                    true
                }
                None => false,
            },
        }
    }

    fn freeze(self) -> Bytes {
        match self {
            BodyBuffer::Heap(b) => b.freeze(),
            BodyBuffer::Mapped { map, len } => Bytes::from_owner(map).slice(..len),
        }
    }
}

/// A body read whole, with its SigV4 payload hash when the head needs one.
pub(crate) struct Received {
    pub(crate) bytes: Bytes,
    pub(crate) hash: Option<PayloadHash>,
}

/// The shared state of body reading: the budget of unverified bytes.
pub(crate) struct Intake {
    unverified: Arc<Semaphore>,
    body_timeout: std::time::Duration,
}

impl Intake {
    pub(crate) fn new(limits: &Limits) -> Self {
        let budget = limits
            .max_unverified_body_bytes
            .clamp(MAX_REQUEST_BODY_BYTES, Semaphore::MAX_PERMITS);
        Intake {
            unverified: Arc::new(Semaphore::new(budget)),
            body_timeout: limits.body_timeout,
        }
    }

    /// Reads the body of a request that arrived (its head complete) at
    /// `arrived` and whose head passed as `head`.
    pub(crate) async fn read<B: RequestBody>(
        &self,
        headers: &http::HeaderMap,
        mut body: B,
        head: &HeadVerified,
        arrived: Instant,
        counters: &ServerCounters,
    ) -> Result<Received, ReadError> {
        let declared = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_REQUEST_BODY_BYTES as u64) {
            counters.record_refused_before_body();
            return Err(ReadError::TooLarge(WireError::body_too_large()));
        }
        let deadline = arrived + self.body_timeout;
        let unproven = !head.caller_proven();
        let mut held: Option<OwnedSemaphorePermit> = None;
        if unproven && let Some(n) = declared {
            // The whole declared body at once, so two half-admitted bodies
            // can never wait on each other.
            held = Some(self.reserve(n as usize, deadline).await?);
        }
        let mut hasher = head.needs_payload_hash().then(PayloadHasher::new);
        let mut buf = BodyBuffer::for_length(declared);
        loop {
            let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
                Err(_) => return Err(ReadError::TimedOut),
                Ok(None) => break,
                Ok(Some(Err(_))) => return Err(ReadError::Disconnected),
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else {
                continue; // trailers: nothing Bedrock reads
            };
            if buf.len() + data.len() > MAX_REQUEST_BODY_BYTES {
                return Err(ReadError::TooLarge(WireError::body_too_large()));
            }
            if unproven {
                if declared.is_none() {
                    let more = self.reserve(data.len(), deadline).await?;
                    match &mut held {
                        Some(permit) => permit.merge(more),
                        None => held = Some(more),
                    }
                }
                counters.record_unverified_body_bytes(data.len());
            }
            if let Some(h) = &mut hasher {
                h.update(&data);
            }
            if !buf.extend(&data) {
                // More than the declared length (hyper does not let that
                // through; counted as too large all the same).
                return Err(ReadError::TooLarge(WireError::body_too_large()));
            }
        }
        Ok(Received {
            bytes: buf.freeze(),
            hash: hasher.map(PayloadHasher::finish),
        })
    }

    /// Waits, until `deadline`, for `n` bytes of the unverified budget.
    async fn reserve(
        &self,
        n: usize,
        deadline: Instant,
    ) -> Result<OwnedSemaphorePermit, ReadError> {
        // `n` is at most MAX_REQUEST_BODY_BYTES, far below u32::MAX.
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        match tokio::time::timeout_at(deadline, Arc::clone(&self.unverified).acquire_many_owned(n))
            .await
        {
            Ok(Ok(permit)) => Ok(permit),
            // The semaphore is never closed; a closed one would mean the
            // server is gone, and the client with it.
            Ok(Err(_)) => Err(ReadError::Disconnected),
            Err(_) => Err(ReadError::TimedOut),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{Full, StreamBody};
    use quarry_bedrock::auth::{StaticKeyStore, Verifier};

    fn api_key_head() -> HeadVerified {
        let verifier = Verifier::new(StaticKeyStore::new().with_api_key("ABSKk", "123456789012"));
        let mut headers = http::HeaderMap::new();
        headers.insert("authorization", "Bearer ABSKk".parse().unwrap());
        verifier
            .verify_head(
                &http::Method::POST,
                "/",
                &headers,
                std::time::SystemTime::UNIX_EPOCH,
            )
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_slower_than_its_time_is_cut() {
        let intake = Intake::new(&Limits {
            body_timeout: std::time::Duration::from_secs(5),
            ..Limits::default()
        });
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, BoxError>>(1);
        let body = StreamBody::new(tokio_stream_from(rx));
        tx.send(Ok(http_body::Frame::data(Bytes::from_static(b"{"))))
            .await
            .unwrap();
        let counters = ServerCounters::default();
        let r = intake
            .read(
                &http::HeaderMap::new(),
                body,
                &api_key_head(),
                Instant::now(),
                &counters,
            )
            .await;
        assert!(matches!(r, Err(ReadError::TimedOut)), "{:?}", r.err());
        drop(tx);
    }

    #[test]
    fn large_and_unknown_bodies_are_mapped_and_kept_to_their_length() {
        for declared in [Some(200_000u64), None] {
            let mut buf = BodyBuffer::for_length(declared);
            assert!(matches!(buf, BodyBuffer::Mapped { .. }));
            assert!(buf.extend(&[b'7'; 150_000]));
            assert!(buf.extend(b"end"));
            let bytes = buf.freeze();
            assert_eq!(bytes.len(), 150_003);
            assert!(bytes.ends_with(b"7end"));
        }
        let mut exact = BodyBuffer::for_length(Some(MAPPED_FROM));
        assert!(exact.extend(&vec![1u8; MAPPED_FROM as usize]));
        assert!(!exact.extend(b"x"), "past the declared length");
        assert!(matches!(
            BodyBuffer::for_length(Some(100)),
            BodyBuffer::Heap(_)
        ));
    }

    #[tokio::test]
    async fn a_proven_callers_body_costs_no_budget_and_is_whole() {
        let intake = Intake::new(&Limits::default());
        let counters = ServerCounters::default();
        let got = intake
            .read(
                &http::HeaderMap::new(),
                Full::new(Bytes::from_static(b"{\"a\":1}")),
                &api_key_head(),
                Instant::now(),
                &counters,
            )
            .await
            .unwrap();
        assert_eq!(&got.bytes[..], b"{\"a\":1}");
        assert!(got.hash.is_none(), "bearer keys sign no payload");
        assert_eq!(counters.snapshot().unverified_body_bytes, 0);
    }

    /// A `Stream` over an mpsc receiver (tokio-stream is not a dependency).
    fn tokio_stream_from<T: Send + 'static>(
        rx: tokio::sync::mpsc::Receiver<T>,
    ) -> impl futures_util::Stream<Item = T> + Send + Unpin {
        Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|v| (v, rx))
        }))
    }
}
