//! `quarry-sim`: a wire-faithful Amazon Bedrock Runtime simulator.
//!
//! The core (this crate's library part, below the server) owns accounts and
//! configuration ([`SimConfig`]), the model catalog ([`Catalog`]), token
//! quotas ([`QuotaBook`]), the latency model ([`LatencyModel`]), the
//! per-request engine ([`Simulator`], [`Ticket`]), tokens and pseudo-text
//! ([`count_tokens`], [`PseudoText`]) and message framing ([`Framing`]),
//! the prompt cache ([`PromptCache`]),
//! injected faults ([`FaultPlan`]) and its own counters ([`SimStats`]).
//! The HTTP server drives [`Simulator::admit`] and [`Ticket::next`].

mod cache;
mod catalog;
mod cloudwatch;
mod config;
mod faults;
mod field;
mod latency;
mod quota;
mod runtime;
mod server_stats;
mod service_quotas;
mod slots;
mod stats;
mod text;

mod server;

pub use cache::{CachePoint, CacheTtl, CacheUsage, PromptCache, prefix_hash};
pub use catalog::{
    CacheRules, Catalog, ModelIdx, ModelProfile, ModelQuotas, ProvisionedModel, ResolveError,
    ResolvedModel, Route,
};
pub use cloudwatch::{
    CloudWatchBook, CloudWatchEvent, CloudWatchSnapshot, MAX_ROWS as CLOUDWATCH_MAX_ROWS,
};
pub use config::{
    AccountConfig, CacheConfig, ConfigError, DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCOUNT_ID,
    DEFAULT_SECRET_ACCESS_KEY, ModelConfig, ProvisionedConfig, QuotaConfig, QuotaOverride,
    SimConfig,
};
pub use faults::{
    FaultContext, FaultDecision, FaultKind, FaultPlan, FaultRule, HeaderFault, InjectedError,
    StreamFault, StreamFaultKind,
};
pub use latency::{ContendedLatency, LatencyModel};
pub use quarry_bedrock::Framing;
pub use quota::{
    PoolKey, PoolLimits, PoolScope, PoolUsage, QuotaBook, Reservation, Throttle, ThrottleReason,
    WindowKind,
};
pub use runtime::{AccountIdx, Completion, Rejection, RequestSpec, Simulator, Step, Ticket};
pub use server_stats::{ClosedBecause, ServerCounters, ServerSnapshot};
pub use service_quotas::{SERVICE_NAME, SimServiceQuota, account_quotas, simulator_code};
pub use stats::{
    LaneSnapshot, LaneStats, QuotaSnapshot, RequestCount, SimStats, StatsSnapshot, ThrottleCount,
};
pub use text::{OutputLength, PseudoText, RequestSeed, RngStream, StopReason, count_tokens};

// -- server (pub use block) --
pub use server::{
    ADMIN_PATH_PREFIX, DEFAULT_BODY_TIMEOUT, DEFAULT_HEADER_TIMEOUT, DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_HEAD_BYTES, DEFAULT_MAX_UNVERIFIED_BODY_BYTES,
    DEFAULT_SHUTDOWN_GRACE, Limits, MAX_REQUEST_BODY_BYTES, ServerError, ServerOptions, SimServer,
    SimService, TlsError, TlsSettings, system_clock,
};
