//! The agent daemon end to end: auth, guard rails, streamed runs with dense
//! sequences, re-attach, lease expiry and results after a restart, against
//! an in-process simulator.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::Path;
use std::time::Duration;

use quarry_agent::{self, BearerToken, DaemonConfig, GuardRails, MutualTls};
use quarry_bedrock::Operation;
use quarry_engine::ShareEvent;
use quarry_engine::{
    LoadModel, LoadProfile, MixEntry, RetryPolicy, RunPlan, SHARE_SCHEMA_VERSION, ShareSpec,
    Target, Timeouts, TokenDistribution, WorkloadMix, merge_series,
};
use quarry_proto::v1 as pb;
use quarry_proto::v1::agent_client::AgentClient;
use quarry_proto::wire::{EventDecoder, SequencedEvent};
use quarry_sim::{SimConfig, SimServer};
use tokio::sync::oneshot;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

const HAIKU: &str = "anthropic.claude-3-5-haiku-20241022-v1:0";
const TOKEN: &str = "correct horse battery staple";

/// The next message of a gRPC stream (None at its end).
async fn next(stream: &mut tonic::Streaming<pb::RunEvent>) -> Option<pb::RunEvent> {
    stream.message().await.unwrap()
}

async fn sim() -> SimServer {
    let toml = "latency = { kind = \"fixed\", ttft_ms = 5.0, gap_ms = 2.0 }";
    SimServer::start(&SimConfig::from_toml(toml, "sim.toml").unwrap())
        .await
        .unwrap()
}

/// Requests the simulator has served (every lane, every outcome).
fn sim_requests(sim: &SimServer) -> u64 {
    sim.simulator()
        .stats_snapshot()
        .lanes
        .iter()
        .flat_map(|l| l.requests.iter())
        .map(|r| r.count)
        .sum()
}

fn plan(load: LoadProfile) -> RunPlan {
    RunPlan {
        target: Target::Sim { sim_profile: None },
        load,
        mix: WorkloadMix::new(vec![MixEntry {
            weight: 1,
            model_id: HAIKU.to_owned(),
            operation: Operation::ConverseStream,
            input_tokens: TokenDistribution::Fixed { tokens: 20 },
            max_tokens: NonZeroU32::new(8).unwrap(),
            system_prompt: None,
            cache: None,
            nonce: true,
            temperature: None,
            service_tier: None,
        }])
        .unwrap(),
        retry: RetryPolicy::Off,
        timeouts: Timeouts::default(),
        seed: 7,
        pricing: Default::default(),
        request_slo: None,
        on_throttle: Default::default(),
        tier_prices: quarry_engine::TierPrices::default(),
        replay: None,
        sessions: None,
    }
}

fn closed(concurrency: u32, duration: Duration) -> LoadProfile {
    LoadProfile::steady(
        LoadModel::closed(concurrency).unwrap(),
        Some(duration),
        None,
    )
    .unwrap()
}

fn request(run_id: &str, plan: RunPlan, sim_url: &str, lease_ttl_ms: u64) -> pb::RunRequest {
    let spec = ShareSpec {
        run_id: run_id.to_owned(),
        plan,
        group: "test".to_owned(),
        stream: 0,
        arrival_seed: 1,
        phase: 0.0,
        interleave: None,
        interval_ms: 100,
        sim_url: Some(sim_url.to_owned()),
        trace: None,
        requires: Vec::new(),
    };
    pb::RunRequest {
        run_id: run_id.to_owned(),
        share_json: serde_json::to_vec(&spec).unwrap(),
        plan_schema_version: SHARE_SCHEMA_VERSION,
        start_at_unix_ns: 0,
        lease_ttl_ms,
    }
}

struct Agent {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), quarry_agent::ServeError>>,
}

impl Agent {
    async fn start(config: DaemonConfig) -> Agent {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(quarry_agent::serve(listener, config, async {
            let _ = stopped.await;
        }));
        Agent {
            addr,
            stop: Some(stop),
            task,
        }
    }

