//! The per-request engine the server drives: admission (validation, faults,
//! quota reservation, prompt cache, output plan), the decode-slot queue of
//! each lane, TTFT, the inter-token gaps under the lane's current contention,
//! and settlement when the request ends or is abandoned.
//!
//! A request's life, as the server sees it:
//! 1. [`Simulator::admit`] → a [`Ticket`], or a [`Rejection`] to answer with.
//! 2. [`Ticket::before_headers`] (slow-header faults), then send headers
//!    (streams send HTTP 200 right away).
//! 3. [`Ticket::next`] until it returns something other than
//!    [`Step::Token`]: the first call waits for a decode slot and the TTFT,
//!    later calls wait the gap the lane's contention implies at that moment.
//! 4. [`Ticket::finish`] settles the quota with the real usage and returns
//!    it. Dropping a ticket without finishing (client gone) releases its
//!    slot and settles what was produced.
//!
//! All waiting uses tokio time (tests run with paused time); the
//! zero-latency profile never touches a timer.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use quarry_bedrock::{
    ErrorCode, Operation, Outcome, ServiceTierType, TokenUsage, messages, reservation, settlement,
};
use rand::RngCore;
use rand_chacha::ChaCha8Rng;
use tokio::time::Instant;

use crate::cache::{CachePoint, CacheUsage, PromptCache};
use crate::catalog::{Catalog, ModelIdx, ModelProfile, ResolveError, ResolvedModel, Route};
use crate::cloudwatch::CloudWatchBook;
use crate::config::{AccountConfig, ConfigError, SimConfig, TierConfig};
use crate::faults::{
    FaultContext, FaultDecision, FaultPlan, HeaderFault, InjectedError, StreamFaultKind,
};
use crate::latency::LatencyModel;
use crate::quota::{PoolKey, PoolScope, QuotaBook, Reservation, Throttle};
use crate::slots::{Class, SlotPermit, Slots};
use crate::stats::{QuotaSnapshot, SimStats, StatsSnapshot};
use crate::text::{PseudoText, RequestSeed, RngStream, StopReason};

/// An account's index in [`Simulator::accounts`]: its quota identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AccountIdx(pub u32);

/// What the server knows about a request when it asks to admit it.
#[derive(Debug, Clone, Copy)]
pub struct RequestSpec<'a> {
    /// The authenticated account.
    pub account: AccountIdx,
    /// The operation (not CountTokens: it is free and unmetered).
    pub operation: Operation,
    /// Every input token of the request (cached prefixes included), counted
    /// with [`crate::text::count_tokens`].
    pub input_tokens: u64,
    /// `maxTokens` / `max_tokens`, when the request set it.
    pub max_tokens: Option<u64>,
    /// Cache checkpoints in request order (empty when none).
    pub cache_points: &'a [CachePoint],
    /// The service tier the request named (`serviceTier` / the header).
    pub service_tier: Option<ServiceTierType>,
}

/// Why a request is answered with an error instead of a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The request is invalid for this model (400 ValidationException).
    Invalid {
        /// The error code.
        code: ErrorCode,
        /// The message.
        message: String,
    },
    /// A quota refused it (429 ThrottlingException).
    Throttled(Throttle),
    /// No capacity for it (503 ServiceUnavailableException): a Flex request
    /// that found every decode slot busy and the Flex queue full.
    Unavailable {
        /// The message.
        message: &'static str,
    },
    /// An injected fault answers it, after `delay` if set.
    Fault {
        /// The error or reset.
        fault: HeaderFault,
        /// Slow-header delay to wait before answering.
        delay: Option<Duration>,
    },
}

/// One step of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The next output token's text.
    Token(&'static str),
    /// The answer is complete.
    Done(StopReason),
    /// Send this exception in-stream and end the stream.
    Exception(InjectedError),
    /// Reset the connection.
    Reset,
}

/// How a finished request went, for the response's usage and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    /// Token usage to report.
    pub usage: TokenUsage,
    /// The stop reason (meaningful when the answer completed).
    pub stop_reason: StopReason,
    /// The modelled time from admission to the last scheduled token
    /// (`metrics.latencyMs`): queueing, TTFT and gaps, without host noise.
    pub latency: Duration,
    /// Quota tokens the request settled at (0 for provisioned throughput).
    pub quota_settled: u64,
}

/// A lane: the decode capacity serving one model (or provisioned model).
#[derive(Debug)]
struct Lane {
    latency: LatencyModel,
    /// Decode slots, handed out by tier; `None` when the profile has no
    /// capacity limit.
    slots: Option<Arc<Slots>>,
}

/// The simulator's state: configuration, catalog, quotas, cache, faults,
/// stats and lanes. Share it as `Arc<Simulator>`.
#[derive(Debug)]
pub struct Simulator {
    seed: u64,
    accounts: Vec<AccountConfig>,
    access_keys: HashMap<String, AccountIdx>,
    api_keys: HashMap<String, AccountIdx>,
    catalog: Catalog,
    quotas: QuotaBook,
    cache: PromptCache,
    faults: FaultPlan,
    stats: SimStats,
    /// Per-minute, per-model-id figures as CloudWatch publishes them.
    cloudwatch: CloudWatchBook,
    lanes: Box<[Lane]>,
    /// Per-model request counters, for per-model fault schedules.
    model_sequence: Box<[AtomicU64]>,
    sequence: AtomicU64,
    start: Instant,
    tiers: TierConfig,
    /// Stamp every frame of a streaming answer with its write time.
    stamp_frames: bool,
}

