//! The Bedrock executor: what the engine calls to send one request. It turns
//! a drawn workload item into a signed Bedrock request, sends it through the
//! measured transport, reads the response (stamping the timeline at every
//! socket read), applies the retry policy, and prices the result.

mod attempt;
mod credentials;
pub(crate) mod retry;
mod signing;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use bytes::Bytes;
use http::HeaderValue;
use http::Method;
use quarry_bedrock::{
    Endpoint, Exchange, Framing, ModelFamily, ModelId, Operation, Outcome, Prompt, Retry,
    ServiceTierType,
};
use tokio::time::Instant;

use crate::clock::RunClock;
use crate::http::{Transport, TransportConfig};
use crate::plan::{MixEntry, RetryPolicy, RunPlan, Timeouts};
use crate::pricing::{PriceTable, TierPrices};
use crate::replay::{Replay, ReplayRequest};
use crate::scheduler::{Executor, Workload};
use crate::session::Conversation;
use crate::timeline::{Completion, EarlierAttempt, PlannedRequest, RequestTicket};
use crate::workload::{Draw, WorkloadSampler};
use quarry_bedrock::CacheTtl;

pub use credentials::{CredentialCache, CredentialSource, CredentialsError};
pub use signing::{NoCredentials, SignerSource};

use attempt::{Deadlines, PreparedRequest};

/// Why an executor could not be built for a plan.
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    /// A mix entry's model id is not one Bedrock accepts.
    #[error("workload[{index}].model: {message}")]
    ModelId {
        /// The mix entry.
        index: usize,
        /// What is wrong with it.
        message: String,
    },
    /// A native-body operation on a model whose family cannot be told from its id.
    #[error(
        "workload[{index}].model: {model:?} does not name its model family, which {operation} needs to build a native body; use Converse or ConverseStream"
    )]
    UnknownFamily {
        /// The mix entry.
        index: usize,
        /// The model id.
        model: String,
        /// The operation.
        operation: Operation,
    },
    /// A replayed request names a mix entry the plan does not have.
    #[error(
        "replay: the request from trace line {line} names workload entry {entry}, which the plan does not have"
    )]
    ReplayEntry {
        /// The trace line.
        line: u64,
        /// The entry index given.
        entry: u32,
    },
    /// The transport cannot reach the endpoint as given.
    #[error("endpoint: {0}")]
    Transport(#[from] crate::http::TransportError),
}

/// What a request needs from its mix entry, resolved once per run.
struct EntryTarget {
    model: Arc<str>,
    operation: Operation,
    family: ModelFamily,
    uri: http::Uri,
    cache_ttl: CacheTtl,
    service_tier: Option<ServiceTierType>,
}

/// Sends the requests of one agent share to one Bedrock endpoint.
pub struct BedrockExecutor {
    transport: Transport,
    host: HeaderValue,
    signer: SignerSource,
    sampler: Arc<WorkloadSampler>,
    entries: Vec<EntryTarget>,
    replay: Option<Arc<Replay>>,
    mix: Vec<MixEntry>,
    prices: PriceTable,
    tier_prices: TierPrices,
    retry: RetryPolicy,
    timeouts: Timeouts,
    seed: u64,
    /// Session turns mark conversation cache checkpoints.
    conversation_cache: bool,
}

