//! Where signing credentials come from and how they stay fresh (PROTOCOL.md
//! §7.3): static keys for tests, or aws-config's default chain (environment,
//! profile incl. SSO and `credential_process`, web identity / IRSA, ECS and EKS
//! container credentials, IMDS), behind a cache that refreshes a few minutes
//! before expiry with one provider call however many tasks ask at once.
//!
//! It lives beside the executor that signs with it, not in the protocol
//! crate, which has no I/O. Secrets never reach `Debug`, `Display` or logs:
//! `aws_credential_types::Credentials` redacts its secret and omits its
//! session token.

use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use aws_config::Region;
use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, error};
use quarry_bedrock::auth::{Credentials, WallClock};
use tokio::time::Instant;

/// Where the agent gets its AWS credentials.
pub enum CredentialSource {
    /// Fixed keys (tests, simulators, explicit configuration).
    Static(Credentials),
    /// aws-config's default provider chain.
    DefaultChain {
        /// A named profile instead of `AWS_PROFILE` / `default`.
        profile: Option<String>,
        /// The region STS, SSO and profile providers use.
        region: Option<String>,
    },
}

impl CredentialSource {
    /// Static keys, with a session token for temporary credentials.
    pub fn static_keys(
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
    ) -> Self {
        CredentialSource::Static(Credentials::new(
            access_key_id,
            secret_access_key,
            session_token,
            None,
            "quarry-static",
        ))
    }

    /// The provider for this source. Building the default chain reads the
    /// environment and profile files but makes no network call.
    pub async fn into_provider(self) -> SharedCredentialsProvider {
        match self {
            CredentialSource::Static(creds) => SharedCredentialsProvider::new(creds),
            CredentialSource::DefaultChain { profile, region } => {
                let mut builder = DefaultCredentialsChain::builder();
                if let Some(region) = region {
                    builder = builder.region(Region::new(region));
                }
                if let Some(profile) = profile {
                    builder = builder.profile_name(&profile);
                }
                SharedCredentialsProvider::new(builder.build().await)
            }
        }
    }
}

impl fmt::Debug for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Credentials' own Debug redacts the secret and omits the token.
            CredentialSource::Static(creds) => f.debug_tuple("Static").field(creds).finish(),
            CredentialSource::DefaultChain { profile, region } => f
                .debug_struct("DefaultChain")
                .field("profile", profile)
                .field("region", region)
                .finish(),
        }
    }
}

/// Why credentials could not be had.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The provider chain failed (no source configured, STS/SSO/IMDS error...).
    #[error("credential provider failed: {0}")]
    Provider(#[from] error::CredentialsError),
    /// The provider returned credentials that had already expired.
    #[error("credential provider returned credentials that expired {0:?} ago")]
    AlreadyExpired(Duration),
}

/// The one place the credential cache reads the wall clock: credential expiry
/// is an absolute time, so converting it to a monotonic deadline needs "now".
#[allow(clippy::disallowed_methods)]
fn system_wall_clock() -> SystemTime {
    SystemTime::now()
}

struct Cached {
    credentials: Credentials,
    /// Ask the provider again from here on (a few minutes before expiry).
    refresh_at: Option<Instant>,
    /// The credentials are unusable from here on.
    expires_at: Option<Instant>,
}

/// Credentials resolved once and reused until shortly before they expire.
///
/// Deadlines are kept on tokio's monotonic clock, so a paused test runtime
/// drives refreshes. Refreshes are single-flight: concurrent callers wait on
/// one provider call. If a refresh fails while the old credentials are still
/// valid (inside the refresh margin), the old ones are returned.
pub struct CredentialCache {
    provider: SharedCredentialsProvider,
    refresh_before: Duration,
    wall_clock: WallClock,
    state: RwLock<Option<Arc<Cached>>>,
    refresh: tokio::sync::Mutex<()>,
}

impl CredentialCache {
    /// How long before expiry credentials are refreshed by default.
    pub const DEFAULT_REFRESH_BEFORE: Duration = Duration::from_secs(5 * 60);

