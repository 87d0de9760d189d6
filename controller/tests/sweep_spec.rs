//! `[sweep]` and `[slo]` validation: each bad input is an error naming
//! `file:line: field`; good ones become the sweep the runner runs; each
//! level's spec is an ordinary run spec.

use std::path::Path;
use std::time::Duration;

use quarry::spec::{DEFAULT_LADDER, SweepMode, SweepVariable, level_spec_text, parse_spec};
use quarry_engine::LoadModel;

const BASE: &str = r#"[load]
duration = "1s"

[[workload]]
model = "meta.llama3-3-70b-instruct-v1:0"
input_tokens = 100
max_tokens = 50
"#;

fn spec(extra: &str) -> String {
    format!("{BASE}\n{extra}")
}

fn errors(text: &str) -> String {
    match parse_spec(Path::new("spec.toml"), text) {
        Ok(_) => panic!("spec was accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

/// Asserts `extra` (after the 9-line base) is rejected with `want`.
fn rejects(extra: &str, want: &str) {
    let text = spec(extra);
    let got = errors(&text);
    assert!(got.contains(want), "expected {want:?} in:\n{got}");
}

#[test]
fn a_concurrency_sweep_defaults_to_the_ladder() {
    let v = parse_spec(
        Path::new("s.toml"),
        &spec("[sweep]\nvariable = \"concurrency\"\n"),
    )
    .unwrap();
    let sweep = v.sweep.unwrap();
    assert_eq!(sweep.variable, SweepVariable::Concurrency);
    assert_eq!(sweep.mode, SweepMode::Levels(DEFAULT_LADDER.to_vec()));
    assert_eq!(DEFAULT_LADDER, [1.0, 5.0, 10.0, 25.0, 50.0]);
    assert!(v.slo.is_none());
}

#[test]
fn slo_sections_are_parsed_with_the_thresholds_language() {
    let text = spec(
        "[sweep]\nvariable = \"rate\"\nlevels = [0.5, 2, 8]\n\
         [slo]\nattainment = \"99%\"\n[slo.request]\nttft = \"2s\"\ntpot = \"80ms\"\n\
         [slo.criteria]\n\"ttft.p99\" = \"<= 2s\"\nthrottle_rate = \"<= 1%\"\n",
    );
    let v = parse_spec(Path::new("s.toml"), &text).unwrap();
    assert_eq!(
        v.sweep.unwrap().mode,
        SweepMode::Levels(vec![0.5, 2.0, 8.0])
    );
    assert!(matches!(v.plan.load.model(), LoadModel::Open { .. }));
    let slo = v.slo.unwrap();
    assert_eq!(slo.attainment, Some(0.99));
    assert_eq!(slo.request.ttft, Some(Duration::from_secs(2)));
    assert_eq!(slo.request.tpot, Some(Duration::from_millis(80)));
    assert_eq!(slo.request.e2e, None);
    let keys: Vec<&str> = slo.criteria.iter().map(|t| t.key.as_str()).collect();
    assert_eq!(keys, ["throttle_rate", "ttft.p99"]);
}

#[test]
fn a_search_takes_its_defaults() {
    let text = spec(
        "[sweep]\nvariable = \"rate\"\n[sweep.search]\nmax = 64\n[slo.criteria]\nerror_rate = \"< 1%\"\n",
    );
    let v = parse_spec(Path::new("s.toml"), &text).unwrap();
    let SweepMode::Search(s) = v.sweep.unwrap().mode else {
        panic!("not a search");
    };
    assert_eq!(
        (s.start, s.max, s.tolerance, s.max_levels),
        (1.0, 64.0, 0.05, 12)
    );
}

#[test]
fn bad_sweep_inputs_name_file_line_and_field() {
    rejects(
        "[sweep]\nvariable = \"users\"\n",
        "spec.toml:10: sweep.variable: unknown sweep variable \"users\"",
    );
    rejects(
        "[sweep]\nlevels = [1]\n",
        "spec.toml:9: sweep.variable: is required",
    );
    rejects(
        "[sweep]\nvariable = \"concurrency\"\nlevels = [1, 2.5]\n",
        "spec.toml:11: sweep.levels[1]: a concurrency level must be a whole number",
    );
    rejects(
        "[sweep]\nvariable = \"concurrency\"\nlevels = [5, 5]\n",
        "spec.toml:11: sweep.levels[1]: levels must increase, got 5 after 5",
    );
    rejects(
        "[sweep]\nvariable = \"rate\"\nlevels = []\n",
        "spec.toml:11: sweep.levels: must list at least one level",
    );
    rejects(
        "[sweep]\nvariable = \"rate\"\nlevels = [-1]\n",
        "spec.toml:11: sweep.levels[0]: a rate level must be > 0",
    );
    rejects(
        "[sweep]\nvariable = \"rate\"\n",
        "spec.toml:9: sweep.levels: is required for a rate sweep",
    );
    rejects(
        "[sweep]\nvariable = \"rate\"\n[sweep.search]\nmax = 10\ntolerance = 1.5\n",
        "spec.toml:13: sweep.search.tolerance: must be a fraction between 0 and 1",
    );
    rejects(
        "[sweep]\nvariable = \"rate\"\n[sweep.search]\nstart = 4\nmax = 2\n",
        "spec.toml:13: sweep.search.max: must be above sweep.search.start (4), got 2",
    );
    rejects(
        "[sweep]\nvariable = \"rate\"\n[sweep.search]\nmax = 8\nmax_levels = 1\n",
        "spec.toml:13: sweep.search.max_levels: must be >= 2, got 1",
    );
    rejects(
        "[sweep]\nvariable = \"rate\"\n[sweep.search]\nstart = 1\n",
        "sweep.search.max: is required",
    );
    rejects(
        "[sweep]\nvariable = \"rate\"\n[sweep.search]\nmax = 8\n",
        "spec.toml:11: sweep.search: a search needs an [slo]",
    );
    rejects(
        "[sweep]\nvariable = \"rate\"\nlevels = [1]\n[sweep.search]\nmax = 8\n",
        "spec.toml:11: sweep.levels: give either levels or [sweep.search], not both",
    );
    rejects(
        "[sweep]\nvariable = \"concurrency\"\nlevelz = [1]\n",
        "spec.toml:11: sweep.levelz: unknown field `levelz`",
    );
}

#[test]
fn a_sweep_refuses_a_load_it_would_override_the_wrong_way() {
    let text = "[load]\nrate = 2.0\nduration = \"1s\"\n[[workload]]\nmodel = \"meta.llama3-3-70b-instruct-v1:0\"\ninput_tokens = 1\nmax_tokens = 1\n[sweep]\nvariable = \"concurrency\"\n";
    let got = errors(text);
    assert!(
        got.contains("spec.toml:2: load.rate: the sweep varies concurrency"),
        "{got}"
    );
    let text = "[load]\nconcurrency = 2\n[[load.stages]]\nkind = \"hold\"\nduration = \"1s\"\n[[workload]]\nmodel = \"meta.llama3-3-70b-instruct-v1:0\"\ninput_tokens = 1\nmax_tokens = 1\n[sweep]\nvariable = \"concurrency\"\n";
    let got = errors(text);
    assert!(
        got.contains("spec.toml:3: load.stages: a sweep level is one hold"),
        "{got}"
    );
}

#[test]
fn bad_slo_inputs_name_file_line_and_field() {
    let sweep = "[sweep]\nvariable = \"concurrency\"\n";
    rejects(
        &format!("{sweep}[slo]\nattainment = \"150%\"\n[slo.request]\nttft = \"1s\"\n"),
        "spec.toml:12: slo.attainment: must be a fraction in (0, 1]",
    );
    rejects(
        &format!("{sweep}[slo]\nattainment = 0.99\n"),
        "spec.toml:12: slo.attainment: needs [slo.request] bounds",
    );
    rejects(
        &format!("{sweep}[slo.request]\nttft = \"soon\"\n"),
        "spec.toml:12: slo.request.ttft:",
    );
    rejects(
        &format!("{sweep}[slo.criteria]\n\"ttft.p98\" = \"< 1s\"\n"),
        "spec.toml:12: slo.criteria.ttft.p98:",
    );
    rejects(
        &format!("{sweep}[slo.criteria]\nthrottle_rate = \"about 1%\"\n"),
        "spec.toml:12: slo.criteria.throttle_rate:",
    );
    rejects(
        "[slo.criteria]\nerror_rate = \"< 1%\"\n",
        "slo: is judged per sweep level: it needs a [sweep] section",
    );
    rejects(
        &format!("{sweep}[slo]\ntarget_rate = 4.0\n"),
        "spec.toml:12: slo.target_rate: does not match the sweep's variable: a concurrency sweep states its target as slo.target_concurrency",
    );
    rejects(
        &format!("{sweep}[slo]\ntarget_concurrency = 2.5\n"),
        "spec.toml:12: slo.target_concurrency: must be a whole number of virtual users, got 2.5",
    );
    rejects(
        &format!("{sweep}[slo]\ntarget_concurrency = -1\n"),
        "spec.toml:12: slo.target_concurrency: must be a positive number, got -1",
    );
    rejects(
        "[sweep]\nvariable = \"concurrency\"\nmax_duration = \"forever\"\n",
        "spec.toml:11: sweep.max_duration:",
    );
}

#[test]
fn a_longer_level_spec_sets_its_duration() {
    let text = spec("[sweep]\nvariable = \"concurrency\"\n");
    let level = level_spec_text(
        &text,
        SweepVariable::Concurrency,
        2.0,
        Some(Duration::from_millis(4_840)),
    )
    .unwrap();
    assert!(level.contains("duration = \"4840ms\""), "{level}");
    let v = parse_spec(Path::new("level.toml"), &level).unwrap();
    assert!(v.sweep.is_none());
}

#[test]
fn a_level_spec_is_an_ordinary_run_spec() {
    let text = spec(
        "[sweep]\nvariable = \"concurrency\"\nlevels = [1, 4]\n[slo.criteria]\nerror_rate = \"< 1%\"\n",
    );
    let level = level_spec_text(&text, SweepVariable::Concurrency, 4.0, None).unwrap();
    let v = parse_spec(Path::new("level.toml"), &level).unwrap();
    assert!(v.sweep.is_none() && v.slo.is_none(), "{level}");
    assert_eq!(v.plan.load.model(), &LoadModel::closed(4).unwrap());
    let rate = spec("[sweep]\nvariable = \"rate\"\nlevels = [1.5]\n");
    let level = level_spec_text(&rate, SweepVariable::Rate, 1.5, None).unwrap();
    let v = parse_spec(Path::new("level.toml"), &level).unwrap();
    assert!(
        matches!(v.plan.load.model(), LoadModel::Open { rate_per_s, .. } if *rate_per_s == 1.5),
        "{level}"
    );
}

fn quarry(args: &[&str], cwd: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_quarry"))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}

#[test]
fn run_refuses_a_sweep_and_validate_checks_one() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("sweep.toml"),
        spec("[sweep]\nvariable = \"concurrency\"\n"),
    )
    .unwrap();
    let run = quarry(&["run", "sweep.toml"], tmp.path());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("has a [sweep] section: run it with `quarry sweep`"),
        "{stderr}"
    );
    assert!(!tmp.path().join("results").exists(), "nothing was run");

    let ok = quarry(&["validate", "sweep.toml"], tmp.path());
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    std::fs::write(
        tmp.path().join("bad.toml"),
        spec("[sweep]\nvariable = \"concurrency\"\n[slo.criteria]\nerror_rate = \"lots\"\n"),
    )
    .unwrap();
    let bad = quarry(&["validate", "bad.toml"], tmp.path());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("bad.toml:12: slo.criteria.error_rate:"),
        "{stderr}"
    );

    std::fs::write(
        tmp.path().join("plain.toml"),
        BASE.replace("[load]\n", "[load]\nconcurrency = 1\n"),
    )
    .unwrap();
    let sweep = quarry(&["sweep", "plain.toml"], tmp.path());
    let stderr = String::from_utf8_lossy(&sweep.stderr);
    assert_eq!(sweep.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("has no [sweep] section: use `quarry run`"),
        "{stderr}"
    );
}

