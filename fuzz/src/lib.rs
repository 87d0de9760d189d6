//! The fuzz targets' entry points: one function per target, each handing
//! arbitrary bytes to one parser that sees untrusted input in production.
//!
//! The coverage-guided engine (`fuzz/libfuzzer`, driven by `scripts/fuzz`)
//! calls these functions, and so does the replay test (`tests/replay.rs`),
//! which feeds them every file under `fuzz/corpus/TARGET/` and
//! `fuzz/regressions/TARGET/` in the normal stable build: the code the
//! campaigns exercised is the code CI keeps checking. A target may return
//! an error for any input; it must never panic, hang or allocate without
//! bound.
//!
//! Where a parser's caller adds a little glue (the agent's admission of a
//! `RunRequest`, the results reader's file handling), the crate that ships
//! the parser exposes the function that takes the bytes
//! ([`quarry_agent::admit_request`], [`quarry::results::parse_results`],
//! [`quarry::results::recover_from_texts`]) so the targets call it rather
//! than a copy.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use quarry_bedrock::auth::{AccessKey, PayloadHash, StaticKeyStore, Verifier};
use quarry_bedrock::{
    ConverseResponse, ConverseStreamDecoder, CountTokensResponse, ERROR_TYPE_HEADER, FrameDecoder,
    InvokeStreamDecoder, ModelFamily, NativeResponse, ResponseHeaders, ServiceError, StreamDecoder,
};
use quarry_sim::{SimConfig, SimService, Simulator};

/// One fuzz target: its name (the directory under `fuzz/corpus/` and
/// `fuzz/regressions/`, the binary in `fuzz/libfuzzer`) and its function.
pub type Target = (&'static str, fn(&[u8]));

/// Every target, by name.
pub const TARGETS: &[Target] = &[
    ("eventstream", eventstream),
    ("converse_stream", converse_stream),
    ("invoke_stream", invoke_stream),
    ("unary_response", unary_response),
    ("sim_request", sim_request),
    ("sigv4_head", sigv4_head),
    ("spec", spec),
    ("sim_config", sim_config),
    ("results", results),
    ("agent_run_request", agent_run_request),
];

/// The target named `name`.
pub fn target(name: &str) -> Option<fn(&[u8])> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// The fixed wall clock of the in-process simulator and the SigV4
/// verifier (2025-01-01T00:00:00Z), so signed corpus entries stay inside
/// the ±5 minute skew window forever.
pub fn fixed_clock() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_735_689_600)
}

/// The first byte as the size of the chunks the rest arrives in (1 to 64
/// bytes; 0 means one chunk), as a network delivers a response body.
fn chunked(data: &[u8]) -> (usize, &[u8]) {
    match data.split_first() {
        Some((&b, rest)) if b != 0 => (usize::from(b % 64) + 1, rest),
        Some((_, rest)) => (rest.len().max(1), rest),
        None => (1, data),
    }
}

