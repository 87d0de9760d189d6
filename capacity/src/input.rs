//! The plain values a plan is computed from.
//!
//! [`PlanInput`] is what `PLAN.toml` validates into ([`crate::parse_plan_file`])
//! and what a caller fills in further: built-in prices
//! ([`PriceBook::builtin`], a field-for-field copy of the agent's
//! `ModelPrices`), measured curves and demand profiles (module
//! [`crate::measured`]). Nothing here is optional by accident: `None` means
//! "not entered", and the plan then says which input would enable what is
//! missing, or which default it assumed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::date::CivilDate;
use crate::measured::{Measured, TokenStat};

/// Everything a plan is computed from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlanInput {
    /// A title for the report.
    pub title: Option<String>,
    /// Day zero: demand as entered is today's, growth counts from here, and
    /// walls get calendar dates. `None`: walls are placed in days from now.
    pub start: Option<CivilDate>,
    /// How far ahead to plan, in months (default 12).
    pub horizon_months: Option<f64>,
    /// The AWS Region the quotas and the quota request are for.
    pub region: Option<String>,
    /// AWS accounts the traffic is spread over today (default 1).
    pub accounts: Option<u32>,
    /// Days between filing a quota request and needing it (default 42: AWS
    /// reviews take weeks and favour accounts already using their allocation).
    pub lead_time_days: Option<u32>,
    /// How demand grows.
    pub growth: Growth,
    /// The cost wall.
    pub budget: Budget,
    /// The workload classes.
    pub classes: Vec<WorkloadClass>,
    /// The account's quotas, per model id (its pool follows from the id form).
    pub quotas: Vec<QuotaEntry>,
    /// Per-model facts that override the built-in ones, by model id or base id.
    pub models: BTreeMap<String, ModelEntry>,
    /// Prices.
    pub prices: PriceBook,
    /// Service-tier and batch price factors.
    pub tiers: TierPricing,
    /// Reserved-tier offers to evaluate.
    pub reserved: Vec<ReservedOffer>,
    /// Provisioned Throughput offers to evaluate.
    pub provisioned: Vec<ProvisionedOffer>,
    /// Self-hosting offers to evaluate.
    pub self_hosted: Vec<SelfHostOffer>,
    /// Measured inputs (`--from`): curves and demand profiles.
    pub measured: Measured,
    /// Assumptions the caller made while loading the inputs (a class made
    /// for a trace's model no class takes ...): the plan lists them with
    /// its own.
    pub assumptions: Vec<String>,
    /// Where each entered value came from, by field path (`class[0].peak_rpm`).
    pub origins: BTreeMap<String, Origin>,
}

/// Where an entered value was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The file, as the user named it.
    pub file: String,
    /// 1-based line.
    pub line: usize,
}

/// How demand grows from `start`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Growth {
    /// Requests over time.
    pub demand: GrowthCurve,
    /// Users over time, when they grow differently from requests (longer
    /// conversations, heavier use); `None`: users grow as requests do.
    pub users_monthly_rate: Option<f64>,
}

/// A demand multiplier over time (1.0 at `start`).
#[derive(Debug, Clone, Default, PartialEq)]
pub enum GrowthCurve {
    /// No growth entered: demand stays at today's level.
    #[default]
    Flat,
    /// Compounding monthly rate: 0.25 is +25% a month.
    Monthly {
        /// The rate.
        rate: f64,
    },
    /// Levels at points in time; between them demand grows geometrically,
    /// after the last it stays.
    Levels(Vec<GrowthLevel>),
}

/// One growth level.
#[derive(Debug, Clone, PartialEq)]
pub struct GrowthLevel {
    /// When.
    pub at: GrowthAt,
    /// Demand as a multiple of today's.
    pub factor: f64,
}

/// When a growth level applies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GrowthAt {
    /// A calendar date (needs `start`).
    Date(CivilDate),
    /// Months after `start`.
    Month(f64),
}

/// The cost wall's limits.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Budget {
    /// Monthly spend the plan must stay under.
    pub monthly_usd: Option<f64>,
    /// Monthly cost per user the plan must stay under.
    pub cost_per_user_usd: Option<f64>,
}

