//! Wire-level tests of the simulator server with a plain hyper client:
//! routes, headers, bodies, streams, errors, auth, faults and determinism.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use quarry_bedrock::auth::{ApiKey, Credentials, Signer};
use quarry_bedrock::{
    ConverseResponse, ConverseStreamDecoder, ConverseStreamEvent, CountTokensResponse, ErrorCode,
    FrameDecoder, HeaderValue, InvokeStreamDecoder, InvokeStreamEvent, ModelFamily, ModelId,
    NativeResponse, Operation, Prompt, ResponseHeaders, ServiceError, WRITTEN_NS_HEADER,
};
use quarry_sim::{
    DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET_ACCESS_KEY, ServerOptions, SimConfig, SimServer,
    Simulator, system_clock,
};

const LLAMA: &str = "meta.llama3-3-70b-instruct-v1:0";
const HAIKU: &str = "anthropic.claude-3-5-haiku-20241022-v1:0";
const NOVA: &str = "amazon.nova-pro-v1:0";
const ZERO: &str = "latency = { kind = \"zero\" }\n";

async fn start(toml: &str) -> SimServer {
    SimServer::start(&SimConfig::from_toml(toml, "sim.toml").unwrap())
        .await
        .unwrap()
}

fn prompt(max_tokens: u32) -> Prompt {
    Prompt {
        system: Some("You are terse.".into()),
        cached_prefix: None,
        user_text: "Tell me about quarries and the stone they yield.".into(),
        max_tokens,
        temperature: None,
        cache_ttl: None,
        service_tier: None,
        history: Vec::new(),
        conversation_cache: false,
    }
}

fn default_signer() -> Signer {
    Signer::new(
        "us-east-1",
        Credentials::new(
            DEFAULT_ACCESS_KEY_ID,
            DEFAULT_SECRET_ACCESS_KEY,
            None,
            None,
            "test",
        ),
    )
}

struct Call {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Call {
    fn error(&self) -> ServiceError {
        let header = self
            .headers
            .get("x-amzn-errortype")
            .map(|v| v.to_str().unwrap());
        ServiceError::from_response(self.status.as_u16(), header, &self.body)
    }
}

async fn send_raw(
    server: &SimServer,
    req: Request<Full<Bytes>>,
) -> Result<Response<Incoming>, hyper::Error> {
    let stream = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    sender.send_request(req).await
}

fn request(
    server: &SimServer,
    path: &str,
    body: Vec<u8>,
    signer: Option<&Signer>,
    at: SystemTime,
) -> Request<Full<Bytes>> {
    let uri = format!("{}{path}", server.url());
    let mut req = Request::post(uri)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::new()))
        .unwrap();
    if let Some(s) = signer {
        s.sign(&mut req, &body, at).unwrap();
    } else {
        req.headers_mut()
            .insert("host", server.local_addr().to_string().parse().unwrap());
    }
    *req.body_mut() = Full::new(Bytes::from(body));
    req
}

fn path(model: &str, op: Operation) -> String {
    format!(
        "/model/{}/{}",
        ModelId::parse(model).unwrap().encode_path_segment(),
        op.path_suffix()
    )
}

async fn call_with(
    server: &SimServer,
    model: &str,
    op: Operation,
    body: Vec<u8>,
    signer: Option<&Signer>,
    at: SystemTime,
) -> Call {
    let r = send_raw(server, request(server, &path(model, op), body, signer, at))
        .await
        .unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    let body = r.into_body().collect().await.unwrap().to_bytes();
    Call {
        status,
        headers,
        body,
    }
}

async fn call(server: &SimServer, model: &str, op: Operation, body: Vec<u8>) -> Call {
    call_with(
        server,
        model,
        op,
        body,
        Some(&default_signer()),
        system_clock(),
    )
    .await
}

fn family_of(model: &str) -> ModelFamily {
    ModelFamily::from_model_id(model).unwrap()
}

