//! The simulator's Service Quotas view (service code `bedrock`): every quota
//! an account's requests are held to, named as Service Quotas names them
//! (`quarry_bedrock::quota::service_quota_name_for`), with the values the
//! simulator enforces (its catalog's defaults under the account's
//! overrides, `SimConfig::pool_limits`). The wire answer is `server::quotas`.
//!
//! Quota codes: the codes public sources quote for a quota
//! (`quarry_bedrock::quota::quota_code`) where one exists, else the
//! simulator's own: `L-` and the FNV-1a hash of the quota name as eight
//! hex digits, so a code is stable across runs and versions for as long as
//! the name is. They are not AWS's codes.

use quarry_bedrock::quota::{
    QuotaMetric, QuotaPool, quota_code, quota_fact, quota_model_name, service_quota_name_for,
};
use serde::Serialize;

use crate::catalog::{Catalog, ModelProfile};
use crate::config::{AccountConfig, SimConfig};
use crate::quota::PoolScope;

/// The SigV4 signing name of Service Quotas.
pub(crate) const SIGNING_NAME: &str = "servicequotas";

/// The service name Service Quotas reports for Bedrock.
pub const SERVICE_NAME: &str = "Amazon Bedrock";

/// One quota as the simulator serves it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimServiceQuota {
    /// The quota code (`L-` and eight hex digits; see the module doc).
    pub code: String,
    /// The quota name, as Service Quotas spells Bedrock's.
    pub name: String,
    /// The value enforced.
    pub value: u64,
    /// Whether an increase can be requested: the built-in fact where one
    /// says, else false for a model's fixed daily cap and true otherwise.
    pub adjustable: bool,
    /// The base model id it belongs to.
    pub model: String,
    /// Its pool.
    pub pool: QuotaPool,
    /// What it counts.
    pub metric: QuotaMetric,
}

/// Every quota of `account`, model by model in catalog order: on-demand
/// TPM (and RPM when enforced) for models served on demand; geographic
/// cross-Region TPM (and RPM); global TPM; the daily quota of geographic
/// calls and of global calls.
pub fn account_quotas(catalog: &Catalog, account: &AccountConfig) -> Vec<SimServiceQuota> {
    let mut out = Vec::new();
    for (_, profile) in catalog.models() {
        let name = quota_model_name(&profile.id).unwrap_or(&profile.id);
        let geo = SimConfig::pool_limits(account, profile, PoolScope::CrossRegion("us"));
        let global = SimConfig::pool_limits(account, profile, PoolScope::CrossRegion("global"));
        let mut rows: Vec<(QuotaPool, QuotaMetric, Option<u64>)> = Vec::new();
        if !profile.requires_profile {
            let od = SimConfig::pool_limits(account, profile, PoolScope::OnDemand);
            rows.push((
                QuotaPool::OnDemand,
                QuotaMetric::TokensPerMinute,
                Some(od.tpm),
            ));
            rows.push((QuotaPool::OnDemand, QuotaMetric::RequestsPerMinute, od.rpm));
        }
        rows.extend([
            (
                QuotaPool::CrossRegion,
                QuotaMetric::TokensPerMinute,
                Some(geo.tpm),
            ),
            (
                QuotaPool::CrossRegion,
                QuotaMetric::RequestsPerMinute,
                geo.rpm,
            ),
            (
                QuotaPool::CrossRegion,
                QuotaMetric::TokensPerDay,
                Some(geo.tpd),
            ),
            (
                QuotaPool::Global,
                QuotaMetric::TokensPerMinute,
                Some(global.tpm),
            ),
            (
                QuotaPool::Global,
                QuotaMetric::TokensPerDay,
                Some(global.tpd),
            ),
        ]);
        for (pool, metric, value) in rows {
            let (Some(value), Some(quota_name)) =
                (value, service_quota_name_for(name, pool, metric))
            else {
                continue;
            };
            let code = quota_code(&profile.id, pool, metric)
                .map_or_else(|| simulator_code(&quota_name), |c| c.code.to_owned());
            out.push(SimServiceQuota {
                code,
                name: quota_name,
                value,
                adjustable: adjustable(profile, pool, metric),
                model: profile.id.clone(),
                pool,
                metric,
            });
        }
    }
    out
}

fn adjustable(profile: &ModelProfile, pool: QuotaPool, metric: QuotaMetric) -> bool {
    if let Some(known) = quota_fact(&profile.id, pool, metric).and_then(|f| f.adjustable) {
        return known;
    }
    !(metric == QuotaMetric::TokensPerDay && profile.quotas.tpd.is_some())
}

