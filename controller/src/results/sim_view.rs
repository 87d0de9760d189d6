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

impl SimulatorView {
    /// The parts of the simulator's stats snapshot a report shows.
    pub fn from_snapshot(s: &quarry_sim::StatsSnapshot) -> Self {
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
