//! `report.html` in a real browser: a short open-loop run, a three-level
//! concurrency sweep and a plan from that sweep, all real runs against the
//! embedded simulator through the `quarry` binary; each page is loaded in
//! headless Chromium (Debian's `chromium` + `chromium-driver`, driven by
//! Selenium from `tests/browser/probe_report.py`). Each must draw with no
//! console error and no request but the file itself, give a non-trivial
//! screenshot, and chart exactly the figures of `intervals.jsonl` and the
//! `.hgrm` files, `sweep.json` and `plan.json`. `quarry report DIR --html`
//! rewrites each page byte for byte from the directory alone, and
//! `--format json` prints the evaluated report.
//!
//! Without Chromium, chromedriver or Selenium the browser part is skipped
//! with a note; with `CI=true` it fails (`scripts/test` installs them).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use quarry_e2e::docker::require_tool;
use quarry_e2e::procs::{quarry, text};
use serde_json::Value;

const SIM: &str = r#"seed = 1
default_account = false
latency = { kind = "fixed", ttft_ms = 30.0, gap_ms = 3.0 }
[[accounts]]
access_key_id = "AKIDEXAMPLE"
secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
account_id = "123456789012"
quotas = { tpm = 3000 }
"#;

const SONNET: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";

fn run_spec() -> String {
    format!(
        r#"seed = 5
[target]
kind = "sim"
sim_profile = "sim.toml"

[load]
rate = 20.0
arrival = "poisson"
max_in_flight = 50
warmup = "300ms"
duration = "2s"

[[workload]]
model = "{SONNET}"
operation = "ConverseStream"
input_tokens = 50
max_tokens = 10

[thresholds]
"ttft.p99" = "< 5s"
error_rate = "< 0.9"
"#
    )
}

fn sweep_spec() -> String {
    format!(
        r#"seed = 7
[target]
kind = "sim"
sim_profile = "sim.toml"

[load]
duration = "1s"

[[workload]]
model = "{SONNET}"
operation = "ConverseStream"
input_tokens = 100
max_tokens = 10

[sweep]
variable = "concurrency"
levels = [1, 2, 8]

[slo]
attainment = "50%"
[slo.request]
ttft = "5s"
[slo.criteria]
"ttft.p99" = "<= 4s"
throttle_rate = "<= 1%"
"#
    )
}

