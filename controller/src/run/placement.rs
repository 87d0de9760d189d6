//! Where a run's shares run: in this process (a fleet of one), on agent
//! daemons named by `--agents` or the spec's `[[agents.group]]`, or — for
//! `quarry results --attach` — on agents that already ran them.

use std::time::{Duration, SystemTime};

use crate::clock::ControllerClock;
use crate::fleet::{
    AgentFlags, AgentGroupSpec, AgentsSpec, ConnectError, ConnectOptions, ConnectedAgent,
    DiscoveryError, discover_groups, find_agents,
};

/// Where the shares run.
#[derive(Debug)]
pub enum Placement {
    /// In this process: one share, the whole plan.
    Local,
    /// On agent daemons, started now at one common instant.
    Agents(AgentRun),
    /// On agent daemons that ran (or still run) them: their events are
    /// fetched from the first.
    Attach(AgentRun),
}

impl Placement {
    /// True when the shares run on agents.
    pub fn is_remote(&self) -> bool {
        !matches!(self, Placement::Local)
    }
}

/// The agents of a distributed run and how to drive them.
#[derive(Debug)]
pub struct AgentRun {
    /// The agents, described and clock-probed.
    pub agents: Vec<ConnectedAgent>,
    /// How long an agent keeps firing without the controller.
    pub lease_ttl: Duration,
    /// The controller's clock the agents were probed against.
    pub clock: ControllerClock,
}

/// The agents of a run could not be found.
#[derive(Debug, thiserror::Error)]
pub enum AgentRunError {
    /// The credential files could not be used.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The agents could not be found, reached or used.
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
}

impl AgentRunError {
    /// True when the user's input is at fault (credential files, an entry
    /// that does not parse, an agent that contradicts its spec group):
    /// nothing was run, exit 2.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            AgentRunError::Connect(_)
                | AgentRunError::Discovery(
                    DiscoveryError::Entry { .. }
                        | DiscoveryError::Empty
                        | DiscoveryError::InTwoGroups { .. }
                        | DiscoveryError::GroupMismatch(_)
                )
        )
    }
}

/// The agents a run's flags and spec name: `--agents` when given (each
/// agent an equal share in the group its `Describe` names; the spec's
/// groups, if any, are then not used, which is said on stderr), else the
/// spec's `[[agents.group]]`; `None` when neither names any. Connection
/// settings and lease TTL: flags first, then the spec's `[agents]`. `now`
/// anchors the clock probes.
pub async fn find_run_agents(
    flags: &AgentFlags,
    spec: Option<&AgentsSpec>,
    now: SystemTime,
) -> Result<Option<AgentRun>, AgentRunError> {
    let groups = spec.map_or(&[][..], |s| s.groups.as_slice());
    if flags.agents.is_none() && groups.is_empty() {
        return Ok(None);
    }
    let options = flags.connect_options_with(spec)?;
    let clock = ControllerClock::new(now);
    let agents = agents_of(flags.agents.as_deref(), groups, &options, &clock).await?;
    Ok(Some(AgentRun {
        agents,
        lease_ttl: flags.lease_ttl_with(spec),
        clock,
    }))
}

/// The agents of `list` (`--agents`), else of the spec's `groups`.
async fn agents_of(
    list: Option<&str>,
    groups: &[AgentGroupSpec],
    options: &ConnectOptions,
    clock: &ControllerClock,
) -> Result<Vec<ConnectedAgent>, DiscoveryError> {
    match list {
        Some(list) => {
            if !groups.is_empty() {
                eprintln!(
                    "quarry: --agents replaces the spec's {} [[agents.group]] entries; each agent gets an equal share",
                    groups.len()
                );
            }
            find_agents(list, options, clock).await
        }
        None => discover_groups(groups, options, clock).await,
    }
}

/// A run's placement: on the agents its flags and spec name, else here.
pub async fn placement(
    flags: &AgentFlags,
    spec: Option<&AgentsSpec>,
    now: SystemTime,
) -> Result<Placement, AgentRunError> {
    Ok(match find_run_agents(flags, spec, now).await? {
        Some(agents) => Placement::Agents(agents),
        None => Placement::Local,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_agents() -> AgentsSpec {
        AgentsSpec {
            groups: Vec::new(),
            token_file: Some("spec-token".into()),
            ca: Some("spec-ca.pem".into()),
            client_cert: None,
            client_key: None,
            lease_ttl: Some(Duration::from_secs(25)),
        }
    }

    #[tokio::test]
    async fn without_agents_anywhere_the_run_is_in_process() {
        #[allow(clippy::disallowed_methods)] // a clock anchor, unused here
        let now = SystemTime::now();
        let local = |p: Placement| matches!(p, Placement::Local);
        let run = placement(&AgentFlags::default(), Some(&spec_agents()), now)
            .await
            .unwrap();
        assert!(local(run));
        let run = placement(&AgentFlags::default(), None, now).await.unwrap();
        assert!(local(run));
    }
}
