//! The simulator's request path without sockets: one SigV4-signed Converse
//! request (Llama 3.3 70B, `maxTokens` 64, the zero-latency profile of
//! `scripts/bench-sim/zero.toml`) routed, verified, parsed, admitted,
//! answered and its body collected, through `SimService`. The budget is
//! 40,000 requests per second per core over HTTP, i.e. well under 25 µs
//! here; the whole-process figure over sockets is
//! `scripts/bench-sim/run.sh` (BENCHMARKS.md).

// criterion_group!/criterion_main! generate undocumented items.
#![allow(missing_docs)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use http::{Method, Request};
use quarry_bedrock::auth::{Credentials, Signer};
use quarry_sim::{SimConfig, SimService, Simulator};

const CONFIG: &str = include_str!("../../scripts/bench-sim/zero.toml");
const URI: &str = "http://127.0.0.1:18800/model/meta.llama3-3-70b-instruct-v1%3A0/converse";
const STREAM_URI: &str =
    "http://127.0.0.1:18800/model/meta.llama3-3-70b-instruct-v1%3A0/converse-stream";
const BODY: &[u8] = br#"{"messages":[{"role":"user","content":[{"text":"Hello, tell me about quarries."}]}],"inferenceConfig":{"maxTokens":64}}"#;
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

/// The fixed instant the request is signed at and the simulator's clock
/// reads, so the signature never leaves the skew window.
fn time() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_735_689_600)
}

/// The signed request's parts; each iteration rebuilds the request from
/// them (an `http::Request` is not `Clone`).
fn signed(uri: &str) -> (http::request::Parts, Bytes) {
    let creds = Credentials::new("AKIDEXAMPLE", SECRET, None, None, "bench");
    let signer = Signer::new("us-east-1", creds);
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header("content-type", "application/json")
        .body(())
        .expect("static request is valid");
    signer.sign(&mut req, BODY, time()).expect("signs");
    (req.into_parts().0, Bytes::from_static(BODY))
}

fn rebuild(parts: &http::request::Parts, body: &Bytes) -> Request<Bytes> {
    let mut req = Request::new(body.clone());
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = parts.uri.clone();
    *req.headers_mut() = parts.headers.clone();
    req
}

fn bench_sim(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let config = SimConfig::from_toml(CONFIG, "zero.toml").expect("bench config parses");
    let service = SimService::new(Simulator::new(&config).expect("simulator"), time);
    let mut group = c.benchmark_group("sim");
    group.throughput(Throughput::Elements(1));
    for (name, uri) in [
        ("signed_converse", URI),
        ("signed_converse_stream", STREAM_URI),
    ] {
        let (parts, body) = signed(uri);
        let check = rt
            .block_on(service.answer(rebuild(&parts, &body)))
            .expect("answered");
        assert!(check.status().is_success(), "{name}: {:?}", check.body());
        group.bench_function(name, |b| {
            b.iter_batched(
                || rebuild(&parts, &body),
                |req| rt.block_on(service.answer(req)).expect("answered"),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench_sim);
criterion_main!(benches);
