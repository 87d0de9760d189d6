//! Server-side verification of Bedrock Runtime requests, for the simulator
//! (PROTOCOL.md §1.4, §1.5, §4.4).
//!
//! The signature is recomputed from the request as it arrived: the client's
//! own `SignedHeaders` list, the raw wire path double-encoded, the real body
//! hash and the client's region, with this verifier's service name (so a
//! request signed for `bedrock-runtime` fails as a mismatch, as on AWS).
//! Failures carry AWS's exact error codes and messages.
//!
//! Speed: the derived signing key is cached per (secret, date, region,
//! service) in a map bounded to [`SIGNING_KEY_CACHE_CAPACITY`] entries; when
//! full it is cleared, which only costs one re-derivation per key. A verify
//! then costs two SHA-256 passes (body, canonical request), one HMAC and two
//! short string allocations; the signature comparison is constant-time.
//!
//! Two steps, so a server spends nothing on the body of a request whose head
//! fails: [`Verifier::verify_head`] checks everything the head carries and
//! returns a [`HeadVerified`], whose `finish` takes the body's hash (see
//! [`super::caller`]); [`Verifier::verify`] does both for a whole request.
//!
//! Not accepted (no Bedrock client sends them): presigned query-string
//! signatures, a `Date` header in place of `X-Amz-Date`, SigV4a. The payload
//! hash is the body's SHA-256; a client may declare it in
//! `x-amz-content-sha256` (64 hex digits), and the signature is then checked
//! against the declared hash before the body and the body against it after.
//! Check order: header shape, date format, scope date, skew, `host` signed,
//! access key, session token, signature. Several `Authorization` headers are
//! joined with `, ` as HTTP joins repeated fields, which AWS's front door then
//! refuses as a malformed header (IncompleteSignatureException, PROTOCOL.md
//! §4.4). Unknown API keys get UnrecognizedClientException like unknown
//! access keys (Bedrock's wording for that case is not documented).

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use aws_sigv4::sign::v4::generate_signing_key;
use http::header::AUTHORIZATION;
use http::{HeaderMap, Method};

use super::amz_date::AmzDate;
use super::authorization::{self, Scheme, SigV4Authorization};
use super::bearer::ApiKey;
use super::caller::{
    CallerScheme, HeadVerified, LateSignature, PayloadHash, VerifiedCaller, constant_time_eq,
};
use super::canonical::{self, WireRequest};
use super::failure::AuthFailure;
use super::secret::Secret;
use super::sign::SIGNING_NAME;

/// Most signing keys the verifier keeps (see the module doc).
pub const SIGNING_KEY_CACHE_CAPACITY: usize = 256;

/// The session tokens a temporary access key may be used with (any one).
#[derive(Clone)]
struct SessionTokens {
    tokens: Vec<Secret>,
    expires: SystemTime,
}

/// What the simulator knows about one access key id.
#[derive(Clone)]
pub struct AccessKey {
    secret: Secret,
    account: Arc<str>,
    session: Option<SessionTokens>,
}

impl AccessKey {
    /// A long-term key (`AKIA...`): requests must not carry a session token.
    pub fn long_term(secret: impl Into<String>, account: impl Into<String>) -> Self {
        AccessKey {
            secret: Secret::new(secret),
            account: Arc::from(account.into()),
            session: None,
        }
    }

    /// A temporary key (`ASIA...`): requests must carry `token`, which is
    /// refused with ExpiredTokenException from `expires` on.
    pub fn temporary(
        secret: impl Into<String>,
        account: impl Into<String>,
        token: impl Into<String>,
        expires: SystemTime,
    ) -> Self {
        AccessKey::temporary_with_tokens(secret, account, [token], expires)
    }

    /// A temporary key that accepts any one of `tokens` (several sessions
    /// sharing one key id, as a simulator account may configure); every
    /// token is refused with ExpiredTokenException from `expires` on. With
    /// no tokens at all, every request with this key is refused.
    pub fn temporary_with_tokens<T: Into<String>>(
        secret: impl Into<String>,
        account: impl Into<String>,
        tokens: impl IntoIterator<Item = T>,
        expires: SystemTime,
    ) -> Self {
        AccessKey {
            session: Some(SessionTokens {
                tokens: tokens.into_iter().map(Secret::new).collect(),
                expires,
            }),
            ..AccessKey::long_term(secret, account)
        }
    }

