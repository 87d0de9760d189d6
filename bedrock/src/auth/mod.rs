//! SigV4 signing and verification and Bedrock API keys (PROTOCOL.md §1.4,
//! §1.5, §4.4, §7.1).
//!
//! The agent signs with [`Signer`] (credentials come from the engine's
//! credential chain, which lives next to the executor that uses it); the
//! simulator checks requests with [`Verifier`] (the head first,
//! [`HeadVerified`], then the body's [`PayloadHash`]) and answers failures
//! with the [`AuthFailure`]'s code and message. The AWS documentation's
//! example keys, which the simulator serves by default and clients sign with
//! against it, are defined once here: [`EXAMPLE_ACCESS_KEY_ID`],
//! [`EXAMPLE_SECRET_ACCESS_KEY`].

mod amz_date;
mod authorization;
mod bearer;
mod caller;
mod canonical;
mod failure;
mod secret;
mod sign;
mod verify;

/// Re-exported so callers can build static credentials without another dependency.
pub use aws_credential_types::Credentials;
pub use bearer::{API_KEY_PREFIXES, ApiKey};
pub use caller::{CallerScheme, HeadVerified, PayloadHash, PayloadHasher, VerifiedCaller};
pub use failure::AuthFailure;
pub use secret::{Secret, WallClock};
pub use sign::{SIGNING_NAME, SignError, Signer};
pub use verify::{AccessKey, KeyStore, SIGNING_KEY_CACHE_CAPACITY, StaticKeyStore, Verifier};

/// The access key id of the AWS documentation's example credentials: the
/// simulator's built-in account, which clients sign with against it.
pub const EXAMPLE_ACCESS_KEY_ID: &str = "AKIDEXAMPLE";
/// The secret of [`EXAMPLE_ACCESS_KEY_ID`].
pub const EXAMPLE_SECRET_ACCESS_KEY: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
