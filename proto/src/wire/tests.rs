use std::sync::Arc;

use crate::v1 as pb;
use proptest::prelude::*;
use quarry_bedrock::Outcome;

use super::*;
use quarry_engine::{Count, FinishKind, Metric, Saturation};

fn key(i: u8) -> SeriesKey {
    SeriesKey {
        group: Arc::from(if i.is_multiple_of(2) { "eu" } else { "us" }),
        model: Arc::from(if i == 3 { "" } else { "anthropic.claude" }),
        operation: if i == 3 {
            None
        } else {
            Some(Operation::ALL[usize::from(i) % Operation::ALL.len()])
        },
        stage: Arc::from(if i < 2 { "hold" } else { "ramp" }),
        tier: (i == 1).then_some(ServiceTierType::Flex),
        turn: (i == 2).then_some(3),
    }
}

fn snapshot(index: u64, samples: &[(u8, usize, u64)], cpu: Option<f64>) -> IntervalSnapshot {
    let mut series = BTreeMap::new();
    for (s, m, v) in samples {
        let delta: &mut SeriesDelta = series.entry(key(*s)).or_default();
        delta.record(Metric::ALL[*m], *v);
        delta.counters_mut().add(Count::Outcome(Outcome::Ok), 1);
        delta.counters_mut().add(Count::CostPicoUsd, *v);
    }
    IntervalSnapshot {
        index,
        start: index * 1_000_000_000,
        end: (index + 1) * 1_000_000_000,
        series,
        health: HealthSample {
            cpu_percent: cpu,
            in_flight: index + 3,
            schedule_lag_p99_ns: 17,
            pool_wait_p99_ns: 5,
            runtime_delay_p95_ns: 11 * index,
            saturated: !index.is_multiple_of(2),
            saturation: Saturation::from_bits(if index.is_multiple_of(2) {
                0
            } else {
                (index % 15 + 1) as u32
            }),
        },
    }
}

fn sample() -> impl Strategy<Value = (u8, usize, u64)> {
    (
        0u8..4,
        0..Metric::COUNT,
        prop_oneof![1u64..10_000, 1u64..u64::MAX],
    )
}

const ORIGIN: i64 = 1_700_000_000_000_000_000;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn interval_round_trip_is_exact(
        samples in prop::collection::vec(sample(), 0..100),
        index in 0u64..1000,
        cpu in prop::option::of(0.0f64..400.0),
    ) {
        let snap = snapshot(index, &samples, cpu);
        let wire = interval_to_proto(&snap, ORIGIN).unwrap();
        // Through bytes too, as it travels.
        let bytes = prost::Message::encode_to_vec(&wire);
        let wire: pb::Interval = prost::Message::decode(bytes.as_slice()).unwrap();
        let back = interval_from_proto(&wire, ORIGIN).unwrap();
        prop_assert_eq!(back, snap);
    }

    #[test]
    fn event_stream_round_trip_with_duplicates_skipped(
        parts in prop::collection::vec(prop::collection::vec(sample(), 0..20), 1..5),
    ) {
        let snaps: Vec<_> = parts.iter().enumerate()
            .map(|(i, p)| snapshot(i as u64, p, Some(12.5))).collect();
        let mut cumulative = BTreeMap::new();
        for s in &snaps { quarry_engine::merge_series(&mut cumulative, &s.series); }
        let mut events = vec![ShareEvent::Started { started_at_unix_ns: ORIGIN }];
        events.extend(snaps.iter().cloned().map(ShareEvent::Interval));
        events.push(ShareEvent::Finished(ShareFinished {
            series: cumulative,
            kind: FinishKind::Stopped,
            reason: "lease expired".into(),
            requests_sent: 9,
            finished_at_unix_ns: ORIGIN + 5,
        }));
        let wire: Vec<_> = events.iter().enumerate()
            .map(|(i, e)| event_to_proto(i as u64 + 1, e, ORIGIN).unwrap()).collect();
        let mut decoder = EventDecoder::new();
        let mut out = Vec::new();
        // A re-attach overlap: the first half twice.
        let half = wire.len() / 2;
        for e in wire[..half].iter().chain(&wire[..half]).chain(&wire[half..]) {
            if let Some(d) = decoder.decode(e).unwrap() { out.push(d); }
        }
        prop_assert_eq!(decoder.last_sequence(), events.len() as u64);
        let seqs: Vec<_> = out.iter().map(|e| e.sequence).collect();
        prop_assert_eq!(seqs, (1..=events.len() as u64).collect::<Vec<_>>());
        let decoded: Vec<_> = out.into_iter().map(|e| e.event).collect();
        prop_assert_eq!(decoded, events);
    }
}

#[test]
fn schedule_series_key_has_no_operation() {
    let k = key(3);
    let wire = series_key_to_proto(&k);
    assert_eq!(wire.operation, "");
    assert_eq!(series_key_from_proto(&wire).unwrap(), k);
    let bad = pb::SeriesKey {
        operation: "Teleport".into(),
        ..wire
    };
    assert!(matches!(
        series_key_from_proto(&bad),
        Err(WireError::Operation(op)) if op == "Teleport"
    ));
}

