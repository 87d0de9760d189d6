//! Where a share sends its requests and how it signs them: the endpoint of
//! the plan's target and the signer, with AWS credentials resolved before
//! anything fires.
//!
//! Against AWS, a Bedrock API key in `AWS_BEARER_TOKEN_BEDROCK` wins over
//! SigV4, as the AWS SDKs do (PROTOCOL.md §1.5): requests then carry
//! `Authorization: Bearer <key>` and no credential chain is consulted. The
//! key is never printed; [`AuthMethod`] says which auth is in use.

use std::fmt;

use quarry_bedrock::auth::{ApiKey, Credentials, EXAMPLE_ACCESS_KEY_ID, EXAMPLE_SECRET_ACCESS_KEY};
use quarry_bedrock::{Endpoint, EndpointError};

use crate::exec::{CredentialCache, CredentialSource, ExecutorError, SignerSource};
use crate::plan::Target;
use crate::trace::ServerAddress;

/// The region requests to the simulator are signed for (it accepts any).
pub const SIM_REGION: &str = "us-east-1";

/// Why a share could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ShareError {
    /// The target's endpoint is not usable.
    #[error("target.endpoint: {0}")]
    Endpoint(#[from] EndpointError),
    /// The target is the simulator but no simulator address was given.
    #[error("target is the simulator, but no simulator is running")]
    NoSimulator,
    /// The plan cannot be executed against the endpoint.
    #[error(transparent)]
    Executor(#[from] ExecutorError),
    /// The credential chain has no credentials.
    #[error("AWS credentials: {0}")]
    Credentials(String),
}

/// The environment variable the AWS SDKs read a Bedrock API key from
/// (`AWS_BEARER_TOKEN_` + the signing name, PROTOCOL.md §1.5).
pub const BEARER_TOKEN_ENV: &str = "AWS_BEARER_TOKEN_BEDROCK";

/// How a share authenticates, for the run's output (never the secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMethod {
    /// SigV4 with the simulator's example keys.
    SimulatorKeys,
    /// SigV4 with credentials from the default chain or a named profile.
    SigV4 {
        /// The named profile, when the target names one.
        profile: Option<String>,
    },
    /// A Bedrock API key from [`BEARER_TOKEN_ENV`].
    ApiKeyFromEnv,
    /// A Bedrock API key given in code.
    ApiKey,
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthMethod::SimulatorKeys => f.write_str("SigV4 with the simulator's example keys"),
            AuthMethod::SigV4 { profile: None } => {
                f.write_str("SigV4 with credentials from the AWS default chain")
            }
            AuthMethod::SigV4 { profile: Some(p) } => {
                write!(f, "SigV4 with credentials of AWS profile {p:?}")
            }
            AuthMethod::ApiKeyFromEnv => write!(
                f,
                "Bedrock API key from {BEARER_TOKEN_ENV} (Authorization: Bearer)"
            ),
            AuthMethod::ApiKey => f.write_str("Bedrock API key (Authorization: Bearer)"),
        }
    }
}

/// Where a share sends its requests and how it signs them.
pub struct Connection {
    /// The Bedrock endpoint.
    pub endpoint: Endpoint,
    /// The signer for each request.
    pub signer: SignerSource,
    /// Which auth `signer` uses, for the run's output.
    pub auth: AuthMethod,
}

impl Connection {
    /// Where requests go, as spans report it (`server.address`, `server.port`).
    pub fn server_address(&self) -> ServerAddress {
        let authority = self.endpoint.host_header();
        let default_port = if self.endpoint.scheme() == "https" {
            443
        } else {
            80
        };
        // A bracketed IPv6 literal keeps its colons; the port follows "]:".
        let (address, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !port.contains(']') => {
                (host, port.parse().unwrap_or(default_port))
            }
            _ => (authority, default_port),
        };
        ServerAddress {
            address: address.trim_matches(['[', ']']).to_owned(),
            port,
        }
    }

