//! Splitting one run plan into agent shares: concurrency, rates, stage
//! targets, in-flight caps and request counts divided by weight so the
//! shares add up to the plan exactly, plus each share's seeds, stream and
//! constant-arrival phase.
//!
//! Integers (concurrency, caps, request counts) are split by the largest
//! remainder method, so the total is exact; a share that would round to zero
//! takes one from the largest share, so no agent idles unless there are more
//! agents than units (an error that names the field). Rates are split
//! proportionally.
//!
//! Slots that name the same group are one agent group: the load is first
//! apportioned across groups by the sum of their slots' weights, then each
//! group's part across its slots, so every group's totals are exactly its
//! weight's part of the plan whatever the rounding inside it.
//!
//! Equally weighted constant-rate shares get phases `k/K` and interleave
//! into one even grid. Unequal constant-rate shares cannot (phases of
//! unequal grids never merge evenly), so each gets an [`Interleave`]: its
//! slots of the whole run's grid, which the shares' slots tile exactly.
//! Poisson shares keep independent seeds, and a sum of independent Poisson
//! processes is Poisson.
//!
//! A replayed trace's requests are dealt out, not split by rate: a request
//! with a session goes to the share whose slice of the 2⁶⁴ circle holds its
//! session's hash (so a session stays on one agent), one without goes by
//! its position on the golden-ratio Weyl sequence (round-robin by weight,
//! no bursts); the slices are the shares' weight fractions.

use quarry_engine::FEATURE_REPLAY_CACHE_PREFIX;
use quarry_engine::Interleave;
use quarry_engine::{Arrival, EndCondition, LoadError, LoadModel, LoadProfile, Stage};
use quarry_engine::{
    FEATURE_INTERLEAVE, FEATURE_REPLAY, FEATURE_REQUEST_SLO, FEATURE_SERVICE_TIER,
    FEATURE_SESSIONS, FEATURE_THROTTLE_PACING, Replay, ShareSpec,
};
use quarry_engine::{RunPlan, Target};

/// A plan could not be split across the agents given.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SplitError {
    /// No agent to split over.
    #[error("no agents to split the run over")]
    NoAgents,
    /// A weight that is not a finite number > 0.
    #[error("agent weight #{index} must be a finite number > 0, got {weight}")]
    Weight {
        /// Position of the weight.
        index: usize,
        /// The weight given.
        weight: f64,
    },
    /// A whole-number quantity smaller than the number of agents: some agent
    /// would get none of it.
    #[error(
        "{field} is {total} but there are {agents} agents: each agent needs at least 1 (use fewer agents or raise {field})"
    )]
    TooManyAgents {
        /// The plan field, e.g. `load.concurrency`.
        field: &'static str,
        /// Its value in the plan.
        total: u64,
        /// The number of agents.
        agents: usize,
    },
    /// A whole-number quantity smaller than the number of agent groups.
    #[error(
        "{field} is {total} but there are {groups} agent groups: each group needs at least 1 (use fewer groups or raise {field})"
    )]
    TooManyGroups {
        /// The plan field, e.g. `load.concurrency`.
        field: &'static str,
        /// Its value in the plan.
        total: u64,
        /// The number of groups.
        groups: usize,
    },
    /// A group's part of a whole-number quantity is smaller than its number
    /// of agents.
    #[error(
        "agent group {group:?} gets {part} of {field} but has {agents} agents: each agent needs at least 1 (raise {field} or the group's weight, or use fewer agents)"
    )]
    GroupTooSmall {
        /// The group.
        group: String,
        /// The plan field, e.g. `load.concurrency`.
        field: &'static str,
        /// The group's part of it.
        part: u64,
        /// Agents in the group.
        agents: usize,
    },
    /// A share's scaled load is not a valid profile (for example every
    /// stage of one share rounds to zero load).
    #[error("share {share}: {source}")]
    Load {
        /// The share's index.
        share: usize,
        /// What is wrong with its load.
        source: LoadError,
    },
    /// A group's scaled load is not a valid profile.
    #[error("agent group {group:?}: {source}")]
    GroupLoad {
        /// The group.
        group: String,
        /// What is wrong with its load.
        source: LoadError,
    },
}

/// Where one share goes: its weight and the agent group it reports under.
/// Slots naming the same group form that group (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct ShareSlot {
    /// Relative weight (e.g. 1 per agent, or a group's weight divided among
    /// its agents); a group weighs the sum of its slots.
    pub weight: f64,
    /// The agent group (region / account alias); series are keyed by it.
    pub group: String,
    /// Named AWS credential profile for this group (multi-account runs);
    /// `None` keeps the plan's.
    pub credential_profile: Option<String>,
    /// AWS Region this group fires at; `None` keeps the plan's.
    pub region: Option<String>,
}

impl ShareSlot {
    /// A slot of `weight` in `group`, with the plan's credentials and Region.
    pub fn new(weight: f64, group: impl Into<String>) -> Self {
        ShareSlot {
            weight,
            group: group.into(),
            credential_profile: None,
            region: None,
        }
    }
}

/// Splits `plan`'s load across `weights.len()` shares in proportion to the
/// weights. Everything but the load is copied; the shares' totals equal the
/// plan's exactly (concurrency, caps and request counts) or to rounding
/// (rates).
pub fn split(plan: &RunPlan, weights: &[f64]) -> Result<Vec<RunPlan>, SplitError> {
    if weights.is_empty() {
        return Err(SplitError::NoAgents);
    }
    for (index, &weight) in weights.iter().enumerate() {
        if !(weight.is_finite() && weight > 0.0) {
            return Err(SplitError::Weight { index, weight });
        }
    }
    let total: f64 = weights.iter().sum();
    let fractions: Vec<f64> = weights.iter().map(|w| w / total).collect();
    let load = &plan.load;
    let models = split_model(load.model(), weights)?;
    let stages = split_stages(load.model(), load.stages(), weights, &fractions);
    let ends = match load.end() {
        EndCondition::AfterStages => vec![EndCondition::AfterStages; weights.len()],
        EndCondition::Requests(n) => apportion(n, weights, "load.requests", true)?
            .into_iter()
            .map(EndCondition::Requests)
            .collect(),
    };
    let mut replays = plan
        .replay
        .as_ref()
        .map(|r| deal_replay(r, &fractions).into_iter());
    let mut shares = Vec::with_capacity(weights.len());
    for (share, ((model, stages), end)) in models.into_iter().zip(stages).zip(ends).enumerate() {
        let profile = LoadProfile::new(model, stages, end)
            .map_err(|source| SplitError::Load { share, source })?;
        shares.push(RunPlan {
            load: profile,
            replay: replays.as_mut().and_then(Iterator::next),
            ..plan.clone()
        });
    }
    Ok(shares)
}

