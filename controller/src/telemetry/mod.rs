//! OpenTelemetry: one trace per run, exported over OTLP (gRPC or
//! HTTP/protobuf) by the controller, plus the GenAI client metrics.
//!
//! The trace's structure is the controller's: the `quarry.run` span, one
//! span per agent share (a child of the run span) and one per stage (a child
//! of its share span). Agents add only the sampled request spans, as
//! children of their stage spans: the share span's context crosses the gRPC
//! hop as W3C `traceparent` metadata, and both sides derive the stage span
//! ids from it ([`quarry_engine::trace::stage_span_id`]). Request spans come
//! back inside the Run stream as OTLP batches and are exported here with
//! their times translated into the controller's clock by the measured
//! offset, so agents need no route to the backend.
//!
//! Export never slows or fails a run: spans go through a bounded queue to
//! one background task that batches them and calls the OTLP exporter under
//! a timeout. A full queue drops spans; a backend that is down fails the
//! batch; both are counted and reported at the end ([`TraceReport`]).

mod config;
mod convert;
mod metrics;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter, SpanLinks};
use prost::Message;
use quarry_engine::trace::{TraceContext, stage_span_id};
use quarry_engine::{IntervalSnapshot, RunPlan};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use config::{Protocol, TelemetryConfig, TelemetryError};
pub use metrics::RunMetrics;

/// Spans waiting for export; beyond this they are dropped and counted.
const QUEUE: usize = 16_384;
/// Spans per export call.
const BATCH: usize = 512;
/// How long spans wait for a batch to fill.
const BATCH_DELAY: Duration = Duration::from_millis(500);

/// What became of the run's spans.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceReport {
    /// Spans handed to the exporter that the backend accepted.
    pub exported: u64,
    /// Spans in batches the backend refused or did not answer in time.
    pub failed: u64,
    /// Spans dropped before export: the controller's queue was full, or the
    /// end-of-run flush ran out of time.
    pub dropped_queue: u64,
    /// Request spans agents dropped (per-second cap, or their buffer full).
    pub dropped_by_agents: u64,
    /// The first export error seen, for the warning.
    pub first_error: Option<String>,
    /// Metric exports that failed.
    pub metric_failures: u64,
}

impl TraceReport {
    /// Report lines: what was exported and what was not.
    pub fn lines(&self, endpoint: &str) -> Vec<String> {
        let mut lines = vec![format!(
            "telemetry: {} spans exported to {endpoint}; {} request spans not sampled past the cap",
            self.exported, self.dropped_by_agents
        )];
        if self.failed + self.dropped_queue > 0 || self.metric_failures > 0 {
            lines.push(format!(
                "WARNING telemetry: {} spans NOT exported ({} refused or timed out, {} dropped), {} metric exports failed{}",
                self.failed + self.dropped_queue,
                self.failed,
                self.dropped_queue,
                self.metric_failures,
                self.first_error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ));
        }
        lines
    }
}

#[derive(Debug, Default)]
struct Counters {
    enqueued: AtomicU64,
    exported: AtomicU64,
    failed: AtomicU64,
    dropped_queue: AtomicU64,
    dropped_by_agents: AtomicU64,
    first_error: std::sync::Mutex<Option<String>>,
}

impl Counters {
    fn error(&self, e: String) {
        let mut first = self
            .first_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        first.get_or_insert(e);
    }
}

/// What the trace knows of one share.
#[derive(Debug, Clone)]
pub struct ShareInfo {
    /// The agent's id (`in-process` for a run without agents).
    pub agent_id: String,
    /// The agent's Region.
    pub region: String,
    /// The agent's account alias.
    pub account_alias: String,
    /// The agent's address.
    pub address: String,
    /// The share's series group.
    pub group: String,
    /// Agent clock − controller clock, ns (0 in-process).
    pub clock_offset_ns: i64,
}

#[derive(Debug)]
struct ShareState {
    info: ShareInfo,
    started_unix_ns: Option<i64>,
}

