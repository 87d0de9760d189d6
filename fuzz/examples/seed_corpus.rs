//! Writes the fuzz targets' seed inputs into `fuzz/corpus/TARGET/seed-*`:
//! real, valid inputs, each made by the code that makes them in production.
//!
//! - `sim_request`, `sigv4_head`: signed HTTP/1.1 requests (every
//!   operation and model family, a bearer key, a temporary key with its
//!   session token, an admin endpoint) as the load engine's signer signs
//!   them, at [`quarry_fuzz::fixed_clock`].
//! - `eventstream`, `converse_stream`, `invoke_stream`, `unary_response`:
//!   the in-process simulator's answers to those requests.
//! - `spec`, `sim_config`: the repository's example specs and simulator
//!   configs.
//! - `agent_run_request`: a `RunRequest` per example spec, its share
//!   holding the spec's plan, as the controller encodes it.
//! - `results`: the files of a results directory given as arguments
//!   (`results.json`, and `run.json` NUL `plan.json` NUL
//!   `intervals.jsonl`).
//!
//! Usage: `cargo run -p quarry-fuzz --example seed_corpus [RESULTS_DIR...]`
//! (then minimize with `scripts/fuzz`; see BENCHMARKS.md "Fuzzing").

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use bytes::Bytes;
use http::Request;
use prost::Message as _;
use quarry_bedrock::Operation;
use quarry_bedrock::auth::{ApiKey, Credentials, Signer};
use quarry_engine::{SHARE_SCHEMA_VERSION, ShareSpec};
use quarry_fuzz::{SIM_CONFIG, fixed_clock};
use quarry_sim::{SimConfig, SimService, Simulator};

const CONVERSE_BODY: &str = r#"{"messages":[{"role":"user","content":[{"text":"Hello there, how are you?"}]}],"system":[{"text":"Be brief."}],"inferenceConfig":{"maxTokens":12,"temperature":0.5,"topP":0.9,"stopSequences":["END"]}}"#;
const COUNT_BODY: &str = r#"{"input":{"converse":{"messages":[{"role":"user","content":[{"text":"Count these tokens please"}]}]}}}"#;
const ANTHROPIC_BODY: &str = r#"{"anthropic_version":"bedrock-2023-05-31","max_tokens":12,"system":"Be brief.","messages":[{"role":"user","content":[{"type":"text","text":"Hello there","cache_control":{"type":"ephemeral"}}]}]}"#;
const LLAMA_BODY: &str = r#"{"prompt":"Hello there","max_gen_len":12,"temperature":0.5}"#;
const NOVA_BODY: &str = r#"{"schemaVersion":"messages-v1","messages":[{"role":"user","content":[{"text":"Hello there"}]}],"inferenceConfig":{"maxTokens":12}}"#;
const TITAN_BODY: &str =
    r#"{"inputText":"Hello there","textGenerationConfig":{"maxTokenCount":12}}"#;

const HAIKU: &str = "anthropic.claude-3-5-haiku-20241022-v1%3A0";
const LLAMA: &str = "meta.llama3-3-70b-instruct-v1%3A0";
const NOVA: &str = "amazon.nova-lite-v1%3A0";
const TITAN: &str = "amazon.titan-text-express-v1";

/// How a seed request authenticates.
#[derive(Clone, Copy)]
enum Auth {
    LongTerm,
    Temporary,
    Bearer,
}

/// One request: a name, the method, the path on the wire, the body, auth.
struct Seed {
    name: String,
    method: http::Method,
    path: String,
    body: &'static str,
    auth: Auth,
    /// The selector byte of `unary_response` (or of `invoke_stream`'s
    /// family) for the answer.
    family: u8,
}

