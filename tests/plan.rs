//! `quarry plan` end to end through the binary: two short real runs against
//! the embedded simulator laid out as a sweep directory (one results
//! directory per level), then a plan of `examples/plan.toml` from them. The
//! plan must read back, cite the runs it measured from, and print the text
//! `plan.json` renders to. Bad input exits 2 (plan file) or 3 (`--from`).
//! And a plan whose demand is a trace checked into `tests/data`, its figures
//! worked out from the trace by hand.

use std::path::Path;

use quarry_capacity::{Basis, SourceKind, WallKind, from_json, render_text};
use quarry_e2e::procs::{quarry, text};

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

// ---------------------------------------------------------------------------
// A sweep, then a plan from it (issue 13, acceptance): the plan's walls come
// in the order the sweep met them, and the TPM wall binds where the sweep's
// throttling began.

const LLAMA: &str = "meta.llama3-3-70b-instruct-v1:0";
/// The account's Llama quotas in the simulator, and entered in the plan.
const WALL_TPM: u64 = 60_000;
const WALL_RPM: u64 = 400;

/// Every request asks for 100 output tokens and gets them (the model would
/// write 1,000), so a request reserves and settles the same ~610 quota
/// tokens (about 540 prompt tokens as the simulator counts the 490 asked
/// for, Llama's framing included, plus 100): 60,000 TPM admits about 94 a
/// minute, far under the 400 RPM quota.
fn wall_sim() -> String {
    format!(
        r#"seed = 1
default_account = false
latency = {{ kind = "fixed", ttft_ms = 20.0, gap_ms = 2.0 }}
[[accounts]]
access_key_id = "AKIDEXAMPLE"
secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
account_id = "123456789012"
[accounts.model_quotas."{LLAMA}"]
tpm = {WALL_TPM}
rpm = {WALL_RPM}
[[models]]
id = "{LLAMA}"
output = {{ kind = "fixed", tokens = 1000 }}
"#
    )
}

/// One and two requests a second, a minute each: each level is a run with
/// its own embedded simulator, whose quota window starts empty, so a level
/// must last a whole window to meet the wall. 60 RPM (about 38,400 quota
/// tokens a minute) is admitted whole; at 120 RPM the window fills about
/// 47 s in and the rest of the minute's arrivals are throttled (about a
/// fifth of them).
const WALL_SWEEP: &str = r#"seed = 5
[target]
kind = "sim"
sim_profile = "sim.toml"

[load]
arrival = "constant"
duration = "60s"

[[workload]]
model = "meta.llama3-3-70b-instruct-v1:0"
operation = "ConverseStream"
input_tokens = 490
max_tokens = 100

[sweep]
variable = "rate"
levels = [1, 2]

[slo.criteria]
throttle_rate = "<= 1%"
"#;

/// Today's 40 RPM growing 25% a month crosses the ~94 RPM the TPM quota
/// admits in month 4 and the 400 RPM quota in month 11: the quota walls, in
/// that order, inside the 12-month horizon. The request shape is the
/// sweep's (`measured`), the latency SLO is one the sweep never broke.
fn wall_plan(level_label: &str) -> String {
    format!(
        r#"title = "Llama API, planned from a sweep"
start = "2027-01-01"
horizon_months = 12
region = "us-east-1"
accounts = 1
lead_time_days = 42

[growth]
monthly_rate = 0.25

[[class]]
name = "api"
interactive = true
peak_rpm = 40
average_rpm = 20
measured = "{level_label}"
curve = "sweep-llama"
models = ["{LLAMA}"]

[class.slo]
ttft_p99_ms = 2000

[[quota]]
model = "{LLAMA}"
tpm = {WALL_TPM}
rpm = {WALL_RPM}
"#
    )
}