/// One kind of traffic with its own demand, sizes, SLO and candidate models.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadClass {
    /// Unique name (`interactive`, `background` ...).
    pub name: String,
    /// Interactive traffic must be served when it arrives; non-interactive
    /// traffic can be batched or queued.
    pub interactive: bool,
    /// Today's demand; `None` when a measured profile supplies it.
    pub demand: Option<Demand>,
    /// Prompt tokens per request (all of them, cached prefix included).
    pub input_tokens: Option<TokenStat>,
    /// Output tokens per request.
    pub output_tokens: Option<TokenStat>,
    /// The `max_tokens` requests send; `None`: requests send none, so the
    /// model's maximum output is reserved against TPM (the max_tokens trap).
    pub max_tokens: Option<u64>,
    /// Prompt caching, in use or possible.
    pub cache: Option<CacheProfile>,
    /// Mean seconds a request holds its TPM reservation (its end-to-end
    /// time); `None`: assumed a full minute, the conservative bound.
    pub mean_e2e_seconds: Option<f64>,
    /// Users this class serves (for cost per user).
    pub users: Option<f64>,
    /// Latency and throughput objectives.
    pub slo: Slo,
    /// Candidate model ids, the first being the one in use.
    pub models: Vec<String>,
    /// What-if routing mixes to evaluate.
    pub routes: Vec<RouteMix>,
    /// Label of a measured demand profile (`Measured::demand`) to take what
    /// is not entered from.
    pub measured: Option<String>,
    /// Label of the measured curve to read this class's concurrency and
    /// latency walls from; `None`: any curve of the class's model.
    pub curve: Option<String>,
}

/// Today's demand of a class.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Demand {
    /// Requests per minute at the peak and averaged over the whole day.
    Rate {
        /// Peak requests per minute.
        peak_rpm: f64,
        /// Requests per minute averaged over 24 hours.
        average_rpm: f64,
    },
    /// Concurrent users, each sending requests at a rate.
    Users {
        /// Users active at the peak.
        concurrent_users: f64,
        /// Requests per active user per minute.
        requests_per_user_per_minute: f64,
        /// Users active on average over 24 hours; `None`: as at the peak.
        average_concurrent_users: Option<f64>,
    },
    /// Sessions (a coding session, a conversation) of several requests.
    Sessions {
        /// Sessions per day.
        sessions_per_day: f64,
        /// Requests per session.
        requests_per_session: f64,
        /// How long a session lasts, in minutes.
        session_minutes: f64,
        /// Sessions running at once at the peak.
        peak_concurrent_sessions: f64,
    },
}

/// Prompt caching for a class.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CacheProfile {
    /// Tokens of the prompt that are a cacheable shared prefix.
    pub prefix_tokens: f64,
    /// Fraction of requests whose prefix is read from the cache; `None` when
    /// a measured profile supplies it.
    pub hit_ratio: Option<f64>,
    /// The cache TTL, which prices the writes.
    pub ttl: CacheTtl,
    /// True when requests already carry a cache point (today's demand
    /// includes caching); false: caching is a strategy to evaluate.
    pub in_use: bool,
}

/// A prompt-cache TTL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheTtl {
    /// Five minutes (writes cost 1.25× input on Claude).
    #[default]
    FiveMinutes,
    /// One hour (writes cost 2× input on Claude).
    OneHour,
}

/// A class's objectives.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Slo {
    /// Latency percentiles that must hold.
    pub latency: Vec<LatencyObjective>,
    /// Slowest acceptable median output tokens per second per stream.
    pub min_output_tokens_per_s: Option<f64>,
}

/// `ttft.p99 <= 2000 ms` and the like.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatencyObjective {
    /// TTFT or E2E.
    pub metric: LatencyMetric,
    /// Which percentile.
    pub percentile: Percentile,
    /// The bound, in milliseconds.
    pub max_ms: f64,
}

/// A latency metric a sweep measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LatencyMetric {
    /// Time to first token.
    Ttft,
    /// End to end.
    E2e,
}

/// A percentile a sweep reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Percentile {
    /// Median.
    P50,
    /// 95th.
    P95,
    /// 99th.
    P99,
}

/// A routing mix: shares of a class's requests per model id.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteMix {
    /// A name for the report.
    pub name: String,
    /// `(model id, share)`; shares sum to 1.
    pub shares: Vec<(String, f64)>,
}

/// The account's quotas for one model id (its pool follows from the id:
/// base id on-demand, `us.`/`eu.` ... cross-Region, `global.` global).
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaEntry {
    /// Model id.
    pub model: String,
    /// Requests per minute.
    pub rpm: Option<u64>,
    /// Tokens per minute.
    pub tpm: Option<u64>,
    /// Tokens per day.
    pub tpd: Option<u64>,
    /// Whether AWS will raise the RPM quota (Service Quotas' "Adjustable").
    pub rpm_adjustable: Option<bool>,
    /// Whether AWS will raise the TPM quota.
    pub tpm_adjustable: Option<bool>,
    /// Whether AWS will raise the TPD quota; `false` is a fixed cap.
    pub tpd_adjustable: Option<bool>,
}

