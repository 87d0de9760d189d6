//! The simulator's own counters, so a test can hold what a client reports
//! against what the server saw: requests by model × operation × outcome,
//! throttles by reason, tokens served, aborted requests, active streams and
//! queue depth per lane, (at snapshot time) quota usage per pool, and the
//! server's front-door counters ([`crate::server_stats`]).
//!
//! Recording is lock-free (relaxed atomics in arrays indexed by lane,
//! operation, outcome); only [`SimStats::snapshot`] walks everything.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use quarry_bedrock::{Operation, Outcome, TokenUsage};
use serde::Serialize;

use crate::quota::{PoolScope, ThrottleReason};
use crate::server_stats::{ServerCounters, ServerSnapshot};

const OPS: usize = Operation::ALL.len();
const OUTCOMES: usize = Outcome::ALL.len();
const REASONS: usize = ThrottleReason::ALL.len();

fn op_index(op: Operation) -> usize {
    Operation::ALL.iter().position(|o| *o == op).unwrap_or(0)
}

fn outcome_index(outcome: Outcome) -> usize {
    Outcome::ALL.iter().position(|o| *o == outcome).unwrap_or(0)
}

fn reason_index(reason: ThrottleReason) -> usize {
    ThrottleReason::ALL
        .iter()
        .position(|r| *r == reason)
        .unwrap_or(0)
}

/// Counters and gauges of one lane (a model, or a provisioned model).
#[derive(Debug)]
pub struct LaneStats {
    requests: [[AtomicU64; OUTCOMES]; OPS],
    throttles: [AtomicU64; REASONS],
    aborted: AtomicU64,
    flex_shed: AtomicU64,
    input_tokens: AtomicU64,
    output_tokens: AtomicU64,
    cache_read_tokens: AtomicU64,
    cache_write_tokens: AtomicU64,
    /// Streams holding a decode slot. The runtime's contention input.
    pub(crate) active: AtomicU64,
    /// Requests waiting for a decode slot.
    pub(crate) queued: AtomicU64,
    /// Prompt tokens held by active streams (`C` in the latency model).
    pub(crate) context_tokens: AtomicU64,
}

impl Default for LaneStats {
    fn default() -> Self {
        LaneStats {
            requests: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            throttles: std::array::from_fn(|_| AtomicU64::new(0)),
            aborted: AtomicU64::new(0),
            flex_shed: AtomicU64::new(0),
            input_tokens: AtomicU64::new(0),
            output_tokens: AtomicU64::new(0),
            cache_read_tokens: AtomicU64::new(0),
            cache_write_tokens: AtomicU64::new(0),
            active: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            context_tokens: AtomicU64::new(0),
        }
    }
}

impl LaneStats {
    /// Streams decoding now.
    pub fn active(&self) -> u64 {
        self.active.load(Relaxed)
    }

    /// Requests waiting for a decode slot now.
    pub fn queued(&self) -> u64 {
        self.queued.load(Relaxed)
    }
}

/// All counters of the simulator. Lane `names.len() - 1` is the "unresolved"
/// lane for requests whose model id did not resolve.
#[derive(Debug)]
pub struct SimStats {
    lanes: Box<[LaneStats]>,
    names: Vec<String>,
    server: ServerCounters,
}

impl SimStats {
    /// Counters for lanes named `names` plus the unresolved lane.
    pub fn new(mut names: Vec<String>) -> Self {
        names.push("unresolved".to_owned());
        SimStats {
            lanes: names.iter().map(|_| LaneStats::default()).collect(),
            names,
            server: ServerCounters::default(),
        }
    }

    /// The server's front-door counters.
    pub fn server(&self) -> &ServerCounters {
        &self.server
    }

    /// The lane for requests whose model did not resolve.
    pub fn unresolved_lane(&self) -> usize {
        self.lanes.len() - 1
    }

    /// One lane's counters (out-of-range lanes count as unresolved).
    pub fn lane(&self, lane: usize) -> &LaneStats {
        self.lanes
            .get(lane)
            .unwrap_or(&self.lanes[self.lanes.len() - 1])
    }

    /// Counts a finished request (any outcome, including errors the server
    /// produced itself such as auth failures: use the unresolved lane when
    /// no model is known).
    pub fn record_request(&self, lane: usize, op: Operation, outcome: Outcome) {
        self.lane(lane).requests[op_index(op)][outcome_index(outcome)].fetch_add(1, Relaxed);
    }

