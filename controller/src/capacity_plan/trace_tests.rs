//! A trace as a plan's demand: the figures read from a trace, worked out by
//! hand below, and how its profiles find their classes.

use super::*;
use crate::replay::parse_trace;

const SONNET: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
const LLAMA: &str = "meta.llama3-3-70b-instruct-v1:0";

/// (offset s, model, input, output, session).
type Row = (f64, &'static str, u32, u32, Option<&'static str>);

/// Sonnet: 6 requests over the trace's 240 s, four of them in
/// [100 s, 160 s); two sessions. Llama: 2 requests, 200 s apart.
const ROWS: &[Row] = &[
    (0.0, SONNET, 1_000, 100, Some("a")),
    (40.0, LLAMA, 300, 30, None),
    (100.0, SONNET, 2_000, 300, Some("a")),
    (120.0, SONNET, 1_500, 200, Some("b")),
    (130.0, SONNET, 500, 50, Some("b")),
    (159.999, SONNET, 1_000, 150, Some("a")),
    (160.0, SONNET, 3_000, 400, None),
    (240.0, LLAMA, 500, 70, None),
];

fn text(rows: &[Row]) -> String {
    rows.iter()
        .map(|(at, model, input, output, session)| {
            let session = session
                .map(|s| format!(r#","session":"{s}""#))
                .unwrap_or_default();
            format!(
                r#"{{"offset":{at},"model":"{model}","input_tokens":{input},"output_tokens":{output}{session}}}"#
            ) + "\n"
        })
        .collect()
}

fn demand(rows: &[Row]) -> Result<TraceDemand, String> {
    let trace = parse_trace(&text(rows), false).unwrap();
    trace_demand(Path::new("t/prod.jsonl"), "prod.jsonl", &trace)
}

#[test]
fn each_model_gets_its_rates_tokens_and_sessions_from_the_trace() {
    let d = demand(ROWS).unwrap();
    assert_eq!((d.requests, d.span_s), (8, 240.0));
    let labels: Vec<&str> = d.profiles.iter().map(|p| p.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            format!("prod.jsonl:{SONNET}"),
            format!("prod.jsonl:{LLAMA}")
        ]
    );
    let s = d.profile(SONNET).unwrap();
    assert_eq!((s.requests, s.duration_s), (6, 240.0));
    // 6 requests ÷ 240 s × 60.
    assert_eq!(s.average_rpm, Some(1.5));
    // [100 s, 160 s) holds the ones at 100, 120, 130 and 159.999 s; 160 s
    // is the next window's.
    assert_eq!(s.peak_rpm, Some(4.0));
    assert!(
        s.source
            .contains("peak 4 in its busiest 60-second window, [offset 100 s, +60 s) from line 3;"),
        "{}",
        s.source
    );
    assert!(
        s.source
            .starts_with("t/prod.jsonl: 8 requests (lines 1–8), offset 0 s to offset 240 s (a span of 240 s); 6 of them to"),
        "{}",
        s.source
    );
    // Inputs 500, 1000, 1000, 1500, 2000, 3000: mean 9000 ÷ 6; nearest
    // rank p50 is the 3rd, p95 the 6th.
    assert_eq!(
        s.input_tokens,
        TokenStat {
            mean: 1_500.0,
            p50: Some(1_000.0),
            p95: Some(3_000.0),
            max: Some(3_000.0)
        }
    );
    // Outputs 50, 100, 150, 200, 300, 400: mean 1200 ÷ 6.
    assert_eq!(s.output_tokens.mean, 200.0);
    assert_eq!(s.output_tokens.p50, Some(150.0));
    // max_tokens: the largest output, shown as assumed.
    assert_eq!(s.max_tokens, Some(400));
    assert!(
        s.max_tokens_assumed
            .as_deref()
            .is_some_and(|a| a.contains("400, the largest output")),
        "{:?}",
        s.max_tokens_assumed
    );
    // Sessions a (3 requests) and b (2); one request has none.
    assert_eq!(
        s.sessions,
        Some(MeasuredSessions {
            sessions: 2,
            requests: 5,
            per_day: 2.0 / 240.0 * 86_400.0,
            requests_per_session: 2.5,
        })
    );
    assert_eq!((s.cache_read_tokens, s.mean_e2e_seconds), (None, None));

    let l = d.profile(LLAMA).unwrap();
    // 2 requests ÷ 240 s × 60 = 0.5 RPM; no window holds both.
    assert_eq!((l.average_rpm, l.peak_rpm), (Some(0.5), Some(1.0)));
    assert_eq!(l.input_tokens.mean, 400.0);
    assert_eq!(l.sessions, None);
}

#[test]
fn a_peak_below_the_average_rate_is_taken_as_the_average() {
    // Two requests 119 s apart: 2 ÷ 119 s × 60 ≈ 1.008 RPM on average, yet
    // no minute holds both.
    let d = demand(&[(0.0, LLAMA, 10, 5, None), (119.0, LLAMA, 10, 5, None)]).unwrap();
    let p = &d.profiles[0];
    assert_eq!(p.peak_rpm, p.average_rpm);
    assert!((p.average_rpm.unwrap() - 120.0 / 119.0).abs() < 1e-12);
    assert!(
        p.source.contains("peak taken as the average: its busiest 60-second window, [offset 0 s, +60 s) from line 1, holds 1"),
        "{}",
        p.source
    );
}

#[test]
fn a_trace_shorter_than_a_minute_has_no_peak_minute() {
    let why = demand(&[(0.0, LLAMA, 10, 5, None), (59.5, LLAMA, 10, 5, None)]).unwrap_err();
    assert_eq!(
        why,
        "its requests span 59.5 s (line 1 to line 2): a peak over a 60-second window needs a trace of at least 60 s"
    );
}

#[test]
fn a_trace_of_timestamps_names_its_times() {
    let text = format!(
        "{}\n{}\n",
        r#"{"timestamp":"2026-11-30T14:01:30Z","model":"amazon.nova-micro-v1:0","input_tokens":10,"output_tokens":5}"#,
        r#"{"timestamp":"2026-11-30T14:00:00Z","model":"amazon.nova-micro-v1:0","input_tokens":10,"output_tokens":5}"#
    );
    let trace = parse_trace(&text, false).unwrap();
    let d = trace_demand(Path::new("ts.jsonl"), "ts.jsonl", &trace).unwrap();
    let source = &d.profiles[0].source;
    assert!(
        source.starts_with("ts.jsonl: 2 requests (lines 1–2), 2026-11-30T14:00:00Z to 2026-11-30T14:01:30Z (a span of 90 s)"),
        "{source}"
    );
    assert!(
        source.contains("[2026-11-30T14:00:00Z, +60 s) from line 2, holds 1"),
        "{source}"
    );
}

#[test]
fn bad_trace_lines_are_named_by_file_line_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("bad.jsonl");
    let mut text = text(ROWS);
    text.push_str(r#"{"offset":300,"model":"x","input_tokens":0,"output_tokens":5}"#);
    std::fs::write(&path, text).unwrap();
    let errors = read_trace_demand(&path, "bad.jsonl").unwrap_err();
    assert_eq!(
        errors,
        [format!(
            "{}:9: input_tokens: must be between 1 and 1000000, got 0",
            path.display()
        )]
    );
}

fn plan_input(classes: &str) -> PlanInput {
    quarry_capacity::parse_plan_file_with(
        "PLAN.toml",
        classes,
        quarry_capacity::PlanFileContext {
            demand_from_trace: true,
        },
    )
    .unwrap()
}

#[test]
fn a_class_naming_the_trace_takes_its_models_profile_and_the_rest_get_classes() {
    let d = demand(ROWS).unwrap();
    let mut input = plan_input(&format!(
        r#"
[[class]]
name = "chat"
measured = "prod.jsonl"
models = ["{SONNET}"]
"#
    ));
    let notes =
        cover_classes(&mut input, std::slice::from_ref(&d), Path::new("PLAN.toml")).unwrap();
    let sonnet = format!("prod.jsonl:{SONNET}");
    let llama = format!("prod.jsonl:{LLAMA}");
    assert_eq!(input.classes[0].measured.as_deref(), Some(sonnet.as_str()));
    assert_eq!(input.classes.len(), 2);
    let made = &input.classes[1];
    assert_eq!(
        (
            made.name.as_str(),
            made.measured.as_deref(),
            &made.models[..]
        ),
        (
            llama.as_str(),
            Some(llama.as_str()),
            &[LLAMA.to_owned()][..]
        )
    );
    assert!(made.interactive && made.demand.is_none());
    assert_eq!(input.assumptions.len(), 1);
    assert!(
        input.assumptions[0].starts_with(&format!("class {llama}: made for the requests")),
        "{:?}",
        input.assumptions
    );
    assert_eq!(notes.len(), 2, "{notes:?}");

    // The plan: both classes planned on the trace's figures.
    input.measured.demand = d.profiles.clone();
    let plan = quarry_capacity::plan(&input);
    let chat = &plan.classes[0];
    assert_eq!((chat.peak_rpm.value, chat.average_rpm.value), (4.0, 1.5));
    assert_eq!(chat.peak_rpm.basis, quarry_capacity::Basis::Measured);
    assert_eq!(chat.input_tokens.value, 1_500.0);
    assert_eq!(plan.classes[1].name, llama);
    assert_eq!(plan.classes[1].peak_rpm.value, 1.0);
}

#[test]
fn a_class_with_demand_of_its_own_on_a_traced_model_is_a_conflict_naming_both() {
    let d = demand(ROWS).unwrap();
    let mut input = plan_input(&format!(
        r#"
[[class]]
name = "chat"
peak_rpm = 10
average_rpm = 5
input_tokens = 100
output_tokens = 10
models = ["{SONNET}"]
"#
    ));
    let errors =
        cover_classes(&mut input, std::slice::from_ref(&d), Path::new("PLAN.toml")).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(&format!(
            "PLAN.toml:4: class[0].peak_rpm: class \"chat\" uses {SONNET} with demand of its own, and --from t/prod.jsonl supplies {SONNET}'s demand too (6 requests)"
        )),
        "{}",
        errors[0]
    );
    assert!(errors[0].contains("class[0].measured = \"prod.jsonl\""));
}

