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

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::header::CONTENT_LENGTH;
use http_body::Body;
use http_body_util::BodyExt;
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
        // One allocation of the declared size: a body is one block the
        // allocator can hand back whole, not hyper's chunks scattered.
        let mut buf = BytesMut::with_capacity(declared.unwrap_or(0) as usize);
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
            buf.extend_from_slice(&data);
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
