//! The model catalog: every model the simulator serves, its profile (limits,
//! default quotas, prompt-cache rules, latency, answer lengths), and how a
//! request's model id (base id, `us.`/`eu.`/`global.` profile, ARN,
//! provisioned-throughput ARN) resolves to a profile, a quota route and a
//! runtime lane.
//!
//! Default quotas are the figures Quarry was built from where it has them
//! (`quarry_bedrock::quota::quota_facts`, each with its source: Llama 3.3 70B,
//! Claude Opus 4.6, Claude Sonnet 4.5 and 4.6) and illustrative round numbers
//! otherwise (PROTOCOL.md §5.3: real values vary by account, Region and
//! account age). docs/sim-defaults.md lists every figure with its source;
//! every one can be overridden in the config file.

use std::collections::HashMap;
use std::sync::Arc;

use quarry_bedrock::quota::{QuotaMetric, QuotaPool, quota_fact};
use quarry_bedrock::{
    ErrorCode, ModelFamily, base_model_id, geo_prefix, messages, output_burndown,
};
use serde::Serialize;

use crate::latency::{ContendedLatency, LatencyModel};
use crate::text::OutputLength;

/// Default per-model quotas (PROTOCOL.md §5.1, §5.3), before account overrides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ModelQuotas {
    /// On-demand tokens per minute (single-Region ids).
    pub tpm: u64,
    /// Cross-Region tokens per minute (`us.`, `eu.`, `global.` ... ids).
    pub cross_region_tpm: u64,
    /// On-demand tokens per day when fixed; `None` means the AWS default of
    /// TPM × 1440.
    pub tpd: Option<u64>,
    /// Cross-Region tokens per day when fixed (Claude Opus 4.6: 2,592,000,
    /// not adjustable); `None` means cross-Region TPM × 1440.
    pub cross_region_tpd: Option<u64>,
    /// On-demand requests per minute, enforced when set (Llama 3.3 70B:
    /// 800); `None` = no RPM quota, as AWS has had for most models since
    /// May 2026 (PROTOCOL.md §5.1).
    pub rpm: Option<u64>,
    /// Cross-Region requests per minute, enforced when set (Claude Opus 4.6:
    /// 25).
    pub cross_region_rpm: Option<u64>,
}

impl ModelQuotas {
    /// Replaces figures with the built-in quota facts Quarry was built from
    /// (`quarry_bedrock::quota::quota_facts`), where there is one for
    /// `model_id`: the one table both the simulator and the planner read.
    fn with_facts(mut self, model_id: &str) -> Self {
        use QuotaMetric::{RequestsPerMinute as Rpm, TokensPerDay as Tpd, TokensPerMinute as Tpm};
        use QuotaPool::{CrossRegion, OnDemand};
        let fact = |pool, metric| quota_fact(model_id, pool, metric).map(|f| f.value);
        self.tpm = fact(OnDemand, Tpm).unwrap_or(self.tpm);
        self.tpd = fact(OnDemand, Tpd).or(self.tpd);
        self.rpm = fact(OnDemand, Rpm).or(self.rpm);
        self.cross_region_tpm = fact(CrossRegion, Tpm).unwrap_or(self.cross_region_tpm);
        self.cross_region_tpd = fact(CrossRegion, Tpd).or(self.cross_region_tpd);
        self.cross_region_rpm = fact(CrossRegion, Rpm).or(self.cross_region_rpm);
        self
    }
}

/// Prompt-caching rules of a model (PROTOCOL.md §5.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CacheRules {
    /// Tokens a prefix needs before a checkpoint counts; below it the
    /// checkpoint is silently ignored.
    pub min_tokens: u64,
    /// True when the model accepts the 1-hour TTL.
    pub ttl_1h: bool,
}