/// The simulator's own code for a quota named `name`: `L-` and the 32-bit
/// FNV-1a hash of the name in upper-case hex.
pub fn simulator_code(name: &str) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    format!("L-{hash:08X}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use quarry_bedrock::quota::{model_for_quota_model_name, parse_service_quota_name};

    fn default_quotas() -> Vec<SimServiceQuota> {
        let config = SimConfig::default();
        let catalog = config.catalog().unwrap();
        let account = &config.effective_accounts()[0];
        account_quotas(&catalog, account)
    }

    #[test]
    fn codes_are_unique_and_stable() {
        let quotas = default_quotas();
        let mut codes: Vec<&str> = quotas.iter().map(|q| q.code.as_str()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), quotas.len());
        // FNV-1a of "a" is 0xE40C292C: the hash is the published one.
        assert_eq!(simulator_code("a"), "L-E40C292C");
        let sonnet_xr_tpm = quotas
            .iter()
            .find(|q| {
                q.model == "anthropic.claude-sonnet-4-5-20250929-v1:0"
                    && q.pool == QuotaPool::CrossRegion
                    && q.metric == QuotaMetric::TokensPerMinute
            })
            .unwrap();
        assert_eq!(sonnet_xr_tpm.code, "L-F4DDD3EB");
    }

    #[test]
    fn values_are_the_catalogs_and_names_read_back() {
        let config = SimConfig::default();
        let catalog = config.catalog().unwrap();
        let account = &config.effective_accounts()[0];
        for q in account_quotas(&catalog, account) {
            let parsed = parse_service_quota_name(&q.name).unwrap();
            assert_eq!(
                (parsed.pool, parsed.metric),
                (q.pool, q.metric),
                "{}",
                q.name
            );
            assert_eq!(
                model_for_quota_model_name(&parsed.model_name),
                Some(q.model.as_str()),
                "{}",
                q.name
            );
            let profile = catalog.profile(catalog.find(&q.model).unwrap());
            let scope = match q.pool {
                QuotaPool::OnDemand => PoolScope::OnDemand,
                QuotaPool::CrossRegion => PoolScope::CrossRegion("us"),
                QuotaPool::Global => PoolScope::CrossRegion("global"),
            };
            let limits = SimConfig::pool_limits(account, profile, scope);
            let want = match q.metric {
                QuotaMetric::TokensPerMinute => Some(limits.tpm),
                QuotaMetric::TokensPerDay => Some(limits.tpd),
                QuotaMetric::RequestsPerMinute => limits.rpm,
            };
            assert_eq!(Some(q.value), want, "{}", q.name);
        }
    }

    #[test]
    fn overrides_show_and_profile_only_models_have_no_on_demand_quota() {
        let config = SimConfig::from_toml(
            r#"
[[accounts]]
access_key_id = "AKIDQUOTAS"
secret_access_key = "secret"
account_id = "111122223333"
quotas = { rpm = 40 }
[accounts.model_quotas."meta.llama3-3-70b-instruct-v1:0"]
tpm = 1234
"#,
            "sim.toml",
        )
        .unwrap();
        let catalog = config.catalog().unwrap();
        let quotas = account_quotas(&catalog, &config.effective_accounts()[0]);
        let find = |model: &str, pool, metric| {
            quotas
                .iter()
                .find(|q| q.model == model && q.pool == pool && q.metric == metric)
                .map(|q| (q.value, q.adjustable))
        };
        let llama = "meta.llama3-3-70b-instruct-v1:0";
        assert_eq!(
            find(llama, QuotaPool::OnDemand, QuotaMetric::TokensPerMinute),
            Some((1234, true))
        );
        assert_eq!(
            find(llama, QuotaPool::OnDemand, QuotaMetric::RequestsPerMinute),
            Some((40, true))
        );
        let opus = "anthropic.claude-opus-4-6-v1";
        assert_eq!(
            find(opus, QuotaPool::OnDemand, QuotaMetric::TokensPerMinute),
            None
        );
        let daily = find(opus, QuotaPool::CrossRegion, QuotaMetric::TokensPerDay).unwrap();
        assert_eq!(
            daily.0,
            catalog
                .profile(catalog.find(opus).unwrap())
                .quotas
                .tpd
                .unwrap()
        );
        assert!(!daily.1, "Opus's daily cap is fixed");
    }
}
