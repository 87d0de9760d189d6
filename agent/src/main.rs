//! `quarry-agent`: the long-lived agent daemon the controller drives over gRPC.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("quarry-agent: the agent daemon is not built yet (see the distributed-runs issue)");
    ExitCode::from(2)
}
