//! `quarry sweep` end to end: a three-level concurrency sweep against the
//! embedded simulator (fixed latency, a TPM quota only the top level
//! exceeds), each level an ordinary results directory, the binding
//! constraint named as the TPM quota, and `sweep.json` round-tripping.
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
