//! The validated run plan: everything an agent needs to fire a run, in a form
//! that cannot hold an invalid value.
//!
//! The controller parses a spec file (TOML) and validates it into a
//! [`RunPlan`]; agents receive their share of it as JSON over gRPC. It lives in
//! the agent crate because the agent cannot depend on the controller. Types
//! with invariants that span fields ([`WorkloadMix`], [`TokenDistribution`])
//! only come into being through validating constructors, and their
//! `Deserialize` impls run the same checks, so a plan that arrives over the
//! wire is as trustworthy as one built locally.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::time::Duration;

use quarry_bedrock::{CacheTtl, Operation, ServiceTierType};
use serde::{Deserialize, Serialize};

use crate::load::LoadProfile;
use crate::pacing::ThrottlePacing;
use crate::pricing::{ModelPrices, TierPrices};
use crate::replay::Replay;

/// Largest input-token count a distribution may draw. The biggest context
/// windows on Bedrock are 1M tokens; the prompt text pool is sized from this,
/// so it also bounds the sampler's memory (about 4 MB).
pub const MAX_INPUT_TOKENS: u32 = 1_000_000;

/// A complete, validated description of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunPlan {
    /// Where requests go: the embedded simulator or real Bedrock.
    pub target: Target,
    /// How load is offered: closed or open model, stages, end condition.
    pub load: LoadProfile,
    /// What each request asks for, as a weighted mix.
    pub mix: WorkloadMix,
    /// Whether failed attempts are retried (off by default; every attempt counted).
    pub retry: RetryPolicy,
    /// Per-request time limits.
    pub timeouts: Timeouts,
    /// Seed for every random choice in the run (mix, token counts, arrivals,
    /// prompt text), so a run can be repeated exactly.
    pub seed: u64,
    /// Price overrides by model id, on top of the built-in table
    /// ([`crate::PriceTable`]).
    pub pricing: BTreeMap<String, ModelPrices>,
    /// Per-request SLO bounds: each successful request that meets them all
    /// is counted in [`crate::Count::SloMet`] (goodput, judged request by
    /// request). `None`: nothing is judged. A share carrying it requires
    /// [`crate::FEATURE_REQUEST_SLO`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_slo: Option<RequestSlo>,
    /// What a closed-loop user does after a throttled request (the
    /// default: nothing, it sends its next request at once). A share
    /// carrying anything else requires [`crate::FEATURE_THROTTLE_PACING`].
    #[serde(default, skip_serializing_if = "ThrottlePacing::is_none")]
    pub on_throttle: ThrottlePacing,
    /// Price ratios of the service tiers to Standard; absent: the built-in
    /// ratios ([`crate::TierPrices`]).
    #[serde(default, skip_serializing_if = "TierPrices::is_default")]
    pub tier_prices: TierPrices,
    /// A trace to replay: each request at its recorded time with its own
    /// model and token counts, instead of arrivals drawn from the load's
    /// rate and requests drawn from the mix (whose entries are then the
    /// trace's models). A share carrying it requires
    /// [`crate::FEATURE_REPLAY`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<Replay>,
    /// Multi-turn sessions: each open-loop arrival starts a conversation,
    /// each closed-loop user holds one conversation after another, instead
    /// of sending single requests. A share carrying it requires
    /// [`crate::FEATURE_SESSIONS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<SessionPlan>,
}

/// Most turns a session may have: each turn index is its own series (its
/// own histograms), so the bound keeps a run's memory bounded.
pub const MAX_TURNS: u32 = 64;

/// Longest think time between turns, ms (one hour).
pub const MAX_THINK_MS: u32 = 3_600_000;

/// How the conversations of a session run go (see [`crate::session`]):
/// each session picks one mix entry (model, operation, system prompt,
/// shared prefix) and holds a conversation of [`SessionPlan::turns`] turns
/// with it. Each turn's new question is drawn from the entry's
/// `input_tokens`; its prompt carries every earlier question and answer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "SessionPlanFields", into = "SessionPlanFields")]
pub struct SessionPlan {
    turns: TokenDistribution,
    think_time_ms: Option<TokenDistribution>,
    cache: bool,
}