#[test]
fn a_plan_from_a_sweep_orders_its_walls_as_the_sweep_met_them() {
    use quarry_capacity::Binding;

    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("sim.toml"), wall_sim()).unwrap();
    let spec_path = tmp.path().join("sweep.toml");
    std::fs::write(&spec_path, WALL_SWEEP).unwrap();
    let sweep_dir = tmp.path().join("sweep-llama");
    let swept = quarry(
        &[
            "sweep",
            spec_path.to_str().unwrap(),
            "--out",
            sweep_dir.to_str().unwrap(),
        ],
        tmp.path(),
    );
    let sweep_out = text(&swept.stdout);
    // The sweep states no target: it exits 0 whatever its levels found.
    assert_eq!(
        swept.status.code(),
        Some(0),
        "stdout:\n{sweep_out}\nstderr:\n{}",
        text(&swept.stderr)
    );

    // What the sweep met: the first level admitted whole, the second
    // throttled by the TPM quota, named.
    let sweep = quarry::sweep::read_sweep(&sweep_dir).expect("sweep.json reads");
    let [low, high] = &sweep.levels[..] else {
        panic!("two levels: {sweep_out}");
    };
    assert_eq!((low.value, high.value), (1.0, 2.0));
    assert_eq!(low.throttle_percent, Some(0.0), "{sweep_out}");
    assert!(
        high.throttle_percent.is_some_and(|p| p > 5.0),
        "{sweep_out}"
    );
    let binding = sweep.result.binding.as_ref().expect("a binding constraint");
    assert_eq!(binding.level, 2.0, "{sweep_out}");
    let sweep_wall = binding.wall.as_deref().unwrap_or_default();
    assert!(sweep_wall.starts_with("quota: TPM"), "{sweep_wall}");

    // The plan, from the sweep and from its first level as the demand's shape.
    let level_dir = sweep_dir.join(&low.dir);
    let level_label = level_dir.file_name().unwrap().to_str().unwrap().to_owned();
    let plan_path = tmp.path().join("plan.toml");
    std::fs::write(&plan_path, wall_plan(&level_label)).unwrap();
    let out = tmp.path().join("plan-out");
    let planned = quarry(
        &[
            "plan",
            plan_path.to_str().unwrap(),
            "--from",
            sweep_dir.to_str().unwrap(),
            "--from",
            level_dir.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        tmp.path(),
    );
    let plan_txt = text(&planned.stdout);
    assert_eq!(
        planned.status.code(),
        Some(0),
        "stdout:\n{plan_txt}\nstderr:\n{}",
        text(&planned.stderr)
    );
    let plan = from_json(&std::fs::read_to_string(out.join("plan.json")).unwrap())
        .expect("plan.json reads back");

    // The walls that bind within the horizon, in the order they bind.
    let day = |w: &quarry_capacity::Wall| match w.binds {
        Binding::Within { day, .. } => Some(day),
        _ => None,
    };
    let mut binding_walls: Vec<_> = plan.walls.iter().filter(|w| day(w).is_some()).collect();
    binding_walls.sort_by(|a, b| day(a).unwrap().total_cmp(&day(b).unwrap()));
    let kinds: Vec<WallKind> = binding_walls.iter().map(|w| w.kind).collect();
    let first_rpm = kinds.iter().position(|k| *k == WallKind::Rpm);
    let first_tpm = kinds
        .iter()
        .position(|k| matches!(k, WallKind::TpmAdmission | WallKind::TpmSettled));
    assert!(
        matches!((first_tpm, first_rpm), (Some(0), Some(r)) if r > 0),
        "the TPM wall first, then RPM, as the sweep met them: {kinds:?}\n{plan_txt}"
    );

    // The TPM wall binds at a demand between the sweep's last admitted rate
    // (60 RPM) and its first throttled one (120 RPM).
    let tpm_wall = binding_walls[0];
    let at = tpm_wall
        .at_binding
        .iter()
        .find(|f| f.label.starts_with("peak requests per minute"))
        .unwrap_or_else(|| panic!("peak RPM at the binding: {tpm_wall:#?}"));
    let rpm_at_wall = at.figure.value;
    eprintln!(
        "sweep: throttled {:?}% at {} RPM, {:?}% at {} RPM; plan: {kinds:?}, the first binds at {rpm_at_wall:.1} RPM",
        low.throttle_percent,
        low.value * 60.0,
        high.throttle_percent,
        high.value * 60.0
    );
    assert!(
        (low.value * 60.0..=high.value * 60.0).contains(&rpm_at_wall),
        "TPM wall at {rpm_at_wall} RPM, sweep throttled from {} RPM\n{plan_txt}",
        high.value * 60.0
    );

    // The plan holds the sweep's throttling against its own arithmetic, and
    // they agree.
    let check = plan
        .checks
        .iter()
        .find(|c| c.subject.contains("sweep sweep-llama"))
        .unwrap_or_else(|| panic!("a check of the sweep: {:#?}", plan.checks));
    assert_eq!(check.agrees, Some(true), "{check:#?}");
    // The measured walls never broke within the load the sweep measured
    // without throttling: they come after the quota walls.
    for w in plan
        .walls
        .iter()
        .filter(|w| matches!(w.kind, WallKind::Latency | WallKind::Concurrency))
    {
        assert!(
            !matches!(w.binds, Binding::Within { .. } | Binding::Already),
            "{w:#?}"
        );
    }
}

