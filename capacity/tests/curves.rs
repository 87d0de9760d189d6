//! Walls read from measured sweeps, and sweeps held against the quota
//! arithmetic. The curves are the plain values the `--from` loader builds.

mod support;

use quarry_capacity::{
    Basis, Binding, CurveLevel, LatencyPercentiles, LoadVariable, MeasuredCurve, MeasuredDemand,
    RequestShape, TokenStat, WallKind, parse_plan_file, plan,
};

const LLAMA: &str = "meta.llama3-3-70b-instruct-v1:0";

fn level(offered: f64, achieved: f64, ttft_p99: f64, throttle: f64) -> CurveLevel {
    CurveLevel {
        offered,
        achieved_rps: achieved,
        requests: 1_000,
        output_tokens_per_s_per_stream: Some(120.0),
        output_tokens_per_s: None,
        ttft_ms: LatencyPercentiles {
            p50: Some(ttft_p99 / 3.0),
            p95: Some(ttft_p99 / 1.5),
            p99: Some(ttft_p99),
        },
        e2e_ms: LatencyPercentiles {
            p50: Some(4_000.0),
            p95: None,
            p99: None,
        },
        throttle_rate: throttle,
        error_rate: 0.0,
        failed: None,
        saturated: false,
        source: None,
    }
}

fn rate_sweep() -> MeasuredCurve {
    MeasuredCurve {
        label: "sweep-llama".to_owned(),
        source: "results/sweep-llama".to_owned(),
        model: LLAMA.to_owned(),
        variable: LoadVariable::Rate,
        request: Some(RequestShape {
            input_tokens: 1_000.0,
            output_tokens: 200.0,
            max_tokens: Some(256),
        }),
        quota_tpm: Some(600_000),
        quota_rpm: None,
        levels: vec![
            level(1.0, 1.0, 500.0, 0.0),
            level(2.0, 2.0, 800.0, 0.0),
            level(4.0, 3.99, 1_500.0, 0.0),
            // A saturated generator measured itself, not the service: skipped.
            CurveLevel {
                saturated: true,
                ..level(6.0, 3.0, 9_000.0, 0.0)
            },
            level(8.0, 6.5, 4_000.0, 0.0),
            level(16.0, 7.9, 9_000.0, 0.3),
        ],
    }
}

const CLASS: &str = r#"
start = "2026-03-01"
[growth]
monthly_rate = 1.0
[[class]]
name = "chat"
peak_rpm = 60
average_rpm = 20
input_tokens = 1000
output_tokens = 200
max_tokens = 256
models = ["meta.llama3-3-70b-instruct-v1:0"]
[class.slo]
ttft_p99_ms = 2000
"#;

#[test]
fn latency_and_concurrency_walls_from_a_sweep() {
    let mut input = parse_plan_file("PLAN.toml", CLASS).unwrap();
    input.measured.curves.push(rate_sweep());
    let p = plan(&support::with_builtin_prices(input));
    let latency = p
        .walls
        .iter()
        .find(|w| w.kind == WallKind::Latency)
        .unwrap();
    // ttft.p99 holds at 4 req/s (1,500 ms) and breaks at 8 (4,000 ms > 2,000):
    // the wall is the 3.99 req/s achieved at 4, 239.4 RPM; today's peak is
    // 60 RPM, so it binds at ×3.99, doubling monthly: after 1.996 months.
    assert_eq!(latency.limit.as_ref().unwrap().value, 3.99 * 60.0);
    assert_eq!(latency.binds_at.as_ref().unwrap().value, 3.99);
    assert!(
        latency.notes[0].contains("ttft.p99 4,000 ms > 2,000 ms"),
        "{:?}",
        latency.notes
    );
    assert!(matches!(latency.binds, Binding::Within { .. }));
    // The limit rests on the measurement: its source is the sweep.
    let rps = &latency.limit.as_ref().unwrap();
    assert_eq!(rps.basis, Basis::Computed);
    assert!(
        rps.from
            .iter()
            .any(|s| s.starts_with("measured:sweep-llama"))
    );
    // Throughput: 8 req/s offered, 6.5 achieved (< 95%): the concurrency wall
    // is also at the 4 req/s level.
    let concurrency = p
        .walls
        .iter()
        .find(|w| w.kind == WallKind::Concurrency)
        .unwrap();
    assert_eq!(concurrency.limit.as_ref().unwrap().value, 3.99 * 60.0);
    assert!(
        concurrency.notes[0].contains("achieved 6.5 req/s of 8 offered"),
        "{:?}",
        concurrency.notes
    );
}

