//! The operations every client has: Converse, ConverseStream and CountTokens
//! through boto3, Converse through the AWS CLI.

use quarry_e2e::clients::{aws, json_ok, python, require_aws_cli, require_boto3};
use quarry_e2e::start_sim;

const LLAMA: &str = "meta.llama3-3-70b-instruct-v1:0";
const ZERO: &str = "latency = { kind = \"zero\" }\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_converses_streams_and_counts() {
    let Some(()) = require_boto3("boto3_converses_streams_and_counts") else {
        return;
    };
    let server = start_sim(ZERO).await.unwrap();
    let code = r#"
import json, os, boto3
c = boto3.client("bedrock-runtime", endpoint_url=os.environ["QUARRY_SIM_URL"])
model = os.environ["MODEL"]
msgs = [{"role": "user", "content": [{"text": "Describe a granite quarry."}]}]
out = c.converse(modelId=model, messages=msgs, inferenceConfig={"maxTokens": 40})
stream = c.converse_stream(modelId=model, messages=msgs, inferenceConfig={"maxTokens": 40})
deltas, usage = 0, None
for event in stream["stream"]:
    if "contentBlockDelta" in event:
        deltas += 1
    if "metadata" in event:
        usage = event["metadata"]["usage"]
counted = c.count_tokens(modelId=model, input={"converse": {"messages": msgs}})
print(json.dumps({"usage": out["usage"], "stop": out["stopReason"],
                  "deltas": deltas, "stream_usage": usage,
                  "counted": counted["inputTokens"]}))
"#;
    let out = python(&server.url(), code, &[("MODEL", LLAMA)]).await;
    let v = json_ok("boto3", &out);
    let usage = &v["usage"];
    assert!(usage["outputTokens"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(
        usage["totalTokens"].as_u64(),
        Some(usage["inputTokens"].as_u64().unwrap() + usage["outputTokens"].as_u64().unwrap())
    );
    assert!(v["deltas"].as_u64().unwrap() > 0, "{v}");
    assert!(
        v["stream_usage"]["outputTokens"].as_u64().unwrap() > 0,
        "{v}"
    );
    // CountTokens counts the prompt Converse was billed for.
    assert_eq!(v["counted"], usage["inputTokens"], "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_cli_converses() {
    let Some(()) = require_aws_cli("the_aws_cli_converses") else {
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
            r#"{"maxTokens":20}"#,
        ],
        &[],
    )
    .await;
    let v = json_ok("aws bedrock-runtime converse", &out);
    assert!(v["usage"]["outputTokens"].as_u64().unwrap() > 0, "{v}");
    assert!(
        v["output"]["message"]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| !t.is_empty()),
        "{v}"
    );
}
