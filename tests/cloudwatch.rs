//! The simulator's CloudWatch figures (`GET /_quarry/cloudwatch`) against
//! the same figures `quarry report --cloudwatch` computes from what Quarry
//! measured, for one run through the `quarry` binary: where the two are
//! defined identically (docs/cloudwatch.md) they must agree exactly, summed
//! over the run's minutes per model id (a request finishing near a minute
//! boundary may fall in the neighbouring minute on one side).

use std::collections::BTreeMap;

use quarry_bedrock::cloudwatch::MinuteFigures;
use quarry_e2e::clients::quarry;
use quarry_e2e::start_sim;

const LLAMA: &str = "meta.llama3-3-70b-instruct-v1:0";
const NOVA: &str = "amazon.nova-pro-v1:0";

/// Zero latency; a small TPM for Llama so some requests are throttled.
const SIM: &str = r#"
latency = { kind = "zero" }
[[models]]
id = "meta.llama3-3-70b-instruct-v1:0"
quotas = { tpm = 3000 }
"#;

fn totals(rows: &[serde_json::Value]) -> BTreeMap<String, MinuteFigures> {
    let mut out: BTreeMap<String, MinuteFigures> = BTreeMap::new();
    for row in rows {
        let figures: MinuteFigures = serde_json::from_value(row["figures"].clone()).unwrap();
        out.entry(row["model_id"].as_str().unwrap().to_owned())
            .or_default()
            .merge(&figures);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulators_cloudwatch_figures_match_the_clients() {
    let server = start_sim(SIM).await.unwrap();
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    let spec = format!(
        r#"
seed = 11
[target]
kind = "aws"
region = "us-east-1"
endpoint = "{url}"
[load]
concurrency = 4
duration = "2s"
[[workload]]
model = "{LLAMA}"
operation = "ConverseStream"
input_tokens = 60
max_tokens = 20
weight = 1
[[workload]]
model = "{NOVA}"
operation = "Converse"
input_tokens = 80
max_tokens = 30
weight = 1
"#
    );
    std::fs::write(dir.path().join("spec.toml"), spec).unwrap();
    let run = quarry(
        &url,
        dir.path(),
        &[
            "run",
            "spec.toml",
            "--out",
            "out",
            "--interval-secs",
            "0.2",
            "--grace-secs",
            "5",
        ],
    )
    .await;
    // Throttles make the run's thresholds irrelevant; it must have completed.
    assert!(
        dir.path().join("out/results.json").exists(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let report = quarry(
        &url,
        dir.path(),
        &["report", "out", "--cloudwatch", "--format", "json"],
    )
    .await;
    assert!(
        report.status.success(),
        "{}",
        String::from_utf8_lossy(&report.stderr)
    );
    let client: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    let server_view: serde_json::Value =
        serde_json::from_str(&server.simulator().cloudwatch().snapshot().to_json()).unwrap();
    assert_eq!(client["namespace"], "AWS/Bedrock");
    assert_eq!(server_view["namespace"], "AWS/Bedrock");
    let client = totals(client["minutes"].as_array().unwrap());
    let sim = totals(server_view["minutes"].as_array().unwrap());
    assert_eq!(
        client.keys().collect::<Vec<_>>(),
        sim.keys().collect::<Vec<_>>()
    );
    let llama = &sim[LLAMA];
    assert!(
        llama.invocations > 0 && llama.invocation_throttles > 0,
        "{llama:?}"
    );
    for (model, s) in &sim {
        let c = &client[model];
        let same = |name: &str, a: u64, b: u64| assert_eq!(a, b, "{model}: {name}");
        same("Invocations", c.invocations, s.invocations);
        same(
            "InvocationThrottles",
            c.invocation_throttles,
            s.invocation_throttles,
        );
        same(
            "InvocationServerErrors",
            c.invocation_server_errors,
            s.invocation_server_errors,
        );
        same("InputTokenCount", c.input_token_count, s.input_token_count);
        same(
            "OutputTokenCount",
            c.output_token_count,
            s.output_token_count,
        );
        same(
            "CacheReadInputTokens",
            c.cache_read_input_tokens,
            s.cache_read_input_tokens,
        );
        same(
            "CacheWriteInputTokens",
            c.cache_write_input_tokens,
            s.cache_write_input_tokens,
        );
        same(
            "EstimatedTPMQuotaUsage",
            c.estimated_tpm_quota_usage,
            s.estimated_tpm_quota_usage,
        );
        same(
            "InvocationLatency samples",
            c.invocation_latency_samples,
            s.invocation_latency_samples,
        );
        same(
            "TimeToFirstToken samples",
            c.time_to_first_token_samples,
            s.time_to_first_token_samples,
        );
    }
    assert!(sim[LLAMA].time_to_first_token_samples > 0);
    assert_eq!(
        sim[NOVA].time_to_first_token_samples, 0,
        "TTFT is for streams only"
    );
    // The text form names the metrics and the minute.
    let text = quarry(&url, dir.path(), &["report", "out", "--cloudwatch"]).await;
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("EstTPMQuotaUsage") && text.contains(LLAMA),
        "{text}"
    );
}