/// The event-stream frame decoder (`application/vnd.amazon.eventstream`
/// framing, prelude and message CRCs, headers): the rest of the input in
/// chunks sized by the first byte, then `finish`.
pub fn eventstream(data: &[u8]) {
    let (size, body) = chunked(data);
    let mut decoder = FrameDecoder::new();
    for chunk in body.chunks(size.max(1)) {
        decoder.push(chunk);
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    for (name, value) in frame.headers() {
                        std::hint::black_box((name, value.as_str()));
                    }
                    std::hint::black_box(frame.payload());
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    let _ = decoder.finish();
}

/// Drains a stream decoder the way the load engine's reader does: push a
/// chunk, take every event, stop at the first error.
fn drain<D: StreamDecoder>(mut decoder: D, size: usize, body: &[u8]) {
    for chunk in body.chunks(size.max(1)) {
        decoder.push(chunk);
        loop {
            match decoder.next_event() {
                Ok(Some(event)) => {
                    std::hint::black_box(&event);
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
}

/// The `ConverseStream` decoder (frames, then each event's JSON).
pub fn converse_stream(data: &[u8]) {
    let (size, body) = chunked(data);
    drain(ConverseStreamDecoder::new(), size, body);
    let _ = ConverseStreamDecoder::decode_all(body);
}

/// The `InvokeModelWithResponseStream` decoder: the first byte picks the
/// model family (and the chunk size), the rest is the stream.
pub fn invoke_stream(data: &[u8]) {
    let family = ModelFamily::ALL[usize::from(data.first().copied().unwrap_or(0) >> 6)];
    let (size, body) = chunked(data);
    drain(InvokeStreamDecoder::new(family), size, body);
}

/// Parses an HTTP/1.1 message head and its body with `httparse` (the
/// parser hyper runs), as the `http` types hyper hands the code above it;
/// `None` when hyper would have refused the head.
fn parse_head<'b>(
    head: &mut [httparse::Header<'b>],
    buf: &'b [u8],
    request: bool,
) -> Option<Head<'b>> {
    if request {
        let mut req = httparse::Request::new(head);
        let httparse::Status::Complete(len) = req.parse(buf).ok()? else {
            return None;
        };
        let method = Method::from_bytes(req.method?.as_bytes()).ok()?;
        let path = req.path?;
        let headers = header_map(req.headers)?;
        Some(Head {
            method,
            path,
            status: 0,
            headers,
            body: &buf[len..],
        })
    } else {
        let mut res = httparse::Response::new(head);
        let httparse::Status::Complete(len) = res.parse(buf).ok()? else {
            return None;
        };
        Some(Head {
            method: Method::GET,
            path: "",
            status: res.code?,
            headers: header_map(res.headers)?,
            body: &buf[len..],
        })
    }
}

/// A parsed message head with the bytes after it.
struct Head<'b> {
    method: Method,
    path: &'b str,
    status: u16,
    headers: HeaderMap,
    body: &'b [u8],
}

fn header_map(headers: &[httparse::Header<'_>]) -> Option<HeaderMap> {
    let mut map = HeaderMap::new();
    for h in headers {
        map.append(
            HeaderName::from_bytes(h.name.as_bytes()).ok()?,
            HeaderValue::from_bytes(h.value).ok()?,
        );
    }
    Some(map)
}

/// Most headers parsed in one head (hyper's default is 100).
const MAX_HEADERS: usize = 100;

/// A whole unary response as the load engine reads it: the first byte
/// picks the operation (Converse, CountTokens, or `InvokeModel` of one of
/// the four families), the rest is an HTTP/1.1 response (status line,
/// headers, body). A 2xx body goes to that operation's decoder (with the
/// Bedrock response headers for `InvokeModel`), anything else to the
/// error-body classifier and the `retry-after` reading.
pub fn unary_response(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let Some(head) = parse_head(&mut headers, rest, false) else {
        return;
    };
    if !(200..300).contains(&head.status) {
        let error_type = head
            .headers
            .get(ERROR_TYPE_HEADER)
            .and_then(|v| v.to_str().ok());
        let error = ServiceError::from_response(head.status, error_type, head.body);
        std::hint::black_box((error.outcome(), error.retry(), error.to_string()));
        return;
    }
    match selector % 6 {
        0 => {
            if let Ok(r) = serde_json::from_slice::<ConverseResponse>(head.body) {
                std::hint::black_box((r.usage.to_usage(), r.stop_reason.as_str(), r.output));
            }
        }
        1 => {
            let _ = serde_json::from_slice::<CountTokensResponse>(head.body);
        }
        n => {
            let family = ModelFamily::ALL[usize::from(n - 2)];
            let native = NativeResponse::parse(family, head.body);
            let headers = ResponseHeaders::parse(&head.headers);
            if let (Ok(native), Ok(headers)) = (native, headers) {
                std::hint::black_box(native.summarize(&headers));
            }
        }
    }
}

/// The simulator config the request-path target serves with: zero
/// latency, the default account plus an API key, a temporary key with a
/// session token.
pub const SIM_CONFIG: &str = r#"latency = { kind = "zero" }

[[accounts]]
access_key_id = "AKIDEXAMPLE"
secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
account_id = "123456789012"
api_keys = ["ABSKQmVkcm9ja0FQSUtleS1mdXp6"]

[[accounts]]
access_key_id = "ASIAFUZZTEMPORARY"
secret_access_key = "fuzzsecretfuzzsecretfuzzsecretfuzzsecret"
account_id = "210987654321"
session_tokens = ["fuzz-session-token"]
"#;

/// The in-process simulator (one per process: building it parses the
/// config and the model catalog) and a current-thread runtime to drive it.
/// The config has zero latency, so no answer waits; an input that made
/// one wait over a second would be reported as a hang.
fn sim_service() -> &'static (tokio::runtime::Runtime, SimService) {
    static SERVICE: OnceLock<(tokio::runtime::Runtime, SimService)> = OnceLock::new();
    SERVICE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a current-thread runtime builds");
        let config =
            SimConfig::from_toml(SIM_CONFIG, "fuzz-sim.toml").expect("SIM_CONFIG is valid");
        let sim = Simulator::new(&config).expect("SIM_CONFIG builds a simulator");
        let service = runtime.block_on(async { SimService::new(sim, fixed_clock) });
        (runtime, service)
    })
}

/// The simulator's request path: an HTTP/1.1 request (head as hyper
/// parses it, then the body) answered in process with the same routing,
/// SigV4 or bearer authentication, query and body parsing, admission and
/// answers as the server.
pub fn sim_request(data: &[u8]) {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let Some(head) = parse_head(&mut headers, data, true) else {
        return;
    };
    let mut builder = http::Request::builder().method(head.method).uri(head.path);
    if let Some(h) = builder.headers_mut() {
        *h = head.headers;
    }
    let Ok(request) = builder.body(Bytes::copy_from_slice(head.body)) else {
        return;
    };
    let (runtime, service) = sim_service();
    std::hint::black_box(runtime.block_on(service.answer(request)));
}

/// The SigV4 verifier on its own: the `Authorization` header (SigV4 or
/// bearer), `x-amz-date`, the security token, the canonical query string
/// and path of an HTTP/1.1 request head, then the body's hash.
pub fn sigv4_head(data: &[u8]) {
    static VERIFIER: OnceLock<Verifier<StaticKeyStore>> = OnceLock::new();
    let verifier = VERIFIER.get_or_init(|| {
        let keys = StaticKeyStore::new()
            .with_access_key(
                "AKIDEXAMPLE",
                AccessKey::long_term("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "123456789012"),
            )
            .with_access_key(
                "ASIAFUZZTEMPORARY",
                AccessKey::temporary_with_tokens(
                    "fuzzsecretfuzzsecretfuzzsecretfuzzsecret",
                    "210987654321",
                    ["fuzz-session-token"],
                    fixed_clock() + Duration::from_secs(86_400),
                ),
            )
            .with_api_key("ABSKQmVkcm9ja0FQSUtleS1mdXp6", "123456789012");
        Verifier::new(keys)
    });
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let Some(head) = parse_head(&mut headers, data, true) else {
        return;
    };
    if let Ok(verified) =
        verifier.verify_head(&head.method, head.path, &head.headers, fixed_clock())
    {
        let _ = verified.finish(Some(&PayloadHash::of(head.body)));
    }
}

/// The controller's spec parser and validator (TOML, every section).
pub fn spec(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = quarry::spec::parse_spec(Path::new("fuzz.toml"), text);
    }
}

/// The simulator's config parser and validator, then building a simulator
/// from a config it accepted (model catalog, quotas, latency models).
pub fn sim_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = SimConfig::from_toml(text, "fuzz-sim.toml") {
        let _ = Simulator::new(&config);
    }
}

