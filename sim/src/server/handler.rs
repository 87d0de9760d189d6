//! The dispatcher: one request, start to end. Route; authenticate the head
//! (a refusal here reads none of the body); read the body under its limits;
//! finish authentication over the body's hash; resolve the model, parse and
//! validate the body, admit; then hand the ticket to the unary or streaming
//! answer. Every refusal on the way goes out through [`WireError`]; outcomes
//! the core does not see (auth, unknown model, bad body) are counted here.
//!
//! It sits on top: it calls the answers (`admin`, `unary`, `stream`), which
//! know only the shared types below them (`context`).

use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::{Request, Response};
use quarry_bedrock::header_names::APPLICATION_JSON;
use quarry_bedrock::{ErrorCode, Fault, ModelId, Operation, Outcome, TokenUsage};
use tokio::time::Instant;

use super::auth::{SignedFor, signed_region};
use super::body::{ConnectionReset, SimBody};
use super::context::{Admitted, Shared, new_id, response};
use super::errors::WireError;
use super::intake::{ReadError, Received, RequestBody};
use super::quotas::{self, QuotasOperation};
use super::router::{self, Route, UNKNOWN_OPERATION_BODY};
use super::{admin, prompt, stream, unary};
use crate::cloudwatch::CloudWatchEvent;
use crate::faults::HeaderFault;
use crate::runtime::{AccountIdx, Rejection, RequestSpec};
use crate::server_stats::ClosedBecause;

/// The hyper service: answers one request, or cuts the connection.
pub(crate) async fn handle<B: RequestBody>(
    shared: Arc<Shared>,
    req: Request<B>,
) -> Result<Response<SimBody>, ConnectionReset> {
    let (parts, body) = req.into_parts();
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok());
    match router::route(&parts.method, parts.uri.path(), target) {
        Route::Admin(endpoint) => Ok(admin::answer(&shared, endpoint)),
        Route::Unknown => Ok(response(
            &shared,
            &new_id(),
            APPLICATION_JSON,
            SimBody::full(Bytes::from_static(UNKNOWN_OPERATION_BODY.as_bytes())),
        )),
        Route::Guardrail => guardrail(&shared, &parts, body).await,
        Route::ServiceQuotas(operation) => service_quotas(&shared, operation, &parts, body).await,
        Route::Model {
            operation,
            raw_model_id,
        } => model_request(&shared, operation, raw_model_id, &parts, body).await,
    }
}

/// An authenticated request's account and body, or what to answer instead.
enum Authenticated {
    Caller(AccountIdx, Bytes),
    Refused(WireError),
}

/// The two steps of authentication around reading the body (see the module
/// doc); `Err` when the connection is to be cut without an answer.
async fn authenticate<B: RequestBody>(
    shared: &Shared,
    service: SignedFor,
    parts: &Parts,
    body: B,
    arrived: Instant,
) -> Result<Authenticated, ConnectionReset> {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let counters = shared.sim.stats().server();
    let head = match shared.auth.verify_head(
        service,
        &parts.method,
        path,
        &parts.headers,
        (shared.clock)(),
    ) {
        Ok(head) => head,
        Err(e) => {
            counters.record_refused_before_body();
            return Ok(Authenticated::Refused(e));
        }
    };
    let read = shared
        .intake
        .read(&parts.headers, body, &head, arrived, counters)
        .await;
    let Received { bytes, hash } = match read {
        Ok(received) => received,
        Err(ReadError::TooLarge(e)) => return Ok(Authenticated::Refused(e)),
        Err(ReadError::TimedOut) => {
            counters.record_timed_out(ClosedBecause::SlowBody);
            return Err(ConnectionReset);
        }
        Err(ReadError::Disconnected) => return Err(ConnectionReset),
    };
    Ok(
        match shared.auth.finish(head, hash.as_ref(), &parts.headers) {
            Ok(account) => Authenticated::Caller(account, bytes),
            Err(e) => Authenticated::Refused(e),
        },
    )
}