/// Everything the simulator knows about one base model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelProfile {
    /// The base model id (`meta.llama3-3-70b-instruct-v1:0`).
    pub id: String,
    /// The provider family, which fixes the native body format.
    pub family: ModelFamily,
    /// The model's output limit: the largest `max_tokens` accepted, and what
    /// a request without `max_tokens` reserves (PROTOCOL.md §5.2).
    pub max_output_tokens: u64,
    /// The context window: input tokens beyond it are rejected.
    pub context_window: u64,
    /// Quota tokens per output token (5 for Claude 3.7+, else 1).
    pub burndown: u64,
    /// Default quotas.
    pub quotas: ModelQuotas,
    /// Prompt caching, if the model supports it.
    pub cache: Option<CacheRules>,
    /// True when the base id is refused on-demand and only inference
    /// profiles (`us.` ...) work (Claude 3.7 and newer, PROTOCOL.md §5.4).
    pub requires_profile: bool,
    /// How the model spends time.
    pub latency: LatencyModel,
    /// How long its answers are before `max_tokens`.
    pub output: OutputLength,
    /// Decode slots one provisioned-throughput model unit buys.
    pub streams_per_model_unit: u32,
}

/// Index of a model in the catalog (dense, stable for the process).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ModelIdx(pub(crate) u32);

impl ModelIdx {
    /// The index as a `usize`, for arrays keyed by model.
    pub fn get(self) -> usize {
        self.0 as usize
    }
}

/// A provisioned-throughput model: its ARN, base model and model units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProvisionedModel {
    /// `arn:aws:bedrock:{region}:{account}:provisioned-model/{id}`.
    pub arn: String,
    /// The base model it serves.
    pub model: ModelIdx,
    /// Model units bought: its decode capacity is units × streams per unit.
    pub model_units: u32,
}

/// Which quota pool and capacity a request draws on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Route {
    /// A base id or foundation-model ARN: the on-demand pool.
    OnDemand,
    /// A cross-Region inference profile: the pool of that geography.
    CrossRegion {
        /// The prefix (`us`, `eu`, `global` ...).
        geo: &'static str,
    },
    /// A provisioned-throughput ARN: no token quota, bounded by model units.
    Provisioned {
        /// Index into [`Catalog::provisioned`].
        index: u32,
    },
}

/// A model id resolved against the catalog.
#[derive(Debug, Clone)]
pub struct ResolvedModel {
    /// The base model.
    pub model: ModelIdx,
    /// Its profile.
    pub profile: Arc<ModelProfile>,
    /// Quota pool selection.
    pub route: Route,
    /// The runtime lane (decode capacity) that serves it: one per base model
    /// for on-demand and cross-Region traffic, one per provisioned model.
    pub lane: usize,
}

/// A model id the simulator will not serve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// Not a model in the catalog, nor a configured provisioned model.
    #[error("{}", messages::INVALID_MODEL_ID)]
    UnknownModel,
    /// A base id of a model that only serves through inference profiles.
    #[error(
        "Invocation of model ID {0} with on-demand throughput isn\u{2019}t supported. Retry your request with the ID or ARN of an inference profile that contains this model."
    )]
    NeedsInferenceProfile(String),
    /// CountTokens with an inference-profile or provisioned-model id: it
    /// takes a foundation model's id (PROTOCOL.md §2.3).
    #[error("The provided model doesn't support counting tokens.")]
    CountingNeedsFoundationModel,
}

impl ResolveError {
    /// Both are `ValidationException`s on the wire (PROTOCOL.md §4.3).
    pub fn code(&self) -> ErrorCode {
        ErrorCode::ValidationException
    }
}

/// The set of models served.
#[derive(Debug, Clone)]
pub struct Catalog {
    models: Vec<Arc<ModelProfile>>,
    by_id: HashMap<String, ModelIdx>,
    provisioned: Vec<ProvisionedModel>,
    provisioned_by_arn: HashMap<String, u32>,
}

impl Catalog {
    /// The built-in models with their default profiles.
    pub fn builtin() -> Self {
        let mut catalog = Catalog {
            models: Vec::new(),
            by_id: HashMap::new(),
            provisioned: Vec::new(),
            provisioned_by_arn: HashMap::new(),
        };
        for row in BUILTIN {
            catalog.upsert(row.profile());
        }
        catalog
    }

