//! boto3 and the AWS CLI — the clients a user tries first — against the
//! in-process simulator, run as the user would run them (child processes,
//! `tests/support/clients.rs`). aws-sdk-rust has its own binary (`sdk.rs`).
//! One module per capability, in `tests/clients/` (a test crate's root
//! looks for its modules beside it, hence the paths).

#[path = "clients/basics.rs"]
mod basics;
#[path = "clients/quotas.rs"]
mod quotas;
#[path = "clients/simdefaults.rs"]
mod simdefaults;
#[path = "clients/tiers.rs"]
mod tiers;
