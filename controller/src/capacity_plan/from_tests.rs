//! The `--from` loader on results directories written from hand-built
//! documents (the same writer `quarry run` uses).

use std::collections::BTreeMap;
use std::sync::Arc;

use quarry_bedrock::{Operation, Outcome, UsageSource};
use quarry_engine::{Count, HealthSample, Metric, SeriesDelta, SeriesKey, StageKind, TokenKind};

use super::*;
use crate::results::{
    Assembly, RunEnd, RunMeta, SCHEMA_VERSION, StageRecord, assemble, write_document,
};
use crate::spec::parse_spec;

const MS: u64 = 1_000_000;
const SONNET: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";

fn spec(concurrency: u32, model: &str) -> String {
    format!(
        r#"
[load]
concurrency = {concurrency}
warmup = "1s"
duration = "10s"

[[workload]]
model = "{model}"
input_tokens = 1000
max_tokens = 256
"#
    )
}

/// What one hand-built run measured in its 10 s hold.
struct Shape {
    concurrency: u32,
    model: &'static str,
    ok: u64,
    throttled: u64,
    ended: Ended,
}

impl Shape {
    fn ok(concurrency: u32, ok: u64, throttled: u64) -> Self {
        Shape {
            concurrency,
            model: SONNET,
            ok,
            throttled,
            ended: Ended::Completed,
        }
    }
}

/// Writes a results directory: `ok` successful requests (1,000 input, 200
/// output tokens each, TTFT 1..=ok ms × concurrency) and `throttled` throttled
/// ones in a 10 s hold.
fn write_run(dir: &Path, shape: &Shape) {
    std::fs::create_dir_all(dir).unwrap();
    let plan = parse_spec(
        Path::new("spec.toml"),
        &spec(shape.concurrency, shape.model),
    )
    .unwrap()
    .plan;
    let mut hold = SeriesDelta::new();
    for v in 1..=shape.ok {
        hold.record(Metric::TtftFromSend, v * u64::from(shape.concurrency) * MS);
        hold.record(Metric::E2eFromSend, 2_000 * MS);
        hold.record(Metric::OutputMilliTokensPerS, 100_000);
    }
    let c = hold.counters_mut();
    c.add(Count::Outcome(Outcome::Ok), shape.ok);
    c.add(Count::Outcome(Outcome::Throttled), shape.throttled);
    c.add(
        Count::Tokens(UsageSource::ConverseUsage, TokenKind::Input),
        1_000 * shape.ok,
    );
    c.add(
        Count::Tokens(UsageSource::ConverseUsage, TokenKind::Output),
        200 * shape.ok,
    );
    let key = SeriesKey {
        group: Arc::from("default"),
        model: Arc::from(shape.model),
        operation: Some(Operation::ConverseStream),
        stage: Arc::from("hold"),
        tier: None,
        turn: None,
    };
    let stage = |name: &str, kind, start: u64, end: u64| StageRecord {
        name: name.to_owned(),
        kind,
        start_ns: start * MS,
        end_ns: end * MS,
    };
    let doc = assemble(Assembly {
        meta: RunMeta {
            schema_version: SCHEMA_VERSION,
            run_id: format!("run-c{}", shape.concurrency),
            started_at: "2026-01-01T00:00:00Z".to_owned(),
            spec: "spec.toml".to_owned(),
            stages: vec![
                stage("warmup", StageKind::Warmup, 0, 1_000),
                stage("hold", StageKind::Hold, 1_000, 11_000),
            ],
            interval_ns: 1_000 * MS,
            histogram: Default::default(),
            saturation_lag_p99_ns: 10 * MS,
            saturation_pool_wait_p99_ns: 10 * MS,
            saturation_cpu_share: 0.9,
            saturation_runtime_delay_p95_ns: 10 * MS,
            thresholds: Vec::new(),
        },
        plan,
        end: RunEnd {
            ended: shape.ended,
            finished_at_ns: 11_000 * MS,
            sent: Some(shape.ok + shape.throttled),
            overload: None,
        },
        series: &BTreeMap::from([(key, hold)]),
        health: &[HealthSample::default()],
        simulator: None,
        priced: &|_| true,
    })
    .unwrap();
    write_document(dir, &doc).unwrap();
}

