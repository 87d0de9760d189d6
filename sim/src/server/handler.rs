//! One request, start to end: route, read the body, authenticate, resolve
//! the model, parse and validate the body, admit, then hand the ticket to
//! the unary or streaming answer. Every refusal on the way goes out through
//! [`WireError`]; outcomes the core does not see (auth, unknown model, bad
//! body) are counted here.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, DATE};
use http::request::Parts;
use http::{HeaderValue, Request, Response};
use quarry_bedrock::auth::WallClock;
use quarry_bedrock::header_names::{APPLICATION_JSON, REQUEST_ID};
use quarry_bedrock::{ErrorCode, ModelId, Operation, Outcome};
use tokio::time::Instant;

use super::admin;
use super::auth::Authenticator;
use super::body::{ConnectionReset, ReadError, RequestBody, SimBody, read_body};
use super::errors::WireError;
use super::prompt::{self, PromptSummary};
use super::router::{self, Route, UNKNOWN_OPERATION_BODY};
use super::{stream, unary};
use crate::catalog::ResolvedModel;
use crate::faults::HeaderFault;
use crate::runtime::{Rejection, RequestSpec, Simulator, Ticket};

/// What every connection's requests share.
pub(crate) struct Shared {
    pub(crate) sim: Arc<Simulator>,
    pub(crate) auth: Authenticator,
    pub(crate) clock: WallClock,
}