    async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap().unwrap();
    }
}

fn config(dir: &Path) -> DaemonConfig {
    let mut c = DaemonConfig::new(dir.to_path_buf());
    c.token = BearerToken::from_file_contents(TOKEN);
    c.stop_grace = Duration::from_secs(1);
    c.shutdown_grace = Duration::from_secs(5);
    c
}

type Client = AgentClient<
    tonic::service::interceptor::InterceptedService<
        Channel,
        Box<dyn FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Send>,
    >,
>;

async fn client(addr: SocketAddr, token: &str) -> Client {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let value: tonic::metadata::MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
    AgentClient::with_interceptor(
        channel,
        Box::new(move |mut r: tonic::Request<()>| {
            r.metadata_mut().insert("authorization", value.clone());
            Ok(r)
        }),
    )
}

/// Reads a stream to its end, decoding with `decoder`.
async fn drain(
    stream: &mut tonic::Streaming<pb::RunEvent>,
    decoder: &mut EventDecoder,
    raw: &mut Vec<u64>,
) -> Vec<SequencedEvent> {
    let mut out = Vec::new();
    while let Some(e) = next(stream).await {
        raw.push(e.sequence);
        if let Some(d) = decoder.decode(&e).unwrap() {
            out.push(d);
        }
    }
    out
}

