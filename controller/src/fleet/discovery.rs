//! Finding agents: `--agents host:port,...` entries, each either one agent
//! or (`dns:name:port`) every address a DNS name resolves to — a Kubernetes
//! headless service — then connecting, describing and clock-probing each.
//!
//! The same agent reached twice (a name resolving to its IPv4 and IPv6
//! address, or listed twice) is used once: agents are told apart by the
//! `agent_id` they report.

use std::collections::BTreeSet;

use crate::coordinator::split::ShareSlot;
use quarry_proto::v1::DescribeRequest;

use super::client::sync_clock;
use super::client::{AgentRpc, ConnectError, ConnectOptions, RpcError};
use super::config::AgentSource;
use crate::clock::{ClockEstimate, ControllerClock};

/// Clock probes per agent; the min-RTT one is kept.
pub const CLOCK_PROBES: usize = 8;

/// Agents could not be found or reached.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// An `--agents` entry is not `host:port` or `dns:name:port`.
    #[error("--agents entry {entry:?}: {reason}")]
    Entry {
        /// The entry.
        entry: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// No entry at all.
    #[error("--agents is empty")]
    Empty,
    /// A name did not resolve.
    #[error("agent {name}: cannot resolve: {source}")]
    Resolve {
        /// The name.
        name: String,
        /// Why.
        source: std::io::Error,
    },
    /// A DNS name resolved to no address.
    #[error("agent {0}: resolves to no address")]
    NoAddress(String),
    /// An agent could not be connected to.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// An agent refused a call or answered out of protocol.
    #[error("agent {address}: {source}")]
    Rpc {
        /// The agent's address.
        address: String,
        /// What failed.
        source: RpcError,
    },
    /// An agent speaks another protocol major version.
    #[error("agent {address}: {source}")]
    Version {
        /// The agent's address.
        address: String,
        /// The mismatch.
        source: quarry_proto::VersionMismatch,
    },
    /// One agent was reached through two groups' entries.
    #[error(
        "agent {agent} ({address}) is in agent groups {first:?} and {second:?}: an agent runs one share at a time; list it in one group"
    )]
    InTwoGroups {
        /// The agent's id.
        agent: String,
        /// Where it was reached the second time.
        address: String,
        /// The group it was found in first.
        first: String,
        /// The other group.
        second: String,
    },
    /// An agent's `Describe` contradicts its group in the spec.
    #[error(transparent)]
    GroupMismatch(Box<GroupMismatch>),
}

/// An agent whose `Describe` contradicts its group in the spec.
#[derive(Debug, thiserror::Error)]
#[error(
    "agent {agent} ({address}) in group {group:?} reports {field} {reported:?}, but the spec's group says {wanted:?}; fix agents.group's {field} or the agent's --{flag}"
)]
pub struct GroupMismatch {
    /// The group.
    pub group: String,
    /// The agent's id.
    pub agent: String,
    /// Its address.
    pub address: String,
    /// `region` or `account_alias`.
    pub field: &'static str,
    /// The agent's flag that sets it (`region`, `account-alias`).
    pub flag: &'static str,
    /// What the spec's group says.
    pub wanted: String,
    /// What the agent reports.
    pub reported: String,
}

/// Parses `--agents`: comma-separated `host:port` or `dns:name:port`.
pub fn parse_agents(list: &str) -> Result<Vec<AgentSource>, DiscoveryError> {
    let out = list
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(parse_agent)
        .collect::<Result<Vec<_>, _>>()?;
    if out.is_empty() {
        return Err(DiscoveryError::Empty);
    }
    Ok(out)
}

/// Parses one agent entry: `host:port` (one agent; IPv6 in brackets) or
/// `dns:name:port` (every address the name resolves to).
pub fn parse_agent(entry: &str) -> Result<AgentSource, DiscoveryError> {
    let entry = entry.trim();
    let (dns, rest) = match entry.strip_prefix("dns:") {
        Some(rest) => (true, rest),
        None => (false, entry),
    };
    let bad = |reason| DiscoveryError::Entry {
        entry: entry.to_owned(),
        reason,
    };
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| bad("expected host:port or dns:name:port"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| bad("the port is not a number 1-65535"))?;
    if port == 0 {
        return Err(bad("the port is not a number 1-65535"));
    }
    if host.is_empty() {
        return Err(bad("the host is empty"));
    }
    if host.contains(char::is_whitespace) || host.contains(',') {
        return Err(bad("the host contains a space or a comma"));
    }
    let host = host.to_owned();
    Ok(if dns {
        AgentSource::Dns { name: host, port }
    } else {
        AgentSource::Address { host, port }
    })
}

