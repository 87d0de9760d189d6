use std::num::NonZeroU32;

use quarry_bedrock::Operation;

use super::*;
use quarry_engine::{CatchUp, LoadProfile, Stage};
use quarry_engine::{RetryPolicy, Timeouts, TokenDistribution, WorkloadMix};

const HAIKU: &str = "anthropic.claude-3-haiku-20240307-v1:0";

fn plan(load: LoadProfile, model: &str) -> RunPlan {
    RunPlan {
        target: Target::Aws {
            region: "us-east-1".into(),
            endpoint: None,
            profile: None,
        },
        load,
        mix: WorkloadMix::new(vec![MixEntry {
            weight: 1,
            model_id: model.to_owned(),
            operation: Operation::ConverseStream,
            input_tokens: TokenDistribution::Uniform { min: 10, max: 1000 },
            max_tokens: NonZeroU32::new(500).unwrap(),
            system_prompt: Some("x".repeat(400)),
            cache: None,
            nonce: true,
            temperature: None,
            service_tier: None,
        }])
        .unwrap(),
        retry: RetryPolicy::Off,
        timeouts: Timeouts::default(),
        seed: 1,
        pricing: Default::default(),
        request_slo: None,
        on_throttle: Default::default(),
        tier_prices: quarry_engine::TierPrices::default(),
        replay: None,
        sessions: None,
    }
}

fn closed(c: u32, secs: u64) -> LoadProfile {
    LoadProfile::steady(
        LoadModel::closed(c).unwrap(),
        Some(Duration::from_secs(secs)),
        None,
    )
    .unwrap()
}

fn open(rate: f64, cap: Option<u32>, secs: u64) -> LoadProfile {
    LoadProfile::steady(
        LoadModel::open(rate, Arrival::Constant, cap, CatchUp::SendLate).unwrap(),
        Some(Duration::from_secs(secs)),
        None,
    )
    .unwrap()
}

fn rail_of(r: Result<(), DaemonError>) -> &'static str {
    match r {
        Err(DaemonError::GuardRail { rail, .. }) => rail,
        other => panic!("expected a guard-rail refusal, got {other:?}"),
    }
}

#[test]
fn each_rail_refuses_naming_itself() {
    let prices = PriceTable::default();
    let rails = GuardRails {
        max_concurrency: Some(8),
        max_rate_per_second: Some(20.0),
        max_duration: Some(Duration::from_secs(60)),
        allowed_model_patterns: vec!["anthropic.claude-3-*".into()],
        max_spend_usd: Some(1.0),
    };
    assert!(
        rails
            .check(&plan(open(10.0, Some(8), 30), HAIKU), &prices)
            .is_ok()
    );
    assert_eq!(
        rail_of(rails.check(&plan(closed(9, 30), HAIKU), &prices)),
        "max_concurrency"
    );
    assert_eq!(
        rail_of(rails.check(&plan(open(10.0, None, 30), HAIKU), &prices)),
        "max_concurrency"
    );
    assert_eq!(
        rail_of(rails.check(&plan(open(21.0, Some(8), 30), HAIKU), &prices)),
        "max_rate_per_second"
    );
    assert_eq!(
        rail_of(rails.check(&plan(closed(2, 61), HAIKU), &prices)),
        "max_duration_ms"
    );
    assert_eq!(
        rail_of(rails.check(&plan(closed(2, 30), "amazon.nova-pro-v1:0"), &prices)),
        "allowed_model_patterns"
    );
    // Closed loop without a request count: no spend bound.
    assert_eq!(
        rail_of(rails.check(&plan(closed(2, 30), HAIKU), &prices)),
        "max_spend_usd"
    );
}