    /// Adds a model, or replaces the profile of one with the same id.
    pub fn upsert(&mut self, profile: ModelProfile) -> ModelIdx {
        if let Some(&idx) = self.by_id.get(&profile.id) {
            self.models[idx.get()] = Arc::new(profile);
            return idx;
        }
        // unwrap-free: a catalog of 4 billion models is not a concern, saturate.
        let idx = ModelIdx(u32::try_from(self.models.len()).unwrap_or(u32::MAX));
        self.by_id.insert(profile.id.clone(), idx);
        self.models.push(Arc::new(profile));
        idx
    }

    /// Registers a provisioned-throughput ARN for a model already present.
    pub fn add_provisioned(&mut self, arn: String, model: ModelIdx, model_units: u32) {
        let index = u32::try_from(self.provisioned.len()).unwrap_or(u32::MAX);
        self.provisioned_by_arn.insert(arn.clone(), index);
        self.provisioned.push(ProvisionedModel {
            arn,
            model,
            model_units,
        });
    }

    /// The model with this base id.
    pub fn find(&self, base_id: &str) -> Option<ModelIdx> {
        self.by_id.get(base_id).copied()
    }

    /// The profile of a model.
    pub fn profile(&self, idx: ModelIdx) -> &Arc<ModelProfile> {
        &self.models[idx.get()]
    }

    /// Every model, in index order.
    pub fn models(&self) -> impl Iterator<Item = (ModelIdx, &Arc<ModelProfile>)> {
        self.models
            .iter()
            .enumerate()
            .map(|(i, p)| (ModelIdx(i as u32), p))
    }

    /// Number of models.
    pub fn len(&self) -> usize {
        self.models.len()
    }

    /// True when the catalog has no models.
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }

    /// The provisioned models, in lane order after the base models.
    pub fn provisioned(&self) -> &[ProvisionedModel] {
        &self.provisioned
    }

    /// Number of runtime lanes: one per model, then one per provisioned model.
    pub fn lane_count(&self) -> usize {
        self.models.len() + self.provisioned.len()
    }

    /// A name for a lane in stats: the model id, or the provisioned ARN.
    pub fn lane_name(&self, lane: usize) -> &str {
        match self.models.get(lane) {
            Some(p) => &p.id,
            None => self
                .provisioned
                .get(lane - self.models.len())
                .map_or("unknown", |p| p.arn.as_str()),
        }
    }

    /// Resolves the model id of a request (already percent-decoded).
    pub fn resolve(&self, model_id: &str) -> Result<ResolvedModel, ResolveError> {
        if model_id.contains(":provisioned-model/") {
            let index = *self
                .provisioned_by_arn
                .get(model_id)
                .ok_or(ResolveError::UnknownModel)?;
            let pt = &self.provisioned[index as usize];
            return Ok(ResolvedModel {
                model: pt.model,
                profile: Arc::clone(self.profile(pt.model)),
                route: Route::Provisioned { index },
                lane: self.models.len() + index as usize,
            });
        }
        let base = base_model_id(model_id);
        let idx = self.find(base).ok_or(ResolveError::UnknownModel)?;
        let profile = Arc::clone(self.profile(idx));
        let geo = geo_prefix(model_id);
        let route = match geo {
            Some(geo) => Route::CrossRegion { geo },
            None if profile.requires_profile => {
                return Err(ResolveError::NeedsInferenceProfile(base.to_owned()));
            }
            None => Route::OnDemand,
        };
        Ok(ResolvedModel {
            model: idx,
            profile,
            route,
            lane: idx.get(),
        })
    }
}

impl Catalog {
    /// Resolves the model id of a CountTokens request, which names a
    /// foundation model (a base id or a foundation-model ARN), also one that
    /// serves only through inference profiles; a profile or provisioned id of
    /// a known model is refused (PROTOCOL.md §2.3). Counting is unmetered, so
    /// the route is always on-demand.
    pub fn resolve_for_counting(&self, model_id: &str) -> Result<ResolvedModel, ResolveError> {
        if model_id.contains(":provisioned-model/") {
            return match self.provisioned_by_arn.contains_key(model_id) {
                true => Err(ResolveError::CountingNeedsFoundationModel),
                false => Err(ResolveError::UnknownModel),
            };
        }
        let idx = self
            .find(base_model_id(model_id))
            .ok_or(ResolveError::UnknownModel)?;
        if geo_prefix(model_id).is_some() {
            return Err(ResolveError::CountingNeedsFoundationModel);
        }
        Ok(ResolvedModel {
            model: idx,
            profile: Arc::clone(self.profile(idx)),
            route: Route::OnDemand,
            lane: idx.get(),
        })
    }
}