/// One agent to dial: the socket address and the name its TLS certificate
/// must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentAddress {
    /// `host:port` or `ip:port` to connect to.
    pub socket: String,
    /// The host name for TLS verification.
    pub tls_name: String,
}

/// Resolves the sources into addresses to dial: an `Address` as given (it
/// is one agent, whatever it resolves to), a `Dns` name into all of its
/// addresses.
pub async fn resolve(sources: &[AgentSource]) -> Result<Vec<AgentAddress>, DiscoveryError> {
    let mut out = Vec::new();
    for source in sources {
        match source {
            AgentSource::Address { host, port } => out.push(AgentAddress {
                socket: format!("{host}:{port}"),
                tls_name: host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned(),
            }),
            AgentSource::Dns { name, port } => {
                let addrs: BTreeSet<std::net::SocketAddr> =
                    tokio::net::lookup_host((name.as_str(), *port))
                        .await
                        .map_err(|source| DiscoveryError::Resolve {
                            name: name.clone(),
                            source,
                        })?
                        .collect();
                if addrs.is_empty() {
                    return Err(DiscoveryError::NoAddress(name.clone()));
                }
                out.extend(addrs.into_iter().map(|a| AgentAddress {
                    socket: a.to_string(),
                    tls_name: name.clone(),
                }));
            }
        }
    }
    Ok(out)
}

/// What an agent said about itself, and its clock.
#[derive(Debug, Clone)]
pub struct AgentInfo {
    /// Where it was reached.
    pub address: AgentAddress,
    /// Its id (unique per agent).
    pub agent_id: String,
    /// Its build's version.
    pub agent_version: String,
    /// Its protocol version.
    pub protocol_version: String,
    /// The AWS Region it is deployed in.
    pub region: String,
    /// The AWS account alias its credentials belong to.
    pub account_alias: String,
    /// CPU cores.
    pub cores: u32,
    /// Its guard rails' concurrency cap (0: none reported).
    pub max_concurrency: u32,
    /// Its guard rails' rate cap per second (0: none reported).
    pub max_rate_per_second: f64,
    /// Its clock against the controller's.
    pub clock: ClockEstimate,
    /// The share it runs: its group, weight and the group's overrides. From
    /// `--agents`: weight 1 in the group its `Describe` names
    /// ([`AgentInfo::described_group`]); from the spec: its group's.
    pub slot: Box<ShareSlot>,
}

impl AgentInfo {
    /// The agent group its share reports under ([`AgentInfo::slot`]).
    pub fn group(&self) -> String {
        self.slot.group.clone()
    }

    /// The group an agent found through `--agents` reports under:
    /// `alias@region`, the one of them that is set, or `default` (the
    /// in-process run's group).
    pub fn described_group(&self) -> String {
        match (self.account_alias.is_empty(), self.region.is_empty()) {
            (true, true) => "default".to_owned(),
            (false, true) => self.account_alias.clone(),
            (true, false) => self.region.clone(),
            (false, false) => format!("{}@{}", self.account_alias, self.region),
        }
    }
}

/// A reachable, described agent with its connection.
#[derive(Debug, Clone)]
pub struct ConnectedAgent {
    /// What it said about itself.
    pub info: AgentInfo,
    /// The client (cheap to clone: the channel is shared).
    pub rpc: AgentRpc,
}

/// Connects to, describes and clock-probes every address, dropping repeats
/// of an agent id. Fails on the first agent that cannot be used.
pub async fn discover(
    addresses: &[AgentAddress],
    options: &ConnectOptions,
    clock: &ControllerClock,
) -> Result<Vec<ConnectedAgent>, DiscoveryError> {
    let mut agents: Vec<ConnectedAgent> = Vec::with_capacity(addresses.len());
    for agent in probe_all(addresses, options, clock).await {
        let agent = agent?;
        if !agents
            .iter()
            .any(|a| a.info.agent_id == agent.info.agent_id)
        {
            agents.push(agent);
        }
    }
    Ok(agents)
}

