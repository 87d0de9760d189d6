//! Service Quotas against the simulator: boto3's and the AWS CLI's
//! `service-quotas` clients, and `quarry quotas` (and `quarry plan --quotas`)
//! run as a user runs them. Expected values are the simulator's own
//! ([`quarry_sim::account_quotas`] over its catalog), never copied here.

use quarry_e2e::clients::{aws, json_ok, python, quarry, require_aws_cli, require_boto3};
use quarry_e2e::start_sim;
use quarry_sim::{SimConfig, SimServiceQuota, account_quotas};

const ZERO: &str = "latency = { kind = \"zero\" }\n";
const SONNET: &str = "anthropic.claude-sonnet-4-5-20250929-v1:0";

/// The quotas the simulator serves the default account under `config`.
fn served(config: &str) -> Vec<SimServiceQuota> {
    let config = SimConfig::from_toml(config, "sim.toml").unwrap();
    account_quotas(&config.catalog().unwrap(), &config.effective_accounts()[0])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_lists_pages_and_gets_quotas() {
    let Some(()) = require_boto3("boto3_lists_pages_and_gets_quotas") else {
        return;
    };
    let server = start_sim(ZERO).await.unwrap();
    let code = r#"
import json, os, boto3, botocore
c = boto3.client("service-quotas", endpoint_url=os.environ["QUARRY_SIM_URL"])
first = c.list_service_quotas(ServiceCode="bedrock", MaxResults=7)
pages = c.get_paginator("list_service_quotas").paginate(
    ServiceCode="bedrock", PaginationConfig={"PageSize": 7})
quotas, npages = [], 0
for page in pages:
    npages += 1
    quotas += page["Quotas"]
one = c.get_service_quota(ServiceCode="bedrock", QuotaCode=quotas[0]["QuotaCode"])
errors = {}
for name, call in [
    ("unknown_code", lambda: c.get_service_quota(ServiceCode="bedrock", QuotaCode="L-00000000")),
    ("unknown_service", lambda: c.list_service_quotas(ServiceCode="ec2")),
    ("bad_token", lambda: c.list_service_quotas(ServiceCode="bedrock", NextToken="nope")),
]:
    try:
        call()
        errors[name] = None
    except botocore.exceptions.ClientError as e:
        errors[name] = e.response["Error"]["Code"]
print(json.dumps({"first": len(first["Quotas"]), "token": "NextToken" in first,
                  "quotas": quotas, "pages": npages, "one": one["Quota"], "errors": errors}))
"#;
    let out = python(&server.url(), code, &[]).await;
    let v = json_ok("boto3 service-quotas", &out);
    let want = served(ZERO);
    assert_eq!(v["first"], 7, "{v}");
    assert_eq!(v["token"], true, "{v}");
    let got = v["quotas"].as_array().unwrap();
    assert_eq!(got.len(), want.len());
    assert_eq!(
        v["pages"].as_u64().unwrap() as usize,
        want.len().div_ceil(7)
    );
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g["QuotaCode"], w.code.as_str());
        assert_eq!(g["QuotaName"], w.name.as_str());
        assert_eq!(g["Value"].as_f64(), Some(w.value as f64));
        assert_eq!(g["Adjustable"], w.adjustable);
        assert_eq!(g["ServiceCode"], "bedrock");
    }
    assert_eq!(v["one"], got[0], "{v}");
    assert_eq!(
        v["errors"]["unknown_code"], "NoSuchResourceException",
        "{v}"
    );
    assert_eq!(
        v["errors"]["unknown_service"], "NoSuchResourceException",
        "{v}"
    );
    assert_eq!(
        v["errors"]["bad_token"], "InvalidPaginationTokenException",
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_cli_gets_a_quota_by_code() {
    let Some(()) = require_aws_cli("the_aws_cli_gets_a_quota_by_code") else {
        return;
    };
    let server = start_sim(ZERO).await.unwrap();
    let want = served(ZERO);
    let quota = want
        .iter()
        .find(|q| q.code == "L-F4DDD3EB")
        .expect("Sonnet 4.5's cross-Region TPM carries its published code");
    let args = [
        "service-quotas",
        "get-service-quota",
        "--service-code",
        "bedrock",
        "--quota-code",
        "L-F4DDD3EB",
    ];
    let out = aws(&server.url(), &args, &[]).await;
    let v = json_ok("aws service-quotas get-service-quota", &out);
    assert_eq!(v["Quota"]["QuotaName"], quota.name.as_str(), "{v}");
    assert_eq!(
        v["Quota"]["Value"].as_f64(),
        Some(quota.value as f64),
        "{v}"
    );
    assert!(
        v["Quota"]["QuotaArn"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:servicequotas:us-east-1:"),
        "{v}"
    );
    let unknown = aws(
        &server.url(),
        &[
            "service-quotas",
            "get-service-quota",
            "--service-code",
            "bedrock",
            "--quota-code",
            "L-00000000",
        ],
        &[],
    )
    .await;
    assert!(!unknown.status.success());
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(stderr.contains("NoSuchResourceException"), "{stderr}");
}

const PLAN: &str = r#"
start = "2026-12-01"
region = "us-east-1"
[[class]]
name = "chat"
peak_rpm = 60
average_rpm = 20
input_tokens = 1000
output_tokens = 200
max_tokens = 256
models = ["us.anthropic.claude-sonnet-4-5-20250929-v1:0"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quarry_quotas_reads_the_simulator_and_feeds_a_plan() {
    let server = start_sim(ZERO).await.unwrap();
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    let want = served(ZERO);

    // The table: every quota of the model, each value as served.
    let out = quarry(
        &url,
        dir.path(),
        &["quotas", "--endpoint-url", &url, "--models", SONNET],
    )
    .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mine: Vec<&SimServiceQuota> = want.iter().filter(|q| q.model == SONNET).collect();
    assert!(
        text.contains(&format!("{} mapped for {SONNET}", mine.len())),
        "{text}"
    );
    for q in &mine {
        assert!(text.contains(&q.code), "{} missing:\n{text}", q.code);
    }

    // The JSON: plan-ready entries, then `quarry plan --quotas` cites them.
    let out = quarry(
        &url,
        dir.path(),
        &[
            "quotas",
            "--endpoint-url",
            &url,
            "--models",
            &format!("us.{SONNET}"),
            "--format",
            "json",
        ],
    )
    .await;
    let v = json_ok("quarry quotas --format json", &out);
    assert_eq!(v["listed"].as_u64().unwrap() as usize, want.len());
    assert_eq!(v["unmapped"].as_array().unwrap().len(), 0, "{v}");
    let xr = mine
        .iter()
        .find(|q| {
            q.pool == quarry_bedrock::quota::QuotaPool::CrossRegion
                && q.metric == quarry_bedrock::quota::QuotaMetric::TokensPerMinute
        })
        .unwrap();
    let entry = v["quota"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["model"] == format!("us.{SONNET}").as_str())
        .unwrap();
    assert_eq!(entry["tpm"].as_u64(), Some(xr.value), "{v}");
    std::fs::write(dir.path().join("quotas.json"), &out.stdout).unwrap();
    std::fs::write(dir.path().join("plan.toml"), PLAN).unwrap();
    let out = quarry(
        &url,
        dir.path(),
        &[
            "plan",
            "plan.toml",
            "--quotas",
            "quotas.json",
            "--out",
            "planned",
        ],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("planned/plan.json")).unwrap())
            .unwrap();
    let source = plan["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "input:quota[0].tpm")
        .unwrap_or_else(|| panic!("no quota source: {}", plan["sources"]));
    assert!(
        source["location"]
            .as_str()
            .unwrap()
            .starts_with("quotas.json:"),
        "{source}"
    );
    assert!(
        plan.to_string().contains(&xr.value.to_string()),
        "the plan uses the account's TPM"
    );

    // Bad input: a malformed model id is a usage error naming it; nothing is asked.
    let out = quarry(
        &url,
        dir.path(),
        &["quotas", "--endpoint-url", &url, "--models", "not a model"],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--models: \"not a model\""));
    // A spec that does not exist: a usage error naming the file.
    let out = quarry(
        &url,
        dir.path(),
        &["quotas", "--endpoint-url", &url, "--spec", "missing.toml"],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
    // Keys the simulator does not know: Service Quotas' refusal, exit 3.
    let out = quarry(&url, dir.path(), &["quotas", "--endpoint-url", &url]).await;
    assert!(out.status.success(), "the example keys work");
    let bin = quarry_e2e::procs::quarry_bin();
    let refused = tokio::process::Command::new(bin)
        .current_dir(dir.path())
        .args(["quotas", "--endpoint-url", &url, "--region", "us-east-1"])
        .env("AWS_ACCESS_KEY_ID", "AKIDUNKNOWN")
        .env("AWS_SECRET_ACCESS_KEY", "nope")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_MAX_ATTEMPTS", "1")
        .output()
        .await
        .unwrap();
    assert_eq!(refused.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("UnrecognizedClientException"), "{stderr}");
    assert!(!stderr.contains("nope"), "no secret is printed");
    // A plan given a file that is not quotas.json: exit 2 naming it.
    std::fs::write(dir.path().join("bad.json"), "{\"version\": 1}").unwrap();
    let out = quarry(
        &url,
        dir.path(),
        &["plan", "plan.toml", "--quotas", "bad.json", "--out", "p2"],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.json"));
}
