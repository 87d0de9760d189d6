//! What one agent is asked to run, as it travels from the controller to the
//! agent (JSON inside `quarry.v1.RunRequest`), and how that JSON evolves.

use std::sync::Arc;

use crate::arrival::Interleave;
use crate::plan::RunPlan;
use crate::scheduler::EngineConfig;
use crate::trace::TraceSampling;

/// What one agent is asked to run: its share of a plan, as it travels from
/// the controller to the agent (JSON inside `quarry.v1.RunRequest`).
///
/// Evolution: fields are only added, each optional with a default that
/// means what an older controller meant, and a reader ignores fields it
/// does not know — so an older agent reads a newer controller's share.
/// When a new field changes what a share does (an older agent ignoring it
/// would run something else), the controller names it in
/// [`ShareSpec::requires`], and an agent refuses a share that requires a
/// feature it lacks ([`ShareSpec::unsupported`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ShareSpec {
    /// The run this share belongs to.
    pub run_id: String,
    /// The plan with its load already scaled to this share.
    pub plan: RunPlan,
    /// The agent group this share reports under (region / account alias).
    pub group: String,
    /// Distinguishes this share's workload draws from every other share's.
    pub stream: u64,
    /// Seeds this share's arrival schedule.
    pub arrival_seed: u64,
    /// Constant-arrival phase in [0, 1): share k of K equal shares gets
    /// k/K, so merged arrivals stay evenly spaced.
    pub phase: f64,
    /// Constant-arrival slots on the run's grid when shares are weighted
    /// unequally (then `phase` is unused); absent otherwise. A share that
    /// carries it requires [`FEATURE_INTERLEAVE`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interleave: Option<Interleave>,
    /// Snapshot interval, milliseconds.
    pub interval_ms: u64,
    /// The simulator's address as this agent reaches it, when the target is
    /// the simulator.
    pub sim_url: Option<String>,
    /// How this share samples request spans; `None` when the run is not
    /// traced. The trace context itself travels as gRPC metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<TraceSampling>,
    /// Features the agent must understand to run this share as meant (see
    /// the type's docs); empty when it needs none beyond version 1.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requires: Vec<String>,
}

/// The version of [`ShareSpec`]'s JSON; bumped on an incompatible change.
pub const SHARE_SCHEMA_VERSION: u32 = 1;

/// The feature a share with [`ShareSpec::interleave`] requires.
pub const FEATURE_INTERLEAVE: &str = "interleave";

/// The feature a share whose plan has a [`crate::RequestSlo`] requires: an
/// agent that ignored it would count no request as meeting the SLO.
pub const FEATURE_REQUEST_SLO: &str = "request_slo";

/// The feature a share whose plan paces throttles ([`RunPlan::on_throttle`]
/// other than none) requires: an agent that ignored it would fire at the
/// quota wall without pausing.
pub const FEATURE_THROTTLE_PACING: &str = "throttle_pacing";

/// The feature a share whose mix names a service tier
/// ([`crate::MixEntry::service_tier`]) requires: an agent that ignored it
/// would send every request at Standard and price it so.
pub const FEATURE_SERVICE_TIER: &str = "service_tier";
/// The feature a share whose replayed requests carry a cached prefix
/// ([`crate::ReplayRequest::cache_prefix`]) requires: an agent that ignored
/// it would send the prefix's tokens as plain text, without a cache point.
pub const FEATURE_REPLAY_CACHE_PREFIX: &str = "replay_cache_prefix";
/// The feature a share whose plan replays a trace ([`RunPlan::replay`])
/// requires: an agent that ignored it would fire the load's rate with
/// requests drawn from the mix, not the trace.
pub const FEATURE_REPLAY: &str = "replay";
/// The feature a share whose plan runs multi-turn sessions
/// ([`RunPlan::sessions`]) requires: an agent that ignored it would send
/// single requests instead of conversations.
pub const FEATURE_SESSIONS: &str = "sessions";

/// Every share feature this build understands (its agents also list them as
/// `Describe` capabilities).
pub const SHARE_FEATURES: &[&str] = &[
    FEATURE_INTERLEAVE,
    FEATURE_REQUEST_SLO,
    FEATURE_THROTTLE_PACING,
    FEATURE_SERVICE_TIER,
    FEATURE_REPLAY_CACHE_PREFIX,
    FEATURE_REPLAY,
    FEATURE_SESSIONS,
];

impl ShareSpec {
    /// The features this share requires that `known` does not hold, in
    /// order; an agent refuses the share when any is missing.
    pub fn unsupported<'a>(&'a self, known: &[&str]) -> Vec<&'a str> {
        self.requires
            .iter()
            .map(String::as_str)
            .filter(|f| !known.contains(f))
            .collect()
    }

    /// The engine configuration of this share.
    pub fn engine_config(&self) -> EngineConfig {
        EngineConfig {
            group: Arc::from(self.group.as_str()),
            seed: self.arrival_seed,
            phase: self.phase,
            interleave: self.interleave.clone().map(Arc::new),
            interval: std::time::Duration::from_millis(self.interval_ms.max(1)),
            request_slo: self.plan.request_slo,
            on_throttle: self.plan.on_throttle,
            sessions: self.plan.sessions,
            replay_at: self.plan.replay.as_ref().map(|r| {
                r.requests()
                    .iter()
                    .map(|q| q.at_ns)
                    .collect::<Vec<_>>()
                    .into()
            }),
            ..EngineConfig::default()
        }
    }
}
