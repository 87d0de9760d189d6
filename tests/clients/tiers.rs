//! Service tiers (the `serviceTier` member on Converse and ConverseStream,
//! the `X-Amzn-Bedrock-Service-Tier` header on InvokeModel and its stream)
//! and global cross-Region profiles, through boto3 and the AWS CLI.

use quarry_e2e::clients::{aws, json_ok, python, require_aws_cli, require_boto3};
use quarry_e2e::start_sim;

const LLAMA: &str = "meta.llama3-3-70b-instruct-v1:0";
const ZERO: &str = "latency = { kind = \"zero\" }\n";

/// boto3 sends each tier on all four invoke operations and reads back the
/// tier used where the service model puts it; Reserved with a full pool
/// comes back as `default`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_sends_every_tier_and_reads_the_tier_used() {
    let Some(()) = require_boto3("boto3_sends_every_tier_and_reads_the_tier_used") else {
        return;
    };
    // The default account has a 120 TPM Reserved pool for Llama.
    let config = format!(
        "{ZERO}default_account = false\n[[accounts]]\n\
         access_key_id = \"{}\"\nsecret_access_key = \"{}\"\naccount_id = \"123456789012\"\n\
         [accounts.reserved.\"{LLAMA}\"]\ntpm = 120\n",
        quarry_sim::DEFAULT_ACCESS_KEY_ID,
        quarry_sim::DEFAULT_SECRET_ACCESS_KEY,
    );
    let server = start_sim(&config).await.unwrap();
    let code = r#"
import json, os, boto3
c = boto3.client("bedrock-runtime", endpoint_url=os.environ["QUARRY_SIM_URL"])
model = os.environ["MODEL"]
msgs = [{"role": "user", "content": [{"text": "hi"}]}]
body = json.dumps({"prompt": "<|begin_of_text|>Hello", "max_gen_len": 5})
out = {}
for tier in ["priority", "default", "flex"]:
    conv = c.converse(modelId=model, messages=msgs, inferenceConfig={"maxTokens": 5},
                      serviceTier={"type": tier})
    stream = c.converse_stream(modelId=model, messages=msgs, inferenceConfig={"maxTokens": 5},
                               serviceTier={"type": tier})
    meta = [e["metadata"] for e in stream["stream"] if "metadata" in e][0]
    inv = c.invoke_model(modelId=model, body=body, serviceTier=tier)
    inv.pop("body").read()
    ims = c.invoke_model_with_response_stream(modelId=model, body=body, serviceTier=tier)
    for _ in ims["body"]:
        pass
    out[tier] = [conv.get("serviceTier", {}).get("type"), meta.get("serviceTier", {}).get("type"),
                 inv.get("serviceTier"), ims.get("serviceTier")]
reserved = [c.converse(modelId=model, messages=msgs, inferenceConfig={"maxTokens": 100},
                       serviceTier={"type": "reserved"})["serviceTier"]["type"] for _ in range(2)]
plain = c.converse(modelId=model, messages=msgs, inferenceConfig={"maxTokens": 5})
print(json.dumps({"tiers": out, "reserved": reserved, "plain": plain.get("serviceTier")}))
"#;
    let out = python(&server.url(), code, &[("MODEL", LLAMA)]).await;
    let v = json_ok("boto3", &out);
    for tier in ["priority", "default", "flex"] {
        assert_eq!(
            v["tiers"][tier],
            serde_json::json!([tier, tier, tier, tier]),
            "{v}"
        );
    }
    assert_eq!(
        v["reserved"],
        serde_json::json!(["reserved", "default"]),
        "{v}"
    );
    assert!(v["plain"].is_null(), "{v}");
}

/// The AWS CLI sends the tier on Converse (`--service-tier`) and on
/// InvokeModel (the header), and prints the tier used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_cli_sends_a_tier() {
    let Some(()) = require_aws_cli("the_aws_cli_sends_a_tier") else {
        return;
    };
    let server = start_sim(ZERO).await.unwrap();
    let out = aws(
        &server.url(),
        &[
            "bedrock-runtime",
            "converse",
            "--model-id",
            LLAMA,
            "--messages",
            r#"[{"role":"user","content":[{"text":"hello"}]}]"#,
            "--inference-config",
            r#"{"maxTokens":5}"#,
            "--service-tier",
            r#"{"type":"flex"}"#,
        ],
        &[],
    )
    .await;
    let v = json_ok("aws bedrock-runtime converse", &out);
    assert_eq!(v["serviceTier"]["type"], "flex", "{v}");
    let dir = tempfile::tempdir().unwrap();
    let answer = dir.path().join("answer.json");
    let out = aws(
        &server.url(),
        &[
            "bedrock-runtime",
            "invoke-model",
            "--model-id",
            LLAMA,
            "--body",
            // AWS CLI v1 (PyPI's) takes a blob argument as raw bytes.
            r#"{"prompt":"<|begin_of_text|>Hello","max_gen_len":5}"#,
            "--service-tier",
            "priority",
            answer.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    let v = json_ok("aws bedrock-runtime invoke-model", &out);
    assert_eq!(v["serviceTier"], "priority", "{v}");
    let body: serde_json::Value = serde_json::from_slice(&std::fs::read(&answer).unwrap()).unwrap();
    assert!(
        body["generation_token_count"].as_u64().unwrap() >= 1,
        "{body}"
    );
}

/// boto3 and the AWS CLI reach a model through its global cross-Region
/// profile; the simulator serves it from the global pool, apart from the
/// geographic one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_use_a_global_profile_from_its_own_pool() {
    let Some(()) = require_boto3("clients_use_a_global_profile_from_its_own_pool") else {
        return;
    };
    let Some(()) = require_aws_cli("clients_use_a_global_profile_from_its_own_pool") else {
        return;
    };
    let server = start_sim(ZERO).await.unwrap();
    let global = "global.anthropic.claude-sonnet-4-5-20250929-v1:0";
    let code = r#"
import json, os, boto3
c = boto3.client("bedrock-runtime", endpoint_url=os.environ["QUARRY_SIM_URL"])
msgs = [{"role": "user", "content": [{"text": "hi"}]}]
out = c.converse(modelId=os.environ["MODEL"], messages=msgs, inferenceConfig={"maxTokens": 5})
print(json.dumps({"usage": out["usage"]}))
"#;
    let out = python(&server.url(), code, &[("MODEL", global)]).await;
    let v = json_ok("boto3", &out);
    assert!(v["usage"]["outputTokens"].as_u64().unwrap() > 0, "{v}");
    let out = aws(
        &server.url(),
        &[
            "bedrock-runtime",
            "converse",
            "--model-id",
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "--messages",
            r#"[{"role":"user","content":[{"text":"hello"}]}]"#,
            "--inference-config",
            r#"{"maxTokens":5}"#,
        ],
        &[],
    )
    .await;
    json_ok("aws bedrock-runtime converse", &out);
    let stats = server.simulator().stats_snapshot();
    let pool = |scope: &str| {
        stats
            .quota
            .iter()
            .find(|q| q.scope == scope)
            .unwrap_or_else(|| panic!("no {scope} pool in {:?}", stats.quota))
            .clone()
    };
    // One request each: the global pool holds only the global one.
    assert!(pool("global").settled_total > 0);
    assert!(pool("us").settled_total > 0);
    assert_eq!(stats.quota.len(), 2, "{:?}", stats.quota);
}
