//! The validated load description a run plan embeds: closed or open model,
//! stages (warmup, ramps, holds, cooldown), the end condition and the
//! open-loop catch-up policy. [`LoadProfile::plan`] turns the stages into
//! the timeline the scheduler follows.
//!
//! Constructors validate and name the offending field; deserialization goes
//! through the same validation, so a `LoadProfile` received as JSON from a
//! controller is as valid as one built locally.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::duration_ns;
use crate::stages::{StagePlan, StageSpan};

/// The most concurrency or in-flight cap one agent accepts: far above what a
/// 2-core agent can drive, low enough that a typo cannot spawn millions of
/// tasks.
pub const MAX_CONCURRENCY: u32 = 1_000_000;

/// The highest open-loop rate accepted, arrivals per second (a plan's or a
/// stage's): one dispatcher cannot schedule more than about a million
/// sends a second, so a higher rate (`1e12`) could only pile up late
/// arrivals.
pub const MAX_RATE_PER_S: f64 = 1_000_000.0;

/// The in-flight cap of an open loop whose plan sets none
/// (`load.max_in_flight`): a rate above what the target serves would
/// otherwise pile up requests in flight (and memory) without bound. An
/// arrival that finds the cap full is sent late (counted in `late_sends`)
/// or, with `drop_late_after`, dropped (`dropped_sends`).
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 10_000;

/// How requests are issued.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LoadModel {
    /// N independent virtual users; each starts its next request as soon as
    /// its previous one is recorded (no lockstep, no think time).
    Closed {
        /// Virtual users; stages without a target run at this level.
        concurrency: u32,
    },
    /// Arrivals on a schedule that does not wait for responses.
    Open {
        /// Arrivals per second; stages without a target run at this rate.
        rate_per_s: f64,
        /// Spacing of arrivals.
        arrival: Arrival,
        /// At most this many requests in flight; an arrival that finds the
        /// cap full waits for a slot under the catch-up policy.
        max_in_flight: Option<u32>,
        /// What to do with arrivals the dispatcher reaches late.
        catch_up: CatchUp,
    },
}

/// The spacing of open-loop arrivals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arrival {
    /// Evenly spaced, 1/λ apart.
    Constant,
    /// A Poisson process: exponential inter-arrival times with mean 1/λ.
    Poisson,
}

/// What the open-loop dispatcher does with an arrival it cannot send on time
/// (the process was descheduled, or `max_in_flight` was full).
///
/// Either way nothing is hidden: a late send is recorded with its schedule
/// lag and counted in `late_sends` when the lag passes the engine's late
/// threshold; a dropped arrival is counted in `dropped_sends`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "snake_case")]
pub enum CatchUp {
    /// Send every arrival however late, back to back until caught up (wrk2's
    /// behaviour: the from-schedule latency shows the backlog).
    SendLate,
    /// Drop an arrival that is more than `after` behind its deadline, so a
    /// backlog never bursts onto the service.
    Drop {
        /// The most lag an arrival may have and still be sent.
        after: Duration,
    },
}

/// What a stage is for; decides how reports treat its series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageKind {
    /// Recorded under its own stage name and excluded from the report.
    Warmup,
    /// Load moves linearly from the previous stage's level to the target.
    Ramp,
    /// Load stays at the target.
    Hold,
    /// Reported separately from the measured stages.
    Cooldown,
}

/// One stage of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    /// Series are keyed by this name; unique within a profile.
    pub name: String,
    /// Warmup, ramp, hold or cooldown.
    pub kind: StageKind,
    /// How long the stage lasts.
    pub duration: Duration,
    /// Concurrency (closed) or rate per second (open) at the end of the
    /// stage; `None` is the model's own level.
    pub target: Option<f64>,
}

/// When a run ends (besides being stopped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndCondition {
    /// When the last stage ends.
    AfterStages,
    /// After this many requests were sent, or the last stage ends, whichever
    /// comes first. Dropped arrivals do not count.
    Requests(u64),
}

/// A field of the load description is invalid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LoadError {
    /// Concurrency outside 1..=MAX_CONCURRENCY.
    #[error("load.concurrency must be between 1 and {MAX_CONCURRENCY}, got {0}")]
    Concurrency(u32),
    /// A rate that is not a finite positive number.
    #[error(
        "load.rate_per_s must be a finite number > 0 and at most {MAX_RATE_PER_S} per second, got {0}"
    )]
    Rate(f64),
    /// A zero or oversized in-flight cap.
    #[error("load.max_in_flight must be between 1 and {MAX_CONCURRENCY}, got {0}")]
    MaxInFlight(u32),
    /// `catch_up.after` of zero would drop every arrival.
    #[error("load.catch_up.after must be > 0")]
    CatchUpAfter,
    /// A stage name that is empty or used twice.
    #[error("load.stages[{index}].name {name:?} must be non-empty and unique")]
    StageName {
        /// Position of the stage.
        index: usize,
        /// The name given.
        name: String,
    },
    /// A zero-length stage.
    #[error("load.stages[{index}].duration must be > 0")]
    StageDuration {
        /// Position of the stage.
        index: usize,
    },
    /// A target that is negative, not finite, or not a whole concurrency.
    #[error("load.stages[{index}].target {detail}, got {target}")]
    StageTarget {
        /// Position of the stage.
        index: usize,
        /// The target given.
        target: f64,
        /// What a valid target looks like for this model.
        detail: &'static str,
    },
    /// No stage, or every stage at zero load.
    #[error("load.stages must contain at least one stage with load > 0")]
    NoLoad,
    /// `end = requests` with a count of zero.
    #[error("load.requests must be >= 1")]
    ZeroRequests,
    /// Neither a duration nor a request count bounds the run.
    #[error("load needs a duration or a request count")]
    Unbounded,
}

