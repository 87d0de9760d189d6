//! A quota pool's identity: a base model in one pool (on-demand, a
//! geography's cross-Region profiles, or global), as model ids name it.

use quarry_bedrock::quota::QuotaPool;
use quarry_bedrock::{base_model_id, geo_prefix};
use serde::{Deserialize, Serialize};

/// One quota pool: a base model in one pool (and geography).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PoolKey {
    /// The base model id.
    pub base: String,
    /// Which pool.
    pub pool: QuotaPool,
    /// The profile's geography (`us`, `eu` ...) for cross-Region pools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geo: Option<String>,
}

impl PoolKey {
    /// The pool `model_id` draws on; `None` outside the on-demand pools
    /// (for callers outside the planner, such as `quarry plan --quotas`).
    pub fn of_model_id(model_id: &str) -> Option<PoolKey> {
        PoolKey::of(model_id)
    }

    /// The pool `model_id` draws on; `None` outside the on-demand pools.
    pub(crate) fn of(model_id: &str) -> Option<PoolKey> {
        let pool = QuotaPool::of_model_id(model_id)?;
        Some(PoolKey {
            base: base_model_id(model_id).to_owned(),
            pool,
            geo: match pool {
                QuotaPool::CrossRegion => geo_prefix(model_id).map(str::to_owned),
                _ => None,
            },
        })
    }

    /// `meta.llama3-3-70b-instruct-v1:0 (on-demand)`, `... (cross-Region us)`.
    pub fn label(&self) -> String {
        match &self.geo {
            Some(geo) => format!("{} ({} {geo})", self.base, self.pool.as_str()),
            None => format!("{} ({})", self.base, self.pool.as_str()),
        }
    }

    /// The model id that invokes this pool.
    pub(crate) fn model_id(&self) -> String {
        match (self.pool, &self.geo) {
            (QuotaPool::OnDemand, _) => self.base.clone(),
            (QuotaPool::Global, _) => format!("global.{}", self.base),
            (QuotaPool::CrossRegion, Some(geo)) => format!("{geo}.{}", self.base),
            (QuotaPool::CrossRegion, None) => self.base.clone(),
        }
    }
}
