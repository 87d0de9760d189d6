//! The plan: what `quarry_capacity::plan` returns and `plan.json` holds
//! (schema in `docs/plan-schema.md`). Reports render from this value as read
//! back from `plan.json`, so it carries every figure with its sources, never
//! a reference to in-memory state.

use quarry_bedrock::quota::{QuotaMetric, QuotaPool};
use serde::{Deserialize, Serialize};

use crate::date::CivilDate;
use crate::figure::{Figure, Source};
use crate::pool::PoolKey;

/// The version of `plan.json`'s schema. Bump on any change a reader must know about.
pub const PLAN_SCHEMA_VERSION: u32 = 1;

/// A capacity plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// [`PLAN_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The input's title.
    #[serde(default)]
    pub title: Option<String>,
    /// Day zero, horizon, growth, lead time, accounts.
    pub timeline: TimelineSummary,
    /// Each class as planned: today's demand and its mean request.
    pub classes: Vec<ClassSummary>,
    /// 1. The walls, in the order demand meets them.
    pub walls: Vec<Wall>,
    /// 2. The quota increase requests, per pool, in the terms AWS's form asks.
    pub quota_requests: Vec<QuotaRequest>,
    /// Quotas that bind within the horizon and no request lifts.
    pub fixed_caps: Vec<FixedCap>,
    /// 3. The strategies, ranked by monthly cost at the horizon.
    pub strategies: Vec<StrategyResult>,
    /// Measurements held against the arithmetic.
    pub checks: Vec<Check>,
    /// 4. Assumptions the plan made.
    pub assumptions: Vec<String>,
    /// What could not be computed, and the input that would enable it.
    pub missing: Vec<MissingInput>,
    /// Every source a figure cites.
    pub sources: Vec<Source>,
}

/// The plan's time frame and account set-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineSummary {
    /// Day zero, if entered.
    pub start: Option<CivilDate>,
    /// Days planned ahead.
    pub horizon: Figure,
    /// The horizon's date, if `start` is entered.
    pub horizon_end: Option<CivilDate>,
    /// Growth, in words.
    pub growth: String,
    /// Demand at the horizon as a multiple of today's.
    pub horizon_factor: Figure,
    /// Days between filing a quota request and needing it.
    pub lead_time: Figure,
    /// Accounts the traffic is spread over today.
    pub accounts: Figure,
    /// The Region planned for.
    pub region: Option<String>,
    /// Demand over the horizon as `[day, multiple of today's]`, sampled at
    /// [`DEMAND_SAMPLES`] even steps from day 0 to the horizon (the curve
    /// the walls are placed on; what a report charts). Absent in plans
    /// written before it was added.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub demand: Vec<[f64; 2]>,
}

/// Steps of [`TimelineSummary::demand`] over the horizon.
pub const DEMAND_SAMPLES: u32 = 120;

/// A class as planned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassSummary {
    /// Name.
    pub name: String,
    /// Interactive (served on arrival) or not (may be batched or queued).
    pub interactive: bool,
    /// The model in use.
    pub model: String,
    /// Requests per minute at today's peak.
    pub peak_rpm: Figure,
    /// Requests per minute averaged over 24 hours, today.
    pub average_rpm: Figure,
    /// Mean prompt tokens per request.
    pub input_tokens: Figure,
    /// Mean output tokens per request.
    pub output_tokens: Figure,
    /// Quota tokens reserved per request at admission.
    pub reservation: Option<Figure>,
    /// True when requests send no `max_tokens`, so the model's output limit is reserved.
    pub max_tokens_unset: bool,
    /// Quota tokens settled per request.
    pub settlement: Figure,
    /// USD per request on demand.
    pub cost_per_request: Option<Figure>,
}

/// What kind of wall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WallKind {
    /// Requests per minute.
    Rpm,
    /// Tokens per minute at admission (input + max_tokens reserved).
    TpmAdmission,
    /// Tokens per minute settled (output burndown applied).
    TpmSettled,
    /// Tokens per day.
    TokensPerDay,
    /// Throughput stops scaling with load (measured).
    Concurrency,
    /// The latency SLO breaks (measured).
    Latency,
    /// Monthly spend passes the budget.
    MonthlyCost,
    /// Monthly cost per user passes its limit.
    CostPerUser,
}

