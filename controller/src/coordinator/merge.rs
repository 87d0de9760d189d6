//! Exact merging of many agents' interval streams into one: interval `i` of
//! every share is added with HDR `add` per series (never averaging
//! percentiles) and released, in index order, once every share still
//! running has delivered it. A finished or lost share stops holding the
//! merge back; what it delivered stays in.
//!
//! Series keep their agent group in the key, so groups stay their own series
//! and the overall figures are their exact sum.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use quarry_engine::{IntervalSnapshot, SeriesCounters, SeriesDelta, SeriesKey};

/// Counters by series and name (zero counters may be absent).
pub type ShareCounters = BTreeMap<SeriesKey, BTreeMap<&'static str, u64>>;

/// `series` as [`ShareCounters`], for comparing an agent's final totals
/// with the sum of its intervals.
pub fn counters_of(series: &BTreeMap<SeriesKey, SeriesDelta>) -> ShareCounters {
    series
        .iter()
        .map(|(k, d)| {
            (
                k.clone(),
                d.counters().named().filter(|(_, v)| *v > 0).collect(),
            )
        })
        .collect()
}

/// An agent broke the interval order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    /// Interval indexes must rise by one per share.
    #[error("share {share}: interval {got} arrived after interval {after:?}; expected {expected}")]
    OutOfOrder {
        /// The share.
        share: usize,
        /// The index received.
        got: u64,
        /// The last index received before it.
        after: Option<u64>,
        /// The index due.
        expected: u64,
    },
    /// A share index beyond the shares being merged.
    #[error("share {0} is not part of this run")]
    UnknownShare(usize),
    /// An interval from a share that already ended.
    #[error("share {0} sent an interval after it ended")]
    AfterEnd(usize),
}

#[derive(Debug, Default)]
struct ShareProgress {
    /// The last interval index delivered (indexes are dense from 0, so the
    /// share delivered every index up to this one).
    last: Option<u64>,
    /// Finished or lost: no more intervals.
    ended: bool,
    /// Intervals it delivered.
    intervals: u64,
    /// Its counters summed over every interval it delivered. Counters, not
    /// histograms: a second HDR merge per share would cost as much as the
    /// merge itself, and counters are enough to check the agent's final
    /// totals against what arrived.
    counters: BTreeMap<SeriesKey, SeriesCounters>,
    /// `counters` by name, built when first asked for.
    named: OnceLock<ShareCounters>,
}

impl ShareProgress {
    /// Delivered `index`.
    fn delivered(&self, index: u64) -> bool {
        self.last.is_some_and(|last| last >= index)
    }
}

/// Interval-by-interval merge of a fixed set of shares.
#[derive(Debug)]
pub struct IntervalMerge {
    shares: Vec<ShareProgress>,
    /// Merged intervals not yet released.
    pending: BTreeMap<u64, IntervalSnapshot>,
}

impl IntervalMerge {
    /// A merge over `shares` shares.
    pub fn new(shares: usize) -> Self {
        IntervalMerge {
            shares: (0..shares).map(|_| ShareProgress::default()).collect(),
            pending: BTreeMap::new(),
        }
    }

    /// Adds one share's interval; returns the merged intervals it
    /// completed, in index order. Costs one step per recorded histogram
    /// bucket of `snapshot` (see `quarry_engine::SeriesDelta::merge`).
    pub fn push(
        &mut self,
        share: usize,
        snapshot: IntervalSnapshot,
    ) -> Result<Vec<IntervalSnapshot>, MergeError> {
        let progress = self
            .shares
            .get_mut(share)
            .ok_or(MergeError::UnknownShare(share))?;
        if progress.ended {
            return Err(MergeError::AfterEnd(share));
        }
        let expected = progress.last.map_or(0, |l| l + 1);
        if snapshot.index != expected {
            return Err(MergeError::OutOfOrder {
                share,
                got: snapshot.index,
                after: progress.last,
                expected,
            });
        }
        progress.last = Some(snapshot.index);
        progress.intervals += 1;
        progress.named.take();
        for (key, delta) in &snapshot.series {
            match progress.counters.get_mut(key) {
                Some(mine) => mine.merge(delta.counters()),
                None => {
                    progress
                        .counters
                        .insert(key.clone(), delta.counters().clone());
                }
            }
        }
        match self.pending.get_mut(&snapshot.index) {
            Some(merged) => merged.merge(&snapshot),
            None => {
                self.pending.insert(snapshot.index, snapshot);
            }
        }
        Ok(self.release())
    }

