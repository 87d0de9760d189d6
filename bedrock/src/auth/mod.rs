//! SigV4 signing and verification, Bedrock API keys and credentials
//! (PROTOCOL.md §1.4, §1.5, §4.4, §7.1, §7.3).
//!
//! The agent signs with [`Signer`] using credentials from a
//! [`CredentialCache`]; the simulator checks requests with [`Verifier`]
//! (the head first, [`HeadVerified`], then the body's [`PayloadHash`]) and
//! answers failures with the [`AuthFailure`]'s code and message.

mod amz_date;
mod authorization;
mod bearer;
mod caller;
mod canonical;
mod credentials;
mod failure;
mod sign;
mod verify;

/// Re-exported so callers can build static credentials without another dependency.
pub use aws_credential_types::Credentials;
pub use bearer::{API_KEY_PREFIXES, ApiKey};
pub use caller::{CallerScheme, HeadVerified, PayloadHash, PayloadHasher, VerifiedCaller};
pub use credentials::{CredentialCache, CredentialSource, CredentialsError, Secret, WallClock};
pub use failure::AuthFailure;
pub use sign::{SIGNING_NAME, SignError, Signer};
pub use verify::{AccessKey, KeyStore, SIGNING_KEY_CACHE_CAPACITY, StaticKeyStore, Verifier};