    /// Counts a quota refusal (in addition to its request outcome).
    pub fn record_throttle(&self, lane: usize, reason: ThrottleReason) {
        self.lane(lane).throttles[reason_index(reason)].fetch_add(1, Relaxed);
    }

    /// Counts a request the client abandoned before it finished.
    pub fn record_aborted(&self, lane: usize) {
        self.lane(lane).aborted.fetch_add(1, Relaxed);
    }

    /// Counts a Flex request refused for capacity (503).
    pub fn record_flex_shed(&self, lane: usize) {
        self.lane(lane).flex_shed.fetch_add(1, Relaxed);
    }

    /// Adds tokens served.
    pub fn record_tokens(&self, lane: usize, usage: &TokenUsage) {
        let l = self.lane(lane);
        l.input_tokens.fetch_add(usage.input_tokens, Relaxed);
        l.output_tokens.fetch_add(usage.output_tokens, Relaxed);
        l.cache_read_tokens
            .fetch_add(usage.cache_read_input_tokens, Relaxed);
        l.cache_write_tokens
            .fetch_add(usage.cache_write_input_tokens, Relaxed);
    }

    /// The counters as plain data; `quota` comes from the quota book.
    pub fn snapshot(&self, uptime_s: f64, quota: Vec<QuotaSnapshot>) -> StatsSnapshot {
        let lanes = self
            .lanes
            .iter()
            .zip(&self.names)
            .map(|(l, name)| {
                let mut requests = Vec::new();
                for (i, op) in Operation::ALL.iter().enumerate() {
                    for (j, outcome) in Outcome::ALL.iter().enumerate() {
                        let count = l.requests[i][j].load(Relaxed);
                        if count > 0 {
                            requests.push(RequestCount {
                                operation: op.name(),
                                outcome: outcome.as_str(),
                                count,
                            });
                        }
                    }
                }
                let throttles = ThrottleReason::ALL
                    .iter()
                    .zip(&l.throttles)
                    .map(|(r, c)| ThrottleCount {
                        reason: r.as_str(),
                        count: c.load(Relaxed),
                    })
                    .filter(|t| t.count > 0)
                    .collect();
                LaneSnapshot {
                    model: name.clone(),
                    requests,
                    throttles,
                    aborted: l.aborted.load(Relaxed),
                    flex_shed: l.flex_shed.load(Relaxed),
                    tokens: TokenUsage {
                        input_tokens: l.input_tokens.load(Relaxed),
                        output_tokens: l.output_tokens.load(Relaxed),
                        cache_read_input_tokens: l.cache_read_tokens.load(Relaxed),
                        cache_write_input_tokens: l.cache_write_tokens.load(Relaxed),
                    },
                    active_streams: l.active.load(Relaxed),
                    queue_depth: l.queued.load(Relaxed),
                }
            })
            .collect();
        StatsSnapshot {
            uptime_s,
            lanes,
            quota,
            server: self.server.snapshot(),
        }
    }
}

/// Requests of one operation and outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestCount {
    /// Operation name (`ConverseStream`).
    pub operation: &'static str,
    /// Outcome (`ok`, `throttled` ...).
    pub outcome: &'static str,
    /// How many.
    pub count: u64,
}

/// Throttles of one reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ThrottleCount {
    /// `tokens_per_minute` ...
    pub reason: &'static str,
    /// How many.
    pub count: u64,
}

/// One lane's counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LaneSnapshot {
    /// Model id or provisioned ARN (`unresolved` for bad ids).
    pub model: String,
    /// Non-zero request counts.
    pub requests: Vec<RequestCount>,
    /// Non-zero throttle counts.
    pub throttles: Vec<ThrottleCount>,
    /// Requests the client abandoned.
    pub aborted: u64,
    /// Flex requests refused with 503 because every decode slot was busy
    /// and the Flex queue full.
    pub flex_shed: u64,
    /// Tokens served.
    pub tokens: TokenUsage,
    /// Streams decoding at snapshot time.
    pub active_streams: u64,
    /// Requests waiting for a slot at snapshot time.
    pub queue_depth: u64,
}

