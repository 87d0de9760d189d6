//! Spec validation end to end: every kind of bad spec is rejected with a
//! message naming file, line and field; every example validates.

use std::path::Path;

use quarry::fleet::AgentSource;
use quarry::spec::{Severity, load_spec, parse_spec};
use quarry_engine::{
    Arrival, CatchUp, LoadModel, RetryPolicy, StageKind, Target, TokenDistribution,
};

const WORKLOAD: &str = r#"
[[workload]]
model = "meta.llama3-3-70b-instruct-v1:0"
input_tokens = 100
max_tokens = 50
"#;

/// The rendered errors for `text`, which must be invalid.
fn errors(text: &str) -> String {
    match parse_spec(Path::new("spec.toml"), text) {
        Ok(_) => panic!("spec was accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

/// Asserts `text` is rejected with a message containing `want`.
fn rejects(text: &str, want: &str) {
    let got = errors(text);
    assert!(got.contains(want), "expected {want:?} in:\n{got}");
}

#[test]
fn unknown_key_is_rejected() {
    rejects(
        "[load]\nconcurrency = 4\nduraton = \"10s\"\n",
        "spec.toml:3: load.duraton: unknown field `duraton`",
    );
}

#[test]
fn wrong_type_is_rejected() {
    rejects(
        "[load]\nconcurrency = \"four\"\n",
        "spec.toml:2: load.concurrency: invalid type: string \"four\"",
    );
}

#[test]
fn zero_concurrency_is_rejected() {
    let spec = format!("[load]\nconcurrency = 0\nduration = \"10s\"\n{WORKLOAD}");
    rejects(&spec, "spec.toml:2: load.concurrency: must be >= 1, got 0");
}

#[test]
fn zero_and_negative_rates_are_rejected() {
    for rate in ["0", "-2.5"] {
        let spec = format!("[load]\nrate = {rate}\nduration = \"10s\"\n{WORKLOAD}");
        let want = format!(
            "spec.toml:2: load.rate: must be > 0 requests per second, got {}",
            rate.parse::<f64>().unwrap()
        );
        rejects(&spec, &want);
    }
}

#[test]
fn both_concurrency_and_rate_are_rejected() {
    let spec = format!("[load]\nconcurrency = 4\nrate = 10\nduration = \"10s\"\n{WORKLOAD}");
    rejects(
        &spec,
        "spec.toml:3: load.rate: give either concurrency (closed model) or rate (open model), not both",
    );
}

#[test]
fn neither_concurrency_nor_rate_is_rejected() {
    let spec = format!("seed = 1\n[load]\nduration = \"10s\"\n{WORKLOAD}");
    rejects(
        &spec,
        "spec.toml:2: load: needs concurrency = N (closed model) or rate = R per second",
    );
}

#[test]
fn open_only_fields_on_a_closed_model_are_rejected() {
    let spec =
        format!("[load]\nconcurrency = 4\narrival = \"poisson\"\nduration = \"10s\"\n{WORKLOAD}");
    rejects(
        &spec,
        "spec.toml:3: load.arrival: only applies to an open model (rate)",
    );
}

#[test]
fn unknown_arrival_is_rejected() {
    let spec = format!("[load]\nrate = 4\narrival = \"bursty\"\nduration = \"10s\"\n{WORKLOAD}");
    rejects(
        &spec,
        "spec.toml:3: load.arrival: unknown arrival \"bursty\": expected \"constant\" or \"poisson\"",
    );
}

#[test]
fn all_zero_weights_are_rejected() {
    let spec = "[load]\nconcurrency = 1\nrequests = 10\n\
        [[workload]]\nweight = 0\nmodel = \"amazon.nova-lite-v1:0\"\ninput_tokens = 10\nmax_tokens = 5\n\
        [[workload]]\nweight = 0\nmodel = \"amazon.nova-pro-v1:0\"\ninput_tokens = 10\nmax_tokens = 5\n";
    rejects(
        spec,
        "spec.toml:4: workload: every workload entry has weight 0",
    );
}

#[test]
fn unknown_operation_is_rejected() {
    let spec = "[load]\nconcurrency = 1\nrequests = 10\n[[workload]]\nmodel = \"amazon.nova-lite-v1:0\"\n\
        operation = \"Chat\"\ninput_tokens = 10\nmax_tokens = 5\n";
    rejects(
        spec,
        "spec.toml:6: workload[0].operation: unknown operation \"Chat\"",
    );
}

#[test]
fn bad_model_ids_are_rejected() {
    let spec = "[load]\nconcurrency = 1\nrequests = 10\n[[workload]]\nmodel = \"meta llama\"\ninput_tokens = 10\nmax_tokens = 5\n";
    rejects(
        spec,
        "spec.toml:5: workload[0].model: model id \"meta llama\" contains ' '",
    );
    let spec = spec.replace("meta llama", "");
    rejects(
        &spec,
        "spec.toml:5: workload[0].model: model id must not be empty",
    );
}

#[test]
fn distribution_with_min_above_max_is_rejected() {
    let spec = "[load]\nconcurrency = 1\nrequests = 10\n[[workload]]\nmodel = \"amazon.nova-lite-v1:0\"\n\
        input_tokens = { dist = \"uniform\", min = 500, max = 100 }\nmax_tokens = 5\n";
    rejects(
        spec,
        "spec.toml:6: workload[0].input_tokens: min (500) must be <= max (100)",
    );
}

#[test]
fn distribution_missing_parameters_and_unknown_names_are_rejected() {
    let spec = "[load]\nconcurrency = 1\nrequests = 10\n[[workload]]\nmodel = \"amazon.nova-lite-v1:0\"\n\
        input_tokens = { dist = \"lognormal\", mean = 500 }\nmax_tokens = 5\n";
    rejects(
        spec,
        "spec.toml:6: workload[0].input_tokens.stddev: is required for dist = \"lognormal\"",
    );
    let spec = spec.replace("lognormal", "zipf");
    rejects(
        &spec,
        "spec.toml:6: workload[0].input_tokens.dist: unknown distribution \"zipf\"",
    );
}

#[test]
fn zero_max_tokens_is_rejected() {
    let spec = "[load]\nconcurrency = 1\nrequests = 10\n[[workload]]\nmodel = \"amazon.nova-lite-v1:0\"\ninput_tokens = 10\nmax_tokens = 0\n";
    rejects(
        spec,
        "spec.toml:7: workload[0].max_tokens: must be >= 1, got 0",
    );
}

#[test]
fn missing_max_tokens_says_why_it_is_required() {
    let spec = "[load]\nconcurrency = 1\nrequests = 10\n[[workload]]\nmodel = \"amazon.nova-lite-v1:0\"\ninput_tokens = 10\n";
    rejects(
        spec,
        "spec.toml:4: workload[0].max_tokens: is required: Bedrock reserves max_tokens",
    );
}

#[test]
fn missing_duration_and_requests_is_rejected() {
    let spec = format!("seed = 2\n\n[load]\nconcurrency = 4\n{WORKLOAD}");
    rejects(
        &spec,
        "spec.toml:3: load: needs duration = \"60s\", requests = N, or [[load.stages]]",
    );
}

#[test]
fn bad_threshold_expressions_are_rejected() {
    let spec = format!(
        "[load]\nconcurrency = 1\nduration = \"5s\"\n{WORKLOAD}\n[thresholds]\n\"ttft.p99\" = \"2s\"\n\"ttft.p42\" = \"< 2s\"\n"
    );
    let got = errors(&spec);
    assert!(
        got.contains(
            "spec.toml:11: thresholds.ttft.p99: bad condition \"2s\" for ttft.p99: must start with"
        ),
        "{got}"
    );
    assert!(
        got.contains("spec.toml:12: thresholds.ttft.p42: unknown statistic in \"ttft.p42\""),
        "{got}"
    );
    let spec = format!(
        "[load]\nconcurrency = 1\nduration = \"5s\"\n{WORKLOAD}\n[thresholds]\ne2e.p99 = \"< 3\"\n"
    );
    rejects(
        &spec,
        "spec.toml:11: thresholds.e2e.p99: bad condition \"< 3\" for e2e.p99: a latency bound needs a unit",
    );
}

#[test]
fn unknown_target_is_rejected() {
    let spec =
        format!("[target]\nkind = \"gcp\"\n[load]\nconcurrency = 1\nduration = \"5s\"\n{WORKLOAD}");
    rejects(
        &spec,
        "spec.toml:2: target.kind: unknown target \"gcp\": expected \"sim\" or \"aws\"",
    );
}

#[test]
fn aws_target_without_region_is_rejected() {
    let spec = format!(
        "[target]\nkind = \"aws\"\nprofile = \"dev\"\n[load]\nconcurrency = 1\nduration = \"5s\"\n{WORKLOAD}"
    );
    rejects(
        &spec,
        "spec.toml:1: target.region: is required when kind = \"aws\"",
    );
}

#[test]
fn sim_target_with_aws_fields_is_rejected() {
    let spec = format!(
        "[target]\nregion = \"us-east-1\"\n[load]\nconcurrency = 1\nduration = \"5s\"\n{WORKLOAD}"
    );
    rejects(
        &spec,
        "spec.toml:2: target.region: only applies to kind = \"aws\"",
    );
}

#[test]
fn cache_prefix_on_a_model_without_caching_is_an_error() {
    let spec = "[load]\nconcurrency = 1\nduration = \"5s\"\n[[workload]]\nmodel = \"meta.llama3-3-70b-instruct-v1:0\"\n\
        input_tokens = 10\nmax_tokens = 5\ncache_prefix_tokens = 2048\n";
    rejects(
        spec,
        "spec.toml:8: workload[0].cache_prefix_tokens: model \"meta.llama3-3-70b-instruct-v1:0\" does not support prompt caching",
    );
}

#[test]
fn one_hour_ttl_on_a_model_without_it_is_an_error() {
    let spec = "[load]\nconcurrency = 1\nduration = \"5s\"\n[[workload]]\nmodel = \"anthropic.claude-3-7-sonnet-20250219-v1:0\"\n\
        input_tokens = 10\nmax_tokens = 5\ncache_prefix_tokens = 2048\ncache_ttl = \"1h\"\n";
    rejects(
        spec,
        "spec.toml:9: workload[0].cache_ttl: model \"anthropic.claude-3-7-sonnet-20250219-v1:0\" does not support the 1h cache TTL",
    );
}

#[test]
fn small_cache_prefix_and_unpriced_model_are_warnings() {
    let spec = "[load]\nconcurrency = 1\nduration = \"5s\"\n[[workload]]\nmodel = \"anthropic.claude-haiku-4-5-20251001-v1:0\"\n\
        input_tokens = 10\nmax_tokens = 5\ncache_prefix_tokens = 1000\n\
        [[workload]]\nmodel = \"cohere.command-r-v1:0\"\ninput_tokens = 10\nmax_tokens = 5\n";
    let valid = parse_spec(Path::new("spec.toml"), spec).unwrap();
    let warnings: Vec<String> = valid.warnings.iter().map(ToString::to_string).collect();
    assert!(
        valid
            .warnings
            .iter()
            .all(|w| w.severity == Severity::Warning)
    );
    assert!(
        warnings[0]
            .starts_with("spec.toml:8: warning: workload[0].cache_prefix_tokens: 1000 is below"),
        "{warnings:?}"
    );
    assert!(
        warnings[1].starts_with(
            "spec.toml:10: warning: workload[1].model: no price for \"cohere.command-r-v1:0\""
        ),
        "{warnings:?}"
    );
}

#[test]
fn stage_without_duration_is_rejected() {
    let spec = format!(
        "[load]\nconcurrency = 10\n\n[[load.stages]]\nkind = \"ramp\"\ntarget = 10\n{WORKLOAD}"
    );
    rejects(&spec, "spec.toml:4: load.stages[0].duration: is required");
}

#[test]
fn stage_problems_are_located() {
    let spec = format!(
        "[load]\nconcurrency = 10\n[[load.stages]]\nkind = \"hold\"\nduration = \"5s\"\n\
         [[load.stages]]\nkind = \"plateau\"\nduration = \"5s\"\n[[load.stages]]\nkind = \"ramp\"\nduration = \"5s\"\ntarget = 2.5\n{WORKLOAD}"
    );
    let got = errors(&spec);
    assert!(
        got.contains("spec.toml:7: load.stages[1].kind: unknown stage kind \"plateau\""),
        "{got}"
    );
    assert!(
        got.contains("spec.toml:12: load.stages[2].target: must be a whole concurrency"),
        "{got}"
    );
}

#[test]
fn bad_durations_are_rejected() {
    let spec = format!("[load]\nconcurrency = 1\nduration = \"ten seconds\"\n{WORKLOAD}");
    rejects(
        &spec,
        "spec.toml:3: load.duration: \"ten seconds\" is not a duration",
    );
    let spec = format!("[load]\nconcurrency = 1\nduration = \"0s\"\n{WORKLOAD}");
    rejects(&spec, "spec.toml:3: load.duration: must be longer than 0");
}

#[test]
fn missing_workload_and_bad_pricing_are_rejected() {
    let spec = "[load]\nconcurrency = 1\nduration = \"5s\"\n[pricing.\"my-model\"]\ninput = -1\n";
    let got = errors(spec);
    assert!(
        got.contains("spec.toml:5: pricing.\"my-model\".input: must be a price >= 0"),
        "{got}"
    );
    assert!(
        got.contains("spec.toml:4: pricing.\"my-model\".output: is required"),
        "{got}"
    );
    assert!(
        got.contains("spec.toml: workload: at least one [[workload]] entry is required"),
        "{got}"
    );
}

#[test]
fn every_error_is_reported_not_only_the_first() {
    let spec = "[load]\nconcurrency = 0\nduration = \"5s\"\n[[workload]]\nmodel = \"amazon.nova-lite-v1:0\"\n\
        operation = \"Chat\"\ninput_tokens = 0\nmax_tokens = 0\ntemperature = 3\n";
    let got = errors(spec);
    for want in [
        "spec.toml:2: load.concurrency",
        "spec.toml:6: workload[0].operation",
        "spec.toml:7: workload[0].input_tokens: must be >= 1, got 0",
        "spec.toml:8: workload[0].max_tokens",
        "spec.toml:9: workload[0].temperature: must be between 0 and 1, got 3",
    ] {
        assert!(got.contains(want), "expected {want:?} in:\n{got}");
    }
    assert_eq!(got.lines().count(), 5, "{got}");
}

#[test]
fn a_full_spec_becomes_the_plan_it_describes() {
    let spec = r#"
seed = 99
[target]
kind = "aws"
region = "eu-west-1"
[load]
rate = 12.5
arrival = "poisson"
max_in_flight = 64
drop_late_after = "1s"
warmup = "3s"
duration = "20s"
requests = 400
[[workload]]
weight = 3
model = "eu.anthropic.claude-sonnet-4-5-20250929-v1:0"
operation = "converse-stream"
input_tokens = { dist = "lognormal", mean = 800, stddev = 300 }
max_tokens = 256
nonce = false
[retry]
mode = "standard"
max_attempts = 5
[timeouts]
first_token = "20s"
[thresholds]
ttft.p99 = "< 2s"
"error_rate" = ["< 1%", ">= 0"]
"#;
    let valid = parse_spec(Path::new("spec.toml"), spec).unwrap();
    let plan = &valid.plan;
    assert_eq!(plan.seed, 99);
    assert_eq!(
        plan.target,
        Target::Aws {
            region: "eu-west-1".into(),
            endpoint: None,
            profile: None
        }
    );
    assert_eq!(
        plan.load.model(),
        &LoadModel::Open {
            rate_per_s: 12.5,
            arrival: Arrival::Poisson,
            max_in_flight: Some(64),
            catch_up: CatchUp::Drop {
                after: std::time::Duration::from_secs(1)
            },
        }
    );
    let kinds: Vec<_> = plan.load.stages().iter().map(|s| s.kind).collect();
    assert_eq!(kinds, [StageKind::Warmup, StageKind::Hold]);
    let entry = &plan.mix.entries()[0];
    assert_eq!(
        entry.input_tokens,
        TokenDistribution::LogNormal {
            mean: 800.0,
            stddev: 300.0,
            min: 1,
            max: 2600
        }
    );
    assert!(!entry.nonce);
    assert_eq!(plan.retry.max_attempts(), 5);
    assert!(matches!(plan.retry, RetryPolicy::Standard { .. }));
    assert_eq!(valid.thresholds.rules().len(), 3);
    assert!(valid.warnings.is_empty(), "{:?}", valid.warnings);
    // The plan crosses to agents as JSON and comes back identical.
    let json = serde_json::to_string(plan).unwrap();
    assert_eq!(
        &serde_json::from_str::<quarry_engine::RunPlan>(&json).unwrap(),
        plan
    );
}

#[test]
fn every_example_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        // `plan*.toml` are capacity-plan inputs, not run specs: the
        // quarry-capacity crate's tests plan them.
        let plan_input = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("plan"));
        if path.extension().is_some_and(|e| e == "toml") && !plan_input {
            let valid = load_spec(&path).unwrap_or_else(|e| panic!("{}:\n{e}", path.display()));
            assert!(
                valid.warnings.is_empty(),
                "{}: {:?}",
                path.display(),
                valid.warnings
            );
            assert!(
                !valid.thresholds.is_empty(),
                "{}: examples show thresholds",
                path.display()
            );
            seen += 1;
        }
    }
    assert!(seen >= 4, "found {seen} examples in {}", dir.display());
}

