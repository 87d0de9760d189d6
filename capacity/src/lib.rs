//! `quarry-capacity`: the capacity planner behind `quarry plan`.
//!
//! It answers "traffic doubles next month: which wall do we hit first, when,
//! and what do we do about it?" with figures a team can defend: the walls in
//! the order demand meets them (RPM, TPM at admission, TPM settled, tokens
//! per day, concurrency and latency from sweeps, cost), the quota increase
//! request in the terms AWS's form asks and the day to file it, and the
//! strategies (caching, routing, accounts, inference profiles, tiers,
//! Reserved, Provisioned Throughput, batch, queueing, self-hosting) each
//! quantified on the same demand and ranked by monthly cost.
//!
//! The crate is pure arithmetic: it never reads files, clocks or the network,
//! so the same input always gives the same plan and tests cover it
//! completely. Quota arithmetic itself (reservation, settlement, burndown,
//! built-in quota facts) lives in `quarry_bedrock::quota`, shared with the
//! simulator and the run report.
//!
//! # Using it
//!
//! ```
//! let text = r#"
//! start = "2026-12-01"
//! [growth]
//! monthly_rate = 0.25
//! [[class]]
//! name = "chat"
//! peak_rpm = 600
//! average_rpm = 200
//! input_tokens = 1500
//! output_tokens = 300
//! max_tokens = 800
//! models = ["meta.llama3-3-70b-instruct-v1:0"]
//! "#;
//! let input = quarry_capacity::parse_plan_file("PLAN.toml", text).expect("valid plan");
//! let plan = quarry_capacity::plan(&input);
//! let report = quarry_capacity::render_text(&plan);
//! assert!(report.contains("TPM at admission"));
//! let json = quarry_capacity::to_json(&plan);
//! assert_eq!(quarry_capacity::from_json(&json).unwrap(), plan);
//! ```
//!
//! A caller fills in what the file does not hold before calling [`plan`]:
//! built-in prices ([`PriceBook::builtin`] for [`PlanInput::priced_model_ids`])
//! and measured curves and demand profiles ([`Measured`]).

mod context;
mod date;
mod figure;
mod file;
mod inference_profiles;
mod input;
mod load;
mod measured;
mod models;
mod num;
mod plan;
mod planner;
mod pool;
mod profile;
mod quota_request;
mod render;
mod resolve;
mod strategy;
mod timeline;
mod walls;

pub use date::CivilDate;
pub use figure::{Basis, Figure, Source, SourceKind, Unit, round_sig};
pub use file::{
    PlanDiagnostic, PlanFileContext, PlanFileError, parse_plan_file, parse_plan_file_with,
};
pub use input::{
    Budget, CacheProfile, CacheTtl, Demand, Growth, GrowthAt, GrowthCurve, GrowthLevel,
    LatencyMetric, LatencyObjective, ModelEntry, Origin, Percentile, PlanInput, PriceBook,
    ProvisionedOffer, QuotaEntry, ReservedOffer, RouteMix, SelfHostOffer, Slo, TierPricing,
    TokenPrices, WorkloadClass,
};
pub use measured::{
    CurveLevel, LatencyPercentiles, LoadVariable, Measured, MeasuredCurve, MeasuredDemand,
    MeasuredSessions, RequestShape, TokenStat,
};
pub use plan::{
    Binding, Carries, Check, ClassSummary, DEMAND_SAMPLES, FileBy, FixedCap, MissingInput,
    NamedFigure, PLAN_SCHEMA_VERSION, Plan, QuotaRequest, QuotaRequestItem, RequestForm,
    StrategyKind, StrategyResult, TimelineSummary, Wall, WallKind,
};
pub use planner::plan;
pub use pool::PoolKey;
pub use quarry_bedrock::quota::{QuotaMetric, QuotaPool};
pub use render::{PlanJsonError, from_json, render_text, to_json};