/// One quota pool's usage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuotaSnapshot {
    /// The account id.
    pub account_id: String,
    /// The base model.
    pub model: String,
    /// `on_demand` or the cross-Region geography.
    pub scope: String,
    /// Tokens-per-minute limit.
    pub tpm: u64,
    /// Tokens-per-day limit.
    pub tpd: u64,
    /// Requests-per-minute limit, if any.
    pub rpm: Option<u64>,
    /// Quota tokens in the current minute window.
    pub minute_tokens: u64,
    /// Quota tokens in the current day window.
    pub day_tokens: u64,
    /// Requests in the current minute window.
    pub minute_requests: u64,
    /// Admitted, not yet settled.
    pub in_flight: u64,
    /// All tokens reserved so far.
    pub reserved_total: u64,
    /// All tokens settled so far.
    pub settled_total: u64,
}

impl QuotaSnapshot {
    /// The scope label of a pool.
    pub fn scope_label(scope: PoolScope) -> String {
        match scope {
            PoolScope::OnDemand => "on_demand".to_owned(),
            PoolScope::CrossRegion(geo) => geo.to_owned(),
            PoolScope::Reserved => "reserved".to_owned(),
        }
    }
}

/// Everything the stats endpoint shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatsSnapshot {
    /// Seconds since the simulator started.
    pub uptime_s: f64,
    /// Per lane.
    pub lanes: Vec<LaneSnapshot>,
    /// Per quota pool that has seen a request.
    pub quota: Vec<QuotaSnapshot>,
    /// The server's front-door counters.
    pub server: ServerSnapshot,
}