impl LoadModel {
    /// A closed model with `concurrency` virtual users.
    pub fn closed(concurrency: u32) -> Result<Self, LoadError> {
        if concurrency == 0 || concurrency > MAX_CONCURRENCY {
            return Err(LoadError::Concurrency(concurrency));
        }
        Ok(LoadModel::Closed { concurrency })
    }

    /// An open model at `rate_per_s` arrivals per second.
    pub fn open(
        rate_per_s: f64,
        arrival: Arrival,
        max_in_flight: Option<u32>,
        catch_up: CatchUp,
    ) -> Result<Self, LoadError> {
        if !(rate_per_s.is_finite() && rate_per_s > 0.0 && rate_per_s <= MAX_RATE_PER_S) {
            return Err(LoadError::Rate(rate_per_s));
        }
        if let Some(cap) = max_in_flight
            && (cap == 0 || cap > MAX_CONCURRENCY)
        {
            return Err(LoadError::MaxInFlight(cap));
        }
        if catch_up
            == (CatchUp::Drop {
                after: Duration::ZERO,
            })
        {
            return Err(LoadError::CatchUpAfter);
        }
        Ok(LoadModel::Open {
            rate_per_s,
            arrival,
            max_in_flight,
            catch_up,
        })
    }

    /// The model's own level: concurrency or rate per second.
    pub fn base_level(&self) -> f64 {
        match self {
            LoadModel::Closed { concurrency } => f64::from(*concurrency),
            LoadModel::Open { rate_per_s, .. } => *rate_per_s,
        }
    }

    fn validate(&self) -> Result<(), LoadError> {
        match *self {
            LoadModel::Closed { concurrency } => LoadModel::closed(concurrency).map(drop),
            LoadModel::Open {
                rate_per_s,
                arrival,
                max_in_flight,
                catch_up,
            } => LoadModel::open(rate_per_s, arrival, max_in_flight, catch_up).map(drop),
        }
    }

    fn check_target(&self, index: usize, target: f64) -> Result<(), LoadError> {
        let (ok, detail) = match self {
            LoadModel::Closed { .. } => (
                target.is_finite()
                    && target >= 0.0
                    && target.fract() == 0.0
                    && target <= f64::from(MAX_CONCURRENCY),
                "must be a whole concurrency between 0 and 1000000",
            ),
            LoadModel::Open { .. } => (
                target.is_finite() && (0.0..=MAX_RATE_PER_S).contains(&target),
                "must be a finite rate between 0 and 1000000 per second",
            ),
        };
        if ok {
            Ok(())
        } else {
            Err(LoadError::StageTarget {
                index,
                target,
                detail,
            })
        }
    }
}

/// A validated load description: model, stages and end condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawLoadProfile", into = "RawLoadProfile")]
pub struct LoadProfile {
    model: LoadModel,
    stages: Vec<Stage>,
    end: EndCondition,
}

/// The unvalidated serde shape of [`LoadProfile`].
#[derive(Clone, Serialize, Deserialize)]
struct RawLoadProfile {
    model: LoadModel,
    stages: Vec<Stage>,
    end: EndCondition,
}

impl TryFrom<RawLoadProfile> for LoadProfile {
    type Error = LoadError;
    fn try_from(raw: RawLoadProfile) -> Result<Self, LoadError> {
        LoadProfile::new(raw.model, raw.stages, raw.end)
    }
}

impl From<LoadProfile> for RawLoadProfile {
    fn from(p: LoadProfile) -> Self {
        RawLoadProfile {
            model: p.model,
            stages: p.stages,
            end: p.end,
        }
    }
}

/// The stage name [`LoadProfile::steady`] gives its single hold stage.
pub const STEADY_STAGE: &str = "steady";

impl LoadProfile {
    /// Validates a staged profile.
    pub fn new(model: LoadModel, stages: Vec<Stage>, end: EndCondition) -> Result<Self, LoadError> {
        model.validate()?;
        if end == EndCondition::Requests(0) {
            return Err(LoadError::ZeroRequests);
        }
        let mut any_load = false;
        // One set of the names seen: linear in the stage count.
        let mut names = std::collections::HashSet::with_capacity(stages.len());
        for (index, stage) in stages.iter().enumerate() {
            let duplicate = !names.insert(stage.name.as_str());
            if stage.name.trim().is_empty() || duplicate {
                return Err(LoadError::StageName {
                    index,
                    name: stage.name.clone(),
                });
            }
            if stage.duration.is_zero() {
                return Err(LoadError::StageDuration { index });
            }
            let target = stage.target.unwrap_or(model.base_level());
            model.check_target(index, target)?;
            any_load |= target > 0.0;
        }
        if !any_load {
            return Err(LoadError::NoLoad);
        }
        Ok(LoadProfile { model, stages, end })
    }

