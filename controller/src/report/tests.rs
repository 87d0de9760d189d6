//! Report arithmetic on hand-built series, and the results round trip.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use quarry_bedrock::{Operation, Outcome, UsageSource};
use quarry_engine::{
    Count, HealthSample, IntervalSnapshot, Metric, SeriesDelta, SeriesKey, TokenKind,
};

use super::*;
use crate::results::{
    Assembly, Ended, GroupRecord, PartialShare, PlannedLoad, ResultsDocument, ResultsWriter,
    RunEnd, RunMeta, SCHEMA_VERSION, StageRecord, ThresholdRule, assemble, read_results,
    recover_results,
};
use crate::spec::parse_spec;
use crate::thresholds::{LatencyMetric, ScalarMetric};

const SPEC: &str = r#"
[load]
concurrency = 2
warmup = "2s"
duration = "10s"

[[workload]]
model = "meta.llama3-3-70b-instruct-v1:0"
input_tokens = 100
max_tokens = 50
"#;

const MS: u64 = 1_000_000;

fn key(stage: &str) -> SeriesKey {
    SeriesKey {
        group: Arc::from("default"),
        model: Arc::from("meta.llama3-3-70b-instruct-v1:0"),
        operation: Some(Operation::ConverseStream),
        stage: Arc::from(stage),
        tier: None,
        turn: None,
    }
}

/// Ten ok requests per 100 TTFT samples of 1..=100 ms in `hold`; one slow
/// warmup request that must not show.
fn series() -> BTreeMap<SeriesKey, SeriesDelta> {
    let mut hold = SeriesDelta::new();
    for v in 1..=100 {
        hold.record(Metric::TtftFromSend, v * MS);
        hold.record(Metric::E2eFromSend, v * 10 * MS);
    }
    let c = hold.counters_mut();
    c.add(Count::Outcome(Outcome::Ok), 9);
    c.add(Count::Outcome(Outcome::Throttled), 1);
    c.add(
        Count::Tokens(UsageSource::ConverseUsage, TokenKind::Output),
        500,
    );
    c.add(
        Count::Tokens(UsageSource::ConverseUsage, TokenKind::Input),
        1_000,
    );
    // 0.003 USD over 10 requests.
    c.add(Count::CostPicoUsd, 3_000_000_000);
    let mut warmup = SeriesDelta::new();
    warmup.record(Metric::TtftFromSend, 60_000 * MS);
    warmup.counters_mut().add(Count::Outcome(Outcome::Ok), 1);
    BTreeMap::from([(key("hold"), hold), (key("warmup"), warmup)])
}

fn meta(thresholds: &[(&str, &str)]) -> RunMeta {
    RunMeta {
        schema_version: SCHEMA_VERSION,
        run_id: "20260101T000000Z-abcdef".to_owned(),
        started_at: "2026-01-01T00:00:00Z".to_owned(),
        spec: "spec.toml".to_owned(),
        stages: vec![
            StageRecord {
                name: "warmup".to_owned(),
                kind: quarry_engine::StageKind::Warmup,
                start_ns: 0,
                end_ns: 2_000 * MS,
            },
            StageRecord {
                name: "hold".to_owned(),
                kind: quarry_engine::StageKind::Hold,
                start_ns: 2_000 * MS,
                end_ns: 12_000 * MS,
            },
        ],
        interval_ns: 1_000 * MS,
        histogram: Default::default(),
        saturation_lag_p99_ns: 10 * MS,
        saturation_pool_wait_p99_ns: 10 * MS,
        saturation_cpu_share: 0.9,
        saturation_runtime_delay_p95_ns: 10_000_000,
        thresholds: thresholds
            .iter()
            .map(|(k, c)| ThresholdRule {
                key: (*k).to_owned(),
                condition: (*c).to_owned(),
            })
            .collect(),
    }
}

/// A document as a run writes it: assembled, then evaluated (its
/// thresholds checked against its figures).
fn document(thresholds: &[(&str, &str)]) -> ResultsDocument {
    let plan = parse_spec(Path::new("spec.toml"), SPEC).unwrap().plan;
    let mut doc = assemble(Assembly {
        meta: meta(thresholds),
        plan,
        end: RunEnd {
            ended: Ended::Completed,
            finished_at_ns: 12_500 * MS,
            sent: Some(11),
            overload: None,
        },
        series: &series(),
        health: &[HealthSample::default()],
        simulator: None,
        priced: &|_| true,
    })
    .unwrap();
    evaluate(&mut doc).unwrap();
    doc
}

