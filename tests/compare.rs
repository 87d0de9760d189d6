//! `quarry compare` end to end, on real runs and sweeps of the `quarry`
//! binary against its embedded simulator (a seeded, jittered latency
//! model from a simulator config the spec names): two runs of one spec and
//! seed come out "no significant difference"; a simulator twice as slow is
//! flagged at TTFT (and exits 1 under `--fail-on-regression`); two sweeps
//! compared level by level with their feasible maximum; inputs that cannot
//! be compared exit 2 or 3 naming the path.
//!
//! Latencies are 150 ms to the first token and 30 ms a token (±30%
//! jitter) so that a loaded machine's timer slack (a few ms) stays well
//! under the 10% floor the method holds a difference to.

use std::path::{Path, PathBuf};
use std::process::Output;

use quarry_e2e::procs::{quarry, text};
use serde_json::Value;

/// The embedded simulator: a contended latency model with no contention
/// (the same latency at any load), seeded ±30% jitter, `scale` times the
/// base latencies; quotas far above what the tests send.
fn sim(scale: f64, ttft_ms: f64, gap_ms: f64) -> String {
    format!(
        r#"seed = 11
default_account = false
latency = {{ kind = "contended", base_ttft_ms = {ttft}, prefill_tokens_per_s = 1000000.0, gap_ms = {gap}, gap_per_stream_ms = 0.0, gap_per_context_token_ms = 0.0, capacity = 1000, jitter = 0.3 }}
[[accounts]]
access_key_id = "AKIDEXAMPLE"
secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
account_id = "123456789012"
quotas = {{ tpm = 100000000, rpm = 1000000 }}
"#,
        ttft = ttft_ms * scale,
        gap = gap_ms * scale
    )
}

const WORKLOAD: &str = r#"
[[workload]]
model = "meta.llama3-3-70b-instruct-v1:0"
operation = "ConverseStream"
input_tokens = 100
max_tokens = 3
"#;

/// 400 requests over 50 users: p50, p90 and p95 are judged (p99 needs
/// 500 values).
fn run_spec() -> String {
    format!(
        "seed = 5\n[target]\nkind = \"sim\"\nsim_profile = \"sim.toml\"\n\n[load]\nconcurrency = 50\nrequests = 400\n{WORKLOAD}"
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Writes `spec` and `sim` into a fresh `work/<name>/` and runs `args`
/// (`run` or `sweep`) on it into `work/<name>/out`; asserts exit 0.
fn ran(work: &Path, name: &str, command: &str, spec: &str, sim: &str) -> PathBuf {
    let dir = work.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("sim.toml"), sim).unwrap();
    std::fs::write(dir.join("spec.toml"), spec).unwrap();
    let out = dir.join("out");
    let o = quarry(
        &[
            command,
            "spec.toml",
            "--out",
            s(&out),
            "--interval-secs",
            "0.5",
            "--grace-secs",
            "5",
        ],
        &dir,
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{command} {name}: stdout:\n{}\nstderr:\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    out
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", text(&o.stdout), text(&o.stderr)))
}

/// The percentile row of `metric` at `p` in a run comparison.
fn row<'a>(run: &'a Value, metric: &str, p: f64) -> &'a Value {
    run["percentiles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["metric"] == metric && r["percentile"].as_f64() == Some(p))
        .unwrap()
}

#[test]
fn same_seed_runs_do_not_differ_and_a_slower_simulator_is_flagged() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let a = ran(work, "a", "run", &run_spec(), &sim(1.0, 150.0, 30.0));
    let again = ran(work, "again", "run", &run_spec(), &sim(1.0, 150.0, 30.0));
    let slow = ran(work, "slow", "run", &run_spec(), &sim(2.0, 150.0, 30.0));

    // Text: the method stated, the verdict said.
    let o = quarry(&["compare", s(&a), s(&again)], work);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}{}", text(&o.stderr));
    assert!(out.contains("method (latency percentiles"), "{out}");
    assert!(
        out.contains("percentile bootstrap over each run's merged HDR histogram"),
        "{out}"
    );
    assert!(
        out.contains("verdict: no significant difference in any judged latency percentile"),
        "{out}"
    );

    // JSON, three ways: the same run again, and the slower simulator.
    let o = quarry(
        &["compare", s(&a), s(&again), s(&slow), "--format", "json"],
        work,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let doc = json(&o);
    assert_eq!(doc["schema"], "quarry.compare/1");
    assert_eq!(doc["kind"], "run");
    let same = &doc["comparisons"][0]["run"];
    assert_eq!(same["baseline"]["seed"], 5);
    assert_eq!(same["slower"], serde_json::json!([]), "{same:#}");
    assert_eq!(same["faster"], serde_json::json!([]), "{same:#}");
    let requests = |run: &Value, side: &str| {
        run["figures"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["key"] == "ok")
            .unwrap()[side]
            .as_f64()
    };
    assert_eq!(requests(same, "baseline"), Some(400.0));
    assert_eq!(requests(same, "candidate"), Some(400.0));
    for p in [50.0, 90.0, 95.0] {
        let r = row(same, "ttft", p);
        assert_eq!(r["significance"], "no_significant_difference", "{r:#}");
        assert_eq!(r["baseline_n"], 400);
    }
    let r = row(same, "ttft", 99.0);
    assert_eq!(r["significance"], "not_judged", "{r:#}");

    let slower = &doc["comparisons"][1]["run"];
    for p in [50.0, 90.0, 95.0] {
        let r = row(slower, "ttft", p);
        assert_eq!(r["significance"], "higher", "{r:#}");
        let rel = r["relative"].as_f64().unwrap();
        assert!((0.7..1.3).contains(&rel), "about twice: {r:#}");
        let [lo, hi] = [r["interval_ns"][0].as_i64(), r["interval_ns"][1].as_i64()];
        assert!(lo.unwrap() > 0 && hi.unwrap() >= lo.unwrap(), "{r:#}");
    }
    assert!(
        slower["slower"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("ttft p50")),
        "{slower:#}"
    );

    // CI: a regression exits 1, the same run again 0.
    let o = quarry(&["compare", s(&a), s(&slow), "--fail-on-regression"], work);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("verdict: B is significantly SLOWER at TTFT p50"),
        "{out}"
    );
    assert!(text(&o.stderr).contains("a significant regression"));
    let o = quarry(&["compare", s(&a), s(&again), "--fail-on-regression"], work);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stdout));
    // The other way round, the slow run is the baseline: faster, exit 0.
    let o = quarry(&["compare", s(&slow), s(&a), "--fail-on-regression"], work);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stdout));
    assert!(text(&o.stdout).contains("verdict: B is significantly FASTER at TTFT p50"));
}

