//! Guard rails: limits an agent's operator sets on what any controller may
//! run on it. Agents hold cloud credentials, so they decide for themselves
//! rather than trusting the controller's plan: a plan beyond a rail is refused
//! before anything fires, with a message naming the rail.
//!
//! What each rail measures in a plan:
//! - `max_concurrency`: closed loop, the highest concurrency of any stage;
//!   open loop, `load.max_in_flight` (an open-loop plan without an in-flight
//!   cap has no concurrency bound and is refused when this rail is set).
//! - `max_rate_per_second`: open loop, the highest rate of any stage. Closed
//!   loop has no arrival rate; its rate is bounded by concurrency instead.
//! - `max_duration_ms`: the sum of the stage durations.
//! - `allowed_model_patterns`: every mix entry's model id must match one
//!   pattern (`*` any run of characters, `?` one character).
//! - `max_spend_usd`: the estimated worst-case spend, see [`estimate_spend`].

use std::time::Duration;

use quarry_bedrock::TokenUsage;
use quarry_proto::v1 as pb;

use super::DaemonError;
use quarry_engine::CHARS_PER_TOKEN;
use quarry_engine::PriceTable;
use quarry_engine::{Arrival, EndCondition, LoadModel, StageKind};
use quarry_engine::{MixEntry, RunPlan, Target};

/// The limits an agent enforces on every plan; `None` (or an empty pattern
/// list) is no limit.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GuardRails {
    /// Most concurrent requests.
    pub max_concurrency: Option<u32>,
    /// Most open-loop arrivals per second.
    pub max_rate_per_second: Option<f64>,
    /// Longest run.
    pub max_duration: Option<Duration>,
    /// Model-id patterns a plan may use; empty allows every model.
    pub allowed_model_patterns: Vec<String>,
    /// Most estimated spend per run, USD.
    pub max_spend_usd: Option<f64>,
}

impl GuardRails {
    /// The rails as `Describe` reports them (0 = no limit).
    pub fn to_proto(&self) -> pb::GuardRails {
        pb::GuardRails {
            max_concurrency: self.max_concurrency.unwrap_or(0),
            max_rate_per_second: self.max_rate_per_second.unwrap_or(0.0),
            max_duration_ms: self
                .max_duration
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            allowed_model_patterns: self.allowed_model_patterns.clone(),
            max_spend_usd: self.max_spend_usd.unwrap_or(0.0),
        }
    }

    /// Checks `plan` against every rail; the error names the first rail the
    /// plan goes beyond.
    pub fn check(&self, plan: &RunPlan, prices: &PriceTable) -> Result<(), DaemonError> {
        let refuse =
            |rail: &'static str, detail: String| Err(DaemonError::GuardRail { rail, detail });
        if let Some(max) = self.max_concurrency {
            match peak_concurrency(plan) {
                None => {
                    return refuse(
                        "max_concurrency",
                        format!(
                            "open-loop plan without load.max_in_flight has no concurrency bound; this agent allows {max}"
                        ),
                    );
                }
                Some(peak) if peak > f64::from(max) => {
                    return refuse(
                        "max_concurrency",
                        format!(
                            "plan peaks at {peak} concurrent requests; this agent allows {max}"
                        ),
                    );
                }
                Some(_) => {}
            }
        }
        if let Some(max) = self.max_rate_per_second
            && let Some(peak) = peak_rate(plan)
            && peak > max
        {
            return refuse(
                "max_rate_per_second",
                format!("plan peaks at {peak} requests/s; this agent allows {max}/s"),
            );
        }
        if let Some(max) = self.max_duration {
            let total = plan_duration(plan);
            if total > max {
                return refuse(
                    "max_duration_ms",
                    format!(
                        "plan runs {} ms; this agent allows {} ms",
                        total.as_millis(),
                        max.as_millis()
                    ),
                );
            }
        }
        if !self.allowed_model_patterns.is_empty() {
            for entry in plan.mix.entries() {
                let allowed = self
                    .allowed_model_patterns
                    .iter()
                    .any(|p| glob_match(p, &entry.model_id));
                if !allowed {
                    return refuse(
                        "allowed_model_patterns",
                        format!(
                            "model {:?} matches none of {:?}",
                            entry.model_id, self.allowed_model_patterns
                        ),
                    );
                }
            }
        }
        if let Some(max) = self.max_spend_usd
            && !matches!(plan.target, Target::Sim { .. })
        {
            let estimate =
                estimate_spend(plan, prices).map_err(|detail| DaemonError::GuardRail {
                    rail: "max_spend_usd",
                    detail,
                })?;
            if estimate.usd > max {
                return refuse(
                    "max_spend_usd",
                    format!(
                        "plan may spend up to ${:.2} ({} requests × {} attempts × ${:.6} worst case each); this agent allows ${max:.2}",
                        estimate.usd,
                        estimate.requests,
                        plan.retry.max_attempts(),
                        estimate.worst_request_usd
                    ),
                );
            }
        }
        Ok(())
    }
}

/// The highest concurrency the plan can reach; `None` when unbounded (open
/// loop without an in-flight cap).
fn peak_concurrency(plan: &RunPlan) -> Option<f64> {
    match plan.load.model() {
        LoadModel::Closed { concurrency } => Some(
            plan.load
                .stages()
                .iter()
                .map(|s| s.target.unwrap_or(f64::from(*concurrency)))
                .fold(0.0, f64::max),
        ),
        LoadModel::Open { max_in_flight, .. } => max_in_flight.map(f64::from),
    }
}