fn finished(events: &[SequencedEvent]) -> &quarry_engine::ShareFinished {
    match &events.last().unwrap().event {
        ShareEvent::Finished(f) => f,
        other => panic!("last event is not Finished: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_mode_refuses_a_wrong_token_and_accepts_the_right_one() {
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(config(dir.path())).await;
    let err = client(agent.addr, "wrong")
        .await
        .describe(pb::DescribeRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    assert!(!err.message().contains(TOKEN));
    let described = client(agent.addr, TOKEN)
        .await
        .describe(pb::DescribeRequest {})
        .await
        .unwrap()
        .into_inner();
    quarry_proto::check_compatible(&described.protocol_version).unwrap();
    assert!(described.cores >= 1);
    let probe = client(agent.addr, TOKEN)
        .await
        .sync_clock(pb::SyncClockRequest {
            controller_send_ns: 42,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(probe.controller_send_ns, 42);
    assert!(probe.agent_send_ns >= probe.agent_receive_ns && probe.agent_receive_ns > 0);
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_refuses_a_controller_without_a_client_certificate() {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let client_cert = CertificateParams::new(vec!["controller".to_owned()])
        .unwrap()
        .signed_by(&client_key, &ca)
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.token = None;
    c.tls = Some(MutualTls {
        cert_pem: server.pem().into_bytes(),
        key_pem: server_key.serialize_pem().into_bytes(),
        client_ca_pem: ca.pem().into_bytes(),
    });
    let agent = Agent::start(c).await;
    let url = format!("https://localhost:{}", agent.addr.port());
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca.pem()))
        .domain_name("localhost");

    // No client certificate: the handshake or the first call fails.
    let anonymous = async {
        let channel = Channel::from_shared(url.clone())
            .unwrap()
            .tls_config(tls.clone())
            .unwrap()
            .connect()
            .await?;
        AgentClient::new(channel)
            .describe(pb::DescribeRequest {})
            .await
            .map_err(|e| Box::new(e) as Box<dyn std::error::Error>)?;
        Ok::<_, Box<dyn std::error::Error>>(())
    };
    assert!(
        anonymous.await.is_err(),
        "a controller without a certificate was served"
    );

    let channel = Channel::from_shared(url)
        .unwrap()
        .tls_config(tls.identity(Identity::from_pem(
            client_cert.pem(),
            client_key.serialize_pem(),
        )))
        .unwrap()
        .connect()
        .await
        .unwrap();
    AgentClient::new(channel)
        .describe(pb::DescribeRequest {})
        .await
        .unwrap();
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_over_a_guard_rail_are_refused_naming_the_rail() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.rails = GuardRails {
        max_concurrency: Some(4),
        max_rate_per_second: Some(50.0),
        max_duration: Some(Duration::from_secs(60)),
        allowed_model_patterns: vec!["anthropic.*".to_owned()],
        max_spend_usd: Some(0.01),
    };
    let agent = Agent::start(c).await;
    let mut client = client(agent.addr, TOKEN).await;
    let open = |rate: f64| {
        LoadProfile::steady(
            LoadModel::open(
                rate,
                quarry_engine::Arrival::Constant,
                Some(4),
                quarry_engine::CatchUp::SendLate,
            )
            .unwrap(),
            Some(Duration::from_secs(10)),
            None,
        )
        .unwrap()
    };
    let mut other_model = plan(closed(2, Duration::from_secs(1)));
    other_model.mix = WorkloadMix::new(vec![MixEntry {
        model_id: "meta.llama3-3-70b-instruct-v1:0".to_owned(),
        ..other_model.mix.entries()[0].clone()
    }])
    .unwrap();
    let mut expensive = plan(open(40.0));
    expensive.target = Target::Aws {
        region: "us-east-1".to_owned(),
        endpoint: None,
        profile: None,
    };
    expensive.mix = WorkloadMix::new(vec![MixEntry {
        max_tokens: NonZeroU32::new(4096).unwrap(),
        ..expensive.mix.entries()[0].clone()
    }])
    .unwrap();
    let cases = [
        (plan(closed(5, Duration::from_secs(1))), "max_concurrency"),
        (plan(open(51.0)), "max_rate_per_second"),
        (plan(closed(2, Duration::from_secs(61))), "max_duration_ms"),
        (other_model, "allowed_model_patterns"),
        (expensive, "max_spend_usd"),
    ];
    for (i, (p, rail)) in cases.into_iter().enumerate() {
        let err = client
            .run(request(&format!("rail-{i}"), p, "http://127.0.0.1:1", 0))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::PermissionDenied, "{rail}: {err}");
        assert!(err.message().contains(rail), "{rail}: {}", err.message());
    }
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_without_an_id_are_their_host_and_port() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let agents = [
        Agent::start(config(a.path())).await,
        Agent::start(config(b.path())).await,
    ];
    let mut ids = Vec::new();
    for agent in &agents {
        let id = client(agent.addr, TOKEN)
            .await
            .describe(pb::DescribeRequest {})
            .await
            .unwrap()
            .into_inner()
            .agent_id;
        assert_eq!(
            id,
            quarry_agent::default_agent_id(&quarry_agent::host_name(), agent.addr)
        );
        ids.push(id);
    }
    // Two agents on one host no longer share an id.
    assert_ne!(ids[0], ids[1]);
    for agent in agents {
        agent.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_that_cannot_be_set_up_is_refused_before_it_starts() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(config(dir.path())).await;
    let mut client = client(agent.addr, TOKEN).await;
    // InvokeModel needs the model family for its native body; this id names
    // none, which only the executor's set-up finds.
    let mut bad = plan(closed(1, Duration::from_secs(5)));
    bad.mix = WorkloadMix::new(vec![MixEntry {
        weight: 1,
        model_id: "my-imported-model".to_owned(),
        operation: Operation::InvokeModel,
        input_tokens: TokenDistribution::Fixed { tokens: 20 },
        max_tokens: NonZeroU32::new(8).unwrap(),
        system_prompt: None,
        cache: None,
        nonce: true,
        temperature: None,
        service_tier: None,
    }])
    .unwrap();
    let refused = client
        .run(request("cannot-set-up", bad, &sim.url(), 0))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(
        refused
            .message()
            .starts_with("cannot set up the share: workload[0].model: \"my-imported-model\""),
        "{}",
        refused.message()
    );
    // Refused means forgotten: no run, nothing stored, nothing sent, and
    // the agent is free for the next run.
    let unknown = client
        .results(pb::ResultsRequest {
            run_id: "cannot-set-up".to_owned(),
            after_sequence: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    assert!(!dir.path().join("cannot-set-up").exists());
    assert_eq!(sim_requests(&sim), 0);
    let mut stream = client
        .run(request(
            "next",
            plan(closed(1, Duration::from_millis(300))),
            &sim.url(),
            0,
        ))
        .await
        .unwrap()
        .into_inner();
    let events = drain(&mut stream, &mut EventDecoder::new(), &mut Vec::new()).await;
    assert!(!finished(&events).partial(), "{}", finished(&events).reason);
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_streams_dense_sequences_and_a_cumulative_equal_to_its_intervals() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(config(dir.path())).await;
    let mut client = client(agent.addr, TOKEN).await;
    let mut stream = client
        .run(request(
            "full",
            plan(closed(2, Duration::from_millis(600))),
            &sim.url(),
            0,
        ))
        .await
        .unwrap()
        .into_inner();
    let mut decoder = EventDecoder::new();
    let mut raw = Vec::new();
    let events = drain(&mut stream, &mut decoder, &mut raw).await;
    assert_eq!(raw, (1..=raw.len() as u64).collect::<Vec<_>>());
    assert!(matches!(events[0].event, ShareEvent::Started { .. }));
    let mut merged = BTreeMap::new();
    for e in &events {
        if let ShareEvent::Interval(i) = &e.event {
            merge_series(&mut merged, &i.series);
        }
    }
    let f = finished(&events);
    assert!(!f.partial(), "{}", f.reason);
    assert!(f.requests_sent > 0);
    assert_eq!(f.series, merged);
    let ok: u64 = merged.values().map(|s| s.counters().requests()).sum();
    assert_eq!(ok, f.requests_sent);
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_stream_reattached_mid_run_has_no_gap_and_no_duplicate() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(config(dir.path())).await;
    let mut client = client(agent.addr, TOKEN).await;
    let mut stream = client
        .run(request(
            "reattach",
            plan(closed(2, Duration::from_millis(900))),
            &sim.url(),
            5_000,
        ))
        .await
        .unwrap()
        .into_inner();
    let mut decoder = EventDecoder::new();
    let mut raw = Vec::new();
    for _ in 0..3 {
        let e = next(&mut stream).await.unwrap();
        raw.push(e.sequence);
        decoder.decode(&e).unwrap().unwrap();
    }
    drop(stream);
    let mut resumed = client
        .results(pb::ResultsRequest {
            run_id: "reattach".to_owned(),
            after_sequence: decoder.last_sequence(),
        })
        .await
        .unwrap()
        .into_inner();
    let rest = drain(&mut resumed, &mut decoder, &mut raw).await;
    assert_eq!(
        raw,
        (1..=raw.len() as u64).collect::<Vec<_>>(),
        "gap or duplicate"
    );
    let f = finished(&rest);
    assert!(!f.partial(), "{}", f.reason);
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_controller_stops_firing_and_results_survive_a_restart() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(config(dir.path())).await;
    let mut client = client(agent.addr, TOKEN).await;
    // A long run with a 1 s lease; the controller reads Started and vanishes.
    let mut stream = client
        .run(request(
            "orphan",
            plan(closed(2, Duration::from_secs(600))),
            &sim.url(),
            1_000,
        ))
        .await
        .unwrap()
        .into_inner();
    next(&mut stream).await.unwrap();
    drop(stream);
    drop(client);

    // Wait, without holding the lease, until the simulator sees no new
    // request for 300 ms (2 virtual users send one every ~25 ms while firing).
    let dropped = std::time::Instant::now();
    let mut last = sim_requests(&sim);
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = sim_requests(&sim);
        if now == last {
            break;
        }
        last = now;
        assert!(
            dropped.elapsed() < Duration::from_secs(30),
            "still firing 30 s after the controller vanished"
        );
    }
    assert!(last > 0);
    // The lease TTL (1 s) plus the stop grace (1 s) bound when firing ends;
    // only a generous bound is asserted (shared, noisy machine).
    assert!(
        dropped.elapsed() < Duration::from_secs(15),
        "{:?}",
        dropped.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        sim_requests(&sim),
        last,
        "requests kept coming after the run stopped"
    );

    let fetch = |addr| async move {
        let mut c = self::client(addr, TOKEN).await;
        let mut s = c
            .results(pb::ResultsRequest {
                run_id: "orphan".to_owned(),
                after_sequence: 0,
            })
            .await
            .unwrap()
            .into_inner();
        let mut raw = Vec::new();
        let events = drain(&mut s, &mut EventDecoder::new(), &mut raw).await;
        (raw, events)
    };
    let (raw, events) = fetch(agent.addr).await;
    assert_eq!(raw, (1..=raw.len() as u64).collect::<Vec<_>>());
    let f = finished(&events);
    assert!(f.partial());
    assert_eq!(f.reason, "lease expired");
    agent.shutdown().await;

    // A new agent on the same results directory serves the same log.
    let agent = Agent::start(config(dir.path())).await;
    let (raw2, events2) = fetch(agent.addr).await;
    assert_eq!(raw2, raw);
    assert_eq!(events2, events);
    let err = self::client(agent.addr, TOKEN)
        .await
        .results(pb::ResultsRequest {
            run_id: "nope".to_owned(),
            after_sequence: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    agent.shutdown().await;
}

#[test]
fn the_binary_refuses_insecure_on_a_non_loopback_address() {
    let bin = env!("CARGO_BIN_EXE_quarry-agent");
    let out = std::process::Command::new(bin)
        .args(["--listen", "0.0.0.0:0", "--insecure"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("loopback"), "{stderr}");
    // Without --insecure, no authentication at all is refused too.
    let out = std::process::Command::new(bin)
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no authentication"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traced_run_streams_request_spans_under_its_stage_spans() {
    use prost::Message;
    use quarry_engine::trace::{TRACEPARENT, TraceContext, TraceSampling, stage_span_id};

    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(config(dir.path())).await;
    let mut client = client(agent.addr, TOKEN).await;
    let context = TraceContext {
        trace_id: [0xab; 16],
        span_id: [0xcd; 8],
    };
    let mut run = request(
        "traced",
        plan(closed(2, Duration::from_millis(600))),
        &sim.url(),
        0,
    );
    let mut spec: ShareSpec = serde_json::from_slice(&run.share_json).unwrap();
    spec.trace = Some(TraceSampling {
        ratio: 1.0,
        keep_errors: true,
        max_per_second: 0,
    });
    run.share_json = serde_json::to_vec(&spec).unwrap();

    // A malformed traceparent is refused before anything runs.
    let mut bad = tonic::Request::new(run.clone());
    bad.metadata_mut()
        .insert(TRACEPARENT, "00-zz-cdcdcdcdcdcdcdcd-01".parse().unwrap());
    let status = client.run(bad).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("traceparent"),
        "{}",
        status.message()
    );

    let mut good = tonic::Request::new(run);
    good.metadata_mut()
        .insert(TRACEPARENT, context.traceparent().parse().unwrap());
    let mut stream = client.run(good).await.unwrap().into_inner();
    let mut decoder = EventDecoder::new();
    let events = drain(&mut stream, &mut decoder, &mut Vec::new()).await;
    let mut spans = Vec::new();
    for e in &events {
        if let ShareEvent::Spans {
            otlp_resource_spans,
            dropped_spans,
        } = &e.event
        {
            assert_eq!(*dropped_spans, 0);
            let batch = opentelemetry_proto::tonic::trace::v1::ResourceSpans::decode(
                otlp_resource_spans.as_slice(),
            )
            .unwrap();
            let resource = batch.resource.unwrap();
            assert!(
                resource
                    .attributes
                    .iter()
                    .any(|kv| kv.key == "quarry.agent.id")
            );
            spans.extend(batch.scope_spans.into_iter().flat_map(|s| s.spans));
        }
    }
    let f = finished(&events);
    assert_eq!(
        spans.len() as u64,
        f.requests_sent,
        "every request traced at ratio 1"
    );
    let stage = stage_span_id(context.span_id, 0).to_vec();
    for s in &spans {
        assert_eq!(s.trace_id, context.trace_id.to_vec());
        assert_eq!(s.parent_span_id, stage);
        assert_eq!(s.name, format!("chat {HAIKU}"));
    }
    agent.shutdown().await;
}

/// Adds `field` with a value to the JSON object at `path` (object keys).
fn add_field(json: &mut serde_json::Value, path: &[&str], field: &str) {
    let mut at = json;
    for key in path {
        at = at.get_mut(*key).unwrap_or_else(|| panic!("no {key}"));
    }
    at.as_object_mut().expect("an object").insert(
        field.to_owned(),
        serde_json::json!({"from": "a newer controller"}),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_controllers_optional_fields_are_read_and_its_required_features_refused() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(config(dir.path())).await;
    let mut client = client(agent.addr, TOKEN).await;

    // A newer controller adds optional fields at every level of the share:
    // this agent ignores them and runs the share as an older one meant it.
    let mut newer = request(
        "newer",
        plan(closed(1, Duration::from_millis(300))),
        &sim.url(),
        0,
    );
    let mut json: serde_json::Value = serde_json::from_slice(&newer.share_json).unwrap();
    add_field(&mut json, &[], "future_share_field");
    add_field(&mut json, &["plan"], "future_plan_field");
    add_field(&mut json, &["plan", "load"], "future_load_field");
    newer.share_json = serde_json::to_vec(&json).unwrap();
    let mut stream = client.run(newer).await.unwrap().into_inner();
    let events = drain(&mut stream, &mut EventDecoder::new(), &mut Vec::new()).await;
    assert!(!finished(&events).partial(), "{}", finished(&events).reason);
    assert!(sim_requests(&sim) > 0);

    // A field that changes what the share does is named in `requires`: an
    // agent without the feature refuses the share, naming it, before it
    // starts anything.
    let before = sim_requests(&sim);
    let mut requiring = request(
        "requiring",
        plan(closed(1, Duration::from_millis(300))),
        &sim.url(),
        0,
    );
    let mut json: serde_json::Value = serde_json::from_slice(&requiring.share_json).unwrap();
    json["requires"] = serde_json::json!(["interleave", "teleport"]);
    requiring.share_json = serde_json::to_vec(&json).unwrap();
    let refused = client.run(requiring).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(
        refused
            .message()
            .contains("the share requires teleport which this agent"),
        "{}",
        refused.message()
    );
    assert_eq!(sim_requests(&sim), before);
    assert!(!dir.path().join("requiring").exists());
    agent.shutdown().await;
}

/// Issue 17, defect 1: SIGTERM (what systemd, Kubernetes and `timeout`
/// send) shuts the `quarry-agent` binary down gracefully: its share is
/// stopped, the stream ends with a Finished event, the share's results stay
/// in the store for a controller to fetch, and it exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_binary_s_shares_keeps_their_results_and_exits_0() {
    use std::io::BufRead as _;
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_quarry-agent"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--insecure",
            "--stop-grace-s",
            "1",
        ])
        .arg("--results-dir")
        .arg(dir.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let addr: SocketAddr = loop {
        let mut line = String::new();
        assert_ne!(stderr.read_line(&mut line).unwrap(), 0, "no listening line");
        if let Some(a) = line.trim().strip_prefix("quarry-agent: listening on ") {
            break a.parse().unwrap();
        }
    };
    // Keep draining its log so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in stderr.lines().map_while(Result::ok) {});
    let mut controller = client(addr, "unused").await;
    let mut stream = controller
        .run(request(
            "terminated",
            plan(closed(2, Duration::from_secs(600))),
            &sim.url(),
            10_000,
        ))
        .await
        .unwrap()
        .into_inner();
    let mut decoder = EventDecoder::new();
    let mut raw = Vec::new();
    let started = next(&mut stream).await.unwrap();
    raw.push(started.sequence);
    decoder.decode(&started).unwrap();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let events = drain(&mut stream, &mut decoder, &mut raw).await;
    let f = finished(&events);
    assert!(f.partial());
    assert_eq!(f.reason, "agent shutting down");
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));

    // The share's log is in the store: a new agent on the directory serves it.
    let agent = Agent::start(config(dir.path())).await;
    let mut c = client(agent.addr, TOKEN).await;
    let mut s = c
        .results(pb::ResultsRequest {
            run_id: "terminated".to_owned(),
            after_sequence: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let mut raw2 = Vec::new();
    let stored = drain(&mut s, &mut EventDecoder::new(), &mut raw2).await;
    assert_eq!(finished(&stored).reason, "agent shutting down");
    assert!(raw2.len() >= raw.len());
    agent.shutdown().await;
}

/// Issue 17, defect 10: a connection that never sends the HTTP/2 preface
/// is closed after the first-bytes timeout; one that sent it is not cut by
/// the same deadline later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_closed_after_the_first_bytes_timeout() {
    use tokio::io::AsyncReadExt;
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.first_bytes_timeout = Duration::from_millis(200);
    let agent = Agent::start(c).await;

    let mut silent = tokio::net::TcpStream::connect(agent.addr).await.unwrap();
    // The server speaks first (its SETTINGS frame), then closes: end of
    // stream or a reset. The bound is generous (a hang fails the test
    // instead of blocking it).
    let closed = async {
        let mut buf = [0u8; 256];
        loop {
            match silent.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), closed)
        .await
        .expect("the server kept a silent connection open for 60 s");

    let mut talking = client(agent.addr, TOKEN).await;
    talking.describe(pb::DescribeRequest {}).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    talking.describe(pb::DescribeRequest {}).await.unwrap();
    agent.shutdown().await;
}

/// The binary's `--first-bytes-timeout-s` and `--rejected-token-log-every-s`
/// reach the daemon: with 1 s each, a silent connection is closed (and the
/// close logged), and two rejected tokens more than a second apart give two
/// log lines (the 60 s default would give one), neither with the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_s_connection_timeout_flags_reach_the_daemon() {
    use std::io::BufRead as _;
    use std::sync::{Arc, Mutex};
    use tokio::io::AsyncReadExt;
    const WRONG: &str = "wrong-token-that-must-never-be-logged";
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_quarry-agent"))
        .args(["--listen", "127.0.0.1:0", "--first-bytes-timeout-s", "1"])
        .args(["--rejected-token-log-every-s", "1"])
        .arg("--token-file")
        .arg(&token_file)
        .arg("--results-dir")
        .arg(dir.path().join("results"))
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let addr: SocketAddr = loop {
        let mut line = String::new();
        assert_ne!(stderr.read_line(&mut line).unwrap(), 0, "no listening line");
        if let Some(a) = line.trim().strip_prefix("quarry-agent: listening on ") {
            break a.parse().unwrap();
        }
    };
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let reader = {
        let log = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                log.lock().unwrap().push(line);
            }
        })
    };

    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let closed = async {
        let mut buf = [0u8; 256];
        loop {
            match silent.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    };
    // A hang guard, not a timing assertion.
    tokio::time::timeout(Duration::from_secs(60), closed)
        .await
        .expect("the agent kept a silent connection open for 60 s");

    let mut wrong = client(addr, WRONG).await;
    let err = wrong.describe(pb::DescribeRequest {}).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    // More than the 1 s period later: a second line is due.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let err = wrong.describe(pb::DescribeRequest {}).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    let mut right = client(addr, TOKEN).await;
    right.describe(pb::DescribeRequest {}).await.unwrap();

    let sent = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    reader.join().unwrap();
    let log = log.lock().unwrap().join("\n");
    assert!(
        log.contains("closing a connection that sent nothing within the first-bytes timeout"),
        "{log}"
    );
    assert_eq!(
        log.matches("rejected 1 request(s) with a missing or wrong bearer token")
            .count(),
        2,
        "{log}"
    );
    assert!(!log.contains(WRONG), "{log}");
}
