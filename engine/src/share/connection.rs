//! Where a share sends its requests and how it signs them: the endpoint of
//! the plan's target and the signer, with AWS credentials resolved before
//! anything fires.

use quarry_bedrock::auth::{Credentials, EXAMPLE_ACCESS_KEY_ID, EXAMPLE_SECRET_ACCESS_KEY};
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

/// Where a share sends its requests and how it signs them.
pub struct Connection {
    /// The Bedrock endpoint.
    pub endpoint: Endpoint,
    /// The signer for each request.
    pub signer: SignerSource,
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
    /// built-in keys, or AWS with credentials from the default chain (or the
    /// named profile). AWS credentials are fetched once here, so a run without
    /// credentials fails before it fires rather than logging every request.
    pub async fn for_target(target: &Target, sim_url: Option<&str>) -> Result<Self, ShareError> {
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
                })
            }
        }
    }
}