#[test]
fn gaps_and_missing_started_are_errors() {
    let started = event_to_proto(
        1,
        &ShareEvent::Started {
            started_at_unix_ns: ORIGIN,
        },
        ORIGIN,
    )
    .unwrap();
    let interval =
        event_to_proto(3, &ShareEvent::Interval(snapshot(0, &[], None)), ORIGIN).unwrap();
    let mut decoder = EventDecoder::new();
    assert!(matches!(
        decoder.decode(&interval),
        Err(WireError::SequenceGap {
            expected: 1,
            got: 3
        })
    ));
    decoder.decode(&started).unwrap().unwrap();
    assert!(matches!(
        decoder.decode(&interval),
        Err(WireError::SequenceGap {
            expected: 2,
            got: 3
        })
    ));
    // An interval before Started (sequence 1 without Started).
    let first = pb::RunEvent {
        sequence: 1,
        ..interval
    };
    assert!(matches!(
        EventDecoder::new().decode(&first),
        Err(WireError::IntervalBeforeStarted { sequence: 1 })
    ));
}

#[test]
fn interval_before_origin_and_duplicate_series_are_refused() {
    let mut wire = interval_to_proto(&snapshot(0, &[(0, 0, 5)], None), ORIGIN).unwrap();
    assert!(matches!(
        interval_from_proto(&wire, ORIGIN + 1),
        Err(WireError::IntervalTime {
            field: "start_unix_ns",
            ..
        })
    ));
    wire.series.push(wire.series[0].clone());
    assert!(matches!(
        interval_from_proto(&wire, ORIGIN),
        Err(WireError::DuplicateSeries(_))
    ));
    wire.series[0].key = None;
    assert!(matches!(
        interval_from_proto(&wire, ORIGIN),
        Err(WireError::MissingField("SeriesDelta.key"))
    ));
}

#[test]
fn zero_counters_are_not_sent() {
    let snap = snapshot(0, &[(0, 2, 1_000)], None);
    let wire = series_map_to_proto(&snap.series).unwrap();
    assert_eq!(wire.len(), 1);
    let mut names: Vec<_> = wire[0].counters.keys().cloned().collect();
    names.sort();
    assert_eq!(names, ["cost_pico_usd", "outcome_ok"]);
    assert_eq!(wire[0].histograms.len(), 1);
}

#[test]
fn an_agent_that_predates_finish_kinds_is_read_from_partial_and_reason() {
    let finished = |partial: bool, reason: &str| pb::Finished {
        partial,
        reason: reason.to_owned(),
        ..pb::Finished::default()
    };
    let kind = |f: pb::Finished| {
        let mut decoder = EventDecoder::new();
        let started = pb::RunEvent {
            sequence: 1,
            event: Some(pb::run_event::Event::Started(pb::Started {
                started_at_unix_ns: ORIGIN,
            })),
        };
        decoder.decode(&started).unwrap();
        let event = pb::RunEvent {
            sequence: 2,
            event: Some(pb::run_event::Event::Finished(f)),
        };
        match decoder.decode(&event).unwrap().unwrap().event {
            ShareEvent::Finished(f) => f.kind,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(kind(finished(false, "completed")), FinishKind::Completed);
    assert_eq!(
        kind(finished(false, "request limit reached")),
        FinishKind::RequestLimit
    );
    assert_eq!(kind(finished(true, "lease expired")), FinishKind::Stopped);
    // A newer agent says it outright, whatever the reason text.
    let mut f = finished(true, "the load engine failed: boom");
    f.set_kind(pb::FinishKind::Failed);
    assert_eq!(kind(f), FinishKind::Failed);
}

/// An agent from before the saturation causes sends `saturated` alone: it
/// judged by schedule lag only, and is read so.
#[test]
fn an_older_agents_saturation_reads_as_schedule_lag() {
    let old = pb::AgentHealth {
        saturated: true,
        ..Default::default()
    };
    let h = health_from_proto(&old);
    assert!(h.saturated && h.saturation.schedule_lag);
    assert!(!h.saturation.cpu && !h.saturation.pool_wait);
    let fine = health_from_proto(&pb::AgentHealth::default());
    assert!(!fine.saturated && !fine.saturation.any());
    let cpu = HealthSample {
        saturated: true,
        saturation: Saturation::from_bits(2),
        ..HealthSample::default()
    };
    assert_eq!(health_from_proto(&health_to_proto(&cpu)), cpu);
    let behind = HealthSample {
        runtime_delay_p95_ns: 17_000_000,
        saturated: true,
        saturation: Saturation::from_bits(8),
        ..HealthSample::default()
    };
    assert_eq!(health_from_proto(&health_to_proto(&behind)), behind);
}