#[test]
fn two_claims_on_one_profile_and_a_trace_without_the_model_are_errors() {
    let d = demand(ROWS).unwrap();
    let mut input = plan_input(&format!(
        r#"
[[class]]
name = "a"
measured = "prod.jsonl"
models = ["{SONNET}"]

[[class]]
name = "b"
measured = "prod.jsonl:{SONNET}"
models = ["{SONNET}"]

[[class]]
name = "c"
measured = "prod.jsonl"
models = ["amazon.nova-pro-v1:0"]
"#
    ));
    let errors =
        cover_classes(&mut input, std::slice::from_ref(&d), Path::new("PLAN.toml")).unwrap_err();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].starts_with(&format!(
            "PLAN.toml:9: class[1].measured: class \"b\" takes the demand of prod.jsonl:{SONNET} (t/prod.jsonl), and so does class \"a\" (PLAN.toml:4: class[0].measured)"
        )),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].starts_with(&format!(
            "PLAN.toml:14: class[2].measured: names trace \"prod.jsonl\" (t/prod.jsonl), which sends no request to amazon.nova-pro-v1:0, the model class[2] uses first; its models: {SONNET}, {LLAMA}"
        )),
        "{}",
        errors[1]
    );
}

#[test]
fn two_traces_of_one_model_no_class_tells_apart_are_an_error() {
    let a = demand(ROWS).unwrap();
    let trace = parse_trace(&text(ROWS), false).unwrap();
    let b = trace_demand(Path::new("t/other.jsonl"), "other.jsonl", &trace).unwrap();
    let mut input = plan_input("");
    let errors =
        cover_classes(&mut input, &[a.clone(), b.clone()], Path::new("PLAN.toml")).unwrap_err();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].starts_with(&format!(
            "--from t/other.jsonl: no class takes its requests to {SONNET}, nor those of --from t/prod.jsonl"
        )),
        "{}",
        errors[0]
    );
    // A class naming the second trace tells them apart.
    let mut input = plan_input(&format!(
        "[[class]]\nname = \"batch\"\nmeasured = \"other.jsonl\"\nmodels = [\"{SONNET}\"]\n\
         [[class]]\nname = \"batch-llama\"\nmeasured = \"other.jsonl\"\nmodels = [\"{LLAMA}\"]\n"
    ));
    // The first trace's Sonnet is still unclaimed while class "batch" uses
    // Sonnet: it must be named too.
    let errors =
        cover_classes(&mut input, &[a.clone(), b.clone()], Path::new("PLAN.toml")).unwrap_err();
    assert!(errors[0].contains("class \"batch\" uses"), "{errors:?}");
    let mut input = plan_input(&format!(
        "[[class]]\nname = \"batch\"\nmeasured = \"other.jsonl\"\nmodels = [\"{SONNET}\"]\n\
         [[class]]\nname = \"batch-llama\"\nmeasured = \"other.jsonl\"\nmodels = [\"{LLAMA}\"]\n\
         [[class]]\nname = \"chat\"\nmeasured = \"prod.jsonl\"\nmodels = [\"{SONNET}\"]\n\
         [[class]]\nname = \"chat-llama\"\nmeasured = \"prod.jsonl\"\nmodels = [\"{LLAMA}\"]\n"
    ));
    cover_classes(&mut input, &[a, b], Path::new("PLAN.toml")).unwrap();
    assert_eq!(input.classes.len(), 4);
}

