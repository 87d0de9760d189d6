//! The figures a new user reads, from real runs of the `quarry` binary
//! against its embedded simulator (fixed latency, from a simulator config
//! the spec names): what each latency histogram counts in a mixed
//! streaming / non-streaming run, cost per successful request at the quota
//! wall, the quota-wall block, and pacing after a throttle.

use std::path::{Path, PathBuf};
use std::process::Output;

use quarry::report::RunFigures;
use quarry::results::read_results;
use quarry_bedrock::Outcome;
use quarry_e2e::procs::quarry_bin;
use quarry_engine::{Count, Metric};

const LLAMA: &str = "meta.llama3-3-70b-instruct-v1:0";
const MS: u64 = 1_000_000;

/// A finished `quarry run`: its output and results directory.
struct Ran {
    output: Output,
    out: PathBuf,
    _work: tempfile::TempDir,
}

impl Ran {
    fn report(&self) -> String {
        std::fs::read_to_string(self.out.join("report.txt")).expect("report.txt")
    }

    fn figures(&self) -> RunFigures {
        let doc = read_results(&self.out).expect("results.json");
        RunFigures::from_document(&doc).expect("figures")
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
}

/// Runs `spec` (which names `sim.toml`) with `sim` as that simulator config.
fn run(spec: &str, sim: &str) -> Ran {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    std::fs::write(dir.join("sim.toml"), sim).unwrap();
    let spec_path = dir.join("spec.toml");
    std::fs::write(&spec_path, spec).unwrap();
    let out = dir.join("out");
    let output = std::process::Command::new(quarry_bin())
        .arg("run")
        .arg(&spec_path)
        .arg("--out")
        .arg(&out)
        .args(["--interval-secs", "0.5"])
        .current_dir(dir)
        .output()
        .unwrap();
    Ran {
        output,
        out,
        _work: work,
    }
}

fn spec(load: &str, workload: &str) -> String {
    format!(
        r#"seed = 5

[target]
kind = "sim"
sim_profile = "sim.toml"

[load]
{load}

{workload}
"#
    )
}

fn entry(operation: &str, weight: u32) -> String {
    format!(
        r#"[[workload]]
model = "{LLAMA}"
operation = "{operation}"
weight = {weight}
input_tokens = 100
max_tokens = 20
"#
    )
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A mixed Converse / ConverseStream run once showed TPOT min 0 ns and a
/// mean below its p50: the unary requests entered the streaming figures.
/// Now TTFT, ITL and TPOT hold the streaming requests alone, E2E holds all,
/// and the report says so with both counts.
#[test]
fn a_mixed_run_keeps_unary_requests_out_of_the_streaming_figures() {
    let sim = "latency = { kind = \"fixed\", ttft_ms = 20.0, gap_ms = 2.0 }\n";
    let workload = entry("ConverseStream", 1) + &entry("Converse", 1);
    let ran = run(&spec("concurrency = 4\nrequests = 80", &workload), sim);
    assert_eq!(ran.output.status.code(), Some(0), "{}", ran.stderr());
    let figures = ran.figures();
    let streaming_ok: u64 = figures
        .series
        .iter()
        .filter(|s| s.label.contains("/ConverseStream/"))
        .map(|s| s.figures.outcome(Outcome::Ok))
        .sum();
    let f = &figures.overall;
    let ok = f.outcome(Outcome::Ok);
    assert_eq!(ok, 80);
    assert!(
        streaming_ok > 0 && streaming_ok < ok,
        "{streaming_ok} of {ok}"
    );
    assert_eq!(f.histogram(Metric::TtftFromSend).len(), streaming_ok);
    assert_eq!(f.histogram(Metric::Tpot).len(), streaming_ok);
    assert_eq!(f.histogram(Metric::E2eFromSend).len(), ok);
    // Every TPOT is a real decode gap (2 ms a token), never a unary 0.
    let tpot = f.histogram(Metric::Tpot);
    assert!(tpot.min() >= MS, "TPOT min {} ns", tpot.min());
    // Every TTFT is the 20 ms first token, never a unary E2E (~58 ms).
    let ttft = f.histogram(Metric::TtftFromSend);
    assert!(ttft.max() < 50 * MS, "TTFT max {} ns", ttft.max());
    let report = ran.report();
    let note = format!(
        "(TTFT, ITL and TPOT count ok streaming requests only, {streaming_ok} with a first token; \
         non-streaming requests are in E2E alone, which counts every ok request, {ok})"
    );
    assert!(report.contains(&note), "{report}");
}

/// A simulator whose only account has a 1,000 TPM quota: a closed loop of a
/// few users meets it within the first second.
const TINY_TPM: &str = r#"latency = { kind = "fixed", ttft_ms = 20.0, gap_ms = 2.0 }
default_account = false
[[accounts]]
access_key_id = "AKIDEXAMPLE"
secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
account_id = "123456789012"
quotas = { tpm = 1000 }
"#;

/// The quota wall: a closed loop with retries off against a tiny TPM quota.
/// The report names the wall and the quota, the refused demand, and prices
/// per successful request (the throttled ones are no divisor).
#[test]
fn a_run_at_the_quota_wall_says_so_and_prices_per_successful_request() {
    let sim = TINY_TPM;
    let ran = run(
        &spec(
            "concurrency = 8\nduration = \"2s\"",
            &entry("ConverseStream", 1),
        ),
        sim,
    );
    let report = ran.report();
    assert!(
        ran.output.status.code() == Some(0),
        "{}\n{report}",
        ran.stderr()
    );
    let figures = ran.figures();
    let f = &figures.overall;
    let ok = f.outcome(Outcome::Ok);
    let throttled = f.outcome(Outcome::Throttled);
    assert!(
        ok > 0 && throttled > 10 * ok,
        "ok {ok}, throttled {throttled}"
    );
    assert_eq!(f.count(Count::ThrottlesTpm), throttled, "the sim says TPM");
    let total = f.cost_usd().unwrap();
    assert!(total > 0.0);
    let each = f.cost_per_ok_request().unwrap();
    assert!(
        (each - total / ok as f64).abs() < 1e-15,
        "{each} vs {total}/{ok}"
    );
    assert!(report.contains("per successful request"), "{report}");
    assert!(
        report.contains(&format!(
            "throttled {} cost $0 (refused at admission, no usage billed)",
            quarry::report::count(throttled)
        )),
        "{report}"
    );
    assert!(
        report.contains("== Quota wall (measured stages) =="),
        "{report}"
    );
    assert!(
        report.contains("ended throttled: this run measured the account's quota wall"),
        "{report}"
    );
    assert!(
        report.contains(&format!(
            "tokens per minute (TPM) {}",
            quarry::report::count(throttled)
        )),
        "{report}"
    );
    assert!(report.contains("throttled requests/s; about "), "{report}");
    assert!(
        report.contains("pacing after a throttle: none: each virtual user sent its next request as soon as a throttle returned"),
        "{report}"
    );
}

/// `on_throttle = { think = "500ms" }`: each user pauses half a second after
/// every throttle, so in 2 s a user can be throttled at most 5 times
/// (one before each pause, and one at the end), where without pacing the
/// same run is throttled hundreds of times.
#[test]
fn pacing_after_a_throttle_bounds_the_throttles_per_user() {
    let sim = TINY_TPM;
    let ran = run(
        &spec(
            "concurrency = 8\nduration = \"2s\"\non_throttle = { think = \"500ms\" }",
            &entry("ConverseStream", 1),
        ),
        sim,
    );
    let report = ran.report();
    assert_eq!(ran.output.status.code(), Some(0), "{}", ran.stderr());
    let f = &ran.figures().all_stages;
    let throttled = f.outcome(Outcome::Throttled);
    assert!(throttled > 0, "{report}");
    assert!(throttled <= 8 * 5, "throttled {throttled}\n{report}");
    assert!(
        report.contains("pacing after a throttle: think 500ms after each throttle"),
        "{report}"
    );
}

/// A bad `on_throttle` is refused with the file, line and field.
#[test]
fn a_bad_on_throttle_names_file_line_and_field() {
    let sim = "latency = { kind = \"zero\" }\n";
    let ran = run(
        &spec(
            "rate = 5\nduration = \"1s\"\non_throttle = \"backoff\"",
            &entry("Converse", 1),
        ),
        sim,
    );
    assert_eq!(ran.output.status.code(), Some(2));
    let stderr = ran.stderr();
    assert!(
        stderr.contains(
            "spec.toml:10: load.on_throttle: only applies to a closed model (concurrency)"
        ),
        "{stderr}"
    );
    let ran = run(
        &spec(
            "concurrency = 2\nduration = \"1s\"\non_throttle = \"sleep\"",
            &entry("Converse", 1),
        ),
        sim,
    );
    assert_eq!(ran.output.status.code(), Some(2));
    let stderr = ran.stderr();
    assert!(
        stderr.contains("spec.toml:10: load.on_throttle: unknown value \"sleep\""),
        "{stderr}"
    );
    assert!(!Path::new(path_str(&ran.out)).exists(), "nothing was run");
}

/// Service tiers under overload: two decode slots, at most two Flex
/// requests waiting for one. A closed loop of ten users keeps the slots
/// busy, so Flex waits behind Standard and Priority and is refused with 503
/// first; they are never refused. The report and `results.json` break the
/// run down by tier: requests, 503s, latency, cost at each tier's price
/// (Flex half of Standard, built in; Priority twice, from `[tier_pricing]`).
#[test]
fn tiers_under_overload_shed_flex_first_and_report_each_tier() {
    let sim = "latency = { kind = \"fixed\", ttft_ms = 20.0, gap_ms = 10.0, capacity = 2 }\n\
               [[models]]\nid = \"meta.llama3-3-70b-instruct-v1:0\"\noutput = { kind = \"fixed\", tokens = 5 }\n\
               [tiers]\nflex_queue_limit = 2\n";
    let tiered = |tier: &str| entry("ConverseStream", 1) + &format!("service_tier = \"{tier}\"\n");
    let workload = entry("ConverseStream", 1)
        + &tiered("flex")
        + &tiered("priority")
        + "\n[tier_pricing]\npriority = 2.0\n";
    let ran = run(&spec("concurrency = 10\nrequests = 200", &workload), sim);
    let report = ran.report();
    assert_eq!(
        ran.output.status.code(),
        Some(0),
        "{}\n{report}",
        ran.stderr()
    );
    let figures = ran.figures();
    let tier = |label: &str| {
        &figures
            .tiers
            .iter()
            .find(|t| t.label == label)
            .unwrap_or_else(|| panic!("no tier {label}\n{report}"))
            .figures
    };
    let (standard, flex, priority) = (
        tier("standard (none named)"),
        tier("flex"),
        tier("priority"),
    );
    assert!(flex.count(Count::Unavailable) > 0, "{report}");
    assert_eq!(
        flex.count(Count::Unavailable),
        flex.outcome(Outcome::ServerError),
        "every Flex failure is a 503"
    );
    assert_eq!(standard.count(Count::Unavailable), 0, "{report}");
    assert_eq!(priority.count(Count::Unavailable), 0, "{report}");
    assert_eq!(standard.outcome(Outcome::Ok), standard.requests());
    assert_eq!(priority.outcome(Outcome::Ok), priority.requests());
    // Each tier priced at its ratio of the Standard price (same usage).
    let per_ok = |f: &quarry::report::Figures| f.cost_per_ok_request().unwrap();
    let flex_ratio = per_ok(flex) / per_ok(standard);
    let priority_ratio = per_ok(priority) / per_ok(standard);
    assert!((0.45..0.55).contains(&flex_ratio), "flex {flex_ratio}");
    assert!(
        (1.9..2.1).contains(&priority_ratio),
        "priority {priority_ratio}"
    );
    assert!(
        report
            .contains("== Service tiers (measured stages; by the tier each request asked for) =="),
        "{report}"
    );
    for label in ["standard (none named):", "flex:", "priority:"] {
        assert!(report.contains(&format!("\n{label}\n")), "{report}");
    }
    assert!(
        report.contains(&format!(
            "503 unavailable {} (",
            quarry::report::count(flex.count(Count::Unavailable))
        )),
        "{report}"
    );
    // results.json keys each series by its tier.
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ran.out.join("results.json")).unwrap()).unwrap();
    let tiers: std::collections::BTreeSet<_> = doc["series"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["tier"].as_str())
        .collect();
    assert_eq!(tiers.into_iter().collect::<Vec<_>>(), ["flex", "priority"]);
}