impl BedrockExecutor {
    /// An executor for `plan`'s mix against `endpoint`, drawing from `sampler`.
    pub fn new(
        plan: &RunPlan,
        endpoint: &Endpoint,
        sampler: Arc<WorkloadSampler>,
        signer: SignerSource,
        transport: &TransportConfig,
    ) -> Result<Self, ExecutorError> {
        let mut entries = Vec::new();
        for (index, entry) in plan.mix.entries().iter().enumerate() {
            let model = ModelId::parse(&entry.model_id).map_err(|err| ExecutorError::ModelId {
                index,
                message: err.to_string(),
            })?;
            let family = match (model.family(), entry.operation.is_native()) {
                (Some(family), _) => family,
                // Converse bodies are the same for every family.
                (None, false) => ModelFamily::Anthropic,
                (None, true) => {
                    return Err(ExecutorError::UnknownFamily {
                        index,
                        model: entry.model_id.clone(),
                        operation: entry.operation,
                    });
                }
            };
            entries.push(EntryTarget {
                model: Arc::from(entry.model_id.as_str()),
                operation: entry.operation,
                family,
                uri: endpoint.uri(&model, entry.operation),
                cache_ttl: entry.cache.map(|c| c.ttl).unwrap_or(CacheTtl::FiveMinutes),
                service_tier: entry.service_tier,
            });
        }
        let replay = plan.replay.clone().map(Arc::new);
        if let Some(bad) = replay.as_ref().and_then(|r| {
            r.requests()
                .iter()
                .find(|q| q.entry as usize >= entries.len())
        }) {
            return Err(ExecutorError::ReplayEntry {
                line: bad.line,
                entry: bad.entry,
            });
        }
        let base: http::Uri = endpoint
            .base_url()
            .parse()
            .map_err(|_| crate::http::TransportError::InvalidTarget(endpoint.base_url()))?;
        let mut transport_config = transport.clone();
        transport_config.connect_timeout = plan.timeouts.connect;
        let host = HeaderValue::from_str(endpoint.host_header()).map_err(|_| {
            crate::http::TransportError::InvalidTarget(endpoint.host_header().to_owned())
        })?;
        Ok(BedrockExecutor {
            transport: Transport::new(&base, &transport_config)?,
            host,
            signer,
            sampler,
            entries,
            replay,
            mix: plan.mix.entries().to_vec(),
            prices: PriceTable::with_overrides(plan.pricing.clone()),
            tier_prices: plan.tier_prices,
            retry: plan.retry,
            timeouts: plan.timeouts,
            seed: plan.seed,
            conversation_cache: plan.sessions.is_some_and(|s| s.cache()),
        })
    }

    fn prepare(&self, ticket: &RequestTicket) -> (PreparedRequest, u64, Option<f32>, &EntryTarget) {
        if let Some(request) = ticket
            .replay
            .and_then(|i| self.replay.as_ref().and_then(|r| r.get(i)))
        {
            return self.prepare_replayed(request);
        }
        let draw = self.sampler.draw(ticket.seq);
        let target = &self.entries[draw.entry_index];
        let prompt = Self::drawn_prompt(&draw, target, Vec::new(), false);
        (
            self.request_for(target, &prompt),
            u64::from(prompt.max_tokens),
            draw.entry.temperature,
            target,
        )
    }

    /// The prompt of a drawn request: the entry's system prompt and shared
    /// prefix, the drawn text, and a session turn's earlier exchanges.
    fn drawn_prompt(
        draw: &Draw<'_>,
        target: &EntryTarget,
        history: Vec<Exchange>,
        conversation_cache: bool,
    ) -> Prompt {
        let mut user_text = String::with_capacity(draw.body.len() + 24);
        draw.write_user_text(&mut user_text);
        Prompt {
            system: draw.system_prompt.map(str::to_owned),
            cached_prefix: draw.cache_prefix.map(str::to_owned),
            user_text,
            max_tokens: draw.entry.max_tokens.get(),
            temperature: draw.entry.temperature,
            cache_ttl: draw.entry.cache.map(|c| c.ttl),
            service_tier: target.service_tier,
            history,
            conversation_cache,
        }
    }
}

impl BedrockExecutor {
    /// The request that sends `prompt` to `target`: its body in the
    /// operation's shape, its URI, host and tier (drawn and replayed
    /// requests alike).
    fn request_for(&self, target: &EntryTarget, prompt: &Prompt) -> PreparedRequest {
        PreparedRequest {
            uri: target.uri.clone(),
            host: self.host.clone(),
            operation: target.operation,
            family: target.family,
            service_tier: target.service_tier,
            body: Bytes::from(prompt.body(target.operation, target.family)),
            keep_answer: false,
        }
    }