// ---------------------------------------------------------------------------
// A trace as the plan's demand (issue 18): `quarry plan --from trace.jsonl`.

/// `tests/data/plan-trace.jsonl`: 12 requests from 14:00:00Z to 14:03:00Z.
/// Sonnet (9): at 0, 10, 30, 40, 45, 70, 95, 150 and 180 s; inputs 1000,
/// 1200, 800, 1500, 900, 1100, 1300, 1000, 2000; outputs 200, 300, 250,
/// 400, 150, 220, 350, 180, 500; sessions s1 (3 requests), s2, s3, s4 (2
/// each); a 1,024-token cache prefix on the requests at 10, 40 and 70 s.
/// Llama (3): at 20, 50 and 120 s; inputs 500, 700, 600; outputs 100, 120,
/// 80.
const PLAN_TRACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/plan-trace.jsonl");

/// One class takes the trace's Sonnet requests; Llama gets a class of its own.
const TRACE_PLAN: &str = r#"title = "Chat, planned from a trace"
start = "2026-12-01"
region = "us-east-1"

[growth]
monthly_rate = 0.2

[[class]]
name = "chat"
measured = "plan-trace.jsonl"
models = ["us.anthropic.claude-sonnet-4-5-20250929-v1:0"]

[class.slo]
ttft_p99_ms = 2000

[[quota]]
model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
tpm = 1000000
"#;

/// `quarry plan PLAN --from FROM --out OUT`, run in `cwd`.
fn plan_from(plan: &Path, from: &Path, out: &Path, cwd: &Path) -> std::process::Output {
    quarry(
        &[
            "plan",
            plan.to_str().unwrap(),
            "--from",
            from.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        cwd,
    )
}

#[test]
fn a_plan_from_a_trace_takes_its_demand_per_model_and_names_the_trace() {
    let tmp = tempfile::tempdir().unwrap();
    let plan_path = tmp.path().join("plan.toml");
    std::fs::write(&plan_path, TRACE_PLAN).unwrap();
    let out = tmp.path().join("out");
    let planned = plan_from(&plan_path, Path::new(PLAN_TRACE), &out, tmp.path());
    let (stdout, stderr) = (text(&planned.stdout), text(&planned.stderr));
    assert_eq!(
        planned.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let plan = from_json(&std::fs::read_to_string(out.join("plan.json")).unwrap()).unwrap();
    let txt = std::fs::read_to_string(out.join("plan.txt")).unwrap();
    assert_eq!(txt, render_text(&plan));
    assert_eq!(stdout, txt);

    let sonnet_label = format!("plan-trace.jsonl:{SONNET}");
    let llama_label = format!("plan-trace.jsonl:{LLAMA}");
    let names: Vec<&str> = plan.classes.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["chat", llama_label.as_str()]);
    let (chat, llama) = (&plan.classes[0], &plan.classes[1]);
    let measured = |f: &quarry_capacity::Figure| (f.value, f.basis);
    // Sonnet: 9 requests over the 180 s span = 3 RPM; the busiest minute
    // [14:00:00, 14:01:00) holds 5 (0, 10, 30, 40, 45 s).
    assert_eq!(measured(&chat.average_rpm), (3.0, Basis::Measured));
    assert_eq!(measured(&chat.peak_rpm), (5.0, Basis::Measured));
    // 10,800 input and 2,550 output tokens over 9 requests.
    assert_eq!(measured(&chat.input_tokens), (1_200.0, Basis::Measured));
    assert!((chat.output_tokens.value - 2_550.0 / 9.0).abs() < 1e-6);
    // Reserved: the mean input and max_tokens taken as the largest output (500).
    assert_eq!(chat.reservation.as_ref().unwrap().value, 1_700.0);
    // Llama: 3 requests ÷ 180 s = 1 RPM; 20 and 50 s share a minute.
    assert_eq!(measured(&llama.average_rpm), (1.0, Basis::Measured));
    assert_eq!(measured(&llama.peak_rpm), (2.0, Basis::Measured));
    assert_eq!(llama.input_tokens.value, 600.0);
    assert_eq!(llama.output_tokens.value, 100.0);
    // 600 + the largest output, 120; settled at 600 + 100 (burndown 1).
    assert_eq!(llama.reservation.as_ref().unwrap().value, 720.0);
    assert_eq!(llama.settlement.value, 700.0);

    // The rates cite the trace: file, requests, span and window.
    let source = |id: &str| {
        plan.sources
            .iter()
            .find(|s| s.id == id)
            .unwrap_or_else(|| panic!("{id} in {:#?}", plan.sources))
    };
    let peak = source(&format!("measured:{sonnet_label}:peak requests per minute"));
    let at = peak.location.as_deref().unwrap();
    assert!(
        at.starts_with(&format!(
            "{PLAN_TRACE}: 12 requests (lines 1–12), 2026-11-30T14:00:00Z to 2026-11-30T14:03:00Z (a span of 180 s); 9 of them to {SONNET}"
        )),
        "{at}"
    );
    assert!(
        at.contains(
            "peak 5 in its busiest 60-second window, [2026-11-30T14:00:00Z, +60 s) from line 1;"
        ),
        "{at}"
    );
    let llama_peak = source(&format!("measured:{llama_label}:peak requests per minute"));
    assert!(
        llama_peak.location.as_deref().unwrap().contains(
            "peak 2 in its busiest 60-second window, [2026-11-30T14:00:20Z, +60 s) from line 3;"
        ),
        "{llama_peak:?}"
    );
    assert!(txt.contains(&format!("measured, {at}")), "{txt}");
    // Sessions: 4 ids over 180 s = 1,920 a day, 2.25 requests each.
    assert_eq!(
        plan.sources
            .iter()
            .filter(|s| s.id.starts_with(&format!("measured:{sonnet_label}:")))
            .filter(|s| s.id.contains("session"))
            .count(),
        2
    );
    // The prefix: written at 10 s, read at 40 and 70 s (within 5 minutes of
    // its last use), so the class caches at a hit ratio of 2/3.
    let hit = source(&format!("measured:{sonnet_label}:cache hit ratio"));
    assert!(
        hit.location.as_deref().unwrap().ends_with(
            "; cache: its 3 cache_prefix lines in time order through a 300-second cache, 2 reads and 1 writes"
        ),
        "{hit:?}"
    );
    // What the plan assumed: max_tokens, and the class made for Llama.
    for want in [
        "class chat: max_tokens is not entered: a trace records the tokens produced",
        &format!("class {llama_label}: made for the requests of plan-trace.jsonl"),
    ] {
        assert!(
            plan.assumptions.iter().any(|a| a.starts_with(want)),
            "{want:?} in {:#?}",
            plan.assumptions
        );
    }
    assert!(
        stderr.contains("trace \"plan-trace.jsonl\", 12 requests over 180 s"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{sonnet_label}: 9 requests, average 3 RPM, peak 5 RPM"
        )) && stderr.contains("input tokens mean 1200, p50 1100, p95 2000, max 2000"),
        "{stderr}"
    );
}

