//! The run's trace while it goes: one `RunTelemetry` shared by the interval
//! sink (metrics) and a task that turns the coordinator's share signals
//! (starts, span batches, ends) into spans, whatever the placement.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use quarry_engine::trace::{TraceContext, TraceSampling};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{RunError, RunOutcome};
use crate::clock::ControllerClock;
use crate::coordinator::ShareSignal;
use crate::results::write_report;
use crate::telemetry::{RunTelemetry, ShareInfo, TelemetryConfig};

/// How long the end of a run waits for the last share signals.
const SIGNAL_WAIT: Duration = Duration::from_secs(5);

/// The run's telemetry, shared by the interval sink and the signal task.
pub(super) type SharedTelemetry = Arc<Mutex<RunTelemetry>>;

/// Locks the run's telemetry.
pub(super) fn lock(t: &SharedTelemetry) -> MutexGuard<'_, RunTelemetry> {
    // A panic mid-update leaves at worst one span half-made.
    t.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A traced run: its telemetry, each share's trace context and sampling,
/// and the sender the coordinator reports share signals to.
pub(super) struct RunTrace {
    pub(super) telemetry: SharedTelemetry,
    pub(super) contexts: Vec<TraceContext>,
    pub(super) sampling: TraceSampling,
    signals: mpsc::UnboundedSender<ShareSignal>,
    task: JoinHandle<()>,
}

impl RunTrace {
    /// Starts the run's trace over `shares`: one share span each.
    pub(super) fn start(
        config: &TelemetryConfig,
        run_id: &str,
        plan: &quarry_engine::RunPlan,
        clock: ControllerClock,
        shares: Vec<ShareInfo>,
    ) -> Result<Self, RunError> {
        let n = shares.len();
        let telemetry =
            RunTelemetry::start(config.clone(), run_id, plan, clock.now_unix_ns(), shares)?;
        let contexts = (0..n).map(|k| telemetry.share_context(k)).collect();
        let telemetry = Arc::new(Mutex::new(telemetry));
        let (signals, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(apply_signals(Arc::clone(&telemetry), rx, clock));
        Ok(RunTrace {
            telemetry,
            contexts,
            sampling: config.share_sampling(n),
            signals,
            task,
        })
    }

    /// Where the coordinator reports share signals.
    pub(super) fn signals(&self) -> mpsc::UnboundedSender<ShareSignal> {
        self.signals.clone()
    }

    /// Ends the trace once the shares' last signals arrived (or after a
    /// short wait, for an aborted run whose agents are still winding down),
    /// and adds what was (not) exported to the report.
    pub(super) async fn finish(
        self,
        ended_unix_ns: i64,
        finished: &mut RunOutcome,
    ) -> Result<(), RunError> {
        let RunTrace {
            telemetry,
            signals,
            mut task,
            ..
        } = self;
        // The coordinator holds the other sender; once it is done the task
        // ends.
        drop(signals);
        if tokio::time::timeout(SIGNAL_WAIT, &mut task).await.is_err() {
            task.abort();
            let _ = task.await;
        }
        let Ok(telemetry) = Arc::try_unwrap(telemetry) else {
            // Someone still holds it (cannot happen once the sinks are
            // dropped); the trace is then left unended rather than blocking.
            return Ok(());
        };
        let telemetry = telemetry
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        let endpoint = telemetry.config().endpoint.clone();
        let trace_id = telemetry.trace_id_hex();
        let outcome = finished.document.end.ended.as_str();
        let report = telemetry
            .finish(
                ended_unix_ns,
                outcome,
                vec![opentelemetry::KeyValue::new(
                    "quarry.spec",
                    finished.document.run.spec.clone(),
                )],
            )
            .await;
        finished.report.push_str(&format!("\ntrace {trace_id}\n"));
        for line in report.lines(&endpoint) {
            finished.report.push_str(&line);
            finished.report.push('\n');
        }
        if let Err(e) = write_report(&finished.dir, &finished.report) {
            finished.unwritten.push(e.to_string());
        }
        Ok(())
    }
}

/// Turns share signals into the trace until the coordinator ends.
async fn apply_signals(
    telemetry: SharedTelemetry,
    mut signals: mpsc::UnboundedReceiver<ShareSignal>,
    clock: ControllerClock,
) {
    while let Some(signal) = signals.recv().await {
        let mut t = lock(&telemetry);
        match signal {
            ShareSignal::Started {
                share,
                agent_unix_ns,
            } => t.share_started(share, agent_unix_ns),
            ShareSignal::Spans {
                share,
                otlp_resource_spans,
                dropped,
            } => t.agent_spans(share, &otlp_resource_spans, dropped),
            ShareSignal::Ended {
                share,
                agent_unix_ns,
                problem,
            } => t.share_ended(
                share,
                agent_unix_ns,
                clock.now_unix_ns(),
                problem.as_deref(),
            ),
        }
    }
}