    /// Marks a share ended (finished or lost); returns the merged intervals
    /// that no longer wait for it.
    pub fn end_share(&mut self, share: usize) -> Vec<IntervalSnapshot> {
        if let Some(p) = self.shares.get_mut(share) {
            p.ended = true;
        }
        self.release()
    }

    /// Everything still pending, in index order (at the end of a run, or
    /// when the user aborts).
    pub fn drain(&mut self) -> Vec<IntervalSnapshot> {
        std::mem::take(&mut self.pending).into_values().collect()
    }

    /// Share `share`'s counters summed over the intervals it delivered.
    pub fn share_counters(&self, share: usize) -> Option<&ShareCounters> {
        self.shares.get(share).map(|p| {
            p.named.get_or_init(|| {
                p.counters
                    .iter()
                    .map(|(key, c)| (key.clone(), c.named().collect()))
                    .collect()
            })
        })
    }

    /// How many intervals share `share` delivered.
    pub fn share_intervals(&self, share: usize) -> u64 {
        self.shares.get(share).map_or(0, |p| p.intervals)
    }

    /// The last interval index share `share` delivered.
    pub fn share_last_index(&self, share: usize) -> Option<u64> {
        self.shares.get(share).and_then(|p| p.last)
    }

    /// Releases the ready prefix: an index is ready when every share that
    /// has not ended delivered it. One pass over the shares per call.
    fn release(&mut self) -> Vec<IntervalSnapshot> {
        let mut out = Vec::new();
        while let Some(first) = self.pending.first_entry() {
            let index = *first.key();
            if self.shares.iter().any(|p| !p.ended && !p.delivered(index)) {
                break;
            }
            out.push(first.remove());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proptest::prelude::*;
    use quarry_bedrock::{Operation, Outcome};
    use quarry_engine::{Count, Cumulative, HealthSample, Metric};
    use quarry_proto::wire::{interval_from_proto, interval_to_proto};

    use super::*;

    fn snapshot(index: u64, group: &str, values: &[u64]) -> IntervalSnapshot {
        let mut delta = SeriesDelta::new();
        for v in values {
            delta.record(Metric::ALL[0], *v);
            delta.counters_mut().add(Count::Outcome(Outcome::Ok), 1);
        }
        let key = SeriesKey {
            group: Arc::from(group),
            model: Arc::from("m"),
            operation: Some(Operation::Converse),
            stage: Arc::from("hold"),
            tier: None,
            turn: None,
        };
        IntervalSnapshot {
            index,
            start: index * 10,
            end: index * 10 + 10,
            series: BTreeMap::from([(key, delta)]),
            health: HealthSample {
                in_flight: 1,
                ..HealthSample::default()
            },
        }
    }

    #[test]
    fn releases_an_interval_once_every_running_share_sent_it() {
        let mut m = IntervalMerge::new(3);
        assert!(m.push(0, snapshot(0, "a", &[1])).unwrap().is_empty());
        assert!(m.push(1, snapshot(0, "a", &[2])).unwrap().is_empty());
        assert!(m.push(0, snapshot(1, "a", &[3])).unwrap().is_empty());
        let out = m.push(2, snapshot(0, "b", &[4])).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].index, 0);
        assert_eq!(out[0].series.len(), 2, "groups stay their own series");
        assert_eq!(out[0].health.in_flight, 3);
        // Share 1 and 2 end (lost, finished): interval 1 no longer waits.
        assert!(m.end_share(1).is_empty());
        let out = m.end_share(2);
        assert_eq!(out.iter().map(|s| s.index).collect::<Vec<_>>(), vec![1]);
        assert_eq!(m.share_last_index(0), Some(1));
        assert_eq!(m.share_intervals(1), 1);
        assert_eq!(
            m.share_counters(1).unwrap().values().next().unwrap()["outcome_ok"],
            1
        );
    }

