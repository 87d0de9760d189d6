//! `quarry sweep` end to end: a three-level concurrency sweep against the
//! embedded simulator (fixed latency, a TPM quota only the top level
//! exceeds), each level an ordinary results directory, the binding
//! constraint named as the TPM quota, and `sweep.json` round-tripping;
//! and an open-loop rate search whose `feasible_max` lands on the rate the
//! TPM quota arithmetic allows (issue 12's quota knee).
//!
//! The levels are about a second each; the quota arithmetic has a wide
//! margin either side (see the constants), so machine speed does not
//! decide the outcome.

use std::path::Path;
use std::time::{Duration, SystemTime};

use quarry::results::read_results;
use quarry::run::{Placement, stop_signal};
use quarry::spec::parse_spec;
use quarry::sweep::{SWEEP_SCHEMA, SweepOptions, Verdict, read_sweep, run_sweep};

/// 50 ms to the first token, 5 ms per further token: a request of 10
/// output tokens takes about 100 ms, so one user sends at most ~10
/// requests a second, each reserving 100 input + 10 max tokens against the
/// quota: ~1,100 tokens a second per user. Within the 1 s level the
/// sliding minute window starts empty: 1 and 2 users (~1,100 and ~2,200
/// tokens) stay under 3,000 TPM; 8 users (~8,800) run into it.
const SIM: &str = r#"seed = 1
default_account = false
latency = { kind = "fixed", ttft_ms = 50.0, gap_ms = 5.0 }
[[accounts]]
access_key_id = "AKIDEXAMPLE"
secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
account_id = "123456789012"
quotas = { tpm = 3000 }
"#;

const SPEC: &str = r#"seed = 7
[target]
kind = "sim"
sim_profile = "sim.toml"

[load]
duration = "1s"

[[workload]]
model = "meta.llama3-3-70b-instruct-v1:0"
input_tokens = 100
max_tokens = 10

[sweep]
variable = "concurrency"
levels = [1, 2, 8]