    /// The account the key belongs to.
    pub fn account(&self) -> &str {
        &self.account
    }
}

impl fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessKey")
            .field("account", &self.account)
            .field("temporary", &self.session.is_some())
            .finish_non_exhaustive()
    }
}

/// Looks up callers by access key id or API key.
pub trait KeyStore: Send + Sync {
    /// The key for `access_key_id`, if known.
    fn access_key(&self, access_key_id: &str) -> Option<Arc<AccessKey>>;
    /// The account a Bedrock API key belongs to, if known.
    fn api_key(&self, api_key: &str) -> Option<Arc<str>>;
}

impl<T: KeyStore + ?Sized> KeyStore for Arc<T> {
    fn access_key(&self, access_key_id: &str) -> Option<Arc<AccessKey>> {
        (**self).access_key(access_key_id)
    }
    fn api_key(&self, api_key: &str) -> Option<Arc<str>> {
        (**self).api_key(api_key)
    }
}

/// A fixed in-memory [`KeyStore`].
#[derive(Default, Clone)]
pub struct StaticKeyStore {
    access_keys: HashMap<String, Arc<AccessKey>>,
    api_keys: HashMap<String, Arc<str>>,
}

impl StaticKeyStore {
    /// An empty store.
    pub fn new() -> Self {
        StaticKeyStore::default()
    }

    /// Adds (or replaces) an access key.
    pub fn with_access_key(mut self, access_key_id: impl Into<String>, key: AccessKey) -> Self {
        self.access_keys.insert(access_key_id.into(), Arc::new(key));
        self
    }

    /// Adds (or replaces) a Bedrock API key for `account`.
    pub fn with_api_key(mut self, api_key: impl Into<String>, account: impl Into<String>) -> Self {
        self.api_keys
            .insert(api_key.into(), Arc::from(account.into()));
        self
    }
}

impl KeyStore for StaticKeyStore {
    fn access_key(&self, access_key_id: &str) -> Option<Arc<AccessKey>> {
        self.access_keys.get(access_key_id).cloned()
    }
    fn api_key(&self, api_key: &str) -> Option<Arc<str>> {
        self.api_keys.get(api_key).cloned()
    }
}

impl fmt::Debug for StaticKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticKeyStore")
            .field(
                "access_key_ids",
                &self.access_keys.keys().collect::<Vec<_>>(),
            )
            .field("api_keys", &self.api_keys.len())
            .finish()
    }
}

struct CachedKey {
    secret: Secret,
    date: [u8; 8],
    region: Box<str>,
    key: [u8; 32],
}

/// Signing keys by (secret, date, region); the verifier's service is fixed.
#[derive(Default)]
struct SigningKeyCache {
    map: RwLock<HashMap<u64, CachedKey>>,
}

impl SigningKeyCache {
    fn get(&self, secret: &Secret, date: AmzDate, region: &str, service: &str) -> [u8; 32] {
        let stamp = date.date_stamp();
        let mut hasher = DefaultHasher::new();
        (secret.expose(), &stamp, region).hash(&mut hasher);
        let slot = hasher.finish();
        if let Ok(map) = self.map.read()
            && let Some(hit) = map.get(&slot)
            && hit.date == stamp
            && &*hit.region == region
            && hit.secret.expose() == secret.expose()
        {
            return hit.key;
        }
        let derived = generate_signing_key(secret.expose(), date.to_system_time(), region, service);
        let mut key = [0u8; 32];
        key.copy_from_slice(derived.as_ref());
        if let Ok(mut map) = self.map.write() {
            if map.len() >= SIGNING_KEY_CACHE_CAPACITY {
                map.clear();
            }
            map.insert(
                slot,
                CachedKey {
                    secret: secret.clone(),
                    date: stamp,
                    region: region.into(),
                    key,
                },
            );
        }
        key
    }
}

/// Verifies SigV4 and API-key requests against a [`KeyStore`].
pub struct Verifier<K> {
    keys: K,
    service: Arc<str>,
    cache: SigningKeyCache,
}

impl<K: KeyStore> Verifier<K> {
    /// A verifier for Bedrock (service `bedrock`).
    pub fn new(keys: K) -> Self {
        Verifier {
            keys,
            service: Arc::from(SIGNING_NAME),
            cache: SigningKeyCache::default(),
        }
    }