/// Model facts entered to override the built-in ones.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelEntry {
    /// Quota tokens per output token.
    pub burndown: Option<u64>,
    /// The model's output limit (reserved when `max_tokens` is unset).
    pub max_output_tokens: Option<u64>,
}

/// Prices per model id, in pico-USD per token (= micro-USD per 1M tokens),
/// the unit of the agent's price table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PriceBook {
    /// Prices entered in the plan, by exact id or base id (they win).
    pub entered: BTreeMap<String, TokenPrices>,
    /// The built-in table's prices, by exact model id, as the caller resolved
    /// them (regional uplifts applied). See [`PlanInput::priced_model_ids`].
    pub builtin: BTreeMap<String, TokenPrices>,
    /// Where the built-in prices come from, for the sources list.
    pub builtin_source: Option<String>,
}

/// Prices of one model, pico-USD per token; field for field the agent's
/// `ModelPrices`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenPrices {
    /// Input tokens (cache reads and writes excluded).
    pub input: u64,
    /// Output tokens.
    pub output: u64,
    /// Cache writes with the 5-minute TTL.
    pub cache_write_5m: Option<u64>,
    /// Cache writes with the 1-hour TTL.
    pub cache_write_1h: Option<u64>,
    /// Cache reads.
    pub cache_read: Option<u64>,
}

/// Price factors of service tiers and batch; `None` takes the built-in
/// figure where one exists (flex, batch) and leaves the strategy out where
/// none does (priority: AWS publishes no multiplier).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TierPricing {
    /// Flex's discount off Standard (0.5 = half price).
    pub flex_discount: Option<f64>,
    /// Priority's premium over Standard (0.75 = +75%).
    pub priority_premium: Option<f64>,
    /// Batch inference's discount off on-demand.
    pub batch_discount: Option<f64>,
}

/// A Reserved-tier offer for a model (entered: priced by the account team).
#[derive(Debug, Clone, PartialEq)]
pub struct ReservedOffer {
    /// Model id.
    pub model: String,
    /// Input tokens per minute reserved.
    pub input_tpm: f64,
    /// Output tokens per minute reserved.
    pub output_tpm: f64,
    /// USD per 1,000 input TPM per month.
    pub usd_per_1k_input_tpm_month: f64,
    /// USD per 1,000 output TPM per month.
    pub usd_per_1k_output_tpm_month: f64,
}

/// A Provisioned Throughput offer for a model (entered: AWS does not publish
/// what one model unit buys).
#[derive(Debug, Clone, PartialEq)]
pub struct ProvisionedOffer {
    /// Model id.
    pub model: String,
    /// USD per model unit per hour (for the term).
    pub usd_per_unit_hour: f64,
    /// Tokens (input + output) per minute one model unit serves.
    pub tokens_per_minute_per_unit: f64,
    /// The commitment term, as the account team quoted it.
    pub term: Option<String>,
}

/// Serving a class outside Bedrock (entered cost and capacity).
#[derive(Debug, Clone, PartialEq)]
pub struct SelfHostOffer {
    /// The class it would serve.
    pub class: String,
    /// A name for the report (`vLLM on 2×H100`).
    pub name: String,
    /// USD per unit per month.
    pub usd_per_unit_month: f64,
    /// Requests per minute one unit serves within the class's SLO.
    pub rpm_per_unit: f64,
}

impl PlanInput {
    /// Every model id the plan may price: the classes' candidates and route
    /// models, offers' models, and the cross-Region and global profiles the
    /// profile strategy considers. Fill [`PriceBook::builtin`] for these from
    /// the built-in price table (the agent's `PriceTable::lookup`).
    pub fn priced_model_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = Vec::new();
        for class in &self.classes {
            ids.extend(class.models.iter().cloned());
            for route in &class.routes {
                ids.extend(route.shares.iter().map(|(m, _)| m.clone()));
            }
        }
        ids.extend(self.reserved.iter().map(|o| o.model.clone()));
        ids.extend(self.provisioned.iter().map(|o| o.model.clone()));
        let alternatives: Vec<String> = ids
            .iter()
            .flat_map(|id| {
                crate::inference_profiles::profile_alternatives(id, self.region.as_deref())
            })
            .collect();
        ids.extend(alternatives);
        ids.sort();
        ids.dedup();
        ids
    }
}
