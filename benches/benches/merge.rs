//! The controller's per-interval cost in a distributed run: decoding every
//! agent's pre-encoded `RunEvent` (protobuf, histograms as V2+DEFLATE) and
//! merging it exactly into one interval, for 100 and 1,000 agents × 20
//! series. At 1 s intervals the controller keeps up only while one
//! iteration takes well under a second.
//!
//! Four measurements per agent count:
//! - `decode_merge`: everything the controller does per interval, on one
//!   thread (total controller CPU), histograms as agents send them (plain
//!   V2);
//! - `merge_only`: what the merge task does once each agent's stream task has
//!   decoded its interval (the part that cannot spread over cores);
//! - `decode_merge_v2_deflate`: the same with histograms V2+DEFLATE, as the
//!   first version's agents sent them (still read);
//! - `first_version`: the first implementation on its V2+DEFLATE wire (every
//!   series decoded into 13 full-size HDR histograms, merged count by count,
//!   per-share counters in maps keyed by name), kept here to measure before
//!   and after in one run. It takes seconds per iteration, so it runs only
//!   for the agent counts in `QUARRY_MERGE_BENCH_FIRST_VERSION` (default
//!   `100`).
//!
//! `QUARRY_MERGE_BENCH_AGENTS` picks the agent counts (default `100,1000`).

// criterion_group!/criterion_main! generate undocumented items.
#![allow(missing_docs)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use prost::Message;
use quarry::coordinator::merge::IntervalMerge;
use quarry_bedrock::{Operation, Outcome};
use quarry_engine::ShareEvent;
use quarry_engine::{Count, HealthSample, IntervalSnapshot, Metric, SeriesDelta, SeriesKey};
use quarry_proto::v1::{RunEvent, run_event::Event};
use quarry_proto::wire::{event_to_proto, interval_from_proto};

const SERIES: usize = 20;
const ORIGIN_NS: i64 = 1_700_000_000_000_000_000;

/// One agent's interval: 20 series (models × stages), each with ~50
/// requests' latencies in the five latency histograms a streaming request
/// fills, and its outcome and token counters.
fn interval(agent: u64) -> IntervalSnapshot {
    let mut series = BTreeMap::new();
    for s in 0..SERIES as u64 {
        let mut delta = SeriesDelta::new();
        for r in 0..50u64 {
            let base = 20_000_000 + (agent * 7_919 + s * 104_729 + r * 1_000_003) % 900_000_000;
            for (m, metric) in Metric::ALL.iter().take(5).enumerate() {
                delta.record(*metric, base + m as u64 * 1_000_000);
            }
            delta.counters_mut().add(Count::Outcome(Outcome::Ok), 1);
        }
        let key = SeriesKey {
            group: Arc::from("default"),
            model: Arc::from(format!("model-{}", s % 10)),
            operation: Some(Operation::ConverseStream),
            stage: Arc::from(if s < 10 { "hold" } else { "ramp" }),
            tier: None,
            turn: None,
        };
        series.insert(key, delta);
    }
    IntervalSnapshot {
        index: 0,
        start: 0,
        end: 1_000_000_000,
        series,
        health: HealthSample::default(),
    }
}

/// Every agent's interval 0 as wire bytes, histograms as agents send them
/// now (plain V2) or as the first version's agents did (V2+DEFLATE).
fn encoded(agents: usize, deflate: bool) -> Vec<Vec<u8>> {
    // Agents' payloads differ only in their samples; 25 distinct ones keep
    // setup quick at 1,000 agents without making decoding any cheaper.
    let distinct: Vec<Vec<u8>> = (0..25u64.min(agents as u64))
        .map(|a| {
            let snapshot = interval(a);
            let mut event =
                event_to_proto(2, &ShareEvent::Interval(snapshot.clone()), ORIGIN_NS).unwrap();
            if deflate {
                let Some(Event::Interval(pb)) = &mut event.event else {
                    panic!("not an interval")
                };
                for (series, delta) in pb.series.iter_mut().zip(snapshot.series.values()) {
                    series.histograms = delta
                        .encode_histograms()
                        .unwrap()
                        .into_iter()
                        .map(|(name, bytes)| (name.to_owned(), bytes))
                        .collect();
                }
            }
            event.encode_to_vec()
        })
        .collect();
    (0..agents)
        .map(|a| distinct[a % distinct.len()].clone())
        .collect()
}

/// What one agent's stream task does with an event: protobuf, then the
/// domain snapshot.
fn decode(bytes: &[u8]) -> IntervalSnapshot {
    let event = RunEvent::decode(bytes).unwrap();
    let Some(Event::Interval(interval)) = &event.event else {
        panic!("not an interval")
    };
    interval_from_proto(interval, ORIGIN_NS).unwrap()
}

/// What the merge task does with every agent's decoded interval.
fn merge(snapshots: Vec<IntervalSnapshot>) -> IntervalSnapshot {
    let mut merge = IntervalMerge::new(snapshots.len());
    let mut released = Vec::new();
    for (share, snapshot) in snapshots.into_iter().enumerate() {
        released.extend(merge.push(share, snapshot).unwrap());
    }
    released.pop().unwrap()
}

/// Both, one agent after the other, as the controller's stream tasks hand
/// decoded intervals to the merge task.
fn decode_and_merge(payloads: &[Vec<u8>]) -> IntervalSnapshot {
    let mut merge = IntervalMerge::new(payloads.len());
    let mut released = Vec::new();
    for (share, bytes) in payloads.iter().enumerate() {
        released.extend(merge.push(share, decode(bytes)).unwrap());
    }
    released.pop().unwrap()
}

