//! The controller's clock and its relation to each share's: the min-RTT
//! estimate of an agent's clock offset from NTP-style probes (the probing
//! RPC is the fleet client's), translation of the common `start_at` into
//! each agent's clock, and the measured start skew. An in-process share
//! runs on the controller's own clock (offset 0, no uncertainty).
//!
//! A probe records four times: the controller's send `t0` and receive `t3`
//! (controller clock) and the agent's receive `t1` and reply `t2` (agent
//! clock). With `offset = agent − controller`, `offset ≈ ((t1−t0) + (t2−t3))/2`
//! and the round trip excluding the agent's own time is
//! `delay = (t3−t0) − (t2−t1)`. Whatever the split of the delay between the
//! two directions, the true offset lies within `± delay/2` of the estimate;
//! the sample with the smallest delay is the tightest (NTP's clock filter).

use std::time::{Instant, SystemTime};

/// The controller's clock: Unix nanoseconds read as one wall-clock anchor
/// plus monotonic time since, so probes are not disturbed by wall-clock
/// steps during a run.
#[derive(Debug, Clone, Copy)]
pub struct ControllerClock {
    anchor_unix_ns: i64,
    anchor: Instant,
}

impl ControllerClock {
    /// A clock anchored at `now` (the caller's one wall-clock read).
    pub fn new(now: SystemTime) -> Self {
        let anchor_unix_ns = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        ControllerClock {
            anchor_unix_ns,
            anchor: Instant::now(),
        }
    }

    /// Now, Unix nanoseconds on the controller's clock.
    pub fn now_unix_ns(&self) -> i64 {
        let since = i64::try_from(self.anchor.elapsed().as_nanos()).unwrap_or(i64::MAX);
        self.anchor_unix_ns.saturating_add(since)
    }
}

/// One probe's four timestamps, ns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockProbe {
    /// Controller send (controller clock).
    pub t0: i64,
    /// Agent receive (agent clock).
    pub t1: i64,
    /// Agent reply (agent clock).
    pub t2: i64,
    /// Controller receive (controller clock).
    pub t3: i64,
}

impl ClockProbe {
    /// Network round trip, excluding the agent's processing time (never
    /// negative: clock granularity can make it look so).
    pub fn delay_ns(&self) -> u64 {
        let total = i128::from(self.t3) - i128::from(self.t0);
        let agent = i128::from(self.t2) - i128::from(self.t1);
        u64::try_from((total - agent).max(0)).unwrap_or(u64::MAX)
    }

    /// Estimated agent − controller offset, ns.
    pub fn offset_ns(&self) -> i64 {
        let a = i128::from(self.t1) - i128::from(self.t0);
        let b = i128::from(self.t2) - i128::from(self.t3);
        i64::try_from((a + b).div_euclid(2)).unwrap_or(i64::MAX)
    }
}

/// What a set of probes says about one agent's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockEstimate {
    /// Agent clock − controller clock, ns.
    pub offset_ns: i64,
    /// The true offset is within ± this of `offset_ns` (half the best
    /// probe's delay, rounded up).
    pub uncertainty_ns: u64,
    /// The best probe's round trip, ns.
    pub rtt_ns: u64,
    /// Probes taken.
    pub probes: usize,
}

impl ClockEstimate {
    /// An in-process share's clock: the controller's own, exactly.
    pub fn local() -> Self {
        ClockEstimate {
            offset_ns: 0,
            uncertainty_ns: 0,
            rtt_ns: 0,
            probes: 0,
        }
    }

    /// The estimate from the probe with the smallest delay; `None` without
    /// probes.
    pub fn from_probes(probes: &[ClockProbe]) -> Option<Self> {
        let best = probes.iter().min_by_key(|p| p.delay_ns())?;
        let rtt_ns = best.delay_ns();
        Some(ClockEstimate {
            offset_ns: best.offset_ns(),
            uncertainty_ns: rtt_ns.div_ceil(2),
            rtt_ns,
            probes: probes.len(),
        })
    }

    /// A controller-clock time on the agent's clock.
    pub fn to_agent(self, controller_unix_ns: i64) -> i64 {
        controller_unix_ns.saturating_add(self.offset_ns)
    }