/// [`SessionPlan`]'s fields as they travel, checked on the way in.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct SessionPlanFields {
    turns: TokenDistribution,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    think_time_ms: Option<TokenDistribution>,
    #[serde(default)]
    cache: bool,
}

impl SessionPlan {
    /// Checks the distributions: turns from 1 to [`MAX_TURNS`], think time
    /// (whole milliseconds) up to [`MAX_THINK_MS`]. The error names the field.
    pub fn new(
        turns: TokenDistribution,
        think_time_ms: Option<TokenDistribution>,
        cache: bool,
    ) -> Result<Self, (&'static str, String)> {
        turns
            .check_within(1, MAX_TURNS)
            .map_err(|reason| ("turns", reason))?;
        if let Some(think) = &think_time_ms {
            think
                .check_within(0, MAX_THINK_MS)
                .map_err(|reason| ("think_time", format!("{reason} (ms)")))?;
        }
        Ok(SessionPlan {
            turns,
            think_time_ms,
            cache,
        })
    }

    /// Turns per session.
    pub fn turns(&self) -> &TokenDistribution {
        &self.turns
    }

    /// The pause between a turn's answer and the next question, ms;
    /// `None`: the next question goes at once.
    pub fn think_time_ms(&self) -> Option<&TokenDistribution> {
        self.think_time_ms.as_ref()
    }

    /// Whether each turn marks cache checkpoints after the previous
    /// question and its own ([`quarry_bedrock::Prompt::conversation_cache`]).
    pub fn cache(&self) -> bool {
        self.cache
    }
}

impl TryFrom<SessionPlanFields> for SessionPlan {
    type Error = String;
    fn try_from(f: SessionPlanFields) -> Result<Self, String> {
        SessionPlan::new(f.turns, f.think_time_ms, f.cache)
            .map_err(|(field, reason)| format!("sessions.{field}: {reason}"))
    }
}

impl From<SessionPlan> for SessionPlanFields {
    fn from(p: SessionPlan) -> Self {
        SessionPlanFields {
            turns: p.turns,
            think_time_ms: p.think_time_ms,
            cache: p.cache,
        }
    }
}

/// Per-request SLO bounds (DistServe's goodput): a request meets them when
/// it succeeded and each bound set holds for it. Each is inclusive (≤).
///
/// A request without a measured TTFT (non-streaming: the first token reaches
/// the client with the whole response) is judged by its E2E for the TTFT
/// bound; one without a TPOT (fewer than two output tokens, or non-streaming)
/// has no time per output token to miss, and meets the TPOT bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestSlo {
    /// TTFT from send, ns.
    pub ttft_ns: Option<u64>,
    /// Time per output token after the first, ns.
    pub tpot_ns: Option<u64>,
    /// E2E from send, ns.
    pub e2e_ns: Option<u64>,
}

impl RequestSlo {
    /// True when a successful request with these figures meets every bound.
    pub fn met(&self, ttft_ns: Option<u64>, tpot_ns: Option<u64>, e2e_ns: u64) -> bool {
        let within = |bound: Option<u64>, v: u64| bound.is_none_or(|b| v <= b);
        within(self.ttft_ns, ttft_ns.unwrap_or(e2e_ns))
            && tpot_ns.is_none_or(|v| within(self.tpot_ns, v))
            && within(self.e2e_ns, e2e_ns)
    }
}

/// The endpoint a run fires at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    /// The embedded Bedrock simulator (the default target).
    Sim {
        /// Name of the simulator's latency profile, when not its default.
        sim_profile: Option<String>,
    },
    /// Real Amazon Bedrock Runtime.
    Aws {
        /// AWS Region, e.g. `us-east-1`: picks the endpoint and signing scope.
        region: String,
        /// Endpoint URL override (VPC endpoint, proxy); `None` uses
        /// `https://bedrock-runtime.{region}.amazonaws.com`.
        endpoint: Option<String>,
        /// Named AWS profile for credentials; `None` uses the default chain.
        profile: Option<String>,
    },
}

/// The weighted mix of request shapes. Non-empty, with a positive total weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Vec<MixEntry>", into = "Vec<MixEntry>")]
pub struct WorkloadMix {
    /// The entries, each valid, in spec order.
    entries: Vec<MixEntry>,
}

