//! The `quarry.v1.Agent` service: the thin gRPC shell over the registry.
//! Requests are converted at the edge (`quarry_proto::wire`) and errors mapped by
//! its one table.

use std::sync::Arc;

use quarry_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::log::EventStream;
use super::registry::{Registry, wall_ns};
use super::{DaemonConfig, DaemonError, wall_clock_now};
use quarry_engine::trace::{TRACEPARENT, TraceContext};

/// Optional features this agent offers, as `Describe` lists them.
pub const CAPABILITIES: &[&str] = &["http2", "results-replay", "lease"];

/// The service implementation.
#[derive(Debug, Clone)]
pub(crate) struct AgentService {
    config: Arc<DaemonConfig>,
    registry: Arc<Registry>,
}

impl AgentService {
    pub(crate) fn new(config: Arc<DaemonConfig>, registry: Arc<Registry>) -> Self {
        AgentService { config, registry }
    }
}

#[tonic::async_trait]
impl pb::agent_server::Agent for AgentService {
    async fn describe(
        &self,
        _request: Request<pb::DescribeRequest>,
    ) -> Result<Response<pb::DescribeResponse>, Status> {
        let c = &self.config;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Response::new(pb::DescribeResponse {
            protocol_version: quarry_proto::PROTOCOL_VERSION.to_owned(),
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            agent_id: c.agent_id.clone(),
            region: c.region.clone(),
            account_alias: c.account_alias.clone(),
            cores: u32::try_from(cores).unwrap_or(u32::MAX),
            guard_rails: Some(c.rails.to_proto()),
            capabilities: CAPABILITIES.iter().map(|s| (*s).to_owned()).collect(),
        }))
    }

    async fn sync_clock(
        &self,
        request: Request<pb::SyncClockRequest>,
    ) -> Result<Response<pb::SyncClockResponse>, Status> {
        let agent_receive_ns = wall_ns(wall_clock_now());
        let controller_send_ns = request.into_inner().controller_send_ns;
        Ok(Response::new(pb::SyncClockResponse {
            controller_send_ns,
            agent_receive_ns,
            agent_send_ns: wall_ns(wall_clock_now()),
        }))
    }

    type RunStream = EventStream;

    async fn run(
        &self,
        request: Request<pb::RunRequest>,
    ) -> Result<Response<Self::RunStream>, Status> {
        // W3C trace context: the controller's share span, parent of this
        // share's request spans.
        let trace = request
            .metadata()
            .get(TRACEPARENT)
            .map(|v| {
                v.to_str()
                    .map_err(|_| DaemonError::Plan("traceparent metadata is not ASCII".to_owned()))
                    .and_then(|v| Ok(TraceContext::parse(v)?))
            })
            .transpose()?;
        let run = self.registry.start(request.into_inner(), trace).await?;
        let hold = run.lease.hold();
        Ok(Response::new(run.log.stream(0, Some(hold))))
    }

    async fn stop(
        &self,
        request: Request<pb::StopRequest>,
    ) -> Result<Response<pb::StopResponse>, Status> {
        let was_running = self.registry.stop(&request.into_inner().run_id)?;
        Ok(Response::new(pb::StopResponse { was_running }))
    }

    type ResultsStream = EventStream;

    async fn results(
        &self,
        request: Request<pb::ResultsRequest>,
    ) -> Result<Response<Self::ResultsStream>, Status> {
        let request = request.into_inner();
        let run = self.registry.get(&request.run_id)?;
        let last = run.log.last_sequence();
        if run.log.is_finished() && request.after_sequence > last {
            return Err(DaemonError::SequenceAhead {
                run_id: request.run_id,
                after: request.after_sequence,
                last,
            }
            .into());
        }
        let hold = run.lease.hold();
        Ok(Response::new(
            run.log.stream(request.after_sequence, Some(hold)),
        ))
    }
}
