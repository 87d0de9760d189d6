//! Remote shares: the controller side of shares run by `quarry-agent`
//! daemons. Agents are found and described ([`discovery`]), their clocks
//! probed ([`client::sync_clock`]), every share started at one common
//! instant translated into each agent's clock, and each share's event
//! stream followed across broken connections ([`client`]). What comes out
//! is [`Shares`] — the same thing an in-process share produces — for the
//! coordinator to merge.
//!
//! An agent that is lost mid-run leaves its share partial at its last
//! interval; the others run to their end.

pub mod cli;
pub mod client;
pub mod config;
pub mod discovery;
pub mod groups;

use std::sync::Arc;
use std::time::Duration;

use quarry_engine::{RunPlan, SHARE_SCHEMA_VERSION};
use quarry_proto::v1::RunRequest;
use tokio::sync::mpsc;

use crate::clock::ControllerClock;
use crate::coordinator::split::{ShareSlot, SplitError, share_specs};
use crate::coordinator::{ShareSite, Shares, StopShare, Stopper};

pub use cli::AgentFlags;
pub use client::{
    AgentRpc, BearerToken, ConnectError, ConnectOptions, ReattachPolicy, RpcError, TlsSettings,
};
pub use config::{AgentGroupSpec, AgentSource, AgentsSpec};
pub use discovery::{
    AgentAddress, AgentInfo, AgentStatus, ConnectedAgent, DiscoveryError, agents_table, discover,
    discover_groups, parse_agent, parse_agents, probe_all, resolve,
};
pub use groups::{add_group_totals, group_records, partial_shares};

/// A distributed run could not be started.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// Agents could not be found or used.
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    /// The plan cannot be split over the agents.
    #[error("splitting the plan over the agents: {0}")]
    Split(#[from] SplitError),
    /// A share could not be encoded.
    #[error("encoding the share for {agent}: {detail}")]
    Encode {
        /// The agent.
        agent: String,
        /// The encoder's complaint.
        detail: String,
    },
    /// An agent refused its share; the shares already started were stopped.
    #[error("agent {agent} refused its share: {source}")]
    Refused {
        /// The agent.
        agent: String,
        /// Its answer.
        source: RpcError,
    },
}

/// What a distributed run needs besides its agents.
#[derive(Debug, Clone)]
pub struct FleetPlan {
    /// The run's id (every share carries it).
    pub run_id: String,
    /// The whole plan; each agent gets its share of the load.
    pub plan: RunPlan,
    /// Snapshot interval.
    pub interval: Duration,
    /// The simulator's URL as the agents reach it, when the target is the
    /// simulator.
    pub sim_url: Option<String>,
    /// How long an agent keeps firing without a live stream.
    pub lease_ttl: Duration,
    /// How far ahead of now the common start is set: long enough for every
    /// agent to receive its share and set up.
    pub start_lead: Duration,
    /// Tracing: each share's trace context and sampling. `None`: untraced.
    pub trace: Option<FleetTrace>,
}

/// A traced distributed run's per-share context.
#[derive(Debug, Clone)]
pub struct FleetTrace {
    /// Share `k`'s context (its share span), sent as `traceparent`.
    pub contexts: Vec<quarry_engine::trace::TraceContext>,
    /// Every share's sampling.
    pub sampling: quarry_engine::trace::TraceSampling,
}

/// `quarry agents`: every agent of `--agents`, described and clock-probed,
/// or why it is unusable.
pub async fn list_agents(
    list: &str,
    options: &ConnectOptions,
    clock: &ControllerClock,
) -> Result<Vec<AgentStatus>, DiscoveryError> {
    let addresses = resolve(&parse_agents(list)?).await?;
    let probed = probe_all(&addresses, options, clock).await;
    Ok(probed
        .into_iter()
        .zip(addresses)
        .map(|(result, address)| match result {
            Ok(agent) => AgentStatus::Up(agent.info),
            Err(e) => AgentStatus::Down {
                address,
                error: e.to_string(),
            },
        })
        .collect())
}

/// The agents of `--agents`, every one of them usable, each once.
pub async fn find_agents(
    list: &str,
    options: &ConnectOptions,
    clock: &ControllerClock,
) -> Result<Vec<ConnectedAgent>, DiscoveryError> {
    let addresses = resolve(&parse_agents(list)?).await?;
    discover(&addresses, options, clock).await
}

/// The slots of `agents`: each agent's own ([`AgentInfo::slot`]: weight 1
/// in its described group from `--agents`, its spec group's otherwise).
pub fn slots(agents: &[ConnectedAgent]) -> Vec<ShareSlot> {
    agents.iter().map(|a| (*a.info.slot).clone()).collect()
}

