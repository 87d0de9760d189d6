//! Golden plans for small cases, each with its arithmetic written out, and the
//! cases the product was built from: Llama 3.3 70B at 800 RPM and 600,000
//! TPM (which wall first depends on prompt size), the max_tokens trap, and
//! Claude Opus 4.6's fixed 2,592,000 tokens/day.

mod support;

use quarry_capacity::{
    Basis, Binding, Carries, Plan, QuotaMetric, StrategyKind, Wall, WallKind, parse_plan_file, plan,
};

fn plan_of(text: &str) -> Plan {
    let input = parse_plan_file("PLAN.toml", text).unwrap_or_else(|e| panic!("{e}"));
    plan(&support::with_builtin_prices(input))
}

fn wall<'a>(plan: &'a Plan, kind: WallKind, scope: &str) -> &'a Wall {
    plan.walls
        .iter()
        .find(|w| w.kind == kind && w.scope.contains(scope))
        .unwrap_or_else(|| panic!("no {kind:?} wall of {scope}: {:#?}", plan.walls))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * b.abs().max(1.0)
}

fn assert_close(a: f64, b: f64, what: &str) {
    assert!(close(a, b), "{what}: {a} != {b}");
}

const LLAMA: &str = "meta.llama3-3-70b-instruct-v1:0";

fn llama(peak: u32, average: u32, input: u32, output: u32, max_tokens: u32) -> String {
    format!(
        r#"
start = "2026-01-01"
[growth]
monthly_rate = 0.5
[[class]]
name = "chat"
peak_rpm = {peak}
average_rpm = {average}
input_tokens = {input}
output_tokens = {output}
max_tokens = {max_tokens}
models = ["{LLAMA}"]
"#
    )
}