impl WallKind {
    /// The wall's name in reports.
    pub fn label(self) -> &'static str {
        match self {
            WallKind::Rpm => "RPM",
            WallKind::TpmAdmission => "TPM at admission",
            WallKind::TpmSettled => "TPM settled",
            WallKind::TokensPerDay => "tokens per day",
            WallKind::Concurrency => "concurrency",
            WallKind::Latency => "latency SLO",
            WallKind::MonthlyCost => "monthly cost",
            WallKind::CostPerUser => "cost per user",
        }
    }

    /// The quota metric of a quota wall.
    pub fn quota_metric(self) -> Option<QuotaMetric> {
        match self {
            WallKind::Rpm => Some(QuotaMetric::RequestsPerMinute),
            WallKind::TpmAdmission | WallKind::TpmSettled => Some(QuotaMetric::TokensPerMinute),
            WallKind::TokensPerDay => Some(QuotaMetric::TokensPerDay),
            _ => None,
        }
    }
}

/// When a wall binds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Binding {
    /// Today's demand is already at or past it.
    Already,
    /// Within the horizon, this many days after start.
    Within {
        /// Days after start.
        day: f64,
        /// The date, if `start` is entered.
        date: Option<CivilDate>,
    },
    /// After the horizon, at the growth entered.
    AfterHorizon {
        /// Days after start.
        day: f64,
        /// The date, if `start` is entered.
        date: Option<CivilDate>,
    },
    /// Demand never reaches it at the growth entered.
    NotAtEnteredGrowth,
    /// A measured curve never broke within the load it measured.
    BeyondMeasured,
    /// Cannot be placed: a limit or load is unknown (see `missing`).
    Unplaced,
}

impl Binding {
    /// Days after start, or 0 for `Already`.
    pub fn day(self) -> Option<f64> {
        match self {
            Binding::Already => Some(0.0),
            Binding::Within { day, .. } | Binding::AfterHorizon { day, .. } => Some(day),
            _ => None,
        }
    }

    /// True when it binds today or within the horizon.
    pub fn within_horizon(self) -> bool {
        matches!(self, Binding::Already | Binding::Within { .. })
    }
}

/// A labelled figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedFigure {
    /// What it is.
    pub label: String,
    /// The figure.
    pub figure: Figure,
}

/// A wall demand meets as it grows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Wall {
    /// Which wall.
    pub kind: WallKind,
    /// What it applies to (a pool, a model, all classes).
    pub scope: String,
    /// The quota pool, for quota walls.
    #[serde(default)]
    pub pool: Option<PoolKey>,
    /// The limit: a quota per account, a measured capacity, a budget.
    pub limit: Option<Figure>,
    /// Accounts the limit is multiplied by (quota walls).
    pub accounts: u32,
    /// The load on it at today's demand, in the limit's unit.
    pub load_today: Option<Figure>,
    /// Demand, as a multiple of today's, at which it binds.
    pub binds_at: Option<Figure>,
    /// When.
    pub binds: Binding,
    /// Demand at the binding point (peak RPM, sessions per day, users ...).
    #[serde(default)]
    pub at_binding: Vec<NamedFigure>,
    /// True for a fixed quota no increase lifts.
    pub fixed: bool,
    /// Whether AWS raises the quota (`None`: no source says).
    #[serde(default)]
    pub adjustable: Option<bool>,
    /// Service Quotas name.
    #[serde(default)]
    pub quota_name: Option<String>,
    /// Service Quotas code, where known.
    #[serde(default)]
    pub quota_code: Option<String>,
    /// What a reader needs to know about it.
    #[serde(default)]
    pub notes: Vec<String>,
}

/// A quota increase request for one pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuotaRequest {
    /// The pool.
    pub pool: PoolKey,
    /// The model id that invokes it.
    pub model_id: String,
    /// The Region.
    pub region: Option<String>,
    /// Which pool.
    pub pool_kind: QuotaPool,
    /// The quotas to raise: current and requested values, per account.
    pub items: Vec<QuotaRequestItem>,
    /// The form's fields at the horizon's demand, per account.
    pub form: RequestForm,
    /// When the first of these quotas binds.
    pub binds: Binding,
    /// When to file: the binding day minus the lead time.
    pub file_by: FileBy,
}