    /// One hold stage at the model's level, bounded by `duration`, by
    /// `requests`, or both (whichever comes first).
    pub fn steady(
        model: LoadModel,
        duration: Option<Duration>,
        requests: Option<u64>,
    ) -> Result<Self, LoadError> {
        let (duration, end) = match (duration, requests) {
            (None, None) => return Err(LoadError::Unbounded),
            (Some(d), None) => (d, EndCondition::AfterStages),
            (d, Some(n)) => (
                d.unwrap_or(Duration::from_nanos(u64::MAX)),
                EndCondition::Requests(n),
            ),
        };
        let stage = Stage {
            name: STEADY_STAGE.to_owned(),
            kind: StageKind::Hold,
            duration,
            target: None,
        };
        LoadProfile::new(model, vec![stage], end)
    }

    /// The load model.
    pub fn model(&self) -> &LoadModel {
        &self.model
    }

    /// The stages, in order.
    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }

    /// The end condition.
    pub fn end(&self) -> EndCondition {
        self.end
    }

    /// The stage timeline: when each stage runs and at what level.
    pub fn plan(&self) -> StagePlan {
        let base = self.model.base_level();
        let mut spans = Vec::with_capacity(self.stages.len());
        let mut start_ns = 0u64;
        let mut previous: Option<f64> = None;
        for stage in &self.stages {
            let target = stage.target.unwrap_or(base);
            let from = match stage.kind {
                StageKind::Ramp => previous.unwrap_or(0.0),
                _ => target,
            };
            let end_ns = start_ns.saturating_add(duration_ns(stage.duration));
            spans.push(StageSpan {
                start_ns,
                end_ns,
                from,
                to: target,
            });
            previous = Some(target);
            start_ns = end_ns;
        }
        StagePlan::new(spans)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(name: &str, kind: StageKind, secs: u64, target: Option<f64>) -> Stage {
        Stage {
            name: name.to_owned(),
            kind,
            duration: Duration::from_secs(secs),
            target,
        }
    }

    #[test]
    fn constructors_name_the_bad_field() {
        assert_eq!(LoadModel::closed(0), Err(LoadError::Concurrency(0)));
        assert!(
            LoadModel::closed(0)
                .unwrap_err()
                .to_string()
                .contains("load.concurrency")
        );
        assert!(matches!(
            LoadModel::open(f64::NAN, Arrival::Poisson, None, CatchUp::SendLate),
            Err(LoadError::Rate(_))
        ));
        assert_eq!(
            LoadModel::open(1.0, Arrival::Poisson, Some(0), CatchUp::SendLate),
            Err(LoadError::MaxInFlight(0))
        );
        let drop_now = CatchUp::Drop {
            after: Duration::ZERO,
        };
        assert_eq!(
            LoadModel::open(1.0, Arrival::Constant, None, drop_now),
            Err(LoadError::CatchUpAfter)
        );
        let model = LoadModel::closed(4).unwrap();
        let err = LoadProfile::new(
            model.clone(),
            vec![stage("a", StageKind::Hold, 1, Some(2.5))],
            EndCondition::AfterStages,
        )
        .unwrap_err();
        assert!(err.to_string().contains("load.stages[0].target"), "{err}");
        let dup = vec![
            stage("a", StageKind::Hold, 1, None),
            stage("a", StageKind::Hold, 1, None),
        ];
        assert!(matches!(
            LoadProfile::new(model.clone(), dup, EndCondition::AfterStages),
            Err(LoadError::StageName { index: 1, .. })
        ));
        let zero = vec![stage("a", StageKind::Hold, 1, Some(0.0))];
        assert_eq!(
            LoadProfile::new(model.clone(), zero, EndCondition::AfterStages),
            Err(LoadError::NoLoad)
        );
        assert_eq!(
            LoadProfile::steady(model, None, None),
            Err(LoadError::Unbounded)
        );
    }

    #[test]
    fn json_round_trip_validates() {
        let model = LoadModel::open(
            50.0,
            Arrival::Poisson,
            Some(10),
            CatchUp::Drop {
                after: Duration::from_millis(20),
            },
        )
        .unwrap();
        let profile = LoadProfile::new(
            model,
            vec![
                stage("warm", StageKind::Warmup, 5, Some(10.0)),
                stage("up", StageKind::Ramp, 10, None),
            ],
            EndCondition::Requests(1000),
        )
        .unwrap();
        let json = serde_json::to_string(&profile).unwrap();
        let back: LoadProfile = serde_json::from_str(&json).unwrap();
        assert_eq!(back, profile);
        let bad = json.replace("\"rate_per_s\":50.0", "\"rate_per_s\":-1.0");
        let err = serde_json::from_str::<LoadProfile>(&bad).unwrap_err();
        assert!(err.to_string().contains("load.rate_per_s"), "{err}");
    }
}