#[test]
fn a_level_with_its_own_record_is_cited_by_it() {
    let mut curve = rate_sweep();
    // The 4 req/s level, which the latency wall's limit is read from.
    curve.levels[2].source = Some("results/sweep-llama/levels/03-rate-4 (412 requests)".into());
    let mut input = parse_plan_file("PLAN.toml", CLASS).unwrap();
    input.measured.curves.push(curve);
    let p = plan(&support::with_builtin_prices(input));
    let cited = p
        .sources
        .iter()
        .find(|s| s.id == "measured:sweep-llama:successful requests/s at offered load 4")
        .expect("the level's rate is a source");
    assert_eq!(
        cited.location.as_deref(),
        Some("results/sweep-llama/levels/03-rate-4 (412 requests)")
    );
    // A level without its own record cites the sweep.
    let other = p
        .sources
        .iter()
        .filter(|s| s.id.starts_with("measured:sweep-llama:") && s.id != cited.id)
        .collect::<Vec<_>>();
    assert!(!other.is_empty());
    assert!(
        other
            .iter()
            .all(|s| s.location.as_deref() == Some("results/sweep-llama")),
        "{other:?}"
    );
}

#[test]
fn a_sweep_that_never_broke_places_no_wall_inside_its_range() {
    let mut curve = rate_sweep();
    curve.levels.truncate(3);
    let mut input = parse_plan_file("PLAN.toml", CLASS).unwrap();
    input.measured.curves.push(curve);
    let p = plan(&support::with_builtin_prices(input));
    let latency = p
        .walls
        .iter()
        .find(|w| w.kind == WallKind::Latency)
        .unwrap();
    assert_eq!(latency.binds, Binding::BeyondMeasured);
}

#[test]
fn sweep_throttling_is_held_against_the_quota_arithmetic() {
    let input = {
        let mut i = parse_plan_file("PLAN.toml", CLASS).unwrap();
        i.measured.curves.push(rate_sweep());
        i
    };
    let p = plan(&support::with_builtin_prices(input));
    let check = &p.checks[0];
    // The sweep's request: R = 1,000 + 256 = 1,256, S = 1,200, held 4 s (E2E
    // p50 at the first throttled level): window 1,200 + 4/60 × 56 = 1,203.73
    // a call; (600,000 − 1,256) ÷ 1,203.73 = 497.4 RPM, below 600,000 ÷ 1,200.
    let expected = (600_000.0 - 1_256.0) / (1_200.0 + 4.0 / 60.0 * 56.0);
    assert!((check.arithmetic.as_ref().unwrap().value - expected).abs() < 1e-3 * expected);
    // Throttling began between 8 req/s (480 RPM) and 16 (960): they agree.
    assert_eq!(check.measured.as_ref().unwrap().value, 960.0);
    assert_eq!(check.agrees, Some(true));
    // A quota set too low in the arithmetic would not.
    let mut low = rate_sweep();
    low.quota_tpm = Some(100_000);
    let mut input = parse_plan_file("PLAN.toml", CLASS).unwrap();
    input.measured.curves.push(low);
    assert_eq!(plan(&input).checks[0].agrees, Some(false));
}