/// The report of `doc`, from its figures computed once.
fn report_of(doc: &ResultsDocument) -> String {
    let figures = RunFigures::from_document(doc).unwrap();
    render_report(doc, &figures)
}

#[test]
fn percentiles_come_from_the_merged_measured_histogram() {
    let figures = RunFigures::from_document(&document(&[])).unwrap();
    let f = &figures.overall;
    let ms = |m, s| f.latency(m, s).unwrap().as_secs_f64() * 1e3;
    // HDR with 3 significant digits reports each value's bucket top.
    assert!((ms(LatencyMetric::Ttft, LatencyStat::P50) - 50.0).abs() < 0.05);
    assert!((ms(LatencyMetric::Ttft, LatencyStat::P99) - 99.0).abs() < 0.1);
    assert!((ms(LatencyMetric::Ttft, LatencyStat::Max) - 100.0).abs() < 0.1);
    assert!((ms(LatencyMetric::E2e, LatencyStat::P90) - 900.0).abs() < 1.0);
    // The 60 s warmup sample is excluded.
    assert_eq!(f.histogram(Metric::TtftFromSend).len(), 100);
    assert_eq!(
        figures.all_stages.histogram(Metric::TtftFromSend).len(),
        101
    );
    assert_eq!(f.window_ns, 10_000 * MS);
}

#[test]
fn rates_and_cost_arithmetic() {
    let figures = RunFigures::from_document(&document(&[])).unwrap();
    let f = &figures.overall;
    assert_eq!(f.requests(), 10);
    assert_eq!(f.scalar(ScalarMetric::Rps), Some(1.0));
    assert_eq!(f.scalar(ScalarMetric::ErrorRate), Some(0.1));
    assert_eq!(f.scalar(ScalarMetric::ThrottleRate), Some(0.1));
    assert_eq!(f.scalar(ScalarMetric::OutputTokensPerS), Some(50.0));
    assert!((f.cost_usd().unwrap() - 0.003).abs() < 1e-15);
    // 0.003 USD over 9 ok requests: the throttled one is not a divisor.
    assert!((f.cost_per_ok_request().unwrap() - 0.003 / 9.0).abs() < 1e-15);
    let per_1k = f.scalar(ScalarMetric::CostPer1kRequests).unwrap();
    assert!((per_1k - 3.0 / 9.0).abs() < 1e-12);
    assert_eq!(f.cost_failed_usd(), Some(0.0));
    let unpriced = Figures::new(f.delta.clone(), f.window_ns, false);
    assert_eq!(unpriced.scalar(ScalarMetric::CostPer1kRequests), None);
}

#[test]
fn thresholds_are_evaluated_into_the_document() {
    let doc = document(&[
        ("ttft.p99", "< 1ns"),
        ("error_rate", "< 20%"),
        ("tpot.p99", "< 1s"),
    ]);
    let verdicts: Vec<_> = doc.thresholds.iter().map(|t| t.passed).collect();
    assert_eq!(verdicts, [false, true, false]);
    assert_eq!(doc.thresholds[1].actual.as_deref(), Some("0.100000"));
    assert_eq!(doc.thresholds[2].actual, None);
    let report = report_of(&doc);
    assert!(
        report.contains("FAIL  ttft.p99 < 1ns (got 99.0ms)"),
        "{report}"
    );
    assert!(
        report.contains(
            "cost       $0.003000 total; $0.0003333 per successful request, $0.3333 per 1,000 (over 9 ok)\n           \
             throttled 1 cost $0 (refused at admission, no usage billed); other failures 0 cost $0"
        ),
        "{report}"
    );
    // The one throttled request is a quota wall, named as such.
    assert!(
        report.contains(
            "1 of 10 requests (10.00%) ended throttled: this run measured the account's quota wall"
        ),
        "{report}"
    );
    assert!(
        report.contains("  pacing after a throttle: none: each virtual user sent its next request as soon as a throttle returned"),
        "{report}"
    );
    assert!(report.contains("throttled 1 (10.00%)"), "{report}");
}

