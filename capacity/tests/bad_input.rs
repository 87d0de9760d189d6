//! Bad plan input: each mistake is reported as `file:line: field: message`,
//! and every mistake in a file is reported, not just the first.

use quarry_capacity::parse_plan_file;

fn errors(text: &str) -> Vec<String> {
    match parse_plan_file("PLAN.toml", text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.diagnostics().iter().map(ToString::to_string).collect(),
    }
}

fn assert_error(text: &str, expected: &str) {
    let found = errors(text);
    assert!(
        found.iter().any(|e| e.starts_with(expected)),
        "expected {expected:?} in {found:#?}"
    );
}

const CLASS: &str = r#"[[class]]
name = "chat"
peak_rpm = 10
average_rpm = 5
input_tokens = 100
output_tokens = 50
models = ["meta.llama3-3-70b-instruct-v1:0"]
"#;

/// The valid class with `line` replaced (1-based) or appended.
fn with(edit: &str, replace_line: Option<usize>) -> String {
    let mut lines: Vec<&str> = CLASS.lines().collect();
    match replace_line {
        Some(n) => lines[n - 1] = edit,
        None => lines.push(edit),
    }
    lines.join("\n") + "\n"
}

#[test]
fn the_base_case_is_valid() {
    parse_plan_file("PLAN.toml", CLASS).unwrap();
}

#[test]
fn numbers_out_of_range() {
    assert_error(
        &with("peak_rpm = 0", Some(3)),
        "PLAN.toml:3: class[0].peak_rpm: must be greater than 0, got 0",
    );
    assert_error(
        &with("average_rpm = 50", Some(4)),
        "PLAN.toml:4: class[0].average_rpm: 50 is above peak_rpm (10)",
    );
    assert_error(
        &with("input_tokens = 0", Some(5)),
        "PLAN.toml:5: class[0].input_tokens: must be between 1 and 1e9 tokens, got 0",
    );
    assert_error(
        &with("max_tokens = 20", None),
        "PLAN.toml:8: class[0].max_tokens: is below the mean output of 50 tokens",
    );
    assert_error(
        &with("cache = { prefix_tokens = 50, hit_ratio = 1.5 }", None),
        "PLAN.toml:8: class[0].cache.hit_ratio: must be between 0 and 1, got 1.5",
    );
    assert_error(
        &with("cache = { prefix_tokens = 500 }", None),
        "PLAN.toml:8: class[0].cache.prefix_tokens: 500 is more than the 100 input tokens",
    );
    assert_error(
        &format!("horizon_months = 0\n{CLASS}"),
        "PLAN.toml:1: horizon_months: must be greater than 0, got 0",
    );
    assert_error(
        &format!("accounts = 0\n{CLASS}"),
        "PLAN.toml:1: accounts: must be at least 1, got 0",
    );
    assert_error(
        &with("peak_rpm = 1e300", Some(3)),
        "PLAN.toml:3: class[0].peak_rpm: must be at most 1e12, got 1e300",
    );
}

#[test]
fn unknown_fields_and_wrong_types() {
    assert_error(
        &with("peak_rps = 10", Some(3)),
        "PLAN.toml:3: class[0].peak_rps: unknown field `peak_rps`",
    );
    assert_error(
        &with("peak_rpm = \"lots\"", Some(3)),
        "PLAN.toml:3: class[0].peak_rpm: invalid type",
    );
    assert_error(
        &format!("strat = \"2026-01-01\"\n{CLASS}"),
        "PLAN.toml:1: strat: unknown field `strat`",
    );
}

#[test]
fn missing_and_conflicting_fields() {
    assert_error(
        &CLASS.replace("models = [\"meta.llama3-3-70b-instruct-v1:0\"]\n", ""),
        "PLAN.toml:1: class[0].models: missing",
    );
    assert_error(
        &with("concurrent_users = 40", None),
        "PLAN.toml:1: class[0].peak_rpm: give demand in one form only",
    );
    assert_error("title = \"x\"\n", "PLAN.toml: class: no [[class]]");
    // ... unless a trace supplies the classes.
    let traced = quarry_capacity::parse_plan_file_with(
        "PLAN.toml",
        "title = \"x\"\n",
        quarry_capacity::PlanFileContext {
            demand_from_trace: true,
        },
    )
    .unwrap();
    assert!(traced.classes.is_empty());
    let sessions = CLASS.replace("peak_rpm = 10\naverage_rpm = 5\n", "sessions_per_day = 100\nrequests_per_session = 10\nsession_minutes = 60\npeak_concurrent_sessions = 2\n");
    assert_error(
        &sessions,
        "PLAN.toml:6: class[0].peak_concurrent_sessions: is below the 4.16",
    );
}

