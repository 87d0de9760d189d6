//! SigV4 on both hot paths: the agent signing one Converse request (the
//! PROTOCOL.md §1.4 request, 94-byte body, temporary credentials) and the
//! simulator verifying it. The simulator's budget is >40,000 verifications
//! per second per core, i.e. under 25 µs each. Beside Quarry's signer, the
//! same request signed by aws-sigv4's own `sign` (what the signer used to
//! call): the measured reason the signer builds its canonical request itself.

// criterion_group!/criterion_main! generate undocumented items.
#![allow(missing_docs)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use http::{Method, Request};
use quarry_bedrock::auth::{AccessKey, Credentials, Signer, StaticKeyStore, Verifier};

const URI: &str = "https://bedrock-runtime.us-east-1.amazonaws.com/model/us.anthropic.claude-3-5-sonnet-20241022-v2%3A0/converse";
const BODY: &[u8] = br#"{"messages":[{"role":"user","content":[{"text":"Hello"}]}],"inferenceConfig":{"maxTokens":64}}"#;
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const TOKEN: &str = "SESSIONTOKEN";

fn time() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_735_689_600)
}

fn unsigned() -> Request<()> {
    Request::builder()
        .method(Method::POST)
        .uri(URI)
        .header("content-type", "application/json")
        .body(())
        .expect("static request is valid")
}

fn signer() -> Signer {
    let creds = Credentials::new("AKIDEXAMPLE", SECRET, Some(TOKEN.into()), None, "bench");
    Signer::new("us-east-1", creds)
}

fn bench_sign(c: &mut Criterion) {
    let signer = signer();
    let mut group = c.benchmark_group("auth");
    group.throughput(Throughput::Elements(1));
    group.bench_function("sign_converse_session_token", |b| {
        b.iter_batched(
            unsigned,
            |mut req| {
                signer.sign(&mut req, BODY, time()).expect("signs");
                req
            },
            BatchSize::SmallInput,
        )
    });

    let identity: Identity =
        Credentials::new("AKIDEXAMPLE", SECRET, Some(TOKEN.into()), None, "bench").into();
    group.bench_function("sign_converse_session_token_aws_sigv4", |b| {
        b.iter(|| {
            let path = URI.trim_start_matches("https://bedrock-runtime.us-east-1.amazonaws.com");
            let headers = [
                ("content-type", "application/json"),
                ("host", "bedrock-runtime.us-east-1.amazonaws.com"),
            ];
            let request =
                SignableRequest::new("POST", path, headers.into_iter(), SignableBody::Bytes(BODY))
                    .expect("signable");
            let params = v4::SigningParams::builder()
                .identity(&identity)
                .region("us-east-1")
                .name("bedrock")
                .time(time())
                .settings(SigningSettings::default())
                .build()
                .expect("params")
                .into();
            sign(request, &params).expect("signs")
        })
    });

    let mut req = unsigned();
    signer.sign(&mut req, BODY, time()).expect("signs");
    let verifier = Verifier::new(StaticKeyStore::new().with_access_key(
        "AKIDEXAMPLE",
        AccessKey::temporary(
            SECRET,
            "123456789012",
            TOKEN,
            time() + Duration::from_secs(3600),
        ),
    ));
    let target = req
        .uri()
        .path_and_query()
        .expect("has a path")
        .as_str()
        .to_owned();
    group.bench_function("verify_converse_session_token", |b| {
        b.iter(|| {
            verifier
                .verify(req.method(), &target, req.headers(), BODY, time())
                .expect("verifies")
        })
    });
    group.finish();
}

criterion_group!(benches, bench_sign);
criterion_main!(benches);