/// `slo.target_concurrency`: exit 1 when no level at or above it passed,
/// 0 when one did (the sweeps are two one-second levels each).
#[test]
fn a_stated_target_decides_the_exit_code() {
    let tmp = tempfile::tempdir().unwrap();
    for (target, code) in [(3, 1), (2, 0)] {
        let name = format!("target-{target}.toml");
        std::fs::write(
            tmp.path().join(&name),
            spec(&format!(
                "[sweep]\nvariable = \"concurrency\"\nlevels = [1, 2]\n[slo]\ntarget_concurrency = {target}\n[slo.criteria]\nerror_rate = \"<= 1%\"\n"
            )),
        )
        .unwrap();
        let out = format!("sweep-{target}");
        let sweep = quarry(&["sweep", &name, "--out", &out], tmp.path());
        let stderr = String::from_utf8_lossy(&sweep.stderr);
        let stdout = String::from_utf8_lossy(&sweep.stdout);
        assert_eq!(sweep.status.code(), Some(code), "{stderr}\n{stdout}");
        let doc = quarry::sweep::read_sweep(&tmp.path().join(&out)).unwrap();
        let t = doc.result.target.expect("the target is recorded");
        assert_eq!((t.value, t.met), (f64::from(target), code == 0));
        if code == 1 {
            assert!(
                stderr.contains("the SLO does not hold at the target concurrency = 3"),
                "{stderr}"
            );
            assert!(
                stdout.contains("target:         concurrency = 3: NOT met"),
                "{stdout}"
            );
        } else {
            assert!(
                stdout.contains("target:         concurrency = 2: met"),
                "{stdout}"
            );
        }
    }
}