#[test]
fn llama_small_prompts_meet_the_rpm_wall_first() {
    // Built-in Llama 3.3 70B on-demand quotas: 800 RPM, 600,000 TPM;
    // TPD defaults to 600,000 × 1440 = 864,000,000.
    // 300 in, 200 out, max_tokens 256, burndown 1; no mean E2E entered, so a
    // reservation is held the whole minute: the window holds R = 556 a request.
    let p = plan_of(&llama(400, 100, 300, 200, 256));
    let rpm = wall(&p, WallKind::Rpm, LLAMA);
    let admission = wall(&p, WallKind::TpmAdmission, LLAMA);
    let settled = wall(&p, WallKind::TpmSettled, LLAMA);
    let daily = wall(&p, WallKind::TokensPerDay, LLAMA);
    // RPM: 800 ÷ 400 = 2.
    assert_close(rpm.binds_at.as_ref().unwrap().value, 2.0, "RPM");
    assert_eq!(rpm.limit.as_ref().unwrap().basis, Basis::BuiltIn);
    // Admission: (600,000 − 556) ÷ (400 × 556) = 599,444 ÷ 222,400.
    assert_close(
        admission.binds_at.as_ref().unwrap().value,
        599_444.0 / 222_400.0,
        "admission",
    );
    // Settled: S = 300 + 200 × 1 = 500; 600,000 ÷ (400 × 500) = 3.
    assert_close(settled.binds_at.as_ref().unwrap().value, 3.0, "settled");
    // Daily: 100 × 1,440 × 500 = 72,000,000 a day; 864,000,000 ÷ that = 12.
    assert_close(daily.binds_at.as_ref().unwrap().value, 12.0, "daily");
    assert_close(
        daily.limit.as_ref().unwrap().value,
        864_000_000.0,
        "TPD default",
    );
    // The walls come in that order.
    let order: Vec<WallKind> = p
        .walls
        .iter()
        .filter(|w| w.kind.quota_metric().is_some())
        .map(|w| w.kind)
        .collect();
    assert_eq!(
        order,
        [
            WallKind::Rpm,
            WallKind::TpmAdmission,
            WallKind::TpmSettled,
            WallKind::TokensPerDay
        ]
    );
    // +50% a month reaches ×2 after ln 2 ÷ ln 1.5 months of 30.4375 days:
    // 52.03 days, so on day 53, 2026-02-23.
    match rpm.binds {
        Binding::Within { day, date } => {
            assert_close(
                day,
                (2f64.ln() / 1.5f64.ln() * 30.4375 * 1e6).round() / 1e6,
                "day",
            );
            assert_eq!(date.unwrap().to_string(), "2026-02-23");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn llama_large_prompts_meet_the_tpm_wall_first() {
    // 4,000 in, 200 out, max_tokens 256: R = 4,256 > 750 = 600,000 ÷ 800,
    // so TPM binds before RPM.
    let p = plan_of(&llama(100, 40, 4_000, 200, 256));
    let rpm = wall(&p, WallKind::Rpm, LLAMA)
        .binds_at
        .as_ref()
        .unwrap()
        .value;
    let admission = wall(&p, WallKind::TpmAdmission, LLAMA)
        .binds_at
        .as_ref()
        .unwrap()
        .value;
    let settled = wall(&p, WallKind::TpmSettled, LLAMA)
        .binds_at
        .as_ref()
        .unwrap()
        .value;
    assert_close(rpm, 8.0, "RPM: 800 ÷ 100");
    assert_close(
        admission,
        (600_000.0 - 4_256.0) / (100.0 * 4_256.0),
        "admission",
    );
    assert_close(
        settled,
        600_000.0 / (100.0 * 4_200.0),
        "settled: S = 4,000 + 200",
    );
    assert_eq!(p.walls[0].kind, WallKind::TpmAdmission);
    // At the binding point the pool serves 139.98 peak requests a minute.
    let at = &wall(&p, WallKind::TpmAdmission, LLAMA).at_binding[0].figure;
    assert_close(at.value, 100.0 * admission, "peak RPM at binding");
}

fn sonnet_trap(max_tokens: &str) -> String {
    format!(
        r#"
[[class]]
name = "chat"
peak_rpm = 60
average_rpm = 20
input_tokens = 500
output_tokens = 100
{max_tokens}
models = ["us.anthropic.claude-sonnet-4-5-20250929-v1:0"]
[[quota]]
model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
tpm = 2000000
"#
    )
}

#[test]
fn the_max_tokens_trap() {
    // A 2,000,000 TPM quota and 500 input tokens (PROTOCOL.md §5.2): with
    // max_tokens unset Sonnet 4.5's 64,000-token limit is reserved, 64,500 a
    // request, so about 31 fit at once; with max_tokens = 1,000, 1,333.
    let unset = plan_of(&sonnet_trap(""));
    let set = plan_of(&sonnet_trap("max_tokens = 1000"));
    let c = &unset.classes[0];
    assert!(c.max_tokens_unset);
    assert_eq!(c.reservation.as_ref().unwrap().value, 64_500.0);
    let notes = &wall(&unset, WallKind::TpmAdmission, "sonnet").notes;
    assert!(
        notes
            .iter()
            .any(|n| n.contains("sends no max_tokens") && n.contains("64,500")),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.contains("admits about 31 requests at once")),
        "{notes:?}"
    );
    let notes = &wall(&set, WallKind::TpmAdmission, "sonnet").notes;
    assert!(
        notes
            .iter()
            .any(|n| n.contains("admits about 1,333 requests at once")),
        "{notes:?}"
    );
    // Held a full minute: the window holds 60 × 64,500 = 3,870,000 > 2,000,000,
    // so the trap alone puts the wall below today's demand.
    assert_eq!(
        wall(&unset, WallKind::TpmAdmission, "sonnet").binds,
        Binding::Already
    );
    assert_ne!(
        wall(&set, WallKind::TpmAdmission, "sonnet").binds,
        Binding::Already
    );
}

const OPUS: &str = r#"
start = "2026-12-01"
region = "us-east-1"
[[class]]
name = "coding"
sessions_per_day = 10
requests_per_session = 200
session_minutes = 240
peak_concurrent_sessions = 6
input_tokens = 40000
output_tokens = 1000
max_tokens = 16000
mean_e2e_seconds = 30
models = ["us.anthropic.claude-opus-4-6-v1", "us.anthropic.claude-sonnet-4-5-20250929-v1:0"]
cache = { prefix_tokens = 36000, hit_ratio = 0.9, in_use = true }
[[class.route]]
name = "most turns to Sonnet"
mix = { "us.anthropic.claude-opus-4-6-v1" = 0.2, "us.anthropic.claude-sonnet-4-5-20250929-v1:0" = 0.8 }
[[quota]]
model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
tpm = 5000000
"#;

#[test]
fn opus_daily_cap_heavy_sessions() {
    let p = plan_of(OPUS);
    // One call: 4,000 uncached input + 3,600 cache writes (10% of 36,000)
    // + 1,000 output × 5 = 12,600 quota tokens (cache reads do not count).
    assert_eq!(p.classes[0].settlement.value, 12_600.0);
    // Ten sessions of 200 calls: 2,000 calls a day (1.389 a minute over 24 h),
    // 25,200,000 quota tokens a day against the 2,592,000 cap, of which a new
    // call must find its 56,000-token reservation free (as the simulator admits).
    let daily = wall(&p, WallKind::TokensPerDay, "opus");
    assert_close(
        daily.load_today.as_ref().unwrap().value,
        25_200_000.0,
        "daily load",
    );
    assert!(daily.fixed);
    assert_eq!(daily.binds, Binding::Already);
    assert_close(
        daily.binds_at.as_ref().unwrap().value,
        (2_592_000.0 - 56_000.0) / 25_200_000.0,
        "binding factor",
    );
    // The cap is exhausted by (2,592,000 − 56,000) ÷ (200 × 12,600) = 1.006
    // sessions a day: one heavy session.
    let sessions = daily
        .at_binding
        .iter()
        .find(|f| f.label.starts_with("sessions per day"))
        .unwrap();
    assert_close(
        sessions.figure.value,
        (2_592_000.0 - 56_000.0) / (200.0 * 12_600.0),
        "sessions a day",
    );
    // No request lifts it: it is a fixed cap, never an increase.
    assert!(p.quota_requests.iter().all(|r| {
        r.items
            .iter()
            .all(|i| i.metric != QuotaMetric::TokensPerDay)
    }));
    assert!(
        p.fixed_caps
            .iter()
            .any(|c| c.metric == QuotaMetric::TokensPerDay
                && c.pool.base == "anthropic.claude-opus-4-6-v1")
    );
    let baseline = p
        .strategies
        .iter()
        .find(|s| s.kind == StrategyKind::QuotaIncrease)
        .unwrap();
    assert!(
        matches!(baseline.carries, Carries::No { .. }),
        "{:?}",
        baseline.carries
    );
    // Ten developers need ceil(25,200,000 ÷ 2,536,000) = 10 accounts.
    let accounts = p
        .strategies
        .iter()
        .find(|s| s.kind == StrategyKind::MultiAccount)
        .unwrap();
    let needed = accounts
        .figures
        .iter()
        .find(|f| f.label == "accounts needed at the horizon")
        .unwrap();
    assert_eq!(needed.figure.value, 10.0);
    assert_eq!(accounts.carries, Carries::Yes);
    // Routing 80% to Sonnet leaves Opus 5,040,000 a day: ceil(5,040,000 ÷
    // 2,536,000) = ceil(1.99) = 2 accounts.
    let route = p
        .strategies
        .iter()
        .find(|s| s.name.contains("most turns to Sonnet"))
        .unwrap();
    let opus_accounts = route
        .figures
        .iter()
        .find(|f| {
            f.label
                .contains("accounts its fixed tokens per day cap needs")
        })
        .unwrap();
    assert_eq!(opus_accounts.figure.value, 2.0);
    let share = route
        .figures
        .iter()
        .find(|f| f.label.contains("opus") && f.label.contains("tokens per day at the horizon"))
        .unwrap();
    assert_close(
        share.figure.value,
        5_040_000.0 / 2_592_000.0,
        "Opus daily share",
    );
}

#[test]
fn an_entered_burndown_replaces_the_built_in_table() {
    // The same call with Opus 4.6's output burning 10 quota tokens each (an
    // override for the newest models, CAPACITY.md §2): 4,000 + 3,600 + 1,000
    // × 10 = 17,600, read from the plan input, not the built-in 5.
    let text = format!("{OPUS}[models.\"anthropic.claude-opus-4-6-v1\"]\nburndown = 10\n");
    let p = plan_of(&text);
    assert_eq!(p.classes[0].settlement.value, 17_600.0);
    assert!(
        p.classes[0]
            .settlement
            .from
            .iter()
            .any(|id| id == "input:models.\"anthropic.claude-opus-4-6-v1\".burndown"),
        "{:?}",
        p.classes[0].settlement.from
    );
}

#[test]
fn opus_admission_and_rpm_walls() {
    let p = plan_of(OPUS);
    // Peak: 6 sessions × 200 calls ÷ 240 minutes = 5 calls a minute: 25 RPM binds at ×5.
    assert_close(
        wall(&p, WallKind::Rpm, "opus")
            .binds_at
            .as_ref()
            .unwrap()
            .value,
        5.0,
        "RPM",
    );
    // Reservation 40,000 + 16,000 = 56,000, held 30 s of the minute:
    // window per call 12,600 + 0.5 × (56,000 − 12,600) = 34,300; × 5 = 171,500 TPM;
    // (2,000,000 − 56,000) ÷ 171,500 = 11.335.
    let admission = wall(&p, WallKind::TpmAdmission, "opus");
    assert_close(
        admission.load_today.as_ref().unwrap().value,
        171_500.0,
        "window",
    );
    assert_close(
        admission.binds_at.as_ref().unwrap().value,
        1_944_000.0 / 171_500.0,
        "admission",
    );
    // Cost: 4,000 × $5.50 + 32,400 × $0.55 + 3,600 × $6.875 + 1,000 × $27.50 per 1M
    // = $0.09207 a call; 2,000 calls a day × 30.4375 days = $5,604.28 a month.
    let cost = p.classes[0].cost_per_request.as_ref().unwrap().value;
    assert_close(cost, 0.092_07, "cost per call");
    let monthly = wall(&p, WallKind::MonthlyCost, "all classes")
        .load_today
        .as_ref()
        .unwrap()
        .value;
    assert_close(
        monthly,
        2_000.0 / 1_440.0 * 43_830.0 * 0.092_07,
        "monthly cost",
    );
}

#[test]
fn quota_request_in_the_terms_of_the_form() {
    // Sonnet 4.5 us. pool, TPM 1,000,000 entered; +20% a month over 12 months.
    let p = plan_of(
        r#"
start = "2027-01-01"
region = "us-west-2"
lead_time_days = 30
[growth]
monthly_rate = 0.2
[[class]]
name = "chat"
peak_rpm = 100
average_rpm = 40
input_tokens = 2000
output_tokens = 200
max_tokens = 500
mean_e2e_seconds = 6
models = ["us.anthropic.claude-sonnet-4-5-20250929-v1:0"]
[[quota]]
model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
tpm = 1000000
"#,
    );
    // S = 2,000 + 200 × 5 = 3,000; settled peak 300,000 TPM: binds at ×3.333.
    // R = 2,500, held 6 s: window 3,000 + 0.1 × (2,500 − 3,000) = 2,950 a call.
    let settled = wall(&p, WallKind::TpmSettled, "sonnet");
    assert_close(
        settled.binds_at.as_ref().unwrap().value,
        1_000_000.0 / 300_000.0,
        "settled",
    );
    let r = &p.quota_requests[0];
    assert_eq!(r.region.as_deref(), Some("us-west-2"));
    assert_eq!(r.model_id, "us.anthropic.claude-sonnet-4-5-20250929-v1:0");
    let f = 1.2f64.powf(12.0 * 30.4375 / 30.4375);
    // At the horizon (×1.2^12 = 8.916): settled peak 300,000 × f; the window at
    // admission 100 × 2,950 × f + 2,500 is smaller, so peak TPM is the settled one.
    assert_close(r.form.peak_tpm.value, 300_000.0 * f, "peak TPM");
    assert_close(
        r.form.steady_state_tpm.value,
        40.0 * 3_000.0 * f,
        "steady TPM",
    );
    assert_close(r.form.peak_rpm.value, 100.0 * f, "peak RPM");
    assert_close(r.form.steady_state_rpm.value, 40.0 * f, "steady RPM");
    assert_eq!(r.form.average_input_tokens.value, 2_000.0);
    assert_eq!(r.form.average_output_tokens.value, 200.0);
    let item = &r.items[0];
    assert_eq!(item.metric, QuotaMetric::TokensPerMinute);
    assert_eq!(item.quota_code.as_deref(), Some("L-F4DDD3EB"));
    assert_eq!(
        item.quota_name.as_deref(),
        Some("Cross-region model inference tokens per minute for Anthropic Claude Sonnet 4.5 V1")
    );
    // Requested: 2,674,830 rounded up to the next thousand.
    assert_eq!(
        item.requested.value,
        (300_000.0 * f / 1_000.0).ceil() * 1_000.0
    );
    // Binds after ln(3.333) ÷ ln(1.2) months = 6.6 months (day 200.9): file 30 days before.
    let day = (10.0f64 / 3.0).ln() / 1.2f64.ln() * 30.4375;
    assert_close(
        r.file_by.day,
        ((day - 30.0) * 1e6).round() / 1e6,
        "file-by day",
    );
    assert_eq!(r.binds.day().map(f64::ceil), Some(day.ceil()));
    assert_eq!(r.file_by.date.unwrap().to_string(), "2027-06-20");
}

#[test]
fn caching_saves_settled_tokens_and_money() {
    let p = plan_of(
        r#"
[[class]]
name = "chat"
peak_rpm = 100
average_rpm = 50
input_tokens = 3000
output_tokens = 300
max_tokens = 600
models = ["us.anthropic.claude-haiku-4-5-20251001-v1:0"]
cache = { prefix_tokens = 2000, hit_ratio = 0.8 }
[[quota]]
model = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
tpm = 4000000
"#,
    );
    let s = p
        .strategies
        .iter()
        .find(|s| s.kind == StrategyKind::PromptCaching)
        .unwrap();
    let get = |label: &str| {
        s.figures
            .iter()
            .find(|f| f.label.contains(label))
            .unwrap()
            .figure
            .value
    };
    // Without: S = 3,000 + 300 × 5 = 4,500. With: 1,000 uncached + 400 writes
    // (20% of 2,000) + 1,500 = 2,900. Saved at the peak: 100 × 1,600 = 160,000 TPM.
    assert_close(get("settled TPM saved"), 160_000.0, "TPM saved");
    assert_close(
        get("tokens per day saved"),
        50.0 * 1_440.0 * 1_600.0,
        "tokens per day saved",
    );
    // Price per call (Haiku us., +10%): without 3,000 × 1.1 + 300 × 5.5 = 4,950 µ$;
    // with 1,000 × 1.1 + 1,600 × 0.11 + 400 × 1.375 + 300 × 5.5 = 3,476 µ$.
    assert_close(
        get("monthly cost saved"),
        50.0 * 43_830.0 * (4_950.0 - 3_476.0) * 1e-6,
        "money saved",
    );
}

#[test]
fn a_plan_missing_inputs_says_what_would_enable_them() {
    // A model with no built-in quotas and no price: the quota walls cannot be
    // placed, cost is unknown, and the plan still shows the demand it can.
    let p = plan_of(
        r#"
[[class]]
name = "chat"
peak_rpm = 10
average_rpm = 5
input_tokens = 100
output_tokens = 50
max_tokens = 100
models = ["amazon.nova-pro-v1:0"]
"#,
    );
    let needs: Vec<String> = p
        .missing
        .iter()
        .map(|m| format!("{}: {}", m.section, m.needs))
        .collect();
    assert!(
        needs
            .iter()
            .any(|n| n.contains("enter [[quota]] model = \"amazon.nova-pro-v1:0\" tpm")),
        "{needs:#?}"
    );
    assert!(
        needs
            .iter()
            .any(|n| n.contains("no price for amazon.nova-pro-v1:0")),
        "{needs:#?}"
    );
    assert!(
        needs.iter().any(|n| n.contains("enter start")),
        "{needs:#?}"
    );
    let unplaced = wall(&p, WallKind::TpmSettled, "nova");
    assert_eq!(unplaced.binds, Binding::Unplaced);
    assert_close(
        unplaced.load_today.as_ref().unwrap().value,
        10.0 * 150.0,
        "load shown",
    );
    assert!(
        p.strategies
            .iter()
            .any(|s| s.kind == StrategyKind::QuotaIncrease && s.carries == Carries::Unknown)
    );
}