/// One run's trace and metrics, live.
#[derive(Debug)]
pub struct RunTelemetry {
    config: TelemetryConfig,
    trace_id: [u8; 16],
    run_span_id: [u8; 8],
    run_id: String,
    plan: RunPlan,
    started_unix_ns: i64,
    shares: Vec<ShareState>,
    queue: Option<mpsc::Sender<SpanData>>,
    counters: Arc<Counters>,
    exporter_task: Option<JoinHandle<()>>,
    metrics: Option<RunMetrics>,
    scope: InstrumentationScope,
}

impl RunTelemetry {
    /// Starts exporting for run `run_id` (started at `started_unix_ns` on the
    /// controller's clock) with `shares` shares.
    pub fn start(
        config: TelemetryConfig,
        run_id: &str,
        plan: &RunPlan,
        started_unix_ns: i64,
        shares: Vec<ShareInfo>,
    ) -> Result<Self, TelemetryError> {
        let resource = config.resource();
        let mut exporter = config.span_exporter()?;
        exporter.set_resource(&resource);
        let metrics = if config.metrics {
            Some(RunMetrics::start(&config, resource)?)
        } else {
            None
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        let counters = Arc::new(Counters::default());
        let task = tokio::spawn(export_loop(
            exporter,
            rx,
            Arc::clone(&counters),
            config.export_timeout,
        ));
        let mut ids = rand::random::<[u8; 24]>();
        if ids[..16] == [0; 16] {
            ids[15] = 1;
        }
        if ids[16..] == [0; 8] {
            ids[23] = 1;
        }
        let mut trace_id = [0u8; 16];
        let mut run_span_id = [0u8; 8];
        trace_id.copy_from_slice(&ids[..16]);
        run_span_id.copy_from_slice(&ids[16..]);
        Ok(RunTelemetry {
            config,
            trace_id,
            run_span_id,
            run_id: run_id.to_owned(),
            plan: plan.clone(),
            started_unix_ns,
            shares: shares
                .into_iter()
                .map(|info| ShareState {
                    info,
                    started_unix_ns: None,
                })
                .collect(),
            queue: Some(tx),
            counters,
            exporter_task: Some(task),
            metrics,
            scope: InstrumentationScope::builder("quarry")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &TelemetryConfig {
        &self.config
    }

    /// The trace id, hex.
    pub fn trace_id_hex(&self) -> String {
        hex::encode(self.trace_id)
    }

    /// The context share `share`'s agent hangs its spans under: the share
    /// span's.
    pub fn share_context(&self, share: usize) -> TraceContext {
        TraceContext {
            trace_id: self.trace_id,
            span_id: share_span_id(self.run_span_id, share),
        }
    }

    /// Share `share` started firing at `agent_unix_ns` on its agent's clock.
    pub fn share_started(&mut self, share: usize, agent_unix_ns: i64) {
        if let Some(s) = self.shares.get_mut(share) {
            s.started_unix_ns = Some(agent_unix_ns.saturating_sub(s.info.clock_offset_ns));
        }
    }

    /// A batch of share `share`'s request spans (OTLP `ResourceSpans`
    /// bytes) and the count its agent dropped.
    pub fn agent_spans(&self, share: usize, otlp_resource_spans: &[u8], dropped: u64) {
        self.counters
            .dropped_by_agents
            .fetch_add(dropped, Ordering::Relaxed);
        let Some(state) = self.shares.get(share) else {
            return;
        };
        match ResourceSpans::decode(otlp_resource_spans) {
            Ok(batch) => {
                for span in convert::resource_spans(batch, state.info.clock_offset_ns, &self.scope)
                {
                    self.enqueue(span);
                }
            }
            Err(e) => tracing::warn!(share, error = %e, "undecodable span batch dropped"),
        }
    }

    /// Records a merged interval into the metrics.
    pub fn interval(&self, snapshot: &IntervalSnapshot) {
        if let Some(m) = &self.metrics {
            m.record(snapshot);
        }
    }

    fn enqueue(&self, span: SpanData) {
        let Some(queue) = &self.queue else {
            return;
        };
        match queue.try_send(span) {
            Ok(()) => self.counters.enqueued.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.counters.dropped_queue.fetch_add(1, Ordering::Relaxed),
        };
    }

    /// Share `share` ended at `agent_unix_ns` (its agent's clock; `None`:
    /// lost, now on the controller's clock `now_unix_ns`): emits its share
    /// and stage spans. `problem` marks it partial or lost.
    pub fn share_ended(
        &mut self,
        share: usize,
        agent_unix_ns: Option<i64>,
        now_unix_ns: i64,
        problem: Option<&str>,
    ) {
        let Some(state) = self.shares.get(share) else {
            return;
        };
        let info = state.info.clone();
        let end = agent_unix_ns.map_or(now_unix_ns, |t| t.saturating_sub(info.clock_offset_ns));
        let start = state.started_unix_ns.unwrap_or(end);
        let context = self.share_context(share);
        let mut attributes = vec![
            KeyValue::new("quarry.run.id", self.run_id.clone()),
            KeyValue::new("quarry.agent.id", info.agent_id.clone()),
            KeyValue::new("quarry.agent.address", info.address.clone()),
            KeyValue::new("cloud.region", info.region.clone()),
            KeyValue::new("quarry.account_alias", info.account_alias.clone()),
            KeyValue::new("quarry.group", info.group.clone()),
            KeyValue::new("quarry.share", share as i64),
            KeyValue::new("quarry.clock_offset_ms", info.clock_offset_ns as f64 / 1e6),
        ];
        if let Some(p) = problem {
            attributes.push(KeyValue::new("quarry.partial", true));
            attributes.push(KeyValue::new("quarry.partial.reason", p.to_owned()));
        }
        let status = match problem {
            Some(p) => Status::error(p.to_owned()),
            None => Status::Unset,
        };
        let span = self.span(
            context.span_id,
            self.run_span_id,
            format!("quarry.share {}", info.agent_id),
            (start, end),
            attributes,
            status,
        );
        self.enqueue(span);
        let stage_plan = self.plan.load.plan();
        for (index, (stage, timing)) in self
            .plan
            .load
            .stages()
            .iter()
            .zip(stage_plan.spans())
            .enumerate()
        {
            let stage_start =
                start.saturating_add(i64::try_from(timing.start_ns).unwrap_or(i64::MAX));
            if stage_start >= end {
                break;
            }
            let stage_end = start
                .saturating_add(i64::try_from(timing.end_ns).unwrap_or(i64::MAX))
                .min(end);
            let span = self.span(
                stage_span_id(context.span_id, index),
                context.span_id,
                format!("quarry.stage {}", stage.name),
                (stage_start, stage_end),
                vec![
                    KeyValue::new("quarry.stage", stage.name.clone()),
                    KeyValue::new(
                        "quarry.stage.kind",
                        format!("{:?}", stage.kind).to_lowercase(),
                    ),
                    KeyValue::new("quarry.stage.level_from", timing.from),
                    KeyValue::new("quarry.stage.level_to", timing.to),
                ],
                Status::Unset,
            );
            self.enqueue(span);
        }
    }

    fn span(
        &self,
        id: [u8; 8],
        parent: [u8; 8],
        name: String,
        (start, end): (i64, i64),
        attributes: Vec<KeyValue>,
        status: Status,
    ) -> SpanData {
        SpanData {
            span_context: SpanContext::new(
                TraceId::from_bytes(self.trace_id),
                SpanId::from_bytes(id),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id: SpanId::from_bytes(parent),
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: name.into(),
            start_time: unix_time(start),
            end_time: unix_time(end.max(start)),
            attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status,
            instrumentation_scope: self.scope.clone(),
        }
    }

    /// Ends the run span (`attributes`: outcome etc.), flushes what is
    /// queued within the flush timeout, and reports what was exported.
    pub async fn finish(
        mut self,
        ended_unix_ns: i64,
        outcome: &str,
        mut attributes: Vec<KeyValue>,
    ) -> TraceReport {
        attributes.extend([
            KeyValue::new("quarry.run.id", self.run_id.clone()),
            KeyValue::new("quarry.outcome", outcome.to_owned()),
            KeyValue::new("quarry.shares", self.shares.len() as i64),
        ]);
        let status = if outcome == "completed" || outcome == "request_limit" {
            Status::Unset
        } else {
            Status::error(outcome.to_owned())
        };
        let span = self.span(
            self.run_span_id,
            [0; 8],
            "quarry.run".to_owned(),
            (self.started_unix_ns, ended_unix_ns),
            attributes,
            status,
        );
        self.enqueue(span);
        // Closing the queue lets the export loop drain and end.
        self.queue = None;
        let deadline = tokio::time::Instant::now() + self.config.flush_timeout;
        let mut metric_failures = 0;
        if let Some(m) = self.metrics.take() {
            metric_failures = m.finish(deadline).await;
        }
        if let Some(task) = self.exporter_task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout_at(deadline, task).await.is_err() {
                abort.abort();
            }
        }
        let c = &self.counters;
        // Whatever was queued but neither exported nor failed was cut off
        // by the flush timeout.
        let settled = c.exported.load(Ordering::Relaxed) + c.failed.load(Ordering::Relaxed);
        let cut_off = c.enqueued.load(Ordering::Relaxed).saturating_sub(settled);
        let first_error = c
            .first_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        TraceReport {
            exported: c.exported.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            dropped_queue: c.dropped_queue.load(Ordering::Relaxed) + cut_off,
            dropped_by_agents: c.dropped_by_agents.load(Ordering::Relaxed),
            first_error,
            metric_failures,
        }
    }
}

/// Share `share`'s span id under the run span.
fn share_span_id(run_span: [u8; 8], share: usize) -> [u8; 8] {
    // Any id distinct per share works; reuse the stage derivation with a
    // label of its own by offsetting far past any stage index.
    stage_span_id(run_span, usize::MAX - share)
}

fn unix_time(ns: i64) -> SystemTime {
    match u64::try_from(ns) {
        Ok(n) => UNIX_EPOCH + Duration::from_nanos(n),
        Err(_) => UNIX_EPOCH,
    }
}

/// Batches queued spans and exports them until the queue closes; a batch
/// that fails or times out is counted, never retried into the run's way.
async fn export_loop(
    exporter: opentelemetry_otlp::SpanExporter,
    mut queue: mpsc::Receiver<SpanData>,
    counters: Arc<Counters>,
    timeout: Duration,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut open = true;
    while open {
        let deadline = tokio::time::Instant::now() + BATCH_DELAY;
        while batch.len() < BATCH {
            match tokio::time::timeout_at(deadline, queue.recv()).await {
                Ok(Some(span)) => batch.push(span),
                Ok(None) => {
                    open = false;
                    break;
                }
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            continue;
        }
        let n = batch.len() as u64;
        let spans = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
        match tokio::time::timeout(timeout, exporter.export(spans)).await {
            Ok(Ok(())) => {
                counters.exported.fetch_add(n, Ordering::Relaxed);
            }
            Ok(Err(e)) => {
                counters.failed.fetch_add(n, Ordering::Relaxed);
                counters.error(e.to_string());
            }
            Err(_) => {
                counters.failed.fetch_add(n, Ordering::Relaxed);
                counters.error(format!("export timed out after {timeout:?}"));
            }
        }
    }
    // Nothing is left to send; a failing shutdown has nothing to lose.
    let _ = exporter.shutdown();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_span_ids_differ_from_each_other_and_from_stage_ids() {
        let run = [3u8; 8];
        let a = share_span_id(run, 0);
        let b = share_span_id(run, 1);
        assert_ne!(a, b);
        assert_ne!(a, stage_span_id(run, 0));
        assert_ne!(stage_span_id(a, 0), stage_span_id(b, 0));
    }

    #[test]
    fn report_warns_only_when_something_was_lost() {
        let ok = TraceReport {
            exported: 10,
            ..TraceReport::default()
        };
        assert_eq!(ok.lines("http://x").len(), 1);
        let lost = TraceReport {
            failed: 4,
            first_error: Some("connection refused".into()),
            ..TraceReport::default()
        };
        let lines = lost.lines("http://x");
        assert!(lines[1].starts_with("WARNING telemetry: 4 spans NOT exported"));
        assert!(lines[1].ends_with("connection refused"));
    }
}