#[test]
fn busiest_windows_and_nearest_ranks() {
    const S: u64 = 1_000_000_000;
    assert_eq!(busiest_window(&[]), (0, 0));
    assert_eq!(busiest_window(&[5 * S]), (1, 0));
    // [0, 60 s) holds 0 and 30 s (60 s is the next window's); [30 s, 90 s)
    // holds 30, 60 and 89 s.
    let times = [0, 30 * S, 60 * S, 89 * S, 150 * S];
    assert_eq!(busiest_window(&times), (3, 1));
    assert_eq!(nearest_rank(&[1, 2, 3, 4], 0.5), Some(2.0));
    assert_eq!(nearest_rank(&[1, 2, 3, 4], 0.95), Some(4.0));
    assert_eq!(nearest_rank(&[7], 0.5), Some(7.0));
    assert_eq!(nearest_rank(&[], 0.5), None);
}

#[test]
fn cache_prefixes_give_the_reads_and_writes_of_a_five_minute_cache() {
    let line = |at: f64, prefix: &str| {
        format!(
            r#"{{"offset":{at},"model":"{SONNET}","input_tokens":3000,"output_tokens":10{prefix}}}"#
        )
    };
    let p = |id: &str, n: u32| format!(r#","cache_prefix":"{id}","cache_prefix_tokens":{n}"#);
    let text = [
        line(0.0, &p("sys", 2_000)),   // written
        line(100.0, &p("sys", 2_000)), // read: 100 s after its last use
        line(450.0, &p("sys", 2_000)), // written again: 350 s since
        line(500.0, &p("small", 500)), // below Sonnet 4.5's 1,024: not cached
        line(600.0, &p("sys", 1_500)), // another length: another entry
        line(700.0, ""),
    ]
    .join("\n");
    let trace = parse_trace(&text, false).unwrap();
    let d = trace_demand(Path::new("c.jsonl"), "c.jsonl", &trace).unwrap();
    let s = &d.profiles[0];
    assert_eq!(s.cache_read_tokens, Some(2_000.0 / 6.0));
    assert_eq!(s.cache_write_tokens, Some(5_500.0 / 6.0));
    assert_eq!(s.cache_hit_ratio(), Some(2_000.0 / 7_500.0));
    assert!(
        s.source.ends_with(
            "; cache: its 5 cache_prefix lines in time order through a 300-second cache, 1 reads and 3 writes, 1 below the model's minimum prefix and not cached"
        ),
        "{}",
        s.source
    );
    // The plan sees the class as caching, at the trace's hit ratio.
    let mut input = plan_input("");
    cover_classes(&mut input, std::slice::from_ref(&d), Path::new("PLAN.toml")).unwrap();
    input.measured.demand = d.profiles.clone();
    let plan = quarry_capacity::plan(&input);
    let hit = plan
        .sources
        .iter()
        .find(|s| s.id == format!("measured:c.jsonl:{SONNET}:cache hit ratio"));
    assert!(hit.is_some(), "{:#?}", plan.sources);
    // Without prefixes, no cache figures at all.
    assert_eq!(demand(ROWS).unwrap().profiles[0].cache_read_tokens, None);
}