/// Escapes a Prometheus label value.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl StatsSnapshot {
    /// The JSON body of the stats endpoint.
    pub fn to_json(&self) -> String {
        // unwrap-free: these types always serialise (strings, numbers, vecs).
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The Prometheus text exposition (version 0.0.4) of the same data.
    pub fn to_prometheus(&self) -> String {
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, rows: Vec<(String, u64)>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in rows {
                if labels.is_empty() {
                    let _ = writeln!(out, "{name} {v}");
                } else {
                    let _ = writeln!(out, "{name}{{{labels}}} {v}");
                }
            }
        };
        let per_lane = |f: &dyn Fn(&LaneSnapshot) -> Vec<(String, u64)>| -> Vec<(String, u64)> {
            self.lanes.iter().flat_map(f).collect()
        };
        family(
            "quarry_sim_requests_total",
            "counter",
            "Requests by model, operation and outcome.",
            per_lane(&|l| {
                l.requests
                    .iter()
                    .map(|r| {
                        (
                            format!(
                                "model=\"{}\",operation=\"{}\",outcome=\"{}\"",
                                label(&l.model),
                                r.operation,
                                r.outcome
                            ),
                            r.count,
                        )
                    })
                    .collect()
            }),
        );
        family(
            "quarry_sim_throttles_total",
            "counter",
            "Quota refusals by model and reason.",
            per_lane(&|l| {
                l.throttles
                    .iter()
                    .map(|t| {
                        (
                            format!("model=\"{}\",reason=\"{}\"", label(&l.model), t.reason),
                            t.count,
                        )
                    })
                    .collect()
            }),
        );
        family(
            "quarry_sim_tokens_total",
            "counter",
            "Tokens served by model and kind.",
            per_lane(&|l| {
                let m = label(&l.model);
                vec![
                    (
                        format!("model=\"{m}\",kind=\"input\""),
                        l.tokens.input_tokens,
                    ),
                    (
                        format!("model=\"{m}\",kind=\"output\""),
                        l.tokens.output_tokens,
                    ),
                    (
                        format!("model=\"{m}\",kind=\"cache_read\""),
                        l.tokens.cache_read_input_tokens,
                    ),
                    (
                        format!("model=\"{m}\",kind=\"cache_write\""),
                        l.tokens.cache_write_input_tokens,
                    ),
                ]
            }),
        );
        family(
            "quarry_sim_aborted_total",
            "counter",
            "Requests abandoned by the client.",
            per_lane(&|l| vec![(format!("model=\"{}\"", label(&l.model)), l.aborted)]),
        );
        family(
            "quarry_sim_flex_shed_total",
            "counter",
            "Flex requests refused with 503 for capacity.",
            per_lane(&|l| vec![(format!("model=\"{}\"", label(&l.model)), l.flex_shed)]),
        );
        family(
            "quarry_sim_active_streams",
            "gauge",
            "Streams holding a decode slot.",
            per_lane(&|l| vec![(format!("model=\"{}\"", label(&l.model)), l.active_streams)]),
        );
        family(
            "quarry_sim_queue_depth",
            "gauge",
            "Requests waiting for a decode slot.",
            per_lane(&|l| vec![(format!("model=\"{}\"", label(&l.model)), l.queue_depth)]),
        );
        let pool = |q: &QuotaSnapshot| {
            format!(
                "account=\"{}\",model=\"{}\",scope=\"{}\"",
                label(&q.account_id),
                label(&q.model),
                label(&q.scope)
            )
        };
        let quota = |f: fn(&QuotaSnapshot) -> u64| -> Vec<(String, u64)> {
            self.quota.iter().map(|q| (pool(q), f(q))).collect()
        };
        family(
            "quarry_sim_quota_minute_tokens",
            "gauge",
            "Quota tokens in the current minute window.",
            quota(|q| q.minute_tokens),
        );
        family(
            "quarry_sim_quota_tpm_limit",
            "gauge",
            "Tokens-per-minute limit.",
            quota(|q| q.tpm),
        );
        family(
            "quarry_sim_quota_day_tokens",
            "gauge",
            "Quota tokens in the current day window.",
            quota(|q| q.day_tokens),
        );
        family(
            "quarry_sim_quota_tpd_limit",
            "gauge",
            "Tokens-per-day limit.",
            quota(|q| q.tpd),
        );
        family(
            "quarry_sim_quota_in_flight",
            "gauge",
            "Admitted requests not yet settled.",
            quota(|q| q.in_flight),
        );
        family(
            "quarry_sim_quota_settled_tokens_total",
            "counter",
            "Quota tokens settled.",
            quota(|q| q.settled_total),
        );
        for (name, kind, help, value) in self.server.metrics() {
            family(name, kind, help, vec![(String::new(), value)]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_show_in_json_and_prometheus() {
        let stats = SimStats::new(vec!["meta.llama3-3-70b-instruct-v1:0".to_owned()]);
        stats.record_request(0, Operation::ConverseStream, Outcome::Ok);
        stats.record_request(0, Operation::ConverseStream, Outcome::Ok);
        stats.record_request(0, Operation::Converse, Outcome::Throttled);
        stats.record_throttle(0, ThrottleReason::TokensPerMinute);
        stats.record_tokens(
            0,
            &TokenUsage {
                input_tokens: 10,
                output_tokens: 20,
                ..TokenUsage::default()
            },
        );
        stats.record_request(
            stats.unresolved_lane(),
            Operation::Converse,
            Outcome::ClientError,
        );
        let snap = stats.snapshot(1.5, Vec::new());
        assert_eq!(snap.lanes.len(), 2);
        assert_eq!(
            snap.lanes[0].requests,
            vec![
                RequestCount {
                    operation: "Converse",
                    outcome: "throttled",
                    count: 1
                },
                RequestCount {
                    operation: "ConverseStream",
                    outcome: "ok",
                    count: 2
                },
            ]
        );
        let json: serde_json::Value = serde_json::from_str(&snap.to_json()).unwrap();
        assert_eq!(json["lanes"][0]["tokens"]["output_tokens"], 20);
        assert_eq!(json["lanes"][1]["model"], "unresolved");
        let prom = snap.to_prometheus();
        assert!(prom.contains(
            "quarry_sim_requests_total{model=\"meta.llama3-3-70b-instruct-v1:0\",operation=\"ConverseStream\",outcome=\"ok\"} 2\n"
        ));
        assert!(prom.contains("quarry_sim_throttles_total{model=\"meta.llama3-3-70b-instruct-v1:0\",reason=\"tokens_per_minute\"} 1\n"));
        assert!(prom.contains("# TYPE quarry_sim_active_streams gauge\n"));
        stats.server().record_refused_before_body();
        let snap = stats.snapshot(1.5, Vec::new());
        let json: serde_json::Value = serde_json::from_str(&snap.to_json()).unwrap();
        assert_eq!(json["server"]["requests_refused_before_body"], 1);
        assert!(
            snap.to_prometheus()
                .contains("quarry_sim_server_requests_refused_before_body_total 1\n")
        );
    }

    #[test]
    fn labels_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
