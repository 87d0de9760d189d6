//! The official `aws-sdk-bedrockruntime` client against the in-process
//! simulator: all five operations (streams included), usage and prompt-cache
//! fields, and Bedrock's errors arriving as the SDK's own typed errors.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sdk_bedrockruntime::Client;
use aws_sdk_bedrockruntime::config::{BehaviorVersion, Region, Token};
use aws_sdk_bedrockruntime::error::ProvideErrorMetadata;
use aws_sdk_bedrockruntime::operation::converse::ConverseError;
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::error::ConverseStreamOutputError;
use aws_sdk_bedrockruntime::types::{
    CachePointBlock, CachePointType, ContentBlock, ConversationRole, ConverseStreamOutput,
    ConverseTokensRequest, CountTokensInput, InferenceConfiguration, Message, ResponseStream,
    ServiceTier, ServiceTierType, SystemContentBlock,
};
use aws_smithy_types::retry::RetryConfig;
use quarry_e2e::{start_sim, start_sim_with_clock};
use quarry_sim::{DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET_ACCESS_KEY, SimServer, system_clock};

const LLAMA: &str = "meta.llama3-3-70b-instruct-v1:0";
const NOVA: &str = "amazon.nova-pro-v1:0";
const ZERO: &str = "latency = { kind = \"zero\" }\n";

fn config(server: &SimServer) -> aws_sdk_bedrockruntime::config::Builder {
    aws_sdk_bedrockruntime::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(server.url())
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        // One attempt: each test sees the error the simulator sent.
        .retry_config(RetryConfig::standard().with_max_attempts(1))
}

fn client_with(server: &SimServer, akid: &str, secret: &str, token: Option<&str>) -> Client {
    let creds = Credentials::new(akid, secret, token.map(str::to_owned), None, "test");
    Client::from_conf(config(server).credentials_provider(creds).build())
}

fn client(server: &SimServer) -> Client {
    client_with(
        server,
        DEFAULT_ACCESS_KEY_ID,
        DEFAULT_SECRET_ACCESS_KEY,
        None,
    )
}

fn user(text: &str) -> Message {
    Message::builder()
        .role(ConversationRole::User)
        .content(ContentBlock::Text(text.to_owned()))
        .build()
        .unwrap()
}

fn limits(max_tokens: i32) -> InferenceConfiguration {
    InferenceConfiguration::builder()
        .max_tokens(max_tokens)
        .build()
}

