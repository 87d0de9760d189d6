//! One agent's share of a run: the plan's workload drawn, signed, sent and
//! recorded by the engine, and reported as a stream of [`ShareEvent`]s.
//!
//! This is the single road every run takes. The `quarry-agent` daemon
//! prepares a share when it admits a run and drives it with
//! [`PreparedShare::drive`], appending the events to the run's log for a
//! remote controller; `quarry run` without agents drives one share the same
//! way in-process and hands the events straight to the controller's
//! coordinator (a fleet of one). So the two can never measure, end or trace
//! differently.

mod connection;
mod events;
mod spec;

use std::future::Future;
use std::sync::{Arc, OnceLock};

use opentelemetry_proto::tonic::common::v1::KeyValue;
use tokio::sync::mpsc;

use crate::clock::RunClock;
use crate::exec::{BedrockExecutor, MixWorkload};
use crate::health::InFlightGauge;
use crate::http::TransportConfig;
use crate::plan::RunPlan;
use crate::scheduler::{EndReason, Engine, EngineConfig, RunReport};
use crate::snapshot::IntervalSnapshot;
use crate::trace::{SpanRecorder, encode_resource_spans};
use crate::workload::WorkloadSampler;

pub use connection::{AuthMethod, BEARER_TOKEN_ENV, Connection, SIM_REGION, ShareError};
pub use events::{FinishKind, ShareEvent, ShareFinished};
pub use spec::{
    FEATURE_INTERLEAVE, FEATURE_REPLAY, FEATURE_REQUEST_SLO, FEATURE_SERVICE_TIER,
    FEATURE_SESSIONS, FEATURE_THROTTLE_PACING, SHARE_FEATURES, SHARE_SCHEMA_VERSION, ShareSpec,
};

pub use spec::FEATURE_REPLAY_CACHE_PREFIX;

/// Where a traced share's sampled request spans go, and the identity
/// (OTLP resource attributes) its batches carry.
pub struct SpanExport {
    /// Samples and builds the spans; drained once per interval.
    pub recorder: Arc<SpanRecorder>,
    /// Resource attributes of every batch (the agent's id, Region...).
    pub resource: Vec<KeyValue>,
}

/// A share with everything that can fail already set up (the executor and
/// its transport, the workload), but no engine yet: a daemon prepares the
/// share when it admits the run, so a share that cannot be set up is refused
/// before it reports `Started`, and starts the engine at the start time.
pub struct PreparedShare {
    load: crate::load::LoadProfile,
    workload: Arc<MixWorkload>,
    executor: Arc<BedrockExecutor>,
}

impl PreparedShare {
    /// Sets up `plan` over `connection`; `stream` tells agent shares apart
    /// so their draws are independent (0 for a single agent).
    pub fn new(
        plan: &RunPlan,
        connection: Connection,
        transport: &TransportConfig,
        stream: u64,
    ) -> Result<Self, ShareError> {
        let sampler = Arc::new(WorkloadSampler::new(&plan.mix, plan.seed, stream));
        let executor = BedrockExecutor::new(
            plan,
            &connection.endpoint,
            sampler.clone(),
            connection.signer,
            transport,
        )?;
        Ok(PreparedShare {
            load: plan.load.clone(),
            workload: Arc::new(MixWorkload::new(sampler, plan)),
            executor: Arc::new(executor),
        })
    }