fn unusable_file(e: FromError) -> (PathBuf, String) {
    match e {
        FromError::Unusable { file, why } => (file, why),
        other => panic!("expected Unusable, got {other}"),
    }
}

#[test]
fn a_run_gives_a_demand_profile_and_a_one_level_curve_citing_its_requests() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("chat-run");
    write_run(&dir, &Shape::ok(4, 90, 10));
    let loaded = load_from(std::slice::from_ref(&dir)).unwrap();

    let [demand] = loaded.measured.demand.as_slice() else {
        panic!("one profile: {:?}", loaded.measured.demand)
    };
    assert_eq!(demand.label, "chat-run");
    assert_eq!(demand.model.as_deref(), Some(SONNET));
    // 100 requests over the 10 s hold: 600 a minute; tokens per successful request.
    assert_eq!(demand.requests, 100);
    assert_eq!(demand.duration_s, 10.0);
    assert_eq!(demand.average_rpm, Some(600.0));
    assert_eq!(demand.peak_rpm, Some(600.0));
    assert_eq!(demand.input_tokens.mean, 1_000.0);
    assert_eq!(demand.output_tokens.mean, 200.0);
    assert_eq!(demand.max_tokens, Some(256));
    assert_eq!(demand.cache_read_tokens, None);
    let e2e = demand.mean_e2e_seconds.unwrap();
    assert!((e2e - 2.0).abs() < 0.01, "{e2e}");
    // Which run, over which requests.
    for part in [
        dir.display().to_string(),
        "run run-c4".to_owned(),
        "100 requests ended (90 ok) in measured stages hold over 10 s".to_owned(),
    ] {
        assert!(
            demand.source.contains(&part),
            "{part:?} in {}",
            demand.source
        );
    }

    let [curve] = loaded.measured.curves.as_slice() else {
        panic!("one curve: {:?}", loaded.measured.curves)
    };
    assert_eq!(curve.model, SONNET);
    assert_eq!(curve.variable, LoadVariable::Concurrency);
    let [level] = curve.levels.as_slice() else {
        panic!("one level")
    };
    assert_eq!(level.offered, 4.0);
    assert_eq!(level.requests, 100);
    assert_eq!(level.achieved_rps, 9.0);
    assert_eq!(level.throttle_rate, 0.1);
    assert_eq!(level.error_rate, 0.0);
    assert_eq!(level.output_tokens_per_s, Some(1_800.0));
    // 100,000 milli-tokens/s, read back within HDR's 3 significant digits.
    let per_stream = level.output_tokens_per_s_per_stream.unwrap();
    assert!((per_stream - 100.0).abs() < 0.1, "{per_stream}");
    // TTFT 4..=360 ms in steps of 4: the median is 180 ms (HDR bucket top).
    let p50 = level.ttft_ms.p50.unwrap();
    assert!((p50 - 180.0).abs() < 0.5, "{p50}");
    assert!(level.source.as_deref().unwrap().contains("run run-c4"));
    let shape = curve.request.unwrap();
    assert_eq!((shape.input_tokens, shape.output_tokens), (1_000.0, 200.0));
}

#[test]
fn a_sweep_directory_gives_one_curve_a_level_per_level_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let sweep = tmp.path().join("sweep-sonnet");
    write_run(&sweep.join("levels/01-concurrency-1"), &Shape::ok(1, 20, 0));
    write_run(
        &sweep.join("levels/02-concurrency-8"),
        &Shape::ok(8, 50, 50),
    );
    // sweep.json's contents are not read.
    std::fs::write(sweep.join("sweep.json"), "not json").unwrap();
    let run = tmp.path().join("a-run");
    write_run(&run, &Shape::ok(2, 10, 0));
    // The run first on the command line; the sweep's curve still comes first.
    let loaded = load_from(&[run.clone(), sweep.clone()]).unwrap();
    let labels: Vec<&str> = loaded
        .measured
        .curves
        .iter()
        .map(|c| c.label.as_str())
        .collect();
    assert_eq!(labels, ["sweep-sonnet", "a-run"]);
    let curve = &loaded.measured.curves[0];
    assert_eq!(curve.variable, LoadVariable::Concurrency);
    let offered: Vec<f64> = curve.levels.iter().map(|l| l.offered).collect();
    assert_eq!(offered, [1.0, 8.0]);
    assert_eq!(curve.levels[1].throttle_rate, 0.5);
    assert_eq!(curve.levels[1].achieved_rps, 5.0);
    for (level, dir) in curve
        .levels
        .iter()
        .zip(["01-concurrency-1", "02-concurrency-8"])
    {
        let source = level.source.as_deref().unwrap();
        assert!(source.contains(dir), "{source}");
    }
    assert!(
        curve.source.contains("2 levels (120 requests ended"),
        "{}",
        curve.source
    );
    // Only the run gives a demand profile.
    assert_eq!(loaded.measured.demand.len(), 1);
    assert_eq!(loaded.measured.demand[0].label, "a-run");
}