#[tokio::test]
async fn converse_answers_with_bedrock_headers_and_usage() {
    let server = start(ZERO).await;
    let c = call(
        &server,
        LLAMA,
        Operation::Converse,
        prompt(64).converse_request().to_vec(),
    )
    .await;
    assert_eq!(c.status, 200, "{:?}", c.body);
    assert_eq!(c.headers["content-type"], "application/json");
    assert!(c.headers.contains_key("date"));
    let id = c.headers["x-amzn-requestid"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok());
    let r: ConverseResponse = serde_json::from_slice(&c.body).unwrap();
    assert!(r.usage.output_tokens >= 1 && r.usage.output_tokens <= 64);
    // The text plus Llama 3's template framing: one message, a system prompt.
    assert_eq!(
        r.usage.input_tokens,
        quarry_sim::count_tokens("You are terse.")
            + quarry_sim::count_tokens("Tell me about quarries and the stone they yield.")
            + quarry_sim::Framing::of(ModelFamily::Llama).tokens(1, true)
    );
    assert_eq!(quarry_sim::count_tokens(&r.text()), r.usage.output_tokens);
    assert_eq!(
        r.usage.total_tokens,
        r.usage.input_tokens + r.usage.output_tokens
    );
}

#[tokio::test]
async fn invoke_model_speaks_every_family() {
    let server = start(ZERO).await;
    for model in [
        LLAMA,
        HAIKU,
        NOVA,
        "amazon.titan-text-express-v1",
        "us.anthropic.claude-3-5-haiku-20241022-v1:0",
    ] {
        let family = family_of(model);
        let body = prompt(32).native_request(family).to_vec();
        let c = call(&server, model, Operation::InvokeModel, body).await;
        assert_eq!(c.status, 200, "{model}: {:?}", c.body);
        let headers = ResponseHeaders::parse(&c.headers).unwrap();
        let usage = headers.usage.expect("token headers");
        assert!(headers.invocation_latency_ms.is_some());
        let native = NativeResponse::parse(family, &c.body).unwrap();
        assert_eq!(
            native.usage().unwrap().output_tokens,
            usage.output_tokens,
            "{model}"
        );
        assert_eq!(
            quarry_sim::count_tokens(&native.text()),
            usage.output_tokens
        );
    }
}

#[tokio::test]
async fn converse_stream_events_come_in_bedrock_order() {
    let server = start(ZERO).await;
    let c = call(
        &server,
        HAIKU,
        Operation::ConverseStream,
        prompt(40).converse_request().to_vec(),
    )
    .await;
    assert_eq!(c.status, 200);
    assert_eq!(
        c.headers["content-type"],
        "application/vnd.amazon.eventstream"
    );
    assert!(
        c.headers.get("content-length").is_none(),
        "streams are chunked"
    );
    let events = ConverseStreamDecoder::decode_all(&c.body).unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.event_type().unwrap()).collect();
    assert_eq!(kinds[0], "messageStart");
    let n = kinds.len();
    assert_eq!(
        &kinds[n - 3..],
        ["contentBlockStop", "messageStop", "metadata"]
    );
    assert!(kinds[1..n - 3].iter().all(|k| *k == "contentBlockDelta"));
    let ConverseStreamEvent::Metadata(m) = &events[n - 1] else {
        panic!()
    };
    assert_eq!(m.usage.output_tokens, (n - 4) as u64);
    // Every event carries a `p` padding field.
    assert!(c.body.windows(5).filter(|w| w == b"\"p\":\"").count() >= n);
}

