//! `quarry run` and `quarry report` end to end through the binary: a short
//! run against the embedded simulator (fixed latency, from a simulator
//! config the spec names), the results directory it leaves, the report
//! reproduced byte for byte, and the exit codes.

use std::path::Path;
use std::process::{Command, Output};

/// A simulator with exact, small latencies: runs are short and the
/// machine's load barely matters.
const SIM_CONFIG: &str = r#"latency = { kind = "fixed", ttft_ms = 20.0, gap_ms = 2.0 }
"#;

fn spec(thresholds: &str) -> String {
    format!(
        r#"seed = 7

[target]
kind = "sim"
sim_profile = "sim.toml"

[load]
concurrency = 2
warmup = "500ms"
duration = "2s"

[[workload]]
model = "meta.llama3-3-70b-instruct-v1:0"
operation = "ConverseStream"
input_tokens = 100
max_tokens = 20

[thresholds]
{thresholds}
"#
    )
}

/// Writes the spec and the simulator config into `dir`; returns the spec.
fn write_spec(dir: &Path, thresholds: &str) -> std::path::PathBuf {
    std::fs::write(dir.join("sim.toml"), SIM_CONFIG).unwrap();
    let path = dir.join("spec.toml");
    std::fs::write(&path, spec(thresholds)).unwrap();
    path
}

fn quarry(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quarry"))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn run_writes_the_results_directory_and_report_reproduces_it() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = write_spec(
        tmp.path(),
        "\"ttft.p99\" = \"< 10s\"\nerror_rate = \"< 1%\"",
    );
    let out = tmp.path().join("out");
    let run = quarry(
        &[
            "run",
            spec.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        tmp.path(),
    );
    let (stdout, stderr) = (text(&run.stdout), text(&run.stderr));
    assert_eq!(
        run.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("== Measured (steady) =="), "{stdout}");
    assert!(stdout.contains("== Simulator's view"), "{stdout}");
    assert!(stdout.contains("pass  ttft.p99 < 10s"), "{stdout}");
    assert!(stderr.contains("results in"), "{stderr}");

    for file in [
        "spec.toml",
        "plan.json",
        "run.json",
        "report.txt",
        "ttft_from_send_ms.hgrm",
        "e2e_from_send_ms.hgrm",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["schema_version"], quarry::results::SCHEMA_VERSION);
    assert_eq!(results["end"]["ended"], "completed");
    assert!(
        results["simulator"]["lanes"]
            .as_array()
            .is_some_and(|l| !l.is_empty())
    );
    let intervals = std::fs::read_to_string(out.join("intervals.jsonl")).unwrap();
    assert!(intervals.lines().count() >= 2, "{intervals}");
    let hgrm = std::fs::read_to_string(out.join("ttft_from_send_ms.hgrm")).unwrap();
    assert!(hgrm.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)"));
    assert!(hgrm.contains("#[Max     ="));

    let report = quarry(&["report", out.to_str().unwrap()], tmp.path());
    assert_eq!(report.status.code(), Some(0), "{}", text(&report.stderr));
    assert_eq!(
        report.stdout, run.stdout,
        "quarry report must reproduce the run's report"
    );
    assert_eq!(std::fs::read(out.join("report.txt")).unwrap(), run.stdout);
}

#[test]
fn a_broken_threshold_exits_1_and_names_it() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = write_spec(
        tmp.path(),
        "\"ttft.p99\" = \"< 1ns\"\nerror_rate = \"< 1%\"",
    );
    let run = quarry(&["run", spec.to_str().unwrap()], tmp.path());
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("threshold broken: ttft.p99 < 1ns"),
        "{stderr}"
    );
    assert!(!stderr.contains("threshold broken: error_rate"), "{stderr}");
    // The default results directory: results/<run-id>/ under the working
    // directory, complete even though the run failed its thresholds.
    let runs: Vec<_> = std::fs::read_dir(tmp.path().join("results"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1);
    assert!(runs[0].join("results.json").is_file());
    let report = quarry(&["report", runs[0].to_str().unwrap()], tmp.path());
    assert_eq!(report.status.code(), Some(1));
    assert_eq!(report.stdout, run.stdout);
}

#[test]
fn a_bad_spec_exits_2_and_runs_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("bad.toml");
    std::fs::write(&path, "[load]\nconcurrency = 0\nduration = \"1s\"\n").unwrap();
    let run = quarry(&["run", path.to_str().unwrap()], tmp.path());
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("load.concurrency"), "{stderr}");
    assert!(!tmp.path().join("results").exists());
}

#[test]
fn report_on_a_directory_without_results_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let report = quarry(&["report", tmp.path().to_str().unwrap()], tmp.path());
    assert_eq!(report.status.code(), Some(2));
    assert!(text(&report.stderr).contains("not a results, sweep or plan directory"));
}

#[test]
fn an_unknown_sim_profile_or_a_used_out_dir_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = write_spec(tmp.path(), "");
    let spec_text = std::fs::read_to_string(&spec).unwrap();
    let unknown = tmp.path().join("unknown.toml");
    std::fs::write(&unknown, spec_text.replace("\"sim.toml\"", "\"nope\"")).unwrap();
    let run = quarry(&["run", unknown.to_str().unwrap()], tmp.path());
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("target.sim_profile \"nope\""), "{stderr}");

    let used = tmp.path().join("used");
    std::fs::create_dir(&used).unwrap();
    std::fs::write(used.join("keep.txt"), "mine").unwrap();
    let run = quarry(
        &[
            "run",
            spec.to_str().unwrap(),
            "--out",
            used.to_str().unwrap(),
        ],
        tmp.path(),
    );
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    // Said once, with the directory, and nothing else (it once read
    // "...is not empty: DIR: ...is not empty").
    assert_eq!(
        stderr,
        format!(
            "quarry: results: {}: the results directory exists and is not empty\n",
            used.display()
        )
    );
    assert_eq!(std::fs::read_dir(&used).unwrap().count(), 1);
}
