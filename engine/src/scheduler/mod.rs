//! The scheduler: one engine that every load mode plugs into.
//!
//! [`Engine::run`] drives a [`LoadProfile`] against a caller's [`Workload`]
//! (which request to send) and [`Executor`] (how to send it and stamp its
//! [`Timeline`](crate::Timeline)). A closed model runs one task per virtual
//! user, each refilling its own slot the moment its request is recorded; an
//! open model runs one dispatcher that sleeps to each arrival's absolute
//! deadline and spawns the request, enforcing `max_in_flight` and the
//! catch-up policy. Both share the request path (pick, record, count), the
//! stop and grace handling, the runtime probe that measures how long a
//! ready task waits for the runtime, and the interval ticker that turns the
//! recorder's contents into [`IntervalSnapshot`]s once per interval.

mod closed;
mod open;
mod probe;
mod session;
#[cfg(test)]
mod tests;
mod ticker;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use quarry_bedrock::Outcome;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::arrival::Interleave;
use crate::clock::{RunClock, duration_ns};
use crate::deadline::DispatchTimer;
use crate::health::{HealthPolicy, InFlightGauge};
use crate::load::{EndCondition, LoadModel, LoadProfile, StageKind};
use crate::pacing::ThrottlePacing;
use crate::plan::{RequestSlo, SessionPlan};
use crate::recorder::{RecordGuard, Recorder};
use crate::series::{SeriesDelta, SeriesKey};
use crate::session::Conversation;
use crate::snapshot::{Cumulative, IntervalSnapshot};
use crate::timeline::{Completion, PlannedRequest, RequestTicket};
use crate::trace::SpanRecorder;

use crate::stages::StagePlan;

/// Chooses what each request sends. Called once per request, from whichever
/// task sends it, so implementations use interior mutability; deriving any
/// randomness from `ticket.seq` keeps a run reproducible whatever the task
/// interleaving.
pub trait Workload: Send + Sync + 'static {
    /// What the executor needs to build the request.
    type Item: Send + 'static;

    /// The model, operation and item for `ticket`.
    fn pick(&self, ticket: &RequestTicket) -> PlannedRequest<Self::Item>;
}

/// Sends one request and reports its timeline, outcome and usage.
///
/// The executor stamps the timeline with `clock.now_ns()` at socket read and
/// must always return (failures are outcomes, not errors). Dropping the
/// future (after the grace period) counts the request as abandoned.
pub trait Executor<I>: Send + Sync + 'static {
    /// Sends `request` for `ticket`.
    fn execute(
        &self,
        ticket: RequestTicket,
        request: PlannedRequest<I>,
        clock: RunClock,
    ) -> impl Future<Output = Completion> + Send;

    /// Sends turn `ticket.turn` of a session: the `conversation` so far,
    /// then a new question; on success, adds the question and its answer
    /// to `conversation`. The default sends `request` as a single request
    /// (for executors that hold no conversation).
    fn execute_turn(
        &self,
        ticket: RequestTicket,
        request: PlannedRequest<I>,
        conversation: &mut Conversation,
        clock: RunClock,
    ) -> impl Future<Output = Completion> + Send {
        let _ = conversation;
        self.execute(ticket, request, clock)
    }
}

/// How the engine itself behaves (process behaviour, not workload).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The agent group every series is keyed by.
    pub group: Arc<str>,
    /// Seeds the arrival schedule (give each agent its own).
    pub seed: u64,
    /// Constant-arrival phase in [0, 1) (agent k of K equal shares: k/K).
    pub phase: f64,
    /// Constant-arrival slots of a share of unequal weight (replaces the
    /// phase); `None` for a single generator or equal shares.
    pub interleave: Option<Arc<Interleave>>,
    /// Snapshot interval; at least 1 ms.
    pub interval: Duration,
    /// How long in-flight requests may finish after the end or a stop
    /// before they are abandoned (and counted as such).
    pub grace: Duration,
    /// Open-loop sends whose schedule lag exceeds this count as late.
    pub late_after: Duration,
    /// How the open-loop dispatcher waits for each arrival's deadline.
    pub dispatch_timer: DispatchTimer,
    /// When to flag the agent as a saturated load generator.
    pub health: HealthPolicy,
    /// Where sampled request spans go; `None` when the run is not traced.
    pub spans: Option<Arc<SpanRecorder>>,
    /// Per-request SLO bounds to count [`crate::Count::SloMet`] against.
    pub request_slo: Option<RequestSlo>,
    /// A closed-loop user's pause after a throttled request.
    pub on_throttle: ThrottlePacing,
    /// A replayed trace's deadlines, ns since the origin, in order: an open
    /// loop then dispatches request `i` at `replay_at[i]` (its ticket's
    /// `replay` is `i`) instead of walking the load's rate.
    pub replay_at: Option<Arc<[u64]>>,
    /// Multi-turn sessions instead of single requests ([`crate::session`]).
    pub sessions: Option<SessionPlan>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            group: Arc::from("default"),
            seed: 0,
            phase: 0.0,
            interleave: None,
            interval: Duration::from_secs(1),
            grace: Duration::from_secs(30),
            late_after: Duration::from_millis(1),
            dispatch_timer: DispatchTimer::default(),
            health: HealthPolicy::default(),
            spans: None,
            request_slo: None,
            on_throttle: ThrottlePacing::None,
            replay_at: None,
            sessions: None,
        }
    }
}

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The last stage ended.
    Completed,
    /// The request count was reached.
    RequestLimit,
    /// The shutdown future resolved.
    Stopped,
}