impl Simulator {
    /// Builds a simulator from a configuration (validated again here).
    pub fn new(config: &SimConfig) -> Result<Arc<Self>, ConfigError> {
        config.validate()?;
        let catalog = config.catalog()?;
        let accounts = config.effective_accounts();
        let mut access_keys = HashMap::new();
        let mut api_keys = HashMap::new();
        for (i, a) in accounts.iter().enumerate() {
            let idx = AccountIdx(u32::try_from(i).unwrap_or(u32::MAX));
            access_keys.insert(a.access_key_id.clone(), idx);
            for k in &a.api_keys {
                api_keys.insert(k.clone(), idx);
            }
        }
        let mut lanes: Vec<Lane> = catalog
            .models()
            .map(|(_, p)| lane(p.latency, None))
            .collect();
        for pt in catalog.provisioned() {
            let p = catalog.profile(pt.model);
            lanes.push(lane(
                p.latency,
                Some(pt.model_units.saturating_mul(p.streams_per_model_unit)),
            ));
        }
        let names = (0..catalog.lane_count())
            .map(|l| catalog.lane_name(l).to_owned())
            .collect();
        let start = Instant::now();
        Ok(Arc::new(Simulator {
            seed: config.seed,
            access_keys,
            api_keys,
            quotas: QuotaBook::new(config.quota.window, start),
            cache: PromptCache::new(config.cache.max_entries),
            faults: FaultPlan::new(&config.faults, &catalog),
            stats: SimStats::new(names),
            cloudwatch: CloudWatchBook::default(),
            lanes: lanes.into_boxed_slice(),
            model_sequence: (0..catalog.len()).map(|_| AtomicU64::new(0)).collect(),
            sequence: AtomicU64::new(0),
            accounts,
            catalog,
            start,
            tiers: config.tiers,
            stamp_frames: config.stamp_frames,
        }))
    }

    /// Whether every frame of a streaming answer carries
    /// [`quarry_bedrock::WRITTEN_NS_HEADER`] ([`SimConfig::stamp_frames`]).
    pub fn stamps_frames(&self) -> bool {
        self.stamp_frames
    }

    /// Every account served, in index order.
    pub fn accounts(&self) -> &[AccountConfig] {
        &self.accounts
    }

    /// The account owning a SigV4 access key id.
    pub fn account_by_access_key(
        &self,
        access_key_id: &str,
    ) -> Option<(AccountIdx, &AccountConfig)> {
        let idx = *self.access_keys.get(access_key_id)?;
        Some((idx, &self.accounts[idx.0 as usize]))
    }

    /// The account owning a Bedrock API key (bearer token).
    pub fn account_by_api_key(&self, api_key: &str) -> Option<(AccountIdx, &AccountConfig)> {
        let idx = *self.api_keys.get(api_key)?;
        Some((idx, &self.accounts[idx.0 as usize]))
    }

    /// The per-minute CloudWatch figures (`GET /_quarry/cloudwatch`).
    pub fn cloudwatch(&self) -> &CloudWatchBook {
        &self.cloudwatch
    }

    /// The model catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Resolves a request's model id (percent-decoded).
    pub fn resolve(&self, model_id: &str) -> Result<ResolvedModel, ResolveError> {
        self.catalog.resolve(model_id)
    }

    /// Resolves the foundation-model id of a CountTokens request
    /// ([`Catalog::resolve_for_counting`]).
    pub fn resolve_for_counting(&self, model_id: &str) -> Result<ResolvedModel, ResolveError> {
        self.catalog.resolve_for_counting(model_id)
    }

    /// The counters (for recording outcomes the server decides itself, such
    /// as auth failures, on [`SimStats::unresolved_lane`]).
    pub fn stats(&self) -> &SimStats {
        &self.stats
    }

    /// Run time since the simulator started.
    pub fn elapsed(&self) -> Duration {
        Instant::now().saturating_duration_since(self.start)
    }

    /// Everything the stats endpoint shows.
    pub fn stats_snapshot(&self) -> StatsSnapshot {
        let quota = self
            .quotas
            .usage(Instant::now())
            .into_iter()
            .map(|u| QuotaSnapshot {
                account_id: self
                    .accounts
                    .get(u.key.account as usize)
                    .map_or_else(String::new, |a| a.account_id.clone()),
                model: self.catalog.profile(u.key.model).id.clone(),
                scope: QuotaSnapshot::scope_label(u.key.scope),
                tpm: u.limits.tpm,
                tpd: u.limits.tpd,
                rpm: u.limits.rpm,
                minute_tokens: u.minute_tokens,
                day_tokens: u.day_tokens,
                minute_requests: u.minute_requests,
                in_flight: u.in_flight,
                reserved_total: u.reserved_total,
                settled_total: u.settled_total,
            })
            .collect();
        self.stats.snapshot(self.elapsed().as_secs_f64(), quota)
    }

