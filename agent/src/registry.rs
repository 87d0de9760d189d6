//! The run registry: every run this agent knows (live, finished, or stored
//! on disk), how a run is admitted (schema, guard rails, start time, one live
//! run at a time), how it is driven (wait for its start, fire the share,
//! append each interval), and how it stops (Stop, lease expiry, agent
//! shutdown), always ending its log with `Finished`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::common::v1::KeyValue;
use quarry_engine::http::TransportConfig;
use quarry_engine::trace::{ServerAddress, SpanRecorder, TraceContext, kv_str};
use quarry_engine::{
    Connection, FinishKind, PreparedShare, RunClock, SHARE_FEATURES, SHARE_SCHEMA_VERSION,
    ShareEvent, ShareFinished, ShareSpec, SpanExport, merge_series,
};
use quarry_proto::v1 as pb;
use quarry_proto::wire::{self, EventDecoder};
use tokio::sync::{mpsc, watch};

use super::log::{Lease, RunLog};
use super::store::{ResultsStore, check_run_id};
use super::{DaemonConfig, DaemonError, wall_clock_now};

/// How late a start time may be and still be honoured (by starting now).
const START_LATE_TOLERANCE: Duration = Duration::from_secs(1);
/// The furthest ahead a start time may be.
const START_AHEAD_LIMIT: Duration = Duration::from_secs(300);

/// Why a run was told to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopReason {
    /// `Stop` was called.
    Requested,
    /// No stream held the lease for its TTL.
    LeaseExpired,
    /// The agent is shutting down.
    AgentShutdown,
}

impl StopReason {
    fn text(self) -> &'static str {
        match self {
            StopReason::Requested => "stopped by the controller",
            StopReason::LeaseExpired => "lease expired",
            StopReason::AgentShutdown => "agent shutting down",
        }
    }
}

/// One run: its log, its lease and its stop switch.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) log: Arc<RunLog>,
    pub(crate) lease: Arc<Lease>,
    stop: watch::Sender<Option<StopReason>>,
}

impl Run {
    fn new(log: RunLog) -> Arc<Self> {
        Arc::new(Run {
            log: Arc::new(log),
            lease: Lease::new(),
            stop: watch::Sender::new(None),
        })
    }

    /// Asks the run to stop (the first reason wins); true if it was live.
    pub(crate) fn request_stop(&self, reason: StopReason) -> bool {
        let live = !self.log.is_finished();
        self.stop.send_if_modified(|r| {
            let first = r.is_none();
            if first {
                *r = Some(reason);
            }
            first
        });
        live
    }

    /// Resolves when a stop is requested.
    fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.stop.subscribe();
        async move {
            // The sender lives as long as the run; if it is gone, stop.
            let _ = rx.wait_for(Option::is_some).await;
        }
    }

    fn stop_reason(&self) -> Option<StopReason> {
        *self.stop.borrow()
    }
}

/// Every run this agent knows.
#[derive(Debug)]
pub(crate) struct Registry {
    config: Arc<DaemonConfig>,
    store: ResultsStore,
    runs: Mutex<HashMap<String, Arc<Run>>>,
    shutting_down: AtomicBool,
}

impl Registry {
    /// A registry storing runs under the configured results directory.
    pub(crate) fn new(config: Arc<DaemonConfig>) -> Result<Arc<Self>, DaemonError> {
        let store = ResultsStore::open(&config.results_dir)?;
        Ok(Arc::new(Registry {
            config,
            store,
            runs: Mutex::new(HashMap::new()),
            shutting_down: AtomicBool::new(false),
        }))
    }