#[test]
fn quickstart_is_short_and_targets_the_simulator() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/quickstart.toml");
    let plan = load_spec(&path).unwrap().plan;
    assert!(matches!(plan.target, Target::Sim { .. }));
    let total: std::time::Duration = plan.load.stages().iter().map(|s| s.duration).sum();
    assert!(total <= std::time::Duration::from_secs(15), "{total:?}");
}

#[test]
fn toml_syntax_errors_are_located() {
    rejects("seed = 1\n[load\nconcurrency = 1\n", "spec.toml:2: load");
}

#[test]
fn warmup_shorthand_cannot_clash_with_a_stage_name() {
    let spec = format!(
        "[load]\nconcurrency = 2\nwarmup = \"2s\"\n[[load.stages]]\nname = \"warmup\"\nkind = \"hold\"\nduration = \"5s\"\n{WORKLOAD}"
    );
    rejects(
        &spec,
        "spec.toml:3: load.warmup: conflicts with the stage named \"warmup\"",
    );
}

/// A valid spec (closed, 6 virtual users, AWS target) after `agents`, which
/// therefore starts on line 1.
fn with_agents(agents: &str) -> String {
    format!(
        "{agents}\n[target]\nkind = \"aws\"\nregion = \"us-east-1\"\n[load]\nconcurrency = 6\nduration = \"10s\"\n{WORKLOAD}"
    )
}