/// One quota to raise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuotaRequestItem {
    /// What it counts.
    pub metric: QuotaMetric,
    /// Service Quotas name.
    pub quota_name: Option<String>,
    /// Service Quotas code, where known.
    pub quota_code: Option<String>,
    /// The value in force.
    pub current: Figure,
    /// The value to ask for: the need at the horizon.
    pub requested: Figure,
    /// Whether AWS raises it (`None`: no source says; ask anyway).
    pub adjustable: Option<bool>,
}

/// What AWS's quota increase form asks, at the horizon's demand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestForm {
    /// Tokens per minute at average demand (settled).
    pub steady_state_tpm: Figure,
    /// Tokens per minute at the peak (the larger of admission and settled).
    pub peak_tpm: Figure,
    /// Requests per minute at average demand.
    pub steady_state_rpm: Figure,
    /// Requests per minute at the peak.
    pub peak_rpm: Figure,
    /// Mean input tokens per request.
    pub average_input_tokens: Figure,
    /// Mean output tokens per request.
    pub average_output_tokens: Figure,
    /// Tokens per day at the horizon.
    pub tokens_per_day: Figure,
}

/// When to file a request.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FileBy {
    /// Days after start (negative or zero: file now).
    pub day: f64,
    /// The date, if `start` is entered.
    pub date: Option<CivilDate>,
    /// True when the lead time has already run out.
    pub overdue: bool,
}

/// A quota that binds and that no request lifts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FixedCap {
    /// The pool.
    pub pool: PoolKey,
    /// What it counts.
    pub metric: QuotaMetric,
    /// Service Quotas name.
    pub quota_name: Option<String>,
    /// The cap, per account.
    pub limit: Figure,
    /// When it binds.
    pub binds: Binding,
}

/// What a strategy was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StrategyKind {
    /// Today's set-up with the quota increases requested.
    QuotaIncrease,
    /// Prompt caching.
    PromptCaching,
    /// Routing a class's requests over models.
    ModelRouting,
    /// Spreading traffic over accounts.
    MultiAccount,
    /// Cross-Region or global inference profiles.
    InferenceProfile,
    /// Flex or Priority service tier.
    ServiceTier,
    /// Reserved tier.
    Reserved,
    /// Provisioned Throughput.
    ProvisionedThroughput,
    /// Batch inference for non-interactive classes.
    Batch,
    /// Queueing non-interactive work.
    Queueing,
    /// Serving a class outside Bedrock.
    SelfHosting,
}

/// Whether a strategy carries the horizon's demand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Carries {
    /// Yes, as it stands.
    Yes,
    /// Yes, once the quota increases under `needs` are granted.
    WithQuotaIncreases,
    /// No: a wall no request lifts binds within the horizon.
    No {
        /// The wall.
        wall: String,
        /// When.
        binds: Binding,
    },
    /// Cannot tell: see `missing`.
    Unknown,
}

/// One strategy, quantified on the plan's demand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StrategyResult {
    /// Rank by monthly cost among the strategies that carry the demand (1 = cheapest).
    pub rank: Option<u32>,
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: StrategyKind,
    /// What it does, in a sentence.
    pub summary: String,
    /// Monthly cost at the horizon's demand, all in.
    pub monthly_cost: Option<Figure>,
    /// Monthly cost minus the quota-increase strategy's.
    pub versus_baseline: Option<Figure>,
    /// Whether it carries the horizon's demand.
    pub carries: Carries,
    /// What it needs (quota increases, accounts, commitments).
    pub needs: Vec<String>,
    /// What can go wrong.
    pub risks: Vec<String>,
    /// Its figures.
    pub figures: Vec<NamedFigure>,
    /// What it lacks to be fully quantified.
    pub missing: Vec<MissingInput>,
}

/// A measurement held against the arithmetic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// What was compared.
    pub subject: String,
    /// What the arithmetic says.
    pub arithmetic: Option<Figure>,
    /// What was measured.
    pub measured: Option<Figure>,
    /// Whether they agree (`None`: could not compare).
    pub agrees: Option<bool>,
    /// How they were compared.
    pub note: String,
}

/// Something the plan could not compute, and the input that would enable it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissingInput {
    /// The section or figure affected.
    pub section: String,
    /// What to enter or measure.
    pub needs: String,
}