#[tokio::test]
async fn invoke_stream_chunks_end_with_invocation_metrics() {
    let server = start(ZERO).await;
    for model in [LLAMA, HAIKU, NOVA, "amazon.titan-text-express-v1"] {
        let family = family_of(model);
        let c = call(
            &server,
            model,
            Operation::InvokeModelWithResponseStream,
            prompt(16).native_request(family).to_vec(),
        )
        .await;
        assert_eq!(c.status, 200, "{model}");
        assert_eq!(c.headers["x-amzn-bedrock-content-type"], "application/json");
        let events = InvokeStreamDecoder::decode_all(family, &c.body).unwrap();
        let Some(InvokeStreamEvent::Metrics(m)) = events
            .iter()
            .rev()
            .find(|e| matches!(e, InvokeStreamEvent::Metrics(_)))
        else {
            panic!("{model}: no metrics in {events:?}")
        };
        let text: String = events
            .iter()
            .filter_map(|e| match e {
                InvokeStreamEvent::TextDelta(t) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(
            quarry_sim::count_tokens(&text),
            m.output_token_count,
            "{model}"
        );
        assert!(m.input_token_count > 0);
    }
}

#[tokio::test]
async fn count_tokens_matches_converse_input() {
    let server = start(ZERO).await;
    let p = prompt(10);
    let c = call(
        &server,
        HAIKU,
        Operation::CountTokens,
        p.count_tokens_converse().to_vec(),
    )
    .await;
    assert_eq!(c.status, 200);
    let n: CountTokensResponse = serde_json::from_slice(&c.body).unwrap();
    let conv = call(
        &server,
        HAIKU,
        Operation::Converse,
        p.converse_request().to_vec(),
    )
    .await;
    let r: ConverseResponse = serde_json::from_slice(&conv.body).unwrap();
    assert_eq!(n.input_tokens, r.usage.input_tokens);
    let c = call(
        &server,
        LLAMA,
        Operation::CountTokens,
        p.count_tokens_invoke(ModelFamily::Llama).to_vec(),
    )
    .await;
    assert_eq!(c.status, 200, "{:?}", c.body);
}

#[tokio::test]
async fn validation_errors_read_as_bedrock_writes_them() {
    let server = start(ZERO).await;
    let cases: Vec<(&str, Operation, Vec<u8>, &str)> = vec![
        ("anthropic.claude-nonexistent-v9:0", Operation::Converse, prompt(5).converse_request().to_vec(), "The provided model identifier is invalid."),
        (LLAMA, Operation::Converse, br#"{"messages":[]}"#.to_vec(), "A conversation must start with a user message."),
        (LLAMA, Operation::Converse, br#"{"messages":[{"role":"user","content":[{"text":"a"}]}],"inferenceConfig":{"maxTokens":0}}"#.to_vec(), "inferenceConfig.maxTokens"),
        (LLAMA, Operation::Converse, br#"{"messages":[{"role":"user","content":[{"text":"a"}]}],"inferenceConfig":{"maxTokens":100000}}"#.to_vec(), "exceed the model limit of 8192"),
        (HAIKU, Operation::InvokeModel, prompt(5).native_request(ModelFamily::Llama).to_vec(), "Malformed input request"),
        ("anthropic.claude-sonnet-4-20250514-v1:0", Operation::Converse, prompt(5).converse_request().to_vec(), "with on-demand throughput isn\u{2019}t supported"),
    ];
    for (model, op, body, expect) in cases {
        let c = call(&server, model, op, body).await;
        assert_eq!(c.status, 400, "{model}");
        let e = c.error();
        assert_eq!(e.code, Some(ErrorCode::ValidationException));
        assert!(e.message.contains(expect), "{model}: {}", e.message);
        assert_eq!(
            c.headers["x-amzn-errortype"],
            "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/"
        );
    }
    let big = vec![b' '; quarry_sim::MAX_REQUEST_BODY_BYTES + 1];
    let c = call(&server, LLAMA, Operation::Converse, big).await;
    assert_eq!(c.status, 400);
    assert!(c.error().message.contains("25000000"));
}

#[tokio::test]
async fn auth_failures_get_aws_403s() {
    let toml = format!(
        "{ZERO}[[accounts]]\naccess_key_id = \"AKIAQUARRY\"\nsecret_access_key = \"s3cret\"\naccount_id = \"111122223333\"\napi_keys = [\"ABSKquarrytestkey\"]\nsession_tokens = [\"tokA\", \"tokB\"]\n"
    );
    let server = start(&toml).await;
    let body = prompt(8).converse_request().to_vec();
    let code = |c: &Call| c.error().code;
    let none = call_with(
        &server,
        LLAMA,
        Operation::Converse,
        body.clone(),
        None,
        system_clock(),
    )
    .await;
    assert_eq!(
        (none.status.as_u16(), code(&none)),
        (403, Some(ErrorCode::MissingAuthenticationTokenException))
    );
    let unknown = Signer::new(
        "us-east-1",
        Credentials::new("AKIANOBODY", "x", None, None, "t"),
    );
    let c = call_with(
        &server,
        LLAMA,
        Operation::Converse,
        body.clone(),
        Some(&unknown),
        system_clock(),
    )
    .await;
    assert_eq!(code(&c), Some(ErrorCode::UnrecognizedClientException));
    assert_eq!(
        c.error().message,
        "The security token included in the request is invalid."
    );
    let wrong = Signer::new(
        "us-east-1",
        Credentials::new(DEFAULT_ACCESS_KEY_ID, "not-the-secret", None, None, "t"),
    );
    let c = call_with(
        &server,
        LLAMA,
        Operation::Converse,
        body.clone(),
        Some(&wrong),
        system_clock(),
    )
    .await;
    assert_eq!(code(&c), Some(ErrorCode::InvalidSignatureException));
    assert!(
        c.error()
            .message
            .starts_with("The request signature we calculated does not match")
    );
    let old = system_clock() - Duration::from_secs(600);
    let c = call_with(
        &server,
        LLAMA,
        Operation::Converse,
        body.clone(),
        Some(&default_signer()),
        old,
    )
    .await;
    assert_eq!(code(&c), Some(ErrorCode::InvalidSignatureException));
    assert!(
        c.error().message.starts_with("Signature expired: "),
        "{}",
        c.error().message
    );
    // Session tokens: each configured one works, others and none do not.
    for (token, ok) in [
        (Some("tokB"), true),
        (Some("tokA"), true),
        (Some("tokC"), false),
        (None, false),
    ] {
        let s = Signer::new(
            "eu-west-1",
            Credentials::new("AKIAQUARRY", "s3cret", token.map(str::to_owned), None, "t"),
        );
        let c = call_with(
            &server,
            LLAMA,
            Operation::Converse,
            body.clone(),
            Some(&s),
            system_clock(),
        )
        .await;
        assert_eq!(c.status == 200, ok, "{token:?}: {:?}", c.body);
    }
    // API keys.
    let key = Signer::bearer(ApiKey::new("ABSKquarrytestkey"));
    let c = call_with(
        &server,
        LLAMA,
        Operation::Converse,
        body.clone(),
        Some(&key),
        system_clock(),
    )
    .await;
    assert_eq!(c.status, 200);
    let c = call_with(
        &server,
        LLAMA,
        Operation::Converse,
        body.clone(),
        Some(&Signer::bearer(ApiKey::new("ABSKunknown"))),
        system_clock(),
    )
    .await;
    assert_eq!(code(&c), Some(ErrorCode::UnrecognizedClientException));
    let c = call_with(
        &server,
        LLAMA,
        Operation::Converse,
        body,
        Some(&Signer::bearer(ApiKey::new("nope"))),
        system_clock(),
    )
    .await;
    assert_eq!(c.status, 403);
    assert!(String::from_utf8_lossy(&c.body).contains("\"Message\":\"Invalid API Key format"));
}

#[tokio::test]
async fn raw_slash_in_an_arn_is_an_unknown_operation() {
    let server = start(ZERO).await;
    let body = prompt(8).converse_request().to_vec();
    let req = request(
        &server,
        "/model/arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc/converse",
        body,
        Some(&default_signer()),
        system_clock(),
    );
    let r = send_raw(&server, req).await.unwrap();
    assert_eq!(r.status(), 200);
    let b = r.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&b).contains("UnknownOperationException"));
}

#[tokio::test]
async fn fault_schedule_fires_on_exactly_the_configured_requests() {
    let server = start(&format!(
        "{ZERO}[[faults]]\nkind = \"service_unavailable\"\nrequests = [3, 5]\n"
    ))
    .await;
    let mut statuses = Vec::new();
    for _ in 0..7 {
        let c = call(
            &server,
            LLAMA,
            Operation::Converse,
            prompt(4).converse_request().to_vec(),
        )
        .await;
        statuses.push(c.status.as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 503, 503, 200, 200]);
}

#[tokio::test]
async fn mid_stream_exception_and_reset() {
    let server = start(&format!(
        "[[models]]\nid = \"{LLAMA}\"\noutput = {{ kind = \"fixed\", tokens = 10 }}\n\
        latency = {{ kind = \"fixed\", ttft_ms = 20.0, gap_ms = 2.0 }}\n\
        [[faults]]\nkind = \"throttling\"\nrequests = [0, 1]\nat_token = 3\n\
        [[faults]]\nkind = \"reset\"\nrequests = [1, 2]\nat_token = 2\n"
    ))
    .await;
    let c = call(
        &server,
        LLAMA,
        Operation::ConverseStream,
        prompt(100).converse_request().to_vec(),
    )
    .await;
    assert_eq!(c.status, 200);
    let events = ConverseStreamDecoder::decode_all(&c.body).unwrap();
    let ConverseStreamEvent::Exception(e) = events.last().unwrap() else {
        panic!("{events:?}")
    };
    assert_eq!(e.code, Some(ErrorCode::ThrottlingException));
    assert_eq!(events.len(), 1 + 3 + 1);
    let req = request(
        &server,
        &path(LLAMA, Operation::ConverseStream),
        prompt(100).converse_request().to_vec(),
        Some(&default_signer()),
        system_clock(),
    );
    let r = send_raw(&server, req).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.into_body().collect().await.is_err(),
        "a reset must cut the body"
    );
}

#[tokio::test]
async fn stream_headers_arrive_before_the_first_token() {
    let server = start(&format!("[[models]]\nid = \"{LLAMA}\"\nlatency = {{ kind = \"fixed\", ttft_ms = 3000.0, gap_ms = 1.0 }}\n")).await;
    let req = request(
        &server,
        &path(LLAMA, Operation::ConverseStream),
        prompt(4).converse_request().to_vec(),
        Some(&default_signer()),
        system_clock(),
    );
    let r = send_raw(&server, req).await.unwrap();
    assert_eq!(r.status(), 200);
    let mut body = r.into_body();
    // The first frame is 3 s away on the server: it cannot be here yet.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), body.frame())
            .await
            .is_err()
    );
}

async fn transcript(seed: u64) -> Vec<Bytes> {
    let server = start(&format!("seed = {seed}\n{ZERO}")).await;
    let mut out = Vec::new();
    for op in [
        Operation::Converse,
        Operation::ConverseStream,
        Operation::Converse,
        Operation::ConverseStream,
    ] {
        let c = call(&server, HAIKU, op, prompt(200).converse_request().to_vec()).await;
        assert_eq!(c.status, 200);
        out.push(c.body);
    }
    out
}

#[tokio::test]
async fn same_seed_gives_byte_identical_bodies() {
    let a = transcript(7).await;
    assert_eq!(a, transcript(7).await);
    assert_ne!(a, transcript(8).await);
}

/// Every frame's [`WRITTEN_NS_HEADER`] value, `None` where it has none.
fn frame_stamps(body: &[u8]) -> Vec<Option<i64>> {
    let mut frames = FrameDecoder::new();
    frames.push(body);
    let mut stamps = Vec::new();
    while let Some(frame) = frames.next_frame().unwrap() {
        stamps.push(match frame.header(WRITTEN_NS_HEADER) {
            Some(HeaderValue::Int64(ns)) => Some(ns),
            None => None,
            Some(other) => panic!("stamp of the wrong type: {other:?}"),
        });
    }
    frames.finish().unwrap();
    stamps
}

#[cfg(unix)]
fn monotonic_ns() -> i64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec * 1_000_000_000 + t.tv_nsec
}