[slo]
attainment = "90%"
[slo.request]
ttft = "5s"
[slo.criteria]
throttle_rate = "<= 1%"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_sweep_names_the_tpm_quota_and_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("sim.toml"), SIM).unwrap();
    let spec_path = tmp.path().join("spec.toml");
    std::fs::write(&spec_path, SPEC).unwrap();
    let valid = parse_spec(&spec_path, SPEC).expect("valid sweep spec");
    let out = tmp.path().join("sweep");
    #[allow(clippy::disallowed_methods)] // names the levels' runs
    let started_at = SystemTime::now();
    let opts = SweepOptions {
        spec_path: spec_path.clone(),
        out_dir: out.clone(),
        started_at,
        interval: Duration::from_millis(500),
        grace: Duration::from_secs(5),
        live_in_place: false,
    };
    let (_handle, signal) = stop_signal();
    let outcome = run_sweep(&valid, &opts, |_| async { Ok(Placement::Local) }, signal)
        .await
        .expect("the sweep runs");
    let doc = &outcome.document;
    assert_eq!(doc.schema, SWEEP_SCHEMA);
    assert_eq!(doc.ended, "completed");
    let values: Vec<f64> = doc.levels.iter().map(|l| l.value).collect();
    assert_eq!(values, [1.0, 2.0, 8.0]);
    let verdicts: Vec<Verdict> = doc.levels.iter().map(|l| l.verdict).collect();
    assert_eq!(
        verdicts,
        [Verdict::Pass, Verdict::Pass, Verdict::Fail],
        "{}",
        outcome.report
    );
    let top = &doc.levels[2];
    assert!(
        top.throttle_reasons
            .iter()
            .any(|(r, n)| r == "tokens_per_minute" && *n > 0),
        "{:?}",
        top.throttle_reasons
    );
    assert_eq!(doc.result.feasible_max, Some(2.0));
    assert_eq!(doc.result.infeasible_min, Some(8.0));
    let binding = doc.result.binding.as_ref().expect("a binding constraint");
    assert_eq!(binding.level, 8.0);
    assert_eq!(binding.criterion.as_deref(), Some("throttle_rate <= 1%"));
    assert_eq!(
        binding.wall.as_deref(),
        Some("quota: TPM (tokens per minute)")
    );

    // Each level is an ordinary results directory whose counts are the row's.
    for level in &doc.levels {
        let results = read_results(&out.join(&level.dir)).expect("an ordinary results directory");
        assert_eq!(results.run.run_id, level.run_id);
        let spec_text = std::fs::read_to_string(out.join(&level.dir).join("spec.toml")).unwrap();
        assert!(!spec_text.contains("[sweep]"), "{spec_text}");
        assert!(
            spec_text.contains(&format!("concurrency = {}", level.value as u64)),
            "{spec_text}"
        );
        assert!(level.ok > 0 && level.ok <= level.requests, "{level:?}");
        assert!(level.attempts >= level.requests, "{level:?}");
    }

    // sweep.json round-trips, and report.txt is what the run returned.
    assert_eq!(&read_sweep(&out).expect("sweep.json reads"), doc);
    let report = std::fs::read_to_string(out.join("report.txt")).unwrap();
    assert_eq!(report, outcome.report);
    assert!(
        report
            .contains("binding:        at concurrency = 8: throttle_rate <= 1%; wall: quota: TPM"),
        "{report}"
    );
    assert!(Path::new(&out.join("sweep.json")).is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_keeps_finished_levels_and_marks_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("sim.toml"), SIM).unwrap();
    let spec_path = tmp.path().join("spec.toml");
    std::fs::write(&spec_path, SPEC).unwrap();
    let valid = parse_spec(&spec_path, SPEC).expect("valid sweep spec");
    let out = tmp.path().join("sweep");
    #[allow(clippy::disallowed_methods)] // names the levels' runs
    let started_at = SystemTime::now();
    let opts = SweepOptions {
        spec_path,
        out_dir: out.clone(),
        started_at,
        interval: Duration::from_millis(500),
        grace: Duration::from_secs(5),
        live_in_place: false,
    };
    let (handle, signal) = stop_signal();
    // The stop arrives while the first level is being placed: that level
    // runs stopped, and no other level starts.
    let handle = std::sync::Arc::new(handle);
    let place = {
        let handle = std::sync::Arc::clone(&handle);
        move |_| {
            handle.escalate();
            async { Ok(Placement::Local) }
        }
    };
    let outcome = run_sweep(&valid, &opts, place, signal)
        .await
        .expect("a stopped sweep still writes its files");
    let doc = read_sweep(&out).unwrap();
    assert_eq!(doc, outcome.document);
    assert_eq!(doc.ended, "stopped");
    assert_eq!(doc.levels.len(), 1);
    assert_eq!(doc.levels[0].ended, "stopped");
    assert_eq!(doc.levels[0].verdict, Verdict::Invalid);
    assert_eq!(doc.not_run, [2.0, 8.0]);
    assert!(read_results(&out.join(&doc.levels[0].dir)).is_ok());
    drop(handle);
}

// ---------------------------------------------------------------------------
// The quota knee (issue 12, acceptance): an open-loop rate search against a
// TPM quota finds the rate the quota arithmetic allows.
//
// The simulator's minute window is 60 s long (sliding 1 s buckets, or the
// clock minute; no shorter window exists), and every level starts its own
// embedded simulator with empty windows. A level shorter than a minute
// therefore never sees a token leave the window: what it can carry is
// "the quota divided over the level", Q / (R × T) arrivals per second for
// a level of T seconds whose requests reserve R each, not the steady-state
// Q / (60 × R) a level of a minute or more would find. The test states that
// arithmetic from `quarry_bedrock`'s reservation and settlement and checks
// the search lands on it; the levels stay a few seconds long for CI.

