//! One agent's share of a run: the plan's workload drawn, signed, sent and
//! recorded by the engine. This is the single code path for an in-process run
//! (`quarry run` with no agents) and for the `quarry-agent` daemon, so the two
//! can never measure differently.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use quarry_bedrock::auth::{Credentials, EXAMPLE_ACCESS_KEY_ID, EXAMPLE_SECRET_ACCESS_KEY};
use quarry_bedrock::{Endpoint, EndpointError};
use tokio::sync::mpsc;

use crate::arrival::Interleave;
use crate::clock::RunClock;
use crate::exec::{
    BedrockExecutor, CredentialCache, CredentialSource, ExecutorError, MixWorkload, SignerSource,
};
use crate::health::InFlightGauge;
use crate::http::TransportConfig;
use crate::plan::{RunPlan, Target};
use crate::scheduler::{Engine, EngineConfig, RunReport};
use crate::series::{SeriesDelta, SeriesKey};
use crate::snapshot::IntervalSnapshot;
use crate::trace::{ServerAddress, TraceSampling};
use crate::workload::WorkloadSampler;

/// The region requests to the simulator are signed for (it accepts any).
pub const SIM_REGION: &str = "us-east-1";

/// What one agent is asked to run: its share of a plan, as it travels from
/// the controller to the agent (JSON inside `quarry.v1.RunRequest`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareSpec {
    /// The run this share belongs to.
    pub run_id: String,
    /// The plan with its load already scaled to this share.
    pub plan: RunPlan,
    /// The agent group this share reports under (region / account alias).
    pub group: String,
    /// Distinguishes this share's workload draws from every other share's.
    pub stream: u64,
    /// Seeds this share's arrival schedule.
    pub arrival_seed: u64,
    /// Constant-arrival phase in [0, 1): share k of K equal shares gets
    /// k/K, so merged arrivals stay evenly spaced.
    pub phase: f64,
    /// Constant-arrival slots on the run's grid when shares are weighted
    /// unequally (then `phase` is unused); absent otherwise. Agents that
    /// predate it refuse a share carrying it (unknown field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interleave: Option<Interleave>,
    /// Snapshot interval, milliseconds.
    pub interval_ms: u64,
    /// The simulator's address as this agent reaches it, when the target is
    /// the simulator.
    pub sim_url: Option<String>,
    /// How this share samples request spans; `None` when the run is not
    /// traced. The trace context itself travels as gRPC metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<TraceSampling>,
}

/// The version of [`ShareSpec`]'s JSON; bumped on an incompatible change.
pub const SHARE_SCHEMA_VERSION: u32 = 1;

impl ShareSpec {
    /// The engine configuration of this share.
    pub fn engine_config(&self) -> EngineConfig {
        EngineConfig {
            group: Arc::from(self.group.as_str()),
            seed: self.arrival_seed,
            phase: self.phase,
            interleave: self.interleave.clone().map(Arc::new),
            interval: std::time::Duration::from_millis(self.interval_ms.max(1)),
            ..EngineConfig::default()
        }
    }
}