/// Connects to, describes and clock-probes every address at once; one
/// result per address, in order (for `quarry agents`, which lists the
/// unreachable ones too).
pub async fn probe_all(
    addresses: &[AgentAddress],
    options: &ConnectOptions,
    clock: &ControllerClock,
) -> Vec<Result<ConnectedAgent, DiscoveryError>> {
    let tasks: Vec<_> = addresses
        .iter()
        .map(|address| {
            let (address, options, clock) = (address.clone(), options.clone(), *clock);
            tokio::spawn(async move { describe(address, &options, &clock).await })
        })
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for (task, address) in tasks.into_iter().zip(addresses) {
        out.push(match task.await {
            Ok(result) => result,
            Err(e) => Err(DiscoveryError::Rpc {
                address: address.socket.clone(),
                source: RpcError::Protocol(format!("discovery task failed: {e}")),
            }),
        });
    }
    out
}

async fn describe(
    address: AgentAddress,
    options: &ConnectOptions,
    clock: &ControllerClock,
) -> Result<ConnectedAgent, DiscoveryError> {
    let mut rpc = options.connect(&address.socket, &address.tls_name).await?;
    let rpc_error = |source| DiscoveryError::Rpc {
        address: address.socket.clone(),
        source,
    };
    let d = rpc
        .describe(DescribeRequest {})
        .await
        .map_err(|s| rpc_error(RpcError::status("Describe", s)))?
        .into_inner();
    quarry_proto::check_compatible(&d.protocol_version).map_err(|source| {
        DiscoveryError::Version {
            address: address.socket.clone(),
            source,
        }
    })?;
    let estimate = sync_clock(&mut rpc, clock, CLOCK_PROBES)
        .await
        .map_err(rpc_error)?;
    let rails = d.guard_rails.unwrap_or_default();
    let agent_id = if d.agent_id.is_empty() {
        address.socket.clone()
    } else {
        d.agent_id
    };
    let mut info = AgentInfo {
        address,
        agent_id,
        agent_version: d.agent_version,
        protocol_version: d.protocol_version,
        region: d.region,
        account_alias: d.account_alias,
        cores: d.cores,
        max_concurrency: rails.max_concurrency,
        max_rate_per_second: rails.max_rate_per_second,
        clock: estimate,
        slot: Box::new(ShareSlot::new(1.0, String::new())),
    };
    info.slot.group = info.described_group();
    Ok(ConnectedAgent { info, rpc })
}

/// The agents of the spec's groups: every entry resolved, connected,
/// described and clock-probed at once. An agent reached twice within a
/// group is used once; one in two groups, or one whose `Describe` names
/// another Region or account alias than its group, is an error. Each agent
/// gets its group's slot: the group's weight divided equally among the
/// agents found, and its Region and credential profile. Agents come in
/// group order.
pub async fn discover_groups(
    groups: &[super::config::AgentGroupSpec],
    options: &ConnectOptions,
    clock: &ControllerClock,
) -> Result<Vec<ConnectedAgent>, DiscoveryError> {
    let mut addresses = Vec::new();
    let mut owner = Vec::new();
    for (g, group) in groups.iter().enumerate() {
        let resolved = resolve(&group.agents).await?;
        owner.extend(std::iter::repeat_n(g, resolved.len()));
        addresses.extend(resolved);
    }
    let probed = probe_all(&addresses, options, clock).await;
    let mut members: Vec<Vec<ConnectedAgent>> = vec![Vec::new(); groups.len()];
    let mut seen: Vec<(String, usize)> = Vec::new();
    for (agent, g) in probed.into_iter().zip(owner) {
        let agent = agent?;
        let group = &groups[g];
        if let Some((_, first)) = seen.iter().find(|(id, _)| *id == agent.info.agent_id) {
            if *first == g {
                continue;
            }
            return Err(DiscoveryError::InTwoGroups {
                agent: agent.info.agent_id.clone(),
                address: agent.info.address.socket.clone(),
                first: groups[*first].name.clone(),
                second: group.name.clone(),
            });
        }
        check_described(group, &agent.info)?;
        seen.push((agent.info.agent_id.clone(), g));
        members[g].push(agent);
    }
    let mut out = Vec::with_capacity(seen.len());
    for (group, agents) in groups.iter().zip(members) {
        let slots = group.slots(agents.len());
        for (mut agent, slot) in agents.into_iter().zip(slots) {
            agent.info.slot = Box::new(slot);
            out.push(agent);
        }
    }
    Ok(out)
}