    /// Admits a request, or says how to refuse it. Checks run in this
    /// order: limits (`max_tokens`, context window), injected faults, quotas;
    /// only an admitted request reads or writes the prompt cache.
    pub fn admit(
        self: &Arc<Self>,
        model: &ResolvedModel,
        spec: &RequestSpec<'_>,
    ) -> Result<Ticket, Rejection> {
        let sequence = self.sequence.fetch_add(1, Relaxed);
        let model_sequence = self
            .model_sequence
            .get(model.model.get())
            .map_or(0, |c| c.fetch_add(1, Relaxed));
        let seed = RequestSeed {
            seed: self.seed,
            sequence,
        };
        let profile = &model.profile;
        let rejected = |outcome: Outcome, r: Rejection| {
            self.stats
                .record_request(model.lane, spec.operation, outcome);
            Err(r)
        };
        if let Some(r) = check_limits(profile, spec) {
            return rejected(Outcome::ClientError, r);
        }
        let faults = if self.faults.is_empty() {
            FaultDecision::default()
        } else {
            let ctx = FaultContext {
                seed,
                model: model.model,
                model_sequence,
                elapsed: self.elapsed(),
            };
            self.faults.decide(&ctx)
        };
        if let Some(fault) = faults.before_headers {
            let outcome = match fault {
                HeaderFault::Error(e) => e.code.outcome(e.message),
                HeaderFault::Reset => Outcome::Transport,
            };
            return rejected(
                outcome,
                Rejection::Fault {
                    fault,
                    delay: faults.slow_headers,
                },
            );
        }
        if spec.service_tier == Some(ServiceTierType::Flex)
            && let Some(slots) = &self.lanes[model.lane].slots
            && slots.exhausted()
            && slots.flex_waiting() >= self.tiers.flex_queue_limit as usize
        {
            self.stats.record_flex_shed(model.lane);
            return rejected(
                ErrorCode::ServiceUnavailableException.outcome(messages::SERVICE_UNAVAILABLE),
                Rejection::Unavailable {
                    message: messages::SERVICE_UNAVAILABLE,
                },
            );
        }
        let now = Instant::now();
        let max_tokens = spec.max_tokens.unwrap_or(profile.max_output_tokens);
        let held = TokenUsage {
            input_tokens: spec.input_tokens,
            ..TokenUsage::default()
        };
        let tokens = reservation(&held, max_tokens);
        let reserved = match spec.service_tier {
            Some(ServiceTierType::Reserved) => {
                self.reserve_reserved(model, spec.account, tokens, now)
            }
            _ => None,
        };
        // A Reserved request is served at Reserved from its pool, else (no
        // pool, or the pool is full) at Standard from the on-demand pool.
        let served_tier = match spec.service_tier {
            Some(ServiceTierType::Reserved) if reserved.is_none() => Some(ServiceTierType::Default),
            tier => tier,
        };
        let quota = match reserved.map_or_else(
            || self.reserve(model, spec.account, tokens, now),
            |r| Ok(Some(r)),
        ) {
            Ok(q) => q,
            Err(t) => {
                self.stats.record_throttle(model.lane, t.reason);
                return rejected(
                    ErrorCode::ThrottlingException.outcome(t.message),
                    Rejection::Throttled(t),
                );
            }
        };
        let cached = if spec.cache_points.is_empty() {
            CacheUsage::default()
        } else {
            self.cache.apply(
                spec.account.0,
                model.model,
                profile.cache,
                spec.cache_points,
                now,
            )
        };
        let usage_in = TokenUsage {
            input_tokens: spec.input_tokens.saturating_sub(cached.read + cached.write),
            output_tokens: 0,
            cache_read_input_tokens: cached.read,
            cache_write_input_tokens: cached.write,
        };
        let (planned, stop) = profile.output.plan(seed, max_tokens);
        Ok(Ticket {
            sim: Arc::clone(self),
            served_tier,
            lane: model.lane,
            model: model.model,
            operation: spec.operation,
            seed,
            profile: Arc::clone(profile),
            usage_in,
            planned,
            stop,
            quota,
            faults,
            next_fault: 0,
            permit: None,
            context: None,
            text: PseudoText::new(seed.rng(RngStream::Text), planned),
            produced: 0,
            jitter: seed.rng(RngStream::Jitter),
            next_at: None,
            admitted_at: now,
            failure: None,
            closed: false,
        })
    }

    /// Reserves from the account's Reserved pool for the model, when it
    /// has one with room; `None` sends the request to Standard.
    fn reserve_reserved(
        &self,
        model: &ResolvedModel,
        account: AccountIdx,
        tokens: u64,
        now: Instant,
    ) -> Option<Reservation> {
        if matches!(model.route, Route::Provisioned { .. }) {
            return None;
        }
        let acct = self.accounts.get(account.0 as usize)?;
        let limits = SimConfig::reserved_limits(acct, &model.profile)?;
        let key = PoolKey {
            account: account.0,
            model: model.model,
            scope: PoolScope::Reserved,
        };
        // The account's daily cap is on-demand usage; Reserved is bought.
        self.quotas.reserve(key, limits, None, tokens, now).ok()
    }

    fn reserve(
        &self,
        model: &ResolvedModel,
        account: AccountIdx,
        tokens: u64,
        now: Instant,
    ) -> Result<Option<Reservation>, Throttle> {
        let scope = match model.route {
            Route::Provisioned { .. } => return Ok(None),
            Route::OnDemand => PoolScope::OnDemand,
            Route::CrossRegion { geo } => PoolScope::CrossRegion(geo),
        };
        let Some(acct) = self.accounts.get(account.0 as usize) else {
            return Ok(None);
        };
        let key = PoolKey {
            account: account.0,
            model: model.model,
            scope,
        };
        let limits = SimConfig::pool_limits(acct, &model.profile, scope);
        self.quotas
            .reserve(key, limits, acct.daily_token_cap, tokens, now)
            .map(Some)
    }
}

fn lane(latency: LatencyModel, capacity_override: Option<u32>) -> Lane {
    let capacity = latency
        .capacity()
        .map(|c| capacity_override.unwrap_or(c).max(1));
    Lane {
        latency,
        slots: capacity.map(Slots::new),
    }
}

/// Model limits a request must respect (PROTOCOL.md §4.3 messages).
fn check_limits(profile: &ModelProfile, spec: &RequestSpec<'_>) -> Option<Rejection> {
    let limit = profile.max_output_tokens;
    if spec.max_tokens.is_some_and(|m| m > limit) {
        return Some(Rejection::Invalid {
            code: ErrorCode::ValidationException,
            message: format!(
                "The maximum tokens you requested exceed the model limit of {limit}. Try again with a maximum tokens value lower than {limit}."
            ),
        });
    }
    if spec.input_tokens > profile.context_window {
        return Some(Rejection::Invalid {
            code: ErrorCode::ValidationException,
            message: messages::INPUT_TOO_LONG.to_owned(),
        });
    }
    None
}

/// Decrements the queue gauge however the wait for a slot ends.
struct QueuedGuard<'a>(&'a AtomicU64);

impl Drop for QueuedGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// An admitted request. Drive it with [`Ticket::next`]; end it with
/// [`Ticket::finish`], or drop it (client gone) to release its slot and
/// settle what was produced.
#[derive(Debug)]
pub struct Ticket {
    sim: Arc<Simulator>,
    /// The tier serving the request (`None` when it named none).
    served_tier: Option<ServiceTierType>,
    lane: usize,
    model: ModelIdx,
    operation: Operation,
    seed: RequestSeed,
    profile: Arc<ModelProfile>,
    /// Input split (billed, cache read, cache write).
    usage_in: TokenUsage,
    planned: u64,
    stop: StopReason,
    quota: Option<Reservation>,
    faults: FaultDecision,
    next_fault: usize,
    permit: Option<SlotPermit>,
    /// Prompt tokens added to the lane's context gauge, once decoding.
    context: Option<u64>,
    text: PseudoText,
    produced: u64,
    jitter: ChaCha8Rng,
    /// When the next token is due (after the first).
    next_at: Option<Instant>,
    admitted_at: Instant,
    failure: Option<Outcome>,
    closed: bool,
}