    /// Verify for another signing name (the SigV4 conformance suite uses
    /// `service`).
    pub fn with_service(mut self, service: impl Into<String>) -> Self {
        self.service = Arc::from(service.into());
        self
    }

    /// The key store.
    pub fn keys(&self) -> &K {
        &self.keys
    }

    /// Verifies one whole request. `raw_path_and_query` is the request
    /// target exactly as on the wire (still percent-encoded); `now` is the
    /// server's clock for the ±5 minute skew check.
    pub fn verify(
        &self,
        method: &Method,
        raw_path_and_query: &str,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<VerifiedCaller, AuthFailure> {
        self.verify_head(method, raw_path_and_query, headers, now)?
            .finish(Some(&PayloadHash::of(body)))
    }

    /// Verifies everything the request head carries (see the module doc);
    /// the body's hash settles the rest through [`HeadVerified::finish`].
    pub fn verify_head(
        &self,
        method: &Method,
        raw_path_and_query: &str,
        headers: &HeaderMap,
        now: SystemTime,
    ) -> Result<HeadVerified, AuthFailure> {
        let mut values = headers.get_all(AUTHORIZATION).iter();
        let Some(first) = values.next() else {
            return Err(AuthFailure::missing_token());
        };
        let mut value = String::from_utf8_lossy(first.as_bytes());
        for more in values {
            let joined = value.to_mut();
            joined.push_str(", ");
            joined.push_str(&String::from_utf8_lossy(more.as_bytes()));
        }
        let date = headers.get("x-amz-date");
        match authorization::parse(&value, date.is_some())? {
            Scheme::Bearer(key) => self.verify_api_key(key).map(HeadVerified::api_key),
            Scheme::SigV4(auth) => {
                let request = WireRequest {
                    method: method.as_str(),
                    raw_path_and_query,
                    headers,
                };
                self.verify_sigv4_head(&auth, request, now)
            }
        }
    }

    fn verify_api_key(&self, key: &str) -> Result<VerifiedCaller, AuthFailure> {
        if !ApiKey::has_known_prefix(key) {
            return Err(AuthFailure::bad_api_key_format());
        }
        let account = self
            .keys
            .api_key(key)
            .ok_or_else(AuthFailure::unrecognized_client)?;
        Ok(VerifiedCaller {
            account,
            scheme: CallerScheme::ApiKey,
        })
    }

    fn verify_sigv4_head(
        &self,
        auth: &SigV4Authorization<'_>,
        request: WireRequest<'_>,
        now: SystemTime,
    ) -> Result<HeadVerified, AuthFailure> {
        let date = request_date(request.headers)?;
        let stamp = date.date_stamp();
        let request_stamp = std::str::from_utf8(&stamp).unwrap_or_default();
        if auth.scope_date != request_stamp {
            return Err(AuthFailure::scope_date_mismatch(
                auth.scope_date,
                request_stamp,
            ));
        }
        if let Some(skewed) = AuthFailure::skew(date, AmzDate::from_system_time(now)) {
            return Err(skewed);
        }
        if !auth.signed_headers.split(';').any(|h| h == "host") {
            return Err(AuthFailure::host_not_signed());
        }
        let key = self
            .keys
            .access_key(auth.access_key_id)
            .ok_or_else(AuthFailure::unrecognized_client)?;
        check_session_token(&key, request.headers, now)?;

        let mut canonical_head = String::with_capacity(512);
        canonical::write_canonical_request(&mut canonical_head, request, auth.signed_headers, "")
            .map_err(AuthFailure::signed_header_absent)?;
        let declared = request
            .headers
            .get("x-amz-content-sha256")
            .and_then(|v| PayloadHash::parse_hex(v.as_bytes()));
        let signature = LateSignature {
            canonical_head,
            date,
            region: auth.region.to_owned(),
            service: Arc::clone(&self.service),
            signing_key: self
                .cache
                .get(&key.secret, date, auth.region, &self.service),
            signature: auth.signature.to_owned(),
        };
        let caller = VerifiedCaller {
            account: key.account.clone(),
            scheme: CallerScheme::SigV4 {
                access_key_id: auth.access_key_id.to_owned(),
                region: auth.region.to_owned(),
            },
        };
        HeadVerified::sigv4(caller, signature, declared)
    }
}

impl<K> fmt::Debug for Verifier<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

fn request_date(headers: &HeaderMap) -> Result<AmzDate, AuthFailure> {
    // parse() already reported a missing X-Amz-Date.
    let raw = headers
        .get("x-amz-date")
        .map(|v| String::from_utf8_lossy(v.as_bytes()))
        .unwrap_or_default();
    AmzDate::parse(raw.trim()).ok_or_else(|| AuthFailure::bad_date_format(&raw))
}

/// Long-term keys take no token; temporary keys need theirs, unexpired.
fn check_session_token(
    key: &AccessKey,
    headers: &HeaderMap,
    now: SystemTime,
) -> Result<(), AuthFailure> {
    let sent = headers.get("x-amz-security-token").map(|v| v.as_bytes());
    match (&key.session, sent) {
        (None, None) => Ok(()),
        (Some(session), Some(sent))
            if session.tokens.iter().fold(false, |any, t| {
                // No early exit: timing does not tell which token matched.
                any | constant_time_eq(t.expose().as_bytes(), sent)
            }) =>
        {
            if now >= session.expires {
                Err(AuthFailure::expired_token())
            } else {
                Ok(())
            }
        }
        _ => Err(AuthFailure::unrecognized_client()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_returns_the_derived_key_and_stays_bounded() {
        let cache = SigningKeyCache::default();
        let secret = Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
        let date = AmzDate::parse("20250101T000000Z").unwrap();
        let direct = generate_signing_key(
            secret.expose(),
            date.to_system_time(),
            "us-east-1",
            "bedrock",
        );
        assert_eq!(
            cache.get(&secret, date, "us-east-1", "bedrock"),
            direct.as_ref()
        );
        assert_eq!(
            cache.get(&secret, date, "us-east-1", "bedrock"),
            direct.as_ref()
        );
        let other = Secret::new("another");
        assert_ne!(
            cache.get(&other, date, "us-east-1", "bedrock"),
            direct.as_ref()
        );
        for day in 0..(SIGNING_KEY_CACHE_CAPACITY as i64 + 10) {
            cache.get(&secret, date.offset(day * 86_400), "us-east-1", "bedrock");
        }
        assert!(cache.map.read().unwrap().len() <= SIGNING_KEY_CACHE_CAPACITY);
    }

    #[test]
    fn any_of_several_session_tokens_is_accepted() {
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000);
        let key = AccessKey::temporary_with_tokens(
            "SECRET",
            "123456789012",
            ["TOKEN-A", "TOKEN-B"],
            now + std::time::Duration::from_secs(60),
        );
        let with = |token: Option<&'static str>| {
            let mut headers = HeaderMap::new();
            if let Some(t) = token {
                headers.insert("x-amz-security-token", http::HeaderValue::from_static(t));
            }
            check_session_token(&key, &headers, now)
        };
        assert!(with(Some("TOKEN-A")).is_ok());
        assert!(with(Some("TOKEN-B")).is_ok());
        assert!(with(Some("TOKEN-C")).is_err());
        assert!(with(None).is_err());
        let later = now + std::time::Duration::from_secs(61);
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-amz-security-token",
            http::HeaderValue::from_static("TOKEN-B"),
        );
        assert_eq!(
            check_session_token(&key, &headers, later).unwrap_err(),
            AuthFailure::expired_token()
        );
        let none = AccessKey::temporary_with_tokens(
            "SECRET",
            "123456789012",
            Vec::<String>::new(),
            now + std::time::Duration::from_secs(60),
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-amz-security-token",
            http::HeaderValue::from_static("TOKEN-A"),
        );
        assert!(check_session_token(&none, &headers, now).is_err());
    }

    #[test]
    fn debug_never_shows_secrets() {
        let key = AccessKey::temporary(
            "SECRETVALUE",
            "123456789012",
            "TOKENVALUE",
            SystemTime::UNIX_EPOCH,
        );
        let store = StaticKeyStore::new()
            .with_access_key("ASIAEXAMPLE", key.clone())
            .with_api_key("ABSKSECRETKEY", "123456789012");
        let shown = format!("{key:?} {store:?}");
        for secret in ["SECRETVALUE", "TOKENVALUE", "ABSKSECRETKEY"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
}
