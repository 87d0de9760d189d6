//! OpenTelemetry end to end: `quarry run` over three real `quarry-agent`
//! processes exports one trace (run → shares → stages → requests) and the
//! GenAI client metrics to a real OTLP receiver, over gRPC and over
//! HTTP/protobuf; a receiver that is down never fails the run; and nothing
//! exported carries a credential.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use quarry_e2e::otlp::{OtlpReceiver, ReceivedSpan};
use quarry_e2e::procs::{Agent, quarry_bin};
use tokio::process::Command;

const LLAMA: &str = "meta.llama3-3-70b-instruct-v1:0";
const REQUESTS: u64 = 45;

/// Every request traced, no per-second cap: what the three-agent tests set.
const EVERY_SPAN: &str = "sample_ratio = 1.0\nmax_spans_per_second = 0\n";

/// The spec, with `sampling` lines in `[telemetry]` (empty: the defaults).
fn spec_file(dir: &Path, sampling: &str) -> PathBuf {
    let path = dir.join("spec.toml");
    let text = format!(
        r#"
seed = 11
[load]
concurrency = 6
requests = {REQUESTS}
[[workload]]
model = "{LLAMA}"
operation = "ConverseStream"
input_tokens = 40
max_tokens = 8
temperature = 0.3
[telemetry]
{sampling}flush_timeout = "10s"
"#
    );
    std::fs::write(&path, text).unwrap();
    path
}

struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    out: PathBuf,
    _work: tempfile::TempDir,
}

