//! Distributed runs: the controller side of a run spread over
//! `quarry-agent` daemons. Agents are found and described ([`discovery`]),
//! their clocks probed ([`clock`]), the plan split into one share per agent
//! (`quarry_engine::share_specs`), every share started at one common instant
//! translated into each agent's clock, each share's event stream followed
//! across broken connections ([`client`]), and the interval deltas merged
//! exactly into one stream of [`IntervalSnapshot`]s ([`merge`]) — the same
//! stream an in-process run produces, so the live view, the results
//! directory and the report consume both alike.
//!
//! An agent that is lost mid-run leaves its share partial at its last
//! interval; the others run to their end, and [`FleetOutcome::degraded`]
//! says so.

pub mod cli;
pub mod client;
pub mod clock;
pub mod discovery;
pub mod groups;
pub mod merge;
pub mod split;

use std::collections::BTreeMap;
use std::time::Duration;

use crate::fleet::split::{ShareSlot, SplitError, share_specs};
use quarry_engine::ShareFinished;
use quarry_engine::{IntervalSnapshot, RunPlan, SHARE_SCHEMA_VERSION};
use quarry_proto::v1::RunRequest;
use tokio::sync::{mpsc, oneshot};

pub use cli::{
    AgentFlags, AgentRunError, FLEET_FILE, agent_run, annotate, append_fleet_lines, run_end,
    write_fleet_file,
};
pub use client::{
    AgentRpc, BearerToken, ConnectError, ConnectOptions, ReattachPolicy, RpcError, ShareEnd,
    ShareUpdate, TlsSettings,
};
pub use clock::{ClockEstimate, ControllerClock, StartSkew};
pub use discovery::{
    AgentAddress, AgentInfo, AgentSource, AgentStatus, ConnectedAgent, DiscoveryError,
    agents_table, discover, discover_groups, parse_agent, parse_agents, probe_all, resolve,
};
pub use groups::{add_group_totals, group_records, partial_shares};
pub use merge::{IntervalMerge, MergeError};

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
    /// The merge task ended without an outcome (it panicked).
    #[error("the merge of the agents' streams ended without an outcome")]
    NoOutcome,
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
    /// Tracing: each share's trace context and sampling, and where the
    /// shares' starts, span batches and ends are reported. `None`: untraced.
    pub trace: Option<FleetTrace>,
}

/// A traced distributed run's per-share context.
#[derive(Debug, Clone)]
pub struct FleetTrace {
    /// Share `k`'s context (its share span), sent as `traceparent`.
    pub contexts: Vec<quarry_engine::trace::TraceContext>,
    /// Every share's sampling.
    pub sampling: quarry_engine::trace::TraceSampling,
    /// Receives what the trace is built from.
    pub signals: mpsc::UnboundedSender<ShareSignal>,
}

/// What a share did that the run's trace records.
#[derive(Debug)]
pub enum ShareSignal {
    /// Share `share` started firing at `agent_unix_ns` (its agent's clock).
    Started {
        /// The share.
        share: usize,
        /// Unix ns, agent clock.
        agent_unix_ns: i64,
    },
    /// A batch of share `share`'s request spans.
    Spans {
        /// The share.
        share: usize,
        /// OTLP `ResourceSpans` bytes.
        otlp_resource_spans: Vec<u8>,
        /// Spans the agent dropped.
        dropped: u64,
    },
    /// Share `share` ended: at `agent_unix_ns` when its agent said so
    /// (`None`: lost), partial or lost for `problem`.
    Ended {
        /// The share.
        share: usize,
        /// Unix ns, agent clock, when it finished.
        agent_unix_ns: Option<i64>,
        /// Why it is partial or lost.
        problem: Option<String>,
    },
}

/// How one share ended.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ShareOutcome {
    /// The agent that ran it.
    pub agent_id: String,
    /// Where it was reached.
    pub address: String,
    /// The group its series report under.
    pub group: String,
    /// When it started firing, Unix ns on the controller's clock.
    pub started_at_unix_ns: Option<i64>,
    /// Intervals delivered.
    pub intervals: u64,
    /// Requests sent, as the agent reported at the end; `None` when lost.
    pub requests_sent: Option<u64>,
    /// The share holds less than its plan: the agent stopped early, or was
    /// lost (then its data ends at its last interval).
    pub partial: bool,
    /// Why it ended ("completed", the agent's reason, or why it was lost).
    pub reason: String,
    /// The agent was lost (unreachable, or its stream broke the protocol).
    pub lost: bool,
    /// Stream re-attaches made.
    pub reattaches: u32,
    /// Resent events dropped.
    pub duplicates: u64,
    /// The agent's final counters equal the sum of its intervals' (`None`
    /// when it never sent them).
    pub totals_match: Option<bool>,
}

/// How the whole distributed run ended.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FleetOutcome {
    /// The common start, Unix ns on the controller's clock (for a
    /// re-attached run, the earliest actual start).
    pub planned_start_unix_ns: i64,
    /// How far apart the agents actually started.
    pub start_skew: Option<StartSkew>,
    /// One entry per share, in share order.
    pub shares: Vec<ShareOutcome>,
    /// Problems merging (an agent's intervals out of order).
    pub merge_errors: Vec<String>,
}

