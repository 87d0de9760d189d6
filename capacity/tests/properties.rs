//! Properties every plan keeps, whatever the demand:
//! - more demand never needs fewer accounts or less quota;
//! - caching never raises TPM (settled or at admission) or daily tokens;
//! - a fixed daily cap is never "solved" by a quota increase.

mod support;

use proptest::prelude::*;
use quarry_capacity::{
    CacheProfile, CacheTtl, Carries, Demand, Plan, PlanInput, QuotaEntry, QuotaMetric,
    StrategyKind, TokenStat, WallKind, WorkloadClass, plan,
};

#[derive(Debug, Clone)]
struct Shape {
    peak: f64,
    average: f64,
    input: f64,
    output: f64,
    max_tokens: Option<u64>,
    e2e: Option<f64>,
    prefix: f64,
    hit: f64,
}

fn shape() -> impl Strategy<Value = Shape> {
    (
        1.0..2_000.0f64,
        0.05..1.0f64,
        10.0..50_000.0f64,
        1.0..4_000.0f64,
        prop::option::of(0u64..16_000),
        prop::option::of(0.5..120.0f64),
        0.0..1.0f64,
        0.0..1.0f64,
    )
        .prop_map(|(peak, avg, input, output, max, e2e, prefix, hit)| Shape {
            peak,
            average: peak * avg,
            input,
            output,
            max_tokens: max.map(|m| m + output.ceil() as u64),
            e2e,
            prefix: (input * prefix).max(1.0),
            hit,
        })
}

fn input(model: &str, s: &Shape, scale: f64, caching_in_use: bool, growth: f64) -> PlanInput {
    let mut input = PlanInput {
        classes: vec![WorkloadClass {
            name: "c".to_owned(),
            interactive: true,
            demand: Some(Demand::Rate {
                peak_rpm: s.peak * scale,
                average_rpm: s.average * scale,
            }),
            input_tokens: Some(TokenStat::mean(s.input)),
            output_tokens: Some(TokenStat::mean(s.output)),
            max_tokens: s.max_tokens,
            cache: Some(CacheProfile {
                prefix_tokens: s.prefix,
                hit_ratio: Some(s.hit),
                ttl: CacheTtl::FiveMinutes,
                in_use: caching_in_use,
            }),
            mean_e2e_seconds: s.e2e,
            users: None,
            slo: Default::default(),
            models: vec![model.to_owned()],
            routes: Vec::new(),
            measured: None,
            curve: None,
        }],
        horizon_months: Some(6.0),
        growth: quarry_capacity::Growth {
            demand: quarry_capacity::GrowthCurve::Monthly { rate: growth },
            users_monthly_rate: None,
        },
        ..PlanInput::default()
    };
    if model.contains("sonnet") {
        input.quotas.push(QuotaEntry {
            model: model.to_owned(),
            rpm: Some(1_000),
            tpm: Some(2_000_000),
            tpd: None,
            rpm_adjustable: None,
            tpm_adjustable: None,
            tpd_adjustable: None,
        });
    }
    support::with_builtin_prices(input)
}

const MODELS: [&str; 3] = [
    "us.anthropic.claude-opus-4-6-v1",
    "meta.llama3-3-70b-instruct-v1:0",
    "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
];

fn accounts_needed(p: &Plan) -> f64 {
    let s = p
        .strategies
        .iter()
        .find(|s| s.kind == StrategyKind::MultiAccount)
        .expect("multi-account strategy");
    s.figures
        .iter()
        .find(|f| f.label == "accounts needed at the horizon")
        .map_or(0.0, |f| f.figure.value)
}

fn requested(p: &Plan, metric: QuotaMetric) -> Option<f64> {
    p.quota_requests
        .iter()
        .flat_map(|r| &r.items)
        .find(|i| i.metric == metric)
        .map(|i| i.requested.value)
}

fn load(p: &Plan, kind: WallKind) -> Option<f64> {
    p.walls
        .iter()
        .find(|w| w.kind == kind)
        .and_then(|w| w.load_today.as_ref())
        .map(|f| f.value)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn more_demand_never_needs_fewer_accounts_or_less_quota(
        s in shape(), scale in 1.0..20.0f64, model in 0usize..3, growth in 0.0..0.5f64,
    ) {
        let small = plan(&input(MODELS[model], &s, 1.0, true, growth));
        let large = plan(&input(MODELS[model], &s, scale, true, growth));
        prop_assert!(accounts_needed(&large) >= accounts_needed(&small));
        for metric in [QuotaMetric::RequestsPerMinute, QuotaMetric::TokensPerMinute, QuotaMetric::TokensPerDay] {
            if let Some(q) = requested(&small, metric) {
                let bigger = requested(&large, metric);
                prop_assert!(bigger.is_some_and(|b| b >= q), "{metric:?}: {q} then {bigger:?}");
            }
        }
        // And every wall binds no later.
        for w in &small.walls {
            let Some(at) = &w.binds_at else { continue };
            let other = large.walls.iter().find(|o| o.kind == w.kind && o.scope == w.scope);
            if let Some(b) = other.and_then(|o| o.binds_at.as_ref()) {
                prop_assert!(b.value <= at.value * (1.0 + 1e-9), "{:?} {}: ×{} then ×{}", w.kind, w.scope, at.value, b.value);
            }
        }
    }

    #[test]
    fn caching_never_raises_tpm(s in shape(), model in 0usize..3) {
        let without = plan(&input(MODELS[model], &s, 1.0, false, 0.1));
        let with = plan(&input(MODELS[model], &s, 1.0, true, 0.1));
        for kind in [WallKind::TpmSettled, WallKind::TpmAdmission, WallKind::TokensPerDay] {
            if let (Some(a), Some(b)) = (load(&without, kind), load(&with, kind)) {
                prop_assert!(b <= a * (1.0 + 1e-9), "{kind:?}: {a} without caching, {b} with");
            }
        }
        // Reservations are unchanged: cache reads count at admission.
        prop_assert_eq!(
            without.classes[0].reservation.as_ref().map(|r| r.value),
            with.classes[0].reservation.as_ref().map(|r| r.value)
        );
    }

    #[test]
    fn a_fixed_daily_cap_is_never_solved_by_a_quota_increase(s in shape(), scale in 0.01..10.0f64, growth in 0.0..0.5f64) {
        // Claude Opus 4.6's 2,592,000 tokens/day is built in as not adjustable.
        let p = plan(&input(MODELS[0], &s, scale, false, growth));
        let daily = p.walls.iter().find(|w| w.kind == WallKind::TokensPerDay).expect("daily wall");
        prop_assert!(daily.fixed);
        prop_assert!(requested(&p, QuotaMetric::TokensPerDay).is_none());
        if daily.binds.within_horizon() {
            prop_assert!(p.fixed_caps.iter().any(|c| c.metric == QuotaMetric::TokensPerDay));
            let baseline = p.strategies.iter().find(|s| s.kind == StrategyKind::QuotaIncrease).unwrap();
            let blocked = matches!(baseline.carries, Carries::No { .. });
            prop_assert!(blocked, "{:?}", baseline.carries);
        }
    }
}