/// `quarry run` of the spec on `agents` (in-process when empty), exporting
/// to `endpoint` with `protocol`.
async fn run(agents: &[Agent], endpoint: &str, protocol: &str, sampling: &str) -> Ran {
    let work = tempfile::tempdir().unwrap();
    let spec = spec_file(work.path(), sampling);
    let out = work.path().join("out");
    let mut cmd = Command::new(quarry_bin());
    cmd.arg("run")
        .arg(&spec)
        .args(["--interval-secs", "0.2", "--otlp-endpoint", endpoint])
        .arg("--out")
        .arg(&out)
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
        .env("OTEL_EXPORTER_OTLP_HEADERS", "x-quarry-test=e2e")
        .env("OTEL_SERVICE_NAME", "quarry-e2e")
        .env("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .kill_on_drop(true);
    if !agents.is_empty() {
        cmd.args(["--agents", &Agent::flag(agents)]);
    }
    let output = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("the run ends within 2 minutes")
        .unwrap();
    Ran {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        out,
        _work: work,
    }
}

/// Every span the receiver got, once the run span (the last) arrived.
async fn run_trace(receiver: &OtlpReceiver) -> Vec<ReceivedSpan> {
    receiver
        .wait_for_spans(
            |s| s.iter().any(|s| s.name() == "quarry.run"),
            Duration::from_secs(20),
        )
        .await
}

/// Checks the whole tree of a 3-agent run and returns its request spans.
fn check_tree(spans: &[ReceivedSpan], ran: &Ran) -> Vec<ReceivedSpan> {
    let trace_ids: BTreeSet<String> = spans.iter().map(ReceivedSpan::trace_id).collect();
    assert_eq!(trace_ids.len(), 1, "one trace id: {trace_ids:?}");
    let by_name = |prefix: &str| -> Vec<&ReceivedSpan> {
        spans
            .iter()
            .filter(|s| s.name().starts_with(prefix))
            .collect()
    };
    let runs = by_name("quarry.run");
    assert_eq!(runs.len(), 1);
    let run = runs[0];
    assert_eq!(run.parent_span_id(), None, "the run span is the root");
    assert_eq!(run.str_attr("quarry.outcome"), Some("request_limit"));
    assert_eq!(run.resource_str("service.name"), Some("quarry-e2e"));
    assert_eq!(run.resource_str("deployment.environment"), Some("test"));
    let shares = by_name("quarry.share ");
    assert_eq!(shares.len(), 3, "one span per agent share");
    let share_ids: BTreeSet<String> = shares.iter().map(|s| s.span_id()).collect();
    for share in &shares {
        assert_eq!(share.parent_span_id(), Some(run.span_id()));
        assert!(
            share
                .str_attr("quarry.agent.id")
                .unwrap()
                .starts_with("agent-")
        );
    }
    let stages = by_name("quarry.stage ");
    assert!(stages.len() >= 3, "at least one stage span per share");
    let stage_ids: BTreeSet<String> = stages.iter().map(|s| s.span_id()).collect();
    for stage in &stages {
        assert!(share_ids.contains(&stage.parent_span_id().unwrap()));
    }
    let requests: Vec<ReceivedSpan> = spans
        .iter()
        .filter(|s| s.name().starts_with("chat "))
        .cloned()
        .collect();
    assert_eq!(
        requests.len() as u64,
        REQUESTS,
        "every request traced at ratio 1"
    );
    let per_agent: BTreeMap<&str, usize> = requests.iter().fold(BTreeMap::new(), |mut m, s| {
        *m.entry(s.str_attr("quarry.agent.id").unwrap()).or_default() += 1;
        m
    });
    assert_eq!(
        per_agent.len(),
        3,
        "all three agents' requests: {per_agent:?}"
    );
    for r in &requests {
        assert!(
            stage_ids.contains(&r.parent_span_id().unwrap()),
            "request under a stage"
        );
        assert_eq!(r.str_attr("gen_ai.operation.name"), Some("chat"));
        assert_eq!(r.str_attr("gen_ai.provider.name"), Some("aws.bedrock"));
        assert_eq!(r.str_attr("gen_ai.request.model"), Some(LLAMA));
        assert_eq!(r.int_attr("gen_ai.request.max_tokens"), Some(8));
        assert!((r.double_attr("gen_ai.request.temperature").unwrap() - 0.3).abs() < 1e-6);
        assert!(
            r.str_attr("gen_ai.response.id")
                .is_some_and(|id| !id.is_empty())
        );
        assert!(r.str_array_attr("gen_ai.response.finish_reasons").is_some());
        assert_eq!(r.str_attr("server.address"), Some("127.0.0.1"));
        assert!(r.str_attr("error.type").is_none());
        // The first-token event sits where the span's TTFT says it does.
        let ttft_ms = r.double_attr("quarry.ttft_ms").unwrap();
        let event = r.event("gen_ai.first_token").expect("a first-token event");
        let from_start = (event.time_unix_nano - r.span.start_time_unix_nano) as f64 / 1e6;
        assert!(
            (from_start - ttft_ms).abs() < 0.01,
            "{from_start} vs {ttft_ms}"
        );
        assert!(r.span.end_time_unix_nano >= event.time_unix_nano);
    }
    // Token counts equal the simulator's.
    let doc = quarry::results::read_results(&ran.out).unwrap();
    let sim = doc.simulator.as_ref().expect("the simulator's view");
    let sim_in: u64 = sim.lanes.iter().map(|l| l.input_tokens).sum();
    let sim_out: u64 = sim.lanes.iter().map(|l| l.output_tokens).sum();
    let sum = |k: &str| -> u64 {
        requests
            .iter()
            .map(|r| u64::try_from(r.int_attr(k).unwrap()).unwrap())
            .sum()
    };
    assert_eq!(sum("gen_ai.usage.input_tokens"), sim_in);
    assert_eq!(sum("gen_ai.usage.output_tokens"), sim_out);
    // The spans' TTFTs are the run's: the reported TTFT distribution's
    // extremes bracket them (to HDR precision).
    let figures = quarry::report::RunFigures::from_document(&doc).unwrap();
    let ttft = figures
        .overall
        .delta
        .histogram(quarry_engine::Metric::TtftFromSend);
    let (lo, hi) = (ttft.min() as f64 / 1e6, ttft.max() as f64 / 1e6);
    for r in &requests {
        let t = r.double_attr("quarry.ttft_ms").unwrap();
        assert!(
            t >= lo * 0.99 && t <= hi * 1.01,
            "TTFT {t} outside [{lo}, {hi}]"
        );
    }
    requests
}

/// Nothing exported may carry a credential or an authorization value.
fn check_no_secrets(receiver: &OtlpReceiver) {
    let forbidden = [
        quarry_bedrock::auth::EXAMPLE_SECRET_ACCESS_KEY,
        quarry_bedrock::auth::EXAMPLE_ACCESS_KEY_ID,
        "AWS4-HMAC-SHA256",
        "Signature=",
        "Credential=",
        "x-amz-security-token",
    ];
    let strings = receiver.all_strings();
    assert!(!strings.is_empty());
    for s in &strings {
        for f in forbidden {
            assert!(!s.contains(f), "exported {s:?} contains {f:?}");
        }
        assert!(
            !s.eq_ignore_ascii_case("authorization"),
            "an authorization key was exported"
        );
    }
}

fn check_metrics(receiver: &OtlpReceiver) {
    let duration = receiver
        .last_metric("gen_ai.client.operation.duration")
        .expect("gen_ai.client.operation.duration exported");
    assert_eq!(duration.unit, "s");
    let count: u64 = duration.points.iter().filter_map(|p| p.count()).sum();
    assert_eq!(count, REQUESTS, "every request's duration");
    let ttfc = receiver
        .last_metric("gen_ai.client.operation.time_to_first_chunk")
        .expect("time to first chunk exported");
    let count: u64 = ttfc.points.iter().filter_map(|p| p.count()).sum();
    assert_eq!(count, REQUESTS);
    assert!(receiver.last_metric("quarry.requests").is_some());
}

async fn three_agent_run(receiver: OtlpReceiver, protocol: &str) {
    let agents = Agent::start_many(3).await;
    let ran = run(&agents, &receiver.endpoint(), protocol, EVERY_SPAN).await;
    assert_eq!(ran.code, Some(0), "{}\n{}", ran.stdout, ran.stderr);
    let spans = run_trace(&receiver).await;
    check_tree(&spans, &ran);
    assert!(
        receiver
            .request_headers()
            .iter()
            .all(|h| h.get("x-quarry-test").is_some_and(|v| v == "e2e")),
        "OTEL_EXPORTER_OTLP_HEADERS reach the backend"
    );
    check_metrics(&receiver);
    check_no_secrets(&receiver);
    assert!(ran.stdout.contains("telemetry: "), "{}", ran.stdout);
    assert!(!ran.stdout.contains("NOT exported"), "{}", ran.stdout);
    receiver.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_agent_run_is_one_trace_over_otlp_grpc() {
    three_agent_run(OtlpReceiver::grpc().await, "grpc").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_agent_run_is_one_trace_over_otlp_http() {
    three_agent_run(OtlpReceiver::http().await, "http/protobuf").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_process_run_is_traced_the_same_way() {
    let receiver = OtlpReceiver::grpc().await;
    // The default sampling (no sample_ratio): every request of a small run
    // has its span, within the default per-second cap.
    let ran = run(&[], &receiver.endpoint(), "grpc", "").await;
    assert_eq!(ran.code, Some(0), "{}\n{}", ran.stdout, ran.stderr);
    let spans = run_trace(&receiver).await;
    let requests = spans
        .iter()
        .filter(|s| s.name().starts_with("chat "))
        .count();
    assert_eq!(requests as u64, REQUESTS);
    let shares: Vec<_> = spans
        .iter()
        .filter(|s| s.name().starts_with("quarry.share "))
        .collect();
    assert_eq!(shares.len(), 1);
    assert_eq!(shares[0].str_attr("quarry.agent.id"), Some("in-process"));
    check_no_secrets(&receiver);
    receiver.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_is_down_warns_and_the_run_still_succeeds() {
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let agents = Agent::start_many(3).await;
    let ran = run(&agents, &endpoint, "grpc", EVERY_SPAN).await;
    assert_eq!(ran.code, Some(0), "{}\n{}", ran.stdout, ran.stderr);
    assert!(
        ran.stdout.contains("WARNING telemetry:") && ran.stdout.contains("NOT exported"),
        "{}",
        ran.stdout
    );
    // The results are whole.
    let doc = quarry::results::read_results(&ran.out).unwrap();
    assert_eq!(doc.end.sent, Some(REQUESTS));
}