#[test]
fn a_trace_conflicting_with_the_plan_file_or_with_a_bad_line_names_both() {
    let tmp = tempfile::tempdir().unwrap();
    // A class with demand of its own on a model the trace supplies.
    let conflict = TRACE_PLAN.replace(
        "measured = \"plan-trace.jsonl\"",
        "peak_rpm = 10\naverage_rpm = 4\ninput_tokens = 900\noutput_tokens = 200",
    );
    let line = conflict
        .lines()
        .position(|l| l.starts_with("peak_rpm"))
        .unwrap()
        + 1;
    let plan_path = tmp.path().join("plan.toml");
    std::fs::write(&plan_path, conflict).unwrap();
    let out = tmp.path().join("out");
    let planned = plan_from(&plan_path, Path::new(PLAN_TRACE), &out, tmp.path());
    let stderr = text(&planned.stderr);
    assert_eq!(planned.status.code(), Some(2), "{stderr}");
    let want = format!(
        "{}:{line}: class[0].peak_rpm: class \"chat\" uses {SONNET} with demand of its own, and --from {PLAN_TRACE} supplies {SONNET}'s demand too (9 requests)",
        plan_path.display()
    );
    assert!(stderr.contains(&want), "{want:?} in {stderr}");
    assert!(!out.exists(), "nothing is written");

    // A bad trace line: FILE:LINE: field: message, exit 3.
    std::fs::write(&plan_path, TRACE_PLAN).unwrap();
    let trace = tmp.path().join("plan-trace.jsonl");
    let mut lines = std::fs::read_to_string(PLAN_TRACE).unwrap();
    lines = lines.replacen("\"output_tokens\":80", "\"output_tokens\":0", 1);
    std::fs::write(&trace, lines).unwrap();
    let planned = plan_from(&plan_path, &trace, &out, tmp.path());
    let stderr = text(&planned.stderr);
    assert_eq!(planned.status.code(), Some(3), "{stderr}");
    let want = format!(
        "{}:10: output_tokens: must be between 1 and 1000000",
        trace.display()
    );
    assert!(stderr.contains(&want), "{want:?} in {stderr}");
    assert!(!out.exists(), "nothing is written");
}
