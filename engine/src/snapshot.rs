//! Interval snapshots — what one interval recorded, per series, plus the
//! agent's health — and the cumulative totals built from them.
//!
//! This is the structure the gRPC stream carries (`Interval` in
//! `proto/quarry/v1/agent.proto`): histograms travel as V2 bytes via
//! [`SeriesDelta::encode_histograms_v2`], decode into their recorded buckets
//! and merge bucket by bucket, so merging snapshots from many agents, in any
//! order or grouping, gives the same histograms as recording everything in
//! one place.

use std::collections::BTreeMap;

use crate::health::HealthSample;
use crate::series::{SeriesDelta, SeriesKey};

/// One interval's deltas.
#[derive(Debug, Clone, PartialEq)]
pub struct IntervalSnapshot {
    /// 0-based, dense per run share.
    pub index: u64,
    /// Interval start, ns since the run's origin (inclusive).
    pub start: u64,
    /// Interval end, ns since the run's origin (exclusive). Requests are in
    /// the interval in which they were recorded (completed).
    pub end: u64,
    /// Series with anything recorded in the interval.
    pub series: BTreeMap<SeriesKey, SeriesDelta>,
    /// The agent's health over the interval.
    pub health: HealthSample,
}

impl IntervalSnapshot {
    /// Adds another snapshot (another agent's share of the same interval, or
    /// a neighbouring interval): series merge exactly, the time span widens
    /// to cover both, health keeps the worst figures.
    pub fn merge(&mut self, other: &IntervalSnapshot) {
        self.index = self.index.min(other.index);
        self.start = self.start.min(other.start);
        self.end = self.end.max(other.end);
        merge_series(&mut self.series, &other.series);
        self.health.merge(&other.health);
    }
}

/// Adds every series of `from` into `into`.
pub fn merge_series(
    into: &mut BTreeMap<SeriesKey, SeriesDelta>,
    from: &BTreeMap<SeriesKey, SeriesDelta>,
) {
    for (key, delta) in from {
        match into.get_mut(key) {
            Some(mine) => mine.merge(delta),
            None => {
                into.insert(key.clone(), delta.clone());
            }
        }
    }
}

/// Running totals over a run share: every interval's series merged.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cumulative {
    /// Totals per series.
    pub series: BTreeMap<SeriesKey, SeriesDelta>,
    /// Intervals folded in.
    pub intervals: u64,
    /// Any interval's health was flagged saturated.
    pub saturated: bool,
}

impl Cumulative {
    /// Empty totals.
    pub fn new() -> Self {
        Cumulative::default()
    }

    /// Folds one interval in.
    pub fn add(&mut self, snapshot: &IntervalSnapshot) {
        merge_series(&mut self.series, &snapshot.series);
        self.intervals += 1;
        self.saturated |= snapshot.health.saturated;
    }