#[tokio::test]
async fn converse_and_count_tokens() {
    let server = start_sim(ZERO).await.unwrap();
    let c = client(&server);
    let out = c
        .converse()
        .model_id(LLAMA)
        .messages(user("Describe a granite quarry."))
        .inference_config(limits(50))
        .send()
        .await
        .unwrap();
    let usage = out.usage().unwrap();
    let text = out.output().unwrap().as_message().unwrap().content()[0]
        .as_text()
        .unwrap()
        .clone();
    assert_eq!(
        quarry_sim::count_tokens(&text) as i32,
        usage.output_tokens()
    );
    assert_eq!(
        usage.total_tokens(),
        usage.input_tokens() + usage.output_tokens()
    );
    assert_eq!(usage.cache_read_input_tokens(), Some(0));
    assert!(out.metrics().is_some());
    let counted = c
        .count_tokens()
        .model_id(LLAMA)
        .input(CountTokensInput::Converse(
            ConverseTokensRequest::builder()
                .messages(user("Describe a granite quarry."))
                .build(),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(counted.input_tokens(), usage.input_tokens());
}

#[tokio::test]
async fn converse_stream_delivers_events_and_metadata() {
    let server = start_sim(ZERO).await.unwrap();
    let mut out = client(&server)
        .converse_stream()
        .model_id("us.meta.llama3-3-70b-instruct-v1:0")
        .messages(user("Name three stones."))
        .inference_config(limits(30))
        .send()
        .await
        .unwrap();
    let mut text = String::new();
    let mut kinds = Vec::new();
    let mut output_tokens = None;
    while let Some(event) = out.stream.recv().await.unwrap() {
        match &event {
            ConverseStreamOutput::ContentBlockDelta(d) => {
                text.push_str(d.delta().unwrap().as_text().unwrap());
                kinds.push("delta");
            }
            ConverseStreamOutput::MessageStart(_) => kinds.push("start"),
            ConverseStreamOutput::ContentBlockStop(_) => kinds.push("blockStop"),
            ConverseStreamOutput::MessageStop(_) => kinds.push("stop"),
            ConverseStreamOutput::Metadata(m) => {
                kinds.push("metadata");
                output_tokens = Some(m.usage().unwrap().output_tokens());
                assert!(m.metrics().is_some());
            }
            other => panic!("unexpected event {other:?}"),
        }
    }
    assert_eq!(kinds.first(), Some(&"start"));
    assert_eq!(&kinds[kinds.len() - 3..], ["blockStop", "stop", "metadata"]);
    assert_eq!(output_tokens, Some(quarry_sim::count_tokens(&text) as i32));
}

#[tokio::test]
async fn invoke_model_and_its_stream() {
    let server = start_sim(ZERO).await.unwrap();
    let c = client(&server);
    let body = br#"{"prompt":"<|begin_of_text|>Hello","max_gen_len":20}"#;
    let out = c
        .invoke_model()
        .model_id(LLAMA)
        .content_type("application/json")
        .body(Blob::new(body.to_vec()))
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(out.body().as_ref()).unwrap();
    assert!(v["generation_token_count"].as_u64().unwrap() >= 1);
    let mut stream = c
        .invoke_model_with_response_stream()
        .model_id(LLAMA)
        .content_type("application/json")
        .body(Blob::new(body.to_vec()))
        .send()
        .await
        .unwrap();
    let mut last = None;
    while let Some(event) = stream.body.recv().await.unwrap() {
        let ResponseStream::Chunk(part) = event else {
            panic!("unexpected {event:?}")
        };
        last = Some(
            serde_json::from_slice::<serde_json::Value>(part.bytes().unwrap().as_ref()).unwrap(),
        );
    }
    let last = last.unwrap();
    assert!(
        last["amazon-bedrock-invocationMetrics"]["outputTokenCount"]
            .as_u64()
            .unwrap()
            >= 1
    );
}

#[tokio::test]
async fn prompt_cache_writes_then_reads() {
    let server = start_sim(ZERO).await.unwrap();
    let c = client(&server);
    let prefix = "quarry stone ".repeat(600);
    let mut usages = Vec::new();
    for question in ["first question", "second question"] {
        let out = c
            .converse()
            .model_id(NOVA)
            .system(SystemContentBlock::Text(prefix.clone()))
            .system(SystemContentBlock::CachePoint(
                CachePointBlock::builder()
                    .r#type(CachePointType::Default)
                    .build()
                    .unwrap(),
            ))
            .messages(user(question))
            .inference_config(limits(5))
            .send()
            .await
            .unwrap();
        usages.push(out.usage().unwrap().clone());
    }
    let prefix_tokens = quarry_sim::count_tokens(&prefix) as i32;
    assert_eq!(usages[0].cache_write_input_tokens(), Some(prefix_tokens));
    assert_eq!(usages[0].cache_read_input_tokens(), Some(0));
    assert_eq!(usages[1].cache_read_input_tokens(), Some(prefix_tokens));
    assert_eq!(usages[1].cache_write_input_tokens(), Some(0));
}

async fn converse_err(c: &Client, model: &str, max_tokens: i32) -> ConverseError {
    c.converse()
        .model_id(model)
        .messages(user("hi"))
        .inference_config(limits(max_tokens))
        .send()
        .await
        .unwrap_err()
        .into_service_error()
}

#[tokio::test]
async fn modelled_errors_are_typed() {
    let config = format!(
        "{ZERO}[[accounts]]\naccess_key_id = \"AKIAQUARRYSMALL\"\nsecret_access_key = \"small\"\naccount_id = \"111122223333\"\nquotas = {{ tpm = 100 }}\n\
         [[faults]]\nkind = \"model_timeout\"\nmodel = \"amazon.nova-lite-v1:0\"\nrequests = [0, 1]\n\
         [[faults]]\nkind = \"service_unavailable\"\nmodel = \"amazon.nova-micro-v1:0\"\nrequests = [0, 1]\n"
    );
    let server = start_sim(&config).await.unwrap();
    let small = client_with(&server, "AKIAQUARRYSMALL", "small", None);
    let e = converse_err(&small, LLAMA, 500).await;
    assert!(matches!(e, ConverseError::ThrottlingException(_)), "{e:?}");
    assert_eq!(
        e.message(),
        Some("Too many tokens, please wait before trying again.")
    );
    let c = client(&server);
    let e = converse_err(&c, LLAMA, 1_000_000).await;
    assert!(matches!(e, ConverseError::ValidationException(_)), "{e:?}");
    let e = converse_err(&c, "amazon.nova-lite-v1:0", 10).await;
    assert!(
        matches!(e, ConverseError::ModelTimeoutException(_)),
        "{e:?}"
    );
    let e = converse_err(&c, "amazon.nova-micro-v1:0", 10).await;
    assert!(
        matches!(e, ConverseError::ServiceUnavailableException(_)),
        "{e:?}"
    );
    let e = converse_err(&c, "amazon.nonexistent-v1:0", 10).await;
    assert!(matches!(e, ConverseError::ValidationException(_)), "{e:?}");
}

#[tokio::test]
async fn mid_stream_exception_is_typed() {
    let config = format!(
        "{ZERO}[[models]]\nid = \"{LLAMA}\"\noutput = {{ kind = \"fixed\", tokens = 10 }}\n\
         [[faults]]\nkind = \"throttling\"\nrequests = [0, 1]\nat_token = 4\n"
    );
    let server = start_sim(&config).await.unwrap();
    let mut out = client(&server)
        .converse_stream()
        .model_id(LLAMA)
        .messages(user("go"))
        .send()
        .await
        .unwrap();
    let mut deltas = 0;
    let err = loop {
        match out.stream.recv().await {
            Ok(Some(ConverseStreamOutput::ContentBlockDelta(_))) => deltas += 1,
            Ok(Some(_)) => {}
            Ok(None) => panic!("stream ended without the exception"),
            Err(e) => break e.into_service_error(),
        }
    };
    assert_eq!(deltas, 4);
    assert!(
        matches!(err, ConverseStreamOutputError::ThrottlingException(_)),
        "{err:?}"
    );
}

fn ten_minutes_ahead() -> SystemTime {
    system_clock() + Duration::from_secs(600)
}

#[tokio::test]
async fn auth_failures_carry_aws_codes() {
    let toml = format!(
        "{ZERO}[[accounts]]\naccess_key_id = \"AKIAQUARRYKEYS\"\nsecret_access_key = \"k\"\naccount_id = \"111122223333\"\napi_keys = [\"ABSKquarry-sdk-key\"]\n"
    );
    let server = start_sim(&toml).await.unwrap();
    let code = |e: &ConverseError| e.code().map(str::to_owned);
    let e = converse_err(&client_with(&server, "AKIANOBODY", "x", None), LLAMA, 5).await;
    assert_eq!(code(&e).as_deref(), Some("UnrecognizedClientException"));
    assert_eq!(
        e.message(),
        Some("The security token included in the request is invalid.")
    );
    let e = converse_err(
        &client_with(&server, DEFAULT_ACCESS_KEY_ID, "wrong", None),
        LLAMA,
        5,
    )
    .await;
    assert_eq!(code(&e).as_deref(), Some("InvalidSignatureException"));
    let e = converse_err(
        &client_with(
            &server,
            DEFAULT_ACCESS_KEY_ID,
            DEFAULT_SECRET_ACCESS_KEY,
            Some("tok"),
        ),
        LLAMA,
        5,
    )
    .await;
    assert_eq!(code(&e).as_deref(), Some("UnrecognizedClientException"));
    // Bedrock API keys as bearer tokens.
    let bearer =
        |key: &str| Client::from_conf(config(&server).bearer_token(Token::new(key, None)).build());
    let ok = bearer("ABSKquarry-sdk-key")
        .converse()
        .model_id(LLAMA)
        .messages(user("hi"))
        .inference_config(limits(5))
        .send()
        .await;
    assert!(ok.is_ok(), "{ok:?}");
    let e = converse_err(&bearer("ABSKunknown"), LLAMA, 5).await;
    assert_eq!(code(&e).as_deref(), Some("UnrecognizedClientException"));
    // A server clock ten minutes ahead: the signature has expired.
    let skewed = start_sim_with_clock(ZERO, ten_minutes_ahead).await.unwrap();
    let e = converse_err(&client(&skewed), LLAMA, 5).await;
    assert_eq!(code(&e).as_deref(), Some("InvalidSignatureException"));
    assert!(
        e.message().unwrap().starts_with("Signature expired: "),
        "{e:?}"
    );
}

#[tokio::test]
async fn retried_service_unavailable_then_success() {
    let config = format!("{ZERO}[[faults]]\nkind = \"service_unavailable\"\nrequests = [0, 2]\n");
    let server = start_sim(&config).await.unwrap();
    // The SDK's default: three attempts, 503 retried as transient.
    let c = Client::from_conf(
        config_default_retries(&server)
            .credentials_provider(Credentials::new(
                DEFAULT_ACCESS_KEY_ID,
                DEFAULT_SECRET_ACCESS_KEY,
                None,
                None,
                "test",
            ))
            .build(),
    );
    let out = c
        .converse()
        .model_id(LLAMA)
        .messages(user("hi"))
        .inference_config(limits(5))
        .send()
        .await;
    assert!(out.is_ok(), "{out:?}");
    let stats = server.simulator().stats_snapshot().to_json();
    assert!(stats.contains("server_error"), "{stats}");
}

fn config_default_retries(server: &SimServer) -> aws_sdk_bedrockruntime::config::Builder {
    aws_sdk_bedrockruntime::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(server.url())
        .http_client(aws_smithy_http_client::Builder::new().build_http())
}

#[tokio::test]
async fn count_tokens_takes_the_base_id_of_a_profile_only_model() {
    const SONNET: &str = "anthropic.claude-sonnet-4-5-20250929-v1:0";
    let server = start_sim(ZERO).await.unwrap();
    let c = client(&server);
    let count = |model: &'static str| {
        c.count_tokens()
            .model_id(model)
            .input(CountTokensInput::Converse(
                ConverseTokensRequest::builder()
                    .messages(user("hi"))
                    .build(),
            ))
            .send()
    };
    let counted = count(SONNET).await.unwrap();
    let framing = quarry_sim::Framing::of(quarry_bedrock::ModelFamily::Anthropic).tokens(1, false);
    assert_eq!(
        counted.input_tokens(),
        (quarry_sim::count_tokens("hi") + framing) as i32
    );
    let out = c
        .converse()
        .model_id(format!("us.{SONNET}"))
        .messages(user("hi"))
        .inference_config(limits(5))
        .send()
        .await
        .unwrap();
    assert_eq!(counted.input_tokens(), out.usage().unwrap().input_tokens());
    let e = count("us.anthropic.claude-sonnet-4-5-20250929-v1:0")
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_validation_exception(), "{e:?}");
    assert_eq!(
        e.message(),
        Some("The provided model doesn't support counting tokens.")
    );
}