/// An agent must not contradict its group: a Region or account alias it
/// reports must be the group's (an agent that reports none is accepted).
fn check_described(
    group: &super::config::AgentGroupSpec,
    info: &AgentInfo,
) -> Result<(), DiscoveryError> {
    let checks = [
        ("region", "region", &group.region, &info.region),
        (
            "account_alias",
            "account-alias",
            &group.account_alias,
            &info.account_alias,
        ),
    ];
    for (field, flag, wanted, reported) in checks {
        if let Some(wanted) = wanted
            && !reported.is_empty()
            && reported != wanted
        {
            return Err(DiscoveryError::GroupMismatch(Box::new(GroupMismatch {
                group: group.name.clone(),
                agent: info.agent_id.clone(),
                address: info.address.socket.clone(),
                field,
                flag,
                wanted: wanted.clone(),
                reported: reported.clone(),
            })));
        }
    }
    Ok(())
}

/// One line of `quarry agents`: an agent that answered, or one that did
/// not and why.
#[derive(Debug, Clone)]
pub enum AgentStatus {
    /// Described and clock-probed.
    Up(AgentInfo),
    /// Unreachable or refused.
    Down {
        /// Where it was dialled.
        address: AgentAddress,
        /// Why it is unusable.
        error: String,
    },
}