    /// A replayed trace request: its own model, its recorded prompt or text
    /// of exactly its input tokens less the framing the model adds (a cached
    /// prefix, then the rest), and its output tokens as `max_tokens` (see
    /// [`crate::replay`]).
    fn prepare_replayed(
        &self,
        request: &ReplayRequest,
    ) -> (PreparedRequest, u64, Option<f32>, &EntryTarget) {
        // The index was checked against the entries when the executor was built.
        let target = &self.entries[request.entry as usize];
        let entry = &self.mix[request.entry as usize];
        let (cached_prefix, user_text) = match &request.prompt {
            Some(text) => (None, text.clone()),
            None => {
                let framing = if Framing::applies(target.operation, target.family) {
                    Framing::of(target.family).tokens(1, entry.system_prompt.is_some())
                } else {
                    0
                };
                request.generated_text(framing)
            }
        };
        let max_tokens = request.output_tokens.get();
        let prompt = Prompt {
            system: entry.system_prompt.clone(),
            cached_prefix,
            user_text,
            max_tokens,
            temperature: entry.temperature,
            cache_ttl: None,
            service_tier: target.service_tier,
            history: Vec::new(),
            conversation_cache: false,
        };
        (
            self.request_for(target, &prompt),
            u64::from(max_tokens),
            entry.temperature,
            target,
        )
    }
}

impl Executor<usize> for BedrockExecutor {
    async fn execute(
        &self,
        ticket: RequestTicket,
        _request: PlannedRequest<usize>,
        clock: RunClock,
    ) -> Completion {
        let (request, max_tokens, temperature, target) = self.prepare(&ticket);
        let (completion, _) = self
            .send(&ticket, &request, max_tokens, temperature, target, clock)
            .await;
        completion
    }

    async fn execute_turn(
        &self,
        ticket: RequestTicket,
        request: PlannedRequest<usize>,
        conversation: &mut Conversation,
        clock: RunClock,
    ) -> Completion {
        let Some(turn) = ticket.turn else {
            return self.execute(ticket, request, clock).await;
        };
        let draw = self.sampler.draw_turn(turn.session, turn.index);
        let target = &self.entries[draw.entry_index];
        let history = conversation.exchanges().to_vec();
        let prompt = Self::drawn_prompt(&draw, target, history, self.conversation_cache);
        let mut prepared = self.request_for(target, &prompt);
        prepared.keep_answer = true;
        let max_tokens = u64::from(prompt.max_tokens);
        let temperature = draw.entry.temperature;
        let (completion, answer) = self
            .send(&ticket, &prepared, max_tokens, temperature, target, clock)
            .await;
        if completion.outcome == Outcome::Ok {
            conversation.push(Exchange {
                question: prompt.user_text,
                answer: answer.unwrap_or_default(),
            });
        }
        completion
    }
}