/// Prompt and output sizes: the simulator answers 1,000 tokens unless cut,
/// so every answer is cut at `max_tokens` and settles exactly what it
/// reserved (Llama's burndown is 1): no capacity comes back at settlement,
/// and admission does not depend on when requests finish.
const KNEE_INPUT: u64 = 100;
const KNEE_MAX_TOKENS: u64 = 10;
const KNEE_MODEL: &str = "meta.llama3-3-70b-instruct-v1:0";
/// The TPM quota. The simulator counts the generated 100-token prompt as
/// about 109 tokens (its own count, which the test reads back), so a
/// request reserves about 119 and the quota admits about 100 of them.
const KNEE_TPM: u64 = 12_000;
/// Seconds per level (no warmup stage: every arrival is measured and counted
/// against the same window).
const KNEE_LEVEL_S: u64 = 3;

fn knee_sim() -> String {
    format!(
        r#"seed = 1
default_account = false
latency = {{ kind = "fixed", ttft_ms = 20.0, gap_ms = 2.0 }}
[[accounts]]
access_key_id = "AKIDEXAMPLE"
secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
account_id = "123456789012"
quotas = {{ tpm = {KNEE_TPM} }}
[[models]]
id = "{KNEE_MODEL}"
output = {{ kind = "fixed", tokens = 1000 }}
"#
    )
}