fn seeds() -> Vec<Seed> {
    let mut out = Vec::new();
    let mut push = |name: &str, path: String, body, auth, family| {
        out.push(Seed {
            name: name.to_owned(),
            method: http::Method::POST,
            path,
            body,
            auth,
            family,
        })
    };
    let op = |model: &str, op: Operation| format!("/model/{model}/{}", op.path_suffix());
    push(
        "converse",
        op(HAIKU, Operation::Converse),
        CONVERSE_BODY,
        Auth::LongTerm,
        0,
    );
    push(
        "converse-temp",
        op(NOVA, Operation::Converse),
        CONVERSE_BODY,
        Auth::Temporary,
        0,
    );
    push(
        "converse-bearer",
        op(LLAMA, Operation::Converse),
        CONVERSE_BODY,
        Auth::Bearer,
        0,
    );
    push(
        "converse-stream",
        op(HAIKU, Operation::ConverseStream),
        CONVERSE_BODY,
        Auth::LongTerm,
        0,
    );
    push(
        "count-tokens",
        op(HAIKU, Operation::CountTokens),
        COUNT_BODY,
        Auth::LongTerm,
        1,
    );
    for (name, model, body, family) in [
        ("anthropic", HAIKU, ANTHROPIC_BODY, 0u8),
        ("llama", LLAMA, LLAMA_BODY, 1),
        ("nova", NOVA, NOVA_BODY, 2),
        ("titan", TITAN, TITAN_BODY, 3),
    ] {
        push(
            &format!("invoke-{name}"),
            op(model, Operation::InvokeModel),
            body,
            Auth::LongTerm,
            family,
        );
        push(
            &format!("invoke-stream-{name}"),
            op(model, Operation::InvokeModelWithResponseStream),
            body,
            Auth::LongTerm,
            family,
        );
    }
    push(
        "converse-query",
        format!("{}?x-amz-foo=bar&b=%20c", op(HAIKU, Operation::Converse)),
        CONVERSE_BODY,
        Auth::LongTerm,
        0,
    );
    push(
        "unknown-model",
        op("no.such-model-v1", Operation::Converse),
        CONVERSE_BODY,
        Auth::LongTerm,
        0,
    );
    push(
        "bad-body",
        op(HAIKU, Operation::Converse),
        r#"{"messages":[{"role":"assistant"}]}"#,
        Auth::LongTerm,
        0,
    );
    out.push(Seed {
        name: "admin-stats".to_owned(),
        method: http::Method::GET,
        path: "/_quarry/stats".to_owned(),
        body: "",
        auth: Auth::LongTerm,
        family: 0,
    });
    out
}

fn sign(seed: &Seed, time: SystemTime) -> Request<Bytes> {
    let mut request = Request::builder()
        .method(seed.method.clone())
        .uri(format!("http://localhost{}", seed.path))
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .body(Bytes::from_static(seed.body.as_bytes()))
        .expect("a valid seed request");
    let signer = match seed.auth {
        Auth::LongTerm => Signer::new(
            "us-east-1",
            Credentials::new(
                "AKIDEXAMPLE",
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                None,
                None,
                "seed",
            ),
        ),
        Auth::Temporary => Signer::new(
            "us-east-1",
            Credentials::new(
                "ASIAFUZZTEMPORARY",
                "fuzzsecretfuzzsecretfuzzsecretfuzzsecret",
                Some("fuzz-session-token".to_owned()),
                None,
                "seed",
            ),
        ),
        Auth::Bearer => Signer::bearer(ApiKey::new("ABSKQmVkcm9ja0FQSUtleS1mdXp6")),
    };
    let body = request.body().clone();
    signer
        .sign(&mut request, &body, time)
        .expect("the seed request signs");
    // On the wire (and to the server) the target is the path, not the URL.
    *request.uri_mut() = seed.path.parse().expect("a valid path");
    request
}

/// An HTTP/1.1 request as bytes on the wire.
fn wire_request(request: &Request<Bytes>) -> Vec<u8> {
    let mut out = format!("{} {} HTTP/1.1\r\n", request.method(), request.uri()).into_bytes();
    for (name, value) in request.headers() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("content-length: {}\r\n\r\n", request.body().len()).as_bytes());
    out.extend_from_slice(request.body());
    out
}

/// An HTTP/1.1 response as bytes on the wire, after a selector byte.
fn wire_response(selector: u8, response: &http::Response<Bytes>) -> Vec<u8> {
    let mut out = vec![selector];
    out.extend_from_slice(format!("HTTP/1.1 {} X\r\n", response.status().as_u16()).as_bytes());
    for (name, value) in response.headers() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(response.body());
    out
}

