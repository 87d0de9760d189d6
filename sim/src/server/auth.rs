//! Authentication glue: the simulator's accounts as quarry-bedrock
//! [`Verifier`] key stores, and the verified caller as an [`AccountIdx`].
//!
//! An account may accept several session tokens, while a verifier's key
//! store holds one per access key; so there is one verifier per token slot
//! (slot `i` holds every account's `i`-th token), and a request is checked by
//! the verifier of the slot its own token sits in. Accounts without tokens
//! are long-term keys in every slot: a request carrying a token is refused,
//! as AWS refuses one with a long-term key.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::header::AUTHORIZATION;
use http::{HeaderMap, Method};
use quarry_bedrock::auth::{AccessKey, StaticKeyStore, Verifier};

use super::errors::WireError;
use crate::config::AccountConfig;
use crate::runtime::{AccountIdx, Simulator};

/// Temporary keys configured in the simulator never expire.
const SESSION_EXPIRY: Duration = Duration::from_secs(100 * 365 * 86_400);

/// Verifies requests against the simulator's accounts.
pub(crate) struct Authenticator {
    sim: Arc<Simulator>,
    /// One verifier per session-token slot (at least one).
    verifiers: Vec<Verifier<StaticKeyStore>>,
}

impl Authenticator {
    pub(crate) fn new(sim: Arc<Simulator>) -> Self {
        let accounts = sim.accounts();
        let slots = accounts
            .iter()
            .map(|a| a.session_tokens.len())
            .max()
            .unwrap_or(0)
            .max(1);
        let verifiers = (0..slots)
            .map(|slot| Verifier::new(key_store(accounts, slot)))
            .collect();
        Authenticator { sim, verifiers }
    }

    /// The caller's account, or the 403 to answer with.
    pub(crate) fn verify(
        &self,
        method: &Method,
        raw_path_and_query: &str,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<AccountIdx, WireError> {
        let verifier = &self.verifiers[self.slot(headers)];
        verifier.verify(method, raw_path_and_query, headers, body, now)?;
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

    /// The token slot of the request's session token (0 when it has none or
    /// an unknown one: that slot's verifier then refuses it).
    fn slot(&self, headers: &HeaderMap) -> usize {
        if self.verifiers.len() == 1 {
            return 0;
        }
        let Some(token) = headers
            .get("x-amz-security-token")
            .and_then(|v| v.to_str().ok())
        else {
            return 0;
        };
        let akid = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(credential_access_key);
        akid.and_then(|k| self.sim.account_by_access_key(k))
            .and_then(|(_, a)| a.session_tokens.iter().position(|t| t == token))
            .unwrap_or(0)
    }
}

/// Every account's keys, with each temporary key's `slot`-th token.
fn key_store(accounts: &[AccountConfig], slot: usize) -> StaticKeyStore {
    let mut store = StaticKeyStore::new();
    for a in accounts {
        let key = match a.session_tokens.get(slot).or(a.session_tokens.first()) {
            Some(token) => AccessKey::temporary(
                a.secret_access_key.clone(),
                a.account_id.clone(),
                token.clone(),
                SystemTime::UNIX_EPOCH + SESSION_EXPIRY,
            ),
            None => AccessKey::long_term(a.secret_access_key.clone(), a.account_id.clone()),
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
    }
}