/// ApplyGuardrail: authenticated like any call; the simulator has no
/// guardrails, so every identifier is unknown.
async fn guardrail<B: RequestBody>(
    shared: &Shared,
    parts: &Parts,
    body: B,
) -> Result<Response<SimBody>, ConnectionReset> {
    let error = match authenticate(shared, SignedFor::Bedrock, parts, body, Instant::now()).await? {
        Authenticated::Refused(e) => e,
        Authenticated::Caller(..) => WireError::new(
            ErrorCode::ResourceNotFoundException,
            "The guardrail identifier or version provided does not exist.",
        ),
    };
    Ok(error.into_response(&new_id(), shared.date()))
}

/// A Service Quotas call: authenticated for `servicequotas` (auth refusals
/// go out as the common auth errors), then answered from the caller's
/// account's quotas. Not counted in the Bedrock request stats.
async fn service_quotas<B: RequestBody>(
    shared: &Shared,
    operation: QuotasOperation,
    parts: &Parts,
    body: B,
) -> Result<Response<SimBody>, ConnectionReset> {
    let authenticated = authenticate(
        shared,
        SignedFor::ServiceQuotas,
        parts,
        body,
        Instant::now(),
    )
    .await?;
    Ok(match authenticated {
        Authenticated::Refused(e) => e.into_response(&new_id(), shared.date()),
        Authenticated::Caller(account, body) => quotas::answer(
            shared,
            operation,
            account,
            signed_region(&parts.headers),
            &body,
        ),
    })
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
    let (account, body) =
        match authenticate(shared, SignedFor::Bedrock, parts, body, arrived).await? {
            Authenticated::Caller(account, body) => (account, body),
            Authenticated::Refused(e) => return Ok(shared.refuse(unresolved, operation, e)),
        };
    let Ok(model_id) = ModelId::decode_path_segment(raw_model_id) else {
        return Ok(shared.refuse(unresolved, operation, WireError::invalid_model_id()));
    };
    // CountTokens names a foundation model, even one invoked only through
    // inference profiles (PROTOCOL.md §2.3).
    let resolved = match operation {
        Operation::CountTokens => shared.sim.resolve_for_counting(model_id.as_str()),
        _ => shared.sim.resolve(model_id.as_str()),
    };
    let model = match resolved {
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
    // The body is parsed; it is not held while the answer takes its time.
    drop(body);
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
        service_tier: prompt.service_tier,
    };
    // admit() counts its own refusals, so they are answered without `refuse`.
    let ticket = match shared.sim.admit(&model, &spec) {
        Ok(t) => t,
        Err(r) => return rejected(shared, model_id.as_str(), r).await,
    };
    let admitted = Admitted {
        shared,
        operation,
        model_id: model_id.as_str().to_owned(),
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
/// Answers a request admission refused. Throttles and injected 5xx faults
/// are counted in the CloudWatch view; refusals of the request's own limits
/// are input validation, which CloudWatch does not count.
async fn rejected(
    shared: &Shared,
    model_id: &str,
    rejection: Rejection,
) -> Result<Response<SimBody>, ConnectionReset> {
    let cloudwatch = |event| {
        shared
            .sim
            .cloudwatch()
            .record((shared.clock)(), model_id, event);
    };
    let error = match rejection {
        Rejection::Invalid { code, message } => WireError::new(code, message),
        Rejection::Throttled(t) => {
            cloudwatch(CloudWatchEvent::Throttled);
            t.into()
        }
        Rejection::Unavailable { message } => {
            cloudwatch(CloudWatchEvent::Failed {
                usage: TokenUsage::default(),
                burndown: 1,
                server: true,
            });
            WireError::new(ErrorCode::ServiceUnavailableException, message)
        }
        Rejection::Fault { fault, delay } => {
            if let Some(d) = delay {
                tokio::time::sleep(d).await;
            }
            match fault {
                HeaderFault::Error(e) => {
                    if e.code.fault() == Fault::Server {
                        cloudwatch(CloudWatchEvent::Failed {
                            usage: TokenUsage::default(),
                            burndown: 1,
                            server: true,
                        });
                    }
                    e.into()
                }
                HeaderFault::Reset => return Err(ConnectionReset),
            }
        }
    };
    Ok(error.into_response(&new_id(), shared.date()))
}