#[cfg(unix)]
#[tokio::test]
async fn stamped_streams_carry_their_write_time_on_every_frame() {
    let server = start(&format!("stamp_frames = true\n{ZERO}")).await;
    let mut stamped = 0;
    for (model, op) in [
        (HAIKU, Operation::ConverseStream),
        (LLAMA, Operation::InvokeModelWithResponseStream),
        (HAIKU, Operation::InvokeModelWithResponseStream),
    ] {
        let body = match op {
            Operation::ConverseStream => prompt(12).converse_request().to_vec(),
            _ => prompt(12).native_request(family_of(model)).to_vec(),
        };
        let before = monotonic_ns();
        let c = call(&server, model, op, body).await;
        let after = monotonic_ns();
        assert_eq!(c.status, 200, "{model} {op}");
        let stamps: Vec<i64> = frame_stamps(&c.body)
            .into_iter()
            .map(|s| s.unwrap_or_else(|| panic!("{model} {op}: a frame without a stamp")))
            .collect();
        assert!(stamps.len() > 12, "{model} {op}: {} frames", stamps.len());
        // One clock: written after the request left and before its answer
        // was read, in the order the frames were sent.
        assert!(stamps.is_sorted(), "{model} {op}: {stamps:?}");
        assert!(before <= stamps[0] && stamps[stamps.len() - 1] <= after);
        stamped += stamps.len() as u64;
        // The stamp is extra: the events are the same.
        match op {
            Operation::ConverseStream => {
                ConverseStreamDecoder::decode_all(&c.body).unwrap();
            }
            _ => {
                InvokeStreamDecoder::decode_all(family_of(model), &c.body).unwrap();
            }
        }
    }
    let counted = server.simulator().stats_snapshot().server.frames_stamped;
    assert_eq!(counted, stamped);
}