impl BedrockExecutor {
    /// Sends a prepared request with the plan's retry policy and prices
    /// the result; returns the completion and the final attempt's answer
    /// text (when the request kept it).
    async fn send(
        &self,
        ticket: &RequestTicket,
        request: &PreparedRequest,
        max_tokens: u64,
        temperature: Option<f32>,
        target: &EntryTarget,
        clock: RunClock,
    ) -> (Completion, Option<String>) {
        let mut earlier_attempts = Vec::new();
        let max_attempts = self.retry.max_attempts();
        let mut attempt_no = 1;
        let result = loop {
            let headers = match self.signed_headers(request, clock).await {
                Ok(headers) => headers,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot sign");
                    let now = clock.now_ns();
                    let timeline = crate::timeline::Timeline::started(ticket.intended_at, now);
                    return (Completion::new(timeline, Outcome::ClientError), None);
                }
            };
            let start = Instant::now();
            let deadlines = Deadlines {
                request: start + self.timeouts.request,
                first_token: self.timeouts.first_token.map(|d| start + d),
            };
            let result = attempt::run(
                &self.transport,
                request,
                headers,
                ticket.intended_at,
                &clock,
                &deadlines,
            )
            .await;
            let retryable = result.outcome != Outcome::Ok && result.retry != Retry::No;
            if !retryable || attempt_no >= max_attempts {
                break result;
            }
            earlier_attempts.push(EarlierAttempt {
                outcome: result.outcome,
                sent_at: result.timeline.sent_at,
                closed_at: result.timeline.closed_at,
                quota_wall: result.response.quota_wall,
            });
            if let RetryPolicy::Standard {
                initial_backoff,
                max_backoff,
                ..
            } = self.retry
            {
                let seed = self.seed ^ ticket.seq.rotate_left(17);
                let wait = retry::backoff(
                    attempt_no,
                    initial_backoff,
                    max_backoff,
                    result.retry_after_ms,
                    seed,
                );
                tokio::time::sleep(wait).await;
            }
            attempt_no += 1;
        };
        let mut completion = Completion::new(result.timeline, result.outcome);
        completion.max_tokens = max_tokens;
        completion.temperature = temperature;
        completion.response = result.response;
        completion.earlier_attempts = earlier_attempts;
        if let Some(usage) = result.usage {
            // Priced at the tier that served it (a Reserved request that
            // overflowed is charged at Standard); a response that names no
            // tier was served at the one asked for.
            let served = completion.response.service_tier.or(target.service_tier);
            completion.cost_pico_usd = self
                .prices
                .cost_pico_usd(&target.model, &usage.tokens, target.cache_ttl)
                .and_then(|standard| self.tier_prices.apply(served, standard))
                .unwrap_or(0);
            completion.usage = Some(usage);
        }
        (completion, result.answer)
    }
}

impl BedrockExecutor {
    async fn signed_headers(
        &self,
        request: &PreparedRequest,
        clock: RunClock,
    ) -> Result<http::HeaderMap, String> {
        let signer = self.signer.signer().await.map_err(|e| e.to_string())?;
        let mut headers = attempt::base_headers(request);
        signer
            .sign_headers(
                &Method::POST,
                &request.uri,
                &mut headers,
                &request.body,
                clock.wall_at(clock.now_ns()),
            )
            .map_err(|e| e.to_string())?;
        Ok(headers)
    }
}

/// The workload of a plan: draws each request's mix entry from the sampler.
pub struct MixWorkload {
    sampler: Arc<WorkloadSampler>,
    models: Vec<(Arc<str>, Operation, Option<ServiceTierType>)>,
    replay: Option<Arc<Replay>>,
}

impl MixWorkload {
    /// The workload drawing from `sampler` (the same one the executor uses, so
    /// both see the same draw for a request).
    pub fn new(sampler: Arc<WorkloadSampler>, plan: &RunPlan) -> Self {
        let models = plan
            .mix
            .entries()
            .iter()
            .map(|e| (Arc::from(e.model_id.as_str()), e.operation, e.service_tier))
            .collect();
        MixWorkload {
            sampler,
            models,
            replay: plan.replay.clone().map(Arc::new),
        }
    }
}

impl Workload for MixWorkload {
    type Item = usize;

    fn pick(&self, ticket: &RequestTicket) -> PlannedRequest<usize> {
        let replayed = ticket
            .replay
            .and_then(|i| self.replay.as_ref().and_then(|r| r.get(i)))
            .map(|r| r.entry as usize)
            .filter(|&e| e < self.models.len());
        let index = replayed.unwrap_or_else(|| match ticket.turn {
            Some(turn) => self.sampler.session_entry(turn.session),
            None => self.sampler.entry(ticket.seq),
        });
        let (model, operation, service_tier) = &self.models[index];
        PlannedRequest {
            model: model.clone(),
            operation: *operation,
            service_tier: *service_tier,
            item: index,
        }
    }
}
