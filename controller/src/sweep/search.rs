//! The SLO search: an exponential probe from `start` (doubling, capped at
//! `max`) until a level fails, then bisection between the highest level
//! that passed and the lowest that failed until they are within the
//! relative tolerance, never running more than `max_levels` levels.
//!
//! The search is a pure state machine ([`Search`]): the caller runs the
//! level it proposes and reports how that went, so it is tested against a
//! fake level function.

use crate::spec::{SearchSpec, SweepVariable};

/// How a level came out, for the search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feasibility {
    /// Every SLO criterion held (and the attainment target, conclusively).
    Feasible,
    /// A criterion failed, or attainment was not shown to hold.
    Infeasible,
    /// The level measured the load generator or nothing at all (saturated,
    /// stopped, no measured request): no capacity finding; the search ends.
    Invalid,
}

/// Where the search stands.
#[derive(Debug, Clone)]
pub struct Search {
    spec: SearchSpec,
    integer: bool,
    /// Highest level that passed.
    feasible: Option<f64>,
    /// Lowest level that failed.
    infeasible: Option<f64>,
    /// The level proposed and not yet recorded.
    next: Option<f64>,
    /// Levels recorded.
    ran: u32,
    /// Why the search ended, once it did.
    ended: Option<SearchEnd>,
}

/// Why a search ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchEnd {
    /// Feasible and infeasible levels are within the tolerance (or
    /// adjacent whole numbers for concurrency).
    Converged,
    /// `max` passed: the knee is above the searched range.
    MaxFeasible,
    /// The first level already failed.
    StartInfeasible,
    /// `max_levels` levels ran before converging.
    LevelLimit,
    /// A level was invalid.
    InvalidLevel,
}

impl SearchEnd {
    /// The name in `sweep.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            SearchEnd::Converged => "converged",
            SearchEnd::MaxFeasible => "max_feasible",
            SearchEnd::StartInfeasible => "start_infeasible",
            SearchEnd::LevelLimit => "level_limit",
            SearchEnd::InvalidLevel => "invalid_level",
        }
    }
}

impl Search {
    /// A search over `variable` (concurrency levels are whole numbers).
    pub fn new(spec: SearchSpec, variable: SweepVariable) -> Self {
        let integer = variable == SweepVariable::Concurrency;
        Search {
            spec,
            integer,
            feasible: None,
            infeasible: None,
            next: Some(spec.start),
            ran: 0,
            ended: None,
        }
    }

    /// The level to run next; `None` once the search has ended.
    pub fn next_level(&self) -> Option<f64> {
        self.next
    }

    /// Highest level that passed.
    pub fn feasible_max(&self) -> Option<f64> {
        self.feasible
    }

    /// Lowest level that failed.
    pub fn infeasible_min(&self) -> Option<f64> {
        self.infeasible
    }

    /// Why it ended (`None` while running).
    pub fn ended(&self) -> Option<SearchEnd> {
        self.ended
    }

    /// Records the outcome of the proposed level and proposes the next.
    pub fn record(&mut self, level: f64, outcome: Feasibility) {
        self.ran += 1;
        self.next = None;
        match outcome {
            Feasibility::Invalid => {
                self.ended = Some(SearchEnd::InvalidLevel);
                return;
            }
            Feasibility::Feasible => {
                self.feasible = Some(self.feasible.map_or(level, |f| f.max(level)));
            }
            Feasibility::Infeasible => {
                self.infeasible = Some(self.infeasible.map_or(level, |i| i.min(level)));
            }
        }
        let proposal = match (self.feasible, self.infeasible) {
            (None, Some(_)) => Err(SearchEnd::StartInfeasible),
            (Some(f), None) if f >= self.spec.max => Err(SearchEnd::MaxFeasible),
            (Some(f), None) => Ok(self.round((f * 2.0).min(self.spec.max))),
            (Some(f), Some(i)) => {
                let close = (i - f) / i <= self.spec.tolerance;
                let mid = self.round((f + i) / 2.0);
                if close || mid <= f || mid >= i {
                    Err(SearchEnd::Converged)
                } else {
                    Ok(mid)
                }
            }
            (None, None) => Err(SearchEnd::InvalidLevel),
        };
        match proposal {
            Ok(_) if self.ran >= self.spec.max_levels => self.ended = Some(SearchEnd::LevelLimit),
            Ok(next) => self.next = Some(next),
            Err(end) => self.ended = Some(end),
        }
    }