#[tokio::test]
async fn streams_are_unstamped_by_default() {
    let server = start(ZERO).await;
    let c = call(
        &server,
        HAIKU,
        Operation::ConverseStream,
        prompt(12).converse_request().to_vec(),
    )
    .await;
    let stamps = frame_stamps(&c.body);
    assert!(stamps.len() > 12);
    assert!(stamps.iter().all(Option::is_none));
    assert_eq!(server.simulator().stats_snapshot().server.frames_stamped, 0);
}

#[tokio::test]
async fn stats_endpoints_are_open_and_count() {
    let server = start(ZERO).await;
    call(
        &server,
        LLAMA,
        Operation::Converse,
        prompt(4).converse_request().to_vec(),
    )
    .await;
    for (p, needle) in [
        ("/_quarry/stats", "\"lanes\""),
        ("/_quarry/metrics", "outcome=\"ok\""),
        ("/_quarry/health", "ok"),
    ] {
        let req = Request::get(format!("{}{p}", server.url()))
            .header("host", "x")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let r = send_raw(&server, req).await.unwrap();
        assert_eq!(r.status(), 200, "{p}");
        let b = r.into_body().collect().await.unwrap().to_bytes();
        assert!(
            String::from_utf8_lossy(&b).contains(needle),
            "{p}: {}",
            String::from_utf8_lossy(&b)
        );
    }
}

#[tokio::test]
async fn shutdown_lets_in_flight_streams_finish() {
    let sim = Simulator::new(&SimConfig::from_toml(&format!("[[models]]\nid = \"{LLAMA}\"\nlatency = {{ kind = \"fixed\", ttft_ms = 50.0, gap_ms = 5.0 }}\noutput = {{ kind = \"fixed\", tokens = 20 }}\n"), "sim.toml").unwrap()).unwrap();
    let server = SimServer::bind(sim, ServerOptions::default())
        .await
        .unwrap();
    let req = request(
        &server,
        &path(LLAMA, Operation::ConverseStream),
        prompt(100).converse_request().to_vec(),
        Some(&default_signer()),
        system_clock(),
    );
    let r = send_raw(&server, req).await.unwrap();
    let addr = server.local_addr();
    let done = tokio::spawn(server.shutdown());
    let body = r.into_body().collect().await.unwrap().to_bytes();
    let events = ConverseStreamDecoder::decode_all(&body).unwrap();
    assert!(matches!(
        events.last(),
        Some(ConverseStreamEvent::Metadata(_))
    ));
    assert!(done.await.unwrap(), "drained within the grace period");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
}