impl FleetOutcome {
    /// Some share is partial or lost, or the merge saw a broken stream.
    pub fn degraded(&self) -> bool {
        self.shares.iter().any(|s| s.partial || s.lost) || !self.merge_errors.is_empty()
    }

    /// Requests sent over all shares; `None` when a share's count is
    /// unknown.
    pub fn requests_sent(&self) -> Option<u64> {
        self.shares.iter().map(|s| s.requests_sent).sum()
    }

    /// Lines for the report and stderr: skew, and each partial share.
    pub fn summary_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if let Some(skew) = &self.start_skew {
            lines.push(format!(
                "{} agents; start skew {:.3} ms (± {:.3} ms)",
                self.shares.len(),
                skew.skew_ns as f64 / 1e6,
                skew.uncertainty_ns as f64 / 1e6
            ));
        }
        for s in &self.shares {
            if s.partial || s.lost {
                lines.push(format!(
                    "PARTIAL share: agent {} ({}, group {}): {} intervals, {}",
                    s.agent_id, s.address, s.group, s.intervals, s.reason
                ));
            }
        }
        lines.extend(self.merge_errors.iter().cloned());
        lines
    }
}

/// A distributed run in progress.
#[derive(Debug)]
pub struct FleetRun {
    /// Merged snapshots, in interval order; closed when every share ended.
    pub snapshots: mpsc::Receiver<IntervalSnapshot>,
    /// The outcome, once every share ended.
    pub outcome: oneshot::Receiver<FleetOutcome>,
    /// Stops every share early.
    pub stopper: FleetStopper,
}

/// Stops every share of a run.
#[derive(Debug, Clone)]
pub struct FleetStopper {
    run_id: String,
    agents: Vec<AgentRpc>,
}