#[tokio::test]
async fn a_burst_over_an_rpm_quota_is_a_typed_throttle() {
    let config = format!("{ZERO}[[models]]\nid = \"{LLAMA}\"\nquotas = {{ rpm = 2 }}\n");
    let server = start_sim(&config).await.unwrap();
    let c = client(&server);
    for _ in 0..2 {
        c.converse()
            .model_id(LLAMA)
            .messages(user("hi"))
            .inference_config(limits(5))
            .send()
            .await
            .unwrap();
    }
    let e = converse_err(&c, LLAMA, 5).await;
    assert!(matches!(e, ConverseError::ThrottlingException(_)), "{e:?}");
    assert_eq!(
        e.message(),
        Some("Too many requests, please wait before trying again.")
    );
}

/// A sim with an account holding a 120 TPM Reserved pool for Llama:
/// a Reserved request of about 10 + 100 tokens fits it; with the pool full
/// the next one is served at Standard (`default`).
fn reserved_config() -> String {
    format!(
        "{ZERO}[[accounts]]\naccess_key_id = \"AKIATIERS00000000001\"\nsecret_access_key = \"tiers\"\naccount_id = \"111122223333\"\n[accounts.reserved.\"{LLAMA}\"]\ntpm = 120\n"
    )
}

fn tier(t: ServiceTierType) -> ServiceTier {
    ServiceTier::builder().r#type(t).build().unwrap()
}