    fn round(&self, v: f64) -> f64 {
        if self.integer { v.round() } else { v }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(start: f64, max: f64, tolerance: f64, max_levels: u32) -> SearchSpec {
        SearchSpec {
            start,
            max,
            tolerance,
            max_levels,
        }
    }

    /// Runs the search against a level function; returns the levels run.
    fn drive(s: &mut Search, f: impl Fn(f64) -> Feasibility) -> Vec<f64> {
        let mut ran = Vec::new();
        while let Some(level) = s.next_level() {
            ran.push(level);
            s.record(level, f(level));
        }
        ran
    }

    fn knee(at: f64) -> impl Fn(f64) -> Feasibility {
        move |v| match v <= at {
            true => Feasibility::Feasible,
            false => Feasibility::Infeasible,
        }
    }

    #[test]
    fn rate_search_brackets_the_knee_within_the_tolerance() {
        let mut s = Search::new(spec(1.0, 1000.0, 0.05, 30), SweepVariable::Rate);
        let ran = drive(&mut s, knee(37.3));
        assert_eq!(&ran[..7], &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]);
        let (f, i) = (s.feasible_max().unwrap(), s.infeasible_min().unwrap());
        assert!(f <= 37.3 && i > 37.3, "{f} {i}");
        assert!((i - f) / i <= 0.05, "{f} {i}");
        assert_eq!(s.ended(), Some(SearchEnd::Converged));
    }

    #[test]
    fn concurrency_search_ends_on_adjacent_whole_numbers() {
        let mut s = Search::new(spec(1.0, 256.0, 0.001, 30), SweepVariable::Concurrency);
        let ran = drive(&mut s, knee(13.0));
        assert!(ran.iter().all(|v| v.fract() == 0.0), "{ran:?}");
        assert_eq!(
            (s.feasible_max(), s.infeasible_min()),
            (Some(13.0), Some(14.0))
        );
        assert_eq!(s.ended(), Some(SearchEnd::Converged));
    }

    #[test]
    fn a_knee_above_max_ends_feasible_at_max() {
        let mut s = Search::new(spec(1.0, 20.0, 0.05, 30), SweepVariable::Concurrency);
        let ran = drive(&mut s, knee(1000.0));
        assert_eq!(ran, vec![1.0, 2.0, 4.0, 8.0, 16.0, 20.0]);
        assert_eq!(s.feasible_max(), Some(20.0));
        assert_eq!(s.infeasible_min(), None);
        assert_eq!(s.ended(), Some(SearchEnd::MaxFeasible));
    }

    #[test]
    fn a_failing_start_ends_with_nothing_feasible() {
        let mut s = Search::new(spec(4.0, 20.0, 0.05, 30), SweepVariable::Rate);
        assert_eq!(drive(&mut s, knee(1.0)), vec![4.0]);
        assert_eq!((s.feasible_max(), s.infeasible_min()), (None, Some(4.0)));
        assert_eq!(s.ended(), Some(SearchEnd::StartInfeasible));
    }

    #[test]
    fn the_level_limit_stops_the_search() {
        let mut s = Search::new(spec(1.0, 1000.0, 0.0001, 5), SweepVariable::Rate);
        let ran = drive(&mut s, knee(100.0));
        assert_eq!(ran.len(), 5);
        assert_eq!(s.ended(), Some(SearchEnd::LevelLimit));
        assert_eq!(s.feasible_max(), Some(16.0));
    }

    #[test]
    fn an_invalid_level_ends_the_search_without_a_finding() {
        let mut s = Search::new(spec(1.0, 64.0, 0.05, 30), SweepVariable::Rate);
        let ran = drive(&mut s, |v| match v < 8.0 {
            true => Feasibility::Feasible,
            false => Feasibility::Invalid,
        });
        assert_eq!(ran, vec![1.0, 2.0, 4.0, 8.0]);
        assert_eq!((s.feasible_max(), s.infeasible_min()), (Some(4.0), None));
        assert_eq!(s.ended(), Some(SearchEnd::InvalidLevel));
    }
}
