//! `quarry-engine`: Quarry's load engine.
//!
//! The engine fires signed Bedrock requests at a target concurrency or rate,
//! stamps every request's timeline on a monotonic clock, and folds timelines
//! into bounded HDR histograms per series. One agent's share of a run
//! ([`Share`]) is the single road every run takes: the `quarry-agent` daemon
//! runs shares for a remote controller, and `quarry run` runs one share
//! in-process, as a fleet of one.

// The load engine: load description, time, schedules, recording, snapshots.
mod arrival;
mod clock;
mod deadline;
mod health;
mod load;
mod pacing;
mod recorder;
mod scheduler;
mod series;
pub mod session;
mod snapshot;
mod stages;
mod timeline;

// The HTTP transport to Bedrock (hyper + rustls, measured pool) and the
// executor that sends Bedrock requests through it.
pub mod exec;
pub mod http;
mod share;
pub mod trace;

// Test support shared with other crates' tests.
#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
pub mod testing;

// The run plan, workload sampling and prices.
mod plan;
mod pricing;
mod replay;
mod workload;

pub use share::{
    AuthMethod, BEARER_TOKEN_ENV, Connection, FEATURE_INTERLEAVE, FEATURE_REPLAY,
    FEATURE_REQUEST_SLO, FEATURE_SERVICE_TIER, FEATURE_SESSIONS, FEATURE_THROTTLE_PACING,
    FinishKind, PreparedShare, SHARE_FEATURES, SHARE_SCHEMA_VERSION, SIM_REGION, Share, ShareError,
    ShareEvent, ShareFinished, ShareSpec, SpanExport,
};

pub use arrival::{ArrivalAt, ArrivalSchedule, Interleave};
pub use clock::{RunClock, SPIN_WINDOW, duration_ns};
pub use deadline::{DispatchTimer, MAX_ADAPTIVE_POLL};
pub use health::{
    DEFAULT_MAX_CPU_SHARE, DEFAULT_MAX_RUNTIME_DELAY_P95, HealthPolicy, HealthSample,
    InFlightGauge, ProcessCpu, Saturation, cpu_ticks,
};
pub use load::{
    Arrival, CatchUp, DEFAULT_MAX_IN_FLIGHT, EndCondition, LoadError, LoadModel, LoadProfile,
    MAX_CONCURRENCY, MAX_RATE_PER_S, STEADY_STAGE, Stage, StageKind,
};
pub use pacing::ThrottlePacing;
pub use recorder::{IntervalTake, Recorder};
pub use scheduler::{EndReason, Engine, EngineConfig, Executor, RunReport, Workload};
pub use series::{
    CodecError, Count, HISTOGRAM_HIGHEST, HISTOGRAM_LOWEST, HISTOGRAM_SIGFIG, Metric,
    SeriesCounters, SeriesDelta, SeriesKey, TokenKind, USAGE_SOURCES, new_histogram,
};
pub use session::{Conversation, SessionEnd, SessionTotals};
pub use snapshot::{Cumulative, IntervalSnapshot, merge_series};
pub use stages::{StagePlan, StageSpan};
pub use timeline::{
    Completion, ContentEvent, EarlierAttempt, PlannedRequest, ReportedUsage, RequestTicket,
    ResponseInfo, Timeline, TurnRef,
};

pub use plan::{
    CachePrefix, MAX_INPUT_TOKENS, MAX_THINK_MS, MAX_TURNS, MixEntry, PlanError, RequestSlo,
    RetryPolicy, RunPlan, SessionPlan, Target, Timeouts, TokenDistribution, WorkloadMix,
};
pub use pricing::{ModelPrices, PriceTable, TIER_PRICE_UNIT, TierPrices};
/// The prompt-cache lifetime, as the protocol crate defines it.
pub use quarry_bedrock::CacheTtl;
pub use replay::{Replay, ReplayError, ReplayPrefix, ReplayRequest, text_tokens, write_exact_text};
pub use share::FEATURE_REPLAY_CACHE_PREFIX;
pub use workload::{
    CHARS_PER_TOKEN, Draw, Nonce, PromptCacheSupport, WorkloadSampler, prompt_cache_support,
};