/// The first implementation, as it was: each series decodes into all 13
/// histograms allocated at full size (1 ns – 1 h at 3 digits: 33,792
/// counts), each V2+DEFLATE payload through `hdrhistogram`'s deserializer
/// into yet another full-size histogram; merging adds the 13 histograms
/// count by count; each share's counters are summed into maps keyed by
/// counter name.
mod first_version {
    use std::collections::BTreeMap;

    use hdrhistogram::Histogram;
    use hdrhistogram::serialization::Deserializer;
    use prost::Message;
    use quarry_engine::{Metric, SeriesCounters, SeriesKey, new_histogram};
    use quarry_proto::v1::{RunEvent, run_event::Event};
    use quarry_proto::wire::series_key_from_proto;

    pub(crate) struct Series {
        pub(crate) histograms: Vec<Histogram<u64>>,
        pub(crate) counters: Vec<(&'static str, u64)>,
    }

    type ShareCounters = BTreeMap<SeriesKey, BTreeMap<&'static str, u64>>;

    pub(crate) fn decode_and_merge(payloads: &[Vec<u8>]) -> BTreeMap<SeriesKey, Series> {
        let names: Vec<&'static str> = SeriesCounters::default().named().map(|(n, _)| n).collect();
        let mut deserializer = Deserializer::new();
        let mut merged: BTreeMap<SeriesKey, Series> = BTreeMap::new();
        let mut shares: Vec<ShareCounters> = (0..payloads.len()).map(|_| BTreeMap::new()).collect();
        for (share, bytes) in payloads.iter().enumerate() {
            let event = RunEvent::decode(bytes.as_slice()).unwrap();
            let Some(Event::Interval(interval)) = &event.event else {
                panic!("not an interval")
            };
            for s in &interval.series {
                let key = series_key_from_proto(s.key.as_ref().unwrap()).unwrap();
                let mut histograms: Vec<Histogram<u64>> =
                    (0..Metric::COUNT).map(|_| new_histogram()).collect();
                for (name, bytes) in &s.histograms {
                    let at = Metric::ALL.iter().position(|m| m.name() == name).unwrap();
                    histograms[at] = deserializer.deserialize(&mut bytes.as_slice()).unwrap();
                }
                let mut counters: Vec<(&'static str, u64)> =
                    names.iter().map(|n| (*n, 0)).collect();
                for (name, value) in &s.counters {
                    let at = names.iter().position(|n| n == name).unwrap();
                    counters[at].1 = *value;
                }
                let totals = shares[share].entry(key.clone()).or_default();
                for (name, value) in &counters {
                    *totals.entry(*name).or_default() += value;
                }
                match merged.get_mut(&key) {
                    Some(mine) => {
                        for (m, t) in mine.histograms.iter_mut().zip(&histograms) {
                            m.add(t).unwrap();
                        }
                        for (m, t) in mine.counters.iter_mut().zip(&counters) {
                            m.1 += t.1;
                        }
                    }
                    None => {
                        merged.insert(
                            key,
                            Series {
                                histograms,
                                counters,
                            },
                        );
                    }
                }
            }
        }
        merged
    }
}

/// The first version and the current one must agree exactly.
fn assert_same(current: &IntervalSnapshot, first: &BTreeMap<SeriesKey, first_version::Series>) {
    assert_eq!(current.series.len(), first.len());
    for (key, delta) in &current.series {
        let old = &first[key];
        for (m, metric) in Metric::ALL.iter().enumerate() {
            assert_eq!(
                delta.histogram(*metric),
                &old.histograms[m],
                "{key} {metric:?}"
            );
        }
        let counters: Vec<_> = delta.counters().named().collect();
        assert_eq!(counters, old.counters, "{key}");
    }
}

fn agent_counts(var: &str, default: &str) -> Vec<usize> {
    std::env::var(var)
        .unwrap_or_else(|_| default.to_owned())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("merge_interval");
    let first = agent_counts("QUARRY_MERGE_BENCH_FIRST_VERSION", "100");
    for agents in agent_counts("QUARRY_MERGE_BENCH_AGENTS", "100,1000") {
        let payloads = encoded(agents, false);
        let deflated = encoded(agents, true);
        let merged = decode_and_merge(&payloads);
        assert_eq!(merged.series.len(), SERIES);
        assert_eq!(decode_and_merge(&deflated), merged);
        let decoded: Vec<IntervalSnapshot> = payloads.iter().map(|p| decode(p)).collect();
        group.throughput(Throughput::Elements((agents * SERIES) as u64));
        group.sample_size(10);
        group.measurement_time(Duration::from_secs(10));
        let name = format!("{agents}_agents_x_{SERIES}_series");
        group.bench_function(format!("{name}/decode_merge"), |b| {
            b.iter(|| decode_and_merge(&payloads));
        });
        group.bench_function(format!("{name}/merge_only"), |b| {
            b.iter_batched(|| decoded.clone(), merge, BatchSize::PerIteration);
        });
        // The current code on the first version's wire form, which it
        // still reads: what DEFLATE costs the controller.
        group.bench_function(format!("{name}/decode_merge_v2_deflate"), |b| {
            b.iter(|| decode_and_merge(&deflated));
        });
        if first.contains(&agents) {
            assert_same(&merged, &first_version::decode_and_merge(&deflated));
            group.measurement_time(Duration::from_secs(if agents > 100 { 300 } else { 30 }));
            group.bench_function(format!("{name}/first_version"), |b| {
                b.iter(|| first_version::decode_and_merge(&deflated));
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