    /// Drives the share to its end, from `Started` to `Finished`, sending
    /// every event to `events`: `Started` at `clock`'s origin, then each
    /// interval's snapshot followed by the request spans sampled in it (when
    /// `spans` is given), and `Finished` with the cumulative series and how
    /// the share ended. `stop` resolves, with the reason people are told, to
    /// stop firing early; in-flight requests then get `config.grace`.
    ///
    /// A receiver that is gone drops events (the share still runs to its
    /// end or its stop).
    pub async fn drive(
        self,
        mut config: EngineConfig,
        clock: RunClock,
        spans: Option<SpanExport>,
        events: mpsc::Sender<ShareEvent>,
        stop: impl Future<Output = &'static str> + Send + 'static,
    ) {
        let emit = |event| {
            let events = events.clone();
            async move {
                // The receiver only goes away when the run is being torn
                // down; there is no one left to tell.
                let _ = events.send(event).await;
            }
        };
        emit(ShareEvent::Started {
            started_at_unix_ns: clock.unix_ns_at(0),
        })
        .await;
        config.spans = spans.as_ref().map(|s| Arc::clone(&s.recorder));
        let cause = Arc::new(OnceLock::new());
        let shutdown = {
            let cause = Arc::clone(&cause);
            async move {
                let _ = cause.set(stop.await);
            }
        };
        let (tx, mut rx) = mpsc::channel(16);
        let engine = tokio::spawn(self.start(config, clock).run(tx, shutdown));
        let drain_spans = || {
            spans.as_ref().and_then(|s| {
                let take = s.recorder.take();
                (!take.spans.is_empty() || take.dropped > 0).then(|| ShareEvent::Spans {
                    otlp_resource_spans: encode_resource_spans(s.resource.clone(), take.spans),
                    dropped_spans: take.dropped,
                })
            })
        };
        while let Some(snapshot) = rx.recv().await {
            emit(ShareEvent::Interval(snapshot)).await;
            if let Some(batch) = drain_spans() {
                emit(batch).await;
            }
        }
        let finished = match engine.await {
            Ok(report) => {
                if let Some(batch) = drain_spans() {
                    emit(batch).await;
                }
                let (kind, reason) = match report.ended {
                    EndReason::Completed => (FinishKind::Completed, "completed"),
                    EndReason::RequestLimit => (FinishKind::RequestLimit, "request limit reached"),
                    EndReason::Stopped => (
                        FinishKind::Stopped,
                        cause.get().copied().unwrap_or("stopped"),
                    ),
                };
                ShareFinished {
                    series: report.cumulative.series,
                    kind,
                    reason: reason.to_owned(),
                    requests_sent: report.sent,
                    finished_at_unix_ns: clock.unix_ns_at(report.finished_at),
                }
            }
            Err(e) => ShareFinished {
                series: Default::default(),
                kind: FinishKind::Failed,
                reason: format!("the load engine failed: {e}"),
                requests_sent: 0,
                finished_at_unix_ns: clock.unix_ns_at(clock.now_ns()),
            },
        };
        emit(ShareEvent::Finished(finished)).await;
    }

    /// The share with its engine on `clock` (whose origin is the start).
    pub fn start(self, config: EngineConfig, clock: RunClock) -> Share {
        Share {
            engine: Engine::new(self.load, config, clock),
            workload: self.workload,
            executor: self.executor,
        }
    }
}

/// One agent's share of a plan, ready to run.
pub struct Share {
    engine: Engine,
    workload: Arc<MixWorkload>,
    executor: Arc<BedrockExecutor>,
}

impl Share {
    /// Sets up `plan` over `connection`. `stream` tells agent shares apart so
    /// their draws are independent (0 for a single agent); `config` carries
    /// the group, seed and phase of this share.
    pub fn new(
        plan: &RunPlan,
        connection: Connection,
        transport: &TransportConfig,
        config: EngineConfig,
        stream: u64,
        clock: RunClock,
    ) -> Result<Self, ShareError> {
        Ok(PreparedShare::new(plan, connection, transport, stream)?.start(config, clock))
    }

    /// The in-flight gauge, for live views.
    pub fn in_flight(&self) -> InFlightGauge {
        self.engine.in_flight()
    }

    /// Runs the share to its end (or until `shutdown`), sending a snapshot per
    /// interval to `snapshots`.
    pub async fn run(
        self,
        snapshots: mpsc::Sender<IntervalSnapshot>,
        shutdown: impl Future<Output = ()> + Send,
    ) -> RunReport {
        self.engine
            .run(self.workload, self.executor, snapshots, shutdown)
            .await
    }
}
