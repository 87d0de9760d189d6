//! Comparisons of hand-built results directories: figures and their
//! differences, the verdicts, the kinds of input, and the errors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use quarry_bedrock::{Operation, Outcome, UsageSource};
use quarry_engine::{Count, HealthSample, Metric, SeriesDelta, SeriesKey, StageKind, TokenKind};

use super::*;
use crate::results::{
    Assembly, Ended, RunEnd, RunMeta, SCHEMA_VERSION, StageRecord, assemble, write_document,
};
use crate::spec::parse_spec;

const MS: u64 = 1_000_000;

const SPEC: &str = r#"
seed = 3
[load]
concurrency = 2
duration = "10s"

[[workload]]
model = "meta.llama3-3-70b-instruct-v1:0"
input_tokens = 100
max_tokens = 50
"#;

/// A run of 1,000 ok streaming requests in a 10 s hold: TTFT spread over
/// 20–60 ms (times `scale`), E2E ten times that; `throttled` more.
fn write_run(dir: &Path, scale: f64, throttled: u64) {
    let mut hold = SeriesDelta::new();
    for i in 0..1_000u64 {
        // A deterministic spread: 20 ms plus a quadratic residue.
        let ttft = ((20.0 + ((i * i * 7919) % 1_000) as f64 * 0.04) * scale * MS as f64) as u64;
        hold.record(Metric::TtftFromSend, ttft);
        hold.record(Metric::E2eFromSend, ttft * 10);
        hold.record(Metric::Tpot, ttft / 10);
    }
    let c = hold.counters_mut();
    c.add(Count::Outcome(Outcome::Ok), 1_000);
    c.add(Count::Outcome(Outcome::Throttled), throttled);
    c.add(
        Count::Tokens(UsageSource::ConverseUsage, TokenKind::Output),
        50_000,
    );
    c.add(Count::CostPicoUsd, 1_000_000_000_000);
    let key = SeriesKey {
        group: Arc::from("default"),
        model: Arc::from("meta.llama3-3-70b-instruct-v1:0"),
        operation: Some(Operation::ConverseStream),
        stage: Arc::from("hold"),
        tier: None,
        turn: None,
    };
    let meta = RunMeta {
        schema_version: SCHEMA_VERSION,
        run_id: format!(
            "20260101T000000Z-{:06}",
            (scale * 1000.0) as u64 + throttled
        ),
        started_at: "2026-01-01T00:00:00Z".to_owned(),
        spec: "spec.toml".to_owned(),
        stages: vec![StageRecord {
            name: "hold".to_owned(),
            kind: StageKind::Hold,
            start_ns: 0,
            end_ns: 10_000 * MS,
        }],
        interval_ns: 1_000 * MS,
        histogram: Default::default(),
        saturation_lag_p99_ns: 10 * MS,
        saturation_pool_wait_p99_ns: 10 * MS,
        saturation_cpu_share: 0.9,
        saturation_runtime_delay_p95_ns: 10_000_000,
        thresholds: Vec::new(),
    };
    let doc = assemble(Assembly {
        meta,
        plan: parse_spec(Path::new("spec.toml"), SPEC).unwrap().plan,
        end: RunEnd {
            ended: Ended::Completed,
            finished_at_ns: 10_000 * MS,
            sent: None,
            overload: None,
        },
        series: &BTreeMap::from([(key, hold)]),
        health: &[HealthSample::default()],
        simulator: None,
        priced: &|_| true,
    })
    .unwrap();
    std::fs::create_dir_all(dir).unwrap();
    write_document(dir, &doc).unwrap();
}

fn runs(specs: &[(f64, u64)]) -> (tempfile::TempDir, Vec<PathBuf>) {
    let tmp = tempfile::tempdir().unwrap();
    let dirs: Vec<PathBuf> = specs
        .iter()
        .enumerate()
        .map(|(i, (scale, throttled))| {
            let d = tmp.path().join(format!("run{i}"));
            write_run(&d, *scale, *throttled);
            d
        })
        .collect();
    (tmp, dirs)
}

fn row<'a>(r: &'a RunComparison, metric: &str, p: f64) -> &'a PercentileRow {
    r.percentiles
        .iter()
        .find(|x| x.metric == metric && x.percentile == p)
        .unwrap()
}

#[test]
fn identical_runs_differ_in_nothing() {
    let (_tmp, dirs) = runs(&[(1.0, 0), (1.0, 0)]);
    let c = compare(&dirs, &Method::default()).unwrap();
    assert_eq!(c.kind, InputKind::Run);
    let r = c.comparisons[0].run.as_ref().unwrap();
    assert!(r.slower.is_empty() && r.faster.is_empty(), "{r:?}");
    for p in &r.percentiles {
        match p.metric.as_str() {
            // Streaming figures: ITL was not recorded.
            "itl" => assert_eq!(p.significance, Significance::NotJudged),
            _ => {
                assert_eq!(p.significance, Significance::NoSignificantDifference);
                assert_eq!(p.difference_ns, Some(0));
                let [lo, hi] = p.interval_ns.unwrap();
                assert!(lo <= 0 && hi >= 0);
            }
        }
    }
    assert!(!c.regressed());
    let text = render_text(&c);
    assert!(
        text.contains("verdict: no significant difference in any judged latency percentile (12 percentiles judged, 4 not)"),
        "{text}"
    );
}