#[test]
fn agent_groups_become_the_agents_spec() {
    let text = with_agents(
        "[agents]\ntoken_file = \"token\"\nca = \"/etc/quarry/ca.pem\"\nlease_ttl = \"20s\"\n\
         [[agents.group]]\nname = \"prod-eu\"\nagents = [\"10.0.1.5:7400\", \"dns:agents.eu.svc:7400\"]\n\
         weight = 2\nregion = \"eu-west-1\"\naccount_alias = \"prod\"\ncredential_profile = \"bedrock-load\"\n\
         [[agents.group]]\nname = \"dev-us\"\nagents = [\"[::1]:7400\"]\n",
    );
    let valid = parse_spec(Path::new("specs/run.toml"), &text).unwrap_or_else(|e| panic!("{e}"));
    let agents = valid.agents.expect("[agents] parsed");
    // Relative paths are the spec's directory's; absolute ones stay.
    assert_eq!(agents.token_file.as_deref(), Some(Path::new("specs/token")));
    assert_eq!(agents.ca.as_deref(), Some(Path::new("/etc/quarry/ca.pem")));
    assert_eq!(agents.lease_ttl, Some(std::time::Duration::from_secs(20)));
    assert_eq!(agents.groups.len(), 2);
    let eu = &agents.groups[0];
    assert_eq!(eu.name, "prod-eu");
    assert_eq!(eu.weight, 2.0);
    assert_eq!(
        eu.agents,
        vec![
            AgentSource::Address {
                host: "10.0.1.5".into(),
                port: 7400
            },
            AgentSource::Dns {
                name: "agents.eu.svc".into(),
                port: 7400
            },
        ]
    );
    assert_eq!(eu.region.as_deref(), Some("eu-west-1"));
    assert_eq!(eu.account_alias.as_deref(), Some("prod"));
    assert_eq!(eu.credential_profile.as_deref(), Some("bedrock-load"));
    let us = &agents.groups[1];
    assert_eq!((us.weight, us.region.as_deref()), (1.0, None));
    // Each group's agents share its weight and carry its overrides.
    let slots = eu.slots(4);
    assert_eq!(slots.len(), 4);
    assert!(
        slots
            .iter()
            .all(|s| s.weight == 0.5 && s.group == "prod-eu")
    );
    assert_eq!(slots[0].credential_profile.as_deref(), Some("bedrock-load"));
    // No section: no agents.
    let plain = parse_spec(Path::new("spec.toml"), &with_agents("")).unwrap();
    assert!(plain.agents.is_none());
}

