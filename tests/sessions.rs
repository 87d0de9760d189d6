//! Multi-turn sessions end to end: `quarry run` with `[sessions]` against
//! the embedded simulator, read back from `results.json` and `report.txt`.
//!
//! What is asserted, and why it is exact:
//! - the prompt cache model: a turn marks checkpoints after the previous
//!   question and after its own, so turn k (k ≥ 2) reads from the cache
//!   exactly what turn k − 1 read and wrote (everything before its last
//!   checkpoint), and the only uncached input is the template's framing of
//!   its 2k − 1 messages. Summed over the sessions of each turn, as the
//!   per-turn series hold them; every session completes (the request limit
//!   is a whole number of sessions per user);
//! - the context grows every turn by at least the previous answer;
//! - the Opus coding-assistant preset meets the daily token cap
//!   (2,592,000, not adjustable) and the report says when, with the quota
//!   tokens settled before it (the simulator's own rule: the cap refuses a
//!   request whose reservation does not fit in what is left).
//!
//! The simulator runs with zero latency (profile `zero`, or a config file
//! for the preset) so the tests are quick; times are not asserted.

use std::collections::BTreeMap;
use std::path::Path;

use quarry_bedrock::{Framing, ModelFamily};
use quarry_e2e::procs::{quarry, text};
use serde_json::Value;

/// Counter `name` summed over every token provenance (`tokens_<kind>_*`).
fn tokens(series: &Value, kind: &str) -> u64 {
    series["counters"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with(&format!("tokens_{kind}_")))
        .map(|(_, v)| v.as_u64().unwrap())
        .sum()
}

/// Per turn: (requests ok, input, cache read, cache write, output).
fn per_turn(doc: &Value) -> BTreeMap<u64, [u64; 5]> {
    let mut out = BTreeMap::<u64, [u64; 5]>::new();
    for s in doc["series"].as_array().unwrap() {
        let Some(turn) = s["turn"].as_u64() else {
            continue;
        };
        let row = out.entry(turn).or_default();
        row[0] += s["counters"]["outcome_ok"].as_u64().unwrap_or(0);
        row[1] += tokens(s, "input");
        row[2] += tokens(s, "cache_read");
        row[3] += tokens(s, "cache_write");
        row[4] += tokens(s, "output");
    }
    out
}