#[test]
fn a_level_where_everything_failed_is_kept_on_the_curve_and_said() {
    let tmp = tempfile::tempdir().unwrap();
    let sweep = tmp.path().join("sweep");
    write_run(&sweep.join("levels/01-concurrency-1"), &Shape::ok(1, 20, 0));
    write_run(
        &sweep.join("levels/02-concurrency-64"),
        &Shape::ok(64, 0, 80),
    );
    let loaded = load_from(&[sweep]).unwrap();
    let top = &loaded.measured.curves[0].levels[1];
    assert_eq!((top.achieved_rps, top.throttle_rate), (0.0, 1.0));
    assert!(
        loaded.notes.iter().any(|n| n.contains("02-concurrency-64")
            && n.contains("every one of the level's 80 requests failed")),
        "{:?}",
        loaded.notes
    );
}

#[test]
fn a_run_where_everything_failed_is_refused_as_a_demand_profile() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("throttled");
    write_run(&dir, &Shape::ok(4, 0, 30));
    let (file, why) = unusable_file(load_from(std::slice::from_ref(&dir)).unwrap_err());
    assert_eq!(file, dir.join(RESULTS_FILE));
    assert!(
        why.contains("every one of its 30 measured requests failed"),
        "{why}"
    );
}

#[test]
fn incomplete_and_empty_runs_are_refused_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let stopped = tmp.path().join("stopped");
    write_run(
        &stopped,
        &Shape {
            ended: Ended::Stopped,
            ..Shape::ok(4, 10, 0)
        },
    );
    let err = load_from(std::slice::from_ref(&stopped)).unwrap_err();
    let text = err.to_string();
    let (file, why) = unusable_file(err);
    assert_eq!(file, stopped.join(RESULTS_FILE));
    assert!(why.contains("did not complete (ended: stopped)"), "{why}");
    assert!(text.contains("stopped/results.json"), "{text}");

    let empty = tmp.path().join("empty");
    write_run(&empty, &Shape::ok(4, 0, 0));
    let (file, why) = unusable_file(load_from(std::slice::from_ref(&empty)).unwrap_err());
    assert_eq!(file, empty.join(RESULTS_FILE));
    assert!(why.contains("measured nothing"), "{why}");

    // A degraded sweep level refuses the whole sweep.
    let sweep = tmp.path().join("sweep");
    write_run(&sweep.join("levels/01-concurrency-1"), &Shape::ok(1, 20, 0));
    let degraded = sweep.join("levels/02-concurrency-2");
    write_run(
        &degraded,
        &Shape {
            ended: Ended::Degraded,
            ..Shape::ok(2, 20, 0)
        },
    );
    let (file, _) = unusable_file(load_from(&[sweep]).unwrap_err());
    assert_eq!(file, degraded.join(RESULTS_FILE));
}