    /// A cache in front of `provider`.
    pub fn new(provider: SharedCredentialsProvider) -> Self {
        CredentialCache {
            provider,
            refresh_before: Self::DEFAULT_REFRESH_BEFORE,
            wall_clock: system_wall_clock,
            state: RwLock::new(None),
            refresh: tokio::sync::Mutex::new(()),
        }
    }

    /// A cache in front of `source`'s provider.
    pub async fn from_source(source: CredentialSource) -> Self {
        CredentialCache::new(source.into_provider().await)
    }

    /// Refresh this long before expiry instead of the default five minutes.
    pub fn with_refresh_before(mut self, margin: Duration) -> Self {
        self.refresh_before = margin;
        self
    }

    /// Use `clock` to read wall time (tests inject a fixed clock).
    pub fn with_wall_clock(mut self, clock: WallClock) -> Self {
        self.wall_clock = clock;
        self
    }

    /// The current credentials, fetching or refreshing them when due.
    pub async fn current(&self) -> Result<Credentials, CredentialsError> {
        if let Some(creds) = self.fresh(Instant::now()) {
            return Ok(creds);
        }
        let _single_flight = self.refresh.lock().await;
        // Another caller may have refreshed while this one waited.
        if let Some(creds) = self.fresh(Instant::now()) {
            return Ok(creds);
        }
        match self.provider.provide_credentials().await {
            Ok(credentials) => {
                let cached = self.cache_entry(credentials)?;
                let creds = cached.credentials.clone();
                self.store(Some(Arc::new(cached)));
                Ok(creds)
            }
            Err(err) => match self.still_valid(Instant::now()) {
                Some(creds) => {
                    tracing::warn!(error = %err, "credential refresh failed; using unexpired credentials");
                    Ok(creds)
                }
                None => Err(err.into()),
            },
        }
    }

    fn cache_entry(&self, credentials: Credentials) -> Result<Cached, CredentialsError> {
        let now = Instant::now();
        let Some(expiry) = credentials.expiry() else {
            return Ok(Cached {
                credentials,
                refresh_at: None,
                expires_at: None,
            });
        };
        let wall_now = (self.wall_clock)();
        let remaining = match expiry.duration_since(wall_now) {
            Ok(left) if !left.is_zero() => left,
            Ok(_) => return Err(CredentialsError::AlreadyExpired(Duration::ZERO)),
            Err(past) => return Err(CredentialsError::AlreadyExpired(past.duration())),
        };
        // Short-lived credentials (less than the margin left) are reused for
        // half their remaining life rather than refetched on every call.
        let refresh_in = remaining
            .checked_sub(self.refresh_before)
            .filter(|d| !d.is_zero())
            .unwrap_or(remaining / 2);
        Ok(Cached {
            credentials,
            refresh_at: Some(now + refresh_in),
            expires_at: Some(now + remaining),
        })
    }

    fn load(&self) -> Option<Arc<Cached>> {
        // A poisoned lock only means a panic elsewhere mid-store; the value
        // is a plain Option and still consistent.
        match self.state.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn store(&self, value: Option<Arc<Cached>>) {
        match self.state.write() {
            Ok(mut guard) => *guard = value,
            Err(poisoned) => *poisoned.into_inner() = value,
        }
    }

    fn fresh(&self, now: Instant) -> Option<Credentials> {
        let cached = self.load()?;
        match cached.refresh_at {
            Some(at) if now >= at => None,
            _ => Some(cached.credentials.clone()),
        }
    }

    fn still_valid(&self, now: Instant) -> Option<Credentials> {
        let cached = self.load()?;
        match cached.expires_at {
            Some(at) if now >= at => None,
            _ => Some(cached.credentials.clone()),
        }
    }
}

impl fmt::Debug for CredentialCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialCache")
            .field("refresh_before", &self.refresh_before)
            .field("cached", &self.load().is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::UNIX_EPOCH;

    use aws_credential_types::provider::future;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const TOKEN: &str = "SESSIONTOKEN-very-secret";

    fn wall_now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    /// Hands out credentials valid for `lifetime` from the fixed wall clock,
    /// counting calls; fails when `fail` is set.
    #[derive(Debug)]
    struct FakeProvider {
        calls: Arc<AtomicUsize>,
        lifetime: Duration,
        latency: Duration,
        fail_from_call: usize,
    }

    impl ProvideCredentials for FakeProvider {
        fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            future::ProvideCredentials::new(async move {
                let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::time::sleep(self.latency).await;
                if n >= self.fail_from_call {
                    return Err(error::CredentialsError::provider_error("fake outage"));
                }
                Ok(Credentials::new(
                    format!("AKID{n}"),
                    SECRET,
                    Some(TOKEN.to_owned()),
                    Some(wall_now() + self.lifetime),
                    "fake",
                ))
            })
        }
    }