#[test]
fn results_document_round_trips_through_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let doc = document(&[("ttft.p99", "< 2s")]);
    crate::results::write_document(dir.path(), &doc).unwrap();
    let back = read_results(dir.path()).unwrap();
    assert_eq!(back, doc);
    assert_eq!(report_of(&back), report_of(&doc));
    // Series decode to exactly what was recorded.
    let (k, d) = back
        .series
        .iter()
        .find(|s| s.stage == "hold")
        .unwrap()
        .decode()
        .unwrap();
    assert_eq!(&d, &series()[&k]);
}

#[test]
fn a_run_without_results_json_is_recovered_from_its_intervals() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let plan = parse_spec(Path::new("spec.toml"), SPEC).unwrap().plan;
    let mut writer = ResultsWriter::create(&out, SPEC, &plan, &meta(&[])).unwrap();
    let all = series();
    for (i, (k, d)) in all.iter().enumerate() {
        let snapshot = IntervalSnapshot {
            index: i as u64,
            start: i as u64 * 1_000 * MS,
            end: (i as u64 + 1) * 1_000 * MS,
            series: BTreeMap::from([(k.clone(), d.clone())]),
            health: HealthSample::default(),
        };
        writer
            .append(&snapshot, interval_summary(&snapshot))
            .unwrap();
    }
    // A torn last line, as a crash mid-write leaves.
    let path = out.join(crate::results::INTERVALS_FILE);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("{\"index\":2,\"sta");
    std::fs::write(&path, text).unwrap();
    let doc = read_results(&out).unwrap();
    assert_eq!(doc, recover_results(&out).unwrap());
    assert_eq!(doc.end.ended, Ended::Recovered);
    assert_eq!(doc.end.finished_at_ns, 2_000 * MS);
    let decoded: BTreeMap<_, _> = doc.series.iter().map(|s| s.decode().unwrap()).collect();
    assert_eq!(decoded, all);
    assert_eq!(doc.health.intervals, 2);
}

#[test]
fn a_non_empty_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x"), "x").unwrap();
    let plan = parse_spec(Path::new("spec.toml"), SPEC).unwrap().plan;
    let err = ResultsWriter::create(dir.path(), SPEC, &plan, &meta(&[])).unwrap_err();
    assert!(err.to_string().contains("not empty"), "{err}");
}

/// `document` as a degraded two-group distributed run whose series all
/// belong to group `default`.
fn degraded_document() -> ResultsDocument {
    let mut doc = document(&[]);
    doc.end.ended = Ended::Degraded;
    let group = |name: &str, weight: f64, agents: &[&str]| GroupRecord {
        name: name.to_owned(),
        weight,
        region: Some("eu-west-1".to_owned()),
        account_alias: None,
        credential_profile: Some("team".to_owned()),
        agents: agents.iter().map(|a| (*a).to_owned()).collect(),
        planned: PlannedLoad {
            concurrency: Some(2),
            requests: Some(40),
            ..PlannedLoad::default()
        },
        counters: BTreeMap::new(),
    };
    doc.groups = vec![
        group("default", 2.0, &["a0", "a1"]),
        group("other", 1.0, &["b0"]),
    ];
    doc.partial_shares = vec![PartialShare {
        agent_id: "a1".to_owned(),
        address: "10.0.0.2:7400".to_owned(),
        group: "default".to_owned(),
        last_interval: Some(6),
        lost: true,
        reason: "agent lost after interval 7: connection refused".to_owned(),
    }];
    doc
}

#[test]
fn a_degraded_run_lists_its_partial_shares_and_groups() {
    let doc = degraded_document();
    let report = report_of(&doc);
    assert!(report.contains("ended: degraded after"), "{report}");
    assert!(
        report.contains("DEGRADED: 1 of 3 shares partial; every figure holds a partial share's data up to its last interval"),
        "{report}"
    );
    assert!(
        report.contains(
            "  PARTIAL share: agent a1 (10.0.0.2:7400, group default): lost, last interval 6: agent lost after interval 7: connection refused"
        ),
        "{report}"
    );
    assert!(
        report.contains("== Agent groups (measured stages) =="),
        "{report}"
    );
    assert!(
        report.contains(
            "default: weight 2 (66.7% of the load); 2 agents: a0, a1; region eu-west-1; profile team"
        ),
        "{report}"
    );
    assert!(
        report.contains("  planned    concurrency 2, requests 40"),
        "{report}"
    );
    // Group figures are the group's measured series: all of them here.
    assert!(report.contains("  requests   10 ended"), "{report}");
    // An in-process run has neither section.
    let plain = report_of(&document(&[]));
    assert!(
        !plain.contains("Agent groups") && !plain.contains("PARTIAL"),
        "{plain}"
    );
    assert!(!Ended::Degraded.is_complete());
}