/// What a run leaves behind once every request is recorded.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// Why it ended.
    pub ended: EndReason,
    /// Requests sent (dropped arrivals excluded).
    pub sent: u64,
    /// When the last request was recorded, ns since the origin.
    pub finished_at: u64,
    /// Every interval merged.
    pub cumulative: Cumulative,
    /// Each stage's name and kind, in order.
    pub stages: Vec<(Arc<str>, StageKind)>,
}

impl RunReport {
    /// The kind of the stage named `name`.
    pub fn stage_kind(&self, name: &str) -> Option<StageKind> {
        self.stages
            .iter()
            .find(|(n, _)| &**n == name)
            .map(|(_, k)| *k)
    }

    /// Everything measured in the ramp and hold stages (warmup excluded,
    /// cooldown reported apart), merged into one series.
    pub fn measured(&self) -> SeriesDelta {
        self.cumulative.total_where(|k| {
            matches!(
                self.stage_kind(&k.stage),
                Some(StageKind::Ramp | StageKind::Hold)
            )
        })
    }
}

/// A load run, ready to start.
#[derive(Debug)]
pub struct Engine {
    profile: LoadProfile,
    config: EngineConfig,
    clock: RunClock,
    gauge: InFlightGauge,
}

impl Engine {
    /// An engine for `profile` whose schedule starts at `clock`'s origin.
    pub fn new(profile: LoadProfile, mut config: EngineConfig, clock: RunClock) -> Self {
        config.interval = config.interval.max(Duration::from_millis(1));
        Engine {
            profile,
            config,
            clock,
            gauge: InFlightGauge::new(),
        }
    }

    /// The in-flight gauge, readable at any time from anywhere.
    pub fn in_flight(&self) -> InFlightGauge {
        self.gauge.clone()
    }

    /// Runs to the end condition or until `shutdown` resolves, waits up to
    /// the grace period for in-flight requests, sends one snapshot per
    /// interval (and a last partial one) to `snapshots`, and returns the
    /// totals. A closed `snapshots` receiver does not stop the run.
    pub async fn run<W, E>(
        self,
        workload: Arc<W>,
        executor: Arc<E>,
        snapshots: mpsc::Sender<IntervalSnapshot>,
        shutdown: impl Future<Output = ()> + Send,
    ) -> RunReport
    where
        W: Workload,
        E: Executor<W::Item>,
    {
        let (stop_tx, stop_rx) = watch::channel(false);
        let (tick_stop_tx, tick_stop_rx) = watch::channel(false);
        let stages: Vec<(Arc<str>, StageKind)> = self
            .profile
            .stages()
            .iter()
            .map(|s| (Arc::from(s.name.as_str()), s.kind))
            .collect();
        let recorder = Arc::new(Recorder::new(
            duration_ns(self.config.late_after),
            self.config.request_slo,
        ));
        let shared = Arc::new(Shared {
            plan: self.profile.plan(),
            request_limit: match self.profile.end() {
                EndCondition::Requests(n) => Some(n),
                EndCondition::AfterStages => None,
            },
            stage_names: stages.iter().map(|(n, _)| Arc::clone(n)).collect(),
            config: self.config.clone(),
            clock: self.clock,
            gauge: self.gauge.clone(),
            recorder: Arc::clone(&recorder),
            workload,
            executor,
            stop: stop_rx,
            next_seq: AtomicU64::new(0),
            sessions: self
                .config
                .sessions
                .as_ref()
                .map(session::SessionDraws::new),
            next_session: AtomicU64::new(0),
        });
        let probe = tokio::spawn(probe::run(
            Arc::clone(&recorder),
            self.clock,
            tick_stop_rx.clone(),
        ));
        let ticker = tokio::spawn(ticker::run(
            ticker::TickerParts {
                recorder,
                clock: self.clock,
                interval_ns: duration_ns(self.config.interval),
                policy: self.config.health,
                gauge: self.gauge.clone(),
                snapshots,
            },
            tick_stop_rx,
        ));
        let drive = async {
            match self.profile.model() {
                LoadModel::Closed { .. } => closed::drive(&shared).await,
                LoadModel::Open {
                    arrival,
                    max_in_flight,
                    catch_up,
                    ..
                } => open::drive(&shared, *arrival, *max_in_flight, *catch_up).await,
            }
        };
        tokio::pin!(drive);
        tokio::pin!(shutdown);
        let ended = tokio::select! {
            ended = &mut drive => ended,
            () = &mut shutdown => {
                // Ignored error: the receiver lives in `shared`, alive here.
                let _ = stop_tx.send(true);
                drive.await
            }
        };
        let finished_at = self.clock.now_ns();
        let _ = tick_stop_tx.send(true);
        let cumulative = match ticker.await {
            Ok(c) => c,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Cancelled: the runtime is shutting down under us.
            Err(_) => Cumulative::new(),
        };
        // Stopped by the same signal; it cannot panic, and a cancelled
        // probe (the runtime shutting down) has nothing to give back.
        let _ = probe.await;
        RunReport {
            ended,
            sent: shared.sent(),
            finished_at,
            cumulative,
            stages,
        }
    }
}