    fn runs(&self) -> MutexGuard<'_, HashMap<String, Arc<Run>>> {
        self.runs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Admits and starts a run; its log then fills as it fires.
    pub(crate) async fn start(
        self: &Arc<Self>,
        request: pb::RunRequest,
        trace: Option<TraceContext>,
    ) -> Result<Arc<Run>, DaemonError> {
        if self.shutting_down.load(Ordering::Acquire) {
            return Err(DaemonError::ShuttingDown);
        }
        let spec = self.admit(&request)?;
        let delay = start_delay(request.start_at_unix_ns, wall_clock_now())?;
        let ttl = self.lease_ttl(request.lease_ttl_ms);
        let run = self.reserve(&spec.run_id)?;
        // Everything that can fail is set up now, so a share that cannot run
        // is refused (and forgotten) before it reports Started.
        let connection =
            match Connection::for_target(&spec.plan.target, spec.sim_url.as_deref()).await {
                Ok(c) => c,
                Err(e) => {
                    self.forget(&spec.run_id);
                    return Err(e.into());
                }
            };
        let server = connection.server_address();
        let auth = connection.auth.to_string();
        let transport = TransportConfig::default();
        let prepared = match PreparedShare::new(&spec.plan, connection, &transport, spec.stream) {
            Ok(p) => p,
            Err(e) => {
                self.forget(&spec.run_id);
                return Err(e.into());
            }
        };
        tracing::info!(run_id = %spec.run_id, ?delay, ?ttl, %auth, "run admitted");
        let traced = trace.map(|context| Tracing {
            context,
            resource: vec![
                kv_str("quarry.agent.id", &self.config.agent_id),
                kv_str("cloud.region", &self.config.region),
                kv_str("quarry.account_alias", &self.config.account_alias),
            ],
        });
        let drive = drive(
            Arc::clone(&run),
            spec,
            (prepared, server),
            delay,
            self.config.stop_grace,
            traced,
        );
        let expiry = {
            let run = Arc::clone(&run);
            async move {
                run.lease.expired(ttl).await;
                if run.request_stop(StopReason::LeaseExpired) {
                    tracing::warn!(run_id = %run.log.run_id(), "lease expired: no controller stream; stopping");
                }
            }
        };
        tokio::spawn(async move {
            // The lease watch only asks the run to stop; the drive still
            // ends the log with Finished.
            let expiry = tokio::spawn(expiry);
            drive.await;
            expiry.abort();
        });
        Ok(run)
    }

    /// Drops a reserved run that was refused before it started.
    fn forget(&self, run_id: &str) {
        self.runs().remove(run_id);
        self.store.remove(run_id);
    }

    /// Checks the request and parses its share.
    fn admit(&self, request: &pb::RunRequest) -> Result<ShareSpec, DaemonError> {
        admit_request(&self.config, request)
    }

    /// The lease TTL for a request: its own (0 = the default), capped.
    fn lease_ttl(&self, requested_ms: u64) -> Duration {
        let ttl = if requested_ms == 0 {
            self.config.default_lease_ttl
        } else {
            Duration::from_millis(requested_ms)
        };
        ttl.min(self.config.max_lease_ttl)
    }

    /// Registers a new run under `run_id`, refusing a duplicate id or a
    /// second live run.
    fn reserve(&self, run_id: &str) -> Result<Arc<Run>, DaemonError> {
        let mut runs = self.runs();
        if runs.contains_key(run_id) || self.store.exists(run_id) {
            return Err(DaemonError::RunExists(run_id.to_owned()));
        }
        if let Some((live, _)) = runs.iter().find(|(_, r)| !r.log.is_finished()) {
            return Err(DaemonError::Busy { live: live.clone() });
        }
        let live: Vec<String> = runs.keys().cloned().collect();
        for gone in self
            .store
            .prune(self.config.keep_runs.saturating_sub(1), &live)
        {
            runs.remove(&gone);
        }
        let file = self.store.create(run_id)?;
        let run = Run::new(RunLog::new(run_id, Some(file)));
        runs.insert(run_id.to_owned(), Arc::clone(&run));
        Ok(run)
    }

    /// A run by id: live or finished in this process, else loaded from the
    /// store. A stored log a crash left without `Finished` is closed with a
    /// partial `Finished` holding the merge of its intervals.
    pub(crate) fn get(&self, run_id: &str) -> Result<Arc<Run>, DaemonError> {
        if let Some(run) = self.runs().get(run_id) {
            return Ok(Arc::clone(run));
        }
        check_run_id(run_id).map_err(|_| DaemonError::UnknownRun(run_id.to_owned()))?;
        let events = self
            .store
            .load(run_id)?
            .ok_or_else(|| DaemonError::UnknownRun(run_id.to_owned()))?;
        let log = RunLog::with_events(run_id, events, None);
        if !log.is_finished() {
            let finished = recovered_finish(&log.events())?;
            let log = RunLog::with_events(run_id, log.events(), Some(self.store.reopen(run_id)?));
            log.append(finished);
            return Ok(self.insert_loaded(run_id, log));
        }
        Ok(self.insert_loaded(run_id, log))
    }

    fn insert_loaded(&self, run_id: &str, log: RunLog) -> Arc<Run> {
        let mut runs = self.runs();
        // Another caller may have loaded it meanwhile: keep theirs.
        Arc::clone(
            runs.entry(run_id.to_owned())
                .or_insert_with(|| Run::new(log)),
        )
    }

