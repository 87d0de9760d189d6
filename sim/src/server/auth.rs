//! Authentication glue: the simulator's accounts as a quarry-bedrock
//! [`Verifier`] key store, the two steps of verification (the head before
//! the body is read, the signature over the body's hash after), and the
//! verified caller as an [`AccountIdx`].
//!
//! An account with session tokens is a temporary key accepting any of them;
//! an account without is a long-term key, so a request carrying a token is
//! refused, as AWS refuses one with a long-term key.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::header::AUTHORIZATION;
use http::{HeaderMap, Method};
use quarry_bedrock::auth::{AccessKey, HeadVerified, PayloadHash, StaticKeyStore, Verifier};

use super::errors::WireError;
use crate::config::AccountConfig;
use crate::runtime::{AccountIdx, Simulator};

/// Temporary keys configured in the simulator never expire.
const SESSION_EXPIRY: Duration = Duration::from_secs(100 * 365 * 86_400);

/// The service a request is signed for: its SigV4 signing name decides
/// the signing key, so each has its own verifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SignedFor {
    /// Bedrock Runtime (`bedrock`): SigV4 or a Bedrock API key.
    Bedrock,
    /// Service Quotas (`servicequotas`): SigV4 only, as Bedrock API keys
    /// authenticate Bedrock calls alone.
    ServiceQuotas,
}

/// Verifies requests against the simulator's accounts.
pub(crate) struct Authenticator {
    sim: Arc<Simulator>,
    verifier: Verifier<StaticKeyStore>,
    /// The same keys, for Service Quotas' signing name.
    quotas_verifier: Verifier<StaticKeyStore>,
}

impl Authenticator {
    pub(crate) fn new(sim: Arc<Simulator>) -> Self {
        let verifier = Verifier::new(key_store(sim.accounts()));
        let quotas_verifier = Verifier::new(key_store(sim.accounts()))
            .with_service(crate::service_quotas::SIGNING_NAME);
        Authenticator {
            sim,
            verifier,
            quotas_verifier,
        }
    }

    /// Checks what the request head carries, before any of its body is
    /// read; the 403 to answer with when it fails.
    pub(crate) fn verify_head(
        &self,
        service: SignedFor,
        method: &Method,
        raw_path_and_query: &str,
        headers: &HeaderMap,
        now: SystemTime,
    ) -> Result<HeadVerified, WireError> {
        let verifier = match service {
            SignedFor::Bedrock => &self.verifier,
            SignedFor::ServiceQuotas => {
                let bearer = headers
                    .get(AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with("Bearer "));
                if bearer {
                    return Err(WireError::new(
                        quarry_bedrock::ErrorCode::MissingAuthenticationTokenException,
                        quarry_bedrock::messages::MISSING_AUTHENTICATION_TOKEN,
                    ));
                }
                &self.quotas_verifier
            }
        };
        Ok(verifier.verify_head(method, raw_path_and_query, headers, now)?)
    }

    /// The caller's account once the body's hash is known, or the 403.
    pub(crate) fn finish(
        &self,
        head: HeadVerified,
        payload: Option<&PayloadHash>,
        headers: &HeaderMap,
    ) -> Result<AccountIdx, WireError> {
        head.finish(payload)?;
        // The verifier accepted the key, so the lookups below succeed; an
        // account missing here would mean the key store and the simulator
        // disagree, which `new` rules out.
        let authorization = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let found = match authorization.strip_prefix("Bearer ") {
            Some(key) => self.sim.account_by_api_key(key.trim()),
            None => credential_access_key(authorization)
                .and_then(|akid| self.sim.account_by_access_key(akid)),
        };
        found
            .map(|(idx, _)| idx)
            .ok_or_else(WireError::from_unrecognized)
    }
}

/// Every account's keys; a temporary key accepts each of its tokens.
fn key_store(accounts: &[AccountConfig]) -> StaticKeyStore {
    let mut store = StaticKeyStore::new();
    for a in accounts {
        let key = match a.session_tokens.as_slice() {
            [] => AccessKey::long_term(a.secret_access_key.clone(), a.account_id.clone()),
            tokens => AccessKey::temporary_with_tokens(
                a.secret_access_key.clone(),
                a.account_id.clone(),
                tokens.iter().cloned(),
                SystemTime::UNIX_EPOCH + SESSION_EXPIRY,
            ),
        };
        store = store.with_access_key(a.access_key_id.clone(), key);
        for api_key in &a.api_keys {
            store = store.with_api_key(api_key.clone(), a.account_id.clone());
        }
    }
    store
}

/// The access key id in `Credential=AKID/date/region/service/aws4_request`.
fn credential_access_key(authorization: &str) -> Option<&str> {
    let (_, rest) = authorization.split_once("Credential=")?;
    rest.split('/').next().map(str::trim)
}

/// The Region of a SigV4 request's credential scope; `us-east-1` when the
/// header carries none (a verified SigV4 request always does).
pub(crate) fn signed_region(headers: &HeaderMap) -> &str {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.split_once("Credential=").map(|(_, rest)| rest))
        .and_then(|rest| rest.split('/').nth(2))
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .unwrap_or("us-east-1")
}

impl WireError {
    fn from_unrecognized() -> Self {
        WireError::new(
            quarry_bedrock::ErrorCode::UnrecognizedClientException,
            quarry_bedrock::messages::INVALID_SECURITY_TOKEN,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_key_comes_from_the_credential() {
        assert_eq!(
            credential_access_key(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250101/us-east-1/bedrock/aws4_request, SignedHeaders=host, Signature=00"
            ),
            Some("AKIDEXAMPLE")
        );
        assert_eq!(credential_access_key("Bearer ABSK"), None);
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250101/eu-west-1/servicequotas/aws4_request, SignedHeaders=host, Signature=00".parse().unwrap(),
        );
        assert_eq!(signed_region(&headers), "eu-west-1");
        assert_eq!(signed_region(&HeaderMap::new()), "us-east-1");
    }
}
