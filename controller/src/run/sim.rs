//! The embedded simulator (cargo feature `sim`, on by default): its
//! configuration from the plan's `target.sim_profile`, and what the live
//! view and the results document read from its own counters.
//!
//! Without the feature a controller build drives Bedrock only, and a plan
//! whose target is the simulator is refused before anything runs.

use super::RunError;
use crate::results::SimulatorView;

/// The names `target.sim_profile` accepts besides a path to a simulator
/// config file (`*.toml`, relative to the spec's directory).
pub const SIM_PROFILES: [&str; 2] = ["default", "zero"];

#[cfg(feature = "sim")]
pub use embedded::{EmbeddedSim, sim_config};

#[cfg(feature = "sim")]
mod embedded {
    use std::collections::BTreeMap;
    use std::path::Path;

    use quarry_sim::{LatencyModel, SimConfig, SimServer, StatsSnapshot};

    use super::{RunError, SIM_PROFILES, SimulatorView};
    use crate::results::{SimLane, SimQuotaPool};

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

    /// A simulator running in this process on a free loopback port.
    pub struct EmbeddedSim {
        server: SimServer,
    }

    impl EmbeddedSim {
        /// Starts the simulator `profile` names (see [`sim_config`]).
        pub async fn start(
            profile: Option<&str>,
            spec_dir: &Path,
            seed: u64,
        ) -> Result<Self, RunError> {
            let config = sim_config(profile, spec_dir, seed)?;
            let server = SimServer::start(&config)
                .await
                .map_err(|e| RunError::Simulator(e.to_string()))?;
            Ok(EmbeddedSim { server })
        }

        /// Its base URL.
        pub fn url(&self) -> String {
            self.server.url()
        }

        /// The configured TPM of every quota pool that has seen a request,
        /// summed (one pool in the common single-model run); `None` before
        /// any request.
        pub fn quota_tpm(&self) -> Option<u64> {
            let snapshot = self.server.simulator().stats_snapshot();
            let pools = &snapshot.quota;
            (!pools.is_empty()).then(|| pools.iter().map(|q| q.tpm).sum())
        }

        /// The simulator's counters as the results document keeps them.
        pub fn view(&self) -> SimulatorView {
            view(&self.server.simulator().stats_snapshot())
        }
    }

    /// The parts of the simulator's stats snapshot a report shows.
    fn view(s: &StatsSnapshot) -> SimulatorView {
        let lanes = s
            .lanes
            .iter()
            .filter(|l| !l.requests.is_empty() || l.aborted > 0)
            .map(|l| {
                let mut requests = BTreeMap::new();
                for r in &l.requests {
                    *requests.entry(r.outcome.to_owned()).or_insert(0) += r.count;
                }
                SimLane {
                    model: l.model.clone(),
                    requests,
                    throttles: l
                        .throttles
                        .iter()
                        .map(|t| (t.reason.to_owned(), t.count))
                        .collect(),
                    aborted: l.aborted,
                    input_tokens: l.tokens.input_tokens,
                    output_tokens: l.tokens.output_tokens,
                    cache_read_tokens: l.tokens.cache_read_input_tokens,
                    cache_write_tokens: l.tokens.cache_write_input_tokens,
                }
            })
            .collect();
        let quota = s
            .quota
            .iter()
            .map(|q| SimQuotaPool {
                account_id: q.account_id.clone(),
                model: q.model.clone(),
                scope: q.scope.clone(),
                tpm: q.tpm,
                tpd: q.tpd,
                rpm: q.rpm,
                reserved_total: q.reserved_total,
                settled_total: q.settled_total,
            })
            .collect();
        SimulatorView { lanes, quota }
    }
}

/// Without the embedded simulator there is never one running.
#[cfg(not(feature = "sim"))]
pub enum EmbeddedSim {}

#[cfg(not(feature = "sim"))]
impl EmbeddedSim {
    /// Refuses: this build has no simulator to start.
    pub async fn start(
        _profile: Option<&str>,
        _spec_dir: &std::path::Path,
        _seed: u64,
    ) -> Result<Self, RunError> {
        Err(RunError::Simulator(
            "this quarry was built without the embedded simulator (cargo feature `sim`): \
             run `quarry-sim` and set target.kind = \"aws\" with target.endpoint at it"
                .to_owned(),
        ))
    }

    /// Unreachable: no value exists.
    pub fn url(&self) -> String {
        match *self {}
    }

    /// Unreachable: no value exists.
    pub fn quota_tpm(&self) -> Option<u64> {
        match *self {}
    }

    /// Unreachable: no value exists.
    pub fn view(&self) -> SimulatorView {
        match *self {}
    }
}
