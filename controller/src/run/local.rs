//! The in-process share: a run without agents is a fleet of one. The plan
//! is split over a single slot (the whole load, k6's execution segment
//! `0:1`), the share is set up and driven by the engine's one harness in
//! this process, and its events go to the coordinator exactly as a remote
//! agent's would.

use std::sync::Arc;
use std::time::Duration;

use quarry_engine::http::TransportConfig;
use quarry_engine::trace::{SpanRecorder, TraceContext, TraceSampling};
use quarry_engine::{Connection, PreparedShare, RunClock, ShareSpec, SpanExport};
use tokio::sync::{mpsc, watch};

use super::RunError;
use crate::clock::ClockEstimate;
use crate::coordinator::split::{ShareSlot, share_specs};
use crate::coordinator::{ShareEnd, ShareSite, ShareUpdate, Shares, StopShare, Stopper};

/// The group an in-process share reports under.
pub const LOCAL_GROUP: &str = "default";

/// The in-process share with everything that can fail set up.
pub(super) struct LocalShare {
    spec: ShareSpec,
    prepared: PreparedShare,
    connection_region: String,
    server: quarry_engine::trace::ServerAddress,
}

impl LocalShare {
    /// Splits `plan` over one slot and sets the share up against the
    /// target (credentials resolved, model ids checked), so a share that
    /// cannot run fails before anything fires.
    pub(super) async fn prepare(
        run_id: &str,
        plan: &quarry_engine::RunPlan,
        interval: Duration,
        sim_url: Option<&str>,
    ) -> Result<Self, RunError> {
        let interval_ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
        let slot = ShareSlot::new(1.0, LOCAL_GROUP);
        let mut specs = share_specs(run_id, plan, &[slot], interval_ms, sim_url)?;
        // The split of one slot is one share: the whole plan.
        let spec = specs.swap_remove(0);
        let connection = Connection::for_target(&spec.plan.target, spec.sim_url.as_deref()).await?;
        // Which auth the run uses, never the secret (README "Running a load test").
        eprintln!("quarry: auth: {}", connection.auth);
        let connection_region = connection.endpoint.region().to_owned();
        let server = connection.server_address();
        let prepared = PreparedShare::new(
            &spec.plan,
            connection,
            &TransportConfig::default(),
            spec.stream,
        )?;
        Ok(LocalShare {
            spec,
            prepared,
            connection_region,
            server,
        })
    }

    /// The Region requests are signed for.
    pub(super) fn region(&self) -> &str {
        &self.connection_region
    }

    /// Starts firing on `clock` (whose origin is now), with in-flight
    /// requests given `grace` after the end or a stop, and request spans
    /// sampled under `trace` when the run is traced.
    pub(super) fn start(
        self,
        clock: RunClock,
        grace: Duration,
        trace: Option<(TraceContext, TraceSampling)>,
    ) -> Shares {
        let LocalShare {
            spec,
            prepared,
            server,
            ..
        } = self;
        let mut config = spec.engine_config();
        config.grace = grace;
        let spans = trace.map(|(context, sampling)| SpanExport {
            recorder: Arc::new(SpanRecorder::new(
                sampling,
                context,
                server,
                clock,
                spec.stream,
            )),
            resource: Vec::new(),
        });
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let stop = async move {
            // The sender lives in the stopper for the whole run.
            let _ = stop_rx.wait_for(|stopped| *stopped).await;
            "stopped by the controller"
        };
        let (updates_tx, updates) = mpsc::channel(1024);
        tokio::spawn(async move {
            let (events_tx, mut events) = mpsc::channel(16);
            let drive = tokio::spawn(prepared.drive(config, clock, spans, events_tx, stop));
            while let Some(event) = events.recv().await {
                if updates_tx
                    .send((0, ShareUpdate::Event(event)))
                    .await
                    .is_err()
                {
                    break;
                }
            }
            let lost = drive
                .await
                .err()
                .map(|e| format!("the in-process share's task failed: {e}"));
            let end = ShareEnd {
                lost,
                ..ShareEnd::default()
            };
            // The coordinator may already be gone (an aborted run).
            let _ = updates_tx.send((0, ShareUpdate::Ended(end))).await;
        });
        let stop_share: StopShare = Arc::new(move || {
            // Every stop after the first changes nothing.
            stop_tx.send_replace(true);
            Box::pin(async {})
        });
        Shares {
            updates,
            sites: vec![ShareSite {
                agent_id: "in-process".to_owned(),
                address: "local".to_owned(),
                group: LOCAL_GROUP.to_owned(),
                clock: ClockEstimate::local(),
            }],
            stopper: Stopper::new(vec![stop_share]),
            planned_start_unix_ns: None,
        }
    }
}
