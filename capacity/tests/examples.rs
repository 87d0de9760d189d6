//! The annotated examples parse, plan, render, and read back unchanged.
//! `PRINT_PLAN=1 cargo nextest run -p quarry-capacity --test examples --no-capture`
//! prints their `plan.txt`.

mod support;

use quarry_capacity::{from_json, parse_plan_file, plan, render_text, to_json};

fn run(name: &str, text: &str) -> quarry_capacity::Plan {
    let input = parse_plan_file(name, text).unwrap_or_else(|e| panic!("{name}:\n{e}"));
    let plan = plan(&support::with_builtin_prices(input));
    let json = to_json(&plan);
    let back = from_json(&json).expect("plan.json reads back");
    assert_eq!(
        back, plan,
        "{name}: plan.json must read back to the same plan"
    );
    assert_eq!(render_text(&back), render_text(&plan));
    if std::env::var_os("PRINT_PLAN").is_some() {
        println!("{}", render_text(&plan));
    }
    plan
}

#[test]
fn growing_product_example_plans() {
    let plan = run(
        "examples/plan.toml",
        include_str!("../../examples/plan.toml"),
    );
    assert!(!plan.walls.is_empty());
}

#[test]
fn opus_daily_cap_example_plans() {
    let plan = run(
        "examples/plan-opus-daily-cap.toml",
        include_str!("../../examples/plan-opus-daily-cap.toml"),
    );
    assert!(!plan.walls.is_empty());
}