/// What every request task and the drivers share.
struct Shared<W: Workload, E> {
    plan: StagePlan,
    request_limit: Option<u64>,
    stage_names: Vec<Arc<str>>,
    config: EngineConfig,
    clock: RunClock,
    gauge: InFlightGauge,
    recorder: Arc<Recorder>,
    workload: Arc<W>,
    executor: Arc<E>,
    /// True once shutdown was requested.
    stop: watch::Receiver<bool>,
    /// The next request's sequence number; also the count sent so far.
    next_seq: AtomicU64,
    /// The session plan, ready to draw from (session runs only).
    sessions: Option<session::SessionDraws>,
    /// The next session's number.
    next_session: AtomicU64,
}

impl<W: Workload, E: Executor<W::Item>> Shared<W, E> {
    /// Claims the next sequence number, or `None` once the request limit is
    /// reached.
    fn claim_seq(&self) -> Option<u64> {
        let seq = self.next_seq.fetch_add(1, Ordering::AcqRel);
        match self.request_limit {
            Some(limit) if seq >= limit => None,
            _ => Some(seq),
        }
    }

    fn limit_reached(&self) -> bool {
        self.request_limit
            .is_some_and(|limit| self.next_seq.load(Ordering::Acquire) >= limit)
    }

    fn sent(&self) -> u64 {
        let claimed = self.next_seq.load(Ordering::Acquire);
        self.request_limit
            .map_or(claimed, |limit| claimed.min(limit))
    }

    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    fn stage_name(&self, stage: usize) -> Arc<str> {
        // Tickets only carry indices from the plan built from these names.
        self.stage_names
            .get(stage)
            .cloned()
            .unwrap_or_else(|| Arc::from(""))
    }

    /// Picks the request for a ticket and arms its record guard.
    fn prepare(&self, ticket: RequestTicket) -> (PlannedRequest<W::Item>, RecordGuard) {
        let planned = self.workload.pick(&ticket);
        let key = SeriesKey {
            group: Arc::clone(&self.config.group),
            model: Arc::clone(&planned.model),
            operation: Some(planned.operation),
            stage: self.stage_name(ticket.stage),
            tier: planned.service_tier,
            turn: ticket.turn.map(|t| t.index),
        };
        (planned, RecordGuard::new(Arc::clone(&self.recorder), key))
    }

    /// Sends one request and records it; returns its outcome.
    async fn send(&self, ticket: RequestTicket) -> Outcome {
        let (planned, guard) = self.prepare(ticket);
        let completion = self.executor.execute(ticket, planned, self.clock).await;
        self.finish(&ticket, guard, &completion);
        completion.outcome
    }

    /// Records a request's completion (and offers it to the span sampler).
    fn finish(&self, ticket: &RequestTicket, guard: RecordGuard, completion: &Completion) {
        if let (Some(spans), Some(key)) = (&self.config.spans, guard.key()) {
            spans.offer(ticket, key, completion);
        }
        guard.finish(completion);
    }
}

/// Waits up to the grace period for `tasks`, then aborts the rest (their
/// record guards count them as abandoned).
async fn drain(tasks: &mut JoinSet<()>, grace: Duration) {
    let finished =
        tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} })
            .await
            .is_ok();
    if !finished {
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
}