#[test]
fn agent_group_without_a_name_is_rejected() {
    rejects(
        &with_agents("[[agents.group]]\nagents = [\"a:1\"]\n"),
        "spec.toml:1: agents.group[0].name: is required",
    );
}

#[test]
fn agent_group_name_with_a_slash_is_rejected() {
    rejects(
        &with_agents("[[agents.group]]\nname = \"eu/west\"\nagents = [\"a:1\"]\n"),
        "spec.toml:2: agents.group[0].name: must be 1-64 letters, digits, '.', '_', '@' or '-', got \"eu/west\"",
    );
}

#[test]
fn duplicate_agent_group_names_are_rejected() {
    rejects(
        &with_agents(
            "[[agents.group]]\nname = \"eu\"\nagents = [\"a:1\"]\n[[agents.group]]\nname = \"eu\"\nagents = [\"b:1\"]\n",
        ),
        "spec.toml:5: agents.group[1].name: group \"eu\" is already defined on line 2",
    );
}

#[test]
fn agent_group_without_agents_is_rejected() {
    rejects(
        &with_agents("[[agents.group]]\nname = \"eu\"\n"),
        "spec.toml:1: agents.group[0].agents: is required: a list of \"host:port\" or \"dns:name:port\" entries",
    );
}

#[test]
fn agent_group_with_an_empty_list_is_rejected() {
    rejects(
        &with_agents("[[agents.group]]\nname = \"eu\"\nagents = []\n"),
        "spec.toml:3: agents.group[0].agents: must list at least one agent",
    );
}