/// The latency/limit tier a built-in model shares with its siblings.
#[derive(Debug, Clone, Copy)]
enum Tier {
    ClaudeSonnet,
    ClaudeHaiku,
    ClaudeOpus,
    Llama70b,
    Llama8b,
    NovaPro,
    NovaLite,
    NovaMicro,
    NovaPremier,
    Titan,
}

impl Tier {
    /// Latency relative to the calibrated Llama 3.3 70B profile:
    /// (decode speed factor, base TTFT ms, prefill tokens/s, capacity).
    /// Only Llama 3.3 70B is calibrated against field figures; the others are
    /// plausible orderings (Haiku/Micro fast, Opus slow), not measurements.
    fn latency(self) -> LatencyModel {
        let llama = ContendedLatency::llama3_3_70b();
        let (speed, ttft, prefill, capacity) = match self {
            Tier::Llama70b => return LatencyModel::Contended(llama),
            Tier::Llama8b => (2.0, 200.0, 40_000.0, 128),
            Tier::ClaudeSonnet => (0.55, 600.0, 12_000.0, 96),
            Tier::ClaudeHaiku => (1.0, 400.0, 24_000.0, 128),
            Tier::ClaudeOpus => (0.35, 1_200.0, 6_000.0, 48),
            Tier::NovaPro => (0.7, 350.0, 20_000.0, 96),
            Tier::NovaLite => (1.3, 250.0, 30_000.0, 128),
            Tier::NovaMicro => (1.6, 200.0, 40_000.0, 160),
            Tier::NovaPremier => (0.5, 700.0, 10_000.0, 64),
            Tier::Titan => (0.6, 400.0, 10_000.0, 64),
        };
        LatencyModel::Contended(llama.scaled(speed, ttft, prefill, capacity))
    }
}

/// One built-in model: id, tier, output limit, context window, on-demand
/// TPM, cross-Region TPM, fixed TPD, cache minimum (0 = no caching), 1 h TTL,
/// requires an inference profile.
struct BuiltinRow(
    &'static str,
    Tier,
    u64,
    u64,
    u64,
    u64,
    Option<u64>,
    u64,
    bool,
    bool,
);

impl BuiltinRow {
    fn profile(&self) -> ModelProfile {
        let BuiltinRow(id, tier, max_out, ctx, tpm, xr_tpm, tpd, cache_min, ttl_1h, needs_profile) =
            *self;
        // unwrap-free: every built-in id carries its family.
        let family = ModelFamily::from_model_id(id).unwrap_or(ModelFamily::Titan);
        ModelProfile {
            id: id.to_owned(),
            family,
            max_output_tokens: max_out,
            context_window: ctx,
            burndown: output_burndown(id),
            quotas: ModelQuotas {
                tpm,
                cross_region_tpm: xr_tpm,
                tpd,
                cross_region_tpd: tpd,
                rpm: None,
                cross_region_rpm: None,
            }
            .with_facts(id),
            cache: (cache_min > 0).then_some(CacheRules {
                min_tokens: cache_min,
                ttl_1h,
            }),
            requires_profile: needs_profile,
            latency: tier.latency(),
            output: OutputLength::LogNormal {
                median: 300.0,
                sigma: 0.6,
            },
            streams_per_model_unit: 8,
        }
    }
}

/// Claude Opus 4.6's fixed daily cap (CAPACITY.md §1), copied to the older
/// Opus models as an illustration of the same wall.
const OPUS_TPD: Option<u64> = Some(2_592_000);