/// Splits `plan` over `slots` group by group: the groups (slots sharing a
/// group name, in order of first appearance) get exact parts by the sum of
/// their slots' weights, then each group's part is split over its slots by
/// their weights. One plan per slot, in slot order.
pub fn split_slots(plan: &RunPlan, slots: &[ShareSlot]) -> Result<Vec<RunPlan>, SplitError> {
    if slots.is_empty() {
        return Err(SplitError::NoAgents);
    }
    for (index, slot) in slots.iter().enumerate() {
        if !(slot.weight.is_finite() && slot.weight > 0.0) {
            return Err(SplitError::Weight {
                index,
                weight: slot.weight,
            });
        }
    }
    let groups = group_members(slots);
    let group_weights: Vec<f64> = groups
        .iter()
        .map(|(_, members)| members.iter().map(|&i| slots[i].weight).sum())
        .collect();
    let group_plans = split(plan, &group_weights).map_err(|e| match e {
        SplitError::TooManyAgents { field, total, .. } => SplitError::TooManyGroups {
            field,
            total,
            groups: groups.len(),
        },
        SplitError::Load { share, source } => SplitError::GroupLoad {
            group: groups[share].0.to_owned(),
            source,
        },
        other => other,
    })?;
    let mut out: Vec<Option<RunPlan>> = vec![None; slots.len()];
    for ((group, members), group_plan) in groups.iter().zip(group_plans) {
        let weights: Vec<f64> = members.iter().map(|&i| slots[i].weight).collect();
        let parts = split(&group_plan, &weights).map_err(|e| match e {
            SplitError::TooManyAgents {
                field,
                total,
                agents,
            } => SplitError::GroupTooSmall {
                group: (*group).to_owned(),
                field,
                part: total,
                agents,
            },
            SplitError::Load { share, source } => SplitError::Load {
                share: members[share],
                source,
            },
            other => other,
        })?;
        for (&i, part) in members.iter().zip(parts) {
            out[i] = Some(part);
        }
    }
    Ok(out.into_iter().flatten().collect())
}

/// The groups of `slots`: each name with its slots' indices, in order of
/// first appearance.
fn group_members(slots: &[ShareSlot]) -> Vec<(&str, Vec<usize>)> {
    let mut groups: Vec<(&str, Vec<usize>)> = Vec::new();
    for (i, slot) in slots.iter().enumerate() {
        match groups.iter_mut().find(|(name, _)| *name == slot.group) {
            Some((_, members)) => members.push(i),
            None => groups.push((&slot.group, vec![i])),
        }
    }
    groups
}

/// Builds each slot's [`ShareSpec`] for run `run_id`: the plan split group
/// by group ([`split_slots`]), the slot's group (and credential overrides),
/// stream `k`, a distinct arrival seed, and for constant arrivals phase
/// `k/K` (equal shares) or the share's [`Interleave`] slots (unequal ones).
/// Share 0 keeps the plan's seed and stream 0, so a one-agent run draws
/// exactly what an in-process run draws.
pub fn share_specs(
    run_id: &str,
    plan: &RunPlan,
    slots: &[ShareSlot],
    interval_ms: u64,
    sim_url: Option<&str>,
) -> Result<Vec<ShareSpec>, SplitError> {
    let plans = split_slots(plan, slots)?;
    let mut interleaves = interleave(plan, &plans).map(Vec::into_iter);
    let count = slots.len() as f64;
    Ok(plans
        .into_iter()
        .zip(slots)
        .enumerate()
        .map(|(k, (mut share_plan, slot))| {
            if let Target::Aws {
                region, profile, ..
            } = &mut share_plan.target
            {
                if let Some(p) = &slot.credential_profile {
                    *profile = Some(p.clone());
                }
                if let Some(r) = &slot.region {
                    *region = r.clone();
                }
            }
            let interleave = interleaves.as_mut().and_then(Iterator::next);
            ShareSpec {
                run_id: run_id.to_owned(),
                plan: share_plan,
                group: slot.group.clone(),
                stream: k as u64,
                arrival_seed: arrival_seed(plan.seed, k as u64),
                phase: if interleave.is_some() {
                    0.0
                } else {
                    k as f64 / count
                },
                requires: interleave
                    .iter()
                    .map(|_| FEATURE_INTERLEAVE)
                    .chain(plan.request_slo.iter().map(|_| FEATURE_REQUEST_SLO))
                    .chain((!plan.on_throttle.is_none()).then_some(FEATURE_THROTTLE_PACING))
                    .chain(uses_tiers(plan).then_some(FEATURE_SERVICE_TIER))
                    .chain(replays_cache_prefixes(plan).then_some(FEATURE_REPLAY_CACHE_PREFIX))
                    .chain(plan.replay.is_some().then_some(FEATURE_REPLAY))
                    .chain(plan.sessions.is_some().then_some(FEATURE_SESSIONS))
                    .map(str::to_owned)
                    .collect(),
                interleave,
                interval_ms,
                sim_url: sim_url.map(str::to_owned),
                trace: None,
            }
        })
        .collect())
}

/// The shares' slots of the run's constant-arrival grid, when the run is
/// open-loop with constant arrivals and the shares' rates are unequal;
/// `None` otherwise (phases `k/K` interleave equal shares exactly).
fn interleave(plan: &RunPlan, shares: &[RunPlan]) -> Option<Vec<Interleave>> {
    if plan.replay.is_some() {
        // A replay's arrivals are its trace's, dealt out by `deal_replay`.
        return None;
    }
    let LoadModel::Open {
        rate_per_s,
        arrival: Arrival::Constant,
        ..
    } = *plan.load.model()
    else {
        return None;
    };
    let fractions: Vec<f64> = shares
        .iter()
        .map(|s| match *s.load.model() {
            LoadModel::Open { rate_per_s: r, .. } => r / rate_per_s,
            LoadModel::Closed { .. } => 0.0,
        })
        .collect();
    let first = *fractions.first()?;
    if fractions.iter().all(|f| (f - first).abs() <= first * 1e-9) {
        return None;
    }
    Some(Interleave::tile(&fractions, &plan.load))
}