/// Why a share could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ShareError {
    /// The target's endpoint is not usable.
    #[error("target.endpoint: {0}")]
    Endpoint(#[from] EndpointError),
    /// The target is the simulator but no simulator address was given.
    #[error("target is the simulator, but no simulator is running")]
    NoSimulator,
    /// The plan cannot be executed against the endpoint.
    #[error(transparent)]
    Executor(#[from] ExecutorError),
    /// The credential chain has no credentials.
    #[error("AWS credentials: {0}")]
    Credentials(String),
}

/// Where a share sends its requests and how it signs them.
pub struct Connection {
    /// The Bedrock endpoint.
    pub endpoint: Endpoint,
    /// The signer for each request.
    pub signer: SignerSource,
}

impl Connection {
    /// Where requests go, as spans report it (`server.address`, `server.port`).
    pub fn server_address(&self) -> ServerAddress {
        let authority = self.endpoint.host_header();
        let default_port = if self.endpoint.scheme() == "https" {
            443
        } else {
            80
        };
        // A bracketed IPv6 literal keeps its colons; the port follows "]:".
        let (address, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !port.contains(']') => {
                (host, port.parse().unwrap_or(default_port))
            }
            _ => (authority, default_port),
        };
        ServerAddress {
            address: address.trim_matches(['[', ']']).to_owned(),
            port,
        }
    }

    /// The connection for `target`: the simulator at `sim_url` with its
    /// built-in keys, or AWS with credentials from the default chain (or the
    /// named profile). AWS credentials are fetched once here, so a run without
    /// credentials fails before it fires rather than logging every request.
    pub async fn for_target(target: &Target, sim_url: Option<&str>) -> Result<Self, ShareError> {
        match target {
            Target::Sim { .. } => {
                let url = sim_url.ok_or(ShareError::NoSimulator)?;
                let credentials = Credentials::new(
                    EXAMPLE_ACCESS_KEY_ID,
                    EXAMPLE_SECRET_ACCESS_KEY,
                    None,
                    None,
                    "quarry-sim",
                );
                Ok(Connection {
                    endpoint: Endpoint::custom(url, SIM_REGION)?,
                    signer: SignerSource::fixed(SIM_REGION, credentials),
                })
            }
            Target::Aws {
                region,
                endpoint,
                profile,
            } => {
                let endpoint = match endpoint {
                    Some(url) => Endpoint::custom(url, region)?,
                    None => Endpoint::aws(region)?,
                };
                let source = CredentialSource::DefaultChain {
                    profile: profile.clone(),
                    region: Some(region.clone()),
                };
                let cache = CredentialCache::from_source(source).await;
                cache
                    .current()
                    .await
                    .map_err(|e| ShareError::Credentials(e.to_string()))?;
                Ok(Connection {
                    endpoint,
                    signer: SignerSource::cached(region, cache),
                })
            }
        }
    }
}

/// A share with everything that can fail already set up (the executor and
/// its transport, the workload), but no engine yet: a daemon prepares the
/// share when it admits the run, so a share that cannot be set up is refused
/// before it reports `Started`, and starts the engine at the start time.
pub struct PreparedShare {
    load: crate::load::LoadProfile,
    workload: Arc<MixWorkload>,
    executor: Arc<BedrockExecutor>,
}

impl PreparedShare {
    /// Sets up `plan` over `connection`; `stream` tells agent shares apart
    /// so their draws are independent (0 for a single agent).
    pub fn new(
        plan: &RunPlan,
        connection: Connection,
        transport: &TransportConfig,
        stream: u64,
    ) -> Result<Self, ShareError> {
        let sampler = Arc::new(WorkloadSampler::new(&plan.mix, plan.seed, stream));
        let executor = BedrockExecutor::new(
            plan,
            &connection.endpoint,
            sampler.clone(),
            connection.signer,
            transport,
        )?;
        Ok(PreparedShare {
            load: plan.load.clone(),
            workload: Arc::new(MixWorkload::new(sampler, plan)),
            executor: Arc::new(executor),
        })
    }

    /// The share with its engine on `clock` (whose origin is the start).
    pub fn start(self, config: EngineConfig, clock: RunClock) -> Share {
        Share {
            engine: Engine::new(self.load, config, clock),
            workload: self.workload,
            executor: self.executor,
        }
    }
}

/// One agent's share of a plan, ready to run.
pub struct Share {
    engine: Engine,
    workload: Arc<MixWorkload>,
    executor: Arc<BedrockExecutor>,
}

impl Share {
    /// Sets up `plan` over `connection`. `stream` tells agent shares apart so
    /// their draws are independent (0 for a single agent); `config` carries
    /// the group, seed and phase of this share.
    pub fn new(
        plan: &RunPlan,
        connection: Connection,
        transport: &TransportConfig,
        config: EngineConfig,
        stream: u64,
        clock: RunClock,
    ) -> Result<Self, ShareError> {
        Ok(PreparedShare::new(plan, connection, transport, stream)?.start(config, clock))
    }

    /// The in-flight gauge, for live views.
    pub fn in_flight(&self) -> InFlightGauge {
        self.engine.in_flight()
    }

    /// Runs the share to its end (or until `shutdown`), sending a snapshot per
    /// interval to `snapshots`.
    pub async fn run(
        self,
        snapshots: mpsc::Sender<IntervalSnapshot>,
        shutdown: impl Future<Output = ()> + Send,
    ) -> RunReport {
        self.engine
            .run(self.workload, self.executor, snapshots, shutdown)
            .await
    }
}

/// How a share ended: its cumulative series and why it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct ShareFinished {
    /// Every interval of the share merged.
    pub series: BTreeMap<SeriesKey, SeriesDelta>,
    /// The share ended early (stopped, lease expired, agent shutting down,
    /// failed to start).
    pub partial: bool,
    /// Why it ended, for people ("completed", "lease expired", ...).
    pub reason: String,
    /// Requests sent (dropped arrivals excluded).
    pub requests_sent: u64,
    /// When the last request was recorded, Unix ns on the agent's clock.
    pub finished_at_unix_ns: i64,
}

/// One event of a share's stream, in domain form.
#[derive(Debug, Clone, PartialEq)]
pub enum ShareEvent {
    /// The share's origin: firing started at this agent wall-clock time.
    Started {
        /// Unix ns on the agent's clock; interval times are relative to it.
        started_at_unix_ns: i64,
    },
    /// One interval's deltas.
    Interval(IntervalSnapshot),
    /// A batch of sampled request spans, OTLP-encoded.
    Spans {
        /// OTLP `ResourceSpans`, protobuf-encoded.
        otlp_resource_spans: Vec<u8>,
        /// Spans the agent dropped before this batch.
        dropped_spans: u64,
    },
    /// The last event of a share.
    Finished(ShareFinished),
}