impl WorkloadMix {
    /// Validates the entries into a mix.
    pub fn new(entries: Vec<MixEntry>) -> Result<Self, PlanError> {
        if entries.is_empty() {
            return Err(PlanError::EmptyMix);
        }
        if entries.iter().all(|e| e.weight == 0) {
            return Err(PlanError::ZeroTotalWeight);
        }
        for (index, entry) in entries.iter().enumerate() {
            entry
                .input_tokens
                .check()
                .map_err(|reason| PlanError::InvalidEntry {
                    index,
                    field: "input_tokens",
                    reason,
                })?;
            if let Some(t) = entry.temperature
                && !(0.0..=1.0).contains(&t)
            {
                return Err(PlanError::InvalidEntry {
                    index,
                    field: "temperature",
                    reason: format!("must be between 0 and 1, got {t}"),
                });
            }
            if entry.model_id.is_empty() {
                return Err(PlanError::InvalidEntry {
                    index,
                    field: "model",
                    reason: "must not be empty".to_owned(),
                });
            }
        }
        Ok(WorkloadMix { entries })
    }

    /// The entries in spec order; a sampler's entry index points into this.
    pub fn entries(&self) -> &[MixEntry] {
        &self.entries
    }
}

impl TryFrom<Vec<MixEntry>> for WorkloadMix {
    type Error = PlanError;

    fn try_from(entries: Vec<MixEntry>) -> Result<Self, PlanError> {
        WorkloadMix::new(entries)
    }
}

impl From<WorkloadMix> for Vec<MixEntry> {
    fn from(mix: WorkloadMix) -> Self {
        mix.entries
    }
}

/// One request shape in the mix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MixEntry {
    /// Relative weight; an entry with weight 0 is never drawn.
    pub weight: u32,
    /// Bedrock model id, inference-profile id or ARN.
    pub model_id: String,
    /// The operation to call.
    #[serde(with = "operation_name")]
    pub operation: Operation,
    /// Distribution of the per-request (uncached) input tokens; the system
    /// prompt and the cache prefix come on top.
    pub input_tokens: TokenDistribution,
    /// `max_tokens` sent with every request. Always set: unset, Bedrock
    /// reserves the model's maximum output against the TPM quota (PROTOCOL.md §5.2).
    pub max_tokens: NonZeroU32,
    /// System prompt, sent verbatim.
    pub system_prompt: Option<String>,
    /// A shared prefix followed by a cachePoint, identical across requests.
    pub cache: Option<CachePrefix>,
    /// Whether each request's uncached text starts with a unique nonce, so no
    /// two requests share a prompt (on by default).
    pub nonce: bool,
    /// Sampling temperature, 0 to 1; `None` leaves the model default.
    pub temperature: Option<f32>,
    /// The service tier every request of this entry asks for
    /// (`serviceTier` on Converse, `X-Amzn-Bedrock-Service-Tier` on
    /// InvokeModel); `None` sends none (Standard). A share whose mix names
    /// one requires [`crate::FEATURE_SERVICE_TIER`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<ServiceTierType>,
}

/// A prompt-caching prefix: this many tokens of shared text, then a cachePoint
/// (PROTOCOL.md §5.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachePrefix {
    /// Approximate size of the shared prefix in tokens.
    pub tokens: NonZeroU32,
    /// Cache lifetime requested with the cachePoint.
    pub ttl: CacheTtl,
}

/// How many input tokens a request carries. Draws are clamped to `[min, max]`.
///
/// `mean` and `stddev` are those of the token count itself, for the
/// log-normal too (the underlying normal's parameters are derived from them).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "dist", rename_all = "snake_case")]
pub enum TokenDistribution {
    /// Always the same count.
    Fixed {
        /// The count.
        tokens: u32,
    },
    /// Uniform over `[min, max]`.
    Uniform {
        /// Smallest count.
        min: u32,
        /// Largest count.
        max: u32,
    },
    /// Normal, clamped to `[min, max]`.
    Normal {
        /// Mean count.
        mean: f64,
        /// Standard deviation.
        stddev: f64,
        /// Clamp floor.
        min: u32,
        /// Clamp ceiling.
        max: u32,
    },
    /// Log-normal (long right tail, like real prompt sizes), clamped to `[min, max]`.
    LogNormal {
        /// Mean count.
        mean: f64,
        /// Standard deviation.
        stddev: f64,
        /// Clamp floor.
        min: u32,
        /// Clamp ceiling.
        max: u32,
    },
}