fn ok(what: &str, out: &Output, codes: &[i32]) {
    assert!(
        out.status.code().is_some_and(|c| codes.contains(&c)),
        "{what}: exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `a` and `b` agree to a relative 1e-9 (or absolutely, near zero).
fn close(a: f64, b: f64, what: &str) {
    assert!(
        (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-6),
        "{what}: {a} != {b}"
    );
}

/// The three directories, made once.
struct Dirs {
    _tmp: tempfile::TempDir,
    run: PathBuf,
    sweep: PathBuf,
    plan: PathBuf,
}

fn make_dirs() -> Dirs {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::write(root.join("sim.toml"), SIM).unwrap();
    std::fs::write(root.join("run.toml"), run_spec()).unwrap();
    std::fs::write(root.join("sweep.toml"), sweep_spec()).unwrap();
    std::fs::write(
        root.join("plan.toml"),
        include_str!("../examples/plan.toml"),
    )
    .unwrap();
    let (run, sweep, plan) = (root.join("run"), root.join("sweep"), root.join("plan"));
    let r = quarry(
        &[
            "run",
            "run.toml",
            "--out",
            "run",
            "--interval-secs",
            "0.5",
            "--grace-secs",
            "5",
        ],
        root,
    );
    ok("quarry run", &r, &[0, 1]);
    let s = quarry(
        &[
            "sweep",
            "sweep.toml",
            "--out",
            "sweep",
            "--interval-secs",
            "0.5",
            "--grace-secs",
            "5",
        ],
        root,
    );
    ok("quarry sweep", &s, &[0, 1]);
    let p = quarry(
        &["plan", "plan.toml", "--from", "sweep", "--out", "plan"],
        root,
    );
    ok("quarry plan", &p, &[0]);
    Dirs {
        _tmp: tmp,
        run,
        sweep,
        plan,
    }
}

/// Loads `dir/report.html` in headless Chromium; `None` when the browser
/// is missing (skipped; a panic with CI=true).
fn probe(dir: &Path, test: &str) -> Option<Value> {
    require_tool(test, "chromium", &["--version"])?;
    require_tool(test, "chromedriver", &["--version"])?;
    require_tool(test, "python3", &["-c", "import selenium"])?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser/probe_report.py");
    let shot = dir.join("screenshot.png");
    let out = Command::new("python3")
        .arg(&script)
        .arg(dir.join("report.html"))
        .arg(&shot)
        .output()
        .unwrap();
    ok("probe_report.py", &out, &[0]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    // No console error, nothing fetched but the page itself.
    let severe: Vec<&Value> = v["console"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["level"] == "SEVERE")
        .collect();
    assert!(severe.is_empty(), "console errors: {severe:?}");
    let page = v["page"].as_str().unwrap();
    for url in v["requests"].as_array().unwrap() {
        let url = url.as_str().unwrap();
        assert!(
            url == page || url.starts_with("data:"),
            "a request for {url}"
        );
    }
    assert!(
        !v["requests"].as_array().unwrap().is_empty(),
        "the page itself was requested"
    );
    // A real picture: a PNG well beyond a blank page's size.
    assert_eq!(v["screenshot"]["png"], true);
    let bytes = v["screenshot"]["bytes"].as_u64().unwrap();
    assert!(bytes > 40_000, "screenshot of {bytes} bytes");
    for (id, c) in v["charts"].as_object().unwrap() {
        assert_eq!(c["drawn"], true, "chart {id} has no plotting area");
    }
    Some(v)
}

fn chart<'a>(v: &'a Value, id: &str) -> &'a Value {
    v["charts"].get(id).unwrap_or_else(|| {
        panic!(
            "no chart {id}: {:?}",
            v["charts"]
                .as_object()
                .map(|o| o.keys().collect::<Vec<_>>())
        )
    })
}

fn rows(c: &Value) -> Vec<Vec<Option<f64>>> {
    c["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_array().unwrap().iter().map(Value::as_f64).collect())
        .collect()
}

/// `quarry report DIR --html` rewrites the page byte for byte.
fn rewrites_identically(dir: &Path) {
    let before = std::fs::read(dir.join("report.html")).unwrap();
    std::fs::remove_file(dir.join("report.html")).unwrap();
    let out = quarry(&["report", dir.to_str().unwrap(), "--html"], dir);
    ok("quarry report --html", &out, &[0, 1]);
    let after = std::fs::read(dir.join("report.html")).unwrap();
    assert!(
        before == after,
        "{}: report.html rewritten differently",
        dir.display()
    );
}

#[test]
fn run_sweep_and_plan_pages_draw_offline_and_chart_their_files() {
    let test = "run_sweep_and_plan_pages_draw_offline_and_chart_their_files";
    let d = make_dirs();
    for dir in [&d.run, &d.sweep, &d.plan] {
        assert!(dir.join("report.html").is_file(), "{}", dir.display());
        rewrites_identically(dir);
    }
    // Each sweep level is an ordinary run with its own page.
    assert!(
        d.sweep
            .join("levels/00-concurrency-1/report.html")
            .is_file()
    );

    // --format json: the run's evaluated report, sweep.json, plan.json.
    let out = quarry(
        &["report", d.run.to_str().unwrap(), "--format", "json"],
        &d.run,
    );
    ok("report --format json", &out, &[0, 1]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let results = read_json(&d.run.join("results.json"));
    assert_eq!(report["schema"], "quarry.report/1");
    assert_eq!(report["run_id"], results["run"]["run_id"]);
    assert_eq!(report["thresholds"], results["thresholds"]);
    assert!(report["measured"]["requests"].as_u64().unwrap() > 0);
    let out = quarry(
        &["report", d.sweep.to_str().unwrap(), "--format", "json"],
        &d.sweep,
    );
    ok("sweep --format json", &out, &[0]);
    let sweep: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(sweep, read_json(&d.sweep.join("sweep.json")));
    let out = quarry(
        &["report", d.plan.to_str().unwrap(), "--format", "json"],
        &d.plan,
    );
    ok("plan --format json", &out, &[0]);
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan, read_json(&d.plan.join("plan.json")));

    let Some(run_page) = probe(&d.run, test) else {
        return;
    };
    check_run(&d.run, &run_page);
    let sweep_page = probe(&d.sweep, test).unwrap();
    check_sweep(&sweep, &sweep_page);
    let plan_page = probe(&d.plan, test).unwrap();
    check_plan(&plan, &plan_page);

    // `quarry compare --html`: a run and a sweep each against itself.
    for (name, dir) in [("cmp-run", &d.run), ("cmp-sweep", &d.sweep)] {
        let out_dir = d._tmp.path().join(name);
        std::fs::create_dir(&out_dir).unwrap();
        let page_path = out_dir.join("report.html");
        let dir = dir.to_str().unwrap();
        let out = quarry(
            &[
                "compare",
                dir,
                dir,
                "--format",
                "json",
                "--html",
                page_path.to_str().unwrap(),
            ],
            &out_dir,
        );
        ok("compare --html", &out, &[0]);
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        let page = probe(&out_dir, test).unwrap();
        check_compare(&doc, &page);
    }
}

/// Each latency chart holds the comparison's percentiles, A and B, in ms.
fn check_compare(doc: &Value, page: &Value) {
    let versus = &doc["comparisons"][0];
    let (run, id) = if versus["run"].is_null() {
        let level = &versus["sweep"]["levels"][0];
        let value = level["value"].as_f64().unwrap();
        (
            &level["run"],
            format!("s0-l{}", format!("{value}").replace('.', "_")),
        )
    } else {
        (&versus["run"], "v0".to_owned())
    };
    let ttft: Vec<&Value> = run["percentiles"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["metric"] == "ttft" && !p["baseline_ns"].is_null())
        .collect();
    assert!(!ttft.is_empty(), "{run}");
    let charted = rows(chart(page, &format!("{id}-ttft")));
    assert_eq!(charted.len(), ttft.len(), "{charted:?}");
    for (row, p) in charted.iter().zip(&ttft) {
        let q = p["percentile"].as_f64().unwrap() / 100.0;
        let ms = |v: &Value| v.as_u64().unwrap() as f64 / 1e6;
        let want = [
            1.0 / (1.0 - q),
            ms(&p["baseline_ns"]),
            ms(&p["candidate_ns"]),
        ];
        for (got, want) in row.iter().zip(want) {
            let got = got.unwrap();
            assert!(
                (got - want).abs() <= 1e-9 * want.abs().max(1.0),
                "{row:?} vs {want}"
            );
        }
        // The same run twice: no significant difference.
        assert_ne!(p["significance"], "higher");
        assert_ne!(p["significance"], "lower");
    }
}

/// The time series are `intervals.jsonl`'s, the distributions the `.hgrm`
/// files' points.
fn check_run(dir: &Path, page: &Value) {
    let intervals: Vec<Value> = std::fs::read_to_string(dir.join("intervals.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let c = chart(page, "requests");
    assert_eq!(c["labels"][1], "requests/s");
    let rows = rows(c);
    assert_eq!(rows.len(), intervals.len());
    let mut requests = 0.0;
    for (row, i) in rows.iter().zip(&intervals) {
        let end = i["end_ns"].as_f64().unwrap();
        let len = (end - i["start_ns"].as_f64().unwrap()) / 1e9;
        close(row[0].unwrap(), end / 1e9, "x");
        let per_s = row[1].unwrap();
        close(
            per_s * len,
            i["summary"]["requests"].as_f64().unwrap(),
            "requests",
        );
        close(
            row[3].unwrap() * len,
            i["summary"]["throttled"].as_f64().unwrap(),
            "throttled",
        );
        requests += per_s * len;
    }
    assert!(requests > 10.0, "{requests} requests charted");
    let c = chart(page, "in-flight");
    for (row, i) in rows_of(c).iter().zip(&intervals) {
        close(
            row[1].unwrap(),
            i["health"]["in_flight"].as_f64().unwrap(),
            "in flight",
        );
    }
    // The quota line is the simulator's one pool's TPM.
    let c = chart(page, "quota");
    assert_eq!(
        c["labels"].as_array().unwrap().len(),
        3,
        "{:?}",
        c["labels"]
    );
    let results = read_json(&dir.join("results.json"));
    let pools = results["simulator"]["quota"].as_array().unwrap();
    assert_eq!(pools.len(), 1, "{pools:?}");
    assert_eq!(rows_of(c)[0][2], pools[0]["tpm"].as_f64());

    // TTFT from send: every .hgrm point below 100% is on the chart.
    let c = chart(page, "dist-ttft");
    assert_eq!(c["labels"][1], "from send");
    assert_eq!(
        c["labels"][2], "from schedule",
        "an open loop has both views"
    );
    let charted = rows_of(c);
    let hgrm = std::fs::read_to_string(dir.join("ttft_from_send_ms.hgrm")).unwrap();
    let mut matched = 0;
    for line in hgrm.lines().skip(2).take_while(|l| !l.starts_with('#')) {
        let cols: Vec<f64> = line
            .split_whitespace()
            .map(|c| c.parse().unwrap())
            .collect();
        if cols.len() < 4 {
            continue; // the 100% line has no 1/(1-p)
        }
        let (value, q) = (cols[0], cols[1]);
        let x = 1.0 / (1.0 - q);
        let row = charted
            .iter()
            .find(|r| (r[0].unwrap() - x).abs() <= 1e-6 * x)
            .unwrap_or_else(|| panic!("no chart point at {q}"));
        assert!((row[1].unwrap() - value).abs() <= 0.0005, "{line}: {row:?}");
        matched += 1;
    }
    assert!(matched >= 5, "{matched} points matched");
    for id in [
        "dist-e2e",
        "dist-itl",
        "dist-tpot",
        "ttft",
        "schedule-lag",
        "cpu",
    ] {
        chart(page, id);
    }
}

fn rows_of(c: &Value) -> Vec<Vec<Option<f64>>> {
    rows(c)
}

/// Latency, throughput and cost against load are `sweep.json`'s levels;
/// the knee is at `feasible_max`.
fn check_sweep(sweep: &Value, page: &Value) {
    let mut levels: Vec<&Value> = sweep["levels"].as_array().unwrap().iter().collect();
    levels.sort_by(|a, b| {
        a["value"]
            .as_f64()
            .unwrap()
            .total_cmp(&b["value"].as_f64().unwrap())
    });
    let ms = |v: &Value| v.as_f64().map(|n| n / 1e6);
    let c = chart(page, "ttft");
    let rows = rows(c);
    assert_eq!(rows.len(), levels.len());
    for (row, l) in rows.iter().zip(&levels) {
        close(row[0].unwrap(), l["value"].as_f64().unwrap(), "level");
        assert_eq!(row[1], ms(&l["ttft"]["p50_ns"]), "p50");
        assert_eq!(row[2], ms(&l["ttft"]["p95_ns"]), "p95");
        assert_eq!(row[3], ms(&l["ttft"]["p99_ns"]), "p99");
        // The SLO lines: the per-request bound (5 s) and ttft.p99 <= 4s.
        assert_eq!(row[4], Some(5000.0));
        assert_eq!(row[5], Some(4000.0));
    }
    match sweep["result"]["feasible_max"].as_f64() {
        Some(knee) => {
            let a = &c["annotations"][0];
            assert_eq!(a["short"], "knee");
            close(a["x"].as_f64().unwrap(), knee, "knee");
        }
        None => assert!(c["annotations"].as_array().unwrap().is_empty()),
    }
    let c = chart(page, "throughput");
    for (row, l) in rows_of(c).iter().zip(&levels) {
        assert_eq!(row[1], l["output_tokens_per_s"].as_f64(), "aggregate tok/s");
        assert_eq!(
            row[2],
            l["decode_tokens_per_s_per_stream_p50"].as_f64(),
            "per stream"
        );
    }
    let c = chart(page, "throttle");
    for (row, l) in rows_of(c).iter().zip(&levels) {
        assert_eq!(row[1], l["throttle_percent"].as_f64(), "throttle %");
    }
    let c = chart(page, "cost");
    for (row, l) in rows_of(c).iter().zip(&levels) {
        assert_eq!(row[1], l["cost_per_1k_ok_usd"].as_f64(), "cost per 1k");
    }
}

/// The strategies' bars are their monthly costs; the demand curve and the
/// walls' lines are `plan.json`'s.
fn check_plan(plan: &Value, page: &Value) {
    let c = chart(page, "strategies");
    let rows = rows(c);
    let strategies = plan["strategies"].as_array().unwrap();
    assert!(!strategies.is_empty());
    assert_eq!(rows.len(), 2 * strategies.len());
    for (i, s) in strategies.iter().enumerate() {
        close(rows[2 * i][0].unwrap(), i as f64 - 0.4, "bar position");
        assert_eq!(
            rows[2 * i][1],
            s["monthly_cost"]["value"].as_f64(),
            "{}",
            s["name"]
        );
    }
    let c = chart(page, "demand");
    let charted = rows_of(c);
    let demand = plan["timeline"]["demand"].as_array().unwrap();
    assert!(demand.len() > 100);
    for p in demand {
        let (day, factor) = (p[0].as_f64().unwrap(), p[1].as_f64().unwrap());
        let row = charted
            .iter()
            .find(|r| r[0] == Some(day))
            .unwrap_or_else(|| panic!("no row at day {day}"));
        assert_eq!(row[1], Some(factor), "demand on day {day}");
    }
    let placed: Vec<f64> = plan["walls"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w["binds_at"]["value"].as_f64())
        .filter(|f| *f > 0.0)
        .collect();
    assert_eq!(c["labels"].as_array().unwrap().len(), 2 + placed.len());
    for (k, at) in placed.iter().enumerate() {
        assert_eq!(charted[0][2 + k], Some(*at), "wall {k}'s line");
    }
}