#[test]
fn degraded_documents_round_trip_and_version_1_documents_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let doc = degraded_document();
    crate::results::write_document(dir.path(), &doc).unwrap();
    let back = read_results(dir.path()).unwrap();
    assert_eq!(back, doc);
    // A version-1 document has no groups or partial shares.
    let mut v1 = serde_json::to_value(document(&[])).unwrap();
    v1["schema_version"] = 1.into();
    let object = v1.as_object_mut().unwrap();
    object.remove("groups");
    object.remove("partial_shares");
    let old: ResultsDocument = serde_json::from_value(v1).unwrap();
    assert!(old.groups.is_empty() && old.partial_shares.is_empty());
    assert_eq!(SCHEMA_VERSION, 3);
}

/// A closed loop has no schedule lag; a generator saturated by its CPU or
/// its pool waits is still called saturated, and the report names the sign.
#[test]
fn saturation_names_the_sign_that_passed() {
    let plan = parse_spec(Path::new("spec.toml"), SPEC).unwrap().plan;
    let cpu_bound = HealthSample {
        cpu_percent: Some(191.0),
        saturated: true,
        saturation: quarry_engine::Saturation {
            cpu: true,
            ..Default::default()
        },
        ..HealthSample::default()
    };
    let pool_bound = HealthSample {
        pool_wait_p99_ns: 30 * MS,
        saturated: true,
        saturation: quarry_engine::Saturation {
            pool_wait: true,
            ..Default::default()
        },
        ..HealthSample::default()
    };
    let behind = HealthSample {
        runtime_delay_p95_ns: 17 * MS,
        saturated: true,
        saturation: quarry_engine::Saturation {
            runtime_delay: true,
            ..Default::default()
        },
        ..HealthSample::default()
    };
    let doc = assemble(Assembly {
        meta: meta(&[]),
        plan,
        end: RunEnd {
            ended: Ended::Completed,
            finished_at_ns: 12_500 * MS,
            sent: Some(11),
            overload: None,
        },
        series: &series(),
        health: &[
            HealthSample::default(),
            cpu_bound,
            cpu_bound,
            pool_bound,
            behind,
        ],
        simulator: None,
        priced: &|_| true,
    })
    .unwrap();
    assert_eq!(doc.health.saturated_intervals, 4);
    assert_eq!(
        (
            doc.health.saturated_by.cpu,
            doc.health.saturated_by.pool_wait,
            doc.health.saturated_by.runtime_delay
        ),
        (2, 1, 1)
    );
    assert_eq!(doc.health.runtime_delay_p95_max_ns, 17 * MS);
    let report = report_of(&doc);
    assert!(
        report.contains(
            "WARNING: saturated load generator in 4 of 5 intervals: \
             CPU, less idle deadline polling, passed 90% of the cores it may use in 2; \
             connection-pool-wait p99 passed 10.0ms in 1; \
             runtime-delay p95 passed 10.0ms in 1; its latencies describe this machine"
        ),
        "{report}"
    );
    assert!(
        report.contains("runtime delay p95 (worst interval) 17.0ms"),
        "{report}"
    );
    let healthy = report_of(&document(&[]));
    assert!(
        healthy.contains(
            "not saturated (schedule-lag p99 stayed under 10.0ms, CPU, less idle deadline polling, under 90% of the cores it may use, pool-wait p99 under 10.0ms, runtime-delay p95 under 10.0ms)"
        ),
        "{healthy}"
    );
}