    /// Stops a run; true when it was still firing.
    pub(crate) fn stop(&self, run_id: &str) -> Result<bool, DaemonError> {
        Ok(self.get(run_id)?.request_stop(StopReason::Requested))
    }

    /// Refuses new runs, stops every live one, and waits up to `grace` for
    /// their logs to finish. True when all finished in time.
    pub(crate) async fn shutdown(&self, grace: Duration) -> bool {
        self.shutting_down.store(true, Ordering::Release);
        let live: Vec<Arc<Run>> = self
            .runs()
            .values()
            .filter(|r| !r.log.is_finished())
            .cloned()
            .collect();
        for run in &live {
            run.request_stop(StopReason::AgentShutdown);
        }
        let all = async {
            for run in &live {
                run.log.finished().await;
            }
        };
        tokio::time::timeout(grace, all).await.is_ok()
    }
}

/// Checks a controller's `RunRequest` and parses its share: the schema
/// version, the run id, the share JSON, the features it requires, and the
/// guard rails of `config`. What the agent does with every `Run` call
/// before anything is stored or fired; public so the fuzz targets and
/// their corpus replay call the code that ships.
pub fn admit_request(
    config: &DaemonConfig,
    request: &pb::RunRequest,
) -> Result<ShareSpec, DaemonError> {
    if request.plan_schema_version != SHARE_SCHEMA_VERSION {
        return Err(DaemonError::SchemaVersion {
            theirs: request.plan_schema_version,
            ours: SHARE_SCHEMA_VERSION,
        });
    }
    check_run_id(&request.run_id)?;
    let spec: ShareSpec = serde_json::from_slice(&request.share_json)
        .map_err(|e| DaemonError::Plan(e.to_string()))?;
    let missing = spec.unsupported(SHARE_FEATURES);
    if !missing.is_empty() {
        return Err(DaemonError::Plan(format!(
            "the share requires {} which this agent (quarry-agent {}) does not support; upgrade the agent",
            missing.join(", "),
            env!("CARGO_PKG_VERSION")
        )));
    }
    if spec.run_id != request.run_id {
        return Err(DaemonError::RunIdMismatch {
            request: request.run_id.clone(),
            share: spec.run_id,
        });
    }
    config.rails.check(&spec.plan, &config.prices)?;
    Ok(spec)
}

/// How long to wait before firing: `start_at_unix_ns` against the agent's
/// wall clock `now`. 0 means "now"; a time up to a second late starts now; a
/// time further in the past, or more than five minutes ahead, is refused.
pub(crate) fn start_delay(start_at_unix_ns: i64, now: SystemTime) -> Result<Duration, DaemonError> {
    if start_at_unix_ns == 0 {
        return Ok(Duration::ZERO);
    }
    let now_ns = wall_ns(now);
    let ahead_ns = i128::from(start_at_unix_ns) - i128::from(now_ns);
    let ahead = Duration::from_nanos(u64::try_from(ahead_ns.unsigned_abs()).unwrap_or(u64::MAX));
    if ahead_ns < 0 {
        if ahead > START_LATE_TOLERANCE {
            return Err(DaemonError::StartTime {
                detail: format!(
                    "{:.3} s in the past on this agent's clock (at most {} s allowed); re-sync clocks and retry",
                    ahead.as_secs_f64(),
                    START_LATE_TOLERANCE.as_secs()
                ),
            });
        }
        return Ok(Duration::ZERO);
    }
    if ahead > START_AHEAD_LIMIT {
        return Err(DaemonError::StartTime {
            detail: format!(
                "{:.3} s in the future on this agent's clock (at most {} s allowed)",
                ahead.as_secs_f64(),
                START_AHEAD_LIMIT.as_secs()
            ),
        });
    }
    Ok(ahead)
}

/// Unix ns of `t` (negative before 1970, saturating).
pub(crate) fn wall_ns(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_nanos()).map_or(i64::MIN, |n| -n),
    }
}

/// Appends `event` to the run's log, encoded with interval times anchored at
/// `origin`.
fn append(run: &Run, event: &ShareEvent, origin: i64) {
    match wire::event_to_proto(0, event, origin) {
        Ok(pb::RunEvent {
            event: Some(inner), ..
        }) => {
            run.log.append(inner);
        }
        Ok(_) => {}
        Err(e) => {
            // Encoding in-range histograms cannot fail; if it ever did, the
            // interval is missing from the stream but still in Finished.
            tracing::error!(run_id = %run.log.run_id(), error = %e, "could not encode an event");
        }
    }
}

