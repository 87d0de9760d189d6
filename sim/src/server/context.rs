//! What every answer is built from, below the dispatcher and its leaves:
//! the state all connections share ([`Shared`]), the headers every Bedrock
//! answer carries ([`response`]), refusals before admission, and an
//! admitted request ([`Admitted`]) as the unary and streaming answers take
//! it. The dispatcher (`handler`) and the answers (`admin`, `unary`,
//! `stream`) depend on this module, never on each other upwards.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::SystemTime;

use http::header::{CONTENT_TYPE, DATE};
use http::{HeaderValue, Response};
use quarry_bedrock::Operation;
use quarry_bedrock::auth::WallClock;
use quarry_bedrock::header_names::REQUEST_ID;
use tokio::time::Instant;

use super::auth::Authenticator;
use super::body::SimBody;
use super::errors::WireError;
use super::intake::Intake;
use super::limits::Limits;
use super::prompt::PromptSummary;
use crate::catalog::ResolvedModel;
use crate::runtime::{Simulator, Ticket};

/// What every connection's requests share.
pub(crate) struct Shared {
    pub(crate) sim: Arc<Simulator>,
    pub(crate) auth: Authenticator,
    /// Request bodies' budget and timeout.
    pub(crate) intake: Intake,
    pub(crate) clock: WallClock,
}

impl Shared {
    pub(crate) fn new(sim: Arc<Simulator>, clock: WallClock, limits: &Limits) -> Self {
        Shared {
            auth: Authenticator::new(Arc::clone(&sim)),
            intake: Intake::new(limits),
            sim,
            clock,
        }
    }

    /// The `Date` header for now, formatted at most once a second per thread.
    pub(crate) fn date(&self) -> HeaderValue {
        thread_local! {
            static CACHED: RefCell<(u64, Option<HeaderValue>)> = const { RefCell::new((u64::MAX, None)) };
        }
        let now = (self.clock)();
        let secs = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        CACHED.with_borrow_mut(|(at, value)| {
            if *at != secs || value.is_none() {
                *at = secs;
                *value = HeaderValue::from_str(&httpdate::fmt_http_date(now)).ok();
            }
            value
                .clone()
                .unwrap_or_else(|| HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"))
        })
    }

    /// An error answer to a request that never got a ticket, counted.
    pub(crate) fn refuse(
        &self,
        lane: usize,
        operation: Operation,
        error: WireError,
    ) -> Response<SimBody> {
        let outcome = error.code.outcome(&error.message);
        self.sim.stats().record_request(lane, operation, outcome);
        error.into_response(&new_id(), self.date())
    }
}

/// A fresh request id.
pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A response carrying the headers every Bedrock answer has.
pub(crate) fn response(
    shared: &Shared,
    request_id: &str,
    content_type: &'static str,
    body: SimBody,
) -> Response<SimBody> {
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert(REQUEST_ID, v);
    }
    h.insert(DATE, shared.date());
    r
}

/// A request that has been admitted: everything its answer needs.
pub(crate) struct Admitted<'s> {
    pub(crate) shared: &'s Shared,
    pub(crate) operation: Operation,
    /// The model id as the request sent it (percent-decoded): CloudWatch's
    /// `ModelId` dimension.
    pub(crate) model_id: String,
    pub(crate) model: ResolvedModel,
    pub(crate) prompt: PromptSummary,
    pub(crate) ticket: Ticket,
    /// When the request arrived (server-side latencies count from here).
    pub(crate) arrived: Instant,
    /// The request's `X-Amzn-Bedrock-Accept` (IMWRS chunk content type).
    pub(crate) accept: Option<HeaderValue>,
}