impl Shared {
    pub(crate) fn new(sim: Arc<Simulator>, clock: WallClock) -> Self {
        Shared {
            auth: Authenticator::new(Arc::clone(&sim)),
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

    /// An error answer to a request that never got a ticket.
    fn refuse(&self, lane: usize, operation: Operation, error: WireError) -> Response<SimBody> {
        let outcome = error.code.outcome(&error.message);
        self.sim.stats().record_request(lane, operation, outcome);
        error.into_response(&uuid::Uuid::new_v4().to_string(), self.date())
    }
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

/// The hyper service: answers one request, or resets the connection.
pub(crate) async fn handle<B: RequestBody>(
    shared: Arc<Shared>,
    req: Request<B>,
) -> Result<Response<SimBody>, ConnectionReset> {
    let (parts, body) = req.into_parts();
    match router::route(&parts.method, parts.uri.path()) {
        Route::Admin(endpoint) => Ok(admin::answer(&shared, endpoint)),
        Route::Unknown => Ok(response(
            &shared,
            &uuid::Uuid::new_v4().to_string(),
            APPLICATION_JSON,
            SimBody::full(Bytes::from_static(UNKNOWN_OPERATION_BODY.as_bytes())),
        )),
        Route::Guardrail => guardrail(&shared, &parts, body).await,
        Route::Model {
            operation,
            raw_model_id,
        } => model_request(&shared, operation, raw_model_id, &parts, body).await,
    }
}

/// ApplyGuardrail: authenticated like any call; the simulator has no
/// guardrails, so every identifier is unknown.
async fn guardrail<B: RequestBody>(
    shared: &Shared,
    parts: &Parts,
    body: B,
) -> Result<Response<SimBody>, ConnectionReset> {
    let body = match read_body(&parts.headers, body).await {
        Ok(b) => b,
        Err(ReadError::TooLarge(e)) => return Ok(e.into_response(&new_id(), shared.date())),
        Err(ReadError::Disconnected) => return Err(ConnectionReset),
    };
    let error = match authenticate(shared, parts, &body) {
        Err(e) => e,
        Ok(_) => WireError::new(
            ErrorCode::ResourceNotFoundException,
            "The guardrail identifier or version provided does not exist.",
        ),
    };
    Ok(error.into_response(&new_id(), shared.date()))
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn authenticate(
    shared: &Shared,
    parts: &Parts,
    body: &[u8],
) -> Result<crate::runtime::AccountIdx, WireError> {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    shared
        .auth
        .verify(&parts.method, path, &parts.headers, body, (shared.clock)())
}

/// A request that has been admitted: everything its answer needs.
pub(crate) struct Admitted<'s> {
    pub(crate) shared: &'s Shared,
    pub(crate) operation: Operation,
    pub(crate) model: ResolvedModel,
    pub(crate) prompt: PromptSummary,
    pub(crate) ticket: Ticket,
    /// When the request arrived (server-side latencies count from here).
    pub(crate) arrived: Instant,
    /// The request's `X-Amzn-Bedrock-Accept` (IMWRS chunk content type).
    pub(crate) accept: Option<HeaderValue>,
}

async fn model_request<B: RequestBody>(
    shared: &Shared,
    operation: Operation,
    raw_model_id: &str,
    parts: &Parts,
    body: B,
) -> Result<Response<SimBody>, ConnectionReset> {
    let arrived = Instant::now();
    let unresolved = shared.sim.stats().unresolved_lane();
    let body = match read_body(&parts.headers, body).await {
        Ok(b) => b,
        Err(ReadError::TooLarge(e)) => return Ok(shared.refuse(unresolved, operation, e)),
        Err(ReadError::Disconnected) => return Err(ConnectionReset),
    };
    let account = match authenticate(shared, parts, &body) {
        Ok(a) => a,
        Err(e) => return Ok(shared.refuse(unresolved, operation, e)),
    };
    let Ok(model_id) = ModelId::decode_path_segment(raw_model_id) else {
        return Ok(shared.refuse(unresolved, operation, WireError::invalid_model_id()));
    };
    let model = match shared.sim.resolve(model_id.as_str()) {
        Ok(m) => m,
        Err(e) => return Ok(shared.refuse(unresolved, operation, e.into())),
    };
    let parsed = match operation {
        Operation::Converse | Operation::ConverseStream => prompt::converse(&model.profile, &body),
        Operation::InvokeModel | Operation::InvokeModelWithResponseStream => {
            prompt::native(&model.profile, &body).map(|mut p| {
                prompt::invoke_headers(&mut p, &parts.headers);
                p
            })
        }
        Operation::CountTokens => {
            return Ok(match prompt::count_tokens_request(&model.profile, &body) {
                Ok(tokens) => {
                    let stats = shared.sim.stats();
                    stats.record_request(model.lane, operation, Outcome::Ok);
                    unary::count_tokens(shared, tokens)
                }
                Err(e) => shared.refuse(model.lane, operation, e),
            });
        }
    };
    let prompt = match parsed {
        Ok(p) => p,
        Err(e) => return Ok(shared.refuse(model.lane, operation, e)),
    };
    let spec = RequestSpec {
        account,
        operation,
        input_tokens: prompt.input_tokens,
        max_tokens: prompt.max_tokens,
        cache_points: &prompt.cache_points,
    };
    // admit() counts its own refusals, so they are answered without `refuse`.
    let ticket = match shared.sim.admit(&model, &spec) {
        Ok(t) => t,
        Err(r) => return rejected(shared, r).await,
    };
    let admitted = Admitted {
        shared,
        operation,
        model,
        prompt,
        ticket,
        arrived,
        accept: parts
            .headers
            .get(quarry_bedrock::header_names::BEDROCK_ACCEPT)
            .cloned(),
    };
    match operation {
        Operation::ConverseStream | Operation::InvokeModelWithResponseStream => {
            Ok(stream::answer(admitted).await)
        }
        _ => unary::answer(admitted).await,
    }
}

/// Answers a request admission refused.
async fn rejected(
    shared: &Shared,
    rejection: Rejection,
) -> Result<Response<SimBody>, ConnectionReset> {
    let error = match rejection {
        Rejection::Invalid { code, message } => WireError::new(code, message),
        Rejection::Throttled(t) => t.into(),
        Rejection::Fault { fault, delay } => {
            if let Some(d) = delay {
                tokio::time::sleep(d).await;
            }
            match fault {
                HeaderFault::Error(e) => e.into(),
                HeaderFault::Reset => return Err(ConnectionReset),
            }
        }
    };
    Ok(error.into_response(&new_id(), shared.date()))
}