#[test]
fn spend_estimate_is_requests_times_worst_request() {
    let prices = PriceTable::default();
    // 10/s for 30 s, constant: 300 arrivals + 1 at the stage start.
    let p = plan(open(10.0, Some(8), 30), HAIKU);
    let est = estimate_spend(&p, &prices).unwrap();
    assert_eq!(est.requests, 301);
    // Haiku 3: $0.25 in, $1.25 out per 1M; 1000 + 100 (system) in, 500 out.
    let per = (1_100.0 * 0.25 + 500.0 * 1.25) / 1e6;
    assert!((est.worst_request_usd - per).abs() < 1e-12, "{est:?}");
    assert!((est.usd - 301.0 * per).abs() < 1e-9);
    // Retries multiply; a request count caps the bound.
    let mut q = p.clone();
    q.retry = RetryPolicy::sdk_standard();
    q.load = LoadProfile::steady(
        LoadModel::open(10.0, Arrival::Poisson, Some(8), CatchUp::SendLate).unwrap(),
        Some(Duration::from_secs(30)),
        Some(50),
    )
    .unwrap();
    let est = estimate_spend(&q, &prices).unwrap();
    assert_eq!(est.requests, 50);
    assert!((est.usd - 150.0 * per).abs() < 1e-9);
    // Plan overrides may raise a price but never lower it.
    let mut cheap = p.clone();
    cheap.pricing.insert(
        HAIKU.into(),
        quarry_engine::ModelPrices::from_usd_per_million(0.0, 0.0, None, None, None).unwrap(),
    );
    assert_eq!(
        estimate_spend(&cheap, &prices).unwrap(),
        estimate_spend(&p, &prices).unwrap()
    );
    // Unknown models cannot be bounded.
    let err = estimate_spend(&plan(open(1.0, None, 1), "acme.unknown-v1"), &prices).unwrap_err();
    assert!(err.contains("no price"), "{err}");
}

#[test]
fn ramps_count_their_average_rate() {
    let load = LoadProfile::new(
        LoadModel::open(10.0, Arrival::Constant, None, CatchUp::SendLate).unwrap(),
        vec![
            Stage {
                name: "up".into(),
                kind: StageKind::Ramp,
                duration: Duration::from_secs(10),
                target: Some(20.0),
            },
            Stage {
                name: "hold".into(),
                kind: StageKind::Hold,
                duration: Duration::from_secs(10),
                target: Some(20.0),
            },
        ],
        EndCondition::AfterStages,
    )
    .unwrap();
    // 0 → 20 over 10 s = 100, then 200: 300 + one per stage.
    assert_eq!(request_bound(&plan(load, HAIKU)), Some(302));
}

#[test]
fn simulator_target_spends_nothing() {
    let rails = GuardRails {
        max_spend_usd: Some(0.01),
        ..Default::default()
    };
    let mut p = plan(closed(2, 30), HAIKU);
    p.target = Target::Sim { sim_profile: None };
    assert!(rails.check(&p, &PriceTable::default()).is_ok());
}

#[test]
fn glob_patterns() {
    assert!(glob_match("*", "anything"));
    assert!(glob_match("anthropic.*", "anthropic.claude-3"));
    assert!(glob_match(
        "*claude*haiku*",
        "us.anthropic.claude-3-haiku-v1:0"
    ));
    assert!(glob_match("model-?", "model-1"));
    assert!(!glob_match("model-?", "model-12"));
    assert!(!glob_match("anthropic.*", "us.anthropic.claude"));
    assert!(glob_match("exact", "exact"));
    assert!(!glob_match("exact", "exactly"));
    assert!(glob_match("a*b*c", "aXbYbZc"));
    assert!(!glob_match("a*b*c", "aXbYbZ"));
}

#[test]
fn describe_reports_zero_for_no_limit() {
    let pb = GuardRails::default().to_proto();
    assert_eq!((pb.max_concurrency, pb.max_duration_ms), (0, 0));
    let pb = GuardRails {
        max_duration: Some(Duration::from_secs(2)),
        ..Default::default()
    }
    .to_proto();
    assert_eq!(pb.max_duration_ms, 2_000);
}