#[test]
fn dates_and_growth() {
    assert_error(
        &format!("start = \"2026-02-30\"\n{CLASS}"),
        "PLAN.toml:1: start: must be a date written YYYY-MM-DD, got \"2026-02-30\"",
    );
    let both =
        format!("[growth]\nmonthly_rate = 0.1\nlevels = [{{ month = 3, factor = 2 }}]\n{CLASS}");
    assert_error(
        &both,
        "PLAN.toml:3: growth.levels: give either growth.monthly_rate or growth.levels, not both",
    );
    let undated = format!("[growth]\nlevels = [{{ date = \"2026-06-01\", factor = 2 }}]\n{CLASS}");
    assert_error(
        &undated,
        "PLAN.toml:2: growth.levels[0].date: a dated level needs start",
    );
    let backwards = format!(
        "start = \"2026-01-01\"\n[growth]\nlevels = [\n  {{ month = 6, factor = 2 }},\n  {{ date = \"2026-02-01\", factor = 3 }},\n]\n{CLASS}"
    );
    assert_error(
        &backwards,
        "PLAN.toml:5: growth.levels[1]: levels must be after start and in time order",
    );
    assert_error(
        &format!("[growth]\nmonthly_rate = -1\n{CLASS}"),
        "PLAN.toml:2: growth.monthly_rate: must be greater than -1",
    );
}

#[test]
fn routes_quotas_prices_and_offers() {
    let route =
        format!("{CLASS}[[class.route]]\nname = \"split\"\nmix = {{ \"a\" = 0.5, \"b\" = 0.4 }}\n");
    assert_error(
        &route,
        "PLAN.toml:10: class[0].route[0].mix: shares must add up to 1, they add up to 0.9",
    );
    let quota = format!(
        "{CLASS}[[quota]]\nmodel = \"us.anthropic.claude-opus-4-6-v1\"\ntpm = 1000\n[[quota]]\nmodel = \"us.anthropic.claude-opus-4-6-v1\"\nrpm = 5\n"
    );
    assert_error(
        &quota,
        "PLAN.toml:12: quota[1].model: quota[0] is for the same pool",
    );
    let zero = format!("{CLASS}[[quota]]\nmodel = \"meta.llama3-3-70b-instruct-v1:0\"\ntpm = 0\n");
    assert_error(
        &zero,
        "PLAN.toml:10: quota[0].tpm: must be at least 1, got 0",
    );
    let price = format!("{CLASS}[pricing.\"meta.llama3-3-70b-instruct-v1:0\"]\ninput = 0.72\n");
    assert_error(
        &price,
        "PLAN.toml:8: pricing.\"meta.llama3-3-70b-instruct-v1:0\": input and output prices are required",
    );
    let host = format!(
        "{CLASS}[[self_hosted]]\nclass = \"chatt\"\nusd_per_unit_month = 100\nrpm_per_unit = 10\n"
    );
    assert_error(
        &host,
        "PLAN.toml:9: self_hosted[0].class: \"chatt\" names no [[class]]",
    );
    let pt = format!(
        "{CLASS}[[provisioned]]\nmodel = \"meta.llama3-3-70b-instruct-v1:0\"\nusd_per_unit_hour = 20\n"
    );
    assert_error(
        &pt,
        "PLAN.toml:8: provisioned[0].tokens_per_minute_per_unit: missing",
    );
}

#[test]
fn every_mistake_is_reported_in_file_order() {
    let text = with("peak_rpm = 0", Some(3)).replace("input_tokens = 100", "input_tokens = -5")
        + "[budget]\nmonthly_usd = 0\n";
    let found = errors(&text);
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(found[0].starts_with("PLAN.toml:3: class[0].peak_rpm"));
    assert!(found[1].starts_with("PLAN.toml:5: class[0].input_tokens"));
    assert!(found[2].starts_with("PLAN.toml:9: budget.monthly_usd"));
}

mod never_panics {
    use proptest::prelude::*;
    use quarry_capacity::{parse_plan_file, plan};

    const EXAMPLE: &str = include_str!("../../examples/plan.toml");

    proptest! {
        /// Whatever the text, the parser answers with a plan input or located
        /// findings; and whatever it accepts, the planner plans.
        #[test]
        fn on_arbitrary_text(text in "\\PC{0,400}") {
            if let Ok(input) = parse_plan_file("PLAN.toml", &text) {
                let _ = plan(&input);
            }
        }

        /// The example with one line cut or one character changed.
        #[test]
        fn on_mutated_examples(line in 0usize..120, at in 0usize..6_000, c in proptest::char::any()) {
            let mut lines: Vec<&str> = EXAMPLE.lines().collect();
            if line < lines.len() {
                lines.remove(line);
            }
            let cut = lines.join("\n");
            let mut changed: Vec<char> = EXAMPLE.chars().collect();
            let i = at % changed.len();
            changed[i] = c;
            let changed: String = changed.into_iter().collect();
            for text in [cut, changed] {
                match parse_plan_file("PLAN.toml", &text) {
                    Ok(input) => {
                        let _ = plan(&input);
                    }
                    Err(e) => prop_assert!(e.diagnostics().iter().all(|d| d.to_string().starts_with("PLAN.toml"))),
                }
            }
        }
    }
}

#[test]
fn a_burndown_below_one_is_refused_with_its_line() {
    let text = format!("{CLASS}[models.\"anthropic.claude-opus-4-6-v1\"]\nburndown = 0\n");
    assert_error(
        &text,
        "PLAN.toml:9: models.\"anthropic.claude-opus-4-6-v1\".burndown: must be at least 1, got 0",
    );
}