    /// The connection for `target`: the simulator at `sim_url` with its
    /// built-in keys, or AWS with the API key in `AWS_BEARER_TOKEN_BEDROCK`
    /// when it is set and not empty, else with credentials from the default
    /// chain (or the named profile). AWS credentials are fetched once here,
    /// so a run without credentials fails before it fires rather than
    /// logging every request.
    pub async fn for_target(target: &Target, sim_url: Option<&str>) -> Result<Self, ShareError> {
        Self::for_target_with(target, sim_url, std::env::var(BEARER_TOKEN_ENV).ok()).await
    }

    /// [`Connection::for_target`] with the value of `AWS_BEARER_TOKEN_BEDROCK`
    /// given (tests pass it rather than setting the process environment).
    pub async fn for_target_with(
        target: &Target,
        sim_url: Option<&str>,
        bearer_token: Option<String>,
    ) -> Result<Self, ShareError> {
        match target {
            Target::Sim { .. } => {
                let url = sim_url.ok_or(ShareError::NoSimulator)?;
                let credentials = Credentials::new(
                    EXAMPLE_ACCESS_KEY_ID,
                    EXAMPLE_SECRET_ACCESS_KEY,
                    None,
                    None,
                    "quarry-sim",
                );
                Ok(Connection {
                    endpoint: Endpoint::custom(url, SIM_REGION)?,
                    signer: SignerSource::fixed(SIM_REGION, credentials),
                    auth: AuthMethod::SimulatorKeys,
                })
            }
            Target::Aws {
                region,
                endpoint,
                profile,
            } => {
                let endpoint = match endpoint {
                    Some(url) => Endpoint::custom(url, region)?,
                    None => Endpoint::aws(region)?,
                };
                if let Some(key) = bearer_token.filter(|k| !k.trim().is_empty()) {
                    return Ok(Connection {
                        endpoint,
                        signer: SignerSource::api_key(ApiKey::new(key.trim())),
                        auth: AuthMethod::ApiKeyFromEnv,
                    });
                }
                let source = CredentialSource::DefaultChain {
                    profile: profile.clone(),
                    region: Some(region.clone()),
                };
                let cache = CredentialCache::from_source(source).await;
                cache
                    .current()
                    .await
                    .map_err(|e| ShareError::Credentials(e.to_string()))?;
                Ok(Connection {
                    endpoint,
                    signer: SignerSource::cached(region, cache),
                    auth: AuthMethod::SigV4 {
                        profile: profile.clone(),
                    },
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aws_target() -> Target {
        Target::Aws {
            region: "us-east-1".to_owned(),
            endpoint: Some("http://127.0.0.1:9".to_owned()),
            profile: None,
        }
    }

    #[tokio::test]
    async fn an_api_key_in_the_environment_wins_over_sigv4() {
        let c = Connection::for_target_with(&aws_target(), None, Some("ABSKc2VjcmV0".to_owned()))
            .await
            .unwrap();
        assert_eq!(c.auth, AuthMethod::ApiKeyFromEnv);
        let shown = c.auth.to_string();
        assert_eq!(
            shown,
            "Bedrock API key from AWS_BEARER_TOKEN_BEDROCK (Authorization: Bearer)"
        );
        assert!(!shown.contains("ABSK"));
        let signer = c.signer.signer().await.unwrap();
        let mut req = http::Request::post("http://127.0.0.1:9/model/m/converse")
            .body(())
            .unwrap();
        #[allow(clippy::disallowed_methods)]
        let now = std::time::SystemTime::now();
        signer.sign(&mut req, b"{}", now).unwrap();
        assert_eq!(req.headers()["authorization"], "Bearer ABSKc2VjcmV0");
        assert!(!req.headers().contains_key("x-amz-date"));
    }

    #[tokio::test]
    async fn the_simulator_target_keeps_its_example_keys() {
        let c = Connection::for_target_with(
            &Target::Sim { sim_profile: None },
            Some("http://127.0.0.1:9"),
            Some("ABSKc2VjcmV0".to_owned()),
        )
        .await
        .unwrap();
        assert_eq!(c.auth, AuthMethod::SimulatorKeys);
        // An empty variable is no key: the AWS target falls back to SigV4.
        assert_eq!(
            AuthMethod::SigV4 { profile: None }.to_string(),
            "SigV4 with credentials from the AWS default chain"
        );
    }
}