fn write(root: &Path, target: &str, name: &str, bytes: &[u8]) {
    let dir = root.join(target);
    std::fs::create_dir_all(&dir).expect("the corpus directory is writable");
    std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("the seed is written");
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let config = SimConfig::from_toml(SIM_CONFIG, "fuzz-sim.toml").expect("SIM_CONFIG is valid");
    let service = runtime.block_on(async {
        SimService::new(Simulator::new(&config).expect("a simulator"), fixed_clock)
    });

    for seed in seeds() {
        let request = sign(&seed, fixed_clock());
        let wire = wire_request(&request);
        write(&root, "sim_request", &seed.name, &wire);
        write(&root, "sigv4_head", &seed.name, &wire);
        let response = runtime
            .block_on(service.answer(request))
            .expect("the simulator answers");
        println!("{:<26} {}", seed.name, response.status());
        let streamed = seed.path.ends_with("-stream");
        if streamed && response.status() == 200 {
            let body = response.body();
            let mut whole = vec![0u8];
            whole.extend_from_slice(body);
            let mut small = vec![7u8];
            small.extend_from_slice(body);
            write(&root, "eventstream", &seed.name, &whole);
            write(
                &root,
                "eventstream",
                &format!("{}-chunked", seed.name),
                &small,
            );
            if seed.path.ends_with("converse-stream") {
                write(&root, "converse_stream", &seed.name, &whole);
                write(
                    &root,
                    "converse_stream",
                    &format!("{}-chunked", seed.name),
                    &small,
                );
            } else {
                let mut frames = vec![seed.family << 6];
                frames.extend_from_slice(body);
                write(&root, "invoke_stream", &seed.name, &frames);
            }
        } else if !streamed {
            let selector = if seed.path.ends_with("/invoke") {
                2 + seed.family
            } else {
                seed.family
            };
            write(
                &root,
                "unary_response",
                &seed.name,
                &wire_response(selector, &response),
            );
        }
    }

    // Example specs: the spec target, and a RunRequest per plan.
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut specs: Vec<PathBuf> = std::fs::read_dir(repo.join("examples"))
        .expect("examples/")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    specs.sort();
    for path in &specs {
        let name = path.file_stem().expect("a file name").to_string_lossy();
        let text = std::fs::read_to_string(path).expect("a readable spec");
        write(&root, "spec", &name, text.as_bytes());
        let Ok(spec) = quarry::spec::parse_spec(path, &text) else {
            continue;
        };
        let share = ShareSpec {
            run_id: format!("run-{name}"),
            plan: spec.plan,
            group: "us-east-1/default".to_owned(),
            stream: 1,
            arrival_seed: 7,
            phase: 0.5,
            interleave: None,
            interval_ms: 1000,
            sim_url: Some("http://127.0.0.1:4000".to_owned()),
            trace: None,
            requires: Vec::new(),
        };
        let request = quarry_proto::v1::RunRequest {
            run_id: share.run_id.clone(),
            share_json: serde_json::to_vec(&share).expect("a share encodes"),
            plan_schema_version: SHARE_SCHEMA_VERSION,
            start_at_unix_ns: 1_735_689_600_000_000_000,
            lease_ttl_ms: 10_000,
        };
        write(&root, "agent_run_request", &name, &request.encode_to_vec());
    }

    // Simulator configs: the fuzz config and the benchmark profiles.
    write(&root, "sim_config", "fuzz", SIM_CONFIG.as_bytes());
    for path in ["scripts/bench-sim/zero.toml", "scripts/bench-sim/slow.toml"] {
        let text = std::fs::read(repo.join(path)).expect("a readable sim config");
        let name = Path::new(path)
            .file_stem()
            .expect("a name")
            .to_string_lossy();
        write(&root, "sim_config", &name, &text);
    }

    // Results directories given on the command line.
    for (i, dir) in std::env::args().skip(1).enumerate() {
        let dir = PathBuf::from(dir);
        let read = |f: &str| std::fs::read(dir.join(f)).expect("a results file");
        write(
            &root,
            "results",
            &format!("results-{i}"),
            &read("results.json"),
        );
        let mut parts = read("run.json");
        parts.push(0);
        parts.extend_from_slice(&read("plan.json"));
        parts.push(0);
        parts.extend_from_slice(&read("intervals.jsonl"));
        write(&root, "results", &format!("recover-{i}"), &parts);
    }
}
