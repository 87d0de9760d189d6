//! Where the executor's signer comes from: fixed credentials (the simulator,
//! tests) or the AWS default chain through a refreshing cache, with the signer
//! rebuilt only when the credentials actually rotate.

use std::sync::{Arc, Mutex};

use quarry_bedrock::auth::{ApiKey, Credentials, Signer};

use super::credentials::CredentialCache;

/// The signer for each request.
pub enum SignerSource {
    /// One signer for the whole run (static keys or an API key).
    Fixed(Arc<Signer>),
    /// Credentials from a refreshing cache (default chain, profile, IRSA...).
    Cached {
        /// The credential cache; cheap to query, refreshes before expiry.
        cache: CredentialCache,
        /// The signing region.
        region: String,
        /// The signer built for the credentials last seen.
        current: Mutex<Option<(Credentials, Arc<Signer>)>>,
    },
}

/// Why no signer could be had for a request.
#[derive(Debug, thiserror::Error)]
#[error("no AWS credentials: {0}")]
pub struct NoCredentials(pub String);

impl SignerSource {
    /// SigV4 with fixed credentials in `region`.
    pub fn fixed(region: &str, credentials: Credentials) -> Self {
        SignerSource::Fixed(Arc::new(Signer::new(region, credentials)))
    }

    /// `Authorization: Bearer` with a Bedrock API key.
    pub fn api_key(key: ApiKey) -> Self {
        SignerSource::Fixed(Arc::new(Signer::bearer(key)))
    }

    /// SigV4 with credentials from `cache`.
    pub fn cached(region: &str, cache: CredentialCache) -> Self {
        SignerSource::Cached {
            cache,
            region: region.to_owned(),
            current: Mutex::new(None),
        }
    }

    /// The signer for the next request.
    pub async fn signer(&self) -> Result<Arc<Signer>, NoCredentials> {
        match self {
            SignerSource::Fixed(signer) => Ok(signer.clone()),
            SignerSource::Cached {
                cache,
                region,
                current,
            } => {
                let credentials = cache
                    .current()
                    .await
                    .map_err(|err| NoCredentials(err.to_string()))?;
                // A poisoned lock only means a panic elsewhere mid-swap; the
                // Option inside is still a valid cache entry.
                let mut current = current.lock().unwrap_or_else(|e| e.into_inner());
                if let Some((seen, signer)) = current.as_ref()
                    && seen == &credentials
                {
                    return Ok(signer.clone());
                }
                let signer = Arc::new(Signer::new(region.as_str(), credentials.clone()));
                *current = Some((credentials, signer.clone()));
                Ok(signer)
            }
        }
    }
}