#[test]
fn a_doubled_run_is_slower_with_its_figures_and_differences() {
    let (_tmp, dirs) = runs(&[(1.0, 0), (2.0, 250), (0.5, 0)]);
    let c = compare(&dirs, &Method::default()).unwrap();
    assert_eq!(c.comparisons.len(), 2);
    let slow = c.comparisons[0].run.as_ref().unwrap();
    assert_eq!(
        slow.slower,
        [
            "ttft p50", "ttft p90", "ttft p95", "ttft p99", "e2e p50", "e2e p90", "e2e p95",
            "e2e p99", "tpot p50", "tpot p90", "tpot p95", "tpot p99"
        ]
    );
    let p50 = row(slow, "ttft", 50.0);
    let (a, b) = (p50.baseline_ns.unwrap(), p50.candidate_ns.unwrap());
    assert!((b as f64 / a as f64 - 2.0).abs() < 0.01, "{p50:?}");
    assert_eq!(p50.baseline_n, 1_000);
    let fig = |key: &str| slow.figures.iter().find(|f| f.key == key).unwrap();
    assert_eq!(fig("requests").baseline, Some(1_000.0));
    assert_eq!(fig("requests").candidate, Some(1_250.0));
    assert_eq!(fig("throttled").difference, Some(250.0));
    assert_eq!(fig("throttle_rate").candidate, Some(0.2));
    assert_eq!(fig("requests_per_s").relative, Some(0.25));
    assert_eq!(fig("cost_per_ok_request_usd").baseline, Some(1.0 / 1_000.0));
    let fast = c.comparisons[1].run.as_ref().unwrap();
    assert_eq!(fast.faster.len(), 12);
    assert!(fast.slower.is_empty());
    assert!(c.regressed());
    let text = render_text(&c);
    assert!(text.contains("== B vs A =="), "{text}");
    assert!(text.contains("== C vs A =="), "{text}");
    assert!(
        text.contains("verdict: B is significantly SLOWER at TTFT p50, TTFT p90"),
        "{text}"
    );
    assert!(
        text.contains("verdict: C is significantly FASTER at TTFT p50"),
        "{text}"
    );
    // The JSON round-trips.
    let back: Comparison = serde_json::from_str(&c.to_json()).unwrap();
    assert_eq!(back, c);
}

#[test]
fn kinds_are_detected_and_never_mixed() {
    let (tmp, dirs) = runs(&[(1.0, 0)]);
    let sweep = tmp.path().join("sweep");
    std::fs::create_dir_all(&sweep).unwrap();
    std::fs::write(sweep.join("sweep.json"), "{}").unwrap();
    assert_eq!(detect(&dirs[0]).unwrap(), InputKind::Run);
    assert_eq!(detect(&sweep).unwrap(), InputKind::Sweep);
    let e = compare(&[dirs[0].clone(), sweep.clone()], &Method::default()).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(
        e.to_string().starts_with(&format!(
            "{}: a sweep directory cannot be compared with a run's results directory",
            sweep.display()
        )),
        "{e}"
    );
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let e = compare(&[dirs[0].clone(), empty.clone()], &Method::default()).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(
        e.to_string()
            .contains(&format!("{}: neither", empty.display()))
    );
    let e = compare(&[dirs[0].clone()], &Method::default()).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    // A sweep.json that does not parse is unreadable, named with its line.
    let e = compare(&[sweep.clone(), sweep.clone()], &Method::default()).unwrap_err();
    assert_eq!(e.exit_code(), 3);
    assert!(
        e.to_string().starts_with(&format!(
            "{}: missing field",
            sweep.join("sweep.json").display()
        )),
        "{e}"
    );
    assert!(e.to_string().contains("line 1"), "{e}");
}

#[test]
fn a_broken_results_file_is_unreadable_and_named() {
    let (_tmp, dirs) = runs(&[(1.0, 0), (1.0, 0)]);
    let path = dirs[1].join("results.json");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("\"schema_version\": 3", "\"schema_version\": 99"),
    )
    .unwrap();
    let e = compare(&dirs, &Method::default()).unwrap_err();
    assert_eq!(e.exit_code(), 3);
    assert!(
        e.to_string()
            .contains(&format!("{}: schema_version 99", path.display())),
        "{e}"
    );
}

#[test]
fn figure_rows_say_nothing_relative_to_zero() {
    let r = FigureRow::new("throttled", "t", "requests", Some(0.0), Some(5.0));
    assert_eq!(r.difference, Some(5.0));
    assert_eq!(r.relative, None);
    let r = FigureRow::new("cost_usd", "c", "USD", None, Some(5.0));
    assert_eq!(r.difference, None);
}