impl FleetStopper {
    /// Asks every agent to stop its share; each stream then ends with its
    /// final results. Agents that cannot be reached are skipped.
    pub async fn stop(&self) {
        let calls = self.agents.iter().cloned().map(|mut rpc| {
            let run_id = self.run_id.clone();
            tokio::spawn(async move { client::stop_share(&mut rpc, &run_id).await })
        });
        for call in calls.collect::<Vec<_>>() {
            // An agent that is gone has nothing left to stop.
            let _ = call.await;
        }
    }
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
/// and merges their streams. If any agent refuses its share, the ones
/// already started are stopped and the run does not start.
pub async fn start(
    agents: Vec<ConnectedAgent>,
    plan: &FleetPlan,
    clock: ControllerClock,
) -> Result<FleetRun, FleetError> {
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
        let spec = &spec;
        let share_json = serde_json::to_vec(spec).map_err(|e| FleetError::Encode {
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
    let stopper = FleetStopper {
        run_id: plan.run_id.clone(),
        agents: agents.iter().map(|a| a.rpc.clone()).collect(),
    };
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
        plan.trace.as_ref().map(|t| t.signals.clone()),
    ))
}

/// Re-attaches to every share of run `run_id` from its first event (after
/// the controller that started it died, or to fetch finished results) and
/// merges them as a live run would.
pub async fn attach(
    agents: Vec<ConnectedAgent>,
    run_id: &str,
    policy: ReattachPolicy,
) -> Result<FleetRun, FleetError> {
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
    Ok(follow_all(agents, streams, run_id, policy, None, None))
}

/// Follows every share's stream and merges them.
fn follow_all(
    agents: Vec<ConnectedAgent>,
    streams: Vec<tonic::Streaming<quarry_proto::v1::RunEvent>>,
    run_id: &str,
    policy: ReattachPolicy,
    planned_start: Option<i64>,
    signals: Option<mpsc::UnboundedSender<ShareSignal>>,
) -> FleetRun {
    let stopper = FleetStopper {
        run_id: run_id.to_owned(),
        agents: agents.iter().map(|a| a.rpc.clone()).collect(),
    };
    let (updates_tx, updates_rx) = mpsc::channel(1024);
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
    drop(updates_tx);
    let (snapshots_tx, snapshots) = mpsc::channel(256);
    let (outcome_tx, outcome) = oneshot::channel();
    let infos: Vec<AgentInfo> = agents.into_iter().map(|a| a.info).collect();
    tokio::spawn(async move {
        let result = coordinate(infos, planned_start, updates_rx, snapshots_tx, signals).await;
        // The caller may have given up waiting; nothing to tell it then.
        let _ = outcome_tx.send(result);
    });
    FleetRun {
        snapshots,
        outcome,
        stopper,
    }
}

/// Merges the shares' updates into one snapshot stream until every share
/// ended, and tallies how each ended.
async fn coordinate(
    agents: Vec<AgentInfo>,
    planned_start: Option<i64>,
    mut updates: mpsc::Receiver<(usize, ShareUpdate)>,
    snapshots: mpsc::Sender<IntervalSnapshot>,
    signals: Option<mpsc::UnboundedSender<ShareSignal>>,
) -> FleetOutcome {
    // The trace is a bystander: a receiver that is gone changes nothing.
    let signal = |s: ShareSignal| {
        if let Some(tx) = &signals {
            let _ = tx.send(s);
        }
    };
    let mut merge = IntervalMerge::new(agents.len());
    let mut starts: Vec<Option<i64>> = vec![None; agents.len()];
    let mut ends: Vec<Option<ShareEnd>> = vec![None; agents.len()];
    let mut merge_errors = Vec::new();
    while let Some((share, update)) = updates.recv().await {
        let ready = match update {
            ShareUpdate::Started { agent_unix_ns } => {
                starts[share] = Some(agent_unix_ns);
                signal(ShareSignal::Started {
                    share,
                    agent_unix_ns,
                });
                Vec::new()
            }
            ShareUpdate::Spans {
                otlp_resource_spans,
                dropped_spans,
            } => {
                signal(ShareSignal::Spans {
                    share,
                    otlp_resource_spans,
                    dropped: dropped_spans,
                });
                Vec::new()
            }
            ShareUpdate::Interval(snapshot) => match merge.push(share, snapshot) {
                Ok(ready) => ready,
                Err(e) => {
                    merge_errors.push(e.to_string());
                    Vec::new()
                }
            },
            ShareUpdate::Reattached { .. } => Vec::new(),
            ShareUpdate::Ended(end) => {
                let problem = match (&end.finished, &end.lost) {
                    (Some(f), _) if f.partial => Some(format!("partial: {}", f.reason)),
                    (Some(_), _) => None,
                    (None, Some(lost)) => Some(format!("lost: {lost}")),
                    (None, None) => Some("the stream ended without a result".to_owned()),
                };
                signal(ShareSignal::Ended {
                    share,
                    agent_unix_ns: end.finished.as_ref().map(|f| f.finished_at_unix_ns),
                    problem,
                });
                ends[share] = Some(end);
                merge.end_share(share)
            }
        };
        for snapshot in ready {
            // A consumer that stopped listening (aborted run) still gets
            // the outcome; the snapshots are dropped.
            let _ = snapshots.send(snapshot).await;
        }
    }
    for snapshot in merge.drain() {
        let _ = snapshots.send(snapshot).await;
    }
    let clocks: Vec<(i64, ClockEstimate)> = starts
        .iter()
        .zip(&agents)
        .filter_map(|(s, a)| s.map(|s| (s, a.clock)))
        .collect();
    let shares = agents
        .iter()
        .enumerate()
        .map(|(i, info)| {
            share_outcome(
                info,
                starts[i],
                ends[i].take(),
                merge.share_counters(i),
                merge.share_last_index(i),
            )
        })
        .collect();
    let first_start = clocks.iter().map(|(s, c)| c.to_controller(*s)).min();
    let planned = planned_start.or(first_start).unwrap_or(0);
    FleetOutcome {
        planned_start_unix_ns: planned,
        start_skew: clock::start_skew(planned, &clocks),
        shares,
        merge_errors,
    }
}

fn share_outcome(
    info: &AgentInfo,
    started: Option<i64>,
    end: Option<ShareEnd>,
    counters: Option<&merge::ShareCounters>,
    last_index: Option<u64>,
) -> ShareOutcome {
    let intervals = last_index.map_or(0, |i| i + 1);
    let mut outcome = ShareOutcome {
        agent_id: info.agent_id.clone(),
        address: info.address.socket.clone(),
        group: info.group(),
        started_at_unix_ns: started.map(|s| info.clock.to_controller(s)),
        intervals,
        requests_sent: None,
        partial: true,
        reason: "the stream ended without a result".to_owned(),
        lost: true,
        reattaches: 0,
        duplicates: 0,
        totals_match: None,
    };
    let Some(end) = end else {
        return outcome;
    };
    outcome.reattaches = end.reattaches;
    outcome.duplicates = end.duplicates;
    match (end.finished, end.lost) {
        (
            Some(ShareFinished {
                series,
                partial,
                reason,
                requests_sent,
                ..
            }),
            _,
        ) => {
            outcome.lost = false;
            outcome.partial = partial;
            outcome.reason = reason;
            outcome.requests_sent = Some(requests_sent);
            outcome.totals_match = counters.map(|c| {
                let nonzero = |m: &merge::ShareCounters| -> merge::ShareCounters {
                    m.iter()
                        .map(|(k, v)| {
                            (
                                k.clone(),
                                v.iter()
                                    .filter(|(_, n)| **n > 0)
                                    .map(|(a, b)| (*a, *b))
                                    .collect(),
                            )
                        })
                        .filter(|(_, v): &(_, BTreeMap<_, _>)| !v.is_empty())
                        .collect()
                };
                nonzero(c) == nonzero(&merge::counters_of(&series))
            });
        }
        (None, Some(lost)) => {
            outcome.reason = format!("agent lost after interval {intervals}: {lost}");
        }
        (None, None) => {}
    }
    outcome
}