    fn cache(
        lifetime: Duration,
        latency: Duration,
        fail_from_call: usize,
    ) -> (CredentialCache, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let provider = FakeProvider {
            calls: calls.clone(),
            lifetime,
            latency,
            fail_from_call,
        };
        let cache = CredentialCache::new(SharedCredentialsProvider::new(provider))
            .with_wall_clock(wall_now);
        (cache, calls)
    }

    const HOUR: Duration = Duration::from_secs(3600);
    const MINUTE: Duration = Duration::from_secs(60);

    #[tokio::test(start_paused = true)]
    async fn reuses_until_five_minutes_before_expiry() {
        let (cache, calls) = cache(HOUR, Duration::ZERO, usize::MAX);
        assert_eq!(cache.current().await.unwrap().access_key_id(), "AKID1");
        tokio::time::advance(54 * MINUTE).await;
        assert_eq!(cache.current().await.unwrap().access_key_id(), "AKID1");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        tokio::time::advance(MINUTE + Duration::from_secs(1)).await;
        assert_eq!(cache.current().await.unwrap().access_key_id(), "AKID2");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_one_refresh() {
        let (cache, calls) = cache(HOUR, Duration::from_secs(2), usize::MAX);
        let cache = Arc::new(cache);
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let cache = cache.clone();
                tokio::spawn(async move { cache.current().await.unwrap() })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap().access_key_id(), "AKID1");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn failed_refresh_falls_back_to_unexpired_credentials() {
        let (cache, calls) = cache(HOUR, Duration::ZERO, 2);
        cache.current().await.unwrap();
        tokio::time::advance(57 * MINUTE).await;
        // Inside the refresh margin: the refresh fails, old creds still valid.
        assert_eq!(cache.current().await.unwrap().access_key_id(), "AKID1");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        tokio::time::advance(4 * MINUTE).await;
        assert!(matches!(
            cache.current().await,
            Err(CredentialsError::Provider(_))
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn short_lived_credentials_are_reused_for_half_their_life() {
        let (cache, calls) = cache(2 * MINUTE, Duration::ZERO, usize::MAX);
        cache.current().await.unwrap();
        tokio::time::advance(59 * Duration::from_secs(1)).await;
        cache.current().await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        tokio::time::advance(Duration::from_secs(2)).await;
        cache.current().await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn already_expired_credentials_are_an_error() {
        let (cache, _) = cache(Duration::ZERO, Duration::ZERO, usize::MAX);
        assert!(matches!(
            cache.current().await,
            Err(CredentialsError::AlreadyExpired(_))
        ));
    }

    #[tokio::test]
    async fn static_credentials_never_expire() {
        let cache = CredentialCache::from_source(CredentialSource::static_keys(
            "AKIDEXAMPLE",
            SECRET,
            Some(TOKEN.into()),
        ))
        .await;
        let creds = cache.current().await.unwrap();
        assert_eq!(creds.session_token(), Some(TOKEN));
    }

    #[test]
    fn debug_output_redacts_secrets_and_tokens() {
        let source = CredentialSource::static_keys("AKIDEXAMPLE", SECRET, Some(TOKEN.into()));
        let shown = format!("{source:?}");
        assert!(!shown.contains(SECRET), "{shown}");
        assert!(!shown.contains(TOKEN), "{shown}");
        assert!(shown.contains("AKIDEXAMPLE"));
    }
}
