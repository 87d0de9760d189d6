//! Why the daemon refused or failed a request. Each variant is one thing a
//! controller (or its operator) can act on; [`status_code`] is the one table
//! that maps them to gRPC status codes.

use quarry_engine::ShareError;
use quarry_proto::wire::WireError;
use tonic::{Code, Status};

/// A daemon request was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The bearer token is missing or wrong (the token itself never appears).
    #[error("missing or wrong bearer token in the authorization metadata")]
    Unauthenticated,
    /// The plan goes beyond one of this agent's guard rails.
    #[error("guard rail {rail}: {detail}")]
    GuardRail {
        /// The rail's name as `quarry-agent --help` and `Describe` spell it.
        rail: &'static str,
        /// What the plan asks for and what the rail allows.
        detail: String,
    },
    /// `RunRequest.plan_schema_version` is not the one this agent reads.
    #[error(
        "RunRequest.plan_schema_version {theirs} is not supported: this agent reads version {ours}; upgrade the older side"
    )]
    SchemaVersion {
        /// The version the controller sent.
        theirs: u32,
        /// The version this build reads.
        ours: u32,
    },
    /// `RunRequest.share_json` does not hold a valid share.
    #[error("RunRequest.share_json: {0}")]
    Plan(String),
    /// The `traceparent` metadata is malformed.
    #[error("Run metadata {0}")]
    Traceparent(#[from] quarry_engine::trace::TraceparentError),
    /// The share's run id differs from the request's.
    #[error("RunRequest.run_id {request:?} differs from share_json.run_id {share:?}")]
    RunIdMismatch {
        /// `RunRequest.run_id`.
        request: String,
        /// The share's `run_id`.
        share: String,
    },
    /// `RunRequest.start_at_unix_ns` is too far in the past or future.
    #[error("RunRequest.start_at_unix_ns: {detail}")]
    StartTime {
        /// How far off it is and what is allowed.
        detail: String,
    },
    /// The share could not be set up (endpoint, credentials, executor).
    #[error("cannot set up the share: {0}")]
    Share(#[from] ShareError),
    /// A run with this id exists already.
    #[error("run {0:?} already exists on this agent; re-attach with Results")]
    RunExists(String),
    /// Another run is live on this agent.
    #[error("agent is busy with run {live:?}; one run at a time per agent")]
    Busy {
        /// The live run's id.
        live: String,
    },
    /// No run with this id is live or stored.
    #[error("no run {0:?} on this agent (live or in its results directory)")]
    UnknownRun(String),
    /// `ResultsRequest.after_sequence` is beyond the end of a finished run.
    #[error(
        "ResultsRequest.after_sequence {after} is beyond the last event ({last}) of finished run {run_id:?}"
    )]
    SequenceAhead {
        /// The run.
        run_id: String,
        /// The sequence asked for.
        after: u64,
        /// The run's last sequence.
        last: u64,
    },
    /// The agent is shutting down and starts no new runs.
    #[error("agent is shutting down")]
    ShuttingDown,
    /// The results directory could not be written or read.
    #[error("results directory {path}: {detail}")]
    Storage {
        /// The file or directory.
        path: String,
        /// The I/O error.
        detail: String,
    },
    /// An event could not be encoded.
    #[error("encoding an event: {0}")]
    Wire(#[from] WireError),
}

/// The gRPC status code of each daemon error. This is the only place a
/// `tonic::Status` is built from a domain error.
pub(crate) fn status_code(err: &DaemonError) -> Code {
    match err {
        DaemonError::Unauthenticated => Code::Unauthenticated,
        DaemonError::GuardRail { .. } => Code::PermissionDenied,
        DaemonError::SchemaVersion { .. } => Code::FailedPrecondition,
        DaemonError::Plan(_) | DaemonError::RunIdMismatch { .. } | DaemonError::Traceparent(_) => {
            Code::InvalidArgument
        }
        DaemonError::StartTime { .. } => Code::InvalidArgument,
        DaemonError::Share(e) => match e {
            ShareError::Credentials(_) => Code::FailedPrecondition,
            _ => Code::InvalidArgument,
        },
        DaemonError::RunExists(_) => Code::AlreadyExists,
        DaemonError::Busy { .. } => Code::ResourceExhausted,
        DaemonError::UnknownRun(_) => Code::NotFound,
        DaemonError::SequenceAhead { .. } => Code::OutOfRange,
        DaemonError::ShuttingDown => Code::Unavailable,
        DaemonError::Storage { .. } | DaemonError::Wire(_) => Code::Internal,
    }
}

/// The status a daemon error is returned as: its code from [`status_code`]
/// and its message (which never holds a credential).
pub(crate) fn status(err: &DaemonError) -> Status {
    Status::new(status_code(err), err.to_string())
}

impl From<DaemonError> for Status {
    fn from(err: DaemonError) -> Self {
        status(&err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_table_maps_each_kind() {
        let cases = [
            (DaemonError::Unauthenticated, Code::Unauthenticated),
            (
                DaemonError::GuardRail {
                    rail: "max_rate_per_second",
                    detail: "x".into(),
                },
                Code::PermissionDenied,
            ),
            (DaemonError::UnknownRun("r".into()), Code::NotFound),
            (DaemonError::RunExists("r".into()), Code::AlreadyExists),
            (DaemonError::ShuttingDown, Code::Unavailable),
            (
                DaemonError::SchemaVersion { theirs: 2, ours: 1 },
                Code::FailedPrecondition,
            ),
        ];
        for (err, code) in cases {
            let s = status(&err);
            assert_eq!(s.code(), code, "{err}");
            assert_eq!(s.message(), err.to_string());
        }
        let s = status(&DaemonError::GuardRail {
            rail: "max_rate_per_second",
            detail: "plan peaks at 50/s, agent allows 10/s".into(),
        });
        assert!(
            s.message().contains("max_rate_per_second"),
            "{}",
            s.message()
        );
    }
}