/// A session run's document: two turns in `hold`, the sessions recorded in
/// turn 1's series, and the daily cap met once.
fn session_document() -> ResultsDocument {
    let spec = format!("{SPEC}[sessions]\nturns = 2\ncache = true\n");
    let plan = parse_spec(Path::new("spec.toml"), &spec).unwrap().plan;
    let turn = |k: u32| SeriesKey {
        turn: Some(k),
        ..key("hold")
    };
    let mut first = SeriesDelta::new();
    let mut second = SeriesDelta::new();
    for (delta, ttft_ms, input) in [(&mut first, 100, 1_000), (&mut second, 300, 1_500)] {
        for _ in 0..4 {
            delta.record(Metric::TtftFromSend, ttft_ms * MS);
            delta.record(Metric::E2eFromSend, 2 * ttft_ms * MS);
        }
        let c = delta.counters_mut();
        c.add(Count::Outcome(Outcome::Ok), 4);
        c.add(
            Count::Tokens(UsageSource::ConverseUsage, TokenKind::CacheRead),
            4 * input,
        );
    }
    second
        .counters_mut()
        .add(Count::Outcome(Outcome::DailyQuota), 1);
    first.counters_mut().add(Count::SessionsCompleted, 3);
    first.counters_mut().add(Count::SessionsFailed, 1);
    // Token counts below 2,048 are exact in the histograms (3 significant
    // digits), so the percentiles read back as recorded.
    for (duration_s, tokens) in [(10, 1_000), (20, 1_500), (30, 2_000)] {
        first.record(Metric::SessionDuration, duration_s * 1_000 * MS);
        first.record(Metric::SessionTokens, tokens);
        first.record(Metric::SessionCostNanoUsd, tokens * 3);
    }
    let series = BTreeMap::from([(turn(1), first), (turn(2), second)]);
    let mut doc = assemble(Assembly {
        meta: meta(&[]),
        plan,
        end: RunEnd {
            ended: Ended::Completed,
            finished_at_ns: 12_500 * MS,
            sent: Some(9),
            overload: None,
        },
        series: &series,
        health: &[HealthSample::default()],
        simulator: None,
        priced: &|_| true,
    })
    .unwrap();
    doc.walls_met = vec![crate::results::WallMet {
        wall: "tokens_per_day".to_owned(),
        interval: 7,
        interval_start_ns: 7_000 * MS,
        interval_end_ns: 8_000 * MS,
        throttles_in_interval: 1,
        quota_settled_before: 2_500_000,
        quota_settled_through: 2_590_000,
        tokens_before: 9_000_000,
    }];
    evaluate(&mut doc).unwrap();
    doc
}

#[test]
fn a_session_run_reports_per_turn_and_per_session_and_when_the_cap_was_met() {
    let doc = session_document();
    let figures = RunFigures::from_document(&doc).unwrap();
    // The turns are one series in the per-series sections, and apart by turn.
    assert_eq!(figures.series.len(), 1);
    assert_eq!(figures.series[0].figures.requests(), 9);
    let turns: Vec<(u32, u64)> = figures
        .turns
        .iter()
        .map(|(k, f)| (*k, f.requests()))
        .collect();
    assert_eq!(turns, [(1, 4), (2, 5)]);
    let report = render_report(&doc, &figures);
    for want in [
        "== Sessions",
        "4 started: 3 completed, 1 failed",
        "plan: turns 2; think time none; conversation cache points on",
        "duration (first send to last answer, think time included) p50 20.0s",
        "tokens (input, cache read and write, output, as reported) p50 1,500",
        "first met the daily token cap (TPD): in the interval 7.00s–8.00s into the run (1 throttles named it), with between 2,500,000 and 2,590,000 quota tokens settled",
    ] {
        assert!(report.contains(want), "{want:?} not in:\n{report}");
    }
    // The per-turn table: turn, requests, ok, TTFT p50 ..., mean input.
    let table = &report[report.find("turn  requests").expect("the per-turn table")..];
    let row = |k: &str| {
        table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(k))
            .unwrap_or_else(|| panic!("turn {k} row:\n{report}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert!(row("1").starts_with("1 4 4 100ms"), "{}", row("1"));
    assert!(row("2").starts_with("2 5 4 300ms"), "{}", row("2"));
    assert!(row("2").contains("1,500 1,500"), "{}", row("2"));
    // The JSON report and the page carry the same.
    let json = json::RunReport::of(&doc, &figures);
    let sessions = json.sessions.as_ref().unwrap();
    assert_eq!((sessions.completed, sessions.failed), (3, 1));
    assert_eq!(sessions.tokens.unwrap().p50_ns, 1_500);
    let labels: Vec<&str> = json.turns.iter().map(|t| t.label.as_str()).collect();
    assert_eq!(labels, ["turn 1", "turn 2"]);
    let page = html::run_page(&doc, &figures, &report, &[]).render();
    assert!(page.contains("sessions-turns"), "the turn chart is drawn");
}