impl TokenDistribution {
    /// The largest count this distribution can produce.
    pub fn max_tokens(&self) -> u32 {
        match *self {
            TokenDistribution::Fixed { tokens } => tokens,
            TokenDistribution::Uniform { max, .. }
            | TokenDistribution::Normal { max, .. }
            | TokenDistribution::LogNormal { max, .. } => max,
        }
    }

    /// Checks the parameters of a token count (1 to [`MAX_INPUT_TOKENS`]);
    /// the reason names the offending parameter.
    pub fn check(&self) -> Result<(), String> {
        self.check_within(1, MAX_INPUT_TOKENS)
    }

    /// Checks the parameters of a count drawn from `lowest..=highest`.
    pub fn check_within(&self, lowest: u32, highest: u32) -> Result<(), String> {
        let (min, max) = match *self {
            TokenDistribution::Fixed { tokens } => (tokens, tokens),
            TokenDistribution::Uniform { min, max } => (min, max),
            TokenDistribution::Normal {
                mean,
                stddev,
                min,
                max,
            }
            | TokenDistribution::LogNormal {
                mean,
                stddev,
                min,
                max,
            } => {
                if !(mean.is_finite() && mean > 0.0) {
                    return Err(format!("mean must be > 0, got {mean}"));
                }
                if !(stddev.is_finite() && stddev >= 0.0) {
                    return Err(format!("stddev must be >= 0, got {stddev}"));
                }
                (min, max)
            }
        };
        if min < lowest {
            return Err(format!("counts must be >= {lowest}, got {min}"));
        }
        if min > max {
            return Err(format!("min ({min}) must be <= max ({max})"));
        }
        if max > highest {
            return Err(format!("max must be <= {highest}, got {max}"));
        }
        Ok(())
    }
}

/// Whether and how failed attempts are retried. Every attempt is counted and
/// reported either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum RetryPolicy {
    /// No retries: each request is one attempt (the default, so the run
    /// measures the service, not the client's retry loop).
    #[default]
    Off,
    /// The AWS SDK "standard" policy (PROTOCOL.md §4.2): retry 429 and
    /// 500/502/503/504, never 400/403/408/424, exponential backoff with full
    /// jitter, honouring `x-amz-retry-after`.
    Standard {
        /// Total attempts including the first (SDK default 3).
        max_attempts: NonZeroU32,
        /// Backoff scale for the first retry (SDK default 1 s).
        initial_backoff: Duration,
        /// Backoff cap (SDK default 20 s).
        max_backoff: Duration,
    },
}

impl RetryPolicy {
    /// The aws-sdk-rust `RetryConfig::standard()` values: 3 attempts, 1 s, 20 s.
    pub fn sdk_standard() -> Self {
        RetryPolicy::Standard {
            // unwrap is safe because 3 is not zero
            max_attempts: NonZeroU32::new(3).unwrap(),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(20),
        }
    }

    /// Total attempts a request may make, including the first.
    pub fn max_attempts(&self) -> u32 {
        match self {
            RetryPolicy::Off => 1,
            RetryPolicy::Standard { max_attempts, .. } => max_attempts.get(),
        }
    }
}

/// Per-request time limits. Exceeding one ends the attempt with a timeout outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeouts {
    /// TCP + TLS connect.
    pub connect: Duration,
    /// Whole request: send to the last byte of the response or stream.
    pub request: Duration,
    /// Send to the first content token of a stream; `None` for no separate limit.
    pub first_token: Option<Duration>,
}

impl Default for Timeouts {
    /// 10 s connect, 300 s per request (long generations stream for minutes),
    /// no separate first-token limit.
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            request: Duration::from_secs(300),
            first_token: None,
        }
    }
}