/// Claude Sonnet's daily cap, 3.6 billion tokens (CAPACITY.md §1; the source
/// names no version: the quota facts hold it for Sonnet 4.5, the catalog
/// gives it to Sonnet 4.5 and 4.6).
const SONNET_TPD: Option<u64> = Some(3_600_000_000);

/// Built-in models. Where `quarry_bedrock::quota` has a fact for a model
/// (Llama 3.3 70B, Claude Opus 4.6, Claude Sonnet 4.5), the fact
/// replaces the row's figure ([`ModelQuotas::with_facts`]). Other TPM
/// values: Claude 3.5 Sonnet's 400,000 is the PROTOCOL.md §5.3 figure; the
/// rest are illustrative round numbers in the same range, cross-Region twice
/// on-demand (the 20,000 cross-Region TPM §5.3 reports is a new account's
/// reduced quota: configure it to rehearse that wall). docs/sim-defaults.md
/// lists them all with their sources.
#[rustfmt::skip]
const BUILTIN: [BuiltinRow; 22] = {
    use Tier::*;
    [
        BuiltinRow("anthropic.claude-3-haiku-20240307-v1:0", ClaudeHaiku, 4_096, 200_000, 2_000_000, 4_000_000, None, 0, false, false),
        BuiltinRow("anthropic.claude-3-5-haiku-20241022-v1:0", ClaudeHaiku, 8_192, 200_000, 2_000_000, 4_000_000, None, 2_048, false, false),
        BuiltinRow("anthropic.claude-3-5-sonnet-20240620-v1:0", ClaudeSonnet, 8_192, 200_000, 400_000, 800_000, None, 0, false, false),
        BuiltinRow("anthropic.claude-3-5-sonnet-20241022-v2:0", ClaudeSonnet, 8_192, 200_000, 400_000, 800_000, None, 1_024, false, false),
        BuiltinRow("anthropic.claude-3-7-sonnet-20250219-v1:0", ClaudeSonnet, 64_000, 200_000, 200_000, 400_000, None, 1_024, false, true),
        BuiltinRow("anthropic.claude-sonnet-4-20250514-v1:0", ClaudeSonnet, 64_000, 200_000, 200_000, 400_000, None, 1_024, false, true),
        BuiltinRow("anthropic.claude-sonnet-4-5-20250929-v1:0", ClaudeSonnet, 64_000, 200_000, 400_000, 800_000, SONNET_TPD, 1_024, true, true),
        BuiltinRow("anthropic.claude-sonnet-4-6", ClaudeSonnet, 64_000, 200_000, 400_000, 800_000, SONNET_TPD, 2_048, true, true),
        BuiltinRow("anthropic.claude-haiku-4-5-20251001-v1:0", ClaudeHaiku, 64_000, 200_000, 400_000, 800_000, None, 4_096, true, true),
        BuiltinRow("anthropic.claude-opus-4-20250514-v1:0", ClaudeOpus, 32_000, 200_000, 200_000, 400_000, OPUS_TPD, 1_024, false, true),
        BuiltinRow("anthropic.claude-opus-4-1-20250805-v1:0", ClaudeOpus, 32_000, 200_000, 200_000, 400_000, OPUS_TPD, 1_024, false, true),
        BuiltinRow("anthropic.claude-opus-4-5-20251101-v1:0", ClaudeOpus, 64_000, 200_000, 200_000, 400_000, OPUS_TPD, 4_096, true, true),
        BuiltinRow("anthropic.claude-opus-4-6-v1", ClaudeOpus, 64_000, 200_000, 200_000, 2_000_000, OPUS_TPD, 4_096, true, true),
        BuiltinRow("meta.llama3-3-70b-instruct-v1:0", Llama70b, 8_192, 128_000, 600_000, 1_200_000, None, 0, false, false),
        BuiltinRow("meta.llama3-1-8b-instruct-v1:0", Llama8b, 8_192, 128_000, 600_000, 1_200_000, None, 0, false, false),
        BuiltinRow("amazon.nova-pro-v1:0", NovaPro, 10_000, 300_000, 400_000, 800_000, None, 1_024, false, false),
        BuiltinRow("amazon.nova-lite-v1:0", NovaLite, 10_000, 300_000, 2_000_000, 4_000_000, None, 1_536, false, false),
        BuiltinRow("amazon.nova-micro-v1:0", NovaMicro, 10_000, 128_000, 2_000_000, 4_000_000, None, 1_536, false, false),
        BuiltinRow("amazon.nova-premier-v1:0", NovaPremier, 32_000, 1_000_000, 200_000, 400_000, None, 1_024, false, true),
        BuiltinRow("amazon.titan-text-express-v1", Titan, 8_192, 8_192, 300_000, 600_000, None, 0, false, false),
        BuiltinRow("amazon.titan-text-lite-v1", Titan, 4_096, 4_096, 300_000, 600_000, None, 0, false, false),
        BuiltinRow("amazon.titan-text-premier-v1:0", Titan, 3_072, 32_000, 300_000, 600_000, None, 0, false, false),
    ]
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_every_id_form() {
        let c = Catalog::builtin();
        let llama = "meta.llama3-3-70b-instruct-v1:0";
        let r = c.resolve(llama).unwrap();
        assert_eq!(r.route, Route::OnDemand);
        assert_eq!(r.profile.id, llama);
        let r = c.resolve("us.meta.llama3-3-70b-instruct-v1:0").unwrap();
        assert_eq!(r.route, Route::CrossRegion { geo: "us" });
        let r = c
            .resolve("arn:aws:bedrock:us-east-1::foundation-model/meta.llama3-3-70b-instruct-v1:0")
            .unwrap();
        assert_eq!(r.route, Route::OnDemand);
        let r = c
            .resolve("arn:aws:bedrock:us-east-1:123456789012:inference-profile/global.anthropic.claude-sonnet-4-6")
            .unwrap();
        assert_eq!(r.route, Route::CrossRegion { geo: "global" });
        assert_eq!(r.profile.burndown, 5);
        assert_eq!(
            c.resolve("cohere.command-r-v1:0").unwrap_err(),
            ResolveError::UnknownModel
        );
    }

    #[test]
    fn newer_claude_needs_a_profile() {
        let c = Catalog::builtin();
        let err = c
            .resolve("anthropic.claude-sonnet-4-20250514-v1:0")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Invocation of model ID anthropic.claude-sonnet-4-20250514-v1:0 with on-demand throughput isn\u{2019}t supported. Retry your request with the ID or ARN of an inference profile that contains this model."
        );
        assert!(
            c.resolve("eu.anthropic.claude-sonnet-4-20250514-v1:0")
                .is_ok()
        );
    }

    #[test]
    fn count_tokens_takes_foundation_model_ids_only() {
        let c = Catalog::builtin();
        let sonnet = "anthropic.claude-sonnet-4-5-20250929-v1:0";
        assert!(c.resolve(sonnet).is_err(), "invoking needs a profile");
        let r = c.resolve_for_counting(sonnet).unwrap();
        assert_eq!(r.profile.id, sonnet);
        let arn = format!("arn:aws:bedrock:us-east-1::foundation-model/{sonnet}");
        assert_eq!(c.resolve_for_counting(&arn).unwrap().profile.id, sonnet);
        for profile in [
            format!("us.{sonnet}"),
            format!("global.{sonnet}"),
            format!("arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.{sonnet}"),
        ] {
            let err = c.resolve_for_counting(&profile).unwrap_err();
            assert_eq!(err, ResolveError::CountingNeedsFoundationModel, "{profile}");
            assert_eq!(
                err.to_string(),
                "The provided model doesn't support counting tokens."
            );
        }
        assert_eq!(
            c.resolve_for_counting("us.cohere.command-r-v1:0")
                .unwrap_err(),
            ResolveError::UnknownModel
        );
    }

    #[test]
    fn default_quotas_follow_the_quota_facts() {
        let c = Catalog::builtin();
        let q = |id: &str| c.profile(c.find(id).unwrap()).quotas;
        let llama = q("meta.llama3-3-70b-instruct-v1:0");
        assert_eq!((llama.tpm, llama.rpm), (600_000, Some(800)));
        let opus = q("anthropic.claude-opus-4-6-v1");
        assert_eq!(
            (
                opus.cross_region_tpm,
                opus.cross_region_rpm,
                opus.cross_region_tpd
            ),
            (2_000_000, Some(25), Some(2_592_000))
        );
        for fact in quarry_bedrock::quota::quota_facts() {
            let m = q(fact.model);
            let got = match (fact.pool, fact.metric) {
                (QuotaPool::OnDemand, QuotaMetric::TokensPerMinute) => Some(m.tpm),
                (QuotaPool::OnDemand, QuotaMetric::TokensPerDay) => m.tpd,
                (QuotaPool::OnDemand, QuotaMetric::RequestsPerMinute) => m.rpm,
                (QuotaPool::CrossRegion, QuotaMetric::TokensPerMinute) => Some(m.cross_region_tpm),
                (QuotaPool::CrossRegion, QuotaMetric::TokensPerDay) => m.cross_region_tpd,
                (QuotaPool::CrossRegion, QuotaMetric::RequestsPerMinute) => m.cross_region_rpm,
                (QuotaPool::Global, _) => continue,
            };
            assert_eq!(got, Some(fact.value), "{fact:?}");
        }
    }

    /// A figure of the defaults table: blank or "–" is none.
    fn cell(text: &str) -> Option<u64> {
        let digits: String = text.chars().filter(char::is_ascii_digit).collect();
        (!digits.is_empty()).then(|| digits.parse().unwrap())
    }

    #[test]
    fn the_defaults_table_is_the_catalog() {
        let table = include_str!("../../docs/sim-defaults.md");
        let c = Catalog::builtin();
        let mut seen = 0;
        for row in table.lines().filter(|l| l.starts_with("| `")) {
            let cells: Vec<&str> = row.split('|').skip(1).map(str::trim).collect();
            let id = cells[0].trim_matches('`');
            let Some(idx) = c.find(id) else { continue };
            let p = c.profile(idx);
            let q = p.quotas;
            let got = [
                Some(q.tpm),
                q.rpm,
                q.tpd,
                Some(q.cross_region_tpm),
                q.cross_region_rpm,
                q.cross_region_tpd,
                Some(p.burndown),
            ];
            let want: Vec<Option<u64>> = cells[1..8].iter().map(|t| cell(t)).collect();
            assert_eq!(got.to_vec(), want, "{id}");
            seen += 1;
        }
        assert_eq!(seen, c.len(), "every built-in model has a row");
    }

    #[test]
    fn provisioned_arns_get_their_own_lane() {
        let mut c = Catalog::builtin();
        let model = c.find("amazon.nova-pro-v1:0").unwrap();
        let arn = "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abcdefghijkl";
        c.add_provisioned(arn.to_owned(), model, 2);
        let r = c.resolve(arn).unwrap();
        assert_eq!(r.route, Route::Provisioned { index: 0 });
        assert_eq!(r.lane, c.len());
        assert_eq!(c.lane_name(r.lane), arn);
        assert_eq!(c.lane_count(), c.len() + 1);
        let other = "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/zzzzzzzzzzzz";
        assert_eq!(c.resolve(other).unwrap_err(), ResolveError::UnknownModel);
    }

    #[test]
    fn profiles_required_by_the_issue_exist() {
        let c = Catalog::builtin();
        for id in [
            "anthropic.claude-sonnet-4-5-20250929-v1:0",
            "anthropic.claude-haiku-4-5-20251001-v1:0",
            "anthropic.claude-opus-4-6-v1",
            "amazon.nova-pro-v1:0",
            "amazon.nova-lite-v1:0",
            "amazon.nova-micro-v1:0",
            "amazon.titan-text-express-v1",
        ] {
            let p = c.profile(c.find(id).unwrap());
            assert_eq!(Some(p.family), ModelFamily::from_model_id(id), "{id}");
            p.latency.validate().unwrap();
        }
        let opus = c.profile(c.find("anthropic.claude-opus-4-6-v1").unwrap());
        assert_eq!(opus.quotas.tpd, Some(2_592_000));
    }
}