/// Splits `plan` over `agents`, starts every share at one common instant
/// and follows their streams. If any agent refuses its share, the ones
/// already started are stopped and the run does not start.
pub async fn start(
    agents: Vec<ConnectedAgent>,
    plan: &FleetPlan,
    clock: ControllerClock,
) -> Result<Shares, FleetError> {
    let interval_ms = u64::try_from(plan.interval.as_millis()).unwrap_or(u64::MAX);
    let specs = share_specs(
        &plan.run_id,
        &plan.plan,
        &slots(&agents),
        interval_ms,
        plan.sim_url.as_deref(),
    )?;
    let max_rtt = agents
        .iter()
        .map(|a| a.info.clock.rtt_ns)
        .max()
        .unwrap_or(0);
    let lead = i64::try_from((plan.start_lead + Duration::from_nanos(max_rtt * 4)).as_nanos())
        .unwrap_or(i64::MAX);
    let start_at = clock.now_unix_ns().saturating_add(lead);
    let lease_ttl_ms = u64::try_from(plan.lease_ttl.as_millis()).unwrap_or(u64::MAX);
    let mut calls = Vec::with_capacity(agents.len());
    for (k, (agent, spec)) in agents.iter().zip(&specs).enumerate() {
        let mut spec = spec.clone();
        let traceparent = plan.trace.as_ref().and_then(|t| {
            spec.trace = Some(t.sampling);
            t.contexts.get(k).map(|c| c.traceparent())
        });
        let share_json = serde_json::to_vec(&spec).map_err(|e| FleetError::Encode {
            agent: agent.info.agent_id.clone(),
            detail: e.to_string(),
        })?;
        let request = RunRequest {
            run_id: plan.run_id.clone(),
            share_json,
            plan_schema_version: SHARE_SCHEMA_VERSION,
            start_at_unix_ns: agent.info.clock.to_agent(start_at),
            lease_ttl_ms,
        };
        let mut rpc = agent.rpc.clone();
        calls.push(tokio::spawn(async move {
            client::start_share(&mut rpc, request, traceparent).await
        }));
    }
    let stopper = stopper(&agents, &plan.run_id);
    let mut streams = Vec::with_capacity(calls.len());
    let mut refused = None;
    for (call, agent) in calls.into_iter().zip(&agents) {
        let result = match call.await {
            Ok(r) => r,
            Err(e) => Err(RpcError::Protocol(format!("start task failed: {e}"))),
        };
        match result {
            Ok(stream) => streams.push(stream),
            Err(source) if refused.is_none() => {
                refused = Some(FleetError::Refused {
                    agent: agent.info.agent_id.clone(),
                    source,
                });
            }
            Err(_) => {}
        }
    }
    if let Some(e) = refused {
        stopper.stop().await;
        return Err(e);
    }
    let policy = ReattachPolicy::for_lease(plan.lease_ttl);
    Ok(follow_all(
        agents,
        streams,
        &plan.run_id,
        policy,
        Some(start_at),
    ))
}

/// Re-attaches to every share of run `run_id` from its first event (after
/// the controller that started it died, or to fetch finished results).
pub async fn attach(
    agents: Vec<ConnectedAgent>,
    run_id: &str,
    policy: ReattachPolicy,
) -> Result<Shares, FleetError> {
    let mut streams = Vec::with_capacity(agents.len());
    for agent in &agents {
        let mut rpc = agent.rpc.clone();
        let stream = client::attach(&mut rpc, run_id, 0)
            .await
            .map_err(|source| FleetError::Refused {
                agent: agent.info.agent_id.clone(),
                source,
            })?;
        streams.push(stream);
    }
    Ok(follow_all(agents, streams, run_id, policy, None))
}

/// Stops every agent's share of `run_id` with the `Stop` RPC.
fn stopper(agents: &[ConnectedAgent], run_id: &str) -> Stopper {
    let stops = agents
        .iter()
        .map(|a| {
            let (rpc, run_id) = (a.rpc.clone(), run_id.to_owned());
            let stop: StopShare = Arc::new(move || {
                let (mut rpc, run_id) = (rpc.clone(), run_id.clone());
                Box::pin(async move {
                    // An agent that is gone has nothing left to stop.
                    let _ = client::stop_share(&mut rpc, &run_id).await;
                })
            });
            stop
        })
        .collect();
    Stopper::new(stops)
}

/// Follows every share's stream on a task of its own.
fn follow_all(
    agents: Vec<ConnectedAgent>,
    streams: Vec<tonic::Streaming<quarry_proto::v1::RunEvent>>,
    run_id: &str,
    policy: ReattachPolicy,
    planned_start: Option<i64>,
) -> Shares {
    let stopper = stopper(&agents, run_id);
    let (updates_tx, updates) = mpsc::channel(1024);
    for (share, (agent, stream)) in agents.iter().zip(streams).enumerate() {
        tokio::spawn(client::follow_share(
            agent.rpc.clone(),
            stream,
            run_id.to_owned(),
            policy,
            share,
            updates_tx.clone(),
        ));
    }
    let sites = agents
        .into_iter()
        .map(|a| ShareSite {
            group: a.info.group(),
            agent_id: a.info.agent_id,
            address: a.info.address.socket,
            clock: a.info.clock,
        })
        .collect();
    Shares {
        updates,
        sites,
        stopper,
        planned_start_unix_ns: planned_start,
    }
}