#[test]
fn agent_entry_without_a_port_is_rejected() {
    rejects(
        &with_agents("[[agents.group]]\nname = \"eu\"\nagents = [\"a:1\", \"host\"]\n"),
        "spec.toml:3: agents.group[0].agents[1]: \"host\": expected host:port or dns:name:port",
    );
}

#[test]
fn agent_entry_with_port_zero_is_rejected() {
    rejects(
        &with_agents("[[agents.group]]\nname = \"eu\"\nagents = [\"dns:agents.svc:0\"]\n"),
        "spec.toml:3: agents.group[0].agents[0]: \"dns:agents.svc:0\": the port is not a number 1-65535",
    );
}

#[test]
fn an_agent_in_two_groups_is_rejected() {
    rejects(
        &with_agents(
            "[[agents.group]]\nname = \"eu\"\nagents = [\"a:1\"]\n[[agents.group]]\nname = \"us\"\nagents = [\"b:1\", \"a:1\"]\n",
        ),
        "spec.toml:6: agents.group[1].agents[1]: \"a:1\" is already listed in group \"eu\" (line 3): an agent runs one share at a time",
    );
}

#[test]
fn zero_agent_group_weight_is_rejected() {
    rejects(
        &with_agents("[[agents.group]]\nname = \"eu\"\nagents = [\"a:1\"]\nweight = 0\n"),
        "spec.toml:4: agents.group[0].weight: must be a number > 0, got 0",
    );
}

#[test]
fn negative_agent_group_weight_is_rejected() {
    rejects(
        &with_agents("[[agents.group]]\nname = \"eu\"\nagents = [\"a:1\"]\nweight = -1.5\n"),
        "spec.toml:4: agents.group[0].weight: must be a number > 0, got -1.5",
    );
}

#[test]
fn bad_agent_group_region_is_rejected() {
    rejects(
        &with_agents("[[agents.group]]\nname = \"eu\"\nagents = [\"a:1\"]\nregion = \"EU_WEST\"\n"),
        "spec.toml:4: agents.group[0].region: \"EU_WEST\" is not an AWS Region name like \"eu-west-1\"",
    );
}

#[test]
fn empty_account_alias_is_rejected() {
    rejects(
        &with_agents(
            "[[agents.group]]\nname = \"eu\"\nagents = [\"a:1\"]\naccount_alias = \" \"\n",
        ),
        "spec.toml:4: agents.group[0].account_alias: must not be empty",
    );
}

#[test]
fn credential_profile_on_the_simulator_is_rejected() {
    let text = format!(
        "[[agents.group]]\nname = \"eu\"\nagents = [\"a:1\"]\ncredential_profile = \"prod\"\n\
         [load]\nconcurrency = 2\nduration = \"10s\"\n{WORKLOAD}"
    );
    rejects(
        &text,
        "spec.toml:4: agents.group[0].credential_profile: only applies to target.kind = \"aws\"",
    );
}

#[test]
fn unknown_agent_group_field_is_rejected() {
    rejects(
        &with_agents("[[agents.group]]\nname = \"eu\"\nagents = [\"a:1\"]\nzone = \"a\"\n"),
        "spec.toml:4: agents.group[0].zone: unknown field `zone`",
    );
}

#[test]
fn client_certificate_without_a_key_is_rejected() {
    rejects(
        &with_agents("[agents]\nca = \"ca.pem\"\nclient_cert = \"c.pem\"\n"),
        "spec.toml:3: agents.client_cert: needs agents.client_key (mutual TLS)",
    );
}

#[test]
fn client_certificate_without_a_ca_is_rejected() {
    rejects(
        &with_agents("[agents]\nclient_cert = \"c.pem\"\nclient_key = \"k.pem\"\n"),
        "spec.toml:2: agents.client_cert: needs agents.ca: mutual TLS runs over TLS",
    );
}