/// The tier member on all four invoke operations, and the tier used as the
/// SDK reads it back: Converse's body, ConverseStream's metadata event,
/// InvokeModel's and its stream's `X-Amzn-Bedrock-Service-Tier` header.
#[tokio::test]
async fn service_tiers_are_sent_and_the_tier_used_read_back() {
    let server = start_sim(ZERO).await.unwrap();
    let c = client(&server);
    for t in [
        ServiceTierType::Priority,
        ServiceTierType::Default,
        ServiceTierType::Flex,
    ] {
        let out = c
            .converse()
            .model_id(LLAMA)
            .messages(user("hi"))
            .inference_config(limits(5))
            .service_tier(tier(t.clone()))
            .send()
            .await
            .unwrap();
        assert_eq!(out.service_tier().map(|s| s.r#type()), Some(&t));
        let mut stream = c
            .converse_stream()
            .model_id(LLAMA)
            .messages(user("hi"))
            .inference_config(limits(5))
            .service_tier(tier(t.clone()))
            .send()
            .await
            .unwrap();
        let mut used = None;
        while let Some(event) = stream.stream.recv().await.unwrap() {
            if let ConverseStreamOutput::Metadata(m) = event {
                used = m.service_tier().map(|s| s.r#type().clone());
            }
        }
        assert_eq!(used.as_ref(), Some(&t));
        let body = br#"{"prompt":"<|begin_of_text|>Hello","max_gen_len":5}"#;
        let out = c
            .invoke_model()
            .model_id(LLAMA)
            .content_type("application/json")
            .body(Blob::new(body.to_vec()))
            .service_tier(t.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(out.service_tier(), Some(&t));
        let out = c
            .invoke_model_with_response_stream()
            .model_id(LLAMA)
            .content_type("application/json")
            .body(Blob::new(body.to_vec()))
            .service_tier(t.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(out.service_tier(), Some(&t));
    }
    // A request that names no tier gets none back.
    let out = c
        .converse()
        .model_id(LLAMA)
        .messages(user("hi"))
        .inference_config(limits(5))
        .send()
        .await
        .unwrap();
    assert_eq!(out.service_tier(), None);
}

/// Reserved draws on the account's Reserved pool, then overflows to
/// Standard, which the response says.
#[tokio::test]
async fn reserved_overflows_to_standard_and_says_so() {
    let server = start_sim(&reserved_config()).await.unwrap();
    let c = client_with(&server, "AKIATIERS00000000001", "tiers", None);
    let mut used = Vec::new();
    for _ in 0..2 {
        let out = c
            .converse()
            .model_id(LLAMA)
            .messages(user("hi"))
            .inference_config(limits(100))
            .service_tier(tier(ServiceTierType::Reserved))
            .send()
            .await
            .unwrap();
        used.push(out.service_tier().unwrap().r#type().clone());
    }
    assert_eq!(used, [ServiceTierType::Reserved, ServiceTierType::Default]);
    let stats = server.simulator().stats_snapshot();
    let scopes: Vec<_> = stats.quota.iter().map(|q| q.scope.as_str()).collect();
    assert!(
        scopes.contains(&"reserved") && scopes.contains(&"on_demand"),
        "{scopes:?}"
    );
}

/// A global cross-Region profile (`global.` prefix) is served from its own
/// quota pool, apart from the geographic and in-Region ones.
#[tokio::test]
async fn a_global_profile_draws_on_its_own_pool() {
    let server = start_sim(ZERO).await.unwrap();
    let c = client(&server);
    for id in [
        "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    ] {
        let out = c
            .converse()
            .model_id(id)
            .messages(user("hi"))
            .inference_config(limits(5))
            .send()
            .await
            .unwrap();
        assert!(out.usage().unwrap().output_tokens() > 0);
    }
    let stats = server.simulator().stats_snapshot();
    let mut scopes: Vec<_> = stats.quota.iter().map(|q| q.scope.clone()).collect();
    scopes.sort();
    assert_eq!(scopes, ["global", "us"]);
}