/// Appends a `Finished` with no data: for a share stopped before its start
/// time, or one whose harness died.
fn finish_empty(run: &Run, kind: FinishKind, reason: String) {
    let finished = ShareFinished {
        series: BTreeMap::new(),
        kind,
        reason,
        requests_sent: 0,
        finished_at_unix_ns: wall_ns(wall_clock_now()),
    };
    append(run, &ShareEvent::Finished(finished), 0);
}

/// A traced share's context and the agent identity its spans carry.
struct Tracing {
    context: TraceContext,
    resource: Vec<KeyValue>,
}

/// Drives one run: waits for its start time, then drives the share
/// ([`PreparedShare::drive`], the harness in-process runs use too) and
/// appends each of its events to the run's log, intervals anchored at the
/// share's origin.
async fn drive(
    run: Arc<Run>,
    spec: ShareSpec,
    (prepared, server): (PreparedShare, ServerAddress),
    delay: Duration,
    stop_grace: Duration,
    traced: Option<Tracing>,
) {
    tokio::select! {
        () = tokio::time::sleep(delay) => {}
        () = run.stopped() => {
            let reason = run.stop_reason().unwrap_or(StopReason::Requested);
            finish_empty(
                &run,
                FinishKind::Stopped,
                format!("{} before the start time", reason.text()),
            );
            return;
        }
    }
    let clock = RunClock::start(wall_clock_now());
    let origin = clock.unix_ns_at(0);
    let mut config = spec.engine_config();
    config.grace = stop_grace;
    let spans = match (traced, spec.trace) {
        (Some(t), Some(sampling)) => Some(SpanExport {
            recorder: Arc::new(SpanRecorder::new(
                sampling,
                t.context,
                server,
                clock,
                spec.stream,
            )),
            resource: t.resource,
        }),
        _ => None,
    };
    let stop = {
        let run = Arc::clone(&run);
        async move {
            run.stopped().await;
            run.stop_reason().unwrap_or(StopReason::Requested).text()
        }
    };
    let (tx, mut rx) = mpsc::channel(16);
    let share = tokio::spawn(prepared.drive(config, clock, spans, tx, stop));
    while let Some(event) = rx.recv().await {
        if let ShareEvent::Finished(f) = &event {
            tracing::info!(run_id = %spec.run_id, sent = f.requests_sent, reason = %f.reason, "run finished");
        }
        append(&run, &event, origin);
    }
    if let Err(e) = share.await {
        // The harness ends every share with Finished; if its task died
        // before, the log still gets one.
        finish_empty(
            &run,
            FinishKind::Failed,
            format!("the share's task failed: {e}"),
        );
    }
}

/// The `Finished` for a stored log a crash left open: its intervals merged.
fn recovered_finish(events: &[pb::RunEvent]) -> Result<pb::run_event::Event, DaemonError> {
    let mut decoder = EventDecoder::new();
    let mut series = BTreeMap::new();
    let mut last_end = 0;
    for event in events {
        if let Some(decoded) = decoder.decode(event)?
            && let ShareEvent::Interval(i) = decoded.event
        {
            merge_series(&mut series, &i.series);
            last_end = i.end;
        }
    }
    let origin = decoder.origin_unix_ns().unwrap_or(0);
    let finished = ShareFinished {
        series,
        kind: FinishKind::Failed,
        reason: "agent restarted during the run".to_owned(),
        requests_sent: 0,
        finished_at_unix_ns: origin.saturating_add(i64::try_from(last_end).unwrap_or(i64::MAX)),
    };
    wire::event_to_proto(0, &ShareEvent::Finished(finished), origin)?
        .event
        .ok_or(DaemonError::Wire(wire::WireError::MissingField(
            "RunEvent.event",
        )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_times_in_range_are_delays() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let at = |d: i64| wall_ns(now) + d;
        assert_eq!(start_delay(0, now).unwrap(), Duration::ZERO);
        assert_eq!(
            start_delay(at(2_000_000_000), now).unwrap(),
            Duration::from_secs(2)
        );
        assert_eq!(start_delay(at(-500_000_000), now).unwrap(), Duration::ZERO);
        let late = start_delay(at(-3_000_000_000), now).unwrap_err();
        assert!(late.to_string().contains("3.000 s in the past"), "{late}");
        let far = start_delay(at(301_000_000_000), now).unwrap_err();
        assert!(far.to_string().contains("in the future"), "{far}");
    }
}