#[test]
fn empty_token_file_is_rejected() {
    rejects(
        &with_agents("[agents]\ntoken_file = \"\"\n"),
        "spec.toml:2: agents.token_file: must not be empty",
    );
}

#[test]
fn lease_ttl_under_a_second_is_rejected() {
    rejects(
        &with_agents("[agents]\nlease_ttl = \"500ms\"\n"),
        "spec.toml:2: agents.lease_ttl: must be between 1s and 1h, got 500ms",
    );
}

#[test]
fn more_agent_groups_than_virtual_users_is_rejected() {
    let text = format!(
        "[[agents.group]]\nname = \"a\"\nagents = [\"a:1\"]\n[[agents.group]]\nname = \"b\"\nagents = [\"b:1\"]\n\
         [[agents.group]]\nname = \"c\"\nagents = [\"c:1\"]\n[load]\nconcurrency = 2\nduration = \"10s\"\n{WORKLOAD}"
    );
    rejects(
        &text,
        "spec.toml:1: agents.group[0]: load.concurrency is 2 but there are 3 agent groups",
    );
}

#[test]
fn an_agent_group_too_small_for_its_agents_is_rejected() {
    let text = format!(
        "[[agents.group]]\nname = \"big\"\nweight = 5\nagents = [\"a:1\"]\n\
         [[agents.group]]\nname = \"tiny\"\nagents = [\"b:1\", \"c:1\"]\n\
         [load]\nconcurrency = 3\nduration = \"10s\"\n{WORKLOAD}"
    );
    rejects(
        &text,
        "spec.toml:5: agents.group[1]: agent group \"tiny\" gets 1 of load.concurrency but has 2 agents",
    );
}

mod properties {
    use std::path::Path;

    use proptest::prelude::*;
    use quarry::spec::{parse_duration, parse_spec};

    proptest! {
        /// Arbitrary text never panics the parser, and every finding names
        /// the file and (for anything but a missing section) a line.
        #[test]
        fn arbitrary_text_never_panics(text in "[\\[\\]a-z_.=\"0-9 \\n{},-]{0,200}") {
            if let Err(e) = parse_spec(Path::new("spec.toml"), &text) {
                for d in e.diagnostics() {
                    let shown = d.to_string();
                    prop_assert!(shown.starts_with("spec.toml"), "{}", shown);
                }
            }
        }

        /// Mutating one value of a valid spec either validates or is rejected
        /// with a located finding: never a panic.
        #[test]
        fn mutated_specs_never_panic(concurrency in -5i64..5, tokens in -5i64..50, weight in -2i64..3) {
            let text = format!(
                "[load]\nconcurrency = {concurrency}\nduration = \"1s\"\n[[workload]]\nweight = {weight}\n\
                 model = \"amazon.nova-lite-v1:0\"\ninput_tokens = {tokens}\nmax_tokens = 5\n"
            );
            let valid = concurrency >= 1 && tokens >= 1 && weight >= 1;
            match parse_spec(Path::new("spec.toml"), &text) {
                Ok(_) => prop_assert!(valid),
                Err(e) => {
                    prop_assert!(!valid);
                    prop_assert!(e.diagnostics().iter().all(|d| d.line.is_some()), "{}", e);
                }
            }
        }

        /// Durations printed in milliseconds parse back exactly.
        #[test]
        fn durations_round_trip(ms in 1u64..10_000_000) {
            prop_assert_eq!(parse_duration(&format!("{ms}ms")), Ok(std::time::Duration::from_millis(ms)));
            let s = ms / 1000;
            let rest = ms % 1000;
            prop_assert_eq!(parse_duration(&format!("{s}s{rest}ms")).map(|d| d.as_millis()), Ok(u128::from(ms)));
        }
    }
}

fn with_telemetry(section: &str) -> String {
    format!("[load]\nconcurrency = 2\nduration = \"10s\"\n{WORKLOAD}\n[telemetry]\n{section}")
}

#[test]
fn telemetry_endpoint_must_be_an_http_url() {
    rejects(
        &with_telemetry("endpoint = \"localhost:4317\"\n"),
        "spec.toml:11: telemetry.endpoint: \"localhost:4317\" is not an http:// or https:// URL",
    );
}

#[test]
fn telemetry_protocol_is_grpc_or_http_protobuf() {
    rejects(
        &with_telemetry("protocol = \"http/json\"\n"),
        "spec.toml:11: telemetry.protocol: \"http/json\": expected \"grpc\" or \"http/protobuf\"",
    );
}

#[test]
fn telemetry_sample_ratio_is_a_fraction() {
    rejects(
        &with_telemetry("sample_ratio = 1.5\n"),
        "spec.toml:11: telemetry.sample_ratio: must be 0 to 1, got 1.5",
    );
}

#[test]
fn telemetry_cap_and_flush_timeout_are_checked() {
    rejects(
        &with_telemetry("max_spans_per_second = -1\n"),
        "spec.toml:11: telemetry.max_spans_per_second: must be >= 0, got -1",
    );
    rejects(
        &with_telemetry("flush_timeout = \"soon\"\n"),
        "spec.toml:11: telemetry.flush_timeout:",
    );
    rejects(
        &with_telemetry("sample_rate = 0.1\n"),
        "spec.toml:11: telemetry.sample_rate: unknown field `sample_rate`",
    );
}