    /// An agent-clock time on the controller's clock.
    pub fn to_controller(self, agent_unix_ns: i64) -> i64 {
        agent_unix_ns.saturating_sub(self.offset_ns)
    }
}

/// How far apart the agents actually started, on the controller's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StartSkew {
    /// Latest start − earliest start, ns.
    pub skew_ns: u64,
    /// The skew is known to within ± this (the two extreme agents' clock
    /// uncertainties added).
    pub uncertainty_ns: u64,
    /// Earliest start − the planned `start_at`, ns (negative when early).
    pub first_vs_planned_ns: i64,
}

/// The start skew from each agent's reported start (agent clock) and its
/// clock estimate; `None` when no agent started.
pub fn start_skew(planned_unix_ns: i64, starts: &[(i64, ClockEstimate)]) -> Option<StartSkew> {
    let on_controller: Vec<(i64, u64)> = starts
        .iter()
        .map(|(at, est)| (est.to_controller(*at), est.uncertainty_ns))
        .collect();
    let first = on_controller.iter().min_by_key(|(t, _)| *t)?;
    let last = on_controller.iter().max_by_key(|(t, _)| *t)?;
    Some(StartSkew {
        skew_ns: u64::try_from(last.0 - first.0).unwrap_or(0),
        uncertainty_ns: first.1 + last.1,
        first_vs_planned_ns: first.0 - planned_unix_ns,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A probe against an agent whose clock is `offset` ahead, with one-way
    /// delays `out` and `back` and `busy` ns spent in the agent.
    fn probe(t0: i64, offset: i64, out: i64, back: i64, busy: i64) -> ClockProbe {
        let t1 = t0 + out + offset;
        let t2 = t1 + busy;
        let t3 = t2 - offset + back;
        ClockProbe { t0, t1, t2, t3 }
    }

    #[test]
    fn symmetric_delay_gives_the_exact_offset() {
        let p = probe(1_000_000, -5_000_000, 300_000, 300_000, 50_000);
        assert_eq!(p.offset_ns(), -5_000_000);
        assert_eq!(p.delay_ns(), 600_000);
    }

    #[test]
    fn the_min_rtt_probe_wins() {
        let probes = [
            probe(0, 42, 9_000, 1_000, 10),
            probe(100_000, 42, 200, 200, 10),
            probe(200_000, 42, 5_000, 5_000, 10),
        ];
        let est = ClockEstimate::from_probes(&probes).unwrap();
        assert_eq!(est.offset_ns, 42);
        assert_eq!(est.rtt_ns, 400);
        assert_eq!(est.uncertainty_ns, 200);
        assert_eq!(est.probes, 3);
        assert_eq!(est.to_agent(1_000), 1_042);
        assert_eq!(est.to_controller(1_042), 1_000);
        assert_eq!(ClockEstimate::from_probes(&[]), None);
    }

    #[test]
    fn skew_is_measured_on_the_controller_clock() {
        let a = ClockEstimate {
            offset_ns: 1_000,
            uncertainty_ns: 10,
            rtt_ns: 20,
            probes: 1,
        };
        let b = ClockEstimate {
            offset_ns: -3_000,
            uncertainty_ns: 30,
            rtt_ns: 60,
            probes: 1,
        };
        // Agent a started at controller time 10_500, b at 10_200.
        let skew = start_skew(10_000, &[(11_500, a), (7_200, b)]).unwrap();
        assert_eq!(skew.skew_ns, 300);
        assert_eq!(skew.uncertainty_ns, 40);
        assert_eq!(skew.first_vs_planned_ns, 200);
        assert_eq!(start_skew(0, &[]), None);
    }

    proptest! {
        #[test]
        fn true_offset_lies_within_the_uncertainty(
            offset in -10_000_000_000i64..10_000_000_000,
            out in 0i64..50_000_000,
            back in 0i64..50_000_000,
            busy in 0i64..1_000_000,
            t0 in 0i64..1_000_000_000_000_000_000,
        ) {
            let est = ClockEstimate::from_probes(&[probe(t0, offset, out, back, busy)]).unwrap();
            prop_assert!(est.offset_ns.abs_diff(offset) <= est.uncertainty_ns);
            prop_assert_eq!(est.rtt_ns, (out + back) as u64);
        }
    }
}