/// The highest open-loop rate; `None` for closed loop.
fn peak_rate(plan: &RunPlan) -> Option<f64> {
    match plan.load.model() {
        LoadModel::Closed { .. } => None,
        LoadModel::Open { rate_per_s, .. } => Some(
            plan.load
                .stages()
                .iter()
                .map(|s| s.target.unwrap_or(*rate_per_s))
                .fold(0.0, f64::max),
        ),
    }
}

/// The sum of stage durations (saturating).
fn plan_duration(plan: &RunPlan) -> Duration {
    plan.load
        .stages()
        .iter()
        .fold(Duration::ZERO, |a, s| a.saturating_add(s.duration))
}

/// A worst-case spend estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpendEstimate {
    /// Upper bound on requests the plan sends.
    pub requests: u64,
    /// The most one attempt can cost, USD (the dearest mix entry).
    pub worst_request_usd: f64,
    /// requests × max attempts × worst request, USD.
    pub usd: f64,
}

/// The worst-case spend of `plan`: an upper bound on requests × the retry
/// policy's max attempts × the dearest mix entry's cost at its maximum input
/// (the input distribution's max, plus the system prompt at
/// [`CHARS_PER_TOKEN`] characters a token, plus the cache prefix priced as a
/// cache write) and its full `max_tokens` of output, priced by `prices`
/// (the agent's table; the plan's own `[pricing]` overrides may only raise a
/// price, never lower it).
///
/// The request bound is `load.requests` when set, else the arrivals the
/// open-loop schedule offers (the integral of the rate over the stages; a
/// Poisson schedule gets six standard deviations of headroom), whichever is
/// smaller. A closed-loop plan without a request count has no bound: its
/// request rate depends on the service's latency. Errors explain why no
/// estimate exists (no bound, an unpriced model).
pub fn estimate_spend(plan: &RunPlan, prices: &PriceTable) -> Result<SpendEstimate, String> {
    let requests = request_bound(plan).ok_or_else(|| {
        "closed-loop plan without load.requests has no request bound, so its spend cannot be bounded; set a request count".to_owned()
    })?;
    let overrides = PriceTable::with_overrides(plan.pricing.clone());
    let mut worst_pico: u64 = 0;
    for entry in plan.mix.entries().iter().filter(|e| e.weight > 0) {
        let cost = worst_entry_cost_pico(entry, prices).ok_or_else(|| {
            format!(
                "model {:?} has no price, so spend cannot be bounded",
                entry.model_id
            )
        })?;
        let cost = worst_entry_cost_pico(entry, &overrides).map_or(cost, |c| c.max(cost));
        worst_pico = worst_pico.max(cost);
    }
    let worst_request_usd = worst_pico as f64 * 1e-12;
    let usd = requests as f64 * f64::from(plan.retry.max_attempts()) * worst_request_usd;
    Ok(SpendEstimate {
        requests,
        worst_request_usd,
        usd,
    })
}

/// The most one attempt of `entry` can cost, pico-USD.
fn worst_entry_cost_pico(entry: &MixEntry, prices: &PriceTable) -> Option<u64> {
    let system = entry
        .system_prompt
        .as_ref()
        .map_or(0, |s| s.chars().count().div_ceil(CHARS_PER_TOKEN) as u64);
    let input = u64::from(entry.input_tokens.max_tokens()) + system;
    let output = u64::from(entry.max_tokens.get());
    let (cache_tokens, ttl) = entry.cache.map_or((0, Default::default()), |c| {
        (u64::from(c.tokens.get()), c.ttl)
    });
    let as_write = TokenUsage {
        input_tokens: input,
        output_tokens: output,
        cache_read_input_tokens: 0,
        cache_write_input_tokens: cache_tokens,
    };
    // A model without a cache-write price bills the prefix as plain input.
    let as_input = TokenUsage {
        input_tokens: input + cache_tokens,
        cache_write_input_tokens: 0,
        ..as_write
    };
    let model = entry.model_id.as_str();
    match prices.cost_pico_usd(model, &as_write, ttl) {
        Some(c) => Some(c.max(prices.cost_pico_usd(model, &as_input, ttl).unwrap_or(0))),
        None => prices.cost_pico_usd(model, &as_input, ttl),
    }
}

/// An upper bound on requests sent, or `None` when there is none.
fn request_bound(plan: &RunPlan) -> Option<u64> {
    let limit = match plan.load.end() {
        EndCondition::Requests(n) => Some(n),
        EndCondition::AfterStages => None,
    };
    let scheduled = match plan.load.model() {
        LoadModel::Closed { .. } => None,
        LoadModel::Open {
            rate_per_s,
            arrival,
            ..
        } => {
            let mut previous: Option<f64> = None;
            let mut expected = 0.0;
            for stage in plan.load.stages() {
                let to = stage.target.unwrap_or(*rate_per_s);
                let from = match stage.kind {
                    StageKind::Ramp => previous.unwrap_or(0.0),
                    _ => to,
                };
                expected += (from + to) / 2.0 * stage.duration.as_secs_f64();
                previous = Some(to);
            }
            let bound = match arrival {
                // One arrival per 1/λ, plus the one at t = 0 of each stage.
                Arrival::Constant => expected.ceil() + plan.load.stages().len() as f64,
                Arrival::Poisson => (expected + 6.0 * expected.sqrt() + 6.0).ceil(),
            };
            // Float-to-int `as` saturates; an absurd bound stays absurd.
            Some(bound as u64)
        }
    };
    match (limit, scheduled) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Shell-style match of `text` against `pattern`: `*` is any run of
/// characters (including none), `?` exactly one; everything else literal.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Iterative matching with one backtrack point: linear in practice, never
    // exponential.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests;
