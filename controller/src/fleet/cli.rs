//! The command-line flags that name agents and the credentials to reach
//! them, shared by `quarry run`, `quarry sweep`, `quarry agents` and
//! `quarry results --attach`, and how they combine with the spec's
//! `[agents]` settings.

use std::path::PathBuf;
use std::time::Duration;

use super::client::{ConnectError, ConnectOptions};
use super::config::AgentsSpec;

/// The lease TTL when neither `--lease-ttl-secs` nor `agents.lease_ttl` sets one.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);

/// Where the agents are and how to reach them.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AgentFlags {
    /// Agents to run on, comma-separated: `host:port`, or `dns:name:port`
    /// for every address a DNS name resolves to (a Kubernetes headless
    /// service); each agent gets an equal share in the group its region and
    /// account alias name. It replaces the spec's `[[agents.group]]`.
    /// Without it and without groups in the spec, `quarry run` runs
    /// in-process.
    #[arg(long, value_name = "LIST")]
    pub agents: Option<String>,
    /// CA certificate (PEM) the agents' TLS certificates chain to; without
    /// it the control plane is plaintext, which agents accept only on
    /// loopback. Overrides the spec's `agents.ca`.
    #[arg(long, value_name = "PEM")]
    pub agent_ca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS (overrides `agents.client_cert`).
    #[arg(long, value_name = "PEM", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// Client private key (PEM) for mutual TLS (overrides `agents.client_key`).
    #[arg(long, value_name = "PEM", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// File holding the bearer token the agents expect (overrides
    /// `agents.token_file`).
    #[arg(long, value_name = "FILE")]
    pub agent_token_file: Option<PathBuf>,
    /// Seconds an agent keeps firing after it lost the controller; also
    /// how long a broken stream is re-attached before its agent counts as
    /// lost (plus 2 s). Default: the spec's `agents.lease_ttl`, else 10.
    #[arg(long, value_name = "SECS")]
    pub lease_ttl_secs: Option<f64>,
}

impl AgentFlags {
    /// The connection settings, credential files read.
    pub fn connect_options(&self) -> Result<ConnectOptions, ConnectError> {
        self.connect_options_with(None)
    }

    /// The connection settings: the flags' TLS material and token where
    /// given, else the spec's `[agents]` settings. The TLS material is
    /// taken whole from one side (flags if any TLS flag is given), so a
    /// flag never pairs with half of the spec's certificates.
    pub fn connect_options_with(
        &self,
        spec: Option<&AgentsSpec>,
    ) -> Result<ConnectOptions, ConnectError> {
        let flags_tls =
            self.agent_ca.is_some() || self.client_cert.is_some() || self.client_key.is_some();
        let (ca, cert, key) = match spec {
            Some(s) if !flags_tls => (
                s.ca.as_deref(),
                s.client_cert.as_deref(),
                s.client_key.as_deref(),
            ),
            _ => (
                self.agent_ca.as_deref(),
                self.client_cert.as_deref(),
                self.client_key.as_deref(),
            ),
        };
        let token = self
            .agent_token_file
            .as_deref()
            .or_else(|| spec.and_then(|s| s.token_file.as_deref()));
        ConnectOptions::from_files(ca, cert, key, token)
    }

    /// The lease TTL, clamped to 1 s .. 1 h.
    pub fn lease_ttl(&self) -> Duration {
        self.lease_ttl_with(None)
    }

    /// The lease TTL: the flag, else the spec's `agents.lease_ttl`, else
    /// [`DEFAULT_LEASE_TTL`]; clamped to 1 s .. 1 h.
    pub fn lease_ttl_with(&self, spec: Option<&AgentsSpec>) -> Duration {
        let ttl = match self.lease_ttl_secs {
            Some(secs) if secs.is_finite() => Duration::from_secs_f64(secs.clamp(1.0, 3600.0)),
            _ => spec.and_then(|s| s.lease_ttl).unwrap_or(DEFAULT_LEASE_TTL),
        };
        ttl.clamp(Duration::from_secs(1), Duration::from_secs(3600))
    }
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

    #[test]
    fn flags_override_the_spec_and_the_spec_overrides_the_defaults() {
        let none = AgentFlags::default();
        assert_eq!(none.lease_ttl(), DEFAULT_LEASE_TTL);
        assert_eq!(
            none.lease_ttl_with(Some(&spec_agents())),
            Duration::from_secs(25)
        );
        let flag = AgentFlags {
            lease_ttl_secs: Some(3.0),
            ..AgentFlags::default()
        };
        assert_eq!(
            flag.lease_ttl_with(Some(&spec_agents())),
            Duration::from_secs(3)
        );
        let huge = AgentFlags {
            lease_ttl_secs: Some(1e9),
            ..AgentFlags::default()
        };
        assert_eq!(huge.lease_ttl(), Duration::from_secs(3600));
        // The spec's files are used when no flag names one: they are read,
        // so a missing one is an error naming the spec's path.
        let err = none
            .connect_options_with(Some(&spec_agents()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("spec-ca.pem") || err.contains("spec-token"),
            "{err}"
        );
        // A TLS flag takes all TLS material from the flags; a token flag
        // replaces the spec's token.
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "s3cret\n").unwrap();
        let flags = AgentFlags {
            agent_token_file: Some(token),
            ..AgentFlags::default()
        };
        let mut spec = spec_agents();
        spec.ca = None;
        let options = flags.connect_options_with(Some(&spec)).unwrap();
        assert!(options.tls.is_none());
        assert!(format!("{:?}", options.token).contains("redacted"));
    }
}