/// Search from 10/s doubling, tolerance 20% (wider than the 5% default to
/// keep the level count low in CI): with the knee near 33.6/s the levels
/// are 10, 20, 40 (fails), 30 (passes), 35 (fails), then (35 - 30) / 35 ≤
/// 20% converges. Each level is several requests away from the ~100 the
/// quota admits in a level (30/s: 90 arrivals; 35/s: 105), so the verdicts
/// do not hang on the timing of one arrival.
fn knee_spec() -> String {
    format!(
        r#"seed = 7
[target]
kind = "sim"
sim_profile = "sim.toml"

[load]
arrival = "constant"
max_in_flight = 64
duration = "{KNEE_LEVEL_S}s"

[[workload]]
model = "{KNEE_MODEL}"
input_tokens = {KNEE_INPUT}
max_tokens = {KNEE_MAX_TOKENS}

[sweep]
variable = "rate"
[sweep.search]
start = 10
max = 80
tolerance = 0.2
max_levels = 6

[slo.criteria]
throttle_rate = "<= 1%"
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_search_finds_the_tpm_quota_knee() {
    use quarry_bedrock::{TokenUsage, output_burndown, reservation, settlement};

    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("sim.toml"), knee_sim()).unwrap();
    let spec_path = tmp.path().join("spec.toml");
    let spec = knee_spec();
    std::fs::write(&spec_path, &spec).unwrap();
    let valid = parse_spec(&spec_path, &spec).expect("valid search spec");
    let out = tmp.path().join("sweep");
    #[allow(clippy::disallowed_methods)] // names the levels' runs
    let started_at = SystemTime::now();
    let opts = SweepOptions {
        spec_path: spec_path.clone(),
        out_dir: out.clone(),
        started_at,
        interval: Duration::from_millis(500),
        grace: Duration::from_secs(5),
        live_in_place: false,
    };
    let (_handle, signal) = stop_signal();
    let outcome = run_sweep(&valid, &opts, |_| async { Ok(Placement::Local) }, signal)
        .await
        .expect("the sweep runs");
    let doc = &outcome.document;
    let report = &outcome.report;
    assert_eq!(doc.ended, "completed", "{report}");
    assert_eq!(doc.mode, "search");
    assert_eq!(
        doc.result.search_end.as_deref(),
        Some("converged"),
        "{report}"
    );
    assert!(doc.levels.len() <= 6, "{report}");

    // The simulator's own counts per level: served requests' input and
    // output tokens, and what its pool reserved and settled. The
    // reservation and settlement arithmetic must reproduce the pool's
    // totals, and settlement must give nothing back.
    let burndown = output_burndown(KNEE_MODEL);
    let mut input_all = 0;
    let mut ok_all = 0;
    let mut per_level = Vec::new();
    for level in &doc.levels {
        let results = read_results(&out.join(&level.dir)).expect("a results directory");
        let sim = results.simulator.expect("the simulator's view");
        let usage = TokenUsage {
            input_tokens: sim.lanes.iter().map(|l| l.input_tokens).sum(),
            output_tokens: sim.lanes.iter().map(|l| l.output_tokens).sum(),
            ..TokenUsage::default()
        };
        let reserved_total: u64 = sim.quota.iter().map(|p| p.reserved_total).sum();
        let settled_total: u64 = sim.quota.iter().map(|p| p.settled_total).sum();
        assert_eq!(usage.output_tokens, level.ok * KNEE_MAX_TOKENS, "{level:?}");
        let reserved = reservation(&usage, level.ok * KNEE_MAX_TOKENS);
        assert_eq!(reserved_total, reserved, "{level:?}");
        assert_eq!(settled_total, settlement(&usage, burndown), "{level:?}");
        assert_eq!(settled_total, reserved_total, "{level:?}");
        input_all += usage.input_tokens;
        ok_all += level.ok;
        per_level.push(reserved_total);
    }

    // The quota arithmetic: a request reserves (mean prompt as the
    // simulator counts it + max_tokens); a level of T seconds admits Q of
    // them; the knee is Q / (R × T) arrivals per second.
    let mean_reserved = reservation(
        &TokenUsage {
            input_tokens: input_all,
            ..TokenUsage::default()
        },
        ok_all * KNEE_MAX_TOKENS,
    ) as f64
        / ok_all as f64;
    let knee = KNEE_TPM as f64 / (mean_reserved * KNEE_LEVEL_S as f64);
    // `throttle_rate <= 1%` still holds a little past the knee: up to 1%
    // of a level's arrivals may be refused.
    let knee_with_slack = knee / 0.99;

    let tolerance = doc.search.expect("search parameters").tolerance;
    let feasible = doc.result.feasible_max.expect("a level passed");
    let infeasible = doc.result.infeasible_min.expect("a level failed");
    let levels: Vec<f64> = doc.levels.iter().map(|l| l.value).collect();
    eprintln!(
        "quota knee: {mean_reserved:.1} quota tokens reserved per request, expected \
         {knee:.2} arrivals/s; feasible_max {feasible}/s, infeasible_min {infeasible}/s; \
         levels {levels:?}"
    );
    assert!(
        feasible <= knee_with_slack && infeasible > knee,
        "knee {knee}/s not between {feasible} and {infeasible}\n{report}"
    );
    assert!(
        (knee - feasible) / knee <= tolerance,
        "feasible_max {feasible}/s not within {tolerance} of {knee}/s\n{report}"
    );
    let binding = doc.result.binding.as_ref().expect("a binding constraint");
    assert_eq!(binding.level, infeasible);
    assert_eq!(binding.criterion.as_deref(), Some("throttle_rate <= 1%"));
    assert_eq!(
        binding.wall.as_deref(),
        Some("quota: TPM (tokens per minute)"),
        "{report}"
    );

    // Level by level: under the knee nothing was refused; over it the
    // quota filled to within about a request of Q, then refused by TPM.
    for (level, reserved_total) in doc.levels.iter().zip(per_level) {
        let tpm_throttles: u64 = level
            .throttle_reasons
            .iter()
            .filter(|(r, _)| r == "tokens_per_minute")
            .map(|(_, n)| n)
            .sum();
        if level.value < knee {
            assert_eq!(level.verdict, Verdict::Pass, "{level:?}\n{report}");
            assert_eq!(tpm_throttles, 0, "{level:?}");
        } else if level.value > knee_with_slack {
            assert_eq!(level.verdict, Verdict::Fail, "{level:?}\n{report}");
            assert!(tpm_throttles > 0, "{level:?}");
            assert!(reserved_total <= KNEE_TPM, "{level:?}");
            assert!(
                ((KNEE_TPM - reserved_total) as f64) < 2.0 * mean_reserved,
                "{reserved_total} of {KNEE_TPM}: {level:?}"
            );
        }
    }
}