    /// The totals for series whose stage passes `keep` (e.g. everything but
    /// warmup, or only cooldown), merged across stages, groups, models and
    /// operations into one series.
    pub fn total_where(&self, mut keep: impl FnMut(&SeriesKey) -> bool) -> SeriesDelta {
        let mut total = SeriesDelta::unallocated();
        for (key, delta) in &self.series {
            if keep(key) {
                total.merge(delta);
            }
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proptest::prelude::*;
    use quarry_bedrock::{Operation, Outcome};

    use super::*;
    use crate::series::{Count, Metric};

    fn key(i: u8) -> SeriesKey {
        SeriesKey {
            group: Arc::from("g"),
            model: Arc::from(format!("model-{}", i % 2)),
            operation: Some(Operation::Converse),
            stage: Arc::from(if i < 2 { "hold" } else { "cooldown" }),
            tier: None,
            turn: None,
        }
    }

    /// (series, metric, value) samples and an outcome count per snapshot.
    fn snapshot_from(index: u64, samples: &[(u8, usize, u64)]) -> IntervalSnapshot {
        let mut series = BTreeMap::new();
        for (s, m, v) in samples {
            let delta: &mut SeriesDelta = series.entry(key(*s)).or_default();
            delta.record(Metric::ALL[*m], *v);
            delta.counters_mut().add(Count::Outcome(Outcome::Ok), 1);
        }
        IntervalSnapshot {
            index,
            start: index * 1_000,
            end: index * 1_000 + 1_000,
            series,
            health: HealthSample::default(),
        }
    }

    fn sample() -> impl Strategy<Value = (u8, usize, u64)> {
        // Values across the whole range, saturation included.
        (
            0u8..4,
            0..Metric::COUNT,
            prop_oneof![1u64..10_000, 1u64..u64::MAX],
        )
    }

    fn snapshots() -> impl Strategy<Value = Vec<Vec<(u8, usize, u64)>>> {
        prop::collection::vec(prop::collection::vec(sample(), 0..40), 1..6)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn merge_is_independent_of_order_and_grouping(
            parts in snapshots(),
            seed in any::<u64>(),
        ) {
            let snaps: Vec<_> = parts.iter().enumerate().map(|(i, p)| snapshot_from(i as u64, p)).collect();
            // Reference: every sample recorded into one snapshot.
            let all: Vec<_> = parts.concat();
            let reference = snapshot_from(0, &all).series;

            // Left fold in order.
            let mut left = snaps[0].clone();
            for s in &snaps[1..] { left.merge(s); }
            // Shuffled order, merged pairwise as a tree.
            let mut order: Vec<usize> = (0..snaps.len()).collect();
            let mut x = seed | 1;
            for i in (1..order.len()).rev() {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                order.swap(i, (x % (i as u64 + 1)) as usize);
            }
            let mut level: Vec<IntervalSnapshot> = order.iter().map(|i| snaps[*i].clone()).collect();
            while level.len() > 1 {
                let mut next = Vec::new();
                for pair in level.chunks(2) {
                    let mut a = pair[0].clone();
                    if let Some(b) = pair.get(1) { a.merge(b); }
                    next.push(a);
                }
                level = next;
            }
            // Cumulative accumulator.
            let mut cumulative = Cumulative::new();
            for s in &snaps { cumulative.add(s); }

            prop_assert_eq!(&left.series, &reference);
            prop_assert_eq!(&level[0].series, &reference);
            prop_assert_eq!(&cumulative.series, &reference);
            prop_assert_eq!(left.start, 0);
            prop_assert_eq!(left.end, snaps.len() as u64 * 1_000);
        }

        #[test]
        fn wire_round_trip_is_exact(samples in prop::collection::vec(sample(), 0..200)) {
            let snap = snapshot_from(0, &samples);
            for delta in snap.series.values() {
                let wire = delta.encode_histograms_v2().unwrap();
                let file = delta.encode_histograms().unwrap();
                let counters: Vec<_> = delta.counters().named().collect();
                let decoded = SeriesDelta::decode(
                    wire.iter().map(|(n, b)| (*n, b.as_slice())),
                    counters.iter().copied(),
                ).unwrap();
                let from_file = SeriesDelta::decode(
                    file.iter().map(|(n, b)| (*n, b.as_slice())),
                    counters.iter().copied(),
                ).unwrap();
                prop_assert_eq!(&decoded, delta);
                prop_assert_eq!(&from_file, delta);
                for metric in Metric::ALL {
                    let (a, b) = (decoded.histogram(metric), delta.histogram(metric));
                    prop_assert_eq!(a.len(), b.len());
                    prop_assert_eq!(a.value_at_quantile(0.99), b.value_at_quantile(0.99));
                }
            }
        }
    }

    #[test]
    fn total_where_filters_stages() {
        let snap = snapshot_from(0, &[(0, 0, 5), (1, 0, 6), (2, 0, 7)]);
        let mut c = Cumulative::new();
        c.add(&snap);
        let measured = c.total_where(|k| &*k.stage != "cooldown");
        assert_eq!(measured.histogram(Metric::ALL[0]).len(), 2);
        assert_eq!(measured.counters().get(Count::Outcome(Outcome::Ok)), 2);
        assert_eq!(c.intervals, 1);
    }
}