#[test]
fn a_measured_demand_profile_fills_what_is_not_entered() {
    let text = r#"
[[class]]
name = "chat"
measured = "chat-run"
models = ["meta.llama3-3-70b-instruct-v1:0"]
"#;
    let mut input = parse_plan_file("PLAN.toml", text).unwrap();
    input.measured.demand.push(MeasuredDemand {
        label: "chat-run".to_owned(),
        source: "results/chat-run".to_owned(),
        model: Some(LLAMA.to_owned()),
        duration_s: 600.0,
        requests: 3_000,
        peak_rpm: Some(420.0),
        average_rpm: Some(300.0),
        input_tokens: TokenStat {
            mean: 900.0,
            p50: Some(850.0),
            p95: Some(1_800.0),
            max: None,
        },
        output_tokens: TokenStat::mean(180.0),
        cache_read_tokens: None,
        cache_write_tokens: None,
        max_tokens: Some(400),
        max_tokens_assumed: None,
        mean_e2e_seconds: Some(3.0),
        sessions: None,
    });
    let p = plan(&support::with_builtin_prices(input));
    let c = &p.classes[0];
    assert_eq!(
        (c.peak_rpm.value, c.peak_rpm.basis),
        (420.0, Basis::Measured)
    );
    assert_eq!(
        (c.input_tokens.value, c.input_tokens.basis),
        (900.0, Basis::Measured)
    );
    assert_eq!(c.reservation.as_ref().unwrap().value, 1_300.0);
    // A ten-minute run's average is not a day's: the plan says it assumed so.
    assert!(
        p.assumptions
            .iter()
            .any(|a| a.contains("measured over 600 s in chat-run")),
        "{:?}",
        p.assumptions
    );
}

#[test]
fn a_trace_profile_gives_sessions_and_an_assumed_max_tokens() {
    let text = r#"
[[class]]
name = "chat"
measured = "trace.jsonl:meta.llama3-3-70b-instruct-v1:0"
models = ["meta.llama3-3-70b-instruct-v1:0"]
"#;
    let label = "trace.jsonl:meta.llama3-3-70b-instruct-v1:0";
    let mut input = parse_plan_file("PLAN.toml", text).unwrap();
    input.measured.demand.push(MeasuredDemand {
        label: label.to_owned(),
        source: "trace.jsonl: 40 requests".to_owned(),
        model: Some(LLAMA.to_owned()),
        duration_s: 3_600.0,
        requests: 40,
        peak_rpm: Some(4.0),
        average_rpm: Some(40.0 / 60.0),
        input_tokens: TokenStat::mean(900.0),
        output_tokens: TokenStat::mean(180.0),
        cache_read_tokens: None,
        cache_write_tokens: None,
        max_tokens: Some(512),
        max_tokens_assumed: Some("the trace records no max_tokens".to_owned()),
        mean_e2e_seconds: None,
        sessions: Some(quarry_capacity::MeasuredSessions {
            sessions: 10,
            requests: 40,
            per_day: 240.0,
            requests_per_session: 4.0,
        }),
    });
    input
        .assumptions
        .push("a class was made for the trace".to_owned());
    let p = plan(&support::with_builtin_prices(input));
    // max_tokens is the profile's stand-in: assumed, not measured, and said.
    let reservation = p.classes[0].reservation.as_ref().unwrap();
    assert_eq!(reservation.value, 900.0 + 512.0);
    let id = format!("assumed:max_tokens:{label}");
    assert!(reservation.from.contains(&id), "{reservation:?}");
    assert!(
        p.assumptions
            .iter()
            .any(|a| a == "class chat: max_tokens is not entered: the trace records no max_tokens"),
        "{:?}",
        p.assumptions
    );
    // The caller's assumptions come first, as given.
    assert_eq!(p.assumptions[0], "a class was made for the trace");
    // The sessions are cited as measured in the profile.
    for what in ["sessions per day", "requests per session"] {
        let id = format!("measured:{label}:{what}");
        let source = p.sources.iter().find(|s| s.id == id);
        assert!(
            source.is_some_and(|s| s.location.as_deref() == Some("trace.jsonl: 40 requests")),
            "{id}: {:?}",
            p.sources
        );
    }
}