impl Ticket {
    /// The request's global sequence number.
    pub fn sequence(&self) -> u64 {
        self.seed.sequence
    }

    /// The base model.
    pub fn model(&self) -> ModelIdx {
        self.model
    }

    /// The tier serving the request, to report back: the one it named,
    /// except a Reserved request without Reserved room, served at Standard
    /// (`default`); `None` when it named none.
    pub fn served_tier(&self) -> Option<ServiceTierType> {
        self.served_tier
    }

    /// A request id derived from the seed (same seed, same ids).
    pub fn request_id(&self) -> uuid::Uuid {
        let mut bytes = [0u8; 16];
        self.seed.rng(RngStream::Ids).fill_bytes(&mut bytes);
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }

    /// Input tokens as reported: billed, cache read, cache write.
    pub fn input_usage(&self) -> TokenUsage {
        self.usage_in
    }

    /// Output tokens the answer will have if nothing interrupts it.
    pub fn planned_output_tokens(&self) -> u64 {
        self.planned
    }

    /// The stop reason the answer will end with.
    pub fn stop_reason(&self) -> StopReason {
        self.stop
    }

    /// Usage so far (output = tokens produced).
    pub fn usage(&self) -> TokenUsage {
        TokenUsage {
            output_tokens: self.produced,
            ..self.usage_in
        }
    }

    /// Waits the slow-header fault, if any. Call before sending headers.
    pub async fn before_headers(&mut self) {
        if let Some(d) = self.faults.slow_headers.take()
            && !d.is_zero()
        {
            tokio::time::sleep(d).await;
        }
    }

    /// Waits for a decode slot, then the TTFT. Called by the first
    /// [`Ticket::next`]; call it yourself to separate the two phases.
    pub async fn start(&mut self) {
        if self.context.is_some() {
            return;
        }
        let sim = Arc::clone(&self.sim);
        let lane = &sim.lanes[self.lane];
        let gauges = sim.stats.lane(self.lane);
        if let Some(slots) = &lane.slots {
            let permit = match slots.try_acquire() {
                Some(p) => p,
                None => {
                    gauges.queued.fetch_add(1, Relaxed);
                    let _queued = QueuedGuard(&gauges.queued);
                    slots.acquire(Class::of(self.served_tier)).await
                }
            };
            self.enter(gauges, Some(permit));
        } else {
            self.enter(gauges, None);
        }
        if lane.latency.is_zero() {
            return;
        }
        let uncached = self.usage_in.input_tokens + self.usage_in.cache_write_input_tokens;
        let ttft = lane.latency.ttft(uncached, &mut self.jitter);
        let due = Instant::now() + ttft;
        self.next_at = Some(due);
        self.sleep_until(due).await;
    }

    fn enter(&mut self, gauges: &crate::stats::LaneStats, permit: Option<SlotPermit>) {
        let context = self.usage_in.total_input_tokens();
        gauges.active.fetch_add(1, Relaxed);
        gauges.context_tokens.fetch_add(context, Relaxed);
        self.context = Some(context);
        self.permit = permit;
    }

    /// Sleeps until `due`, or later if a stall window covers it.
    async fn sleep_until(&self, due: Instant) {
        let due = match self
            .sim
            .faults
            .stall_until(due.saturating_duration_since(self.sim.start))
        {
            Some(until) => self.sim.start + until,
            None => due,
        };
        tokio::time::sleep_until(due).await;
    }

    /// The next step of the response, after waiting the time it takes.
    pub async fn next(&mut self) -> Step {
        if self.closed {
            return Step::Done(self.stop);
        }
        let first = self.context.is_none();
        if first {
            self.start().await;
        }
        let mut stall = Duration::ZERO;
        while let Some(f) = self.faults.in_stream.get(self.next_fault).copied() {
            if f.at_token != self.produced {
                break;
            }
            self.next_fault += 1;
            match f.kind {
                StreamFaultKind::Stall(d) => stall += d,
                StreamFaultKind::Exception(e) => {
                    self.failure = Some(Outcome::StreamError);
                    return Step::Exception(e);
                }
                StreamFaultKind::Reset => {
                    self.failure = Some(Outcome::Transport);
                    return Step::Reset;
                }
            }
        }
        if self.produced >= self.planned {
            return Step::Done(self.stop);
        }
        let lane = &self.sim.lanes[self.lane];
        if !lane.latency.is_zero() || !stall.is_zero() {
            let gauges = self.sim.stats.lane(self.lane);
            let gap = if first {
                Duration::ZERO
            } else {
                let active = u32::try_from(gauges.active()).unwrap_or(u32::MAX);
                let gap = lane.latency.gap(
                    active,
                    gauges.context_tokens.load(Relaxed),
                    &mut self.jitter,
                );
                if self.served_tier == Some(ServiceTierType::Priority) {
                    // In whole nanoseconds, rounded: 10 ms at 0.25 is 8 ms.
                    let ns = gap.as_nanos() as f64 / (1.0 + self.sim.tiers.priority_speedup);
                    Duration::from_nanos(ns.round() as u64)
                } else {
                    gap
                }
            };
            let due = self.next_at.unwrap_or_else(Instant::now) + gap + stall;
            self.next_at = Some(due);
            self.sleep_until(due).await;
        }
        self.produced += 1;
        // unwrap-free: the text has exactly `planned` tokens and produced <= planned.
        Step::Token(self.text.next().unwrap_or(""))
    }

    /// Runs the rest of the answer and returns its text and how it ended
    /// (for non-streaming operations).
    pub async fn collect(&mut self) -> (String, Step) {
        let mut text = String::with_capacity((self.planned - self.produced) as usize * 4);
        loop {
            self.run_untimed(&mut text);
            match self.next().await {
                Step::Token(t) => text.push_str(t),
                end => return (text, end),
            }
        }
    }