#[test]
fn telemetry_section_is_read() {
    let spec = parse_spec(
        Path::new("spec.toml"),
        &with_telemetry(
            "endpoint = \"http://collector:4318/\"\nprotocol = \"http/protobuf\"\nsample_ratio = 0.25\nkeep_errors = false\nmax_spans_per_second = 7\nmetrics = false\nflush_timeout = \"2s\"\n",
        ),
    )
    .unwrap();
    let t = spec.telemetry.unwrap();
    assert_eq!(t.endpoint.as_deref(), Some("http://collector:4318"));
    assert_eq!(t.protocol.as_deref(), Some("http/protobuf"));
    assert_eq!(t.sample_ratio, Some(0.25));
    assert_eq!(t.keep_errors, Some(false));
    assert_eq!(t.max_spans_per_second, Some(7));
    assert_eq!(t.metrics, Some(false));
    assert_eq!(t.flush_timeout, Some(std::time::Duration::from_secs(2)));
}

#[test]
fn a_service_tier_and_tier_prices_reach_the_plan() {
    let spec = format!(
        "[load]\nconcurrency = 1\nrequests = 1\n{WORKLOAD}service_tier = \"flex\"\n\
         [[workload]]\nmodel = \"meta.llama3-3-70b-instruct-v1:0\"\ninput_tokens = 10\nmax_tokens = 5\n\
         [tier_pricing]\npriority = 1.75\nflex = 0.4\n"
    );
    let plan = parse_spec(Path::new("spec.toml"), &spec).unwrap().plan;
    let tiers: Vec<_> = plan.mix.entries().iter().map(|e| e.service_tier).collect();
    assert_eq!(tiers, [Some(quarry_bedrock::ServiceTierType::Flex), None]);
    use quarry_bedrock::ServiceTierType as T;
    assert_eq!(plan.tier_prices.ratio(Some(T::Priority)), Some(17_500));
    assert_eq!(plan.tier_prices.ratio(Some(T::Flex)), Some(4_000));
    assert_eq!(plan.tier_prices.ratio(None), Some(10_000));
    assert_eq!(plan.tier_prices.ratio(Some(T::Reserved)), None);
}

#[test]
fn a_bad_service_tier_is_rejected() {
    let spec =
        format!("[load]\nconcurrency = 1\nrequests = 1\n{WORKLOAD}service_tier = \"gold\"\n");
    rejects(
        &spec,
        "spec.toml:9: workload[0].service_tier: must be \"priority\", \"default\", \"flex\" or \"reserved\", got \"gold\"",
    );
    let spec = format!(
        "[load]\nconcurrency = 1\nrequests = 1\n{WORKLOAD}operation = \"CountTokens\"\nservice_tier = \"flex\"\n"
    );
    rejects(
        &spec,
        "spec.toml:10: workload[0].service_tier: CountTokens takes no service tier",
    );
    let spec =
        format!("[load]\nconcurrency = 1\nrequests = 1\n{WORKLOAD}[tier_pricing]\nflex = -1.0\n");
    rejects(
        &spec,
        "spec.toml:10: tier_pricing.flex: must be a multiple of the Standard price between 0 and 100, got -1",
    );
    let spec =
        format!("[load]\nconcurrency = 1\nrequests = 1\n{WORKLOAD}[tier_pricing]\ngold = 2.0\n");
    rejects(
        &spec,
        "spec.toml:10: tier_pricing.gold: unknown field `gold`",
    );
}

/// A spec in a fresh directory beside a trace file holding `trace`.
fn replay_spec(spec: &str, trace: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("trace.jsonl"), trace).unwrap();
    let path = dir.path().join("spec.toml");
    std::fs::write(&path, spec).unwrap();
    (dir, path)
}

const TRACE: &str = r#"{"offset":0,"model":"meta.llama3-3-70b-instruct-v1:0","input_tokens":100,"output_tokens":20}
{"offset":1.5,"model":"meta.llama3-3-70b-instruct-v1:0","input_tokens":0,"output_tokens":20}
{"offset":3,"model":"amazon.nova-micro-v1:0","input_tokens":50,"output_tokens":10,"session":"u1"}
"#;

#[test]
fn a_replay_spec_names_the_trace_line_and_field_or_skips_and_warns() {
    let (dir, path) = replay_spec("[load]\nreplay = \"trace.jsonl\"\n", TRACE);
    let err = load_spec(&path).unwrap_err().to_string();
    let trace = dir.path().join("trace.jsonl");
    assert!(
        err.contains(&format!(
            "{}:2: input_tokens: must be between 1 and 1000000, got 0",
            trace.display()
        )),
        "{err}"
    );
    let (_dir, path) = replay_spec(
        "[load]\nreplay = \"trace.jsonl\"\nskip_bad = true\nspeed = 3.0\n",
        TRACE,
    );
    let valid = load_spec(&path).unwrap();
    assert_eq!(valid.warnings.len(), 1, "{:?}", valid.warnings);
    let warning = valid.warnings[0].to_string();
    assert!(warning.contains("skipped 1 bad lines"), "{warning}");
    assert!(warning.contains("trace.jsonl:2: input_tokens"), "{warning}");
    let replay = valid.plan.replay.unwrap();
    let at: Vec<u64> = replay.requests().iter().map(|r| r.at_ns).collect();
    assert_eq!(at, [0, 1_000_000_000]);
    assert_eq!(valid.plan.mix.entries().len(), 2);
    assert_eq!(valid.plan.load.stages().len(), 1);
    assert_eq!(valid.plan.load.stages()[0].name, "replay");
    assert!(matches!(valid.plan.load.model(), LoadModel::Open { .. }));
}

