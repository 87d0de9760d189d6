//! Response bodies: a whole buffer for unary answers, a frame-by-frame event
//! stream for streaming ones, and the deliberate connection reset.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use http_body::{Body, Frame, SizeHint};

/// The connection is cut on purpose, without (the rest of) an answer: an
/// injected reset, or a request body that outlasted the body timeout.
/// hyper closes the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConnectionReset;

impl fmt::Display for ConnectionReset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection cut by the simulator (an injected reset or a body timeout)")
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