    /// With zero latency, emits the tokens up to the next in-stream fault
    /// (or the end) in one loop: the same tokens [`Ticket::next`] would give,
    /// without one future per token (the profile's hot spot for unary
    /// answers). Faults, the first token's slot and the end still go
    /// through `next`.
    fn run_untimed(&mut self, text: &mut String) {
        if self.closed || self.context.is_none() || !self.sim.lanes[self.lane].latency.is_zero() {
            return;
        }
        let until = self
            .faults
            .in_stream
            .get(self.next_fault)
            .map_or(self.planned, |f| f.at_token.min(self.planned));
        while self.produced < until {
            self.produced += 1;
            // unwrap-free: the text has exactly `planned` tokens.
            text.push_str(self.text.next().unwrap_or(""));
        }
    }

    /// Ends the request: settles the quota with the real usage, records its
    /// outcome and tokens, frees its slot.
    pub fn finish(mut self) -> Completion {
        let outcome = self.failure.unwrap_or(Outcome::Ok);
        self.close(outcome)
    }

    fn close(&mut self, outcome: Outcome) -> Completion {
        self.closed = true;
        let usage = self.usage();
        let gauges = self.sim.stats.lane(self.lane);
        if let Some(context) = self.context.take() {
            gauges.active.fetch_sub(1, Relaxed);
            gauges.context_tokens.fetch_sub(context, Relaxed);
        }
        self.permit = None;
        let settled = settlement(&usage, self.profile.burndown);
        let now = Instant::now();
        let quota_settled = match self.quota.take() {
            Some(r) => {
                self.sim.quotas.settle(r, settled, now);
                settled
            }
            None => 0,
        };
        self.sim.stats.record_tokens(self.lane, &usage);
        self.sim
            .stats
            .record_request(self.lane, self.operation, outcome);
        let stop_reason = if self.produced < self.planned {
            StopReason::EndTurn
        } else {
            self.stop
        };
        // The latency the model imposed (queueing, TTFT and token gaps, up
        // to the last scheduled token), not the host's scheduling noise on
        // top of it: the simulated server's time is its model's, and equal
        // seeds must give byte-identical responses (`latencyMs` included).
        let latency = self.next_at.map_or(Duration::ZERO, |end| {
            end.saturating_duration_since(self.admitted_at)
        });
        Completion {
            usage,
            stop_reason,
            latency,
            quota_settled,
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.closed {
            self.sim.stats.record_aborted(self.lane);
            self.close(Outcome::Transport);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{CacheTtl, prefix_hash};
    use crate::text::count_tokens;

    const LLAMA: &str = "meta.llama3-3-70b-instruct-v1:0";

    fn sim(extra: &str) -> Arc<Simulator> {
        Simulator::new(&SimConfig::from_toml(extra, "sim.toml").unwrap()).unwrap()
    }

    fn spec(input_tokens: u64, max_tokens: Option<u64>) -> RequestSpec<'static> {
        RequestSpec {
            account: AccountIdx(0),
            operation: Operation::ConverseStream,
            input_tokens,
            max_tokens,
            cache_points: &[],
            service_tier: None,
        }
    }

    fn admit(
        sim: &Arc<Simulator>,
        model: &str,
        spec: &RequestSpec<'_>,
    ) -> Result<Ticket, Rejection> {
        sim.admit(&sim.resolve(model).unwrap(), spec)
    }

    const FIXED: &str = "[[models]]\nid = \"meta.llama3-3-70b-instruct-v1:0\"\n\
        latency = { kind = \"fixed\", ttft_ms = 100.0, gap_ms = 10.0 }\noutput = { kind = \"fixed\", tokens = 20 }\n";

    #[tokio::test(start_paused = true)]
    async fn fixed_profile_timing_is_exact() {
        let sim = sim(FIXED);
        let mut t = admit(&sim, LLAMA, &spec(500, Some(1_000))).unwrap();
        let t0 = Instant::now();
        let mut at = Vec::new();
        let mut text = String::new();
        let end = loop {
            match t.next().await {
                Step::Token(piece) => {
                    at.push(t0.elapsed());
                    text.push_str(piece);
                }
                other => break other,
            }
        };
        assert_eq!(end, Step::Done(StopReason::EndTurn));
        assert_eq!(at.len(), 20);
        assert_eq!(at[0], Duration::from_millis(100));
        assert_eq!(at[19], Duration::from_millis(100 + 19 * 10));
        assert_eq!(count_tokens(&text), 20);
        let done = t.finish();
        assert_eq!(
            done.usage,
            TokenUsage {
                input_tokens: 500,
                output_tokens: 20,
                ..TokenUsage::default()
            }
        );
        assert_eq!(done.quota_settled, 520);
        let snap = sim.stats_snapshot();
        let lane = snap.lanes.iter().find(|l| l.model == LLAMA).unwrap();
        assert_eq!(lane.requests[0].outcome, "ok");
        assert_eq!(lane.tokens.output_tokens, 20);
        assert_eq!(snap.quota[0].in_flight, 0);
        assert_eq!(snap.quota[0].minute_tokens, 520);
    }

    fn tiered(tier: ServiceTierType, input_tokens: u64, max_tokens: u64) -> RequestSpec<'static> {
        RequestSpec {
            service_tier: Some(tier),
            ..spec(input_tokens, Some(max_tokens))
        }
    }

    /// Times of each token of an answer, from now.
    async fn token_times(t: &mut Ticket) -> Vec<Duration> {
        let t0 = Instant::now();
        let mut at = Vec::new();
        while let Step::Token(_) = t.next().await {
            at.push(t0.elapsed());
        }
        at
    }

    #[tokio::test(start_paused = true)]
    async fn priority_decodes_faster_by_the_configured_speedup() {
        let sim = sim(FIXED);
        let mut standard = admit(&sim, LLAMA, &spec(500, Some(1_000))).unwrap();
        assert_eq!(standard.served_tier(), None);
        let std_at = token_times(&mut standard).await;
        let mut priority =
            admit(&sim, LLAMA, &tiered(ServiceTierType::Priority, 500, 1_000)).unwrap();
        assert_eq!(priority.served_tier(), Some(ServiceTierType::Priority));
        let pri_at = token_times(&mut priority).await;
        // Same TTFT; each of the 19 gaps 10 ms / 1.25 = 8 ms instead of 10.
        assert_eq!(pri_at[0], std_at[0]);
        assert_eq!(std_at[19] - std_at[0], Duration::from_millis(190));
        assert_eq!(pri_at[19] - pri_at[0], Duration::from_millis(19 * 8));
        let slower = self::sim(&format!("{FIXED}[tiers]\npriority_speedup = 0.0\n"));
        let mut same = admit(
            &slower,
            LLAMA,
            &tiered(ServiceTierType::Priority, 500, 1_000),
        )
        .unwrap();
        assert_eq!(token_times(&mut same).await, std_at);
    }

    #[tokio::test(start_paused = true)]
    async fn reserved_draws_its_own_pool_then_overflows_to_standard_and_quota_is_shared() {
        // Reserved: 1,000 TPM; on-demand: 2,000 TPM shared by every tier.
        let sim = sim(&format!(
            "{FIXED}[[accounts]]\naccess_key_id = \"AKIATIERS00000000001\"\nsecret_access_key = \"s\"\n\
             account_id = \"111122223333\"\nquotas = {{ tpm = 2000 }}\n\
             [accounts.reserved.\"{LLAMA}\"]\ntpm = 1000\n"
        ));
        let acct = sim.account_by_access_key("AKIATIERS00000000001").unwrap().0;
        let at = |tier: Option<ServiceTierType>| RequestSpec {
            account: acct,
            service_tier: tier,
            ..spec(400, Some(500))
        };
        // 900 tokens each: the first Reserved request fits the Reserved pool.
        let r1 = admit(&sim, LLAMA, &at(Some(ServiceTierType::Reserved))).unwrap();
        assert_eq!(r1.served_tier(), Some(ServiceTierType::Reserved));
        // The second does not: it overflows to Standard (on-demand pool).
        let r2 = admit(&sim, LLAMA, &at(Some(ServiceTierType::Reserved))).unwrap();
        assert_eq!(r2.served_tier(), Some(ServiceTierType::Default));
        // Flex and Priority share that on-demand pool: 900 + 900 > 2,000 − 900.
        let f = admit(&sim, LLAMA, &at(Some(ServiceTierType::Flex))).unwrap();
        assert_eq!(f.served_tier(), Some(ServiceTierType::Flex));
        let refused = admit(&sim, LLAMA, &at(Some(ServiceTierType::Priority))).unwrap_err();
        assert!(matches!(refused, Rejection::Throttled(_)), "{refused:?}");
        let snap = sim.stats_snapshot();
        let pool = |scope: &str| {
            snap.quota
                .iter()
                .find(|q| q.scope == scope)
                .unwrap()
                .clone()
        };
        assert_eq!(pool("reserved").reserved_total, 900);
        assert_eq!(pool("on_demand").reserved_total, 1_800);
        // No Reserved pool for a model: Reserved is served at Standard.
        let plain = admit(
            &sim,
            LLAMA,
            &RequestSpec {
                account: sim
                    .account_by_access_key(crate::config::DEFAULT_ACCESS_KEY_ID)
                    .unwrap()
                    .0,
                ..at(Some(ServiceTierType::Reserved))
            },
        )
        .unwrap();
        assert_eq!(plain.served_tier(), Some(ServiceTierType::Default));
    }

    #[tokio::test(start_paused = true)]
    async fn flex_waits_behind_standard_and_is_refused_first_when_its_queue_is_full() {
        // One decode slot; at most one Flex request waits for it.
        let sim = sim("[[models]]\nid = \"meta.llama3-3-70b-instruct-v1:0\"\n\
             latency = { kind = \"fixed\", ttft_ms = 100.0, gap_ms = 10.0, capacity = 1 }\n\
             output = { kind = \"fixed\", tokens = 5 }\n[tiers]\nflex_queue_limit = 1\n");
        let mut busy = admit(&sim, LLAMA, &spec(10, Some(100))).unwrap();
        busy.start().await;
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (name, tier) in [("flex", Some(ServiceTierType::Flex)), ("standard", None)] {
            let mut t = admit(
                &sim,
                LLAMA,
                &RequestSpec {
                    service_tier: tier,
                    ..spec(10, Some(100))
                },
            )
            .unwrap();
            let order = Arc::clone(&order);
            tasks.push(tokio::spawn(async move {
                t.start().await;
                order.lock().unwrap().push(name);
                t.collect().await;
                t.finish();
            }));
            tokio::task::yield_now().await;
        }
        // The slot is busy and one Flex request waits: the next Flex is
        // refused with 503; Standard and Priority still queue.
        let shed = admit(&sim, LLAMA, &tiered(ServiceTierType::Flex, 10, 100)).unwrap_err();
        assert_eq!(
            shed,
            Rejection::Unavailable {
                message: messages::SERVICE_UNAVAILABLE
            }
        );
        assert!(admit(&sim, LLAMA, &tiered(ServiceTierType::Priority, 10, 100)).is_ok());
        busy.collect().await;
        busy.finish();
        for t in tasks {
            t.await.unwrap();
        }
        // The Flex request queued first but was served after Standard.
        assert_eq!(*order.lock().unwrap(), ["standard", "flex"]);
        let snap = sim.stats_snapshot();
        let lane = snap.lanes.iter().find(|l| l.model == LLAMA).unwrap();
        assert_eq!(lane.flex_shed, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn max_tokens_cuts_the_answer_honestly() {
        let sim = sim(FIXED);
        let mut t = admit(&sim, LLAMA, &spec(10, Some(5))).unwrap();
        let (text, end) = t.collect().await;
        assert_eq!(end, Step::Done(StopReason::MaxTokens));
        assert_eq!(count_tokens(&text), 5);
        assert_eq!(t.finish().stop_reason, StopReason::MaxTokens);
        let err = admit(&sim, LLAMA, &spec(10, Some(9_000))).unwrap_err();
        assert!(
            matches!(err, Rejection::Invalid { ref message, .. } if message.contains("model limit of 8192"))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn active_gauge_is_exact_and_drop_releases() {
        let sim = sim(FIXED);
        let lane = sim.resolve(LLAMA).unwrap().lane;
        let n = 17;
        let barrier = Arc::new(tokio::sync::Barrier::new(n + 1));
        let (release, _) = tokio::sync::broadcast::channel::<()>(1);
        let mut tasks = Vec::new();
        for _ in 0..n {
            let (sim, barrier, mut rx) =
                (Arc::clone(&sim), Arc::clone(&barrier), release.subscribe());
            tasks.push(tokio::spawn(async move {
                let mut t = admit(&sim, LLAMA, &spec(100, Some(100))).unwrap();
                assert!(matches!(t.next().await, Step::Token(_)));
                barrier.wait().await;
                let _ = rx.recv().await;
                drop(t); // client gone mid-stream
            }));
        }
        barrier.wait().await;
        assert_eq!(sim.stats().lane(lane).active(), n as u64);
        assert_eq!(sim.stats_snapshot().quota[0].in_flight, n as u64);
        release.send(()).unwrap();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(sim.stats().lane(lane).active(), 0);
        let snap = sim.stats_snapshot();
        assert_eq!(snap.quota[0].in_flight, 0);
        // Each settled at 100 in + 1 out.
        assert_eq!(snap.quota[0].settled_total, n as u64 * 101);
        let l = snap.lanes.iter().find(|l| l.model == LLAMA).unwrap();
        assert_eq!(l.aborted, n as u64);
    }

    #[tokio::test(start_paused = true)]
    async fn past_capacity_requests_queue() {
        let sim = sim(
            "[[models]]\nid = \"meta.llama3-3-70b-instruct-v1:0\"\noutput = { kind = \"fixed\", tokens = 10 }\n\
             latency = { kind = \"contended\", base_ttft_ms = 100.0, prefill_tokens_per_s = 1000.0, gap_ms = 10.0, gap_per_stream_ms = 0.0, gap_per_context_token_ms = 0.0, capacity = 2 }\n",
        );
        let lane = sim.resolve(LLAMA).unwrap().lane;
        let t0 = Instant::now();
        let mut handles = Vec::new();
        for _ in 0..3 {
            let sim = Arc::clone(&sim);
            handles.push(tokio::spawn(async move {
                let mut t = admit(&sim, LLAMA, &spec(100, None)).unwrap();
                let _ = t.next().await;
                let ttft = t0.elapsed();
                let _ = t.collect().await;
                t.finish();
                ttft
            }));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(sim.stats().lane(lane).queued(), 1);
        assert_eq!(sim.stats().lane(lane).active(), 2);
        let mut ttfts: Vec<Duration> = Vec::new();
        for h in handles {
            ttfts.push(h.await.unwrap());
        }
        ttfts.sort();
        // TTFT = 100 ms base + 100 tokens / 1000 per s = 200 ms; the third
        // waits for a whole request (200 + 9 × 10 ms) first.
        assert_eq!(ttfts[0], Duration::from_millis(200));
        assert_eq!(ttfts[1], Duration::from_millis(200));
        assert_eq!(ttfts[2], Duration::from_millis(290 + 200));
        assert_eq!(sim.stats().lane(lane).queued(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn gaps_follow_contention() {
        let sim = sim(
            "[[models]]\nid = \"meta.llama3-3-70b-instruct-v1:0\"\noutput = { kind = \"fixed\", tokens = 101 }\n",
        );
        let mut c = crate::latency::ContendedLatency::llama3_3_70b();
        let LatencyModel::Contended(profile) = sim.resolve(LLAMA).unwrap().profile.latency else {
            panic!()
        };
        c.jitter = profile.jitter;
        // Jitter averages out over 100 gaps only approximately; check the
        // rate within 2% alone and with 49 others holding 500-token prompts.
        for others in [0usize, 49] {
            let mut held = Vec::new();
            for _ in 0..others {
                let mut t = admit(&sim, LLAMA, &spec(500, Some(1_000))).unwrap();
                t.start().await;
                held.push(t);
            }
            let mut t = admit(&sim, LLAMA, &spec(500, Some(1_000))).unwrap();
            let _ = t.next().await;
            let first = Instant::now();
            let (_, end) = t.collect().await;
            assert_eq!(end, Step::Done(StopReason::EndTurn));
            let rate = 100.0 / first.elapsed().as_secs_f64();
            let expected = c.tokens_per_s(others as u32 + 1, 500);
            assert!(
                (rate - expected).abs() < expected * 0.02,
                "{others}: {rate} vs {expected}"
            );
            t.finish();
            drop(held);
        }
    }

    #[test]
    fn zero_latency_never_touches_a_timer() {
        // A runtime without the time driver panics on any tokio timer.
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let sim = sim("latency = { kind = \"zero\" }\n");
            for _ in 0..100 {
                let mut t = admit(&sim, LLAMA, &spec(50, Some(64))).unwrap();
                let (text, _) = t.collect().await;
                let done = t.finish();
                assert_eq!(count_tokens(&text), done.usage.output_tokens);
            }
        });
    }

    #[tokio::test(start_paused = true)]
    async fn quota_throttles_at_admission() {
        let sim = sim(
            "[[accounts]]\naccess_key_id = \"AKIAQUARRY\"\nsecret_access_key = \"s\"\naccount_id = \"111122223333\"\nquotas = { tpm = 10000 }\n",
        );
        let (acct, _) = sim.account_by_access_key("AKIAQUARRY").unwrap();
        let s = RequestSpec {
            account: acct,
            ..spec(1_000, Some(1_000))
        };
        let held: Vec<Ticket> = (0..5).map(|_| admit(&sim, LLAMA, &s).unwrap()).collect();
        let err = admit(&sim, LLAMA, &s).unwrap_err();
        assert_eq!(
            err,
            Rejection::Throttled(Throttle {
                reason: crate::quota::ThrottleReason::TokensPerMinute,
                message: messages::TOO_MANY_TOKENS
            })
        );
        // The default account has its own pools.
        let (default, _) = sim
            .account_by_access_key(crate::config::DEFAULT_ACCESS_KEY_ID)
            .unwrap();
        assert!(
            admit(
                &sim,
                LLAMA,
                &RequestSpec {
                    account: default,
                    ..s
                }
            )
            .is_ok()
        );
        // Cross-Region ids draw on another pool.
        assert!(
            sim.admit(
                &sim.resolve("us.meta.llama3-3-70b-instruct-v1:0").unwrap(),
                &s
            )
            .is_ok()
        );
        let snap = sim.stats_snapshot();
        let l = snap.lanes.iter().find(|l| l.model == LLAMA).unwrap();
        assert_eq!(l.throttles[0].count, 1);
        assert!(snap.to_prometheus().contains("outcome=\"throttled\"} 1"));
        drop(held);
    }

    #[tokio::test(start_paused = true)]
    async fn same_seed_same_bytes() {
        let run = |seed: u64| async move {
            let sim = sim(&format!("seed = {seed}\nlatency = {{ kind = \"zero\" }}\n"));
            let mut out = Vec::new();
            for _ in 0..5 {
                let mut t = admit(&sim, LLAMA, &spec(50, Some(300))).unwrap();
                let id = t.request_id();
                let (text, end) = t.collect().await;
                out.push((id, text, end));
            }
            out
        };
        let a = run(11).await;
        assert_eq!(a, run(11).await);
        assert_ne!(a, run(12).await);
    }

    #[tokio::test(start_paused = true)]
    async fn mid_stream_exception_and_header_faults() {
        let sim = sim(&format!(
            "{FIXED}[[faults]]\nkind = \"model_stream_error\"\nrequests = [0, 1]\nat_token = 3\n\
             [[faults]]\nkind = \"service_unavailable\"\nrequests = [1, 2]\n"
        ));
        let mut t = admit(&sim, LLAMA, &spec(10, Some(100))).unwrap();
        let (text, end) = t.collect().await;
        assert_eq!(count_tokens(&text), 3);
        assert!(
            matches!(end, Step::Exception(e) if e.code == ErrorCode::ModelStreamErrorException)
        );
        assert_eq!(t.finish().usage.output_tokens, 3);
        let err = admit(&sim, LLAMA, &spec(10, Some(100))).unwrap_err();
        assert!(
            matches!(err, Rejection::Fault { fault: HeaderFault::Error(e), .. } if e.code.status() == 503)
        );
        let snap = sim.stats_snapshot();
        let l = snap.lanes.iter().find(|l| l.model == LLAMA).unwrap();
        let outcomes: Vec<&str> = l.requests.iter().map(|r| r.outcome).collect();
        assert_eq!(outcomes, vec!["server_error", "stream_error"]);
    }

    #[tokio::test(start_paused = true)]
    async fn cache_hits_read_and_are_faster() {
        let sim = sim(
            "[[models]]\nid = \"amazon.nova-pro-v1:0\"\noutput = { kind = \"fixed\", tokens = 1 }\n\
             latency = { kind = \"contended\", base_ttft_ms = 100.0, prefill_tokens_per_s = 10000.0, gap_ms = 10.0, gap_per_stream_ms = 0.0, gap_per_context_token_ms = 0.0, capacity = 8 }\n",
        );
        let points = [CachePoint {
            prefix_hash: prefix_hash(b"long system prompt"),
            prefix_tokens: 5_000,
            ttl: CacheTtl::FiveMinutes,
        }];
        let s = RequestSpec {
            cache_points: &points,
            ..spec(6_000, Some(10))
        };
        let mut ttfts = Vec::new();
        let mut usages = Vec::new();
        for _ in 0..2 {
            let mut t = admit(&sim, "amazon.nova-pro-v1:0", &s).unwrap();
            let t0 = Instant::now();
            let _ = t.next().await;
            ttfts.push(t0.elapsed());
            usages.push(t.finish().usage);
        }
        assert_eq!(
            (usages[0].cache_write_input_tokens, usages[0].input_tokens),
            (5_000, 1_000)
        );
        assert_eq!(
            (usages[1].cache_read_input_tokens, usages[1].input_tokens),
            (5_000, 1_000)
        );
        assert_eq!(ttfts[0], Duration::from_millis(700));
        assert_eq!(ttfts[1], Duration::from_millis(200));
    }

    #[tokio::test(start_paused = true)]
    async fn provisioned_bypasses_quota_and_is_bounded_by_units() {
        let arn = "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abcdefghijkl";
        let sim = sim(&format!(
            "[[accounts]]\naccess_key_id = \"AKIAQUARRY\"\nsecret_access_key = \"s\"\naccount_id = \"111122223333\"\nquotas = {{ tpm = 1 }}\n\
             [[provisioned]]\narn = \"{arn}\"\nmodel = \"{LLAMA}\"\nmodel_units = 1\n"
        ));
        let (acct, _) = sim.account_by_access_key("AKIAQUARRY").unwrap();
        let s = RequestSpec {
            account: acct,
            ..spec(1_000, Some(1_000))
        };
        assert!(matches!(
            admit(&sim, LLAMA, &s),
            Err(Rejection::Throttled(_))
        ));
        let model = sim.resolve(arn).unwrap();
        let mut held = Vec::new();
        for _ in 0..9 {
            let mut t = sim.admit(&model, &s).unwrap();
            let started = tokio::time::timeout(Duration::from_secs(5), t.start())
                .await
                .is_ok();
            held.push((t, started));
        }
        // 1 model unit × 8 streams per unit: the ninth waits for a slot.
        assert_eq!(held.iter().filter(|(_, s)| *s).count(), 8);
        assert_eq!(sim.stats().lane(model.lane).active(), 8);
    }
}