fn run(dir: &Path, spec: &str) -> (Value, String) {
    std::fs::write(dir.join("spec.toml"), spec).unwrap();
    let out = quarry(&["run", "spec.toml", "--out", "results"], dir);
    let report = std::fs::read_to_string(dir.join("results/report.txt")).unwrap_or_default();
    assert!(
        out.status.code().is_some(),
        "quarry ended by a signal: {}",
        text(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(
        &std::fs::read(dir.join("results/results.json"))
            .unwrap_or_else(|e| panic!("{e}: {}\n{report}", text(&out.stderr))),
    )
    .unwrap();
    (doc, report)
}

#[test]
fn each_turn_reads_from_the_cache_what_the_turn_before_it_read_and_wrote() {
    let dir = tempfile::tempdir().unwrap();
    // One user, four turns a session, eight requests: two whole sessions,
    // the second reading the shared prefix the first wrote.
    let spec = r#"
seed = 21
[target]
sim_profile = "zero"
[load]
concurrency = 1
requests = 8
[sessions]
turns = 4
cache = true
[[workload]]
model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
operation = "ConverseStream"
system_prompt = "You are a helpful assistant."
cache_prefix_tokens = 1200
input_tokens = { dist = "uniform", min = 30, max = 90 }
max_tokens = 120
"#;
    let (doc, report) = run(dir.path(), spec);
    let turns = per_turn(&doc);
    assert_eq!(
        turns.keys().copied().collect::<Vec<_>>(),
        [1, 2, 3, 4],
        "{report}"
    );
    let framing = Framing::of(ModelFamily::Anthropic);
    for (&k, row) in &turns {
        let [ok, input, read, write, _] = *row;
        assert_eq!(ok, 2, "turn {k}: both sessions\n{report}");
        let messages = 2 * k as usize - 1;
        assert_eq!(
            input,
            2 * framing.tokens(messages, true),
            "turn {k}: only the framing is uncached\n{report}"
        );
        if k >= 2 {
            let [_, _, prev_read, prev_write, prev_output] = turns[&(k - 1)];
            assert_eq!(
                read,
                prev_read + prev_write,
                "turn {k} reads what turn {} read and wrote\n{report}",
                k - 1
            );
            assert!(
                write > prev_output,
                "turn {k} writes the previous answer and its new question\n{report}"
            );
        }
    }
    // Each session recorded once, in its first turn's series.
    let counters = |name: &str| -> u64 {
        doc["series"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["counters"][name].as_u64().unwrap_or(0))
            .sum()
    };
    assert_eq!(counters("sessions_completed"), 2);
    assert_eq!(
        counters("sessions_failed") + counters("sessions_unfinished"),
        0
    );
    assert!(report.contains("== Sessions"), "{report}");
    assert!(report.contains("2 started: 2 completed"), "{report}");
    assert!(report.contains("turn  requests"), "{report}");
    // The simulator counted the same tokens.
    let sim = &doc["simulator"];
    assert!(!sim.is_null(), "the embedded simulator's view is kept");
}

#[test]
fn the_opus_coding_preset_reports_when_the_daily_cap_is_met() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let preset = std::fs::read_to_string(root.join("examples/coding-assistant.toml")).unwrap();
    // Zero latency and no think time: the same arithmetic in seconds. The
    // per-minute quotas are raised so only the daily cap can bind (a real
    // user thinking between turns is far below them).
    std::fs::write(
        dir.path().join("sim.toml"),
        r#"
latency = { kind = "zero" }
[[models]]
id = "anthropic.claude-opus-4-6-v1"
quotas = { tpm = 1000000000, rpm = 1000000, cross_region_tpm = 1000000000, cross_region_rpm = 1000000 }
"#,
    )
    .unwrap();
    let spec = preset
        .replace("seed = 26", "seed = 26\n[target]\nsim_profile = \"sim.toml\"")
        .replace("duration = \"6h\"", "duration = \"15s\"")
        .replace(
            "think_time = { dist = \"lognormal\", mean = \"5s\", stddev = \"5s\", min = \"1s\", max = \"1m\" }",
            "think_time = \"0s\"",
        );
    assert!(spec.contains("sim.toml") && spec.contains("\"15s\"") && spec.contains("\"0s\""));
    let (doc, report) = run(dir.path(), &spec);
    let walls = doc["walls_met"]
        .as_array()
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(walls.len(), 1, "{walls:?}\n{report}");
    let wall = &walls[0];
    assert_eq!(wall["wall"], "tokens_per_day");
    const CAP: u64 = 2_592_000;
    let before = wall["quota_settled_before"].as_u64().unwrap();
    let through = wall["quota_settled_through"].as_u64().unwrap();
    // The cap refuses a request when what is settled plus the reservations
    // in flight (the other session's, and its own: a whole context, at most
    // Opus's 200,000-token window, + 2,000 max_tokens) passes 2,592,000: at
    // that moment no more than the cap had settled, and more than the cap
    // less two reservations.
    assert!(before <= CAP, "{before} settled before the cap\n{report}");
    assert!(
        through + 2 * 202_000 > CAP,
        "{through} settled through the cap's interval\n{report}"
    );
    assert!(
        report.contains("first met the daily token cap (TPD)"),
        "{report}"
    );
    assert!(report.contains("tokens per day (TPD)"), "{report}");
    // The run fails its error-rate threshold once the cap refuses the user.
    let ok: u64 = doc["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["counters"]["outcome_ok"].as_u64().unwrap_or(0))
        .sum();
    assert!(ok > 50, "many turns before the cap: {ok}\n{report}");
}