/// A plan was built from values that break an invariant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The workload mix has no entries.
    #[error("the workload mix is empty: at least one entry is needed")]
    EmptyMix,
    /// Every entry has weight 0, so none could ever be drawn.
    #[error("every workload entry has weight 0: at least one must be positive")]
    ZeroTotalWeight,
    /// One entry's field is invalid.
    #[error("workload[{index}].{field}: {reason}")]
    InvalidEntry {
        /// Index of the entry in the mix.
        index: usize,
        /// The offending field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// Serde for [`Operation`] by its service-model name (`"ConverseStream"`).
mod operation_name {
    use quarry_bedrock::Operation;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(op: &Operation, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(op.name())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Operation, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn entry(model: &str, weight: u32, dist: TokenDistribution) -> MixEntry {
        MixEntry {
            weight,
            model_id: model.to_owned(),
            operation: Operation::ConverseStream,
            input_tokens: dist,
            max_tokens: NonZeroU32::new(256).unwrap(),
            system_prompt: None,
            cache: None,
            nonce: true,
            temperature: None,
            service_tier: None,
        }
    }

    #[test]
    fn a_request_meets_its_slo_only_within_every_bound() {
        let slo = RequestSlo {
            ttft_ns: Some(100),
            tpot_ns: Some(10),
            e2e_ns: Some(1_000),
        };
        assert!(slo.met(Some(100), Some(10), 1_000), "bounds are inclusive");
        assert!(!slo.met(Some(101), Some(10), 500));
        assert!(!slo.met(Some(50), Some(11), 500));
        assert!(!slo.met(Some(50), Some(5), 1_001));
        // No TTFT (non-streaming): the first token came with the end.
        assert!(slo.met(None, None, 100));
        assert!(!slo.met(None, None, 101));
        // No TPOT (one output token): nothing to miss.
        assert!(slo.met(Some(10), None, 500));
        let ttft_only = RequestSlo {
            ttft_ns: Some(100),
            tpot_ns: None,
            e2e_ns: None,
        };
        assert!(ttft_only.met(Some(100), Some(1_000_000), u64::MAX));
    }

    #[test]
    fn mix_rejects_empty_and_zero_weight() {
        assert_eq!(WorkloadMix::new(vec![]), Err(PlanError::EmptyMix));
        let e = entry("m", 0, TokenDistribution::Fixed { tokens: 5 });
        assert_eq!(WorkloadMix::new(vec![e]), Err(PlanError::ZeroTotalWeight));
    }

    #[test]
    fn distribution_checks_name_the_parameter() {
        let bad = TokenDistribution::Uniform { min: 10, max: 5 };
        assert_eq!(bad.check().unwrap_err(), "min (10) must be <= max (5)");
        let bad = TokenDistribution::LogNormal {
            mean: -1.0,
            stddev: 1.0,
            min: 1,
            max: 9,
        };
        assert!(bad.check().unwrap_err().starts_with("mean must be > 0"));
        assert!(TokenDistribution::Fixed { tokens: 0 }.check().is_err());
    }

    #[test]
    fn mix_json_round_trip_revalidates() {
        let mix = WorkloadMix::new(vec![entry(
            "meta.llama3-3-70b-instruct-v1:0",
            3,
            TokenDistribution::Normal {
                mean: 500.0,
                stddev: 50.0,
                min: 1,
                max: 900,
            },
        )])
        .unwrap();
        let json = serde_json::to_string(&mix).unwrap();
        assert!(json.contains("\"operation\":\"ConverseStream\""), "{json}");
        assert!(json.contains("\"dist\":\"normal\""), "{json}");
        let back: WorkloadMix = serde_json::from_str(&json).unwrap();
        assert_eq!(back, mix);
        let invalid = json.replace("\"min\":1", "\"min\":1000");
        let err = serde_json::from_str::<WorkloadMix>(&invalid).unwrap_err();
        assert!(
            err.to_string().contains("min (1000) must be <= max (900)"),
            "{err}"
        );
    }

    #[test]
    fn target_and_retry_serialize_with_tags() {
        let t = Target::Aws {
            region: "us-east-1".into(),
            endpoint: None,
            profile: None,
        };
        let json = serde_json::to_string(&t).unwrap();
        assert!(json.contains("\"kind\":\"aws\""), "{json}");
        let r = serde_json::to_string(&RetryPolicy::sdk_standard()).unwrap();
        assert!(r.contains("\"mode\":\"standard\""), "{r}");
        assert_eq!(RetryPolicy::Off.max_attempts(), 1);
        assert_eq!(RetryPolicy::sdk_standard().max_attempts(), 3);
    }
}
