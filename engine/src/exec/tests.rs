//! The executor against a scripted fake Bedrock on loopback: timings stamped
//! at socket read, usage with its provenance, in-stream exceptions, retries
//! and timeouts. Real time, so only lower bounds on durations are asserted.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use hyper::body::Frame;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use quarry_bedrock::auth::Credentials;
use quarry_bedrock::{
    BlockDelta, ConverseStreamEvent, Endpoint, ErrorCode, Operation, Outcome, StreamMetadata,
    TokenUsage, UsageSource, encode_service_exception,
};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::*;
use crate::load::{LoadModel, LoadProfile};
use crate::plan::{MixEntry, Target, TokenDistribution, WorkloadMix};

/// What the fake server does for one request.
#[derive(Clone)]
enum Script {
    /// 200 with an event stream: frames, each after its delay.
    Stream(Vec<(Duration, Bytes)>),
    /// A unary response.
    Unary {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: &'static str,
    },
}

struct ChannelBody(mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|c| c.map(|c| Ok(Frame::data(c))))
    }
}

/// Serves `scripts[n]` to the n-th request (the last one repeats).
async fn fake_bedrock(scripts: Vec<Script>) -> (SocketAddr, Arc<AtomicU32>) {
    fake_bedrock_logging(scripts, None).await
}

