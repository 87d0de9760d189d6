//! `quarry plan` end to end through the binary: two short real runs against
//! the embedded simulator laid out as a sweep directory (one results
//! directory per level), then a plan of `examples/plan.toml` from them. The
//! plan must read back, cite the runs it measured from, and print the text
//! `plan.json` renders to. Bad input exits 2 (plan file) or 3 (`--from`).

use std::path::Path;
use std::process::{Command, Output};

use quarry_capacity::{Basis, SourceKind, WallKind, from_json, render_text};
use quarry_e2e::procs::quarry_bin;

/// Exact, small latencies: each run is short and the machine's load barely matters.
const SIM_CONFIG: &str = r#"latency = { kind = "fixed", ttft_ms = 20.0, gap_ms = 2.0 }
"#;

/// The model the example plan's interactive class uses first.
const SONNET: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";

fn spec(concurrency: u32) -> String {
    format!(
        r#"seed = 11

[target]
kind = "sim"
sim_profile = "sim.toml"

[load]
concurrency = {concurrency}
warmup = "300ms"
duration = "1s"

[[workload]]
model = "{SONNET}"
operation = "ConverseStream"
input_tokens = 200
max_tokens = 32
"#
    )
}

fn quarry(args: &[&str], cwd: &Path) -> Output {
    Command::new(quarry_bin())
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `quarry run` at `concurrency` into `out`; asserts it succeeded.
fn run_level(tmp: &Path, concurrency: u32, out: &Path) {
    let spec_path = tmp.join(format!("spec-{concurrency}.toml"));
    std::fs::write(&spec_path, spec(concurrency)).unwrap();
    let run = quarry(
        &[
            "run",
            spec_path.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        tmp,
    );
    assert_eq!(
        run.status.code(),
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        text(&run.stdout),
        text(&run.stderr)
    );
}

#[test]
fn a_plan_from_a_sweep_of_real_runs_cites_them_and_reads_back() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("sim.toml"), SIM_CONFIG).unwrap();
    let sweep = tmp.path().join("sweep-sonnet");
    let low = sweep.join("levels/01-concurrency-1");
    let high = sweep.join("levels/02-concurrency-4");
    run_level(tmp.path(), 1, &low);
    run_level(tmp.path(), 4, &high);

    let plan_path = tmp.path().join("plan.toml");
    std::fs::write(&plan_path, include_str!("../examples/plan.toml")).unwrap();
    let out = tmp.path().join("plan-out");
    // The sweep, and one of its levels again as a plain run (a demand profile).
    let planned = quarry(
        &[
            "plan",
            plan_path.to_str().unwrap(),
            "--from",
            sweep.to_str().unwrap(),
            "--from",
            low.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        tmp.path(),
    );
    let (stdout, stderr) = (text(&planned.stdout), text(&planned.stderr));
    assert_eq!(
        planned.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stderr.contains("curve \"sweep-sonnet\"") && stderr.contains("2 levels of concurrency"),
        "{stderr}"
    );
    assert!(
        stderr.contains("demand profile \"01-concurrency-1\""),
        "{stderr}"
    );

    let json = std::fs::read_to_string(out.join("plan.json")).unwrap();
    let plan = from_json(&json).expect("plan.json reads back");
    let txt = std::fs::read_to_string(out.join("plan.txt")).unwrap();
    assert_eq!(txt, render_text(&plan), "plan.txt is plan.json rendered");
    assert_eq!(stdout, txt, "the printed plan is plan.txt");

    // The class on Sonnet read its latency and concurrency walls from the sweep.
    let measured: Vec<_> = plan
        .walls
        .iter()
        .filter(|w| {
            matches!(w.kind, WallKind::Latency | WallKind::Concurrency)
                && w.scope.contains("sweep sweep-sonnet")
        })
        .collect();
    assert_eq!(measured.len(), 2, "{:#?}", plan.walls);
    // Their limit rests on a measured source that names the level's run and
    // the requests it counted.
    let limit = measured[0].limit.as_ref().expect("a measured capacity");
    let cited: Vec<_> = plan
        .sources
        .iter()
        .filter(|s| limit.from.contains(&s.id))
        .collect();
    assert!(
        cited.iter().any(|s| {
            s.kind == SourceKind::Measured
                && s.location.as_deref().is_some_and(|l| {
                    l.contains("levels/0") && l.contains(": run ") && l.contains("requests ended")
                })
        }),
        "{cited:#?}"
    );
    // Every measured source points at one of the two runs.
    for s in plan
        .sources
        .iter()
        .filter(|s| s.kind == SourceKind::Measured)
    {
        let at = s.location.as_deref().unwrap_or_default();
        assert!(at.contains("sweep-sonnet"), "{s:?}");
    }
    // Nothing is shown as measured that came from elsewhere: the example's
    // entered demand stays entered.
    let chat = plan.classes.iter().find(|c| c.name == "chat").unwrap();
    assert_eq!(chat.peak_rpm.basis, Basis::Entered);

    // A second plan into the same directory is refused.
    let again = quarry(
        &[
            "plan",
            plan_path.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        tmp.path(),
    );
    assert_eq!(again.status.code(), Some(2), "{}", text(&again.stderr));
    assert!(text(&again.stderr).contains("not empty"));
}

#[test]
fn a_bad_plan_file_exits_2_naming_file_line_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let plan_path = tmp.path().join("bad.toml");
    let example = include_str!("../examples/plan.toml");
    let bad = example.replacen("peak_rpm = 120", "peak_rpm = \"lots\"", 1);
    assert_ne!(bad, example, "the example still sets peak_rpm = 120");
    let line = bad
        .lines()
        .position(|l| l.contains("\"lots\""))
        .map(|i| i + 1)
        .unwrap();
    std::fs::write(&plan_path, bad).unwrap();
    let out = tmp.path().join("out");
    let planned = quarry(
        &[
            "plan",
            plan_path.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        tmp.path(),
    );
    let stderr = text(&planned.stderr);
    assert_eq!(planned.status.code(), Some(2), "{stderr}");
    let want = format!("{}:{line}: class[0].peak_rpm", plan_path.display());
    assert!(stderr.contains(&want), "{want:?} in {stderr}");
    assert!(planned.stdout.is_empty());
    assert!(!out.exists(), "nothing is written");
}

#[test]
fn an_unusable_from_input_exits_3_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let plan_path = tmp.path().join("plan.toml");
    std::fs::write(&plan_path, include_str!("../examples/plan.toml")).unwrap();
    let empty = tmp.path().join("not-a-run");
    std::fs::create_dir(&empty).unwrap();
    let out = tmp.path().join("out");
    let planned = quarry(
        &[
            "plan",
            plan_path.to_str().unwrap(),
            "--from",
            empty.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        tmp.path(),
    );
    let stderr = text(&planned.stderr);
    assert_eq!(planned.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "--from {}: neither a results directory",
            empty.display()
        )),
        "{stderr}"
    );
    assert!(!out.exists(), "nothing is written");
}
