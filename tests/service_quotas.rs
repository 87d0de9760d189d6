//! The official `aws-sdk-servicequotas` client against the in-process
//! simulator: ListServiceQuotas with pagination and the quota-code filter,
//! GetServiceQuota, an account's overrides, and Service Quotas' errors
//! arriving as the SDK's own typed errors.

use aws_credential_types::Credentials;
use aws_sdk_servicequotas::Client;
use aws_sdk_servicequotas::config::{BehaviorVersion, Region};
use aws_sdk_servicequotas::error::ProvideErrorMetadata;
use aws_sdk_servicequotas::operation::get_service_quota::GetServiceQuotaError;
use aws_sdk_servicequotas::operation::list_service_quotas::ListServiceQuotasError;
use aws_smithy_types::retry::RetryConfig;
use quarry_e2e::start_sim;
use quarry_sim::{
    DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET_ACCESS_KEY, SimConfig, SimServer, SimServiceQuota,
    account_quotas,
};

const ZERO: &str = "latency = { kind = \"zero\" }\n";

fn client_with(server: &SimServer, akid: &str, secret: &str) -> Client {
    let conf = aws_sdk_servicequotas::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-west-1"))
        .endpoint_url(server.url())
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .retry_config(RetryConfig::standard().with_max_attempts(1))
        .credentials_provider(Credentials::new(akid, secret, None, None, "test"))
        .build();
    Client::from_conf(conf)
}

fn client(server: &SimServer) -> Client {
    client_with(server, DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET_ACCESS_KEY)
}

/// What the simulator serves account `index` under `config`.
fn served(config: &str, index: usize) -> Vec<SimServiceQuota> {
    let config = SimConfig::from_toml(config, "sim.toml").unwrap();
    account_quotas(
        &config.catalog().unwrap(),
        &config.effective_accounts()[index],
    )
}

#[tokio::test]
async fn lists_every_quota_over_pages_and_gets_one() {
    let server = start_sim(ZERO).await.unwrap();
    let c = client(&server);
    let mut pages = c
        .list_service_quotas()
        .service_code("bedrock")
        .max_results(9)
        .into_paginator()
        .send();
    let (mut got, mut npages) = (Vec::new(), 0);
    while let Some(page) = pages.next().await {
        let page = page.unwrap();
        assert!(page.quotas().len() <= 9);
        npages += 1;
        got.extend(page.quotas().to_vec());
    }
    let want = served(ZERO, 0);
    assert_eq!(got.len(), want.len());
    assert_eq!(npages, want.len().div_ceil(9));
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g.quota_code(), Some(w.code.as_str()));
        assert_eq!(g.quota_name(), Some(w.name.as_str()));
        assert_eq!(g.value(), Some(w.value as f64));
        assert_eq!(g.adjustable(), w.adjustable);
        assert_eq!(g.service_code(), Some("bedrock"));
        assert_eq!(g.service_name(), Some("Amazon Bedrock"));
        let arn = g.quota_arn().unwrap();
        assert!(arn.starts_with("arn:aws:servicequotas:eu-west-1:"), "{arn}");
        assert!(arn.ends_with(&format!(":bedrock/{}", w.code)), "{arn}");
    }
    let one = c
        .get_service_quota()
        .service_code("bedrock")
        .quota_code(&want[3].code)
        .send()
        .await
        .unwrap();
    assert_eq!(one.quota(), Some(&got[3]));
    let filtered = c
        .list_service_quotas()
        .service_code("bedrock")
        .quota_code(&want[5].code)
        .send()
        .await
        .unwrap();
    assert_eq!(filtered.quotas(), &got[5..6]);
    assert_eq!(filtered.next_token(), None);
}

#[tokio::test]
async fn an_accounts_overrides_are_its_quotas() {
    let config = format!(
        "{ZERO}default_account = false\n[[accounts]]\naccess_key_id = \"AKIDQUOTAS\"\nsecret_access_key = \"s3cret\"\naccount_id = \"111122223333\"\nquotas = {{ rpm = 40 }}\n[accounts.model_quotas.\"meta.llama3-3-70b-instruct-v1:0\"]\ntpm = 1234\n"
    );
    let server = start_sim(&config).await.unwrap();
    let c = client_with(&server, "AKIDQUOTAS", "s3cret");
    let want = served(&config, 0);
    let llama_tpm = want
        .iter()
        .find(|q| {
            q.name == "On-demand model inference tokens per minute for Meta Llama 3.3 70B Instruct"
        })
        .unwrap();
    assert_eq!(llama_tpm.value, 1234);
    let got = c
        .get_service_quota()
        .service_code("bedrock")
        .quota_code(&llama_tpm.code)
        .send()
        .await
        .unwrap();
    let q = got.quota().unwrap();
    assert_eq!(q.value(), Some(1234.0));
    assert!(q.quota_arn().unwrap().contains(":111122223333:"));
    let rpm = want
        .iter()
        .filter(|q| q.metric == quarry_bedrock::quota::QuotaMetric::RequestsPerMinute)
        .count();
    assert!(
        rpm > 0
            && want
                .iter()
                .filter(|q| q.metric == quarry_bedrock::quota::QuotaMetric::RequestsPerMinute)
                .all(|q| q.value == 40)
    );
}

#[tokio::test]
async fn errors_arrive_as_the_sdks_typed_errors() {
    let server = start_sim(ZERO).await.unwrap();
    let c = client(&server);
    let err = c
        .get_service_quota()
        .service_code("bedrock")
        .quota_code("L-00000000")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, GetServiceQuotaError::NoSuchResourceException(_)),
        "{err:?}"
    );
    let err = c
        .list_service_quotas()
        .service_code("bedrock")
        .next_token("forged")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(
            err,
            ListServiceQuotasError::InvalidPaginationTokenException(_)
        ),
        "{err:?}"
    );
    let err = c
        .list_service_quotas()
        .service_code("ec2")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, ListServiceQuotasError::NoSuchResourceException(_)),
        "{err:?}"
    );
    let err = c
        .list_service_quotas()
        .service_code("bedrock")
        .max_results(101)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("ValidationException"), "{err:?}");
    // A key the simulator does not know is refused before anything is read.
    let stranger = client_with(&server, "AKIDSTRANGER", "secret");
    let err = stranger
        .list_service_quotas()
        .service_code("bedrock")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("UnrecognizedClientException"), "{err:?}");
    // Signed with the right key but the wrong secret: the signature fails.
    let forger = client_with(&server, DEFAULT_ACCESS_KEY_ID, "wrong");
    let err = forger
        .list_service_quotas()
        .service_code("bedrock")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("InvalidSignatureException"), "{err:?}");
}