/// The results reader: without a NUL byte the input is a `results.json`
/// (parse, schema version, every series' histograms decoded, the
/// impossible-document checks); with NULs it is `run.json`, `plan.json`
/// and `intervals.jsonl` separated by them, recovered as after a crash.
pub fn results(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(3, '\0');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(run), Some(plan), Some(intervals)) => {
            let _ = quarry::results::recover_from_texts([
                (Path::new("run.json"), run),
                (Path::new("plan.json"), plan),
                (Path::new("intervals.jsonl"), intervals),
            ]);
        }
        (Some(doc), None, None) => {
            let _ = quarry::results::parse_results(Path::new("results.json"), doc);
        }
        _ => {}
    }
}

/// The agent's admission of a controller's `Run` call: the protobuf
/// `RunRequest` (as tonic decodes it), then its schema version, run id,
/// share JSON and the guard rails (all set, so each is checked).
pub fn agent_run_request(data: &[u8]) {
    static CONFIG: OnceLock<Arc<quarry_agent::DaemonConfig>> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let mut config = quarry_agent::DaemonConfig::new("/nonexistent/quarry-fuzz".into());
        config.rails = quarry_agent::GuardRails {
            max_concurrency: Some(10_000),
            max_rate_per_second: Some(10_000.0),
            max_duration: Some(Duration::from_secs(86_400)),
            allowed_model_patterns: vec!["*anthropic*".into(), "meta.*".into(), "amazon.*".into()],
            max_spend_usd: Some(1_000.0),
        };
        Arc::new(config)
    });
    let Ok(request) = <quarry_proto::v1::RunRequest as prost::Message>::decode(data) else {
        return;
    };
    let _ = quarry_agent::admit_request(config, &request);
}
