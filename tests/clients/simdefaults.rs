//! Bedrock as it is now, through the clients users run: CountTokens with the
//! base id of a model invoked only through profiles, framing tokens that
//! CountTokens and Converse agree on, Bedrock API keys from
//! `AWS_BEARER_TOKEN_BEDROCK` (boto3 and Quarry's own run), and an enforced
//! requests-per-minute quota.

use quarry_bedrock::ModelFamily;
use quarry_e2e::clients::{aws, json_ok, python, require_aws_cli, require_boto3};
use quarry_e2e::start_sim;
use quarry_sim::{Framing, count_tokens};

const SONNET: &str = "anthropic.claude-sonnet-4-5-20250929-v1:0";
const LLAMA: &str = "meta.llama3-3-70b-instruct-v1:0";
const ZERO: &str = "latency = { kind = \"zero\" }\n";
/// A Bedrock API key the test simulator knows (not a real key).
const API_KEY: &str = "ABSKQmVkcm9ja0FQSUtleS1xdWFycnktdGVzdA==";

/// A simulator whose only account authenticates with [`API_KEY`]: its SigV4
/// keys are not the example keys the client harness sets, so a request that
/// succeeds was authenticated by the bearer key.
fn bearer_only_sim(extra: &str) -> String {
    format!(
        r#"{ZERO}default_account = false
{extra}
[[accounts]]
access_key_id = "AKIAQUARRYBEARER0001"
secret_access_key = "not-the-example-secret"
account_id = "111122223333"
api_keys = ["{API_KEY}"]
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_counts_tokens_with_the_base_id_of_a_profile_only_model() {
    let Some(()) = require_boto3("boto3_counts_tokens_with_the_base_id_of_a_profile_only_model")
    else {
        return;
    };
    let server = start_sim(ZERO).await.unwrap();
    let code = r#"
import json, os, boto3
c = boto3.client("bedrock-runtime", endpoint_url=os.environ["QUARRY_SIM_URL"])
base = os.environ["MODEL"]
msgs = [{"role": "user", "content": [{"text": "hi"}]}]
system = [{"text": "You are terse."}]
counted = c.count_tokens(modelId=base, input={"converse": {"messages": msgs, "system": system}})
out = c.converse(modelId="us." + base, messages=msgs, system=system,
                 inferenceConfig={"maxTokens": 8})
errors = {}
for bad in ["us." + base, base]:
    try:
        if bad == base:
            c.converse(modelId=bad, messages=msgs)
        else:
            c.count_tokens(modelId=bad, input={"converse": {"messages": msgs}})
        errors[bad] = None
    except c.exceptions.ValidationException as e:
        errors[bad] = e.response["Error"]["Message"]
print(json.dumps({"counted": counted["inputTokens"], "usage": out["usage"], "errors": errors}))
"#;
    let out = python(&server.url(), code, &[("MODEL", SONNET)]).await;
    let v = json_ok("boto3", &out);
    // The text plus Anthropic's framing: one message and a system prompt.
    let framing = Framing::of(ModelFamily::Anthropic).tokens(1, true);
    let expected = count_tokens("hi") + count_tokens("You are terse.") + framing;
    assert_eq!(v["counted"].as_u64(), Some(expected), "{v}");
    assert_eq!(v["counted"], v["usage"]["inputTokens"], "{v}");
    assert_eq!(
        v["errors"][format!("us.{SONNET}")],
        "The provided model doesn't support counting tokens.",
        "{v}"
    );
    assert!(
        v["errors"][SONNET]
            .as_str()
            .is_some_and(|m| m.contains("with on-demand throughput isn\u{2019}t supported")),
        "invoking still needs a profile: {v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_cli_counts_tokens_with_the_base_id() {
    let Some(()) = require_aws_cli("the_aws_cli_counts_tokens_with_the_base_id") else {
        return;
    };
    let server = start_sim(ZERO).await.unwrap();
    let out = aws(
        &server.url(),
        &[
            "bedrock-runtime",
            "count-tokens",
            "--model-id",
            SONNET,
            "--input",
            r#"{"converse":{"messages":[{"role":"user","content":[{"text":"hi"}]}]}}"#,
        ],
        &[],
    )
    .await;
    let v = json_ok("aws bedrock-runtime count-tokens", &out);
    let framing = Framing::of(ModelFamily::Anthropic).tokens(1, false);
    assert_eq!(
        v["inputTokens"].as_u64(),
        Some(count_tokens("hi") + framing),
        "{v}"
    );
    assert!(
        v["inputTokens"].as_u64().unwrap() > 1,
        "framing counts: {v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_authenticates_with_the_api_key_in_the_environment() {
    let Some(()) = require_boto3("boto3_authenticates_with_the_api_key_in_the_environment") else {
        return;
    };
    let server = start_sim(&bearer_only_sim("")).await.unwrap();
    let code = r#"
import json, os, boto3, botocore
c = boto3.client("bedrock-runtime", endpoint_url=os.environ["QUARRY_SIM_URL"])
msgs = [{"role": "user", "content": [{"text": "hello"}]}]
sent = {}
def capture(request, **kwargs):
    sent["scheme"] = request.headers.get("Authorization", b"").split(b" ")[0].decode()
c.meta.events.register("before-send.bedrock-runtime.Converse", capture)
out = c.converse(modelId=os.environ["MODEL"], messages=msgs, inferenceConfig={"maxTokens": 8})
print(json.dumps({"botocore": botocore.__version__, "scheme": sent["scheme"],
                  "output": out["usage"]["outputTokens"]}))
"#;
    let ok = python(
        &server.url(),
        code,
        &[("MODEL", LLAMA), ("AWS_BEARER_TOKEN_BEDROCK", API_KEY)],
    )
    .await;
    let v = json_ok("boto3 with AWS_BEARER_TOKEN_BEDROCK", &ok);
    assert_eq!(v["scheme"], "Bearer", "{v}");
    assert!(v["output"].as_u64().unwrap() > 0, "{v}");
    // Without the variable boto3 signs with the harness's example keys,
    // which this simulator does not know.
    let refused = python(&server.url(), code, &[("MODEL", LLAMA)]).await;
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("UnrecognizedClientException"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_over_the_rpm_quota_is_throttled_by_requests() {
    let Some(()) = require_boto3("a_burst_over_the_rpm_quota_is_throttled_by_requests") else {
        return;
    };
    let config = format!("{ZERO}[[models]]\nid = \"{LLAMA}\"\nquotas = {{ rpm = 3 }}\n");
    let server = start_sim(&config).await.unwrap();
    let code = r#"
import json, os, boto3
c = boto3.client("bedrock-runtime", endpoint_url=os.environ["QUARRY_SIM_URL"])
msgs = [{"role": "user", "content": [{"text": "hello"}]}]
results = []
for _ in range(5):
    try:
        c.converse(modelId=os.environ["MODEL"], messages=msgs, inferenceConfig={"maxTokens": 4})
        results.append("ok")
    except c.exceptions.ThrottlingException as e:
        results.append([e.response["ResponseMetadata"]["HTTPStatusCode"],
                        e.response["Error"]["Message"]])
print(json.dumps(results))
"#;
    let out = python(&server.url(), code, &[("MODEL", LLAMA)]).await;
    let v = json_ok("boto3 burst", &out);
    let throttled = serde_json::json!([429, "Too many requests, please wait before trying again."]);
    assert_eq!(
        v,
        serde_json::json!(["ok", "ok", "ok", throttled, throttled]),
        "3 RPM admits 3 of a burst of 5"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quarry_runs_with_the_api_key_and_counts_rpm_throttles_apart() {
    let sim_config = format!("[[models]]\nid = \"{LLAMA}\"\nquotas = {{ rpm = 10 }}\n");
    let server = start_sim(&bearer_only_sim(&sim_config)).await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let spec = work.path().join("spec.toml");
    std::fs::write(
        &spec,
        format!(
            r#"seed = 1
[target]
kind = "aws"
region = "us-east-1"
endpoint = "{url}"
[load]
concurrency = 2
requests = 30
[[workload]]
model = "{LLAMA}"
operation = "Converse"
input_tokens = 50
max_tokens = 8
"#,
            url = server.url()
        ),
    )
    .unwrap();
    let out_dir = work.path().join("out");
    let mut cmd = tokio::process::Command::new(quarry_e2e::procs::quarry_bin());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("AWS_") {
            cmd.env_remove(key);
        }
    }
    let run = cmd
        .arg("run")
        .arg(&spec)
        .args(["--interval-secs", "0.2", "--out"])
        .arg(&out_dir)
        .env("AWS_BEARER_TOKEN_BEDROCK", API_KEY)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("quarry: auth: Bedrock API key from AWS_BEARER_TOKEN_BEDROCK"),
        "{stderr}"
    );
    assert!(
        !stdout.contains(API_KEY) && !stderr.contains(API_KEY),
        "the key is never printed"
    );
    let doc = std::fs::read_to_string(out_dir.join("results.json")).unwrap();
    assert!(!doc.contains(API_KEY), "the key is never written");
    let doc: serde_json::Value = serde_json::from_str(&doc).unwrap();
    let total = |name: &str| -> u64 {
        doc["series"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["counters"][name].as_u64())
            .sum()
    };
    // The first 10 requests of the minute pass (bearer-authenticated: the
    // simulator knows no other credential); the rest meet the 10 RPM quota.
    assert_eq!(total("outcome_ok"), 10, "{stderr}");
    assert_eq!(total("throttles_requests_per_minute"), 20, "{stderr}");
    assert_eq!(total("throttles_tokens_per_minute"), 0);
    assert_eq!(
        total("outcome_client_error"),
        0,
        "no auth failure: {stderr}"
    );
}
