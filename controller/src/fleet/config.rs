//! Where a distributed run's agents are and how to reach them, as the
//! spec's `[agents]` section gives it (validated by the spec module): the
//! agent groups, their share of the load and overrides, and the connection
//! settings.

use std::path::PathBuf;
use std::time::Duration;

use crate::coordinator::split::ShareSlot;

/// `[agents]`: a distributed run's agent groups and how to reach them.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentsSpec {
    /// The groups, in spec order; empty when the section only holds
    /// connection settings (for `--agents`).
    pub groups: Vec<AgentGroupSpec>,
    /// File holding the bearer token the agents expect.
    pub token_file: Option<PathBuf>,
    /// CA certificate (PEM) the agents' TLS certificates chain to.
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS.
    pub client_cert: Option<PathBuf>,
    /// Client private key (PEM) for mutual TLS.
    pub client_key: Option<PathBuf>,
    /// How long an agent keeps firing without the controller.
    pub lease_ttl: Option<Duration>,
}

/// `[[agents.group]]`: agents that share one part of the load, one Region,
/// account and credential profile, and are reported as one series group.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentGroupSpec {
    /// The group's name: `SeriesKey.group` of its series.
    pub name: String,
    /// Its agents: addresses, and DNS names standing for every address they
    /// resolve to.
    pub agents: Vec<AgentSource>,
    /// Its part of the load relative to the other groups' weights.
    pub weight: f64,
    /// The AWS Region its shares fire at (target `aws`); its agents must
    /// report this Region (or none) in `Describe`.
    pub region: Option<String>,
    /// The account alias its agents must report (or none) in `Describe`.
    pub account_alias: Option<String>,
    /// The named AWS profile its agents take credentials from (their
    /// standard credential chain with this profile).
    pub credential_profile: Option<String>,
}

impl AgentGroupSpec {
    /// The share slots of this group's `agents` agents: its weight divided
    /// equally, its overrides on each.
    pub fn slots(&self, agents: usize) -> Vec<ShareSlot> {
        let each = self.weight / agents.max(1) as f64;
        (0..agents)
            .map(|_| ShareSlot {
                weight: each,
                group: self.name.clone(),
                credential_profile: self.credential_profile.clone(),
                region: self.region.clone(),
            })
            .collect()
    }
}

/// An `--agents` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentSource {
    /// One agent at `host:port`.
    Address {
        /// Host name or IP literal (IPv6 in brackets).
        host: String,
        /// Port.
        port: u16,
    },
    /// Every address `name` resolves to, each at `port`.
    Dns {
        /// The DNS name (a headless service).
        name: String,
        /// Port.
        port: u16,
    },
}

impl std::fmt::Display for AgentSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AgentSource::Address { host, port } => write!(f, "{host}:{port}"),
            AgentSource::Dns { name, port } => write!(f, "dns:{name}:{port}"),
        }
    }
}
