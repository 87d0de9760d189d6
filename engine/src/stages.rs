//! The stage timeline a run follows: when each stage starts and ends, the
//! load level (concurrency or rate) at any instant, and when a closed-loop
//! slot is active. Built from a validated profile by
//! [`LoadProfile::plan`](crate::LoadProfile::plan).

/// When one stage runs and how its level moves: linearly from `from` at
/// `start_ns` to `to` at `end_ns` (`from == to` except for ramps).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StageSpan {
    /// Start, ns since the run's origin.
    pub start_ns: u64,
    /// End (exclusive), ns since the run's origin.
    pub end_ns: u64,
    /// Level at the start.
    pub from: f64,
    /// Level at the end.
    pub to: f64,
}

impl StageSpan {
    /// The level at `t` (clamped into the span).
    pub fn level_at(&self, t: u64) -> f64 {
        let len = (self.end_ns - self.start_ns) as f64;
        let into = t.clamp(self.start_ns, self.end_ns) - self.start_ns;
        self.from + (self.to - self.from) * (into as f64 / len)
    }
}

/// The run's stage timeline, one span per stage, back to back from t = 0.
#[derive(Debug, Clone, PartialEq)]
pub struct StagePlan {
    spans: Vec<StageSpan>,
}

/// Slack for comparing a level with a whole number of slots, so a ramp that
/// reaches exactly 10.0 (as 9.999999999) activates slot 9.
const LEVEL_EPSILON: f64 = 1e-9;

impl StagePlan {
    pub(crate) fn new(spans: Vec<StageSpan>) -> Self {
        StagePlan { spans }
    }

    /// The spans, one per stage.
    pub fn spans(&self) -> &[StageSpan] {
        &self.spans
    }

    /// When the last stage ends.
    pub fn end_ns(&self) -> u64 {
        self.spans.last().map_or(0, |s| s.end_ns)
    }

    /// The index of the stage running at `t`, `None` once all have ended.
    pub fn stage_at(&self, t: u64) -> Option<usize> {
        self.spans.iter().position(|s| t < s.end_ns)
    }

    /// The level (concurrency or rate) at `t`; 0 after the last stage.
    pub fn level_at(&self, t: u64) -> f64 {
        self.stage_at(t).map_or(0.0, |i| self.spans[i].level_at(t))
    }

    /// The most concurrency any stage reaches, rounded up.
    pub fn peak_level(&self) -> f64 {
        self.spans.iter().fold(0.0, |m, s| m.max(s.from).max(s.to))
    }

    /// The earliest `t >= from_ns` at which closed-loop slot `slot` (0-based)
    /// is active, i.e. the level is at least `slot + 1`; `None` if it never
    /// is again before the last stage ends.
    pub fn next_active_at(&self, slot: u32, from_ns: u64) -> Option<u64> {
        let need = f64::from(slot) + 1.0;
        for span in self.spans.iter().filter(|s| s.end_ns > from_ns) {
            let t0 = from_ns.max(span.start_ns);
            if span.level_at(t0) >= need - LEVEL_EPSILON {
                return Some(t0);
            }
            if span.to > span.from && span.to >= need - LEVEL_EPSILON {
                // Rising ramp: solve from + (to - from) * x = need for the
                // fraction x of the span, rounding the time up.
                let x = (need - span.from) / (span.to - span.from);
                let len = (span.end_ns - span.start_ns) as f64;
                let t = (span.start_ns + (x * len).ceil() as u64).max(t0);
                if t < span.end_ns {
                    return Some(t);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::load::{EndCondition, LoadModel, LoadProfile, Stage, StageKind};

    fn stage(name: &str, kind: StageKind, secs: u64, target: Option<f64>) -> Stage {
        Stage {
            name: name.to_owned(),
            kind,
            duration: Duration::from_secs(secs),
            target,
        }
    }

    #[test]
    fn ramps_start_from_the_previous_level() {
        let model = LoadModel::closed(10).unwrap();
        let profile = LoadProfile::new(
            model,
            vec![
                stage("up", StageKind::Ramp, 10, None),
                stage("hold", StageKind::Hold, 5, None),
                stage("down", StageKind::Ramp, 10, Some(0.0)),
            ],
            EndCondition::AfterStages,
        )
        .unwrap();
        let plan = profile.plan();
        assert_eq!(plan.end_ns(), 25_000_000_000);
        assert_eq!(plan.level_at(0), 0.0);
        assert_eq!(plan.level_at(5_000_000_000), 5.0);
        assert_eq!(plan.level_at(12_000_000_000), 10.0);
        assert_eq!(plan.level_at(20_000_000_000), 5.0);
        assert_eq!(plan.stage_at(15_000_000_000), Some(2));
        assert_eq!(plan.stage_at(25_000_000_000), None);
        // Slot i joins the ramp up when the level reaches i + 1 ...
        assert_eq!(plan.next_active_at(0, 0), Some(1_000_000_000));
        assert_eq!(plan.next_active_at(9, 0), Some(10_000_000_000));
        // ... and leaves the ramp down when it falls below i + 1.
        assert_eq!(plan.next_active_at(4, 20_000_000_000), Some(20_000_000_000));
        assert_eq!(plan.next_active_at(5, 20_000_000_001), None);
        assert_eq!(plan.next_active_at(10, 0), None);
    }

    #[test]
    fn steady_with_request_count_only_is_unbounded_in_time() {
        let p = LoadProfile::steady(LoadModel::closed(3).unwrap(), None, Some(7)).unwrap();
        assert_eq!(p.end(), EndCondition::Requests(7));
        assert_eq!(p.plan().end_ns(), u64::MAX);
        assert_eq!(p.plan().next_active_at(2, 123), Some(123));
    }
}
