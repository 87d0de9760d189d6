//! Response bodies (a whole buffer for unary answers, a frame-by-frame event
//! stream for streaming ones) and reading request bodies under the size cap.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use http::header::CONTENT_LENGTH;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Limited};

use super::errors::{MAX_BODY_BYTES, WireError};

/// The stream was cut on purpose (an injected reset): hyper closes the
/// connection without finishing the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConnectionReset;

impl fmt::Display for ConnectionReset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection reset by an injected fault")
    }
}

impl std::error::Error for ConnectionReset {}

/// A stream of body chunks; each is written to the socket as produced.
pub(crate) type ChunkStream =
    Pin<Box<dyn Stream<Item = Result<Bytes, ConnectionReset>> + Send + 'static>>;

/// Every response body the simulator sends.
pub(crate) enum SimBody {
    /// A whole body (taken when sent).
    Full(Option<Bytes>),
    /// An event stream.
    Stream(ChunkStream),
}

impl SimBody {
    pub(crate) fn full(bytes: Bytes) -> Self {
        SimBody::Full(Some(bytes))
    }
}

impl Body for SimBody {
    type Data = Bytes;
    type Error = ConnectionReset;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ConnectionReset>>> {
        match self.get_mut() {
            SimBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            SimBody::Stream(s) => s
                .as_mut()
                .poll_next(cx)
                .map(|o| o.map(|r| r.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, SimBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            SimBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            SimBody::Stream(_) => SizeHint::default(),
        }
    }
}

/// Why a request body could not be read.
pub(crate) enum ReadError {
    /// Over [`MAX_BODY_BYTES`]: answer with a ValidationException.
    TooLarge(WireError),
    /// The client went away mid-body: nothing to answer.
    Disconnected,
}

/// A request body as the handler reads it: hyper's `Incoming` from a
/// socket, or a whole buffer in process ([`super::SimService`]).
pub(crate) trait RequestBody: Body<Data = Bytes, Error: Into<BoxError>> + Send {}

impl<B: Body<Data = Bytes, Error: Into<BoxError>> + Send> RequestBody for B {}

/// The error type `Limited` reports.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Reads the whole request body, refusing more than [`MAX_BODY_BYTES`]
/// (early, from `Content-Length`, when the client declares it).
pub(crate) async fn read_body<B: RequestBody>(
    headers: &http::HeaderMap,
    body: B,
) -> Result<Bytes, ReadError> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(ReadError::TooLarge(WireError::body_too_large()));
    }
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(ReadError::TooLarge(WireError::body_too_large()))
        }
        Err(_) => Err(ReadError::Disconnected),
    }
}