/// Deals a replay's requests to shares of `fractions` (summing to 1): by
/// session hash when the request has a session, else by its position's
/// golden-ratio Weyl value, each on the 2⁶⁴ circle cut into the shares'
/// slices. The hash is salted with the share count and request count, so a
/// group's part dealt again over its agents spreads anew.
pub fn deal_replay(replay: &Replay, fractions: &[f64]) -> Vec<Replay> {
    let circle = 1u128 << 64;
    let mut bounds = Vec::with_capacity(fractions.len());
    let mut cumulative = 0.0;
    for f in &fractions[..fractions.len().saturating_sub(1)] {
        cumulative += f;
        bounds.push(((cumulative * circle as f64) as u128).min(circle - 1) as u64);
    }
    let salt = ((fractions.len() as u64) << 32) ^ replay.requests().len() as u64;
    let owner = |i: usize, session: Option<u64>| {
        let point = match session {
            Some(h) => crate::replay::mix64(h, salt),
            None => (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        };
        bounds.partition_point(|&b| b <= point)
    };
    let owners: Vec<usize> = replay
        .requests()
        .iter()
        .enumerate()
        .map(|(i, r)| owner(i, r.session))
        .collect();
    (0..fractions.len())
        .map(|k| replay.retain(|i, _| owners[i] == k))
        .collect()
}

/// Share `k`'s arrival seed: the plan's seed for share 0, distinct for every
/// `k` (adding an odd constant times `k` is a bijection on u64).
pub fn arrival_seed(plan_seed: u64, k: u64) -> u64 {
    plan_seed.wrapping_add(k.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

fn split_model(model: &LoadModel, weights: &[f64]) -> Result<Vec<LoadModel>, SplitError> {
    let total: f64 = weights.iter().sum();
    match *model {
        LoadModel::Closed { concurrency } => Ok(apportion(
            u64::from(concurrency),
            weights,
            "load.concurrency",
            true,
        )?
        .into_iter()
        // unwrap-free: each part is <= the u32 total.
        .map(|c| LoadModel::Closed {
            concurrency: u32::try_from(c).unwrap_or(u32::MAX),
        })
        .collect()),
        LoadModel::Open {
            rate_per_s,
            arrival,
            max_in_flight,
            catch_up,
        } => {
            let caps: Vec<Option<u32>> = match max_in_flight {
                None => vec![None; weights.len()],
                Some(cap) => apportion(u64::from(cap), weights, "load.max_in_flight", true)?
                    .into_iter()
                    .map(|c| Some(u32::try_from(c).unwrap_or(u32::MAX)))
                    .collect(),
            };
            Ok(weights
                .iter()
                .zip(caps)
                .map(|(w, max_in_flight)| LoadModel::Open {
                    rate_per_s: rate_per_s * w / total,
                    arrival,
                    max_in_flight,
                    catch_up,
                })
                .collect())
        }
    }
}

/// Each share's stages: closed targets apportioned as whole numbers (zero
/// allowed: a ramp may start from nothing), open targets scaled.
fn split_stages(
    model: &LoadModel,
    stages: &[Stage],
    weights: &[f64],
    fractions: &[f64],
) -> Vec<Vec<Stage>> {
    let mut out: Vec<Vec<Stage>> = vec![Vec::with_capacity(stages.len()); weights.len()];
    for stage in stages {
        let targets: Vec<Option<f64>> = match (stage.target, model) {
            (None, _) => vec![None; weights.len()],
            (Some(t), LoadModel::Closed { .. }) => {
                // Validation made closed targets whole and within u32.
                largest_remainder(t as u64, weights)
                    .into_iter()
                    .map(|c| Some(c as f64))
                    .collect()
            }
            (Some(t), LoadModel::Open { .. }) => fractions.iter().map(|f| Some(t * f)).collect(),
        };
        for (share, target) in out.iter_mut().zip(targets) {
            share.push(Stage {
                target,
                ..stage.clone()
            });
        }
    }
    out
}

/// Splits `total` by `weights` exactly; with `at_least_one`, every part is
/// at least 1, and a total below the number of parts is an error naming
/// `field`.
fn apportion(
    total: u64,
    weights: &[f64],
    field: &'static str,
    at_least_one: bool,
) -> Result<Vec<u64>, SplitError> {
    if at_least_one && total < weights.len() as u64 {
        return Err(SplitError::TooManyAgents {
            field,
            total,
            agents: weights.len(),
        });
    }
    let mut parts = largest_remainder(total, weights);
    if at_least_one {
        // A part that rounded to zero takes one from the largest part, which
        // holds at least 2 because total >= parts.
        while let Some(zero) = parts.iter().position(|p| *p == 0) {
            let largest = (0..parts.len())
                .max_by_key(|&i| (parts[i], std::cmp::Reverse(i)))
                .unwrap_or(0);
            parts[largest] -= 1;
            parts[zero] += 1;
        }
    }
    Ok(parts)
}

/// The largest remainder method: floors of the exact quotas, then one more
/// to the parts with the largest remainders (ties to the earlier part)
/// until the total is reached.
fn largest_remainder(total: u64, weights: &[f64]) -> Vec<u64> {
    let sum: f64 = weights.iter().sum();
    let quotas: Vec<f64> = weights.iter().map(|w| total as f64 * w / sum).collect();
    let mut parts: Vec<u64> = quotas.iter().map(|q| q.floor() as u64).collect();
    let assigned: u64 = parts.iter().sum();
    // Float rounding can make the floors overshoot by a unit on huge totals;
    // trim from the end so the sum is exact either way.
    let mut excess = assigned.saturating_sub(total);
    for part in parts.iter_mut().rev() {
        let take = excess.min(*part);
        *part -= take;
        excess -= take;
    }
    let missing = total.saturating_sub(parts.iter().sum());
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| {
        let (ra, rb) = (quotas[a] - quotas[a].floor(), quotas[b] - quotas[b].floor());
        rb.total_cmp(&ra).then(a.cmp(&b))
    });
    for i in order.iter().cycle().take(missing as usize) {
        parts[*i] += 1;
    }
    parts
}

/// A plan whose mix names a service tier, or whose tier prices are not the
/// built-in ones: an older agent would send or price every request at
/// Standard, so its shares require [`FEATURE_SERVICE_TIER`].
fn uses_tiers(plan: &RunPlan) -> bool {
    !plan.tier_prices.is_default() || plan.mix.entries().iter().any(|e| e.service_tier.is_some())
}

/// Whether a replayed request sends a cached prefix: then every share
/// requires [`FEATURE_REPLAY_CACHE_PREFIX`].
fn replays_cache_prefixes(plan: &RunPlan) -> bool {
    plan.replay
        .as_ref()
        .is_some_and(|r| r.requests().iter().any(|q| q.cache_prefix.is_some()))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;
    use quarry_engine::{Arrival, CatchUp, StageKind};

    fn plan_with(load: LoadProfile) -> RunPlan {
        let json = serde_json::json!({
            "target": {"kind": "sim", "sim_profile": null},
            "load": load,
            "mix": [{
                "weight": 1, "model_id": "m", "operation": "Converse",
                "input_tokens": {"dist": "fixed", "tokens": 10}, "max_tokens": 16,
                "system_prompt": null, "cache": null, "nonce": true, "temperature": null
            }],
            "retry": serde_json::Value::Null,
            "timeouts": serde_json::Value::Null,
            "seed": 7,
            "pricing": {}
        });
        let mut plan: serde_json::Value = json;
        // Retry and timeouts take their defaults' JSON shape.
        plan["retry"] = serde_json::to_value(quarry_engine::RetryPolicy::default()).unwrap();
        plan["timeouts"] = serde_json::to_value(quarry_engine::Timeouts::default()).unwrap();
        serde_json::from_value(plan).unwrap()
    }

    fn stage(name: &str, kind: StageKind, target: Option<f64>) -> Stage {
        Stage {
            name: name.to_owned(),
            kind,
            duration: Duration::from_secs(10),
            target,
        }
    }

    fn closed(c: u32, targets: &[Option<f64>], end: EndCondition) -> RunPlan {
        let stages = targets
            .iter()
            .enumerate()
            .map(|(i, t)| stage(&format!("s{i}"), StageKind::Ramp, *t))
            .collect();
        plan_with(LoadProfile::new(LoadModel::closed(c).unwrap(), stages, end).unwrap())
    }

    fn open(rate: f64, cap: Option<u32>, end: EndCondition) -> RunPlan {
        let model = LoadModel::open(rate, Arrival::Constant, cap, CatchUp::SendLate).unwrap();
        let stages = vec![
            stage("warm", StageKind::Warmup, Some(rate / 3.0)),
            stage("hold", StageKind::Hold, None),
        ];
        plan_with(LoadProfile::new(model, stages, end).unwrap())
    }

    fn concurrency(p: &RunPlan) -> u64 {
        match p.load.model() {
            LoadModel::Closed { concurrency } => u64::from(*concurrency),
            LoadModel::Open { .. } => panic!("open"),
        }
    }

    fn requests(p: &RunPlan) -> u64 {
        match p.load.end() {
            EndCondition::Requests(n) => n,
            EndCondition::AfterStages => 0,
        }
    }

    #[test]
    fn concurrency_splits_exactly_by_largest_remainder() {
        let plan = closed(10, &[None], EndCondition::Requests(100));
        let shares = split(&plan, &[1.0, 1.0, 1.0]).unwrap();
        let c: Vec<u64> = shares.iter().map(concurrency).collect();
        assert_eq!(c, vec![4, 3, 3]);
        let r: Vec<u64> = shares.iter().map(requests).collect();
        assert_eq!(r, vec![34, 33, 33]);
        // Everything but the load is the plan's.
        assert_eq!(shares[1].mix, plan.mix);
        assert_eq!(shares[1].seed, plan.seed);
    }

    #[test]
    fn a_tiny_weight_still_gets_one() {
        let plan = closed(4, &[None], EndCondition::AfterStages);
        let c: Vec<u64> = split(&plan, &[100.0, 1.0])
            .unwrap()
            .iter()
            .map(concurrency)
            .collect();
        assert_eq!(c, vec![3, 1]);
    }

    #[test]
    fn more_agents_than_users_is_an_error_naming_the_field() {
        let plan = closed(2, &[None], EndCondition::AfterStages);
        let err = split(&plan, &[1.0; 3]).unwrap_err();
        assert_eq!(
            err,
            SplitError::TooManyAgents {
                field: "load.concurrency",
                total: 2,
                agents: 3
            }
        );
        assert!(err.to_string().contains("load.concurrency is 2"), "{err}");
        let plan = closed(9, &[None], EndCondition::Requests(2));
        let err = split(&plan, &[1.0; 3]).unwrap_err();
        assert!(err.to_string().contains("load.requests"), "{err}");
        assert!(matches!(
            split(&plan, &[1.0, f64::NAN]),
            Err(SplitError::Weight { index: 1, .. })
        ));
        assert_eq!(split(&plan, &[]), Err(SplitError::NoAgents));
    }

    #[test]
    fn open_rates_caps_and_stage_targets_scale() {
        let plan = open(90.0, Some(10), EndCondition::AfterStages);
        let shares = split(&plan, &[2.0, 1.0]).unwrap();
        let LoadModel::Open {
            rate_per_s,
            max_in_flight,
            ..
        } = shares[0].load.model()
        else {
            panic!("open")
        };
        assert!((rate_per_s - 60.0).abs() < 1e-9);
        assert_eq!(*max_in_flight, Some(7));
        let warm = shares[1].load.stages()[0].target.unwrap();
        assert!((warm - 10.0).abs() < 1e-9);
        assert_eq!(shares[1].load.stages()[1].target, None);
    }

    #[test]
    fn specs_have_distinct_streams_seeds_and_phases() {
        let plan = open(90.0, None, EndCondition::AfterStages);
        let slots = vec![
            ShareSlot::new(1.0, "eu"),
            ShareSlot::new(1.0, "eu"),
            ShareSlot::new(1.0, "us"),
        ];
        let specs = share_specs("r1", &plan, &slots, 1000, Some("http://sim")).unwrap();
        assert_eq!(specs[0].arrival_seed, plan.seed);
        assert_eq!(specs[0].stream, 0);
        let phases: Vec<f64> = specs.iter().map(|s| s.phase).collect();
        assert_eq!(phases, vec![0.0, 1.0 / 3.0, 2.0 / 3.0]);
        let mut seeds: Vec<u64> = specs.iter().map(|s| s.arrival_seed).collect();
        seeds.dedup();
        assert_eq!(seeds.len(), 3);
        assert_eq!(specs[2].group, "us");
        assert_eq!(specs[2].sim_url.as_deref(), Some("http://sim"));
        assert_eq!(specs[1].run_id, "r1");
    }

    #[test]
    fn a_plan_with_a_request_slo_requires_the_feature_of_every_share() {
        let mut plan = open(90.0, None, EndCondition::AfterStages);
        let slots = vec![ShareSlot::new(1.0, "eu"), ShareSlot::new(1.0, "us")];
        let plain = share_specs("r", &plan, &slots, 1000, None).unwrap();
        assert!(plain.iter().all(|s| s.requires.is_empty()));
        plan.request_slo = Some(quarry_engine::RequestSlo {
            ttft_ns: Some(2_000_000_000),
            tpot_ns: None,
            e2e_ns: None,
        });
        let specs = share_specs("r", &plan, &slots, 1000, None).unwrap();
        for s in &specs {
            assert_eq!(s.requires, [FEATURE_REQUEST_SLO]);
            assert_eq!(s.plan.request_slo, plan.request_slo);
            assert_eq!(s.engine_config().request_slo, plan.request_slo);
            // An agent that does not know the feature refuses the share.
            assert_eq!(s.unsupported(&["interleave"]), [FEATURE_REQUEST_SLO]);
        }
    }

    /// Pacing changes what a user does at the quota wall: an older agent
    /// that ignored it would fire without pausing, so it must refuse.
    #[test]
    fn a_plan_that_paces_throttles_requires_the_feature_of_every_share() {
        let mut plan = open(90.0, None, EndCondition::AfterStages);
        let slots = vec![ShareSlot::new(1.0, "eu"), ShareSlot::new(1.0, "us")];
        plan.on_throttle = quarry_engine::ThrottlePacing::sdk_backoff();
        let specs = share_specs("r", &plan, &slots, 1000, None).unwrap();
        for s in &specs {
            assert_eq!(s.requires, [FEATURE_THROTTLE_PACING]);
            assert_eq!(s.engine_config().on_throttle, plan.on_throttle);
            let known = [FEATURE_INTERLEAVE, FEATURE_REQUEST_SLO];
            assert_eq!(s.unsupported(&known), [FEATURE_THROTTLE_PACING]);
            assert!(s.unsupported(quarry_engine::SHARE_FEATURES).is_empty());
        }
        // The share's JSON names it; without pacing it carries no field.
        let json = serde_json::to_string(&specs[0]).unwrap();
        assert!(
            json.contains("\"on_throttle\":{\"kind\":\"backoff\""),
            "{json}"
        );
        plan.on_throttle = quarry_engine::ThrottlePacing::None;
        let plain = share_specs("r", &plan, &slots, 1000, None).unwrap();
        assert!(
            !serde_json::to_string(&plain[0])
                .unwrap()
                .contains("on_throttle")
        );
    }

    /// A tier changes what an agent sends and how it prices: an older agent
    /// must refuse the share, not send it at Standard.
    #[test]
    fn a_plan_with_a_service_tier_requires_the_feature_of_every_share() {
        let plain = open(90.0, None, EndCondition::AfterStages);
        let slots = vec![ShareSlot::new(1.0, "eu"), ShareSlot::new(1.0, "us")];
        let specs = share_specs("r", &plain, &slots, 1000, None).unwrap();
        assert!(specs.iter().all(|s| s.requires.is_empty()));
        let mut v = serde_json::to_value(&plain).unwrap();
        v["mix"][0]["service_tier"] = "flex".into();
        let tiered: RunPlan = serde_json::from_value(v).unwrap();
        for s in &share_specs("r", &tiered, &slots, 1000, None).unwrap() {
            assert_eq!(s.requires, [FEATURE_SERVICE_TIER]);
            let older = [
                FEATURE_INTERLEAVE,
                FEATURE_REQUEST_SLO,
                FEATURE_THROTTLE_PACING,
            ];
            assert_eq!(s.unsupported(&older), [FEATURE_SERVICE_TIER]);
            assert!(s.unsupported(quarry_engine::SHARE_FEATURES).is_empty());
            let json = serde_json::to_string(s).unwrap();
            assert!(json.contains("\"service_tier\":\"flex\""), "{json}");
        }
        let mut priced = plain.clone();
        priced
            .tier_prices
            .set(quarry_bedrock::ServiceTierType::Priority, 17_500);
        for s in &share_specs("r", &priced, &slots, 1000, None).unwrap() {
            assert_eq!(s.requires, [FEATURE_SERVICE_TIER]);
        }
    }

    #[test]
    fn groups_override_credentials_on_aws() {
        let mut plan = open(10.0, None, EndCondition::AfterStages);
        plan.target = Target::Aws {
            region: "us-east-1".into(),
            endpoint: None,
            profile: None,
        };
        let mut slot = ShareSlot::new(1.0, "prod-eu");
        slot.credential_profile = Some("prod".into());
        slot.region = Some("eu-west-1".into());
        let specs =
            share_specs("r", &plan, &[ShareSlot::new(1.0, "dev"), slot], 1000, None).unwrap();
        assert_eq!(specs[0].plan.target, plan.target);
        assert_eq!(
            specs[1].plan.target,
            Target::Aws {
                region: "eu-west-1".into(),
                endpoint: None,
                profile: Some("prod".into())
            }
        );
    }

    proptest! {
        #[test]
        fn closed_totals_are_preserved_for_any_weights(
            weights in prop::collection::vec(0.001f64..1000.0, 1..12),
            concurrency in 12u32..5000,
            request_count in 12u64..1_000_000,
            targets in prop::collection::vec(prop::option::of(0u32..3000), 1..4),
        ) {
            let mut targets: Vec<Option<f64>> = targets.into_iter().map(|t| t.map(f64::from)).collect();
            targets.push(None);
            let plan = closed(concurrency, &targets, EndCondition::Requests(request_count));
            let shares = split(&plan, &weights).unwrap();
            prop_assert_eq!(shares.len(), weights.len());
            prop_assert_eq!(shares.iter().map(concurrency_of).sum::<u64>(), u64::from(concurrency));
            prop_assert!(shares.iter().all(|s| concurrency_of(s) >= 1));
            prop_assert_eq!(shares.iter().map(requests).sum::<u64>(), request_count);
            prop_assert!(shares.iter().all(|s| requests(s) >= 1));
            for (i, t) in targets.iter().enumerate() {
                let sum: Option<f64> = shares.iter().map(|s| s.load.stages()[i].target).sum();
                prop_assert_eq!(sum, *t);
            }
        }

        #[test]
        fn open_totals_are_preserved_for_any_weights(
            weights in prop::collection::vec(0.001f64..1000.0, 1..12),
            rate in 0.01f64..100_000.0,
            cap in 12u32..100_000,
        ) {
            let plan = open(rate, Some(cap), EndCondition::AfterStages);
            let shares = split(&plan, &weights).unwrap();
            let (mut rates, mut caps) = (0.0, 0u64);
            for s in &shares {
                let LoadModel::Open { rate_per_s, max_in_flight, .. } = s.load.model() else {
                    panic!("open")
                };
                rates += rate_per_s;
                caps += u64::from(max_in_flight.unwrap());
                prop_assert!(max_in_flight.unwrap() >= 1);
            }
            prop_assert!((rates - rate).abs() <= rate * 1e-9);
            prop_assert_eq!(caps, u64::from(cap));
            let warm: f64 = shares.iter().map(|s| s.load.stages()[0].target.unwrap()).sum();
            prop_assert!((warm - rate / 3.0).abs() <= rate * 1e-9);
        }

        #[test]
        fn apportion_is_exact_and_never_zero(
            weights in prop::collection::vec(1e-6f64..1e6, 1..40),
            extra in 0u64..10_000_000_000,
        ) {
            let total = weights.len() as u64 + extra;
            let parts = apportion(total, &weights, "x", true).unwrap();
            prop_assert_eq!(parts.iter().sum::<u64>(), total);
            prop_assert!(parts.iter().all(|p| *p >= 1));
        }
    }

    fn concurrency_of(p: &RunPlan) -> u64 {
        concurrency(p)
    }

    fn rate_of(p: &RunPlan) -> f64 {
        match p.load.model() {
            LoadModel::Open { rate_per_s, .. } => *rate_per_s,
            LoadModel::Closed { .. } => panic!("closed"),
        }
    }

    /// Slots for groups given as (name, group weight, agents): each agent
    /// weighs its group's weight divided among the group's agents.
    fn group_slots(groups: &[(&str, f64, usize)]) -> Vec<ShareSlot> {
        groups
            .iter()
            .flat_map(|(name, weight, agents)| {
                (0..*agents).map(move |_| ShareSlot::new(weight / *agents as f64, *name))
            })
            .collect()
    }

    #[test]
    fn groups_get_their_weights_part_then_split_it_among_their_agents() {
        let plan = closed(10, &[None], EndCondition::Requests(100));
        let slots = group_slots(&[("eu", 2.0, 2), ("us", 1.0, 1)]);
        let shares = split_slots(&plan, &slots).unwrap();
        let c: Vec<u64> = shares.iter().map(concurrency).collect();
        // 10 by 2:1 is 7 and 3; eu's 7 over two agents is 4 and 3.
        assert_eq!(c, vec![4, 3, 3]);
        let r: Vec<u64> = shares.iter().map(requests).collect();
        assert_eq!(r, vec![34, 33, 33]);
        // Interleaved group order: slots keep their order, groups their totals.
        let slots = vec![
            ShareSlot::new(1.0, "eu"),
            ShareSlot::new(1.0, "us"),
            ShareSlot::new(1.0, "eu"),
        ];
        let c: Vec<u64> = split_slots(&plan, &slots)
            .unwrap()
            .iter()
            .map(concurrency)
            .collect();
        assert_eq!(c[0] + c[2], 7);
        assert_eq!(c[1], 3);
    }

    #[test]
    fn a_group_too_small_for_its_agents_is_named() {
        let plan = closed(4, &[None], EndCondition::AfterStages);
        let err =
            split_slots(&plan, &group_slots(&[("big", 3.0, 1), ("tiny", 1.0, 2)])).unwrap_err();
        assert_eq!(
            err,
            SplitError::GroupTooSmall {
                group: "tiny".into(),
                field: "load.concurrency",
                part: 1,
                agents: 2
            }
        );
        assert!(
            err.to_string()
                .contains("agent group \"tiny\" gets 1 of load.concurrency"),
            "{err}"
        );
        let plan = closed(2, &[None], EndCondition::AfterStages);
        let err = split_slots(
            &plan,
            &group_slots(&[("a", 1.0, 1), ("b", 1.0, 1), ("c", 1.0, 1)]),
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                SplitError::TooManyGroups {
                    groups: 3,
                    total: 2,
                    ..
                }
            ),
            "{err}"
        );
        let mut bad = group_slots(&[("a", 1.0, 2)]);
        bad[1].weight = 0.0;
        assert!(matches!(
            split_slots(&plan, &bad),
            Err(SplitError::Weight { index: 1, .. })
        ));
        assert_eq!(split_slots(&plan, &[]), Err(SplitError::NoAgents));
    }

    #[test]
    fn unequal_constant_shares_get_slots_equal_ones_get_phases() {
        let plan = open(90.0, None, EndCondition::AfterStages);
        let unequal = share_specs(
            "r",
            &plan,
            &group_slots(&[("a", 1.0, 1), ("b", 1.0, 2)]),
            1000,
            None,
        )
        .unwrap();
        // 45/s to a, 22.5/s to each of b's agents: unequal, so slots.
        assert!(unequal.iter().all(|s| s.interleave.is_some()));
        let even = share_specs(
            "r",
            &plan,
            &group_slots(&[("a", 2.0, 2), ("b", 1.0, 1)]),
            1000,
            None,
        )
        .unwrap();
        assert!(even.iter().all(|s| s.interleave.is_none()));
        assert_eq!(
            even.iter().map(|s| s.phase).collect::<Vec<_>>(),
            vec![0.0, 1.0 / 3.0, 2.0 / 3.0]
        );
        // Poisson shares never need slots: independent seeds suffice.
        let mut poisson = plan.clone();
        let LoadModel::Open { rate_per_s, .. } = *plan.load.model() else {
            panic!("open")
        };
        let model = LoadModel::open(rate_per_s, Arrival::Poisson, None, CatchUp::SendLate).unwrap();
        poisson.load = LoadProfile::new(
            model,
            plan.load.stages().to_vec(),
            EndCondition::AfterStages,
        )
        .unwrap();
        let specs = share_specs(
            "r",
            &poisson,
            &group_slots(&[("a", 1.0, 1), ("b", 3.0, 1)]),
            1000,
            None,
        )
        .unwrap();
        assert!(specs.iter().all(|s| s.interleave.is_none()));
        // Slots survive the trip to the agent.
        let json = serde_json::to_string(&unequal[1]).unwrap();
        assert_eq!(
            serde_json::from_str::<ShareSpec>(&json).unwrap(),
            unequal[1]
        );
    }

    /// Each share's arrivals as its agent would schedule them.
    fn share_arrivals(spec: &ShareSpec) -> Vec<u64> {
        let config = spec.engine_config();
        let LoadModel::Open { arrival, .. } = *spec.plan.load.model() else {
            panic!("open")
        };
        let schedule = match (&config.interleave, arrival) {
            (Some(slots), Arrival::Constant) => quarry_engine::ArrivalSchedule::interleaved(slots),
            _ => quarry_engine::ArrivalSchedule::new(
                &spec.plan.load.plan(),
                arrival,
                config.seed,
                config.phase,
            ),
        };
        schedule.map(|a| a.at_ns).collect()
    }

    fn open_with(rate: f64, arrival: Arrival, secs: u64) -> RunPlan {
        let model = LoadModel::open(rate, arrival, None, CatchUp::SendLate).unwrap();
        let stages = vec![
            Stage {
                name: "ramp".into(),
                kind: StageKind::Ramp,
                duration: Duration::from_secs(2),
                target: Some(rate),
            },
            Stage {
                name: "hold".into(),
                kind: StageKind::Hold,
                duration: Duration::from_secs(secs),
                target: None,
            },
        ];
        plan_with(LoadProfile::new(model, stages, EndCondition::AfterStages).unwrap())
    }

    #[test]
    fn weighted_poisson_shares_stay_poisson_and_merge_into_poisson() {
        use quarry_engine::testing::{ks_critical, ks_statistic_exponential};
        // 30 s at 900/s over shares of 1, 2 and 3 (+ 1 of b split in two):
        // each share's gaps are Exp(its rate), the merged gaps Exp(900).
        let mut plan = open_with(900.0, Arrival::Poisson, 30);
        plan.load = LoadProfile::new(
            plan.load.model().clone(),
            vec![plan.load.stages()[1].clone()],
            EndCondition::AfterStages,
        )
        .unwrap();
        let slots = group_slots(&[("a", 1.0, 1), ("b", 2.0, 2), ("c", 3.0, 1)]);
        let specs = share_specs("r", &plan, &slots, 1000, None).unwrap();
        let mut seeds: Vec<u64> = specs.iter().map(|s| s.arrival_seed).collect();
        seeds.sort_unstable();
        seeds.dedup();
        assert_eq!(seeds.len(), specs.len(), "distinct seeds");
        let mut merged = Vec::new();
        for spec in &specs {
            let at = share_arrivals(spec);
            let gaps: Vec<f64> = at.windows(2).map(|w| (w[1] - w[0]) as f64 / 1e9).collect();
            let rate = rate_of(&spec.plan);
            let d = ks_statistic_exponential(gaps.clone(), rate);
            let critical = ks_critical(gaps.len(), 0.01);
            assert!(d < critical, "share at {rate}/s: D = {d} >= {critical}");
            merged.extend(at);
        }
        merged.sort_unstable();
        let gaps: Vec<f64> = merged
            .windows(2)
            .map(|w| (w[1] - w[0]) as f64 / 1e9)
            .collect();
        let d = ks_statistic_exponential(gaps.clone(), 900.0);
        assert!(d < ks_critical(gaps.len(), 0.01), "merged: D = {d}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn weighted_constant_shares_merge_into_the_one_generator_grid(
            groups in prop::collection::vec((0.05f64..20.0, 1usize..4), 1..5),
            rate in 1.0f64..400.0,
        ) {
            let plan = open_with(rate, Arrival::Constant, 3);
            let named: Vec<(String, f64, usize)> = groups
                .iter()
                .enumerate()
                .map(|(i, (w, n))| (format!("g{i}"), *w, *n))
                .collect();
            let borrowed: Vec<(&str, f64, usize)> =
                named.iter().map(|(n, w, a)| (n.as_str(), *w, *a)).collect();
            let specs = share_specs("r", &plan, &group_slots(&borrowed), 1000, None).unwrap();
            let whole: Vec<u64> = quarry_engine::ArrivalSchedule::new(&plan.load.plan(), Arrival::Constant, 0, 0.0)
                .map(|a| a.at_ns)
                .collect();
            let mut merged: Vec<u64> = specs.iter().flat_map(share_arrivals).collect();
            merged.sort_unstable();
            if specs.iter().all(|s| s.interleave.is_none()) {
                // Equal shares on phases: the same grid within a nanosecond.
                prop_assert_eq!(merged.len(), whole.len());
                for (a, b) in merged.iter().zip(&whole) {
                    prop_assert!(a.abs_diff(*b) <= 1, "{} vs {}", a, b);
                }
            } else {
                prop_assert_eq!(&merged, &whole);
            }
            // Each share holds its rate's part of the arrivals.
            let total_rate: f64 = specs.iter().map(|s| rate_of(&s.plan)).sum();
            prop_assert!((total_rate - rate).abs() <= rate * 1e-9);
            for spec in &specs {
                let expected = whole.len() as f64 * rate_of(&spec.plan) / rate;
                let got = share_arrivals(spec).len() as f64;
                // The golden-ratio Weyl sequence's discrepancy grows as log N.
                let bound = 2.0 + 2.0 * (whole.len().max(2) as f64).ln();
                prop_assert!((got - expected).abs() <= bound, "{} vs {}", got, expected);
            }
        }

        #[test]
        fn group_totals_are_their_weights_exact_part(
            groups in prop::collection::vec((0.01f64..100.0, 1usize..5), 1..6),
            extra in 0u64..5000,
            request_extra in 0u64..100_000,
        ) {
            let agents: usize = groups.iter().map(|(_, n)| n).sum();
            // Enough for every agent whatever the weights.
            let concurrency = (agents * 2000) as u64 + extra;
            let request_count = (agents * 2000) as u64 + request_extra;
            let plan = closed(u32::try_from(concurrency).unwrap(), &[None], EndCondition::Requests(request_count));
            let named: Vec<(String, f64, usize)> = groups
                .iter()
                .enumerate()
                .map(|(i, (w, n))| (format!("g{i}"), *w, *n))
                .collect();
            let borrowed: Vec<(&str, f64, usize)> =
                named.iter().map(|(n, w, a)| (n.as_str(), *w, *a)).collect();
            let slots = group_slots(&borrowed);
            let shares = split_slots(&plan, &slots).unwrap();
            prop_assert_eq!(shares.iter().map(concurrency_of).sum::<u64>(), concurrency);
            prop_assert_eq!(shares.iter().map(requests).sum::<u64>(), request_count);
            // The group weights as the split sees them: its slots' sum.
            let weights: Vec<f64> = named
                .iter()
                .map(|(name, _, _)| slots.iter().filter(|s| s.group == *name).map(|s| s.weight).sum())
                .collect();
            let want_c = apportion(concurrency, &weights, "c", true).unwrap();
            let want_r = apportion(request_count, &weights, "r", true).unwrap();
            for (g, name) in named.iter().enumerate() {
                let members = slots.iter().enumerate().filter(|(_, s)| s.group == name.0);
                let (mut c, mut r) = (0, 0);
                for (i, _) in members {
                    c += concurrency_of(&shares[i]);
                    r += requests(&shares[i]);
                    prop_assert!(concurrency_of(&shares[i]) >= 1);
                }
                prop_assert_eq!(c, want_c[g]);
                prop_assert_eq!(r, want_r[g]);
            }
        }
    }

    fn replay_of(n: u64, session: impl Fn(u64) -> Option<u64>) -> Replay {
        Replay::new(
            (0..n)
                .map(|i| quarry_engine::ReplayRequest {
                    at_ns: i * 1_000,
                    entry: 0,
                    input_tokens: 10,
                    output_tokens: std::num::NonZeroU32::new(5).unwrap(),
                    prompt: None,
                    session: session(i),
                    text_seed: i,
                    line: i + 1,
                    cache_prefix: None,
                })
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn a_replay_is_dealt_by_weight_and_sessions_stay_together() {
        let fractions = [0.5, 0.3, 0.2];
        let plain = replay_of(1_000, |_| None);
        let parts = deal_replay(&plain, &fractions);
        for (part, f) in parts.iter().zip(fractions) {
            let want = 1_000.0 * f;
            let got = part.requests().len() as f64;
            // Weyl positions: within a few of the exact part.
            assert!((got - want).abs() <= 3.0, "{got} vs {want}");
        }
        let mut lines: Vec<u64> = parts
            .iter()
            .flat_map(|p| p.requests().iter().map(|r| r.line))
            .collect();
        lines.sort_unstable();
        assert_eq!(lines, (1..=1_000).collect::<Vec<_>>(), "each once");
        // 40 sessions: every request of one session on one share.
        let sessions = replay_of(1_000, |i| Some(session_hash(i % 40)));
        let parts = deal_replay(&sessions, &fractions);
        for s in 0..40 {
            let holders = parts
                .iter()
                .filter(|p| {
                    p.requests()
                        .iter()
                        .any(|r| r.session == Some(session_hash(s)))
                })
                .count();
            assert_eq!(holders, 1, "session {s}");
        }
        assert!(parts.iter().all(|p| !p.requests().is_empty()));
    }

    fn session_hash(s: u64) -> u64 {
        crate::replay::mix64(0xfeed, s)
    }

    #[test]
    fn replay_shares_require_the_feature_and_get_no_interleave() {
        let mut plan = open_with(10.0, Arrival::Constant, 5);
        plan.replay = Some(replay_of(30, |_| None));
        let slots = [ShareSlot::new(2.0, "g"), ShareSlot::new(1.0, "g")];
        let specs = share_specs("r", &plan, &slots, 1_000, None).unwrap();
        for s in &specs {
            assert!(s.requires.contains(&FEATURE_REPLAY.to_owned()));
            assert!(s.interleave.is_none());
        }
        let total: usize = specs
            .iter()
            .map(|s| s.plan.replay.as_ref().unwrap().requests().len())
            .sum();
        assert_eq!(total, 30);
        assert!(
            specs
                .iter()
                .all(|s| !s.requires.contains(&FEATURE_REPLAY_CACHE_PREFIX.to_owned()))
        );
        // A cached prefix on any request: every share requires its feature,
        // and an agent that predates it refuses the share.
        let mut requests = replay_of(30, |_| None).requests().to_vec();
        requests[7].cache_prefix = Some(quarry_engine::ReplayPrefix {
            tokens: std::num::NonZeroU32::new(4).unwrap(),
            seed: 1,
        });
        plan.replay = Some(Replay::new(requests).unwrap());
        let specs = share_specs("r", &plan, &slots, 1_000, None).unwrap();
        let older: Vec<&str> = quarry_engine::SHARE_FEATURES
            .iter()
            .copied()
            .filter(|f| *f != FEATURE_REPLAY_CACHE_PREFIX)
            .collect();
        for s in &specs {
            assert!(s.requires.contains(&FEATURE_REPLAY_CACHE_PREFIX.to_owned()));
            assert_eq!(s.unsupported(&older), [FEATURE_REPLAY_CACHE_PREFIX]);
        }
    }
}