/// A two-level concurrency sweep whose `[slo]` holds TTFT p50 to 75 ms:
/// the base simulator (50 ms ± 30%) passes both levels, the one twice as
/// slow fails both.
fn sweep_spec() -> String {
    format!(
        r#"seed = 7
[target]
kind = "sim"
sim_profile = "sim.toml"

[load]
duration = "1s"
{WORKLOAD}
[sweep]
variable = "concurrency"
levels = [2, 4]

[slo.criteria]
"ttft.p50" = "<= 75ms"
"#
    )
}

#[test]
fn two_sweeps_are_compared_level_by_level() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let a = ran(work, "a", "sweep", &sweep_spec(), &sim(1.0, 50.0, 5.0));
    let slow = ran(work, "slow", "sweep", &sweep_spec(), &sim(2.0, 50.0, 5.0));
    let o = quarry(&["compare", s(&a), s(&slow), "--format", "json"], work);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let doc = json(&o);
    assert_eq!(doc["kind"], "sweep");
    let sw = &doc["comparisons"][0]["sweep"];
    assert_eq!(sw["baseline"]["variable"], "concurrency");
    assert_eq!(sw["baseline"]["feasible_max"], 4.0, "{sw:#}");
    assert_eq!(sw["candidate"]["feasible_max"], Value::Null, "{sw:#}");
    assert!(
        sw["candidate"]["binding"]
            .as_str()
            .unwrap()
            .starts_with("level 2: ttft.p50"),
        "{sw:#}"
    );
    let levels = sw["levels"].as_array().unwrap();
    let values: Vec<f64> = levels
        .iter()
        .map(|l| l["value"].as_f64().unwrap())
        .collect();
    assert_eq!(values, [2.0, 4.0]);
    for l in levels {
        assert_eq!(l["baseline_verdict"], "pass", "{l:#}");
        assert_eq!(l["candidate_verdict"], "fail", "{l:#}");
        let r = row(&l["run"], "ttft", 50.0);
        assert_eq!(r["significance"], "higher", "{r:#}");
    }
    assert_eq!(sw["baseline_only"], serde_json::json!([]));

    let o = quarry(&["compare", s(&a), s(&slow), "--fail-on-regression"], work);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("feasible max (virtual users): A 4, B none"),
        "{out}"
    );
    assert!(
        out.contains("-- level 2 virtual users: A pass, B fail --"),
        "{out}"
    );
    assert!(
        out.contains("sweep verdict: B significantly slower at levels 2, 4"),
        "{out}"
    );
    // A sweep against itself: nothing regressed.
    let o = quarry(&["compare", s(&a), s(&a), "--fail-on-regression"], work);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stdout));
}

#[test]
fn inputs_that_cannot_be_compared_exit_2_or_3_naming_them() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let run = work.join("run");
    let sweep = work.join("sweep");
    let neither = work.join("neither");
    for d in [&run, &sweep, &neither] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(
        run.join("results.json"),
        "{\n  \"schema_version\": 3,\n  oops\n}\n",
    )
    .unwrap();
    std::fs::write(sweep.join("sweep.json"), "{}").unwrap();

    let o = quarry(&["compare", s(&run), s(&sweep)], work);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "{}: a sweep directory cannot be compared with a run's results directory",
            sweep.display()
        )),
        "{err}"
    );
    assert!(o.stdout.is_empty());

    let o = quarry(&["compare", s(&run), s(&neither)], work);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "{}: neither a run's results directory",
            neither.display()
        )),
        "{err}"
    );

    let o = quarry(&["compare", s(&run), s(&work.join("missing"))], work);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("missing: not a directory"));

    let o = quarry(&["compare", s(&run)], work);
    assert_eq!(o.status.code(), Some(2), "one input is a usage error");

    // Both runs: the broken results.json is named with its line.
    let o = quarry(&["compare", s(&run), s(&run)], work);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains(&format!("{}: ", run.join("results.json").display()))
            && err.contains("line 3"),
        "{err}"
    );
}
