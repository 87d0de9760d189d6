//! The per-group view of a distributed run, as `results.json` and the
//! report hold it: each agent group's part of the plan, its agents and its
//! totals, and the shares that ended before their plan did.

use std::collections::BTreeMap;

use crate::coordinator::SharesOutcome;
use crate::coordinator::split::{SplitError, split_slots};
use quarry_engine::{EndCondition, LoadModel, RunPlan};

use super::{ConnectedAgent, slots};
use crate::results::{GroupRecord, PartialShare, PlannedLoad, SeriesRecord};

/// One record per agent group of `agents` (in order of first appearance),
/// with its part of `plan` exactly as the shares are split
/// (`quarry_engine::split_slots`); totals are added after the run by
/// [`add_group_totals`].
pub fn group_records(
    plan: &RunPlan,
    agents: &[ConnectedAgent],
) -> Result<Vec<GroupRecord>, SplitError> {
    let slots = slots(agents);
    let plans = split_slots(plan, &slots)?;
    let mut records: Vec<GroupRecord> = Vec::new();
    for ((agent, slot), share) in agents.iter().zip(&slots).zip(&plans) {
        let i = match records.iter().position(|r| r.name == slot.group) {
            Some(i) => i,
            None => {
                records.push(GroupRecord {
                    name: slot.group.clone(),
                    weight: 0.0,
                    region: slot.region.clone(),
                    account_alias: None,
                    credential_profile: slot.credential_profile.clone(),
                    agents: Vec::new(),
                    planned: PlannedLoad::default(),
                    counters: BTreeMap::new(),
                });
                records.len() - 1
            }
        };
        let record = &mut records[i];
        record.weight += slot.weight;
        record.agents.push(agent.info.agent_id.clone());
        if record.account_alias.is_none() && !agent.info.account_alias.is_empty() {
            record.account_alias = Some(agent.info.account_alias.clone());
        }
        add_planned(&mut record.planned, share);
    }
    Ok(records)
}

/// Adds one share's load to its group's.
fn add_planned(planned: &mut PlannedLoad, share: &RunPlan) {
    let add = |total: &mut Option<u64>, n: u64| *total = Some(total.unwrap_or(0) + n);
    match *share.load.model() {
        LoadModel::Closed { concurrency } => add(&mut planned.concurrency, u64::from(concurrency)),
        LoadModel::Open {
            rate_per_s,
            max_in_flight,
            ..
        } => {
            planned.rate_per_s = Some(planned.rate_per_s.unwrap_or(0.0) + rate_per_s);
            if let Some(cap) = max_in_flight {
                add(&mut planned.max_in_flight, u64::from(cap));
            }
        }
    }
    if let EndCondition::Requests(n) = share.load.end() {
        add(&mut planned.requests, n);
    }
}

/// Sums each group's series' counters (every stage) into its record.
pub fn add_group_totals(groups: &mut [GroupRecord], series: &[SeriesRecord]) {
    for record in series {
        if let Some(group) = groups.iter_mut().find(|g| g.name == record.group) {
            for (name, value) in &record.counters {
                *group.counters.entry(name.clone()).or_insert(0) += value;
            }
        }
    }
}

/// The shares that ended before their plan did: lost ones, and ones whose
/// agent ended them early, in share order.
pub fn partial_shares(outcome: &SharesOutcome) -> Vec<PartialShare> {
    outcome
        .shares
        .iter()
        .filter(|s| s.partial || s.lost)
        .map(|s| PartialShare {
            agent_id: s.agent_id.clone(),
            address: s.address.clone(),
            group: s.group.clone(),
            last_interval: s.intervals.checked_sub(1),
            lost: s.lost,
            reason: s.reason.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::StartSkew;
    use crate::coordinator::ShareOutcome;

    fn share(agent: &str, intervals: u64, partial: bool, lost: bool) -> ShareOutcome {
        ShareOutcome {
            agent_id: agent.into(),
            address: format!("{agent}:7400"),
            group: "eu".into(),
            started_at_unix_ns: Some(1),
            intervals,
            requests_sent: (!lost).then_some(10),
            partial,
            reason: if lost { "agent lost" } else { "completed" }.into(),
            lost,
            reattaches: 0,
            duplicates: 0,
            totals_match: Some(true),
            finished_after_ns: None,
            finish: None,
        }
    }

    #[test]
    fn partial_and_lost_shares_are_listed_with_their_last_interval() {
        let outcome = SharesOutcome {
            planned_start_unix_ns: 0,
            start_skew: None::<StartSkew>,
            shares: vec![
                share("a", 10, false, false),
                share("b", 4, true, true),
                share("c", 0, true, true),
            ],
            merge_errors: Vec::new(),
        };
        let partial = partial_shares(&outcome);
        assert_eq!(partial.len(), 2);
        assert_eq!(partial[0].agent_id, "b");
        assert_eq!(partial[0].last_interval, Some(3));
        assert!(partial[0].lost);
        assert_eq!(partial[1].last_interval, None);
    }

    #[test]
    fn group_totals_sum_their_series_only() {
        let record = |group: &str, ok: u64| SeriesRecord {
            group: group.into(),
            model: "m".into(),
            operation: Some("Converse".into()),
            stage: "steady".into(),
            priced: true,
            counters: BTreeMap::from([("outcome_ok".to_owned(), ok)]),
            histograms: BTreeMap::new(),
            tier: None,
            turn: None,
        };
        let mut groups = vec![GroupRecord {
            name: "eu".into(),
            weight: 2.0,
            region: None,
            account_alias: None,
            credential_profile: None,
            agents: vec!["a".into()],
            planned: PlannedLoad::default(),
            counters: BTreeMap::new(),
        }];
        add_group_totals(
            &mut groups,
            &[record("eu", 3), record("us", 5), record("eu", 4)],
        );
        assert_eq!(groups[0].counters["outcome_ok"], 7);
    }
}
