//! The controller's per-interval cost in a distributed run: decoding every
//! agent's pre-encoded `RunEvent` (protobuf, histograms as V2+DEFLATE) and
//! merging it exactly into one interval, for 100 and 1,000 agents × 20
//! series (1,000 only with `QUARRY_MERGE_BENCH_AGENTS=100,1000`). At 1 s
//! intervals the controller keeps up only while one iteration takes well
//! under a second.

// criterion_group!/criterion_main! generate undocumented items.
#![allow(missing_docs)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use prost::Message;
use quarry::fleet::IntervalMerge;
use quarry_agent::wire::{ShareEvent, event_to_proto, interval_from_proto};
use quarry_agent::{Count, HealthSample, IntervalSnapshot, Metric, SeriesDelta, SeriesKey};
use quarry_bedrock::{Operation, Outcome};
use quarry_proto::v1::{RunEvent, run_event::Event};

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

/// Every agent's interval 0 as wire bytes.
fn encoded(agents: usize) -> Vec<Vec<u8>> {
    // Agents' payloads differ only in their samples; 25 distinct ones keep
    // setup quick at 1,000 agents without making decoding any cheaper.
    let distinct: Vec<Vec<u8>> = (0..25u64.min(agents as u64))
        .map(|a| {
            event_to_proto(2, &ShareEvent::Interval(interval(a)), ORIGIN_NS)
                .unwrap()
                .encode_to_vec()
        })
        .collect();
    (0..agents)
        .map(|a| distinct[a % distinct.len()].clone())
        .collect()
}

fn decode_and_merge(payloads: &[Vec<u8>]) -> IntervalSnapshot {
    let mut merge = IntervalMerge::new(payloads.len());
    let mut released = Vec::new();
    for (share, bytes) in payloads.iter().enumerate() {
        let event = RunEvent::decode(bytes.as_slice()).unwrap();
        let Some(Event::Interval(interval)) = &event.event else {
            panic!("not an interval")
        };
        let snapshot = interval_from_proto(interval, ORIGIN_NS).unwrap();
        released.extend(merge.push(share, snapshot).unwrap());
    }
    released.pop().unwrap()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("merge_interval");
    // 1,000 agents take tens of seconds per iteration: opt in with
    // QUARRY_MERGE_BENCH_AGENTS=100,1000.
    let counts: Vec<usize> = std::env::var("QUARRY_MERGE_BENCH_AGENTS")
        .unwrap_or_else(|_| "100".to_owned())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    for agents in counts {
        let payloads = encoded(agents);
        let merged = decode_and_merge(&payloads);
        assert_eq!(merged.series.len(), SERIES);
        group.throughput(Throughput::Elements((agents * SERIES) as u64));
        group.sample_size(10);
        group.measurement_time(Duration::from_secs(if agents > 100 { 60 } else { 20 }));
        group.bench_function(format!("{agents}_agents_x_{SERIES}_series"), |b| {
            b.iter(|| decode_and_merge(&payloads));
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