#[test]
fn a_replay_refuses_rate_fields_and_workloads_and_replay_fields_need_a_replay() {
    let (_dir, path) = replay_spec(
        &format!("[load]\nreplay = \"trace.jsonl\"\nrate = 5.0\nduration = \"1m\"\n{WORKLOAD}"),
        TRACE.lines().next().unwrap(),
    );
    let err = load_spec(&path).unwrap_err().to_string();
    assert!(
        err.contains(":3: load.rate: does not apply to a replay"),
        "{err}"
    );
    assert!(
        err.contains(":4: load.duration: does not apply to a replay"),
        "{err}"
    );
    assert!(
        err.contains(":6: workload: conflicts with load.replay"),
        "{err}"
    );
    rejects(
        &format!("[load]\nrate = 5.0\nduration = \"1m\"\nspeed = 2.0\n{WORKLOAD}"),
        "spec.toml:4: load.speed: only applies to a replay",
    );
    let (_dir, path) = replay_spec(
        "[load]\nreplay = \"trace.jsonl\"\nfrom = \"2026-12-01T00:00:00Z\"\nscale = 0\n",
        TRACE.lines().next().unwrap(),
    );
    let err = load_spec(&path).unwrap_err().to_string();
    assert!(
        err.contains(":4: load.scale: must be a number > 0"),
        "{err}"
    );
    let (_dir, path) = replay_spec(
        "[load]\nreplay = \"trace.jsonl\"\nfrom = \"2026-12-01T00:00:00Z\"\n",
        TRACE.lines().next().unwrap(),
    );
    let err = load_spec(&path).unwrap_err().to_string();
    assert!(
        err.contains(":3: load.from: is a time, but the trace gives offsets"),
        "{err}"
    );
    let (_dir, path) = replay_spec("[load]\nreplay = \"missing.jsonl\"\n", "");
    let err = load_spec(&path).unwrap_err().to_string();
    assert!(
        err.contains("missing.jsonl: cannot read the trace"),
        "{err}"
    );
}

#[test]
fn sessions_reach_the_plan() {
    let spec = format!(
        "[load]\nconcurrency = 2\nduration = \"10s\"\n{WORKLOAD}[sessions]\n\
         turns = {{ dist = \"uniform\", min = 3, max = 9 }}\n\
         think_time = {{ dist = \"lognormal\", mean = \"20s\", stddev = \"10s\", min = \"1s\", max = \"2m\" }}\n\
         cache = true\n"
    );
    let plan = parse_spec(Path::new("spec.toml"), &spec).unwrap().plan;
    let sessions = plan.sessions.unwrap();
    assert_eq!(
        sessions.turns(),
        &TokenDistribution::Uniform { min: 3, max: 9 }
    );
    assert_eq!(
        sessions.think_time_ms(),
        Some(&TokenDistribution::LogNormal {
            mean: 20_000.0,
            stddev: 10_000.0,
            min: 1_000,
            max: 120_000
        })
    );
    assert!(sessions.cache());
    let spec = format!(
        "[load]\nconcurrency = 2\nduration = \"10s\"\n{WORKLOAD}[sessions]\nturns = 4\nthink_time = \"0s\"\n"
    );
    let plan = parse_spec(Path::new("spec.toml"), &spec).unwrap().plan;
    let sessions = plan.sessions.unwrap();
    assert_eq!(sessions.turns(), &TokenDistribution::Fixed { tokens: 4 });
    assert_eq!(
        sessions.think_time_ms(),
        Some(&TokenDistribution::Fixed { tokens: 0 })
    );
    assert!(!sessions.cache());
}

#[test]
fn bad_sessions_are_rejected_with_their_line() {
    let base = format!("[load]\nconcurrency = 1\nrequests = 1\n{WORKLOAD}[sessions]\n");
    rejects(
        &format!("{base}cache = true\n"),
        "spec.toml:9: sessions.turns: is required: a count like 8 or a distribution table",
    );
    rejects(
        &format!("{base}turns = 65\n"),
        "spec.toml:10: sessions.turns: must be at most 64 turns",
    );
    rejects(
        &format!("{base}turns = 0\n"),
        "spec.toml:10: sessions.turns: must be >= 1, got 0",
    );
    rejects(
        &format!("{base}turns = 3\nthink_time = \"soon\"\n"),
        "spec.toml:11: sessions.think_time:",
    );
    rejects(
        &format!("{base}turns = 3\nthink_time = \"2h\"\n"),
        "spec.toml:11: sessions.think_time: must be at most 1h, got 2h",
    );
    rejects(
        &format!("{base}turns = 3\nthink_time = {{ dist = \"uniform\", min = \"5s\" }}\n"),
        "spec.toml:11: sessions.think_time.max: is required for dist = \"uniform\"",
    );
    rejects(
        &format!("{base}turns = 3\nthink_time = {{ dist = \"gamma\", mean = \"5s\" }}\n"),
        "sessions.think_time.dist: unknown distribution \"gamma\"",
    );
    rejects(
        &format!("{base}turns = 3\nusers = 4\n"),
        "spec.toml:11: sessions.users: unknown field `users`",
    );
    rejects(
        "[load]\nreplay = \"missing.jsonl\"\n[sessions]\nturns = 3\n",
        "spec.toml:3: sessions: conflicts with load.replay",
    );
}