/// [`fake_bedrock`], keeping every request body in `log` when given.
async fn fake_bedrock_logging(
    scripts: Vec<Script>,
    log: Option<Arc<std::sync::Mutex<Vec<Bytes>>>>,
) -> (SocketAddr, Arc<AtomicU32>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = Arc::new(AtomicU32::new(0));
    let counter = served.clone();
    let scripts = Arc::new(scripts);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (scripts, counter, log) = (scripts.clone(), counter.clone(), log.clone());
            tokio::spawn(async move {
                let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let n = counter.fetch_add(1, Ordering::SeqCst) as usize;
                    let script = scripts[n.min(scripts.len() - 1)].clone();
                    let log = log.clone();
                    async move {
                        assert!(req.headers().contains_key("authorization"));
                        assert!(req.headers().contains_key("x-amz-date"));
                        if let Some(log) = log {
                            use http_body_util::BodyExt as _;
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            log.lock().unwrap().push(body);
                        }
                        let (tx, rx) = mpsc::channel(64);
                        let mut response = hyper::Response::builder();
                        match script {
                            Script::Stream(frames) => {
                                response = response
                                    .header("content-type", "application/vnd.amazon.eventstream");
                                tokio::spawn(async move {
                                    for (delay, frame) in frames {
                                        tokio::time::sleep(delay).await;
                                        if tx.send(frame).await.is_err() {
                                            return;
                                        }
                                    }
                                });
                            }
                            Script::Unary {
                                status,
                                headers,
                                body,
                            } => {
                                response = response.status(status);
                                for (name, value) in headers {
                                    response = response.header(name, value);
                                }
                                tx.send(Bytes::from_static(body.as_bytes())).await.unwrap();
                            }
                        }
                        Ok::<_, Infallible>(response.body(ChannelBody(rx)).unwrap())
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    (addr, served)
}

fn event(e: ConverseStreamEvent) -> Bytes {
    let mut out = BytesMut::new();
    e.encode(&mut out, 4).unwrap();
    out.freeze()
}

fn text(t: &str) -> Bytes {
    event(ConverseStreamEvent::ContentBlockDelta {
        content_block_index: 0,
        delta: BlockDelta::Text(t.into()),
    })
}

fn metadata(input: u64, output: u64) -> Bytes {
    event(ConverseStreamEvent::Metadata(StreamMetadata {
        usage: TokenUsage {
            input_tokens: input,
            output_tokens: output,
            ..TokenUsage::default()
        },
        latency_ms: 5,
        server_tool_usage: None,
        service_tier: None,
    }))
}

fn plan(model: &str, operation: Operation, retry: RetryPolicy, timeouts: Timeouts) -> RunPlan {
    RunPlan {
        target: Target::Sim { sim_profile: None },
        load: LoadProfile::steady(LoadModel::closed(1).unwrap(), None, Some(1)).unwrap(),
        mix: WorkloadMix::new(vec![MixEntry {
            weight: 1,
            model_id: model.to_owned(),
            operation,
            input_tokens: TokenDistribution::Fixed { tokens: 20 },
            max_tokens: NonZeroU32::new(64).unwrap(),
            system_prompt: None,
            cache: None,
            nonce: true,
            temperature: None,
            service_tier: None,
        }])
        .unwrap(),
        retry,
        timeouts,
        seed: 7,
        pricing: Default::default(),
        request_slo: None,
        on_throttle: Default::default(),
        tier_prices: TierPrices::default(),
        replay: None,
        sessions: None,
    }
}

async fn run_one(plan: &RunPlan, addr: SocketAddr) -> Completion {
    let endpoint = Endpoint::custom(&format!("http://{addr}"), "us-east-1").unwrap();
    let sampler = Arc::new(WorkloadSampler::new(&plan.mix, plan.seed, 0));
    let credentials = Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
    let executor = BedrockExecutor::new(
        plan,
        &endpoint,
        sampler.clone(),
        SignerSource::fixed("us-east-1", credentials),
        &TransportConfig::default(),
    )
    .unwrap();
    let workload = MixWorkload::new(sampler, plan);
    let ticket = RequestTicket {
        seq: 0,
        intended_at: None,
        stage: 0,
        slot: Some(0),
        replay: None,
        turn: None,
    };
    let request = workload.pick(&ticket);
    let clock = RunClock::start(UNIX_EPOCH + Duration::from_secs(1_763_769_600));
    executor.execute(ticket, request, clock).await
}

const LLAMA: &str = "meta.llama3-3-70b-instruct-v1:0";
const MS: Duration = Duration::from_millis(1);

#[tokio::test]
async fn a_stream_is_timed_at_each_event_and_reports_server_usage() {
    let frames = vec![
        (
            Duration::ZERO,
            event(ConverseStreamEvent::MessageStart {
                role: "assistant".into(),
            }),
        ),
        (60 * MS, text("Hello")),
        (25 * MS, text(" wor")),
        (25 * MS, text("ld")),
        (Duration::ZERO, metadata(20, 3)),
    ];
    let (addr, _) = fake_bedrock(vec![Script::Stream(frames)]).await;
    let plan = plan(
        LLAMA,
        Operation::ConverseStream,
        RetryPolicy::Off,
        Timeouts::default(),
    );
    let done = run_one(&plan, addr).await;
    assert_eq!(done.outcome, Outcome::Ok);
    let usage = done.usage.unwrap();
    assert_eq!(usage.source, UsageSource::ConverseUsage);
    assert_eq!(
        (usage.tokens.input_tokens, usage.tokens.output_tokens),
        (20, 3)
    );
    let t = &done.timeline;
    assert!(
        t.connect_ns.is_some(),
        "the first request opened the connection"
    );
    assert!(t.sent_at <= t.response_headers_at.unwrap());
    assert!(t.response_headers_at.unwrap() <= t.first_event_at.unwrap());
    assert!(t.ttft_from_send().unwrap() >= 60_000_000, "{t:?}");
    assert_eq!(t.content_events.len(), 3);
    for (gap, _) in t.inter_token_gaps() {
        assert!(gap >= 25_000_000, "ITL {gap} shorter than the server's gap");
    }
    assert_eq!(done.max_tokens, 64);
}

#[tokio::test]
async fn an_in_stream_throttle_is_a_throttle() {
    let mut exception = BytesMut::new();
    encode_service_exception(
        &mut exception,
        ErrorCode::ThrottlingException,
        "Too many tokens",
    )
    .unwrap();
    let frames = vec![(Duration::ZERO, text("a")), (5 * MS, exception.freeze())];
    let (addr, _) = fake_bedrock(vec![Script::Stream(frames)]).await;
    let plan = plan(
        LLAMA,
        Operation::ConverseStream,
        RetryPolicy::Off,
        Timeouts::default(),
    );
    let done = run_one(&plan, addr).await;
    assert_eq!(done.outcome, Outcome::Throttled);
    assert_eq!(
        done.timeline.content_events.len(),
        1,
        "what arrived is kept"
    );
}

#[tokio::test]
async fn standard_retries_count_every_attempt() {
    let throttle = Script::Unary {
        status: 429,
        headers: vec![("x-amzn-errortype", "ThrottlingException:http://x/".into())],
        body: r#"{"message":"Too many tokens, please wait before trying again."}"#,
    };
    let ok = Script::Unary {
        status: 200,
        headers: vec![("content-type", "application/json".into())],
        body: r#"{"output":{"message":{"role":"assistant","content":[{"text":"hi"}]}},"stopReason":"end_turn","usage":{"inputTokens":20,"outputTokens":1,"totalTokens":21},"metrics":{"latencyMs":3}}"#,
    };
    let (addr, served) = fake_bedrock(vec![throttle.clone(), throttle, ok]).await;
    let retry = RetryPolicy::Standard {
        max_attempts: NonZeroU32::new(3).unwrap(),
        initial_backoff: MS,
        max_backoff: 10 * MS,
    };
    let plan = plan(LLAMA, Operation::Converse, retry, Timeouts::default());
    let done = run_one(&plan, addr).await;
    assert_eq!(done.outcome, Outcome::Ok);
    assert_eq!(served.load(Ordering::SeqCst), 3);
    let earlier: Vec<_> = done.earlier_attempts.iter().map(|a| a.outcome).collect();
    assert_eq!(earlier, [Outcome::Throttled, Outcome::Throttled]);
    assert_eq!(done.usage.unwrap().tokens.output_tokens, 1);
}

#[tokio::test]
async fn without_retries_a_throttle_is_final() {
    let throttle = Script::Unary {
        status: 429,
        headers: vec![("x-amzn-errortype", "ThrottlingException".into())],
        body: r#"{"message":"Too many tokens, please wait before trying again."}"#,
    };
    let (addr, served) = fake_bedrock(vec![throttle]).await;
    let plan = plan(
        LLAMA,
        Operation::Converse,
        RetryPolicy::Off,
        Timeouts::default(),
    );
    let done = run_one(&plan, addr).await;
    assert_eq!(done.outcome, Outcome::Throttled);
    assert_eq!(served.load(Ordering::SeqCst), 1);
    assert!(done.earlier_attempts.is_empty());
}

#[tokio::test]
async fn invoke_model_usage_comes_from_the_bedrock_headers() {
    let ok = Script::Unary {
        status: 200,
        headers: vec![
            ("x-amzn-bedrock-input-token-count", "20".into()),
            ("x-amzn-bedrock-output-token-count", "9".into()),
            ("x-amzn-bedrock-invocation-latency", "12".into()),
        ],
        body: r#"{"generation":"hi there","prompt_token_count":20,"generation_token_count":9,"stop_reason":"stop"}"#,
    };
    let (addr, _) = fake_bedrock(vec![ok]).await;
    let plan = plan(
        LLAMA,
        Operation::InvokeModel,
        RetryPolicy::Off,
        Timeouts::default(),
    );
    let done = run_one(&plan, addr).await;
    assert_eq!(done.outcome, Outcome::Ok);
    let usage = done.usage.unwrap();
    assert_eq!(usage.source, UsageSource::ResponseHeaders);
    assert_eq!(usage.tokens.output_tokens, 9);
    assert!(done.cost_pico_usd > 0, "Llama 3.3 70B is priced");
}

/// One ConverseStream request under a 50 ms first-token deadline, its stream
/// a `messageStart` and then `after` (each frame's delay and bytes).
async fn under_a_first_token_deadline(after: Vec<(Duration, Bytes)>) -> Completion {
    let mut frames = vec![(
        Duration::ZERO,
        event(ConverseStreamEvent::MessageStart {
            role: "assistant".into(),
        }),
    )];
    frames.extend(after);
    let (addr, _) = fake_bedrock(vec![Script::Stream(frames)]).await;
    let timeouts = Timeouts {
        first_token: Some(50 * MS),
        ..Timeouts::default()
    };
    let plan = plan(LLAMA, Operation::ConverseStream, RetryPolicy::Off, timeouts);
    run_one(&plan, addr).await
}

#[tokio::test]
async fn a_first_token_timeout_ends_a_silent_stream() {
    let done = under_a_first_token_deadline(vec![(Duration::from_secs(5), text("late"))]).await;
    assert_eq!(done.outcome, Outcome::Timeout);
    assert!(done.timeline.first_token_at.is_none());
    // The deadline counts from the attempt's start, which is before the
    // connection was opened (sent_at is after it) and before the request was
    // signed (microseconds, covered by the 1 ms allowance).
    let t = &done.timeline;
    let began = t.sent_at - t.pool_wait_ns - t.connect_ns.unwrap_or(0);
    assert!(t.closed_at - began >= 49_000_000, "{t:?}");
}

#[tokio::test]
async fn the_first_token_deadline_lets_go_once_the_first_token_came() {
    // The stream's one timer is armed at the first-token deadline and must
    // move to the request's when the first token arrives: the second token
    // comes long after the first-token deadline and still counts.
    let done = under_a_first_token_deadline(vec![
        (Duration::ZERO, text("early")),
        (Duration::from_millis(300), text("late")),
    ])
    .await;
    assert_eq!(done.outcome, Outcome::Ok, "{:?}", done.timeline);
    let t = &done.timeline;
    let first = t.first_token_at.expect("the first token was read");
    assert!(t.closed_at - first >= 300_000_000, "{t:?}");
}

#[test]
fn native_operations_need_a_known_family() {
    let plan = plan(
        "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abcdefghijkl",
        Operation::InvokeModel,
        RetryPolicy::Off,
        Timeouts::default(),
    );
    let endpoint = Endpoint::custom("http://127.0.0.1:1", "us-east-1").unwrap();
    let sampler = Arc::new(WorkloadSampler::new(&plan.mix, 1, 0));
    let credentials = Credentials::new("AKID", "secret", None, None, "test");
    let err = BedrockExecutor::new(
        &plan,
        &endpoint,
        sampler,
        SignerSource::fixed("us-east-1", credentials),
        &TransportConfig::default(),
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("workload[0].model"), "{err}");
}

/// The cost of one InvokeModel request answered with `served` as the tier
/// used (header), from a plan whose entry asks for `asked`.
async fn invoke_cost(asked: Option<ServiceTierType>, served: Option<&str>) -> Completion {
    let mut headers = vec![
        ("x-amzn-bedrock-input-token-count", "20".into()),
        ("x-amzn-bedrock-output-token-count", "9".into()),
    ];
    if let Some(t) = served {
        headers.push(("x-amzn-bedrock-service-tier", t.to_owned()));
    }
    let ok = Script::Unary {
        status: 200,
        headers,
        body: r#"{"generation":"hi there","prompt_token_count":20,"generation_token_count":9,"stop_reason":"stop"}"#,
    };
    let (addr, _) = fake_bedrock(vec![ok]).await;
    let mut plan = plan(
        LLAMA,
        Operation::InvokeModel,
        RetryPolicy::Off,
        Timeouts::default(),
    );
    let mut v = serde_json::to_value(&plan).unwrap();
    v["mix"][0]["service_tier"] = serde_json::to_value(asked).unwrap();
    plan = serde_json::from_value(v).unwrap();
    run_one(&plan, addr).await
}

/// A request is priced at the tier that served it: Flex at half of
/// Standard; a Reserved request served at `default` at Standard; Priority
/// has no built-in price (cost 0, the series is unpriced).
#[tokio::test]
async fn requests_are_priced_at_the_tier_that_served_them() {
    let standard = invoke_cost(None, None).await;
    assert!(standard.cost_pico_usd > 0);
    assert_eq!(standard.response.service_tier, None);
    let flex = invoke_cost(Some(ServiceTierType::Flex), Some("flex")).await;
    assert_eq!(flex.response.service_tier, Some(ServiceTierType::Flex));
    assert_eq!(flex.cost_pico_usd, standard.cost_pico_usd / 2);
    let overflow = invoke_cost(Some(ServiceTierType::Reserved), Some("default")).await;
    assert_eq!(
        overflow.response.service_tier,
        Some(ServiceTierType::Default)
    );
    assert_eq!(overflow.cost_pico_usd, standard.cost_pico_usd);
    let priority = invoke_cost(Some(ServiceTierType::Priority), Some("priority")).await;
    assert_eq!(priority.cost_pico_usd, 0);
}

/// InvokeModel sends the tier as the header; Converse carries it in the
/// body, never as a header.
#[test]
fn the_tier_header_goes_on_invoke_model_only() {
    let request = |operation| PreparedRequest {
        uri: "http://localhost/".parse().unwrap(),
        host: HeaderValue::from_static("localhost"),
        operation,
        family: ModelFamily::Llama,
        service_tier: Some(ServiceTierType::Flex),
        body: Bytes::new(),
        keep_answer: false,
    };
    for op in [
        Operation::InvokeModel,
        Operation::InvokeModelWithResponseStream,
    ] {
        let h = attempt::base_headers(&request(op));
        assert_eq!(h.get("x-amzn-bedrock-service-tier").unwrap(), "flex");
    }
    for op in [Operation::Converse, Operation::ConverseStream] {
        assert!(
            attempt::base_headers(&request(op))
                .get("x-amzn-bedrock-service-tier")
                .is_none()
        );
    }
}

/// A unary Converse answer with `text`.
fn converse_answer(text: &'static str) -> Script {
    Script::Unary {
        status: 200,
        headers: Vec::new(),
        body: text,
    }
}

#[tokio::test]
async fn a_session_turn_sends_every_earlier_question_and_answer_verbatim() {
    // Three answers, one per turn, each a whole Converse response.
    let answers = [
        r#"{"output":{"message":{"role":"assistant","content":[{"text":"First answer."}]}},"stopReason":"end_turn","usage":{"inputTokens":30,"outputTokens":3,"totalTokens":33},"metrics":{"latencyMs":1}}"#,
        r#"{"output":{"message":{"role":"assistant","content":[{"text":"Second "},{"text":"answer."}]}},"stopReason":"end_turn","usage":{"inputTokens":40,"outputTokens":3,"totalTokens":43},"metrics":{"latencyMs":1}}"#,
        r#"{"output":{"message":{"role":"assistant","content":[{"text":"Third answer."}]}},"stopReason":"end_turn","usage":{"inputTokens":50,"outputTokens":3,"totalTokens":53},"metrics":{"latencyMs":1}}"#,
    ];
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (addr, _) = fake_bedrock_logging(
        answers.iter().map(|a| converse_answer(a)).collect(),
        Some(log.clone()),
    )
    .await;
    let mut plan = plan(
        LLAMA,
        Operation::Converse,
        RetryPolicy::Off,
        Timeouts::default(),
    );
    plan.sessions = Some(
        crate::plan::SessionPlan::new(TokenDistribution::Fixed { tokens: 3 }, None, true).unwrap(),
    );
    let endpoint = Endpoint::custom(&format!("http://{addr}"), "us-east-1").unwrap();
    let sampler = Arc::new(WorkloadSampler::new(&plan.mix, plan.seed, 0));
    let credentials = Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
    let executor = BedrockExecutor::new(
        &plan,
        &endpoint,
        sampler.clone(),
        SignerSource::fixed("us-east-1", credentials),
        &TransportConfig::default(),
    )
    .unwrap();
    let workload = MixWorkload::new(sampler.clone(), &plan);
    let clock = RunClock::start(UNIX_EPOCH + Duration::from_secs(1_763_769_600));
    let mut conversation = Conversation::default();
    for index in 1..=3 {
        let ticket = RequestTicket {
            seq: u64::from(index) - 1,
            intended_at: None,
            stage: 0,
            slot: Some(0),
            replay: None,
            turn: Some(crate::timeline::TurnRef { session: 5, index }),
        };
        let request = workload.pick(&ticket);
        let done = executor
            .execute_turn(ticket, request, &mut conversation, clock)
            .await;
        assert_eq!(done.outcome, Outcome::Ok);
        assert_eq!(conversation.exchanges().len(), index as usize);
    }
    let bodies: Vec<serde_json::Value> = log
        .lock()
        .unwrap()
        .iter()
        .map(|b| serde_json::from_slice(b).unwrap())
        .collect();
    assert_eq!(bodies.len(), 3);
    // Each turn's messages: the earlier questions and answers, in order,
    // then its own question; questions are the session's draws, verbatim.
    let question = |turn: u32| {
        let mut q = String::new();
        sampler.draw_turn(5, turn).write_user_text(&mut q);
        q
    };
    let said = ["First answer.", "Second answer.", "Third answer."];
    for (k, body) in bodies.iter().enumerate() {
        let messages = body["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 2 * k + 1, "turn {}", k + 1);
        for (i, m) in messages.iter().enumerate() {
            let texts: Vec<&str> = m["content"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|b| b["text"].as_str())
                .collect();
            if i % 2 == 0 {
                assert_eq!(m["role"], "user");
                assert_eq!(
                    texts,
                    [question(i as u32 / 2 + 1).as_str()],
                    "turn {}",
                    k + 1
                );
            } else {
                assert_eq!(m["role"], "assistant");
                assert_eq!(texts, [said[i / 2]], "turn {}", k + 1);
            }
        }
        // Checkpoints after the previous question and after this one.
        let points: Vec<usize> = messages
            .iter()
            .enumerate()
            .filter(|(_, m)| m["content"].to_string().contains("cachePoint"))
            .map(|(i, _)| i)
            .collect();
        let expected: Vec<usize> = (k.saturating_sub(1)..=k).map(|q| 2 * q).collect();
        assert_eq!(points, expected, "turn {}", k + 1);
    }
    assert_ne!(question(1), question(2), "every turn asks something new");
    assert_eq!(
        conversation.exchanges()[1].answer,
        "Second answer.",
        "an answer in several blocks is kept whole"
    );
}
