//! The embedded simulator's own counters as a results document keeps them,
//! shown in the report beside the client's figures.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The simulator's own view of the run (all stages, warmup included).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimulatorView {
    /// Per model lane that saw a request.
    pub lanes: Vec<SimLane>,
    /// Per quota pool that saw a request.
    pub quota: Vec<SimQuotaPool>,
}

/// One simulator lane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimLane {
    /// Model id (or `unresolved`).
    pub model: String,
    /// Outcome → requests, all operations together.
    pub requests: BTreeMap<String, u64>,
    /// Throttle reason → count.
    pub throttles: BTreeMap<String, u64>,
    /// Requests the client abandoned.
    pub aborted: u64,
    /// Billed input tokens served.
    pub input_tokens: u64,
    /// Output tokens served.
    pub output_tokens: u64,
    /// Cache-read input tokens.
    pub cache_read_tokens: u64,
    /// Cache-write input tokens.
    pub cache_write_tokens: u64,
}

/// One simulator quota pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimQuotaPool {
    /// Account id.
    pub account_id: String,
    /// Base model.
    pub model: String,
    /// `on_demand` or the cross-Region geography.
    pub scope: String,
    /// Tokens-per-minute limit.
    pub tpm: u64,
    /// Tokens-per-day limit.
    pub tpd: u64,
    /// Requests-per-minute limit, if any.
    pub rpm: Option<u64>,
    /// Tokens reserved over the run.
    pub reserved_total: u64,
    /// Tokens settled over the run.
    pub settled_total: u64,
}