    #[test]
    fn order_is_enforced_per_share() {
        let mut m = IntervalMerge::new(2);
        m.push(0, snapshot(0, "a", &[1])).unwrap();
        assert_eq!(
            m.push(0, snapshot(2, "a", &[1])),
            Err(MergeError::OutOfOrder {
                share: 0,
                got: 2,
                after: Some(0),
                expected: 1
            })
        );
        assert_eq!(
            m.push(0, snapshot(0, "a", &[1])).unwrap_err().to_string(),
            "share 0: interval 0 arrived after interval Some(0); expected 1"
        );
        assert_eq!(
            m.push(5, snapshot(0, "a", &[1])),
            Err(MergeError::UnknownShare(5))
        );
        m.end_share(1);
        assert_eq!(
            m.push(1, snapshot(0, "a", &[1])),
            Err(MergeError::AfterEnd(1))
        );
        let drained = m.drain();
        assert!(
            drained.is_empty(),
            "interval 0 was released when share 1 ended"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Whatever the arrival interleaving, the released intervals hold
        /// exactly what every share recorded, and each index once; also
        /// when the intervals came over the wire (held as their recorded
        /// buckets, merged until they turn into full histograms).
        #[test]
        fn merge_equals_recording_in_one_place(
            shares in prop::collection::vec(
                prop::collection::vec(prop::collection::vec(1u64..1_000_000, 0..60), 1..5),
                1..5,
            ),
            order_seed in any::<u64>(),
            over_wire in any::<bool>(),
        ) {
            let mut queue: Vec<(usize, u64)> = Vec::new();
            for (s, intervals) in shares.iter().enumerate() {
                for i in 0..intervals.len() {
                    queue.push((s, i as u64));
                }
            }
            // A random interleaving that keeps each share's own order.
            let mut x = order_seed | 1;
            let mut cursors = vec![0usize; shares.len()];
            let mut merge = IntervalMerge::new(shares.len());
            let mut released = Vec::new();
            let mut left = queue.len();
            while left > 0 {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                let live: Vec<usize> = (0..shares.len()).filter(|s| cursors[*s] < shares[*s].len()).collect();
                let s = live[(x % live.len() as u64) as usize];
                let i = cursors[s];
                cursors[s] += 1;
                left -= 1;
                let mut sent = snapshot(i as u64, "g", &shares[s][i]);
                if over_wire {
                    let pb = interval_to_proto(&sent, 0).unwrap();
                    sent = interval_from_proto(&pb, 0).unwrap();
                }
                released.extend(merge.push(s, sent).unwrap());
                if cursors[s] == shares[s].len() {
                    released.extend(merge.end_share(s));
                }
            }
            prop_assert!(merge.drain().is_empty());
            let indexes: Vec<u64> = released.iter().map(|s| s.index).collect();
            let longest = shares.iter().map(Vec::len).max().unwrap_or(0) as u64;
            prop_assert_eq!(indexes, (0..longest).collect::<Vec<_>>());
            let mut merged = Cumulative::new();
            for s in &released { merged.add(s); }
            let all: Vec<u64> = shares.iter().flatten().flatten().copied().collect();
            let reference = snapshot(0, "g", &all);
            let total = merged.total_where(|_| true);
            let expected = reference.series.values().next().unwrap();
            prop_assert_eq!(&total, expected);
        }
    }
}