#[test]
fn what_is_not_a_measurement_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope");
    assert!(matches!(
        load_from(&[missing]).unwrap_err(),
        FromError::NotADirectory(_)
    ));
    let plain = tmp.path().join("plain");
    std::fs::create_dir_all(plain.join("levels/01-x")).unwrap();
    let err = load_from(std::slice::from_ref(&plain)).unwrap_err();
    assert!(
        matches!(err, FromError::NotMeasurement(ref d) if *d == plain),
        "{err}"
    );

    // A sweep with a level that never finished.
    let sweep = tmp.path().join("sweep");
    write_run(&sweep.join("levels/01-concurrency-1"), &Shape::ok(1, 20, 0));
    std::fs::create_dir_all(sweep.join("levels/02-concurrency-2")).unwrap();
    let (file, why) = unusable_file(load_from(&[sweep]).unwrap_err());
    assert_eq!(
        file,
        tmp.path()
            .join("sweep/levels/02-concurrency-2/results.json")
    );
    assert!(why.contains("did not finish"), "{why}");

    // Levels of different models are not one curve.
    let mixed = tmp.path().join("mixed");
    write_run(&mixed.join("levels/01-concurrency-1"), &Shape::ok(1, 20, 0));
    let llama = mixed.join("levels/02-concurrency-2");
    write_run(
        &llama,
        &Shape {
            model: "meta.llama3-3-70b-instruct-v1:0",
            ..Shape::ok(2, 20, 0)
        },
    );
    let (file, why) = unusable_file(load_from(&[mixed]).unwrap_err());
    assert_eq!(file, llama.join(RESULTS_FILE));
    assert!(why.contains("a curve is of one model"), "{why}");

    // Two inputs with one name.
    let a = tmp.path().join("a/run");
    let b = tmp.path().join("b/run");
    write_run(&a, &Shape::ok(1, 5, 0));
    write_run(&b, &Shape::ok(1, 5, 0));
    assert!(matches!(
        load_from(&[a, b]).unwrap_err(),
        FromError::DuplicateLabel { .. }
    ));
}

#[test]
fn a_class_naming_a_run_takes_what_it_does_not_enter_from_it_citing_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("chat-run");
    write_run(&dir, &Shape::ok(4, 90, 10));
    let loaded = load_from(std::slice::from_ref(&dir)).unwrap();
    let plan_file = format!(
        r#"
[[class]]
name = "chat"
measured = "chat-run"
output_tokens = 300
models = ["{SONNET}"]
"#
    );
    let mut input = quarry_capacity::parse_plan_file("PLAN.toml", &plan_file).unwrap();
    input.measured = loaded.measured;
    let plan = quarry_capacity::plan(&input);
    let chat = &plan.classes[0];
    // Rate and input tokens from the run; output tokens as entered.
    assert_eq!(chat.peak_rpm.value, 600.0);
    assert_eq!(chat.peak_rpm.basis, quarry_capacity::Basis::Measured);
    assert_eq!(chat.input_tokens.value, 1_000.0);
    assert_eq!(chat.input_tokens.basis, quarry_capacity::Basis::Measured);
    assert_eq!(chat.output_tokens.basis, quarry_capacity::Basis::Entered);
    let cited = plan
        .sources
        .iter()
        .find(|s| chat.peak_rpm.from.contains(&s.id))
        .expect("the rate cites its source");
    let at = cited.location.as_deref().unwrap();
    assert!(
        at.contains("run run-c4") && at.contains("100 requests ended (90 ok)"),
        "{at}"
    );
}

/// A level `quarry sweep` ran again longer counts once (its `-extended`
/// run); a level stopped as over-saturated is kept in a sweep (the finding)
/// but refused as a lone run.
#[test]
fn extended_levels_count_once_and_overloaded_levels_stay_in_a_sweep() {
    let tmp = tempfile::tempdir().unwrap();
    let sweep = tmp.path().join("sweep");
    write_run(&sweep.join("levels/00-concurrency-1"), &Shape::ok(1, 5, 0));
    write_run(
        &sweep.join("levels/00-concurrency-1-extended"),
        &Shape::ok(1, 30, 0),
    );
    let overloaded = sweep.join("levels/01-concurrency-8");
    write_run(
        &overloaded,
        &Shape {
            ended: Ended::Overloaded,
            ..Shape::ok(8, 40, 0)
        },
    );
    let loaded = load_from(std::slice::from_ref(&sweep)).unwrap();
    let curve = &loaded.measured.curves[0];
    let levels: Vec<(f64, u64)> = curve
        .levels
        .iter()
        .map(|l| (l.offered, l.requests))
        .collect();
    assert_eq!(levels, [(1.0, 30), (8.0, 40)]);
    assert!(
        curve.levels[0]
            .source
            .as_deref()
            .is_some_and(|s| s.contains("00-concurrency-1-extended")),
        "{:?}",
        curve.levels[0].source
    );
    assert!(
        loaded.notes.iter().any(|n| n.contains("over-saturated")),
        "{:?}",
        loaded.notes
    );
    let (file, why) = unusable_file(load_from(std::slice::from_ref(&overloaded)).unwrap_err());
    assert_eq!(file, overloaded.join(RESULTS_FILE));
    assert!(why.contains("ended: overloaded"), "{why}");
}