/// The `quarry agents` table: one line per agent.
pub fn agents_table(agents: &[AgentStatus]) -> String {
    let row = |cols: [&str; 9]| {
        format!(
            "{:<22} {:<16} {:<8} {:<12} {:<12} {:>5} {:>22} {:>10}  {}\n",
            cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], cols[6], cols[7], cols[8]
        )
    };
    let mut out = row([
        "ADDRESS",
        "AGENT",
        "VERSION",
        "REGION",
        "ACCOUNT",
        "CORES",
        "CLOCK OFFSET",
        "RTT",
        "HEALTH",
    ]);
    let dash = |s: &str| {
        if s.is_empty() {
            "-".to_owned()
        } else {
            s.to_owned()
        }
    };
    for agent in agents {
        match agent {
            AgentStatus::Up(a) => {
                let offset = format!(
                    "{:+.3} ms ± {:.3}",
                    a.clock.offset_ns as f64 / 1e6,
                    a.clock.uncertainty_ns as f64 / 1e6
                );
                let rtt = format!("{:.3} ms", a.clock.rtt_ns as f64 / 1e6);
                let cores = a.cores.to_string();
                out.push_str(&row([
                    &a.address.socket,
                    &a.agent_id,
                    &a.agent_version,
                    &dash(&a.region),
                    &dash(&a.account_alias),
                    &cores,
                    &offset,
                    &rtt,
                    "ok",
                ]));
            }
            AgentStatus::Down { address, error } => {
                let health = format!("DOWN: {error}");
                out.push_str(&row([
                    &address.socket,
                    "-",
                    "-",
                    "-",
                    "-",
                    "-",
                    "-",
                    "-",
                    &health,
                ]));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses_and_dns_names() {
        let got = parse_agents("10.0.0.1:7070, dns:agents.quarry.svc:7070,[::1]:9").unwrap();
        assert_eq!(
            got,
            vec![
                AgentSource::Address {
                    host: "10.0.0.1".into(),
                    port: 7070
                },
                AgentSource::Dns {
                    name: "agents.quarry.svc".into(),
                    port: 7070
                },
                AgentSource::Address {
                    host: "[::1]".into(),
                    port: 9
                },
            ]
        );
    }

    #[test]
    fn bad_entries_are_named() {
        for (list, reason) in [
            ("host", "expected host:port"),
            ("host:x", "port"),
            ("host:0", "port"),
            (":80", "host is empty"),
        ] {
            let err = parse_agents(list).unwrap_err().to_string();
            assert!(err.contains(list) && err.contains(reason), "{err}");
        }
        assert!(matches!(parse_agents(" , "), Err(DiscoveryError::Empty)));
    }

    #[tokio::test]
    async fn an_address_is_one_agent_a_dns_name_is_all_of_its_addresses() {
        let listed = resolve(&[AgentSource::Address {
            host: "localhost".into(),
            port: 7070,
        }])
        .await
        .unwrap();
        assert_eq!(
            listed,
            vec![AgentAddress {
                socket: "localhost:7070".into(),
                tls_name: "localhost".into()
            }]
        );
        let expanded = resolve(&[AgentSource::Dns {
            name: "127.0.0.1".into(),
            port: 7070,
        }])
        .await
        .unwrap();
        assert_eq!(expanded[0].socket, "127.0.0.1:7070");
        assert_eq!(expanded[0].tls_name, "127.0.0.1");
    }

    fn info(region: &str, alias: &str) -> AgentInfo {
        AgentInfo {
            address: AgentAddress {
                socket: "10.0.0.1:7400".into(),
                tls_name: "10.0.0.1".into(),
            },
            agent_id: "a".into(),
            agent_version: "0.1.0".into(),
            protocol_version: "1.0".into(),
            region: region.into(),
            account_alias: alias.into(),
            cores: 2,
            max_concurrency: 0,
            max_rate_per_second: 0.0,
            clock: ClockEstimate {
                offset_ns: 0,
                uncertainty_ns: 0,
                rtt_ns: 0,
                probes: 1,
            },
            slot: Box::new(ShareSlot::new(1.0, "default")),
        }
    }

    #[test]
    fn an_agent_must_not_contradict_its_group() {
        let group = crate::fleet::config::AgentGroupSpec {
            name: "prod-eu".into(),
            agents: vec![],
            weight: 1.0,
            region: Some("eu-west-1".into()),
            account_alias: Some("prod".into()),
            credential_profile: None,
        };
        check_described(&group, &info("eu-west-1", "prod")).unwrap();
        // An agent that reports nothing cannot contradict.
        check_described(&group, &info("", "")).unwrap();
        let err = check_described(&group, &info("us-east-1", "prod")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "agent a (10.0.0.1:7400) in group \"prod-eu\" reports region \"us-east-1\", but the spec's group says \"eu-west-1\"; fix agents.group's region or the agent's --region"
        );
        let err = check_described(&group, &info("eu-west-1", "dev")).unwrap_err();
        assert!(err.to_string().contains("--account-alias"), "{err}");
        // A group that says nothing accepts any agent.
        let open = crate::fleet::config::AgentGroupSpec {
            region: None,
            account_alias: None,
            ..group
        };
        check_described(&open, &info("us-east-1", "dev")).unwrap();
    }

    #[test]
    fn groups_come_from_region_and_alias() {
        let mut info = AgentInfo {
            address: AgentAddress {
                socket: "a:1".into(),
                tls_name: "a".into(),
            },
            agent_id: "a".into(),
            agent_version: "0.1.0".into(),
            protocol_version: "1.0".into(),
            region: String::new(),
            account_alias: String::new(),
            cores: 2,
            max_concurrency: 0,
            max_rate_per_second: 0.0,
            clock: ClockEstimate {
                offset_ns: -1_500_000,
                uncertainty_ns: 120_000,
                rtt_ns: 240_000,
                probes: 8,
            },
            slot: Box::new(ShareSlot::new(1.0, "g")),
        };
        assert_eq!(info.described_group(), "default");
        assert_eq!(info.group(), "g");
        info.region = "eu-west-1".into();
        assert_eq!(info.described_group(), "eu-west-1");
        info.account_alias = "prod".into();
        assert_eq!(info.described_group(), "prod@eu-west-1");
        let down = AgentStatus::Down {
            address: info.address.clone(),
            error: "connection refused".into(),
        };
        let table = agents_table(&[AgentStatus::Up(info), down]);
        assert!(table.contains("DOWN: connection refused"), "{table}");
        assert!(table.contains("-1.500 ms ± 0.120"), "{table}");
        assert!(table.contains("0.240 ms"), "{table}");
    }
}
