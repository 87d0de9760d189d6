//! The embedded simulator: its configuration from the plan's
//! `target.sim_profile`, and the stats the live view and report read.

use std::path::Path;

use quarry_sim::{LatencyModel, SimConfig, SimServer};

use super::RunError;
use crate::results::SimulatorView;

/// The names `target.sim_profile` accepts besides a path to a simulator
/// config file (`*.toml`, relative to the spec's directory).
pub const SIM_PROFILES: [&str; 2] = ["default", "zero"];

/// The simulator configuration for `profile`:
/// - unset or `"default"`: the built-in catalog, each model with its own
///   calibrated latency profile;
/// - `"zero"`: no latency at all (load-generator benchmarks);
/// - a path ending in `.toml`: a `quarry-sim` config file, as `quarry-sim
///   --config` reads it.
///
/// The built-in configurations take the plan's seed, so a run repeats.
pub fn sim_config(
    profile: Option<&str>,
    spec_dir: &Path,
    seed: u64,
) -> Result<SimConfig, RunError> {
    match profile {
        None | Some("default") => Ok(SimConfig {
            seed,
            ..SimConfig::default()
        }),
        Some("zero") => Ok(SimConfig {
            seed,
            latency: Some(LatencyModel::Zero),
            ..SimConfig::default()
        }),
        Some(p) if p.ends_with(".toml") => {
            let path = spec_dir.join(p);
            SimConfig::load(&path)
                .map_err(|e| RunError::SimProfile(format!("target.sim_profile {p:?}: {e}")))
        }
        Some(other) => Err(RunError::SimProfile(format!(
            "target.sim_profile {other:?}: expected one of {} or a simulator config file (*.toml)",
            SIM_PROFILES.join(", ")
        ))),
    }
}

/// Starts the simulator on a free loopback port.
pub(super) async fn start(config: &SimConfig) -> Result<SimServer, RunError> {
    SimServer::start(config)
        .await
        .map_err(|e| RunError::Simulator(e.to_string()))
}

/// The configured TPM of every quota pool that has seen a request, summed
/// (one pool in the common single-model run); `None` before any request.
pub(super) fn quota_tpm(server: &SimServer) -> Option<u64> {
    let snapshot = server.simulator().stats_snapshot();
    let pools = &snapshot.quota;
    (!pools.is_empty()).then(|| pools.iter().map(|q| q.tpm).sum())
}

/// The simulator's counters as the results document keeps them.
pub(super) fn view(server: &SimServer) -> SimulatorView {
    SimulatorView::from_snapshot(&server.simulator().stats_snapshot())
}
